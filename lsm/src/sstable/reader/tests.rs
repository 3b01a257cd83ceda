//! Builder + reader tests: tables written by [`SsTableBuilder`] read back against a `BTreeMap`
//! model, snapshots, compression, and damaged files.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::options::{Compression, Options};
use crate::record::InternalKey;
use crate::sstable::builder::SsTableBuilder;

type Model = BTreeMap<InternalKey, Entry>;

/// splitmix64: a tiny deterministic generator, so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn opts(compression: Compression) -> Options {
    Options {
        block_bytes: 512,
        block_restart_interval: 4,
        compression,
        ..Options::default()
    }
}

fn fresh_cache(bytes: usize) -> (Arc<BlockCache>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    (
        Arc::new(BlockCache::new(bytes, Arc::clone(&counters))),
        counters,
    )
}

fn write_table(path: &Path, id: u64, opts: &Options, model: &Model) -> TableMeta {
    let mut b = SsTableBuilder::create(path, id, opts).expect("create");
    assert!(b.is_empty());
    for (k, e) in model {
        b.add(&k.user_key, k.version, e).expect("add");
    }
    assert!(b.estimated_bytes() > 0);
    b.finish().expect("finish")
}

fn open(path: &Path, id: u64) -> Result<Arc<SsTable>> {
    let (cache, counters) = fresh_cache(1 << 20);
    SsTable::open(path, id, cache, counters).map(Arc::new)
}

/// ~10k entries over 2000 user keys (some prefixes of others), random versions, ~20% tombstones,
/// some expiring values, and one hot key with many versions spanning blocks.
fn random_model(seed: u64) -> Model {
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let mut seqno = 0;
    for i in 0..2000u64 {
        let base = format!("k{:05}", rng.below(50_000));
        let key = match i % 4 {
            0 => base.clone(),
            1 => format!("{base}x"),
            2 => format!("{base}\0"),
            _ => format!("{base}{}", "z".repeat(rng.below(40) as usize)),
        };
        for _ in 0..1 + rng.below(9) {
            seqno += 1;
            let version = Version::new(rng.below(1 << 40), rng.below(4) as u32);
            let entry = if rng.below(5) == 0 {
                Entry {
                    seqno: rng.below(20_000),
                    expire_at_ms: rng.below(2) * rng.below(1 << 30),
                    value: None,
                }
            } else {
                let len = rng.below(100) as usize;
                Entry {
                    seqno: rng.below(20_000),
                    expire_at_ms: if rng.below(3) == 0 {
                        rng.below(1 << 30)
                    } else {
                        0
                    },
                    value: Some(Bytes::from(vec![(seqno % 251) as u8; len])),
                }
            };
            model.insert(InternalKey::new(key.clone().into_bytes(), version), entry);
        }
    }
    for v in 0..300u64 {
        model.insert(
            InternalKey::new(&b"hot"[..], Version::new(1000 + v, 0)),
            Entry {
                seqno: v,
                expire_at_ms: 0,
                value: Some(Bytes::from(format!("hot{v}"))),
            },
        );
    }
    model
}

fn model_get(model: &Model, key: &[u8], snapshot: u64) -> Option<(Version, Entry)> {
    model
        .range(InternalKey::seek_first(key)..)
        .take_while(|(k, _)| k.user_key.as_ref() == key)
        .find(|(_, e)| e.seqno <= snapshot)
        .map(|(k, e)| (k.version, e.clone()))
}

fn model_scan(model: &Model, start: Bound<&[u8]>) -> Vec<(Vec<u8>, Version, Entry)> {
    model
        .iter()
        .filter(|(k, _)| match start {
            Bound::Unbounded => true,
            Bound::Included(s) => k.user_key.as_ref() >= s,
            Bound::Excluded(s) => k.user_key.as_ref() > s,
        })
        .map(|(k, e)| (k.user_key.to_vec(), k.version, e.clone()))
        .collect()
}

fn scan(
    table: &Arc<SsTable>,
    start: Bound<&[u8]>,
    fill_cache: bool,
) -> Result<Vec<(Vec<u8>, Version, Entry)>> {
    let mut it = table.iter(start, fill_cache)?;
    let mut out = Vec::new();
    while let Some((k, v, e)) = it.current() {
        out.push((k.to_vec(), v, e.clone()));
        it.advance()?;
    }
    Ok(out)
}

#[test]
fn get_and_iter_match_a_btreemap_with_and_without_lz4() {
    for compression in [Compression::None, Compression::Lz4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("000001.sst");
        let model = random_model(7);
        assert!(model.len() > 10_000);
        let meta = write_table(&path, 1, &opts(compression), &model);
        assert_eq!(meta.records, model.len() as u64);
        assert_eq!(
            meta.file_bytes,
            std::fs::metadata(&path).expect("stat").len()
        );
        let table = open(&path, 1).expect("open");
        assert_eq!(table.meta(), &meta);
        assert!(table.index.len() > 100, "small blocks give many blocks");

        let user_keys: Vec<&[u8]> = model.keys().map(|k| k.user_key.as_ref()).collect();
        let mut rng = Rng(11);
        for _ in 0..3000 {
            let key = user_keys[rng.below(user_keys.len() as u64) as usize];
            let snapshot = if rng.below(2) == 0 {
                u64::MAX
            } else {
                rng.below(20_000)
            };
            assert_eq!(
                table.get(&LookupKey::new(key), snapshot).expect("get"),
                model_get(&model, key, snapshot),
                "{key:?}@{snapshot}"
            );
        }
        for missing in [&b""[..], b"a", b"k", b"hot\0", b"zzzz", b"k00001y"] {
            assert_eq!(
                table.get(&LookupKey::new(missing), u64::MAX).expect("get"),
                model_get(&model, missing, u64::MAX)
            );
        }

        for fill_cache in [true, false] {
            assert_eq!(
                scan(&table, Bound::Unbounded, fill_cache).expect("scan"),
                model_scan(&model, Bound::Unbounded)
            );
        }
        for _ in 0..200 {
            let key = user_keys[rng.below(user_keys.len() as u64) as usize].to_vec();
            let mut probe = key.clone();
            if rng.below(3) == 0 {
                probe.push(b'\0');
            }
            for start in [Bound::Included(&probe[..]), Bound::Excluded(&probe[..])] {
                let want = model_scan(&model, start);
                let got = scan(&table, start, false).expect("scan");
                assert_eq!(got.len(), want.len(), "{start:?}");
                assert_eq!(got.first(), want.first(), "{start:?}");
            }
        }
        for start in [
            Bound::Included(&b"hot"[..]),
            Bound::Excluded(&b"hot"[..]),
            Bound::Excluded(&b"\xff"[..]),
        ] {
            assert_eq!(
                scan(&table, start, true).expect("scan"),
                model_scan(&model, start)
            );
        }
    }
}

#[test]
fn snapshots_see_the_highest_version_they_can_see_across_block_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000002.sst");
    let mut model = Model::new();
    // Arrival order is unrelated to version order: here the oldest version arrived last, so a
    // snapshot taken before the newer versions arrived must read past them, across blocks.
    for v in 0..500u64 {
        model.insert(
            InternalKey::new(&b"k"[..], Version::new(10_000 - v, 0)),
            Entry {
                seqno: 1499 - v,
                expire_at_ms: 0,
                value: Some(Bytes::from(vec![v as u8; 40])),
            },
        );
    }
    model.insert(
        InternalKey::new(&b"k\0"[..], Version::new(1, 0)),
        Entry {
            seqno: 1,
            expire_at_ms: 0,
            value: None,
        },
    );
    write_table(&path, 2, &opts(Compression::Lz4), &model);
    let table = open(&path, 2).expect("open");
    assert!(table.index.len() > 20);
    assert_eq!(table.get(&LookupKey::new(b"k"), 999).expect("get"), None);
    let (v, e) = table
        .get(&LookupKey::new(b"k"), 1000)
        .expect("get")
        .expect("visible");
    assert_eq!((v, e.seqno), (Version::new(9501, 0), 1000));
    let (v, e) = table
        .get(&LookupKey::new(b"k"), u64::MAX)
        .expect("get")
        .expect("visible");
    assert_eq!((v, e.seqno), (Version::new(10_000, 0), 1499));
    for snapshot in [1001, 1250, 1498, 1499] {
        assert_eq!(
            table.get(&LookupKey::new(b"k"), snapshot).expect("get"),
            model_get(&model, b"k", snapshot)
        );
    }
    let (v, e) = table
        .get(&LookupKey::new(b"k\0"), 5)
        .expect("get")
        .expect("tombstone is returned");
    assert_eq!((v, e.value), (Version::new(1, 0), None));
    assert_eq!(
        scan(&table, Bound::Excluded(b"k"), true)
            .expect("scan")
            .len(),
        1
    );
}

#[test]
fn meta_summarises_the_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000003.sst");
    let mut model = Model::new();
    let put = |m: &mut Model, k: &str, hlc: u64, seqno, expire, value: Option<&str>| {
        m.insert(
            InternalKey::new(k.as_bytes().to_vec(), Version::new(hlc, 0)),
            Entry {
                seqno,
                expire_at_ms: expire,
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            },
        );
    };
    put(&mut model, "b", 5 << 16, 3, 700, Some("vv"));
    put(&mut model, "c", 9 << 16, 1, 0, None);
    put(&mut model, "d", 2 << 16, 2, 40, None);
    let meta = write_table(&path, 3, &opts(Compression::None), &model);
    assert_eq!(meta.min_key.as_ref(), b"b");
    assert_eq!(meta.max_key.as_ref(), b"d");
    assert_eq!(meta.min_version, Version::new(2 << 16, 0));
    assert_eq!(meta.max_version, Version::new(9 << 16, 0));
    assert_eq!((meta.max_seqno, meta.records, meta.tombstones), (3, 3, 2));
    assert_eq!(meta.max_expire_at_ms, 700);
    assert_eq!(meta.max_tombstone_ms, 40);
    assert_eq!(meta.raw_bytes, 3 + 2);

    put(&mut model, "e", 1, 4, 0, Some("forever"));
    let meta = write_table(&path, 3, &opts(Compression::None), &model);
    assert_eq!(meta.max_expire_at_ms, u64::MAX);
}

#[test]
fn bloom_counts_negatives_positives_and_false_positives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000004.sst");
    let model = random_model(3);
    write_table(&path, 4, &opts(Compression::Lz4), &model);
    let (cache, counters) = fresh_cache(1 << 20);
    let table = SsTable::open(&path, 4, cache, Arc::clone(&counters)).expect("open");
    for i in 0..10_000u32 {
        assert!(table
            .get(&LookupKey::new(format!("absent{i}").as_bytes()), u64::MAX)
            .expect("get")
            .is_none());
    }
    let neg = counters.bloom_negatives.load(AtomicOrdering::Relaxed);
    let pos = counters.bloom_positives.load(AtomicOrdering::Relaxed);
    let fp = counters.bloom_false_positives.load(AtomicOrdering::Relaxed);
    assert_eq!(neg + pos, 10_000);
    assert_eq!(pos, fp);
    assert!(fp < 300, "{fp} false positives");
    assert!(table
        .get(&LookupKey::new(b"hot"), u64::MAX)
        .expect("get")
        .is_some());
    assert_eq!(
        counters.bloom_positives.load(AtomicOrdering::Relaxed),
        pos + 1
    );
    assert_eq!(
        counters.bloom_false_positives.load(AtomicOrdering::Relaxed),
        fp
    );
}

#[test]
fn block_cache_serves_repeated_reads_and_fill_cache_false_does_not_fill_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000005.sst");
    let model = random_model(5);
    write_table(&path, 5, &opts(Compression::Lz4), &model);
    let (cache, counters) = fresh_cache(64 << 20);
    let table =
        Arc::new(SsTable::open(&path, 5, Arc::clone(&cache), Arc::clone(&counters)).expect("open"));
    scan(&table, Bound::Unbounded, false).expect("scan");
    assert_eq!(cache.used_bytes(), 0);
    table.get(&LookupKey::new(b"hot"), u64::MAX).expect("get");
    let misses = counters.block_cache_misses.load(AtomicOrdering::Relaxed);
    table.get(&LookupKey::new(b"hot"), u64::MAX).expect("get");
    assert_eq!(
        counters.block_cache_misses.load(AtomicOrdering::Relaxed),
        misses
    );
    assert!(counters.block_cache_hits.load(AtomicOrdering::Relaxed) >= 1);
}

#[test]
fn no_bloom_and_empty_tables_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000006.sst");
    let model = random_model(9);
    let no_bloom = Options {
        bloom_bits_per_key: 0,
        ..opts(Compression::None)
    };
    write_table(&path, 6, &no_bloom, &model);
    let table = open(&path, 6).expect("open");
    assert!(table.bloom.is_none());
    assert!(table
        .get(&LookupKey::new(b"hot"), u64::MAX)
        .expect("get")
        .is_some());
    assert!(table
        .get(&LookupKey::new(b"nope"), u64::MAX)
        .expect("get")
        .is_none());

    let empty = dir.path().join("000007.sst");
    let meta = write_table(&empty, 7, &no_bloom, &Model::new());
    assert_eq!(meta.records, 0);
    let table = open(&empty, 7).expect("open");
    assert!(table
        .get(&LookupKey::new(b"x"), u64::MAX)
        .expect("get")
        .is_none());
    assert!(scan(&table, Bound::Unbounded, true)
        .expect("scan")
        .is_empty());
}

fn small_table(dir: &Path, id: u64) -> (PathBuf, Model) {
    let path = dir.join(format!("{id:06}.sst"));
    let mut model = Model::new();
    for i in 0..150u64 {
        model.insert(
            InternalKey::new(format!("key{i:04}").into_bytes(), Version::new(i + 1, 0)),
            Entry {
                seqno: i,
                expire_at_ms: 0,
                value: Some(Bytes::from(format!("value-{i}"))),
            },
        );
    }
    write_table(&path, id, &opts(Compression::Lz4), &model);
    (path, model)
}

fn footer_of(path: &Path) -> Footer {
    let bytes = std::fs::read(path).expect("read");
    let mut buf = [0u8; FOOTER_LEN];
    buf.copy_from_slice(&bytes[bytes.len() - FOOTER_LEN..]);
    Footer::decode(path, bytes.len() as u64, &buf).expect("valid footer")
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at as usize] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_flipped_byte_in_a_data_block_is_a_checksum_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = small_table(dir.path(), 10);
    flip(&path, 3);
    let table = open(&path, 10).expect("data blocks are read lazily");
    match table.get(&LookupKey::new(b"key0000"), u64::MAX) {
        Err(Error::ChecksumMismatch {
            offset: 0, path: p, ..
        }) => assert_eq!(p, path),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    for fill_cache in [true, false] {
        assert!(matches!(
            scan(&table, Bound::Unbounded, fill_cache),
            Err(Error::ChecksumMismatch { .. })
        ));
    }
    // Later blocks are intact.
    assert!(table
        .get(&LookupKey::new(b"key0149"), u64::MAX)
        .expect("get")
        .is_some());
}

#[test]
fn a_flipped_byte_in_the_index_or_footer_fails_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = small_table(dir.path(), 11);
    let footer = footer_of(&path);
    flip(&path, footer.index.offset + 2);
    assert!(matches!(
        open(&path, 11),
        Err(Error::ChecksumMismatch { .. })
    ));

    let (path, _) = small_table(dir.path(), 12);
    let len = std::fs::metadata(&path).expect("stat").len();
    flip(&path, len - FOOTER_LEN as u64 + 4);
    assert!(matches!(
        open(&path, 12),
        Err(Error::ChecksumMismatch { .. })
    ));
    let (path, _) = small_table(dir.path(), 13);
    flip(&path, len - 1);
    assert!(matches!(open(&path, 13), Err(Error::Corruption { .. })));
}

#[test]
fn truncated_missing_and_misnamed_files_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = small_table(dir.path(), 14);
    let len = std::fs::metadata(&path).expect("stat").len();
    for keep in [0, 10, FOOTER_LEN as u64, len / 2, len - 1] {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(keep).expect("truncate");
        assert!(
            matches!(open(&path, 14), Err(Error::Corruption { .. })),
            "kept {keep}"
        );
    }
    assert!(matches!(
        open(&dir.path().join("nope.sst"), 1),
        Err(Error::MissingFile { .. })
    ));
    let (path, _) = small_table(dir.path(), 15);
    assert!(matches!(open(&path, 16), Err(Error::Corruption { .. })));
}

#[test]
fn every_single_byte_flip_is_detected_and_never_yields_wrong_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = small_table(dir.path(), 20);
    let good = std::fs::read(&path).expect("read");
    let want = model_scan(&model, Bound::Unbounded);
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&path, &bad).expect("write");
        let Ok(table) = open(&path, 20) else {
            continue;
        };
        for fill_cache in [true, false] {
            match scan(&table, Bound::Unbounded, fill_cache) {
                Err(e) => assert!(e.is_corruption(), "byte {at}: {e}"),
                Ok(got) => panic!("byte {at}: flip went unnoticed (equal: {})", got == want),
            }
        }
    }
}
