//! The [`Storage`] conformance suite, run against every implementation (today the real
//! `ringkv-lsm` engine in a tempdir).

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_lsm::{Db, Options, ReadMode, Record, Stats, Version};

use crate::clock::{Clock, ManualClock};
use crate::error::ClusterError;
use crate::storage::{key, SlotKey, SlotRecord, Storage};

const NOW_MS: u64 = 1_000_000;

fn v(hlc: u64) -> Version {
    Version::new(hlc, 1)
}

fn rec(slot: u16, key: &str, record: Record) -> SlotRecord {
    SlotRecord {
        slot,
        key: Bytes::copy_from_slice(key.as_bytes()),
        record,
    }
}

fn keys<S: Storage>(iter: S::Iter) -> Vec<(u16, String)> {
    iter.map(|r| {
        let r = r.expect("range item");
        (r.slot, String::from_utf8_lossy(&r.key).into_owned())
    })
    .collect()
}

/// Every [`Storage`] must pass this. `clock` is the clock the storage reads for expiry.
fn conformance_suite<S: Storage>(s: &S, clock: &ManualClock) {
    assert_eq!(s.max_hlc().expect("max_hlc"), 0, "nothing stored yet");
    // The highest version wins, whatever the arrival order.
    s.put(5, "k".into(), Record::value(v(20), "new"))
        .expect("put");
    s.put(5, "k".into(), Record::value(v(10), "old"))
        .expect("put");
    let got = s.get(5, b"k").expect("get").expect("present");
    assert_eq!((got.version, got.value), (v(20), Some(Bytes::from("new"))));
    assert_eq!(s.get(6, b"k").expect("get"), None, "slots are separate");

    // Tombstones and expired values are returned by `get` as records.
    s.put(5, "k".into(), Record::tombstone(v(30)))
        .expect("delete");
    assert_eq!(s.max_hlc().expect("max_hlc"), 30, "tombstones count");
    assert!(s
        .get(5, b"k")
        .expect("get")
        .expect("tombstone")
        .is_tombstone());
    s.put(5, "e".into(), Record::expiring(v(1), "x", NOW_MS + 10))
        .expect("put");
    clock.advance(10);
    assert!(!s
        .get(5, b"e")
        .expect("get")
        .expect("expired")
        .is_live(clock.now_ms()));

    // An atomic batch across slots; ranges are slot-major, then by key.
    s.write(vec![
        rec(7, "b", Record::value(v(1), "1")),
        rec(7, "a", Record::value(v(1), "2")),
        rec(8, "a", Record::value(v(1), "3")),
        rec(300, "0", Record::value(v(1), "4")),
    ])
    .expect("batch");
    let all = s
        .range(
            Bound::Included(SlotKey::slot_start(0)),
            key::user_keyspace_end(),
            ReadMode::Live,
        )
        .expect("range");
    assert_eq!(
        keys::<S>(all),
        vec![
            (7, "a".into()),
            (7, "b".into()),
            (8, "a".into()),
            (300, "0".into())
        ]
    );
    let with_dead = s
        .slot_range(5, Bound::Unbounded, Bound::Unbounded, ReadMode::AllRecords)
        .expect("range");
    assert_eq!(keys::<S>(with_dead), vec![(5, "e".into()), (5, "k".into())]);

    // Bounds within a slot, and an exclusive start resuming after a key.
    let b_only = s
        .slot_range(
            7,
            Bound::Excluded(b"a"),
            Bound::Included(b"b"),
            ReadMode::Live,
        )
        .expect("range");
    assert_eq!(keys::<S>(b_only), vec![(7, "b".into())]);
    let after = s
        .range(
            Bound::Excluded(SlotKey::new(7, b"b")),
            key::user_keyspace_end(),
            ReadMode::Live,
        )
        .expect("range");
    assert_eq!(keys::<S>(after), vec![(8, "a".into()), (300, "0".into())]);

    // Counting is exact and live-only.
    assert_eq!(s.count_in_slot(7).expect("count"), 2);
    assert_eq!(s.count_in_slot(5).expect("count"), 0);
    assert_eq!(s.count_in_slot(9).expect("count"), 0);

    // System prefixes stay out of the user keyspace.
    s.put(crate::slot::SLOTS, "sys".into(), Record::value(v(1), "x"))
        .expect("put");
    let user = s
        .range(
            Bound::Excluded(SlotKey::new(300, b"0")),
            key::user_keyspace_end(),
            ReadMode::Live,
        )
        .expect("range");
    assert!(keys::<S>(user).is_empty());
    assert_eq!(s.count_in_slot(crate::slot::SLOTS).expect("count"), 1);
    assert_eq!(s.count_in_slot(u16::MAX).expect("count"), 0);

    check_get_many(s);
}

/// `get_many` answers exactly what `get` answers key by key, in the order asked.
fn check_get_many<S: Storage>(s: &S) {
    let asked: Vec<(u16, Bytes)> = [
        (7, "b"),
        (5, "k"),
        (6, "k"),
        (5, "e"),
        (7, "a"),
        (300, "0"),
        (crate::slot::SLOTS, "sys"),
        (7, "missing"),
        (7, "b"),
        (7, ""),
    ]
    .into_iter()
    .map(|(slot, k)| (slot, Bytes::copy_from_slice(k.as_bytes())))
    .collect();
    let many = s.get_many(&asked).expect("get_many");
    let one_by_one: Vec<_> = asked
        .iter()
        .map(|(slot, k)| s.get(*slot, k).expect("get"))
        .collect();
    assert_eq!(many, one_by_one);
    let value = |i: usize| many[i].as_ref().and_then(|r| r.value.clone());
    assert_eq!(value(0), Some(Bytes::from("1")));
    assert!(many[1].as_ref().expect("tombstone").is_tombstone());
    assert_eq!(many[2], None, "slots are separate");
    assert_eq!(value(4), Some(Bytes::from("2")));
    assert_eq!(value(6), Some(Bytes::from("x")));
    assert_eq!((&many[7], &many[9]), (&None, &None));
    assert_eq!(many[8], many[0]);
    assert!(s.get_many(&[]).expect("no keys").is_empty());
    for (i, one) in asked.iter().enumerate() {
        let alone = s.get_many(std::slice::from_ref(one)).expect("one key");
        assert_eq!(
            alone,
            vec![many[i].clone()],
            "a lone key reads as in a batch"
        );
    }
}

/// [`Db`] behind the trait's default `get_many`, which asks `get` key by key.
struct PerKey(Db);

impl Storage for PerKey {
    type Iter = <Db as Storage>::Iter;

    fn get(&self, slot: u16, key: &[u8]) -> Result<Option<Record>, ClusterError> {
        Storage::get(&self.0, slot, key)
    }

    fn write(&self, records: Vec<SlotRecord>) -> Result<(), ClusterError> {
        Storage::write(&self.0, records)
    }

    fn range(
        &self,
        start: Bound<SlotKey<'_>>,
        end: Bound<SlotKey<'_>>,
        mode: ReadMode,
    ) -> Result<Self::Iter, ClusterError> {
        Storage::range(&self.0, start, end, mode)
    }

    fn stats(&self) -> Stats {
        Storage::stats(&self.0)
    }

    fn max_hlc(&self) -> Result<u64, ClusterError> {
        Storage::max_hlc(&self.0)
    }

    fn shutdown(&self) -> Result<(), ClusterError> {
        Storage::shutdown(&self.0)
    }
}

#[test]
fn default_get_many_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let engine_clock = Arc::clone(&clock);
    let opts = Options::default().with_now_ms(Arc::new(move || engine_clock.now_ms()));
    let s = PerKey(Db::open(dir.path(), opts).expect("open"));
    conformance_suite(&s, &clock);
    s.shutdown().expect("shutdown");
}

#[test]
fn lsm_engine_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let engine_clock = Arc::clone(&clock);
    let opts = Options::default().with_now_ms(Arc::new(move || engine_clock.now_ms()));
    let db = Db::open(dir.path(), opts).expect("open");
    conformance_suite(&db, &clock);
    // And again after the data moved from the memtable to tables.
    db.flush().expect("flush");
    check_get_many(&db);
    let got = Storage::get(&db, 7, b"a").expect("get").expect("present");
    assert_eq!(got.value, Some(Bytes::from("2")));
    assert_eq!(db.count_in_slot(7).expect("count"), 2);
    Storage::shutdown(&db).expect("shutdown");
    assert!(
        Storage::get(&db, 7, b"a").is_err(),
        "closed engines refuse reads"
    );
    assert!(
        db.get_many(&[(7, Bytes::from("a"))]).is_err(),
        "closed engines refuse multi-key reads"
    );
}
