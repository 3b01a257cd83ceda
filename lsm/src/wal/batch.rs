//! The WAL's unit of writing: a batch of records with consecutive sequence numbers.
//!
//! Owns [`WalBatch`] and its encoding, which is the payload of one WAL frame. Must never
//! trust its input when decoding: a payload that passed its CRC can still come from a buggy
//! writer, so every length is bounds-checked and trailing bytes are refused.
//!
//! ```text
//! batch  = first_seqno: varint, count: varint, record * count
//! record = key_len: varint, key, version: 12 bytes (hlc BE, node BE), expire_at_ms: varint,
//!          kind: u8 (0 value, 1 tombstone), [value_len: varint, value]   (value only if kind 0)
//! ```

use bytes::Bytes;

use crate::coding::{put_bytes, put_varint, Decoder};
use crate::record::{Record, Version};

/// Kind byte of a record carrying a value.
const KIND_VALUE: u8 = 0;
/// Kind byte of a tombstone.
const KIND_TOMBSTONE: u8 = 1;
/// The fewest bytes one record can take (empty key, version, one-byte expiry, kind, and an
/// empty value or none), used to bound the record count before allocating.
const MIN_RECORD_BYTES: usize = 1 + Version::ENCODED_LEN + 1 + 1;

/// Records written together: record `i` has sequence number `first_seqno + i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalBatch {
    /// Sequence number of the first record.
    pub first_seqno: u64,
    /// Keys and their records, in the order they were written.
    pub records: Vec<(Bytes, Record)>,
}

impl WalBatch {
    /// Sequence number of the last record, or `None` for an empty batch.
    pub(crate) fn last_seqno(&self) -> Option<u64> {
        let n = self.records.len() as u64;
        (n > 0).then(|| self.first_seqno + (n - 1))
    }

    /// Exact length of [`WalBatch::encode`]'s output, so callers can size buffers and check
    /// limits before encoding.
    pub(crate) fn encoded_len(&self) -> usize {
        use crate::coding::varint_len;
        let mut n = varint_len(self.first_seqno) + varint_len(self.records.len() as u64);
        for (key, rec) in &self.records {
            n += varint_len(key.len() as u64) + key.len();
            n += Version::ENCODED_LEN + varint_len(rec.expire_at_ms) + 1;
            if let Some(v) = &rec.value {
                n += varint_len(v.len() as u64) + v.len();
            }
        }
        n
    }

    /// Appends the encoding to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.first_seqno);
        put_varint(out, self.records.len() as u64);
        for (key, rec) in &self.records {
            put_bytes(out, key);
            out.extend_from_slice(&rec.version.to_bytes());
            put_varint(out, rec.expire_at_ms);
            match &rec.value {
                Some(v) => {
                    out.push(KIND_VALUE);
                    put_bytes(out, v);
                }
                None => out.push(KIND_TOMBSTONE),
            }
        }
    }

    /// Decodes [`WalBatch::encode`]'s output; `None` if it is malformed or has trailing bytes.
    pub(crate) fn decode(payload: &[u8]) -> Option<WalBatch> {
        let mut d = Decoder::new(payload);
        let first_seqno = d.varint()?;
        let count = d.varint_len(d.remaining() / MIN_RECORD_BYTES)?;
        // The seqnos of the batch must not wrap.
        first_seqno.checked_add(count as u64)?;
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let key = Bytes::copy_from_slice(d.length_prefixed()?);
            let version = Version::from_bytes(d.bytes(Version::ENCODED_LEN)?)?;
            let expire_at_ms = d.varint()?;
            let value = match d.u8()? {
                KIND_VALUE => Some(Bytes::copy_from_slice(d.length_prefixed()?)),
                KIND_TOMBSTONE => None,
                _ => return None,
            };
            records.push((
                key,
                Record {
                    version,
                    expire_at_ms,
                    value,
                },
            ));
        }
        d.is_empty().then_some(WalBatch {
            first_seqno,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(first_seqno: u64) -> WalBatch {
        WalBatch {
            first_seqno,
            records: vec![
                (
                    Bytes::from_static(b"alpha"),
                    Record::value(Version::new(10, 1), "one"),
                ),
                (
                    Bytes::from_static(b""),
                    Record::expiring(Version::new(u64::MAX, u32::MAX), "", 1_700_000_000_000),
                ),
                (
                    Bytes::from_static(b"gone"),
                    Record::tombstone(Version::new(3, 0)),
                ),
            ],
        }
    }

    #[test]
    fn batches_roundtrip_and_know_their_length() {
        for batch in [sample(0), sample(u64::MAX - 3), WalBatch::default()] {
            let mut out = vec![0xEE];
            batch.encode(&mut out);
            assert_eq!(out.len() - 1, batch.encoded_len());
            assert_eq!(WalBatch::decode(&out[1..]), Some(batch));
        }
        assert_eq!(sample(5).last_seqno(), Some(7));
        assert_eq!(WalBatch::default().last_seqno(), None);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let mut out = Vec::new();
        sample(1).encode(&mut out);
        for cut in 0..out.len() {
            assert_eq!(WalBatch::decode(&out[..cut]), None, "cut at {cut}");
        }
        let mut long = out.clone();
        long.push(0);
        assert_eq!(WalBatch::decode(&long), None);
        // A count far beyond what the payload could hold.
        let mut huge = Vec::new();
        put_varint(&mut huge, 1);
        put_varint(&mut huge, u64::MAX);
        assert_eq!(WalBatch::decode(&huge), None);
        // Seqnos that would wrap.
        let mut out = Vec::new();
        sample(u64::MAX - 1).encode(&mut out);
        assert_eq!(WalBatch::decode(&out), None);
        // An unknown kind byte: "alpha" record's kind sits after key, version and expiry.
        let mut out = Vec::new();
        sample(0).encode(&mut out);
        let kind_at = 2 + 1 + 5 + Version::ENCODED_LEN + 1;
        assert_eq!(out[kind_at], KIND_VALUE);
        out[kind_at] = 9;
        assert_eq!(WalBatch::decode(&out), None);
    }

    fn record() -> impl Strategy<Value = (Bytes, Record)> {
        (
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        )
            .prop_map(|(key, hlc, node, expire_at_ms, value)| {
                let record = Record {
                    version: Version::new(hlc, node),
                    expire_at_ms,
                    value: value.map(Bytes::from),
                };
                (Bytes::from(key), record)
            })
    }

    proptest! {
        #[test]
        fn any_batch_roundtrips(
            first_seqno in 0u64..1 << 60,
            records in proptest::collection::vec(record(), 0..8),
        ) {
            let batch = WalBatch { first_seqno, records };
            let mut out = Vec::new();
            batch.encode(&mut out);
            prop_assert_eq!(out.len(), batch.encoded_len());
            prop_assert_eq!(WalBatch::decode(&out), Some(batch));
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = WalBatch::decode(&bytes);
        }
    }
}
