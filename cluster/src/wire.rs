//! The internal protocol's byte encoding: messages to bytes and bytes to frames.
//!
//! Owns the binary form of [`Stamped`]`<`[`PeerRequest`]`>` and
//! [`Stamped`]`<`[`PeerResponse`]`>` ([`encode_request`], [`decode_request`],
//! [`encode_response`], [`decode_response`]), the frame that carries them ([`frame`]: length,
//! protocol version, message kind, request id, CRC32 of the payload) and [`WireError`].
//! Decoding is bounded: every length and count is checked against the bytes that remain before
//! anything is allocated, unknown tags and trailing bytes are errors, and no input makes it
//! panic. Must never open sockets, keep connections or interpret what a message asks: the
//! transports carry frames, handlers answer requests.
//!
//! All integers are big-endian; byte strings and lists carry a `u32` length or count prefix.

mod buf;
pub mod frame;
mod message;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};

use crate::rpc::{PeerRequest, PeerResponse, Stamped};

pub use frame::{Frame, FrameCodec, FrameKind, FRAME_HEADER_BYTES};

/// The protocol version this build speaks; a peer speaking another is refused at the handshake.
///
/// Version 2: a failed answer carries its error's parts (levels, replica counts, engine limits)
/// so the asking node can rebuild the peer's error, not only its sentence. Version 3: a write
/// that waited too long for its key locks fails with its own kind (`KeyBusy`).
pub const PROTOCOL_VERSION: u8 = 3;

/// Default bound on one frame (header and payload). Values are at most 10 MiB, so a frame of a
/// few of them fits with room to spare.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Why bytes could not be decoded into a frame or a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before a field did.
    #[error("truncated input: {needed} byte(s) needed but only {remaining} remain")]
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A list claims more elements than the remaining bytes could hold.
    #[error("a list of {what} claims {count} element(s) but only {remaining} byte(s) remain")]
    TooMany {
        /// What the list holds.
        what: &'static str,
        /// The claimed count.
        count: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A tag byte names no known variant.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// What the tag selects.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A text field is not UTF-8.
    #[error("a {what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        what: &'static str,
    },
    /// A number does not fit this platform's `usize`.
    #[error("{what} {value} does not fit in this platform's usize")]
    Overflow {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A message decoded fully but bytes were left after it.
    #[error("{count} unexpected byte(s) after the message")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A frame's declared length is over the bound (or under the header's size).
    #[error("frame of {bytes} byte(s) is outside the bounds ({min}..={limit})")]
    FrameSize {
        /// The declared frame length.
        bytes: u64,
        /// The smallest valid frame (a header with an empty payload).
        min: usize,
        /// The bound.
        limit: usize,
    },
    /// A frame's payload does not match its CRC32.
    #[error(
        "frame checksum mismatch: header says {expected:#010x}, payload hashes to {got:#010x}"
    )]
    BadChecksum {
        /// The CRC in the header.
        expected: u32,
        /// The CRC of the payload received.
        got: u32,
    },
    /// A frame speaks another protocol version.
    #[error("protocol version {got} is not supported (this node speaks {supported})")]
    UnsupportedVersion {
        /// The version in the frame.
        got: u8,
        /// The version this node speaks.
        supported: u8,
    },
    /// Reading or writing the socket failed (the codec traits carry I/O errors too).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes a request message (the payload of a [`FrameKind::Request`] frame).
pub fn encode_request(message: &Stamped<PeerRequest>) -> Bytes {
    let mut out = BytesMut::with_capacity(message::request_size_hint(&message.body));
    message::put_stamped_request(&mut out, message);
    out.freeze()
}

/// Decodes [`encode_request`]'s output. Byte strings in the result share `input`'s memory.
///
/// # Errors
/// [`WireError`] when the bytes are truncated, a tag is unknown, a count exceeds what the
/// input could hold, or bytes follow the message.
pub fn decode_request(input: Bytes) -> Result<Stamped<PeerRequest>, WireError> {
    let mut reader = buf::Reader::new(input);
    let message = message::get_stamped_request(&mut reader)?;
    reader.finish()?;
    Ok(message)
}

/// Encodes a response message (the payload of a [`FrameKind::Response`] frame).
pub fn encode_response(message: &Stamped<PeerResponse>) -> Bytes {
    let mut out = BytesMut::with_capacity(message::response_size_hint(&message.body));
    message::put_stamped_response(&mut out, message);
    out.freeze()
}

/// A guess at the size of `message`'s request frame (exact for most messages, never far off).
pub fn request_frame_size_hint(message: &Stamped<PeerRequest>) -> usize {
    FRAME_HEADER_BYTES + message::request_size_hint(&message.body)
}

/// A guess at the size of `message`'s response frame, as [`request_frame_size_hint`].
pub fn response_frame_size_hint(message: &Stamped<PeerResponse>) -> usize {
    FRAME_HEADER_BYTES + message::response_size_hint(&message.body)
}

/// Appends the [`FrameKind::Request`] frame of `message` for `request_id` to `dst`, encoding
/// the message in place (the same bytes as [`encode_request`] framed by
/// [`FrameCodec::encode_ref`]). Returns the frame's size. Reserves nothing: a caller that
/// knows the frame's size hint reserves it (the transport's outbox does, once per frame).
///
/// # Errors
/// [`WireError::FrameSize`] when the frame is over `codec`'s bound (`dst` is left as it was).
pub fn put_request_frame(
    codec: &FrameCodec,
    dst: &mut BytesMut,
    request_id: u64,
    message: &Stamped<PeerRequest>,
) -> Result<usize, WireError> {
    codec.encode_with(dst, FrameKind::Request, request_id, |out| {
        message::put_stamped_request(out, message)
    })
}

/// A request's frame payload, encoded and checksummed once, for a request that goes to several
/// peers: their frames differ only by request id, which the checksum does not cover.
#[derive(Clone, Debug)]
pub struct EncodedRequest {
    payload: Bytes,
    crc: u32,
}

impl EncodedRequest {
    /// Encodes `message`.
    pub fn new(message: &Stamped<PeerRequest>) -> Self {
        let mut payload = BytesMut::with_capacity(message::request_size_hint(&message.body));
        message::put_stamped_request(&mut payload, message);
        let crc = crc32fast::hash(&payload);
        Self {
            payload: payload.freeze(),
            crc,
        }
    }

    /// The size of its frames, header included.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload.len()
    }
}

/// Appends the [`FrameKind::Request`] frame of `encoded` for `request_id` to `dst`: the bytes
/// [`put_request_frame`] writes for the message it was encoded from. Returns the frame's size.
///
/// # Errors
/// [`WireError::FrameSize`] when the frame is over `codec`'s bound (`dst` is left as it was).
pub fn put_encoded_request_frame(
    codec: &FrameCodec,
    dst: &mut BytesMut,
    request_id: u64,
    encoded: &EncodedRequest,
) -> Result<usize, WireError> {
    codec.encode_checksummed(
        dst,
        FrameKind::Request,
        request_id,
        &encoded.payload,
        encoded.crc,
    )
}

/// Appends the [`FrameKind::Response`] frame of `message` for `request_id` to `dst`, as
/// [`put_request_frame`] does for requests.
///
/// # Errors
/// As [`put_request_frame`].
pub fn put_response_frame(
    codec: &FrameCodec,
    dst: &mut BytesMut,
    request_id: u64,
    message: &Stamped<PeerResponse>,
) -> Result<usize, WireError> {
    codec.encode_with(dst, FrameKind::Response, request_id, |out| {
        message::put_stamped_response(out, message)
    })
}

/// Decodes [`encode_response`]'s output. Byte strings in the result share `input`'s memory.
///
/// # Errors
/// As [`decode_request`].
pub fn decode_response(input: Bytes) -> Result<Stamped<PeerResponse>, WireError> {
    let mut reader = buf::Reader::new(input);
    let message = message::get_stamped_response(&mut reader)?;
    reader.finish()?;
    Ok(message)
}
