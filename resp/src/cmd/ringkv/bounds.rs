//! KRANGE's bounds, with ZRANGEBYLEX's syntax (`zslParseLexRangeItem` in Redis's `t_zset.c`):
//! `[key` inclusive, `(key` exclusive, `-` the smallest and `+` the largest possible key.
//! Anything else is `ERR min or max not valid string range item`. Pure: it never reads keys.

use std::ops::Bound;

use bytes::Bytes;

use crate::cmd::args::error;
use crate::cmd::CommandError;

/// One parsed bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LexBound {
    /// `-`: before every key.
    Min,
    /// `+`: after every key.
    Max,
    /// `[key`.
    Inclusive(Bytes),
    /// `(key`.
    Exclusive(Bytes),
}

/// Parses one bound.
pub(crate) fn parse(arg: &Bytes) -> Result<LexBound, CommandError> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Inclusive(arg.slice(1..))),
        Some(b'(') => Ok(LexBound::Exclusive(arg.slice(1..))),
        _ => Err(error("ERR min or max not valid string range item")),
    }
}

impl LexBound {
    /// This bound as a range start, or `None` when nothing can follow it (`+`).
    pub(crate) fn as_start(&self) -> Option<Bound<Bytes>> {
        match self {
            LexBound::Min => Some(Bound::Unbounded),
            LexBound::Max => None,
            LexBound::Inclusive(k) => Some(Bound::Included(k.clone())),
            LexBound::Exclusive(k) => Some(Bound::Excluded(k.clone())),
        }
    }

    /// This bound as a range end, or `None` when nothing can precede it (`-`).
    pub(crate) fn as_end(&self) -> Option<Bound<Bytes>> {
        match self {
            LexBound::Min => None,
            LexBound::Max => Some(Bound::Unbounded),
            LexBound::Inclusive(k) => Some(Bound::Included(k.clone())),
            LexBound::Exclusive(k) => Some(Bound::Excluded(k.clone())),
        }
    }
}

/// Whether no key can lie between `start` and `end` (min above max, or equal with either
/// side exclusive), so the cluster need not be asked.
pub(crate) fn is_empty(start: &Bound<Bytes>, end: &Bound<Bytes>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s >= e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn bounds_parse_like_zrangebylex() {
        assert_eq!(parse(&b("-")).ok(), Some(LexBound::Min));
        assert_eq!(parse(&b("+")).ok(), Some(LexBound::Max));
        assert_eq!(parse(&b("[a")).ok(), Some(LexBound::Inclusive(b("a"))));
        assert_eq!(parse(&b("(a")).ok(), Some(LexBound::Exclusive(b("a"))));
        assert_eq!(parse(&b("[")).ok(), Some(LexBound::Inclusive(b(""))));
        for bad in ["a", "", "--", "+a", "-a"] {
            match parse(&b(bad)) {
                Err(CommandError::Reply(text)) => {
                    assert_eq!(text, "ERR min or max not valid string range item")
                }
                other => panic!("{bad:?}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn bounds_convert_and_detect_empty_ranges() {
        assert_eq!(LexBound::Max.as_start(), None);
        assert_eq!(LexBound::Min.as_end(), None);
        assert_eq!(LexBound::Min.as_start(), Some(Bound::Unbounded));
        let inc = |s: &str| Bound::Included(b(s));
        let exc = |s: &str| Bound::Excluded(b(s));
        assert!(!is_empty(&inc("a"), &inc("a")));
        assert!(is_empty(&inc("a"), &exc("a")));
        assert!(is_empty(&exc("b"), &inc("a")));
        assert!(!is_empty(&exc("a"), &inc("b")));
        assert!(!is_empty(&Bound::Unbounded, &exc("a")));
    }
}
