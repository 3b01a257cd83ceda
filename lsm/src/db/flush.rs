//! Flushing: a frozen memtable becomes an L0 table, and the WAL segments it covered go.
//!
//! The order is what makes a crash at any point safe: the table is written and fsynced, then
//! the manifest records it together with the new WAL low-water mark, and only then are the old
//! segments deleted. A crash before the manifest edit leaves an orphan table (removed at open)
//! and a WAL that still replays; a crash after it leaves segments that replay is told to skip.
//! Must never flush memtables out of order (the WAL low-water mark would skip unflushed data).

use std::sync::Arc;

use tracing::debug;

use crate::db::read::tables_may_beat;
use crate::db::state::{SuperVersion, TableHandle};
use crate::db::DbInner;
use crate::dir;
use crate::error::Result;
use crate::manifest::VersionEdit;
use crate::sstable::builder::SsTableBuilder;
use crate::stats::Counters;

impl DbInner {
    /// Flushes the oldest frozen memtable, if any. Returns whether one was flushed.
    pub(crate) fn flush_oldest(&self) -> Result<bool> {
        let _flushing = self.flush_lock.lock();
        let Some(memtable) = self.view().immutables.last().cloned() else {
            return Ok(false);
        };

        let mut added = None;
        if !memtable.is_empty() {
            let id = self.new_file_id();
            let path = dir::table_path(&self.dir, id);
            let mut builder = SsTableBuilder::create(&path, id, &self.opts)?;
            // Only each key's newest version goes to the table. A reader reaches the table only
            // through a view published after this flush, and every reader loads its view before
            // its sequence number (a snapshot takes both under the write lock), so it reads at a
            // seqno that covers every write in this memtable and sees each key's newest version
            // alone. Snapshots and iterators taken earlier keep reading the memtable itself.
            // Compaction drops shadowed versions the same way; doing it here spares the flush
            // and the first compaction the overwritten entries.
            let shadowed =
                memtable.for_each_newest(|key, version, entry| builder.add(key, version, entry))?;
            let meta = builder.finish()?;
            dir::sync_dir(&dir::tables_dir(&self.dir))?;
            Counters::add(&self.counters.flush_bytes_written, meta.file_bytes);
            added = Some((meta, path, shadowed));
        }

        let mut manifest = self.manifest.lock();
        let view = self.view();
        // Everything older than the next memtable in line is now in tables.
        // A memtable switch racing with this flush only adds newer memtables, so the oldest
        // remaining one read here is still the oldest after it.
        let log_number = view
            .immutables
            .iter()
            .rev()
            .find(|m| !Arc::ptr_eq(m, &memtable))
            .map_or(view.active.wal_segment(), |m| m.wal_segment());
        let mut edits = vec![
            VersionEdit::NextFileId(self.next_file_id.load(std::sync::atomic::Ordering::Acquire)),
            VersionEdit::LogNumber(log_number),
            VersionEdit::LastSeqno(memtable.max_seqno()),
        ];
        // The row cache's part of a table-set change (crate::row_cache), under the manifest
        // lock so that no other change interleaves: close the epoch and bring every cached key
        // the new table holds up to date, before the view that has it is installed. Before the
        // manifest edit, so a failure here leaves the manifest and the view agreeing.
        let mut tables_epoch = view.tables_epoch;
        if added.is_some() && self.row_cache.enabled() {
            tables_epoch = self.row_cache.close_epoch();
            let mut room = self.row_cache.room_bytes();
            if room > 0 || !self.row_cache.is_empty() {
                let now_ms = (self.opts.now_ms)();
                // Every key of the memtable, once, with the record the new table holds for
                // it; the walk clones nothing. `view` holds the tables before this flush
                // (no other change interleaves under the manifest lock). Only live values
                // are added: a tombstone or an expired value is rarely read back.
                memtable.for_each_newest(|key, version, entry| {
                    self.row_cache.refresh(key, version, entry, &mut room, || {
                        entry.value.is_some()
                            && (entry.expire_at_ms == 0 || entry.expire_at_ms > now_ms)
                            && !tables_may_beat(&view, key, version)
                    });
                    Ok(())
                })?;
            }
        }
        let mut handle = None;
        if let Some((meta, path, shadowed)) = added {
            debug!(
                table = meta.id,
                bytes = meta.file_bytes,
                records = meta.records,
                shadowed,
                "flushed memtable"
            );
            edits.push(VersionEdit::AddTable {
                level: 0,
                meta: meta.clone(),
            });
            handle = Some(TableHandle::new(meta, path, Arc::clone(&self.table_cache)));
        }
        if let Err(e) = manifest.apply(&edits) {
            self.set_poison(format!("manifest update after a flush failed: {e}"));
            return Err(e);
        }
        self.update_view(|current| {
            let mut tables = (*current.tables).clone();
            if let Some(handle) = handle {
                tables.add(0, handle);
            }
            SuperVersion {
                active: Arc::clone(&current.active),
                immutables: current
                    .immutables
                    .iter()
                    .filter(|m| !Arc::ptr_eq(m, &memtable))
                    .cloned()
                    .collect(),
                tables: Arc::new(tables),
                tables_epoch,
            }
        });
        drop(manifest);
        Counters::incr(&self.counters.flushes);
        self.wal.remove_segments_before(log_number)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Options, Record, Version};

    fn v(hlc: u64) -> Version {
        Version::new(hlc << 16, 1)
    }

    #[test]
    fn a_flush_writes_each_keys_newest_version_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db =
            Db::open(dir.path(), Options::default().with_background_work(false)).expect("open");
        db.put(b"a", Record::value(v(1), "a1")).expect("put");
        db.put(b"a", Record::value(v(3), "a3")).expect("put");
        // Arrives last with an older version: the newest version wins, not the last write.
        db.put(b"a", Record::value(v(2), "a2")).expect("put");
        db.put(b"b", Record::value(v(1), "b1")).expect("put");
        db.put(b"b", Record::tombstone(v(2))).expect("put");
        db.put(b"c", Record::value(v(1), "c1")).expect("put");
        let before = db.snapshot();
        db.put(b"c", Record::value(v(2), "c2")).expect("put");
        db.flush().expect("flush");

        let level0 = &db.stats().levels[0];
        assert_eq!((level0.tables, level0.records), (1, 3));
        let value = |r: Option<Record>| r.and_then(|r| r.value);
        assert_eq!(
            value(db.get(b"a").expect("get")).as_deref(),
            Some(&b"a3"[..])
        );
        assert!(db.get(b"b").expect("get").is_none());
        let b = db
            .get_record(b"b")
            .expect("get")
            .expect("the tombstone is kept");
        assert_eq!((b.version, b.value), (v(2), None));
        assert_eq!(
            value(db.get(b"c").expect("get")).as_deref(),
            Some(&b"c2"[..])
        );
        // A snapshot taken before the overwrite still reads what it saw: it reads the
        // memtable it pinned, not the table.
        assert_eq!(
            value(before.get(b"c").expect("get")).as_deref(),
            Some(&b"c1"[..])
        );
        drop(before);

        // And after a reopen, from the table alone.
        drop(db);
        let db =
            Db::open(dir.path(), Options::default().with_background_work(false)).expect("reopen");
        assert_eq!(
            value(db.get(b"a").expect("get")).as_deref(),
            Some(&b"a3"[..])
        );
        assert!(db.get(b"b").expect("get").is_none());
        assert_eq!(
            value(db.get(b"c").expect("get")).as_deref(),
            Some(&b"c2"[..])
        );
    }
}
