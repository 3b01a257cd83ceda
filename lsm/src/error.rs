//! The engine's error type: every failure names what failed and where.
//!
//! Owns [`Error`] and [`Result`]. Must never wrap a dependency's error wholesale: I/O errors
//! carry the path and the operation, corruption carries the file and offset.

use std::io;
use std::path::PathBuf;

/// Result of engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call on a file or directory failed.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What the engine was doing ("write", "fsync", "open", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A key longer than the configured limit.
    #[error("key of {len} bytes exceeds the {max}-byte limit")]
    KeyTooLarge {
        /// Length of the key.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value longer than the configured limit.
    #[error("value of {len} bytes exceeds the {max}-byte limit")]
    ValueTooLarge {
        /// Length of the value.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A write batch whose encoding exceeds what one WAL frame can hold.
    #[error("write batch of {len} bytes exceeds the {max}-byte WAL frame limit")]
    BatchTooLarge {
        /// Encoded length of the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A checksum did not match the data it covers.
    #[error("checksum mismatch in {path} at offset {offset}: expected {expected:#010x}, got {got:#010x}")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Byte offset of the checksummed region.
        offset: u64,
        /// The stored checksum.
        expected: u32,
        /// The checksum of the data as read.
        got: u32,
    },
    /// Data that cannot be decoded: a bad length, a bad magic number, a truncated structure.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corruption {
        /// The file.
        path: PathBuf,
        /// Byte offset where decoding failed.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A file the manifest lists is not on disk.
    #[error("file {path} is listed in the manifest but missing")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// Another process (or engine in this process) holds the directory's lock.
    #[error("data directory {path} is locked by another process")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// An option is out of its range.
    #[error("invalid option {option}: {reason}")]
    Config {
        /// The option's name.
        option: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A background failure (a failed fsync, a worker panic) stopped the engine; it refuses
    /// writes until reopened, so nothing acknowledged can be lost silently.
    #[error("engine stopped after an earlier failure: {reason}")]
    Poisoned {
        /// The original failure.
        reason: String,
    },
    /// The engine was closed.
    #[error("engine is closed")]
    Closed,
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corruption`].
    pub fn corruption(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Self::Corruption {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether the error means on-disk data is damaged (as opposed to I/O or input errors).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Self::ChecksumMismatch { .. } | Self::Corruption { .. } | Self::MissingFile { .. }
        )
    }
}
