//! Deterministic workload data: keys, key orders and values, identical for every engine.
//!
//! Owns [`SplitMix64`] (the seeded RNG), [`Permutation`] (a random order over `0..n` in O(1)
//! memory), [`KeySpace`] (index -> fixed-size key, with interleaved keys that are never
//! written) and [`ValueSource`] (half-compressible values, as db_bench makes them).
//! Must never read the clock or any other source of nondeterminism: the same seed has to
//! produce the same bytes for ringkv and for fjall, run after run.

use std::fmt;

/// SplitMix64: a tiny, fast, seedable generator. Statistical quality is plenty for choosing
/// keys; it is used instead of a crate so the sequence can never change under a version bump.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A uniform value in `0..n` (`n > 0`), by multiply-shift (no modulo bias worth measuring).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// SplitMix64's finaliser: a bijective 64-bit mix, also used as a stateless hash of an index.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A pseudo-random bijection of `0..n`: a 4-round Feistel network over the smallest
/// even-bit-width power of two covering `n`, with cycle walking for values `>= n`.
///
/// Random-order fills need every key exactly once (so later reads of "existing keys" all
/// hit) without holding an `n`-element shuffled vector, which would show in peak RSS.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    round_keys: [u64; 4],
}

impl Permutation {
    /// A permutation of `0..n` fixed by `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut rng = SplitMix64::new(seed);
        let round_keys = [
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ];
        Self {
            n,
            half_bits,
            round_keys,
        }
    }

    /// The image of `i` (`i < n`); every `i` maps to a distinct value in `0..n`.
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(
            i < self.n,
            "index {i} outside the permutation's domain {}",
            self.n
        );
        let mut x = i;
        // Cycle walking: the Feistel network permutes 0..4^half_bits, which is at most
        // about 4n, so a walk leaves the tail within a few steps on average.
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let mut left = x >> self.half_bits;
        let mut right = x & mask;
        for key in self.round_keys {
            let next = left ^ (mix64(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

/// Why a [`KeySpace`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySizeError {
    /// The key size asked for.
    pub key_size: usize,
    /// The digits needed to number every key.
    pub needed: usize,
}

impl fmt::Display for KeySizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a key size of {} bytes cannot number this many keys: at least {} are needed",
            self.key_size, self.needed
        )
    }
}

impl std::error::Error for KeySizeError {}

/// Fixed-size keys for indexes `0..num`: key `i` is the decimal number `2i`, zero-padded to
/// the key size, so keys sort in index order. The odd numbers in between ([`KeySpace::missing`])
/// are never written: they fall inside every table's key range, so a missing-key read must
/// be answered by the bloom filter or the block, never by a range check alone.
#[derive(Clone, Debug)]
pub struct KeySpace {
    key_size: usize,
}

impl KeySpace {
    /// Keys of `key_size` bytes able to number `num` keys and the gaps between them.
    ///
    /// # Errors
    /// [`KeySizeError`] if `2 * num` needs more decimal digits than `key_size`.
    pub fn new(num: u64, key_size: usize) -> Result<Self, KeySizeError> {
        let needed = decimal_digits(num.saturating_mul(2));
        if key_size < needed {
            return Err(KeySizeError { key_size, needed });
        }
        Ok(Self { key_size })
    }

    /// Bytes per key.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// The key written for index `i`, into `buf` (cleared first).
    pub fn existing(&self, i: u64, buf: &mut Vec<u8>) {
        self.write_number(i * 2, buf);
    }

    /// A key that is never written, sorting between `existing(i)` and `existing(i + 1)`.
    pub fn missing(&self, i: u64, buf: &mut Vec<u8>) {
        self.write_number(i * 2 + 1, buf);
    }

    fn write_number(&self, n: u64, buf: &mut Vec<u8>) {
        buf.clear();
        let digits = n.to_string();
        buf.resize(self.key_size - digits.len(), b'0');
        buf.extend_from_slice(digits.as_bytes());
    }
}

fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Values of one size cut from a fixed pool, like db_bench's `RandomGenerator`: each 100-byte
/// piece is 50 random printable bytes repeated twice, so LZ4 shrinks values to about half,
/// as real data would, and both engines' compression does comparable work.
#[derive(Clone, Debug)]
pub struct ValueSource {
    pool: Vec<u8>,
    value_size: usize,
    pos: usize,
}

impl ValueSource {
    /// Pool size: large enough that consecutive values differ, small enough to stay in cache.
    const POOL_BYTES: usize = 1 << 20;

    /// A source of `value_size`-byte values fixed by `seed`.
    pub fn new(value_size: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x5641_4C55_4553);
        let pool_len = Self::POOL_BYTES.max(value_size * 2);
        let mut pool = Vec::with_capacity(pool_len + 100);
        while pool.len() < pool_len {
            let piece: Vec<u8> = (0..50).map(|_| b' ' + rng.below(95) as u8).collect();
            pool.extend_from_slice(&piece);
            pool.extend_from_slice(&piece);
        }
        Self {
            pool,
            value_size,
            pos: 0,
        }
    }

    /// The next value.
    pub fn next_value(&mut self) -> &[u8] {
        if self.pos + self.value_size > self.pool.len() {
            self.pos = 0;
        }
        let start = self.pos;
        // Step by a size unrelated to the 100-byte pieces so values start at varied offsets.
        self.pos += self.value_size.max(1) + 7;
        &self.pool[start..start + self.value_size]
    }

    /// Bytes per value.
    pub fn value_size(&self) -> usize {
        self.value_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;
    use std::collections::HashSet;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 100, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let seen: HashSet<u64> = (0..n).map(|i| p.apply(i)).collect();
            assert_eq!(seen.len() as u64, n, "n = {n}");
            assert!(seen.iter().all(|&x| x < n));
        }
    }

    #[test]
    fn permutation_depends_on_the_seed_and_is_not_the_identity() {
        let a = Permutation::new(1000, 1);
        let b = Permutation::new(1000, 2);
        let image_a: Vec<u64> = (0..1000).map(|i| a.apply(i)).collect();
        let image_b: Vec<u64> = (0..1000).map(|i| b.apply(i)).collect();
        assert_ne!(image_a, image_b);
        assert!(
            image_a
                .iter()
                .enumerate()
                .filter(|&(i, &x)| i as u64 == x)
                .count()
                < 20
        );
    }

    #[test]
    fn keys_sort_by_index_and_missing_keys_interleave() -> Result<(), BoxError> {
        let ks = KeySpace::new(1000, 16)?;
        let (mut a, mut m, mut b) = (Vec::new(), Vec::new(), Vec::new());
        ks.existing(41, &mut a);
        ks.missing(41, &mut m);
        ks.existing(42, &mut b);
        assert_eq!(a, b"0000000000000082");
        assert!(a < m && m < b);
        assert_eq!(m.len(), 16);
        Ok(())
    }

    #[test]
    fn too_short_keys_are_refused() -> Result<(), BoxError> {
        let err = KeySpace::new(1_000_000, 6).expect_err("must fail");
        assert_eq!(err.needed, 7);
        assert!(KeySpace::new(1_000_000, 7).is_ok());
        assert!(KeySpace::new(0, 1).is_ok());
        Ok(())
    }

    #[test]
    fn values_are_deterministic_and_sized() {
        let mut a = ValueSource::new(1000, 7);
        let mut b = ValueSource::new(1000, 7);
        for _ in 0..5000 {
            let va = a.next_value().to_vec();
            assert_eq!(va.len(), 1000);
            assert_eq!(va, b.next_value());
        }
        let mut empty = ValueSource::new(0, 7);
        assert!(empty.next_value().is_empty());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(3);
        assert!((0..10_000).all(|_| rng.below(17) < 17));
    }
}
