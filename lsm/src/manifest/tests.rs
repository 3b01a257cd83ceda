//! Tests of the manifest log: reopen, torn tails, rewrites, crash leftovers and damage.

use std::fs;
use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::dir::{create_layout, table_path};
use crate::record::Version;
use crate::sstable::meta::TableMeta;

const LEVELS: usize = 4;

fn table(id: u64, min: &str, max: &str) -> TableMeta {
    TableMeta {
        id,
        file_bytes: 4096 + id,
        min_key: Bytes::copy_from_slice(min.as_bytes()),
        max_key: Bytes::copy_from_slice(max.as_bytes()),
        min_version: Version::new(id, 0),
        max_version: Version::new(id + 100, 2),
        max_seqno: id * 10,
        max_expire_at_ms: u64::MAX,
        max_tombstone_ms: 0,
        records: 100,
        tombstones: 3,
        raw_bytes: 5000,
    }
}

/// A flush-like group: a new L0 table plus the counters that move with it.
fn flush(id: u64) -> Vec<VersionEdit> {
    vec![
        VersionEdit::NextFileId(id + 1),
        VersionEdit::LogNumber(id),
        VersionEdit::LastSeqno(id * 10),
        VersionEdit::AddTable {
            level: 0,
            meta: table(id, &format!("k{id:03}"), "z"),
        },
    ]
}

/// A compaction-like group: L0 tables move down to L1.
fn compact(ids: &[u64]) -> Vec<VersionEdit> {
    let mut edits = Vec::new();
    for &id in ids {
        edits.push(VersionEdit::RemoveTable { level: 0, id });
        edits.push(VersionEdit::AddTable {
            level: 1,
            meta: table(id, &format!("k{id:03}"), "z"),
        });
    }
    edits
}

fn reopen(dir: &Path) -> ManifestState {
    let (m, state) = Manifest::open(dir, LEVELS).expect("open");
    assert_eq!(m.state(), &state);
    state
}

fn ids(tables: &[TableMeta]) -> Vec<u64> {
    tables.iter().map(|t| t.id).collect()
}

#[test]
fn a_fresh_manifest_opens_empty_and_edits_survive_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, state) = Manifest::open(dir, LEVELS).expect("open");
    assert_eq!(state, ManifestState::new(LEVELS));
    assert_eq!(
        fs::read_to_string(current_path(dir)).expect("read to string"),
        "MANIFEST-000001\n"
    );
    for id in 1..=4 {
        m.apply(&flush(id)).expect("apply");
    }
    m.apply(&compact(&[1, 3])).expect("apply");
    let expected = m.state().clone();
    assert_eq!(ids(&expected.levels[0]), vec![4, 2]);
    assert_eq!(ids(&expected.levels[1]), vec![1, 3]);
    assert_eq!(expected.next_file_id, 5);
    assert_eq!(expected.log_number, 4);
    assert_eq!(expected.last_seqno, 40);
    drop(m);
    assert_eq!(reopen(dir), expected);
    // Reopening appends after what is there.
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.apply(&flush(5)).expect("apply");
    drop(m);
    assert_eq!(ids(&reopen(dir).levels[0]), vec![5, 4, 2]);
}

#[test]
fn an_invalid_edit_group_is_refused_whole_without_writing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.apply(&flush(1)).expect("apply");
    let before = m.state().clone();
    let len = fs::metadata(manifest_path(dir, 1)).expect("metadata").len();
    // The first edit is fine, the second is not: neither may apply.
    let bad = [
        VersionEdit::LastSeqno(99),
        VersionEdit::RemoveTable { level: 1, id: 1 },
    ];
    assert!(matches!(m.apply(&bad), Err(Error::Corruption { .. })));
    let too_deep = flush(2).into_iter().map(|e| match e {
        VersionEdit::AddTable { meta, .. } => VersionEdit::AddTable {
            level: LEVELS,
            meta,
        },
        other => other,
    });
    assert!(m.apply(&too_deep.collect::<Vec<_>>()).is_err());
    assert_eq!(m.state(), &before);
    assert_eq!(
        fs::metadata(manifest_path(dir, 1)).expect("metadata").len(),
        len
    );
    drop(m);
    assert_eq!(reopen(dir), before);
}

#[test]
fn a_crash_anywhere_in_an_edit_opens_to_the_state_before_or_after_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    let path = manifest_path(dir, 1);
    // (file length, state) after the snapshot and after each edit group.
    let mut checkpoints = vec![(
        fs::metadata(&path).expect("metadata").len(),
        m.state().clone(),
    )];
    for group in [flush(1), flush(2), compact(&[1]), flush(3)] {
        m.apply(&group).expect("apply");
        checkpoints.push((
            fs::metadata(&path).expect("metadata").len(),
            m.state().clone(),
        ));
    }
    drop(m);
    let full = fs::read(&path).expect("read");
    for cut in checkpoints[0].0..=full.len() as u64 {
        fs::write(&path, &full[..cut as usize]).expect("write");
        let (len, expected) = checkpoints
            .iter()
            .rev()
            .find(|(len, _)| *len <= cut)
            .expect("a checkpoint at or below every cut");
        assert_eq!(&reopen(dir), expected, "cut at {cut}");
        assert_eq!(
            fs::metadata(&path).expect("metadata").len(),
            *len,
            "torn tail truncated"
        );
    }
    // After a torn tail is cut, new edits follow the last complete one.
    fs::write(&path, &full[..full.len() - 3]).expect("write");
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.apply(&flush(9)).expect("apply");
    drop(m);
    assert_eq!(ids(&reopen(dir).levels[0]), vec![9, 2]);
}

#[test]
fn a_damaged_middle_frame_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    let path = manifest_path(dir, 1);
    m.apply(&flush(1)).expect("apply");
    let second = fs::metadata(&path).expect("metadata").len();
    m.apply(&flush(2)).expect("apply");
    m.apply(&flush(3)).expect("apply");
    drop(m);
    let mut bytes = fs::read(&path).expect("read");
    bytes[second as usize + 20] ^= 0x04;
    fs::write(&path, &bytes).expect("write");
    match Manifest::open(dir, LEVELS) {
        Err(Error::ChecksumMismatch {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(offset, second);
        }
        Err(other) => panic!("expected a checksum mismatch, got {other:?}"),
        Ok(_) => panic!("a damaged manifest opened"),
    }
    assert_eq!(
        fs::read(&path).expect("read"),
        bytes,
        "a damaged manifest is left alone"
    );
}

#[test]
fn rewrites_switch_current_and_keep_the_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.rewrite_threshold_bytes = 1;
    m.next_rewrite_bytes = 1;
    for id in 1..=30 {
        m.apply(&flush(id)).expect("apply");
        if id % 5 == 0 {
            m.apply(&compact(&[id - 2, id - 4])).expect("apply");
        }
    }
    assert!(m.number > 2, "the manifest was rewritten several times");
    let expected = m.state().clone();
    assert_eq!(expected.levels[0].first().map(|t| t.id), Some(30));
    let live = m.number;
    drop(m);
    assert_eq!(
        list_manifest_numbers(dir).expect("list manifest numbers"),
        vec![live]
    );
    assert_eq!(
        fs::read_to_string(current_path(dir)).expect("read to string"),
        format!("{}\n", manifest_file_name(live))
    );
    assert_eq!(reopen(dir), expected);
}

#[test]
fn a_snapshot_larger_than_one_frame_rebuilds_the_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    let edits: Vec<VersionEdit> = (1..=SNAPSHOT_EDITS_PER_FRAME as u64 + 10)
        .map(|id| VersionEdit::AddTable {
            level: 2,
            meta: table(id, &format!("k{id:06}"), &format!("k{id:06}z")),
        })
        .collect();
    m.apply(&edits).expect("apply");
    m.rewrite();
    assert_eq!(m.number, 2);
    let expected = m.state().clone();
    drop(m);
    assert_eq!(reopen(dir), expected);
}

#[test]
fn leftovers_of_an_interrupted_rewrite_are_ignored_and_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.apply(&flush(1)).expect("apply");
    let expected = m.state().clone();
    drop(m);
    // Crashed before the switch: a half-written new manifest and CURRENT.tmp naming it.
    fs::write(manifest_path(dir, 2), b"partial snapshot").expect("write");
    fs::write(current_tmp_path(dir), b"MANIFEST-0").expect("write");
    assert_eq!(reopen(dir), expected);
    assert_eq!(
        list_manifest_numbers(dir).expect("list manifest numbers"),
        vec![1]
    );
    assert!(!current_tmp_path(dir).exists());

    // Crashed after the switch, before deleting the old manifest.
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.apply(&flush(2)).expect("apply");
    let old = fs::read(manifest_path(dir, 1)).expect("read");
    m.rewrite();
    let expected = m.state().clone();
    drop(m);
    fs::write(manifest_path(dir, 1), old).expect("write");
    assert_eq!(reopen(dir), expected);
    assert_eq!(
        list_manifest_numbers(dir).expect("list manifest numbers"),
        vec![2]
    );
}

#[test]
fn a_broken_directory_is_reported_not_reset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut m, _) = Manifest::open(dir, LEVELS).expect("open");
    m.apply(&flush(1)).expect("apply");
    m.apply(&compact(&[1])).expect("apply");
    drop(m);

    assert!(matches!(
        Manifest::open(dir, 1),
        Err(Error::Config {
            option: "num_levels",
            ..
        })
    ));

    fs::write(current_path(dir), "MANIFEST-000007\n").expect("write");
    assert!(matches!(
        Manifest::open(dir, LEVELS),
        Err(Error::MissingFile { .. })
    ));
    fs::write(current_path(dir), "garbage").expect("write");
    assert!(matches!(
        Manifest::open(dir, LEVELS),
        Err(Error::Corruption { .. })
    ));

    fs::remove_file(current_path(dir)).expect("remove file");
    create_layout(dir).expect("create layout");
    fs::write(table_path(dir, 1), b"").expect("write");
    assert!(matches!(
        Manifest::open(dir, LEVELS),
        Err(Error::Corruption { .. })
    ));
    // The surviving manifest was not touched by the refused opens.
    assert!(manifest_path(dir, 1).exists());
}
