//! Selective pruning: tool outputs a later call made redundant.
//!
//! Three rules, each switchable (`PruneStrategy` in Python), each replacing the **earlier**
//! output with a one-line pointer to the later call (the later one is what the model saw
//! last, and the window, which drops the oldest first, never keeps a pointer without what
//! it points to):
//!
//! - `repeated_calls`: the same tool called again later with identical arguments returned
//!   an identical output (the reference's "token caching for repeated tool calls");
//! - `superseded_reads`: a read-like tool (its name has `read`, `cat`, `view`, `open` or
//!   `show`) called again later with identical arguments returned a successful output:
//!   the earlier read of that file is stale (Cline's superseded reads, the harness's
//!   `DeduplicateFileReads`). Arguments must be identical, so a later read of another
//!   range of the file never supersedes an earlier one.
//! - `superseded_failures`: a failed result ([`failed`]: Anthropic `is_error`, a
//!   pydantic-ai outcome other than `success` or a retry prompt with a `tool_name`; on
//!   OpenAI chat and Responses, which have no flag, a text that says it failed, see
//!   [`super::failure`]) of a tool that later succeeded (same tool, same key argument
//!   when the call has one, e.g. the same path or command): the failed attempt is stale.
//!   The call stays, so pairing holds and the model still sees it tried.
//!
//! Outputs in the last exchange and the pending request are never touched, nor outputs
//! already replaced (a mask placeholder, a pointer): the step is idempotent.
//!
//! A fourth rule removes whole messages: `acknowledgements`, an exchange whose requests
//! are only acknowledgement prompts ("ok", "thanks", "got it": [`is_acknowledgement`])
//! and whose reply holds no tool call goes, requests and reply together (see
//! [`acknowledged`]); the pipeline hands the window a history without them.

use super::{Details, PartDetail, StepReport, PLACEHOLDER_PREFIX};
use crate::history::{CallId, History, PartKind, Side};
use rustc_hash::{FxHashMap, FxHashSet};
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneConfig {
    pub repeated_calls: bool,
    pub superseded_reads: bool,
    pub acknowledgements: bool,
    pub superseded_failures: bool,
}

/// Whole prompts that only acknowledge (English, the classifier's language). Prompts that
/// direct the work ("yes", "continue", "go ahead") are not in it: their reply matters.
pub const ACKNOWLEDGEMENTS: [&str; 34] = [
    "ok",
    "okay",
    "k",
    "kk",
    "thanks",
    "thank you",
    "thanks a lot",
    "thank you so much",
    "thx",
    "ty",
    "tysm",
    "cheers",
    "got it",
    "great",
    "cool",
    "nice",
    "perfect",
    "awesome",
    "alright",
    "noted",
    "understood",
    "sounds good",
    "good",
    "ok thanks",
    "ok thank you",
    "okay thanks",
    "okay thank you",
    "great thanks",
    "great thank you",
    "perfect thanks",
    "got it thanks",
    "cool thanks",
    "nice thanks",
    "thanks great",
];

/// Whether a prompt's text is only an acknowledgement: ASCII, at most 64 bytes, and once
/// lowercased, with every character but letters, digits and `'` read as a space, one of
/// [`ACKNOWLEDGEMENTS`] ("OK!", "Thanks.", "got it, thanks").
pub fn is_acknowledgement(text: &str) -> bool {
    if !text.is_ascii() || text.len() > 64 {
        return false;
    }
    let mapped: String = text
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect();
    let words: Vec<&str> = mapped.split_whitespace().collect();
    ACKNOWLEDGEMENTS.contains(&words.join(" ").as_str())
}

/// The exchanges (indices into `exchanges`) the `acknowledgements` rule removes: every
/// request message of the exchange holds only acknowledgement prompts (at least one), its
/// replies hold only text or thinking (no tool call), and it is neither the first
/// exchange (the original task, the system prompt), nor the last one, nor the one holding
/// the current task (the last prompt); no message outside it is bonded to one of its own
/// (a Responses reasoning item). Removing a whole exchange (a run of requests and the run
/// of replies after it) keeps every provider's turn order and every pair. With
/// `drop_dangling`, a reply's call that no result in the history answers counts as absent:
/// the repair removes it anyway, and judging the turn without it is what makes the rule
/// idempotent (compacting the output again, where that call is gone, prunes nothing more).
pub fn acknowledged(
    history: &History,
    details: &Details,
    exchanges: &[Range<usize>],
    drop_dangling: bool,
) -> Vec<usize> {
    let n = exchanges.len();
    if n < 3 {
        return Vec::new();
    }
    let answered: FxHashSet<CallId> = if drop_dangling {
        history.parts.iter().filter_map(|p| p.kind.result_id()).collect()
    } else {
        Default::default()
    };
    let msgs = &history.messages;
    let kinds = |i: usize| history.parts[msgs[i].parts.clone()].iter().map(|p| p.kind);
    let task = (0..msgs.len()).rev().find(|&i| kinds(i).any(|k| k == PartKind::Prompt));
    let mut out = Vec::new();
    for (k, range) in exchanges.iter().enumerate().take(n - 1).skip(1) {
        if task.is_some_and(|t| range.contains(&t))
            || msgs[range.start - 1].bonded_to_next
            || msgs[range.end - 1].bonded_to_next
        {
            continue;
        }
        let mut acks = 0;
        let only = range.clone().all(|i| {
            msgs[i].parts.clone().all(|p| match (msgs[i].side, history.parts[p].kind) {
                (Side::Request, PartKind::Prompt) if details.parts[p].ack => {
                    acks += 1;
                    true
                }
                (Side::Response, PartKind::Content | PartKind::Thinking) => true,
                (Side::Response, PartKind::Call(id)) => drop_dangling && !answered.contains(&id),
                _ => false,
            })
        });
        if only && acks > 0 {
            out.push(k);
        }
    }
    out
}

/// Whether a call runs a process, whose output states an exit code (rule 4 of
/// [`super::failure`]): its key argument is `command` or `cmd`, or its tool's name
/// (ASCII case-insensitive) contains `bash`, `shell` or `terminal`.
pub fn runs_command(tool: &str, key_field: Option<&str>) -> bool {
    let contains = |w: &str| tool.as_bytes().windows(w.len()).any(|x| x.eq_ignore_ascii_case(w.as_bytes()));
    matches!(key_field, Some("command" | "cmd")) || ["bash", "shell", "terminal"].into_iter().any(contains)
}

/// Whether a result failed: its format's flag, else (OpenAI chat, Responses) what its text
/// says, read as a command's output when the call runs one ([`runs_command`]).
pub fn failed(result: &PartDetail) -> bool {
    result.error || result.says_failed
}

/// Whether a tool reads something (a file, a page) that may change between reads.
pub fn read_like(tool: &str) -> bool {
    let t = tool.to_ascii_lowercase();
    ["read", "cat", "view", "open", "show"].iter().any(|w| t.contains(w))
}

/// The pointer replacing an output made redundant by a later call.
pub fn pointer(tool: &str, key: Option<(&str, &str)>, same_output: bool) -> String {
    let call = super::mask::call_label(Some(tool), key);
    let reason = if same_output {
        "the same call returned the same output later"
    } else {
        "superseded by a later identical read"
    };
    format!("{PLACEHOLDER_PREFIX}pruned the output of {call}: {reason}]")
}

/// The pointer replacing a failed attempt a later success of the same tool superseded,
/// with the line that said why it failed ([`super::failure::reason`]) when there is one,
/// on one line and cut at 200 characters (as the summary's error lines): the model keeps what went wrong, not the output.
pub fn failure_pointer(tool: &str, key: Option<(&str, &str)>, reason: Option<&str>) -> String {
    let call = super::mask::call_label(Some(tool), key);
    let said = match reason.filter(|r| !r.is_empty()) {
        Some(r) => format!("; it said: {}", super::mask::one_line(r, REASON_MAX_CHARS)),
        None => String::new(),
    };
    format!("{PLACEHOLDER_PREFIX}pruned a failed attempt of {call}: superseded by a later successful call{said}]")
}

/// The most characters of a failure's reason a pointer shows (then `...`).
pub const REASON_MAX_CHARS: usize = 200;

/// Result parts (global indices) to replace, with their pointer and tokens once replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    pub replaced: Vec<(usize, String, u64)>,
}

impl PrunePlan {
    pub fn report(&self, history: &History) -> StepReport {
        StepReport {
            step: "prune",
            tokens_saved: self.replaced.iter().map(|(p, _, t)| history.parts[*p].tokens - t).sum(),
            items: self.replaced.len(),
        }
    }
}

/// Plan pruning; `skip` holds parts already replaced by an earlier step.
pub fn plan(
    history: &History,
    details: &Details,
    exchanges: &[Range<usize>],
    config: &PruneConfig,
    skip: &FxHashMap<usize, String>,
    count: &dyn Fn(&str) -> u64,
) -> PrunePlan {
    let Some(last) = exchanges.last() else { return PrunePlan::default() };
    let protected = last.start;
    // (call part, result part, result message) in order.
    let mut calls: FxHashMap<u32, usize> = FxHashMap::default();
    let mut pairs = Vec::new();
    for (i, message) in history.messages.iter().enumerate() {
        for p in message.parts.clone() {
            match history.parts[p].kind {
                PartKind::Call(id) => {
                    calls.insert(id, p);
                }
                PartKind::Result(id) => {
                    if let Some(&c) = calls.get(&id) {
                        pairs.push((c, p, i));
                    }
                }
                _ => {}
            }
        }
    }
    // Walking back: the nearest later successful call of each (tool, arguments), and
    // every (tool, key argument) that succeeded later.
    let mut later: FxHashMap<(u32, u64), u64> = FxHashMap::default(); // -> its output's hash
    let mut succeeded: FxHashSet<(u32, Option<(u32, u32)>)> = FxHashSet::default();
    let mut replaced = Vec::new();
    for &(c, r, i) in pairs.iter().rev() {
        let (call, result) = (&details.parts[c], &details.parts[r]);
        let Some(tool) = call.tool else { continue };
        let has_text = result.content_tokens > 0 && !result.placeholder && result.hash != 0;
        let open = i < protected && has_text && !skip.contains_key(&r);
        let key = (tool, call.args_hash);
        let name = details.string(tool);
        let label = || call.key.map(|(f, v)| (details.string(f), details.string(v)));
        let failed = failed(result);
        let text = if open && failed && config.superseded_failures && succeeded.contains(&(tool, call.key)) {
            Some(failure_pointer(name, label(), result.reason.map(|r| details.string(r))))
        } else if open && call.args_hash != 0 {
            later.get(&key).and_then(|&later_hash| {
                let same = later_hash == result.hash;
                ((same && config.repeated_calls) || (!same && config.superseded_reads && read_like(name)))
                    .then(|| pointer(name, label(), same))
            })
        } else {
            None
        };
        if let Some(text) = text {
            let part = &history.parts[r];
            let tokens = part.tokens.saturating_sub(result.content_tokens) + count(&text);
            if tokens < part.tokens {
                replaced.push((r, text, tokens));
            }
        }
        if has_text && !failed {
            if call.args_hash != 0 {
                later.insert(key, result.hash);
            }
            succeeded.insert((tool, call.key));
        }
    }
    replaced.reverse();
    PrunePlan { replaced }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Part, Side};
    use crate::strategies::PartDetail;

    fn count(s: &str) -> u64 {
        s.split_whitespace().count() as u64
    }

    /// A prompt, then one exchange per `(tool, args, output)` call, then a final answer
    /// and a prompt (so every call's exchange is older than the last one).
    fn session(calls: &[(&str, u64, u64)]) -> (History, Details, Vec<Range<usize>>) {
        let mut h = History::default();
        let mut d = Details::default();
        h.begin(Side::Request);
        h.push(Part::new(PartKind::Prompt, 5));
        d.parts.push(PartDetail::default());
        for (k, &(tool, args, output)) in calls.iter().enumerate() {
            let tool = d.intern(tool);
            let (f, v) = (d.intern("path"), d.intern("a.py"));
            h.begin(Side::Response);
            h.push(Part::new(PartKind::Call(k as u32), 10));
            d.parts.push(PartDetail { tool: Some(tool), key: Some((f, v)), args_hash: args, ..Default::default() });
            h.begin(Side::Request);
            h.push(Part::new(PartKind::Result(k as u32), 105));
            d.parts.push(PartDetail { content_tokens: 100, lines: 40, hash: output, ..Default::default() });
        }
        h.begin(Side::Response);
        h.push(Part::new(PartKind::Content, 5));
        d.parts.push(PartDetail::default());
        h.begin(Side::Request);
        h.push(Part::new(PartKind::Prompt, 5));
        d.parts.push(PartDetail::default());
        let n = calls.len();
        let mut exchanges: Vec<Range<usize>> = (0..n).map(|k| 2 * k..2 * k + 2).collect();
        exchanges.push(2 * n..2 * n + 2);
        (h, d, exchanges)
    }

    const ALL: PruneConfig =
        PruneConfig { repeated_calls: true, superseded_reads: true, acknowledgements: true, superseded_failures: true };

    fn pruned(h: &History, d: &Details, ex: &[Range<usize>], config: PruneConfig) -> Vec<(usize, String)> {
        plan(h, d, ex, &config, &FxHashMap::default(), &count).replaced.into_iter().map(|(p, t, _)| (p, t)).collect()
    }

    #[test]
    fn an_identical_call_with_an_identical_output_later_replaces_the_earlier_output_by_a_pointer() {
        let (h, d, ex) = session(&[("grep", 7, 70), ("bash", 8, 80), ("grep", 7, 70)]);
        let out = pruned(&h, &d, &ex, ALL);
        assert_eq!(
            out,
            vec![(
                2,
                "[tokensieve pruned the output of grep(path=a.py): the same call returned the same output later]"
                    .to_owned()
            )]
        );
        assert!(pruned(&h, &d, &ex, PruneConfig { repeated_calls: false, ..ALL }).is_empty());
    }

    #[test]
    fn a_file_read_again_later_points_to_the_later_read_but_other_tools_keep_their_history() {
        let (h, d, ex) =
            session(&[("read_file", 7, 70), ("read_file", 7, 71), ("run_tests", 9, 90), ("run_tests", 9, 91)]);
        let out = pruned(&h, &d, &ex, ALL);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 2);
        assert!(out[0].1.ends_with("superseded by a later identical read]"));
        assert!(pruned(&h, &d, &ex, PruneConfig { superseded_reads: false, ..ALL }).is_empty());
    }

    #[test]
    fn different_arguments_a_failed_later_call_and_the_last_exchange_are_left_alone() {
        let (h, mut d, ex) = session(&[("read_file", 7, 70), ("read_file", 8, 70), ("read_file", 8, 71)]);
        d.parts[6].error = true; // the later read of args 8 failed
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
        // Outputs in the last exchange are never touched: with both greps in it, none is.
        let (h, d, mut ex) = session(&[("grep", 7, 70), ("grep", 7, 70)]);
        assert_eq!(pruned(&h, &d, &ex, ALL).iter().map(|r| r.0).collect::<Vec<_>>(), vec![2]);
        ex.truncate(1);
        ex.push(2..6);
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
    }

    #[test]
    fn a_failed_attempt_superseded_by_a_later_success_becomes_a_pointer() {
        // edit_file fails (args 7), is retried with other arguments (8) and succeeds.
        let (h, mut d, ex) = session(&[("edit_file", 7, 70), ("bash", 9, 90), ("edit_file", 8, 80)]);
        d.parts[2].error = true;
        let out = pruned(&h, &d, &ex, ALL);
        assert_eq!(
            out,
            vec![(
                2,
                "[tokensieve pruned a failed attempt of edit_file(path=a.py): superseded by a later successful call]"
                    .to_owned()
            )]
        );
        // The call stays: only the result part is replaced.
        assert!(matches!(h.parts[out[0].0].kind, PartKind::Result(0)));
        assert!(pruned(&h, &d, &ex, PruneConfig { superseded_failures: false, ..ALL }).is_empty());
        // Replaced once, it is a placeholder and stays as it is.
        d.parts[2].placeholder = true;
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
    }

    #[test]
    fn a_failure_with_no_later_success_is_kept() {
        // Only failures later, another tool succeeding, or the same tool on another path.
        let (h, mut d, ex) =
            session(&[("edit_file", 7, 70), ("edit_file", 8, 80), ("bash", 9, 90), ("edit_file", 10, 100)]);
        d.parts[2].error = true;
        d.parts[4].error = true;
        let other = d.intern("b.py");
        d.parts[7].key = Some((d.intern("path"), other));
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
        // A success before the failure does not supersede it.
        let (h, mut d, ex) = session(&[("edit_file", 7, 70), ("edit_file", 8, 80), ("bash", 9, 90)]);
        d.parts[4].error = true;
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
        // A success in the last exchange does; a failure in the last exchange is never touched.
        let (h, mut d, mut ex) = session(&[("edit_file", 7, 70), ("edit_file", 8, 80)]);
        d.parts[2].error = true;
        assert_eq!(pruned(&h, &d, &ex, ALL).iter().map(|r| r.0).collect::<Vec<_>>(), vec![2]);
        ex.truncate(0);
        ex.push(0..6);
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
    }

    #[test]
    fn a_result_whose_text_says_it_failed_is_superseded_like_a_flagged_one() {
        // OpenAI chat / Responses: no flag, the text said it failed.
        let (h, mut d, ex) = session(&[("edit_file", 7, 70), ("edit_file", 8, 80)]);
        d.parts[2].says_failed = true;
        assert_eq!(pruned(&h, &d, &ex, ALL).iter().map(|r| r.0).collect::<Vec<_>>(), vec![2]);
        // A later result whose text says it failed supersedes nothing.
        d.parts[4].says_failed = true;
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
    }

    #[test]
    fn the_pointer_keeps_the_line_that_said_why_on_one_line_and_cut() {
        let (h, mut d, ex) = session(&[("edit_file", 7, 70), ("edit_file", 8, 80)]);
        d.parts[2].error = true;
        d.parts[2].reason = Some(d.intern("Error: old_string\tnot found in a.py"));
        assert_eq!(
            pruned(&h, &d, &ex, ALL)[0].1,
            "[tokensieve pruned a failed attempt of edit_file(path=a.py): superseded by a later successful call; \
             it said: Error: old_string not found in a.py]"
        );
        let long = failure_pointer("bash", None, Some(&"x".repeat(500)));
        assert!(long.ends_with(&format!("it said: {}...]", "x".repeat(REASON_MAX_CHARS))), "{long}");
        assert!(super::super::mask::is_placeholder(&long));
        assert_eq!(failure_pointer("bash", None, Some("")), failure_pointer("bash", None, None));
    }

    #[test]
    fn a_call_runs_a_command_by_its_key_argument_or_its_tools_name() {
        assert!(runs_command("run", Some("command")));
        assert!(runs_command("exec", Some("cmd")));
        assert!(runs_command("Bash", None));
        assert!(runs_command("local_shell", Some("path")));
        assert!(runs_command("run_in_terminal", None));
        assert!(!runs_command("read_file", Some("path")));
        assert!(!runs_command("python", Some("code")));
    }

    #[test]
    fn a_retry_prompt_superseded_by_a_successful_call_of_the_same_tool_becomes_a_pointer() {
        // pydantic-ai: the retry prompt answering call 0 is a failed result with content.
        let (h, mut d, ex) = session(&[("edit_file", 7, 70), ("edit_file", 8, 80)]);
        d.parts[2].error = true;
        d.parts[2].retry = true;
        let out = pruned(&h, &d, &ex, ALL);
        assert_eq!(out.len(), 1);
        assert!(out[0].1.starts_with("[tokensieve pruned a failed attempt of edit_file(path=a.py)"));
        assert!(pruned(&h, &d, &ex, PruneConfig { superseded_failures: false, ..ALL }).is_empty());
    }

    #[test]
    fn an_output_replaced_before_is_not_replaced_again() {
        let (h, mut d, ex) = session(&[("grep", 7, 70), ("grep", 7, 70)]);
        d.parts[2].placeholder = true;
        assert!(pruned(&h, &d, &ex, ALL).is_empty());
    }

    #[test]
    fn acknowledgements_are_whole_prompts_of_thanks_and_ok() {
        for text in ["ok", "Thanks!", "got it, thanks", "OK.", "  thank you\n", "Great, thanks"] {
            assert!(is_acknowledgement(text), "{text:?}");
        }
        for text in ["ok, now fix it", "yes", "continue", "okay 🙂", "", "thanks for nothing"] {
            assert!(!is_acknowledgement(text), "{text:?}");
        }
    }

    /// Exchanges of (prompt is an ack, reply has a call), each one request and one reply;
    /// a call's result would open the next exchange, so replies with a call are followed
    /// by a result-only request.
    fn turns(spec: &[(bool, bool)]) -> (History, Details, Vec<Range<usize>>) {
        let mut h = History::default();
        let mut d = Details::default();
        let mut exchanges = Vec::new();
        for (k, &(ack, call)) in spec.iter().enumerate() {
            let start = h.len();
            h.begin(Side::Request);
            h.push(Part::new(PartKind::Prompt, 3));
            d.parts.push(PartDetail { ack, ..Default::default() });
            h.begin(Side::Response);
            h.push(Part::new(if call { PartKind::Call(k as u32) } else { PartKind::Content }, 4));
            d.parts.push(PartDetail::default());
            if call {
                exchanges.push(start..h.len());
                let start = h.len();
                h.begin(Side::Request);
                h.push(Part::new(PartKind::Result(k as u32), 9));
                d.parts.push(PartDetail::default());
                h.begin(Side::Response);
                h.push(Part::new(PartKind::Content, 4));
                d.parts.push(PartDetail::default());
                exchanges.push(start..h.len());
            } else {
                exchanges.push(start..h.len());
            }
        }
        (h, d, exchanges)
    }

    #[test]
    fn an_acknowledgement_turn_goes_with_its_reply_unless_the_reply_calls_a_tool() {
        // 0: the task; 1: "thanks" + text; 2: "ok" + a call (and its result's exchange);
        // 4: a prompt; 5: "thanks" + text, the last exchange.
        let (h, d, ex) = turns(&[(false, false), (true, false), (true, true), (false, false), (true, false)]);
        assert_eq!(acknowledged(&h, &d, &ex, true), vec![1]);
    }

    #[test]
    fn the_first_exchange_the_last_one_and_the_current_task_are_never_removed() {
        let (h, d, ex) = turns(&[(true, false), (false, false), (true, false)]);
        assert!(acknowledged(&h, &d, &ex, true).is_empty());
        // The current task is the last prompt: an ack followed only by tool exchanges.
        let (h, d, ex) = turns(&[(false, false), (false, false), (true, true)]);
        assert_eq!(ex.len(), 4);
        assert!(acknowledged(&h, &d, &ex, true).is_empty());
    }

    #[test]
    fn the_pipeline_drops_acknowledgement_turns_before_the_window_and_reports_them_in_input_indices() {
        use crate::compact::{Budget, Dangling, OutMessage};
        use crate::history::Rules;
        use crate::strategies::{run, Strategies};
        let (h, d, _) = turns(&[(false, false), (true, false), (false, true), (true, false), (false, false)]);
        let budget = Budget {
            max_input_tokens: 1_000,
            compaction_threshold: 0.01,
            hard_limit_threshold: 1.0,
            target_input_tokens: 1_000,
            max_exchanges: None,
            reserved_tokens: 0,
            dangling: Dangling::Drop,
        };
        let strategies = Strategies { mask: None, prune: Some(ALL) };
        let out = run(&h, &d, Rules::OPENAI_CHAT, &budget, &strategies, &count).unwrap();
        // Messages: 0-1 task, 2-3 thanks, 4-5 call, 6-7 result, 8-9 thanks, 10-11 last.
        assert_eq!(out.outcome.dropped, vec![2, 3, 8, 9]);
        let kept: Vec<usize> = out
            .outcome
            .messages
            .iter()
            .map(|m| match m {
                OutMessage::Kept { index, .. } => *index,
                OutMessage::Stub { .. } => usize::MAX,
            })
            .collect();
        assert_eq!(kept, vec![0, 1, 4, 5, 6, 7, 10, 11]);
        let prune = out.steps.iter().find(|s| s.step == "prune").unwrap();
        assert_eq!((prune.items, prune.tokens_saved), (4, out.outcome.tokens_before - out.outcome.tokens_after));
        // Switched off, nothing goes.
        let off = Strategies { mask: None, prune: Some(PruneConfig { acknowledgements: false, ..ALL }) };
        assert!(run(&h, &d, Rules::OPENAI_CHAT, &budget, &off, &count).unwrap().outcome.dropped.is_empty());
    }
}
