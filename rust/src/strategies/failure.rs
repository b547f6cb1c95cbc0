//! Whether a tool output's text says the call failed: the one detector the extractive
//! summary (an open error, a command's outcome) and the prune step (`superseded_failures`
//! on formats with no failure flag: OpenAI chat, Responses) share.
//!
//! Conservative on purpose: a false positive makes the prune step replace a useful
//! output by a pointer, so an output that merely *mentions* an error ("fixed the error
//! in a.py", "0 errors", a log line in the middle) is not a failure. A text says the
//! call failed when (ASCII case-insensitive):
//!
//! 1. **it opens like an error**: its first non-blank line is `error`, or begins with
//!    `error:`, `error[` (rustc's `error[E0308]`), `[error]`, `fatal:`, `error executing`,
//!    `error calling`, `error running`, `error invoking`, `an error occurred` (the
//!    OpenAI Agents SDK's message), or `traceback (most recent call last)`;
//! 2. **it is a JSON error object**: it begins (after blanks) with `{` whose first key is
//!    `"error"` and whose value is not `null`, `false` or `""` (`{"error": "not found"}`);
//! 3. **it is dominated by a missing file or command**: at most 3 non-blank lines, the
//!    first of which says `no such file or directory` or `command not found`
//!    (`cat: a.py: No such file or directory`);
//! 4. for a **command** (a call that runs a process, see the callers) only: the last exit
//!    code the text states in its first or last 4 KiB ([`exit_code`]: `exit code: 1`,
//!    `Exit status 2`, `exited with code 127`, `"returncode": 1`, `"exit_code": 0`)
//!    decides when there is one (non-zero: failed, zero: not, whatever the text says);
//!    without one, rules 1-3, or `command not found` / `Traceback (most recent call
//!    last)` anywhere in the first 4 KiB. A file that mentions an exit code is no failure:
//!    only a process has one.
//!
//! `tokensieve.baseline` (`_says_failed`) mirrors this byte for byte.

/// The most of a text looked at from each end for an exit code, and from the start for
/// a command's failure lines.
pub const HEAD_BYTES: usize = 4096;

/// The beginnings of a first line that open an error (lowercase).
pub const OPENINGS: [&str; 10] = [
    "error:",
    "error[",
    "[error]",
    "fatal:",
    "error executing",
    "error calling",
    "error running",
    "error invoking",
    "an error occurred",
    "traceback (most recent call last)",
];

/// Phrases that, in the first line of a short output, say what was run is missing.
pub const MISSING: [&str; 2] = ["no such file or directory", "command not found"];

/// Most non-blank lines of an output [`MISSING`] dominates.
pub const MISSING_MAX_LINES: usize = 3;

/// Whether `text` says the call failed; `command`: the call ran a process (rule 4).
pub fn says_failed(text: &str, command: bool) -> bool {
    if command {
        if let Some(code) = exit_code(text) {
            return code != 0;
        }
    }
    opens_like_error(text)
        || json_error(text)
        || dominated_by_missing(text)
        || command && {
            let head = prefix_at_boundary(text, HEAD_BYTES);
            head.contains("command not found") || head.contains("Traceback (most recent call last)")
        }
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0c')
}

/// The non-blank lines of a text (split at `\n`), trimmed of ASCII blanks.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|l| l.trim_matches(is_blank)).filter(|l| !l.is_empty())
}

/// Words a line that says why an output failed opens with (lowercase).
pub const REASON_OPENINGS: [&str; 5] = ["error", "failed", "failure", "fatal", "panic"];

/// The line of a failed output that says why, for the pointer that replaces it, trimmed
/// of ASCII blanks and at most [`HEAD_BYTES`] (the pointer shows its first 200
/// characters): when the first non-blank line opens a Python traceback, the last
/// non-blank line of the last [`HEAD_BYTES`] (the exception); else the first non-blank
/// line, in the first then the last [`HEAD_BYTES`], that opens with one of
/// [`REASON_OPENINGS`] (`error: ...`, pytest's `FAILED tests/a.py::test_x - ...`); else
/// the first non-blank line.
pub fn reason(text: &str) -> &str {
    let first = lines(text).next().unwrap_or("");
    let opens =
        |line: &str, with: &[u8]| line.as_bytes().get(..with.len()).is_some_and(|b| b.eq_ignore_ascii_case(with));
    let line = if opens(first, b"traceback (most recent call last)") {
        lines(suffix_at_boundary(text, HEAD_BYTES)).last().unwrap_or(first)
    } else {
        let (head, tail) = (prefix_at_boundary(text, HEAD_BYTES), suffix_at_boundary(text, HEAD_BYTES));
        let ends = if head.len() == text.len() { &[head][..] } else { &[head, tail][..] };
        ends.iter()
            .flat_map(|end| lines(end))
            .find(|l| REASON_OPENINGS.iter().any(|w| opens(l, w.as_bytes())))
            .unwrap_or(first)
    };
    prefix_at_boundary(line, HEAD_BYTES)
}

/// Rule 1.
pub fn opens_like_error(text: &str) -> bool {
    let Some(first) = lines(text).next() else { return false };
    let first = first.as_bytes();
    let head = first[..first.len().min(64)].to_ascii_lowercase();
    head == b"error" || OPENINGS.iter().any(|o| head.starts_with(o.as_bytes()))
}

/// Rule 2.
pub fn json_error(text: &str) -> bool {
    let Some(rest) = text.trim_start_matches(is_blank).strip_prefix('{') else { return false };
    let Some(rest) = rest.trim_start_matches(is_blank).strip_prefix("\"error\"") else { return false };
    let Some(rest) = rest.trim_start_matches(is_blank).strip_prefix(':') else { return false };
    let value = rest.trim_start_matches(is_blank);
    !(value.is_empty() || value.starts_with("null") || value.starts_with("false") || value.starts_with("\"\""))
}

/// Rule 3.
pub fn dominated_by_missing(text: &str) -> bool {
    let mut lines = lines(text);
    let Some(first) = lines.next() else { return false };
    if lines.nth(MISSING_MAX_LINES - 1).is_some() {
        return false;
    }
    let lower = first.to_ascii_lowercase();
    MISSING.iter().any(|m| lower.contains(m))
}

/// The last exit code the text states (`exit code: 1`, `Exit status 2`, `exited with code
/// 127`, `"returncode": 1`, `"exit_code": 0`), in its first and last [`HEAD_BYTES`]: a
/// needle, then up to 4 of ` :="'>(`, an optional `-` and up to 6 digits.
pub fn exit_code(text: &str) -> Option<i64> {
    const NEEDLES: [&str; 6] =
        ["exit code", "exit status", "exited with code", "exit_code", "returncode", "return code"];
    let head = prefix_at_boundary(text, HEAD_BYTES);
    let tail = suffix_at_boundary(text, HEAD_BYTES);
    let mut found = None;
    for part in [head, tail] {
        let lower = part.as_bytes().to_ascii_lowercase();
        // Every needle begins with `exit` or `return`: one SIMD search for each finds
        // them all. The code read last wins, in the order of NEEDLES, then of position
        // (what searching each needle in turn would leave).
        let mut last: Option<(usize, usize, i64)> = None;
        for prefix in ["exit", "return"] {
            for at in memchr::memmem::find_iter(&lower, prefix.as_bytes()) {
                for (k, needle) in NEEDLES.iter().enumerate() {
                    if !lower[at..].starts_with(needle.as_bytes()) {
                        continue;
                    }
                    if let Some(code) = code_after(&lower[at + needle.len()..]) {
                        if last.is_none_or(|(k0, at0, _)| (k, at) > (k0, at0)) {
                            last = Some((k, at, code));
                        }
                    }
                }
            }
        }
        if let Some((_, _, code)) = last {
            found = Some(code);
        }
        if found.is_some() && part.len() == text.len() {
            break;
        }
    }
    found
}

/// The number after an exit code's needle: up to 4 of ` :="'>(`, an optional `-`, up to 6 digits.
fn code_after(rest: &[u8]) -> Option<i64> {
    let mut j = 0;
    while j < rest.len() && j < 4 && matches!(rest[j], b' ' | b':' | b'=' | b'"' | b'>' | b'\'' | b'(') {
        j += 1;
    }
    let negative = rest.get(j) == Some(&b'-');
    if negative {
        j += 1;
    }
    let digits = rest[j..].iter().take_while(|b| b.is_ascii_digit()).take(6).count();
    if digits == 0 {
        return None;
    }
    let n: i64 = std::str::from_utf8(&rest[j..j + digits]).ok()?.parse().ok()?;
    Some(if negative { -n } else { n })
}

/// The first `max` bytes of a text, cut back to a character boundary.
pub fn prefix_at_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last `max` bytes of a text, cut forward to a character boundary.
pub fn suffix_at_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_open_like_an_error_are_failures() {
        for text in [
            "Error: no such file: x.py",
            "  \n ERROR: boom",
            "error[E0308]: mismatched types\n --> src/main.rs:2:5",
            "[error] build failed",
            "fatal: not a git repository",
            "Error executing tool read_file: [Errno 2]",
            "An error occurred while running the tool. Please try again. Error: boom",
            "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad",
            "error",
        ] {
            assert!(says_failed(text, false), "{text:?}");
        }
    }

    #[test]
    fn an_output_that_merely_mentions_an_error_is_not_a_failure() {
        for text in [
            "Fixed the error in a.py",
            "0 errors, 3 warnings",
            "Error handling lives in src/errors.py",
            "ok\nError: this line is not the first",
            "errors: none",
            "{\"result\": \"ok\", \"error\": \"none\"}",
            "{\"error\": null, \"result\": 3}",
            "{\"error\": false}",
            "{\"error\": \"\"}",
            "the build returned exit code: 2 last week",
            "a\nb\nc\nd\ncat: a.py: No such file or directory",
            "",
            "   \n\t",
        ] {
            assert!(!says_failed(text, false), "{text:?}");
        }
    }

    #[test]
    fn json_errors_and_missing_files_or_commands_are_failures() {
        assert!(says_failed("{\"error\": \"not found\", \"status\": 404}", false));
        assert!(says_failed("\n {\n  \"error\" : {\"code\": 3}}", false));
        assert!(says_failed("cat: a.py: No such file or directory\n", false));
        assert!(says_failed("bash: foo: command not found\n\nexit status 127", false));
        assert!(!says_failed("a\nb\nc\nzsh: command not found: foo", false));
    }

    #[test]
    fn a_command_is_judged_by_its_exit_code_first() {
        assert!(says_failed("FAILED tests/a.py\nexit code: 1", true));
        assert!(!says_failed("FAILED tests/a.py\nexit code: 1", false));
        assert!(!says_failed("Error: a warning printed on stderr\nexit code: 0", true));
        assert!(says_failed("{\"output\": \"\", \"returncode\": 2}", true));
        assert!(says_failed("running\nsh: 1: foo: command not found\nmore\nand more", true));
        assert!(says_failed("x\nTraceback (most recent call last):\n  File \"x\"\nValueError: bad", true));
        assert!(!says_failed("x\nTraceback (most recent call last):\n  File \"x\"\nValueError: bad", false));
        assert!(!says_failed("all good", true));
    }

    #[test]
    fn the_reason_is_the_first_line_or_a_tracebacks_exception() {
        assert_eq!(reason("\n  Error: old_string not found  \r\nmore"), "Error: old_string not found");
        assert_eq!(
            reason("Traceback (most recent call last):\n  File \"a.py\"\nValueError: bad\n\n"),
            "ValueError: bad"
        );
        assert_eq!(reason(""), "");
        let pytest = "=== test session starts ===\n\n=== FAILURES ===\nE   ValueError: x\nFAILED tests/a.py::t - ValueError: x\n";
        assert_eq!(reason(pytest), "FAILED tests/a.py::t - ValueError: x");
        assert_eq!(
            reason("src/a.py:1:2: F401 `os` imported but unused\nFound 1 error.\n"),
            "src/a.py:1:2: F401 `os` imported but unused"
        );
        let long = format!("start\n{}\nerror: at the end", "x\n".repeat(HEAD_BYTES));
        assert_eq!(reason(&long), "error: at the end");
        assert_eq!(reason(&"é".repeat(5000)).len(), HEAD_BYTES);
    }

    /// The needle-by-needle search [`exit_code`] replaced (and the baseline mirrors).
    fn exit_code_one_needle_at_a_time(text: &str) -> Option<i64> {
        const NEEDLES: [&str; 6] =
            ["exit code", "exit status", "exited with code", "exit_code", "returncode", "return code"];
        let mut found = None;
        for part in [prefix_at_boundary(text, HEAD_BYTES), suffix_at_boundary(text, HEAD_BYTES)] {
            let lower = part.to_ascii_lowercase();
            for needle in NEEDLES {
                let mut from = 0;
                while let Some(at) = lower[from..].find(needle) {
                    from += at + needle.len();
                    if let Some(code) = code_after(&lower.as_bytes()[from..]) {
                        found = Some(code);
                    }
                }
            }
            if found.is_some() && part.len() == text.len() {
                break;
            }
        }
        found
    }

    #[test]
    fn one_search_for_all_needles_finds_what_searching_each_in_turn_finds() {
        let pieces = [
            "exit code: 1",
            "Exit Status 2",
            "exited with code -3",
            "\"exit_code\": 0",
            "returncode=4",
            "return code 5",
            "exit",
            "code",
            "return",
            " ",
            "\n",
            "é",
            "x",
            "EXIT CODE (7)",
            "exit code: ",
            "9",
            "return code: '12'",
        ];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut text = String::new();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = (seed >> 33) % 40;
            for _ in 0..n {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
                if (seed >> 20) % 9 == 0 {
                    text.push_str(&"y".repeat(700));
                }
            }
            assert_eq!(exit_code(&text), exit_code_one_needle_at_a_time(&text), "{text:?}");
        }
    }

    #[test]
    fn exit_codes_are_read_from_both_ends_of_a_long_output() {
        assert_eq!(exit_code("Process exited with code 127"), Some(127));
        assert_eq!(exit_code("exit code: -1"), Some(-1));
        assert_eq!(exit_code("nothing"), None);
        let long = format!("exit code: 0\n{}\nexit code: 3", "x".repeat(3 * HEAD_BYTES));
        assert_eq!(exit_code(&long), Some(3));
        let long = format!("exit code: 4\n{}", "é".repeat(3 * HEAD_BYTES));
        assert_eq!(exit_code(&long), Some(4));
    }
}
