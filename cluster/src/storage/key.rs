//! The engine key encoding: `slot (u16, big-endian) ‖ user key`.
//!
//! Owns [`encode`], [`decode`] and the bounds that delimit slots. Slot-major order makes a
//! slot, a slot range and a `SCAN` resume point plain engine ranges. Must never change the
//! layout: it is what is on disk.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};

use crate::slot::SLOTS;
use crate::storage::SlotKey;

/// Bytes the slot prefix adds to every user key.
pub const PREFIX_LEN: usize = 2;

/// The engine key of `key` in `slot`.
pub fn encode(slot: u16, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_LEN + key.len());
    out.put_u16(slot);
    out.put_slice(key);
    out.freeze()
}

/// The engine key of a position, into `out` (reused to avoid an allocation per bound).
pub fn encode_into(pos: SlotKey<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&pos.slot.to_be_bytes());
    out.extend_from_slice(pos.key);
}

/// The slot and user key of an engine key; `None` for a key too short to carry a slot.
pub fn decode(engine_key: &Bytes) -> Option<(u16, Bytes)> {
    let prefix = engine_key.get(..PREFIX_LEN)?;
    let slot = u16::from_be_bytes([prefix[0], prefix[1]]);
    Some((slot, engine_key.slice(PREFIX_LEN..)))
}

/// The end of `slot`'s keys: the start of the next prefix (exclusive), or no bound for the
/// last prefix, which runs to the end of the keyspace.
pub fn slot_end(slot: u16) -> Bound<SlotKey<'static>> {
    match slot.checked_add(1) {
        Some(next) => Bound::Excluded(SlotKey::slot_start(next)),
        None => Bound::Unbounded,
    }
}

/// The exclusive end of the user keyspace: the first system prefix. Every user-key walk ends
/// here, so system keyspaces never leak into `SCAN` or `KRANGE`.
pub fn user_keyspace_end() -> Bound<SlotKey<'static>> {
    Bound::Excluded(SlotKey::slot_start(SLOTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_slot_then_user_key() {
        let a = encode(1, b"zzz");
        let b = encode(2, b"a");
        let c = encode(2, b"b");
        let long = encode(0x0100, b"");
        assert!(a < b && b < c);
        // Big-endian: slot 256 sorts after slot 2, which little-endian would break.
        assert!(c < long);
        assert_eq!(&encode(0x1234, b"k")[..], &[0x12, 0x34, b'k']);
    }

    #[test]
    fn decode_inverts_encode() {
        let k = encode(16383, b"user:1");
        assert_eq!(decode(&k), Some((16383, Bytes::from_static(b"user:1"))));
        assert_eq!(decode(&Bytes::from_static(b"x")), None);
        assert_eq!(decode(&encode(0, b"")), Some((0, Bytes::new())));
    }

    #[test]
    fn encode_into_matches_encode() {
        let mut buf = vec![9, 9, 9, 9, 9];
        encode_into(SlotKey::new(7, b"ab"), &mut buf);
        assert_eq!(buf, encode(7, b"ab").to_vec());
    }
}
