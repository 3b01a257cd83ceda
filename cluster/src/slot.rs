//! Hash slots: which of the 16384 slots a key belongs to.
//!
//! Owns [`key_slot`], [`hash_tag`] and [`SLOTS`]: exactly Redis Cluster's rule (CRC16/XMODEM of
//! the key, or of its first non-empty `{...}` hash tag, modulo 16384), so cluster-aware Redis
//! clients compute the same slot as the server. Must never change the mapping: slots are part
//! of every engine key on disk.

/// Number of hash slots, as in Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the checksum Redis
/// Cluster hashes keys with. Two tables built at compile time take the key two bytes per
/// step: `CRC16_TABLE[v]` is the remainder of `v·x^16`, `CRC16_TABLE_HI[v]` that of `v·x^24`,
/// so a 16-bit chunk `w` folds in as `HI[w >> 8] ^ TABLE[w & 0xff]` (the CRC is linear). One
/// 65536-entry table would take one lookup per chunk but 128 KiB of cache.
const CRC16_TABLE: [u16; 256] = build_crc16_table();
const CRC16_TABLE_HI: [u16; 256] = build_crc16_table_hi(&CRC16_TABLE);

const fn build_crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Each entry of `table` advanced by one more zero byte: `v·x^24` from `v·x^16`.
const fn build_crc16_table_hi(table: &[u16; 256]) -> [u16; 256] {
    let mut hi = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let crc = table[i];
        hi[i] = (crc << 8) ^ table[(crc >> 8) as usize];
        i += 1;
    }
    hi
}

/// CRC16/XMODEM of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut pairs = bytes.chunks_exact(2);
    let mut crc = 0u16;
    for pair in &mut pairs {
        let w = crc ^ u16::from_be_bytes([pair[0], pair[1]]);
        crc = CRC16_TABLE_HI[usize::from(w >> 8)] ^ CRC16_TABLE[usize::from(w & 0xff)];
    }
    for &b in pairs.remainder() {
        crc = (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)];
    }
    crc
}

/// The part of `key` that is hashed when it has a hash tag: the bytes between the first `{`
/// and the first `}` after it, if there are any. `None` when there is no `{`, no `}` after it,
/// or nothing between them (`{}` hashes the whole key, as in Redis).
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let (open, close) = hash_tag_span(key)?;
    Some(&key[open + 1..close])
}

/// Byte positions of the `{` and `}` of `key`'s hash tag, when it has a non-empty one.
pub(crate) fn hash_tag_span(key: &[u8]) -> Option<(usize, usize)> {
    let open = memchr::memchr(b'{', key)?;
    let len = memchr::memchr(b'}', &key[open + 1..])?;
    if len == 0 {
        return None;
    }
    Some((open, open + 1 + len))
}

/// The slot of `key`: CRC16 of its hash tag (or of the whole key without one) mod [`SLOTS`].
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    // SLOTS is a power of two, so the modulo is a mask, as in Redis's `keyHashSlot`.
    crc16(hashed) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        // The standard check value of CRC-16/XMODEM, also quoted in Redis's cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Values from `CLUSTER KEYSLOT` on a real Redis.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags_pin_keys_to_one_slot() {
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(hash_tag(b"{user1000}.following"), Some(&b"user1000"[..]));
        // Only the first `{` and the first `}` after it count.
        assert_eq!(hash_tag(b"foo{bar}{zap}"), Some(&b"bar"[..]));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn empty_or_unclosed_tags_hash_the_whole_key() {
        assert_eq!(hash_tag(b"foo{}{bar}"), None);
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(hash_tag(b"foo{bar"), None);
        assert_eq!(hash_tag(b"foo}bar{"), None);
        assert_eq!(hash_tag(b"plain"), None);
    }

    /// The one-byte-at-a-time CRC16 the two-byte version must equal.
    fn crc16_bytewise(bytes: &[u8]) -> u16 {
        bytes.iter().fold(0u16, |crc, &b| {
            (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
        })
    }

    /// Redis's `keyHashSlot` transcribed: the reference for the hash-tag rules.
    fn redis_key_hash_slot(key: &[u8]) -> u16 {
        let Some(s) = key.iter().position(|&b| b == b'{') else {
            return crc16_bytewise(key) & 0x3FFF;
        };
        let Some(e) = key[s + 1..].iter().position(|&b| b == b'}') else {
            return crc16_bytewise(key) & 0x3FFF;
        };
        if e == 0 {
            return crc16_bytewise(key) & 0x3FFF;
        }
        crc16_bytewise(&key[s + 1..s + 1 + e]) & 0x3FFF
    }

    #[test]
    fn redis_cluster_spec_vectors() {
        // `CLUSTER KEYSLOT` on redis-server 7 (the first is the spec's CRC16 check value).
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"{user1000}.followers"), 3443);
        assert_eq!(key_slot(b"user1000"), 3443);
        assert_eq!(key_slot(b"a"), 15495);
        assert_eq!(key_slot(b"ab"), 13567);
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"foo{{bar}}zap"), 4015);
        assert_eq!(key_slot(b"foo{bar}{zap}"), 5061);
    }

    proptest::proptest! {
        #[test]
        fn two_bytes_per_step_equals_one_byte_per_step(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)
        ) {
            proptest::prop_assert_eq!(crc16(&bytes), crc16_bytewise(&bytes));
        }

        #[test]
        fn slots_follow_redis_hash_tag_rules(
            key in proptest::collection::vec(
                proptest::sample::select(vec![b'{', b'}', b'a', b'b', 0u8, 0xff]), 0..16)
        ) {
            proptest::prop_assert_eq!(key_slot(&key), redis_key_hash_slot(&key));
        }
    }

    #[test]
    fn every_slot_is_below_the_slot_count() {
        for i in 0..10_000u32 {
            assert!(key_slot(format!("key:{i}").as_bytes()) < SLOTS);
        }
    }
}
