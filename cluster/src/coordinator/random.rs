//! The coordinator's randomness: a small seeded generator.
//!
//! Owns [`SeededRng`] (SplitMix64 over an atomic state, so it is shared without a lock). Seeded
//! from the config, so a test or a simulation replays the same `RANDOMKEY` picks and scan
//! handles. Must never be used for anything secret.

use std::sync::atomic::{AtomicU64, Ordering};

/// SplitMix64: statistically good enough for picking slots and handles, and tiny.
#[derive(Debug)]
pub struct SeededRng {
    state: AtomicU64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`; 0 gives 0). The multiply-shift keeps the bias below
    /// `bound / 2^64`, far under anything a key pick could notice.
    pub fn below(&self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let a = SeededRng::new(42);
        let b = SeededRng::new(42);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let rng = SeededRng::new(7);
        let mut seen = [false; 10];
        for _ in 0..1_000 {
            let x = rng.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(rng.below(0), 0);
    }
}
