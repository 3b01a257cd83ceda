//! The faults in force on a simulated network, and the pure decision of what happens to one
//! call under them. Must never sleep or deliver anything: the network acts on the [`Plan`].

use std::collections::HashSet;
use std::time::Duration;

use crate::coordinator::random::SeededRng;

/// Rates, delays and cut links.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// Probability that a request (and, independently, its response) is lost.
    pub(super) drop_rate: f64,
    /// Probability that a delivered request is handled twice.
    pub(super) duplicate_rate: f64,
    /// Bounds of each message's delay.
    pub(super) delay: (Duration, Duration),
    /// Cut links, each stored as `(lower, higher)`.
    pub(super) cuts: HashSet<(u32, u32)>,
    /// Nodes cut from everyone.
    pub(super) isolated: HashSet<u32>,
}

/// The fate of one call, drawn when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) request_lost: bool,
    pub(super) duplicated: bool,
    pub(super) request_delay: Duration,
    pub(super) response_lost: bool,
    pub(super) response_delay: Duration,
}

impl Faults {
    pub(super) fn cut(&mut self, a: u32, b: u32) {
        self.cuts.insert((a.min(b), a.max(b)));
    }

    pub(super) fn heal(&mut self) {
        self.cuts.clear();
        self.isolated.clear();
    }

    /// Whether messages between `a` and `b` are lost. A node always reaches itself.
    pub(super) fn is_cut(&self, a: u32, b: u32) -> bool {
        a != b
            && (self.isolated.contains(&a)
                || self.isolated.contains(&b)
                || self.cuts.contains(&(a.min(b), a.max(b))))
    }

    /// Draws a call's fate. Always draws the same number of values, so one fault's setting
    /// does not shift the others' random sequence.
    pub(super) fn plan(&self, rng: &SeededRng) -> Plan {
        Plan {
            request_lost: chance(rng, self.drop_rate),
            duplicated: chance(rng, self.duplicate_rate),
            request_delay: self.draw_delay(rng),
            response_lost: chance(rng, self.drop_rate),
            response_delay: self.draw_delay(rng),
        }
    }

    fn draw_delay(&self, rng: &SeededRng) -> Duration {
        let (min, max) = self.delay;
        let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
        min + Duration::from_nanos(rng.below(span.saturating_add(1)))
    }
}

/// True with probability `rate`.
fn chance(rng: &SeededRng, rate: f64) -> bool {
    // The top 53 bits give a uniform float in [0, 1).
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    unit < rate
}
