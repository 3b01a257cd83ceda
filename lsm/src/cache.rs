//! Caches: the block cache (a byte budget of decoded data blocks) and the table cache (a
//! bounded set of open SSTables).
//!
//! Owns [`BlockCache`] and [`TableCache`]. Both are shared by every reader and never block one
//! reader on another's disk read, except that concurrent opens of the same table wait for one
//! open. Must never decide what data is visible: they only hold verified, immutable things
//! (decoded blocks, opened tables) keyed by identities that are never reused (table ids).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::dir::table_path;
use crate::error::{Error, Result};
use crate::sstable::block::Block;
use crate::sstable::meta::TableMeta;
use crate::sstable::SsTable;
use crate::stats::Counters;

/// Bookkeeping bytes charged per cached block on top of its data, so that a budget full of
/// tiny blocks still bounds memory.
const BLOCK_OVERHEAD_BYTES: u64 = 64;

/// Typical block size, used only to size the cache's tables up front.
const TYPICAL_BLOCK_BYTES: usize = 4 << 10;

/// Charges a block its size.
#[derive(Clone, Copy, Debug, Default)]
struct BlockWeighter;

impl Weighter<(u64, u64), Block> for BlockWeighter {
    fn weight(&self, _key: &(u64, u64), block: &Block) -> u64 {
        block.size() as u64 + BLOCK_OVERHEAD_BYTES
    }
}

/// Decoded data blocks keyed by (table id, block offset), within a byte budget.
///
/// Blocks of deleted tables are not removed eagerly: their ids are never reused, so the entries
/// are simply never hit again and age out.
pub(crate) struct BlockCache {
    /// `None` when the budget is 0: every lookup misses and nothing is kept.
    cache: Option<Cache<(u64, u64), Block, BlockWeighter>>,
    counters: Arc<Counters>,
}

impl BlockCache {
    /// A cache holding up to `capacity_bytes` of blocks (0 disables it). Hits and misses are
    /// counted in `counters`.
    pub(crate) fn new(capacity_bytes: usize, counters: Arc<Counters>) -> Self {
        let cache = (capacity_bytes > 0).then(|| {
            let items = (capacity_bytes / TYPICAL_BLOCK_BYTES).max(16);
            Cache::with_weighter(items, capacity_bytes as u64, BlockWeighter)
        });
        Self { cache, counters }
    }

    /// The block of table `table_id` at `offset`, if cached. Counts a hit or a miss.
    pub(crate) fn get(&self, table_id: u64, offset: u64) -> Option<Block> {
        let found = self.cache.as_ref().and_then(|c| c.get(&(table_id, offset)));
        let counter = if found.is_some() {
            &self.counters.block_cache_hits
        } else {
            &self.counters.block_cache_misses
        };
        Counters::incr(counter);
        found
    }

    /// Caches the block of table `table_id` at `offset`.
    pub(crate) fn insert(&self, table_id: u64, offset: u64, block: Block) {
        if let Some(c) = &self.cache {
            c.insert((table_id, offset), block);
        }
    }

    /// Bytes currently held (weights included).
    pub(crate) fn used_bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}

/// Open SSTables keyed by id, at most `capacity` of them.
///
/// A table stays usable after eviction by whoever holds its `Arc` (an iterator, a read in
/// flight); eviction only drops the cache's reference, and the file closes with the last one.
pub(crate) struct TableCache {
    dir: PathBuf,
    tables: Cache<u64, Arc<SsTable>>,
    block_cache: Arc<BlockCache>,
    counters: Arc<Counters>,
}

impl TableCache {
    /// A cache of at most `capacity` open tables of the engine directory `dir`.
    pub(crate) fn new(
        dir: &Path,
        capacity: usize,
        block_cache: Arc<BlockCache>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            tables: Cache::new(capacity.max(1)),
            block_cache,
            counters,
        }
    }

    /// The open table described by `meta`, opening `<dir>/tables/{id:06}.sst` on a miss.
    ///
    /// # Errors
    /// [`Error::MissingFile`] if the file is gone, [`Error::Corruption`] /
    /// [`Error::ChecksumMismatch`] if it is damaged or does not match `meta`, [`Error::Io`] if
    /// it cannot be read.
    pub(crate) fn get(&self, meta: &TableMeta) -> Result<Arc<SsTable>> {
        self.tables.get_or_insert_with(&meta.id, || {
            let path = table_path(&self.dir, meta.id);
            let table = SsTable::open(
                &path,
                meta.id,
                Arc::clone(&self.block_cache),
                Arc::clone(&self.counters),
            )?;
            if table.meta().file_bytes != meta.file_bytes {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "table is {} bytes but the manifest expects {}",
                        table.meta().file_bytes,
                        meta.file_bytes
                    ),
                ));
            }
            Ok(Arc::new(table))
        })
    }

    /// Drops the cached handle of table `id` (after the table is deleted).
    pub(crate) fn evict(&self, id: u64) {
        self.tables.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::options::Options;
    use crate::record::{Entry, Version};
    use crate::sstable::builder::SsTableBuilder;
    use crate::sstable::LookupKey;

    fn block(len: usize) -> Block {
        let mut b = crate::sstable::block::BlockBuilder::new(16);
        let e = Entry {
            seqno: 1,
            expire_at_ms: 0,
            value: Some(Bytes::from(vec![1u8; len])),
        };
        b.add(b"k", Version::new(1, 0), &e);
        Block::decode(Bytes::copy_from_slice(b.finish())).expect("valid block")
    }

    #[test]
    fn block_cache_counts_and_respects_its_budget() {
        let counters = Arc::new(Counters::default());
        let cache = BlockCache::new(1 << 20, Arc::clone(&counters));
        assert!(cache.get(1, 0).is_none());
        cache.insert(1, 0, block(100));
        assert!(cache.get(1, 0).is_some());
        assert_eq!(
            counters
                .block_cache_hits
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            counters
                .block_cache_misses
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        for i in 0..1000 {
            cache.insert(2, i, block(4000));
        }
        assert!(cache.used_bytes() <= 1 << 20);

        let off = BlockCache::new(0, counters);
        off.insert(1, 0, block(10));
        assert!(off.get(1, 0).is_none());
    }

    #[test]
    fn table_cache_opens_caches_evicts_and_reports_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("tables")).expect("mkdir");
        let counters = Arc::new(Counters::default());
        let blocks = Arc::new(BlockCache::new(1 << 20, Arc::clone(&counters)));
        let cache = TableCache::new(dir.path(), 8, blocks, counters);

        let path = table_path(dir.path(), 7);
        let mut b = SsTableBuilder::create(&path, 7, &Options::default()).expect("create");
        let e = Entry {
            seqno: 1,
            expire_at_ms: 0,
            value: Some(Bytes::from_static(b"v")),
        };
        b.add(b"k", Version::new(5, 0), &e).expect("add");
        let meta = b.finish().expect("finish");

        let t1 = cache.get(&meta).expect("opens");
        let t2 = cache.get(&meta).expect("cached");
        assert!(Arc::ptr_eq(&t1, &t2));
        assert_eq!(
            t1.get(&LookupKey::new(b"k"), u64::MAX)
                .expect("reads")
                .map(|(v, _)| v),
            Some(Version::new(5, 0))
        );

        let wrong = TableMeta {
            id: 8,
            ..meta.clone()
        };
        assert!(matches!(cache.get(&wrong), Err(Error::MissingFile { .. })));

        std::fs::remove_file(&path).expect("rm");
        cache.evict(7);
        assert!(matches!(cache.get(&meta), Err(Error::MissingFile { .. })));
        // A table still held keeps working after eviction and deletion of its file.
        assert!(t1
            .get(&LookupKey::new(b"k"), u64::MAX)
            .expect("reads")
            .is_some());
    }
}
