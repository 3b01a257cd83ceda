//! A table's decoded index: one entry per data block, searched by internal key.
//!
//! Owns [`Index`]. Decoding checks everything a search relies on (keys strictly increasing,
//! handles in file order and inside the data section), so [`Index::find`] never fails. Must
//! never order keys by their encoded bytes alone: a user key may be a prefix of another, so
//! comparisons go through [`compare_encoded`], or through [`key_prefix`], which only ever
//! decides when the user keys differ in the bytes it packs.

use std::cmp::Ordering;
use std::path::Path;

use bytes::Bytes;

use crate::coding::Decoder;
use crate::error::{Error, Result};
use crate::record::{compare_internal, Version};
use crate::sstable::block::{compare_encoded, split_internal};
use crate::sstable::format::BlockHandle;

/// Bytes of a user key that [`key_prefix`] packs into a `u64`.
const PREFIX_LEN: usize = 8;

/// The first bytes of `user_key`, zero-padded, as a big-endian `u64`.
///
/// For two user keys `a` and `b`, `key_prefix(a) < key_prefix(b)` implies `a < b` (and `>`
/// implies `>`): at the first differing byte either both keys have a real byte, or the shorter
/// key ended there and is a prefix of the longer one, which sorts first. Equal prefixes decide
/// nothing (`"a"` and `"a\0"` pack alike), so the caller then compares the whole keys.
#[inline]
pub(crate) fn key_prefix(user_key: &[u8]) -> u64 {
    let mut b = [0u8; PREFIX_LEN];
    let n = user_key.len().min(PREFIX_LEN);
    b[..n].copy_from_slice(&user_key[..n]);
    u64::from_be_bytes(b)
}

/// One index entry: where a data block's last internal key lives in the index payload, and
/// where the block lives in the file.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    /// Offset of the block's last internal key (`user_key ‖ version`) in the index payload.
    key_at: u32,
    /// Length of that internal key.
    key_len: u32,
    /// The block's offset in the file.
    offset: u64,
    /// The block's payload length.
    len: u32,
}

/// The decoded index block.
pub(crate) struct Index {
    data: Bytes,
    entries: Vec<IndexEntry>,
    /// Per block, the [`key_prefix`] of its last user key without the first
    /// [`Index::shared`] bytes. A dense array of its own: a search finds the blocks whose
    /// prefix matches the target's with a branchless binary search touching 8 bytes per step,
    /// and compares whole keys only among those (usually none or one).
    prefixes: Vec<u64>,
    /// Length of the prefix every index user key shares (the first and last keys' common
    /// prefix: sorted keys between them share it too). Packed prefixes skip it, so keys that
    /// all begin alike (zero-padded numbers, one hash slot) still differ in what is packed.
    shared: usize,
}

impl Index {
    /// Decodes and checks the index: keys strictly increasing, handles in file order and all
    /// before `data_end` (the start of the index block, at file offset `at`).
    ///
    /// # Errors
    /// [`Error::Corruption`] naming what is wrong.
    pub(crate) fn decode(path: &Path, at: u64, data: Bytes, data_end: u64) -> Result<Self> {
        let corrupt = |reason: &str| Error::corruption(path, at, format!("index block: {reason}"));
        if u32::try_from(data.len()).is_err() {
            return Err(corrupt("larger than 4 GiB"));
        }
        let mut entries = Vec::new();
        let mut d = Decoder::new(&data);
        let mut prev_end = 0u64;
        let mut prev_key: Option<(&[u8], Version)> = None;
        while !d.is_empty() {
            let Some(key) = d.length_prefixed() else {
                return Err(corrupt("bad key"));
            };
            let key_at = d.position() - key.len();
            let Some((user_key, version)) = split_internal(key) else {
                return Err(corrupt("key shorter than a version"));
            };
            let Some(handle) = BlockHandle::decode_varint(&mut d) else {
                return Err(corrupt("bad block handle"));
            };
            let in_bounds =
                handle.offset >= prev_end && handle.end().is_some_and(|end| end <= data_end);
            let Ok(len) = u32::try_from(handle.len) else {
                return Err(corrupt("block larger than 4 GiB"));
            };
            if !in_bounds {
                return Err(corrupt("block handle out of order or out of bounds"));
            }
            if let Some((pk, pv)) = prev_key {
                if compare_internal(pk, pv, user_key, version) != Ordering::Less {
                    return Err(corrupt("keys out of order"));
                }
            }
            prev_key = Some((user_key, version));
            prev_end = handle.end().unwrap_or(data_end);
            entries.push(IndexEntry {
                key_at: key_at as u32,
                key_len: key.len() as u32,
                offset: handle.offset,
                len,
            });
        }
        let mut index = Self {
            data,
            entries,
            prefixes: Vec::new(),
            shared: 0,
        };
        let last = index.len().checked_sub(1).and_then(|i| index.user_key(i));
        if let (Some(first), Some(last)) = (index.user_key(0), last) {
            index.shared = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        }
        index.prefixes = (0..index.len())
            .map(|i| {
                index
                    .user_key(i)
                    .and_then(|k| k.get(index.shared..))
                    .map_or(0, key_prefix)
            })
            .collect();
        Ok(index)
    }

    /// Number of data blocks.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The last user key of block `i`; `None` past the end. Decoding checked that every key
    /// holds a version.
    fn user_key(&self, i: usize) -> Option<&[u8]> {
        let e = self.entries.get(i)?;
        let start = e.key_at as usize;
        let key = self.data.get(start..start + e.key_len as usize)?;
        split_internal(key).map(|(user_key, _)| user_key)
    }

    /// The encoded last internal key of block `i`.
    fn key(&self, i: usize) -> &[u8] {
        let e = self.entries[i];
        let start = e.key_at as usize;
        &self.data[start..start + e.key_len as usize]
    }

    /// Index of the first block whose last key is `>=` `(user_key, version)`: the only block
    /// that can hold the first entry at or after it. `len()` if every block is before it.
    pub(crate) fn find(&self, user_key: &[u8], version: Version) -> usize {
        let Some(first) = self.user_key(0) else {
            return 0;
        };
        let shared = &first[..self.shared];
        if !user_key.starts_with(shared) {
            // Every key starts with `shared`: a target that does not sorts before all of them
            // (it is smaller where they differ, or a proper prefix) or after all of them.
            return if user_key < shared { 0 } else { self.len() };
        }
        let prefix = key_prefix(&user_key[self.shared..]);
        // Prefixes never contradict key order, so they are sorted: blocks before `lo` end
        // below the target and blocks from `hi` on end above it.
        let lo = self.prefixes.partition_point(|&p| p < prefix);
        let hi = self.equal_prefix_end(lo, prefix);
        let version = version.to_bytes();
        // Keys were checked on open to hold a version, so the comparison never fails.
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if compare_encoded(self.key(mid), user_key, &version) == Some(Ordering::Less) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        a
    }

    /// The first block at or after `lo` whose prefix is not `prefix` (blocks from `lo` on have
    /// prefixes `>= prefix`), found by galloping: one comparison when, as usual, no block or
    /// one block shares the target's prefix, and logarithmic when many do.
    fn equal_prefix_end(&self, lo: usize, prefix: u64) -> usize {
        let n = self.prefixes.len();
        let (mut known_equal_end, mut step) = (lo, 1);
        loop {
            let probe = known_equal_end;
            if probe >= n || self.prefixes[probe] != prefix {
                return probe.min(n);
            }
            // `probe` matches; look `step` further, then search the gap if that one does not.
            let far = (probe + step).min(n);
            if far == n || self.prefixes[far] != prefix {
                let gap = &self.prefixes[probe + 1..far];
                return probe + 1 + gap.partition_point(|&p| p == prefix);
            }
            known_equal_end = far + 1;
            step *= 2;
        }
    }

    /// Where block `i` lives in the file.
    pub(crate) fn handle(&self, i: usize) -> BlockHandle {
        let e = self.entries[i];
        BlockHandle {
            offset: e.offset,
            len: u64::from(e.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::coding::put_bytes;

    /// An index payload over `keys` (sorted internal keys), one 10-byte block per key.
    fn encode(keys: &[(Vec<u8>, Version)]) -> Bytes {
        let mut out = Vec::new();
        for (i, (k, v)) in keys.iter().enumerate() {
            let mut internal = k.clone();
            internal.extend_from_slice(&v.to_bytes());
            put_bytes(&mut out, &internal);
            BlockHandle {
                offset: i as u64 * 20,
                len: 10,
            }
            .encode_varint(&mut out);
        }
        Bytes::from(out)
    }

    #[test]
    fn prefix_order_never_contradicts_key_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"\0\0",
            b"a",
            b"a\0",
            b"a\0\0\0\0\0\0\0",
            b"a\0\0\0\0\0\0\0\0",
            b"a\0\0\0\0\0\0\x01",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgi",
            b"b",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        for a in &keys {
            for b in &keys {
                match key_prefix(a).cmp(&key_prefix(b)) {
                    Ordering::Equal => {}
                    by_prefix => assert_eq!(by_prefix, a.cmp(b), "{a:?} vs {b:?}"),
                }
            }
        }
        assert_eq!(key_prefix(b"a"), key_prefix(b"a\0"), "padding is ambiguous");
    }

    /// Checks [`Index::find`] against a linear search over an index of `user_keys` (three
    /// versions each) for every key and every probe, at several versions.
    fn check_find(mut user_keys: Vec<Vec<u8>>, probes: &[&[u8]]) {
        user_keys.sort();
        user_keys.dedup();
        let mut keys = Vec::new();
        for k in &user_keys {
            for hlc in [900u64, 40, 3] {
                keys.push((k.clone(), Version::new(hlc, 1)));
            }
        }
        let path = PathBuf::from("t.sst");
        let data_end = keys.len() as u64 * 20;
        let index = Index::decode(&path, data_end, encode(&keys), data_end).expect("valid");
        assert_eq!(index.len(), keys.len());
        let mut all: Vec<Vec<u8>> = user_keys.clone();
        all.extend(probes.iter().map(|p| p.to_vec()));
        for probe in &all {
            for version in [
                Version::new(u64::MAX, u32::MAX),
                Version::new(900, 1),
                Version::new(100, 0),
                Version::new(3, 1),
                Version::new(0, 0),
            ] {
                let want = keys
                    .iter()
                    .position(|(k, v)| compare_internal(k, *v, probe, version) != Ordering::Less)
                    .unwrap_or(keys.len());
                assert_eq!(index.find(probe, version), want, "{probe:?} {version:?}");
            }
        }
    }

    fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
        keys.iter().map(|k| k.to_vec()).collect()
    }

    #[test]
    fn find_matches_a_linear_search() {
        // Short keys, keys that are prefixes of others, keys ending in zero bytes, and keys
        // sharing their first 8 bytes: every case where the packed prefix cannot decide alone.
        check_find(
            owned(&[
                b"",
                b"a",
                b"a\0",
                b"a\0\0",
                b"abcdefgh",
                b"abcdefgh\0",
                b"abcdefgha",
                b"abcdefghb",
                b"abcdefgi",
                b"b",
                b"\x00\x07key:0001",
                b"\x00\x07key:0002",
                b"\x00\x08key:0000",
            ]),
            &[
                b"0",
                b"a\0\x01",
                b"abcdefg",
                b"abcdefgh\x01",
                b"c",
                b"\x00\x07key:00015",
            ],
        );
    }

    #[test]
    fn find_skips_the_bytes_every_key_shares() {
        // Zero-padded numbers share their first ten bytes: the packed prefixes start after
        // them. Probes without those bytes sort before or after every key.
        let keys: Vec<Vec<u8>> = (0..300u64)
            .map(|i| format!("{:016}", i * 7 + 1_000_000).into_bytes())
            .collect();
        check_find(
            keys,
            &[
                b"",
                b"0",
                b"000000000",
                b"0000000001",
                b"0000000001000000",
                b"00000000010000000",
                b"0000000001000001",
                b"0000000001002092",
                b"0000000001002093",
                b"0000000001\xff",
                b"0000000002",
                b"1",
                b"\xff",
            ],
        );
        // One key: everything is shared, so every packed prefix is empty and equal.
        check_find(owned(&[b"only"]), &[b"", b"onl", b"only\0", b"onlz"]);
        let index = Index::decode(&PathBuf::from("t.sst"), 0, Bytes::new(), 0).expect("empty");
        assert_eq!(index.find(b"k", Version::new(1, 0)), 0);
    }

    #[test]
    fn find_gallops_over_many_blocks_sharing_a_packed_prefix() {
        // Keys alike in their first 8 bytes after the shared ones: every packed prefix is
        // equal and whole keys decide, over runs longer than one galloping step.
        let mut keys: Vec<Vec<u8>> = (0..70u32)
            .map(|i| format!("k-aaaaaaaa{i:03}").into_bytes())
            .collect();
        keys.extend((0..5u32).map(|i| format!("k-aaaaaaab{i}").into_bytes()));
        keys.push(b"k-z".to_vec());
        check_find(
            keys,
            &[
                b"k-",
                b"k-aaaaaaaa",
                b"k-aaaaaaaa0345",
                b"k-aaaaaaab",
                b"k-b",
                b"l",
            ],
        );
    }

    proptest::proptest! {
        /// Random keys over a tiny alphabet (long shared prefixes, prefixes of each other,
        /// zero bytes, equal packed prefixes) and random probes agree with a linear search.
        #[test]
        fn find_matches_a_linear_search_on_random_keys(
            head in proptest::collection::vec(proptest::sample::select(vec![0u8, b'a']), 0..10),
            tails in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a']), 0..12),
                1..30,
            ),
            probes in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b']), 0..14),
                1..10,
            ),
        ) {
            let keys: Vec<Vec<u8>> = tails.iter().map(|t| [&head[..], t].concat()).collect();
            let mut all_probes: Vec<Vec<u8>> = probes.clone();
            all_probes.extend(probes.iter().map(|p| [&head[..], p].concat()));
            let refs: Vec<&[u8]> = all_probes.iter().map(|p| p.as_slice()).collect();
            check_find(keys, &refs);
        }
    }

    #[test]
    fn out_of_order_keys_and_bad_handles_are_corruption() {
        let path = PathBuf::from("t.sst");
        let v = Version::new(5, 0);
        let swapped = encode(&[(b"b".to_vec(), v), (b"a".to_vec(), v)]);
        assert!(matches!(
            Index::decode(&path, 100, swapped, 100),
            Err(Error::Corruption { .. })
        ));
        let past_end = encode(&[(b"a".to_vec(), v), (b"b".to_vec(), v)]);
        assert!(matches!(
            Index::decode(&path, 20, past_end, 20),
            Err(Error::Corruption { .. })
        ));
        assert!(matches!(
            Index::decode(&path, 100, Bytes::from_static(&[3, b'a']), 100),
            Err(Error::Corruption { .. })
        ));
    }
}
