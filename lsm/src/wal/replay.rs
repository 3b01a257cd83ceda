//! WAL recovery: reads the segments back in order and hands every batch to the engine.
//!
//! Owns [`replay`] and [`ReplayReport`]. Must never drop a complete frame: the only bytes it
//! removes are an incomplete frame at the very end of the last segment, which no caller was
//! told had been written. Damage anywhere else stops recovery with an error naming the file
//! and offset, because continuing would silently lose acknowledged writes.

use std::fs::OpenOptions;
use std::path::Path;

use tracing::warn;

use super::batch::WalBatch;
use super::frame::{FrameEnd, FrameReader};
use super::MAX_BATCH_BYTES;
use crate::dir::{list_wal_segment_ids, wal_segment_path};
use crate::error::{Error, Result};

/// What [`replay`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    /// Ids of the segments replayed, ascending.
    pub segments: Vec<u64>,
    /// Batches handed to the callback.
    pub batches: u64,
    /// Records in those batches.
    pub records: u64,
    /// Highest sequence number of any replayed record (0 if none).
    pub max_seqno: u64,
    /// Bytes of the incomplete last frame that was truncated away (0 if the log ended cleanly).
    pub torn_tail_bytes: u64,
}

/// Replays every segment with id `>= min_segment`, in id order, calling `f(segment_id, batch)`
/// for each batch in the order it was appended.
///
/// An incomplete frame is allowed only at the end of the last segment: it is truncated away
/// (and the truncation fsynced) so that new appends never follow garbage, and its size is
/// reported. The caller must create its new segment with an id above every replayed one.
///
/// # Errors
/// [`Error::ChecksumMismatch`] or [`Error::Corruption`] naming the segment and offset for a
/// damaged frame, an undecodable batch, or an incomplete frame in a segment that is not the
/// last; [`Error::Io`] for I/O failures; any error `f` returns, which stops the replay.
pub(crate) fn replay(
    dir: &Path,
    min_segment: u64,
    mut f: impl FnMut(u64, WalBatch) -> Result<()>,
) -> Result<ReplayReport> {
    let segments: Vec<u64> = list_wal_segment_ids(dir)?
        .into_iter()
        .filter(|&id| id >= min_segment)
        .collect();
    let mut report = ReplayReport {
        segments: segments.clone(),
        ..ReplayReport::default()
    };
    for (i, &segment) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let path = wal_segment_path(dir, segment);
        let mut reader = FrameReader::open(&path, MAX_BATCH_BYTES)?;
        while let Some(frame) = reader.next_frame()? {
            let batch = WalBatch::decode(frame.payload).ok_or_else(|| {
                Error::corruption(&path, frame.offset, "WAL frame holds an undecodable batch")
            })?;
            report.batches += 1;
            report.records += batch.records.len() as u64;
            if let Some(last) = batch.last_seqno() {
                report.max_seqno = report.max_seqno.max(last);
            }
            f(segment, batch)?;
        }
        if let Some(FrameEnd::Torn { at }) = reader.end() {
            if !is_last {
                // Rotation fsyncs a segment before starting the next, so only damage can
                // leave an older segment incomplete.
                return Err(Error::corruption(
                    &path,
                    at,
                    "incomplete frame at the end of a WAL segment that is not the last",
                ));
            }
            let torn = reader.file_len() - at;
            truncate(&path, at)?;
            warn!(path = %path.display(), offset = at, bytes = torn,
                "truncated an incomplete frame at the end of the WAL");
            report.torn_tail_bytes = torn;
        }
    }
    Ok(report)
}

/// Cuts the file at `len` and makes the new length durable.
fn truncate(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.set_len(len)
        .map_err(|e| Error::io("truncate", path, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", path, e))
}
