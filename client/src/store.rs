//! A handle on one store: reads resolved by the store's policy (or the
//! application's [`Resolver`]), and a read-modify-write helper.

use crate::client::Client;
use crate::error::ClientError;
use crate::operations::{GetResult, PutResult};
use crate::resolve::{KeepSiblings, LastWriteWins, Resolver, Sibling};
use quire_shared::{ConflictPolicy, Context, StoreConfig};
use std::sync::Arc;
use std::time::Duration;

/// How [`Store::update`] retries when a quorum is not reached.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time after.
    pub backoff_initial: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// A store of a cluster, seen through one conflict resolver.
#[derive(Clone)]
pub struct Store {
    client: Client,
    config: StoreConfig,
    resolver: Arc<dyn Resolver>,
    retry: Retry,
}

impl Store {
    /// The handle [`Client::store`] returns: the store's own policy.
    pub(crate) fn new(client: Client, config: StoreConfig) -> Self {
        let resolver: Arc<dyn Resolver> = match config.policy {
            ConflictPolicy::Siblings => Arc::new(KeepSiblings),
            ConflictPolicy::Lww => Arc::new(LastWriteWins),
        };
        Self {
            client,
            config,
            resolver,
            retry: Retry::default(),
        }
    }

    /// The store's settings from the membership document.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Reconcile siblings with `resolver` instead of the store's policy.
    pub fn with_resolver(mut self, resolver: impl Resolver + 'static) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Retry [`Store::update`] with `retry`.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Reads `key` and reconciles its siblings. The context covers every
    /// sibling read, so writing with it replaces them all.
    pub async fn get(&self, key: &[u8]) -> Result<GetResult, ClientError> {
        let mut read = self.client.get(&self.config.name, key).await?;
        if read.siblings.len() > 1 {
            read.siblings = self.resolver.resolve(read.siblings);
        }
        Ok(read)
    }

    /// Writes `value`, replacing what `context` saw. The result's siblings
    /// (the value plus any concurrent ones) are reconciled like a read's.
    pub async fn put(
        &self,
        key: &[u8],
        value: Vec<u8>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        let mut result = self
            .client
            .put(&self.config.name, key, value, context)
            .await?;
        if result.siblings.len() > 1 {
            result.siblings = self.resolver.resolve(result.siblings);
        }
        Ok(result)
    }

    /// Deletes what `context` saw; values it did not see survive.
    pub async fn delete(&self, key: &[u8], context: &Context) -> Result<PutResult, ClientError> {
        self.client.delete(&self.config.name, key, context).await
    }

    /// Read-modify-write: reads `key`, resolves its siblings, asks `change`
    /// for the new value given the resolved siblings (empty when the key is
    /// not found) and writes it with the read's context. Retries with
    /// backoff when a quorum is not reached, reading again each time.
    ///
    /// A write with a context never conflicts in the CAS sense: a
    /// concurrent writer's value survives as a sibling, for the next read's
    /// resolver to fold in.
    pub async fn update<F>(&self, key: &[u8], mut change: F) -> Result<PutResult, ClientError>
    where
        F: FnMut(&[Sibling]) -> Vec<u8>,
    {
        let mut backoff = self.retry.backoff_initial;
        let mut attempt = 1;
        loop {
            let result = async {
                let read = self.get(key).await?;
                let value = change(&read.siblings);
                self.put(key, value, &read.context).await
            }
            .await;
            match result {
                Err(ClientError::Quorum(_)) if attempt < self.retry.attempts => {
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(self.retry.backoff_max);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// `d` scaled by a factor in [0.5, 1.5), so clients retrying together
/// spread out.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    d.mul_f64(factor)
}

impl Client {
    /// A handle on `store` that reconciles siblings with the store's
    /// policy from the membership document (see [`Store::with_resolver`]).
    pub fn store(&self, store: &str) -> Result<Store, ClientError> {
        let config = self.store_config(&self.membership(), store)?;
        Ok(Store::new(self.clone(), config))
    }
}
