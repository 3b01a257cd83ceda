//! Concatenation of the sorted, non-overlapping tables of one level, opened lazily.
