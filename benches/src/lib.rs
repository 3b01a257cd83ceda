//! Shared pieces of ringkv's benchmark binaries: the db_bench-style engine workloads that
//! run ringkv's engine side by side with fjall.
//!
//! # Layout
//!
//! - [`keygen`]: deterministic keys, key orders and values (the same bytes for every engine).
//! - [`engine`]: the [`engine::Engine`] interface and its ringkv and fjall adapters.
//! - [`workload`]: the workloads (`fillseq`, `fillrandom`, `overwrite`, `readrandom`,
//!   `readmissing`, `seekrandom`, `fillsync-Nt`, `ttl`) and [`workload::run`], which runs one.
//! - [`measure`]: what is measured outside the engines (`/proc/self/io`, `VmHWM`, directory
//!   size, latency histograms).
//! - [`report`]: a run's [`report::WorkloadResult`], its encoding between processes, and the
//!   side-by-side table.
//!
//! The `db_bench` binary runs each (engine, workload) in a fresh child process so peak RSS
//! belongs to one workload; the parent collects the results and prints the table.

pub mod engine;
pub mod keygen;
pub mod measure;
pub mod report;
pub mod workload;

/// The benchmark's error type: any error, boxed. Benchmarks report and stop; they never
/// match on error kinds.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
