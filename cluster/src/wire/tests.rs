use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use ringkv_lsm::{Record, Version};
use tokio_util::codec::Decoder;

use super::*;
use crate::api::{Condition, Consistency, Level, Write};
use crate::rpc::{RemoteFailure, SlotPosition};
use crate::storage::SlotRecord;

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u64>(), any::<u32>()).prop_map(|(hlc, node)| Version::new(hlc, node))
}

fn record() -> impl Strategy<Value = Record> {
    (version(), any::<u64>(), proptest::option::of(bytes())).prop_map(
        |(version, expire_at_ms, value)| Record {
            version,
            expire_at_ms,
            value,
        },
    )
}

fn slot_record() -> impl Strategy<Value = SlotRecord> {
    (any::<u16>(), bytes(), record()).prop_map(|(slot, key, record)| SlotRecord {
        slot,
        key,
        record,
    })
}

fn position() -> impl Strategy<Value = SlotPosition> {
    (any::<u16>(), bytes())
}

fn bound() -> impl Strategy<Value = Bound<SlotPosition>> {
    prop_oneof![
        position().prop_map(Bound::Included),
        position().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn key_bound() -> impl Strategy<Value = Bound<Bytes>> {
    prop_oneof![
        bytes().prop_map(Bound::Included),
        bytes().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn level() -> impl Strategy<Value = Level> {
    proptest::sample::select(Level::ALL.to_vec())
}

fn write() -> impl Strategy<Value = Write> {
    let condition = prop_oneof![
        Just(Condition::Always),
        proptest::option::of(version()).prop_map(Condition::IfVersion),
    ];
    (
        bytes(),
        proptest::option::of(bytes()),
        any::<u64>(),
        condition,
    )
        .prop_map(|(key, value, expire_at_ms, condition)| Write {
            key,
            value,
            expire_at_ms,
            condition,
        })
}

fn request() -> impl Strategy<Value = Stamped<PeerRequest>> {
    let vec = |s| proptest::collection::vec(s, 0..6);
    let body = prop_oneof![
        vec(position()).prop_map(|keys| PeerRequest::Read { keys }),
        proptest::collection::vec(slot_record(), 0..6)
            .prop_map(|records| PeerRequest::Apply { records }),
        (bound(), bound(), any::<bool>(), any::<u32>()).prop_map(
            |(start, end, live_only, limit)| PeerRequest::Range {
                start,
                end,
                live_only,
                limit: limit as usize,
            }
        ),
        proptest::collection::vec(any::<u16>(), 0..6)
            .prop_map(|slots| PeerRequest::CountSlots { slots }),
        (
            proptest::collection::vec((any::<u16>(), any::<u16>()), 0..6),
            key_bound(),
            key_bound(),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        )
            .prop_map(
                |(spans, start, end, keep, with_values)| PeerRequest::KeyRange {
                    spans,
                    start,
                    end,
                    keep: keep.map(|k| k as usize),
                    with_values,
                }
            ),
        (proptest::collection::vec(write(), 0..6), level(), level()).prop_map(
            |(writes, read, write)| PeerRequest::Coordinate {
                writes,
                consistency: Consistency { read, write },
            }
        ),
        (any::<u64>(), any::<u32>()).prop_map(|(hlc, node)| PeerRequest::Truncate { hlc, node }),
    ];
    (any::<u64>(), body).prop_map(|(hlc, body)| Stamped { hlc, body })
}

fn response() -> impl Strategy<Value = Stamped<PeerResponse>> {
    let kinds = crate::rpc::every_error().len();
    let failure = (0..kinds).prop_map(|i| RemoteFailure::from_error(&crate::rpc::every_error()[i]));
    let body = prop_oneof![
        proptest::collection::vec(proptest::option::of(record()), 0..6)
            .prop_map(PeerResponse::Records),
        Just(PeerResponse::Applied),
        proptest::collection::vec(slot_record(), 0..6).prop_map(PeerResponse::Range),
        proptest::collection::vec(any::<u64>(), 0..6).prop_map(PeerResponse::Counts),
        proptest::collection::vec(any::<bool>(), 0..6).prop_map(PeerResponse::Written),
        Just(PeerResponse::Done),
        (failure, ".{0,20}").prop_map(|(failure, message)| PeerResponse::Failed(RemoteFailure {
            message,
            ..failure
        })),
    ];
    (any::<u64>(), body).prop_map(|(hlc, body)| Stamped { hlc, body })
}

fn frame_kind() -> impl Strategy<Value = FrameKind> {
    proptest::sample::select(vec![
        FrameKind::Handshake,
        FrameKind::Request,
        FrameKind::Response,
    ])
}

fn encode_frame(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    FrameCodec::default()
        .encode_ref(frame, &mut out)
        .expect("frame within the bound");
    out
}

proptest! {
    #[test]
    fn requests_round_trip(message in request()) {
        let decoded = decode_request(encode_request(&message)).expect("decodes");
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn responses_round_trip(message in response()) {
        let decoded = decode_response(encode_response(&message)).expect("decodes");
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn truncated_messages_are_errors(message in request(), cut in any::<prop::sample::Index>()) {
        let encoded = encode_request(&message);
        let cut = cut.index(encoded.len());
        prop_assert!(decode_request(encoded.slice(..cut)).is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_decoders(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        let input = Bytes::from(input);
        let _ = decode_request(input.clone());
        let _ = decode_response(input.clone());
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }

    /// Well-formed frames whose payload is garbage: the frame layer accepts them and the
    /// message decoders must still refuse without panicking.
    #[test]
    fn random_payloads_in_valid_frames_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        kind in frame_kind(),
        request_id in any::<u64>(),
    ) {
        let frame = Frame { kind, request_id, payload: Bytes::from(payload) };
        let mut buf = encode_frame(&frame);
        let decoded = FrameCodec::default().decode(&mut buf).expect("valid frame").expect("whole");
        prop_assert_eq!(&decoded, &frame);
        let _ = decode_request(decoded.payload.clone());
        let _ = decode_response(decoded.payload);
    }

    /// Messages framed in place are byte for byte the frames of their encodings, after
    /// whatever `dst` already held.
    #[test]
    fn frames_encoded_in_place_match_framed_encodings(
        request in request(),
        response in response(),
        id in any::<u64>(),
        before in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let codec = FrameCodec::default();
        let mut dst = BytesMut::from(&before[..]);
        let n = put_request_frame(&codec, &mut dst, id, &request).expect("within the bound");
        let m = put_response_frame(&codec, &mut dst, id, &response).expect("within the bound");
        let mut expected = BytesMut::from(&before[..]);
        let request_frame = encode_frame(&Frame { kind: FrameKind::Request, request_id: id, payload: encode_request(&request) });
        let response_frame = encode_frame(&Frame { kind: FrameKind::Response, request_id: id, payload: encode_response(&response) });
        prop_assert_eq!((n, m), (request_frame.len(), response_frame.len()));
        expected.extend_from_slice(&request_frame);
        expected.extend_from_slice(&response_frame);
        prop_assert_eq!(dst, expected);
    }

    /// A frame over the bound is refused and leaves the buffer as it was.
    #[test]
    fn frames_over_the_bound_are_not_written(
        request in request(),
        before in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let size = encode_frame(&Frame { kind: FrameKind::Request, request_id: 1, payload: encode_request(&request) }).len();
        let codec = FrameCodec::new(size - 1);
        let mut dst = BytesMut::from(&before[..]);
        let refused = put_request_frame(&codec, &mut dst, 1, &request);
        prop_assert!(matches!(refused, Err(WireError::FrameSize { .. })), "{:?}", refused);
        prop_assert_eq!(&dst[..], &before[..]);
    }

    /// A request encoded once frames to the same bytes as one encoded in place, for any id.
    #[test]
    fn encoded_requests_frame_as_requests_encoded_in_place(
        request in request(),
        ids in proptest::collection::vec(any::<u64>(), 1..4),
        before in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let codec = FrameCodec::default();
        let encoded = EncodedRequest::new(&request);
        for id in ids {
            let mut dst = BytesMut::from(&before[..]);
            let n = put_encoded_request_frame(&codec, &mut dst, id, &encoded).expect("within the bound");
            let mut expected = BytesMut::from(&before[..]);
            let m = put_request_frame(&codec, &mut expected, id, &request).expect("within the bound");
            prop_assert_eq!((n, encoded.frame_len()), (m, m));
            prop_assert_eq!(dst, expected);
        }
    }

    /// An encoded request over the bound is refused and leaves the buffer as it was.
    #[test]
    fn encoded_requests_over_the_bound_are_not_written(
        request in request(),
        before in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let encoded = EncodedRequest::new(&request);
        let codec = FrameCodec::new(encoded.frame_len() - 1);
        let mut dst = BytesMut::from(&before[..]);
        let refused = put_encoded_request_frame(&codec, &mut dst, 1, &encoded);
        prop_assert!(matches!(refused, Err(WireError::FrameSize { .. })), "{:?}", refused);
        prop_assert_eq!(&dst[..], &before[..]);
        let fits = FrameCodec::new(encoded.frame_len());
        prop_assert!(put_encoded_request_frame(&fits, &mut dst, 1, &encoded).is_ok());
    }

    /// Frames arriving in pieces of any size decode to the same frames.
    #[test]
    fn frames_survive_any_split(
        messages in proptest::collection::vec(request(), 1..5),
        chunk in 1usize..40,
    ) {
        let frames: Vec<Frame> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| Frame { kind: FrameKind::Request, request_id: i as u64, payload: encode_request(m) })
            .collect();
        let mut wire = BytesMut::new();
        for frame in &frames {
            wire.extend_from_slice(&encode_frame(frame));
        }
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).expect("valid stream") {
                out.push(frame);
            }
        }
        prop_assert_eq!(out, frames);
        prop_assert!(buf.is_empty());
    }
}

#[test]
fn handshake_carries_the_node_number() {
    let frame = Frame::handshake(0xDEAD_BEEF);
    let mut buf = encode_frame(&frame);
    let decoded = FrameCodec::default()
        .decode(&mut buf)
        .expect("valid")
        .expect("whole");
    assert_eq!(decoded.handshake_node().expect("a handshake"), 0xDEAD_BEEF);
    let request = Frame {
        kind: FrameKind::Request,
        ..frame
    };
    assert!(request.handshake_node().is_err());
}

#[test]
fn a_flipped_payload_bit_fails_the_checksum() {
    let frame = Frame {
        kind: FrameKind::Request,
        request_id: 7,
        payload: Bytes::from_static(b"payload"),
    };
    let mut buf = encode_frame(&frame);
    let last = buf.len() - 1;
    buf[last] ^= 1;
    let err = FrameCodec::default().decode(&mut buf).expect_err("corrupt");
    assert!(matches!(err, WireError::BadChecksum { .. }), "{err}");
}

#[test]
fn an_oversized_length_is_refused_before_buffering() {
    let mut codec = FrameCodec::new(1024);
    let mut buf = BytesMut::new();
    buf.put_u32(1_000_000);
    let err = codec.decode(&mut buf).expect_err("over the bound");
    assert!(
        matches!(
            err,
            WireError::FrameSize {
                bytes: 1_000_004,
                ..
            }
        ),
        "{err}"
    );
    // A length too small to hold the header is refused too.
    let mut buf = BytesMut::new();
    buf.put_u32(3);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(WireError::FrameSize { .. })
    ));
}

#[test]
fn encoding_over_the_bound_is_refused() {
    let frame = Frame {
        kind: FrameKind::Request,
        request_id: 1,
        payload: Bytes::from(vec![0u8; 100]),
    };
    let mut out = BytesMut::new();
    let err = FrameCodec::new(64)
        .encode_ref(&frame, &mut out)
        .expect_err("over the bound");
    assert!(matches!(err, WireError::FrameSize { .. }), "{err}");
    assert!(out.is_empty());
}

#[test]
fn another_protocol_version_is_refused() {
    let mut buf = encode_frame(&Frame::handshake(1));
    buf[4] = PROTOCOL_VERSION + 1;
    let err = FrameCodec::default().decode(&mut buf).expect_err("version");
    assert!(
        matches!(err, WireError::UnsupportedVersion { got, .. } if got == PROTOCOL_VERSION + 1),
        "{err}"
    );
}

#[test]
fn unknown_tags_and_trailing_bytes_are_errors() {
    let mut unknown = BytesMut::new();
    unknown.put_u64(1);
    unknown.put_u8(200);
    assert!(matches!(
        decode_request(unknown.clone().freeze()),
        Err(WireError::UnknownTag {
            what: "request",
            tag: 200
        })
    ));
    assert!(matches!(
        decode_response(unknown.freeze()),
        Err(WireError::UnknownTag {
            what: "response",
            tag: 200
        })
    ));

    let mut trailing = BytesMut::from(
        &encode_response(&Stamped {
            hlc: 1,
            body: PeerResponse::Done,
        })[..],
    );
    trailing.put_u8(0);
    assert!(matches!(
        decode_response(trailing.freeze()),
        Err(WireError::TrailingBytes { count: 1 })
    ));
}

#[test]
fn a_hostile_count_is_refused_without_allocating() {
    let mut input = BytesMut::new();
    input.put_u64(1);
    input.put_u8(4); // CountSlots
    input.put_u32(u32::MAX);
    let err = decode_request(input.freeze()).expect_err("count beyond the input");
    assert!(matches!(err, WireError::TooMany { .. }), "{err}");

    let mut input = BytesMut::new();
    input.put_u64(1);
    input.put_u8(7); // Failed
    input.put_u8(1);
    input.put_u32(u32::MAX); // message length
    let err = decode_response(input.freeze()).expect_err("length beyond the input");
    assert!(matches!(err, WireError::Truncated { .. }), "{err}");
}

#[test]
fn every_failure_kind_survives_the_wire_and_rebuilds_its_error() {
    for error in crate::rpc::every_error() {
        let sent = Stamped {
            hlc: 9,
            body: PeerResponse::Failed(RemoteFailure::from_error(&error)),
        };
        let received = decode_response(encode_response(&sent)).expect("decodes");
        assert_eq!(received, sent);
        let PeerResponse::Failed(failure) = received.body else {
            panic!("not a failure: {received:?}");
        };
        let rebuilt = failure.into_error();
        // The sentence always survives; the variant and its parts whenever they can.
        assert_eq!(rebuilt.to_string(), error.to_string());
        let parts_travel = !matches!(
            error,
            crate::error::ClusterError::Corrupt { .. }
                | crate::error::ClusterError::Forwarded(_)
                | crate::error::ClusterError::Storage(ringkv_lsm::Error::Locked { .. })
        );
        if parts_travel {
            assert_eq!(format!("{rebuilt:?}"), format!("{error:?}"));
        } else {
            assert!(
                matches!(rebuilt, crate::error::ClusterError::Forwarded(_)),
                "{rebuilt:?}"
            );
        }
    }
}

#[test]
fn a_failure_with_an_unknown_operation_tag_is_refused() {
    let mut input = BytesMut::new();
    input.put_u64(1); // hlc
    input.put_u8(7); // failed
    input.put_u8(6); // unsupported level
    input.put_u8(6); // ANY
    input.put_u8(3); // neither reads nor writes
    input.put_u32(0); // empty message
    assert!(matches!(
        decode_response(input.freeze()),
        Err(WireError::UnknownTag {
            what: "operation",
            tag: 3
        })
    ));
}

#[test]
fn an_unsupported_level_naming_an_unknown_operation_travels_as_its_message() {
    let sent = Stamped {
        hlc: 1,
        body: PeerResponse::Failed(RemoteFailure {
            kind: crate::rpc::RemoteFailureKind::UnsupportedLevel {
                level: Level::Any,
                operation: "scans",
            },
            message: "consistency level ANY is not supported for scans".into(),
        }),
    };
    let received = decode_response(encode_response(&sent)).expect("decodes");
    let PeerResponse::Failed(failure) = received.body else {
        panic!("not a failure: {received:?}");
    };
    assert_eq!(failure.kind, crate::rpc::RemoteFailureKind::Refused);
    assert_eq!(
        failure.into_error().to_string(),
        "consistency level ANY is not supported for scans"
    );
}

#[test]
fn an_overloaded_refusal_keeps_its_kind_over_the_wire() {
    let sent = Stamped {
        hlc: 2,
        body: PeerResponse::Failed(RemoteFailure {
            kind: crate::rpc::RemoteFailureKind::Overloaded,
            message: "overloaded: 4096 request(s) of 1024 bytes already in progress".into(),
        }),
    };
    let received = decode_response(encode_response(&sent)).expect("decodes");
    assert_eq!(received, sent);
}
