//! The highest HLC timestamp the engine holds, read from metadata alone.
//!
//! Owns [`Db::max_hlc`]: the largest timestamp of any record in the memtables (each tracks its
//! own maximum as entries arrive, WAL replay included) or the tables (each table's metadata
//! carries its maximum version). The cluster starts its clock above it, so a node whose wall
//! clock stepped back across a restart never issues versions below ones it already stored.
//! Must never read a data block or walk a memtable: it is called at startup, on any size of
//! data, and must cost the same on all of them.

use crate::db::state::SuperVersion;
use crate::db::Db;

impl Db {
    /// The highest HLC timestamp of any record the engine holds: values, tombstones and
    /// expired records alike, in memtables and in tables; `None` when it holds nothing.
    ///
    /// It is the highest of what is held *now*: a compaction that drops records (expired
    /// values, tombstones past `gc_grace`, whole expired tables) may lower it. Writes that
    /// race with the call may or may not be counted.
    pub fn max_hlc(&self) -> Option<u64> {
        self.inner.view().max_hlc()
    }
}

impl SuperVersion {
    /// The highest timestamp in this view's memtables and tables.
    fn max_hlc(&self) -> Option<u64> {
        let memtables = self.memtables().filter_map(|m| m.max_hlc());
        let tables = self
            .tables
            .levels
            .iter()
            .flatten()
            .map(|t| t.meta.max_version.hlc);
        memtables.chain(tables).max()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Db, Options, Record, Version};

    fn open(dir: &Path) -> Db {
        Db::open(dir, Options::default().with_background_work(false)).expect("open")
    }

    fn v(ms: u64, node: u32) -> Version {
        Version::new(ms << 16, node)
    }

    #[test]
    fn an_empty_engine_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        assert_eq!(db.max_hlc(), None);
        db.flush().expect("flush");
        assert_eq!(db.max_hlc(), None);
    }

    #[test]
    fn counts_memtable_writes_in_any_arrival_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        db.put(b"a", Record::value(v(5, 1), "x")).expect("put");
        db.put(b"b", Record::value(v(9, 2), "y")).expect("put");
        // Older versions arriving late (hints, repair) do not lower it.
        db.put(b"c", Record::value(v(3, 3), "z")).expect("put");
        assert_eq!(db.max_hlc(), Some(v(9, 2).hlc));
        // Tombstones count.
        db.put(b"d", Record::tombstone(v(11, 4))).expect("delete");
        assert_eq!(db.max_hlc(), Some(v(11, 4).hlc));
    }

    #[test]
    fn survives_flush_and_takes_the_highest_of_tables_and_memtables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        db.put(b"a", Record::value(v(20, 1), "x")).expect("put");
        db.flush().expect("flush");
        assert_eq!(db.max_hlc(), Some(v(20, 1).hlc));
        db.put(b"b", Record::value(v(10, 1), "older")).expect("put");
        assert_eq!(db.max_hlc(), Some(v(20, 1).hlc), "the table's is higher");
        db.put(b"c", Record::value(v(30, 1), "newer")).expect("put");
        assert_eq!(db.max_hlc(), Some(v(30, 1).hlc), "the memtable's is higher");
        db.flush().expect("flush");
        assert_eq!(db.max_hlc(), Some(v(30, 1).hlc));
    }

    #[test]
    fn survives_a_reopen_that_replays_the_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        db.put(b"flushed", Record::value(v(7, 1), "x"))
            .expect("put");
        db.flush().expect("flush");
        // Only in the WAL when the engine closes: the reopen has to replay it.
        db.put(b"logged", Record::tombstone(v(8, 2)))
            .expect("delete");
        db.close().expect("close");
        let db = open(dir.path());
        assert_eq!(db.max_hlc(), Some(v(8, 2).hlc));
        db.close().expect("close");
    }

    #[test]
    fn survives_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path());
        for (i, ms) in [(0u32, 40u64), (1, 60), (2, 50)] {
            let key = format!("k{i}");
            db.put(key.as_bytes(), Record::value(v(ms, i), "x"))
                .expect("put");
            db.put(key.as_bytes(), Record::value(v(ms - 1, i), "overwritten"))
                .expect("put");
            db.flush().expect("flush");
        }
        db.compact().expect("compact");
        let stats = db.stats();
        assert_eq!(stats.levels.first().map(|l| l.tables), Some(0));
        assert_eq!(db.max_hlc(), Some(v(60, 1).hlc));
    }
}
