//! Background compaction, decided in pure code: what to compact ([`policy`], [`leveled`]), what
//! happens to each record ([`ttl`]) and the filtered record stream a merge writes out
//! ([`stream`]).
//!
//! # Data flow
//!
//! The worker takes a [`policy::LevelsView`] of the current tables under the engine's lock and
//! calls [`policy::choose`] (or [`policy::choose_full`] for a manual compaction). It acts on the
//! returned [`policy::Choice`]: deleting dropped tables, re-linking a moved one, or building a
//! merged iterator over a merge's inputs and wrapping it in a [`stream::CompactionStream`],
//! whose output it writes into new tables of the output level.
//!
//! # Architecture invariant
//!
//! Nothing in this module does I/O, takes a lock or reads a clock: tables are known by their
//! [`TableMeta`](crate::sstable::meta::TableMeta), records come through an
//! [`EntryIter`](crate::iter::EntryIter), and "now" is a parameter. Acting on decisions is the
//! worker's job.

pub(crate) mod leveled;
pub(crate) mod policy;
pub(crate) mod stream;
pub(crate) mod ttl;
