//! The tool output budget: narrow what a tool returned to an exact token limit before it
//! enters the history.
//!
//! One pass over the output's lines, in bounded memory whatever its size:
//!
//! * the text is cut into **segments**: its lines, a line longer than [`SEG_MAX`] bytes
//!   cut into pieces of at most that (on character boundaries), so a 1 GB line of
//!   minified JavaScript is never held whole;
//! * the **kind** of output is told from the first 64 KiB ([`detect`]);
//! * a **mode** keeps segments within the budget: `truncated` (a prefix, its last
//!   segment cut at a token boundary), `heads_tails` (first lines within a share of the
//!   budget, last lines within the rest; the tail is a ring of the last bytes, large
//!   enough to hold the whole tail budget because no token is longer than the
//!   vocabulary's longest), `errors_only` (lines matching failure patterns with their
//!   context and indented continuation; `heads_tails` when no line matches) and
//!   `smart_summary` (per kind, see [`summary`]);
//! * markers say which lines were omitted, and a closing marker says how much and, when
//!   the caller spilled the full output somewhere, how to read it.
//!
//! **Limits are exact.** Only kept segments are tokenized (never what is dropped); the
//! closing marker's tokens are reserved before anything is kept, with every number in it
//! at its widest; the narrowed text is counted once as a whole and, in the rare case the
//! joined text counts more than its parts, trimmed until it fits.
//!
//! `tokensieve.baseline` implements the same algorithm in pure Python; the differential
//! tests hold both to the same output.

pub mod detect;
pub mod summary;

use crate::encoding::Encoding;
use crate::error::{Error, Result};
use detect::{detect, detect_prefix, is_indented, matchers, Kind, DETECT_BYTES};
use std::collections::VecDeque;
use summary::{json_shape, Transform};

/// Longest segment, in bytes.
pub const SEG_MAX: usize = 2048;
/// Context lines kept before and after a matching line.
pub const BEFORE: usize = 2;
pub const AFTER: usize = 2;
/// Indented lines kept after a matching line (traceback frames, diagnostic bodies).
pub const CONTINUATION: usize = 30;
/// errors_only keeps the last failure lines it could not fit at first (the summary a
/// test run or build ends with): up to this many, in the quarter of the budget it holds back.
pub const LAST_HITS: usize = 8;
/// JSON longer than this is not parsed for its shape (heads_tails instead).
pub const JSON_MAX_BYTES: usize = 64 << 20;
/// The widest number a marker holds: reserves are counted with it.
const WIDEST: u64 = 999_999_999_999;

/// How a tool output is narrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Truncated,
    HeadsTails,
    ErrorsOnly,
    SmartSummary,
}

impl Mode {
    pub const NAMES: [&'static str; 5] = ["full", "truncated", "heads_tails", "errors_only", "smart_summary"];

    pub fn from_name(name: &str) -> Result<Mode> {
        Ok(match name {
            "full" => Mode::Full,
            "truncated" => Mode::Truncated,
            "heads_tails" => Mode::HeadsTails,
            "errors_only" => Mode::ErrorsOnly,
            "smart_summary" => Mode::SmartSummary,
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "unknown narrowing mode {name:?}; modes: {}",
                    Mode::NAMES.join(", ")
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        Mode::NAMES[self as usize]
    }
}

/// What to narrow to.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// The limit, in tokens of the encoding, markers included.
    pub max_tokens: usize,
    /// heads_tails: the share of the budget for the first lines (the rest is the tail's).
    pub head_ratio: f64,
    /// Outputs of at most this many bytes are counted whole (`tokens_before`, and the
    /// closing marker says it); longer ones only where kept.
    pub count_all_max_bytes: usize,
    /// What the closing marker says about the full output (where it was spilled). Its
    /// tokens are reserved; [`Narrower::finish`] may give the final text (same length).
    pub note: Option<String>,
}

impl Options {
    pub fn new(mode: Mode, max_tokens: usize) -> Self {
        Options { mode, max_tokens, head_ratio: 0.4, count_all_max_bytes: 0, note: None }
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.head_ratio) {
            return Err(Error::InvalidConfig(format!("head_ratio must be in [0, 1], got {}", self.head_ratio)));
        }
        Ok(())
    }
}

/// What narrowing did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The narrowed text; None when the output is returned unchanged.
    pub text: Option<String>,
    /// The mode that ran (`Full` when the output was under the limit).
    pub mode: Mode,
    pub kind: Kind,
    /// Tokens of the whole output, when it was counted (see `count_all_max_bytes`).
    pub tokens_before: Option<u64>,
    pub tokens_after: u64,
    pub lines: u64,
    pub lines_dropped: u64,
    pub bytes: u64,
    pub bytes_dropped: u64,
    /// Lines matching the failure patterns, and how many of them were not kept.
    pub error_lines: u64,
    pub errors_dropped: u64,
}

// ---- kept segments and markers -----------------------------------------------------------

#[derive(Clone, Debug)]
struct Kept {
    seg: u64,
    line: u64,
    text: String,
    tokens: usize,
    starts_line: bool,
    /// The segment goes on after this text (a prefix cut at a token boundary).
    cut_after: bool,
    /// The segment began before this text (a suffix cut at a token boundary).
    cut_before: bool,
    is_match: bool,
    in_tail: bool,
}

fn has_gap(prev: Option<&Kept>, next: Option<&Kept>, segs: u64) -> bool {
    match (prev, next) {
        (None, Some(n)) => n.seg > 0 || n.cut_before,
        (Some(p), Some(n)) => p.seg + 1 < n.seg || p.cut_after || n.cut_before,
        (Some(p), None) => p.seg + 1 < segs || p.cut_after,
        (None, None) => segs > 0,
    }
}

/// `[... lines a-b omitted ...]` for the gap between `prev` and `next` (None: the end),
/// with a newline first when the text before does not end in one.
fn gap_marker(prev: Option<&Kept>, next: Option<&Kept>, lines: u64) -> String {
    let a = match prev {
        None => 0,
        Some(p) if p.text.ends_with('\n') && !p.cut_after => p.line + 1,
        Some(p) => p.line,
    };
    let b = match next {
        None => lines.saturating_sub(1),
        Some(n) if n.cut_before || !n.starts_line => n.line,
        Some(n) => n.line.saturating_sub(1),
    };
    let b = b.max(a);
    let nl = if prev.is_some_and(|p| !p.text.ends_with('\n')) { "\n" } else { "" };
    if a == b {
        format!("{nl}[... line {} omitted ...]\n", a + 1)
    } else {
        format!("{nl}[... lines {}-{} omitted ...]\n", a + 1, b + 1)
    }
}

fn widest_gap() -> String {
    format!("\n[... lines {WIDEST}-{WIDEST} omitted ...]\n")
}

fn summary_gap(omitted: u64) -> String {
    format!("[... {omitted} summary lines omitted ...]\n")
}

/// The closing marker of the line modes.
#[allow(clippy::too_many_arguments)]
fn closing(
    label: &str,
    dropped: u64,
    lines: u64,
    bytes_dropped: u64,
    bytes: u64,
    tokens: Option<u64>,
    nofit: Option<u64>,
    counts: Option<(u64, u64)>,
    note: Option<&str>,
) -> String {
    let mut s = format!("[tokensieve {label}: omitted {dropped} of {lines} lines ({bytes_dropped} of {bytes} bytes)");
    if let Some(t) = tokens {
        s.push_str(&format!("; the full output has {t} tokens"));
    }
    if let Some(k) = nofit.filter(|&k| k > 0) {
        s.push_str(&format!("; {k} error lines did not fit"));
    }
    if let Some((e, w)) = counts {
        s.push_str(&format!("; {e} error and {w} warning lines in all"));
    }
    if let Some(note) = note {
        s.push_str("; ");
        s.push_str(note);
    }
    s.push(']');
    s
}

/// The closing marker of a structural summary.
fn summary_closing(label: &str, lines: u64, bytes: u64, kept: u64, tokens: Option<u64>, note: Option<&str>) -> String {
    let mut s = format!("[tokensieve {label}: {lines} lines ({bytes} bytes) summarized in {kept} lines");
    if let Some(t) = tokens {
        s.push_str(&format!("; the full output has {t} tokens"));
    }
    if let Some(note) = note {
        s.push_str("; ");
        s.push_str(note);
    }
    s.push(']');
    s
}

fn short_closing(label: &str, lines: u64) -> String {
    format!("[tokensieve {label}: {lines} lines omitted]")
}

/// Longest prefix of `text` made of whole pre-tokenizer pieces within `budget` tokens:
/// (its length in bytes, its tokens).
fn prefix_within(enc: &Encoding, text: &str, budget: usize) -> (usize, usize) {
    let (mut end, mut used) = (0, 0);
    for piece in enc.pieces(text) {
        let t = enc.count_piece(piece);
        if used + t > budget {
            break;
        }
        used += t;
        end += piece.len();
    }
    (end, used)
}

/// Shortest start of a suffix of `text` made of whole pieces within `budget` tokens.
fn suffix_within(enc: &Encoding, text: &str, budget: usize) -> (usize, usize) {
    let pieces: Vec<(usize, usize)> = enc.pieces(text).map(|p| (p.len(), enc.count_piece(p))).collect();
    let (mut start, mut used) = (text.len(), 0);
    for &(len, t) in pieces.iter().rev() {
        if used + t > budget {
            break;
        }
        used += t;
        start -= len;
    }
    (start, used)
}

/// Shared facts for rendering.
struct Totals<'a> {
    segs: u64,
    lines: u64,
    bytes: u64,
    tokens: Option<u64>,
    note: Option<&'a str>,
}

struct Rendered {
    text: String,
    tokens: usize,
    lines_dropped: u64,
    bytes_dropped: u64,
}

fn render_lines(kept: &[Kept], t: &Totals<'_>, closing_of: &dyn Fn(u64, u64) -> String) -> (String, u64, u64) {
    let mut out = String::new();
    let mut prev: Option<&Kept> = None;
    let (mut distinct, mut last_line, mut kept_bytes) = (0u64, None, 0u64);
    for k in kept {
        if has_gap(prev, Some(k), t.segs) {
            out.push_str(&gap_marker(prev, Some(k), t.lines));
        }
        out.push_str(&k.text);
        kept_bytes += k.text.len() as u64;
        if last_line != Some(k.line) {
            distinct += 1;
            last_line = Some(k.line);
        }
        prev = Some(k);
    }
    if has_gap(prev, None, t.segs) {
        out.push_str(&gap_marker(prev, None, t.lines));
    }
    let (lines_dropped, bytes_dropped) = (t.lines - distinct, t.bytes - kept_bytes);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&closing_of(lines_dropped, bytes_dropped));
    (out, lines_dropped, bytes_dropped)
}

/// Renders kept segments: the text, and how many lines and bytes it leaves out.
type RenderFn<'a> = dyn Fn(&[Kept]) -> (String, u64, u64) + 'a;

/// Render, count, and while the whole counts over `limit`, let `trim` drop kept segments
/// (at least `excess` tokens of them; it returns false when nothing is left to drop).
fn fit(
    enc: &Encoding,
    limit: usize,
    kept: &mut Vec<Kept>,
    render: &RenderFn<'_>,
    trim: &mut dyn FnMut(&mut Vec<Kept>, usize) -> bool,
    short: &dyn Fn() -> String,
) -> Rendered {
    loop {
        let (text, lines_dropped, bytes_dropped) = render(kept);
        let tokens = enc.count(&text);
        if tokens <= limit {
            return Rendered { text, tokens, lines_dropped, bytes_dropped };
        }
        if !trim(kept, tokens - limit) {
            let text = short();
            let tokens = enc.count(&text);
            let text = if tokens <= limit { text } else { String::new() };
            let tokens = if text.is_empty() { 0 } else { tokens };
            return Rendered { text, tokens, lines_dropped, bytes_dropped };
        }
    }
}

// ---- heads and tails ---------------------------------------------------------------------

struct HeadTail {
    truncate: bool,
    budget: usize,
    head_budget: usize,
    gap_reserve: usize,
    maxlen: usize,
    head: Vec<Kept>,
    head_used: usize,
    open: bool,
    tail_budget: usize,
    cap: usize,
    ring: VecDeque<u8>,
    meta: VecDeque<(u64, u64, bool, usize)>,
}

impl HeadTail {
    fn new(enc: &Encoding, truncate: bool, budget: usize, head_ratio: f64) -> Self {
        let head_budget = if truncate { budget } else { (budget as f64 * head_ratio).floor() as usize };
        HeadTail {
            truncate,
            budget,
            head_budget,
            gap_reserve: enc.count(&widest_gap()),
            maxlen: enc.vocabulary().max_token_len().max(1),
            head: Vec::new(),
            head_used: 0,
            open: true,
            tail_budget: 0,
            cap: 0,
            ring: VecDeque::new(),
            meta: VecDeque::new(),
        }
    }

    fn push(&mut self, enc: &Encoding, seg: u64, line: u64, starts_line: bool, text: &str) {
        if self.open {
            let t = enc.count(text);
            if self.head_used + t <= self.head_budget {
                self.head.push(Kept {
                    seg,
                    line,
                    text: text.to_owned(),
                    tokens: t,
                    starts_line,
                    cut_after: false,
                    cut_before: false,
                    is_match: false,
                    in_tail: false,
                });
                self.head_used += t;
                return;
            }
            self.open = false;
            if self.truncate || self.head.is_empty() {
                let (end, used) = prefix_within(enc, text, self.head_budget - self.head_used);
                if end > 0 {
                    self.head.push(Kept {
                        seg,
                        line,
                        text: text[..end].to_owned(),
                        tokens: used,
                        starts_line,
                        cut_after: true,
                        cut_before: false,
                        is_match: false,
                        in_tail: false,
                    });
                    self.head_used += used;
                }
            }
            if !self.truncate {
                self.tail_budget = self.budget.saturating_sub(self.head_used + self.gap_reserve);
                // Segments holding this many bytes hold at least tail_budget tokens.
                self.cap = self.tail_budget.saturating_mul(self.maxlen);
            }
            return;
        }
        if self.tail_budget == 0 {
            return;
        }
        self.ring.extend(text.as_bytes());
        self.meta.push_back((seg, line, starts_line, text.len()));
        while let Some(&(_, _, _, len)) = self.meta.front() {
            if self.ring.len() - len < self.cap {
                break;
            }
            self.ring.drain(..len);
            self.meta.pop_front();
        }
    }

    /// Head and tail segments, in order.
    fn finish(mut self, enc: &Encoding) -> Vec<Kept> {
        let mut tail: Vec<Kept> = Vec::new();
        let mut end = self.ring.len();
        let (mut used, bytes) = (0, self.ring.make_contiguous() as &[u8]);
        for &(seg, line, starts_line, len) in self.meta.iter().rev() {
            let text = std::str::from_utf8(&bytes[end - len..end]).expect("segments are whole characters");
            let t = enc.count(text);
            if used + t > self.tail_budget {
                if tail.is_empty() {
                    let (start, t) = suffix_within(enc, text, self.tail_budget);
                    if start < text.len() {
                        tail.push(Kept {
                            seg,
                            line,
                            text: text[start..].to_owned(),
                            tokens: t,
                            starts_line: false,
                            cut_after: false,
                            cut_before: true,
                            is_match: false,
                            in_tail: true,
                        });
                    }
                }
                break;
            }
            used += t;
            tail.push(Kept {
                seg,
                line,
                text: text.to_owned(),
                tokens: t,
                starts_line,
                cut_after: false,
                cut_before: false,
                is_match: false,
                in_tail: true,
            });
            end -= len;
        }
        tail.reverse();
        self.head.extend(tail);
        self.head
    }
}

/// heads_tails' trim: from the end of the head, or the start of the tail, whichever holds
/// more tokens.
fn trim_heads_tails(kept: &mut Vec<Kept>, excess: usize) -> bool {
    let mut removed = 0;
    while removed < excess {
        if kept.is_empty() {
            return false;
        }
        let head: usize = kept.iter().filter(|k| !k.in_tail).map(|k| k.tokens).sum();
        let tail: usize = kept.iter().filter(|k| k.in_tail).map(|k| k.tokens).sum();
        let i = if head >= tail && head > 0 {
            kept.iter().rposition(|k| !k.in_tail).unwrap()
        } else {
            kept.iter().position(|k| k.in_tail).unwrap()
        };
        removed += kept.remove(i).tokens.max(1);
    }
    true
}

// ---- errors ------------------------------------------------------------------------------

struct Errors {
    smart: bool,
    /// The whole budget, and the part the first failures may use (the rest is for the last).
    total_budget: usize,
    budget: usize,
    last: VecDeque<(u64, u64, bool, String)>,
    kept: Vec<Kept>,
    used: usize,
    before: VecDeque<(u64, u64, bool, String)>,
    in_cont: bool,
    cont_left: usize,
    after_left: usize,
    exhausted: bool,
    matched: u64,
    nofit: u64,
    errors: u64,
    warnings: u64,
}

impl Errors {
    fn new(smart: bool, budget: usize) -> Self {
        Errors {
            smart,
            total_budget: budget,
            budget: budget - budget / 4,
            last: VecDeque::new(),
            kept: Vec::new(),
            used: 0,
            before: VecDeque::new(),
            in_cont: false,
            cont_left: 0,
            after_left: 0,
            exhausted: false,
            matched: 0,
            nofit: 0,
            errors: 0,
            warnings: 0,
        }
    }

    fn try_keep(&mut self, enc: &Encoding, lines: u64, k: Kept) -> bool {
        let tokens = enc.count(&k.text);
        let mut cost = tokens;
        let prev = self.kept.last();
        if has_gap(prev, Some(&k), 0) {
            cost += enc.count(&gap_marker(prev, Some(&k), lines));
        }
        if self.used + cost > self.budget {
            self.exhausted = true;
            if k.is_match {
                self.nofit += 1;
            }
            return false;
        }
        self.used += cost;
        self.kept.push(Kept { tokens, ..k });
        self.before.clear();
        true
    }

    /// `hint`: Some(false) when the caller's scan of the whole buffer found no error
    /// pattern in this line (None: not scanned).
    fn push(&mut self, enc: &Encoding, seg: u64, line: u64, starts_line: bool, text: &str, hint: Option<bool>) {
        let m = matchers();
        let is_err = hint != Some(false) && m.errors.is_match(text);
        let hit = if self.smart {
            let is_warn = m.warnings.is_match(text);
            self.warnings += is_warn as u64;
            is_err || is_warn || m.summaries.is_match(text)
        } else {
            is_err
        };
        self.errors += is_err as u64;
        self.matched += hit as u64;
        if self.exhausted {
            if hit {
                self.nofit += 1;
                self.remember(seg, line, starts_line, text);
            }
            return;
        }
        let kept = |text: String, seg, line, starts_line, is_match| Kept {
            seg,
            line,
            text,
            tokens: 0,
            starts_line,
            cut_after: false,
            cut_before: false,
            is_match,
            in_tail: false,
        };
        if hit {
            for (s, l, st, t) in std::mem::take(&mut self.before) {
                if !self.try_keep(enc, line, kept(t, s, l, st, false)) {
                    self.nofit += 1;
                    self.remember(seg, line, starts_line, text);
                    return;
                }
            }
            if self.try_keep(enc, line, kept(text.to_owned(), seg, line, starts_line, true)) {
                self.in_cont = true;
                self.cont_left = CONTINUATION;
                self.after_left = AFTER;
            } else {
                self.remember(seg, line, starts_line, text);
            }
        } else if self.in_cont && self.cont_left > 0 && is_indented(text) {
            self.cont_left -= 1;
            self.try_keep(enc, line, kept(text.to_owned(), seg, line, starts_line, false));
        } else {
            self.in_cont = false;
            if self.after_left > 0 {
                self.after_left -= 1;
                self.try_keep(enc, line, kept(text.to_owned(), seg, line, starts_line, false));
            } else {
                // Reuse the oldest line's buffer: no allocation per dropped line.
                let mut buf = if self.before.len() == BEFORE {
                    self.before.pop_front().map(|b| b.3).unwrap_or_default()
                } else {
                    String::new()
                };
                buf.clear();
                buf.push_str(text);
                self.before.push_back((seg, line, starts_line, buf));
            }
        }
    }

    fn remember(&mut self, seg: u64, line: u64, starts_line: bool, text: &str) {
        if self.last.len() == LAST_HITS {
            self.last.pop_front();
        }
        self.last.push_back((seg, line, starts_line, text.to_owned()));
    }

    /// Add the last failure lines that did not fit, as many of the latest as the held
    /// back budget takes (each charged a gap marker at its widest).
    fn finish(&mut self, enc: &Encoding) {
        let gap = enc.count(&widest_gap());
        let room = self.total_budget.saturating_sub(self.used);
        let (mut used, mut take) = (0, 0);
        let counts: Vec<usize> = self.last.iter().map(|l| enc.count(&l.3)).collect();
        for &t in counts.iter().rev() {
            if used + t + gap > room {
                break;
            }
            used += t + gap;
            take += 1;
        }
        let skip = self.last.len() - take;
        for ((seg, line, starts_line, text), tokens) in self.last.drain(..).zip(counts).skip(skip) {
            self.kept.push(Kept {
                seg,
                line,
                text,
                tokens,
                starts_line,
                cut_after: false,
                cut_before: false,
                is_match: true,
                in_tail: false,
            });
            self.nofit -= 1;
        }
        self.used += used;
    }
}

// ---- the narrower --------------------------------------------------------------------------

enum Plan {
    HeadTail,
    Errors,
    Transform,
    Json,
}

/// The error patterns searched over a whole buffer rather than line by line: the
/// automaton's SIMD prefilter runs in long strides (~900 MB/s against ~450 line by
/// line), and a line is matched on its own only when a match starts inside it. No
/// pattern holds a newline, so a match never spans two lines.
#[derive(Default)]
struct Scan {
    /// Start of the next match at or after `from`, or `usize::MAX`.
    next: usize,
    from: Option<usize>,
}

impl Scan {
    fn hint(&mut self, active: bool, buf: &str, start: usize, end: usize) -> Option<bool> {
        if !active {
            return None;
        }
        if self.from.is_none() || (self.next < start) {
            let input = aho_corasick::Input::new(buf).span(start..buf.len());
            self.next = matchers().errors.find(input).map_or(usize::MAX, |m| m.start());
            self.from = Some(start);
        }
        Some(self.next < end)
    }
}

/// The streaming narrower: [`Narrower::feed`] text in chunks of any size (split anywhere
/// on character boundaries), then [`Narrower::finish`]. Memory stays bounded by the
/// budget (and, for `smart_summary` on JSON, by [`JSON_MAX_BYTES`]).
pub struct Narrower<'e> {
    enc: &'e Encoding,
    opts: Options,
    // segmentation
    partial: String,
    line: u64,
    line_open: bool,
    segs: u64,
    lines: u64,
    bytes: u64,
    /// The whole text so far, while it is short enough to be counted whole or to fit.
    whole: Option<String>,
    keep_cap: usize,
    /// Tokens of the whole text, when the caller counted it.
    known_tokens: Option<u64>,
    /// Whether the line being segmented may hold an error pattern (see [`Scan`]).
    hint: Option<bool>,
    // detection
    kind: Option<Kind>,
    queue: Vec<(u64, bool, String)>,
    queued_bytes: usize,
    // engines
    plan: Plan,
    ht: Option<HeadTail>,
    errs: Option<Errors>,
    tf: Option<Transform>,
    json: Option<String>,
}

impl<'e> Narrower<'e> {
    pub fn new(enc: &'e Encoding, opts: Options) -> Result<Self> {
        opts.validate()?;
        if opts.mode == Mode::Full {
            return Err(Error::InvalidConfig("mode 'full' needs no narrowing: pass the output through".into()));
        }
        let keep_cap = opts.count_all_max_bytes.max(opts.max_tokens.saturating_mul(enc.vocabulary().max_token_len()));
        Ok(Narrower {
            enc,
            opts,
            partial: String::new(),
            line: 0,
            line_open: false,
            segs: 0,
            lines: 0,
            bytes: 0,
            whole: Some(String::new()),
            keep_cap,
            known_tokens: None,
            hint: None,
            kind: None,
            queue: Vec::new(),
            queued_bytes: 0,
            plan: Plan::HeadTail,
            ht: None,
            errs: None,
            tf: None,
            json: None,
        })
    }

    /// Feed the next chunk of the output.
    pub fn feed(&mut self, chunk: &str) {
        self.bytes += chunk.len() as u64;
        if let Some(whole) = &mut self.whole {
            if whole.len() + chunk.len() <= self.keep_cap {
                whole.push_str(chunk);
            } else {
                self.whole = None;
            }
        }
        let mut rest = chunk;
        let mut scan = Scan::default();
        while let Some(i) = memchr::memchr(b'\n', rest.as_bytes()) {
            if self.partial.is_empty() {
                let at = chunk.len() - rest.len();
                self.hint = scan.hint(self.errs.is_some(), chunk, at, at + i + 1);
                self.segment(&rest[..=i], true);
                self.hint = None;
            } else {
                self.partial.push_str(&rest[..=i]);
                let line = std::mem::take(&mut self.partial);
                self.segment(&line, true);
            }
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() {
            self.partial.push_str(rest);
            if self.partial.len() > SEG_MAX {
                let line = std::mem::take(&mut self.partial);
                let done = self.segment(&line, false);
                self.partial.push_str(&line[done..]);
            }
        }
    }

    /// Cut `text` (the rest of a line) into segments; unless `complete`, keep back the
    /// last one (at most SEG_MAX bytes: more of the line may follow). Returns the bytes used.
    fn segment(&mut self, text: &str, complete: bool) -> usize {
        let mut start = 0;
        while text.len() - start > SEG_MAX {
            let mut end = start + SEG_MAX;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.push_seg(&text[start..end]);
            start = end;
        }
        if complete {
            if start < text.len() {
                self.push_seg(&text[start..]);
            }
            self.line += 1;
            self.line_open = false;
            text.len()
        } else {
            start
        }
    }

    fn push_seg(&mut self, text: &str) {
        let starts_line = !self.line_open;
        self.line_open = true;
        if starts_line {
            self.lines += 1;
        }
        let (seg, line) = (self.segs, self.line);
        self.segs += 1;
        if self.kind.is_none() {
            self.queue.push((line, starts_line, text.to_owned()));
            self.queued_bytes += text.len();
            if self.queued_bytes >= DETECT_BYTES {
                self.detect_now();
            }
            return;
        }
        self.run(seg, line, starts_line, text);
    }

    fn detect_now(&mut self) {
        let mut prefix = String::new();
        for (_, _, t) in &self.queue {
            prefix.push_str(t);
            if prefix.len() >= DETECT_BYTES {
                break;
            }
        }
        self.start(detect(detect_prefix(&prefix)));
        // Queued segments were not scanned: each is matched on its own.
        let hint = self.hint.take();
        for (seg, (line, starts_line, text)) in std::mem::take(&mut self.queue).into_iter().enumerate() {
            self.run(seg as u64, line, starts_line, &text);
        }
        self.hint = hint;
    }

    fn reserve(&self, text: &str) -> usize {
        self.enc.count(text)
    }

    fn tokens_widest(&self) -> Option<u64> {
        (self.opts.count_all_max_bytes > 0).then_some(WIDEST)
    }

    /// The content budget after reserving `closing`'s tokens (0 when it does not fit).
    fn budget_after(&self, closing: &str) -> usize {
        self.opts.max_tokens.saturating_sub(self.reserve(closing))
    }

    fn ht_budget(&self) -> usize {
        let label = if self.opts.mode == Mode::Truncated { "truncated" } else { "heads_tails" };
        let note = self.opts.note.as_deref();
        let c = closing(label, WIDEST, WIDEST, WIDEST, WIDEST, self.tokens_widest(), None, None, note);
        self.budget_after(&format!("{}{c}", widest_gap()))
    }

    fn start(&mut self, kind: Kind) {
        self.kind = Some(kind);
        let enc = self.enc;
        let smart = self.opts.mode == Mode::SmartSummary;
        self.plan = match self.opts.mode {
            Mode::ErrorsOnly => Plan::Errors,
            Mode::SmartSummary if kind.is_log() => Plan::Errors,
            Mode::SmartSummary if matches!(kind, Kind::Diff | Kind::GitLog | Kind::Grep | Kind::Listing) => {
                Plan::Transform
            }
            Mode::SmartSummary if kind == Kind::Json => Plan::Json,
            _ => Plan::HeadTail,
        };
        if !matches!(self.plan, Plan::Transform) {
            let truncate = self.opts.mode == Mode::Truncated;
            self.ht = Some(HeadTail::new(enc, truncate, self.ht_budget(), self.opts.head_ratio));
        }
        match self.plan {
            Plan::Errors => {
                let label = self.errors_label();
                let note = self.opts.note.as_deref();
                let counts = smart.then_some((WIDEST, WIDEST));
                let c =
                    closing(&label, WIDEST, WIDEST, WIDEST, WIDEST, self.tokens_widest(), Some(WIDEST), counts, note);
                self.errs = Some(Errors::new(smart, self.budget_after(&format!("{}{c}", widest_gap()))));
            }
            Plan::Transform => self.tf = Some(Transform::new(kind)),
            Plan::Json => self.json = Some(String::new()),
            Plan::HeadTail => {}
        }
    }

    fn errors_label(&self) -> String {
        match self.opts.mode {
            Mode::SmartSummary => format!("smart_summary ({})", self.kind.map_or("text", Kind::name)),
            _ => "errors_only".to_owned(),
        }
    }

    fn run(&mut self, seg: u64, line: u64, starts_line: bool, text: &str) {
        let enc = self.enc;
        if let Some(ht) = &mut self.ht {
            ht.push(enc, seg, line, starts_line, text);
        }
        if let Some(errs) = &mut self.errs {
            errs.push(enc, seg, line, starts_line, text, self.hint);
            if errs.matched > 0 {
                // heads_tails is errors_only's fallback when nothing matches: no longer needed.
                self.ht = None;
            }
        }
        if let Some(tf) = &mut self.tf {
            if starts_line {
                tf.push(text, line);
            }
        }
        if let Some(json) = &mut self.json {
            if json.len() + text.len() <= JSON_MAX_BYTES {
                json.push_str(text);
            } else {
                self.json = None;
            }
        }
    }

    /// Narrow what was fed. `note` replaces the options' note in the closing marker
    /// (e.g. the spill path, known only now).
    pub fn finish(self, note: Option<&str>) -> Outcome {
        self.finish_inner(note, false)
    }

    /// As [`Narrower::finish`], but an output under the limit comes back as its text
    /// (a stream has no "same object" to return).
    pub fn finish_keeping(self, note: Option<&str>) -> Outcome {
        self.finish_inner(note, true)
    }

    fn finish_inner(mut self, note: Option<&str>, keep: bool) -> Outcome {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.segment(&rest, true);
        }
        if self.kind.is_none() {
            self.detect_now();
        }
        let kind = self.kind.expect("detected");
        let enc = self.enc;
        let whole = self.whole.take();
        let mut tokens_before = self.known_tokens;
        if let Some(whole) = &whole {
            let (fit, total) = fits(enc, whole, &self.opts);
            if let Some(n) = fit {
                let mut o = unchanged(kind, n, whole);
                if keep {
                    o.text = Some(whole.clone());
                }
                return o;
            }
            tokens_before = total.map(|n| n as u64);
        }
        let note = note.or(self.opts.note.as_deref()).map(str::to_owned);
        let totals = Totals {
            segs: self.segs,
            lines: self.lines,
            bytes: self.bytes,
            tokens: tokens_before,
            note: note.as_deref(),
        };
        let limit = self.opts.max_tokens;
        match self.plan {
            Plan::Errors => {
                let errs = self.errs.take().expect("errors engine");
                if errs.matched > 0 {
                    let label = self.errors_label();
                    return finish_errors(enc, limit, kind, errs, &label, &totals, self.opts.mode);
                }
            }
            Plan::Transform => {
                let mut tf = self.tf.take().expect("transform");
                tf.finish();
                return finish_summary(enc, &self.opts, kind, tf.items, &totals);
            }
            Plan::Json => {
                if let Some(items) = self.json.take().and_then(|j| json_shape(&j)) {
                    return finish_summary(enc, &self.opts, kind, items, &totals);
                }
            }
            Plan::HeadTail => {}
        }
        let ht = self.ht.take().expect("heads and tails engine");
        let truncate = ht.truncate;
        let mut kept = ht.finish(enc);
        let (label, mode) = if truncate { ("truncated", Mode::Truncated) } else { ("heads_tails", Mode::HeadsTails) };
        let closing_of = |ld: u64, bd: u64| {
            closing(label, ld, totals.lines, bd, totals.bytes, totals.tokens, None, None, totals.note)
        };
        let render = |k: &[Kept]| render_lines(k, &totals, &closing_of);
        let short = || short_closing(label, totals.lines);
        let r = if truncate {
            fit(enc, limit, &mut kept, &render, &mut |k, e| trim_last(k, e, &mut 0), &short)
        } else {
            fit(enc, limit, &mut kept, &render, &mut trim_heads_tails, &short)
        };
        outcome(r, mode, kind, &totals, 0, 0, kept.is_empty())
    }
}

fn trim_last(kept: &mut Vec<Kept>, excess: usize, nofit: &mut u64) -> bool {
    let mut removed = 0;
    while removed < excess {
        match kept.pop() {
            None => return false,
            Some(k) => {
                removed += k.tokens.max(1);
                *nofit += k.is_match as u64;
            }
        }
    }
    true
}

fn outcome(r: Rendered, mode: Mode, kind: Kind, t: &Totals<'_>, errors: u64, nofit: u64, nothing: bool) -> Outcome {
    let (lines_dropped, bytes_dropped) = if nothing { (t.lines, t.bytes) } else { (r.lines_dropped, r.bytes_dropped) };
    Outcome {
        text: Some(r.text),
        mode,
        kind,
        tokens_before: t.tokens,
        tokens_after: r.tokens as u64,
        lines: t.lines,
        lines_dropped,
        bytes: t.bytes,
        bytes_dropped,
        error_lines: errors,
        errors_dropped: nofit,
    }
}

fn finish_errors(
    enc: &Encoding,
    limit: usize,
    kind: Kind,
    errs: Errors,
    label: &str,
    t: &Totals<'_>,
    mode: Mode,
) -> Outcome {
    let mut errs = errs;
    errs.finish(enc);
    let Errors { smart, mut kept, mut nofit, errors, warnings, .. } = errs;
    let counts = smart.then_some((errors, warnings));
    let nofit_cell = std::cell::Cell::new(nofit);
    let closing_of =
        |ld: u64, bd: u64| closing(label, ld, t.lines, bd, t.bytes, t.tokens, Some(nofit_cell.get()), counts, t.note);
    let render = |k: &[Kept]| render_lines(k, t, &closing_of);
    let short = || short_closing(label, t.lines);
    let r = fit(
        enc,
        limit,
        &mut kept,
        &render,
        &mut |k, e| {
            let ok = trim_last(k, e, &mut nofit);
            nofit_cell.set(nofit);
            ok
        },
        &short,
    );
    outcome(r, mode, kind, t, errors, nofit_cell.get(), kept.is_empty())
}

fn finish_summary(enc: &Encoding, opts: &Options, kind: Kind, items: Vec<summary::Item>, t: &Totals<'_>) -> Outcome {
    let label = format!("smart_summary ({})", kind.name());
    let limit = opts.max_tokens;
    let widest = summary_closing(&label, WIDEST, WIDEST, WIDEST, t.tokens.map(|_| WIDEST), opts.note.as_deref());
    let reserve = enc.count(&format!("\n{}{widest}", summary_gap(WIDEST)));
    let budget = limit.saturating_sub(reserve);
    let counts: Vec<usize> = items.iter().map(|i| enc.count(&i.text)).collect();
    let total: usize = counts.iter().sum();
    // (index, in_tail) of the kept items
    let mut kept: Vec<(usize, bool)> = Vec::new();
    if total <= budget {
        kept.extend((0..items.len()).map(|i| (i, false)));
    } else {
        let head_budget = (budget as f64 * opts.head_ratio).floor() as usize;
        let mut used = 0;
        let mut head_end = 0;
        while head_end < items.len() && used + counts[head_end] <= head_budget {
            used += counts[head_end];
            head_end += 1;
        }
        kept.extend((0..head_end).map(|i| (i, false)));
        let tail_budget = budget.saturating_sub(used + enc.count(&summary_gap(WIDEST)));
        let (mut tail_used, mut start) = (0, items.len());
        while start > head_end && tail_used + counts[start - 1] <= tail_budget {
            tail_used += counts[start - 1];
            start -= 1;
        }
        kept.extend((start..items.len()).map(|i| (i, true)));
    }
    let render = |kept: &[(usize, bool)]| -> (String, u64, u64) {
        let mut out = String::new();
        let mut prev: Option<usize> = None;
        let (mut distinct, mut last_line, mut kept_bytes) = (0u64, None, 0u64);
        for &(i, _) in kept {
            if prev.map_or(i > 0, |p| p + 1 < i) {
                out.push_str(&summary_gap((i - prev.map_or(0, |p| p + 1)) as u64));
            }
            out.push_str(&items[i].text);
            if items[i].verbatim {
                kept_bytes += items[i].text.len() as u64;
                if last_line != Some(items[i].line) {
                    distinct += 1;
                    last_line = Some(items[i].line);
                }
            }
            prev = Some(i);
        }
        let after = prev.map_or(0, |p| p + 1);
        if after < items.len() {
            out.push_str(&summary_gap((items.len() - after) as u64));
        }
        out.push_str(&summary_closing(&label, t.lines, t.bytes, kept.len() as u64, t.tokens, t.note));
        (out, t.lines - distinct, t.bytes - kept_bytes)
    };
    loop {
        let (text, lines_dropped, bytes_dropped) = render(&kept);
        let tokens = enc.count(&text);
        if tokens <= limit {
            let r = Rendered { text, tokens, lines_dropped, bytes_dropped };
            return outcome(r, Mode::SmartSummary, kind, t, 0, 0, false);
        }
        if kept.is_empty() {
            let text = short_closing(&label, t.lines);
            let tokens = enc.count(&text);
            let (text, tokens) = if tokens <= limit { (text, tokens) } else { (String::new(), 0) };
            let r = Rendered { text, tokens, lines_dropped: t.lines, bytes_dropped: t.bytes };
            return outcome(r, Mode::SmartSummary, kind, t, 0, 0, true);
        }
        let mut removed = 0;
        while removed < tokens - limit && !kept.is_empty() {
            let head: usize = kept.iter().filter(|k| !k.1).map(|k| counts[k.0]).sum();
            let tail: usize = kept.iter().filter(|k| k.1).map(|k| counts[k.0]).sum();
            let i = if head >= tail && head > 0 {
                kept.iter().rposition(|k| !k.1).unwrap()
            } else {
                kept.iter().position(|k| k.1).unwrap()
            };
            removed += counts[kept.remove(i).0].max(1);
        }
    }
}

/// (`Some(tokens)` when `text` is within the limit: it is then returned unchanged,
/// its tokens when it was counted whole).
fn fits(enc: &Encoding, text: &str, opts: &Options) -> (Option<usize>, Option<usize>) {
    if text.len() <= opts.count_all_max_bytes {
        let n = enc.count(text);
        return ((n <= opts.max_tokens).then_some(n), Some(n));
    }
    if text.len() <= opts.max_tokens.saturating_mul(enc.vocabulary().max_token_len()) {
        return (enc.count_up_to(text, opts.max_tokens), None);
    }
    (None, None)
}

fn unchanged(kind: Kind, tokens: usize, text: &str) -> Outcome {
    let lines = text.split_inclusive('\n').count() as u64;
    Outcome {
        text: None,
        mode: Mode::Full,
        kind,
        tokens_before: Some(tokens as u64),
        tokens_after: tokens as u64,
        lines,
        lines_dropped: 0,
        bytes: text.len() as u64,
        bytes_dropped: 0,
        error_lines: 0,
        errors_dropped: 0,
    }
}

/// Narrow one output held in memory. `mode: Full` returns it unchanged, whatever its size.
pub fn narrow(enc: &Encoding, text: &str, opts: &Options) -> Result<Outcome> {
    opts.validate()?;
    let kind = detect(detect_prefix(text));
    if opts.mode == Mode::Full {
        return Ok(unchanged(kind, enc.count(text), text));
    }
    let (fit, total) = fits(enc, text, opts);
    if let Some(n) = fit {
        return Ok(unchanged(kind, n, text));
    }
    let mut narrower = Narrower::new(enc, opts.clone())?;
    // Told the kind up front, and fed without keeping a copy of the text.
    narrower.whole = None;
    narrower.known_tokens = total.map(|n| n as u64);
    narrower.start(kind);
    narrower.bytes = text.len() as u64;
    let mut rest = text;
    let mut scan = Scan::default();
    while let Some(i) = memchr::memchr(b'\n', rest.as_bytes()) {
        let at = text.len() - rest.len();
        narrower.hint = scan.hint(narrower.errs.is_some(), text, at, at + i + 1);
        narrower.segment(&rest[..=i], true);
        rest = &rest[i + 1..];
    }
    narrower.hint = None;
    if !rest.is_empty() {
        narrower.segment(rest, true);
    }
    Ok(narrower.finish(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{encoding, EncodingId};

    fn enc() -> &'static Encoding {
        encoding(EncodingId::O200kBase)
    }

    fn log(lines: usize) -> String {
        let mut s = String::new();
        for i in 0..lines {
            match i % 97 {
                13 => s.push_str(&format!("ERROR worker {i}: connection refused\n")),
                50 => s.push_str("Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nValueError: bad value\n"),
                _ => s.push_str(&format!("INFO request {i} served in {} ms\n", i % 17)),
            }
        }
        s
    }

    fn opts(mode: Mode, max_tokens: usize) -> Options {
        Options { count_all_max_bytes: 1 << 20, ..Options::new(mode, max_tokens) }
    }

    #[test]
    fn output_under_the_limit_comes_back_unchanged() {
        let o = narrow(enc(), "short output\n", &opts(Mode::HeadsTails, 100)).unwrap();
        assert_eq!(o.text, None);
        assert_eq!(o.mode, Mode::Full);
        assert_eq!(o.tokens_before, Some(3));
    }

    #[test]
    fn every_mode_stays_within_the_limit_and_says_what_it_omitted() {
        let text = log(3000);
        for mode in [Mode::Truncated, Mode::HeadsTails, Mode::ErrorsOnly, Mode::SmartSummary] {
            for limit in [20, 64, 300, 2000] {
                let o = narrow(enc(), &text, &opts(mode, limit)).unwrap();
                let out = o.text.clone().unwrap();
                assert_eq!(enc().count(&out) as u64, o.tokens_after);
                assert!(o.tokens_after <= limit as u64, "{mode:?} {limit}: {}", o.tokens_after);
                if limit >= 300 {
                    assert!(out.contains(&format!("of {} lines", o.lines)), "{out}");
                }
            }
        }
    }

    #[test]
    fn errors_only_keeps_tracebacks_with_their_frames() {
        let text = log(400);
        let o = narrow(enc(), &text, &opts(Mode::ErrorsOnly, 2000)).unwrap();
        let out = o.text.unwrap();
        assert_eq!(o.mode, Mode::ErrorsOnly);
        assert!(out.contains("Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nValueError: bad value\n"));
        assert!(out.contains("ERROR worker 13: connection refused"));
        assert_eq!(o.errors_dropped, 0);
        let small = narrow(enc(), &text, &opts(Mode::ErrorsOnly, 150)).unwrap();
        assert!(small.errors_dropped > 0);
        assert!(small.text.unwrap().contains(&format!("; {} error lines did not fit", small.errors_dropped)));
    }

    #[test]
    fn errors_only_without_errors_falls_back_to_heads_and_tails() {
        let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let o = narrow(enc(), &text, &opts(Mode::ErrorsOnly, 200)).unwrap();
        assert_eq!(o.mode, Mode::HeadsTails);
        let out = o.text.unwrap();
        assert!(out.starts_with("line 0\n"));
        assert!(out.contains("line 1999\n"));
        assert!(out.contains("omitted ...]"));
    }

    #[test]
    fn truncated_cuts_a_single_long_line_at_a_token_boundary() {
        let text = "abc def ".repeat(5000);
        let o = narrow(enc(), &text, &opts(Mode::Truncated, 100)).unwrap();
        let out = o.text.unwrap();
        assert!(out.starts_with("abc def abc"));
        assert!(out.contains("[... line 1 omitted ...]"));
        assert!(o.tokens_after <= 100);
    }

    #[test]
    fn streaming_in_any_chunks_gives_the_in_memory_result() {
        let mut text = log(3000);
        text.push_str(&"minified(){return 1};".repeat(400));
        text.push_str("\n末尾の行 with CJK 文字\n");
        for mode in [Mode::Truncated, Mode::HeadsTails, Mode::ErrorsOnly, Mode::SmartSummary] {
            let whole = narrow(enc(), &text, &opts(mode, 500)).unwrap();
            for chunk in [1usize, 7, 4096, 100_000] {
                let mut n = Narrower::new(enc(), opts(mode, 500)).unwrap();
                let mut start = 0;
                while start < text.len() {
                    let mut end = (start + chunk).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    n.feed(&text[start..end]);
                    start = end;
                }
                assert_eq!(n.finish(None), whole, "{mode:?} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn the_tail_ring_stays_bounded_on_a_long_stream() {
        let mut n = Narrower::new(enc(), Options::new(Mode::HeadsTails, 100)).unwrap();
        let line = "2024-01-01T00:00:00Z INFO something happened here\n".repeat(1000);
        for _ in 0..400 {
            n.feed(&line);
        }
        let ring = n.ht.as_ref().unwrap().ring.len();
        assert!(ring <= 100 * enc().vocabulary().max_token_len() + SEG_MAX, "{ring}");
        assert!(n.whole.is_none());
        let o = n.finish(None);
        assert!(o.tokens_after <= 100);
        assert_eq!(o.lines, 400_000);
        assert_eq!(o.tokens_before, None);
    }

    #[test]
    fn smart_summary_of_a_diff_lists_files_and_hunks() {
        let mut diff = String::new();
        for f in 0..30 {
            diff.push_str(&format!(
                "diff --git a/f{f}.py b/f{f}.py\n--- a/f{f}.py\n+++ b/f{f}.py\n@@ -1,40 +1,40 @@\n"
            ));
            for i in 0..40 {
                diff.push_str(&format!("-old line {i}\n+new line {i}\n"));
            }
        }
        let o = narrow(enc(), &diff, &opts(Mode::SmartSummary, 2000)).unwrap();
        let out = o.text.unwrap();
        assert_eq!(o.kind, Kind::Diff);
        assert!(out.contains(
            "diff --git a/f0.py b/f0.py\n--- a/f0.py\n+++ b/f0.py\n@@ -1,40 +1,40 @@\n    (+40 -40 lines)\n"
        ));
        assert!(o.tokens_after <= 2000);
    }

    #[test]
    fn the_closing_marker_carries_the_note() {
        let text = log(2000);
        let mut o = opts(Mode::HeadsTails, 300);
        o.note = Some("full output: /tmp/x.txt".into());
        let out = narrow(enc(), &text, &o).unwrap().text.unwrap();
        assert!(out.ends_with("; full output: /tmp/x.txt]"), "{out}");
    }

    #[test]
    fn unknown_modes_and_bad_ratios_are_configuration_errors() {
        assert!(Mode::from_name("middle").is_err());
        let mut o = Options::new(Mode::HeadsTails, 10);
        o.head_ratio = 1.5;
        assert!(narrow(enc(), "x", &o).is_err());
    }
}
