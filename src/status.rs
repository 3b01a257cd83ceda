//! `ringkv status`: the ring as one node sees it, printed like Cassandra's `nodetool status`.
//!
//! Owns the subcommand's flags ([`StatusArgs`]), a small blocking RESP2 client (connect with a
//! deadline, optional `AUTH`, one `RINGKV STATUS`), the reading of that reply into
//! [`NodeRow`]s and the table ([`render`]): one block per datacenter, one line per node with
//! its up/down and ring state, client address, load, effective ownership, id and rack. It asks
//! the node and prints; it never changes anything on the node, and it is the binary's only
//! client code (the `redis` crate is a test-only dependency).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// `ringkv status [--host H] [--port P] [--password P]`.
#[derive(Debug, Parser)]
#[command(
    name = "ringkv status",
    bin_name = "ringkv status",
    about = "Shows every node of the ring as the given node sees it (like `nodetool status`)"
)]
pub struct StatusArgs {
    /// The node to ask.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Its client port.
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// Its `requirepass`, when it has one.
    #[arg(
        long,
        env = "RINGKV_REQUIREPASS",
        hide_env_values = true,
        value_name = "PASS"
    )]
    pub password: Option<String>,
    /// How long to wait for the node to connect and answer, in seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

/// Why `ringkv status` could not show the ring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// No node answered at the address.
    #[error("cannot reach a ringkv node at {address}: {source}")]
    Unreachable {
        /// `host:port` as given.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed after it was made.
    #[error("lost the connection to {address}: {source}")]
    Io {
        /// `host:port` as given.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node answered with an error (`NOAUTH`, `WRONGPASS`, an unknown command).
    #[error("the node refused: {message}")]
    Refused {
        /// Its error text.
        message: String,
    },
    /// The answer was not what `RINGKV STATUS` sends.
    #[error("unexpected answer from the node: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
}

/// One node as `RINGKV STATUS` describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeRow {
    /// Node id.
    pub id: String,
    /// Client address, `ip:port`.
    pub address: String,
    /// Datacenter.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// Whether the failure detector believes it up.
    pub up: bool,
    /// Ring status: `normal`, `joining`, `leaving`, `left`.
    pub status: String,
    /// Bytes of data on its disk.
    pub load_bytes: u64,
    /// Share of the slots it holds a replica of, 0 to 1.
    pub ownership: f64,
}

/// Runs the subcommand with `args` (the words after `ringkv`, `status` first): prints the
/// table, or a one-line reason on stderr and exits 1.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = StatusArgs::parse_from(args);
    match fetch(&args) {
        Ok(rows) => {
            print!("{}", render(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringkv status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Asks the node for `RINGKV STATUS` and reads the rows.
///
/// # Errors
/// [`StatusError`]: unreachable, refused (authentication), a broken or unexpected answer.
pub fn fetch(args: &StatusArgs) -> Result<Vec<NodeRow>, StatusError> {
    let address = format!("{}:{}", args.host, args.port);
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let stream = connect(&address, timeout)?;
    let io = |source| StatusError::Io {
        address: address.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    let mut reader = BufReader::new(stream);
    if let Some(password) = &args.password {
        writer
            .write_all(&request(&["AUTH", password]))
            .map_err(io)?;
        read_value(&mut reader, 0).map_err(|e| e.at(&address))?;
    }
    writer
        .write_all(&request(&["RINGKV", "STATUS"]))
        .map_err(io)?;
    let reply = read_value(&mut reader, 0).map_err(|e| e.at(&address))?;
    parse_rows(reply)
}

/// Connects to the first address `address` resolves to that accepts within `timeout`.
fn connect(address: &str, timeout: Duration) -> Result<TcpStream, StatusError> {
    let unreachable = |source| StatusError::Unreachable {
        address: address.to_owned(),
        source,
    };
    let candidates: Vec<SocketAddr> = address.to_socket_addrs().map_err(unreachable)?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(unreachable(last))
}

/// A request as a RESP multibulk.
fn request(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// Why a reply could not be read: the connection or the bytes, before the address is known.
enum ReadError {
    Io(std::io::Error),
    Refused(String),
    Protocol(String),
}

impl ReadError {
    fn at(self, address: &str) -> StatusError {
        match self {
            ReadError::Io(source) => StatusError::Io {
                address: address.to_owned(),
                source,
            },
            ReadError::Refused(message) => StatusError::Refused { message },
            ReadError::Protocol(reason) => StatusError::Protocol { reason },
        }
    }
}

/// The deepest reply `RINGKV STATUS` sends is an array of maps (two levels); a little slack.
const MAX_DEPTH: usize = 4;
/// No field of a status reply comes near this; a bigger length means a wrong peer.
const MAX_BULK_BYTES: usize = 1 << 20;
/// Elements of one array: fields of a node, or nodes of a ring.
const MAX_ARRAY_LEN: usize = 1 << 20;

/// Reads one RESP2 reply; an error reply becomes [`ReadError::Refused`].
fn read_value(reader: &mut impl BufRead, depth: usize) -> Result<Value, ReadError> {
    if depth > MAX_DEPTH {
        return Err(ReadError::Protocol("replies nested too deep".into()));
    }
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(ReadError::Io)?;
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the node closed the connection",
        )));
    };
    let (&kind, rest) = line
        .split_first()
        .ok_or_else(|| ReadError::Protocol("an empty line".into()))?;
    let rest = String::from_utf8_lossy(rest).into_owned();
    let length = |rest: &str, max: usize| -> Result<Option<usize>, ReadError> {
        if rest == "-1" {
            return Ok(None);
        }
        rest.parse::<usize>()
            .ok()
            .filter(|&n| n <= max)
            .map(Some)
            .ok_or_else(|| ReadError::Protocol(format!("a bad length {rest:?}")))
    };
    match kind {
        b'+' => Ok(Value::Simple(rest)),
        b'-' => Err(ReadError::Refused(rest)),
        b':' => rest
            .parse()
            .map(Value::Int)
            .map_err(|_| ReadError::Protocol(format!("a bad integer {rest:?}"))),
        b'$' => match length(&rest, MAX_BULK_BYTES)? {
            None => Ok(Value::Bulk(None)),
            Some(n) => {
                let mut data = vec![0u8; n + 2];
                reader.read_exact(&mut data).map_err(ReadError::Io)?;
                data.truncate(n);
                Ok(Value::Bulk(Some(data)))
            }
        },
        b'*' => match length(&rest, MAX_ARRAY_LEN)? {
            None => Ok(Value::Array(None)),
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(read_value(reader, depth + 1)?);
                }
                Ok(Value::Array(Some(items)))
            }
        },
        other => Err(ReadError::Protocol(format!(
            "a reply of unknown type {:?}",
            char::from(other)
        ))),
    }
}

/// The rows of a `RINGKV STATUS` reply: an array of flat `field value` arrays (RESP2 maps).
fn parse_rows(reply: Value) -> Result<Vec<NodeRow>, StatusError> {
    let bad = |reason: &str| StatusError::Protocol {
        reason: reason.to_owned(),
    };
    let Value::Array(Some(nodes)) = reply else {
        return Err(bad("RINGKV STATUS did not answer an array"));
    };
    let mut rows = Vec::with_capacity(nodes.len());
    for node in nodes {
        let Value::Array(Some(fields)) = node else {
            return Err(bad("a node is not a map"));
        };
        let mut row = NodeRow::default();
        for pair in fields.chunks(2) {
            let [Value::Bulk(Some(name)), value] = pair else {
                return Err(bad("a node's fields are not name-value pairs"));
            };
            let text = match value {
                Value::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Value::Simple(s) => s.clone(),
                Value::Int(n) => n.to_string(),
                _ => String::new(),
            };
            match name.as_slice() {
                b"id" => row.id = text,
                b"address" => row.address = text,
                b"dc" => row.dc = text,
                b"rack" => row.rack = text,
                b"state" => row.up = text == "up",
                b"status" => row.status = text,
                b"load_bytes" => row.load_bytes = text.parse().unwrap_or(0),
                b"ownership" => row.ownership = text.parse().unwrap_or(0.0),
                // Fields a newer node adds are shown by a newer `ringkv status`.
                _ => {}
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The table: per datacenter (by name), nodes by address, as `nodetool status` lays it out.
pub fn render(rows: &[NodeRow]) -> String {
    let mut dcs: Vec<&str> = rows.iter().map(|r| r.dc.as_str()).collect();
    dcs.sort_unstable();
    dcs.dedup();
    let mut out = String::new();
    for (n, dc) in dcs.into_iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut members: Vec<&NodeRow> = rows.iter().filter(|r| r.dc == dc).collect();
        members.sort_by_key(|r| address_order(&r.address));
        let title = format!("Datacenter: {dc}");
        let _ = writeln!(out, "{title}\n{}", "=".repeat(title.len()));
        out.push_str("Status=Up/Down\n|/ State=Normal/Leaving/Joining\n");
        let cells: Vec<[String; 6]> = members
            .iter()
            .map(|r| {
                [
                    format!(
                        "{}{}",
                        if r.up { 'U' } else { 'D' },
                        state_letter(&r.status)
                    ),
                    r.address.clone(),
                    human_bytes(r.load_bytes),
                    format!("{:.1}%", r.ownership * 100.0),
                    r.id.clone(),
                    r.rack.clone(),
                ]
            })
            .collect();
        let header = [
            "--",
            "Address",
            "Load",
            "Owns (effective)",
            "Host ID",
            "Rack",
        ];
        let mut widths = header.map(str::len);
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut line = |cells: [&str; 6]| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(header);
        for row in &cells {
            line(row.each_ref().map(String::as_str));
        }
    }
    out
}

/// Sorts parsed socket addresses numerically, anything else after them by text.
fn address_order(address: &str) -> (Option<SocketAddr>, String) {
    (address.parse().ok(), address.to_owned())
}

/// `nodetool status`'s state column: `N`ormal, `J`oining, `L`eaving; `?` for anything else.
fn state_letter(status: &str) -> char {
    match status {
        "normal" => 'N',
        "joining" => 'J',
        "leaving" => 'L',
        _ => '?',
    }
}

/// Bytes as `nodetool` prints them: `512 bytes`, `1.50 KiB`, `3.25 MiB`, ...
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, address: &str, dc: &str, up: bool, status: &str) -> NodeRow {
        NodeRow {
            id: id.into(),
            address: address.into(),
            dc: dc.into(),
            rack: "rack1".into(),
            up,
            status: status.into(),
            load_bytes: 1536,
            ownership: 1.0 / 3.0,
        }
    }

    #[test]
    fn the_table_groups_nodes_by_datacenter_and_address() {
        let rows = [
            row("c", "127.0.0.1:7010", "dc1", false, "normal"),
            row("b", "127.0.0.1:7002", "dc2", true, "joining"),
            row("a", "127.0.0.1:7001", "dc1", true, "normal"),
        ];
        assert_eq!(
            render(&rows),
            "Datacenter: dc1\n\
             ===============\n\
             Status=Up/Down\n\
             |/ State=Normal/Leaving/Joining\n\
             --  Address         Load      Owns (effective)  Host ID  Rack\n\
             UN  127.0.0.1:7001  1.50 KiB  33.3%             a        rack1\n\
             DN  127.0.0.1:7010  1.50 KiB  33.3%             c        rack1\n\
             \n\
             Datacenter: dc2\n\
             ===============\n\
             Status=Up/Down\n\
             |/ State=Normal/Leaving/Joining\n\
             --  Address         Load      Owns (effective)  Host ID  Rack\n\
             UJ  127.0.0.1:7002  1.50 KiB  33.3%             b        rack1\n"
        );
    }

    #[test]
    fn loads_read_as_nodetool_prints_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1024), "1.00 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 512 * 1024), "5.50 MiB");
    }

    #[test]
    fn a_status_reply_parses_into_rows() {
        let reply =
            b"*1\r\n*16\r\n$2\r\nid\r\n$1\r\na\r\n$7\r\naddress\r\n$14\r\n127.0.0.1:7001\r\n\
            $2\r\ndc\r\n$3\r\ndc1\r\n$4\r\nrack\r\n$2\r\nr1\r\n$5\r\nstate\r\n$4\r\ndown\r\n\
            $6\r\nstatus\r\n$6\r\nnormal\r\n$10\r\nload_bytes\r\n:42\r\n\
            $9\r\nownership\r\n$3\r\n0.5\r\n";
        let value = read_value(&mut &reply[..], 0).ok().expect("a reply");
        let rows = parse_rows(value).expect("rows");
        assert_eq!(
            rows,
            vec![NodeRow {
                id: "a".into(),
                address: "127.0.0.1:7001".into(),
                dc: "dc1".into(),
                rack: "r1".into(),
                up: false,
                status: "normal".into(),
                load_bytes: 42,
                ownership: 0.5,
            }]
        );
    }

    #[test]
    fn bad_replies_are_errors_not_panics() {
        for bytes in [
            &b"-NOAUTH Authentication required.\r\n"[..],
            b"$99999999999\r\n",
            b"*1\r\n",
            b"?\r\n",
            b"",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(read_value(&mut &bytes[..], 0).is_err(), "{bytes:?}");
        }
        assert!(parse_rows(Value::Int(1)).is_err());
        assert!(parse_rows(Value::Array(Some(vec![Value::Int(1)]))).is_err());
    }
}
