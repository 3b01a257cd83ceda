//! Unit and property tests of the memtable: the ordered map, the point index and the
//! iterator against each other and against a `BTreeMap` model.

use proptest::prelude::*;

use super::key::INLINE_KEY_BYTES;
use super::*;

fn get(m: &Memtable, key: &[u8], snapshot: u64) -> Option<(Version, Entry)> {
    m.get(key, hash_key(key), snapshot)
}

fn put(m: &Memtable, key: &str, hlc: u64, seqno: u64, value: &str) {
    m.insert(
        InternalKey::new(Bytes::copy_from_slice(key.as_bytes()), Version::new(hlc, 0)),
        Entry {
            seqno,
            expire_at_ms: 0,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
        },
    );
}

#[test]
fn get_returns_highest_visible_version() {
    let m = Memtable::new(1);
    put(&m, "k", 5, 1, "five");
    put(&m, "k", 3, 2, "three-late");
    put(&m, "k", 9, 3, "nine");
    assert_eq!(get(&m, b"k", u64::MAX).map(|(v, _)| v.hlc), Some(9));
    assert_eq!(get(&m, b"k", 2).map(|(v, _)| v.hlc), Some(5));
    assert!(get(&m, b"k", 0).is_none());
    assert!(get(&m, b"kk", u64::MAX).is_none());
    assert_eq!((m.min_hlc(), m.max_seqno()), (3, 3));
    assert_eq!(m.max_hlc(), Some(9));
    assert_eq!(Memtable::new(2).max_hlc(), None);
}

#[test]
fn short_and_long_keys_interleave_in_byte_order() {
    let m = Arc::new(Memtable::new(1));
    let long_a = format!("b{}", "a".repeat(INLINE_KEY_BYTES));
    let long_z = format!("b{}", "z".repeat(INLINE_KEY_BYTES));
    for key in ["c", &long_z, "a", &long_a, "b", "bb"] {
        put(&m, key, 1, 1, key);
    }
    let mut it = m.iter(Bound::Unbounded);
    let mut seen = Vec::new();
    while let Some((k, _, e)) = it.current() {
        assert_eq!(e.value.as_deref(), Some(k));
        seen.push(String::from_utf8_lossy(k).to_string());
        it.advance().expect("memtable iteration does not fail");
    }
    let mut want = vec!["c", &long_z, "a", &long_a, "b", "bb"];
    want.sort_unstable();
    assert_eq!(seen, want);
    assert!(get(&m, long_a.as_bytes(), u64::MAX).is_some());
    assert!(get(&m, &long_a.as_bytes()[..INLINE_KEY_BYTES], u64::MAX).is_none());
}

#[test]
fn duplicate_delivery_keeps_the_first_arrival() {
    let m = Memtable::new(1);
    put(&m, "k", 5, 1, "first");
    put(&m, "k", 5, 7, "again");
    let (_, e) = get(&m, b"k", u64::MAX).expect("present");
    assert_eq!(e.seqno, 1);
}

#[test]
fn iterates_across_refills_from_a_bound() {
    let m = Arc::new(Memtable::new(1));
    for i in 0..200u64 {
        put(&m, &format!("key{i:04}"), 1, i, "v");
        put(&m, &format!("key{i:04}"), 2, 1000 + i, "v2");
    }
    let mut it = m.iter(Bound::Excluded(b"key0009".as_slice()));
    let mut n = 0;
    let mut first = None;
    while let Some((k, _, _)) = it.current() {
        if first.is_none() {
            first = Some(k.to_vec());
        }
        n += 1;
        it.advance().expect("memtable iteration does not fail");
    }
    assert_eq!(first.as_deref(), Some(b"key0010".as_slice()));
    assert_eq!(n, 2 * 190);
}

#[test]
fn a_snapshot_older_than_the_newest_entry_finds_the_older_version() {
    let m = Memtable::new(1);
    put(&m, "k", 5, 10, "old");
    put(&m, "k", 7, 11, "new");
    // The index holds hlc 7 (seqno 11); a snapshot at 10 must go past it to hlc 5.
    let (v, e) = get(&m, b"k", 10).expect("the older version is visible");
    assert_eq!((v.hlc, e.value.as_deref()), (5, Some(b"old".as_slice())));
    let (v, _) = get(&m, b"k", 11).expect("the newer version is visible");
    assert_eq!(v.hlc, 7);
    assert!(get(&m, b"k", 9).is_none());
}

#[test]
fn emptiness_and_size_follow_inserts_not_duplicates() {
    let m = Memtable::new(1);
    assert!(m.is_empty());
    assert_eq!(m.approximate_bytes(), 0);
    put(&m, "k", 5, 1, "v");
    assert!(!m.is_empty());
    let one = m.approximate_bytes();
    let entry = get(&m, b"k", u64::MAX).expect("present").1;
    let entry_bytes = 1 + Version::ENCODED_LEN + entry.approximate_size() + MAP_ENTRY_OVERHEAD;
    // The index's allocation is counted as allocated, not as a guess per key.
    assert!(m.index.allocated_bytes() > 0);
    assert_eq!(one, entry_bytes + m.index.allocated_bytes());
    put(&m, "k", 5, 2, "v");
    assert_eq!(m.approximate_bytes(), one, "a duplicate was counted");
}

#[test]
fn a_live_iterator_sees_later_writes_after_its_position() {
    let m = Arc::new(Memtable::new(1));
    for i in 0..100u64 {
        put(&m, &format!("key{i:04}"), 1, i + 1, "v");
    }
    let mut it = m.iter(Bound::Unbounded);
    let mut seen = 0;
    while let Some((k, _, _)) = it.current() {
        if k == b"key0001" {
            // Written while the iterator is open: the insert must not wait for it, and the
            // key sorts past the first refill, so the iterator reaches it.
            put(&m, "key0099a", 1, 1000, "late");
        }
        seen += 1;
        it.advance().expect("memtable iteration does not fail");
    }
    assert_eq!(seen, 101);
}

/// One write of the property test: key (an index into `KEYS`), HLC, tombstone or value.
fn op() -> impl Strategy<Value = (usize, u64, bool)> {
    (0..KEYS.len(), 0..5u64, any::<bool>())
}

/// Short keys, a prefix pair, and keys on both sides of the inline limit.
const KEYS: [&str; 7] = [
    "a",
    "ab",
    "b",
    "k",
    "kk",
    "long-key-just-past-inline-limit",
    "long-key-just-past-inline-limit-and-more",
];

proptest! {
    #[test]
    fn matches_a_btreemap_model(ops in prop::collection::vec(op(), 0..120)) {
        let m = Arc::new(Memtable::new(1));
        // Internal-key order: user key ascending, version descending; first arrival wins.
        let mut model: BTreeMap<(Vec<u8>, std::cmp::Reverse<Version>), Entry> = BTreeMap::new();
        for (seqno, (k, hlc, tombstone)) in ops.iter().enumerate() {
            let seqno = seqno as u64 + 1;
            let key = KEYS[*k].as_bytes();
            let version = Version::new(*hlc, 0);
            let entry = Entry {
                seqno,
                expire_at_ms: 0,
                value: (!tombstone).then(|| Bytes::from(format!("v{seqno}"))),
            };
            model
                .entry((key.to_vec(), std::cmp::Reverse(version)))
                .or_insert_with(|| entry.clone());
            m.insert(InternalKey::new(Bytes::copy_from_slice(key), version), entry);
        }
        prop_assert_eq!(m.is_empty(), model.is_empty());
        let top = ops.len() as u64 + 1;
        for key in KEYS.iter().map(|k| k.as_bytes()).chain([b"absent".as_slice()]) {
            for snapshot in (0..=top).chain([u64::MAX]) {
                let want = model
                    .range((key.to_vec(), std::cmp::Reverse(Version::new(u64::MAX, u32::MAX)))..)
                    .take_while(|((k, _), _)| k == key)
                    .find(|(_, e)| e.seqno <= snapshot)
                    .map(|((_, v), e)| (v.0, e.clone()));
                prop_assert_eq!(get(&m, key, snapshot), want, "key {:?} at {}", key, snapshot);
            }
        }
        let mut it = m.iter(Bound::Unbounded);
        let mut seen = Vec::new();
        while let Some((k, v, e)) = it.current() {
            seen.push(((k.to_vec(), std::cmp::Reverse(v)), e.clone()));
            it.advance().expect("memtable iteration does not fail");
        }
        // The flush's walk: each key's first entry in internal-key order, the rest counted.
        let mut newest = Vec::new();
        let skipped = m
            .for_each_newest(|k, v, e| {
                newest.push((k.to_vec(), v, e.clone()));
                Ok(())
            })
            .expect("the callback does not fail");
        let mut want_newest: Vec<(Vec<u8>, Version, Entry)> = Vec::new();
        for ((k, v), e) in &model {
            if want_newest.last().is_none_or(|(last, _, _)| last != k) {
                want_newest.push((k.clone(), v.0, e.clone()));
            }
        }
        prop_assert_eq!(skipped as usize, model.len() - want_newest.len());
        prop_assert_eq!(newest, want_newest);
        prop_assert_eq!(seen, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn for_each_newest_stops_at_the_first_error() {
    let m = Memtable::new(1);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        put(&m, key, 2, 2 * i as u64 + 1, "new");
        put(&m, key, 1, 2 * i as u64 + 2, "old");
    }
    let mut calls = Vec::new();
    let result = m.for_each_newest(|k, v, _| {
        calls.push((k.to_vec(), v.hlc));
        if k == b"b" {
            return Err(crate::error::Error::Closed);
        }
        Ok(())
    });
    assert!(matches!(result, Err(crate::error::Error::Closed)));
    assert_eq!(calls, vec![(b"a".to_vec(), 2), (b"b".to_vec(), 2)]);
}

#[test]
fn readers_at_the_published_seqno_see_every_entry_it_covers() {
    // As the engine does: one writer inserts, then publishes the seqno; readers read at the
    // published seqno while writes go on, and must find exactly the entry it covers.
    const WRITES: u64 = 20_000;
    let m = Arc::new(Memtable::new(1));
    let published = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (m, published) = (Arc::clone(&m), Arc::clone(&published));
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < WRITES {
                    seen = published.load(Ordering::Acquire);
                    if seen == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    // Seqno s wrote version s of key `s % 4`: the newest one at or below `seen`.
                    let key = format!("k{}", seen % 4);
                    let (v, e) = get(&m, key.as_bytes(), seen).expect("a published write");
                    assert_eq!((v.hlc, e.seqno), (seen, seen));
                    // And a snapshot one write older finds that key's previous version.
                    if seen > 4 {
                        let (v, _) = get(&m, key.as_bytes(), seen - 1).expect("older write");
                        assert_eq!(v.hlc, seen - 4);
                    }
                }
            })
        })
        .collect();
    for s in 1..=WRITES {
        put(&m, &format!("k{}", s % 4), s, s, "v");
        published.store(s, Ordering::Release);
    }
    for r in readers {
        r.join().expect("reader saw what was published");
    }
}
