//! Transfer progress records (membership change): one meta record per
//! (store, partition) this node receives, written by `TransferPage` and
//! read by `TransferState`; the cursor of a resumable transfer.

use super::keys::partition_prefix;
use super::{decode, encode_as, Storage, StorageError, WriteTxn, FORMAT_V1};
use lmdb::{Cursor, Database, Transaction, WriteFlags};
use quire_shared::wire::TransferProgress;

/// Prefix of the meta records of transfer progress.
const META_TRANSFER: &[u8] = b"transfer/";

/// The meta key of a partition's transfer progress.
pub(super) fn transfer_key(store: &str, partition: u32) -> Vec<u8> {
    let mut key = META_TRANSFER.to_vec();
    key.extend_from_slice(&partition_prefix(store, partition));
    key
}

/// The transfer progress recorded for a partition (the default when none).
fn get_transfer_in(
    txn: &impl Transaction,
    meta: Database,
    store: &str,
    partition: u32,
) -> Result<TransferProgress, StorageError> {
    let key = transfer_key(store, partition);
    match txn.get(meta, &key) {
        Ok(bytes) => decode(bytes, &key),
        Err(lmdb::Error::NotFound) => Ok(TransferProgress::default()),
        Err(e) => Err(e.into()),
    }
}

impl Storage {
    /// The transfer progress recorded for `store`'s `partition`.
    pub fn transfer(&self, store: &str, partition: u32) -> Result<TransferProgress, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        get_transfer_in(&txn, self.meta, store, partition)
    }
}

impl Storage {
    /// Every transfer progress record: `(store, partition, progress)`, for
    /// the node's metrics (what incoming transfers have brought so far).
    pub fn transfers(&self) -> Result<Vec<(String, u32, TransferProgress)>, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        let mut cursor = txn.open_ro_cursor(self.meta)?;
        let mut out = Vec::new();
        for item in cursor.iter_from(META_TRANSFER) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(META_TRANSFER) else {
                break;
            };
            let Some((&len, rest)) = rest.split_first() else {
                continue;
            };
            let len = usize::from(len);
            let (Some(store), Some(partition)) = (rest.get(..len), rest.get(len..len + 4)) else {
                continue;
            };
            let partition = u32::from_be_bytes(partition.try_into().expect("four bytes"));
            let progress: TransferProgress = decode(v, k)?;
            out.push((
                String::from_utf8_lossy(store).into_owned(),
                partition,
                progress,
            ));
        }
        Ok(out)
    }
}

impl WriteTxn<'_> {
    /// The transfer progress recorded for `store`'s `partition`.
    pub fn get_transfer(
        &self,
        store: &str,
        partition: u32,
    ) -> Result<TransferProgress, StorageError> {
        get_transfer_in(&self.txn, self.storage.meta, store, partition)
    }

    /// Records the transfer progress of `store`'s `partition`.
    pub fn put_transfer(
        &mut self,
        store: &str,
        partition: u32,
        progress: &TransferProgress,
    ) -> Result<(), StorageError> {
        let key = transfer_key(store, partition);
        let bytes = encode_as(FORMAT_V1, progress);
        Ok(self
            .txn
            .put(self.storage.meta, &key, &bytes, WriteFlags::empty())?)
    }
}
