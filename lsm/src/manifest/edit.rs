//! The manifest's vocabulary: the edits it logs and the state they build.
//!
//! Owns [`VersionEdit`] with its encoding, and [`ManifestState`] with the rules for applying
//! an edit (level order, no duplicate tables, counters that never go back). Must never do
//! I/O: the manifest log decides what is durable, this module only what is valid.
//!
//! ```text
//! payload    = count: varint, edit * count
//! edit       = 1 level: varint, TableMeta        (AddTable)
//!            | 2 level: varint, id: varint       (RemoveTable)
//!            | 3 next_file_id: varint            (NextFileId)
//!            | 4 log_number: varint              (LogNumber)
//!            | 5 last_seqno: varint              (LastSeqno)
//! ```

use crate::coding::{put_varint, Decoder};
use crate::sstable::meta::TableMeta;

const TAG_ADD_TABLE: u8 = 1;
const TAG_REMOVE_TABLE: u8 = 2;
const TAG_NEXT_FILE_ID: u8 = 3;
const TAG_LOG_NUMBER: u8 = 4;
const TAG_LAST_SEQNO: u8 = 5;
/// The fewest bytes one edit takes (a tag and a one-byte varint), to bound the edit count
/// before allocating.
const MIN_EDIT_BYTES: usize = 2;

/// One change to the set of tables or to the engine's persistent counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VersionEdit {
    /// A table joins `level` (L0: as the newest table).
    AddTable {
        /// Level the table joins.
        level: usize,
        /// The table.
        meta: TableMeta,
    },
    /// Table `id` leaves `level`.
    RemoveTable {
        /// Level the table leaves.
        level: usize,
        /// The table's id.
        id: u64,
    },
    /// File ids below this are taken (tables and WAL segments share the id space).
    NextFileId(u64),
    /// WAL segments below this id are flushed to tables and not needed for recovery.
    LogNumber(u64),
    /// Every sequence number up to this one has been assigned.
    LastSeqno(u64),
}

impl VersionEdit {
    /// Appends the encoding of one edit.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            VersionEdit::AddTable { level, meta } => {
                out.push(TAG_ADD_TABLE);
                put_varint(out, *level as u64);
                meta.encode(out);
            }
            VersionEdit::RemoveTable { level, id } => {
                out.push(TAG_REMOVE_TABLE);
                put_varint(out, *level as u64);
                put_varint(out, *id);
            }
            VersionEdit::NextFileId(n) => {
                out.push(TAG_NEXT_FILE_ID);
                put_varint(out, *n);
            }
            VersionEdit::LogNumber(n) => {
                out.push(TAG_LOG_NUMBER);
                put_varint(out, *n);
            }
            VersionEdit::LastSeqno(n) => {
                out.push(TAG_LAST_SEQNO);
                put_varint(out, *n);
            }
        }
    }

    /// Decodes one edit.
    fn decode(d: &mut Decoder<'_>) -> Option<VersionEdit> {
        Some(match d.u8()? {
            TAG_ADD_TABLE => VersionEdit::AddTable {
                level: usize::try_from(d.varint()?).ok()?,
                meta: TableMeta::decode(d)?,
            },
            TAG_REMOVE_TABLE => VersionEdit::RemoveTable {
                level: usize::try_from(d.varint()?).ok()?,
                id: d.varint()?,
            },
            TAG_NEXT_FILE_ID => VersionEdit::NextFileId(d.varint()?),
            TAG_LOG_NUMBER => VersionEdit::LogNumber(d.varint()?),
            TAG_LAST_SEQNO => VersionEdit::LastSeqno(d.varint()?),
            _ => return None,
        })
    }
}

/// Appends the encoding of a group of edits: the payload of one manifest frame.
pub(crate) fn encode_edits(edits: &[VersionEdit], out: &mut Vec<u8>) {
    put_varint(out, edits.len() as u64);
    for edit in edits {
        edit.encode(out);
    }
}

/// Decodes [`encode_edits`]'s output; `None` if it is malformed or has trailing bytes.
pub(crate) fn decode_edits(payload: &[u8]) -> Option<Vec<VersionEdit>> {
    let mut d = Decoder::new(payload);
    let count = d.varint_len(d.remaining() / MIN_EDIT_BYTES)?;
    let mut edits = Vec::with_capacity(count);
    for _ in 0..count {
        edits.push(VersionEdit::decode(&mut d)?);
    }
    d.is_empty().then_some(edits)
}

/// What the manifest records: the tables of each level and the engine's persistent counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManifestState {
    /// Tables per level. L0 is newest first (tables there overlap, and the newest wins);
    /// levels from 1 on are sorted by `min_key` (their tables do not overlap).
    pub levels: Vec<Vec<TableMeta>>,
    /// The next unused file id.
    pub next_file_id: u64,
    /// WAL segments below this id are not needed for recovery.
    pub log_number: u64,
    /// The highest sequence number recorded as assigned.
    pub last_seqno: u64,
}

impl ManifestState {
    /// The state of a new, empty engine.
    pub(crate) fn new(num_levels: usize) -> Self {
        Self {
            levels: vec![Vec::new(); num_levels],
            next_file_id: 1,
            log_number: 0,
            last_seqno: 0,
        }
    }

    /// Applies one edit, or says why it is invalid (leaving the state unchanged).
    ///
    /// Counters only move forward, so replaying an old edit after a newer one is harmless.
    pub(crate) fn apply(&mut self, edit: &VersionEdit) -> Result<(), String> {
        match edit {
            VersionEdit::AddTable { level, meta } => {
                let n = self.levels.len();
                let Some(tables) = self.levels.get(*level) else {
                    return Err(format!(
                        "table {} is added to level {level}, but there are only {n} levels",
                        meta.id
                    ));
                };
                if let Some(l) = self.level_of(meta.id) {
                    return Err(format!(
                        "table {} is added to level {level}, but level {l} already holds it",
                        meta.id
                    ));
                }
                let at = if *level == 0 {
                    0
                } else {
                    tables.partition_point(|t| (&t.min_key, t.id) < (&meta.min_key, meta.id))
                };
                self.levels[*level].insert(at, meta.clone());
            }
            VersionEdit::RemoveTable { level, id } => {
                let found = self
                    .levels
                    .get(*level)
                    .and_then(|tables| tables.iter().position(|t| t.id == *id));
                let Some(at) = found else {
                    return Err(format!(
                        "table {id} is removed from level {level}, which does not hold it"
                    ));
                };
                self.levels[*level].remove(at);
            }
            VersionEdit::NextFileId(n) => self.next_file_id = self.next_file_id.max(*n),
            VersionEdit::LogNumber(n) => self.log_number = self.log_number.max(*n),
            VersionEdit::LastSeqno(n) => self.last_seqno = self.last_seqno.max(*n),
        }
        Ok(())
    }

    /// The level holding table `id`, if any.
    fn level_of(&self, id: u64) -> Option<usize> {
        self.levels
            .iter()
            .position(|tables| tables.iter().any(|t| t.id == id))
    }

    /// Edits that rebuild this state when applied to [`ManifestState::new`]: the counters,
    /// then every table, L0 oldest first so that re-adding restores newest-first order.
    pub(crate) fn snapshot_edits(&self) -> Vec<VersionEdit> {
        let mut edits = vec![
            VersionEdit::NextFileId(self.next_file_id),
            VersionEdit::LogNumber(self.log_number),
            VersionEdit::LastSeqno(self.last_seqno),
        ];
        for (level, tables) in self.levels.iter().enumerate() {
            let add = |meta: &TableMeta| VersionEdit::AddTable {
                level,
                meta: meta.clone(),
            };
            if level == 0 {
                edits.extend(tables.iter().rev().map(add));
            } else {
                edits.extend(tables.iter().map(add));
            }
        }
        edits
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::Version;

    fn table(id: u64, min: &str, max: &str) -> TableMeta {
        TableMeta {
            id,
            file_bytes: 1000 + id,
            min_key: Bytes::copy_from_slice(min.as_bytes()),
            max_key: Bytes::copy_from_slice(max.as_bytes()),
            min_version: Version::new(id, 0),
            max_version: Version::new(id + 10, 1),
            max_seqno: id * 3,
            max_expire_at_ms: 0,
            max_tombstone_ms: 0,
            records: id,
            tombstones: 0,
            raw_bytes: id * 10,
        }
    }

    fn ids(tables: &[TableMeta]) -> Vec<u64> {
        tables.iter().map(|t| t.id).collect()
    }

    #[test]
    fn edits_roundtrip_and_bad_payloads_are_refused() {
        let edits = vec![
            VersionEdit::AddTable {
                level: 3,
                meta: table(7, "a", "z"),
            },
            VersionEdit::RemoveTable { level: 0, id: 9 },
            VersionEdit::NextFileId(u64::MAX),
            VersionEdit::LogNumber(12),
            VersionEdit::LastSeqno(0),
        ];
        let mut out = Vec::new();
        encode_edits(&edits, &mut out);
        assert_eq!(decode_edits(&out), Some(edits));
        for cut in 0..out.len() {
            assert_eq!(decode_edits(&out[..cut]), None, "cut at {cut}");
        }
        out.push(0);
        assert_eq!(decode_edits(&out), None);
        assert_eq!(decode_edits(&[1, 99, 0]), None, "unknown tag");
        assert_eq!(decode_edits(&[0]), Some(Vec::new()));
    }

    #[test]
    fn levels_keep_their_order_and_invalid_edits_change_nothing() {
        let mut s = ManifestState::new(3);
        for (level, t) in [
            (0, table(1, "m", "z")),
            (0, table(2, "a", "c")),
            (1, table(3, "k", "l")),
            (1, table(4, "a", "b")),
            (1, table(5, "x", "y")),
            (0, table(6, "b", "q")),
        ] {
            s.apply(&VersionEdit::AddTable { level, meta: t })
                .expect("apply");
        }
        assert_eq!(ids(&s.levels[0]), vec![6, 2, 1], "L0 newest first");
        assert_eq!(ids(&s.levels[1]), vec![4, 3, 5], "L1 by min key");

        let before = s.clone();
        assert!(s
            .apply(&VersionEdit::AddTable {
                level: 2,
                meta: table(3, "k", "l")
            })
            .is_err());
        assert!(s
            .apply(&VersionEdit::AddTable {
                level: 3,
                meta: table(8, "k", "l")
            })
            .is_err());
        assert!(s
            .apply(&VersionEdit::RemoveTable { level: 0, id: 3 })
            .is_err());
        assert!(s
            .apply(&VersionEdit::RemoveTable { level: 9, id: 3 })
            .is_err());
        assert_eq!(s, before);

        s.apply(&VersionEdit::RemoveTable { level: 0, id: 2 })
            .expect("remove");
        assert_eq!(ids(&s.levels[0]), vec![6, 1]);
        s.apply(&VersionEdit::NextFileId(10)).expect("apply");
        s.apply(&VersionEdit::NextFileId(4)).expect("apply");
        assert_eq!(s.next_file_id, 10, "counters never go back");

        let mut rebuilt = ManifestState::new(3);
        for e in s.snapshot_edits() {
            rebuilt.apply(&e).expect("apply");
        }
        assert_eq!(rebuilt, s);
    }
}
