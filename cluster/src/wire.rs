//! The internal protocol's byte encoding (being written; see issue 5).
