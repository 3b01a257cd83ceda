//! End-to-end tests of the WAL: append, rotate, replay, torn tails, damage and group commit.

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::FRAME_HEADER_LEN;
use super::replay::ReplayReport;
use super::*;
use crate::dir::wal_segment_path;
use crate::error::Error;
use crate::options::FsyncMode;
use crate::record::{Record, Version};
use crate::stats::Counters;

/// What the engine's writers do for a write that is not buffered: append it to the segment's
/// buffer, then hand the buffer to the operating system.
trait AppendNow {
    fn append(&self, batch: &WalBatch) -> crate::error::Result<writer::Lsn>;
}

impl AppendNow for Wal {
    fn append(&self, batch: &WalBatch) -> crate::error::Result<writer::Lsn> {
        let lsn = self.append_buffered(batch)?;
        self.write_pending()?;
        Ok(lsn)
    }
}

/// A batch of `n` records starting at `first_seqno`, every third one a tombstone.
fn batch(first_seqno: u64, n: usize) -> WalBatch {
    let records = (0..n)
        .map(|i| {
            let seq = first_seqno + i as u64;
            let key = Bytes::from(format!("key-{seq:08}"));
            let version = Version::new(seq * 7, (seq % 3) as u32);
            let rec = if seq.is_multiple_of(3) {
                Record::tombstone(version)
            } else {
                Record::expiring(version, format!("value-{seq}").repeat(i + 1), seq)
            };
            (key, rec)
        })
        .collect();
    WalBatch {
        first_seqno,
        records,
    }
}

fn replay_all(dir: &Path, min_segment: u64) -> crate::Result<(Vec<(u64, WalBatch)>, ReplayReport)> {
    let mut got = Vec::new();
    let report = replay(dir, min_segment, |seg, b| {
        got.push((seg, b));
        Ok(())
    })?;
    Ok((got, report))
}

fn always(dir: &Path, segment: u64) -> (Wal, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let wal = Wal::create(dir, segment, FsyncMode::Always, Arc::clone(&counters)).expect("create");
    (wal, counters)
}

#[test]
fn the_wal_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
}

#[test]
fn batches_replay_in_order_across_rotations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, counters) = always(dir, 3);
    let mut expected = Vec::new();
    let mut seq = 1;
    let mut last_lsn = 0;
    for (segment, batches) in [(3u64, 4usize), (5, 0), (9, 3)] {
        if segment != 3 {
            wal.rotate(segment).expect("rotate");
        }
        assert_eq!(wal.current_segment(), segment);
        for n in 1..=batches {
            let b = batch(seq, n);
            seq += n as u64;
            let lsn = wal.append(&b).expect("append");
            assert!(lsn > last_lsn, "lsns grow across segments");
            last_lsn = lsn;
            expected.push((segment, b));
        }
    }
    wal.sync_all().expect("sync all");
    let written = counters.wal_bytes_written.load(Ordering::Relaxed);
    assert_eq!(written, last_lsn);
    assert_eq!(wal.bytes_on_disk(), written);
    drop(wal);

    let (got, report) = replay_all(dir, 0).expect("replay all");
    assert_eq!(got, expected);
    assert_eq!(report.segments, vec![3, 5, 9]);
    assert_eq!(report.batches, 7);
    assert_eq!(report.records, seq - 1);
    assert_eq!(report.max_seqno, seq - 1);
    assert_eq!(report.torn_tail_bytes, 0);

    // Segments below the manifest's log number are skipped, then deleted.
    let (got, report) = replay_all(dir, 5).expect("replay all");
    assert_eq!(report.segments, vec![5, 9]);
    assert!(got.iter().all(|(seg, _)| *seg == 9));
    let (wal, _) = always(dir, 10);
    assert_eq!(wal.bytes_on_disk(), written);
    wal.remove_segments_before(9)
        .expect("remove segments before");
    assert!(!wal_segment_path(dir, 3).exists());
    assert!(!wal_segment_path(dir, 5).exists());
    let seg9 = fs::metadata(wal_segment_path(dir, 9))
        .expect("metadata")
        .len();
    assert_eq!(wal.bytes_on_disk(), seg9);
    wal.remove_segments_before(u64::MAX)
        .expect("remove segments before");
    assert!(
        wal_segment_path(dir, 10).exists(),
        "the current segment is never removed"
    );
    assert_eq!(wal.bytes_on_disk(), 0);
}

#[test]
fn an_existing_segment_is_never_reused_and_ids_only_grow() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (wal, _) = always(tmp.path(), 4);
    wal.append(&batch(1, 2)).expect("append");
    assert!(matches!(wal.rotate(4), Err(Error::Corruption { .. })));
    assert!(matches!(wal.rotate(2), Err(Error::Corruption { .. })));
    for id in [3, 4] {
        assert!(matches!(
            Wal::create(tmp.path(), id, FsyncMode::Always, Arc::default()),
            Err(Error::Corruption { .. })
        ));
    }
    // A failed rotation leaves the WAL usable.
    wal.append(&batch(3, 1)).expect("append");
    wal.rotate(5).expect("rotate");
    drop(wal);
    assert_eq!(replay_all(tmp.path(), 0).expect("replay all").1.batches, 2);
}

#[test]
fn a_cut_anywhere_in_the_last_frame_replays_every_complete_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, _) = always(dir, 1);
    wal.append(&batch(1, 2)).expect("append");
    wal.rotate(2).expect("rotate");
    wal.append(&batch(3, 2)).expect("append");
    let end = wal.append(&batch(5, 1)).expect("append");
    let last_frame_lsn = end - (FRAME_HEADER_LEN + batch(5, 1).encoded_len()) as u64;
    drop(wal);
    let path = wal_segment_path(dir, 2);
    let full = fs::read(&path).expect("read");
    let seg1_len = fs::metadata(wal_segment_path(dir, 1))
        .expect("metadata")
        .len();
    let last_offset = last_frame_lsn - seg1_len;
    for cut in last_offset..full.len() as u64 {
        fs::write(&path, &full[..cut as usize]).expect("write");
        let (got, report) = replay_all(dir, 0).expect("replay all");
        let seqs: Vec<u64> = got.iter().map(|(_, b)| b.first_seqno).collect();
        assert_eq!(seqs, vec![1, 3], "cut at {cut}");
        assert_eq!(report.torn_tail_bytes, cut - last_offset, "cut at {cut}");
        assert_eq!(
            fs::metadata(&path).expect("metadata").len(),
            last_offset,
            "truncated"
        );
        // The truncation is stable: a second replay finds a clean end.
        assert_eq!(replay_all(dir, 0).expect("replay all").1.torn_tail_bytes, 0);
    }
    // Appends after recovery go to a new segment and replay after the survivors.
    let (wal, _) = always(dir, 3);
    wal.append(&batch(5, 1)).expect("append");
    drop(wal);
    let (got, _) = replay_all(dir, 0).expect("replay all");
    let seqs: Vec<u64> = got.iter().map(|(_, b)| b.first_seqno).collect();
    assert_eq!(seqs, vec![1, 3, 5]);
}

#[test]
fn damage_before_the_tail_is_an_error_naming_file_and_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (wal, _) = always(dir, 1);
    let first_end = wal.append(&batch(1, 3)).expect("append");
    wal.append(&batch(4, 3)).expect("append");
    wal.append(&batch(7, 3)).expect("append");
    drop(wal);
    let path = wal_segment_path(dir, 1);
    let clean = fs::read(&path).expect("read");

    // A flipped bit in the middle frame's payload.
    let mut bytes = clean.clone();
    bytes[first_end as usize + FRAME_HEADER_LEN + 5] ^= 0x10;
    fs::write(&path, &bytes).expect("write");
    match replay_all(dir, 0) {
        Err(Error::ChecksumMismatch {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(offset, first_end);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert_eq!(
        fs::read(&path).expect("read"),
        bytes,
        "a damaged log is not truncated"
    );

    // A flipped bit in the middle frame's length.
    let mut bytes = clean.clone();
    bytes[first_end as usize + 1] ^= 0x01;
    fs::write(&path, &bytes).expect("write");
    match replay_all(dir, 0) {
        Err(Error::ChecksumMismatch { offset, .. }) => assert_eq!(offset, first_end),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }

    // An incomplete frame in a segment that is not the last.
    fs::write(&path, &clean[..clean.len() - 1]).expect("write");
    fs::write(wal_segment_path(dir, 2), b"").expect("write");
    match replay_all(dir, 0) {
        Err(Error::Corruption { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn the_callback_error_stops_replay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (wal, _) = always(tmp.path(), 1);
    wal.append(&batch(1, 1)).expect("append");
    wal.append(&batch(2, 1)).expect("append");
    drop(wal);
    let mut calls = 0;
    let result = replay(tmp.path(), 0, |_, _| {
        calls += 1;
        Err(Error::Closed)
    });
    assert!(matches!(result, Err(Error::Closed)));
    assert_eq!(calls, 1);
}

#[test]
fn concurrent_writers_share_fsyncs() {
    const THREADS: usize = 32;
    const APPENDS: usize = 50;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (wal, counters) = always(tmp.path(), 1);
    let wal = Arc::new(wal);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..APPENDS {
                    let seq = (t * APPENDS + i) as u64 + 1;
                    let lsn = wal.append(&batch(seq, 1)).expect("append");
                    wal.sync_to(lsn).expect("sync to");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("join");
    }
    let syncs = counters.wal_syncs.load(Ordering::Relaxed);
    assert!(syncs > 0);
    assert!(
        syncs < (THREADS * APPENDS) as u64,
        "{syncs} fsyncs for {} synced appends",
        THREADS * APPENDS
    );
    // Nothing is left unsynced, so a final sync is free.
    wal.sync_all().expect("sync all");
    assert_eq!(counters.wal_syncs.load(Ordering::Relaxed), syncs);
    drop(wal);
    let (_, report) = replay_all(tmp.path(), 0).expect("replay all");
    assert_eq!(report.batches, (THREADS * APPENDS) as u64);
    assert_eq!(report.max_seqno, (THREADS * APPENDS) as u64);
}

#[test]
fn periodic_mode_syncs_in_the_background_and_stops_promptly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let counters = Arc::new(Counters::default());
    let wal = Wal::create(
        tmp.path(),
        1,
        FsyncMode::Periodic { interval_ms: 5 },
        Arc::clone(&counters),
    )
    .expect("create");
    wal.append(&batch(1, 2)).expect("append");
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.wal_syncs.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no background fsync within 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Everything appended is now covered: a caller's sync has nothing to do.
    let syncs = counters.wal_syncs.load(Ordering::Relaxed);
    wal.sync_all().expect("sync all");
    assert_eq!(counters.wal_syncs.load(Ordering::Relaxed), syncs);
    drop(wal);

    // A long interval does not delay drop; the close fsyncs what is still pending.
    let counters = Arc::new(Counters::default());
    let wal = Wal::create(
        tmp.path(),
        2,
        FsyncMode::Periodic {
            interval_ms: 3_600_000,
        },
        Arc::clone(&counters),
    )
    .expect("create");
    wal.append(&batch(3, 1)).expect("append");
    let start = Instant::now();
    drop(wal);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(counters.wal_syncs.load(Ordering::Relaxed), 1);
}

#[test]
fn periodic_mode_syncs_ahead_once_enough_is_unsynced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let counters = Arc::new(Counters::default());
    // An interval no test outlives: any fsync seen here is a sync-ahead.
    let wal = Wal::create(
        tmp.path(),
        1,
        FsyncMode::Periodic {
            interval_ms: 3_600_000,
        },
        Arc::clone(&counters),
    )
    .expect("create");
    let value = Bytes::from(vec![0x5a; 64 * 1024]);
    let big = |seqno: u64| WalBatch {
        first_seqno: seqno,
        records: vec![(
            Bytes::from(format!("key-{seqno}")),
            Record::value(Version::new(seqno, 1), value.clone()),
        )],
    };
    let per_batch = 64 * 1024;
    let below = (writer::SYNC_AHEAD_BYTES as usize / per_batch) as u64 - 2;
    let mut seqno = 1;
    while seqno <= below {
        wal.append(&big(seqno)).expect("append");
        seqno += 1;
    }
    assert_eq!(
        counters.wal_syncs.load(Ordering::Relaxed),
        0,
        "synced ahead below the bound"
    );
    for _ in 0..4 {
        wal.append(&big(seqno)).expect("append");
        seqno += 1;
    }
    // Past the bound: the fsync thread must sync without a caller asking or its interval.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.wal_syncs.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no sync-ahead within 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    // One sync-ahead per crossing, not one per append past the bound.
    wal.write_pending().expect("write pending");
    assert_eq!(counters.wal_syncs.load(Ordering::Relaxed), 1);
    drop(wal);
}
