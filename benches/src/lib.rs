//! Shared pieces of ringkv's benchmark binaries.
