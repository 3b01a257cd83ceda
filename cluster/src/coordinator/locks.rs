//! Striped key locks: conditional writes check and apply atomically per key on their leader.
//!
//! Owns [`KeyLocks`]. A write takes the stripes of its keys (in stripe order, so two writers
//! never deadlock) around its read-check-write. The check reads replicas over the network, so
//! these are async mutexes held across those `.await`s; they are the only locks that may be.
//! Must never be taken by replica-side code: replicas resolve by version, not by locking.

mod stripe;

use std::future::Future;

use xxhash_rust::xxh3::xxh3_64;

use self::stripe::{Stripe, StripeGuard};

/// Number of stripes: enough that unrelated keys rarely share one. At 1024 a 10-key `MSET`
/// waited on a stripe held for another key in about 30% of its lock takes.
pub const STRIPES: usize = 16384;

/// A fixed array of async mutexes, one per hash stripe of the key space.
pub struct KeyLocks {
    stripes: Box<[Stripe]>,
}

/// The stripes held for one write; released on drop.
pub struct KeyGuards<'a> {
    _guards: Guards<'a>,
}

/// The stripes one write takes: sorted, each once. A lone key's needs no `Vec` (every `SET`).
enum Stripes {
    None,
    One(usize),
    Many(Vec<usize>),
}

impl Stripes {
    fn of<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Self {
        let mut keys = keys.into_iter();
        let Some(first) = keys.next() else {
            return Stripes::None;
        };
        let Some(second) = keys.next() else {
            return Stripes::One(KeyLocks::stripe(first));
        };
        let mut stripes: Vec<usize> = Vec::with_capacity(2 + keys.size_hint().0);
        stripes.extend(
            [first, second]
                .into_iter()
                .chain(keys)
                .map(KeyLocks::stripe),
        );
        stripes.sort_unstable();
        stripes.dedup();
        Stripes::Many(stripes)
    }
}

/// The guards of a [`Stripes`].
enum Guards<'a> {
    None,
    One { _guard: StripeGuard<'a> },
    Many { _guards: Vec<StripeGuard<'a>> },
}

impl KeyGuards<'_> {
    #[cfg(test)]
    fn len(&self) -> usize {
        match &self._guards {
            Guards::None => 0,
            Guards::One { .. } => 1,
            Guards::Many { _guards } => _guards.len(),
        }
    }
}

impl KeyLocks {
    /// [`STRIPES`] unlocked stripes.
    pub fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }

    fn stripe(key: &[u8]) -> usize {
        // In-memory only, so any good hash would do; xxh3 is already a dependency.
        (xxh3_64(key) % STRIPES as u64) as usize
    }

    /// Locks the stripes of every key, each once, in stripe order.
    ///
    /// The stripes are computed before the returned future is first polled, so it holds no
    /// borrow of `keys` across its waits.
    pub fn lock<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> impl Future<Output = KeyGuards<'_>> + Send + '_ {
        let stripes = Stripes::of(keys);
        async move {
            let guards = match stripes {
                Stripes::None => Guards::None,
                Stripes::One(i) => Guards::One {
                    _guard: self.take(i).await,
                },
                Stripes::Many(stripes) => {
                    let mut guards = Vec::with_capacity(stripes.len());
                    for i in stripes {
                        guards.push(self.take(i).await);
                    }
                    Guards::Many { _guards: guards }
                }
            };
            KeyGuards { _guards: guards }
        }
    }

    /// Stripe `i`, without queueing when it is free. `try_lock` fails while others wait (a
    /// release hands the stripe to the first waiter), so it never jumps the queue.
    async fn take(&self, i: usize) -> StripeGuard<'_> {
        let stripe = &self.stripes[i];
        match stripe.try_lock() {
            Some(guard) => guard,
            None => stripe.lock().await,
        }
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
        assert!(guards.len() <= 2);
        drop(guards);
        let _again = locks.lock([&b"a"[..]]).await;
    }

    #[tokio::test]
    async fn a_held_stripe_makes_the_next_writer_wait() {
        let locks = Arc::new(KeyLocks::new());
        let held = locks.lock([&b"k"[..]]).await;
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _g = locks.lock([&b"j"[..], b"k"]).await;
            })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());
        drop(held);
        waiter
            .await
            .expect("the waiter gets the stripe once it is free");
        assert_eq!(locks.lock(Vec::<&[u8]>::new()).await.len(), 0);
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
