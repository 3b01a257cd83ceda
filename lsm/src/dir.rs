//! The data directory's layout: the lock that keeps two engines off one directory, the names
//! of every file the engine creates, and directory fsync.
//!
//! Owns [`DirLock`], [`sync_dir`] and the naming functions (`tables/{id:06}.sst`,
//! `wal/{id:06}.log`, `MANIFEST-{n:06}`, `CURRENT`). Every other module builds paths through
//! these functions, so a file name is spelled in exactly one place. Must never delete or
//! rewrite a file: deciding what is garbage belongs to the engine and the manifest.
//!
//! ```text
//! <dir>/LOCK                 held for the engine's lifetime
//! <dir>/CURRENT              names the live manifest
//! <dir>/MANIFEST-000001      the manifest log
//! <dir>/tables/000042.sst    SSTables
//! <dir>/wal/000007.log       WAL segments
//! ```

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the lock file inside the data directory.
const LOCK_FILE: &str = "LOCK";
/// Subdirectory holding SSTables.
const TABLES_DIR: &str = "tables";
/// Subdirectory holding WAL segments.
const WAL_DIR: &str = "wal";
/// Extension of SSTable files.
const TABLE_EXT: &str = "sst";
/// Extension of WAL segment files.
const WAL_EXT: &str = "log";
/// Prefix of manifest log files.
const MANIFEST_PREFIX: &str = "MANIFEST-";
/// The file naming the live manifest.
const CURRENT_FILE: &str = "CURRENT";

/// An exclusive lock on `<dir>/LOCK`, held as long as this value lives.
///
/// The lock is an advisory `flock`-style lock on an open file description, so it excludes both
/// other processes and a second engine opened on the same directory inside this process. The
/// operating system drops it when the process dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The open lock file; dropping it releases the lock.
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed, takes its lock without waiting, then creates the
    /// subdirectories (see [`create_layout`]) so every later file creation finds its parent.
    ///
    /// # Errors
    /// [`Error::Locked`] if another engine holds the lock; [`Error::Io`] if a directory or
    /// the lock file cannot be created.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        create_layout(dir)?;
        Ok(DirLock { _file: file })
    }
}

/// Fsyncs a directory, so that files created, renamed or removed in it survive a power loss.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be opened or synced.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = File::open(path).map_err(|e| Error::io("open directory", path, e))?;
    dir.sync_all()
        .map_err(|e| Error::io("fsync directory", path, e))
}

/// Creates `dir/tables` and `dir/wal` if they are missing, and makes their entries durable
/// before anything is written into them.
///
/// # Errors
/// [`Error::Io`] naming the directory that could not be created or synced.
pub(crate) fn create_layout(dir: &Path) -> Result<()> {
    let mut created = false;
    for d in [tables_dir(dir), wal_dir(dir)] {
        if !d.is_dir() {
            fs::create_dir_all(&d).map_err(|e| Error::io("create directory", &d, e))?;
            created = true;
        }
    }
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `<dir>/tables`.
pub(crate) fn tables_dir(dir: &Path) -> PathBuf {
    dir.join(TABLES_DIR)
}

/// `<dir>/tables/{id:06}.sst`.
pub(crate) fn table_path(dir: &Path, id: u64) -> PathBuf {
    tables_dir(dir).join(format!("{id:06}.{TABLE_EXT}"))
}

/// `<dir>/wal`.
pub(crate) fn wal_dir(dir: &Path) -> PathBuf {
    dir.join(WAL_DIR)
}

/// `<dir>/wal/{id:06}.log`.
pub(crate) fn wal_segment_path(dir: &Path, id: u64) -> PathBuf {
    wal_dir(dir).join(format!("{id:06}.{WAL_EXT}"))
}

/// `<dir>/MANIFEST-{number:06}`.
pub(crate) fn manifest_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(manifest_file_name(number))
}

/// `MANIFEST-{number:06}`, the form stored in `CURRENT`.
pub(crate) fn manifest_file_name(number: u64) -> String {
    format!("{MANIFEST_PREFIX}{number:06}")
}

/// `<dir>/CURRENT`.
pub(crate) fn current_path(dir: &Path) -> PathBuf {
    dir.join(CURRENT_FILE)
}

/// `<dir>/CURRENT.tmp`, written and fsynced before it is renamed over `CURRENT`.
pub(crate) fn current_tmp_path(dir: &Path) -> PathBuf {
    dir.join(format!("{CURRENT_FILE}.tmp"))
}

/// The id in a table file name (`000042.sst` -> 42); `None` for any other name.
pub(crate) fn parse_table_file_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_suffix(TABLE_EXT)?.strip_suffix('.')?)
}

/// The id in a WAL segment file name (`000007.log` -> 7); `None` for any other name.
pub(crate) fn parse_wal_file_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_suffix(WAL_EXT)?.strip_suffix('.')?)
}

/// The number in a manifest file name (`MANIFEST-000003` -> 3); `None` for any other name.
pub(crate) fn parse_manifest_file_name(name: &str) -> Option<u64> {
    parse_numbered(name.strip_prefix(MANIFEST_PREFIX)?)
}

/// Parses an all-digit file number. Names are written zero-padded to six digits; longer ids
/// simply have more digits, so anything shorter than six is not one of ours.
fn parse_numbered(digits: &str) -> Option<u64> {
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Ids of the table files in `<dir>/tables`, ascending; empty if the directory does not exist.
/// The engine compares them with the manifest at open to delete orphans of an interrupted
/// flush or compaction.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be read.
pub(crate) fn list_table_ids(dir: &Path) -> Result<Vec<u64>> {
    list_ids(&tables_dir(dir), parse_table_file_name)
}

/// Ids of the WAL segment files in `<dir>/wal`, ascending; empty if the directory does not exist.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be read.
pub(crate) fn list_wal_segment_ids(dir: &Path) -> Result<Vec<u64>> {
    list_ids(&wal_dir(dir), parse_wal_file_name)
}

/// Numbers of the `MANIFEST-*` files in `dir`, ascending.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be read.
pub(crate) fn list_manifest_numbers(dir: &Path) -> Result<Vec<u64>> {
    list_ids(dir, parse_manifest_file_name)
}

/// The ids `parse` recognises among the names in `dir`, sorted.
fn list_ids(dir: &Path, parse: fn(&str) -> Option<u64>) -> Result<Vec<u64>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("db");
        let first = DirLock::acquire(&dir).expect("acquire");
        assert!(tables_dir(&dir).is_dir() && wal_dir(&dir).is_dir());
        match DirLock::acquire(&dir) {
            Err(Error::Locked { path }) => assert_eq!(path, dir),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DirLock::acquire(&dir).expect("acquire");
    }

    #[test]
    fn names_roundtrip_through_their_parsers() {
        let dir = Path::new("/data");
        assert_eq!(table_path(dir, 42), Path::new("/data/tables/000042.sst"));
        assert_eq!(wal_segment_path(dir, 7), Path::new("/data/wal/000007.log"));
        assert_eq!(manifest_path(dir, 3), Path::new("/data/MANIFEST-000003"));
        assert_eq!(parse_table_file_name("000042.sst"), Some(42));
        assert_eq!(parse_table_file_name("1234567.sst"), Some(1_234_567));
        assert_eq!(parse_wal_file_name("000007.log"), Some(7));
        assert_eq!(parse_manifest_file_name("MANIFEST-000003"), Some(3));
        for bad in [
            "42.sst",
            "000042.sst.tmp",
            "00004a.sst",
            "000042.log",
            ".sst",
            "000042sst",
        ] {
            assert_eq!(parse_table_file_name(bad), None, "{bad}");
        }
        assert_eq!(parse_manifest_file_name("MANIFEST-"), None);
    }

    #[test]
    fn listing_finds_only_our_files_in_order() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        assert_eq!(
            list_table_ids(dir).expect("list table ids"),
            Vec::<u64>::new()
        );
        create_layout(dir).expect("create layout");
        for id in [9, 3, 12] {
            fs::write(table_path(dir, id), b"").expect("write");
        }
        fs::write(tables_dir(dir).join("000005.sst.tmp"), b"").expect("write");
        fs::write(wal_segment_path(dir, 4), b"").expect("write");
        assert_eq!(list_table_ids(dir).expect("list table ids"), vec![3, 9, 12]);
        assert_eq!(
            list_wal_segment_ids(dir).expect("list wal segment ids"),
            vec![4]
        );
        sync_dir(&tables_dir(dir)).expect("sync dir");
        sync_dir(dir).expect("sync dir");
    }
}
