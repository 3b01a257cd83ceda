//! The engine: open/recover, write path, read path, flush and compaction workers.
