//! Sorted string tables: immutable sorted files of internal entries.
pub mod meta;
