//! `ringkv status` against a real node process: it prints the ring like `nodetool status`,
//! authenticates with `--password` when the node has a `requirepass`, and fails with a clear
//! message and a non-zero exit when no node answers or the node refuses it.

#[path = "common/process.rs"]
mod process;

use process::{free_port, run_to_exit, Node};

const NODE_ID: &str = "5e1f00d5e1f00d5e1f00d5e1f00d5e1f00d5e1f0";

#[test]
fn prints_the_ring_like_nodetool() {
    let node = Node::start(&["--node-id", NODE_ID]);
    let port = node.port.to_string();
    let (status, output) = run_to_exit(&["status", "--port", &port]);
    assert!(
        status.success(),
        "ringkv status failed ({status}):\n{output}"
    );
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.first(), Some(&"Datacenter: dc1"), "{output}");
    let row = lines
        .iter()
        .find(|l| l.starts_with("UN "))
        .unwrap_or_else(|| panic!("no up-and-normal node in:\n{output}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // UN, address, load (number and unit), owns, host id, rack.
    assert_eq!(cells.len(), 7, "{row}");
    assert_eq!(cells[1], format!("127.0.0.1:{port}"));
    assert_eq!(cells[4], "100.0%");
    assert_eq!(cells[5], NODE_ID);
    assert_eq!(cells[6], "rack1");
}

#[test]
fn authenticates_with_the_password() {
    let node = Node::start(&["--requirepass", "s3cret"]);
    let port = node.port.to_string();
    let (status, output) = run_to_exit(&["status", "--port", &port]);
    assert!(!status.success(), "status without a password succeeded");
    assert!(
        output.contains("ringkv status: the node refused: NOAUTH"),
        "{output}"
    );
    let (status, output) = run_to_exit(&["status", "--port", &port, "--password", "wrong"]);
    assert!(!status.success());
    assert!(output.contains("WRONGPASS"), "{output}");
    let (status, output) = run_to_exit(&["status", "--port", &port, "--password", "s3cret"]);
    assert!(status.success(), "{output}");
    assert!(output.contains("\nUN  127.0.0.1:"), "{output}");
}

#[test]
fn an_unreachable_node_is_a_clear_error() {
    let port = free_port().to_string();
    let (status, output) = run_to_exit(&["status", "--host", "127.0.0.1", "--port", &port]);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.starts_with(&format!(
            "ringkv status: cannot reach a ringkv node at 127.0.0.1:{port}: "
        )),
        "{output}"
    );
}
