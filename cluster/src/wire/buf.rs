//! Checked primitives for decoding: a cursor over received bytes that refuses to read (or
//! allocate) past its end. Must never panic, whatever the input.

use bytes::{Buf, Bytes};

use super::WireError;

/// A cursor over a message's bytes. Every read checks the remaining length first.
pub(super) struct Reader {
    input: Bytes,
}

impl Reader {
    pub(super) fn new(input: Bytes) -> Self {
        Self { input }
    }

    pub(super) fn remaining(&self) -> usize {
        self.input.remaining()
    }

    fn need(&self, needed: usize) -> Result<(), WireError> {
        let remaining = self.remaining();
        if remaining < needed {
            return Err(WireError::Truncated { needed, remaining });
        }
        Ok(())
    }

    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        self.need(1)?;
        Ok(self.input.get_u8())
    }

    pub(super) fn u16(&mut self) -> Result<u16, WireError> {
        self.need(2)?;
        Ok(self.input.get_u16())
    }

    pub(super) fn u32(&mut self) -> Result<u32, WireError> {
        self.need(4)?;
        Ok(self.input.get_u32())
    }

    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        self.need(8)?;
        Ok(self.input.get_u64())
    }

    /// A `u64` that must fit a `usize`.
    pub(super) fn usize(&mut self, what: &'static str) -> Result<usize, WireError> {
        let value = self.u64()?;
        usize::try_from(value).map_err(|_| WireError::Overflow { what, value })
    }

    pub(super) fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(WireError::UnknownTag {
                what: "boolean",
                tag,
            }),
        }
    }

    /// Exactly `len` bytes, sharing the input's memory.
    pub(super) fn take(&mut self, len: usize) -> Result<Bytes, WireError> {
        self.need(len)?;
        Ok(self.input.split_to(len))
    }

    /// A `u32`-length-prefixed byte string, sharing the input's memory.
    pub(super) fn bytes(&mut self) -> Result<Bytes, WireError> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| WireError::Overflow {
            what: "byte string length",
            value: u64::from(len),
        })?;
        self.take(len)
    }

    /// A `u32` element count, checked so that `count` elements of at least `min_bytes` each
    /// fit in what remains. Decoded elements may still be larger in memory than on the wire
    /// (a one-byte absent record is a 64-byte `Option<Record>`), so callers reserve at most
    /// [`prealloc`] elements up front and let the vector grow with what actually decodes:
    /// memory stays proportional to the bytes received, never to the count a peer claims.
    pub(super) fn count(
        &mut self,
        what: &'static str,
        min_bytes: usize,
    ) -> Result<usize, WireError> {
        let count = self.u32()?;
        let remaining = self.remaining();
        let fits = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(min_bytes.max(1)))
            .is_some_and(|total| total <= remaining);
        if !fits {
            return Err(WireError::TooMany {
                what,
                count: u64::from(count),
                remaining,
            });
        }
        Ok(count as usize)
    }

    /// Succeeds only when the whole input was consumed.
    pub(super) fn finish(self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(WireError::TrailingBytes { count }),
        }
    }
}

/// Writes a `u32`-length-prefixed byte string.
///
/// Lengths over `u32::MAX` cannot be expressed; the transports bound frames far below that
/// (values are at most 10 MiB), so such a string never reaches the encoder in practice and is
/// truncated to the prefix it declares if it ever does, which the peer then rejects.
pub(super) fn put_bytes(out: &mut bytes::BytesMut, data: &[u8]) {
    use bytes::BufMut;
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.put_u32(len);
    out.put_slice(&data[..len as usize]);
}

/// Writes a `u32` element count (see [`put_bytes`] on lengths beyond `u32::MAX`).
pub(super) fn put_count(out: &mut bytes::BytesMut, count: usize) {
    use bytes::BufMut;
    out.put_u32(u32::try_from(count).unwrap_or(u32::MAX));
}

/// Elements a decoder reserves up front for a list of `count`: enough for every ordinary
/// message, bounded so a claimed count alone never reserves much.
pub(super) fn prealloc(count: usize) -> usize {
    count.min(1024)
}
