//! Criterion micro-benchmarks of `ringkv_lsm::Db` through its public API: the cost of one
//! put that lands in the memtable, and of one point read that hits a flushed table.
//! The db_bench binary covers whole workloads; these isolate single operations.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv_lsm::{Db, Options, Record, Version};

/// Bytes per value in both benchmarks.
const VALUE_BYTES: usize = 1024;
/// Puts per fresh engine in the put benchmark: 20 MiB of values, well under the default
/// 64 MiB memtable, so no put in the timed region triggers a flush.
const PUTS_PER_ENGINE: u64 = 20_000;
/// Keys in the get benchmark.
const GET_KEYS: u64 = 10_000;

fn key(i: u64) -> [u8; 16] {
    let mut k = [b'0'; 16];
    let digits = i.to_string();
    k[16 - digits.len()..].copy_from_slice(digits.as_bytes());
    k
}

fn open(dir: &tempfile::TempDir) -> Db {
    Db::open(dir.path(), Options::default()).expect("a fresh temp dir opens")
}

fn put_memtable(c: &mut Criterion) {
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    let mut group = c.benchmark_group("db");
    group.throughput(Throughput::Elements(1));
    group.bench_function("put 1 KiB value, memtable (periodic fsync)", |b| {
        // Fresh engines in chunks, opened and closed outside the timed region, so every
        // timed put is a WAL append plus a memtable insert, never a flush or a stall.
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let dir = tempfile::tempdir().expect("temp dir");
                let db = open(&dir);
                let chunk = (iters - done).min(PUTS_PER_ENGINE);
                let started = Instant::now();
                for i in 0..chunk {
                    let record = Record::value(Version::new(i + 1, 1), value.clone());
                    db.put(black_box(&key(i)), record).expect("put");
                }
                timed += started.elapsed();
                db.close().expect("close");
                done += chunk;
            }
            timed
        });
    });
    group.finish();
}

fn get_hit_after_flush(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(&dir);
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    for i in 0..GET_KEYS {
        db.put(
            &key(i),
            Record::value(Version::new(i + 1, 1), value.clone()),
        )
        .expect("put");
    }
    db.flush().expect("flush");
    let mut group = c.benchmark_group("db");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get hit, 10k keys x 1 KiB, after flush", |b| {
        // A fixed odd stride visits every key in a scattered order without an RNG in the loop.
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % GET_KEYS;
            let found = db.get(black_box(&key(i))).expect("get");
            black_box(found.expect("every key was written"))
        });
    });
    group.finish();
    db.close().expect("close");
}

criterion_group!(benches, put_memtable, get_hit_after_flush);
criterion_main!(benches);
