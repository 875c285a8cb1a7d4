//! A handle on one store: reads resolved by the store's policy (or the
//! application's [`Resolver`]), and a read-modify-write helper.
//!
//! [`Store`] works on bytes; [`crate::TypedStore`] is the same handle for
//! values of a Rust type, encoded for the application.

use crate::client::Client;
use crate::error::ClientError;
use crate::operations::{GetResult, PutResult};
use crate::options::RequestOptions;
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
    options: RequestOptions,
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
            options: RequestOptions::default(),
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

    /// Send every request through this handle with `options` (R, W,
    /// timeout) instead of the store's settings; checked on each request.
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// How [`Store::update`] retries.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The client this handle sends through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads `key` and reconciles its siblings. The context covers every
    /// sibling read, so writing with it replaces them all.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetResult, ClientError> {
        let mut read = self
            .client
            .get_opts(&self.config.name, key, &self.options)
            .await?;
        if read.siblings.len() > 1 {
            read.siblings = self.resolver.resolve(read.siblings);
        }
        Ok(read)
    }

    /// Writes `value`, replacing what `context` saw. The result's siblings
    /// (the value plus any concurrent ones) are reconciled like a read's.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Vec<u8>>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        let mut result = self
            .client
            .put_opts(&self.config.name, key, value, context, &self.options)
            .await?;
        if result.siblings.len() > 1 {
            result.siblings = self.resolver.resolve(result.siblings);
        }
        Ok(result)
    }

    /// Deletes what `context` saw; values it did not see survive.
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        self.client
            .delete_opts(&self.config.name, key, context, &self.options)
            .await
    }

    /// Read-modify-write: reads `key`, resolves its siblings, asks `change`
    /// for the new value given the resolved siblings (empty when the key is
    /// not found) and writes it with the read's context. Retries with
    /// backoff when a quorum is not reached, reading again each time.
    ///
    /// A write with a context never conflicts in the CAS sense: a
    /// concurrent writer's value survives as a sibling, for the next read's
    /// resolver to fold in.
    ///
    /// ```no_run
    /// # async fn example(client: quire_client::Client) -> Result<(), quire_client::ClientError> {
    /// use quire_client::merge_with;
    /// // A cart as comma-separated items; siblings merge by concatenation.
    /// let carts = client
    ///     .store("default")?
    ///     .with_resolver(merge_with(|a, b| [a, b].join(&b","[..])));
    /// carts
    ///     .update("cart-17", |current| {
    ///         let mut cart = current.first().map(|s| s.value.clone()).unwrap_or_default();
    ///         if !cart.is_empty() {
    ///             cart.push(b',');
    ///         }
    ///         cart.extend_from_slice(b"apple");
    ///         cart
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update<F>(
        &self,
        key: impl AsRef<[u8]>,
        mut change: F,
    ) -> Result<PutResult, ClientError>
    where
        F: FnMut(&[Sibling]) -> Vec<u8>,
    {
        let key = key.as_ref();
        let mut backoff = Backoff::new(self.retry);
        loop {
            let result = async {
                let read = self.get(key).await?;
                let value = change(&read.siblings);
                self.put(key, value, &read.context).await
            }
            .await;
            if !backoff.again(&result).await {
                return result;
            }
        }
    }
}

/// The one retry rule of every read-modify-write: try again, after a
/// jittered, doubling wait, only when a quorum was not reached and
/// attempts are left.
pub(crate) struct Backoff {
    retry: Retry,
    wait: Duration,
    tries: u32,
}

impl Backoff {
    /// Before the first attempt.
    pub(crate) fn new(retry: Retry) -> Self {
        Self {
            retry,
            wait: retry.backoff_initial,
            tries: 1,
        }
    }

    /// After an attempt that ended with `result`: true (having waited)
    /// when it should be tried again.
    pub(crate) async fn again<T>(&mut self, result: &Result<T, ClientError>) -> bool {
        if !matches!(result, Err(ClientError::Quorum(_))) || self.tries >= self.retry.attempts {
            return false;
        }
        tokio::time::sleep(jittered(self.wait)).await;
        self.wait = (self.wait * 2).min(self.retry.backoff_max);
        self.tries += 1;
        true
    }
}

/// `d` scaled by a factor in [0.5, 1.5), so clients retrying together
/// spread out.
pub(crate) fn jittered(d: Duration) -> Duration {
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
