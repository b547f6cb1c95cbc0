//! Observation masking: old tool outputs become a one-line placeholder.
//!
//! A tool result in an exchange older than the last `keep_exchanges` has its content
//! replaced by a line naming the tool, its call's key argument (the path, the command)
//! and what was omitted (lines, tokens). The call stays and the result keeps its id,
//! so pairing is untouched. This is the cheapest strategy measured to keep an agent's
//! solve rate ("The Complexity Trap", arXiv 2508.21433; SWE-agent's `LastNObservations`).
//!
//! **Batched.** Masking happens all at once or not at all: only when every result
//! waiting to be masked together saves at least `min_tokens_saved` tokens (Anthropic's
//! `clear_at_least`). The state lives in the history itself (a masked result reads back
//! as masked), so a history whose compacted output is kept (pydantic-ai's history
//! processors, `TokenBudget`) keeps its masked prefix unchanged between batches: the
//! provider's prompt cache is busted once per batch, not on every request. For the same
//! reason the step is idempotent: after a batch nothing older than the last exchanges is
//! left to mask, and the window keeps the last exchanges of what it is given.

use super::{Details, StepReport};
use crate::history::{History, PartKind};
use std::borrow::Cow;
use std::ops::Range;

/// How masking behaves (`MaskStrategy` in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskConfig {
    /// Results in the last this many exchanges are never masked.
    pub keep_exchanges: usize,
    /// A batch is masked only if it saves at least this many tokens.
    pub min_tokens_saved: u64,
}

/// The opening of a mask placeholder (see [`super::PLACEHOLDER_PREFIX`]).
pub const PLACEHOLDER_START: &str = "[tokensieve masked the output of ";
pub const PLACEHOLDER_END: &str = " tokens]";

/// Key arguments longer than this are cut (with `...`) in a placeholder.
const KEY_MAX_CHARS: usize = 120;

/// Whether a result's text is a placeholder a step wrote (a mask placeholder, a prune
/// pointer): one line, opened by [`super::PLACEHOLDER_PREFIX`], closed by `]`.
pub fn is_placeholder(text: &str) -> bool {
    text.starts_with(super::PLACEHOLDER_PREFIX) && text.ends_with(']') && !text.contains('\n')
}

/// The placeholder for a result of `tool` called with key argument `key`.
pub fn placeholder(tool: Option<&str>, key: Option<(&str, &str)>, lines: u32, tokens: u64) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(PLACEHOLDER_START.len() + 96);
    text.push_str(PLACEHOLDER_START);
    push_call_label(&mut text, tool, key);
    let plural = if lines == 1 { "" } else { "s" };
    let _ = write!(text, ": {lines} line{plural}, {tokens}{PLACEHOLDER_END}");
    text
}

/// `tool(field=value)` on one line, the value cut at [`KEY_MAX_CHARS`].
pub fn call_label(tool: Option<&str>, key: Option<(&str, &str)>) -> String {
    let mut text = String::new();
    push_call_label(&mut text, tool, key);
    text
}

/// [`call_label`], written at the end of `text` (a placeholder is made for every old
/// result on every request: no intermediate strings).
fn push_call_label(text: &mut String, tool: Option<&str>, key: Option<(&str, &str)>) {
    match tool {
        Some(name) => push_one_line(text, name, 64),
        None => text.push_str("a tool"),
    }
    if let Some((field, value)) = key {
        text.push('(');
        text.push_str(field);
        text.push('=');
        push_one_line(text, value, KEY_MAX_CHARS);
        text.push(')');
    }
}

/// `s` on one line (control characters as spaces), at most `max` characters then `...`.
pub fn one_line(s: &str, max: usize) -> String {
    let mut text = String::new();
    push_one_line(&mut text, s, max);
    text
}

/// [`one_line`], written at the end of `text`.
fn push_one_line(text: &mut String, s: &str, max: usize) {
    // Short ASCII without control characters (nearly every name and path) as it is.
    if s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.push_str(s);
        return;
    }
    let flat = s.chars().map(|c| if c.is_control() { ' ' } else { c });
    if s.chars().count() <= max {
        text.extend(flat);
    } else {
        text.extend(flat.take(max));
        text.push_str("...");
    }
}

/// A masking plan: result parts (global indices) and their placeholder, with the tokens
/// the part costs once replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskPlan<'a> {
    /// Borrowed from the details when made there (see `Details::masked`).
    pub replaced: Vec<(usize, Cow<'a, str>, u64)>,
}

impl MaskPlan<'_> {
    pub fn report(&self, history: &History) -> StepReport {
        StepReport {
            step: "mask",
            tokens_saved: self.replaced.iter().map(|(p, _, t)| history.parts[*p].tokens - t).sum(),
            items: self.replaced.len(),
        }
    }
}

/// Plan masking over `history` whose exchanges are `exchanges` (oldest first).
/// `count` counts a text's tokens.
pub fn plan<'a>(
    history: &History,
    details: &'a Details,
    exchanges: &[Range<usize>],
    config: &MaskConfig,
    count: &dyn Fn(&str) -> u64,
) -> MaskPlan<'a> {
    let old = exchanges.len().saturating_sub(config.keep_exchanges);
    if old == 0 {
        return MaskPlan::default();
    }
    let end = exchanges[old - 1].end;
    // Call id (dense: numbered by the reader) -> its latest call part, `usize::MAX`: none.
    let mut calls: Vec<usize> = Vec::new();
    let mut replaced = Vec::new();
    let mut saved = 0;
    for i in 0..end {
        for p in history.messages[i].parts.clone() {
            let part = &history.parts[p];
            match part.kind {
                PartKind::Call(id) => {
                    let id = id as usize;
                    if id >= calls.len() {
                        calls.resize(id + 1, usize::MAX);
                    }
                    calls[id] = p;
                }
                PartKind::Result(id) => {
                    let d = &details.parts[p];
                    // A retry prompt is pydantic-ai's own feedback: never masked.
                    if d.content_tokens == 0 || d.placeholder || d.retry {
                        continue;
                    }
                    let make = || {
                        let call = calls.get(id as usize).filter(|&&c| c != usize::MAX).map(|&c| &details.parts[c]);
                        let tool = d.tool.or(call.and_then(|c| c.tool)).map(|t| details.string(t));
                        let key = call.and_then(|c| c.key).map(|(f, v)| (details.string(f), details.string(v)));
                        let text = placeholder(tool, key, d.lines, d.content_tokens);
                        let tokens = count(&text);
                        (text, tokens)
                    };
                    // Made once per part while the details are kept (see `Details::masked`).
                    let (text, text_tokens) = match details.masked.get(p) {
                        Some(cell) => {
                            let (text, tokens) = cell.get_or_init(make);
                            (Cow::Borrowed(text.as_str()), *tokens)
                        }
                        None => {
                            let (text, tokens) = make();
                            (Cow::Owned(text), tokens)
                        }
                    };
                    let tokens = part.tokens.saturating_sub(d.content_tokens) + text_tokens;
                    if tokens < part.tokens {
                        saved += part.tokens - tokens;
                        replaced.push((p, text, tokens));
                    }
                }
                _ => {}
            }
        }
    }
    if saved < config.min_tokens_saved.max(1) {
        return MaskPlan::default();
    }
    MaskPlan { replaced }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Part, Side};
    use crate::strategies::PartDetail;

    fn count(s: &str) -> u64 {
        s.split_whitespace().count() as u64
    }

    /// `n` exchanges, each: a response calling `read_file(path=fK)`, a request with its
    /// 100-token, 40-line result.
    fn session(n: usize) -> (History, Details, Vec<Range<usize>>) {
        let mut h = History::default();
        let mut d = Details::default();
        h.begin(Side::Request);
        h.push(Part::new(PartKind::Prompt, 5));
        d.parts.push(PartDetail::default());
        let tool = d.intern("read_file");
        let field = d.intern("path");
        for k in 0..n {
            h.begin(Side::Response);
            h.push(Part::new(PartKind::Call(k as u32), 10));
            let value = d.intern(&format!("src/f{k}.py"));
            d.parts.push(PartDetail { tool: Some(tool), key: Some((field, value)), ..Default::default() });
            h.begin(Side::Request);
            h.push(Part::new(PartKind::Result(k as u32), 105));
            d.parts.push(PartDetail { content_tokens: 100, lines: 40, ..Default::default() });
        }
        // An exchange is a run of requests, then a run of responses; the last result is
        // the pending request.
        let exchanges = (0..n).map(|k| 2 * k..2 * k + 2).collect();
        (h, d, exchanges)
    }

    #[test]
    fn results_older_than_the_last_exchanges_become_a_placeholder_naming_tool_path_and_size() {
        let (h, d, ex) = session(6);
        let cfg = MaskConfig { keep_exchanges: 3, min_tokens_saved: 1 };
        let plan = plan(&h, &d, &ex, &cfg, &count);
        // Exchanges 0..3 are old (messages 0..6): the results in them (parts 2 and 4;
        // a result opens the exchange after its call's) are masked.
        let masked: Vec<usize> = plan.replaced.iter().map(|r| r.0).collect();
        assert_eq!(masked, vec![2, 4]);
        assert_eq!(
            plan.replaced[0].1,
            "[tokensieve masked the output of read_file(path=src/f0.py): 40 lines, 100 tokens]"
        );
        assert!(is_placeholder(&plan.replaced[0].1));
        assert_eq!(plan.report(&h).items, 2);
    }

    #[test]
    fn nothing_is_masked_until_a_batch_saves_the_minimum() {
        let (h, d, ex) = session(6);
        let small = plan(&h, &d, &ex, &MaskConfig { keep_exchanges: 3, min_tokens_saved: 1_000 }, &count);
        assert!(small.replaced.is_empty());
        let big = plan(&h, &d, &ex, &MaskConfig { keep_exchanges: 0, min_tokens_saved: 300 }, &count);
        assert_eq!(big.replaced.len(), 5);
    }

    #[test]
    fn a_result_masked_before_is_not_masked_again() {
        let (h, mut d, ex) = session(6);
        d.parts[2].placeholder = true;
        let plan = plan(&h, &d, &ex, &MaskConfig { keep_exchanges: 3, min_tokens_saved: 1 }, &count);
        assert_eq!(plan.replaced.iter().map(|r| r.0).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn a_retry_prompt_is_never_masked() {
        let (h, mut d, ex) = session(6);
        d.parts[2].retry = true;
        let plan = plan(&h, &d, &ex, &MaskConfig { keep_exchanges: 3, min_tokens_saved: 1 }, &count);
        assert_eq!(plan.replaced.iter().map(|r| r.0).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn a_placeholder_is_one_line_and_cuts_long_arguments() {
        let long = "x".repeat(500);
        let text = placeholder(Some("bash"), Some(("command", &format!("ls\n{long}"))), 1, 7);
        assert!(is_placeholder(&text));
        assert!(text.len() < 220, "{text}");
        assert!(text.ends_with(": 1 line, 7 tokens]"));
        assert_eq!(placeholder(None, None, 0, 0), "[tokensieve masked the output of a tool: 0 lines, 0 tokens]");
    }
}
