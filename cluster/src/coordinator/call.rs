//! Sending one request to a plan's replicas and gathering enough answers.
//!
//! Owns [`Shared::gather`] and [`Shared::call_one`]. Remote replicas are called concurrently
//! with one request stamped and encoded once for all of them, under one timer for the whole
//! gather (their calls polled together in the gathering task, so a slow peer delays nobody), this
//! node's own replica is served inline, and the gather returns as soon as the plan's needs are
//! met; a write's calls still in flight then finish in a task of their own, a read's are
//! dropped (their answers are not needed). Reads ask only as many replicas as the level needs and ask the next one when one
//! fails; writes go to every live replica. A request that cannot gather enough answers by its
//! deadline fails with `QuorumFailed` naming the level, the answers and each failure. Must
//! never wait past the deadline, and never ask a replica the plan left out (believed down).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::coordinator::local::is_limit_error;
use crate::coordinator::plan::Plan;
use crate::coordinator::replica::serve_maybe_blocking;
use crate::coordinator::ring_state::RingState;
use crate::coordinator::Shared;
use crate::error::ClusterError;
use crate::rpc::{PeerRequest, PeerResponse, Stamped};
use crate::storage::Storage;
use crate::transport::{Peer, SharedRequest, Transport};

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

/// One call in flight.
type Call = Pin<Box<dyn Future<Output = Answer> + Send + 'static>>;

/// The calls of one gather, polled in place: a gather has at most a replica set's worth, so
/// polling each on every wake-up costs less than a task and a channel per call.
#[derive(Default)]
struct InFlight {
    calls: Vec<Call>,
}

impl InFlight {
    fn push(&mut self, call: Call) {
        self.calls.push(call);
    }

    fn len(&self) -> usize {
        self.calls.len()
    }

    fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The next answer; pending forever when there are no calls (callers check first).
    fn next(&mut self) -> impl Future<Output = Answer> + '_ {
        std::future::poll_fn(move |cx| {
            for i in 0..self.calls.len() {
                if let Poll::Ready(answer) = self.calls[i].as_mut().poll(cx) {
                    drop(self.calls.swap_remove(i));
                    return Poll::Ready(answer);
                }
            }
            Poll::Pending
        })
    }

    /// Polls every call once, so each has sent its request before the caller does anything
    /// else (a remote call is a lazy future: until polled it has not reached the transport);
    /// returns the answers of those that finished at once.
    fn start(&mut self) -> impl Future<Output = Vec<Answer>> + '_ {
        std::future::poll_fn(move |cx| {
            let mut done = Vec::new();
            let mut i = 0;
            while i < self.calls.len() {
                if let Poll::Ready(answer) = self.calls[i].as_mut().poll(cx) {
                    drop(self.calls.swap_remove(i));
                    done.push(answer);
                } else {
                    i += 1;
                }
            }
            Poll::Ready(done)
        })
    }

    /// Lets the remaining calls finish on their own by `deadline` (when `detach`), or drops
    /// them. A call has no deadline of its own (the gather's one timer bounded it), so a
    /// detached one gets it here.
    fn detach_if(&mut self, detach: bool, deadline: Instant) {
        for call in self.calls.drain(..) {
            if detach {
                tokio::spawn(tokio::time::timeout_at(deadline, call));
            }
        }
    }
}

impl<S: Storage, T: Transport> Shared<S, T> {
    /// Sends `request` to the plan's replicas and returns the successful answers (member
    /// index, response) once the plan's needs are met. `accept` checks an answer's shape.
    pub(crate) async fn gather(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        mut plan: Plan,
        request: PeerRequest,
        fanout: Fanout,
        accept: &(dyn Fn(&PeerResponse) -> bool + Sync),
    ) -> Result<Vec<(usize, PeerResponse)>, ClusterError> {
        if let [only] = plan.targets[..] {
            if state.is_local(only) {
                return self.gather_local(state, plan, request, accept).await;
            }
        }
        let deadline = Instant::now() + self.timeout;
        let dc = |i: usize| state.member(i).dc.as_str();
        // The first wave: everyone for writes; for reads, replicas in order until the needs
        // would be met if all of them answered.
        let mut first_wave = Vec::with_capacity(plan.targets.len());
        let mut backups = Vec::new();
        let mut planned = plan.needs.clone();
        for &target in &plan.targets {
            let counts = planned.wants(dc(target));
            if fanout == Fanout::All || (counts && !planned.met()) {
                if counts {
                    planned.answered(dc(target));
                }
                first_wave.push(target);
            } else if counts || plan.needs.wants(dc(target)) {
                backups.push(target);
            }
        }
        backups.reverse(); // popped from the end, in plan order

        // Stamped and encoded once for every peer asked.
        let request = Arc::new(SharedRequest::new(Stamped {
            hlc: self.inner.hlc.now(),
            body: request,
        }));
        let mut in_flight = InFlight::default();
        let mut local_pending = false;
        for &target in &first_wave {
            if state.is_local(target) {
                local_pending = true;
            } else {
                in_flight.push(self.remote_call(state, target, &request));
            }
        }
        let mut answers = Vec::with_capacity(first_wave.len());
        let mut errors = Vec::new();
        // The peers get their requests before this node serves its own (which may wait for a
        // flush group or an fsync): the write then takes the longer of the two, not their sum.
        for answer in in_flight.start().await {
            in_flight.push(Box::pin(std::future::ready(answer)));
        }
        if local_pending {
            let response = serve_maybe_blocking(&self.inner, request.stamped().body.clone()).await;
            let local = state.view.local;
            let response = match response {
                // Every replica would refuse it the same way: say why, in the engine's words.
                Err(e) if is_limit_error(&e) => {
                    in_flight.detach_if(fanout == Fanout::All, deadline);
                    return Err(e);
                }
                Err(e) => Err(e.to_string()),
                Ok(r) => Ok(r),
            };
            // Counted by the loop below, with the remote answers.
            in_flight.push(Box::pin(std::future::ready((local, response))));
        }
        // One timer bounds every call of the gather (they have none of their own); it is
        // registered only at the first wait that needs it.
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        while !plan.needs.met() && !in_flight.is_empty() {
            match next_by(&mut in_flight, timer.as_mut()).await {
                Ok(answer) => {
                    let taken = self.take_answer(
                        state,
                        answer,
                        accept,
                        &mut plan,
                        &mut answers,
                        &mut errors,
                    );
                    // A replica's engine limit ends the gather as our own engine's does.
                    let ok = match taken {
                        Ok(ok) => ok,
                        Err(e) => {
                            in_flight.detach_if(fanout == Fanout::All, deadline);
                            return Err(e);
                        }
                    };
                    if !ok && fanout == Fanout::Needed {
                        self.launch_backup(state, &mut backups, &mut in_flight, &request)
                            .await;
                    }
                }
                Err(_) => {
                    errors.push(format!(
                        "{} replica(s) did not answer within {:?}",
                        in_flight.len(),
                        self.timeout
                    ));
                    break;
                }
            }
        }
        // Writes go to every live replica even when the level is met before all answered.
        // A call whose answer is in already needs no task to finish it (the late answer is
        // dropped either way, as a detached call's is).
        if fanout == Fanout::All && !in_flight.is_empty() {
            drop(in_flight.start().await);
        }
        in_flight.detach_if(fanout == Fanout::All, deadline);
        outcome(&plan, answers, errors)
    }

    /// [`Shared::gather`] when this node is the only live replica (always, on one node): no
    /// channel, no task, no deadline (nothing to wait for but our own storage).
    async fn gather_local(
        &self,
        state: &RingState,
        mut plan: Plan,
        request: PeerRequest,
        accept: &(dyn Fn(&PeerResponse) -> bool + Sync),
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
        )?;
        outcome(&plan, answers, errors)
    }

    /// Records one answer; returns whether it was a success.
    ///
    /// # Errors
    /// The replica's engine refusing a key or value over its limits, in the engine's words,
    /// as the gather returns this node's own engine's refusal: every replica would refuse it
    /// the same way, and the client's answer must not depend on whether the node it asked
    /// holds a replica.
    fn take_answer(
        &self,
        state: &RingState,
        (member, result): Answer,
        accept: &(dyn Fn(&PeerResponse) -> bool + Sync),
        plan: &mut Plan,
        answers: &mut Vec<(usize, PeerResponse)>,
        errors: &mut Vec<String>,
    ) -> Result<bool, ClusterError> {
        let id = &state.member(member).node_id;
        Ok(match result {
            Ok(PeerResponse::Failed(failure)) if failure.is_limit() => {
                return Err(failure.into_error())
            }
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
        })
    }

    /// Asks the next backup replica, if any (serving it inline if it is this node).
    async fn launch_backup(
        self: &Arc<Self>,
        state: &Arc<RingState>,
        backups: &mut Vec<usize>,
        in_flight: &mut InFlight,
        request: &Arc<SharedRequest>,
    ) {
        let Some(target) = backups.pop() else {
            return;
        };
        if state.is_local(target) {
            let response = serve_maybe_blocking(&self.inner, request.stamped().body.clone())
                .await
                .map_err(|e| e.to_string());
            in_flight.push(Box::pin(std::future::ready((target, response))));
        } else {
            in_flight.push(self.remote_call(state, target, request));
        }
    }

    /// A call to member `target`, as a future that owns what it needs (so it can outlive
    /// the gather when a write's level is met before every replica answered).
    fn remote_call(
        self: &Arc<Self>,
        state: &RingState,
        target: usize,
        request: &Arc<SharedRequest>,
    ) -> Call {
        let member = state.member(target);
        let peer = Peer {
            number: member.number,
            addr: member.bus_addr,
        };
        let shared = Arc::clone(self);
        let request = Arc::clone(request);
        Box::pin(async move {
            let outcome = match shared.transport.call_shared(peer, request).await {
                Ok(response) => {
                    shared.inner.observe_peer_clock(response.hlc);
                    Ok(response.body)
                }
                Err(e) => Err(e.to_string()),
            };
            (target, outcome)
        })
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
    /// answer, for requests that need exactly one node (walks).
    pub(crate) async fn call_one(
        &self,
        state: &RingState,
        target: usize,
        request: PeerRequest,
    ) -> Result<PeerResponse, String> {
        self.call_one_within(state, target, request, self.timeout)
            .await
    }

    /// [`Shared::call_one`] waiting up to `timeout` for a remote answer, for requests whose
    /// peer itself waits on other replicas (forwarded writes).
    pub(crate) async fn call_one_within(
        &self,
        state: &RingState,
        target: usize,
        request: PeerRequest,
        timeout: Duration,
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
        self.call_peer(peer, request, timeout).await
    }
}

/// The next answer of `in_flight`, or `Err` once `timer` fires. The timer is polled only
/// when no answer is in, so a gather whose answers are ready never registers it.
async fn next_by(
    in_flight: &mut InFlight,
    mut timer: Pin<&mut tokio::time::Sleep>,
) -> Result<Answer, ()> {
    let mut next = std::pin::pin!(in_flight.next());
    std::future::poll_fn(|cx| {
        if let Poll::Ready(answer) = next.as_mut().poll(cx) {
            return Poll::Ready(Ok(answer));
        }
        timer.as_mut().poll(cx).map(Err)
    })
    .await
}

/// The answers when they meet the plan's needs, else the level's failure naming each error.
fn outcome(
    plan: &Plan,
    answers: Vec<(usize, PeerResponse)>,
    errors: Vec<String>,
) -> Result<Vec<(usize, PeerResponse)>, ClusterError> {
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
