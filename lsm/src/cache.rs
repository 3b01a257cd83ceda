//! Caches: the block cache (a byte budget of decoded blocks) and the table cache (a bounded set of open SSTables).
