//! Splitting an inline request line into arguments.
//!
//! Owns [`split_inline_args`], a port of Redis's `sdssplitargs` (the function
//! `processInlineBuffer` uses), so `redis-cli`-style quoting typed into telnet means here what it
//! means to Redis: words separated by blanks; `"double quotes"` with `\n \r \t \b \a`, `\xHH` and
//! `\<any>` escapes; `'single quotes'` where only `\'` is an escape; a closing quote must be
//! followed by a blank or the end of the line. It never looks past the line it is given and never
//! decides limits (the decoder bounds the line's length before calling it).

use bytes::Bytes;

/// Redis runs `sdssplitargs` over a NUL-terminated C string, so a NUL byte ends the line (outside
/// quotes the rest is ignored; inside quotes it is an unterminated quote). Reading past the end
/// of the slice yields the same terminator.
fn byte_at(line: &[u8], index: usize) -> u8 {
    line.get(index).copied().unwrap_or(0)
}

/// C's `isspace` in the "C" locale, which `sdssplitargs` uses to skip blanks between words and to
/// accept what follows a closing quote. (`u8::is_ascii_whitespace` leaves out `\v`.)
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The value of an ASCII hex digit, or `None`.
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// One argument being built: an unquoted prefix that is still a plain range of the line (so it can
/// be sliced without copying), and, once a quote opens, an owned copy holding the unescaped bytes.
struct Token {
    start: usize,
    end: usize,
    owned: Option<Vec<u8>>,
}

impl Token {
    fn new(start: usize) -> Self {
        Token {
            start,
            end: start,
            owned: None,
        }
    }

    /// Takes the unquoted byte at `index`, which always directly follows the prefix so far: an
    /// unquoted byte can only come before a quote, because a closing quote ends the token.
    fn extend_plain(&mut self, index: usize) {
        self.end = index + 1;
    }

    /// Switches to an owned buffer when a quote opens; later bytes are unescaped into it.
    fn open_quote(&mut self, line: &[u8]) {
        if self.owned.is_none() {
            self.owned = Some(line[self.start..self.end].to_vec());
        }
    }

    fn push_unescaped(&mut self, byte: u8) {
        if let Some(owned) = self.owned.as_mut() {
            owned.push(byte);
        }
    }

    fn finish(self, line: &Bytes) -> Bytes {
        match self.owned {
            Some(owned) => Bytes::from(owned),
            None => line.slice(self.start..self.end),
        }
    }
}

/// Splits one inline request line (without its line ending) into arguments, as Redis's
/// `sdssplitargs` does. Unquoted words are zero-copy slices of `line`; quoted ones are fresh
/// buffers. Returns `None` for unbalanced quotes or a closing quote followed by a non-blank,
/// which the decoder reports as "unbalanced quotes in request". An empty or all-blank line
/// yields no arguments.
pub(super) fn split_inline_args(line: &Bytes) -> Option<Vec<Bytes>> {
    let s: &[u8] = line;
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while byte_at(s, p) != 0 && is_c_space(byte_at(s, p)) {
            p += 1;
        }
        if byte_at(s, p) == 0 {
            return Some(args);
        }
        let mut token = Token::new(p);
        let mut in_double = false;
        let mut in_single = false;
        let mut done = false;
        while !done {
            let c = byte_at(s, p);
            if in_double {
                let escaped_hex = (byte_at(s, p + 1) == b'x')
                    .then(|| Some((hex_value(byte_at(s, p + 2))?, hex_value(byte_at(s, p + 3))?)))
                    .flatten();
                match (c, escaped_hex) {
                    (b'\\', Some((high, low))) => {
                        token.push_unescaped(high * 16 + low);
                        p += 3;
                    }
                    (b'\\', None) if byte_at(s, p + 1) != 0 => {
                        p += 1;
                        token.push_unescaped(match byte_at(s, p) {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    (b'"', _) => {
                        let next = byte_at(s, p + 1);
                        if next != 0 && !is_c_space(next) {
                            return None;
                        }
                        done = true;
                    }
                    (0, _) => return None,
                    (byte, _) => token.push_unescaped(byte),
                }
            } else if in_single {
                if c == b'\\' && byte_at(s, p + 1) == b'\'' {
                    p += 1;
                    token.push_unescaped(b'\'');
                } else if c == b'\'' {
                    let next = byte_at(s, p + 1);
                    if next != 0 && !is_c_space(next) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    token.push_unescaped(c);
                }
            } else {
                match c {
                    // Only these end an unquoted word; `\v` and `\f` are part of it, as in Redis.
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => {
                        in_double = true;
                        token.open_quote(s);
                    }
                    b'\'' => {
                        in_single = true;
                        token.open_quote(s);
                    }
                    _ => token.extend_plain(p),
                }
            }
            if byte_at(s, p) != 0 {
                p += 1;
            }
        }
        args.push(token.finish(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        split_inline_args(&Bytes::copy_from_slice(line))
            .map(|args| args.into_iter().map(|a| a.to_vec()).collect())
    }

    fn words(list: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
        Some(list.iter().map(|w| w.to_vec()).collect())
    }

    #[test]
    fn plain_words_split_on_blanks() {
        assert_eq!(split(b"SET foo bar"), words(&[b"SET", b"foo", b"bar"]));
        assert_eq!(split(b"  PING \t "), words(&[b"PING"]));
        assert_eq!(split(b""), words(&[]));
        assert_eq!(split(b" \t\x0b\x0c "), words(&[]));
    }

    #[test]
    fn vertical_tab_and_form_feed_are_part_of_unquoted_words() {
        // Skipped as blanks between words (isspace), but do not end a word.
        assert_eq!(split(b"a\x0bb \x0cc"), words(&[b"a\x0bb", b"c"]));
    }

    #[test]
    fn double_quotes_unescape() {
        assert_eq!(
            split(br#"SET k "a b\n\r\t\b\a\"\\\q""#),
            words(&[b"SET", b"k", b"a b\n\r\t\x08\x07\"\\q"])
        );
        assert_eq!(split(br#""\x41\xff\x00z""#), words(&[b"A\xff\x00z"]));
        // An incomplete hex escape is a plain escape of `x`.
        assert_eq!(split(br#""\x4""#), words(&[b"x4"]));
        assert_eq!(split(br#""""#), words(&[b""]));
    }

    #[test]
    fn single_quotes_only_escape_the_quote() {
        assert_eq!(split(br"'it\'s \n' x"), words(&[b"it's \\n", b"x"]));
        assert_eq!(split(b"''"), words(&[b""]));
    }

    #[test]
    fn quote_may_open_inside_a_word() {
        assert_eq!(split(br#"foo"bar baz" x"#), words(&[b"foobar baz", b"x"]));
        assert_eq!(split(b"ab'c d'"), words(&[b"abc d"]));
    }

    #[test]
    fn unbalanced_quotes_are_refused() {
        for bad in [
            &br#""foo"#[..],
            br#"'foo"#,
            br#""foo"bar"#,
            br#"'foo'bar"#,
            br#"SET "k"#,
            b"\"\\",
            b"\"ab\x00cd\"",
        ] {
            assert_eq!(split(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn closing_quote_may_be_followed_by_any_c_space() {
        assert_eq!(split(b"\"a\"\x0bb"), words(&[b"a", b"b"]));
    }

    #[test]
    fn nul_ends_the_line_outside_quotes() {
        assert_eq!(split(b"PING\x00 ignored"), words(&[b"PING"]));
        assert_eq!(split(b"\x00PING"), words(&[]));
    }

    #[test]
    fn unquoted_words_are_zero_copy() {
        let line = Bytes::from_static(b"GET key");
        let args = split_inline_args(&line).unwrap_or_default();
        assert_eq!(args.len(), 2);
        assert_eq!(args[1].as_ptr(), line[4..].as_ptr());
    }
}
