//! The file-level framing of an SSTable: block handles, block trailers and the footer.
//!
//! Owns [`BlockHandle`], the block trailer (compression byte + CRC32), block compression, and
//! [`Footer`]. Must never trust a length it read: decoding checks every handle against the
//! file's size, and decompression bounds the output by what the compressed input can expand to.

use std::path::Path;

use bytes::Bytes;

use crate::coding::{put_varint, varint_len, Decoder};
use crate::error::{Error, Result};
use crate::options::Compression;

/// Bytes after every block's payload: the compression byte and the CRC32.
pub(crate) const BLOCK_TRAILER_LEN: usize = 5;

/// Size of the footer at the end of every table.
pub(crate) const FOOTER_LEN: usize = 64;

/// Identifies the file as a ringkv SSTable (the bytes `RKVTABLE` read as a little-endian u64).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"RKVTABLE");

/// The only format this code writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Compression byte: the payload is stored as is.
const COMPRESSION_NONE: u8 = 0;
/// Compression byte: the payload is `varint(uncompressed length) ‖ LZ4 block`.
const COMPRESSION_LZ4: u8 = 1;

/// LZ4 cannot expand input by more than this factor (each token byte encodes at most 255
/// extra literal or match bytes); it bounds the allocation for a decompressed block.
const LZ4_MAX_RATIO: usize = 256;

/// Where a block lives in the file: its offset and the length of its payload (the trailer
/// follows the payload and is not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    /// Offset of the block's first byte.
    pub(crate) offset: u64,
    /// Payload length in bytes, trailer excluded.
    pub(crate) len: u64,
}

impl BlockHandle {
    /// Offset just past the block's trailer, `None` on overflow.
    pub(crate) fn end(&self) -> Option<u64> {
        self.offset
            .checked_add(self.len)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }

    /// Appends the handle as two varints.
    pub(crate) fn encode_varint(&self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.len);
    }

    /// Reads [`BlockHandle::encode_varint`]'s output.
    pub(crate) fn decode_varint(d: &mut Decoder<'_>) -> Option<Self> {
        Some(Self {
            offset: d.varint()?,
            len: d.varint()?,
        })
    }
}

/// What a table builder keeps across blocks to compress them: the output buffer and LZ4's
/// hash table (which `compress_into` would allocate and zero anew for every block).
#[derive(Default)]
pub(crate) struct CompressScratch {
    out: Vec<u8>,
    /// Created at the first compressed block.
    table: Option<lz4_flex::block::CompressTable>,
}

/// Compresses `raw` into `scratch` when `compression` asks for it and it pays off, and returns
/// the payload to store with its compression byte.
///
/// A block that LZ4 does not shrink is stored raw, so reading it costs no decompression.
/// The output buffer only ever grows and its stale bytes are overwritten, not cleared: the
/// compressor writes every byte it reports, and re-zeroing the largest possible output for
/// every block cost more than the compression of a small block.
pub(crate) fn compress_block<'a>(
    raw: &'a [u8],
    compression: Compression,
    scratch: &'a mut CompressScratch,
) -> (&'a [u8], u8) {
    match compression {
        Compression::None => (raw, COMPRESSION_NONE),
        Compression::Lz4 => {
            let table = scratch.table.get_or_insert_with(Default::default);
            let scratch = &mut scratch.out;
            // The LZ4 output goes after room for the longest length varint; the varint is
            // written just before it once its length is known, so nothing moves.
            let body_at = MAX_VARINT_LEN;
            let body_end = body_at + lz4_flex::block::get_maximum_output_size(raw.len());
            if scratch.len() < body_end {
                scratch.resize(body_end, 0);
            }
            let raw_len = raw.len() as u64;
            let header = varint_len(raw_len);
            let body = &mut scratch[body_at..body_end];
            match lz4_flex::block::compress_into_with_table(raw, body, table) {
                Ok(n) if header + n < raw.len() => {
                    let start = body_at - header;
                    write_varint(&mut scratch[start..body_at], raw_len);
                    (&scratch[start..body_at + n], COMPRESSION_LZ4)
                }
                // Did not shrink, or (impossible with a maximum-size output buffer) failed:
                // storing raw is always correct.
                _ => (raw, COMPRESSION_NONE),
            }
        }
    }
}

/// Bytes of the longest varint (a `u64` in 7-bit groups).
const MAX_VARINT_LEN: usize = 10;

/// Writes `v` as [`put_varint`] does into `out`, which is exactly `varint_len(v)` long.
fn write_varint(out: &mut [u8], mut v: u64) {
    let last = out.len().saturating_sub(1);
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = if i == last { v as u8 } else { (v as u8) | 0x80 };
        v >>= 7;
    }
}

/// The CRC32 stored in a block trailer: over the payload and the compression byte.
pub(crate) fn block_crc(payload: &[u8], compression: u8) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(payload);
    hasher.update(&[compression]);
    hasher.finalize()
}

/// Checks a block read from disk (`payload ‖ trailer`, as one buffer) and returns its
/// uncompressed payload (a zero-copy slice of `buf` when the block is not compressed).
///
/// # Errors
/// [`Error::ChecksumMismatch`] if the CRC does not match, [`Error::Corruption`] for an unknown
/// compression byte or a payload that does not decompress to its recorded length.
pub(crate) fn decode_block(path: &Path, handle: BlockHandle, buf: Bytes) -> Result<Bytes> {
    let corrupt = |reason: &str| Error::corruption(path, handle.offset, reason);
    let Some(payload_len) = buf.len().checked_sub(BLOCK_TRAILER_LEN) else {
        return Err(corrupt("block shorter than its trailer"));
    };
    let compression = buf[payload_len];
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&buf[payload_len + 1..]);
    let expected = u32::from_le_bytes(crc);
    let got = block_crc(&buf[..payload_len], compression);
    if got != expected {
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            offset: handle.offset,
            expected,
            got,
        });
    }
    match compression {
        COMPRESSION_NONE => Ok(buf.slice(..payload_len)),
        COMPRESSION_LZ4 => {
            let payload = &buf[..payload_len];
            let mut d = Decoder::new(payload);
            let bound = payload_len.saturating_mul(LZ4_MAX_RATIO);
            let Some(raw_len) = d.varint_len(bound) else {
                return Err(corrupt("bad uncompressed length in an LZ4 block"));
            };
            let body = &payload[d.position()..];
            // `decompress` zero-fills its output before decoding into it. lz4_flex without
            // `safe-decode` skips the fill but copies overlapping matches a byte at a time:
            // measured 3-13x slower per 4 KiB block (runs of one byte, or a short pattern
            // repeated), far more than the fill costs.
            match lz4_flex::block::decompress(body, raw_len) {
                Ok(out) if out.len() == raw_len => Ok(Bytes::from(out)),
                Ok(_) => Err(corrupt("LZ4 block decompressed to the wrong length")),
                Err(_) => Err(corrupt("LZ4 block does not decompress")),
            }
        }
        _ => Err(corrupt("unknown block compression")),
    }
}

/// The fixed-size record at the end of every table, pointing at the index, bloom and meta
/// blocks.
///
/// ```text
/// index offset u64 | index len u64 | bloom offset u64 | bloom len u64 |
/// meta offset u64  | meta len u64  | format version u32 | crc32 u32 | magic u64      (all LE)
/// ```
///
/// The CRC covers the 52 bytes before it. A bloom handle of length 0 means "no filter".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    /// The index block: last internal key of each data block and its handle.
    pub(crate) index: BlockHandle,
    /// The bloom filter block; `len == 0` when the table has no filter.
    pub(crate) bloom: BlockHandle,
    /// The meta block ([`TableMeta`](super::meta::TableMeta) encoding).
    pub(crate) meta: BlockHandle,
}

impl Footer {
    /// The footer's bytes.
    pub(crate) fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        let fields = [
            self.index.offset,
            self.index.len,
            self.bloom.offset,
            self.bloom.len,
            self.meta.offset,
            self.meta.len,
        ];
        for (i, v) in fields.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out[48..52].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32fast::hash(&out[..52]);
        out[52..56].copy_from_slice(&crc.to_le_bytes());
        out[56..64].copy_from_slice(&MAGIC.to_le_bytes());
        out
    }

    /// Decodes and checks the footer of a file of `file_len` bytes whose footer starts at
    /// `file_len - FOOTER_LEN`. Every handle must lie before the footer.
    ///
    /// # Errors
    /// [`Error::Corruption`] for a bad magic number, an unknown format version or a handle out
    /// of bounds; [`Error::ChecksumMismatch`] if the footer's CRC does not match.
    pub(crate) fn decode(path: &Path, file_len: u64, buf: &[u8; FOOTER_LEN]) -> Result<Self> {
        let footer_offset = file_len.saturating_sub(FOOTER_LEN as u64);
        let corrupt = |reason: &str| Error::corruption(path, footer_offset, reason);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[at..at + 4]);
            u32::from_le_bytes(b)
        };
        if u64_at(56) != MAGIC {
            return Err(corrupt("bad magic number: not an SSTable, or truncated"));
        }
        let expected = u32_at(52);
        let got = crc32fast::hash(&buf[..52]);
        if expected != got {
            return Err(Error::ChecksumMismatch {
                path: path.to_path_buf(),
                offset: footer_offset,
                expected,
                got,
            });
        }
        let version = u32_at(48);
        if version != FORMAT_VERSION {
            return Err(corrupt(&format!(
                "unsupported table format version {version}"
            )));
        }
        let handle = |i: usize| BlockHandle {
            offset: u64_at(i * 16),
            len: u64_at(i * 16 + 8),
        };
        let footer = Self {
            index: handle(0),
            bloom: handle(1),
            meta: handle(2),
        };
        for (name, h) in [
            ("index", footer.index),
            ("bloom", footer.bloom),
            ("meta", footer.meta),
        ] {
            if name == "bloom" && h.len == 0 {
                continue;
            }
            if h.end().is_none_or(|end| end > footer_offset) {
                return Err(corrupt(&format!(
                    "{name} block handle points past the footer"
                )));
            }
        }
        Ok(footer)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn framed(raw: &[u8], compression: Compression) -> Vec<u8> {
        let mut scratch = CompressScratch::default();
        let (payload, c) = compress_block(raw, compression, &mut scratch);
        let mut out = payload.to_vec();
        out.push(c);
        out.extend_from_slice(&block_crc(payload, c).to_le_bytes());
        out
    }

    #[test]
    fn blocks_roundtrip_with_and_without_lz4() {
        let path = PathBuf::from("t.sst");
        let compressible = vec![7u8; 4096];
        for compression in [Compression::None, Compression::Lz4] {
            let buf = framed(&compressible, compression);
            if compression == Compression::Lz4 {
                assert!(buf.len() < 1000, "repetitive data should shrink");
            }
            let h = BlockHandle {
                offset: 0,
                len: (buf.len() - BLOCK_TRAILER_LEN) as u64,
            };
            assert_eq!(
                decode_block(&path, h, Bytes::from(buf))
                    .expect("valid block")
                    .as_ref(),
                &compressible[..]
            );
        }
        // Incompressible data is stored raw even when LZ4 is asked for.
        let noise: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let buf = framed(&noise, Compression::Lz4);
        assert_eq!(buf[noise.len()], COMPRESSION_NONE);
    }

    #[test]
    fn a_reused_scratch_never_leaks_an_earlier_block() {
        let path = PathBuf::from("t.sst");
        let mut scratch = CompressScratch::default();
        // Largest first, so later, shorter blocks are written over stale bytes.
        // The first is past 64 KiB, where LZ4 needs its large hash table.
        let blocks: Vec<Vec<u8>> = vec![
            (0..70_000u32).map(|i| (i % 251) as u8).collect(),
            (0..20_000u32).map(|i| (i % 97) as u8).collect(),
            vec![b'a'; 300],
            (0..200u32).map(|i| (i % 5) as u8 + b'0').collect(),
            vec![b'z'; 130],
        ];
        for raw in &blocks {
            let (payload, c) = compress_block(raw, Compression::Lz4, &mut scratch);
            assert_eq!(c, COMPRESSION_LZ4, "these blocks all shrink");
            let mut buf = payload.to_vec();
            buf.push(c);
            buf.extend_from_slice(&block_crc(payload, c).to_le_bytes());
            let h = BlockHandle {
                offset: 0,
                len: (buf.len() - BLOCK_TRAILER_LEN) as u64,
            };
            let decoded = decode_block(&path, h, Bytes::from(buf)).expect("valid block");
            assert_eq!(decoded.as_ref(), &raw[..]);
        }
    }

    #[test]
    fn write_varint_matches_put_varint() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut expected = Vec::new();
            put_varint(&mut expected, v);
            let mut got = vec![0xAA; varint_len(v)];
            write_varint(&mut got, v);
            assert_eq!(got, expected, "{v}");
        }
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_mismatch() {
        let path = PathBuf::from("t.sst");
        let mut buf = framed(&[1u8; 300], Compression::Lz4);
        buf[2] ^= 0x40;
        let h = BlockHandle { offset: 10, len: 0 };
        assert!(matches!(
            decode_block(&path, h, Bytes::from(buf)),
            Err(Error::ChecksumMismatch { offset: 10, .. })
        ));
        assert!(matches!(
            decode_block(&path, h, Bytes::from_static(&[1, 2])),
            Err(Error::Corruption { .. })
        ));
    }

    #[test]
    fn lz4_with_a_lying_length_is_corruption_not_a_huge_allocation() {
        let path = PathBuf::from("t.sst");
        let mut payload = Vec::new();
        put_varint(&mut payload, u64::MAX / 2);
        payload.extend_from_slice(&[0u8; 8]);
        let mut buf = payload.clone();
        buf.push(COMPRESSION_LZ4);
        buf.extend_from_slice(&block_crc(&payload, COMPRESSION_LZ4).to_le_bytes());
        let h = BlockHandle {
            offset: 0,
            len: payload.len() as u64,
        };
        assert!(matches!(
            decode_block(&path, h, Bytes::from(buf)),
            Err(Error::Corruption { .. })
        ));
    }

    #[test]
    fn lz4_with_an_understated_length_is_corruption_not_a_panic() {
        let path = PathBuf::from("t.sst");
        let raw = vec![7u8; 4096];
        let mut scratch = CompressScratch::default();
        let (payload, c) = compress_block(&raw, Compression::Lz4, &mut scratch);
        assert_eq!(c, COMPRESSION_LZ4);
        let mut d = Decoder::new(payload);
        d.varint().expect("length");
        for claimed in [100u64, 4095, 4097] {
            let mut lying = Vec::new();
            put_varint(&mut lying, claimed);
            lying.extend_from_slice(&payload[d.position()..]);
            let mut buf = lying.clone();
            buf.push(COMPRESSION_LZ4);
            buf.extend_from_slice(&block_crc(&lying, COMPRESSION_LZ4).to_le_bytes());
            let h = BlockHandle {
                offset: 0,
                len: lying.len() as u64,
            };
            assert!(
                matches!(
                    decode_block(&path, h, Bytes::from(buf)),
                    Err(Error::Corruption { .. })
                ),
                "{claimed}"
            );
        }
    }

    #[test]
    fn footer_roundtrips_and_rejects_damage() {
        let path = PathBuf::from("t.sst");
        let f = Footer {
            index: BlockHandle {
                offset: 100,
                len: 20,
            },
            bloom: BlockHandle {
                offset: 125,
                len: 0,
            },
            meta: BlockHandle {
                offset: 125,
                len: 30,
            },
        };
        let file_len = 160 + FOOTER_LEN as u64;
        let bytes = f.encode();
        assert_eq!(
            Footer::decode(&path, file_len, &bytes).expect("valid footer"),
            f
        );

        let mut bad_crc = bytes;
        bad_crc[3] ^= 1;
        assert!(matches!(
            Footer::decode(&path, file_len, &bad_crc),
            Err(Error::ChecksumMismatch { .. })
        ));
        let mut bad_magic = bytes;
        bad_magic[60] ^= 1;
        assert!(matches!(
            Footer::decode(&path, file_len, &bad_magic),
            Err(Error::Corruption { .. })
        ));
        // Handles past the footer (a file shorter than the footer claims).
        assert!(matches!(
            Footer::decode(&path, 100 + FOOTER_LEN as u64, &bytes),
            Err(Error::Corruption { .. })
        ));
    }
}
