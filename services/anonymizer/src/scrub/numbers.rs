//! The number patterns of [`super`] (`text_numbers`, `identifier_numbers`) for ASCII text,
//! as byte scans: titles, labels and identifiers are nearly always ASCII, and a scan costs
//! a fraction of a regex search. On ASCII, `\d` is `[0-9]` and a word character is
//! `[0-9A-Za-z_]`, so the scans find exactly what the patterns find (a test compares them).

use std::ops::Range;

const DATE_SEPARATORS: &[u8] = b"-/.";
const NUMBER_SEPARATORS: &[u8] = b" _./:-";

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where the run of digits starting at `at` ends.
fn digits_end(t: &[u8], at: usize) -> usize {
    at + t[at..].iter().take_while(|b| b.is_ascii_digit()).count()
}

fn next_digit(t: &[u8], from: usize) -> Option<usize> {
    Some(from + t.get(from..)?.iter().position(u8::is_ascii_digit)?)
}

/// The next match of `\d+(?:[ _./:\-]\d+)*` from `from`: greedy, and every repetition
/// needs a digit after its separator, so the longest chain is the match.
pub(super) fn next_in_identifier(t: &[u8], from: usize) -> Option<Range<usize>> {
    let start = next_digit(t, from)?;
    let mut end = digits_end(t, start);
    while end + 1 < t.len() && NUMBER_SEPARATORS.contains(&t[end]) && t[end + 1].is_ascii_digit() {
        end = digits_end(t, end + 1);
    }
    Some(start..end)
}

/// The next match of `DATE|\d+` from `from`. Both branches start at a digit, so the match
/// starts at the next digit; there the date branch wins if it matches at all.
pub(super) fn next_in_text(t: &[u8], from: usize) -> Option<Range<usize>> {
    let start = next_digit(t, from)?;
    let boundary_before = start == 0 || !is_word(t[start - 1]);
    let date = boundary_before.then(|| date_end(t, start)).flatten();
    Some(start..date.unwrap_or_else(|| digits_end(t, start)))
}

/// Where `\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b` ends when
/// it matches at `start` (a word boundary): the digit-group widths are tried in the order
/// a backtracking regex tries them (first branch first, longer counts first), and the first
/// that fits is the match.
fn date_end(t: &[u8], start: usize) -> Option<usize> {
    let branches: [(&[usize], &[usize], &[usize]); 2] =
        [(&[4], &[2, 1], &[2, 1]), (&[2, 1], &[2, 1], &[4, 3, 2])];
    let digits = |at: usize, n: usize| {
        let end = at + n;
        (end <= t.len() && t[at..end].iter().all(u8::is_ascii_digit)).then_some(end)
    };
    let separator =
        |at: usize| (at < t.len() && DATE_SEPARATORS.contains(&t[at])).then_some(at + 1);
    let boundary_after = |at: usize| at == t.len() || !is_word(t[at]);
    for (first, middle, last) in branches {
        for &a in first {
            for &b in middle {
                for &c in last {
                    let end = digits(start, a)
                        .and_then(separator)
                        .and_then(|at| digits(at, b))
                        .and_then(separator)
                        .and_then(|at| digits(at, c));
                    if let Some(end) = end.filter(|&end| boundary_after(end)) {
                        return Some(end);
                    }
                }
            }
        }
    }
    None
}
