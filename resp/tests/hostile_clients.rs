//! Clients that send what no honest client sends: a nesting bomb, a 2 GB bulk header, garbage,
//! and 3 MB requests dribbled in 16 KiB pieces. Each gets a clear error (and is closed) or a
//! prompt reply, and the node keeps serving everyone else.

#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant};

use node::{request, text, TestNode};

/// Sends `bytes` in 16 KiB writes, letting the server read between them.
async fn send_in_pieces(client: &mut node::Client, bytes: &[u8]) {
    for piece in bytes.chunks(16 * 1024) {
        client.send(piece).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn nesting_bomb_is_refused_and_others_are_served() {
    let node = TestNode::start_default().await;
    let mut bystander = node.client().await;
    let mut attacker = node.client().await;
    attacker.send(&b"*1\r\n".repeat(10_000)).await;
    assert_eq!(
        attacker.read_until_closed().await,
        b"-ERR Protocol error: expected '$', got '*'\r\n"
    );
    assert_eq!(text(&bystander.call(&["PING"]).await), "PONG");
}

#[tokio::test]
async fn two_gigabyte_bulk_header_is_refused_before_allocating() {
    let node = TestNode::start_default().await;
    let mut bystander = node.client().await;
    let mut attacker = node.client().await;
    attacker.send(b"*2\r\n$3\r\nSET\r\n$2147483648\r\n").await;
    assert_eq!(
        attacker.read_until_closed().await,
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(text(&bystander.call(&["SET", "k", "v"]).await), "OK");
}

#[tokio::test]
async fn garbage_gets_a_protocol_error_and_a_close() {
    let node = TestNode::start_default().await;
    let mut client = node.client().await;
    client.send(b"*abc\r\n").await;
    assert_eq!(
        client.read_until_closed().await,
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
    let mut other = node.client().await;
    assert_eq!(text(&other.call(&["PING"]).await), "PONG");
}

#[tokio::test]
async fn three_megabyte_requests_in_small_pieces_get_prompt_replies() {
    let node = TestNode::start_default().await;
    let mut bystander = node.client().await;
    let mut sender = node.client().await;

    // A 3 MB array of 150,000 arguments naming no command.
    let args: Vec<Vec<u8>> = std::iter::once(b"NOSUCH".to_vec())
        .chain((0..150_000).map(|i| format!("argument-{i:08}").into_bytes()))
        .collect();
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let big_array = request(&refs);
    assert!(big_array.len() > 3_000_000);
    let started = Instant::now();
    send_in_pieces(&mut sender, &big_array[..big_array.len() / 2]).await;
    // Half-way through, another client is served at once.
    assert_eq!(text(&bystander.call(&["PING"]).await), "PONG");
    send_in_pieces(&mut sender, &big_array[big_array.len() / 2..]).await;
    let reply = text(&sender.read2().await);
    assert!(
        reply.starts_with(
            "-ERR unknown command 'NOSUCH', with args beginning with: 'argument-00000000' "
        ),
        "{reply}"
    );

    // A 3 MB value, stored and read back whole.
    let value = vec![b'v'; 3 * 1024 * 1024];
    send_in_pieces(&mut sender, &request(&[b"SET", b"big", &value])).await;
    assert_eq!(text(&sender.read2().await), "OK");
    let got = sender.call(&["GET", "big"]).await;
    assert_eq!(
        got,
        redis_protocol::resp2::types::OwnedFrame::BulkString(value)
    );
    // Generous for a debug build on a shared machine; the parser's own tests bound the work.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(text(&bystander.call(&["PING"]).await), "PONG");
}
