//! Connection commands: PING ECHO HELLO AUTH QUIT RESET SELECT CLIENT.
//!
//! Owns their handlers and their table rows ([`COMMANDS`]), with Redis 7's replies and texts
//! (`networking.c`, `acl.c`, `db.c`). They read and change the connection's own state
//! (`ctx.conn`) and, for `CLIENT LIST|KILL`, the server's client registry; they never touch the
//! cluster or a socket (`QUIT` and a self-kill only ask the connection to close after replying).
//! Authentication knows one user, `default`, whose password is `requirepass`.

use bytes::Bytes;
use ringkv_cluster::Cluster;

use super::{
    check_subcommand_arity, parse_integer, Args, CommandError, CommandResult, CommandSpec, Ctx,
    Family,
};
use crate::cmd::table;
use crate::errors;
use crate::reply::{Protocol, Reply};
use crate::server::{ClientHandle, CloseRequest, REDIS_VERSION};

/// The connection family's rows.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    row(
        "ping",
        -1,
        &["fast"],
        "Returns the server's liveliness response.",
    ),
    row("echo", 2, &["fast"], "Returns the given string."),
    row(
        "hello",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        "Handshakes with the Redis server.",
    ),
    row(
        "auth",
        -2,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        "Authenticates the connection.",
    ),
    row(
        "quit",
        -1,
        &[
            "allow_busy",
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
        ],
        "Closes the connection.",
    ),
    row(
        "reset",
        1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        "Resets the connection.",
    ),
    row(
        "select",
        2,
        &["loading", "stale", "fast"],
        "Changes the selected database.",
    ),
    row(
        "client",
        -2,
        &[],
        "A container for client connection commands.",
    ),
];

const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(
        Family::Connection,
        "connection",
        name,
        arity,
        flags,
        (0, 0, 0),
        summary,
    )
}

/// Runs a connection command.
pub(crate) async fn execute<C: Cluster>(
    ctx: &mut Ctx<'_, C>,
    spec: &CommandSpec,
    args: &Args,
) -> CommandResult {
    match spec.name {
        "ping" => ping(args),
        "echo" => Ok(Reply::Bulk(args[1].clone())),
        "hello" => hello(ctx, args),
        "auth" => auth(ctx, args),
        "quit" => {
            ctx.conn.close_after_reply = true;
            Ok(Reply::ok())
        }
        "reset" => {
            reset(ctx);
            Ok(Reply::simple("RESET"))
        }
        "select" => select(args),
        "client" => client(ctx, args),
        _ => Err(CommandError::Reply(
            String::from_utf8_lossy(&errors::unknown_command(args)).into_owned(),
        )),
    }
}

fn reply_error(text: impl Into<Bytes>) -> CommandError {
    CommandError::Reply(String::from_utf8_lossy(&text.into()).into_owned())
}

fn ping(args: &Args) -> CommandResult {
    match args {
        [_] => Ok(Reply::simple("PONG")),
        [_, message] => Ok(Reply::Bulk(message.clone())),
        _ => Err(CommandError::Reply(errors::wrong_arity("ping"))),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, as `helloCommand`.
fn hello<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let mut protocol = None;
    if let Some(version) = args.get(1) {
        let version = parse_integer(version)
            .ok_or_else(|| reply_error(errors::HELLO_PROTOVER_NOT_INTEGER))?;
        protocol = Some(match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(reply_error(errors::NOPROTO)),
        });
    }
    let mut credentials = None;
    let mut name = None;
    let mut at = 2;
    while at < args.len() {
        let more = args.len() - 1 - at;
        let option = &args[at];
        if option.eq_ignore_ascii_case(b"auth") && more >= 2 {
            credentials = Some((&args[at + 1], &args[at + 2]));
            at += 3;
        } else if option.eq_ignore_ascii_case(b"setname") && more >= 1 {
            name = Some(&args[at + 1]);
            at += 2;
        } else {
            return Err(reply_error(errors::hello_bad_option(option)));
        }
    }
    if let Some((user, password)) = credentials {
        if !authenticate(ctx, user, password) {
            return Err(reply_error(errors::WRONGPASS));
        }
        ctx.conn.authenticated = true;
    }
    if !ctx.conn.authenticated && ctx.server.auth_required() {
        return Err(reply_error(errors::HELLO_NOAUTH));
    }
    if let Some(name) = name {
        validate_name(name)?;
        ctx.conn.set_name(name.clone());
    }
    if let Some(protocol) = protocol {
        ctx.conn.set_protocol(protocol);
    }
    let text = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    Ok(Reply::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(REDIS_VERSION)),
        (text("proto"), Reply::Integer(ctx.conn.protocol().version())),
        (text("id"), Reply::Integer(id_i64(ctx.conn.id))),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Reply::Array(Vec::new())),
    ]))
}

/// `AUTH [username] password`, as `authCommand`.
fn auth<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let (user, password) = match args {
        [_, password] => {
            if !ctx.server.auth_required() {
                return Err(reply_error(errors::AUTH_WITHOUT_PASSWORD));
            }
            (&Bytes::from_static(b"default"), password)
        }
        [_, user, password] => (user, password),
        _ => return Err(reply_error(errors::SYNTAX)),
    };
    if authenticate(ctx, user, password) {
        ctx.conn.authenticated = true;
        Ok(Reply::ok())
    } else {
        Err(reply_error(errors::WRONGPASS))
    }
}

/// Whether `user` / `password` name the `default` user and its password (any password when
/// there is none, Redis's `nopass`).
fn authenticate<C: Cluster>(ctx: &Ctx<'_, C>, user: &[u8], password: &[u8]) -> bool {
    user == b"default" && ctx.server.check_password(password)
}

/// `RESET`, as `clearClientConnectionState`: database 0, RESP2, no name, the default levels,
/// and authenticated only if no password is required.
fn reset<C: Cluster>(ctx: &mut Ctx<'_, C>) {
    ctx.conn.db = 0;
    ctx.conn.set_protocol(Protocol::Resp2);
    ctx.conn.set_name(Bytes::new());
    ctx.conn.consistency = ctx.server.config.default_consistency;
    ctx.conn.authenticated = !ctx.server.auth_required();
    ctx.conn.readonly = false;
}

/// `SELECT index`: only database 0 exists.
fn select(args: &Args) -> CommandResult {
    let index = parse_integer(&args[1])
        .filter(|i| i32::try_from(*i).is_ok())
        .ok_or_else(|| reply_error(errors::NOT_INTEGER))?;
    if index == 0 {
        Ok(Reply::ok())
    } else {
        Err(reply_error(errors::DB_INDEX_OUT_OF_RANGE))
    }
}

/// `CLIENT <subcommand> ...`.
fn client<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"id" => {
            check_subcommand_arity("client|id", 2, args)?;
            Ok(Reply::Integer(id_i64(ctx.conn.id)))
        }
        b"setname" => {
            check_subcommand_arity("client|setname", 3, args)?;
            validate_name(&args[2])?;
            ctx.conn.set_name(args[2].clone());
            Ok(Reply::ok())
        }
        b"getname" => {
            check_subcommand_arity("client|getname", 2, args)?;
            let name = ctx.conn.name();
            Ok(if name.is_empty() {
                Reply::Null
            } else {
                Reply::Bulk(name)
            })
        }
        b"list" => {
            check_subcommand_arity("client|list", -2, args)?;
            client_list(ctx, args)
        }
        b"info" => {
            check_subcommand_arity("client|info", 2, args)?;
            let mut text = client_line(ctx.conn.client());
            text.push('\n');
            Ok(Reply::Verbatim(Bytes::from(text)))
        }
        b"setinfo" => {
            check_subcommand_arity("client|setinfo", 4, args)?;
            client_setinfo(ctx, args)
        }
        b"kill" => {
            check_subcommand_arity("client|kill", -3, args)?;
            client_kill(ctx, args)
        }
        b"help" => {
            check_subcommand_arity("client|help", 2, args)?;
            Ok(help(CLIENT_HELP))
        }
        _ => Err(reply_error(errors::unknown_subcommand("client", &args[1]))),
    }
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "HELP",
    "    Print this help.",
];

/// The `HELP` reply of a container command: one status line per entry.
pub(crate) fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|line| Reply::simple(line)).collect())
}

/// Client ids are `u64` counting from 1; shown as Redis's signed integers.
fn id_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// `validateClientAttr`: printable ASCII without spaces, so `CLIENT LIST` stays parseable.
fn is_valid_attribute(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn validate_name(name: &[u8]) -> Result<(), CommandError> {
    if is_valid_attribute(name) {
        Ok(())
    } else {
        Err(reply_error(errors::CLIENT_NAME_INVALID))
    }
}

/// Redis's client types; ringkv's clients are all `normal`.
enum ClientType {
    Normal,
    Other,
}

fn client_type(name: &[u8]) -> Result<ClientType, CommandError> {
    let lower = name.to_ascii_lowercase();
    match lower.as_slice() {
        b"normal" => Ok(ClientType::Normal),
        b"slave" | b"replica" | b"pubsub" | b"master" => Ok(ClientType::Other),
        _ => Err(reply_error(errors::unknown_client_type(name))),
    }
}

/// `CLIENT LIST [TYPE type] [ID id ...]`.
fn client_list<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let clients = ctx.server.clients.snapshot();
    let listed: Vec<&ClientHandle> = match args {
        [_, _] => clients.iter().map(|c| &**c).collect(),
        [_, _, option, kind] if option.eq_ignore_ascii_case(b"type") => match client_type(kind)? {
            ClientType::Normal => clients.iter().map(|c| &**c).collect(),
            ClientType::Other => Vec::new(),
        },
        [_, _, option, ids @ ..] if option.eq_ignore_ascii_case(b"id") && !ids.is_empty() => {
            let mut wanted = Vec::with_capacity(ids.len());
            for id in ids {
                wanted
                    .push(parse_integer(id).ok_or_else(|| reply_error(errors::INVALID_CLIENT_ID))?);
            }
            wanted
                .iter()
                .filter_map(|id| {
                    clients
                        .iter()
                        .find(|c| i64::try_from(c.id).is_ok_and(|cid| cid == *id))
                })
                .map(|c| &**c)
                .collect()
        }
        _ => return Err(reply_error(errors::SYNTAX)),
    };
    let mut text = String::new();
    for client in listed {
        text.push_str(&client_line(client));
        text.push('\n');
    }
    Ok(Reply::Verbatim(Bytes::from(text)))
}

/// One `CLIENT LIST` line, in Redis 7.2's field order. Buffer and memory figures ringkv does
/// not track per client are 0.
fn client_line(client: &ClientHandle) -> String {
    let details = client.details();
    let command = client
        .last_command()
        .and_then(|index| table::table().get(index))
        .map_or("NULL", |spec| spec.name);
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 \
         multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 \
         tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        client.id,
        client.addr,
        client.local_addr,
        client.fd,
        String::from_utf8_lossy(&details.name),
        client.age_secs(),
        client.idle_secs(),
        command,
        details.protocol.version(),
        String::from_utf8_lossy(&details.lib_name),
        String::from_utf8_lossy(&details.lib_ver),
    )
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`.
fn client_setinfo<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let (attribute, value) = (&args[2], &args[3]);
    let is_name = if attribute.eq_ignore_ascii_case(b"lib-name") {
        true
    } else if attribute.eq_ignore_ascii_case(b"lib-ver") {
        false
    } else {
        return Err(reply_error(errors::unrecognized_option(attribute)));
    };
    if !is_valid_attribute(value) {
        return Err(reply_error(errors::client_attribute_invalid(attribute)));
    }
    if is_name {
        ctx.conn.set_lib_name(value.clone());
    } else {
        ctx.conn.set_lib_ver(value.clone());
    }
    Ok(Reply::ok())
}

/// What `CLIENT KILL` selects.
#[derive(Default)]
struct KillFilter<'a> {
    id: Option<u64>,
    addr: Option<&'a [u8]>,
    local_addr: Option<&'a [u8]>,
    /// `TYPE` other than normal: matches no ringkv client.
    other_type: bool,
    skip_me: bool,
}

impl KillFilter<'_> {
    fn matches(&self, client: &ClientHandle) -> bool {
        !self.other_type
            && self.id.is_none_or(|id| id == client.id)
            && self
                .addr
                .is_none_or(|addr| addr == client.addr.to_string().as_bytes())
            && self
                .local_addr
                .is_none_or(|addr| addr == client.local_addr.to_string().as_bytes())
    }
}

/// `CLIENT KILL addr` (old form: `+OK` or `No such client`, may kill itself) and
/// `CLIENT KILL <option> <value> ...` (new form: the number killed, itself skipped unless
/// `SKIPME no`).
fn client_kill<C: Cluster>(ctx: &mut Ctx<'_, C>, args: &Args) -> CommandResult {
    let old_form = args.len() == 3;
    let mut filter = KillFilter {
        skip_me: !old_form,
        ..KillFilter::default()
    };
    if old_form {
        filter.addr = Some(&args[2]);
    } else {
        let mut at = 2;
        while at < args.len() {
            let (option, value) = match (args.get(at), args.get(at + 1)) {
                (Some(option), Some(value)) => (option.to_ascii_lowercase(), value),
                _ => return Err(reply_error(errors::SYNTAX)),
            };
            match option.as_slice() {
                b"id" => {
                    let id = parse_integer(value)
                        .filter(|id| *id >= 1)
                        .ok_or_else(|| reply_error(errors::CLIENT_ID_NOT_POSITIVE))?;
                    filter.id = u64::try_from(id).ok();
                }
                b"type" => {
                    if let ClientType::Other = client_type(value)? {
                        filter.other_type = true;
                    }
                }
                b"addr" => filter.addr = Some(value),
                b"laddr" => filter.local_addr = Some(value),
                b"user" => {
                    if value.as_ref() != b"default" {
                        return Err(reply_error(errors::no_such_user(value)));
                    }
                }
                b"skipme" => {
                    filter.skip_me = if value.eq_ignore_ascii_case(b"yes") {
                        true
                    } else if value.eq_ignore_ascii_case(b"no") {
                        false
                    } else {
                        return Err(reply_error(errors::SYNTAX));
                    };
                }
                _ => return Err(reply_error(errors::SYNTAX)),
            }
            at += 2;
        }
    }
    let me = ctx.conn.id;
    let mut killed = 0i64;
    for client in ctx.server.clients.snapshot() {
        if !filter.matches(&client) || (filter.skip_me && client.id == me) {
            continue;
        }
        if client.id == me {
            ctx.conn.close_after_reply = true;
        } else {
            client.request_close(CloseRequest::Killed);
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            Err(reply_error(errors::NO_SUCH_CLIENT))
        } else {
            Ok(Reply::ok())
        }
    } else {
        Ok(Reply::Integer(killed))
    }
}
