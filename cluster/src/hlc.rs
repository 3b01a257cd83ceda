//! The hybrid logical clock that versions every write.
//!
//! Owns [`Hlc`]: timestamps of `wall milliseconds << 16 | logical counter` that strictly
//! increase on each node, never go backwards when the wall clock does, and move past every
//! version the node has seen from others ([`Hlc::observe`]), so a write that follows a read of
//! another node's write always carries a higher version. A node's clock also starts above
//! everything the node knows of, because the wall clock may have stepped back while it was
//! down: the coordinator observes the highest version in its storage before serving, and the
//! node observes its peers' gossiped clocks ([`Hlc::current`]). Must never read the system
//! time itself: it wraps a [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::warn;

use crate::api::Version;
use crate::clock::Clock;

/// Bits of an HLC timestamp that hold the logical counter.
pub const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock over a [`Clock`], shared by every writer on a node.
pub struct Hlc {
    clock: Arc<dyn Clock>,
    /// The last timestamp handed out or observed; every new one is above it.
    last: AtomicU64,
    /// This node's number (see [`node_number`](crate::node_id::node_number)).
    node: u32,
}

impl Hlc {
    /// A clock for the node numbered `node`, reading wall time from `clock`.
    pub fn new(clock: Arc<dyn Clock>, node: u32) -> Self {
        Self {
            clock,
            last: AtomicU64::new(0),
            node,
        }
    }

    /// A clock for the node numbered `node` whose timestamps are all above `floor`: the
    /// highest timestamp the node used before it (re)started, as its storage holds it.
    ///
    /// No drift bound applies, unlike a peer's timestamp: stored versions are this node's own
    /// data, and its new writes to those keys must beat them whatever the wall clock says now.
    /// A floor ahead of the wall clock (the clock stepped back while the node was down) is
    /// logged, since versions then run ahead of wall time until it catches up.
    pub fn starting_after(clock: Arc<dyn Clock>, node: u32, floor: u64) -> Self {
        let wall_ms = clock.now_ms();
        let floor_ms = floor >> LOGICAL_BITS;
        if floor_ms > wall_ms {
            warn!(
                stored_ms = floor_ms,
                wall_ms,
                ahead_ms = floor_ms - wall_ms,
                "stored versions are ahead of the wall clock; the clock starts above them"
            );
        }
        let hlc = Self::new(clock, node);
        hlc.observe(floor);
        hlc
    }

    /// A fresh timestamp: the wall clock's milliseconds in the high bits when that is ahead of
    /// every earlier timestamp, otherwise the previous timestamp plus one. When the counter
    /// overflows it carries into the milliseconds, which then run slightly ahead of the wall
    /// clock until it catches up — still strictly increasing.
    pub fn now(&self) -> u64 {
        let wall = self.clock.now_ms().saturating_mul(1 << LOGICAL_BITS);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = wall.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    /// `n` fresh timestamps from one clock read: the first is returned and the others are the
    /// `n - 1` after it, all above every earlier timestamp and below every later one, as `n`
    /// calls of [`Hlc::now`] would give (a multi-key write versions its keys in order). Near
    /// the top of the range they saturate at `u64::MAX` rather than wrap to 0, as
    /// [`Hlc::now`] does. `n` 0 reserves nothing and returns what [`Hlc::now`] would.
    pub fn reserve(&self, n: u64) -> u64 {
        let wall = self.clock.now_ms().saturating_mul(1 << LOGICAL_BITS);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let first = wall.max(last.saturating_add(1));
            let end = first.saturating_add(n.saturating_sub(1));
            if n == 0 {
                return first;
            }
            match self
                .last
                .compare_exchange_weak(last, end, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return first,
                Err(current) => last = current,
            }
        }
    }

    /// A fresh [`Version`]: [`Hlc::now`] with this node's number.
    pub fn next_version(&self) -> Version {
        Version::new(self.now(), self.node)
    }

    /// Moves the clock past `remote`, a timestamp received from another node, so every later
    /// [`Hlc::now`] is above it. Callers bound how far ahead of the wall clock they accept a
    /// peer's timestamp; this only records it.
    pub fn observe(&self, remote: u64) {
        self.last.fetch_max(remote, Ordering::AcqRel);
    }

    /// The latest timestamp handed out or observed (0 before the first): every version this
    /// node issued is at or below it. It is what the node gossips, so peers (and this node
    /// after a restart) can move past it. Reading it takes no timestamp.
    pub fn current(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// This node's number, the tie-break in its versions.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The wall clock this HLC reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

impl std::fmt::Debug for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hlc")
            .field("last", &self.last.load(Ordering::Relaxed))
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn hlc_at(ms: u64) -> (Arc<ManualClock>, Hlc) {
        let clock = Arc::new(ManualClock::new(ms));
        let hlc = Hlc::new(Arc::clone(&clock) as Arc<dyn Clock>, 7);
        (clock, hlc)
    }

    #[test]
    fn timestamps_carry_wall_millis_in_the_high_bits() {
        let (_, hlc) = hlc_at(1_000);
        let t = hlc.now();
        assert_eq!(t >> LOGICAL_BITS, 1_000);
        assert_eq!(Version::new(t, 0).millis(), 1_000);
        assert_eq!(hlc.next_version().node, 7);
    }

    #[test]
    fn same_millisecond_counts_up() {
        let (_, hlc) = hlc_at(1_000);
        let a = hlc.now();
        let b = hlc.now();
        let c = hlc.now();
        assert_eq!((b - a, c - b), (1, 1));
        assert_eq!(c >> LOGICAL_BITS, 1_000);
    }

    #[test]
    fn never_goes_back_when_the_wall_clock_does() {
        let (clock, hlc) = hlc_at(5_000);
        let before = hlc.now();
        clock.set(1_000);
        let after = hlc.now();
        assert!(after > before);
        assert_eq!(after >> LOGICAL_BITS, 5_000);
        clock.set(6_000);
        assert_eq!(hlc.now() >> LOGICAL_BITS, 6_000);
    }

    #[test]
    fn counter_overflow_carries_into_the_millis() {
        let (_, hlc) = hlc_at(1);
        let mut last = hlc.now();
        for _ in 0..(1 << LOGICAL_BITS) + 10 {
            let t = hlc.now();
            assert!(t > last);
            last = t;
        }
        assert_eq!(last >> LOGICAL_BITS, 2);
    }

    #[test]
    fn reserve_hands_out_a_block_like_repeated_now() {
        let (clock, hlc) = hlc_at(1_000);
        let a = hlc.now();
        let first = hlc.reserve(5);
        assert_eq!(first, a + 1);
        assert_eq!(hlc.current(), first + 4);
        assert_eq!(hlc.now(), first + 5);
        // A later millisecond starts the block at the wall clock.
        clock.set(2_000);
        let first = hlc.reserve(3);
        assert_eq!(first, 2_000 << LOGICAL_BITS);
        assert_eq!(hlc.current(), first + 2);
        // Nothing reserved: the clock does not move.
        let t = hlc.current();
        assert_eq!(hlc.reserve(0), t + 1);
        assert_eq!(hlc.current(), t);
    }

    #[test]
    fn reserve_saturates_at_the_top_instead_of_wrapping() {
        let (_, hlc) = hlc_at(1_000);
        hlc.observe(u64::MAX - 2);
        let first = hlc.reserve(10);
        assert_eq!(first, u64::MAX - 1);
        assert_eq!(hlc.current(), u64::MAX);
        assert_eq!(hlc.reserve(4), u64::MAX);
        assert_eq!(hlc.current(), u64::MAX);
        assert_eq!(hlc.now(), u64::MAX);
    }

    #[test]
    fn observe_moves_past_a_remote_timestamp() {
        let (_, hlc) = hlc_at(1_000);
        let remote = (9_000 << LOGICAL_BITS) | 42;
        hlc.observe(remote);
        assert!(hlc.now() > remote);
        // Observing something older changes nothing.
        let t = hlc.now();
        hlc.observe(1);
        assert_eq!(hlc.now(), t + 1);
    }

    #[test]
    fn starting_after_a_floor_ahead_of_the_wall_clock_issues_above_it() {
        let clock = Arc::new(ManualClock::new(1_000));
        let floor = (50_000 << LOGICAL_BITS) | 7;
        let hlc = Hlc::starting_after(Arc::clone(&clock) as Arc<dyn Clock>, 3, floor);
        assert_eq!(hlc.now(), floor + 1);
        // A floor behind the wall clock changes nothing: the wall clock leads.
        let hlc = Hlc::starting_after(clock as Arc<dyn Clock>, 3, 5);
        assert_eq!(hlc.now() >> LOGICAL_BITS, 1_000);
    }

    #[test]
    fn current_is_the_latest_timestamp_and_takes_none() {
        let (_, hlc) = hlc_at(1_000);
        assert_eq!(hlc.current(), 0);
        let t = hlc.now();
        assert_eq!((hlc.current(), hlc.current()), (t, t));
        assert_eq!(hlc.now(), t + 1);
        hlc.observe(t + 100);
        assert_eq!(hlc.current(), t + 100);
    }

    #[test]
    fn concurrent_callers_get_distinct_increasing_timestamps() {
        let (_, hlc) = hlc_at(1_000);
        let hlc = Arc::new(hlc);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let hlc = Arc::clone(&hlc);
                std::thread::spawn(move || {
                    let mut seen = Vec::with_capacity(1_000);
                    for _ in 0..1_000 {
                        seen.push(hlc.now());
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            let seen = t.join().expect("thread panicked");
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
            all.extend(seen);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
