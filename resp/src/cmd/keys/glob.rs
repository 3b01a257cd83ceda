//! Glob-style key patterns for KEYS and SCAN MATCH, with Redis's `stringmatchlen` semantics
//! (`util.c`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (reversed ranges swapped), `\` escapes inside
//! and outside classes, an unterminated class read as if closed, and the same guard against
//! abusive patterns (recursion depth, and no retrying longer `*` matches once the rest of
//! the pattern has failed from every later position). Case-sensitive, as KEYS is. Pure.

/// Nesting depth past which Redis gives up on a pattern (`stringmatchlen_impl`).
const MAX_NESTING: usize = 1000;

/// Whether `string` matches the glob `pattern`.
pub(crate) fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, &mut skip_longer, 0)
}

fn match_impl(mut p: &[u8], mut s: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                p = &p[1..];
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let mut matched = false;
                let c = s[0];
                loop {
                    if p.is_empty() {
                        // Unterminated class: Redis steps back so the outer advance lands
                        // on the end of the pattern.
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == c {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        // C compares `char`s, which are signed on the platforms Redis ships on.
                        let (mut start, mut end) = (p[0] as i8, p[2] as i8);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let ch = c as i8;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                        p = &p[2..];
                    } else if p[0] == c {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // The class ran to the end of the pattern: nothing left to advance past.
                    if s.is_empty() {
                        return true;
                    }
                    return false;
                }
            }
            b'\\' => {
                if p.len() >= 2 {
                    p = &p[1..];
                }
                if p[0] != s[0] {
                    return false;
                }
                s = &s[1..];
            }
            other => {
                if other != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches(b"*", b"anything"));
        // As in Redis, a pattern never matches the empty key (KEYS * short-cuts this).
        assert!(!matches(b"*", b""));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"h*llo", b"heeeello"));
        assert!(matches(b"h*llo", b"hllo"));
        assert!(matches(b"user:*", b"user:1"));
        assert!(!matches(b"user:*", b"use"));
        assert!(matches(b"a**b", b"axxb"));
        assert!(matches(b"*a*", b"bab"));
        assert!(!matches(b"", b"a"));
        assert!(matches(b"", b""));
        assert!(matches(b"a*", b"a"));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(matches(b"h[ae]llo", b"hello"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(matches(b"h[b-a]llo", b"hallo"));
        assert!(!matches(b"h[a-b]llo", b"hcllo"));
        assert!(matches(b"[\\]]", b"]"));
        assert!(matches(b"x[a-", b"x-"));
        assert!(matches(b"x[ab", b"xb"));
        assert!(!matches(b"x[ab", b"xbc"));
    }

    #[test]
    fn escapes() {
        assert!(matches(b"h\\*llo", b"h*llo"));
        assert!(!matches(b"h\\*llo", b"hello"));
        assert!(matches(b"a\\", b"a\\"));
        assert!(matches(b"\\?", b"?"));
    }

    #[test]
    fn abusive_patterns_finish() {
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let string = [b'a'; 60];
        assert!(!matches(pattern, &string));
    }
}
