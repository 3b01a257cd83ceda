//! The per-table bloom filter over user keys.
//!
//! Owns [`hash_key`], [`encode_filter`] and [`Bloom`]. Keys are hashed once with xxh3-64 (stable
//! across processes and machines, because filters are persisted) and probed by double hashing.
//! Must never use a per-process seeded hash such as `ahash`: a filter written by one process
//! would then answer "absent" wrongly in the next.
//!
//! # Format
//!
//! `bit array ‖ probe count (u8)`. Bit `i` is bit `i % 8` of byte `i / 8`.

use bytes::Bytes;

/// Most probes a filter may use; more never pays off and bounds the work of a lookup.
const MAX_PROBES: u8 = 30;

/// The hash a filter is built from and probed with.
pub(crate) fn hash_key(user_key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(user_key)
}

/// The probe count that minimises false positives for `bits_per_key`: `bits_per_key · ln 2`.
fn probes_for(bits_per_key: usize) -> u8 {
    let k = (bits_per_key as f64 * std::f64::consts::LN_2).round() as usize;
    k.clamp(1, MAX_PROBES as usize) as u8
}

/// The bit positions probed for `hash` in a filter of `num_bits` bits: `h1 + i·h2`, each mapped
/// onto `[0, num_bits)` by a multiply-shift rather than a division.
fn probes(hash: u64, num_bits: u32, k: u8) -> impl Iterator<Item = usize> {
    let h1 = hash as u32;
    // An odd step visits distinct positions before wrapping.
    let h2 = ((hash >> 32) as u32) | 1;
    (0..u32::from(k)).map(move |i| {
        let h = h1.wrapping_add(i.wrapping_mul(h2));
        ((u64::from(h) * u64::from(num_bits)) >> 32) as usize
    })
}

/// Builds a filter over `hashes` (one per distinct user key) with `bits_per_key` bits each.
/// Returns `None` when `bits_per_key` is 0 or there are no keys: the table then has no filter.
pub(crate) fn encode_filter(hashes: &[u64], bits_per_key: usize) -> Option<Vec<u8>> {
    if bits_per_key == 0 || hashes.is_empty() {
        return None;
    }
    // At least 64 bits, so tiny tables do not get a useless filter; at most u32::MAX bits,
    // which the multiply-shift mapping needs (far above any table's key count).
    let bits = hashes
        .len()
        .saturating_mul(bits_per_key)
        .clamp(64, (u32::MAX - 7) as usize);
    let bytes = bits.div_ceil(8);
    let num_bits = u32::try_from(bytes * 8).unwrap_or(u32::MAX);
    let k = probes_for(bits_per_key);
    let mut out = vec![0u8; bytes + 1];
    for &h in hashes {
        for bit in probes(h, num_bits, k) {
            out[bit / 8] |= 1 << (bit % 8);
        }
    }
    out[bytes] = k;
    Some(out)
}

/// A decoded filter.
#[derive(Clone, Debug)]
pub(crate) struct Bloom {
    bits: Bytes,
    num_bits: u32,
    k: u8,
}

impl Bloom {
    /// Decodes [`encode_filter`]'s output; `None` if it is malformed.
    pub(crate) fn decode(mut data: Bytes) -> Option<Self> {
        let k = *data.last()?;
        data.truncate(data.len() - 1);
        if data.is_empty() || !(1..=MAX_PROBES).contains(&k) {
            return None;
        }
        let num_bits = u32::try_from(data.len().checked_mul(8)?).ok()?;
        Some(Self {
            bits: data,
            num_bits,
            k,
        })
    }

    /// Whether a key with this [`hash_key`] may be in the table; `false` means it is not.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        probes(hash, self.num_bits, self.k).all(|bit| {
            self.bits
                .get(bit / 8)
                .is_some_and(|b| b & (1 << (bit % 8)) != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        format!("user:{i:010}").into_bytes()
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let n = 100_000u64;
        let hashes: Vec<u64> = (0..n).map(|i| hash_key(&key(i))).collect();
        let filter = Bloom::decode(Bytes::from(encode_filter(&hashes, 10).expect("keys given")))
            .expect("a built filter decodes");
        assert!((0..n).all(|i| filter.may_contain(hash_key(&key(i)))));
        let fp = (n..2 * n)
            .filter(|&i| filter.may_contain(hash_key(&key(i))))
            .count();
        let rate = fp as f64 / n as f64;
        assert!(rate < 0.02, "false-positive rate {rate}");
        assert!(
            rate > 0.001,
            "suspiciously low rate {rate}: is the filter probing?"
        );
    }

    #[test]
    fn hash_is_stable_across_processes() {
        // xxh3-64 of the empty input, a published test vector: a seeded hash would differ.
        assert_eq!(hash_key(b""), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn disabled_or_empty_filters_and_bad_encodings() {
        assert!(encode_filter(&[1, 2], 0).is_none());
        assert!(encode_filter(&[], 10).is_none());
        assert!(Bloom::decode(Bytes::new()).is_none());
        assert!(Bloom::decode(Bytes::from_static(&[0xff, 0])).is_none());
        assert!(Bloom::decode(Bytes::from_static(&[0xff, 31])).is_none());
        assert!(Bloom::decode(Bytes::from_static(&[7])).is_none());
        let one = Bloom::decode(Bytes::from(
            encode_filter(&[hash_key(b"k")], 10).expect("one key"),
        ))
        .expect("decodes");
        assert!(one.may_contain(hash_key(b"k")));
        assert_eq!(one.num_bits, 64);
    }
}
