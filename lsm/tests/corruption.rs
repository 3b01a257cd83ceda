//! Damaged files: the engine reports corruption (naming the file) and never returns a wrong
//! value.
//!
//! Data directory layout these tests rely on: `LOCK`, `CURRENT`, `MANIFEST-*`,
//! `wal/{id:06}.log`, `tables/{id:06}.sst`. Damage is done by hand between a close and an open:
//! a flipped byte in the middle of the WAL (open fails), a torn last WAL frame (open succeeds
//! with the earlier writes), a flipped byte in an SSTable data block (reads of that block fail,
//! other blocks and tables still read), a deleted SSTable (`MissingFile`), and a damaged
//! `CURRENT` (open fails rather than starting empty).

mod common;

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{files_in, find, flip_byte, read_all, tiny_options, truncate, Rng, TestClock};
use ringkv_lsm::{Compression, Db, Error, Options, Record, Version};

/// Options for these tests: no compression, so values can be found in the files by content;
/// no background work, so the files are exactly those the test made.
fn options(clock: &TestClock) -> Options {
    Options {
        compression: Compression::None,
        ..tiny_options(clock, 256)
    }
}

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}-{i:03}").into_bytes()
}

/// A value that starts with a findable marker and continues with incompressible bytes.
fn value(prefix: &str, i: usize, rng: &mut Rng) -> Bytes {
    let mut v = format!("val-{prefix}-{i:03}:").into_bytes();
    for _ in 0..8 {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    Bytes::from(v)
}

fn marker(prefix: &str, i: usize) -> Vec<u8> {
    format!("val-{prefix}-{i:03}:").into_bytes()
}

/// Writes `n` keys `prefix-000..` and returns their values.
fn write_keys(db: &Db, prefix: &str, n: usize, rng: &mut Rng) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            let v = value(prefix, i, rng);
            db.put(
                &key(prefix, i),
                Record::value(Version::new(i as u64 + 1, 0), v.clone()),
            )
            .expect("put");
            v
        })
        .collect()
}

/// The file among `files` that contains `needle`, and the offset of it.
fn locate(files: &[PathBuf], needle: &[u8]) -> (PathBuf, u64) {
    for f in files {
        if let Some(off) = find(&read_all(f), needle) {
            return (f.clone(), off as u64);
        }
    }
    panic!(
        "{:?} not found in any of {files:?} (are values stored uncompressed?)",
        String::from_utf8_lossy(needle)
    );
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn flipped_byte_in_the_middle_of_the_wal_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let mut rng = Rng::new(1);
    let db = Db::open(dir.path(), options(&clock)).expect("open");
    write_keys(&db, "w", 100, &mut rng);
    db.close().expect("close");

    let wals = files_in(dir.path(), "wal", ".log");
    assert!(!wals.is_empty(), "no WAL segment under wal/");
    let (wal, off) = locate(&wals, &marker("w", 50));
    flip_byte(&wal, off + 4);

    match Db::open(dir.path(), options(&clock)) {
        Ok(_) => panic!("open succeeded over a WAL damaged in its middle: writes after it would be silently lost"),
        Err(e) => {
            assert!(e.is_corruption(), "expected a corruption error, got {e:?}");
            assert!(
                e.to_string().contains(&file_name(&wal)),
                "the error does not name {}: {e}",
                wal.display()
            );
        }
    }
}

#[test]
fn torn_last_wal_frame_is_dropped_and_earlier_writes_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let mut rng = Rng::new(2);
    let db = Db::open(dir.path(), options(&clock)).expect("open");
    let values = write_keys(&db, "t", 100, &mut rng);
    db.close().expect("close");

    // Cut the file in the middle of the last record's value: its frame is torn.
    let (wal, off) = locate(&files_in(dir.path(), "wal", ".log"), &marker("t", 99));
    truncate(&wal, off + 6);

    let db = Db::open(dir.path(), options(&clock)).expect("open after a torn tail");
    for (i, v) in values.iter().enumerate().take(99) {
        let got = db.get(&key("t", i)).expect("get");
        assert_eq!(got.and_then(|r| r.value), Some(v.clone()), "key t-{i:03}");
    }
    assert_eq!(
        db.get(&key("t", 99)).expect("get"),
        None,
        "the torn write must not appear"
    );
    // The engine keeps working after recovering from a torn tail, across another reopen.
    db.put(b"after", Record::value(Version::new(500, 0), "x"))
        .expect("put after recovery");
    db.close().expect("close");
    let db = Db::open(dir.path(), options(&clock)).expect("second open");
    assert!(db.get(b"after").expect("get").is_some());
    assert!(db.get(&key("t", 98)).expect("get").is_some());
    db.close().expect("close");
}

/// Two flushed tables: `a-*` keys in one, `b-*` keys in the other. Returns their values.
fn two_tables(dir: &Path, clock: &TestClock) -> (Vec<Bytes>, Vec<Bytes>) {
    let mut rng = Rng::new(3);
    let db = Db::open(dir, options(clock)).expect("open");
    let a = write_keys(&db, "a", 200, &mut rng);
    db.flush().expect("flush a");
    let b = write_keys(&db, "b", 200, &mut rng);
    db.flush().expect("flush b");
    db.close().expect("close");
    (a, b)
}

#[test]
fn flipped_byte_in_a_table_block_fails_reads_of_that_block_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let (a, b) = two_tables(dir.path(), &clock);
    let tables = files_in(dir.path(), "tables", ".sst");
    assert!(tables.len() >= 2, "expected two tables, found {tables:?}");
    let (table, off) = locate(&tables, &marker("a", 100));
    let (b_table, _) = locate(&tables, &marker("b", 100));
    assert_ne!(table, b_table, "a-* and b-* keys share a table");
    flip_byte(&table, off + 6);

    let db = Db::open(dir.path(), options(&clock)).expect("open: data blocks are read lazily");
    let err = db
        .get(&key("a", 100))
        .expect_err("get of the damaged block must fail");
    assert!(
        err.is_corruption(),
        "expected a corruption error, got {err:?}"
    );
    assert!(
        err.to_string().contains(&file_name(&table)),
        "the error does not name {}: {err}",
        table.display()
    );
    let err = db
        .get_record(&key("a", 100))
        .expect_err("get_record of the damaged block must fail");
    assert!(
        err.is_corruption(),
        "expected a corruption error, got {err:?}"
    );

    // Every other a-* key reads its value or fails; only a block's worth may fail.
    let mut failed = 0;
    for (i, v) in a.iter().enumerate() {
        match db.get(&key("a", i)) {
            Ok(got) => assert_eq!(
                got.and_then(|r| r.value),
                Some(v.clone()),
                "key a-{i:03}: wrong value"
            ),
            Err(e) => {
                assert!(e.is_corruption(), "key a-{i:03}: {e:?}");
                failed += 1;
            }
        }
    }
    assert!(
        failed <= 8,
        "{failed} keys failed: more than the damaged block holds"
    );
    // The other table is untouched.
    for (i, v) in b.iter().enumerate() {
        let got = db
            .get(&key("b", i))
            .unwrap_or_else(|e| panic!("key b-{i:03}: {e}"));
        assert_eq!(got.and_then(|r| r.value), Some(v.clone()), "key b-{i:03}");
    }

    // A range over the damaged block reports the error; what it yields before is correct.
    let mut saw_error = false;
    let range = db
        .range(
            Bound::Included(&key("a", 0)[..]),
            Bound::Excluded(&b"b"[..]),
        )
        .map_err(|e| assert!(e.is_corruption(), "range: {e:?}"));
    if let Ok(range) = range {
        for item in range {
            match item {
                Ok((k, r)) => {
                    let i: usize = String::from_utf8_lossy(&k[2..]).parse().expect("a-NNN key");
                    assert_eq!(
                        r.value,
                        Some(a[i].clone()),
                        "range: wrong value for a-{i:03}"
                    );
                }
                Err(e) => {
                    assert!(e.is_corruption(), "range: {e:?}");
                    saw_error = true;
                    break;
                }
            }
        }
    } else {
        saw_error = true;
    }
    assert!(
        saw_error,
        "a range over the damaged block finished without an error"
    );

    let b_range: Vec<_> = db
        .range(Bound::Included(&b"b"[..]), Bound::Unbounded)
        .expect("range over b-*")
        .collect::<Result<_, _>>()
        .expect("the undamaged table reads");
    assert_eq!(b_range.len(), b.len());
    db.close().expect("close");
}

#[test]
fn deleted_table_is_reported_as_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    two_tables(dir.path(), &clock);
    let (table, _) = locate(&files_in(dir.path(), "tables", ".sst"), &marker("a", 100));
    fs::remove_file(&table).expect("delete the table");

    match Db::open(dir.path(), options(&clock)) {
        Err(Error::MissingFile { path }) => {
            assert_eq!(
                file_name(&path),
                file_name(&table),
                "wrong file named: {}",
                path.display()
            )
        }
        Err(e) => panic!("expected MissingFile, got {e:?}"),
        Ok(db) => match db.get(&key("a", 100)) {
            Err(Error::MissingFile { path }) => assert_eq!(file_name(&path), file_name(&table)),
            other => panic!(
                "open succeeded without {}, and a read of it gave {other:?}",
                table.display()
            ),
        },
    }
}

#[test]
fn damaged_current_fails_open_instead_of_starting_empty() {
    let clock = TestClock::new(1_000);
    for garbage in [&b"MANIFEST-999999\n"[..], &[0xFFu8, 0x00, 0x13, 0x37][..]] {
        let dir = tempfile::tempdir().expect("tempdir");
        two_tables(dir.path(), &clock);
        let current = dir.path().join("CURRENT");
        assert!(current.is_file(), "no CURRENT file");
        fs::write(&current, garbage).expect("overwrite CURRENT");
        if let Ok(db) = Db::open(dir.path(), options(&clock)) {
            let n = db
                .range(Bound::Unbounded, Bound::Unbounded)
                .map(|r| r.count())
                .unwrap_or(0);
            panic!("open succeeded with CURRENT = {garbage:?} ({n} keys visible)");
        }
    }
}
