//! LCS's algorithm: the longest common subsequence of two strings by Redis's dynamic
//! programming table, and the matched ranges walked back exactly as `lcsCommand` walks them
//! (so `IDX` lists the same ranges, in the same order, as Redis). Pure: it never reads keys.

/// One matched range: `a[a_start..=a_end]` equals `b[b_start..=b_end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Match {
    /// First index in the first string.
    pub a_start: usize,
    /// Last index in the first string.
    pub a_end: usize,
    /// First index in the second string.
    pub b_start: usize,
    /// Last index in the second string.
    pub b_end: usize,
}

impl Match {
    /// The range's length.
    pub(crate) fn len(&self) -> usize {
        self.a_end - self.a_start + 1
    }
}

/// The result of one LCS computation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lcs {
    /// The common subsequence.
    pub text: Vec<u8>,
    /// Matched ranges from the end of the strings backwards, filtered by `min_match_len`.
    pub matches: Vec<Match>,
}

/// Bytes of table LCS needs for two strings of these lengths (`u32` cells, as Redis).
pub(crate) fn table_bytes(a_len: usize, b_len: usize) -> u128 {
    (a_len as u128 + 1) * (b_len as u128 + 1) * 4
}

/// Computes the LCS of `a` and `b`, keeping ranges at least `min_match_len` long (0: all).
/// The caller bounds the table size first ([`table_bytes`]).
pub(crate) fn lcs(a: &[u8], b: &[u8], min_match_len: usize) -> Lcs {
    let (alen, blen) = (a.len(), b.len());
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let mut idx = table[alen * width + blen] as usize;
    let mut text = vec![0u8; idx];
    let mut matches = Vec::new();
    // `None` plays Redis's "arange_start == alen" (no range open).
    let mut open: Option<Match> = None;
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            text[idx - 1] = a[i - 1];
            match open.as_mut() {
                None => {
                    open = Some(Match {
                        a_start: i - 1,
                        a_end: i - 1,
                        b_start: j - 1,
                        b_end: j - 1,
                    });
                }
                Some(range) if range.a_start == i && range.b_start == j => {
                    range.a_start -= 1;
                    range.b_start -= 1;
                }
                Some(_) => emit = true,
            }
            if let Some(range) = open {
                if range.a_start == 0 || range.b_start == 0 {
                    emit = true;
                }
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if open.is_some() {
                emit = true;
            }
        }
        if emit {
            if let Some(range) = open.take() {
                if min_match_len == 0 || range.len() >= min_match_len {
                    matches.push(range);
                }
            }
        }
    }
    Lcs { text, matches }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_documentation_example() {
        let result = lcs(b"ohmytext", b"mynewtext", 0);
        assert_eq!(result.text, b"mytext");
        assert_eq!(
            result.matches,
            vec![
                Match {
                    a_start: 4,
                    a_end: 7,
                    b_start: 5,
                    b_end: 8
                },
                Match {
                    a_start: 2,
                    a_end: 3,
                    b_start: 0,
                    b_end: 1
                },
            ]
        );
        let filtered = lcs(b"ohmytext", b"mynewtext", 4);
        assert_eq!(filtered.matches.len(), 1);
        assert_eq!(filtered.matches[0].len(), 4);
    }

    #[test]
    fn empty_and_disjoint_strings() {
        assert!(lcs(b"", b"abc", 0).text.is_empty());
        let none = lcs(b"abc", b"xyz", 0);
        assert!(none.text.is_empty() && none.matches.is_empty());
        assert_eq!(table_bytes(1, 1), 16);
    }
}
