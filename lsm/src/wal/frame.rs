//! Checksummed record framing shared by the WAL and the manifest.
//!
//! Owns the frame format and [`FrameReader`], which walks a whole file and classifies how it
//! ends. Must never skip past a damaged frame: the only damage it forgives is an incomplete
//! last frame (a write that a crash interrupted), which it reports as a torn tail so the caller
//! can truncate it. Everything else is an error naming the file and the frame's offset.
//!
//! A frame is
//!
//! ```text
//! [payload_len: u32 LE][header_crc: u32 LE][payload_crc: u32 LE][payload: payload_len bytes]
//! ```
//!
//! where `header_crc` is the CRC32 of the four length bytes, so a damaged length is detected
//! before it is trusted, and `payload_crc` is the CRC32 of the payload.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bytes in a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 12;

/// A payload longer than the limit the frame was encoded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameTooLarge {
    /// Length of the payload.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// Appends one frame to `out` whose payload is whatever `write_payload` appends.
///
/// Writing the payload in place after a reserved header saves copying it.
///
/// # Errors
/// [`FrameTooLarge`] if the payload exceeds `max_payload` (or `u32::MAX`); `out` is then left
/// as it was.
pub(crate) fn encode_frame_with(
    out: &mut Vec<u8>,
    max_payload: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), FrameTooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    write_payload(out);
    let len = out.len() - start - FRAME_HEADER_LEN;
    let len32 = match u32::try_from(len) {
        Ok(l) if len <= max_payload => l,
        _ => {
            out.truncate(start);
            return Err(FrameTooLarge {
                len,
                max: max_payload,
            });
        }
    };
    let len_bytes = len32.to_le_bytes();
    let payload_crc = crc32fast::hash(&out[start + FRAME_HEADER_LEN..]);
    let header = &mut out[start..start + FRAME_HEADER_LEN];
    header[..4].copy_from_slice(&len_bytes);
    header[4..8].copy_from_slice(&crc32fast::hash(&len_bytes).to_le_bytes());
    header[8..].copy_from_slice(&payload_crc.to_le_bytes());
    Ok(())
}

/// How a file of frames ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameEnd {
    /// The last frame ended exactly at the end of the file.
    Clean,
    /// The last frame, starting at `at`, is incomplete: the file should be truncated to `at`.
    Torn {
        /// Offset of the incomplete frame, which is the length the file should have.
        at: u64,
    },
}

/// One frame read back.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// Offset of the frame's header in the file.
    pub offset: u64,
    /// The verified payload.
    pub payload: &'a [u8],
}

/// Reads the frames of a whole file in order, verifying both checksums of each.
///
/// After [`FrameReader::next_frame`] returns `Ok(None)`, [`FrameReader::end`] says whether the
/// file ended cleanly or with a torn tail. After an error the reader returns `Ok(None)` and
/// `end()` stays `None`.
pub(crate) struct FrameReader<R> {
    src: R,
    /// Length of the file, fixed when the reader is built.
    len: u64,
    /// Offset of the next frame.
    pos: u64,
    path: PathBuf,
    max_payload: usize,
    payload: Vec<u8>,
    end: Option<FrameEnd>,
    failed: bool,
}

impl FrameReader<BufReader<File>> {
    /// Opens `path` and reads frames from its start.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or its length read.
    pub(crate) fn open(path: &Path, max_payload: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        Ok(Self::new(
            BufReader::with_capacity(64 << 10, file),
            len,
            path,
            max_payload,
        ))
    }
}

impl<R: Read> FrameReader<R> {
    /// Reads frames from `src`, which holds exactly `len` bytes.
    pub(crate) fn new(src: R, len: u64, path: &Path, max_payload: usize) -> Self {
        Self {
            src,
            len,
            pos: 0,
            path: path.to_path_buf(),
            max_payload,
            payload: Vec::new(),
            end: None,
            failed: false,
        }
    }

    /// Length of the file being read.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// How the file ended, once [`FrameReader::next_frame`] has returned `Ok(None)`.
    pub(crate) fn end(&self) -> Option<FrameEnd> {
        self.end
    }

    /// The next verified frame, or `None` at the end of the file (see [`FrameReader::end`]).
    ///
    /// # Errors
    /// [`Error::ChecksumMismatch`] for a bad header checksum, or a bad payload checksum on a
    /// frame that more data follows; [`Error::Corruption`] for a length over the limit;
    /// [`Error::Io`] if reading fails.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        if self.failed || self.end.is_some() {
            return Ok(None);
        }
        match self.read_frame() {
            Ok(Some(offset)) => Ok(Some(Frame {
                offset,
                payload: &self.payload,
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Reads the next frame into `self.payload` and returns its offset, or records the end.
    fn read_frame(&mut self) -> Result<Option<u64>> {
        let at = self.pos;
        let remaining = self.len - at;
        if remaining == 0 {
            self.end = Some(FrameEnd::Clean);
            return Ok(None);
        }
        if remaining < FRAME_HEADER_LEN as u64 {
            self.end = Some(FrameEnd::Torn { at });
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.read_exact(&mut header)?;
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let header_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let payload_crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let computed = crc32fast::hash(&len_bytes);
        if computed != header_crc {
            // A crash can leave a file extended with zeros where the data never reached the
            // disk; an all-zero remainder is such a tail, not damage to acknowledged data.
            let tail = remaining - FRAME_HEADER_LEN as u64;
            if header.iter().all(|&b| b == 0) && self.rest_is_zero(tail)? {
                self.end = Some(FrameEnd::Torn { at });
                return Ok(None);
            }
            return Err(Error::ChecksumMismatch {
                path: self.path.clone(),
                offset: at,
                expected: header_crc,
                got: computed,
            });
        }
        let payload_len = u32::from_le_bytes(len_bytes) as usize;
        if payload_len > self.max_payload {
            return Err(Error::corruption(
                &self.path,
                at,
                format!(
                    "frame payload of {payload_len} bytes exceeds the {}-byte limit",
                    self.max_payload
                ),
            ));
        }
        let frame_end = at + (FRAME_HEADER_LEN + payload_len) as u64;
        if frame_end > self.len {
            self.end = Some(FrameEnd::Torn { at });
            return Ok(None);
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload.resize(payload_len, 0);
        let read = self.read_exact(&mut payload);
        self.payload = payload;
        read?;
        let got = crc32fast::hash(&self.payload);
        if got != payload_crc {
            if self.rest_is_zero(self.len - frame_end)? {
                self.end = Some(FrameEnd::Torn { at });
                return Ok(None);
            }
            return Err(Error::ChecksumMismatch {
                path: self.path.clone(),
                offset: at,
                expected: payload_crc,
                got,
            });
        }
        self.pos = frame_end;
        Ok(Some(at))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.src
            .read_exact(buf)
            .map_err(|e| Error::io("read", &self.path, e))
    }

    /// Whether the next `n` bytes of the source are all zero (true when `n` is 0).
    fn rest_is_zero(&mut self, mut n: u64) -> Result<bool> {
        let mut chunk = [0u8; 8 << 10];
        while n > 0 {
            let take = n.min(chunk.len() as u64) as usize;
            self.read_exact(&mut chunk[..take])?;
            if chunk[..take].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            n -= take as u64;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAX: usize = 1 << 20;

    fn encode_frame(
        out: &mut Vec<u8>,
        payload: &[u8],
        max_payload: usize,
    ) -> Result<(), FrameTooLarge> {
        encode_frame_with(out, max_payload, |o| o.extend_from_slice(payload))
    }

    fn reader(bytes: &[u8], max_payload: usize) -> FrameReader<&[u8]> {
        FrameReader::new(
            bytes,
            bytes.len() as u64,
            Path::new("test.log"),
            max_payload,
        )
    }

    fn file_of(payloads: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for p in payloads {
            offsets.push(out.len() as u64);
            encode_frame(&mut out, p, MAX).expect("encode frame");
        }
        (out, offsets)
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, FrameEnd)> {
        let mut r = reader(bytes, MAX);
        let mut got = Vec::new();
        while let Some(f) = r.next_frame()? {
            got.push(f.payload.to_vec());
        }
        Ok((got, r.end().expect("end")))
    }

    #[test]
    fn frames_roundtrip_and_end_cleanly() {
        let (bytes, offsets) = file_of(&[b"one", b"", b"three"]);
        let mut r = reader(&bytes, MAX);
        let mut seen = Vec::new();
        while let Some(f) = r.next_frame().expect("next frame") {
            seen.push((f.offset, f.payload.to_vec()));
        }
        assert_eq!(r.end(), Some(FrameEnd::Clean));
        assert_eq!(
            seen,
            vec![
                (offsets[0], b"one".to_vec()),
                (offsets[1], Vec::new()),
                (offsets[2], b"three".to_vec())
            ]
        );
        assert_eq!(read_all(&[]).expect("read all"), (vec![], FrameEnd::Clean));
    }

    #[test]
    fn every_cut_inside_the_last_frame_is_a_torn_tail() {
        let (bytes, offsets) = file_of(&[b"first", b"second frame payload"]);
        for cut in offsets[1] + 1..bytes.len() as u64 {
            let (got, end) = read_all(&bytes[..cut as usize]).expect("read all");
            assert_eq!(got, vec![b"first".to_vec()], "cut at {cut}");
            assert_eq!(end, FrameEnd::Torn { at: offsets[1] }, "cut at {cut}");
        }
    }

    #[test]
    fn a_bad_payload_in_the_last_frame_is_torn_but_in_a_middle_frame_is_an_error() {
        let (mut bytes, offsets) = file_of(&[b"first", b"second", b"third"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let (got, end) = read_all(&bytes).expect("read all");
        assert_eq!(got.len(), 2);
        assert_eq!(end, FrameEnd::Torn { at: offsets[2] });

        let (mut bytes, offsets) = file_of(&[b"first", b"second", b"third"]);
        bytes[offsets[1] as usize + FRAME_HEADER_LEN] ^= 0x40;
        match read_all(&bytes) {
            Err(Error::ChecksumMismatch { offset, path, .. }) => {
                assert_eq!(offset, offsets[1]);
                assert_eq!(path, Path::new("test.log"));
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_header_is_an_error_even_at_the_end() {
        let (mut bytes, offsets) = file_of(&[b"first", b"second"]);
        bytes[offsets[1] as usize] ^= 0x01;
        match read_all(&bytes) {
            Err(Error::ChecksumMismatch { offset, .. }) => assert_eq!(offset, offsets[1]),
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
    }

    #[test]
    fn a_zero_filled_tail_is_torn() {
        let (mut bytes, _) = file_of(&[b"first"]);
        let end_of_first = bytes.len() as u64;
        bytes.extend_from_slice(&[0u8; 100]);
        assert_eq!(
            read_all(&bytes).expect("read all"),
            (vec![b"first".to_vec()], FrameEnd::Torn { at: end_of_first })
        );
        // A frame whose header made it but whose payload blocks read back as zeros.
        let (mut bytes, offsets) = file_of(&[b"first", b"second"]);
        for b in &mut bytes[offsets[1] as usize + FRAME_HEADER_LEN..] {
            *b = 0;
        }
        bytes.extend_from_slice(&[0u8; 50]);
        assert_eq!(
            read_all(&bytes).expect("read all"),
            (vec![b"first".to_vec()], FrameEnd::Torn { at: offsets[1] })
        );
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocating() {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, &[7u8; 64], MAX).expect("encode frame");
        let mut r = reader(&bytes, 16);
        assert!(matches!(
            r.next_frame(),
            Err(Error::Corruption { offset: 0, .. })
        ));
        assert!(r.next_frame().expect("next frame").is_none());
        assert_eq!(r.end(), None);

        let mut out = b"keep".to_vec();
        assert_eq!(
            encode_frame(&mut out, &[0u8; 17], 16),
            Err(FrameTooLarge { len: 17, max: 16 })
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn reading_from_a_file_matches_reading_from_bytes() {
        let (bytes, _) = file_of(&[b"a", b"bb", b"ccc"]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("write");
        let mut r = FrameReader::open(&path, MAX).expect("open");
        let mut n = 0;
        while r.next_frame().expect("next frame").is_some() {
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(r.end(), Some(FrameEnd::Torn { at: 13 + 14 }));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_end_in_frames_a_tail_or_an_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut r = reader(&bytes, 64);
            let mut frames = 0;
            loop {
                match r.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.payload.len() <= 64);
                        frames += 1;
                    }
                    Ok(None) => {
                        prop_assert!(r.end().is_some());
                        break;
                    }
                    Err(e) => {
                        prop_assert!(e.is_corruption());
                        break;
                    }
                }
                prop_assert!(frames <= bytes.len() / FRAME_HEADER_LEN);
            }
        }
    }
}
