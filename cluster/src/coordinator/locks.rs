//! Striped key locks: conditional writes check and apply atomically per key on their leader.
//!
//! Owns [`KeyLocks`]. A write takes the stripes of its keys (in stripe order, so two writers
//! never deadlock) around its read-check-write. The check reads replicas over the network, so
//! these are async mutexes held across those `.await`s; they are the only locks that may be.
//! Must never be taken by replica-side code: replicas resolve by version, not by locking.

use tokio::sync::{Mutex, MutexGuard};
use xxhash_rust::xxh3::xxh3_64;

/// Number of stripes: enough that unrelated keys rarely share one.
pub const STRIPES: usize = 1024;

/// A fixed array of async mutexes, one per hash stripe of the key space.
pub struct KeyLocks {
    stripes: Box<[Mutex<()>]>,
}

/// The stripes held for one write; released on drop.
pub struct KeyGuards<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl KeyLocks {
    /// [`STRIPES`] unlocked stripes.
    pub fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(key: &[u8]) -> usize {
        // In-memory only, so any good hash would do; xxh3 is already a dependency.
        (xxh3_64(key) % STRIPES as u64) as usize
    }

    /// Locks the stripes of every key, each once, in stripe order.
    pub async fn lock<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> KeyGuards<'_> {
        let mut stripes: Vec<usize> = keys.into_iter().map(Self::stripe).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].lock().await);
        }
        KeyGuards { _guards: guards }
    }
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn repeated_and_colliding_keys_lock_once() {
        let locks = KeyLocks::new();
        // Locking the same key twice in one call must not self-deadlock.
        let guards = locks.lock([&b"a"[..], b"a", b"b"]).await;
        assert!(guards._guards.len() <= 2);
        drop(guards);
        let _again = locks.lock([&b"a"[..]]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_in_opposite_key_order_do_not_deadlock() {
        let locks = Arc::new(KeyLocks::new());
        let tasks: Vec<_> = [[&b"x"[..], b"y"], [&b"y"[..], b"x"]]
            .into_iter()
            .map(|keys| {
                let locks = Arc::clone(&locks);
                tokio::spawn(async move {
                    for _ in 0..10_000 {
                        let _g = locks.lock(keys).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("no deadlock, no panic");
        }
    }
}
