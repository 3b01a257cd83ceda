//! The binary's allocator: mimalloc, with its purge delay raised from 1 s to 10 s.
//!
//! Owns the `#[global_allocator]` and the one tuning applied to it at start. Libraries stay
//! allocator-agnostic; nothing outside `src/main.rs` and this module names mimalloc. This is the
//! only `unsafe` in the workspace: two calls into mimalloc's C option API, which the `mimalloc`
//! crate does not wrap for this option.
//!
//! *Why the purge delay:* mimalloc returns ("purges") freed pages to the OS 1 s after they empty.
//! A node under steady load frees and reuses the same pages every few seconds (flushed memtables,
//! SSTable builders, compaction buffers), so each purge came back as minor page faults on the
//! next allocation: 25,000-31,000 faults per 400k `SET -P16` of 1 KiB values with the default,
//! 100-400 with 10 s, and about 20% less CPU (A/B, `MIMALLOC_PURGE_DELAY=1000` as the default). Memory still goes back to the OS once it has been idle for 10 s.

// The two FFI calls below are the workspace's only unsafe code (the lint denies it elsewhere).
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long};

/// mimalloc instead of glibc's malloc: per-request allocations (buffers, requests, replies)
/// were a fifth of the node's instructions under glibc (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (index 15 in both v2 and v3;
/// `libmimalloc-sys` exports no constant for it). The test below checks the index by the
/// option's documented default.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// The purge delay ringkv runs with, in milliseconds.
pub const PURGE_DELAY_MS: c_long = 10_000;

unsafe extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// Sets the purge delay, unless the operator chose one through mimalloc's own environment
/// variables (`MIMALLOC_PURGE_DELAY`, or its older name `MIMALLOC_RESET_DELAY`; mimalloc
/// matches them in any case, so this does too).
pub fn configure() {
    if operator_set_purge_delay(std::env::vars_os().map(|(k, _)| k)) {
        return;
    }
    // SAFETY: mimalloc's option API takes any option index below its last and any value;
    // setting an option is thread-safe and may happen after allocation has begun.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// The purge delay mimalloc uses now, in milliseconds.
#[cfg(test)]
fn purge_delay_ms() -> c_long {
    // SAFETY: reading an option in range has no preconditions.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

fn operator_set_purge_delay(names: impl Iterator<Item = std::ffi::OsString>) -> bool {
    names.into_iter().any(|name| {
        name.to_str().is_some_and(|n| {
            n.eq_ignore_ascii_case("MIMALLOC_PURGE_DELAY")
                || n.eq_ignore_ascii_case("MIMALLOC_RESET_DELAY")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_index_is_the_purge_delay_and_configure_sets_it() {
        if operator_set_purge_delay(std::env::vars_os().map(|(k, _)| k)) {
            return; // the operator's value would be read instead of the default
        }
        // mimalloc v3's documented default purge delay is 1000 ms (v2's is 10 ms): if the index
        // named another option, its value would not be one of these.
        let default = purge_delay_ms();
        assert!(
            default == 1000 || default == 10,
            "option 15 reads {default}"
        );
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }

    #[test]
    fn an_operator_setting_in_any_case_wins() {
        let names = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(operator_set_purge_delay(
            names(&["PATH", "mimalloc_purge_delay"]).into_iter()
        ));
        assert!(operator_set_purge_delay(
            names(&["MIMALLOC_RESET_DELAY"]).into_iter()
        ));
        assert!(!operator_set_purge_delay(
            names(&["MIMALLOC_VERBOSE", "HOME"]).into_iter()
        ));
    }
}
