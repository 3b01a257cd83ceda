//! Limits and misuse: oversize keys and values are refused with a typed error and leave no
//! trace, a locked directory cannot be opened twice, bad options are refused by name, and a
//! closed engine says so.

mod common;

use std::ops::Bound;
use std::path::Path;

use bytes::Bytes;
use common::{tiny_options, TestClock};
use ringkv_lsm::{Db, Error, FsyncMode, Options, Record, Version, WriteBatch};

const MAX_KEY: usize = 16;
const MAX_VALUE: usize = 100;

fn options(clock: &TestClock) -> Options {
    Options {
        max_key_bytes: MAX_KEY,
        max_value_bytes: MAX_VALUE,
        ..tiny_options(clock, 512)
    }
}

fn v(hlc: u64) -> Version {
    Version::new(hlc, 0)
}

fn all_keys(db: &Db) -> Vec<Bytes> {
    db.range_with(
        Bound::Unbounded,
        Bound::Unbounded,
        ringkv_lsm::ReadMode::AllRecords,
    )
    .expect("range")
    .map(|r| r.expect("range item").0)
    .collect()
}

fn reopen(db: Db, dir: &Path, clock: &TestClock) -> Db {
    db.close().expect("close");
    Db::open(dir, options(clock)).expect("reopen")
}

#[test]
fn oversize_key_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let db = Db::open(dir.path(), options(&clock)).expect("open");
    let long = vec![b'k'; MAX_KEY + 1];

    match db.put(&long, Record::value(v(1), "x")) {
        Err(Error::KeyTooLarge { len, max }) => assert_eq!((len, max), (MAX_KEY + 1, MAX_KEY)),
        other => panic!("expected KeyTooLarge, got {other:?}"),
    }
    assert!(matches!(
        db.put(&long, Record::tombstone(v(2))),
        Err(Error::KeyTooLarge { .. })
    ));
    // Exactly at the limit is fine.
    db.put(&long[..MAX_KEY], Record::value(v(3), "y"))
        .expect("a key at the limit");
    assert_eq!(
        all_keys(&db),
        vec![Bytes::copy_from_slice(&long[..MAX_KEY])]
    );
    let db = reopen(db, dir.path(), &clock);
    assert_eq!(
        all_keys(&db),
        vec![Bytes::copy_from_slice(&long[..MAX_KEY])]
    );
    db.close().expect("close");
}

#[test]
fn oversize_value_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let db = Db::open(dir.path(), options(&clock)).expect("open");

    match db.put(b"big", Record::value(v(1), vec![0u8; MAX_VALUE + 1])) {
        Err(Error::ValueTooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_VALUE + 1, MAX_VALUE))
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(db.get_record(b"big").expect("get_record"), None);
    db.put(b"edge", Record::value(v(2), vec![7u8; MAX_VALUE]))
        .expect("a value at the limit");
    let db = reopen(db, dir.path(), &clock);
    assert_eq!(all_keys(&db), vec![Bytes::from_static(b"edge")]);
    assert_eq!(
        db.get(b"edge").expect("get").and_then(|r| r.value),
        Some(Bytes::from(vec![7u8; MAX_VALUE]))
    );
    db.close().expect("close");
}

#[test]
fn a_batch_with_one_oversize_record_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let db = Db::open(dir.path(), options(&clock)).expect("open");
    let mut batch = WriteBatch::new();
    batch.put(Bytes::from_static(b"ok-1"), Record::value(v(1), "a"));
    batch.put(Bytes::from_static(b"ok-2"), Record::value(v(1), "b"));
    batch.put(
        Bytes::from_static(b"too-big"),
        Record::value(v(1), vec![0u8; MAX_VALUE + 1]),
    );
    assert_eq!(batch.len(), 3);
    assert!(matches!(db.write(batch), Err(Error::ValueTooLarge { .. })));
    assert!(
        all_keys(&db).is_empty(),
        "part of a refused batch was written"
    );
    let db = reopen(db, dir.path(), &clock);
    assert!(
        all_keys(&db).is_empty(),
        "part of a refused batch was logged"
    );
    db.close().expect("close");
}

#[test]
fn second_open_of_a_directory_is_locked_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let db = Db::open(dir.path(), options(&clock)).expect("open");
    match Db::open(dir.path(), options(&clock)) {
        Err(Error::Locked { path }) => assert!(
            path.starts_with(dir.path()),
            "Locked names {} instead of the data directory",
            path.display()
        ),
        Err(e) => panic!("expected Locked, got {e:?}"),
        Ok(_) => panic!("a second engine opened a directory that is in use"),
    }
    db.put(b"k", Record::value(v(1), "v"))
        .expect("the first engine still works");
    db.close().expect("close");
    let db = Db::open(dir.path(), options(&clock)).expect("open after close");
    assert!(db.get(b"k").expect("get").is_some());
    drop(db);
    // Drop releases the lock too.
    let db = Db::open(dir.path(), options(&clock)).expect("open after drop");
    db.close().expect("close");
}

#[test]
fn bad_options_are_refused_by_name() {
    let clock = TestClock::new(1_000);
    let cases: Vec<(&str, Options)> = vec![
        (
            "memtable_bytes",
            Options {
                memtable_bytes: 1024,
                ..options(&clock)
            },
        ),
        (
            "block_bytes",
            Options {
                block_bytes: 16,
                ..options(&clock)
            },
        ),
        (
            "num_levels",
            Options {
                num_levels: 1,
                ..options(&clock)
            },
        ),
        (
            "fsync_interval_ms",
            options(&clock).with_fsync(FsyncMode::Periodic { interval_ms: 0 }),
        ),
        (
            "table_target_bytes",
            Options {
                table_target_bytes: 1,
                ..options(&clock)
            },
        ),
    ];
    for (name, opts) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        match Db::open(dir.path(), opts) {
            Err(Error::Config { option, reason }) => {
                assert_eq!(option, name, "wrong option named ({reason})")
            }
            Err(e) => panic!("{name}: expected a Config error, got {e:?}"),
            Ok(_) => panic!("{name}: bad option accepted"),
        }
    }
}

#[test]
fn a_closed_engine_refuses_work_from_other_handles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(1_000);
    let db = Db::open(dir.path(), options(&clock)).expect("open");
    let other = db.clone();
    db.put(b"k", Record::value(v(1), "v")).expect("put");
    db.close().expect("close");
    assert!(matches!(
        other.put(b"k2", Record::value(v(2), "v")),
        Err(Error::Closed)
    ));
    assert!(matches!(other.get(b"k"), Err(Error::Closed)));
    drop(other);
    let db = Db::open(dir.path(), options(&clock)).expect("reopen");
    assert!(db.get(b"k").expect("get").is_some());
    assert_eq!(db.get(b"k2").expect("get"), None);
    db.close().expect("close");
}
