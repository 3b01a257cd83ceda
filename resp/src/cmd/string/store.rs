//! How the data command families reach the cluster: reads, conditional writes, and the
//! read-modify-write loop every Redis command that depends on a key's current value uses.
//!
//! Owns [`Store`] (the cluster, the connection's consistency and the value limit, copied out
//! of the handler's context so a handler's future stays `Send`) and [`Step`]. A command that
//! changes a key based on its value (INCR, APPEND, SET NX, EXPIRE, ...) reads it with
//! `Request::Get`, decides in pure code, and writes with `Condition::IfVersion(the version it
//! read)`; when another writer got there first the write reports `false` and the loop reads
//! again, a bounded number of times. This module never parses arguments or builds replies
//! beyond passing on the one a step chose.

use bytes::Bytes;
use ringkv_cluster::{Cluster, Condition, Consistency, Request, Response, StoredValue, Write};

use crate::cmd::args::error;
use crate::cmd::{CommandError, CommandResult, Ctx};
use crate::reply::Reply;

/// Attempts of a read-modify-write before giving up with [`CONTENTION`]. Each retry means
/// another client changed the key in between; a hundred in a row means a pathological hot key.
pub(crate) const MAX_ATTEMPTS: usize = 100;

/// The error after [`MAX_ATTEMPTS`] lost races.
pub(crate) const CONTENTION: &str =
    "ERR the key changed concurrently too many times in a row, try again";

/// What a read-modify-write step decided.
#[derive(Debug)]
pub(crate) enum Step {
    /// Reply without writing (NX on an existing key, a type error, ...).
    Reply(Reply),
    /// Write this (or delete, with `value: None`) if the key is still as read, then reply.
    Write {
        /// The new value, `None` to delete.
        value: Option<Bytes>,
        /// Unix ms it expires at; 0 = never.
        expire_at_ms: u64,
        /// The reply once written.
        reply: Reply,
    },
}

/// The handler's view of the cluster.
pub(crate) struct Store<'a, C: Cluster> {
    /// The cluster.
    pub cluster: &'a C,
    /// The connection's levels.
    pub consistency: Consistency,
    /// Largest value a command may store.
    pub max_value_bytes: usize,
}

impl<'a, C: Cluster> Store<'a, C> {
    /// Copies what the data commands need out of a handler's context.
    pub(crate) fn new(ctx: &Ctx<'a, C>) -> Self {
        Store {
            cluster: ctx.cluster,
            consistency: ctx.conn.consistency,
            max_value_bytes: ctx.server.config.max_value_bytes,
        }
    }

    /// The cluster clock, unix ms.
    pub(crate) fn now_ms(&self) -> u64 {
        self.cluster.now_ms()
    }

    /// Fails with the value-limit error when `len` bytes would exceed it.
    pub(crate) fn check_len(&self, len: usize) -> Result<(), CommandError> {
        if len > self.max_value_bytes {
            return Err(error(crate::errors::value_too_large(self.max_value_bytes)));
        }
        Ok(())
    }

    /// The live values of `keys`, in order.
    pub(crate) async fn get(
        &self,
        keys: Vec<Bytes>,
    ) -> Result<Vec<Option<StoredValue>>, CommandError> {
        let expected = keys.len();
        match self
            .cluster
            .execute(Request::Get { keys }, self.consistency)
            .await?
        {
            Response::Values(values) if values.len() == expected => Ok(values),
            other => Err(unexpected(&other)),
        }
    }

    /// The live value of one key.
    pub(crate) async fn get_one(&self, key: &Bytes) -> Result<Option<StoredValue>, CommandError> {
        Ok(self.get(vec![key.clone()]).await?.pop().flatten())
    }

    /// Applies writes in order; one flag per write (false: its condition did not hold).
    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<Vec<bool>, CommandError> {
        let expected = writes.len();
        match self
            .cluster
            .execute(Request::Write { writes }, self.consistency)
            .await?
        {
            Response::Written(flags) if flags.len() == expected => Ok(flags),
            other => Err(unexpected(&other)),
        }
    }

    /// One write; whether its condition held.
    pub(crate) async fn write_one(&self, write: Write) -> Result<bool, CommandError> {
        Ok(self
            .write(vec![write])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// Runs `decide` on the key's current value and applies what it chose, conditional on the
    /// version it saw; on a lost race reads again (at most [`MAX_ATTEMPTS`] times). `decide`
    /// gets the current value and the cluster time. A value already expired when written is
    /// written as a delete; a value over the limit fails before the write.
    pub(crate) async fn update<F>(&self, key: &Bytes, mut decide: F) -> CommandResult
    where
        F: FnMut(Option<&StoredValue>, u64) -> Result<Step, CommandError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get_one(key).await?;
            let now = self.now_ms();
            match decide(current.as_ref(), now)? {
                Step::Reply(reply) => return Ok(reply),
                Step::Write {
                    value,
                    expire_at_ms,
                    reply,
                } => {
                    if let Some(value) = &value {
                        self.check_len(value.len())?;
                    }
                    let write = Write {
                        key: key.clone(),
                        value: value.filter(|_| expire_at_ms == 0 || expire_at_ms > now),
                        expire_at_ms,
                        condition: Condition::IfVersion(current.as_ref().map(|c| c.version)),
                    };
                    if self.write_one(write).await? {
                        return Ok(reply);
                    }
                }
            }
        }
        Err(error(CONTENTION))
    }
}

fn unexpected(response: &Response) -> CommandError {
    error(format!(
        "ERR internal error: unexpected cluster response {}",
        match response {
            Response::Values(_) => "Values",
            Response::Written(_) => "Written",
            Response::Scanned { .. } => "Scanned",
            Response::Entries(_) => "Entries",
            Response::Count(_) => "Count",
            Response::Key(_) => "Key",
            Response::Done => "Done",
        }
    ))
}
