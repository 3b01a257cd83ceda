//! `db_bench`: ringkv's engine and fjall side by side on db_bench-style workloads.
//!
//! The parent process parses the flags, then runs every (workload, engine) pair in a fresh
//! child process (this same binary, re-executed with the hidden `--child` flag) so that each
//! workload's peak RSS is its own; workloads that read or overwrite the fill reuse the
//! directory `fillrandom` left. The child prints its result as `@field value` lines; the
//! parent prints each result as it arrives and the side-by-side table at the end.
//! This file owns only the command line and the process orchestration: what a workload does
//! and how it is measured live in the `ringkv_bench` library.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, ValueEnum};
use ringkv_bench::engine::EngineKind;
use ringkv_bench::report::{render_table, WorkloadResult};
use ringkv_bench::workload::{self, engine_dir, expand_list, BenchParams, Workload};
use ringkv_bench::BoxError;

/// Which engines to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    Ringkv,
    Fjall,
    Both,
}

impl EngineChoice {
    fn engines(self) -> Vec<EngineKind> {
        match self {
            EngineChoice::Ringkv => vec![EngineKind::Ringkv],
            EngineChoice::Fjall => vec![EngineKind::Fjall],
            EngineChoice::Both => vec![EngineKind::Ringkv, EngineKind::Fjall],
        }
    }
}

/// db_bench-style workloads for ringkv's LSM engine, side by side with fjall.
#[derive(Parser, Debug)]
#[command(name = "db_bench", version)]
struct Args {
    /// Engines to run.
    #[arg(long, value_enum, default_value_t = EngineChoice::Both)]
    engine: EngineChoice,
    /// Keys in a fill, and operations in overwrite/readrandom/readmissing/ttl.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 1000)]
    value_size: usize,
    /// Bytes per key (decimal, zero-padded; must fit 2 x num).
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Comma-separated workloads, run in this order.
    #[arg(long, default_value = Workload::DEFAULT_LIST)]
    workloads: String,
    /// Data directory; each engine gets a subdirectory that is wiped first.
    /// Default: <temp dir>/ringkv-db-bench.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed for keys, key orders and values.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Writes per fsync-per-write workload, all threads together. Default: num / 100 (at least 100).
    #[arg(long)]
    sync_ops: Option<u64>,
    /// Writer threads of the fsync-per-write workloads; `fillsync` runs once per entry.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    sync_threads: Vec<usize>,
    /// Seeks in seekrandom. Default: num / 20 (at least 100).
    #[arg(long)]
    seeks: Option<u64>,
    /// Entries read after each seek.
    #[arg(long, default_value_t = 100)]
    seek_nexts: usize,
    /// Lifetime of the expiring records of the ttl workload, ms.
    #[arg(long, default_value_t = 3000)]
    ttl_ms: u64,
    /// Block cache MiB, both engines.
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
    /// Memtable MiB, both engines.
    #[arg(long, default_value_t = 64)]
    memtable_mib: u64,
    /// Background fsync interval of the non-sync workloads, ms (ringkv FsyncMode::Periodic,
    /// and fjall's timer).
    #[arg(long, default_value_t = 1000)]
    sync_interval_ms: u64,
    /// Run fjall without the periodic fsync timer (its bare default durability).
    #[arg(long)]
    fjall_no_timer_sync: bool,
    /// Keep the data directories after the run.
    #[arg(long)]
    keep: bool,
    /// Internal: run one workload as ENGINE:WORKLOAD and print its result.
    #[arg(long, hide = true)]
    child: Option<String>,
}

impl Args {
    fn params(&self) -> BenchParams {
        BenchParams {
            num: self.num,
            key_size: self.key_size,
            value_size: self.value_size,
            seed: self.seed,
            sync_ops: self.sync_ops.unwrap_or((self.num / 100).max(100)),
            seeks: self.seeks.unwrap_or((self.num / 20).max(100)),
            seek_nexts: self.seek_nexts,
            ttl_ms: self.ttl_ms,
            ttl_permanent_percent: 10,
            cache_bytes: self.cache_mib << 20,
            memtable_bytes: self.memtable_mib << 20,
            sync_interval_ms: self.sync_interval_ms,
            fjall_timer_sync: !self.fjall_no_timer_sync,
        }
    }

    fn base_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ringkv-db-bench"))
    }

    fn validate(&self) -> Result<(), BoxError> {
        if self.num == 0 {
            return Err("--num must be at least 1".into());
        }
        if self.sync_interval_ms == 0 {
            return Err("--sync-interval-ms must be at least 1".into());
        }
        if self.sync_threads.contains(&0) {
            return Err("--sync-threads entries must be at least 1".into());
        }
        let p = self.params();
        ringkv_bench::keygen::KeySpace::new(p.num.max(p.sync_ops), p.key_size)?;
        expand_list(&self.workloads, &self.sync_threads)?;
        Ok(())
    }

    /// The flags a child needs to run `workload` on `engine` with exactly these parameters.
    fn child_args(&self, engine: EngineKind, workload: Workload) -> Vec<String> {
        let p = self.params();
        let mut args = vec![
            format!("--child={engine}:{workload}"),
            format!("--num={}", p.num),
            format!("--value-size={}", p.value_size),
            format!("--key-size={}", p.key_size),
            format!("--dir={}", self.base_dir().display()),
            format!("--seed={}", p.seed),
            format!("--sync-ops={}", p.sync_ops),
            format!("--seeks={}", p.seeks),
            format!("--seek-nexts={}", p.seek_nexts),
            format!("--ttl-ms={}", p.ttl_ms),
            format!("--cache-mib={}", self.cache_mib),
            format!("--memtable-mib={}", self.memtable_mib),
            format!("--sync-interval-ms={}", p.sync_interval_ms),
        ];
        if self.fjall_no_timer_sync {
            args.push("--fjall-no-timer-sync".into());
        }
        args
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match &args.child {
        Some(spec) => run_child(&args, spec),
        None => run_parent(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("db_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Child: runs one workload and prints its result for the parent.
fn run_child(args: &Args, spec: &str) -> Result<(), BoxError> {
    let (engine, workload) = spec
        .split_once(':')
        .ok_or_else(|| format!("--child wants ENGINE:WORKLOAD, got {spec:?}"))?;
    let engine: EngineKind = engine.parse()?;
    let workload: Workload = workload.parse()?;
    let result = workload::run(
        engine,
        workload,
        &engine_dir(&args.base_dir(), engine),
        &args.params(),
    )?;
    print!("{}", result.to_lines());
    Ok(())
}

/// Parent: runs every (workload, engine) pair in its own process and prints the results.
fn run_parent(args: &Args) -> Result<(), BoxError> {
    args.validate()?;
    let workloads = expand_list(&args.workloads, &args.sync_threads)?;
    let engines = args.engine.engines();
    let base = args.base_dir();
    for &engine in &engines {
        let dir = engine_dir(&base, engine);
        remove_dir_if_present(&dir)?;
        std::fs::create_dir_all(&dir)?;
    }
    print_header(args, &engines, &base);

    let mut results = Vec::new();
    let mut filled: HashSet<EngineKind> = HashSet::new();
    for &workload in &workloads {
        for &engine in &engines {
            if workload.needs_fill() && !filled.contains(&engine) {
                // Reads and overwrites need fillrandom's data; make it, but leave it out of
                // the table, which only shows what was asked for.
                let setup = spawn_child(args, engine, Workload::FillRandom)?;
                println!("(setup for {workload})\n{}", setup.render_block());
                filled.insert(engine);
            }
            let result = spawn_child(args, engine, workload)?;
            println!("{}", result.render_block());
            if workload == Workload::FillRandom {
                filled.insert(engine);
            }
            results.push(result);
        }
    }

    println!("\n## Side by side (ratio = ringkv ops/s / fjall ops/s; cells \"r / f\" = ringkv / fjall)\n");
    println!("{}", render_table(&results));
    if !args.keep {
        for &engine in &engines {
            remove_dir_if_present(&engine_dir(&base, engine))?;
        }
        // Only succeeds if nothing else lives there: a user's own --dir is never emptied.
        let _ = std::fs::remove_dir(&base);
    }
    Ok(())
}

fn spawn_child(
    args: &Args,
    engine: EngineKind,
    workload: Workload,
) -> Result<WorkloadResult, BoxError> {
    eprintln!("running {engine} {workload} ...");
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args(args.child_args(engine, workload))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("{engine} {workload} failed ({})", output.status).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(WorkloadResult::parse_lines(&stdout).map_err(|e| format!("{engine} {workload}: {e}"))?)
}

fn remove_dir_if_present(dir: &Path) -> Result<(), BoxError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display()).into()),
    }
}

fn print_header(args: &Args, engines: &[EngineKind], base: &Path) {
    let p = args.params();
    let names: Vec<&str> = engines.iter().map(|e| e.name()).collect();
    println!("# db_bench: {}", names.join(" vs "));
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; numbers are meaningless (use --release)");
    }
    println!(
        "keys {} x {} B, values {} B, seed {:#x}; fsync workloads {} writes at {:?} threads; \
         seekrandom {} seeks x {} entries; ttl {} ms",
        p.num,
        p.key_size,
        p.value_size,
        p.seed,
        p.sync_ops,
        args.sync_threads,
        p.seeks,
        p.seek_nexts,
        p.ttl_ms
    );
    println!(
        "both engines: block cache {} MiB, memtable {} MiB; non-sync workloads fsync every {} ms{}; \
         fillsync fsyncs every write",
        args.cache_mib,
        args.memtable_mib,
        p.sync_interval_ms,
        if p.fjall_timer_sync { "" } else { " (fjall: no timer, OS buffers only)" }
    );
    println!(
        "cores {}; data in {}\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        base.display()
    );
}
