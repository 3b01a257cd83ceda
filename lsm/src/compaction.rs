//! Background compaction: policy (what to do), TTL/tombstone verdicts and the merge stream.
