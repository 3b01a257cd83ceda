//! The texts of Redis error replies, byte for byte.
//!
//! Owns every error text the front end sends that Redis also sends, as constants (fixed texts)
//! and small functions (texts with a part filled in), so they are checked against Redis's source
//! in one place, like kvrocks' `error_constants.h`. Each text carries its prefix (`ERR`,
//! `NOAUTH`, `WRONGPASS`, ...) but not the leading `-` or the line ending: framing is
//! `reply.rs`'s job. This module never decides when an error applies.
//!
//! Sources: Redis 7.2 `server.c` (`processCommand`, `shared` objects), `networking.c`
//! (`clientCommand`, `helloCommand`), `acl.c` (`authCommand`, `addAuthErrReply`), `db.c`
//! (`selectCommand`, flush flags), `config.c` (`configSetCommand`).

use std::fmt::Write as _;

use bytes::Bytes;

/// `shared.syntaxerr`.
pub const SYNTAX: &str = "ERR syntax error";
/// A multi-key request whose keys span slots of a multi-node ring (Redis Cluster's text).
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// `shared.noautherr`: a command other than AUTH/HELLO/QUIT/RESET before authenticating.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// `addAuthErrReply`: a wrong user name or password.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// `authCommand`: `AUTH <password>` while the default user has no password.
pub const AUTH_WITHOUT_PASSWORD: &str = "ERR AUTH <password> called without any password \
     configured for the default user. Are you sure your configuration is correct?";
/// `helloCommand`: `HELLO` with a protocol version that is not a number.
pub const HELLO_PROTOVER_NOT_INTEGER: &str =
    "ERR Protocol version is not an integer or out of range";
/// `helloCommand`: `HELLO` with a protocol version other than 2 or 3.
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
/// `helloCommand`: `HELLO` from a client that is not authenticated and gave no `AUTH`.
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already \
     authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
     authenticate the client and select the RESP protocol version at the same time";
/// `shared.outofrangeerr` and friends: an argument that must be an integer is not.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// `selectCommand`: any database but 0.
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
/// `clientSetName`: a name with a space, newline or other special character.
pub const CLIENT_NAME_INVALID: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
/// `clientCommand` (KILL, old form): no client has that address.
pub const NO_SUCH_CLIENT: &str = "ERR No such client";
/// `clientCommand` (KILL ID): an id that is not a positive integer.
pub const CLIENT_ID_NOT_POSITIVE: &str = "ERR client-id should be greater than 0";
/// `clientCommand` (LIST ID): an id that is not an integer.
pub const INVALID_CLIENT_ID: &str = "ERR Invalid client ID";
/// `acceptCommonHandler`: a connection over `maxclients`.
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
/// `commandGetKeysCommand`: an unknown command.
pub const GETKEYS_INVALID_COMMAND: &str = "ERR Invalid command specified";
/// `commandGetKeysCommand`: a command given the wrong number of arguments.
pub const GETKEYS_INVALID_ARGS: &str = "ERR Invalid number of arguments specified for command";
/// `commandGetKeysCommand`: a command without key arguments.
pub const GETKEYS_NO_KEYS: &str = "ERR The command has no key arguments";

/// `functionFlushCommand`: an option other than `ASYNC` / `SYNC`.
pub const FUNCTION_FLUSH_OPTION: &str = "ERR FUNCTION FLUSH only supports SYNC|ASYNC option";
/// `scriptCommand` (FLUSH): an option other than `ASYNC` / `SYNC`.
pub const SCRIPT_FLUSH_OPTION: &str = "ERR SCRIPT FLUSH only support SYNC|ASYNC option";

/// `processCommand`: a command name not in the table. Redis quotes the name and the first
/// arguments (each cut to what fits in 128 bytes), and turns line breaks into spaces.
pub fn unknown_command(args: &[Bytes]) -> Bytes {
    let mut text = b"ERR unknown command '".to_vec();
    if let Some(name) = args.first() {
        text.extend_from_slice(c_string(name, 128));
    }
    text.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0usize;
    for arg in args.iter().skip(1) {
        if listed >= 128 {
            break;
        }
        let arg = c_string(arg, 128 - listed);
        text.push(b'\'');
        text.extend_from_slice(arg);
        text.extend_from_slice(b"' ");
        listed += arg.len() + 3;
    }
    Bytes::from(text)
}

/// `processCommand`: a subcommand a container command (`CLIENT`, `CONFIG`, ...) does not have.
pub fn unknown_subcommand(command: &str, subcommand: &[u8]) -> Bytes {
    let mut text = b"ERR unknown subcommand '".to_vec();
    text.extend_from_slice(c_string(subcommand, 128));
    let _ = write!(
        Utf8Sink(&mut text),
        "'. Try {} HELP.",
        command.to_ascii_uppercase()
    );
    Bytes::from(text)
}

/// `processCommand`: the wrong number of arguments; `name` is Redis's full name, lower case
/// (`get`, `client|setname`).
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// A value over the configured size limit (DESIGN.md, "Limits").
pub fn value_too_large(limit_bytes: usize) -> String {
    format!("ERR value exceeds the {} limit", human_bytes(limit_bytes))
}

/// A key over the configured size limit (DESIGN.md, "Limits").
pub fn key_too_large(limit_bytes: usize) -> String {
    format!("ERR key exceeds the {} limit", human_bytes(limit_bytes))
}

/// `helloCommand`: an option other than `AUTH user pass` or `SETNAME name`.
pub fn hello_bad_option(option: &[u8]) -> Bytes {
    let mut text = b"ERR Syntax error in HELLO option '".to_vec();
    text.extend_from_slice(c_string(option, usize::MAX));
    text.push(b'\'');
    Bytes::from(text)
}

/// `clientSetinfoCommand`: an attribute other than `LIB-NAME` / `LIB-VER`.
pub fn unrecognized_option(option: &[u8]) -> Bytes {
    let mut text = b"ERR Unrecognized option '".to_vec();
    text.extend_from_slice(c_string(option, usize::MAX));
    text.push(b'\'');
    Bytes::from(text)
}

/// `clientSetinfoCommand`: a library name or version with special characters; `attribute` as
/// the client typed it.
pub fn client_attribute_invalid(attribute: &[u8]) -> Bytes {
    let mut text = b"ERR ".to_vec();
    text.extend_from_slice(c_string(attribute, usize::MAX));
    text.extend_from_slice(b" cannot contain spaces, newlines or special characters.");
    Bytes::from(text)
}

/// `clientCommand`: an unknown client type (`CLIENT LIST TYPE x`, `CLIENT KILL TYPE x`).
pub fn unknown_client_type(name: &[u8]) -> Bytes {
    let mut text = b"ERR Unknown client type '".to_vec();
    text.extend_from_slice(c_string(name, usize::MAX));
    text.push(b'\'');
    Bytes::from(text)
}

/// `clientCommand` (KILL USER): ringkv has only the `default` user.
pub fn no_such_user(name: &[u8]) -> Bytes {
    let mut text = b"ERR No such user '".to_vec();
    text.extend_from_slice(c_string(name, usize::MAX));
    text.push(b'\'');
    Bytes::from(text)
}

/// `configSetCommand`: a parameter that does not exist or cannot be set at run time.
pub fn config_set_unknown(name: &[u8]) -> Bytes {
    let mut text = b"ERR Unknown option or number of arguments for CONFIG SET - '".to_vec();
    text.extend_from_slice(c_string(name, usize::MAX));
    text.push(b'\'');
    Bytes::from(text)
}

/// `configSetCommand`: a value the parameter does not accept.
pub fn config_set_failed(name: &str, reason: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
}

/// `1024 * 1024 * 10` as `10 MiB`, `65536` as `64 KiB`, anything else in bytes.
pub fn human_bytes(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The part of `bytes` Redis's `%.*s` would print: up to the first NUL, at most `max` bytes.
fn c_string(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(max);
    &bytes[..end]
}

/// Lets `write!` append formatted text to a byte vector.
struct Utf8Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn unknown_command_quotes_name_and_arguments_as_redis() {
        assert_eq!(
            unknown_command(&args(&["foo", "a", "b"])),
            &b"ERR unknown command 'foo', with args beginning with: 'a' 'b' "[..]
        );
        assert_eq!(
            unknown_command(&args(&["foo"])),
            &b"ERR unknown command 'foo', with args beginning with: "[..]
        );
    }

    #[test]
    fn unknown_command_cuts_long_arguments_at_128_bytes() {
        let long = "x".repeat(300);
        let text = unknown_command(&args(&["foo", &long, "next"]));
        let expected = format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "x".repeat(128)
        );
        assert_eq!(text, expected.as_bytes());
    }

    #[test]
    fn limits_are_named_in_readable_units() {
        assert_eq!(
            value_too_large(10 * 1024 * 1024),
            "ERR value exceeds the 10 MiB limit"
        );
        assert_eq!(key_too_large(64 * 1024), "ERR key exceeds the 64 KiB limit");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn subcommand_texts() {
        assert_eq!(
            unknown_subcommand("client", b"foo"),
            &b"ERR unknown subcommand 'foo'. Try CLIENT HELP."[..]
        );
        assert_eq!(
            wrong_arity("client|setname"),
            "ERR wrong number of arguments for 'client|setname' command"
        );
    }
}
