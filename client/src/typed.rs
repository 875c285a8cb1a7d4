//! [`TypedStore`]: a store of values of one Rust type, so an application
//! never encodes bytes or merges siblings by hand.
//!
//! Voldemort's operators found that of the stores with custom conflict
//! logic, every one had bugs; most of them in the plumbing (decoding each
//! sibling, remembering to write the merge back with the read's context).
//! Here the application writes one function, the resolver `Fn(Vec<T>) ->
//! T`, and the handle does the rest: it decodes every sibling, calls the
//! resolver when there are several, and [`TypedStore::update`] writes the
//! change back with the context of the read it was made from, retrying
//! when a quorum is not reached.
//!
//! Values are postcard behind a format byte ([`FORMAT_POSTCARD`]): postcard
//! is not self-describing, so the byte leaves room for another encoding
//! later without misreading old values. A value that does not decode as
//! `T` is an error ([`ClientError::Decode`]), never silently dropped.

use crate::client::Client;
use crate::error::ClientError;
use crate::operations::PutResult;
use crate::resolve::{KeepSiblings, Sibling};
use crate::store::{Backoff, Store};
use quire_shared::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// The first byte of every value a [`TypedStore`] writes: postcard follows.
pub const FORMAT_POSTCARD: u8 = 1;

/// Why a stored value is not a `T`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The value is empty: no format byte.
    #[error("empty value (no format byte)")]
    Empty,
    /// The format byte is not one this SDK writes (another writer, or a
    /// newer SDK).
    #[error("unknown format byte {0}")]
    UnknownFormat(u8),
    /// postcard could not read a `T` (the type changed, or the bytes were
    /// written by hand).
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
}

/// `value` as a typed store writes it.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ClientError> {
    postcard::to_extend(value, vec![FORMAT_POSTCARD]).map_err(|source| ClientError::Encode {
        type_name: std::any::type_name::<T>(),
        source,
    })
}

/// A value a typed store wrote, read back.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_POSTCARD, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&other, _)) => Err(DecodeError::UnknownFormat(other)),
    }
}

/// A typed read (or the state after a typed write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedRead<T> {
    /// The value, siblings merged by the resolver; `None` when the key is
    /// not found (never written, or deleted).
    pub value: Option<T>,
    /// How many siblings there were: more than one means concurrent
    /// writes, which the resolver merged into `value`.
    pub siblings: usize,
    /// Write with this to replace everything read (all siblings).
    pub context: Context,
}

/// Every sibling of a key, decoded, unmerged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedSiblings<T> {
    /// The concurrent values; empty when the key is not found.
    pub values: Vec<T>,
    /// Write with this to replace all of them.
    pub context: Context,
}

/// Merges siblings: called with two or more values.
type TypedResolver<T> = Arc<dyn Fn(Vec<T>) -> T + Send + Sync>;

/// A store of `T` values with a typed resolver; cheap to clone.
///
/// ```no_run
/// # async fn example(client: quire_client::Client) -> Result<(), quire_client::ClientError> {
/// use std::collections::BTreeSet;
///
/// // A cart is a set of items; concurrent carts merge by union.
/// let carts = client.typed_store("default", |carts: Vec<BTreeSet<String>>| {
///     carts.into_iter().flatten().collect()
/// })?;
/// carts
///     .update("cart-17", |cart| {
///         let mut cart = cart.unwrap_or_default();
///         cart.insert("apple".to_string());
///         cart
///     })
///     .await?;
/// let read = carts.get("cart-17").await?;
/// assert!(read.value.unwrap_or_default().contains("apple"));
/// # Ok(())
/// # }
/// ```
pub struct TypedStore<T> {
    store: Store,
    resolver: TypedResolver<T>,
    _values: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedStore<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            resolver: self.resolver.clone(),
            _values: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> TypedStore<T> {
    /// `store` seen as values of `T`, siblings merged by `resolver`. The
    /// store's own resolver is not used: every sibling reaches `resolver`
    /// (R, W, timeout and retries stay the store's: see
    /// [`Store::with_options`], [`Store::with_retry`]).
    pub fn new(store: Store, resolver: impl Fn(Vec<T>) -> T + Send + Sync + 'static) -> Self {
        Self {
            store: store.with_resolver(KeepSiblings),
            resolver: Arc::new(resolver),
            _values: PhantomData,
        }
    }

    /// The byte-level handle underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Decodes `siblings` of `key`.
    fn decode_all(&self, key: &[u8], siblings: &[Sibling]) -> Result<Vec<T>, ClientError> {
        siblings
            .iter()
            .map(|s| {
                decode(&s.value).map_err(|reason| ClientError::Decode {
                    key: String::from_utf8_lossy(key).into_owned(),
                    type_name: std::any::type_name::<T>(),
                    reason,
                })
            })
            .collect()
    }

    /// One value from `values`: none, the only one, or the resolver's
    /// merge.
    fn resolve(&self, mut values: Vec<T>) -> Option<T> {
        match values.len() {
            0 => None,
            1 => values.pop(),
            _ => Some((self.resolver)(values)),
        }
    }

    /// Every sibling of `key`, decoded and left unmerged, with the context
    /// to write the application's own merge with.
    pub async fn siblings(&self, key: impl AsRef<[u8]>) -> Result<TypedSiblings<T>, ClientError> {
        let key = key.as_ref();
        let read = self.store.get(key).await?;
        Ok(TypedSiblings {
            values: self.decode_all(key, &read.siblings)?,
            context: read.context,
        })
    }

    /// Reads `key`: its value with siblings merged by the resolver.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<TypedRead<T>, ClientError> {
        let read = self.siblings(key).await?;
        Ok(TypedRead {
            siblings: read.values.len(),
            value: self.resolve(read.values),
            context: read.context,
        })
    }

    /// Writes `value`, replacing what `context` saw. Returns what the key
    /// holds now: `value`, merged with any sibling written concurrently.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        context: &Context,
    ) -> Result<TypedRead<T>, ClientError> {
        let key = key.as_ref();
        let written = self.store.put(key, encode(value)?, context).await?;
        let values = self.decode_all(key, &written.siblings)?;
        Ok(TypedRead {
            siblings: values.len(),
            value: self.resolve(values),
            context: written.context,
        })
    }

    /// Deletes what `context` saw; values it did not see survive.
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        self.store.delete(key, context).await
    }

    /// Read-modify-write: reads `key`, merges its siblings, asks `change`
    /// for the new value (given `None` when the key is not found), writes
    /// it with the read's context, and retries from a fresh read with
    /// backoff when a quorum is not reached (the store's [`crate::Retry`]).
    ///
    /// `change` may run more than once: keep it free of side effects.
    pub async fn update<F>(
        &self,
        key: impl AsRef<[u8]>,
        mut change: F,
    ) -> Result<TypedRead<T>, ClientError>
    where
        F: FnMut(Option<T>) -> T,
    {
        let key = key.as_ref();
        let mut backoff = Backoff::new(self.store.retry());
        loop {
            let result = async {
                let read = self.get(key).await?;
                let value = change(read.value);
                self.put(key, &value, &read.context).await
            }
            .await;
            if !backoff.again(&result).await {
                return result;
            }
        }
    }
}

impl Client {
    /// A handle on `store` for values of `T`, siblings merged by
    /// `resolver` (see [`TypedStore`]).
    pub fn typed_store<T: Serialize + DeserializeOwned>(
        &self,
        store: &str,
        resolver: impl Fn(Vec<T>) -> T + Send + Sync + 'static,
    ) -> Result<TypedStore<T>, ClientError> {
        Ok(TypedStore::new(self.store(store)?, resolver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn values_round_trip_behind_their_format_byte() {
        let cart: BTreeMap<String, u32> = [("apple".into(), 2), ("pear".into(), 1)].into();
        let bytes = encode(&cart).unwrap();
        assert_eq!(bytes[0], FORMAT_POSTCARD);
        assert_eq!(decode::<BTreeMap<String, u32>>(&bytes).unwrap(), cart);
        assert!(matches!(decode::<u32>(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode::<u32>(&[9, 1]),
            Err(DecodeError::UnknownFormat(9))
        ));
        assert!(matches!(
            decode::<String>(&[FORMAT_POSTCARD, 200]),
            Err(DecodeError::Postcard(_))
        ));
    }
}
