//! The manifest: the atomic, checksummed record of which tables form each level.
