//! Unit tests of the configuration: defaults, precedence (flag > `RINGKV_*` > file > default)
//! and the validation message of every setting.

use super::*;

/// Loads `flags`, expecting an error whose text contains `expected`.
fn load_err(flags: Flags, expected: &str) {
    let err = Config::load(flags).expect_err(expected);
    assert!(err.to_string().contains(expected), "{err}");
}

/// Writes `text` as a TOML file in a new directory (kept alive by the returned guard).
fn toml_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ringkv.toml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

#[test]
fn defaults_are_a_local_node() {
    let config = Config::load(Flags::default()).expect("defaults load");
    assert_eq!(config.bind, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(config.port, 6379);
    assert_eq!(config.data_dir, PathBuf::from("ringkv-data"));
    assert_eq!(config.fsync, FsyncPolicy::Periodic);
    assert_eq!(config.consistency, Consistency::default());
    assert_eq!(config.bus_port, 16379);
    assert!(config.seeds.is_empty());
    assert_eq!(config.replication_factor, 3);
    assert_eq!(config.vnodes, 256);
    assert_eq!(config.dc, "dc1");
    assert_eq!(config.rack, "rack1");
    assert_eq!(config.cluster_name, "ringkv");
    assert_eq!(config.announce_ip, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(config.gossip_interval_ms, 500);
    assert_eq!(config.phi_threshold, 8.0);
    assert_eq!(config.join_wait_ms, 2000);
    assert_eq!(config.row_cache_bytes, None, "the engine's default");
    assert!(
        !config.disable_thp,
        "huge pages stay as the system has them"
    );
}

#[test]
fn disable_thp_comes_from_the_file_and_the_flag_wins() {
    let (_dir, path) = toml_file("disable_thp = true\n");
    let from_file = Flags {
        config: Some(path.clone()),
        ..Flags::default()
    };
    assert!(Config::load(from_file).expect("load").disable_thp);
    let flag = Flags {
        config: Some(path),
        disable_thp: Some(false),
        ..Flags::default()
    };
    assert!(!Config::load(flag).expect("load").disable_thp);
}

#[test]
fn the_row_cache_budget_comes_from_the_flag_or_the_file() {
    let (_dir, path) = toml_file("row_cache_bytes = 0\n");
    let from_file = Flags {
        config: Some(path.clone()),
        ..Flags::default()
    };
    assert_eq!(
        Config::load(from_file).expect("load").row_cache_bytes,
        Some(0)
    );
    let flag = Flags {
        config: Some(path),
        row_cache_bytes: Some(1 << 20),
        ..Flags::default()
    };
    assert_eq!(
        Config::load(flag).expect("load").row_cache_bytes,
        Some(1 << 20)
    );
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ringkv.toml");
    std::fs::write(
        &path,
        "port = 7000\nfsync = \"always\"\nread_consistency = \"one\"\n",
    )
    .expect("write");
    let flags = Flags {
        config: Some(path),
        port: Some(7001),
        ..Flags::default()
    };
    let config = Config::load(flags).expect("load");
    assert_eq!(config.port, 7001);
    assert_eq!(config.fsync, FsyncPolicy::Always);
    assert_eq!(config.consistency.read, Level::One);
    assert_eq!(config.consistency.write, Level::Quorum);
}

#[test]
fn bad_files_and_values_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ringkv.toml");
    std::fs::write(&path, "prot = 7000\n").expect("write");
    let err = Config::load(Flags {
        config: Some(path),
        ..Flags::default()
    })
    .expect_err("unknown key");
    assert!(
        err.to_string().contains("invalid configuration file"),
        "{err}"
    );
    let err = Config::load(Flags {
        write_consistency: Some("MOST".into()),
        ..Flags::default()
    })
    .expect_err("unknown level");
    assert!(
        err.to_string().contains("unknown consistency level 'MOST'"),
        "{err}"
    );
}

const CLUSTER_FILE: &str = "\
bus_port = 17100
seeds = [\"10.0.0.1:17001\", \"10.0.0.2:17001\"]
replication_factor = 5
vnodes = 64
dc = \"file-dc\"
rack = \"file-rack\"
cluster_name = \"file-cluster\"
announce_ip = \"10.0.0.9\"
gossip_interval_ms = 250
phi_threshold = 12.5
join_wait_ms = 100
";

#[test]
fn cluster_settings_come_from_the_file() {
    let (_dir, path) = toml_file(CLUSTER_FILE);
    let config = Config::load(Flags {
        config: Some(path),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 17100);
    assert_eq!(config.seeds, ["10.0.0.1:17001", "10.0.0.2:17001"]);
    assert_eq!(config.replication_factor, 5);
    assert_eq!(config.vnodes, 64);
    assert_eq!(config.dc, "file-dc");
    assert_eq!(config.rack, "file-rack");
    assert_eq!(config.cluster_name, "file-cluster");
    assert_eq!(config.announce_ip, IpAddr::from([10, 0, 0, 9]));
    assert_eq!(config.gossip_interval_ms, 250);
    assert_eq!(config.phi_threshold, 12.5);
    assert_eq!(config.join_wait_ms, 100);
}

#[test]
fn cluster_flags_override_the_file() {
    let (_dir, path) = toml_file(CLUSTER_FILE);
    let config = Config::load(Flags {
        config: Some(path),
        bus_port: Some(17200),
        seeds: Some(vec!["127.0.0.1:17001".into()]),
        replication_factor: Some(2),
        vnodes: Some(8),
        dc: Some("flag-dc".into()),
        rack: Some("flag-rack".into()),
        cluster_name: Some("flag-cluster".into()),
        announce_ip: Some(IpAddr::from([192, 168, 1, 2])),
        gossip_interval_ms: Some(50),
        phi_threshold: Some(3.0),
        join_wait_ms: Some(0),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 17200);
    assert_eq!(config.seeds, ["127.0.0.1:17001"]);
    assert_eq!(config.replication_factor, 2);
    assert_eq!(config.vnodes, 8);
    assert_eq!(config.dc, "flag-dc");
    assert_eq!(config.rack, "flag-rack");
    assert_eq!(config.cluster_name, "flag-cluster");
    assert_eq!(config.announce_ip, IpAddr::from([192, 168, 1, 2]));
    assert_eq!(config.gossip_interval_ms, 50);
    assert_eq!(config.phi_threshold, 3.0);
    assert_eq!(config.join_wait_ms, 0);
}

#[test]
fn seeds_may_be_one_comma_separated_string_in_the_file() {
    let (_dir, path) = toml_file("seeds = \"a.example:17001, [::1]:17002,\"\n");
    let config = Config::load(Flags {
        config: Some(path),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.seeds, ["a.example:17001", "[::1]:17002"]);
}

/// Set by [`environment_sits_between_flags_and_file`] on the child it runs.
const CHILD_MARKER: &str = "RINGKV_CONFIG_TEST_CHILD";

/// The environment is process-wide, and changing it while other test threads read it is a data
/// race, so the precedence test runs this test in a child process with the variables set
/// there. Run alone (without the marker) it has nothing to check and returns.
#[test]
fn environment_precedence_child() {
    let Some(file) = std::env::var_os(CHILD_MARKER) else {
        return;
    };
    // Flags and environment together: the flags given win, the environment fills the rest,
    // and the file only what neither sets.
    let flags = Flags::try_parse_from([
        "ringkv",
        "--config",
        file.to_str().expect("utf-8 path"),
        "--vnodes",
        "32",
        "--rack",
        "flag-rack",
        "--join-wait-ms",
        "10",
    ])
    .expect("parse");
    let config = Config::load(flags).expect("load");
    assert_eq!(config.vnodes, 32);
    assert_eq!(config.rack, "flag-rack");
    assert_eq!(config.bus_port, 17300);
    assert_eq!(config.seeds, ["127.0.0.1:17001", "127.0.0.1:17002"]);
    assert_eq!(config.replication_factor, 1);
    assert_eq!(config.dc, "env-dc");
    assert_eq!(config.cluster_name, "env-cluster");
    assert_eq!(config.announce_ip, IpAddr::from([10, 1, 1, 1]));
    assert_eq!(config.gossip_interval_ms, 100);
    assert_eq!(config.phi_threshold, 5.0);
    assert_eq!(config.join_wait_ms, 10);
    // From the file: the environment does not set `port`.
    assert_eq!(config.port, 7000);
}

#[test]
fn environment_sits_between_flags_and_file() {
    let (_dir, path) = toml_file(&format!("port = 7000\n{CLUSTER_FILE}"));
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "config::tests::environment_precedence_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, &path)
        .env("RINGKV_BUS_PORT", "17300")
        .env("RINGKV_SEEDS", "127.0.0.1:17001,127.0.0.1:17002")
        .env("RINGKV_REPLICATION_FACTOR", "1")
        .env("RINGKV_VNODES", "16")
        .env("RINGKV_DC", "env-dc")
        .env("RINGKV_RACK", "env-rack")
        .env("RINGKV_CLUSTER_NAME", "env-cluster")
        .env("RINGKV_ANNOUNCE_IP", "10.1.1.1")
        .env("RINGKV_GOSSIP_INTERVAL_MS", "100")
        .env("RINGKV_PHI_THRESHOLD", "5")
        .env("RINGKV_JOIN_WAIT_MS", "20")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bus_port_defaults_to_client_port_plus_10000() {
    let config = Config::load(Flags {
        port: Some(7001),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 17001);
    // An ephemeral client port gets an ephemeral bus port, not 10000.
    let config = Config::load(Flags {
        port: Some(0),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 0);
    let config = Config::load(Flags {
        port: Some(0),
        bus_port: Some(17005),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 17005);
}

#[test]
fn bad_bus_ports_are_named() {
    // Above 55535 the +10000 default does not exist: any free bus port.
    let config = Config::load(Flags {
        port: Some(60000),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 0);
    load_err(
        Flags {
            port: Some(7000),
            bus_port: Some(7000),
            ..Flags::default()
        },
        "invalid bus_port: must differ from the client port 7000",
    );
    // A high client port is fine with an explicit bus port.
    let config = Config::load(Flags {
        port: Some(60000),
        bus_port: Some(50000),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.bus_port, 50000);
}

#[test]
fn seeds_are_checked_and_empty_ones_dropped() {
    let config = Config::load(Flags {
        seeds: Some(vec![" 127.0.0.1:17001 ".into(), String::new()]),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.seeds, ["127.0.0.1:17001"]);
    let config = Config::load(Flags {
        seeds: Some(vec![String::new()]),
        ..Flags::default()
    })
    .expect("load");
    assert!(
        config.seeds.is_empty(),
        "--seeds \"\" is a cluster of its own"
    );
    for (seed, why) in [
        ("127.0.0.1", "no port"),
        (":17001", "no host"),
        ("host:0", "the port must be 1 to 65535"),
        ("host:99999", "the port must be 1 to 65535"),
        ("host:abc", "the port must be 1 to 65535"),
        ("::1:17001", "an IPv6 address goes in brackets"),
        ("[nope]:17001", "not an IPv6 address in the brackets"),
        ("two words:17001", "no host"),
    ] {
        load_err(
            Flags {
                seeds: Some(vec![seed.into()]),
                ..Flags::default()
            },
            &format!("invalid seeds: '{seed}' is not HOST:BUSPORT ({why}"),
        );
    }
}

#[test]
fn seeds_flag_splits_on_commas() {
    let flags = Flags::try_parse_from(["ringkv", "--seeds", "a:17001,b:17002"]).expect("parse");
    assert_eq!(
        flags.seeds,
        Some(vec!["a:17001".to_owned(), "b:17002".to_owned()])
    );
    let flags = Flags::try_parse_from(["ringkv", "--seeds", ""]).expect("parse");
    let config = Config::load(flags).expect("load");
    assert!(
        config.seeds.is_empty(),
        "--seeds '' is a cluster of its own"
    );
}

#[test]
fn replication_factor_and_vnodes_are_bounded() {
    load_err(
        Flags {
            replication_factor: Some(0),
            ..Flags::default()
        },
        "invalid replication_factor: must be at least 1",
    );
    load_err(
        Flags {
            vnodes: Some(0),
            ..Flags::default()
        },
        "invalid vnodes: must be 1 to 4096, not 0",
    );
    load_err(
        Flags {
            vnodes: Some(4097),
            ..Flags::default()
        },
        "invalid vnodes: must be 1 to 4096, not 4097",
    );
    let config = Config::load(Flags {
        vnodes: Some(4096),
        replication_factor: Some(1),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!((config.vnodes, config.replication_factor), (4096, 1));
}

#[test]
fn names_must_be_short_and_without_spaces() {
    let long = "x".repeat(65);
    for bad in ["", "two words", long.as_str()] {
        load_err(
            Flags {
                dc: Some(bad.into()),
                ..Flags::default()
            },
            "invalid dc:",
        );
        load_err(
            Flags {
                rack: Some(bad.into()),
                ..Flags::default()
            },
            "invalid rack:",
        );
        load_err(
            Flags {
                cluster_name: Some(bad.into()),
                ..Flags::default()
            },
            "invalid cluster_name:",
        );
    }
}

#[test]
fn a_wildcard_bind_needs_an_announce_ip() {
    for any in [IpAddr::from([0, 0, 0, 0]), "::".parse().expect("ip")] {
        load_err(
            Flags {
                bind: Some(any),
                ..Flags::default()
            },
            "give --announce-ip",
        );
        load_err(
            Flags {
                bind: Some(any),
                announce_ip: Some(any),
                ..Flags::default()
            },
            "invalid announce_ip:",
        );
        let config = Config::load(Flags {
            bind: Some(any),
            announce_ip: Some(IpAddr::from([10, 0, 0, 7])),
            ..Flags::default()
        })
        .expect("load");
        assert_eq!(config.announce_ip, IpAddr::from([10, 0, 0, 7]));
    }
    let config = Config::load(Flags {
        bind: Some(IpAddr::from([10, 0, 0, 8])),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(config.announce_ip, IpAddr::from([10, 0, 0, 8]));
}

#[test]
fn failure_detection_settings_are_bounded() {
    for (flags, expected) in [
        (
            Flags {
                gossip_interval_ms: Some(5),
                ..Flags::default()
            },
            "invalid gossip_interval_ms: must be 10 to 60000, not 5",
        ),
        (
            Flags {
                gossip_interval_ms: Some(60_001),
                ..Flags::default()
            },
            "invalid gossip_interval_ms: must be 10 to 60000, not 60001",
        ),
        (
            Flags {
                phi_threshold: Some(0.0),
                ..Flags::default()
            },
            "invalid phi_threshold: must be above 0 and at most 100, not 0",
        ),
        (
            Flags {
                phi_threshold: Some(f64::NAN),
                ..Flags::default()
            },
            "invalid phi_threshold: must be above 0 and at most 100, not NaN",
        ),
        (
            Flags {
                join_wait_ms: Some(600_001),
                ..Flags::default()
            },
            "invalid join_wait_ms: must be at most 600000, not 600001",
        ),
    ] {
        load_err(flags, expected);
    }
}
