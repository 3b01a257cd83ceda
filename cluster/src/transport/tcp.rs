//! The TCP transport (being written; see issue 5).
