//! The compaction executor: carries out a [`Choice`] made by the policy.
//!
//! New tables are written and fsynced before the manifest edit that swaps them in; the input
//! tables are deleted only when no view references them. Reads never wait for a compaction:
//! they keep using the view they started with. Must never decide what to compact (that is
//! [`crate::compaction`]'s job) nor write a key's versions into two output tables.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::{debug, info};

use crate::compaction::policy::{choose, choose_full, Choice, LevelsView};
use crate::compaction::stream::{ChangedKeys, CompactionStream};
use crate::db::state::{SuperVersion, TableHandle, TableSet};
use crate::db::DbInner;
use crate::dir;
use crate::error::{Error, Result};
use crate::iter::concat::LevelIter;
use crate::iter::merge::MergeIter;
use crate::iter::EntryIter;
use crate::manifest::VersionEdit;
use crate::sstable::builder::SsTableBuilder;
use crate::sstable::meta::TableMeta;
use crate::stats::Counters;
use std::ops::Bound;

use bytes::Bytes;

/// What the row cache must forget when a compaction's tables are installed: the keys whose
/// tables answer the compaction altered (a winner removed or rewritten). Everything else keeps
/// its answer: a compaction keeps each key's winner as it was.
enum Forget {
    /// The compaction changed no key's answer (a table moved down a level).
    Nothing,
    /// These keys' answers changed.
    Keys(Vec<Bytes>),
    /// Too many keys to list, or not known (whole tables dropped without being read).
    Everything,
}

impl DbInner {
    /// Runs one step of background compaction. Returns whether there was anything to do.
    pub(crate) fn compact_step(&self) -> Result<bool> {
        self.decide_and_execute(choose)
    }

    /// Merges every table into the bottom level.
    pub(crate) fn compact_full(&self) -> Result<()> {
        self.decide_and_execute(|levels, opts, _| choose_full(levels, opts))?;
        Ok(())
    }

    /// Asks `decide` what to do with the current tables, then does it, under the compaction
    /// lock.
    fn decide_and_execute(
        &self,
        decide: impl FnOnce(&LevelsView<'_>, &crate::options::Options, u64) -> Choice,
    ) -> Result<bool> {
        let _compacting = self.compaction_lock.lock();
        // "Now" is read before the view: a late, old write the view misses then arrived after
        // `now`, when the winner hiding it was already past `gc_grace` (the contract allows
        // that to resurrect). Read after the view, it could be missing from the purge floor
        // while the winner is dropped.
        let now = (self.opts.now_ms)();
        let view = self.view();
        let metas = view.tables.metas();
        let busy = HashSet::new();
        let levels = LevelsView {
            levels: &metas,
            busy: &busy,
            memtable_min_hlc: view.memtable_min_hlc(),
        };
        let choice = decide(&levels, &self.opts, now);
        drop(view);
        self.execute(choice, now)
    }

    fn execute(&self, choice: Choice, now_ms: u64) -> Result<bool> {
        match choice {
            Choice::DoNothing => Ok(false),
            Choice::Drop { tables } => {
                let edits: Vec<_> = tables
                    .iter()
                    .map(|(level, id)| VersionEdit::RemoveTable {
                        level: *level,
                        id: *id,
                    })
                    .collect();
                self.commit(&edits, &tables, Vec::new(), Forget::Everything)?;
                info!(
                    tables = tables.len(),
                    "dropped tables whose every record had expired"
                );
                Counters::add(&self.counters.expired_tables_dropped, tables.len() as u64);
                Ok(true)
            }
            Choice::Move {
                level,
                id,
                to_level,
            } => {
                let handle = self.view().tables.find(level, id).cloned().ok_or_else(|| {
                    Error::corruption(
                        &self.dir,
                        0,
                        format!("compaction chose table {id} not in level {level}"),
                    )
                })?;
                let edits = [
                    VersionEdit::RemoveTable { level, id },
                    VersionEdit::AddTable {
                        level: to_level,
                        meta: handle.meta.clone(),
                    },
                ];
                self.commit_move(&edits, level, to_level, handle)?;
                Counters::incr(&self.counters.compactions);
                Ok(true)
            }
            Choice::Merge {
                inputs,
                output_level,
                bottommost,
                purge_floor,
            } => {
                self.merge(&inputs, output_level, bottommost, purge_floor, now_ms)?;
                Counters::incr(&self.counters.compactions);
                Ok(true)
            }
        }
    }

    fn merge(
        &self,
        inputs: &[(usize, Vec<u64>)],
        output_level: usize,
        bottommost: bool,
        purge_floor: Option<crate::record::Version>,
        now_ms: u64,
    ) -> Result<()> {
        let view = self.view();
        let mut children: Vec<Box<dyn EntryIter>> = Vec::new();
        let mut removed = Vec::new();
        let mut bytes_in = 0;
        for (level, ids) in inputs {
            let mut metas: Vec<TableMeta> = Vec::with_capacity(ids.len());
            for id in ids {
                let handle = view.tables.find(*level, *id).ok_or_else(|| {
                    Error::corruption(
                        &self.dir,
                        0,
                        format!("compaction chose table {id} not in level {level}"),
                    )
                })?;
                bytes_in += handle.meta.file_bytes;
                metas.push(handle.meta.clone());
                removed.push((*level, *id));
            }
            if *level == 0 {
                for meta in &metas {
                    let table = self.table_cache.get(meta)?;
                    children.push(Box::new(table.iter(Bound::Unbounded, false)?));
                }
            } else {
                metas.sort_by(|a, b| a.min_key.cmp(&b.min_key));
                children.push(Box::new(LevelIter::new(
                    metas,
                    Arc::clone(&self.table_cache),
                    Bound::Unbounded,
                    false,
                )?));
            }
        }
        let mut stream = CompactionStream::new(
            Box::new(MergeIter::new(children)),
            // Snapshots pin the tables they read, so compaction output never serves them and
            // only each key's winner needs to survive.
            u64::MAX,
            now_ms,
            self.opts.gc_grace_ms,
            bottommost,
        )
        .with_purge_floor(purge_floor);
        if self.row_cache.enabled() {
            stream = stream.with_changed_keys();
        }

        let mut outputs: Vec<(TableMeta, std::path::PathBuf)> = Vec::new();
        let mut builder: Option<(SsTableBuilder, std::path::PathBuf)> = None;
        while let Some((key, version, entry, new_key)) = stream.next_entry()? {
            if new_key {
                if let Some((b, _)) = &builder {
                    if b.estimated_bytes() >= self.opts.table_target_bytes {
                        if let Some((b, path)) = builder.take() {
                            outputs.push((b.finish()?, path));
                        }
                    }
                }
            }
            if builder.is_none() {
                let id = self.new_file_id();
                let path = dir::table_path(&self.dir, id);
                builder = Some((SsTableBuilder::create(&path, id, &self.opts)?, path));
            }
            if let Some((b, _)) = builder.as_mut() {
                b.add(&key, version, &entry)?;
            }
        }
        if let Some((b, path)) = builder.take() {
            if b.is_empty() {
                drop(b);
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            } else {
                outputs.push((b.finish()?, path));
            }
        }
        if !outputs.is_empty() {
            dir::sync_dir(&dir::tables_dir(&self.dir))?;
        }
        drop(view);

        let bytes_out: u64 = outputs.iter().map(|(m, _)| m.file_bytes).sum();
        let mut edits: Vec<VersionEdit> = removed
            .iter()
            .map(|(level, id)| VersionEdit::RemoveTable {
                level: *level,
                id: *id,
            })
            .collect();
        edits.push(VersionEdit::NextFileId(
            self.next_file_id.load(std::sync::atomic::Ordering::Acquire),
        ));
        let mut added = Vec::with_capacity(outputs.len());
        for (meta, path) in outputs {
            edits.push(VersionEdit::AddTable {
                level: output_level,
                meta: meta.clone(),
            });
            added.push((
                output_level,
                TableHandle::new(meta, path, Arc::clone(&self.table_cache)),
            ));
        }
        let forget = match stream.changed() {
            ChangedKeys::These(keys) if keys.is_empty() => Forget::Nothing,
            ChangedKeys::These(keys) => Forget::Keys(keys),
            ChangedKeys::Many => Forget::Everything,
        };
        self.commit(&edits, &removed, added, forget)?;
        Counters::add(&self.counters.compaction_bytes_in, bytes_in);
        Counters::add(&self.counters.compaction_bytes_out, bytes_out);
        debug!(
            inputs = removed.len(),
            output_level,
            bytes_in,
            bytes_out,
            stats = ?stream.stats(),
            "compaction merged tables"
        );
        Ok(())
    }

    /// Records the edits in the manifest, then swaps the tables in the view.
    fn commit(
        &self,
        edits: &[VersionEdit],
        removed: &[(usize, u64)],
        added: Vec<(usize, Arc<TableHandle>)>,
        forget: Forget,
    ) -> Result<()> {
        self.commit_tables(edits, "a compaction", forget, |tables| {
            let mut next = tables.without(removed);
            for (level, handle) in added {
                next.add(level, handle);
            }
            next
        })
    }

    /// Moves a table between levels without rewriting it. The same handle moves, so views
    /// from before and after the move share it and the file is deleted only when the last of
    /// them lets go.
    fn commit_move(
        &self,
        edits: &[VersionEdit],
        level: usize,
        to_level: usize,
        handle: Arc<TableHandle>,
    ) -> Result<()> {
        let id = handle.meta.id;
        self.commit_tables(edits, "a table move", Forget::Nothing, |tables| {
            let mut next = tables.clone();
            if let Some(l) = next.levels.get_mut(level) {
                l.retain(|t| t.meta.id != id);
            }
            next.add(to_level, handle);
            next
        })
    }

    /// Applies `edits` to the manifest (poisoning the engine if that fails: the view and the
    /// manifest must not disagree), then installs `change(tables)` as the view's tables.
    ///
    /// The row cache forgets what `forget` names first, under the manifest lock so that no
    /// other table-set change interleaves (the protocol in [`crate::row_cache`]).
    fn commit_tables(
        &self,
        edits: &[VersionEdit],
        what: &str,
        forget: Forget,
        change: impl FnOnce(&TableSet) -> TableSet,
    ) -> Result<()> {
        let mut manifest = self.manifest.lock();
        let tables_epoch = match forget {
            _ if !self.row_cache.enabled() => None,
            Forget::Nothing => None,
            Forget::Keys(keys) => {
                let epoch = self.row_cache.close_epoch();
                for key in &keys {
                    self.row_cache.remove(key);
                }
                Some(epoch)
            }
            Forget::Everything => {
                let epoch = self.row_cache.close_epoch();
                self.row_cache.clear();
                Some(epoch)
            }
        };
        if let Err(e) = manifest.apply(edits) {
            self.set_poison(format!("manifest update after {what} failed: {e}"));
            return Err(e);
        }
        self.update_view(|current| SuperVersion {
            active: Arc::clone(&current.active),
            immutables: current.immutables.clone(),
            tables: Arc::new(change(&current.tables)),
            tables_epoch: tables_epoch.unwrap_or(current.tables_epoch),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use crate::{Db, Options, Record, Version};

    fn clocked_options(clock: &Arc<AtomicU64>) -> Options {
        let clock = Arc::clone(clock);
        Options::default()
            .with_background_work(false)
            .with_gc_grace_ms(0)
            .with_now_ms(Arc::new(move || clock.load(Ordering::SeqCst)))
    }

    #[test]
    fn a_table_whose_records_all_expired_is_dropped_without_a_merge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(AtomicU64::new(1_000));
        let db = Db::open(dir.path(), clocked_options(&clock)).expect("open");
        for i in 0..100u64 {
            let key = format!("session:{i:03}");
            db.put(
                key.as_bytes(),
                Record::expiring(Version::new(1 << 16, 1), "token", 5_000),
            )
            .expect("put");
        }
        db.flush().expect("flush");
        for i in 0..100u64 {
            let key = format!("user:{i:03}");
            db.put(
                key.as_bytes(),
                Record::value(Version::new(2 << 16, 1), "profile"),
            )
            .expect("put");
        }
        db.flush().expect("flush");
        assert_eq!(db.stats().levels[0].tables, 2);

        clock.store(6_000, Ordering::SeqCst);
        assert!(db.inner.compact_step().expect("compaction step"));
        let stats = db.stats();
        assert_eq!(stats.expired_tables_dropped, 1);
        assert_eq!(
            stats.compaction_bytes_in, 0,
            "the table was dropped, not read"
        );
        assert_eq!(stats.levels.iter().map(|l| l.tables).sum::<usize>(), 1);
        assert!(db.get(b"session:007").expect("get").is_none());
        assert!(db.get_record(b"session:007").expect("get").is_none());
        assert!(db.get(b"user:007").expect("get").is_some());
    }

    #[test]
    fn an_expired_table_that_shadows_older_data_is_not_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(AtomicU64::new(1_000));
        let db = Db::open(dir.path(), clocked_options(&clock)).expect("open");
        db.put(b"k", Record::value(Version::new(1 << 16, 1), "old"))
            .expect("put");
        db.flush().expect("flush");
        db.put(
            b"k",
            Record::expiring(Version::new(2 << 16, 1), "new", 5_000),
        )
        .expect("put");
        db.flush().expect("flush");

        clock.store(6_000, Ordering::SeqCst);
        while db.inner.compact_step().expect("compaction step") {}
        assert_eq!(db.stats().expired_tables_dropped, 0);
        // Dropping the newer, expired version would have resurrected "old".
        assert!(db.get(b"k").expect("get").is_none());
    }
}
