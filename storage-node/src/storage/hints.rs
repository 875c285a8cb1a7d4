//! The hints a stand-in holds for other nodes: read by key, paged out for
//! delivery, written and dropped by the writer. Keys and records are laid
//! out by `keys` (hashed when a data key is too long to follow the home).

use super::keys::{decode_hint, encode_hint, hint_key, hint_key_at, hint_prefix};
use super::{corrupt, Storage, StorageError, WriteTxn};
use lmdb::{Database, Transaction, WriteFlags};
use quire_shared::{NodeId, Object};

/// One page of the hints held for a home node.
#[derive(Debug, Default)]
pub struct HintsPage {
    /// `(data key, object)` in hint-key order.
    pub hints: Vec<(Vec<u8>, Object)>,
    /// Where the next page starts, when more hints follow.
    pub next: Option<Vec<u8>>,
}

/// The hint of `data_key` held for `home` in `db`, if any.
fn get_hint_in(
    txn: &impl Transaction,
    db: Database,
    home: NodeId,
    data_key: &[u8],
) -> Result<Option<Object>, StorageError> {
    let key = hint_key(home, data_key);
    let record = match txn.get(db, &key) {
        Ok(record) => record,
        Err(lmdb::Error::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match decode_hint(&key[hint_prefix(home).len()..], record) {
        Some((held, object)) if held == data_key => Ok(Some(object)),
        _ => Err(corrupt(&key)),
    }
}

impl Storage {
    /// Every hint held under `data_key`, for any of `homes`, synced into
    /// one object; `None` if there is none.
    pub fn get_hints(
        &self,
        homes: &[NodeId],
        data_key: &[u8],
    ) -> Result<Option<Object>, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        let mut out: Option<Object> = None;
        for &home in homes {
            if let Some(o) = get_hint_in(&txn, self.hints, home, data_key)? {
                out = Some(match out {
                    Some(acc) => acc.sync(&o),
                    None => o,
                });
            }
        }
        Ok(out)
    }

    /// The hints held for `home` after cursor `after` (a previous page's
    /// `next`): at most `limit` of them and, past the first, no more than
    /// `bytes_max` of stored records in all, so that a page of large
    /// objects still fits a frame. A page holds at least one hint when any
    /// is left, so delivery always makes progress.
    pub fn hints_page(
        &self,
        home: NodeId,
        after: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<HintsPage, StorageError> {
        use lmdb::Cursor;
        let prefix = hint_prefix(home);
        let start = match after {
            None => prefix.to_vec(),
            Some(cursor) => match hint_key_at(home, cursor) {
                Some(start) => start,
                None => return Ok(HintsPage::default()),
            },
        };
        let txn = self.env.begin_ro_txn()?;
        let mut cursor = txn.open_ro_cursor(self.hints)?;
        let mut page = HintsPage::default();
        let mut bytes = 0usize;
        let mut last: Option<Vec<u8>> = None;
        for item in cursor.iter_from(&start) {
            let (k, v) = item?;
            let Some(suffix) = k.strip_prefix(&prefix[..]) else {
                break;
            };
            if after == Some(suffix) {
                continue; // the cursor itself was delivered already
            }
            // A record's data key travels twice (as the hint's store and
            // key, and in the cursor); the record holds the object.
            let size = v.len() + 2 * suffix.len();
            if page.hints.len() >= limit.max(1)
                || (!page.hints.is_empty() && bytes + size > bytes_max)
            {
                // More follow: the next page starts after the last one here.
                page.next = last;
                break;
            }
            let (data_key, object) = decode_hint(suffix, v).ok_or_else(|| corrupt(k))?;
            bytes += size;
            page.hints.push((data_key, object));
            last = Some(suffix.to_vec());
        }
        Ok(page)
    }
}

impl WriteTxn<'_> {
    /// The hint object held for `home` under `data_key`.
    pub fn get_hint(&self, home: NodeId, data_key: &[u8]) -> Result<Option<Object>, StorageError> {
        get_hint_in(&self.txn, self.storage.hints, home, data_key)
    }

    /// Stores a hint object held for `home`.
    pub fn put_hint(
        &mut self,
        home: NodeId,
        data_key: &[u8],
        object: &Object,
    ) -> Result<(), StorageError> {
        Ok(self.txn.put(
            self.storage.hints,
            &hint_key(home, data_key),
            &encode_hint(data_key, object),
            WriteFlags::empty(),
        )?)
    }

    /// Removes the hint held for `home` under `data_key`.
    pub fn del_hint(&mut self, home: NodeId, data_key: &[u8]) -> Result<(), StorageError> {
        match self
            .txn
            .del(self.storage.hints, &hint_key(home, data_key), None)
        {
            Ok(()) | Err(lmdb::Error::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
