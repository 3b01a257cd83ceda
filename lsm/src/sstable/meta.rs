//! What the engine knows about an SSTable without reading its data: key and version ranges,
//! expiry horizon, counts and size.
//!
//! Owns [`TableMeta`] and its encoding (stored both in the table's meta block and in the
//! manifest). Must never hold anything that needs the file open.

use bytes::Bytes;

use crate::coding::{put_bytes, put_varint, Decoder};
use crate::record::Version;

/// Summary of one SSTable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    /// The table's file number (`{id:06}.sst`).
    pub id: u64,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// Smallest user key.
    pub min_key: Bytes,
    /// Largest user key.
    pub max_key: Bytes,
    /// Smallest version of any record.
    pub min_version: Version,
    /// Largest version of any record.
    pub max_version: Version,
    /// Largest sequence number of any record.
    pub max_seqno: u64,
    /// Latest `expire_at_ms` of any value record: `u64::MAX` if some value never expires, 0 if
    /// the table holds no values.
    pub max_expire_at_ms: u64,
    /// Latest deletion time (ms) of any tombstone: the larger of its version's milliseconds and
    /// its `expire_at_ms`; 0 if there are none.
    pub max_tombstone_ms: u64,
    /// Number of records (all versions).
    pub records: u64,
    /// Number of tombstones among them.
    pub tombstones: u64,
    /// Sum of key and value lengths as written by users, for amplification figures.
    pub raw_bytes: u64,
}

impl TableMeta {
    /// Whether every record in the table is dead at `now_ms`: values expired, tombstones past
    /// `gc_grace_ms`. Such a table may be dropped whole, without reading it, once nothing it
    /// could shadow remains (compaction checks that).
    pub fn fully_expired(&self, now_ms: u64, gc_grace_ms: u64) -> bool {
        self.max_expire_at_ms <= now_ms
            && (self.tombstones == 0 || self.max_tombstone_ms.saturating_add(gc_grace_ms) <= now_ms)
    }

    /// Whether the table's key range overlaps `[min, max]` (user keys, inclusive).
    pub fn overlaps(&self, min: &[u8], max: &[u8]) -> bool {
        self.min_key.as_ref() <= max && min <= self.max_key.as_ref()
    }

    /// Whether `key` lies in the table's key range.
    pub fn may_contain_key(&self, key: &[u8]) -> bool {
        self.min_key.as_ref() <= key && key <= self.max_key.as_ref()
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.id);
        put_varint(out, self.file_bytes);
        put_bytes(out, &self.min_key);
        put_bytes(out, &self.max_key);
        out.extend_from_slice(&self.min_version.to_bytes());
        out.extend_from_slice(&self.max_version.to_bytes());
        put_varint(out, self.max_seqno);
        put_varint(out, self.max_expire_at_ms);
        put_varint(out, self.max_tombstone_ms);
        put_varint(out, self.records);
        put_varint(out, self.tombstones);
        put_varint(out, self.raw_bytes);
    }

    /// Decodes [`TableMeta::encode`]'s output; `None` if it is malformed.
    pub(crate) fn decode(d: &mut Decoder<'_>) -> Option<Self> {
        Some(Self {
            id: d.varint()?,
            file_bytes: d.varint()?,
            min_key: Bytes::copy_from_slice(d.length_prefixed()?),
            max_key: Bytes::copy_from_slice(d.length_prefixed()?),
            min_version: Version::from_bytes(d.bytes(Version::ENCODED_LEN)?)?,
            max_version: Version::from_bytes(d.bytes(Version::ENCODED_LEN)?)?,
            max_seqno: d.varint()?,
            max_expire_at_ms: d.varint()?,
            max_tombstone_ms: d.varint()?,
            records: d.varint()?,
            tombstones: d.varint()?,
            raw_bytes: d.varint()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableMeta {
        TableMeta {
            id: 42,
            file_bytes: 4096,
            min_key: Bytes::from_static(b"a"),
            max_key: Bytes::from_static(b"m"),
            min_version: Version::new(1, 2),
            max_version: Version::new(300, 4),
            max_seqno: 77,
            max_expire_at_ms: 1_000,
            max_tombstone_ms: 500,
            records: 10,
            tombstones: 2,
            raw_bytes: 999,
        }
    }

    #[test]
    fn encoding_roundtrips() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        let mut d = Decoder::new(&out);
        assert_eq!(TableMeta::decode(&mut d), Some(sample()));
        assert!(d.is_empty());
        assert_eq!(
            TableMeta::decode(&mut Decoder::new(&out[..out.len() - 1])),
            None
        );
    }

    #[test]
    fn full_expiry_waits_for_values_and_tombstone_grace() {
        let m = sample();
        assert!(!m.fully_expired(999, 0));
        assert!(m.fully_expired(1_000, 0));
        assert!(!m.fully_expired(1_000, 600));
        assert!(m.fully_expired(1_100, 600));
        let forever = TableMeta {
            max_expire_at_ms: u64::MAX,
            ..sample()
        };
        assert!(!forever.fully_expired(u64::MAX - 1, 0));
    }

    #[test]
    fn overlap_is_inclusive() {
        let m = sample();
        assert!(m.overlaps(b"m", b"z"));
        assert!(!m.overlaps(b"n", b"z"));
        assert!(m.may_contain_key(b"a"));
        assert!(!m.may_contain_key(b"0"));
    }
}
