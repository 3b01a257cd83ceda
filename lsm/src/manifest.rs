//! The manifest: the atomic, checksummed record of which tables form each level.
//!
//! Owns `<dir>/CURRENT`, `<dir>/CURRENT.tmp` and `<dir>/MANIFEST-nnnnnn`, and [`Manifest`],
//! which logs [`VersionEdit`]s and keeps the [`ManifestState`] they build. Must never make an
//! edit visible in memory before it is on disk, and never leave the directory, at any
//! instant, in a shape that does not open to either the state before an edit or the state
//! after it.
//!
//! `CURRENT` holds the name of the live manifest and a newline. A manifest is a log of frames
//! (see [`crate::wal::frame`]), each holding the edits of one [`Manifest::apply`], so a group
//! of edits is applied whole or not at all. A new manifest starts with frames that rebuild
//! the full state; it becomes live when `CURRENT` is atomically replaced to name it.

pub(crate) mod edit;

#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

pub(crate) use edit::{ManifestState, VersionEdit};

use crate::dir::{
    current_path, current_tmp_path, list_manifest_numbers, list_table_ids, manifest_file_name,
    manifest_path, parse_manifest_file_name, sync_dir,
};
use crate::error::{Error, Result};
use crate::wal::frame::{encode_frame_with, FrameEnd, FrameReader};
use edit::{decode_edits, encode_edits};

/// The largest frame the manifest writes or accepts.
const MAX_FRAME_BYTES: usize = 256 << 20;
/// Edits per frame of a snapshot: with keys at their 64 KiB default limit a frame stays well
/// under [`MAX_FRAME_BYTES`].
const SNAPSHOT_EDITS_PER_FRAME: usize = 1024;
/// Log size past which the manifest is rewritten as a snapshot.
const DEFAULT_REWRITE_BYTES: u64 = 4 << 20;

/// The manifest log of the engine in one directory.
pub(crate) struct Manifest {
    dir: PathBuf,
    /// Number of the live `MANIFEST-nnnnnn`.
    number: u64,
    path: PathBuf,
    /// The live manifest, positioned at its end.
    file: File,
    /// Length of the live manifest.
    file_bytes: u64,
    state: ManifestState,
    /// Size at which the log is rewritten as a snapshot.
    rewrite_threshold_bytes: u64,
    /// The next rewrite happens once the log reaches this size; it grows with the snapshot
    /// so that a large state is not rewritten on every edit.
    next_rewrite_bytes: u64,
    /// Why the manifest stopped, once a write or fsync failed.
    poison: Option<String>,
}

impl Manifest {
    /// Opens the manifest `<dir>/CURRENT` names and replays its edits, or creates a fresh one
    /// if there is no `CURRENT`. Leftovers of an interrupted rewrite are deleted, and an
    /// incomplete last frame (an edit never acknowledged) is truncated away.
    ///
    /// # Errors
    /// [`Error::MissingFile`] if `CURRENT` names a manifest that does not exist;
    /// [`Error::ChecksumMismatch`] / [`Error::Corruption`] for a damaged manifest or
    /// `CURRENT`, or for a directory with tables but no `CURRENT`; [`Error::Config`] if the
    /// manifest has tables at a level `>= num_levels`; [`Error::Io`] for I/O failures.
    pub(crate) fn open(dir: &Path, num_levels: usize) -> Result<(Manifest, ManifestState)> {
        let current = current_path(dir);
        let manifest = match fs::read(&current) {
            Ok(contents) => Self::open_existing(dir, num_levels, &current, &contents)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::create_fresh(dir, num_levels)?
            }
            Err(e) => return Err(Error::io("read", &current, e)),
        };
        manifest.remove_leftovers();
        let state = manifest.state.clone();
        Ok((manifest, state))
    }

    /// The state after every applied edit.
    #[cfg(test)]
    pub(crate) fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Appends `edits` as one frame (so they are applied together or not at all), fsyncs it,
    /// then applies them to the in-memory state. Past a size threshold the log is then
    /// rewritten as a snapshot.
    ///
    /// The edits are checked against the state first; an invalid group is refused without
    /// writing anything.
    ///
    /// # Errors
    /// [`Error::Corruption`] for an edit that would corrupt the manifest (removing a table a
    /// level does not hold, adding one twice or to a level that does not exist);
    /// [`Error::Poisoned`] if writing or fsyncing fails, now or earlier: the edit may or may
    /// not be on disk, and the engine must be reopened to find out.
    pub(crate) fn apply(&mut self, edits: &[VersionEdit]) -> Result<()> {
        if let Some(reason) = &self.poison {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let mut next = self.state.clone();
        for edit in edits {
            next.apply(edit).map_err(|reason| {
                Error::corruption(
                    &self.path,
                    self.file_bytes,
                    format!("refusing a manifest edit: {reason}"),
                )
            })?;
        }
        let mut buf = Vec::new();
        encode_frame_with(&mut buf, MAX_FRAME_BYTES, |out| encode_edits(edits, out)).map_err(
            |e| {
                Error::corruption(
                    &self.path,
                    self.file_bytes,
                    format!(
                        "refusing a manifest edit of {} bytes, over the {}-byte frame limit",
                        e.len, e.max
                    ),
                )
            },
        )?;
        if let Err(e) = self.file.write_all(&buf) {
            // A partial frame may sit at the end now; appending after it would bury it.
            return Err(self.poison(format!("write to {} failed: {e}", self.path.display())));
        }
        if let Err(e) = self.file.sync_data() {
            return Err(self.poison(format!("fsync of {} failed: {e}", self.path.display())));
        }
        self.file_bytes += buf.len() as u64;
        self.state = next;
        if self.file_bytes >= self.next_rewrite_bytes {
            self.rewrite();
        }
        Ok(())
    }

    /// Replays the manifest `CURRENT` names.
    fn open_existing(
        dir: &Path,
        num_levels: usize,
        current: &Path,
        contents: &[u8],
    ) -> Result<Manifest> {
        let number = std::str::from_utf8(contents)
            .ok()
            .and_then(|s| s.strip_suffix('\n'))
            .and_then(parse_manifest_file_name)
            .ok_or_else(|| Error::corruption(current, 0, "CURRENT does not name a manifest"))?;
        let path = manifest_path(dir, number);
        if !path.exists() {
            return Err(Error::MissingFile { path });
        }
        let mut state = ManifestState::new(num_levels);
        let mut reader = FrameReader::open(&path, MAX_FRAME_BYTES)?;
        while let Some(frame) = reader.next_frame()? {
            let edits = decode_edits(frame.payload).ok_or_else(|| {
                Error::corruption(
                    &path,
                    frame.offset,
                    "manifest frame holds undecodable edits",
                )
            })?;
            for edit in &edits {
                if let VersionEdit::AddTable { level, .. } = edit {
                    if *level >= num_levels {
                        return Err(Error::Config {
                            option: "num_levels",
                            reason: format!(
                                "the manifest has tables at level {level}, so it must be at least {}",
                                level + 1
                            ),
                        });
                    }
                }
                state
                    .apply(edit)
                    .map_err(|reason| Error::corruption(&path, frame.offset, reason))?;
            }
        }
        let mut file_bytes = reader.file_len();
        if let Some(FrameEnd::Torn { at }) = reader.end() {
            warn!(path = %path.display(), offset = at, bytes = file_bytes - at,
                "discarding an incomplete manifest edit left by a crash");
            file_bytes = at;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        if file_bytes < reader.file_len() {
            file.set_len(file_bytes)
                .map_err(|e| Error::io("truncate", &path, e))?;
            file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        }
        Ok(Manifest {
            dir: dir.to_path_buf(),
            number,
            path,
            file,
            file_bytes,
            state,
            rewrite_threshold_bytes: DEFAULT_REWRITE_BYTES,
            next_rewrite_bytes: DEFAULT_REWRITE_BYTES,
            poison: None,
        })
    }

    /// Starts an empty engine's manifest.
    fn create_fresh(dir: &Path, num_levels: usize) -> Result<Manifest> {
        // Tables are only written once a manifest exists, so tables without CURRENT mean
        // CURRENT was lost: starting empty would silently discard them.
        let tables = list_table_ids(dir)?;
        if !tables.is_empty() {
            return Err(Error::corruption(
                current_path(dir),
                0,
                format!(
                    "CURRENT is missing but the directory holds {} tables; refusing to start empty",
                    tables.len()
                ),
            ));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        // Never reuse the number of a leftover from an earlier attempt.
        let number = list_manifest_numbers(dir)?.last().map_or(1, |n| n + 1);
        let state = ManifestState::new(num_levels);
        let (file, file_bytes) = write_snapshot(dir, number, &state)?;
        write_current_tmp(dir, number)?;
        rename_current(dir)?;
        info!(dir = %dir.display(), "created a new manifest");
        Ok(Manifest {
            dir: dir.to_path_buf(),
            number,
            path: manifest_path(dir, number),
            file,
            file_bytes,
            state,
            rewrite_threshold_bytes: DEFAULT_REWRITE_BYTES,
            next_rewrite_bytes: DEFAULT_REWRITE_BYTES,
            poison: None,
        })
    }

    /// Replaces the log with a snapshot of the state in a new manifest.
    ///
    /// Called after an edit is durable, so failures before `CURRENT` is switched leave the
    /// old, complete manifest live: they are logged and retried later. A failure of the
    /// switch itself leaves it unknown which manifest a crash would bring back, so further
    /// edits are refused (the manifest is poisoned); the edit that triggered the rewrite is in
    /// both, so it stands.
    fn rewrite(&mut self) {
        let number = self.number + 1;
        let new_path = manifest_path(&self.dir, number);
        let prepared = write_snapshot(&self.dir, number, &self.state).and_then(|written| {
            write_current_tmp(&self.dir, number)?;
            Ok(written)
        });
        let (file, bytes) = match prepared {
            Ok(written) => written,
            Err(e) => {
                warn!(error = %e, "manifest rewrite failed; keeping the current manifest");
                let _ = fs::remove_file(&new_path);
                let _ = fs::remove_file(current_tmp_path(&self.dir));
                self.next_rewrite_bytes = self.file_bytes + self.rewrite_threshold_bytes;
                return;
            }
        };
        if let Err(e) = rename_current(&self.dir) {
            self.poison(format!("switching to {} failed: {e}", new_path.display()));
            return;
        }
        let old_path = std::mem::replace(&mut self.path, new_path);
        self.number = number;
        self.file = file;
        self.file_bytes = bytes;
        self.next_rewrite_bytes = self.rewrite_threshold_bytes.max(bytes.saturating_mul(2));
        if let Err(e) = fs::remove_file(&old_path) {
            warn!(path = %old_path.display(), error = %e, "could not delete the old manifest");
        }
        info!(path = %self.path.display(), bytes, "rewrote the manifest");
    }

    /// Deletes manifests other than the live one and a stray `CURRENT.tmp`: leftovers of a
    /// rewrite that crashed before or after switching `CURRENT`. Failures are only logged.
    fn remove_leftovers(&self) {
        let mut stale: Vec<PathBuf> = match list_manifest_numbers(&self.dir) {
            Ok(numbers) => numbers
                .into_iter()
                .filter(|&n| n != self.number)
                .map(|n| manifest_path(&self.dir, n))
                .collect(),
            Err(e) => {
                warn!(error = %e, "could not list old manifests");
                Vec::new()
            }
        };
        stale.push(current_tmp_path(&self.dir));
        for path in stale {
            match fs::remove_file(&path) {
                Ok(()) => info!(path = %path.display(), "removed a leftover manifest file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "could not remove a leftover manifest file")
                }
            }
        }
    }

    /// Records the first failure and returns the error every later edit gets.
    fn poison(&mut self, reason: String) -> Error {
        tracing::error!(reason = %reason, "manifest poisoned");
        let reason = self.poison.get_or_insert(reason).clone();
        Error::Poisoned { reason }
    }
}

/// Writes `MANIFEST-{number}` holding `state` as a snapshot and fsyncs it. Returns the file,
/// positioned at its end for appends, and its length.
fn write_snapshot(dir: &Path, number: u64, state: &ManifestState) -> Result<(File, u64)> {
    let path = manifest_path(dir, number);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    // A large state is split over several frames; the file is not live until CURRENT names
    // it, so the snapshot need not be a single atomic frame.
    let mut written = 0u64;
    let mut buf = Vec::new();
    for group in state.snapshot_edits().chunks(SNAPSHOT_EDITS_PER_FRAME) {
        buf.clear();
        encode_frame_with(&mut buf, MAX_FRAME_BYTES, |out| encode_edits(group, out)).map_err(
            |e| {
                Error::corruption(
                    &path,
                    written,
                    format!(
                        "a snapshot frame of {} bytes exceeds the {}-byte manifest frame limit",
                        e.len, e.max
                    ),
                )
            },
        )?;
        file.write_all(&buf)
            .map_err(|e| Error::io("write", &path, e))?;
        written += buf.len() as u64;
    }
    file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
    Ok((file, written))
}

/// Writes `CURRENT.tmp` naming `MANIFEST-{number}` and fsyncs it: the first half of an
/// atomic switch of `CURRENT`.
fn write_current_tmp(dir: &Path, number: u64) -> Result<()> {
    let tmp = current_tmp_path(dir);
    let mut file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(format!("{}\n", manifest_file_name(number)).as_bytes())
        .map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))
}

/// Renames `CURRENT.tmp` over `CURRENT` and fsyncs the directory: the second half of the
/// switch. Once the rename has happened, either manifest may be the one a crash brings back
/// until the directory fsync returns.
fn rename_current(dir: &Path) -> Result<()> {
    let current = current_path(dir);
    fs::rename(current_tmp_path(dir), &current).map_err(|e| Error::io("rename", &current, e))?;
    sync_dir(dir)
}
