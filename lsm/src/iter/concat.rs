//! Concatenation of the sorted, non-overlapping tables of one level, opened lazily.
//!
//! Owns [`LevelIter`]. A level (L1 and below) is a run of tables sorted by key with disjoint
//! key ranges and every version of a key in one table, so walking it is walking one table
//! after another. Tables are opened through the [`TableCache`] only when the cursor reaches
//! them, so a short range read touches one or two tables. Must never be used for L0, whose
//! tables overlap (those are merged by [`super::merge::MergeIter`]).

use std::ops::Bound;
use std::sync::Arc;

use crate::cache::TableCache;
use crate::error::Result;
use crate::iter::EntryIter;
use crate::record::{Entry, Version};
use crate::sstable::meta::TableMeta;
use crate::sstable::SsTableIter;

/// An [`EntryIter`] over a level's tables in key order.
pub(crate) struct LevelIter {
    tables: Vec<TableMeta>,
    table_cache: Arc<TableCache>,
    fill_cache: bool,
    /// Index in `tables` of the table `current` walks.
    next_table: usize,
    /// `None` once exhausted (or after an error).
    current: Option<SsTableIter>,
}

impl LevelIter {
    /// Iterates `tables` (sorted by `min_key`, non-overlapping) from the first entry whose user
    /// key satisfies `start`. `fill_cache = false` for compaction reads.
    ///
    /// # Errors
    /// Errors opening or reading the first table reached.
    pub(crate) fn new(
        tables: Vec<TableMeta>,
        table_cache: Arc<TableCache>,
        start: Bound<&[u8]>,
        fill_cache: bool,
    ) -> Result<Self> {
        // First table that can hold a key satisfying `start`: its max key must satisfy it.
        let first = match start {
            Bound::Unbounded => 0,
            Bound::Included(k) => tables.partition_point(|t| t.max_key.as_ref() < k),
            Bound::Excluded(k) => tables.partition_point(|t| t.max_key.as_ref() <= k),
        };
        let mut it = Self {
            tables,
            table_cache,
            fill_cache,
            next_table: first,
            current: None,
        };
        if let Some(meta) = it.tables.get(first) {
            let table = it.table_cache.get(meta)?;
            it.current = Some(table.iter(start, fill_cache)?);
            it.next_table = first + 1;
            it.skip_exhausted_tables()?;
        }
        Ok(it)
    }

    /// While the current table is exhausted, opens the next one at its first entry.
    fn skip_exhausted_tables(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| c.current().is_none()) {
            let Some(meta) = self.tables.get(self.next_table) else {
                self.current = None;
                return Ok(());
            };
            let table = self.table_cache.get(meta)?;
            self.current = Some(table.iter(Bound::Unbounded, self.fill_cache)?);
            self.next_table += 1;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.advance()?;
            self.skip_exhausted_tables()?;
        }
        Ok(())
    }
}

impl EntryIter for LevelIter {
    fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.current.as_ref()?.current()
    }

    fn advance(&mut self) -> Result<()> {
        let result = self.step();
        if result.is_err() {
            self.current = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::cache::BlockCache;
    use crate::dir::table_path;
    use crate::error::Error;
    use crate::options::Options;
    use crate::sstable::builder::SsTableBuilder;
    use crate::stats::Counters;

    /// Writes table `id` with keys `from..to` ("key0000" style), two versions each.
    fn write(dir: &Path, id: u64, from: u32, to: u32) -> TableMeta {
        let opts = Options {
            block_bytes: 256,
            ..Options::default()
        };
        let mut b = SsTableBuilder::create(&table_path(dir, id), id, &opts).expect("create");
        for i in from..to {
            for hlc in [2u64, 1] {
                let e = Entry {
                    seqno: u64::from(i),
                    expire_at_ms: 0,
                    value: Some(Bytes::from(format!("{i}-{hlc}"))),
                };
                b.add(format!("key{i:04}").as_bytes(), Version::new(hlc, 0), &e)
                    .expect("add");
            }
        }
        b.finish().expect("finish")
    }

    fn setup() -> (
        tempfile::TempDir,
        Vec<TableMeta>,
        Arc<TableCache>,
        Arc<Counters>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("tables")).expect("mkdir");
        let metas = vec![
            write(dir.path(), 1, 0, 100),
            write(dir.path(), 2, 100, 250),
            write(dir.path(), 3, 300, 400),
        ];
        let counters = Arc::new(Counters::default());
        let blocks = Arc::new(BlockCache::new(1 << 20, Arc::clone(&counters)));
        let cache = Arc::new(TableCache::new(
            dir.path(),
            8,
            blocks,
            Arc::clone(&counters),
        ));
        (dir, metas, cache, counters)
    }

    fn keys(it: &mut LevelIter) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((k, v, _)) = it.current() {
            out.push(format!("{}@{}", String::from_utf8_lossy(k), v.hlc));
            it.advance().expect("advance");
        }
        out
    }

    fn expected(range: impl Iterator<Item = u32>) -> Vec<String> {
        range
            .filter(|i| !(250..300).contains(i))
            .flat_map(|i| [format!("key{i:04}@2"), format!("key{i:04}@1")])
            .collect()
    }

    #[test]
    fn walks_tables_in_order_from_any_start() {
        let (_dir, metas, cache, _) = setup();
        let mut all = LevelIter::new(metas.clone(), Arc::clone(&cache), Bound::Unbounded, true)
            .expect("iter");
        assert_eq!(keys(&mut all), expected(0..400));

        let cases: Vec<(Bound<&[u8]>, Vec<String>)> = vec![
            (Bound::Included(b"key0099"), expected(99..400)),
            (Bound::Excluded(b"key0099"), expected(100..400)),
            (Bound::Excluded(b"key0249"), expected(300..400)),
            (Bound::Included(b"key0260"), expected(300..400)),
            (Bound::Included(b"key0399"), expected(399..400)),
            (Bound::Excluded(b"key0399"), Vec::new()),
            (Bound::Included(b"a"), expected(0..400)),
        ];
        for (start, want) in cases {
            let mut it =
                LevelIter::new(metas.clone(), Arc::clone(&cache), start, false).expect("iter");
            assert_eq!(keys(&mut it), want, "{start:?}");
        }
        let mut none = LevelIter::new(Vec::new(), cache, Bound::Unbounded, true).expect("iter");
        assert!(none.current().is_none());
        none.advance()
            .expect("advancing an exhausted iterator is a no-op");
    }

    #[test]
    fn opens_tables_only_when_reached() {
        let (dir, metas, cache, _) = setup();
        // Table 3 is gone: a read that stops before it never notices.
        std::fs::remove_file(table_path(dir.path(), 3)).expect("rm");
        let mut it = LevelIter::new(metas, cache, Bound::Included(b"key0010"), true).expect("iter");
        let mut n = 0;
        let err = loop {
            match it.current() {
                Some(_) => n += 1,
                None => break None,
            }
            if let Err(e) = it.advance() {
                break Some(e);
            }
        };
        assert_eq!(n, 2 * (250 - 10));
        assert!(matches!(err, Some(Error::MissingFile { .. })));
        assert!(it.current().is_none(), "an error exhausts the iterator");
    }
}
