//! Helpers shared by the engine's integration tests: an injected clock, tiny engine options
//! that make flushes and compactions happen after a few writes, a seeded RNG, and file
//! surgery (listing a data directory's files, finding and flipping bytes in them).
//!
//! It lives in `tests/common/mod.rs` (not `tests/common.rs`) because cargo builds every
//! top-level file under `tests/` as its own test binary. Each test binary uses a different
//! subset of these helpers, hence the crate-level `dead_code` allowance below. Nothing here
//! may reach into the engine's internals: tests see only the public API and the files.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ringkv_lsm::{Compression, FsyncMode, NowMs, Options};

/// A clock the test owns: reads return `ms` until the test moves it.
#[derive(Clone, Debug)]
pub struct TestClock {
    ms: Arc<AtomicU64>,
}

impl TestClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self {
            ms: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// The current time in unix ms.
    pub fn now(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }

    /// Moves the clock forward by `delta_ms`.
    pub fn advance(&self, delta_ms: u64) {
        self.ms.fetch_add(delta_ms, Ordering::SeqCst);
    }

    /// The clock as the engine's [`NowMs`].
    pub fn now_fn(&self) -> NowMs {
        let ms = Arc::clone(&self.ms);
        Arc::new(move || ms.load(Ordering::SeqCst))
    }
}

/// Options with every size at (or near) its minimum, so a few hundred KiB of writes produce
/// several flushes and compactions. `background_work` off: tests drive flush and compaction.
pub fn tiny_options(clock: &TestClock, block_bytes: usize) -> Options {
    Options {
        fsync: FsyncMode::Periodic { interval_ms: 200 },
        memtable_bytes: 64 << 10,
        block_bytes,
        block_restart_interval: 4,
        table_target_bytes: 64 << 10,
        l0_compaction_trigger: 2,
        l0_stall_trigger: 8,
        l1_target_bytes: 64 << 10,
        level_size_ratio: 2,
        num_levels: 4,
        block_cache_bytes: 256 << 10,
        max_open_tables: 16,
        compression: Compression::Lz4,
        background_work: false,
        now_ms: clock.now_fn(),
        ..Options::default()
    }
}

/// A small, fast, seeded RNG (SplitMix64): tests print their seed so a failure replays.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// An RNG from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The seed from env var `var` if set (to replay a failure), else from the clock.
    pub fn seed_from_env(var: &str) -> u64 {
        if let Ok(s) = std::env::var(var) {
            if let Ok(seed) = s.trim().parse() {
                return seed;
            }
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }
}

/// FNV-1a, 64 bits: a stable hash for deriving test payloads from keys and versions.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Files directly under `dir/sub` whose names end with `suffix`, sorted by name.
pub fn files_in(dir: &Path, sub: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir.join(sub)) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// The whole content of `path`.
pub fn read_all(path: &Path) -> Vec<u8> {
    let mut buf = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    buf
}

/// Offset of the first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Inverts every bit of the byte at `offset` in `path`, in place.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.read_exact(&mut b).expect("read byte to flip");
    b[0] ^= 0xFF;
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&b).expect("write flipped byte");
    f.sync_all().expect("sync flipped file");
}

/// Shortens `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    f.set_len(len).expect("truncate");
    f.sync_all().expect("sync truncated file");
}
