//! How a [`Member`] is written into, and read back from, its chitchat node state.
//!
//! Owns the gossiped key names and value encodings: [`encode`] turns the local member into
//! key-values, [`decode`] rebuilds a member from a peer's key-values (its id and generation
//! come from chitchat's `ChitchatId`, not from a key). Pure: must never touch chitchat, the
//! network or a clock, and must never panic on what a peer sends.

use std::fmt;
use std::net::SocketAddr;

use crate::view::{Member, NodeStatus};

/// Key of the node number (decimal u32).
pub const KEY_NUMBER: &str = "number";
/// Key of the client address (`ip:port`).
pub const KEY_CLIENT_ADDR: &str = "client_addr";
/// Key of the bus address (`ip:port`).
pub const KEY_BUS_ADDR: &str = "bus_addr";
/// Key of the datacenter name.
pub const KEY_DC: &str = "dc";
/// Key of the rack name.
pub const KEY_RACK: &str = "rack";
/// Key of the ring tokens ([`encode_tokens`]).
pub const KEY_TOKENS: &str = "tokens";
/// Key of the status ([`NodeStatus::name`]).
pub const KEY_STATUS: &str = "status";
/// Key of the load in bytes (decimal u64).
pub const KEY_LOAD: &str = "load";
/// Key of the node's hybrid logical clock (decimal u64): the latest timestamp it handed out
/// or observed. Not part of a [`Member`]: it changes about every second while the node
/// writes, and views (which the coordinator rebuilds its ring from) must not.
pub const KEY_HLC: &str = "hlc";
/// Set (to `"1"`) by a node that is shutting down cleanly, so peers mark it down at once
/// instead of waiting for the failure detector. A restart is a new generation with a fresh
/// state, so the mark never outlives the run that wrote it.
pub const KEY_HALTED: &str = "halted";

/// Most tokens one node may publish. All tokens travel in one value so a change is seen
/// whole (chitchat may split a node's keys across datagrams, but never one value); at four hex
/// characters per token this keeps the value at 16 KiB, well inside one 64 KiB datagram next
/// to the other nodes' updates. DESIGN.md's vnode counts (64–256) are far below it.
pub const MAX_TOKENS: usize = 4096;

/// The key-values that describe `member` (everything but its id and generation).
pub fn encode(member: &Member) -> Vec<(String, String)> {
    vec![
        (KEY_NUMBER.to_string(), member.number.to_string()),
        (KEY_CLIENT_ADDR.to_string(), member.client_addr.to_string()),
        (KEY_BUS_ADDR.to_string(), member.bus_addr.to_string()),
        (KEY_DC.to_string(), member.dc.clone()),
        (KEY_RACK.to_string(), member.rack.clone()),
        (KEY_TOKENS.to_string(), encode_tokens(&member.tokens)),
        (KEY_STATUS.to_string(), member.status.name().to_string()),
        (KEY_LOAD.to_string(), member.load_bytes.to_string()),
    ]
}

/// Tokens as four lowercase hex digits each, concatenated (256 tokens take 1 KiB).
pub fn encode_tokens(tokens: &[u16]) -> String {
    let mut out = String::with_capacity(tokens.len() * 4);
    for token in tokens {
        out.push_str(&format!("{token:04x}"));
    }
    out
}

/// Parses [`encode_tokens`]; the tokens must be strictly increasing (sorted, no duplicates),
/// as [`Member::tokens`] promises.
pub fn decode_tokens(text: &str) -> Result<Vec<u16>, DecodeError> {
    let bad = || DecodeError::Malformed {
        key: KEY_TOKENS,
        value: abbreviate(text),
    };
    // Checked up front because `from_str_radix` would also take a sign (`+001`).
    if !text.len().is_multiple_of(4)
        || !text.bytes().all(|b| b.is_ascii_hexdigit())
        || text.len() / 4 > MAX_TOKENS
    {
        return Err(bad());
    }
    let mut tokens = Vec::with_capacity(text.len() / 4);
    for chunk in text.as_bytes().chunks_exact(4) {
        let digits = std::str::from_utf8(chunk).map_err(|_| bad())?;
        let token = u16::from_str_radix(digits, 16).map_err(|_| bad())?;
        if tokens.last().is_some_and(|&last| last >= token) {
            return Err(bad());
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// Why a peer's state does not describe a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A key is absent (a peer first seen through a digest has no keys yet).
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key's value does not parse.
    Malformed {
        /// The key.
        key: &'static str,
        /// Its value (cut short when long).
        value: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Missing { key } => write!(f, "key {key:?} is missing"),
            DecodeError::Malformed { key, value } => {
                write!(f, "key {key:?} has a malformed value {value:?}")
            }
        }
    }
}

/// The member `node_id` of generation `generation` whose key-values `get` looks up.
///
/// `alive` is left `false`: liveness is the failure detector's verdict, not state.
pub fn decode<'a>(
    node_id: &str,
    generation: u64,
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<Member, DecodeError> {
    let value = |key: &'static str| get(key).ok_or(DecodeError::Missing { key });
    let malformed = |key: &'static str, value: &str| DecodeError::Malformed {
        key,
        value: abbreviate(value),
    };
    let number_text = value(KEY_NUMBER)?;
    let number: u32 = number_text
        .parse()
        .map_err(|_| malformed(KEY_NUMBER, number_text))?;
    let client_text = value(KEY_CLIENT_ADDR)?;
    let client_addr: SocketAddr = client_text
        .parse()
        .map_err(|_| malformed(KEY_CLIENT_ADDR, client_text))?;
    let bus_text = value(KEY_BUS_ADDR)?;
    let bus_addr: SocketAddr = bus_text
        .parse()
        .map_err(|_| malformed(KEY_BUS_ADDR, bus_text))?;
    let status_text = value(KEY_STATUS)?;
    let status =
        NodeStatus::parse(status_text).ok_or_else(|| malformed(KEY_STATUS, status_text))?;
    let load_text = value(KEY_LOAD)?;
    let load_bytes: u64 = load_text
        .parse()
        .map_err(|_| malformed(KEY_LOAD, load_text))?;
    Ok(Member {
        node_id: node_id.to_string(),
        number,
        client_addr,
        bus_addr,
        dc: value(KEY_DC)?.to_string(),
        rack: value(KEY_RACK)?.to_string(),
        tokens: decode_tokens(value(KEY_TOKENS)?)?,
        status,
        generation,
        alive: false,
        load_bytes,
    })
}

/// `text`, cut to a length fit for a log line.
fn abbreviate(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn member() -> Member {
        Member {
            node_id: "node-a".into(),
            number: 7,
            client_addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
            bus_addr: SocketAddr::from(([127, 0, 0, 1], 16379)),
            dc: "dc1".into(),
            rack: "r1".into(),
            tokens: (0..256u16).map(|i| i * 64 + 3).collect(),
            status: NodeStatus::Normal,
            generation: 42,
            alive: true,
            load_bytes: 1 << 40,
        }
    }

    fn decode_map(map: &BTreeMap<String, String>) -> Result<Member, DecodeError> {
        decode("node-a", 42, |k| map.get(k).map(String::as_str))
    }

    #[test]
    fn a_member_round_trips_except_liveness() {
        let m = member();
        let map: BTreeMap<String, String> = encode(&m).into_iter().collect();
        let back = decode_map(&map).expect("decodes");
        assert_eq!(back, Member { alive: false, ..m });
    }

    #[test]
    fn tokens_are_compact_and_checked() {
        let tokens: Vec<u16> = vec![0, 1, 0xabcd, u16::MAX];
        let text = encode_tokens(&tokens);
        assert_eq!(text, "00000001abcdffff");
        assert_eq!(decode_tokens(&text), Ok(tokens));
        assert_eq!(decode_tokens(""), Ok(vec![]));
        assert_eq!(encode_tokens(&member().tokens).len(), 1024);
        for bad in ["000", "zzzz", "00010001", "00020001", "+001", "é000"] {
            assert!(decode_tokens(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn missing_or_malformed_keys_are_errors_not_panics() {
        let full: BTreeMap<String, String> = encode(&member()).into_iter().collect();
        for (key, _) in encode(&member()) {
            let mut map = full.clone();
            map.remove(&key);
            assert!(
                matches!(decode_map(&map), Err(DecodeError::Missing { .. })),
                "{key}"
            );
        }
        for (key, garbage) in [
            (KEY_NUMBER, "-1"),
            (KEY_CLIENT_ADDR, "nowhere"),
            (KEY_BUS_ADDR, "1.2.3.4"),
            (KEY_STATUS, "up"),
            (KEY_LOAD, "lots"),
            (KEY_TOKENS, "12"),
        ] {
            let mut map = full.clone();
            map.insert(key.to_string(), garbage.to_string());
            assert!(
                matches!(decode_map(&map), Err(DecodeError::Malformed { key: k, .. }) if k == key),
                "{key}"
            );
        }
        let long = "x".repeat(1000);
        let mut map = full;
        map.insert(KEY_STATUS.to_string(), long);
        let err = decode_map(&map).expect_err("malformed");
        assert!(err.to_string().len() < 200, "{err}");
    }
}
