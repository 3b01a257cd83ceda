//! The binary form of each peer message and of the types inside it. Tags are explicit numbers,
//! never enum discriminants or positions in a list, so reordering a Rust enum cannot change
//! the protocol. Must never allocate for a count it has not checked against the input.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};
use ringkv_lsm::{Record, Version};

use super::buf::{prealloc, put_bytes, put_count, Reader};
use super::WireError;
use crate::api::{Condition, Consistency, Level, Write};
use crate::rpc::{
    PeerRequest, PeerResponse, RemoteFailure, RemoteFailureKind, SlotPosition, Stamped, OPERATIONS,
};
use crate::storage::SlotRecord;

// Request tags.
const REQ_READ: u8 = 1;
const REQ_APPLY: u8 = 2;
const REQ_RANGE: u8 = 3;
const REQ_COUNT_SLOTS: u8 = 4;
const REQ_COORDINATE: u8 = 5;
const REQ_TRUNCATE: u8 = 6;
const REQ_KEY_RANGE: u8 = 7;

// Response tags.
const RESP_RECORDS: u8 = 1;
const RESP_APPLIED: u8 = 2;
const RESP_RANGE: u8 = 3;
const RESP_COUNTS: u8 = 4;
const RESP_WRITTEN: u8 = 5;
const RESP_DONE: u8 = 6;
const RESP_FAILED: u8 = 7;

// Smallest encodings, for checking counts before allocating.
const MIN_POSITION: usize = 2 + 4;
const MIN_RECORD: usize = Version::ENCODED_LEN + 8 + 1;
const MIN_SLOT_RECORD: usize = 2 + 4 + MIN_RECORD;
const MIN_WRITE: usize = 4 + 1 + 8 + 1;

/// A capacity guess for a request's encoding: the fixed parts plus every byte string.
pub(super) fn request_size_hint(body: &PeerRequest) -> usize {
    let variable = match body {
        PeerRequest::Read { keys } => keys.iter().map(|(_, k)| MIN_POSITION + k.len()).sum(),
        PeerRequest::Apply { records } => records.iter().map(slot_record_hint).sum(),
        PeerRequest::Range { start, end, .. } => bound_hint(start) + bound_hint(end),
        PeerRequest::KeyRange {
            spans, start, end, ..
        } => spans.len() * 4 + key_bound_hint(start) + key_bound_hint(end) + 10,
        PeerRequest::CountSlots { slots } => slots.len() * 2,
        PeerRequest::Coordinate { writes, .. } => writes
            .iter()
            .map(|w| {
                MIN_WRITE
                    + Version::ENCODED_LEN
                    + w.key.len()
                    + w.value.as_ref().map_or(0, |v| 4 + v.len())
            })
            .sum(),
        PeerRequest::Truncate { .. } => 12,
    };
    32 + variable
}

/// A capacity guess for a response's encoding.
pub(super) fn response_size_hint(body: &PeerResponse) -> usize {
    let variable = match body {
        PeerResponse::Records(records) => records
            .iter()
            .map(|r| 1 + r.as_ref().map_or(0, record_hint))
            .sum(),
        PeerResponse::Range(records) => records.iter().map(slot_record_hint).sum(),
        PeerResponse::Counts(counts) => counts.len() * 8,
        PeerResponse::Written(flags) => flags.len(),
        PeerResponse::Failed(failure) => failure_hint(failure),
        PeerResponse::Applied | PeerResponse::Done => 0,
    };
    32 + variable
}

fn failure_hint(failure: &RemoteFailure) -> usize {
    let parts = match &failure.kind {
        RemoteFailureKind::QuorumFailed { errors, .. } => {
            1 + 16 + 4 + errors.iter().map(|e| 4 + e.len()).sum::<usize>()
        }
        _ => 1 + 16,
    };
    1 + parts + 4 + failure.message.len()
}

fn record_hint(record: &Record) -> usize {
    MIN_RECORD + record.value.as_ref().map_or(0, |v| 4 + v.len())
}

fn slot_record_hint(record: &SlotRecord) -> usize {
    2 + 4 + record.key.len() + record_hint(&record.record)
}

fn key_bound_hint(bound: &Bound<Bytes>) -> usize {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) => 1 + 4 + k.len(),
        Bound::Unbounded => 1,
    }
}

fn bound_hint(bound: &Bound<SlotPosition>) -> usize {
    match bound {
        Bound::Included((_, k)) | Bound::Excluded((_, k)) => 1 + MIN_POSITION + k.len(),
        Bound::Unbounded => 1,
    }
}

pub(super) fn put_stamped_request(out: &mut BytesMut, message: &Stamped<PeerRequest>) {
    out.put_u64(message.hlc);
    match &message.body {
        PeerRequest::Read { keys } => {
            out.put_u8(REQ_READ);
            put_count(out, keys.len());
            for position in keys {
                put_position(out, position);
            }
        }
        PeerRequest::Apply { records } => {
            out.put_u8(REQ_APPLY);
            put_slot_records(out, records);
        }
        PeerRequest::Range {
            start,
            end,
            live_only,
            limit,
        } => {
            out.put_u8(REQ_RANGE);
            put_bound(out, start);
            put_bound(out, end);
            out.put_u8(u8::from(*live_only));
            out.put_u64(*limit as u64);
        }
        PeerRequest::KeyRange {
            spans,
            start,
            end,
            keep,
            with_values,
        } => {
            out.put_u8(REQ_KEY_RANGE);
            put_count(out, spans.len());
            for (first, last) in spans {
                out.put_u16(*first);
                out.put_u16(*last);
            }
            put_key_bound(out, start);
            put_key_bound(out, end);
            match keep {
                None => out.put_u8(0),
                Some(keep) => {
                    out.put_u8(1);
                    out.put_u64(*keep as u64);
                }
            }
            out.put_u8(u8::from(*with_values));
        }
        PeerRequest::CountSlots { slots } => {
            out.put_u8(REQ_COUNT_SLOTS);
            put_count(out, slots.len());
            for slot in slots {
                out.put_u16(*slot);
            }
        }
        PeerRequest::Coordinate {
            writes,
            consistency,
        } => {
            out.put_u8(REQ_COORDINATE);
            put_count(out, writes.len());
            for write in writes {
                put_write(out, write);
            }
            put_consistency(out, consistency);
        }
        PeerRequest::Truncate { hlc, node } => {
            out.put_u8(REQ_TRUNCATE);
            out.put_u64(*hlc);
            out.put_u32(*node);
        }
    }
}

pub(super) fn get_stamped_request(r: &mut Reader) -> Result<Stamped<PeerRequest>, WireError> {
    let hlc = r.u64()?;
    let body = match r.u8()? {
        REQ_READ => {
            let n = r.count("keys", MIN_POSITION)?;
            let mut keys = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                keys.push(get_position(r)?);
            }
            PeerRequest::Read { keys }
        }
        REQ_APPLY => PeerRequest::Apply {
            records: get_slot_records(r)?,
        },
        REQ_RANGE => PeerRequest::Range {
            start: get_bound(r)?,
            end: get_bound(r)?,
            live_only: r.bool()?,
            limit: r.usize("range limit")?,
        },
        REQ_KEY_RANGE => {
            let n = r.count("slot spans", 4)?;
            let mut spans = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                spans.push((r.u16()?, r.u16()?));
            }
            PeerRequest::KeyRange {
                spans,
                start: get_key_bound(r)?,
                end: get_key_bound(r)?,
                keep: if r.bool()? {
                    Some(r.usize("key range keep")?)
                } else {
                    None
                },
                with_values: r.bool()?,
            }
        }
        REQ_COUNT_SLOTS => {
            let n = r.count("slots", 2)?;
            let mut slots = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                slots.push(r.u16()?);
            }
            PeerRequest::CountSlots { slots }
        }
        REQ_COORDINATE => {
            let n = r.count("writes", MIN_WRITE)?;
            let mut writes = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                writes.push(get_write(r)?);
            }
            PeerRequest::Coordinate {
                writes,
                consistency: get_consistency(r)?,
            }
        }
        REQ_TRUNCATE => PeerRequest::Truncate {
            hlc: r.u64()?,
            node: r.u32()?,
        },
        tag => {
            return Err(WireError::UnknownTag {
                what: "request",
                tag,
            })
        }
    };
    Ok(Stamped { hlc, body })
}

pub(super) fn put_stamped_response(out: &mut BytesMut, message: &Stamped<PeerResponse>) {
    out.put_u64(message.hlc);
    match &message.body {
        PeerResponse::Records(records) => {
            out.put_u8(RESP_RECORDS);
            put_count(out, records.len());
            for record in records {
                match record {
                    None => out.put_u8(0),
                    Some(record) => {
                        out.put_u8(1);
                        put_record(out, record);
                    }
                }
            }
        }
        PeerResponse::Applied => out.put_u8(RESP_APPLIED),
        PeerResponse::Range(records) => {
            out.put_u8(RESP_RANGE);
            put_slot_records(out, records);
        }
        PeerResponse::Counts(counts) => {
            out.put_u8(RESP_COUNTS);
            put_count(out, counts.len());
            for count in counts {
                out.put_u64(*count);
            }
        }
        PeerResponse::Written(flags) => {
            out.put_u8(RESP_WRITTEN);
            put_count(out, flags.len());
            for flag in flags {
                out.put_u8(u8::from(*flag));
            }
        }
        PeerResponse::Done => out.put_u8(RESP_DONE),
        PeerResponse::Failed(failure) => {
            out.put_u8(RESP_FAILED);
            put_failure_kind(out, &failure.kind);
            put_bytes(out, failure.message.as_bytes());
        }
    }
}

pub(super) fn get_stamped_response(r: &mut Reader) -> Result<Stamped<PeerResponse>, WireError> {
    let hlc = r.u64()?;
    let body = match r.u8()? {
        RESP_RECORDS => {
            let n = r.count("records", 1)?;
            let mut records = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                records.push(if r.bool()? {
                    Some(get_record(r)?)
                } else {
                    None
                });
            }
            PeerResponse::Records(records)
        }
        RESP_APPLIED => PeerResponse::Applied,
        RESP_RANGE => PeerResponse::Range(get_slot_records(r)?),
        RESP_COUNTS => {
            let n = r.count("counts", 8)?;
            let mut counts = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                counts.push(r.u64()?);
            }
            PeerResponse::Counts(counts)
        }
        RESP_WRITTEN => {
            let n = r.count("flags", 1)?;
            let mut flags = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                flags.push(r.bool()?);
            }
            PeerResponse::Written(flags)
        }
        RESP_DONE => PeerResponse::Done,
        RESP_FAILED => {
            let kind = get_failure_kind(r)?;
            let message = get_string(r, "failure message")?;
            PeerResponse::Failed(RemoteFailure { kind, message })
        }
        tag => {
            return Err(WireError::UnknownTag {
                what: "response",
                tag,
            })
        }
    };
    Ok(Stamped { hlc, body })
}

fn put_position(out: &mut BytesMut, (slot, key): &SlotPosition) {
    out.put_u16(*slot);
    put_bytes(out, key);
}

fn get_position(r: &mut Reader) -> Result<SlotPosition, WireError> {
    Ok((r.u16()?, r.bytes()?))
}

fn put_bound(out: &mut BytesMut, bound: &Bound<SlotPosition>) {
    match bound {
        Bound::Included(position) => {
            out.put_u8(0);
            put_position(out, position);
        }
        Bound::Excluded(position) => {
            out.put_u8(1);
            put_position(out, position);
        }
        Bound::Unbounded => out.put_u8(2),
    }
}

fn get_bound(r: &mut Reader) -> Result<Bound<SlotPosition>, WireError> {
    match r.u8()? {
        0 => Ok(Bound::Included(get_position(r)?)),
        1 => Ok(Bound::Excluded(get_position(r)?)),
        2 => Ok(Bound::Unbounded),
        tag => Err(WireError::UnknownTag { what: "bound", tag }),
    }
}

fn put_key_bound(out: &mut BytesMut, bound: &Bound<Bytes>) {
    match bound {
        Bound::Included(key) => {
            out.put_u8(0);
            put_bytes(out, key);
        }
        Bound::Excluded(key) => {
            out.put_u8(1);
            put_bytes(out, key);
        }
        Bound::Unbounded => out.put_u8(2),
    }
}

fn get_key_bound(r: &mut Reader) -> Result<Bound<Bytes>, WireError> {
    match r.u8()? {
        0 => Ok(Bound::Included(r.bytes()?)),
        1 => Ok(Bound::Excluded(r.bytes()?)),
        2 => Ok(Bound::Unbounded),
        tag => Err(WireError::UnknownTag {
            what: "key bound",
            tag,
        }),
    }
}

fn put_version(out: &mut BytesMut, version: &Version) {
    out.put_slice(&version.to_bytes());
}

fn get_version(r: &mut Reader) -> Result<Version, WireError> {
    let bytes = r.take(Version::ENCODED_LEN)?;
    // `take` returned exactly ENCODED_LEN bytes, the only length `from_bytes` refuses.
    Version::from_bytes(&bytes).ok_or(WireError::Truncated {
        needed: Version::ENCODED_LEN,
        remaining: bytes.len(),
    })
}

fn put_optional_bytes(out: &mut BytesMut, value: Option<&Bytes>) {
    match value {
        None => out.put_u8(0),
        Some(value) => {
            out.put_u8(1);
            put_bytes(out, value);
        }
    }
}

fn get_optional_bytes(r: &mut Reader) -> Result<Option<Bytes>, WireError> {
    Ok(if r.bool()? { Some(r.bytes()?) } else { None })
}

fn put_record(out: &mut BytesMut, record: &Record) {
    put_version(out, &record.version);
    out.put_u64(record.expire_at_ms);
    put_optional_bytes(out, record.value.as_ref());
}

fn get_record(r: &mut Reader) -> Result<Record, WireError> {
    Ok(Record {
        version: get_version(r)?,
        expire_at_ms: r.u64()?,
        value: get_optional_bytes(r)?,
    })
}

fn put_slot_records(out: &mut BytesMut, records: &[SlotRecord]) {
    put_count(out, records.len());
    for record in records {
        out.put_u16(record.slot);
        put_bytes(out, &record.key);
        put_record(out, &record.record);
    }
}

fn get_slot_records(r: &mut Reader) -> Result<Vec<SlotRecord>, WireError> {
    let n = r.count("slot records", MIN_SLOT_RECORD)?;
    let mut records = Vec::with_capacity(prealloc(n));
    for _ in 0..n {
        records.push(SlotRecord {
            slot: r.u16()?,
            key: r.bytes()?,
            record: get_record(r)?,
        });
    }
    Ok(records)
}

fn put_write(out: &mut BytesMut, write: &Write) {
    put_bytes(out, &write.key);
    put_optional_bytes(out, write.value.as_ref());
    out.put_u64(write.expire_at_ms);
    match &write.condition {
        Condition::Always => out.put_u8(0),
        Condition::IfVersion(None) => out.put_u8(1),
        Condition::IfVersion(Some(version)) => {
            out.put_u8(2);
            put_version(out, version);
        }
    }
}

fn get_write(r: &mut Reader) -> Result<Write, WireError> {
    Ok(Write {
        key: r.bytes()?,
        value: get_optional_bytes(r)?,
        expire_at_ms: r.u64()?,
        condition: match r.u8()? {
            0 => Condition::Always,
            1 => Condition::IfVersion(None),
            2 => Condition::IfVersion(Some(get_version(r)?)),
            tag => {
                return Err(WireError::UnknownTag {
                    what: "condition",
                    tag,
                })
            }
        },
    })
}

fn put_consistency(out: &mut BytesMut, consistency: &Consistency) {
    out.put_u8(level_tag(consistency.read));
    out.put_u8(level_tag(consistency.write));
}

fn get_consistency(r: &mut Reader) -> Result<Consistency, WireError> {
    Ok(Consistency {
        read: level(r.u8()?)?,
        write: level(r.u8()?)?,
    })
}

fn level_tag(level: Level) -> u8 {
    match level {
        Level::One => 1,
        Level::Two => 2,
        Level::Three => 3,
        Level::Quorum => 4,
        Level::All => 5,
        Level::Any => 6,
        Level::LocalOne => 7,
        Level::LocalQuorum => 8,
        Level::EachQuorum => 9,
    }
}

fn level(tag: u8) -> Result<Level, WireError> {
    Ok(match tag {
        1 => Level::One,
        2 => Level::Two,
        3 => Level::Three,
        4 => Level::Quorum,
        5 => Level::All,
        6 => Level::Any,
        7 => Level::LocalOne,
        8 => Level::LocalQuorum,
        9 => Level::EachQuorum,
        tag => {
            return Err(WireError::UnknownTag {
                what: "consistency level",
                tag,
            })
        }
    })
}

fn get_string(r: &mut Reader, what: &'static str) -> Result<String, WireError> {
    String::from_utf8(r.bytes()?.to_vec()).map_err(|_| WireError::InvalidUtf8 { what })
}

// Failure kind tags. 3 was a bare "unavailable" before protocol version 2; it now carries the
// level and counts, and the tags from 5 on are new in version 2.
const FAIL_STORAGE: u8 = 1;
const FAIL_SHUTTING_DOWN: u8 = 2;
const FAIL_UNAVAILABLE: u8 = 3;
const FAIL_REFUSED: u8 = 4;
const FAIL_QUORUM_FAILED: u8 = 5;
const FAIL_UNSUPPORTED_LEVEL: u8 = 6;
const FAIL_NO_REPLICAS: u8 = 7;
const FAIL_CROSS_SLOT: u8 = 8;
const FAIL_KEY_TOO_LARGE: u8 = 9;
const FAIL_VALUE_TOO_LARGE: u8 = 10;
const FAIL_OVERLOADED: u8 = 11;
const FAIL_KEY_BUSY: u8 = 12;

/// The tag of an unsupported level's operation: its index + 1 in `OPERATIONS`.
fn operation_tag(operation: &str) -> Option<u8> {
    OPERATIONS
        .iter()
        .position(|o| *o == operation)
        .and_then(|i| u8::try_from(i + 1).ok())
}

fn put_failure_kind(out: &mut BytesMut, kind: &RemoteFailureKind) {
    match kind {
        RemoteFailureKind::Storage => out.put_u8(FAIL_STORAGE),
        RemoteFailureKind::ShuttingDown => out.put_u8(FAIL_SHUTTING_DOWN),
        RemoteFailureKind::Refused => out.put_u8(FAIL_REFUSED),
        RemoteFailureKind::Overloaded => out.put_u8(FAIL_OVERLOADED),
        RemoteFailureKind::KeyBusy { waited_ms } => {
            out.put_u8(FAIL_KEY_BUSY);
            out.put_u64(*waited_ms);
        }
        RemoteFailureKind::CrossSlot => out.put_u8(FAIL_CROSS_SLOT),
        RemoteFailureKind::Unavailable {
            level,
            required,
            alive,
        } => {
            out.put_u8(FAIL_UNAVAILABLE);
            out.put_u8(level_tag(*level));
            out.put_u64(*required as u64);
            out.put_u64(*alive as u64);
        }
        RemoteFailureKind::QuorumFailed {
            level,
            required,
            answered,
            errors,
        } => {
            out.put_u8(FAIL_QUORUM_FAILED);
            out.put_u8(level_tag(*level));
            out.put_u64(*required as u64);
            out.put_u64(*answered as u64);
            put_count(out, errors.len());
            for error in errors {
                put_bytes(out, error.as_bytes());
            }
        }
        RemoteFailureKind::UnsupportedLevel { level, operation } => {
            match operation_tag(operation) {
                Some(tag) => {
                    out.put_u8(FAIL_UNSUPPORTED_LEVEL);
                    out.put_u8(level_tag(*level));
                    out.put_u8(tag);
                }
                // `RemoteFailure::from_error` never builds this; a name no peer could decode
                // travels as the message alone rather than as an undecodable answer.
                None => out.put_u8(FAIL_REFUSED),
            }
        }
        RemoteFailureKind::NoReplicas { slot } => {
            out.put_u8(FAIL_NO_REPLICAS);
            out.put_u16(*slot);
        }
        RemoteFailureKind::KeyTooLarge { len, max } => {
            out.put_u8(FAIL_KEY_TOO_LARGE);
            out.put_u64(*len as u64);
            out.put_u64(*max as u64);
        }
        RemoteFailureKind::ValueTooLarge { len, max } => {
            out.put_u8(FAIL_VALUE_TOO_LARGE);
            out.put_u64(*len as u64);
            out.put_u64(*max as u64);
        }
    }
}

fn get_failure_kind(r: &mut Reader) -> Result<RemoteFailureKind, WireError> {
    Ok(match r.u8()? {
        FAIL_STORAGE => RemoteFailureKind::Storage,
        FAIL_SHUTTING_DOWN => RemoteFailureKind::ShuttingDown,
        FAIL_REFUSED => RemoteFailureKind::Refused,
        FAIL_OVERLOADED => RemoteFailureKind::Overloaded,
        FAIL_KEY_BUSY => RemoteFailureKind::KeyBusy {
            waited_ms: r.u64()?,
        },
        FAIL_CROSS_SLOT => RemoteFailureKind::CrossSlot,
        FAIL_UNAVAILABLE => RemoteFailureKind::Unavailable {
            level: level(r.u8()?)?,
            required: r.usize("required replicas")?,
            alive: r.usize("alive replicas")?,
        },
        FAIL_QUORUM_FAILED => {
            let level = level(r.u8()?)?;
            let required = r.usize("required replicas")?;
            let answered = r.usize("answered replicas")?;
            let n = r.count("replica errors", 4)?;
            let mut errors = Vec::with_capacity(prealloc(n));
            for _ in 0..n {
                errors.push(get_string(r, "replica error")?);
            }
            RemoteFailureKind::QuorumFailed {
                level,
                required,
                answered,
                errors,
            }
        }
        FAIL_UNSUPPORTED_LEVEL => {
            let level = level(r.u8()?)?;
            let tag = r.u8()?;
            let operation = usize::from(tag)
                .checked_sub(1)
                .and_then(|i| OPERATIONS.get(i))
                .ok_or(WireError::UnknownTag {
                    what: "operation",
                    tag,
                })?;
            RemoteFailureKind::UnsupportedLevel { level, operation }
        }
        FAIL_NO_REPLICAS => RemoteFailureKind::NoReplicas { slot: r.u16()? },
        FAIL_KEY_TOO_LARGE => RemoteFailureKind::KeyTooLarge {
            len: r.usize("key length")?,
            max: r.usize("key limit")?,
        },
        FAIL_VALUE_TOO_LARGE => RemoteFailureKind::ValueTooLarge {
            len: r.usize("value length")?,
            max: r.usize("value limit")?,
        },
        tag => {
            return Err(WireError::UnknownTag {
                what: "failure kind",
                tag,
            })
        }
    })
}
