//! Consistency levels: how many replicas a request needs, and whether that many are alive.
//!
//! Owns [`Operation`], [`required_replicas`] and [`check_available`], the one place that maps a
//! [`Level`] to a replica count, so the single-node and multi-node paths fail the same way
//! (Cassandra's `UnavailableException`: checked before any replica is asked). Must never wait
//! for or talk to replicas.

use crate::api::Level;
use crate::error::ClusterError;

/// Whether a request reads or writes (levels differ: `ANY` is for writes only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A read.
    Read,
    /// A write.
    Write,
}

impl Operation {
    /// The plural noun errors use ("reads", "writes").
    pub fn noun(self) -> &'static str {
        match self {
            Operation::Read => "reads",
            Operation::Write => "writes",
        }
    }
}

/// Replicas `level` needs to answer when each key has `replication_factor` replicas.
///
/// Datacenter-aware levels count the coordinator's datacenter, which with one datacenter is
/// every replica.
///
/// # Errors
/// [`ClusterError::UnsupportedLevel`] for `ANY` on a read, as Cassandra refuses it.
pub fn required_replicas(
    level: Level,
    operation: Operation,
    replication_factor: usize,
) -> Result<usize, ClusterError> {
    let quorum = replication_factor / 2 + 1;
    Ok(match level {
        Level::One | Level::LocalOne => 1,
        Level::Two => 2,
        Level::Three => 3,
        Level::Quorum | Level::LocalQuorum | Level::EachQuorum => quorum,
        Level::All => replication_factor,
        Level::Any if operation == Operation::Write => 1,
        Level::Any => {
            return Err(ClusterError::UnsupportedLevel {
                level,
                operation: operation.noun(),
            })
        }
    })
}

/// Checks that `alive` replicas can meet `level`; returns how many answers it needs.
///
/// # Errors
/// [`ClusterError::UnsupportedLevel`] as [`required_replicas`]; [`ClusterError::Unavailable`]
/// when fewer replicas are alive than the level needs (`TWO` with one node).
pub fn check_available(
    level: Level,
    operation: Operation,
    replication_factor: usize,
    alive: usize,
) -> Result<usize, ClusterError> {
    let required = required_replicas(level, operation, replication_factor)?;
    if required > alive {
        return Err(ClusterError::Unavailable {
            level,
            required,
            alive,
        });
    }
    Ok(required)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_meets_every_level_but_two_and_three() {
        for level in Level::ALL {
            let read = check_available(level, Operation::Read, 1, 1);
            let write = check_available(level, Operation::Write, 1, 1);
            match level {
                Level::Two | Level::Three => {
                    let need = if level == Level::Two { 2 } else { 3 };
                    for r in [read, write] {
                        assert!(matches!(
                            r,
                            Err(ClusterError::Unavailable { level: l, required, alive: 1 })
                                if l == level && required == need
                        ));
                    }
                }
                Level::Any => {
                    assert!(matches!(
                        read,
                        Err(ClusterError::UnsupportedLevel {
                            operation: "reads",
                            ..
                        })
                    ));
                    assert_eq!(write.expect("ANY write"), 1);
                }
                _ => {
                    assert_eq!(read.expect("read level"), 1);
                    assert_eq!(write.expect("write level"), 1);
                }
            }
        }
    }

    #[test]
    fn quorum_and_all_scale_with_the_replication_factor() {
        assert_eq!(
            required_replicas(Level::Quorum, Operation::Read, 3).ok(),
            Some(2)
        );
        assert_eq!(
            required_replicas(Level::Quorum, Operation::Read, 4).ok(),
            Some(3)
        );
        assert_eq!(
            required_replicas(Level::All, Operation::Write, 5).ok(),
            Some(5)
        );
        assert!(check_available(Level::All, Operation::Write, 3, 2).is_err());
        assert_eq!(
            check_available(Level::Quorum, Operation::Write, 3, 2).ok(),
            Some(2)
        );
    }

    #[test]
    fn unavailable_error_reads_as_a_sentence() {
        let err = check_available(Level::Two, Operation::Read, 1, 1).expect_err("TWO on one node");
        assert_eq!(
            err.to_string(),
            "cannot achieve consistency level TWO: 2 replica(s) required but only 1 alive"
        );
    }
}
