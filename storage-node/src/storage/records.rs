//! Where an object's record lives: the `data` entry of its key points at a
//! slot of the `objects` database, numbered in the order keys arrived.
//!
//! Why: with 1 KiB values a 4 KiB LMDB page holds at most three records,
//! and a B-tree split leaves two behind whatever the order of the inserts
//! (LMDB's `mdb_page_split` keeps all but the last record on the old page
//! when the new one goes at its end, and halves it otherwise). Records
//! kept under their keys filled their pages to two thirds at best: the
//! data file was 2.05× the values held after a load (docs/benchmarks.md,
//! "1 000 000 records again"). A new key's record instead goes to a fresh
//! slot after every other, written with `MDB_APPEND`, which starts a new
//! page only when the last is full, so pages hold three. The `data` entry
//! of a key, its data key and a 9-byte pointer, is small: about ninety fit
//! a page.
//!
//! An update rewrites its record in place (same slot; a record that grows
//! past its page's room, as one gaining siblings may, splits the page). A
//! delete frees its slot: the slot's number is kept in the `free`
//! database, and the next new key takes the lowest free slot, so its
//! record lands in the page the deleted one left room in (a partition drop
//! after a membership change frees slots all over the file; new keys fill
//! those holes before the file grows). Where deletes empty a whole page,
//! LMDB frees the page, and the new keys that take its slots go to the
//! end of a full neighbour, which splits as before slots: two records a
//! page there.
//!
//! A `data` entry is either a pointer (`POINTER ‖ slot (u64 BE)`) or, as
//! every node before this layout wrote it, the record itself (format byte
//! 1): those are read as they are and move to a slot when next written.
//! An older binary reading a pointer finds no record format it knows and
//! refuses it as damaged, rather than taking the key for absent.

use super::{corrupt, decode, StorageError, WriteTxn, FORMAT_V1};
use lmdb::{Cursor, Database, Transaction, WriteFlags};
use quire_shared::Object;

/// First byte of a `data` entry that points at a slot of `objects`.
const POINTER: u8 = 2;
/// Bytes of a pointer entry.
const POINTER_BYTES: usize = 9;
/// The database of free slots; compaction leaves it empty (its copy has no
/// holes for them to fill).
pub(super) const FREE_DB: &str = "free";
/// The database of records by slot.
pub(super) const OBJECTS_DB: &str = "objects";

/// What a `data` entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry<'a> {
    /// The record itself (the layout before slots).
    Inline(&'a [u8]),
    /// The slot of `objects` holding the record.
    Slot(u64),
}

/// Reads a `data` entry; anything but a record or a pointer is damage,
/// never guessed at.
fn entry_of<'a>(data_key: &[u8], value: &'a [u8]) -> Result<Entry<'a>, StorageError> {
    match value.split_first() {
        Some((&FORMAT_V1, _)) => Ok(Entry::Inline(value)),
        Some((&POINTER, slot)) if value.len() == POINTER_BYTES => Ok(Entry::Slot(
            u64::from_be_bytes(slot.try_into().expect("eight bytes")),
        )),
        _ => Err(corrupt(data_key)),
    }
}

/// The `data` entry that points at `slot`.
fn pointer(slot: u64) -> [u8; POINTER_BYTES] {
    let mut p = [POINTER; POINTER_BYTES];
    p[1..].copy_from_slice(&slot.to_be_bytes());
    p
}

/// `data_key`'s entry, if it has one.
fn entry_at<'t>(
    txn: &'t impl Transaction,
    data: Database,
    data_key: &[u8],
) -> Result<Option<Entry<'t>>, StorageError> {
    match txn.get(data, &data_key) {
        Ok(value) => entry_of(data_key, value).map(Some),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The record that `data_key`'s entry `value` names: for the scans, which
/// walk `data` in key order and hold each entry already.
pub(super) fn record_of<'t>(
    txn: &'t impl Transaction,
    objects: Database,
    data_key: &[u8],
    value: &'t [u8],
) -> Result<&'t [u8], StorageError> {
    resolve(txn, objects, data_key, entry_of(data_key, value)?)
}

fn resolve<'t>(
    txn: &'t impl Transaction,
    objects: Database,
    data_key: &[u8],
    entry: Entry<'t>,
) -> Result<&'t [u8], StorageError> {
    match entry {
        Entry::Inline(record) => Ok(record),
        Entry::Slot(slot) => match txn.get(objects, &slot.to_be_bytes()) {
            Ok(record) => Ok(record),
            // A pointer to nothing: damaged, never "absent".
            Err(lmdb::Error::NotFound) => Err(corrupt(data_key)),
            Err(e) => Err(e.into()),
        },
    }
}

/// The object of `data_key`, if it has one, wherever its record lives:
/// what a get asks.
pub(super) fn object_at(
    txn: &impl Transaction,
    dbs: (Database, Database),
    data_key: &[u8],
) -> Result<Option<Object>, StorageError> {
    Ok(held_at(txn, dbs, data_key)?.map(|held| held.object))
}

/// What a key holds: its object, and the slot its record is in (`None`
/// for a record of the layout before slots). A write reads it once and
/// hands the slot back to [`WriteTxn::put_record`] or
/// [`WriteTxn::del_record`].
pub(super) struct Held {
    /// The stored object.
    pub object: Object,
    /// Its record's slot.
    pub slot: Option<u64>,
}

/// What `data_key` holds, if anything.
pub(super) fn held_at(
    txn: &impl Transaction,
    (data, objects): (Database, Database),
    data_key: &[u8],
) -> Result<Option<Held>, StorageError> {
    let Some(entry) = entry_at(txn, data, data_key)? else {
        return Ok(None);
    };
    let object = decode(resolve(txn, objects, data_key, entry)?, data_key)?;
    let slot = match entry {
        Entry::Slot(slot) => Some(slot),
        Entry::Inline(_) => None,
    };
    Ok(Some(Held { object, slot }))
}

/// Keys whose slots [`for_each_record`] sorts at a time: 24 bytes each
/// (the slot and a reference into the read transaction's map), so at most
/// 24 MiB however many keys the node holds.
const SORTED_KEYS_MAX: usize = 1 << 20;

/// Calls `visit` with every key's data key and record, for the passes
/// over all the data (the Merkle rebuild after a crash, the totals).
/// Records are read in slot order, a chunk of keys at a time: slots are
/// spread over the file in the order keys arrived, and reading them in
/// key order jumped from page to page (the rebuild took 1.3 to 2× as
/// long, docs/benchmarks.md). The order of the calls is neither key nor
/// slot order.
pub(super) fn for_each_record<'t>(
    txn: &'t impl Transaction,
    dbs: (Database, Database),
    visit: impl FnMut(&'t [u8], &'t [u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    for_each_record_sorting(txn, dbs, SORTED_KEYS_MAX, visit)
}

/// [`for_each_record`], sorting `sorted_max` keys at a time.
pub(super) fn for_each_record_sorting<'t>(
    txn: &'t impl Transaction,
    (data, objects): (Database, Database),
    sorted_max: usize,
    mut visit: impl FnMut(&'t [u8], &'t [u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut sorted: Vec<(u64, &'t [u8])> = Vec::new();
    let mut cursor = txn.open_ro_cursor(data)?;
    for item in cursor.iter_start() {
        let (data_key, value) = item?;
        match entry_of(data_key, value)? {
            Entry::Inline(record) => visit(data_key, record)?,
            Entry::Slot(slot) => sorted.push((slot, data_key)),
        }
        if sorted.len() >= sorted_max {
            visit_in_slot_order(txn, objects, &mut sorted, &mut visit)?;
        }
    }
    visit_in_slot_order(txn, objects, &mut sorted, &mut visit)
}

/// Visits the records of `sorted`'s keys in slot order, and empties it.
fn visit_in_slot_order<'t>(
    txn: &'t impl Transaction,
    objects: Database,
    sorted: &mut Vec<(u64, &'t [u8])>,
    visit: &mut impl FnMut(&'t [u8], &'t [u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    sorted.sort_unstable_by_key(|&(slot, _)| slot);
    for (slot, data_key) in sorted.drain(..) {
        visit(
            data_key,
            resolve(txn, objects, data_key, Entry::Slot(slot))?,
        )?;
    }
    Ok(())
}

impl WriteTxn<'_> {
    /// Stores `record` as `data_key`'s: in `slot`, the one it holds (see
    /// [`held_at`]), else in a new slot that its entry then points at.
    pub(super) fn put_record(
        &mut self,
        data_key: &[u8],
        slot: Option<u64>,
        record: &[u8],
    ) -> Result<(), StorageError> {
        let (data, objects) = (self.storage.data, self.storage.objects);
        if let Some(slot) = slot {
            return Ok(self
                .txn
                .put(objects, &slot.to_be_bytes(), &record, WriteFlags::empty())?);
        }
        let (slot, last) = self.new_slot()?;
        let flags = if last {
            WriteFlags::APPEND
        } else {
            WriteFlags::empty()
        };
        self.txn.put(objects, &slot.to_be_bytes(), &record, flags)?;
        Ok(self
            .txn
            .put(data, &data_key, &pointer(slot), WriteFlags::empty())?)
    }

    /// Removes `data_key`'s entry, which holds `slot` (see [`held_at`]),
    /// and frees the slot.
    pub(super) fn del_record(
        &mut self,
        data_key: &[u8],
        slot: Option<u64>,
    ) -> Result<(), StorageError> {
        self.txn.del(self.storage.data, &data_key, None)?;
        if let Some(slot) = slot {
            self.txn
                .del(self.storage.objects, &slot.to_be_bytes(), None)?;
            self.txn.put(
                self.storage.free,
                &slot.to_be_bytes(),
                b"",
                WriteFlags::empty(),
            )?;
        }
        Ok(())
    }

    /// A slot for a new record: the lowest free one, else the one after
    /// the last (`true`: it goes at the end, so `MDB_APPEND` applies).
    /// Free slots go first, so the slot after the last is never a free
    /// one, and the count kept for the rest of the transaction stays
    /// right: a slot freed later in it is taken from `free` again.
    fn new_slot(&mut self) -> Result<(u64, bool), StorageError> {
        let (free, objects) = (self.storage.free, self.storage.objects);
        if let Some(slot) = slot_at_end(&self.txn, free, lmdb_sys::MDB_FIRST)? {
            self.txn.del(free, &slot.to_be_bytes(), None)?;
            return Ok((slot, false));
        }
        let next = match self.next_slot {
            Some(next) => next,
            None => last_slot(&self.txn, objects)?.map_or(0, |last| last + 1),
        };
        self.next_slot = Some(next + 1);
        Ok((next, true))
    }
}

/// The last slot of `objects`, if any: new keys go after it.
pub(super) fn last_slot(
    txn: &impl Transaction,
    objects: Database,
) -> Result<Option<u64>, StorageError> {
    slot_at_end(txn, objects, lmdb_sys::MDB_LAST)
}

/// The first (`MDB_FIRST`) or last (`MDB_LAST`) slot of `db`, a database
/// keyed by slot (`objects` or `free`), if it has any.
fn slot_at_end(
    txn: &impl Transaction,
    db: Database,
    end: lmdb_sys::MDB_cursor_op,
) -> Result<Option<u64>, StorageError> {
    let cursor = txn.open_ro_cursor(db)?;
    match cursor.get(None, None, end) {
        Ok((Some(key), _)) => slot_of(key).map(Some),
        Err(lmdb::Error::NotFound) => Ok(None),
        // LMDB always names the key it lands on.
        Ok((None, _)) => Err(corrupt(b"a slot at the end of its database")),
        Err(e) => Err(e.into()),
    }
}

/// Checks the layout's invariants (tests): every pointer names a record,
/// no two entries share a slot, every record has its pointer, and no free
/// slot holds a record. Returns the number of records in slots.
#[cfg(test)]
pub(super) fn check_slots(
    txn: &impl Transaction,
    (data, objects, free): (Database, Database, Database),
) -> Result<usize, String> {
    let keys = |db| -> Result<Vec<Vec<u8>>, String> {
        let mut cursor = txn.open_ro_cursor(db).map_err(|e| e.to_string())?;
        cursor
            .iter_start()
            .map(|item| item.map(|(k, _)| k.to_vec()).map_err(|e| e.to_string()))
            .collect()
    };
    let mut pointed = std::collections::BTreeSet::new();
    let mut cursor = txn.open_ro_cursor(data).map_err(|e| e.to_string())?;
    for item in cursor.iter_start() {
        let (k, v) = item.map_err(|e| e.to_string())?;
        if let Entry::Slot(slot) = entry_of(k, v).map_err(|e| e.to_string())? {
            if !pointed.insert(slot) {
                return Err(format!("slot {slot} named twice"));
            }
        }
    }
    let held: std::collections::BTreeSet<u64> = keys(objects)?
        .iter()
        .map(|k| slot_of(k).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if held != pointed {
        return Err(format!("records {held:?}, pointers {pointed:?}"));
    }
    for k in keys(free)? {
        let slot = slot_of(&k).map_err(|e| e.to_string())?;
        if held.contains(&slot) {
            return Err(format!("free slot {slot} holds a record"));
        }
    }
    Ok(held.len())
}

/// The slot a key of `objects` or `free` names.
fn slot_of(key: &[u8]) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_a_record_or_a_pointer_and_nothing_else() {
        assert_eq!(
            entry_of(b"k", &[FORMAT_V1, 7, 7]).unwrap(),
            Entry::Inline(&[FORMAT_V1, 7, 7])
        );
        assert_eq!(entry_of(b"k", &pointer(513)).unwrap(), Entry::Slot(513));
        for bad in [&[][..], &[POINTER, 1, 2], &[0, 0, 0], &[POINTER; 10]] {
            assert!(
                matches!(entry_of(b"k", bad), Err(StorageError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
