//! Fuzzes ringkv's request parser: arbitrary bytes, read whole, in arbitrary chunks and one byte
//! at a time, must never panic and must decode the same every way. The harness is shared with
//! the stable test `resp/tests/parser_random_inputs.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/parser_harness.rs"]
mod parser_harness;

fuzz_target!(|data: &[u8]| {
    parser_harness::check(data);
});
