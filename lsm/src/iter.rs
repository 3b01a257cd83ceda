//! Iteration over sorted internal entries, the one trait every source implements.
//!
//! Owns [`EntryIter`] (memtables, SSTables, levels and merges all implement it), the k-way
//! [`merge::MergeIter`], and the user-facing [`user::DbIter`] that turns versions into values.
//! Must never decide which version wins by anything but the internal-key order.

pub(crate) mod concat;
pub(crate) mod merge;
pub(crate) mod user;

use crate::error::Result;
use crate::record::{Entry, Version};

/// A cursor over entries sorted by internal key (user key ascending, version descending).
///
/// Implementations are positioned at their first entry (or their seek target) when built.
pub(crate) trait EntryIter: Send {
    /// The entry under the cursor: user key, version and payload; `None` once exhausted.
    fn current(&self) -> Option<(&[u8], Version, &Entry)>;

    /// Moves to the next entry.
    ///
    /// # Errors
    /// Propagates I/O and corruption errors from the source; the iterator is then exhausted.
    fn advance(&mut self) -> Result<()>;
}

/// An [`EntryIter`] over an owned, already sorted vector, for tests.
#[cfg(test)]
pub(crate) struct VecIter {
    items: Vec<(bytes::Bytes, Version, Entry)>,
    pos: usize,
}

#[cfg(test)]
impl VecIter {
    /// Iterates `items`, which must be sorted by internal key.
    pub(crate) fn new(items: Vec<(bytes::Bytes, Version, Entry)>) -> Self {
        Self { items, pos: 0 }
    }
}

#[cfg(test)]
impl EntryIter for VecIter {
    fn current(&self) -> Option<(&[u8], Version, &Entry)> {
        self.items
            .get(self.pos)
            .map(|(k, v, e)| (k.as_ref(), *v, e))
    }

    fn advance(&mut self) -> Result<()> {
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        Ok(())
    }
}
