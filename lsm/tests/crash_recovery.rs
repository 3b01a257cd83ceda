//! Real-process crash recovery: a child process writes, the parent SIGKILLs it at a random
//! moment, reopens the directory and checks that nothing acknowledged was lost and nothing
//! never written appeared.
//!
//! The test binary re-executes itself as the writer: [`crash_child`] is a no-op test unless
//! `RINGKV_CRASH_CHILD` names a data directory. The child writes from several threads (single
//! puts on a shared key space, some tombstones, and atomic batches on fresh keys), printing
//! `try ...` before each write and `ack ...` after it returns. Every record is a pure function
//! of its key and version ([`expected_record`]), so the parent can tell a real write from
//! garbage. After each kill the parent checks, on the reopened directory:
//!
//! - every key's winner is a record the child attempted, with exactly the derived payload;
//! - every acknowledged write is there, or a newer attempted write of its key is;
//! - what an earlier check observed is still there (recovery of recovered state);
//! - a batch is all there or not at all, and all there once acknowledged.
//!
//! Many cycles run on one directory with 64 KiB memtables and background compaction, so kills
//! land during flushes, compactions and recovery itself. First with `FsyncMode::Always`, then
//! `FsyncMode::Periodic` (acknowledged writes are in the OS page cache, which a process kill
//! does not lose). Bounded by time: `RINGKV_CRASH_SECS` (default 40, split between the
//! phases); `RINGKV_CRASH_SEED` replays the kill schedule; `RINGKV_CRASH_DIR` keeps the data
//! directory (it must not exist yet) for a post-mortem.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{fnv1a64, Rng};
use ringkv_lsm::{Db, FsyncMode, Options, ReadMode, Record, Version, WriteBatch};

const CHILD_ENV: &str = "RINGKV_CRASH_CHILD";
const CYCLE_ENV: &str = "RINGKV_CRASH_CYCLE";
const FSYNC_ENV: &str = "RINGKV_CRASH_FSYNC";
const SEED_ENV: &str = "RINGKV_CRASH_SEED";
const SECS_ENV: &str = "RINGKV_CRASH_SECS";
const DIR_ENV: &str = "RINGKV_CRASH_DIR";

/// Writer threads in the child.
const WRITERS: u64 = 3;
/// Keys shared by all writers (versions of one key race between threads).
const SHARED_KEYS: u64 = 400;
/// A child left alone (its parent died) exits after this long.
const CHILD_WATCHDOG: Duration = Duration::from_secs(90);

/// The engine options both the child and the parent use. The clock is fixed so that nothing
/// expires and no tombstone ever reaches its grace period: every record stays visible.
fn crash_options(fsync: FsyncMode) -> Options {
    Options {
        fsync,
        memtable_bytes: 64 << 10,
        block_bytes: 512,
        table_target_bytes: 64 << 10,
        l0_compaction_trigger: 2,
        l0_stall_trigger: 8,
        l1_target_bytes: 256 << 10,
        level_size_ratio: 4,
        num_levels: 4,
        max_open_tables: 16,
        background_work: true,
        now_ms: Arc::new(|| 1_000),
        ..Options::default()
    }
}

fn fsync_mode(name: &str) -> FsyncMode {
    match name {
        "always" => FsyncMode::Always,
        _ => FsyncMode::Periodic { interval_ms: 1000 },
    }
}

fn shared_key(n: u64) -> String {
    format!("k{n:04}")
}

fn batch_key(batch_id: &str, i: usize) -> String {
    format!("b{batch_id}-{i}")
}

/// The one record the child ever writes under `key` at `version`.
fn expected_record(key: &str, version: Version) -> Record {
    let stamp = format!("{key}@{}.{}|", version.hlc, version.node);
    let h = fnv1a64(stamp.as_bytes());
    if key.starts_with('k') && h % 100 < 14 {
        return Record::tombstone(version);
    }
    let len = 16 + (h >> 8) as usize % 1500;
    let value: Vec<u8> = stamp.bytes().cycle().take(len).collect();
    Record::value(version, value)
}

// ---------------------------------------------------------------- child side

/// Entry point of the child writer; an empty test unless run by the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    child_main(PathBuf::from(dir));
}

fn emit(line: &str) {
    // One write per line (< PIPE_BUF), under the lock, so lines never interleave or tear
    // except at the very moment of the kill, which the parent tolerates.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn child_main(dir: PathBuf) -> ! {
    let cycle = env_u64(CYCLE_ENV);
    let seed = env_u64(SEED_ENV);
    let fsync = fsync_mode(&std::env::var(FSYNC_ENV).unwrap_or_default());
    thread::spawn(|| {
        thread::sleep(CHILD_WATCHDOG);
        std::process::exit(3);
    });
    let db = match Db::open(&dir, crash_options(fsync)) {
        Ok(db) => db,
        Err(e) => {
            emit(&format!("error open: {e}"));
            std::process::exit(2);
        }
    };
    emit("ready");
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let db = db.clone();
            thread::spawn(move || writer(&db, cycle, t, seed))
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
    // Writers only return on an engine error, already reported.
    std::process::exit(4);
}

fn writer(db: &Db, cycle: u64, thread_id: u64, seed: u64) {
    let mut rng = Rng::new(seed ^ (cycle << 8) ^ thread_id);
    let node = thread_id as u32;
    for counter in 1u64.. {
        // Later cycles get higher versions; within a cycle threads race on equal footing.
        let version = Version::new((cycle << 32) | counter, node);
        if rng.chance(15) {
            let batch_id = format!("{cycle}-{thread_id}-{counter}");
            let n = rng.range(2, 7) as usize;
            let mut batch = WriteBatch::new();
            for i in 0..n {
                let key = batch_key(&batch_id, i);
                emit(&format!(
                    "btry {batch_id} {n} {key} {} {}",
                    version.hlc, version.node
                ));
                batch.put(Bytes::from(key.clone()), expected_record(&key, version));
            }
            if let Err(e) = db.write(batch) {
                emit(&format!("error write: {e}"));
                return;
            }
            emit(&format!("back {batch_id}"));
        } else {
            let key = shared_key(rng.range(0, SHARED_KEYS));
            emit(&format!("try {key} {} {}", version.hlc, version.node));
            if let Err(e) = db.put(key.as_bytes(), expected_record(&key, version)) {
                emit(&format!("error put: {e}"));
                return;
            }
            emit(&format!("ack {key} {} {}", version.hlc, version.node));
        }
    }
}

// ---------------------------------------------------------------- parent side

/// What the parent knows the child did, across every cycle.
#[derive(Default)]
struct Expectations {
    /// Every version the child attempted per key.
    attempted: HashMap<String, BTreeSet<Version>>,
    /// Per key, the version that must be matched or beaten: the highest acknowledged one,
    /// or the one an earlier check observed after recovery.
    floor: HashMap<String, Version>,
    /// Batches: declared size, and whether the child acknowledged it.
    batches: HashMap<String, (usize, bool)>,
    acks: u64,
}

impl Expectations {
    fn raise_floor(&mut self, key: &str, version: Version) {
        let f = self.floor.entry(key.to_string()).or_default();
        if version > *f {
            *f = version;
        }
    }

    fn absorb(&mut self, lines: &[String]) {
        for line in lines {
            let parts: Vec<&str> = line.split(' ').collect();
            let version = |hlc: &str, node: &str| {
                Version::new(
                    hlc.parse().unwrap_or_else(|_| panic!("bad line {line:?}")),
                    node.parse().unwrap_or_else(|_| panic!("bad line {line:?}")),
                )
            };
            match parts.as_slice() {
                ["try", key, hlc, node] => {
                    self.attempted
                        .entry(key.to_string())
                        .or_default()
                        .insert(version(hlc, node));
                }
                ["ack", key, hlc, node] => {
                    self.acks += 1;
                    self.raise_floor(key, version(hlc, node));
                }
                ["btry", id, n, key, hlc, node] => {
                    let n: usize = n.parse().unwrap_or_else(|_| panic!("bad line {line:?}"));
                    self.batches.entry(id.to_string()).or_insert((n, false));
                    self.attempted
                        .entry(key.to_string())
                        .or_default()
                        .insert(version(hlc, node));
                }
                ["back", id] => {
                    self.acks += 1;
                    self.batches
                        .get_mut(*id)
                        .unwrap_or_else(|| panic!("ack of unknown batch {id}"))
                        .1 = true;
                }
                ["error", ..] => panic!("the child failed: {line}"),
                _ => {} // the test harness's own output
            }
        }
    }

    /// Checks the reopened engine against everything the child did; then what it observed
    /// becomes a floor for later cycles.
    fn check(&mut self, db: &Db, ctx: &str) {
        let scan: HashMap<String, Record> = db
            .range_with(Bound::Unbounded, Bound::Unbounded, ReadMode::AllRecords)
            .unwrap_or_else(|e| panic!("{ctx}: range: {e}"))
            .map(|item| {
                let (k, r) = item.unwrap_or_else(|e| panic!("{ctx}: range item: {e}"));
                (String::from_utf8_lossy(&k).into_owned(), r)
            })
            .collect();
        for (key, rec) in &scan {
            let tried = self.attempted.get(key).unwrap_or_else(|| {
                panic!("{ctx}: key {key:?} is present but was never written (record {rec:?})")
            });
            assert!(
                tried.contains(&rec.version),
                "{ctx}: key {key} has version {:?} that was never written",
                rec.version
            );
            assert_eq!(
                *rec,
                expected_record(key, rec.version),
                "{ctx}: key {key} has a wrong payload"
            );
        }
        for (key, floor) in &self.floor {
            let got = scan.get(key).map(|r| r.version);
            assert!(
                got.is_some_and(|v| v >= *floor),
                "{ctx}: key {key}: acknowledged or previously recovered version {floor:?} lost, found {got:?}"
            );
        }
        for (id, (n, acked)) in &self.batches {
            let present = (0..*n)
                .filter(|i| scan.contains_key(&batch_key(id, *i)))
                .count();
            assert!(
                present == 0 || present == *n,
                "{ctx}: batch {id} is torn: {present} of {n} records present"
            );
            assert!(
                !*acked || present == *n,
                "{ctx}: acknowledged batch {id} lost"
            );
        }
        // Point reads must agree with the scan (they take other paths: bloom, block seek).
        for n in 0..SHARED_KEYS {
            let key = shared_key(n);
            let rec = db
                .get_record(key.as_bytes())
                .unwrap_or_else(|e| panic!("{ctx}: get_record {key}: {e}"));
            assert_eq!(
                rec.as_ref(),
                scan.get(&key),
                "{ctx}: get_record {key} disagrees with range"
            );
            let live = db
                .get(key.as_bytes())
                .unwrap_or_else(|e| panic!("{ctx}: get {key}: {e}"));
            let want = scan.get(&key).filter(|r| !r.is_tombstone());
            assert_eq!(live.as_ref(), want, "{ctx}: get {key} disagrees with range");
        }
        for (key, rec) in scan {
            self.raise_floor(&key, rec.version);
        }
    }
}

/// Kills the child if the parent panics, so no writer outlives the test.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs one child until a random moment, kills it, and returns what it printed.
fn crash_once(dir: &Path, cycle: u64, fsync: &str, rng: &mut Rng, log: &Path) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary path");
    let stderr = File::create(log).expect("child log file");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(CYCLE_ENV, cycle.to_string())
        .env(FSYNC_ENV, fsync)
        .env(SEED_ENV, rng.next_u64().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn the child writer");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let mut guard = ChildGuard(Some(child));

    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut lines = Vec::new();
        let mut input = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // A line cut by the kill has no newline: the write it announced never started.
            if buf.last() != Some(&b'\n') {
                break;
            }
            let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
            // With one test thread the harness prints "test crash_child ... " before the
            // test runs, so the child's first line arrives with that prefix.
            if line == "ready" || line.ends_with(" ready") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });

    if rng.chance(10) {
        // Sometimes kill during startup, which includes WAL replay and recovery writes.
        thread::sleep(Duration::from_millis(rng.range(0, 40)));
    } else {
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let child = guard.0.as_mut().expect("child is running");
            let status = child.try_wait();
            panic!(
                "cycle {cycle}: the child never became ready (status {status:?}); its stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(rng.range(20, 400)));
    }
    let mut child = guard.0.take().expect("child is running");
    if let Ok(Some(status)) = child.try_wait() {
        let lines = reader.join().unwrap_or_default();
        panic!(
            "cycle {cycle}: the child exited by itself with {status}; last output {:?}; stderr:\n{}",
            lines.iter().rev().take(5).collect::<Vec<_>>(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread")
}

fn run_phase(
    dir: &Path,
    fsync: &str,
    budget: Duration,
    max_cycles: u64,
    first_cycle: u64,
    rng: &mut Rng,
    exp: &mut Expectations,
) -> u64 {
    let deadline = Instant::now() + budget;
    let log = dir.with_extension("child-stderr.log");
    let mut cycle = first_cycle;
    while cycle < first_cycle + max_cycles && (cycle == first_cycle || Instant::now() < deadline) {
        let lines = crash_once(dir, cycle, fsync, rng, &log);
        exp.absorb(&lines);
        let ctx = format!("{fsync} cycle {cycle}");
        let db = Db::open(dir, crash_options(fsync_mode(fsync)))
            .unwrap_or_else(|e| panic!("{ctx}: reopen after SIGKILL failed: {e}"));
        exp.check(&db, &ctx);
        db.close().unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
        cycle += 1;
    }
    cycle
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let seed = Rng::seed_from_env(SEED_ENV);
    eprintln!("crash test seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = Rng::new(seed);
    let total = Duration::from_secs(
        std::env::var(SECS_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40),
    );
    let root = tempfile::tempdir().expect("tempdir");
    // RINGKV_CRASH_DIR keeps the data directory for a post-mortem.
    let dir = std::env::var_os(DIR_ENV).map_or_else(|| root.path().join("db"), PathBuf::from);
    let mut exp = Expectations::default();

    let next = run_phase(&dir, "always", total * 3 / 5, 200, 1, &mut rng, &mut exp);
    let always_cycles = next - 1;
    let always_acks = exp.acks;
    let end = run_phase(
        &dir,
        "periodic",
        total * 2 / 5,
        200,
        next,
        &mut rng,
        &mut exp,
    );
    eprintln!(
        "crash test: {always_cycles} cycles with fsync=always ({always_acks} acks), {} with periodic ({} acks), {} keys",
        end - next,
        exp.acks - always_acks,
        exp.attempted.len()
    );
    assert!(
        always_acks > 0,
        "the child acknowledged no write with fsync=always"
    );
    assert!(
        exp.acks > always_acks,
        "the child acknowledged no write with fsync=periodic"
    );
}
