//! A failure as it crosses the wire: [`RemoteFailure`] and its [`RemoteFailureKind`].
//!
//! Owns both directions between a [`ClusterError`] and what a peer is told of it
//! ([`RemoteFailure::from_error`], [`RemoteFailure::into_error`]). A failure a peer reports
//! (most visibly a conditional write its leader refused) must come back as the variant the
//! peer would have returned had the client asked it directly, so the client's answer does not
//! depend on which node it talked to: the kind carries every part of the variants that are
//! plain data. Errors built on things that cannot cross the wire (an engine I/O error, a
//! corrupt system record) travel as their sentence alone and come back as
//! [`ClusterError::Forwarded`], which displays that sentence unchanged. Must never name a
//! client protocol: mapping errors to replies is the front end's job.

use crate::api::Level;
use crate::error::ClusterError;

/// Why a peer could not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFailure {
    /// What kind of failure, with the parts needed to rebuild the peer's error.
    pub kind: RemoteFailureKind,
    /// The peer's own description (its error's `Display`), for the kinds known only by it
    /// and for logs.
    pub message: String,
}

/// Kinds of [`RemoteFailure`]. Each variant with fields mirrors the [`ClusterError`] (or
/// engine error) of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteFailureKind {
    /// The peer's storage failed in a way only the message describes (I/O, corruption).
    Storage,
    /// The peer's engine refused a key over its limit.
    KeyTooLarge {
        /// Length of the key.
        len: usize,
        /// The peer's configured limit.
        max: usize,
    },
    /// The peer's engine refused a value over its limit.
    ValueTooLarge {
        /// Length of the value.
        len: usize,
        /// The peer's configured limit.
        max: usize,
    },
    /// The peer is shutting down.
    ShuttingDown,
    /// [`ClusterError::Unavailable`] on the peer (a forwarded write's leader).
    Unavailable {
        /// The level asked for.
        level: Level,
        /// Replicas the level needs.
        required: usize,
        /// Replicas the peer believed alive.
        alive: usize,
    },
    /// [`ClusterError::QuorumFailed`] on the peer.
    QuorumFailed {
        /// The level asked for.
        level: Level,
        /// Replicas the level needs.
        required: usize,
        /// Replicas that answered the peer successfully.
        answered: usize,
        /// What the others said.
        errors: Vec<String>,
    },
    /// [`ClusterError::UnsupportedLevel`] on the peer.
    UnsupportedLevel {
        /// The level asked for.
        level: Level,
        /// "reads" or "writes" (the only two [`ClusterError::UnsupportedLevel`] names).
        operation: &'static str,
    },
    /// [`ClusterError::NoReplicas`] on the peer.
    NoReplicas {
        /// The slot.
        slot: u16,
    },
    /// [`ClusterError::CrossSlot`] on the peer.
    CrossSlot,
    /// [`ClusterError::KeyBusy`] on the peer.
    KeyBusy {
        /// How long the write waited for its locks.
        waited_ms: u64,
    },
    /// Anything else: the peer did not understand or refused the request (a bug), or failed
    /// in a way only the message describes.
    Refused,
    /// The peer's connection already had as much of this node's work in progress as it takes
    /// (`transport/tcp/admission.rs`): the request was not handled. Not an error the peer had,
    /// so it comes back as [`ClusterError::Forwarded`] unless the caller names it better.
    Overloaded,
}

/// The operation names [`ClusterError::UnsupportedLevel`] uses, as `'static` strings a
/// decoder can hand back.
pub const OPERATIONS: [&str; 2] = ["reads", "writes"];

impl RemoteFailure {
    /// `error` as a peer is told of it.
    pub fn from_error(error: &ClusterError) -> RemoteFailure {
        use ringkv_lsm::Error as Engine;
        let kind = match error {
            ClusterError::Storage(Engine::KeyTooLarge { len, max }) => {
                RemoteFailureKind::KeyTooLarge {
                    len: *len,
                    max: *max,
                }
            }
            ClusterError::Storage(Engine::ValueTooLarge { len, max }) => {
                RemoteFailureKind::ValueTooLarge {
                    len: *len,
                    max: *max,
                }
            }
            ClusterError::Storage(_) => RemoteFailureKind::Storage,
            ClusterError::ShuttingDown => RemoteFailureKind::ShuttingDown,
            ClusterError::Unavailable {
                level,
                required,
                alive,
            } => RemoteFailureKind::Unavailable {
                level: *level,
                required: *required,
                alive: *alive,
            },
            ClusterError::QuorumFailed {
                level,
                required,
                answered,
                errors,
            } => RemoteFailureKind::QuorumFailed {
                level: *level,
                required: *required,
                answered: *answered,
                errors: errors.clone(),
            },
            ClusterError::UnsupportedLevel { level, operation } => {
                match OPERATIONS.iter().find(|o| *o == operation) {
                    Some(operation) => RemoteFailureKind::UnsupportedLevel {
                        level: *level,
                        operation,
                    },
                    None => RemoteFailureKind::Refused,
                }
            }
            ClusterError::NoReplicas { slot } => RemoteFailureKind::NoReplicas { slot: *slot },
            ClusterError::CrossSlot => RemoteFailureKind::CrossSlot,
            ClusterError::KeyBusy { waited_ms } => RemoteFailureKind::KeyBusy {
                waited_ms: *waited_ms,
            },
            _ => RemoteFailureKind::Refused,
        };
        RemoteFailure {
            kind,
            message: error.to_string(),
        }
    }

    /// The error the peer had: the same variant when the kind carries its parts, else
    /// [`ClusterError::Forwarded`] with the peer's sentence (which is how the peer's error
    /// displayed).
    pub fn into_error(self) -> ClusterError {
        use ringkv_lsm::Error as Engine;
        match self.kind {
            RemoteFailureKind::KeyTooLarge { len, max } => {
                ClusterError::Storage(Engine::KeyTooLarge { len, max })
            }
            RemoteFailureKind::ValueTooLarge { len, max } => {
                ClusterError::Storage(Engine::ValueTooLarge { len, max })
            }
            RemoteFailureKind::ShuttingDown => ClusterError::ShuttingDown,
            RemoteFailureKind::Unavailable {
                level,
                required,
                alive,
            } => ClusterError::Unavailable {
                level,
                required,
                alive,
            },
            RemoteFailureKind::QuorumFailed {
                level,
                required,
                answered,
                errors,
            } => ClusterError::QuorumFailed {
                level,
                required,
                answered,
                errors,
            },
            RemoteFailureKind::UnsupportedLevel { level, operation } => {
                ClusterError::UnsupportedLevel { level, operation }
            }
            RemoteFailureKind::NoReplicas { slot } => ClusterError::NoReplicas { slot },
            RemoteFailureKind::CrossSlot => ClusterError::CrossSlot,
            RemoteFailureKind::KeyBusy { waited_ms } => ClusterError::KeyBusy { waited_ms },
            RemoteFailureKind::Storage
            | RemoteFailureKind::Refused
            | RemoteFailureKind::Overloaded => ClusterError::Forwarded(self.message),
        }
    }

    /// Whether the peer's engine refused a key or value over its limits (every replica would
    /// refuse it the same way).
    pub fn is_limit(&self) -> bool {
        matches!(
            self.kind,
            RemoteFailureKind::KeyTooLarge { .. } | RemoteFailureKind::ValueTooLarge { .. }
        )
    }
}

/// One error of every variant a peer can report, with parts that differ from defaults.
#[cfg(test)]
pub(crate) fn every_error() -> Vec<ClusterError> {
    vec![
        ClusterError::Storage(ringkv_lsm::Error::KeyTooLarge { len: 70, max: 64 }),
        ClusterError::Storage(ringkv_lsm::Error::ValueTooLarge {
            len: 2_000,
            max: 1_024,
        }),
        ClusterError::Storage(ringkv_lsm::Error::Locked {
            path: std::path::PathBuf::from("/data"),
        }),
        ClusterError::ShuttingDown,
        ClusterError::Unavailable {
            level: Level::All,
            required: 3,
            alive: 1,
        },
        ClusterError::QuorumFailed {
            level: Level::Quorum,
            required: 2,
            answered: 1,
            errors: vec!["node-2: timed out".into(), "node-3: refused".into()],
        },
        ClusterError::UnsupportedLevel {
            level: Level::Any,
            operation: "reads",
        },
        ClusterError::NoReplicas { slot: 77 },
        ClusterError::CrossSlot,
        ClusterError::KeyBusy { waited_ms: 500 },
        ClusterError::Corrupt {
            what: "local ring state",
            detail: "bad length".into(),
        },
        ClusterError::Forwarded("the leader's words".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_comes_back_as_itself_or_its_sentence() {
        for error in every_error() {
            let back = RemoteFailure::from_error(&error).into_error();
            assert_eq!(back.to_string(), error.to_string());
            let sentence_only = matches!(
                error,
                ClusterError::Corrupt { .. }
                    | ClusterError::Forwarded(_)
                    | ClusterError::Storage(ringkv_lsm::Error::Locked { .. })
            );
            if sentence_only {
                assert!(matches!(back, ClusterError::Forwarded(_)), "{back:?}");
            } else {
                // The parts survive, not only the sentence.
                assert_eq!(format!("{back:?}"), format!("{error:?}"));
            }
        }
    }

    #[test]
    fn an_unknown_operation_name_travels_as_its_sentence() {
        let error = ClusterError::UnsupportedLevel {
            level: Level::Any,
            operation: "scans",
        };
        let failure = RemoteFailure::from_error(&error);
        assert_eq!(failure.kind, RemoteFailureKind::Refused);
        assert_eq!(failure.into_error().to_string(), error.to_string());
    }

    #[test]
    fn only_engine_limits_are_limits() {
        let limits: Vec<bool> = every_error()
            .iter()
            .map(|e| RemoteFailure::from_error(e).is_limit())
            .collect();
        assert_eq!(&limits[..2], [true, true]);
        assert!(limits[2..].iter().all(|l| !l));
    }
}
