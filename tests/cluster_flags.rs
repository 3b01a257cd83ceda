//! The binary's cluster flags: `ringkv --help` lists them, and a bad value stops the node
//! before it starts, with exit code 2 and a message naming the setting.

#[path = "common/process.rs"]
mod process;

use process::run_to_exit;

#[test]
fn help_lists_the_cluster_flags() {
    let (status, out) = run_to_exit(&["--help"]);
    assert!(status.success(), "{out}");
    for flag in [
        "--bus-port",
        "--seeds",
        "--replication-factor",
        "--vnodes",
        "--dc",
        "--rack",
        "--cluster-name",
        "--announce-ip",
        "--gossip-interval-ms",
        "--phi-threshold",
        "--join-wait-ms",
    ] {
        assert!(out.contains(flag), "--help does not list {flag}:\n{out}");
    }
}

#[test]
fn bad_cluster_settings_are_refused_before_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["--vnodes", "0"], "invalid vnodes: must be 1 to 4096"),
        (
            &["--replication-factor", "0"],
            "invalid replication_factor: must be at least 1",
        ),
        (
            &["--seeds", "127.0.0.1"],
            "invalid seeds: '127.0.0.1' is not HOST:BUSPORT",
        ),
        (&["--bind", "0.0.0.0"], "give --announce-ip"),
        (
            &["--port", "7000", "--bus-port", "7000"],
            "must differ from the client port",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["--data-dir", data.as_str()];
        all.extend_from_slice(args);
        let (status, out) = run_to_exit(&all);
        assert_eq!(status.code(), Some(2), "{args:?}: {out}");
        assert!(
            out.contains(expected),
            "{args:?}: expected {expected:?} in:\n{out}"
        );
    }
}
