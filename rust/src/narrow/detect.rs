//! What kind of output a text is, from its first 64 KiB, and the line patterns that mark
//! failure, warnings and summaries.
//!
//! Every rule here is written a second time in `tokensieve.baseline` (the differential
//! tests hold them equal), so they are plain substring and character tests: no regex
//! engine whose Unicode tables could differ between the two.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::OnceLock;

/// Bytes read from the start of an output to tell its kind.
pub const DETECT_BYTES: usize = 64 * 1024;

/// The kinds of output tokensieve recognizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Json,
    Binary,
    Diff,
    GitLog,
    Pytest,
    Unittest,
    Cargo,
    GoTest,
    Tsc,
    Npm,
    Pip,
    Traceback,
    Grep,
    Listing,
    Minified,
    Cjk,
    Text,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Binary => "binary",
            Kind::Diff => "diff",
            Kind::GitLog => "git_log",
            Kind::Pytest => "pytest",
            Kind::Unittest => "unittest",
            Kind::Cargo => "cargo",
            Kind::GoTest => "go_test",
            Kind::Tsc => "tsc",
            Kind::Npm => "npm",
            Kind::Pip => "pip",
            Kind::Traceback => "traceback",
            Kind::Grep => "grep",
            Kind::Listing => "listing",
            Kind::Minified => "minified",
            Kind::Cjk => "cjk",
            Kind::Text => "text",
        }
    }

    /// Test runs, build and install logs, tracebacks: summarized by their failures.
    pub fn is_log(self) -> bool {
        matches!(
            self,
            Kind::Pytest
                | Kind::Unittest
                | Kind::Cargo
                | Kind::GoTest
                | Kind::Tsc
                | Kind::Npm
                | Kind::Pip
                | Kind::Traceback
        )
    }
}

/// The longest prefix of `text` of at most [`DETECT_BYTES`] bytes ending on a character.
pub fn detect_prefix(text: &str) -> &str {
    if text.len() <= DETECT_BYTES {
        return text;
    }
    let mut end = DETECT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

const ASCII_WS: [char; 6] = [' ', '\t', '\r', '\n', '\x0b', '\x0c'];

fn is_ws(c: char) -> bool {
    ASCII_WS.contains(&c)
}

/// `path:123:` at the start of a line (grep -rn, ripgrep -n): the path has a `/` or a
/// `.` (a timestamp such as `10:42:07` is no path).
pub fn grep_key(line: &str) -> Option<&str> {
    let colon = line.find(':')?;
    let path = &line[..colon];
    if colon == 0 || path.chars().any(is_ws) || !path.contains(['/', '.']) {
        return None;
    }
    let rest = &line.as_bytes()[colon + 1..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0 && rest.get(digits) == Some(&b':')).then(|| &line[..colon])
}

/// `{` then a key or `}`; `[` then a value that JSON allows there (so that a log of
/// `[00012] ...` or `[INFO] ...` lines is not taken for JSON).
fn looks_like_json(p: &str) -> bool {
    let t = p.trim_start_matches(is_ws);
    let rest = |n: usize| t[n..].trim_start_matches(is_ws);
    if t.starts_with('{') {
        return rest(1).starts_with(['"', '}']) || rest(1).is_empty();
    }
    if !t.starts_with('[') {
        return false;
    }
    let v = rest(1);
    if v.is_empty() || v.starts_with(['{', '[', '"', ']']) {
        return true;
    }
    let len = match ["true", "false", "null"].iter().find(|w| v.starts_with(**w)) {
        Some(w) => w.len(),
        None => {
            let n =
                v.bytes().take_while(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')).count();
            if n == 0 || !json_number_ok(&v[..n]) {
                return false;
            }
            n
        }
    };
    let after = v[len..].trim_start_matches(is_ws);
    after.is_empty() || after.starts_with([',', ']'])
}

/// A JSON number has no leading zero (`0`, `-0`, `0.5` are fine; `00012` is not).
fn json_number_ok(n: &str) -> bool {
    let digits = n.trim_start_matches('-');
    !(digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit())
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xFF00..=0xFFEF)
}

/// The kind of an output, from its prefix (see [`detect_prefix`]). Rules in order; the
/// first that holds wins.
pub fn detect(p: &str) -> Kind {
    if looks_like_json(p) {
        return Kind::Json;
    }
    let (mut chars, mut bad) = (0usize, 0usize);
    for c in p.chars() {
        chars += 1;
        if (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\x7f' || c == '\u{FFFD}' {
            bad += 1;
        }
    }
    if chars > 0 && bad * 100 >= chars {
        return Kind::Binary;
    }
    if p.starts_with("diff --git ") || p.contains("\ndiff --git ") || (p.starts_with("--- ") && p.contains("\n+++ ")) {
        return Kind::Diff;
    }
    if p.starts_with("commit ") && p.contains("\nAuthor: ") {
        return Kind::GitLog;
    }
    if p.contains("test session starts") || p.contains("short test summary info") {
        return Kind::Pytest;
    }
    if (p.contains("\nRan ") && (p.contains(" test in ") || p.contains(" tests in "))) || p.contains(&"=".repeat(70)) {
        return Kind::Unittest;
    }
    if p.contains("error[E")
        || p.contains("   Compiling ")
        || p.contains("test result: ")
        || p.contains("warning: unused")
    {
        return Kind::Cargo;
    }
    if p.contains("=== RUN ") || p.contains("--- FAIL: ") || p.contains("\nok  \t") || p.contains("\nFAIL\t") {
        return Kind::GoTest;
    }
    if p.contains(": error TS") || p.contains("): error TS") {
        return Kind::Tsc;
    }
    if p.contains("npm ERR!") || p.contains("npm WARN") || p.contains("npm error") {
        return Kind::Npm;
    }
    if p.contains("Collecting ") || p.contains("Requirement already satisfied") || p.contains("Successfully installed")
    {
        return Kind::Pip;
    }
    if p.contains("Traceback (most recent call last):") {
        return Kind::Traceback;
    }
    let lines: Vec<&str> = p.split('\n').filter(|l| !l.trim_matches(is_ws).is_empty()).take(20).collect();
    if !lines.is_empty() {
        let grep = lines.iter().filter(|l| grep_key(l).is_some()).count();
        if grep * 2 >= lines.len() {
            return Kind::Grep;
        }
        let paths = lines.iter().filter(|l| !l.trim_end_matches('\r').chars().any(is_ws) && l.len() <= 255).count();
        let dirs = lines.iter().any(|l| l.contains('/') || l.trim_end_matches('\r').ends_with(':'));
        if dirs && paths * 5 >= lines.len() * 4 {
            return Kind::Listing;
        }
    }
    if p.split('\n').any(|l| l.len() > 1000) {
        return Kind::Minified;
    }
    let (mut visible, mut cjk) = (0usize, 0usize);
    for c in p.chars().filter(|&c| !is_ws(c)) {
        visible += 1;
        cjk += is_cjk(c) as usize;
    }
    if visible > 0 && cjk * 10 >= visible * 3 {
        return Kind::Cjk;
    }
    Kind::Text
}

/// Substrings that make a line describe a failure, each in three spellings: as written,
/// capitalized and upper case (`error`, `Error`, `ERROR`; see [`spellings`]).
pub const ERROR_PATTERNS: &[&str] = &[
    "error",
    "fatal",
    "panic",
    "exception",
    "traceback",
    "fail",
    "abort",
    "segmentation fault",
    "core dumped",
    "denied",
    "err!",
    "undefined reference",
    "cannot find",
    "no such file",
    "not found",
    "caused by",
    "assert",
    "\u{2717}",
    "\u{2716}",
    "\u{2715}",
];

/// Substrings of warnings (in the same three spellings): kept and counted by smart_summary.
pub const WARNING_PATTERNS: &[&str] = &["warn", "deprecat"];

/// Substrings (case-sensitive) of the summary lines of test runs and installs.
pub const SUMMARY_PATTERNS: &[&str] = &[
    " passed",
    "test result:",
    "Ran ",
    "Tests:",
    "Test Suites:",
    "short test summary",
    "ok  \t",
    "Finished ",
    "Successfully installed",
    "vulnerabilities",
    "packages in",
];

/// A pattern as written, capitalized and in upper case (duplicates removed, in that order).
///
/// Why not ASCII case-insensitive matching: it disables the automaton's SIMD prefilter,
/// and lines are then matched at ~130 MB/s; three spellings keep it (~450 MB/s per
/// line, ~900 MB/s over a whole buffer) and cover how tools actually write them.
pub fn spellings(patterns: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in patterns {
        let mut capitalized = p.to_string();
        if let Some(first) = capitalized.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        for v in [p.to_string(), capitalized, p.to_ascii_uppercase()] {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

fn automaton<P: AsRef<[u8]>>(patterns: &[P]) -> AhoCorasick {
    AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).build(patterns).expect("the patterns are valid")
}

/// The three line matchers.
pub struct Matchers {
    pub errors: AhoCorasick,
    pub warnings: AhoCorasick,
    pub summaries: AhoCorasick,
}

pub fn matchers() -> &'static Matchers {
    static M: OnceLock<Matchers> = OnceLock::new();
    M.get_or_init(|| Matchers {
        errors: automaton(&spellings(ERROR_PATTERNS)),
        warnings: automaton(&spellings(WARNING_PATTERNS)),
        summaries: automaton(SUMMARY_PATTERNS),
    })
}

/// A line that continues the block above it: indented, and not blank.
pub fn is_indented(seg: &str) -> bool {
    (seg.starts_with(' ') || seg.starts_with('\t')) && !seg.trim_matches([' ', '\t', '\r', '\n']).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_from_their_typical_first_lines() {
        assert_eq!(detect("  {\"a\": 1}"), Kind::Json);
        assert_eq!(detect("diff --git a/x b/x\nindex 1..2\n"), Kind::Diff);
        assert_eq!(detect("commit 0123\nAuthor: A <a@b>\n"), Kind::GitLog);
        assert_eq!(detect("===== test session starts =====\n"), Kind::Pytest);
        assert_eq!(detect("   Compiling foo v0.1.0\nerror[E0308]: mismatched types\n"), Kind::Cargo);
        assert_eq!(detect("=== RUN   TestA\n--- FAIL: TestA (0.00s)\n"), Kind::GoTest);
        assert_eq!(detect("src/a.ts(3,5): error TS2322: Type 'string'\n"), Kind::Tsc);
        assert_eq!(detect("npm ERR! code E404\n"), Kind::Npm);
        assert_eq!(detect("Collecting requests\n"), Kind::Pip);
        assert_eq!(detect("Traceback (most recent call last):\n  File \"x\"\n"), Kind::Traceback);
        assert_eq!(detect("src/a.py:12:import os\nsrc/b.py:3:import os\n"), Kind::Grep);
        assert_eq!(detect("./src\n./src/a.py\n./src/b.py\n"), Kind::Listing);
        assert_eq!(detect(&"x".repeat(2000)), Kind::Minified);
        assert_eq!(detect("\u{0}\u{1}\u{2}abc"), Kind::Binary);
        assert_eq!(detect("这是一个测试。日本語のテキスト"), Kind::Cjk);
        assert_eq!(detect("[00001] 系统在处理请求时发生错误\n[00002] 日本語のテキスト"), Kind::Cjk);
        assert_eq!(detect("[INFO] started\n"), Kind::Text);
        assert_eq!(detect("[1, 2, 3]"), Kind::Json);
        assert_eq!(detect("[\n  {\"a\": 1}"), Kind::Json);
        assert_eq!(detect("2024-05-01T10:00:00Z INFO x\n2024-05-01T10:00:01Z INFO y\n"), Kind::Text);
        assert_eq!(detect("hello world\n"), Kind::Text);
    }

    #[test]
    fn error_patterns_match_in_three_spellings() {
        let m = matchers();
        assert!(m.errors.is_match("Something FAILED here"));
        assert!(m.errors.is_match("Fatal: no"));
        assert!(m.errors.is_match("fatal: no"));
        assert!(!m.errors.is_match("fAtAl: mixed case is not a spelling tools use"));
        assert!(m.errors.is_match("ValueError: bad"));
        assert!(!m.errors.is_match("all good"));
        assert!(!m.summaries.is_match("test_a PASSED"));
        assert!(m.summaries.is_match("=== 3 passed in 0.1s ==="));
    }

    #[test]
    fn grep_keys_need_a_path_a_line_number_and_a_colon() {
        assert_eq!(grep_key("src/a.rs:12:fn main()"), Some("src/a.rs"));
        assert_eq!(grep_key("src/a.rs:x:fn"), None);
        assert_eq!(grep_key("a b:1:c"), None);
        assert_eq!(grep_key(":1:c"), None);
    }
}
