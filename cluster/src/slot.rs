//! Hash slots: which of the 16384 slots a key belongs to.
//!
//! Owns [`key_slot`], [`hash_tag`] and [`SLOTS`]: exactly Redis Cluster's rule (CRC16/XMODEM of
//! the key, or of its first non-empty `{...}` hash tag, modulo 16384), so cluster-aware Redis
//! clients compute the same slot as the server. Must never change the mapping: slots are part
//! of every engine key on disk.

/// Number of hash slots, as in Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the checksum Redis
/// Cluster hashes keys with. A table built at compile time keeps it one lookup per byte.
const CRC16_TABLE: [u16; 256] = build_crc16_table();

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

/// CRC16/XMODEM of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
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
    let open = key.iter().position(|&b| b == b'{')?;
    let len = key[open + 1..].iter().position(|&b| b == b'}')?;
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

    #[test]
    fn every_slot_is_below_the_slot_count() {
        for i in 0..10_000u32 {
            assert!(key_slot(format!("key:{i}").as_bytes()) < SLOTS);
        }
    }
}
