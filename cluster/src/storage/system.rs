//! The node's system keyspace: its persisted ring identity.
//!
//! Owns [`LocalState`] (node id, tokens, generation), its on-disk encoding and
//! [`load_local_state`] / [`store_local_state`]. The record lives in the node's own engine
//! under [`SYSTEM_SLOT`], a prefix above every user slot, so the user-keyspace walks (which
//! stop at [`key::user_keyspace_end`](crate::storage::key::user_keyspace_end)) never see it
//! and `FLUSHALL` never deletes it. Must never hold user data, and never be replicated or
//! streamed: it describes this node only.

#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};
use ringkv_lsm::{Record, Version};

use crate::error::ClusterError;
use crate::slot::SLOTS;
use crate::storage::Storage;

/// The engine prefix of the node's local system records (hints and other system keyspaces
/// take other prefixes from `0x4000` up).
pub const SYSTEM_SLOT: u16 = 0x4001;

// A system prefix must sort after every user slot, or user walks would meet it.
const _: () = assert!(SYSTEM_SLOT >= SLOTS);

/// The key of the [`LocalState`] record within [`SYSTEM_SLOT`].
pub const LOCAL_STATE_KEY: &[u8] = b"local";

/// Leading bytes of an encoded [`LocalState`]: recognises the record and its layout.
const MAGIC: &[u8; 4] = b"RKLS";
/// The layout version; a reader refuses layouts it does not know.
const FORMAT: u8 = 1;
/// Magic, format, generation, node id length.
const HEADER_LEN: usize = 4 + 1 + 8 + 4;
/// The CRC32 trailer.
const CRC_LEN: usize = 4;
/// What [`ClusterError::Corrupt`] calls this record.
const WHAT: &str = "local ring state";

/// What a node keeps about itself across restarts: who it is and where its vnodes sit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalState {
    /// The node's id.
    pub node_id: String,
    /// Its ring tokens (slot positions), chosen on first start and kept for life.
    pub tokens: Vec<u16>,
    /// Grows on every restart; gossip prefers a higher generation's state.
    pub generation: u64,
}

impl LocalState {
    /// The generation for a start after `previous` at wall-clock `now_ms`: the unix second,
    /// as Cassandra does (comparable across nodes' restarts), but always above the previous
    /// one even when the clock stepped back.
    pub fn next_generation(previous: Option<&LocalState>, now_ms: u64) -> u64 {
        let now_secs = now_ms / 1000;
        match previous {
            Some(p) => now_secs.max(p.generation.saturating_add(1)),
            None => now_secs.max(1),
        }
    }
}

/// The node's stored state, or `None` if it never stored one (first start) or it was deleted.
///
/// # Errors
/// [`ClusterError::Storage`] when the engine fails to read; [`ClusterError::Corrupt`] when the
/// record is not a valid encoding (wrong magic or layout version, bad lengths, checksum
/// mismatch, a token outside the ring).
pub fn load_local_state<S: Storage>(storage: &S) -> Result<Option<LocalState>, ClusterError> {
    let Some(record) = storage.get(SYSTEM_SLOT, LOCAL_STATE_KEY)? else {
        return Ok(None);
    };
    match record.value {
        Some(value) => decode(&value).map(Some),
        None => Ok(None),
    }
}

/// Stores `state`, replacing what was stored. The record's version is above the stored one's
/// (and at least `state.generation`), so this store wins whatever the engine holds; stores
/// must not race each other (a node stores its state from its start-up path only).
///
/// # Errors
/// [`ClusterError::Storage`] when the engine fails to read or write; [`ClusterError::Corrupt`]
/// when `state` cannot be encoded (a token outside the ring, an absurdly long node id).
pub fn store_local_state<S: Storage>(storage: &S, state: &LocalState) -> Result<(), ClusterError> {
    let value = encode(state)?;
    // Only the version decides which record wins in the engine, so a restore of an older
    // generation (or the same one twice) must still sort above what is there.
    let previous = storage
        .get(SYSTEM_SLOT, LOCAL_STATE_KEY)?
        .map_or(0, |r| r.version.hlc);
    let hlc = state.generation.max(previous.saturating_add(1));
    storage.put(
        SYSTEM_SLOT,
        Bytes::from_static(LOCAL_STATE_KEY),
        Record::value(Version::new(hlc, 0), value),
    )
}

fn corrupt(detail: impl Into<String>) -> ClusterError {
    ClusterError::Corrupt {
        what: WHAT,
        detail: detail.into(),
    }
}

/// `magic ‖ format ‖ generation u64 ‖ id length u32 ‖ id ‖ token count u32 ‖ tokens u16… ‖
/// crc32` (integers big-endian; the CRC covers everything before it).
fn encode(state: &LocalState) -> Result<Bytes, ClusterError> {
    let id_len =
        u32::try_from(state.node_id.len()).map_err(|_| corrupt("node id too long to store"))?;
    let count =
        u32::try_from(state.tokens.len()).map_err(|_| corrupt("too many tokens to store"))?;
    if let Some(bad) = state.tokens.iter().find(|&&t| t >= SLOTS) {
        return Err(corrupt(format!("token {bad} is outside the ring")));
    }
    let mut out = BytesMut::with_capacity(
        HEADER_LEN + state.node_id.len() + 4 + 2 * state.tokens.len() + CRC_LEN,
    );
    out.put_slice(MAGIC);
    out.put_u8(FORMAT);
    out.put_u64(state.generation);
    out.put_u32(id_len);
    out.put_slice(state.node_id.as_bytes());
    out.put_u32(count);
    for &t in &state.tokens {
        out.put_u16(t);
    }
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    Ok(out.freeze())
}

/// Inverts [`encode`], checking every length against the bytes present before reading.
fn decode(bytes: &[u8]) -> Result<LocalState, ClusterError> {
    if bytes.len() < HEADER_LEN + 4 + CRC_LEN {
        return Err(corrupt(format!("{} bytes is too short", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
    let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let got = crc32fast::hash(body);
    if got != expected {
        return Err(corrupt(format!(
            "checksum mismatch (stored {expected:#010x}, computed {got:#010x})"
        )));
    }
    let mut r = Reader { rest: body };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(corrupt("not a local state record"));
    }
    let format = r.take(1)?[0];
    if format != FORMAT {
        return Err(corrupt(format!("unknown layout version {format}")));
    }
    let generation = r.u64()?;
    let id_len = r.len_u32()?;
    let node_id = std::str::from_utf8(r.take(id_len)?)
        .map_err(|_| corrupt("node id is not UTF-8"))?
        .to_string();
    let count = r.len_u32()?;
    let raw = r.take(
        count
            .checked_mul(2)
            .ok_or_else(|| corrupt("token count overflows"))?,
    )?;
    let tokens: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if let Some(bad) = tokens.iter().find(|&&t| t >= SLOTS) {
        return Err(corrupt(format!("token {bad} is outside the ring")));
    }
    if !r.rest.is_empty() {
        return Err(corrupt(format!("{} trailing bytes", r.rest.len())));
    }
    Ok(LocalState {
        node_id,
        tokens,
        generation,
    })
}

/// A cursor over a record's bytes that fails, never panics, when they run out.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ClusterError> {
        if n > self.rest.len() {
            return Err(corrupt(format!(
                "a field of {n} bytes runs past the {} left",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, ClusterError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn len_u32(&mut self) -> Result<usize, ClusterError> {
        let b = self.take(4)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        usize::try_from(n).map_err(|_| corrupt("length does not fit in memory"))
    }
}
