//! Hostile and careless clients against the real binary: a nesting bomb, a 2 GiB bulk header, a
//! 3 MB array dribbled in 16 KiB pieces, and a value over the 10 MiB limit. Each gets a clear
//! error (Redis's own text) or a prompt reply, and the node keeps serving another client.

#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use process::{read_reply, read_until_closed, request, Node};

/// One request on `stream`, one reply back.
fn call(stream: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    stream.write_all(&request(args)).expect("send request");
    read_reply(stream)
}

/// Sends `bytes` in 16 KiB writes, as a slow client would.
fn send_in_pieces(stream: &mut TcpStream, bytes: &[u8]) {
    for piece in bytes.chunks(16 * 1024) {
        stream.write_all(piece).expect("send piece");
    }
}

fn assert_serves(node: &Node) {
    let mut bystander = node.raw();
    assert_eq!(
        call(&mut bystander, &[b"SET", b"bystander", b"ok"]),
        b"+OK\r\n"
    );
    assert_eq!(
        call(&mut bystander, &[b"GET", b"bystander"]),
        b"$2\r\nok\r\n"
    );
}

#[test]
fn a_nesting_bomb_gets_a_protocol_error_and_a_close() {
    let node = Node::start(&[]);
    let mut bystander = node.raw();
    let mut attacker = node.raw();
    attacker
        .write_all(&b"*1\r\n".repeat(10_000))
        .expect("send the bomb");
    assert_eq!(
        String::from_utf8_lossy(&read_until_closed(&mut attacker)),
        "-ERR Protocol error: expected '$', got '*'\r\n"
    );
    assert_eq!(call(&mut bystander, &[b"PING"]), b"+PONG\r\n");
    assert_serves(&node);
}

#[test]
fn a_two_gigabyte_bulk_header_is_refused() {
    let node = Node::start(&[]);
    let mut bystander = node.raw();
    let mut attacker = node.raw();
    attacker
        .write_all(b"*1\r\n$2147483648\r\n")
        .expect("send the header");
    assert_eq!(
        String::from_utf8_lossy(&read_until_closed(&mut attacker)),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(call(&mut bystander, &[b"PING"]), b"+PONG\r\n");
    assert_serves(&node);
}

#[test]
fn a_three_megabyte_array_in_small_pieces_gets_a_prompt_reply() {
    let node = Node::start(&[]);
    let mut bystander = node.raw();
    let mut sender = node.raw();
    assert_eq!(
        call(&mut sender, &[b"SET", b"k-00000007", b"x"]),
        b"+OK\r\n"
    );

    // EXISTS over 200,000 keys: a 3.4 MB request.
    let keys: Vec<Vec<u8>> = (0..200_000)
        .map(|i| format!("k-{i:08}").into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = vec![b"EXISTS"];
    args.extend(keys.iter().map(Vec::as_slice));
    let big = request(&args);
    assert!(big.len() > 3_000_000);

    let started = Instant::now();
    send_in_pieces(&mut sender, &big[..big.len() / 2]);
    // Half-way through, another client is served at once.
    assert_eq!(call(&mut bystander, &[b"PING"]), b"+PONG\r\n");
    send_in_pieces(&mut sender, &big[big.len() / 2..]);
    assert_eq!(read_reply(&mut sender), b":1\r\n");

    // A 3 MiB value in pieces, stored and read back whole.
    let value = vec![b'v'; 3 << 20];
    send_in_pieces(&mut sender, &request(&[b"SET", b"big", &value]));
    assert_eq!(read_reply(&mut sender), b"+OK\r\n");
    let got = call(&mut sender, &[b"GET", b"big"]);
    let mut expected = format!("${}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\n");
    assert!(got == expected, "GET big returned {} bytes", got.len());
    // Generous for a debug build on a shared machine: a parser that re-parsed from the start
    // on every piece would take far longer.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_serves(&node);
}

#[test]
fn an_oversized_value_is_refused_and_the_connection_stays_usable() {
    let node = Node::start(&[]);
    let mut client = node.raw();
    let limit = 10 << 20;
    let too_big = vec![b'x'; limit + 1];
    assert_eq!(
        String::from_utf8_lossy(&call(&mut client, &[b"SET", b"huge", &too_big])),
        "-ERR value exceeds the 10 MiB limit\r\n"
    );
    // The same connection goes on.
    assert_eq!(call(&mut client, &[b"PING"]), b"+PONG\r\n");
    assert_eq!(call(&mut client, &[b"EXISTS", b"huge"]), b":0\r\n");
    // Exactly the limit is accepted.
    let at_limit = vec![b'y'; limit];
    assert_eq!(call(&mut client, &[b"SET", b"huge", &at_limit]), b"+OK\r\n");
    assert_eq!(
        call(&mut client, &[b"STRLEN", b"huge"]),
        format!(":{limit}\r\n").as_bytes()
    );
    // Growing past it through APPEND is refused the same way.
    assert_eq!(
        String::from_utf8_lossy(&call(&mut client, &[b"APPEND", b"huge", b"z"])),
        "-ERR value exceeds the 10 MiB limit\r\n"
    );
    assert_eq!(call(&mut client, &[b"PING"]), b"+PONG\r\n");
    assert_serves(&node);
}
