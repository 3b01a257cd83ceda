//! The binary's allocator: mimalloc, with its purge delay raised from 1 s to 10 s, and the
//! switch that turns transparent huge pages off for the process.
//!
//! Owns the `#[global_allocator]` (mimalloc, entered without its aligned API where no
//! alignment is asked for) and the tuning applied to it at start. Libraries stay
//! allocator-agnostic; nothing outside `src/main.rs` and this module names mimalloc. This is the
//! only `unsafe` in the workspace: calls into mimalloc's C API, for options the `mimalloc`
//! crate does not wrap and for its plain allocation entry points.
//!
//! *Why the purge delay:* mimalloc returns ("purges") freed pages to the OS 1 s after they empty.
//! A node under steady load frees and reuses the same pages every few seconds (flushed memtables,
//! SSTable builders, compaction buffers), so each purge came back as minor page faults on the
//! next allocation: 25,000-31,000 faults per 400k `SET -P16` of 1 KiB values with the default,
//! 100-400 with 10 s, and about 20% less CPU (A/B, `MIMALLOC_PURGE_DELAY=1000` as the default). Memory still goes back to the OS once it has been idle for 10 s.
//!
//! *Transparent huge pages* stay on unless the operator sets `disable_thp`
//! ([`disable_transparent_huge_pages`], as redis-server's `disable-thp yes`). It is a trade
//! (docs/DESIGN.md, "Allocator"): mimalloc asks for huge pages on its arenas (`madvise`), so a
//! thread touching fresh memory zeroes 2 MiB in one fault (`clear_page_erms` was 12-15% of the
//! workers' samples under a cluster `SET` line, and THP off cut its p99 by a third to a half),
//! while cached reads miss the TLB more without them (a pinned 10-key `MGET` took about a
//! quarter more CPU).

// The FFI calls below are the workspace's only unsafe code (the lint denies it elsewhere).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_int, c_long, c_void};

/// mimalloc instead of glibc's malloc: per-request allocations (buffers, requests, replies)
/// were a fifth of the node's instructions under glibc (benches/README.md).
#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

/// Alignment every mimalloc block has without asking: its size classes are whole machine
/// words (`mi_bin` in its `page-queue.c`) and its pages start word-aligned.
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc through its plain entry points when the layout asks for no more than word
/// alignment, which is nearly every Rust allocation, and through `mimalloc::MiMalloc` (its
/// `*_aligned` entry points) otherwise.
///
/// *Why:* `MiMalloc` sends every allocation through `mi_malloc_aligned`. In mimalloc v3 that
/// takes its fast path only while the size class's page has a free block at hand; otherwise,
/// for a size that is not a power of two, it over-allocates `size + align - 1` from the next
/// size class, so the first page is never refilled and the slow path repeats. Callgrind of
/// `SET -P16`: 44% of the worker's allocations took it, about 185 instructions each.
struct Mimalloc;

// SAFETY: every method forwards to mimalloc, whose plain entry points return blocks aligned to
// at least `WORD_ALIGN` (checked by the tests below for every size class up to 64 KiB), and
// to `MiMalloc` for larger alignments; `mi_free` frees blocks from either.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            // SAFETY: mi_malloc takes any size.
            unsafe { mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            // SAFETY: mi_zalloc takes any size.
            unsafe { mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: as `alloc`.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            // SAFETY: `ptr` came from mimalloc; mi_realloc keeps (word) alignment.
            unsafe { mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: as `alloc`.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (index 15 in both v2 and v3;
/// `libmimalloc-sys` exports no constant for it). The test below checks the index by the
/// option's documented default.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// The purge delay ringkv runs with, in milliseconds.
pub const PURGE_DELAY_MS: c_long = 10_000;

/// `mi_option_allow_thp` in mimalloc v3's `mi_option_e` (the 44th, index 43). The test below
/// checks the index by its neighbours' documented defaults.
const MI_OPTION_ALLOW_THP: c_int = 43;

unsafe extern "C" {
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_zalloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, new_size: usize) -> *mut c_void;
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

/// Turns transparent huge pages off for the process (the `disable_thp` setting): mimalloc
/// stops asking for them on new memory, and the kernel's per-process switch
/// (`PR_SET_THP_DISABLE`, what redis-server's `disable-thp yes` sets) covers the memory it
/// already asked them for. Returns the kernel's refusal (before Linux 3.15, or not Linux), after
/// which THP stays as the system has it; nothing else depends on it. It overrides an
/// operator's `MIMALLOC_ALLOW_THP=1`.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: as in `configure`.
    unsafe { mi_option_set(MI_OPTION_ALLOW_THP, 0) }
    disable_thp_for_the_process()
}

#[cfg(target_os = "linux")]
fn disable_thp_for_the_process() -> std::io::Result<()> {
    rustix::thread::disable_transparent_huge_pages(true).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn disable_thp_for_the_process() -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
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
    fn the_option_index_is_allow_thp_and_disabling_sets_it_and_the_process_switch() {
        // The neighbours of `allow_thp`: `page_cross_thread_max_reclaim` (32 in `options.c`)
        // before it and `minimal_purge_size` (0) after it; nothing here changes either.
        // SAFETY: reading options in range has no preconditions.
        let (before, after) = unsafe {
            (
                mi_option_get(MI_OPTION_ALLOW_THP - 1),
                mi_option_get(MI_OPTION_ALLOW_THP + 1),
            )
        };
        assert_eq!((before, after), (32, 0), "options 42 and 44");
        let switched = disable_transparent_huge_pages();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_ALLOW_THP) }, 0);
        #[cfg(target_os = "linux")]
        {
            assert!(switched.is_ok(), "{switched:?}");
            assert_eq!(
                rustix::thread::transparent_huge_pages_are_disabled().ok(),
                Some(true)
            );
        }
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

    #[test]
    fn every_layout_gets_a_block_as_aligned_as_it_asks_and_zeroed_when_asked() {
        let mut sizes: Vec<usize> = (1..=1100).collect();
        sizes.extend((1..=64).map(|k| k * 1024 + 24));
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 64, 4096] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero size; every block is freed with its layout.
                unsafe {
                    let p = GLOBAL.alloc(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size}/{align}"
                    );
                    p.write_bytes(0xAB, size);
                    let grown = GLOBAL.realloc(p, layout, size * 2 + 8);
                    assert!(!grown.is_null() && (grown as usize).is_multiple_of(align));
                    assert_eq!(*grown.add(size - 1), 0xAB, "realloc keeps the contents");
                    GLOBAL.dealloc(
                        grown,
                        Layout::from_size_align(size * 2 + 8, align).expect("layout"),
                    );
                    let z = GLOBAL.alloc_zeroed(layout);
                    assert!(!z.is_null() && (z as usize).is_multiple_of(align));
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    GLOBAL.dealloc(z, layout);
                }
            }
        }
    }
}
