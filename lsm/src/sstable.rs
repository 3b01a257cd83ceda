//! Sorted string tables: immutable, checksummed files of internal entries sorted by internal key.
//!
//! # Layout
//!
//! - [`block`]: data blocks (prefix-compressed entries with restart points), their builder and
//!   their iterator.
//! - [`bloom`]: the per-table bloom filter over user keys.
//! - [`format`]: the file-level framing: block handles, block trailers (compression byte and
//!   CRC32) and the fixed footer.
//! - [`builder`]: [`SsTableBuilder`] writes a table from entries in internal-key order.
//! - [`reader`]: [`SsTable`], an open table answering point reads (of a [`LookupKey`], hashed
//!   once per read for every table's bloom filter) through its decoded index, and
//!   [`SsTableIter`].
//! - [`meta`]: [`TableMeta`](meta::TableMeta), the summary stored in the table and the manifest.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! data block 0 | ... | data block n-1 | index block | bloom block (optional) | meta block | footer
//! ```
//!
//! - Every block is `payload ‖ compression (u8: 0 none, 1 LZ4) ‖ crc32 (u32 LE)`; the CRC covers
//!   the payload and the compression byte. An LZ4 payload is `varint(raw length) ‖ LZ4 block`;
//!   a block that LZ4 does not shrink is stored raw. Only data blocks are ever compressed.
//! - Data block: see [`block`] (prefix-compressed entries keyed by `user_key ‖ version`, restart
//!   points, seqno / expiry / kind / value per entry).
//! - Index block: per data block, `varint(len) ‖ last internal key ‖ varint(offset) ‖
//!   varint(payload len)`, in file order.
//! - Bloom block: see [`bloom`]; absent (length 0 in the footer) when filters are off.
//! - Meta block: [`TableMeta::encode`](meta::TableMeta::encode), including the file's size.
//! - Footer: fixed 64 bytes, see [`format::Footer`]: the three handles, the format version, a
//!   CRC32 of the footer and the magic number `RKVTABLE`.
//!
//! This module must never return unverified bytes: every block read checks its checksum, and
//! every length read from disk is bounded before anything is allocated (by the file's size, or
//! for a decompressed block by LZ4's maximum expansion of its checksummed input).

pub(crate) mod block;
pub(crate) mod bloom;
pub(crate) mod builder;
pub(crate) mod format;
pub mod meta;
pub(crate) mod reader;

pub(crate) use reader::{LookupKey, SsTable, SsTableIter};
