//! K-way merge of sorted sources into one sorted stream.
//!
//! Owns [`MergeIter`]. Yields every entry of every child (duplicates included) in internal-key
//! order; ties between children go to the child listed first. Must never drop or resolve
//! entries: deciding what is visible is [`super::user`]'s and compaction's job.

use std::cmp::Ordering;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::record::{compare_internal, Entry, Version};

/// Merges children sorted by internal key. Children earlier in the list win ties.
pub(crate) struct MergeIter {
    children: Vec<Box<dyn EntryIter>>,
    /// Index of the child holding the smallest current entry, if any.
    current: Option<usize>,
}

impl MergeIter {
    /// Merges `children`; each must already be positioned at its first entry.
    pub(crate) fn new(children: Vec<Box<dyn EntryIter>>) -> Self {
        let mut merge = Self {
            children,
            current: None,
        };
        merge.pick();
        merge
    }

    /// Linear pick of the smallest child. Sources are few (memtables + L0 + one per level), so
    /// a scan beats a heap's bookkeeping here.
    fn pick(&mut self) {
        let mut best: Option<(usize, &[u8], Version)> = None;
        for (i, child) in self.children.iter().enumerate() {
            if let Some((key, ver, _)) = child.current() {
                let better = match best {
                    None => true,
                    Some((_, bkey, bver)) => {
                        compare_internal(key, ver, bkey, bver) == Ordering::Less
                    }
                };
                if better {
                    best = Some((i, key, ver));
                }
            }
        }
        self.current = best.map(|(i, _, _)| i);
    }
}

impl EntryIter for MergeIter {
    fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.current.and_then(|i| self.children[i].current())
    }

    fn advance(&mut self) -> Result<()> {
        if let Some(i) = self.current {
            if let Err(e) = self.children[i].advance() {
                self.current = None;
                self.children.clear();
                return Err(e);
            }
            self.pick();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::iter::VecIter;

    fn entry(seqno: u64) -> Entry {
        Entry {
            seqno,
            expire_at_ms: 0,
            value: Some(Bytes::from(format!("v{seqno}"))),
        }
    }

    fn src(items: &[(&str, u64, u64)]) -> Box<dyn EntryIter> {
        Box::new(VecIter::new(
            items
                .iter()
                .map(|(k, v, s)| {
                    (
                        Bytes::copy_from_slice(k.as_bytes()),
                        Version::new(*v, 0),
                        entry(*s),
                    )
                })
                .collect(),
        ))
    }

    #[test]
    fn merges_in_internal_key_order() {
        let mut m = MergeIter::new(vec![
            src(&[("a", 1, 1), ("c", 5, 2)]),
            src(&[("a", 3, 3), ("b", 1, 4), ("c", 2, 5)]),
        ]);
        let mut seen = Vec::new();
        while let Some((k, v, e)) = m.current() {
            seen.push((String::from_utf8_lossy(k).to_string(), v.hlc, e.seqno));
            m.advance().expect("vec sources do not fail");
        }
        let want = vec![
            ("a".to_string(), 3, 3),
            ("a".to_string(), 1, 1),
            ("b".to_string(), 1, 4),
            ("c".to_string(), 5, 2),
            ("c".to_string(), 2, 5),
        ];
        assert_eq!(seen, want);
    }
}
