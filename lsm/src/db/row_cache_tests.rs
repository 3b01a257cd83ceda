//! The row cache inside the engine: every table-set change (flush, compaction, expired-table
//! drop) keeps its answers right, fills from a view that is no longer current are refused,
//! and reads at an older sequence number never see a newer cached record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Db, Options, Record, Version};

fn v(n: u64) -> Version {
    Version::new(n << 16, 1)
}

fn open(dir: &std::path::Path, clock: &Arc<AtomicU64>, row_cache_bytes: usize) -> Db {
    let engine_clock = Arc::clone(clock);
    let opts = Options::default()
        .with_background_work(false)
        .with_gc_grace_ms(0)
        .with_row_cache_bytes(row_cache_bytes)
        .with_now_ms(Arc::new(move || engine_clock.load(Ordering::SeqCst)));
    Db::open(dir, opts).expect("open")
}

fn value_of(db: &Db, key: &[u8]) -> Option<Vec<u8>> {
    db.get(key)
        .expect("get")
        .and_then(|r| r.value)
        .map(|v| v.to_vec())
}

#[test]
fn repeated_reads_hit_and_a_flush_updates_the_keys_it_adds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"k", Record::value(v(1), "old")).expect("put");
    db.put(b"other", Record::value(v(1), "x")).expect("put");
    db.flush().expect("flush");

    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"old"[..]));
    assert_eq!(value_of(&db, b"absent"), None);
    let probed = db.stats().get_tables_probed;
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"old"[..]));
    assert_eq!(value_of(&db, b"absent"), None);
    // The flush put `k` in the (empty) cache: both reads of it hit; `absent` misses once.
    let st = db.stats();
    assert_eq!((st.row_cache_hits, st.row_cache_misses), (3, 1));
    assert_eq!(st.get_tables_probed, probed, "hits do not probe tables");
    assert!(st.row_cache_bytes > 0);

    // A newer write reaches the tables only through a flush, which must bring the cached
    // answer up to date: the memtable that answered until now is gone from the view
    // afterwards. The keys stay cached (a read after the flush hits).
    db.put(b"k", Record::value(v(2), "new")).expect("put");
    db.put(b"absent", Record::value(v(2), "here")).expect("put");
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"new"[..]));
    db.flush().expect("flush");
    let hits = db.stats().row_cache_hits;
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"new"[..]));
    assert_eq!(value_of(&db, b"absent").as_deref(), Some(&b"here"[..]));
    assert_eq!(
        db.stats().row_cache_hits,
        hits + 2,
        "refreshed, not forgotten"
    );
    // Keys the flush did not touch keep their answers.
    let hits = db.stats().row_cache_hits;
    assert_eq!(value_of(&db, b"other").as_deref(), Some(&b"x"[..]));
    assert_eq!(
        db.stats().row_cache_hits,
        hits + 1,
        "`other`, cached by the first flush"
    );
}

#[test]
fn a_fill_computed_before_a_flush_is_refused_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"k", Record::value(v(1), "old")).expect("put");
    db.flush().expect("flush");
    // A reader takes the view and computes the tables' answer...
    let before = db.inner.view();
    let stale = db
        .inner
        .get_at(&before, b"k", u64::MAX, None)
        .expect("read")
        .map(|r| {
            (
                r.version,
                crate::record::Entry {
                    seqno: 1,
                    expire_at_ms: r.expire_at_ms,
                    value: r.value,
                },
            )
        });
    // ...a newer write is flushed meanwhile (forgetting `k`, which is not cached yet)...
    db.put(b"k", Record::value(v(2), "new")).expect("put");
    db.flush().expect("flush");
    // ...and the reader's fill lands late: the epoch has moved on, so it is dropped.
    db.inner.row_cache.fill(b"k", before.tables_epoch, &stale);
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"new"[..]));
}

#[test]
fn compaction_forgets_the_winners_it_removes_or_rewrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"deleted", Record::value(v(1), "x")).expect("put");
    db.put(b"expiring", Record::expiring(v(1), "y", 1_000_500))
        .expect("put");
    db.flush().expect("flush");
    db.put(b"deleted", Record::tombstone(v(2))).expect("delete");
    db.flush().expect("flush");
    clock.store(1_000_400, Ordering::SeqCst);
    // Cached: a tombstone and a live value.
    assert!(db
        .get_record(b"deleted")
        .expect("get")
        .is_some_and(|r| r.is_tombstone()));
    assert!(db.get(b"expiring").expect("get").is_some());
    assert!(db.get_record(b"deleted").expect("get").is_some());

    // Past expiry and grace 0: the full compaction removes both winners for good.
    clock.store(1_000_600, Ordering::SeqCst);
    db.compact().expect("compact");
    assert_eq!(db.get_record(b"deleted").expect("get"), None);
    assert_eq!(db.get_record(b"expiring").expect("get"), None);
}

#[test]
fn dropping_an_expired_table_forgets_its_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"session", Record::expiring(v(0), "token", 5_000))
        .expect("put");
    db.flush().expect("flush");
    assert!(db.get(b"session").expect("get").is_some());
    clock.store(6_000, Ordering::SeqCst);
    assert!(db.inner.compact_step().expect("step"));
    assert_eq!(db.stats().expired_tables_dropped, 1);
    assert_eq!(db.get_record(b"session").expect("get"), None);
}

#[test]
fn older_reads_never_see_a_newer_cached_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"k", Record::value(v(1), "old")).expect("put");
    db.flush().expect("flush");
    let snapshot = db.snapshot();
    // A latest-seqno read that took its view and seqno before the write below.
    let view = db.inner.view();
    let seqno = db.inner.visible_seqno.load(Ordering::Acquire);

    db.put(b"k", Record::value(v(2), "new")).expect("put");
    db.flush().expect("flush");
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"new"[..]));
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"new"[..]));
    assert!(db.stats().row_cache_hits > 0, "the newer record is cached");

    let old = |r: Option<Record>| r.and_then(|r| r.value).map(|v| v.to_vec());
    assert_eq!(
        old(snapshot.get(b"k").expect("snapshot get")).as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        old(db
            .inner
            .get_at(&view, b"k", seqno, Some(seqno))
            .expect("get"))
        .as_deref(),
        Some(&b"old"[..])
    );
}

#[test]
fn batched_reads_use_the_cache_and_agree_with_an_engine_without_one() {
    let clock = Arc::new(AtomicU64::new(1_000));
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let dbs = [
        open(dirs[0].path(), &clock, 1 << 20),
        open(dirs[1].path(), &clock, 0),
    ];
    for db in &dbs {
        for i in 0..30u64 {
            let key = format!("k{i:02}");
            db.put(key.as_bytes(), Record::value(v(1), format!("t-{i}")))
                .expect("put");
        }
        db.flush().expect("flush");
        for i in (0..30u64).step_by(4) {
            let key = format!("k{i:02}");
            db.put(key.as_bytes(), Record::tombstone(v(2)))
                .expect("delete");
        }
        db.put(b"k01", Record::value(v(3), "mem")).expect("put");
    }
    let names: Vec<String> = (0..35u64).map(|i| format!("k{i:02}")).collect();
    let keys: Vec<&[u8]> = names.iter().map(|k| k.as_bytes()).collect();
    for round in 0..2 {
        let cached = dbs[0].get_records(&keys).expect("get_records");
        let plain = dbs[1].get_records(&keys).expect("get_records");
        assert_eq!(cached, plain, "round {round}");
    }
    // The flush cached the 30 keys it wrote. Both rounds hit for every key but the nine the
    // memtable answers with a version newer than any table's (those skip the tables and the
    // cache), except that the five never-written keys miss once, then hit as cached absences.
    let st = dbs[0].stats();
    assert_eq!(
        (st.row_cache_hits, st.row_cache_misses),
        (2 * (keys.len() as u64 - 9) - 5, 5),
        "{st:?}"
    );
    assert_eq!(
        dbs[1].stats().row_cache_hits + dbs[1].stats().row_cache_misses,
        0
    );
}

#[test]
fn a_batch_racing_a_multi_key_read_is_seen_whole_or_not_at_all_through_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"x", Record::value(v(1), "x")).expect("put");
    // get_records: view loaded here...
    let before = db.inner.visible_seqno.load(Ordering::Acquire);
    let view = db.inner.view();
    // ...a memtable switch and a batch land before its seqno load.
    db.inner.switch_memtable_if_not_empty().expect("switch");
    let mut batch = crate::WriteBatch::new();
    batch.put(&b"a"[..], Record::value(v(2), "a"));
    batch.put(&b"b"[..], Record::value(v(2), "b"));
    db.write(batch).expect("write");
    let seqno = db.inner.visible_seqno.load(Ordering::Acquire);
    db.flush().expect("flush");
    assert!(db.get(b"a").expect("get").is_some()); // another reader fills `a`
    let a = db
        .inner
        .get_at(&view, b"a", seqno, Some(before))
        .expect("a");
    let b = db
        .inner
        .get_at(&view, b"b", seqno, Some(before))
        .expect("b");
    assert_eq!(a.is_some(), b.is_some(), "torn batch: a={a:?} b={b:?}");
}

#[test]
fn a_flush_adds_a_key_only_when_no_older_table_holds_a_newer_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(AtomicU64::new(1_000));
    let db = open(dir.path(), &clock, 1 << 20);
    db.put(b"k", Record::value(v(10), "newer")).expect("put");
    db.flush().expect("flush");
    db.inner.row_cache.clear();
    // An older version arrives late (a hint, a repair) with an unrelated newer write.
    db.put(b"k", Record::value(v(5), "older")).expect("put");
    db.put(b"j", Record::value(v(11), "j")).expect("put");
    db.put(b"gone", Record::tombstone(v(11))).expect("put");
    db.flush().expect("flush");
    let hits = db.stats().row_cache_hits;
    // `j` was added by the flush (a hit); `k` was not (its table answer is the older table's
    // newer version, which the flush must not shadow); the tombstone was not added.
    assert_eq!(value_of(&db, b"j").as_deref(), Some(&b"j"[..]));
    assert_eq!(db.stats().row_cache_hits, hits + 1);
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"newer"[..]));
    assert_eq!(db.stats().row_cache_hits, hits + 1, "`k` was not added");
    assert_eq!(value_of(&db, b"gone"), None);
    assert_eq!(
        db.stats().row_cache_hits,
        hits + 1,
        "tombstones are not added"
    );
    // Both now cached by the reads; a re-delivered equal version and a compaction keep them.
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"newer"[..]));
    db.put(b"k", Record::value(v(10), "newer")).expect("put");
    db.flush().expect("flush");
    db.compact().expect("compact");
    assert_eq!(value_of(&db, b"k").as_deref(), Some(&b"newer"[..]));
    assert_eq!(value_of(&db, b"j").as_deref(), Some(&b"j"[..]));
}
