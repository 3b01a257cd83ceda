//! Flushing: a frozen memtable becomes an L0 table, and the WAL segments it covered go.
//!
//! The order is what makes a crash at any point safe: the table is written and fsynced, then
//! the manifest records it together with the new WAL low-water mark, and only then are the old
//! segments deleted. A crash before the manifest edit leaves an orphan table (removed at open)
//! and a WAL that still replays; a crash after it leaves segments that replay is told to skip.
//! Must never flush memtables out of order (the WAL low-water mark would skip unflushed data).

use std::ops::Bound;
use std::sync::Arc;

use tracing::debug;

use crate::db::state::{SuperVersion, TableHandle};
use crate::db::DbInner;
use crate::dir;
use crate::error::Result;
use crate::iter::EntryIter;
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
            let mut iter = memtable.iter(Bound::Unbounded);
            while let Some((key, version, entry)) = iter.current() {
                builder.add(key, version, entry)?;
                iter.advance()?;
            }
            let meta = builder.finish()?;
            dir::sync_dir(&dir::tables_dir(&self.dir))?;
            Counters::add(&self.counters.flush_bytes_written, meta.file_bytes);
            added = Some((meta, path));
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
        // lock so that no other change interleaves: close the epoch and forget every key the
        // new table holds, before the view that has it is installed. Before the manifest edit,
        // so a failure here leaves the manifest and the view agreeing.
        let mut tables_epoch = view.tables_epoch;
        if added.is_some() && self.row_cache.enabled() {
            tables_epoch = self.row_cache.close_epoch();
            if !self.row_cache.is_empty() {
                let mut iter = memtable.iter(Bound::Unbounded);
                while let Some((key, _, _)) = iter.current() {
                    self.row_cache.remove(key);
                    iter.advance()?;
                }
            }
        }
        let mut handle = None;
        if let Some((meta, path)) = added {
            debug!(
                table = meta.id,
                bytes = meta.file_bytes,
                records = meta.records,
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
