//! Hand-written, linear-time equivalents of the tiktoken pre-tokenizer regexes.
//!
//! tiktoken splits text with a `fancy-regex` pattern before byte-pair encoding each
//! piece. Backtracking on that pattern is what makes the reference implementation slow
//! and, on long whitespace runs, overflow its stack. Each scanner below reproduces the
//! leftmost-first, greedy-with-backtracking semantics of one pattern exactly, alternative
//! by alternative, in a single forward pass (plus a bounded look-back over one run).
//! Exactness is checked against tiktoken-rs in this crate's tests and against the
//! official tiktoken package in the Python test suite.

use crate::classes::{self, LETTER, LOWER, NUMBER, UPPER, WS};

/// Which pattern to split with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
    Cl100k,
    /// The seven-alternative pattern of o200k_base (see [`o200k_end`]).
    O200k,
}

/// Iterator over the byte ranges of the pieces of `text`; the pieces tile the text.
pub struct Pieces<'a> {
    s: &'a [u8],
    pos: usize,
    pattern: Pattern,
}

impl<'a> Pieces<'a> {
    pub fn new(text: &'a str, pattern: Pattern) -> Self {
        Pieces { s: text.as_bytes(), pos: 0, pattern }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.s.len() {
            return None;
        }
        let t = Text { s: self.s };
        let end = match self.pattern {
            Pattern::O200k => o200k_end(&t, self.pos),
            Pattern::Cl100k => cl100k_end(&t, self.pos),
        };
        debug_assert!(end > self.pos && end <= self.s.len());
        let piece = &self.s[self.pos..end];
        self.pos = end;
        Some(piece)
    }
}

/// The text as UTF-8 bytes (always valid: it comes from a `&str`).
struct Text<'a> {
    s: &'a [u8],
}

const NONE: u8 = 0;
const CR: u32 = '\r' as u32;
const LF: u32 = '\n' as u32;

impl Text<'_> {
    /// Class bits, code point and byte length of the character at `i`, or `None` at the end.
    #[inline(always)]
    fn at(&self, i: usize) -> Option<(u8, u32, usize)> {
        let s = self.s;
        let b0 = *s.get(i)?;
        if b0 < 0x80 {
            return Some((classes::ASCII[b0 as usize], b0 as u32, 1));
        }
        let (cp, len) = if b0 < 0xE0 {
            (((b0 & 0x1F) as u32) << 6 | (s[i + 1] & 0x3F) as u32, 2)
        } else if b0 < 0xF0 {
            (((b0 & 0x0F) as u32) << 12 | ((s[i + 1] & 0x3F) as u32) << 6 | (s[i + 2] & 0x3F) as u32, 3)
        } else {
            (
                ((b0 & 0x07) as u32) << 18
                    | ((s[i + 1] & 0x3F) as u32) << 12
                    | ((s[i + 2] & 0x3F) as u32) << 6
                    | (s[i + 3] & 0x3F) as u32,
                4,
            )
        };
        Some((classes::of(cp), cp, len))
    }

    #[inline(always)]
    fn bits(&self, i: usize) -> u8 {
        self.at(i).map_or(NONE, |(c, _, _)| c)
    }

    /// End of the run of characters starting at `i` whose bits intersect `mask`.
    #[inline(always)]
    fn run(&self, mut i: usize, mask: u8) -> usize {
        while let Some((c, _, len)) = self.at(i) {
            if c & mask == 0 {
                break;
            }
            i += len;
        }
        i
    }

    /// End of the run of "other" characters (`[^\s\p{L}\p{N}]`) starting at `i`.
    #[inline(always)]
    fn other_run(&self, mut i: usize) -> usize {
        while let Some((c, _, len)) = self.at(i) {
            if c & (WS | LETTER | NUMBER) != 0 {
                break;
            }
            i += len;
        }
        i
    }

    /// End of the run of bytes from `set` starting at `i` (ASCII sets only).
    #[inline(always)]
    fn byte_run(&self, mut i: usize, set: &[u8]) -> usize {
        while i < self.s.len() && set.contains(&self.s[i]) {
            i += 1;
        }
        i
    }

    /// `\p{N}{1,3}` at `i`.
    #[inline(always)]
    fn digits(&self, mut i: usize) -> usize {
        for _ in 0..3 {
            match self.at(i) {
                Some((c, _, len)) if c & NUMBER != 0 => i += len,
                _ => break,
            }
        }
        i
    }

    /// A whitespace run starting at `i` (whose first character is `\s`):
    /// (end of run, start of its last character, end of its last `\r`/`\n` if any).
    #[inline(always)]
    fn whitespace(&self, mut i: usize) -> (usize, usize, Option<usize>) {
        let mut last_start = i;
        let mut last_newline_end = None;
        while let Some((c, cp, len)) = self.at(i) {
            if c & WS == 0 {
                break;
            }
            if cp == CR || cp == LF {
                last_newline_end = Some(i + len);
            }
            last_start = i;
            i += len;
        }
        (i, last_start, last_newline_end)
    }

    /// Whether `[^\r\n\p{L}\p{N}]` matches a character with these bits and code point.
    #[inline(always)]
    fn prefix_ok(c: u8, cp: u32) -> bool {
        c & (LETTER | NUMBER) == 0 && cp != CR && cp != LF
    }

    /// ASCII-case-insensitive byte match at `i`.
    #[inline(always)]
    fn ascii_ci(&self, i: usize, lower: u8) -> bool {
        self.s.get(i).is_some_and(|b| b.to_ascii_lowercase() == lower)
    }

    /// `(?i:s)` at `i`: under Unicode simple case folding `s` also matches U+017F (ſ).
    #[inline(always)]
    fn s_ci(&self, i: usize) -> Option<usize> {
        if self.ascii_ci(i, b's') {
            Some(i + 1)
        } else if self.s.get(i..i + 2) == Some(&[0xC5, 0xBF]) {
            Some(i + 2)
        } else {
            None
        }
    }

    /// o200k: `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `i`; returns the end of the optional match.
    #[inline(always)]
    fn o200k_contraction(&self, i: usize) -> usize {
        if self.s.get(i) != Some(&b'\'') {
            return i;
        }
        let j = i + 1;
        if let Some(e) = self.s_ci(j) {
            return e;
        }
        for single in [b't', b'm', b'd'] {
            if self.ascii_ci(j, single) {
                return j + 1;
            }
        }
        for (a, b) in [(b'r', b'e'), (b'v', b'e'), (b'l', b'l')] {
            if self.ascii_ci(j, a) && self.ascii_ci(j + 1, b) {
                return j + 2;
            }
        }
        i
    }

    /// cl100k: `'(?i:[sdmt]|ll|ve|re)` at `i` (the apostrophe is at `i`).
    #[inline(always)]
    fn cl100k_contraction(&self, i: usize) -> Option<usize> {
        let j = i + 1;
        if let Some(e) = self.s_ci(j) {
            return Some(e);
        }
        for single in [b'd', b'm', b't'] {
            if self.ascii_ci(j, single) {
                return Some(j + 1);
            }
        }
        for (a, b) in [(b'l', b'l'), (b'v', b'e'), (b'r', b'e')] {
            if self.ascii_ci(j, a) && self.ascii_ci(j + 1, b) {
                return Some(j + 2);
            }
        }
        None
    }

    /// o200k: `[UPPER]*[LOWER]+` at `j`, with the backtracking of the greedy `*`.
    ///
    /// The `*` first takes the whole UPPER run; if no LOWER character follows it, the
    /// engine gives characters back until the `+` can start on one that is in both
    /// classes (Lm, Lo, M). That is the last such character of the run, and the `+`
    /// then ends right after it, since what follows it in the run is not LOWER.
    #[inline(always)]
    fn o200k_word_lower(&self, j: usize) -> Option<usize> {
        let mut i = j;
        let mut last_both_end = None;
        while let Some((c, _, len)) = self.at(i) {
            if c & UPPER == 0 {
                break;
            }
            i += len;
            if c & LOWER != 0 {
                last_both_end = Some(i);
            }
        }
        if self.bits(i) & LOWER != 0 {
            return Some(self.run(i, LOWER));
        }
        last_both_end
    }

    /// o200k: `[UPPER]+[LOWER]*` at `j`.
    #[inline(always)]
    fn o200k_word_upper(&self, j: usize) -> Option<usize> {
        let i = self.run(j, UPPER);
        (i > j).then(|| self.run(i, LOWER))
    }
}

/// End of the o200k_base piece starting at `i`. The pattern, alternative by alternative:
///
/// 1. `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// 2. `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`
/// 3. `\p{N}{1,3}`
/// 4. ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
/// 5. `\s*[\r\n]+`
/// 6. `\s+(?!\S)`
/// 7. `\s+`
fn o200k_end(t: &Text, i: usize) -> usize {
    let (c, cp, len) = t.at(i).expect("i is inside the text");
    let prefix = Text::prefix_ok(c, cp);
    // 1, first with the optional prefix taken, then without it (a mark can be either).
    if prefix {
        if let Some(e) = t.o200k_word_lower(i + len) {
            return t.o200k_contraction(e);
        }
    }
    if c & (UPPER | LOWER) != 0 {
        if let Some(e) = t.o200k_word_lower(i) {
            return t.o200k_contraction(e);
        }
    }
    // 2, same order.
    if prefix {
        if let Some(e) = t.o200k_word_upper(i + len) {
            return t.o200k_contraction(e);
        }
    }
    if let Some(e) = t.o200k_word_upper(i) {
        return t.o200k_contraction(e);
    }
    // 3.
    if c & NUMBER != 0 {
        return t.digits(i);
    }
    // 4.
    let other = |c: u8| c & (WS | LETTER | NUMBER) == 0;
    let start = if cp == ' ' as u32 && other(t.bits(i + 1)) && i + 1 < t.s.len() {
        Some(i + 1)
    } else if other(c) {
        Some(i)
    } else {
        None
    };
    if let Some(j) = start {
        return t.byte_run(t.other_run(j), b"\r\n/");
    }
    // Only whitespace is left.
    debug_assert!(c & WS != 0);
    let (end, last_start, last_newline_end) = t.whitespace(i);
    if let Some(e) = last_newline_end {
        return e; // 5: `\s*` backtracks to the run's last newline.
    }
    if end == t.s.len() {
        return end; // 6 at the end of the text.
    }
    if last_start > i {
        return last_start; // 6: give back the last space, which then leads the next piece.
    }
    end // 7.
}

/// End of the cl100k_base piece starting at `i` (pattern on [`Pattern::Cl100k`]).
fn cl100k_end(t: &Text, i: usize) -> usize {
    let (c, cp, len) = t.at(i).expect("i is inside the text");
    // `'(?i:[sdmt]|ll|ve|re)`
    if cp == '\'' as u32 {
        if let Some(e) = t.cl100k_contraction(i) {
            return e;
        }
    }
    // `[^\r\n\p{L}\p{N}]?+\p{L}++`: the prefix is possessive, so no retry without it.
    if Text::prefix_ok(c, cp) {
        if t.bits(i + len) & LETTER != 0 && i + len < t.s.len() {
            return t.run(i + len, LETTER);
        }
    } else if c & LETTER != 0 {
        return t.run(i, LETTER);
    }
    // `\p{N}{1,3}+`
    if c & NUMBER != 0 {
        return t.digits(i);
    }
    // ` ?[^\s\p{L}\p{N}]++[\r\n]*+`
    let other = |c: u8| c & (WS | LETTER | NUMBER) == 0;
    let start = if cp == ' ' as u32 && i + 1 < t.s.len() && other(t.bits(i + 1)) {
        Some(i + 1)
    } else if other(c) {
        Some(i)
    } else {
        None
    };
    if let Some(j) = start {
        return t.byte_run(t.other_run(j), b"\r\n");
    }
    debug_assert!(c & WS != 0);
    let (end, last_start, last_newline_end) = t.whitespace(i);
    if end == t.s.len() {
        return end; // `\s++$`
    }
    if let Some(e) = last_newline_end {
        return e; // `\s*[\r\n]`
    }
    if last_start > i {
        return last_start; // `\s+(?!\S)`
    }
    end // `\s`
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, p: Pattern) -> Vec<&str> {
        Pieces::new(text, p).map(|b| std::str::from_utf8(b).unwrap()).collect()
    }

    #[test]
    fn o200k_splits_words_with_their_leading_space_and_contractions() {
        assert_eq!(split("Hello world, it's ME'S", Pattern::O200k), ["Hello", " world", ",", " it's", " ME'S"]);
    }

    #[test]
    fn o200k_camel_case_splits_before_each_capital() {
        assert_eq!(split("parseHTTPResponse", Pattern::O200k), ["parse", "HTTPResponse"]);
    }

    #[test]
    fn o200k_gives_the_last_space_of_a_run_to_the_next_word() {
        assert_eq!(split("a   b", Pattern::O200k), ["a", "  ", " b"]);
        assert_eq!(split("x  \n\n  y", Pattern::O200k), ["x", "  \n\n", " ", " y"]);
    }

    #[test]
    fn o200k_digits_group_by_three_and_punctuation_keeps_trailing_newlines() {
        assert_eq!(split("12345", Pattern::O200k), ["123", "45"]);
        assert_eq!(split("});\n\nfoo", Pattern::O200k), ["});\n\n", "foo"]);
    }

    #[test]
    fn cl100k_contractions_stand_alone_and_trailing_whitespace_is_one_piece() {
        assert_eq!(split("it's  \n ", Pattern::Cl100k), ["it", "'s", "  \n "]);
        assert_eq!(split("'sup", Pattern::Cl100k), ["'s", "up"]);
    }

    #[test]
    fn every_scanner_tiles_its_input() {
        let text = "héllo\u{0301}  wörld\t\r\n 123 😀😀 'LL /* x */ \u{3000}z";
        for p in [Pattern::O200k, Pattern::Cl100k] {
            assert_eq!(split(text, p).concat(), text);
        }
    }
}
