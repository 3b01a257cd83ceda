//! Data blocks: a run of entries sorted by internal key, prefix-compressed, with restart points
//! for binary search.
//!
//! Owns [`BlockBuilder`], the decoded [`Block`] and [`BlockIter`]. Must never compare encoded
//! internal keys bytewise (a user key may be a prefix of another, so `user_key ‖ version`
//! bytes do not sort like internal keys): keys are split into user key and version and
//! compared part by part, as [`compare_internal`](crate::record::compare_internal) orders them
//! ([`compare_encoded`]). Must never panic or index out of bounds on a damaged block.
//!
//! # Format
//!
//! ```text
//! entry*  restart_offset (u32 LE)*  restart_count (u32 LE)
//!
//! entry := shared varint | unshared varint | rest_len varint
//!          | key suffix (unshared bytes)
//!          | rest := seqno varint | expire_at_ms varint | kind u8 (0 value, 1 tombstone) | value
//! ```
//!
//! The key is the internal key `user_key ‖ version.to_bytes()`; `shared` bytes are taken from
//! the previous entry's key. At a restart point `shared` is 0, so the key can be read in place.
//! `rest_len` lets a seek skip an entry's payload without decoding it.
//!
//! Where restart points fall is the builder's choice, not part of the format (a reader only
//! needs the array): every `restart_interval` entries, or sooner once [`RESTART_BYTES`] of
//! entries followed the last one, so blocks of large values (4 entries of 1 KiB) are searched
//! by binary search over keys read in place instead of by stepping through every entry.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::coding::{put_varint, varint_len, Decoder};
use crate::record::{Entry, Version};

const VERSION_LEN: usize = Version::ENCODED_LEN;
/// Entry bytes after which the next entry starts a restart point, whatever the interval: the
/// 4 bytes of a restart offset and the lost key-prefix sharing are small next to this.
pub(crate) const RESTART_BYTES: usize = 1 << 10;
/// Longest varint of an entry header field (a `u64` in 7-bit groups).
const MAX_HEADER_VARINT: usize = 10;
const KIND_VALUE: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;

/// What is wrong with a block, and where in it; the table reader adds the file and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockError {
    /// Byte offset inside the block's uncompressed payload.
    pub(crate) at: usize,
    /// What was wrong.
    pub(crate) reason: &'static str,
}

fn err<T>(at: usize, reason: &'static str) -> Result<T, BlockError> {
    Err(BlockError { at, reason })
}

/// Splits an encoded internal key into its user key and version.
pub(crate) fn split_internal(key: &[u8]) -> Option<(&[u8], Version)> {
    let cut = key.len().checked_sub(VERSION_LEN)?;
    Some((&key[..cut], Version::from_bytes(&key[cut..])?))
}

/// Compares an encoded internal key with a target given as its user key and its version's
/// encoding. The version's big-endian encoding sorts like the version, so comparing the
/// target's version bytes against the key's gives the descending version order without
/// decoding either. `None` if `key` is shorter than a version.
#[inline]
pub(crate) fn compare_encoded(
    key: &[u8],
    user_key: &[u8],
    version: &[u8; VERSION_LEN],
) -> Option<Ordering> {
    let cut = key.len().checked_sub(VERSION_LEN)?;
    let (k, v) = key.split_at(cut);
    Some(k.cmp(user_key).then_with(|| version.as_slice().cmp(v)))
}

/// Reads an LEB128 varint at `*pos` in `data`, with a fast path for the one-byte values that
/// make up nearly every entry header.
#[inline]
fn read_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *data.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(u64::from(first));
    }
    let mut d = Decoder::new(data.get(*pos..)?);
    let v = d.varint()?;
    *pos += d.position();
    Some(v)
}

/// Builds one data block. Reused across blocks: [`BlockBuilder::reset`] keeps the buffers.
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    since_restart: usize,
    /// Encoded internal key of the last entry added.
    last_key: Vec<u8>,
    /// The key being added, kept to avoid an allocation per entry.
    scratch: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    /// A builder that starts a restart point every `restart_interval` entries (at least 1).
    pub(crate) fn new(restart_interval: usize) -> Self {
        Self {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval: restart_interval.max(1),
            since_restart: 0,
            last_key: Vec::new(),
            scratch: Vec::new(),
            entries: 0,
        }
    }

    /// Appends an entry. The caller guarantees internal-key order and that the block stays
    /// below 4 GiB (restart offsets are u32).
    pub(crate) fn add(&mut self, user_key: &[u8], version: Version, entry: &Entry) {
        self.scratch.clear();
        self.scratch.extend_from_slice(user_key);
        self.scratch.extend_from_slice(&version.to_bytes());

        let last_restart = self.restarts.last().map_or(0, |&r| r as usize);
        let restart = self.entries == 0
            || self.since_restart >= self.restart_interval
            || self.buf.len() - last_restart >= RESTART_BYTES;
        let shared = if restart {
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        } else {
            self.last_key
                .iter()
                .zip(self.scratch.iter())
                .take_while(|(a, b)| a == b)
                .count()
        };

        // The rest is written straight into the block, its length worked out first, so the
        // value is copied once (it was copied twice through a staging buffer).
        let value = entry.value.as_deref().unwrap_or_default();
        let rest_len = varint_len(entry.seqno) + varint_len(entry.expire_at_ms) + 1 + value.len();
        let unshared = self.scratch.len() - shared;
        self.buf
            .reserve(3 * MAX_HEADER_VARINT + unshared + rest_len);
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, unshared as u64);
        put_varint(&mut self.buf, rest_len as u64);
        self.buf.extend_from_slice(&self.scratch[shared..]);
        put_varint(&mut self.buf, entry.seqno);
        put_varint(&mut self.buf, entry.expire_at_ms);
        self.buf.push(if entry.value.is_some() {
            KIND_VALUE
        } else {
            KIND_TOMBSTONE
        });
        self.buf.extend_from_slice(value);

        std::mem::swap(&mut self.last_key, &mut self.scratch);
        self.since_restart += 1;
        self.entries += 1;
    }

    /// Size the finished block would have, in bytes.
    pub(crate) fn estimated_bytes(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Whether no entry has been added since the last reset.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Encoded internal key (`user_key ‖ version`) of the last entry added.
    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the block's payload. Call
    /// [`BlockBuilder::reset`] before adding to the next block.
    pub(crate) fn finish(&mut self) -> &[u8] {
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        &self.buf
    }

    /// Empties the builder for the next block, keeping its allocations.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.since_restart = 0;
        self.last_key.clear();
        self.entries = 0;
    }
}

/// A decoded data block: its uncompressed bytes and the position of its restart array.
/// Cloning is cheap (a reference count), which is what the block cache hands out.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    data: Bytes,
    /// Offset of the restart array, i.e. the end of the entries.
    restarts_at: usize,
    restart_count: usize,
}

impl Block {
    /// Checks the restart array of `data` (an uncompressed block payload).
    ///
    /// # Errors
    /// A [`BlockError`] if the restart array is out of bounds or not increasing.
    pub(crate) fn decode(data: Bytes) -> Result<Self, BlockError> {
        let len = data.len();
        let Some(count_at) = len.checked_sub(4) else {
            return err(0, "block shorter than its restart count");
        };
        let restart_count = read_u32(&data, count_at) as usize;
        let Some(restarts_at) = restart_count
            .checked_mul(4)
            .and_then(|n| count_at.checked_sub(n))
        else {
            return err(count_at, "restart count larger than the block");
        };
        if restart_count == 0 {
            return err(count_at, "block without restart points");
        }
        let block = Self {
            data,
            restarts_at,
            restart_count,
        };
        let mut prev = None;
        for i in 0..restart_count {
            let r = block.restart(i);
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p && r < restarts_at,
            };
            if !ok {
                return err(
                    restarts_at + 4 * i,
                    "restart points out of order or out of bounds",
                );
            }
            prev = Some(r);
        }
        if restarts_at == 0 {
            return err(0, "block with restart points but no entries");
        }
        Ok(block)
    }

    /// Bytes held by the block, for cache accounting.
    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    fn restart(&self, i: usize) -> usize {
        read_u32(&self.data, self.restarts_at + 4 * i) as usize
    }

    /// The key stored in place at restart point `i` (restart keys are never prefix-shared), and
    /// the offset just past that entry.
    fn restart_key(&self, i: usize) -> Result<(&[u8], usize), BlockError> {
        let at = self.restart(i);
        let h = self.header(at)?;
        if h.shared != 0 {
            return err(at, "restart entry shares a prefix");
        }
        Ok((&self.data[h.key_at..h.rest_at], h.end))
    }

    /// Offset of restart point `i`, or the end of the entries for `i == restart_count`.
    fn restart_or_end(&self, i: usize) -> usize {
        if i < self.restart_count {
            self.restart(i)
        } else {
            self.restarts_at
        }
    }

    /// Decodes an entry's three lengths and checks that the entry lies inside the entries area.
    #[inline]
    fn header(&self, at: usize) -> Result<Header, BlockError> {
        let entries = &self.data[..self.restarts_at];
        // Nearly every header is one-byte prefix lengths and a payload length of one byte
        // (small values) or two (values up to 16 KiB): decode those without a loop.
        let (shared, unshared, rest_len, key_at) = match *entries.get(at..).unwrap_or_default() {
            [a, b, c, ..] if (a | b | c) < 0x80 => {
                (usize::from(a), usize::from(b), usize::from(c), at + 3)
            }
            [a, b, c, d, ..] if (a | b | d) < 0x80 => (
                usize::from(a),
                usize::from(b),
                usize::from(c & 0x7f) | usize::from(d) << 7,
                at + 4,
            ),
            _ => self.header_slow(at)?,
        };
        let rest_at = key_at + unshared;
        let end = rest_at + rest_len;
        if end > self.restarts_at {
            return err(at, "entry runs past the end of the block");
        }
        Ok(Header {
            shared,
            key_at,
            rest_at,
            end,
        })
    }

    /// The general header decode: multi-byte varints, each bounded by the block's size so the
    /// caller's additions cannot overflow.
    #[cold]
    fn header_slow(&self, at: usize) -> Result<(usize, usize, usize, usize), BlockError> {
        let entries = &self.data[..self.restarts_at];
        let mut pos = at;
        let mut field = || {
            read_varint(entries, &mut pos)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v <= entries.len())
        };
        let (Some(shared), Some(unshared), Some(rest_len)) = (field(), field(), field()) else {
            return err(at, "bad entry header");
        };
        Ok((shared, unshared, rest_len, pos))
    }
}

/// The three lengths at the start of an entry, resolved to offsets in the block.
struct Header {
    shared: usize,
    key_at: usize,
    rest_at: usize,
    end: usize,
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

/// A cursor over one block's entries.
///
/// It keeps the current entry fully decoded so [`BlockIter::current`] can lend it out; values
/// are zero-copy slices of the block.
pub(crate) struct BlockIter {
    block: Block,
    /// Encoded internal key of the current entry.
    key: Vec<u8>,
    version: Version,
    entry: Entry,
    /// Offset of the current entry; `None` when not positioned on an entry.
    at: Option<usize>,
    /// Offset of the current entry's payload (seqno, expiry, kind, value).
    rest_at: usize,
    /// Offset of the entry after the current one.
    next_at: usize,
}

impl BlockIter {
    /// A cursor over `block`, not yet positioned: call [`BlockIter::seek_to_first`] or
    /// [`BlockIter::seek`].
    pub(crate) fn new(block: Block) -> Self {
        Self::with_key_buffer(block, Vec::with_capacity(64))
    }

    /// As [`BlockIter::new`], building keys in `key` (cleared first), which
    /// [`BlockIter::into_key_buffer`] gives back: a point read reuses one buffer per thread
    /// instead of allocating one per read.
    pub(crate) fn with_key_buffer(block: Block, mut key: Vec<u8>) -> Self {
        key.clear();
        Self {
            block,
            key,
            version: Version::default(),
            entry: Entry {
                seqno: 0,
                expire_at_ms: 0,
                value: None,
            },
            at: None,
            rest_at: 0,
            next_at: 0,
        }
    }

    /// The key buffer, for the next [`BlockIter::with_key_buffer`].
    pub(crate) fn into_key_buffer(self) -> Vec<u8> {
        self.key
    }

    /// Switches to another block, keeping the key buffer; unpositioned.
    pub(crate) fn reset(&mut self, block: Block) {
        self.block = block;
        self.key.clear();
        self.at = None;
        self.next_at = 0;
        self.entry.value = None;
    }

    /// The current entry: user key, version and payload; `None` when exhausted.
    pub(crate) fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.at?;
        let user_key = &self.key[..self.key.len() - VERSION_LEN];
        Some((user_key, self.version, &self.entry))
    }

    /// Moves the current entry out (saving a reference-count round trip over cloning it) and
    /// leaves the cursor exhausted.
    pub(crate) fn take_current(&mut self) -> Option<(Version, Entry)> {
        self.at.take()?;
        let empty = Entry {
            seqno: 0,
            expire_at_ms: 0,
            value: None,
        };
        Some((self.version, std::mem::replace(&mut self.entry, empty)))
    }

    /// Whether the cursor is on an entry.
    pub(crate) fn is_valid(&self) -> bool {
        self.at.is_some()
    }

    /// Moves to the block's first entry.
    ///
    /// # Errors
    /// A [`BlockError`] if the entry cannot be decoded; the cursor is then exhausted.
    pub(crate) fn seek_to_first(&mut self) -> Result<(), BlockError> {
        self.key.clear();
        self.next_at = 0;
        self.step_key().and_then(|()| self.load_entry())
    }

    /// Moves to the first entry whose internal key is `>=` `(user_key, version)`, or
    /// exhausts the cursor if there is none.
    ///
    /// # Errors
    /// A [`BlockError`] if an entry on the way cannot be decoded.
    pub(crate) fn seek(&mut self, user_key: &[u8], version: Version) -> Result<(), BlockError> {
        let result = self.seek_inner(user_key, &version.to_bytes());
        if result.is_err() {
            self.at = None;
        }
        result
    }

    fn seek_inner(
        &mut self,
        user_key: &[u8],
        version: &[u8; VERSION_LEN],
    ) -> Result<(), BlockError> {
        // Last restart point whose key is < the target: the target lies after it.
        let (mut lo, mut hi) = (0usize, self.block.restart_count);
        // End of the entry at the last restart point found < the target.
        let mut less_end = 0;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (key, end) = self.block.restart_key(mid)?;
            match compare_encoded(key, user_key, version) {
                Some(Ordering::Less) => {
                    lo = mid + 1;
                    less_end = end;
                }
                Some(_) => hi = mid,
                None => return err(self.block.restart(mid), "key shorter than a version"),
            }
        }
        self.key.clear();
        // When that restart point's run is its one entry (large values restart at every
        // entry), the target is at the next restart point: start there, not one entry before.
        self.next_at = if lo > 0 && less_end == self.block.restart_or_end(lo) {
            less_end
        } else {
            self.block.restart(lo.saturating_sub(1))
        };
        loop {
            self.step_key()?;
            let Some(at) = self.at else {
                return Ok(());
            };
            match compare_encoded(&self.key, user_key, version) {
                Some(Ordering::Less) => {}
                Some(_) => return self.load_entry(),
                None => return err(at, "key shorter than a version"),
            }
        }
    }

    /// Moves to the next entry (exhausting the cursor after the last one).
    ///
    /// # Errors
    /// A [`BlockError`] if the entry cannot be decoded; the cursor is then exhausted.
    pub(crate) fn next(&mut self) -> Result<(), BlockError> {
        if self.at.is_none() {
            return Ok(());
        }
        self.step_key().and_then(|()| self.load_entry())
    }

    /// Advances to the entry at `next_at` and rebuilds its key, without decoding its payload.
    fn step_key(&mut self) -> Result<(), BlockError> {
        let at = self.next_at;
        if at >= self.block.restarts_at {
            self.at = None;
            return Ok(());
        }
        self.at = None;
        let h = self.block.header(at)?;
        if h.shared > self.key.len() {
            return err(at, "entry shares more than the previous key");
        }
        self.key.truncate(h.shared);
        self.key
            .extend_from_slice(&self.block.data[h.key_at..h.rest_at]);
        if self.key.len() < VERSION_LEN {
            return err(at, "key shorter than a version");
        }
        self.at = Some(at);
        self.rest_at = h.rest_at;
        self.next_at = h.end;
        Ok(())
    }

    /// Decodes the current entry's version and payload.
    fn load_entry(&mut self) -> Result<(), BlockError> {
        let Some(at) = self.at else {
            return Ok(());
        };
        match self.decode_entry(at) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.at = None;
                Err(e)
            }
        }
    }

    fn decode_entry(&mut self, at: usize) -> Result<(), BlockError> {
        let Some((_, version)) = split_internal(&self.key) else {
            return err(at, "key shorter than a version");
        };
        // The payload ends where the next entry starts.
        let rest_at = self.rest_at;
        let rest = &self.block.data[rest_at..self.next_at];
        let mut d = Decoder::new(rest);
        let (Some(seqno), Some(expire_at_ms), Some(kind)) = (d.varint(), d.varint(), d.u8()) else {
            return err(at, "bad entry payload");
        };
        let value_at = rest_at + d.position();
        let value = match kind {
            KIND_VALUE => Some(self.block.data.slice(value_at..self.next_at)),
            KIND_TOMBSTONE if value_at == self.next_at => None,
            KIND_TOMBSTONE => return err(at, "tombstone with a value"),
            _ => return err(at, "unknown entry kind"),
        };
        self.version = version;
        self.entry = Entry {
            seqno,
            expire_at_ms,
            value,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::compare_internal;

    fn value(seqno: u64, v: &str) -> Entry {
        Entry {
            seqno,
            expire_at_ms: seqno * 10,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    fn tombstone(seqno: u64) -> Entry {
        Entry {
            seqno,
            expire_at_ms: 0,
            value: None,
        }
    }

    /// Keys that are prefixes of each other, several versions each, sorted by internal key.
    fn sample() -> Vec<(Vec<u8>, Version, Entry)> {
        let mut out = Vec::new();
        let mut seq = 0;
        for key in ["", "a", "a\0", "aa", "aab", "ab", "b", "ba"] {
            for hlc in [900u64, 500, 7] {
                seq += 1;
                let e = if seq % 4 == 0 {
                    tombstone(seq)
                } else {
                    value(seq, &format!("{key}@{hlc}"))
                };
                out.push((key.as_bytes().to_vec(), Version::new(hlc, 3), e));
            }
        }
        out
    }

    fn build(items: &[(Vec<u8>, Version, Entry)], interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for (k, v, e) in items {
            b.add(k, *v, e);
        }
        Block::decode(Bytes::copy_from_slice(b.finish())).expect("a built block decodes")
    }

    fn collect(it: &mut BlockIter) -> Vec<(Vec<u8>, Version, Entry)> {
        let mut out = Vec::new();
        while let Some((k, v, e)) = it.current() {
            out.push((k.to_vec(), v, e.clone()));
            it.next().expect("valid block");
        }
        out
    }

    #[test]
    fn roundtrip_with_restarts_and_prefix_compression() {
        let items = sample();
        for interval in [1, 2, 3, 16, 1000] {
            let block = build(&items, interval);
            let mut it = BlockIter::new(block);
            it.seek_to_first().expect("valid block");
            assert_eq!(collect(&mut it), items, "interval {interval}");
        }
        // Prefix compression actually shares bytes.
        let mut b = BlockBuilder::new(16);
        for (k, v, e) in &items {
            b.add(k, *v, e);
        }
        let raw: usize = items.iter().map(|(k, _, _)| k.len() + VERSION_LEN).sum();
        assert!(b.finish().len() < raw + items.len() * 20);
    }

    #[test]
    fn seek_finds_the_first_entry_at_or_after_the_target() {
        let items = sample();
        for interval in [1, 2, 5, 16] {
            let block = build(&items, interval);
            let mut it = BlockIter::new(block);
            let probes: Vec<(&[u8], Version)> = vec![
                (b"", Version::new(u64::MAX, u32::MAX)),
                (b"a", Version::new(u64::MAX, u32::MAX)),
                (b"a", Version::new(500, 3)),
                (b"a", Version::new(499, 0)),
                (b"a", Version::new(0, 0)),
                (b"a\0", Version::new(1000, 0)),
                (b"aa", Version::new(6, 0)),
                (b"aaa", Version::new(u64::MAX, 0)),
                (b"ba", Version::new(7, 3)),
                (b"ba", Version::new(7, 2)),
                (b"c", Version::new(1, 0)),
            ];
            for (k, v) in probes {
                it.seek(k, v).expect("valid block");
                let want = items
                    .iter()
                    .find(|(ik, iv, _)| compare_internal(ik, *iv, k, v) != Ordering::Less);
                let got = it
                    .current()
                    .map(|(gk, gv, ge)| (gk.to_vec(), gv, ge.clone()));
                assert_eq!(got.as_ref(), want, "seek {k:?}/{v:?} interval {interval}");
            }
        }
    }

    #[test]
    fn headers_of_every_varint_width_roundtrip_and_seek() {
        // Payload lengths of one, two and three varint bytes (around 128 and 16 Ki), and keys
        // long enough for a two-byte `unshared`: the fast header paths and the slow one.
        let mut items = Vec::new();
        for (i, len) in [0usize, 100, 122, 123, 200, 1024, 16_370, 16_384, 20_000]
            .into_iter()
            .enumerate()
        {
            let key = if i % 3 == 2 {
                format!("k{i}{}", "L".repeat(150))
            } else {
                format!("k{i}")
            };
            let e = Entry {
                seqno: 1 << 20,
                expire_at_ms: 0,
                value: Some(Bytes::from(vec![b'v'; len])),
            };
            items.push((key.into_bytes(), Version::new(9, 0), e));
        }
        for interval in [1, 4] {
            let block = build(&items, interval);
            let mut it = BlockIter::new(block);
            it.seek_to_first().expect("valid block");
            assert_eq!(collect(&mut it), items, "interval {interval}");
            for (k, v, e) in &items {
                it.seek(k, *v).expect("valid block");
                assert_eq!(it.current(), Some((&k[..], *v, e)), "interval {interval}");
            }
        }
    }

    #[test]
    fn large_entries_start_a_restart_point_each() {
        let entry = |len: usize| Entry {
            seqno: 1,
            expire_at_ms: 0,
            value: Some(Bytes::from(vec![b'x'; len])),
        };
        let large: Vec<_> = (0..4u8)
            .map(|i| (vec![b'k', i], Version::new(9, 0), entry(1024)))
            .collect();
        assert_eq!(build(&large, 16).restart_count, 4, "one per 1 KiB entry");
        // Small entries: by the interval, and by bytes once 1 KiB has accumulated.
        let small: Vec<_> = (0..40u8)
            .map(|i| (vec![b'k', i], Version::new(9, 0), entry(10)))
            .collect();
        assert_eq!(build(&small, 16).restart_count, 3);
        let medium: Vec<_> = (0..8u8)
            .map(|i| (vec![b'k', i], Version::new(9, 0), entry(300)))
            .collect();
        // Restarts at 0, then after 4 entries of ~320 bytes (>= 1 KiB), then after 4 more.
        assert_eq!(build(&medium, 16).restart_count, 2);
    }

    proptest::proptest! {
        /// Seeks agree with a search of the sorted entries, whatever mix of restart points by
        /// count and by bytes the builder chose.
        #[test]
        fn seek_matches_a_sorted_model(
            raw in proptest::collection::btree_map(
                (proptest::collection::vec(0u8..3, 0..4), 0u64..5, 0u32..2),
                proptest::sample::select(vec![0usize, 7, 300, 1100]),
                1..40,
            ),
            interval in 1usize..20,
            probes in proptest::collection::vec(
                (proptest::collection::vec(0u8..3, 0..5), 0u64..6, 0u32..3),
                1..20,
            ),
        ) {
            let mut items: Vec<_> = raw
                .into_iter()
                .map(|((k, hlc, node), len)| {
                    let e = Entry {
                        seqno: hlc,
                        expire_at_ms: 0,
                        value: (len > 0).then(|| Bytes::from(vec![b'v'; len])),
                    };
                    (k, Version::new(hlc, node), e)
                })
                .collect();
            items.sort_by(|a, b| compare_internal(&a.0, a.1, &b.0, b.1));
            let block = build(&items, interval);
            let mut it = BlockIter::new(block);
            it.seek_to_first().expect("valid block");
            proptest::prop_assert_eq!(&collect(&mut it), &items);
            for (k, hlc, node) in probes {
                let v = Version::new(hlc, node);
                it.seek(&k, v).expect("valid block");
                let want = items
                    .iter()
                    .find(|(ik, iv, _)| compare_internal(ik, *iv, &k, v) != Ordering::Less);
                let got = it.current().map(|(gk, gv, ge)| (gk.to_vec(), gv, ge.clone()));
                proptest::prop_assert_eq!(got.as_ref(), want);
            }
        }
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let items = sample();
        let mut b = BlockBuilder::new(4);
        for (k, v, e) in &items {
            b.add(k, *v, e);
        }
        let good = b.finish().to_vec();
        assert!(Block::decode(Bytes::from_static(&[1, 0])).is_err());
        assert!(Block::decode(Bytes::from_static(&[0xff, 0xff, 0xff, 0x0f])).is_err());
        // Flip every byte in turn: decoding and iterating must never panic.
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let Ok(block) = Block::decode(Bytes::from(bad)) else {
                    continue;
                };
                let mut it = BlockIter::new(block.clone());
                if it.seek_to_first().is_ok() {
                    while it.is_valid() {
                        if it.next().is_err() {
                            break;
                        }
                    }
                }
                let mut it = BlockIter::new(block);
                let _ = it.seek(b"aa", Version::new(5, 0));
            }
        }
    }
}
