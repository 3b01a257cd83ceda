//! The coordinator against a `BTreeMap` model: random gets, (conditional) writes with expiry,
//! clock steps, scans, ranges, counts and engine flushes, over the real engine.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use proptest::prelude::*;

use super::{b, node, rt, Node};
use crate::api::{Condition, Request, Response, Version, Write};
use crate::clock::Clock;
use crate::slot::key_slot;

/// Keys spread over several slots, with a hash-tagged group sharing one, and the empty key.
const KEYS: [&str; 10] = [
    "", "a", "b", "bar", "foo", "x{t}", "{t}1", "{t}2", "{t}3", "zz",
];
/// Range bounds: the keys plus points between and around them.
const BOUNDS: [&str; 14] = [
    "",
    "a",
    "b",
    "bar",
    "foo",
    "x{t}",
    "{t}1",
    "{t}2",
    "{t}3",
    "zz",
    "{t}",
    "{t}\u{7f}",
    "m",
    "\u{7f}",
];

#[derive(Clone, Copy, Debug)]
enum Cond {
    Always,
    /// The key's current version (or absent): must succeed.
    Matching,
    /// A version the key does not have: must fail.
    Stale,
}

#[derive(Clone, Debug)]
enum Op {
    Set {
        key: usize,
        value: u8,
        ttl_ms: Option<u64>,
        cond: Cond,
    },
    Delete {
        key: usize,
        cond: Cond,
    },
    Get {
        key: usize,
    },
    Advance {
        ms: u64,
    },
    Scan {
        count: usize,
    },
    Range {
        start: Option<(usize, bool)>,
        end: Option<(usize, bool)>,
        offset: usize,
        limit: Option<usize>,
    },
    CountKeys,
    CountSlot {
        key: usize,
    },
    EngineFlush,
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![Just(Cond::Always), Just(Cond::Matching), Just(Cond::Stale)]
}

fn bound() -> impl Strategy<Value = Option<(usize, bool)>> {
    proptest::option::of((0..BOUNDS.len(), any::<bool>()))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len(), any::<u8>(), proptest::option::of(1..5u64), cond())
            .prop_map(|(key, value, ttl_ms, cond)| Op::Set { key, value, ttl_ms, cond }),
        2 => (0..KEYS.len(), cond()).prop_map(|(key, cond)| Op::Delete { key, cond }),
        2 => (0..KEYS.len()).prop_map(|key| Op::Get { key }),
        1 => (1..4u64).prop_map(|ms| Op::Advance { ms }),
        1 => (1..6usize).prop_map(|count| Op::Scan { count }),
        2 => (bound(), bound(), 0..3usize, proptest::option::of(0..5usize))
            .prop_map(|(start, end, offset, limit)| Op::Range { start, end, offset, limit }),
        1 => Just(Op::CountKeys),
        1 => (0..KEYS.len()).prop_map(|key| Op::CountSlot { key }),
        1 => Just(Op::EngineFlush),
    ]
}

/// What the model holds per key: value and expiry.
type Model = BTreeMap<Bytes, (Bytes, u64)>;

fn live(model: &Model, now: u64) -> BTreeMap<Bytes, Bytes> {
    model
        .iter()
        .filter(|(_, (_, exp))| *exp == 0 || *exp > now)
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

fn to_bound((i, inclusive): (usize, bool)) -> Bound<Bytes> {
    if inclusive {
        Bound::Included(b(BOUNDS[i]))
    } else {
        Bound::Excluded(b(BOUNDS[i]))
    }
}

fn in_bounds(key: &Bytes, start: &Bound<Bytes>, end: &Bound<Bytes>) -> bool {
    let after = match start {
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
        Bound::Unbounded => true,
    };
    let before = match end {
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
        Bound::Unbounded => true,
    };
    after && before
}

async fn run_op(n: &Node, model: &mut Model, op: Op) {
    let now = n.clock.now_ms();
    match op {
        Op::Set {
            key,
            value,
            ttl_ms,
            cond,
        } => {
            let expire_at_ms = ttl_ms.map_or(0, |t| now + t);
            let value = Bytes::from(vec![value]);
            let w = Write {
                key: b(KEYS[key]),
                value: Some(value.clone()),
                expire_at_ms,
                condition: Condition::Always,
            };
            if write_with(n, model, w, cond).await {
                model.insert(b(KEYS[key]), (value, expire_at_ms));
            }
        }
        Op::Delete { key, cond } => {
            let w = Write {
                key: b(KEYS[key]),
                value: None,
                expire_at_ms: 0,
                condition: Condition::Always,
            };
            if write_with(n, model, w, cond).await {
                model.remove(&b(KEYS[key]));
            }
        }
        Op::Get { key } => {
            let got = n.get(KEYS[key]).await.map(|v| v.value);
            assert_eq!(got, live(model, now).get(&b(KEYS[key])).cloned());
        }
        Op::Advance { ms } => n.clock.advance(ms),
        Op::Scan { count } => {
            let mut got = n.scan_all(count).await;
            let len = got.len();
            got.sort();
            got.dedup();
            assert_eq!(got.len(), len, "no key twice when nothing changes");
            let want: Vec<Bytes> = live(model, now).into_keys().collect();
            assert_eq!(got, want);
        }
        Op::Range {
            start,
            end,
            offset,
            limit,
        } => {
            let start = start.map_or(Bound::Unbounded, to_bound);
            let end = end.map_or(Bound::Unbounded, to_bound);
            let want: Vec<(Bytes, Bytes)> = live(model, now)
                .into_iter()
                .filter(|(k, _)| in_bounds(k, &start, &end))
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .collect();
            let got: Vec<(Bytes, Bytes)> = n
                .range(start, end, offset, limit)
                .await
                .into_iter()
                .map(|(k, v)| (k, v.expect("values asked for").value))
                .collect();
            assert_eq!(got, want);
        }
        Op::CountKeys => {
            assert_eq!(
                n.count(Request::CountKeys).await,
                live(model, now).len() as u64
            );
        }
        Op::CountSlot { key } => {
            let slot = key_slot(KEYS[key].as_bytes());
            let want = live(model, now)
                .keys()
                .filter(|k| key_slot(k) == slot)
                .count() as u64;
            assert_eq!(n.count(Request::CountKeysInSlot { slot }).await, want);
        }
        Op::EngineFlush => n.cluster.storage().flush().expect("engine flush"),
    }
}

/// Sends `w` under `cond`, checks the outcome the model predicts, and returns whether it
/// applied.
async fn write_with(n: &Node, model: &Model, mut w: Write, cond: Cond) -> bool {
    let now = n.clock.now_ms();
    let key = String::from_utf8_lossy(&w.key).into_owned();
    let current = n.get(&key).await;
    assert_eq!(
        current.as_ref().map(|c| c.value.clone()),
        live(model, now).get(&w.key).cloned()
    );
    let current = current.map(|c| c.version);
    let expect = match cond {
        Cond::Always => true,
        Cond::Matching => {
            w.condition = Condition::IfVersion(current);
            true
        }
        Cond::Stale => {
            w.condition = Condition::IfVersion(match current {
                Some(v) => Some(Version::new(v.hlc ^ 1, v.node)),
                None => Some(Version::new(1, 1)),
            });
            false
        }
    };
    let flags = match n.exec(Request::Write { writes: vec![w] }).await {
        Response::Written(flags) => flags,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(flags, vec![expect]);
    expect
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn coordinator_matches_a_btreemap_model(ops in proptest::collection::vec(op(), 1..60)) {
        let n = node();
        let mut model = Model::new();
        rt().block_on(async {
            for op in ops {
                run_op(&n, &mut model, op).await;
            }
        });
    }
}
