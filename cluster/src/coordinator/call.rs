//! Sending one request to a plan's replicas and gathering enough answers.
//!
//! Owns [`Shared::gather`] and [`Shared::call_one`]. Remote replicas are called concurrently
//! (a task each, so a slow peer delays nobody and its late answer is simply dropped), this
//! node's own replica is served inline, and the gather returns as soon as the plan's needs are
//! met. Reads ask only as many replicas as the level needs and ask the next one when one
//! fails; writes go to every live replica. A request that cannot gather enough answers by its
//! deadline fails with `QuorumFailed` naming the level, the answers and each failure. Must
//! never wait past the deadline, and never ask a replica the plan left out (believed down).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::coordinator::plan::Plan;
use crate::coordinator::replica::serve_maybe_blocking;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::rpc::{PeerRequest, PeerResponse, Stamped};
use crate::storage::Storage;
use crate::transport::{Peer, Transport};

/// Whom to ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fanout {
    /// As few replicas as the level needs; another one when one fails (reads).
    Needed,
    /// Every live replica (writes: all replicas get the data, the level decides when to reply).
    All,
}

/// A replica's answer, or why there is none.
type Answer = (usize, Result<PeerResponse, String>);

impl<S: Storage, T: Transport> Shared<S, T> {
    /// Sends `request` to the plan's replicas and returns the successful answers (member
    /// index, response) once the plan's needs are met. `accept` checks an answer's shape.
    pub(crate) async fn gather(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        mut plan: Plan,
        request: PeerRequest,
        fanout: Fanout,
        accept: fn(&PeerResponse) -> bool,
    ) -> Result<Vec<(usize, PeerResponse)>, ClusterError> {
        if let [only] = plan.targets[..] {
            if state.is_local(only) {
                return self.gather_local(state, plan, request, accept).await;
            }
        }
        let deadline = Instant::now() + self.timeout;
        let dc = |i: usize| state.member(i).dc.clone();
        // The first wave: everyone for writes; for reads, replicas in order until the needs
        // would be met if all of them answered.
        let mut first_wave = Vec::new();
        let mut backups = Vec::new();
        let mut planned = plan.needs.clone();
        for &target in &plan.targets {
            let counts = planned.wants(&dc(target));
            if fanout == Fanout::All || (counts && !planned.met()) {
                if counts {
                    planned.answered(&dc(target));
                }
                first_wave.push(target);
            } else if counts || plan.needs.wants(&dc(target)) {
                backups.push(target);
            }
        }
        backups.reverse(); // popped from the end, in plan order
        let (tx, mut rx) = mpsc::channel::<Answer>(plan.targets.len().max(1));
        let mut in_flight = 0usize;
        let mut local_pending = false;
        for &target in &first_wave {
            if state.is_local(target) {
                local_pending = true;
            } else {
                self.spawn_call(state, target, request.clone(), deadline, tx.clone());
            }
            in_flight += 1;
        }
        let mut answers = Vec::new();
        let mut errors = Vec::new();
        if local_pending {
            let response = serve_maybe_blocking(&self.inner, request.clone()).await;
            in_flight -= 1;
            let local = state.view.local;
            let response = match response {
                // Every replica would refuse it the same way: say why, in the engine's words.
                Err(e) if is_limit_error(&e) => return Err(e),
                Err(e) => Err(e.to_string()),
                Ok(r) => Ok(r),
            };
            self.take_answer(
                state,
                (local, response),
                accept,
                &mut plan,
                &mut answers,
                &mut errors,
            );
            if !plan.needs.met() {
                self.launch_backup(state, &mut backups, &mut in_flight, &request, deadline, &tx)
                    .await;
            }
        }
        while !plan.needs.met() && in_flight > 0 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(answer)) => {
                    in_flight -= 1;
                    let ok = self.take_answer(
                        state,
                        answer,
                        accept,
                        &mut plan,
                        &mut answers,
                        &mut errors,
                    );
                    if !ok && fanout == Fanout::Needed {
                        self.launch_backup(
                            state,
                            &mut backups,
                            &mut in_flight,
                            &request,
                            deadline,
                            &tx,
                        )
                        .await;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    errors.push(format!(
                        "{in_flight} replica(s) did not answer within {:?}",
                        self.timeout
                    ));
                    break;
                }
            }
        }
        if plan.needs.met() {
            Ok(answers)
        } else {
            Err(ClusterError::QuorumFailed {
                level: plan.level,
                required: plan.required,
                answered: plan.required.saturating_sub(plan.needs.missing()),
                errors,
            })
        }
    }

    /// [`Shared::gather`] when this node is the only live replica (always, on one node): no
    /// channel, no task, no deadline (nothing to wait for but our own storage).
    async fn gather_local(
        &self,
        state: &RingState,
        mut plan: Plan,
        request: PeerRequest,
        accept: fn(&PeerResponse) -> bool,
    ) -> Result<Vec<(usize, PeerResponse)>, ClusterError> {
        let local = state.view.local;
        let response = match serve_maybe_blocking(&self.inner, request).await {
            Err(e) if is_limit_error(&e) => return Err(e),
            Err(e) => Err(e.to_string()),
            Ok(r) => Ok(r),
        };
        let mut answers = Vec::with_capacity(1);
        let mut errors = Vec::new();
        self.take_answer(
            state,
            (local, response),
            accept,
            &mut plan,
            &mut answers,
            &mut errors,
        );
        if plan.needs.met() {
            Ok(answers)
        } else {
            Err(ClusterError::QuorumFailed {
                level: plan.level,
                required: plan.required,
                answered: plan.required.saturating_sub(plan.needs.missing()),
                errors,
            })
        }
    }

    /// Records one answer; returns whether it was a success.
    fn take_answer(
        &self,
        state: &RingState,
        (member, result): Answer,
        accept: fn(&PeerResponse) -> bool,
        plan: &mut Plan,
        answers: &mut Vec<(usize, PeerResponse)>,
        errors: &mut Vec<String>,
    ) -> bool {
        let id = &state.member(member).node_id;
        match result {
            Ok(PeerResponse::Failed(failure)) => {
                errors.push(format!("{id}: {}", failure.message));
                false
            }
            Ok(response) if accept(&response) => {
                plan.needs.answered(&state.member(member).dc);
                answers.push((member, response));
                true
            }
            Ok(_) => {
                errors.push(format!("{id}: unexpected answer"));
                false
            }
            Err(reason) => {
                errors.push(format!("{id}: {reason}"));
                false
            }
        }
    }

    /// Asks the next backup replica, if any (serving it inline if it is this node).
    async fn launch_backup(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        backups: &mut Vec<usize>,
        in_flight: &mut usize,
        request: &PeerRequest,
        deadline: Instant,
        tx: &mpsc::Sender<Answer>,
    ) {
        let Some(target) = backups.pop() else {
            return;
        };
        *in_flight += 1;
        if state.is_local(target) {
            let response = serve_maybe_blocking(&self.inner, request.clone())
                .await
                .map_err(|e| e.to_string());
            // The channel has room for every target, so this never waits.
            let _ = tx.send((target, response)).await;
        } else {
            self.spawn_call(state, target, request.clone(), deadline, tx.clone());
        }
    }

    /// Calls member `target` in a task of its own; the answer goes to `tx`.
    fn spawn_call(
        self: &Arc<Self>,
        state: &RingState,
        target: usize,
        request: PeerRequest,
        deadline: Instant,
        tx: mpsc::Sender<Answer>,
    ) {
        let member = state.member(target);
        let peer = Peer {
            number: member.number,
            addr: member.bus_addr,
        };
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let result = shared.call_peer(peer, request, timeout).await;
            // The gatherer may be gone (it had enough answers): the answer is not needed.
            let _ = tx.send((target, result)).await;
        });
    }

    /// Calls one peer, stamping our clock on the request and observing theirs.
    pub(crate) async fn call_peer(
        &self,
        peer: Peer,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, String> {
        let stamped = Stamped {
            hlc: self.inner.hlc.now(),
            body: request,
        };
        match self.transport.call(peer, stamped, timeout).await {
            Ok(response) => {
                self.inner.observe_peer_clock(response.hlc);
                Ok(response.body)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends `request` to member `target` (inline when it is this node) and returns its
    /// answer, for requests that need exactly one node (walks, forwarded writes).
    pub(crate) async fn call_one(
        &self,
        state: &RingState,
        target: usize,
        request: PeerRequest,
    ) -> Result<PeerResponse, String> {
        if state.is_local(target) {
            return serve_maybe_blocking(&self.inner, request)
                .await
                .map_err(|e| e.to_string());
        }
        let member = state.member(target);
        let peer = Peer {
            number: member.number,
            addr: member.bus_addr,
        };
        self.call_peer(peer, request, self.timeout).await
    }
}

/// Whether `error` is the engine refusing a key or value over its limits.
fn is_limit_error(error: &ClusterError) -> bool {
    matches!(
        error,
        ClusterError::Storage(
            ringkv_lsm::Error::KeyTooLarge { .. } | ringkv_lsm::Error::ValueTooLarge { .. }
        )
    )
}
