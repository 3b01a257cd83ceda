//! The front end's counters, for `INFO stats` and `INFO commandstats`.
//!
//! Owns [`ServerStats`] and [`CommandStats`]: relaxed atomics bumped by every connection (they
//! are figures, not synchronisation), one [`CommandStats`] per command-table row, and the
//! ops/sec sampler Redis uses (`instantaneous_ops_per_sec`: the mean of the last 16 samples
//! taken every 100 ms). It never blocks a connection: the only lock is the sampler's, taken by
//! the accept loop's timer and by `INFO`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// Samples kept for `instantaneous_ops_per_sec`, as Redis's `STATS_METRIC_SAMPLES`.
const OPS_SAMPLES: usize = 16;

/// Counters of the whole front end.
#[derive(Debug)]
pub struct ServerStats {
    /// When the server started, for `uptime_in_seconds`.
    pub started: Instant,
    /// Connections accepted (`total_connections_received`).
    pub total_connections: AtomicU64,
    /// Connections refused over `maxclients` (`rejected_connections`).
    pub rejected_connections: AtomicU64,
    /// Commands run (`total_commands_processed`), rejected ones excluded, as in Redis.
    pub commands_processed: AtomicU64,
    /// Bytes read from clients (`total_net_input_bytes`).
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients (`total_net_output_bytes`).
    pub net_output_bytes: AtomicU64,
    /// Error replies sent (`total_error_replies`).
    pub error_replies: AtomicU64,
    /// Requests naming no known command (`unexpected_error_replies` has no better home).
    pub unknown_commands: AtomicU64,
    /// One entry per command-table row, same order.
    commands: Box<[CommandStats]>,
    /// The ops/sec sampler.
    ops: Mutex<OpsSampler>,
}

/// Calls and time of one command (`cmdstat_<name>`).
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Times it ran.
    pub calls: AtomicU64,
    /// Microseconds it ran for, in total.
    pub usec: AtomicU64,
    /// Times it was refused before running (arity, authentication, limits).
    pub rejected_calls: AtomicU64,
    /// Times it ran and answered an error.
    pub failed_calls: AtomicU64,
}

#[derive(Debug)]
struct OpsSampler {
    samples: [u64; OPS_SAMPLES],
    next: usize,
    last_count: u64,
    last_at: Instant,
}

impl ServerStats {
    /// Counters for a table of `commands` rows.
    pub(crate) fn new(commands: usize) -> Self {
        let now = Instant::now();
        ServerStats {
            started: now,
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            unknown_commands: AtomicU64::new(0),
            commands: (0..commands).map(|_| CommandStats::default()).collect(),
            ops: Mutex::new(OpsSampler {
                samples: [0; OPS_SAMPLES],
                next: 0,
                last_count: 0,
                last_at: now,
            }),
        }
    }

    /// The counters of the command at table index `index`.
    pub fn command(&self, index: usize) -> Option<&CommandStats> {
        self.commands.get(index)
    }

    /// Records one run of the command at `index`.
    pub(crate) fn record_call(&self, index: usize, usec: u64, failed: bool) {
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
        if let Some(command) = self.commands.get(index) {
            command.calls.fetch_add(1, Ordering::Relaxed);
            command.usec.fetch_add(usec, Ordering::Relaxed);
            if failed {
                command.failed_calls.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records a refused call of the command at `index`.
    pub(crate) fn record_rejected(&self, index: usize) {
        if let Some(command) = self.commands.get(index) {
            command.rejected_calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Zeroes the counters `CONFIG RESETSTAT` resets, as Redis's `resetServerStats` and
    /// `resetCommandTableStats`: commands, connections, network bytes, errors. Uptime stays.
    pub(crate) fn reset(&self) {
        for counter in [
            &self.total_connections,
            &self.rejected_connections,
            &self.commands_processed,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.error_replies,
            &self.unknown_commands,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        for command in self.commands.iter() {
            for counter in [
                &command.calls,
                &command.usec,
                &command.rejected_calls,
                &command.failed_calls,
            ] {
                counter.store(0, Ordering::Relaxed);
            }
        }
        let mut ops = self.ops.lock();
        ops.samples = [0; OPS_SAMPLES];
        ops.last_count = 0;
        ops.last_at = Instant::now();
    }

    /// Takes one ops/sec sample; the accept loop calls it every 100 ms.
    pub(crate) fn sample_ops(&self) {
        let count = self.commands_processed.load(Ordering::Relaxed);
        let mut ops = self.ops.lock();
        let now = Instant::now();
        let elapsed_ms = now.duration_since(ops.last_at).as_millis().max(1);
        let per_sec = u128::from(count.saturating_sub(ops.last_count)) * 1000 / elapsed_ms;
        let slot = ops.next;
        ops.samples[slot] = u64::try_from(per_sec).unwrap_or(u64::MAX);
        ops.next = (slot + 1) % OPS_SAMPLES;
        ops.last_count = count;
        ops.last_at = now;
    }

    /// Redis's `instantaneous_ops_per_sec`: the mean of the last samples.
    pub fn ops_per_sec(&self) -> u64 {
        let ops = self.ops.lock();
        ops.samples.iter().sum::<u64>() / OPS_SAMPLES as u64
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Reads a counter.
pub(crate) fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Adds to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_failures_are_counted_per_command() {
        let stats = ServerStats::new(2);
        stats.record_call(1, 10, false);
        stats.record_call(1, 5, true);
        stats.record_rejected(0);
        let get = stats.command(1).expect("row 1");
        assert_eq!(load(&get.calls), 2);
        assert_eq!(load(&get.usec), 15);
        assert_eq!(load(&get.failed_calls), 1);
        assert_eq!(load(&stats.command(0).expect("row 0").rejected_calls), 1);
        assert_eq!(load(&stats.commands_processed), 2);
    }

    #[test]
    fn reset_zeroes_counters() {
        let stats = ServerStats::new(1);
        stats.record_call(0, 10, true);
        add(&stats.net_input_bytes, 5);
        stats.reset();
        assert_eq!(load(&stats.commands_processed), 0);
        assert_eq!(load(&stats.net_input_bytes), 0);
        assert_eq!(load(&stats.command(0).expect("row").calls), 0);
    }

    #[test]
    fn ops_per_sec_averages_samples() {
        let stats = ServerStats::new(1);
        stats.sample_ops();
        assert_eq!(stats.ops_per_sec(), 0);
        for _ in 0..1000 {
            stats.record_call(0, 1, false);
        }
        stats.sample_ops();
        assert!(stats.ops_per_sec() > 0);
    }
}
