//! The node's system keyspace (being written; see issue 5).
