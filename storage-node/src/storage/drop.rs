//! Dropping a partition an old owner no longer holds for anyone: after a
//! membership change has flipped and the SDK has handed the copy off.

use super::keys::partition_prefix;
use super::transfer::transfer_key;
use super::{StorageError, WriteTxn};
use lmdb::{Cursor, Transaction};

impl WriteTxn<'_> {
    /// Removes up to `limit` keys of `store`'s `partition` (their Merkle
    /// entries and tombstone counts with them) if the copy's Merkle root
    /// is still `root`; returns how many, whether keys are left and the
    /// root after, or `None` when the copy changed. Once no key is left,
    /// the partition's transfer record goes too.
    pub fn drop_partition(
        &mut self,
        store: &str,
        partition: u32,
        (root, limit): ([u8; 16], usize),
    ) -> Result<Option<(u64, bool, [u8; 16])>, StorageError> {
        let held = self.summary_now(store, partition);
        if held.segments.root() != root {
            return Ok(None);
        }
        let prefix = partition_prefix(store, partition);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut more = false;
        {
            let mut cursor = self.txn.open_ro_cursor(self.storage.data)?;
            for item in cursor.iter_from(&prefix) {
                let (k, _) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                if keys.len() == limit {
                    more = true;
                    break;
                }
                keys.push(k.to_vec());
            }
        }
        for k in &keys {
            self.del_object(k)?;
        }
        if !more {
            match self
                .txn
                .del(self.storage.meta, &transfer_key(store, partition), None)
            {
                Ok(()) | Err(lmdb::Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let after = self.summary_now(store, partition);
        Ok(Some((keys.len() as u64, more, after.segments.root())))
    }
}
