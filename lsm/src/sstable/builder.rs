//! Writing an SSTable from entries in internal-key order.
//!
//! Owns [`SsTableBuilder`]. It streams data blocks to the file as they fill, keeps the index
//! entries, key hashes (for the bloom filter) and table statistics in memory, and on
//! [`SsTableBuilder::finish`] writes the index, bloom and meta blocks and the footer, then
//! fsyncs. Must never reorder or drop entries: what it is given is what the table holds.
//! Syncing the directory entry of the new file is the caller's job.

use std::cmp::Ordering;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::coding::put_bytes;
use crate::error::{Error, Result};
use crate::options::{Compression, Options};
use crate::record::{compare_internal, Entry, Version};
use crate::sstable::block::BlockBuilder;
use crate::sstable::bloom::{encode_filter, hash_key};
use crate::sstable::format::{
    block_crc, compress_block, BlockHandle, CompressScratch, Footer, BLOCK_TRAILER_LEN, FOOTER_LEN,
};
use crate::sstable::meta::TableMeta;

/// Largest key + value one entry may have: keeps every block's offsets within u32.
const MAX_ENTRY_BYTES: usize = (u32::MAX / 2) as usize;

/// Buffer size of the file writer: large sequential writes, few syscalls.
const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Writes one SSTable. Create it, [`add`](SsTableBuilder::add) entries in strictly increasing
/// internal-key order, then [`finish`](SsTableBuilder::finish). Dropping it unfinished leaves
/// a partial file that the caller removes.
pub(crate) struct SsTableBuilder {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Bytes handed to the writer so far.
    offset: u64,
    compression: Compression,
    block_bytes: usize,
    bloom_bits_per_key: usize,
    block: BlockBuilder,
    compress_scratch: CompressScratch,
    /// Encoded index entries: last internal key of each data block and its handle.
    index: Vec<u8>,
    /// Hash of each distinct user key, for the bloom filter.
    key_hashes: Vec<u64>,
    /// User key and version of the last entry, for the order check and key deduplication.
    last_key: Vec<u8>,
    last_version: Version,
    meta: TableMeta,
}

impl SsTableBuilder {
    /// Creates (or truncates) the file at `path` for table `id`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be created.
    pub(crate) fn create(path: &Path, id: u64, opts: &Options) -> Result<SsTableBuilder> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            offset: 0,
            compression: opts.compression,
            block_bytes: opts.block_bytes,
            bloom_bits_per_key: opts.bloom_bits_per_key,
            block: BlockBuilder::new(opts.block_restart_interval),
            compress_scratch: CompressScratch::default(),
            index: Vec::new(),
            key_hashes: Vec::new(),
            last_key: Vec::new(),
            last_version: Version::default(),
            meta: TableMeta {
                id,
                file_bytes: 0,
                min_key: Bytes::new(),
                max_key: Bytes::new(),
                min_version: Version::new(u64::MAX, u32::MAX),
                max_version: Version::default(),
                max_seqno: 0,
                max_expire_at_ms: 0,
                max_tombstone_ms: 0,
                records: 0,
                tombstones: 0,
                raw_bytes: 0,
            },
        })
    }

    /// Appends an entry. Entries must come in strictly increasing internal-key order (user key
    /// ascending, version descending).
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`] / [`Error::ValueTooLarge`] for an entry too large for the format,
    /// [`Error::Corruption`] for an entry out of order (a bug in the caller; the table would be
    /// unreadable), [`Error::Io`] if writing a full block fails.
    pub(crate) fn add(&mut self, user_key: &[u8], version: Version, entry: &Entry) -> Result<()> {
        let value_len = entry.value.as_ref().map_or(0, |v| v.len());
        if user_key.len() > MAX_ENTRY_BYTES {
            return Err(Error::KeyTooLarge {
                len: user_key.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        if user_key.len() + value_len > MAX_ENTRY_BYTES {
            return Err(Error::ValueTooLarge {
                len: value_len,
                max: MAX_ENTRY_BYTES - user_key.len(),
            });
        }
        let first = self.meta.records == 0;
        let new_user_key = first || self.last_key.as_slice() != user_key;
        if !first
            && compare_internal(user_key, version, &self.last_key, self.last_version)
                != Ordering::Greater
        {
            return Err(Error::corruption(
                &self.path,
                self.offset,
                "SSTable entries added out of internal-key order",
            ));
        }

        let m = &mut self.meta;
        if first {
            m.min_key = Bytes::copy_from_slice(user_key);
        }
        m.min_version = m.min_version.min(version);
        m.max_version = m.max_version.max(version);
        m.max_seqno = m.max_seqno.max(entry.seqno);
        m.records += 1;
        m.raw_bytes += (user_key.len() + value_len) as u64;
        if entry.value.is_some() {
            let expiry = if entry.expire_at_ms == 0 {
                u64::MAX
            } else {
                entry.expire_at_ms
            };
            m.max_expire_at_ms = m.max_expire_at_ms.max(expiry);
        } else {
            m.tombstones += 1;
            let died = version.millis().max(entry.expire_at_ms);
            m.max_tombstone_ms = m.max_tombstone_ms.max(died);
        }

        if new_user_key {
            self.key_hashes.push(hash_key(user_key));
            self.last_key.clear();
            self.last_key.extend_from_slice(user_key);
        }
        self.last_version = version;

        self.block.add(user_key, version, entry);
        if self.block.estimated_bytes() >= self.block_bytes {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Bytes the table would take if finished now (data written plus what is buffered).
    pub(crate) fn estimated_bytes(&self) -> u64 {
        let bloom = self.key_hashes.len() * self.bloom_bits_per_key / 8;
        self.offset + (self.block.estimated_bytes() + self.index.len() + bloom + FOOTER_LEN) as u64
    }

    /// Whether no entry has been added.
    pub(crate) fn is_empty(&self) -> bool {
        self.meta.records == 0
    }

    /// Writes the last data block, the index, bloom and meta blocks and the footer, fsyncs the
    /// file and returns the table's [`TableMeta`]. An empty builder yields a valid table with
    /// no entries (callers normally discard it instead).
    ///
    /// # Errors
    /// [`Error::Io`] if a write or the fsync fails.
    pub(crate) fn finish(mut self) -> Result<TableMeta> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let index = std::mem::take(&mut self.index);
        let index_handle = self.write_block(&index, Compression::None)?;
        let bloom_handle = match encode_filter(&self.key_hashes, self.bloom_bits_per_key) {
            Some(filter) => self.write_block(&filter, Compression::None)?,
            None => BlockHandle {
                offset: self.offset,
                len: 0,
            },
        };

        let mut meta = self.meta.clone();
        if meta.records == 0 {
            meta.min_version = Version::default();
        } else {
            meta.max_key = Bytes::copy_from_slice(&self.last_key);
        }
        // The meta block records the file's size, which depends on the meta block's own
        // (varint) length: iterate to the fixed point, reached within a few rounds because the
        // length only grows with the size it encodes.
        let meta_offset = self.offset;
        let mut encoded = Vec::new();
        for _ in 0..16 {
            encoded.clear();
            meta.encode(&mut encoded);
            let total = meta_offset + (encoded.len() + BLOCK_TRAILER_LEN + FOOTER_LEN) as u64;
            if total == meta.file_bytes {
                break;
            }
            meta.file_bytes = total;
        }
        let meta_handle = self.write_block(&encoded, Compression::None)?;
        let footer = Footer {
            index: index_handle,
            bloom: bloom_handle,
            meta: meta_handle,
        };
        self.write_all(&footer.encode())?;
        debug_assert_eq!(self.offset, meta.file_bytes);

        let path = self.path;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| Error::io("write", &path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        Ok(meta)
    }

    /// Writes the current data block and records it in the index.
    fn flush_block(&mut self) -> Result<()> {
        let (payload, compression) = compress_block(
            self.block.finish(),
            self.compression,
            &mut self.compress_scratch,
        );
        let handle = write_framed(
            &mut self.writer,
            &self.path,
            &mut self.offset,
            payload,
            compression,
        )?;
        put_bytes(&mut self.index, self.block.last_key());
        handle.encode_varint(&mut self.index);
        self.block.reset();
        Ok(())
    }

    fn write_block(&mut self, payload: &[u8], compression: Compression) -> Result<BlockHandle> {
        let (payload, c) = compress_block(payload, compression, &mut self.compress_scratch);
        write_framed(&mut self.writer, &self.path, &mut self.offset, payload, c)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

/// Writes `payload ‖ compression ‖ crc32` at `*offset` and advances it.
fn write_framed(
    writer: &mut BufWriter<File>,
    path: &Path,
    offset: &mut u64,
    payload: &[u8],
    compression: u8,
) -> Result<BlockHandle> {
    let crc = block_crc(payload, compression);
    let write = |w: &mut BufWriter<File>| -> std::io::Result<()> {
        w.write_all(payload)?;
        w.write_all(&[compression])?;
        w.write_all(&crc.to_le_bytes())
    };
    write(writer).map_err(|e| Error::io("write", path, e))?;
    let handle = BlockHandle {
        offset: *offset,
        len: payload.len() as u64,
    };
    *offset += (payload.len() + BLOCK_TRAILER_LEN) as u64;
    Ok(handle)
}
