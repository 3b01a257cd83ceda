use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// Answers every request with `Counts([its tag, how many requests it has seen, sender])`.
struct Counter {
    tag: u64,
    seen: AtomicU64,
}

impl Counter {
    fn new(tag: u64) -> Arc<Self> {
        Arc::new(Self {
            tag,
            seen: AtomicU64::new(0),
        })
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Handler for Counter {
    async fn handle(&self, from: u32, request: Stamped<PeerRequest>) -> Stamped<PeerResponse> {
        let seen = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        Stamped {
            hlc: request.hlc,
            body: PeerResponse::Counts(vec![self.tag, seen, u64::from(from)]),
        }
    }
}

fn ping(hlc: u64) -> Stamped<PeerRequest> {
    Stamped {
        hlc,
        body: PeerRequest::CountSlots { slots: vec![1] },
    }
}

const TIMEOUT: Duration = Duration::from_secs(1);

/// A network of nodes 1..=n, each with a [`Counter`] tagged with its number.
fn network(seed: u64, n: u32) -> (SimNetwork<Counter>, Vec<Arc<Counter>>) {
    let net = SimNetwork::new(seed);
    let handlers = (1..=n)
        .map(|i| {
            let handler = Counter::new(u64::from(i));
            net.add_node(i, Arc::clone(&handler));
            handler
        })
        .collect();
    (net, handlers)
}

async fn call(
    net: &SimNetwork<Counter>,
    from: u32,
    to: u32,
) -> Result<Stamped<PeerResponse>, TransportError> {
    net.transport(from)
        .call(SimNetwork::<Counter>::peer(to), ping(9), TIMEOUT)
        .await
}

#[tokio::test(start_paused = true)]
async fn delivers_to_the_handler_with_the_sender() {
    let (net, handlers) = network(1, 2);
    let response = call(&net, 1, 2).await.expect("delivered");
    assert_eq!(response.hlc, 9);
    assert_eq!(response.body, PeerResponse::Counts(vec![2, 1, 1]));
    assert_eq!(handlers[1].seen(), 1);
    assert_eq!(handlers[0].seen(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_node_is_a_connection_error() {
    let (net, _) = network(1, 1);
    let err = call(&net, 1, 5).await.expect_err("no such node");
    assert!(matches!(err, TransportError::Connection { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn dropped_messages_time_out() {
    let (net, _) = network(1, 2);
    net.set_drop_rate(1.0);
    let err = call(&net, 1, 2).await.expect_err("lost");
    assert_eq!(err, TransportError::Timeout(TIMEOUT));
}

async fn outcomes(seed: u64) -> (Vec<bool>, u64) {
    let (net, handlers) = network(seed, 2);
    net.set_drop_rate(0.3);
    let mut out = Vec::new();
    for _ in 0..64 {
        out.push(call(&net, 1, 2).await.is_ok());
    }
    (out, handlers[1].seen())
}

#[tokio::test(start_paused = true)]
async fn partial_drops_replay_from_the_seed() {
    let (first, seen) = outcomes(42).await;
    let (again, seen_again) = outcomes(42).await;
    assert_eq!(first, again);
    assert_eq!(seen, seen_again);
    let ok = first.iter().filter(|ok| **ok).count();
    assert!(ok > 0 && ok < first.len(), "some lost, some not: {ok}");
    // Lost responses still ran the handler: it saw more requests than were answered.
    assert!(seen > ok as u64, "seen {seen}, answered {ok}");
    let (other, _) = outcomes(43).await;
    assert_ne!(first, other, "another seed, another run");
}

#[tokio::test(start_paused = true)]
async fn duplicates_reach_the_handler_twice_and_answer_once() {
    let (net, handlers) = network(1, 2);
    net.set_duplicate_rate(1.0);
    let response = call(&net, 1, 2).await.expect("delivered");
    assert!(matches!(response.body, PeerResponse::Counts(_)));
    // Let the duplicate's task run.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(handlers[1].seen(), 2);
}

#[tokio::test(start_paused = true)]
async fn delays_apply_to_request_and_response() {
    let (net, _) = network(1, 2);
    net.set_delay(Duration::from_millis(100), Duration::from_millis(100));
    let transport = net.transport(1);
    let peer = SimNetwork::<Counter>::peer(2);
    let err = transport
        .call(peer, ping(1), Duration::from_millis(150))
        .await
        .expect_err("two legs of 100 ms");
    assert!(matches!(err, TransportError::Timeout(_)), "{err}");
    let start = Instant::now();
    transport
        .call(peer, ping(1), Duration::from_millis(250))
        .await
        .expect("fits");
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn partitions_and_isolation_cut_links_until_healed() {
    let (net, _) = network(1, 3);
    net.partition(1, 2);
    assert!(matches!(
        call(&net, 1, 2).await,
        Err(TransportError::Timeout(_))
    ));
    assert!(matches!(
        call(&net, 2, 1).await,
        Err(TransportError::Timeout(_))
    ));
    call(&net, 1, 3).await.expect("other links stay up");
    net.isolate(3);
    assert!(matches!(
        call(&net, 1, 3).await,
        Err(TransportError::Timeout(_))
    ));
    assert!(matches!(
        call(&net, 3, 2).await,
        Err(TransportError::Timeout(_))
    ));
    call(&net, 3, 3).await.expect("a node reaches itself");
    net.heal();
    call(&net, 1, 2).await.expect("healed");
    call(&net, 3, 1).await.expect("healed");
}

#[tokio::test(start_paused = true)]
async fn crashed_nodes_refuse_and_restarted_nodes_answer() {
    let (net, _) = network(1, 2);
    net.crash(2);
    assert!(!net.is_up(2));
    let err = call(&net, 1, 2).await.expect_err("crashed");
    assert!(matches!(err, TransportError::Connection { .. }), "{err}");
    assert_eq!(call(&net, 2, 1).await, Err(TransportError::Closed));
    net.restart(2, Counter::new(20));
    let response = call(&net, 1, 2).await.expect("back");
    assert_eq!(response.body, PeerResponse::Counts(vec![20, 1, 1]));
}

#[tokio::test(start_paused = true)]
async fn a_crash_in_flight_breaks_the_call() {
    let (net, _) = network(1, 2);
    net.set_delay(Duration::from_millis(50), Duration::from_millis(50));
    let transport = net.transport(1);
    let call = tokio::spawn(async move {
        transport
            .call(SimNetwork::<Counter>::peer(2), ping(1), TIMEOUT)
            .await
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    net.crash(2);
    net.restart(2, Counter::new(2));
    let err = call.await.expect("task").expect_err("connection lost");
    assert!(matches!(err, TransportError::Connection { .. }), "{err}");
}
