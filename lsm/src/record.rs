//! Records and their ordering: what one write of one key is, and how versions of a key sort.
//!
//! Owns [`Version`], [`Record`], and the engine-internal [`InternalKey`] / [`Entry`] pair that
//! every layer (memtable, WAL, SSTable, compaction) stores. Must never know what a key means:
//! keys are opaque bytes (the cluster prefixes a slot, the engine does not care).

use std::cmp::Ordering;

use bytes::Bytes;

/// The version of one write: a hybrid-logical-clock timestamp with the writing node's id as a
/// tie-break. Versions order by `hlc`, then `node`; the highest version of a key wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// HLC timestamp: milliseconds since the unix epoch in the high 48 bits, a logical counter
    /// in the low 16 (see the cluster's HLC).
    pub hlc: u64,
    /// The writing node's numeric id, only used to break ties between equal timestamps.
    pub node: u32,
}

impl Version {
    /// Encoded size of a version in bytes.
    pub const ENCODED_LEN: usize = 12;

    /// A version from its parts.
    pub const fn new(hlc: u64, node: u32) -> Self {
        Self { hlc, node }
    }

    /// The wall-clock milliseconds part of the HLC timestamp.
    pub const fn millis(&self) -> u64 {
        self.hlc >> 16
    }

    /// Big-endian encoding that sorts bytewise like the version itself.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.hlc.to_be_bytes());
        out[8..].copy_from_slice(&self.node.to_be_bytes());
        out
    }

    /// Decodes [`Version::to_bytes`]; `None` if `bytes` is not exactly 12 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::ENCODED_LEN {
            return None;
        }
        let mut hlc = [0u8; 8];
        hlc.copy_from_slice(&bytes[..8]);
        let mut node = [0u8; 4];
        node.copy_from_slice(&bytes[8..]);
        Some(Self {
            hlc: u64::from_be_bytes(hlc),
            node: u32::from_be_bytes(node),
        })
    }
}

/// One versioned write of one key, as the engine's users see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The write's version; the engine keeps the highest version of each key.
    pub version: Version,
    /// Unix milliseconds after which the record reads as absent; 0 means it never expires.
    pub expire_at_ms: u64,
    /// The value, or `None` for a tombstone (a delete).
    pub value: Option<Bytes>,
}

impl Record {
    /// A value that never expires.
    pub fn value(version: Version, value: impl Into<Bytes>) -> Self {
        Self {
            version,
            expire_at_ms: 0,
            value: Some(value.into()),
        }
    }

    /// A value that reads as absent from `expire_at_ms` (unix ms) on.
    pub fn expiring(version: Version, value: impl Into<Bytes>, expire_at_ms: u64) -> Self {
        Self {
            version,
            expire_at_ms,
            value: Some(value.into()),
        }
    }

    /// A delete.
    pub fn tombstone(version: Version) -> Self {
        Self {
            version,
            expire_at_ms: 0,
            value: None,
        }
    }

    /// Whether this record is a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Whether the record has expired at `now_ms` (a tombstone never "expires"; it is absent anyway).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }

    /// Whether a read at `now_ms` sees this record as a live value.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.is_tombstone() && !self.is_expired(now_ms)
    }
}

/// The key the engine sorts by: the user key ascending, then the version **descending**, so the
/// first entry of a key in any sorted source is that source's winning version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InternalKey {
    /// The user's key bytes.
    pub user_key: Bytes,
    /// The write's version.
    pub version: Version,
}

impl InternalKey {
    /// A key from its parts.
    pub fn new(user_key: impl Into<Bytes>, version: Version) -> Self {
        Self {
            user_key: user_key.into(),
            version,
        }
    }

    /// The smallest internal key for `user_key`: sorts before every version of it.
    #[cfg(test)]
    pub fn seek_first(user_key: &[u8]) -> Self {
        Self {
            user_key: Bytes::copy_from_slice(user_key),
            version: Version::new(u64::MAX, u32::MAX),
        }
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal(&self.user_key, self.version, &other.user_key, other.version)
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The one ordering of internal keys: user key ascending, version descending.
pub fn compare_internal(a_key: &[u8], a_ver: Version, b_key: &[u8], b_ver: Version) -> Ordering {
    a_key.cmp(b_key).then_with(|| b_ver.cmp(&a_ver))
}

/// What the engine stores under an [`InternalKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Arrival order inside this engine (assigned under the WAL lock); snapshots see entries
    /// with `seqno <= snapshot`. Unrelated to the version, which is the writer's clock.
    pub seqno: u64,
    /// Unix ms expiry, 0 = none. On a tombstone made from an expired value by compaction, the
    /// original expiry (so `gc_grace` counts from when the value died).
    pub expire_at_ms: u64,
    /// The value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

impl Entry {
    /// Whether this entry is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Whether this entry is a value that has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.value.is_some() && self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }

    /// Approximate memory footprint, for memtable accounting.
    pub fn approximate_size(&self) -> usize {
        24 + self.value.as_ref().map_or(0, |v| v.len())
    }

    /// The user-facing record for this entry under `version`.
    pub fn to_record(&self, version: Version) -> Record {
        Record {
            version,
            expire_at_ms: self.expire_at_ms,
            value: self.value.clone(),
        }
    }

    /// As [`Entry::to_record`], moving the value instead of taking another reference to it.
    pub fn into_record(self, version: Version) -> Record {
        Record {
            version,
            expire_at_ms: self.expire_at_ms,
            value: self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_a_key_sort_newest_first() {
        let old = InternalKey::new("k", Version::new(5, 1));
        let new = InternalKey::new("k", Version::new(9, 0));
        let tie = InternalKey::new("k", Version::new(9, 2));
        let mut keys = vec![old.clone(), new.clone(), tie.clone()];
        keys.sort();
        assert_eq!(keys, vec![tie, new, old]);
    }

    #[test]
    fn user_key_order_dominates_and_prefixes_sort_first() {
        let a = InternalKey::new("a", Version::new(1, 0));
        let ab = InternalKey::new("ab", Version::new(100, 0));
        assert!(a < ab);
        assert!(InternalKey::seek_first(b"ab") <= ab);
    }

    #[test]
    fn version_bytes_roundtrip_and_sort_like_versions() {
        let v = Version::new(0x0102_0304_0506_0708, 0x0a0b_0c0d);
        assert_eq!(Version::from_bytes(&v.to_bytes()), Some(v));
        assert!(Version::new(1, 9).to_bytes() < Version::new(2, 0).to_bytes());
        assert_eq!(Version::from_bytes(&[0; 3]), None);
    }

    #[test]
    fn expiry_and_liveness() {
        let r = Record::expiring(Version::new(1, 0), "v", 100);
        assert!(r.is_live(99));
        assert!(!r.is_live(100));
        assert!(!Record::tombstone(Version::new(1, 0)).is_live(0));
        assert!(Record::value(Version::new(1, 0), "v").is_live(u64::MAX));
    }
}
