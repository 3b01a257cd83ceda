//! Frames: how messages are cut out of a byte stream.
//!
//! A frame is `length: u32 | version: u8 | kind: u8 | request id: u64 | crc32: u32 | payload`,
//! where `length` counts every byte after itself and the CRC32 (`crc32fast`) covers the
//! payload. [`FrameCodec`] is a `tokio-util` codec: it refuses a frame whose declared length is
//! over its bound before buffering it, a frame of another protocol version, an unknown kind and
//! a payload that fails its checksum. Must never decode the payload: that is the message
//! layer's job, once the frame is known to be whole and intact.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::buf::Reader;
use super::{WireError, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// Bytes of a frame before its payload (length, version, kind, request id, CRC).
pub const FRAME_HEADER_BYTES: usize = 4 + 1 + 1 + 8 + 4;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// The first frame each side sends on a new connection: its node number.
    Handshake,
    /// A [`PeerRequest`](crate::rpc::PeerRequest); the request id is the caller's.
    Request,
    /// A [`PeerResponse`](crate::rpc::PeerResponse) to the request with the same id.
    Response,
}

impl FrameKind {
    fn tag(self) -> u8 {
        match self {
            FrameKind::Handshake => 1,
            FrameKind::Request => 2,
            FrameKind::Response => 3,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, WireError> {
        match tag {
            1 => Ok(FrameKind::Handshake),
            2 => Ok(FrameKind::Request),
            3 => Ok(FrameKind::Response),
            tag => Err(WireError::UnknownTag {
                what: "frame kind",
                tag,
            }),
        }
    }
}

/// One frame: its kind, the request id it belongs to and its (checksum-verified) payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameKind,
    /// Pairs a response with its request; 0 for handshakes.
    pub request_id: u64,
    /// The encoded message.
    pub payload: Bytes,
}

impl Frame {
    /// The handshake frame of the node numbered `node`.
    pub fn handshake(node: u32) -> Self {
        Self {
            kind: FrameKind::Handshake,
            request_id: 0,
            payload: Bytes::copy_from_slice(&node.to_be_bytes()),
        }
    }

    /// The node number a handshake frame carries.
    ///
    /// # Errors
    /// [`WireError::UnknownTag`] when this is not a handshake, [`WireError::Truncated`] or
    /// [`WireError::TrailingBytes`] when its payload is not a node number.
    pub fn handshake_node(&self) -> Result<u32, WireError> {
        if self.kind != FrameKind::Handshake {
            return Err(WireError::UnknownTag {
                what: "handshake frame kind",
                tag: self.kind.tag(),
            });
        }
        let mut reader = Reader::new(self.payload.clone());
        let node = reader.u32()?;
        reader.finish()?;
        Ok(node)
    }

    /// The frame's size on the wire.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload.len()
    }
}

/// Cuts frames out of a byte stream and writes them into one, both bounded by
/// `max_frame_bytes` (the whole frame, header included).
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    /// A codec refusing frames over `max_frame_bytes` (raised to the header size if smaller).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes: max_frame_bytes.max(FRAME_HEADER_BYTES),
        }
    }

    /// The bound on one frame.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    fn size_error(&self, bytes: u64) -> WireError {
        WireError::FrameSize {
            bytes,
            min: FRAME_HEADER_BYTES,
            limit: self.max_frame_bytes,
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

/// Frames up to this size are copied out of the read buffer rather than split off it.
const COPY_FRAME_BYTES: usize = 64 * 1024;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        // The bound is checked on the declared length, before a byte of the body is buffered.
        let total = 4 + u64::from(declared);
        let total = match usize::try_from(total) {
            Ok(total) if (FRAME_HEADER_BYTES..=self.max_frame_bytes).contains(&total) => total,
            _ => return Err(self.size_error(total)),
        };
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = if total <= COPY_FRAME_BYTES {
            // Copied out, the read buffer stays the only owner of its memory and is reused in
            // place; split off, every buffer the reader filled stayed pinned by the frames cut
            // from it and each refill took fresh memory (profiled: the kernel zeroing new pages
            // was 5% of a node's CPU under a write load).
            let frame = Bytes::copy_from_slice(&src[..total]);
            src.advance(total);
            frame
        } else {
            src.split_to(total).freeze()
        };
        frame.advance(4);
        let version = frame.get_u8();
        if version != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion {
                got: version,
                supported: PROTOCOL_VERSION,
            });
        }
        let kind = FrameKind::from_tag(frame.get_u8())?;
        let request_id = frame.get_u64();
        let expected = frame.get_u32();
        let got = crc32fast::hash(&frame);
        if got != expected {
            return Err(WireError::BadChecksum { expected, got });
        }
        Ok(Some(Frame {
            kind,
            request_id,
            payload: frame,
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        self.encode_ref(&frame, dst)
    }
}

impl FrameCodec {
    /// Appends `frame` to `dst`.
    ///
    /// # Errors
    /// [`WireError::FrameSize`] when the frame is over the bound (nothing is written).
    pub fn encode_ref(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        self.encode_checksummed(
            dst,
            frame.kind,
            frame.request_id,
            &frame.payload,
            crc32fast::hash(&frame.payload),
        )
        .map(|_| ())
    }

    /// Appends a frame of `kind` for `request_id` whose payload `put` writes straight into
    /// `dst`, with no buffer of its own; the bytes are those [`FrameCodec::encode_ref`] writes
    /// for the same payload. Returns the frame's size.
    ///
    /// # Errors
    /// [`WireError::FrameSize`] when the frame is over the bound (`dst` is left as it was).
    pub fn encode_with(
        &self,
        dst: &mut BytesMut,
        kind: FrameKind,
        request_id: u64,
        put: impl FnOnce(&mut BytesMut),
    ) -> Result<usize, WireError> {
        let start = dst.len();
        dst.put_u32(0);
        dst.put_u8(PROTOCOL_VERSION);
        dst.put_u8(kind.tag());
        dst.put_u64(request_id);
        dst.put_u32(0);
        put(dst);
        let total = dst.len() - start;
        let Some(declared) = u32::try_from(total - 4)
            .ok()
            .filter(|_| total <= self.max_frame_bytes)
        else {
            dst.truncate(start);
            return Err(self.size_error(total as u64));
        };
        let crc = crc32fast::hash(&dst[start + FRAME_HEADER_BYTES..]);
        dst[start..start + 4].copy_from_slice(&declared.to_be_bytes());
        dst[start + FRAME_HEADER_BYTES - 4..start + FRAME_HEADER_BYTES]
            .copy_from_slice(&crc.to_be_bytes());
        Ok(total)
    }

    /// Appends the frame of a payload encoded and checksummed beforehand (`crc` is
    /// `crc32fast::hash(payload)`): the bytes [`FrameCodec::encode_with`] writes for it (and
    /// what [`FrameCodec::encode_ref`] writes, computing the checksum).
    /// Returns the frame's size.
    ///
    /// # Errors
    /// [`WireError::FrameSize`] when the frame is over the bound (`dst` is left as it was).
    pub fn encode_checksummed(
        &self,
        dst: &mut BytesMut,
        kind: FrameKind,
        request_id: u64,
        payload: &[u8],
        crc: u32,
    ) -> Result<usize, WireError> {
        let total = FRAME_HEADER_BYTES + payload.len();
        let Some(declared) = u32::try_from(total - 4)
            .ok()
            .filter(|_| total <= self.max_frame_bytes)
        else {
            return Err(self.size_error(total as u64));
        };
        dst.reserve(total);
        dst.put_u32(declared);
        dst.put_u8(PROTOCOL_VERSION);
        dst.put_u8(kind.tag());
        dst.put_u64(request_id);
        dst.put_u32(crc);
        dst.extend_from_slice(payload);
        Ok(total)
    }
}
