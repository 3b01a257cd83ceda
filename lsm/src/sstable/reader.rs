//! Reading an SSTable: opening and checking it, point reads, and iteration.
//!
//! Owns [`SsTable`] (an open table: file handle, decoded index, bloom filter, meta) and
//! [`SsTableIter`]. Reads use positioned I/O (`read_at`) so concurrent readers share one file
//! handle without a lock. Must never return data it has not verified: the footer, meta, index
//! and bloom blocks are checked on open, every data block when read, and every length from disk
//! is bounded by the file's size before it sizes an allocation.

use std::fs::File;
use std::io::ErrorKind;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::BlockCache;
use crate::coding::Decoder;
use crate::error::{Error, Result};
use crate::iter::EntryIter;
use crate::record::{Entry, Version};
use crate::sstable::block::{Block, BlockError, BlockIter};
use crate::sstable::bloom::{hash_key, Bloom};
use crate::sstable::format::{decode_block, BlockHandle, Footer, BLOCK_TRAILER_LEN, FOOTER_LEN};
use crate::sstable::meta::TableMeta;
use crate::stats::Counters;

mod index;

use index::Index;

/// Sorts before every version of a user key.
const NEWEST: Version = Version::new(u64::MAX, u32::MAX);
/// Sorts after every version of a user key.
const OLDEST: Version = Version::new(0, 0);

/// Size of the sequential reads of a cache-bypassing (compaction) scan.
const READAHEAD_BYTES: usize = 256 << 10;

/// Largest key buffer a thread keeps between point reads; a larger one (a huge key) is dropped.
const KEPT_KEY_BUFFER_BYTES: usize = 4 << 10;

thread_local! {
    /// The key buffer of this thread's last point read, reused by the next one.
    static KEY_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A user key prepared once for point reads in many tables: a read may probe a table per
/// level and several in level 0, and each probe's bloom filter wants the same hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LookupKey<'a> {
    user_key: &'a [u8],
    /// [`hash_key`] of `user_key`.
    hash: u64,
}

impl<'a> LookupKey<'a> {
    /// Hashes `user_key` for the tables' bloom filters.
    pub(crate) fn new(user_key: &'a [u8]) -> Self {
        Self {
            user_key,
            hash: hash_key(user_key),
        }
    }

    /// [`hash_key`] of the key (the memtables' point indexes use the same hash).
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }
}

/// An open, verified SSTable.
pub(crate) struct SsTable {
    path: PathBuf,
    id: u64,
    file: File,
    meta: TableMeta,
    index: Index,
    /// End of the data blocks (the index block's offset).
    data_end: u64,
    bloom: Option<Bloom>,
    block_cache: Arc<BlockCache>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsTable")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("blocks", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl SsTable {
    /// Opens table `id` at `path`: reads and checks the footer, meta, index and bloom blocks.
    ///
    /// # Errors
    /// [`Error::MissingFile`] if the file does not exist, [`Error::Io`] if it cannot be read,
    /// [`Error::ChecksumMismatch`] / [`Error::Corruption`] if it is damaged, truncated, not an
    /// SSTable, or belongs to another id.
    pub(crate) fn open(
        path: &Path,
        id: u64,
        block_cache: Arc<BlockCache>,
        counters: Arc<Counters>,
    ) -> Result<SsTable> {
        let file = File::open(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::MissingFile {
                path: path.to_path_buf(),
            },
            _ => Error::io("open", path, e),
        })?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        if file_len < FOOTER_LEN as u64 {
            return Err(Error::corruption(
                path,
                0,
                format!("file of {file_len} bytes is shorter than a table footer"),
            ));
        }
        let mut footer_buf = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer_buf, file_len - FOOTER_LEN as u64)
            .map_err(|e| Error::io("read", path, e))?;
        let footer = Footer::decode(path, file_len, &footer_buf)?;

        let meta_bytes = read_block(&file, path, footer.meta)?;
        let mut d = Decoder::new(&meta_bytes);
        let meta = match TableMeta::decode(&mut d) {
            Some(meta) if d.is_empty() => meta,
            _ => {
                return Err(Error::corruption(
                    path,
                    footer.meta.offset,
                    "malformed meta block",
                ))
            }
        };
        if meta.id != id {
            return Err(Error::corruption(
                path,
                footer.meta.offset,
                format!("file holds table {} where table {id} was expected", meta.id),
            ));
        }
        if meta.file_bytes != file_len {
            return Err(Error::corruption(
                path,
                footer.meta.offset,
                format!(
                    "table records {} bytes but the file has {file_len}",
                    meta.file_bytes
                ),
            ));
        }

        let index_bytes = read_block(&file, path, footer.index)?;
        let index = Index::decode(path, footer.index.offset, index_bytes, footer.index.offset)?;
        if (index.len() == 0) != (meta.records == 0) {
            return Err(Error::corruption(
                path,
                footer.index.offset,
                "index and meta disagree on whether the table is empty",
            ));
        }
        let bloom = if footer.bloom.len == 0 {
            None
        } else {
            let bytes = read_block(&file, path, footer.bloom)?;
            let bloom = Bloom::decode(bytes).ok_or_else(|| {
                Error::corruption(path, footer.bloom.offset, "malformed bloom filter")
            })?;
            Some(bloom)
        };

        Ok(Self {
            path: path.to_path_buf(),
            id,
            file,
            meta,
            index,
            data_end: footer.index.offset,
            bloom,
            block_cache,
            counters,
        })
    }

    /// The table's summary.
    pub(crate) fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// The highest version of `key` whose seqno is `<= snapshot_seqno`, with its entry
    /// (tombstones and expired values included: resolving them is the caller's job).
    ///
    /// # Errors
    /// [`Error::ChecksumMismatch`] / [`Error::Corruption`] if a block read is damaged,
    /// [`Error::Io`] if it cannot be read.
    pub(crate) fn get(
        &self,
        key: &LookupKey<'_>,
        snapshot_seqno: u64,
    ) -> Result<Option<(Version, Entry)>> {
        let user_key = key.user_key;
        if let Some(bloom) = &self.bloom {
            if !bloom.may_contain(key.hash) {
                Counters::incr(&self.counters.bloom_negatives);
                return Ok(None);
            }
            Counters::incr(&self.counters.bloom_positives);
        }
        let mut iter: Option<BlockIter> = None;
        let mut key_seen = false;
        let found = self.get_in_blocks(user_key, snapshot_seqno, &mut iter, &mut key_seen);
        if let Some(it) = iter {
            let buf = it.into_key_buffer();
            if buf.capacity() <= KEPT_KEY_BUFFER_BYTES {
                KEY_BUFFER.with(|cell| cell.set(buf));
            }
        }
        let found = found?;
        if !key_seen && self.bloom.is_some() {
            Counters::incr(&self.counters.bloom_false_positives);
        }
        Ok(found)
    }

    /// [`SsTable::get`] past the bloom filter; `iter` is left for the caller to recycle its key
    /// buffer, and `key_seen` says whether any version of the key was found (visible or not).
    fn get_in_blocks(
        &self,
        user_key: &[u8],
        snapshot_seqno: u64,
        iter: &mut Option<BlockIter>,
        key_seen: &mut bool,
    ) -> Result<Option<(Version, Entry)>> {
        let mut i = self.index.find(user_key, NEWEST);
        // Versions of one key may continue into the following blocks.
        'blocks: while i < self.index.len() {
            let handle = self.index.handle(i);
            let block = self.data_block(handle, true)?;
            let positioned = match iter.as_mut() {
                None => {
                    let buf = KEY_BUFFER.with(std::cell::Cell::take);
                    let it = iter.insert(BlockIter::with_key_buffer(block, buf));
                    it.seek(user_key, NEWEST).map(|()| it)
                }
                Some(it) => {
                    it.reset(block);
                    it.seek_to_first().map(|()| it)
                }
            };
            let it = positioned.map_err(|e| self.block_error(handle, e))?;
            while let Some((k, _, entry)) = it.current() {
                if k != user_key {
                    break 'blocks;
                }
                *key_seen = true;
                if entry.seqno <= snapshot_seqno {
                    return Ok(it.take_current());
                }
                it.next().map_err(|e| self.block_error(handle, e))?;
            }
            i += 1;
        }
        Ok(None)
    }

    /// An iterator positioned at the first entry whose user key satisfies `start`
    /// (`Included(k)`: `>= k`; `Excluded(k)`: `> k`, skipping every version of `k`).
    /// `fill_cache = false` (compaction) reads blocks without caching them.
    ///
    /// # Errors
    /// As [`SsTable::get`].
    pub(crate) fn iter(
        self: &Arc<Self>,
        start: Bound<&[u8]>,
        fill_cache: bool,
    ) -> Result<SsTableIter> {
        let mut it = SsTableIter {
            table: Arc::clone(self),
            block: 0,
            iter: None,
            fill_cache,
            window: None,
        };
        let (first, target) = match start {
            Bound::Unbounded => (0, None),
            Bound::Included(k) => (self.index.find(k, NEWEST), Some((k, NEWEST))),
            Bound::Excluded(k) => (self.index.find(k, OLDEST), Some((k, OLDEST))),
        };
        it.block = first;
        if first < self.index.len() {
            let handle = self.index.handle(first);
            let block = it.load(handle)?;
            let mut bi = BlockIter::new(block);
            match target {
                Some((k, v)) => bi.seek(k, v),
                None => bi.seek_to_first(),
            }
            .map_err(|e| self.block_error(handle, e))?;
            it.iter = Some(bi);
            it.skip_exhausted_blocks()?;
        }
        if let Bound::Excluded(k) = start {
            while it.current().is_some_and(|(key, _, _)| key == k) {
                it.advance()?;
            }
        }
        Ok(it)
    }

    /// The decoded data block at `handle`, from the cache or the file.
    fn data_block(&self, handle: BlockHandle, fill_cache: bool) -> Result<Block> {
        if let Some(block) = self.block_cache.get(self.id, handle.offset) {
            return Ok(block);
        }
        let framed = read_exact(
            &self.file,
            &self.path,
            handle.offset,
            framed_len(&self.path, handle)?,
        )?;
        let block = self.decode_data_block(handle, framed)?;
        if fill_cache {
            self.block_cache
                .insert(self.id, handle.offset, block.clone());
        }
        Ok(block)
    }

    /// The decoded data block at `handle` for a scan that bypasses the cache: served from the
    /// cache if it is there, else from `window`, a large sequential read shared by the blocks
    /// it covers (refilled when `handle` falls outside it), so a compaction reads a table in a
    /// few large reads instead of one per block.
    fn data_block_sequential(
        &self,
        handle: BlockHandle,
        window: &mut Option<Readahead>,
    ) -> Result<Block> {
        if let Some(block) = self.block_cache.get(self.id, handle.offset) {
            return Ok(block);
        }
        let len = framed_len(&self.path, handle)?;
        let covered = window.as_ref().and_then(|w| {
            let start = usize::try_from(handle.offset.checked_sub(w.offset)?).ok()?;
            let end = start.checked_add(len)?;
            (end <= w.data.len()).then(|| w.data.slice(start..end))
        });
        let framed = match covered {
            Some(framed) => framed,
            None => {
                // Index validation put every data block before `data_end`, so this read is
                // bounded by the file and covers at least the block.
                let to_end = usize::try_from(self.data_end.saturating_sub(handle.offset))
                    .unwrap_or(usize::MAX);
                let window_len = len.max(READAHEAD_BYTES.min(to_end));
                let data = read_exact(&self.file, &self.path, handle.offset, window_len)?;
                let framed = data.slice(..len);
                *window = Some(Readahead {
                    offset: handle.offset,
                    data,
                });
                framed
            }
        };
        self.decode_data_block(handle, framed)
    }

    fn decode_data_block(&self, handle: BlockHandle, framed: Bytes) -> Result<Block> {
        let payload = decode_block(&self.path, handle, framed)?;
        Block::decode(payload).map_err(|e| self.block_error(handle, e))
    }

    fn block_error(&self, handle: BlockHandle, e: BlockError) -> Error {
        Error::corruption(
            &self.path,
            handle.offset,
            format!("data block: {} (at byte {} of the block)", e.reason, e.at),
        )
    }
}

/// Length of the block at `handle` with its trailer.
fn framed_len(path: &Path, handle: BlockHandle) -> Result<usize> {
    usize::try_from(handle.len)
        .ok()
        .and_then(|n| n.checked_add(BLOCK_TRAILER_LEN))
        .ok_or_else(|| Error::corruption(path, handle.offset, "block length overflows"))
}

/// Reads `len` bytes at `offset`; the caller has bounded `len` by the file's size.
fn read_exact(file: &File, path: &Path, offset: u64, len: usize) -> Result<Bytes> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Bytes::from(buf))
}

/// Reads and verifies the block at `handle`, whose bounds the caller checked against the file.
fn read_block(file: &File, path: &Path, handle: BlockHandle) -> Result<Bytes> {
    let framed = read_exact(file, path, handle.offset, framed_len(path, handle)?)?;
    decode_block(path, handle, framed)
}

/// A window of a table's data section read ahead by a cache-bypassing scan.
struct Readahead {
    /// File offset of `data`'s first byte.
    offset: u64,
    data: Bytes,
}

/// An iterator over one table's entries in internal-key order; implements [`EntryIter`].
/// Holds the table open (an `Arc`) for as long as it lives.
pub(crate) struct SsTableIter {
    table: Arc<SsTable>,
    /// Index of the block `iter` walks.
    block: usize,
    /// `None` once exhausted (or after an error).
    iter: Option<BlockIter>,
    fill_cache: bool,
    /// Read-ahead window, used only when `fill_cache` is false.
    window: Option<Readahead>,
}

impl SsTableIter {
    /// The block at `handle`: cached and filling the cache, or through the read-ahead window.
    fn load(&mut self, handle: BlockHandle) -> Result<Block> {
        if self.fill_cache {
            self.table.data_block(handle, true)
        } else {
            self.table.data_block_sequential(handle, &mut self.window)
        }
    }

    /// While the current block is exhausted, moves to the first entry of the next one.
    fn skip_exhausted_blocks(&mut self) -> Result<()> {
        loop {
            match &self.iter {
                Some(it) if !it.is_valid() => {}
                _ => return Ok(()),
            }
            self.block += 1;
            if self.block >= self.table.index.len() {
                self.iter = None;
                return Ok(());
            }
            let handle = self.table.index.handle(self.block);
            let block = self.load(handle)?;
            if let Some(it) = self.iter.as_mut() {
                it.reset(block);
                it.seek_to_first()
                    .map_err(|e| self.table.block_error(handle, e))?;
            }
        }
    }

    fn step(&mut self) -> Result<()> {
        if let Some(it) = self.iter.as_mut() {
            let handle = self.table.index.handle(self.block);
            it.next().map_err(|e| self.table.block_error(handle, e))?;
            self.skip_exhausted_blocks()?;
        }
        Ok(())
    }
}

impl EntryIter for SsTableIter {
    fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.iter.as_ref()?.current()
    }

    fn advance(&mut self) -> Result<()> {
        let result = self.step();
        if result.is_err() {
            self.iter = None;
        }
        result
    }
}

#[cfg(test)]
mod tests;
