//! The write-ahead log: segments of CRC-framed batches, group-committed fsync and recovery.
