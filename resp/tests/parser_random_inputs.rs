//! Runs the parser fuzz harness (`tests/common/parser_harness.rs`, the same code the
//! `cargo fuzz` target runs) over 100,000 inputs from a seeded generator, on stable Rust, so
//! every CI run fuzzes a little. Inputs are biased towards the protocol's own bytes (`*`, `$`,
//! digits, line endings, quotes, blanks) so they get past the first header often.

use std::collections::BTreeSet;

#[path = "common/parser_harness.rs"]
mod parser_harness;

/// splitmix64: a seeded generator with no dependency, so a failing input can be replayed from
/// the seed and the case number printed on failure.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pieces inputs are assembled from: valid fragments, near-misses and raw bytes.
const FRAGMENTS: &[&[u8]] = &[
    b"*",
    b"$",
    b"\r\n",
    b"\r",
    b"\n",
    b"*1\r\n",
    b"*2\r\n",
    b"*3\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"$0\r\n\r\n",
    b"$1\r\nx\r\n",
    b"$3\r\nGET\r\n",
    b"$4\r\nPING\r\n",
    b"$5\r\n",
    b"$-1\r\n",
    b"$2147483648\r\n",
    b"*2147483648\r\n",
    b"$17\r\n",
    b"$8\r\n",
    b"$8\r\nabcdefgh\r\n",
    b"PING",
    b"SET k v",
    b"\"",
    b"'",
    b"\\",
    b"\\x4",
    b"\\x41",
    b" ",
    b"\t",
    b"\x00",
    b"0",
    b"1",
    b"9",
    b"-",
    b"+",
    b"01",
    b"\xff",
];

fn random_input(rng: &mut SplitMix64) -> Vec<u8> {
    let mut input = vec![rng.next() as u8];
    let pieces = rng.below(24);
    for _ in 0..pieces {
        if rng.below(4) == 0 {
            let raw = rng.below(8) + 1;
            input.extend((0..raw).map(|_| rng.next() as u8));
        } else {
            input.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len() as u64) as usize]);
        }
    }
    input
}

#[test]
fn parser_survives_100k_random_inputs() {
    const SEED: u64 = 0x5eed_4b57_0001;
    const CASES: usize = 100_000;
    let mut rng = SplitMix64(SEED);
    let mut decoded_requests = 0;
    let mut errors = 0;
    let mut error_kinds = BTreeSet::new();
    for case in 0..CASES {
        let input = random_input(&mut rng);
        let outcome = match std::panic::catch_unwind(|| parser_harness::check(&input)) {
            Ok(outcome) => outcome,
            Err(panic) => {
                eprintln!("case {case} of seed {SEED:#x} failed on input {input:?}");
                std::panic::resume_unwind(panic);
            }
        };
        decoded_requests += outcome.requests.len();
        if let Some(text) = outcome.error {
            errors += 1;
            // "expected '$', got 'X'" is one kind whatever X is.
            error_kinds.insert(text.split(", got").next().unwrap_or_default().to_string());
        }
    }
    // The generator must reach both sides, and every error, or the run proves little.
    assert!(decoded_requests > CASES / 10, "{decoded_requests} requests");
    assert!(errors > CASES / 10, "{errors} errors");
    for kind in [
        "Protocol error: too big inline request",
        "Protocol error: unbalanced quotes in request",
        "Protocol error: too big mbulk count string",
        "Protocol error: too big bulk count string",
        "Protocol error: invalid multibulk length",
        "Protocol error: invalid bulk length",
        "Protocol error: expected '$'",
        "Protocol error: too big request",
        "Protocol error: unauthenticated multibulk length",
        "Protocol error: unauthenticated bulk length",
    ] {
        assert!(
            error_kinds.contains(kind),
            "never reached {kind:?}: {error_kinds:#?}"
        );
    }
}
