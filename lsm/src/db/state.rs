//! The engine's current shape: which memtables and which tables a read must consult.
//!
//! Owns [`SuperVersion`] (an immutable, reference-counted view swapped atomically on every
//! memtable switch, flush and compaction), [`TableSet`] and [`TableHandle`]. A reader clones the
//! current `Arc<SuperVersion>` and works from it without locks; whatever it references stays
//! alive (and on disk) until the reader drops it. Must never be mutated in place.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::warn;

use crate::cache::TableCache;
use crate::error::Result;
use crate::memtable::Memtable;
use crate::sstable::meta::TableMeta;
use crate::sstable::SsTable;

/// One SSTable as a member of the table set. When a compaction or an expiry drop removes the
/// table, it is marked obsolete; the file is deleted when the last view referencing it goes.
pub(crate) struct TableHandle {
    pub(crate) meta: TableMeta,
    path: PathBuf,
    obsolete: AtomicBool,
    table_cache: Arc<TableCache>,
}

impl TableHandle {
    pub(crate) fn new(meta: TableMeta, path: PathBuf, table_cache: Arc<TableCache>) -> Arc<Self> {
        Arc::new(Self {
            meta,
            path,
            obsolete: AtomicBool::new(false),
            table_cache,
        })
    }

    /// The open table, from the table cache (opening the file on a miss). Every read goes
    /// through the cache, not a reader remembered here: the cache's eviction bounds open files
    /// and must see which tables are read (a reader remembered outside it looked unused and was
    /// evicted first once there were more tables than `max_open_tables`).
    ///
    /// # Errors
    /// As [`TableCache::get`].
    pub(crate) fn table(&self) -> Result<Arc<SsTable>> {
        self.table_cache.get(&self.meta)
    }

    /// Marks the table for deletion once no view references it.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }
}

impl Drop for TableHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            self.table_cache.evict(self.meta.id);
            if let Err(e) = std::fs::remove_file(&self.path) {
                // The manifest no longer lists it, so the next open removes it as an orphan.
                warn!(path = %self.path.display(), error = %e, "could not remove obsolete table");
            }
        }
    }
}

/// The tables of every level. L0 is newest first and may overlap; L1.. are sorted by key and
/// do not overlap.
#[derive(Clone, Default)]
pub(crate) struct TableSet {
    pub(crate) levels: Vec<Vec<Arc<TableHandle>>>,
}

impl TableSet {
    /// Plain metadata per level, for the compaction policy.
    pub(crate) fn metas(&self) -> Vec<Vec<TableMeta>> {
        self.levels
            .iter()
            .map(|l| l.iter().map(|t| t.meta.clone()).collect())
            .collect()
    }

    /// A copy without the given tables, which are marked obsolete.
    pub(crate) fn without(&self, removed: &[(usize, u64)]) -> TableSet {
        let mut next = self.clone();
        for (level, id) in removed {
            if let Some(tables) = next.levels.get_mut(*level) {
                tables.retain(|t| {
                    if t.meta.id == *id {
                        t.mark_obsolete();
                        false
                    } else {
                        true
                    }
                });
            }
        }
        next
    }

    /// Adds a table to `level`: at the front of L0 (newest), in key order elsewhere.
    pub(crate) fn add(&mut self, level: usize, table: Arc<TableHandle>) {
        while self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        let tables = &mut self.levels[level];
        if level == 0 {
            tables.insert(0, table);
        } else {
            let at = tables.partition_point(|t| t.meta.min_key < table.meta.min_key);
            tables.insert(at, table);
        }
    }

    /// Finds a table by id.
    pub(crate) fn find(&self, level: usize, id: u64) -> Option<&Arc<TableHandle>> {
        self.levels.get(level)?.iter().find(|t| t.meta.id == id)
    }
}

/// What reads see: the active memtable, the frozen ones waiting for flush (newest first) and
/// the tables.
pub(crate) struct SuperVersion {
    pub(crate) active: Arc<Memtable>,
    pub(crate) immutables: Vec<Arc<Memtable>>,
    pub(crate) tables: Arc<TableSet>,
    /// The row cache's tables epoch when `tables` was installed: answers computed from this
    /// view may be cached only while the epoch has not moved on (see [`crate::row_cache`]).
    pub(crate) tables_epoch: u64,
}

impl SuperVersion {
    /// Every memtable, newest first.
    pub(crate) fn memtables(&self) -> impl Iterator<Item = &Arc<Memtable>> {
        std::iter::once(&self.active).chain(self.immutables.iter())
    }

    /// Lowest HLC of any memtable entry, if any memtable holds data.
    pub(crate) fn memtable_min_hlc(&self) -> Option<u64> {
        self.memtables()
            .filter(|m| !m.is_empty())
            .map(|m| m.min_hlc())
            .min()
    }
}
