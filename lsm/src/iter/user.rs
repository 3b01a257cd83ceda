//! The user-facing range iterator: one winning record per key, as of a snapshot.
//!
//! Owns [`DbIter`]. From a merged stream of every version of every key it takes, for each user
//! key, the highest version visible at the snapshot's sequence number, and hides tombstones and
//! expired values unless asked for them. Must never look past the range's end bound.

use std::ops::Bound;

use bytes::Bytes;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::record::Record;

/// What a range read returns for each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Only live values: tombstones and expired values are skipped.
    Live,
    /// The winning record of every key, tombstones and expired values included (for
    /// replication: the coordinator resolves versions, so it must see deletes).
    AllRecords,
}

/// Iterator over `(key, record)` pairs in key order, as of the snapshot it was created at.
///
/// It pins the memtables and tables it reads, so writes and compactions do not disturb it.
pub struct DbIter {
    inner: Box<dyn EntryIter>,
    snapshot_seqno: u64,
    now_ms: u64,
    end: Bound<Bytes>,
    mode: ReadMode,
    done: bool,
}

impl DbIter {
    /// Wraps `inner`, already positioned at the range's start.
    pub(crate) fn new(
        inner: Box<dyn EntryIter>,
        snapshot_seqno: u64,
        now_ms: u64,
        end: Bound<Bytes>,
        mode: ReadMode,
    ) -> Self {
        Self {
            inner,
            snapshot_seqno,
            now_ms,
            end,
            mode,
            done: false,
        }
    }

    fn past_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Unbounded => false,
            Bound::Included(end) => key > end.as_ref(),
            Bound::Excluded(end) => key >= end.as_ref(),
        }
    }

    /// The next `(key, record)`, or `None` at the end of the range.
    fn next_record(&mut self) -> Result<Option<(Bytes, Record)>> {
        while !self.done {
            let Some((key, version, entry)) = self.inner.current() else {
                self.done = true;
                break;
            };
            if self.past_end(key) {
                self.done = true;
                break;
            }
            if entry.seqno > self.snapshot_seqno {
                self.inner.advance()?;
                continue;
            }
            // This is the winner for `key`: versions sort newest first.
            let user_key = Bytes::copy_from_slice(key);
            let record = entry.to_record(version);
            self.skip_rest_of(&user_key)?;
            match self.mode {
                ReadMode::AllRecords => return Ok(Some((user_key, record))),
                ReadMode::Live if record.is_live(self.now_ms) => {
                    return Ok(Some((user_key, record)))
                }
                ReadMode::Live => continue,
            }
        }
        Ok(None)
    }

    fn skip_rest_of(&mut self, user_key: &[u8]) -> Result<()> {
        while let Some((key, _, _)) = self.inner.current() {
            if key != user_key {
                break;
            }
            self.inner.advance()?;
        }
        Ok(())
    }
}

impl Iterator for DbIter {
    type Item = Result<(Bytes, Record)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iter::VecIter;
    use crate::record::{Entry, Version};

    fn item(
        key: &str,
        hlc: u64,
        seqno: u64,
        value: Option<&str>,
        expire: u64,
    ) -> (Bytes, Version, Entry) {
        (
            Bytes::copy_from_slice(key.as_bytes()),
            Version::new(hlc, 0),
            Entry {
                seqno,
                expire_at_ms: expire,
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            },
        )
    }

    fn collect(iter: DbIter) -> Vec<(String, Option<String>)> {
        iter.map(|r| {
            let (k, rec) = r.expect("vec sources do not fail");
            (
                String::from_utf8_lossy(&k).to_string(),
                rec.value.map(|v| String::from_utf8_lossy(&v).to_string()),
            )
        })
        .collect()
    }

    fn source() -> Box<dyn EntryIter> {
        Box::new(VecIter::new(vec![
            item("a", 9, 5, None, 0),
            item("a", 2, 1, Some("a-old"), 0),
            item("b", 7, 9, Some("b-new"), 0),
            item("b", 3, 2, Some("b-old"), 0),
            item("c", 4, 3, Some("c-expired"), 50),
            item("d", 1, 4, Some("d"), 0),
        ]))
    }

    #[test]
    fn live_mode_hides_tombstones_and_expired() {
        let it = DbIter::new(source(), u64::MAX, 100, Bound::Unbounded, ReadMode::Live);
        assert_eq!(
            collect(it),
            vec![
                ("b".into(), Some("b-new".into())),
                ("d".into(), Some("d".into()))
            ]
        );
    }

    #[test]
    fn snapshot_hides_later_arrivals() {
        let it = DbIter::new(
            source(),
            4,
            10,
            Bound::Excluded(Bytes::from("d")),
            ReadMode::AllRecords,
        );
        assert_eq!(
            collect(it),
            vec![
                ("a".into(), Some("a-old".into())),
                ("b".into(), Some("b-old".into())),
                ("c".into(), Some("c-expired".into())),
            ]
        );
    }
}
