//! The binary's allocator: mimalloc, with its purge delay raised from 1 s to 10 s, asked for
//! plain `mi_malloc` whenever a layout's alignment allows it.
//!
//! Owns the `#[global_allocator]` and the one tuning applied to it at start. Libraries stay
//! allocator-agnostic; nothing outside `src/main.rs` and this module names mimalloc. This is the
//! only `unsafe` in the workspace: the global allocator's calls into mimalloc, and two calls
//! into mimalloc's C option API, which the `mimalloc` crate does not wrap for this option.
//!
//! *Why the purge delay:* mimalloc returns ("purges") freed pages to the OS 1 s after they empty.
//! A node under steady load frees and reuses the same pages every few seconds (flushed memtables,
//! SSTable builders, compaction buffers), so each purge came back as minor page faults on the
//! next allocation: 25,000-31,000 faults per 400k `SET -P16` of 1 KiB values with the default,
//! 100-400 with 10 s, and about 20% less CPU (A/B, `MIMALLOC_PURGE_DELAY=1000` as the default). Memory still goes back to the OS once it has been idle for 10 s.
//!
//! *Why not `mimalloc::MiMalloc` itself:* it asks `mi_malloc_aligned` for every allocation,
//! whose fast path only covers blocks up to 1 KiB; every larger block (a 1 KiB value with its
//! key and framing, a frame or WAL buffer) took its generic path and then its over-allocating
//! fallback, about eight times per replicated `SET` on its coordinator (callgrind).
//! `mi_malloc` already aligns every block to 16 bytes (8 for blocks of 8 bytes or less), so
//! layouts within that go to it, as Rust's own `System` allocator does with `malloc`.

// The FFI calls below are the workspace's only unsafe code (the lint denies it elsewhere).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_int, c_long, c_void};

// Links mimalloc's C library (built by the crate's `libmimalloc-sys`), which the declarations
// below call into.
use mimalloc as _;

/// mimalloc instead of glibc's malloc: per-request allocations (buffers, requests, replies)
/// were a fifth of the node's instructions under glibc (benches/README.md).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// The alignment `mi_malloc` gives every block of at least this many bytes
/// (`MI_MAX_ALIGN_SIZE`); smaller blocks are aligned to their size rounded up to 8.
const MI_MAX_ALIGN_SIZE: usize = 16;

/// mimalloc as the global allocator; see the module documentation.
struct MiMalloc;

/// Whether `mi_malloc` of `size` bytes is aligned enough for `align` (Rust's `System`
/// allocator asks the same of `malloc`).
fn plain_alignment_suffices(align: usize, size: usize) -> bool {
    align <= MI_MAX_ALIGN_SIZE && align <= size
}

// SAFETY: every block comes from mimalloc, aligned as the layout asks (`mi_malloc` gives 16
// bytes, or the block's size rounded up to 8 when smaller, which covers any alignment up to
// the size), and is freed or resized by mimalloc, which accepts blocks from any of its
// allocation functions.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C allocation calls; a null result is passed on as `alloc` allows.
        unsafe {
            if plain_alignment_suffices(layout.align(), layout.size()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain_alignment_suffices(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract), so from mimalloc.
        unsafe { mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; the new block keeps the layout's alignment
        // by the same rule as `alloc`.
        unsafe {
            if plain_alignment_suffices(layout.align(), new_size) {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

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
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_zalloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, newsize: usize) -> *mut c_void;
    fn mi_free(p: *mut c_void);
    fn mi_malloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    fn mi_zalloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    fn mi_realloc_aligned(p: *mut c_void, newsize: usize, alignment: usize) -> *mut c_void;
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
    fn blocks_are_aligned_as_their_layouts_ask_and_keep_their_bytes_through_realloc() {
        let layout = |size, align| Layout::from_size_align(size, align).expect("valid layout");
        for size in [
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            24,
            40,
            1000,
            1024,
            1100,
            4096,
            70_000,
            5 << 20,
        ] {
            for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
                // SAFETY: non-zero sizes; each block is used within its size and freed with
                // the layout it has at that point.
                unsafe {
                    let zeroed = GLOBAL.alloc_zeroed(layout(size, align));
                    assert_eq!(zeroed as usize % align, 0, "zalloc {size} at {align}");
                    assert!(std::slice::from_raw_parts(zeroed, size)
                        .iter()
                        .all(|&b| b == 0));
                    GLOBAL.dealloc(zeroed, layout(size, align));

                    let block = GLOBAL.alloc(layout(size, align));
                    assert_eq!(block as usize % align, 0, "alloc {size} at {align}");
                    for i in 0..size {
                        *block.add(i) = i as u8;
                    }
                    let (grown_size, shrunk_size) = (size * 3, size / 2 + 1);
                    let grown = GLOBAL.realloc(block, layout(size, align), grown_size);
                    assert_eq!(grown as usize % align, 0, "grow {size} at {align}");
                    assert!((0..size).all(|i| *grown.add(i) == i as u8));
                    let shrunk = GLOBAL.realloc(grown, layout(grown_size, align), shrunk_size);
                    assert_eq!(shrunk as usize % align, 0, "shrink {size} at {align}");
                    assert!((0..shrunk_size).all(|i| *shrunk.add(i) == i as u8));
                    GLOBAL.dealloc(shrunk, layout(shrunk_size, align));
                }
            }
        }
    }

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
