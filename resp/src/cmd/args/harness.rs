//! Test harness for the data families: one real single-node cluster (`LocalCluster` over the
//! `ringkv-lsm` engine in a fresh directory, with a manual clock) and one connection's state,
//! driven command by command through the families' `execute` functions. Test-only.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ringkv_cluster::{ClusterConfig, Consistency, LocalCluster, ManualClock};

use crate::cmd::{CommandError, CommandSpec, Ctx, Family};
use crate::conn::ConnState;
use crate::reply::Reply;
use crate::server::{ServerConfig, ServerState};

/// The clock's start: 2023-11-14, so unix-second arithmetic looks like real use.
pub(crate) const START_MS: u64 = 1_700_000_000_000;

/// A node and a connection to it.
pub(crate) struct Harness {
    /// The cluster's clock; advance it to expire keys.
    pub clock: Arc<ManualClock>,
    cluster: LocalCluster,
    server: ServerState,
    conn: ConnState,
    dir: PathBuf,
}

impl Harness {
    /// A fresh, empty node.
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringkv-resp-cmd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let clock = Arc::new(ManualClock::new(START_MS));
        let config = ClusterConfig::new(&dir, "test-node")
            .with_clock(clock.clone())
            .with_seed(7);
        let cluster = LocalCluster::open(config).expect("open the test cluster");
        let server = ServerState::new(ServerConfig::default());
        let any = "127.0.0.1:1".parse().expect("test address");
        let client = server
            .clients
            .register(any, any, -1, usize::MAX)
            .expect("register the test client");
        let conn = ConnState::new(client, true, Consistency::default());
        Harness {
            clock,
            cluster,
            server,
            conn,
            dir,
        }
    }

    /// Runs one command of the data families; an error comes back as `Reply::Error`.
    pub(crate) async fn run(&mut self, parts: &[&str]) -> Reply {
        let args: Vec<Bytes> = parts
            .iter()
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect();
        self.run_args(&args).await
    }

    /// [`Harness::run`] with binary arguments.
    pub(crate) async fn run_args(&mut self, args: &[Bytes]) -> Reply {
        let name = args
            .first()
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .unwrap_or_default();
        let spec: &CommandSpec = match [
            crate::cmd::string::COMMANDS,
            crate::cmd::keys::COMMANDS,
            crate::cmd::expire::COMMANDS,
            crate::cmd::ringkv::COMMANDS,
        ]
        .iter()
        .flat_map(|rows| rows.iter())
        .find(|spec| spec.name == name)
        {
            Some(spec) => spec,
            None => return Reply::error(format!("ERR unknown command '{name}'")),
        };
        if !spec.accepts_arity(args.len()) {
            return Reply::error(crate::errors::wrong_arity(spec.name));
        }
        let mut ctx = Ctx {
            cluster: &self.cluster,
            conn: &mut self.conn,
            server: &self.server,
        };
        let result = match spec.family {
            Family::String => crate::cmd::string::execute(&mut ctx, spec, args).await,
            Family::Keys => crate::cmd::keys::execute(&mut ctx, spec, args).await,
            Family::Expire => crate::cmd::expire::execute(&mut ctx, spec, args).await,
            Family::Ringkv => crate::cmd::ringkv::execute(&mut ctx, spec, args).await,
            Family::Cluster => crate::cmd::cluster::execute(&mut ctx, spec, args).await,
            Family::Connection | Family::Server => unreachable!("not a data family"),
        };
        match result {
            Ok(reply) => reply,
            Err(CommandError::Reply(text)) => Reply::error(text),
            Err(other) => Reply::error(format!("ERR {other}")),
        }
    }

    /// The connection's levels.
    pub(crate) fn consistency(&self) -> Consistency {
        self.conn.consistency
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.cluster.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `+OK`.
pub(crate) fn ok() -> Reply {
    Reply::ok()
}

/// A bulk string reply.
pub(crate) fn bulk(text: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

/// An integer reply.
pub(crate) fn int(n: i64) -> Reply {
    Reply::Integer(n)
}

/// An error reply.
pub(crate) fn err(text: &str) -> Reply {
    Reply::error(text)
}

/// An array of bulk strings.
pub(crate) fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|i| bulk(i)).collect())
}

impl Harness {
    /// The cluster clock's current unix ms.
    pub(crate) fn clock_ms(&self) -> u64 {
        use ringkv_cluster::Clock;
        self.clock.now_ms()
    }
}

/// The connection task is spawned on a multi-threaded runtime, so every family's future must
/// be `Send`; this fails to compile otherwise.
#[tokio::test]
async fn family_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let mut h = Harness::new();
    let args = [Bytes::from_static(b"get"), Bytes::from_static(b"k")];
    let mut ctx = Ctx {
        cluster: &h.cluster,
        conn: &mut h.conn,
        server: &h.server,
    };
    let spec = &crate::cmd::string::COMMANDS[0];
    let string = crate::cmd::string::execute(&mut ctx, spec, &args);
    assert_send(&string);
    drop(string);
    let keys = crate::cmd::keys::execute(&mut ctx, spec, &args);
    assert_send(&keys);
    drop(keys);
    let expire = crate::cmd::expire::execute(&mut ctx, spec, &args);
    assert_send(&expire);
    drop(expire);
    let ringkv = crate::cmd::ringkv::execute(&mut ctx, spec, &args);
    assert_send(&ringkv);
}
