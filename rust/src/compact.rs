//! Compaction: the sliding window over exchanges and the repair of tool-call pairing.
//!
//! Implements sections 2 to 4 of `docs/compaction.md` on a [`History`]. The output is a
//! plan — which messages stay, which of their parts, where synthesized results go — that
//! the Python glue turns back into the caller's own objects.

use crate::error::{Error, Result};
use crate::history::{CallId, History, Pairing, PartKind, Rules, Side, MESSAGE_OVERHEAD};
use rustc_hash::FxHashMap;

/// What to do with a tool call whose result is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dangling {
    Drop,
    Stub,
}

/// The budget, as validated by the Python `BudgetConfig`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub max_input_tokens: u64,
    pub compaction_threshold: f64,
    pub hard_limit_threshold: f64,
    pub target_input_tokens: u64,
    pub max_exchanges: usize,
    pub reserved_tokens: u64,
    pub dangling: Dangling,
}

impl Budget {
    fn over(&self, tokens: u64, fraction: f64) -> bool {
        tokens as f64 > fraction * self.max_input_tokens as f64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing was windowed away (pairing may still have been repaired).
    None,
    /// The window dropped at least one message.
    Compacted,
}

/// One message of the output, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutMessage {
    /// Input message `index`. `parts`: the indices (within the message) of the parts kept,
    /// or `None` when all are, so the caller's object is returned as is. `stubs`: calls
    /// (as global part indices) answered by results inserted at local position `stub_at`.
    Kept { index: usize, parts: Option<Vec<usize>>, stubs: Vec<usize>, stub_at: usize },
    /// A new request message holding synthesized results for these calls (global part
    /// indices); `after` is the input message it follows.
    Stub { after: usize, calls: Vec<usize> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub messages: Vec<OutMessage>,
    pub action: Action,
    pub tokens_before: u64,
    pub tokens_after: u64,
    pub exchanges_kept: usize,
    /// Input messages not in the output, ascending.
    pub dropped: Vec<usize>,
    pub orphans_removed: usize,
    pub calls_repaired: usize,
}

/// Total tokens of a history as sent: its messages plus what every request carries.
pub fn history_tokens(history: &History, reserved: u64) -> u64 {
    history.tokens_per_message().iter().sum::<u64>() + reserved
}

/// Compact `history` under `budget`, following `rules`.
pub fn compact(history: &History, rules: Rules, budget: &Budget) -> Result<Outcome> {
    let tokens_before = history_tokens(history, budget.reserved_tokens);
    let n = history.len();
    let all = vec![true; n];
    let mut outcome = if !budget.over(tokens_before, budget.compaction_threshold) {
        Repair::run(history, rules, budget.dangling, &all).outcome(budget, tokens_before, Action::None)
    } else {
        let shape = Shape::of(history);
        let mut chosen = None;
        for k in (1..=budget.max_exchanges.min(shape.exchanges.len())).rev() {
            let selection = shape.window(history, k, rules.user_first);
            let action = if selection.iter().all(|&s| s) { Action::None } else { Action::Compacted };
            let outcome =
                Repair::run(history, rules, budget.dangling, &selection).outcome(budget, tokens_before, action);
            let fits = outcome.tokens_after <= budget.target_input_tokens;
            chosen = Some(outcome);
            if fits {
                break;
            }
        }
        chosen.unwrap_or_else(|| {
            Repair::run(history, rules, budget.dangling, &all).outcome(budget, tokens_before, Action::None)
        })
    };
    if budget.over(outcome.tokens_after, budget.hard_limit_threshold) {
        return Err(Error::BudgetExceeded {
            tokens_before,
            tokens_after: outcome.tokens_after,
            limit: (budget.hard_limit_threshold * budget.max_input_tokens as f64) as u64,
        });
    }
    outcome.exchanges_kept = count_exchanges(history, &outcome.messages);
    Ok(outcome)
}

/// Pinned messages and exchange boundaries of a history (section 2).
struct Shape {
    pinned: Vec<usize>,
    /// Messages with a prompt part, ascending.
    prompts: Vec<usize>,
    /// Message ranges of the exchanges, oldest first.
    exchanges: Vec<std::ops::Range<usize>>,
    /// Start of the pending request (== len when there is none).
    pending: usize,
}

impl Shape {
    fn of(history: &History) -> Self {
        let msgs = &history.messages;
        let kinds = |i: usize| history.parts[msgs[i].parts.clone()].iter().map(|p| p.kind);
        let prompts: Vec<usize> = (0..msgs.len()).filter(|&i| kinds(i).any(|k| k == PartKind::Prompt)).collect();
        let mut pinned: Vec<usize> = (0..msgs.len()).filter(|&i| kinds(i).any(|k| k == PartKind::System)).collect();
        if let Some(&task) = prompts.last() {
            pinned.push(task);
        }
        let mut exchanges = Vec::new();
        let mut start = 0;
        for i in 1..msgs.len() {
            if msgs[i].side == Side::Request && msgs[i - 1].side == Side::Response {
                exchanges.push(start..i);
                start = i;
            }
        }
        let pending = if msgs.last().is_some_and(|m| m.side == Side::Response) {
            exchanges.push(start..msgs.len());
            msgs.len()
        } else {
            start
        };
        Shape { pinned, prompts, exchanges, pending }
    }

    /// Section 2: pinned messages, the last `k` exchanges and the pending request. Where
    /// the provider needs a user message first and the window does not start with a
    /// prompt, also the prompt of the turn the window starts in: a window that opens
    /// inside a tool loop would otherwise start with results whose calls are gone, and
    /// removing those would unravel the whole loop.
    fn window(&self, history: &History, k: usize, user_first: bool) -> Vec<bool> {
        let mut selection = vec![false; history.len()];
        let from = self.exchanges[self.exchanges.len() - k].start;
        selection[from..].iter_mut().for_each(|s| *s = true);
        debug_assert!(from <= self.pending);
        for &p in &self.pinned {
            selection[p] = true;
        }
        if user_first && self.prompts.binary_search(&from).is_err() {
            if let Some(&opener) = self.prompts.iter().rev().find(|&&p| p < from) {
                selection[opener] = true;
            }
        }
        selection
    }
}

/// The state of one repair: which messages and parts are alive, which calls are stubbed.
struct Repair<'h> {
    history: &'h History,
    rules: Rules,
    dangling: Dangling,
    alive_message: Vec<bool>,
    alive_part: Vec<bool>,
    stubbed: Vec<bool>,
    orphans_removed: usize,
    calls_repaired: usize,
}

impl<'h> Repair<'h> {
    fn run(history: &'h History, rules: Rules, dangling: Dangling, selection: &[bool]) -> Self {
        let mut state = Repair {
            history,
            rules,
            dangling,
            alive_message: selection.to_vec(),
            alive_part: vec![true; history.parts.len()],
            stubbed: vec![false; history.parts.len()],
            orphans_removed: 0,
            calls_repaired: 0,
        };
        while state.pass() {}
        state
    }

    fn parts(&self, i: usize) -> std::ops::Range<usize> {
        self.history.messages[i].parts.clone()
    }

    fn alive_parts(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.parts(i).filter(move |&p| self.alive_part[p])
    }

    /// One pass of section 3; returns whether anything changed.
    fn pass(&mut self) -> bool {
        let history = self.history;
        let seq: Vec<usize> = (0..history.len()).filter(|&i| self.alive_message[i]).collect();
        let mut changed = false;

        // 1. Pair each result with a call, or remove it.
        let mut paired = vec![false; history.parts.len()];
        let mut open_calls: FxHashMap<CallId, Vec<usize>> = FxHashMap::default(); // for `anywhere`
        for (pos, &j) in seq.iter().enumerate() {
            for p in self.parts(j) {
                let PartKind::Result(id) = history.parts[p].kind else { continue };
                if !self.alive_part[p] {
                    continue;
                }
                let call = match self.rules.pairing {
                    Pairing::NextMessage => pos
                        .checked_sub(1)
                        .map(|q| seq[q])
                        .filter(|&i| history.messages[i].side == Side::Response)
                        .and_then(|i| self.open_call_in(i, id, &paired)),
                    Pairing::ToolBlock => {
                        self.tool_block_owner(&seq[..pos]).and_then(|i| self.open_call_in(i, id, &paired))
                    }
                    Pairing::Anywhere => open_calls.get_mut(&id).and_then(|stack| stack.pop()),
                };
                match call {
                    Some(c) => {
                        paired[c] = true;
                        paired[p] = true;
                    }
                    None => {
                        self.alive_part[p] = false;
                        self.orphans_removed += 1;
                        changed = true;
                    }
                }
            }
            if self.rules.pairing == Pairing::Anywhere {
                for p in self.parts(j) {
                    if let PartKind::Call(id) = history.parts[p].kind {
                        if self.alive_part[p] && !self.stubbed[p] {
                            open_calls.entry(id).or_default().push(p);
                        }
                    }
                }
                // Calls are matched nearest first: the stack's top is the latest call.
            }
        }

        // 2. Calls nobody answered.
        for &i in &seq {
            for p in self.parts(i) {
                if matches!(history.parts[p].kind, PartKind::Call(_))
                    && self.alive_part[p]
                    && !paired[p]
                    && !self.stubbed[p]
                {
                    match self.dangling {
                        Dangling::Drop => self.alive_part[p] = false,
                        Dangling::Stub => self.stubbed[p] = true,
                    }
                    self.calls_repaired += 1;
                    changed = true;
                }
            }
        }

        // 3. Messages left with nothing (thinking or instructions alone count as nothing),
        //    except a last request that must stay.
        let last = history.len().wrapping_sub(1);
        for &i in &seq {
            if self.rules.keep_last_request && i == last && history.messages[i].side == Side::Request {
                continue;
            }
            if self.alive_parts(i).all(|p| matches!(history.parts[p].kind, PartKind::Thinking | PartKind::Instructions))
            {
                self.alive_message[i] = false;
                changed = true;
            }
        }

        // 4. Bonded pairs live and die together.
        for &i in &seq {
            if history.messages[i].bonded_to_next
                && i + 1 < history.len()
                && self.alive_message[i] != self.alive_message[i + 1]
            {
                self.alive_message[i] = false;
                self.alive_message[i + 1] = false;
                changed = true;
            }
        }

        // 5. The first message that is not pure system must be a request.
        if self.rules.user_first {
            let first = seq
                .iter()
                .copied()
                .filter(|&i| self.alive_message[i])
                .find(|&i| !self.alive_parts(i).all(|p| history.parts[p].kind == PartKind::System));
            if let Some(i) = first.filter(|&i| history.messages[i].side == Side::Response) {
                self.alive_message[i] = false;
                changed = true;
            }
        }
        changed
    }

    /// The first alive, unpaired, unstubbed call with `id` in message `i`.
    fn open_call_in(&self, i: usize, id: CallId, paired: &[bool]) -> Option<usize> {
        self.parts(i).find(|&p| {
            self.history.parts[p].kind == PartKind::Call(id) && self.alive_part[p] && !paired[p] && !self.stubbed[p]
        })
    }

    /// `tool-block`: walking back over request messages made only of results, the first
    /// other message, if it is a response.
    fn tool_block_owner(&self, before: &[usize]) -> Option<usize> {
        let history = self.history;
        let owner = before.iter().rev().copied().find(|&k| {
            !(history.messages[k].side == Side::Request
                && self.alive_parts(k).all(|p| matches!(history.parts[p].kind, PartKind::Result(_))))
        })?;
        (history.messages[owner].side == Side::Response).then_some(owner)
    }

    fn outcome(&self, budget: &Budget, tokens_before: u64, action: Action) -> Outcome {
        let history = self.history;
        let n = history.len();
        let mut messages = Vec::new();
        let mut tokens = budget.reserved_tokens;
        let mut dropped = Vec::new();
        // Stubs of calls in message i that go into a new message (per the pairing rule).
        let alive: Vec<usize> = (0..n).filter(|&i| self.alive_message[i]).collect();
        let mut into_next: FxHashMap<usize, Vec<usize>> = FxHashMap::default(); // message -> calls
        let mut new_after: Vec<(usize, Vec<usize>)> = Vec::new(); // (after message, calls)
        for (pos, &i) in alive.iter().enumerate() {
            let calls: Vec<usize> = self.parts(i).filter(|&p| self.alive_part[p] && self.stubbed[p]).collect();
            if calls.is_empty() {
                continue;
            }
            match self.rules.pairing {
                Pairing::NextMessage => match alive.get(pos + 1) {
                    Some(&j) if history.messages[j].side == Side::Request => {
                        into_next.entry(j).or_default().extend(calls)
                    }
                    _ => new_after.push((i, calls)),
                },
                Pairing::ToolBlock => {
                    let mut end = pos;
                    while let Some(&k) = alive.get(end + 1) {
                        let pure = history.messages[k].side == Side::Request
                            && self.alive_parts(k).all(|p| matches!(history.parts[p].kind, PartKind::Result(_)));
                        if !pure {
                            break;
                        }
                        end += 1;
                    }
                    for c in calls {
                        new_after.push((alive[end], vec![c]));
                    }
                }
                Pairing::Anywhere => {
                    for c in calls {
                        new_after.push((i, vec![c]));
                    }
                }
            }
        }
        let mut new_after = new_after.into_iter().peekable();
        for i in 0..n {
            if !self.alive_message[i] {
                dropped.push(i);
                continue;
            }
            let range = self.parts(i);
            let kept: Vec<usize> = range.clone().filter(|&p| self.alive_part[p]).map(|p| p - range.start).collect();
            tokens += MESSAGE_OVERHEAD
                + kept
                    .iter()
                    .map(|&p| &history.parts[range.start + p])
                    .filter(|p| p.kind != PartKind::Instructions)
                    .map(|p| p.tokens)
                    .sum::<u64>();
            let stubs = into_next.remove(&i).unwrap_or_default();
            tokens += stubs.iter().map(|&c| history.parts[c].stub_tokens).sum::<u64>();
            // Synthesized results go after the message's last result (tool results first).
            let stub_at = kept
                .iter()
                .rposition(|&p| matches!(history.parts[range.start + p].kind, PartKind::Result(_)))
                .map_or(0, |q| q + 1);
            let parts = (kept.len() != range.len()).then_some(kept);
            messages.push(OutMessage::Kept { index: i, parts, stubs, stub_at });
            while let Some((_, calls)) = new_after.next_if(|(after, _)| *after == i) {
                tokens += MESSAGE_OVERHEAD + calls.iter().map(|&c| history.parts[c].stub_tokens).sum::<u64>();
                messages.push(OutMessage::Stub { after: i, calls });
            }
        }
        // Instructions go with the last request of what is sent (none if that is a stub).
        let last_request = messages.iter().rev().find(|m| match m {
            OutMessage::Kept { index, .. } => history.messages[*index].side == Side::Request,
            OutMessage::Stub { .. } => true,
        });
        if let Some(OutMessage::Kept { index, .. }) = last_request {
            tokens += self
                .parts(*index)
                .filter(|&p| self.alive_part[p] && history.parts[p].kind == PartKind::Instructions)
                .map(|p| history.parts[p].tokens)
                .sum::<u64>();
        }
        Outcome {
            messages,
            action,
            tokens_before,
            tokens_after: tokens,
            exchanges_kept: 0,
            dropped,
            orphans_removed: self.orphans_removed,
            calls_repaired: self.calls_repaired,
        }
    }
}

/// Exchanges in the output: the number of its runs of response messages.
fn count_exchanges(history: &History, out: &[OutMessage]) -> usize {
    let mut count = 0;
    let mut previous = Side::Request;
    for m in out {
        let side = match m {
            OutMessage::Kept { index, .. } => history.messages[*index].side,
            OutMessage::Stub { .. } => Side::Request,
        };
        if side == Side::Response && previous == Side::Request {
            count += 1;
        }
        previous = side;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Part;

    /// A tiny language for histories: one string per message.
    /// `S` system, `U` prompt, `A` text, `c1` call 1, `r1` result 1; `R:`/`Q:` prefix sets
    /// the side (R = response, Q = request). Each part costs `t` tokens.
    fn history(spec: &[&str], t: u64) -> History {
        let mut h = History::default();
        for m in spec {
            let (side, body) = match m.split_once(':') {
                Some(("R", b)) => (Side::Response, b),
                Some(("Q", b)) => (Side::Request, b),
                _ => panic!("bad spec {m}"),
            };
            h.begin(side);
            for tok in body.split_whitespace() {
                let kind = match tok.as_bytes()[0] {
                    b'S' => PartKind::System,
                    b'U' => PartKind::Prompt,
                    b'A' => PartKind::Content,
                    b'c' => PartKind::Call(tok[1..].parse().unwrap()),
                    b'r' => PartKind::Result(tok[1..].parse().unwrap()),
                    _ => panic!("bad part {tok}"),
                };
                let mut part = Part::new(kind, t);
                part.stub_tokens = 1;
                h.push(part);
            }
        }
        h
    }

    fn budget(max_exchanges: usize) -> Budget {
        Budget {
            max_input_tokens: 1000,
            compaction_threshold: 0.3,
            hard_limit_threshold: 1.0,
            target_input_tokens: 300,
            max_exchanges,
            reserved_tokens: 0,
            dangling: Dangling::Drop,
        }
    }

    const NEXT: Rules = Rules { pairing: Pairing::NextMessage, user_first: true, keep_last_request: false };
    const BLOCK: Rules = Rules { pairing: Pairing::ToolBlock, user_first: false, keep_last_request: false };
    const ANY: Rules = Rules { pairing: Pairing::Anywhere, user_first: false, keep_last_request: false };
    const PYDANTIC_AI: Rules = Rules { pairing: Pairing::NextMessage, user_first: true, keep_last_request: true };

    fn kept(o: &Outcome) -> Vec<usize> {
        o.messages
            .iter()
            .filter_map(|m| match m {
                OutMessage::Kept { index, .. } => Some(*index),
                OutMessage::Stub { .. } => None,
            })
            .collect()
    }

    fn tool_loop(n: usize) -> Vec<String> {
        let mut v = vec!["Q:S U".to_string()];
        for i in 0..n {
            v.push(format!("R:A c{i}"));
            v.push(format!("Q:r{i}"));
        }
        v
    }

    #[test]
    fn below_the_threshold_a_valid_history_comes_back_whole() {
        let spec = tool_loop(3);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let o = compact(&history(&spec, 1), NEXT, &budget(4)).unwrap();
        assert_eq!(o.action, Action::None);
        assert_eq!(kept(&o), (0..spec.len()).collect::<Vec<_>>());
        assert!(o.messages.iter().all(|m| matches!(m, OutMessage::Kept { parts: None, .. })));
    }

    #[test]
    fn the_window_keeps_system_prompt_task_and_last_exchanges() {
        let spec = tool_loop(10);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let o = compact(&history(&spec, 10), NEXT, &budget(2)).unwrap();
        assert_eq!(o.action, Action::Compacted);
        // message 0 (system + task), then the last two exchanges: the request of the
        // first of them is the result of a call that was cut away, so it goes, and the
        // exchange then starts with its response.
        assert_eq!(kept(&o), vec![0, 17, 18, 19, 20]);
        assert_eq!(o.orphans_removed, 1);
        assert_eq!(o.exchanges_kept, 2);
    }

    #[test]
    fn a_result_whose_call_is_gone_is_removed_and_a_call_without_result_too() {
        let h = history(&["Q:U", "R:A c1 c2", "Q:r1 r3"], 1);
        let o = compact(&h, NEXT, &budget(4)).unwrap();
        assert_eq!(o.orphans_removed, 1);
        assert_eq!(o.calls_repaired, 1);
        assert_eq!(
            o.messages,
            vec![
                OutMessage::Kept { index: 0, parts: None, stubs: vec![], stub_at: 0 },
                OutMessage::Kept { index: 1, parts: Some(vec![0, 1]), stubs: vec![], stub_at: 0 },
                OutMessage::Kept { index: 2, parts: Some(vec![0]), stubs: vec![], stub_at: 1 },
            ]
        );
    }

    #[test]
    fn next_message_pairing_rejects_a_result_two_messages_later() {
        let h = history(&["Q:U", "R:c1", "Q:U", "Q:r1"], 1);
        let o = compact(&h, NEXT, &budget(4)).unwrap();
        assert_eq!(kept(&o), vec![0, 2]);
        // ...while `anywhere` accepts it.
        let o = compact(&h, ANY, &budget(4)).unwrap();
        assert_eq!(kept(&o), vec![0, 1, 2, 3]);
    }

    #[test]
    fn tool_block_pairing_accepts_results_across_other_tool_messages_only() {
        let h = history(&["Q:U", "R:c1 c2", "Q:r2", "Q:r1"], 1);
        assert_eq!(kept(&compact(&h, BLOCK, &budget(4)).unwrap()), vec![0, 1, 2, 3]);
        let h = history(&["Q:U", "R:c1 c2", "Q:r2", "Q:U", "Q:r1"], 1);
        let o = compact(&h, BLOCK, &budget(4)).unwrap();
        assert_eq!(kept(&o), vec![0, 1, 2, 3]);
        assert_eq!((o.orphans_removed, o.calls_repaired), (1, 1));
    }

    #[test]
    fn a_history_never_starts_with_a_response_where_the_provider_forbids_it() {
        let h = history(&["R:A", "Q:U", "R:A", "Q:U"], 1);
        assert_eq!(kept(&compact(&h, NEXT, &budget(4)).unwrap()), vec![1, 2, 3]);
        assert_eq!(kept(&compact(&h, BLOCK, &budget(4)).unwrap()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn removing_a_leading_response_cascades_to_its_results() {
        let h = history(&["Q:S", "R:c1", "Q:r1", "R:A", "Q:U"], 1);
        // c1's message goes first (it leads), then r1 has no call, then the text response leads.
        assert_eq!(kept(&compact(&h, NEXT, &budget(4)).unwrap()), vec![0, 4]);
    }

    #[test]
    fn a_window_inside_a_tool_loop_keeps_the_prompt_of_its_turn_where_users_speak_first() {
        // Task, a five-step tool loop answered with text, then a follow-up prompt.
        let mut spec = vec!["Q:U".to_string()];
        for i in 0..5 {
            spec.push(format!("R:c{i}"));
            spec.push(format!("Q:r{i}"));
        }
        spec.extend(["R:A".to_string(), "Q:U".to_string()]);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let h = history(&spec, 30);
        let o = compact(&h, NEXT, &budget(3)).unwrap();
        // The loop's prompt opens the window; the orphan result r2 goes; 3 exchanges stay.
        assert_eq!(kept(&o), vec![0, 7, 8, 9, 10, 11, 12]);
        assert_eq!(o.exchanges_kept, 3);
        // Without the user-first rule no opener is needed.
        let o = compact(&h, BLOCK, &budget(3)).unwrap();
        assert_eq!(kept(&o), vec![7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn a_message_left_with_only_thinking_is_removed() {
        let mut h = history(&["Q:U", "R:A c1", "Q:U"], 1);
        h.parts[1].kind = PartKind::Thinking;
        assert_eq!(kept(&compact(&h, NEXT, &budget(4)).unwrap()), vec![0, 2]);
    }

    #[test]
    fn a_history_ending_with_a_request_keeps_it_even_emptied_where_the_framework_requires() {
        let h = history(&["Q:U", "R:A", "Q:r9"], 1);
        assert_eq!(kept(&compact(&h, PYDANTIC_AI, &budget(4)).unwrap()), vec![0, 1, 2]);
        assert_eq!(kept(&compact(&h, NEXT, &budget(4)).unwrap()), vec![0, 1]);
    }

    #[test]
    fn instructions_count_only_on_the_last_request_of_what_is_sent() {
        // Two requests carrying instructions of 100 tokens each.
        let mut h = History::default();
        for side in [Side::Request, Side::Response, Side::Request, Side::Response] {
            h.begin(side);
            h.push(Part::new(if side == Side::Request { PartKind::Prompt } else { PartKind::Content }, 1));
            if side == Side::Request {
                h.push(Part::new(PartKind::Instructions, 100));
            }
        }
        assert_eq!(h.tokens_per_message(), vec![5, 5, 105, 5]);
        let mut b = budget(1);
        b.compaction_threshold = 0.001;
        b.target_input_tokens = 0;
        let o = compact(&h, BLOCK, &b).unwrap();
        assert_eq!(kept(&o), vec![2, 3]);
        assert_eq!(o.tokens_after, 105 + 5);
        // When the last request of the output is an earlier one, its instructions count.
        let o = compact(&h, BLOCK, &budget(4)).unwrap();
        assert_eq!(o.tokens_after, 5 + 5 + 105 + 5);
    }

    #[test]
    fn bonded_messages_go_together() {
        let mut h = history(&["Q:U", "R:A", "R:c1", "Q:U"], 1);
        h.messages[1].bonded_to_next = true;
        // c1 has no result: it goes, its message empties, and its reasoning goes with it.
        assert_eq!(kept(&compact(&h, ANY, &budget(4)).unwrap()), vec![0, 3]);
    }

    #[test]
    fn stubs_answer_dangling_calls_where_the_provider_expects_results() {
        let mut b = budget(4);
        b.dangling = Dangling::Stub;
        let h = history(&["Q:U", "R:c1 c2", "Q:r1 U"], 1);
        let o = compact(&h, NEXT, &b).unwrap();
        assert_eq!(o.messages[2], OutMessage::Kept { index: 2, parts: None, stubs: vec![2], stub_at: 1 });
        assert_eq!(o.calls_repaired, 1);
        let h = history(&["Q:U", "R:c1 c2", "Q:r1", "Q:U"], 1);
        let o = compact(&h, BLOCK, &b).unwrap();
        assert_eq!(o.messages[3], OutMessage::Stub { after: 2, calls: vec![2] });
    }

    #[test]
    fn over_the_hard_limit_is_an_error_with_the_counts() {
        let mut b = budget(1);
        b.hard_limit_threshold = 0.5;
        let h = history(&["Q:S U", "R:A", "Q:U"], 400);
        match compact(&h, NEXT, &b) {
            Err(Error::BudgetExceeded { tokens_after, limit, .. }) => {
                assert!(tokens_after > limit);
                assert_eq!(limit, 500);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compacting_twice_changes_nothing() {
        let spec = tool_loop(12);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let h = history(&spec, 10);
        let once = compact(&h, NEXT, &budget(3)).unwrap();
        // Rebuild the compacted history and compact it again.
        let mut again = History::default();
        for m in &once.messages {
            let OutMessage::Kept { index, parts, .. } = m else { unreachable!() };
            let msg = &h.messages[*index];
            again.begin(msg.side);
            let local: Vec<usize> = parts.clone().unwrap_or_else(|| (0..msg.parts.len()).collect());
            for p in local {
                again.push(h.parts[msg.parts.start + p]);
            }
        }
        let twice = compact(&again, NEXT, &budget(3)).unwrap();
        assert_eq!(kept(&twice), (0..again.len()).collect::<Vec<_>>());
        assert_eq!(twice.tokens_after, once.tokens_after);
    }
}
