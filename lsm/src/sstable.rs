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
//! - [`reader`]: [`SsTable`], an open table answering point reads, and [`SsTableIter`].
//! - [`meta`]: [`TableMeta`](meta::TableMeta), the summary stored in the table and the manifest.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! data block 0 | ... | data block n-1 | index block | bloom block (optional) | meta block | footer
//! ```
//!
//! Every block is `payload ‖ compression (u8) ‖ crc32 (u32 LE)` where the CRC covers the payload
//! and the compression byte. The footer is fixed-size and ends with a magic number; see
//! [`format::Footer`].
//!
//! This module must never return unverified bytes: every block read checks its checksum, and
//! every length read from disk is bounded by the file's size before anything is allocated.

pub(crate) mod block;
pub(crate) mod bloom;
pub(crate) mod builder;
pub(crate) mod format;
pub mod meta;
pub(crate) mod reader;

pub(crate) use reader::{SsTable, SsTableIter};
