//! How much of a peer's work one connection takes on at once.
//!
//! Owns [`InProgress`]: the requests a connection's reader is handling (their count and
//! payload bytes) and the refusals it still has to send. A request past either bound of
//! [`TcpConfig`](super::TcpConfig) is answered at once with an `Overloaded` failure instead of
//! being handled (Cassandra's `native_transport_max_concurrent_requests` and its
//! `OverloadedException`), so a peer that sends faster than this node can apply (or a handler
//! stuck on the disk) cannot grow this node's memory without bound; the caller sees the
//! refusal as that replica's failure. Refusals wait for room in the outbox like any response;
//! past [`MAX_REFUSALS_IN_PROGRESS`] further requests are dropped unanswered (their callers
//! time out). The reader never stops reading: responses to this node's own calls come on the
//! same connection, and two nodes that stopped reading each other's requests would wait on
//! each other (review reproduced it). Never decides anything about a request but whether to
//! take it.

/// Refusals queued but not yet in the outbox past which requests are dropped unanswered.
/// *Why a bound at all:* a refusal waits for outbox room, and a peer that floods requests
/// without reading the answers would otherwise pile up refusals instead of requests.
pub(super) const MAX_REFUSALS_IN_PROGRESS: usize = 1024;

/// What one finished entry of a reader's pending handlers was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// A request that was handled, with its payload's bytes.
    Handled(usize),
    /// A request that was refused for being over a bound.
    Refused,
    /// A request dropped unanswered: over a bound with too many refusals waiting already.
    /// Never finished (nothing was started for it).
    Dropped,
}

/// The work in progress on one connection.
#[derive(Debug, Default)]
pub(super) struct InProgress {
    requests: usize,
    bytes: usize,
    refusals: usize,
}

impl InProgress {
    /// Takes a request of `bytes` payload bytes, or refuses it when it would pass
    /// `max_requests` or `max_bytes`. With nothing in progress a request is always taken, so a
    /// large request that fits the frame bound is never refused forever.
    pub(super) fn admit(
        &mut self,
        bytes: usize,
        max_requests: usize,
        max_bytes: usize,
    ) -> Admission {
        let idle = self.requests == 0;
        if idle || (self.requests < max_requests && self.bytes.saturating_add(bytes) <= max_bytes) {
            self.requests += 1;
            self.bytes += bytes;
            Admission::Handled(bytes)
        } else if self.refusals < MAX_REFUSALS_IN_PROGRESS {
            self.refusals += 1;
            Admission::Refused
        } else {
            Admission::Dropped
        }
    }

    /// Forgets a finished entry.
    pub(super) fn finish(&mut self, done: Admission) {
        match done {
            Admission::Handled(bytes) => {
                debug_assert!(self.requests > 0 && self.bytes >= bytes, "finished twice");
                self.requests = self.requests.saturating_sub(1);
                self.bytes = self.bytes.saturating_sub(bytes);
            }
            Admission::Refused => {
                debug_assert!(self.refusals > 0, "finished twice");
                self.refusals = self.refusals.saturating_sub(1);
            }
            Admission::Dropped => {}
        }
    }

    /// Requests being handled now.
    pub(super) fn requests(&self) -> usize {
        self.requests
    }

    /// Payload bytes of the requests being handled now.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_requests_up_to_the_count_then_refuses_until_one_finishes() {
        let mut work = InProgress::default();
        assert_eq!(work.admit(10, 2, 1000), Admission::Handled(10));
        assert_eq!(work.admit(20, 2, 1000), Admission::Handled(20));
        assert_eq!(work.admit(5, 2, 1000), Admission::Refused);
        assert_eq!((work.requests(), work.bytes()), (2, 30));
        work.finish(Admission::Handled(10));
        assert_eq!(work.admit(5, 2, 1000), Admission::Handled(5));
        assert_eq!((work.requests(), work.bytes()), (2, 25));
    }

    #[test]
    fn takes_requests_up_to_the_bytes_but_always_one_when_idle() {
        let mut work = InProgress::default();
        assert_eq!(
            work.admit(500, 10, 100),
            Admission::Handled(500),
            "idle: taken"
        );
        assert_eq!(work.admit(1, 10, 100), Admission::Refused, "over the bytes");
        work.finish(Admission::Handled(500));
        assert_eq!(work.admit(60, 10, 100), Admission::Handled(60));
        assert_eq!(work.admit(40, 10, 100), Admission::Handled(40));
        assert_eq!(work.admit(1, 10, 100), Admission::Refused);
    }

    #[test]
    fn drops_requests_while_too_many_refusals_wait() {
        let mut work = InProgress::default();
        assert_eq!(work.admit(1, 1, 100), Admission::Handled(1));
        for _ in 0..MAX_REFUSALS_IN_PROGRESS {
            assert_eq!(work.admit(1, 1, 100), Admission::Refused);
        }
        assert_eq!(work.admit(1, 1, 100), Admission::Dropped);
        work.finish(Admission::Refused);
        assert_eq!(work.admit(1, 1, 100), Admission::Refused);
        work.finish(Admission::Handled(1));
        assert_eq!(work.admit(1, 1, 100), Admission::Handled(1));
    }
}
