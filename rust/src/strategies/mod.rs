//! The compaction pipeline: composable steps, cheapest first.
//!
//! `mask` (old tool outputs become a placeholder) → `prune` (low-value messages go) →
//! [a summary of what the window drops, written by the caller] → the window and the
//! hard limit ([`crate::compact`]). Each step is its own module working on a
//! [`History`] and the [`Details`] the readers found in its parts, and returns a plan
//! with the tokens it saves. The pipeline runs only over the compaction threshold: under
//! it the history comes back as [`compact::compact`] returns it (repaired, unchanged).
//! Pure Rust: the Python glue reads the details and builds the plan back into messages.

pub mod failure;
pub mod mask;
pub mod prune;
pub mod summary;

/// How every text a step writes in place of a tool output begins: such a text is never
/// replaced again (the steps are idempotent).
pub const PLACEHOLDER_PREFIX: &str = "[tokensieve ";

use crate::compact::{self, Budget, Outcome};
use crate::error::{Error, Result};
use crate::history::{History, Rules};
use rustc_hash::FxHashMap;

/// What the readers know of a part beyond its kind and tokens (all empty when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartDetail {
    /// Calls, and results that name their tool: the tool's name (a [`Details`] string).
    pub tool: Option<u32>,
    /// Calls: the key argument (field name, value), e.g. `("path", "src/app.py")`.
    pub key: Option<(u32, u32)>,
    /// Calls: a hash of the arguments (0: unknown), to find identical calls.
    pub args_hash: u64,
    /// Results with a text content: the tokens of that text (0: no replaceable content)
    /// and its line count.
    pub content_tokens: u64,
    pub lines: u32,
    /// Results: the content is a placeholder written by the mask step.
    pub placeholder: bool,
    /// Results: the tool reported an error (`is_error`, a retry prompt).
    pub error: bool,
    /// Results of formats with no failure flag (OpenAI chat, Responses): the text says
    /// the call failed ([`failure::says_failed`]; read as a command's output when the
    /// call runs one, [`prune::runs_command`]).
    pub says_failed: bool,
    /// Results: a pydantic-ai retry prompt (measured for the prune step, never masked).
    pub retry: bool,
    /// Results that failed (a flag, or a text that says so): the line that says why
    /// ([`failure::reason`]), for the pointer that may replace them.
    pub reason: Option<u32>,
    /// Results: a hash of the content (0: unknown), to find identical repeats.
    pub hash: u64,
    /// Prompts: the text is only an acknowledgement ("ok", "thanks").
    pub ack: bool,
}

/// Per-part details, by global part index, and the strings they name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub parts: Vec<PartDetail>,
    /// Per part, the mask step's placeholder for it and that placeholder's tokens, once
    /// made. Kept with the details: the reader hands the details of an unchanged prefix
    /// of a history to the next request (`python/history_memo.rs`), and what a result's
    /// placeholder says only depends on its details and its call's, which precede it.
    /// Empty or shorter than `parts`: made each time.
    pub masked: Vec<std::sync::OnceLock<(String, u64)>>,
    strings: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl Details {
    /// Details for `n` parts, all unknown.
    pub fn with_parts(n: usize) -> Details {
        let mut masked = Vec::new();
        masked.resize_with(n, Default::default);
        Details { parts: vec![PartDetail::default(); n], masked, ..Default::default() }
    }

    /// Keep the details of the first `keep` parts, then unknown ones up to `n` parts.
    pub fn cut(&mut self, keep: usize, n: usize) {
        self.parts.truncate(keep);
        self.parts.resize(n, PartDetail::default());
        self.masked.truncate(keep);
        self.masked.resize_with(n, Default::default);
    }

    /// The number standing for `s` (equal strings, equal numbers).
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.index.get(s) {
            return n;
        }
        let n = self.strings.len() as u32;
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), n);
        n
    }

    pub fn string(&self, n: u32) -> &str {
        &self.strings[n as usize]
    }
}

/// Which steps run, and how (`ContextStrategies` in Python). `None`: the step is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strategies {
    pub mask: Option<mask::MaskConfig>,
    pub prune: Option<prune::PruneConfig>,
}

impl Strategies {
    pub fn any(&self) -> bool {
        self.mask.is_some() || self.prune.is_some()
    }
}

/// What one step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    pub step: &'static str,
    pub tokens_saved: u64,
    /// Parts or messages it touched (results masked, messages dropped, ...).
    pub items: usize,
}

/// The pipeline's plan: the window's outcome over the history the steps made, the parts
/// whose content is replaced (global part index → new text), and the steps that ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    pub outcome: Outcome,
    pub replaced: FxHashMap<usize, String>,
    pub steps: Vec<StepReport>,
}

/// Whether the pipeline's steps run on `history`: over the compaction threshold.
pub fn over_threshold(history: &History, budget: &Budget) -> bool {
    let tokens = compact::history_tokens(history, budget.reserved_tokens);
    tokens as f64 > budget.compaction_threshold * budget.max_input_tokens as f64
}

/// Run the pipeline. `details` must describe `history`'s parts when a step is on and the
/// history is over the threshold (see [`over_threshold`]); `count` counts a text.
pub fn run(
    history: &History,
    details: &Details,
    rules: Rules,
    budget: &Budget,
    strategies: &Strategies,
    count: &dyn Fn(&str) -> u64,
) -> Result<Pipeline> {
    if !strategies.any() || !over_threshold(history, budget) {
        let outcome = compact::compact(history, rules, budget)?;
        let steps = window_report(&outcome, outcome.tokens_before);
        return Ok(Pipeline { outcome, replaced: FxHashMap::default(), steps });
    }
    let tokens_before = compact::history_tokens(history, budget.reserved_tokens);
    let mut working = history.clone();
    // The parts replaced, for the steps after (their texts aside: only those of the
    // messages the window keeps are made into the plan's strings).
    let mut replaced: FxHashMap<usize, String> = FxHashMap::default();
    let mut texts: Vec<Option<std::borrow::Cow<'_, str>>> = Vec::new();
    texts.resize_with(history.parts.len(), || None);
    let mut steps = Vec::new();
    let exchanges = compact::exchange_ranges(history);
    if let Some(config) = &strategies.mask {
        let plan = mask::plan(history, details, &exchanges, config, count);
        steps.push(plan.report(history));
        replaced.reserve(plan.replaced.len());
        for (p, text, tokens) in plan.replaced {
            working.parts[p].tokens = tokens;
            replaced.insert(p, String::new());
            texts[p] = Some(text);
        }
    }
    // Messages removed whole before the window (the acknowledgements rule).
    let mut gone = vec![false; history.len()];
    let mut any_gone = false;
    if let Some(config) = &strategies.prune {
        let plan = prune::plan(history, details, &exchanges, config, &replaced, count);
        let mut report = plan.report(history);
        for (p, text, tokens) in plan.replaced {
            working.parts[p].tokens = tokens;
            replaced.insert(p, String::new());
            texts[p] = Some(text.into());
        }
        if config.acknowledgements {
            let before = compact::history_tokens(&working, budget.reserved_tokens);
            for k in prune::acknowledged(history, details, &exchanges, budget.dangling == compact::Dangling::Drop) {
                for i in exchanges[k].clone() {
                    gone[i] = true;
                    report.items += 1;
                    any_gone = true;
                }
            }
            if any_gone {
                let (reduced, _, _) = without(&working, &gone);
                report.tokens_saved += before - compact::history_tokens(&reduced, budget.reserved_tokens);
            }
        }
        steps.push(report);
    }
    let (window_input, messages_of, parts_of) = if any_gone {
        let (reduced, m, p) = without(&working, &gone);
        (reduced, Some(m), Some(p))
    } else {
        (working, None, None)
    };
    let working = window_input;
    let before_window = compact::history_tokens(&working, budget.reserved_tokens);
    let mut outcome = match compact::compact_window(&working, rules, budget, true) {
        Ok(outcome) => outcome,
        Err(Error::BudgetExceeded { tokens_after, limit, .. }) => {
            return Err(Error::BudgetExceeded { tokens_before, tokens_after, limit })
        }
        Err(err) => return Err(err),
    };
    outcome.tokens_before = tokens_before;
    if !replaced.is_empty() || any_gone {
        // The history changed even where the window kept it all.
        outcome.action = compact::Action::Compacted;
    }
    steps.extend(window_report(&outcome, before_window));
    if let (Some(messages_of), Some(parts_of)) = (messages_of, parts_of) {
        remap(&mut outcome, &messages_of, &parts_of, &gone);
    }
    let mut replaced = FxHashMap::default();
    for message in &outcome.messages {
        if let compact::OutMessage::Kept { index, .. } = message {
            for p in history.messages[*index].parts.clone() {
                if let Some(text) = texts[p].take() {
                    replaced.insert(p, text.into_owned());
                }
            }
        }
    }
    Ok(Pipeline { outcome, replaced, steps })
}

/// `history` without the messages marked `gone`, with the input index of each message and
/// part it keeps.
fn without(history: &History, gone: &[bool]) -> (History, Vec<usize>, Vec<usize>) {
    let mut out = History {
        messages: Vec::new(),
        parts: Vec::new(),
        message_overhead: history.message_overhead,
        response_overhead: history.response_overhead,
    };
    let (mut messages_of, mut parts_of) = (Vec::new(), Vec::new());
    for (i, message) in history.messages.iter().enumerate() {
        if gone[i] {
            continue;
        }
        out.begin(message.side);
        out.messages.last_mut().expect("begun").bonded_to_next = message.bonded_to_next;
        for p in message.parts.clone() {
            out.push(history.parts[p]);
            parts_of.push(p);
        }
        messages_of.push(i);
    }
    (out, messages_of, parts_of)
}

/// An outcome over [`without`]'s history, in the input's indices: the messages removed
/// before the window are dropped too.
fn remap(outcome: &mut Outcome, messages_of: &[usize], parts_of: &[usize], gone: &[bool]) {
    for message in &mut outcome.messages {
        match message {
            compact::OutMessage::Kept { index, stubs, .. } => {
                *index = messages_of[*index];
                stubs.iter_mut().for_each(|p| *p = parts_of[*p]);
            }
            compact::OutMessage::Stub { after, calls } => {
                *after = messages_of[*after];
                calls.iter_mut().for_each(|p| *p = parts_of[*p]);
            }
        }
    }
    let mut dropped: Vec<usize> = outcome.dropped.iter().map(|&i| messages_of[i]).collect();
    dropped.extend((0..gone.len()).filter(|&i| gone[i]));
    dropped.sort_unstable();
    outcome.dropped = dropped;
}

/// The window's step report: what it saved from the `before` tokens it was given.
fn window_report(outcome: &Outcome, before: u64) -> Vec<StepReport> {
    let tokens_saved = before.saturating_sub(outcome.tokens_after);
    if tokens_saved == 0 && outcome.dropped.is_empty() {
        return Vec::new();
    }
    vec![StepReport { step: "window", tokens_saved, items: outcome.dropped.len() }]
}
