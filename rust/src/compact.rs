//! Compaction: the sliding window over exchanges and the repair of tool-call pairing.
//!
//! Implements sections 2 to 4 of `docs/compaction.md` on a [`History`]. The output is a
//! plan — which messages stay, which of their parts, where synthesized results go — that
//! the Python glue turns back into the caller's own objects.

use crate::error::{Error, Result};
use crate::history::{CallId, History, Pairing, PartKind, Rules, Side, StubPlacement};
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
    /// An upper bound on the exchanges kept; `None`: as many as fit under the target.
    pub max_exchanges: Option<usize>,
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
    /// Tool results removed from the output because no call of it answers them (total).
    pub orphans_removed: usize,
    /// Tool calls of the output removed or stubbed because no result answers them (total).
    pub calls_repaired: usize,
    /// Of those two totals: the defects of the input itself, the ones a repair of the
    /// whole input makes too.
    pub input_defects_repaired: usize,
    /// Of those two totals: the pairs valid in the input that the window separated (one
    /// side cut away, the other then removed or stubbed).
    pub pairs_cut_by_window: usize,
}

/// Indices as `(start, stop)` runs of consecutive ones, in order: `outcome.dropped` as
/// the compaction report hands it over (the window drops runs of messages; the indices
/// themselves are made only if the caller reads them). Expanding the runs gives the
/// indices back, whatever their order.
pub fn index_runs(indices: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in indices {
        match runs.last_mut() {
            Some((_, stop)) if *stop == i => *stop += 1,
            _ => runs.push((i, i + 1)),
        }
    }
    runs
}

/// Total tokens of a history as sent: its messages plus what every request carries.
pub fn history_tokens(history: &History, reserved: u64) -> u64 {
    history.tokens_per_message().iter().sum::<u64>() + reserved
}

/// Compact `history` under `budget`, following `rules`.
pub fn compact(history: &History, rules: Rules, budget: &Budget) -> Result<Outcome> {
    compact_window(history, rules, budget, false)
}

/// [`compact`]; with `force`, the window runs whatever the history's tokens (the pipeline's
/// input was over the threshold, and its steps may have brought it under).
pub fn compact_window(history: &History, rules: Rules, budget: &Budget, force: bool) -> Result<Outcome> {
    let tokens_before = history_tokens(history, budget.reserved_tokens);
    let n = history.len();
    let all = vec![true; n];
    let whole = || Repair::run(history, rules, budget.dangling, &all, &[]);
    // Below the threshold the whole history is repaired; that stands unless its stubs push
    // it over the threshold (then compacting the result again would window it: compact now).
    let repaired_whole = (!force && !budget.over(tokens_before, budget.compaction_threshold))
        .then(|| {
            let repair = whole();
            let outcome = repair.outcome(budget, tokens_before, Action::None);
            (repair, outcome)
        })
        .filter(|(_, outcome)| !budget.over(outcome.tokens_after, budget.compaction_threshold));
    let (repair, mut outcome) = match repaired_whole {
        Some(whole) => whole,
        None => {
            let shape = Shape::of(history);
            let most = budget.max_exchanges.map_or(shape.exchanges.len(), |m| m.min(shape.exchanges.len()));
            if most == 0 {
                let repair = whole();
                let outcome = repair.outcome(budget, tokens_before, Action::None);
                (repair, outcome)
            } else {
                let seed = shape.estimated_window(history, budget, most);
                search_window(seed, most, |k| {
                    let (selection, trim) = shape.window(history, k, rules.user_first);
                    let action =
                        if selection.iter().all(|&s| s) && trim.is_empty() { Action::None } else { Action::Compacted };
                    let repair = Repair::run(history, rules, budget.dangling, &selection, &trim);
                    let outcome = repair.outcome(budget, tokens_before, action);
                    let fits = outcome.tokens_after <= budget.target_input_tokens;
                    ((repair, outcome), fits)
                })
            }
        }
    };
    // Which of the output's repairs are defects of the input: those a repair of the whole
    // input makes too. Only computed when the window may have made others.
    outcome.input_defects_repaired = if repair.repaired.is_empty() || repair.whole {
        repair.repaired.len()
    } else {
        let reference = whole();
        let mut defect = vec![false; history.parts.len()];
        reference.repaired.iter().for_each(|&p| defect[p] = true);
        repair.repaired.iter().filter(|&&p| defect[p]).count()
    };
    outcome.pairs_cut_by_window = repair.repaired.len() - outcome.input_defects_repaired;
    check_something_to_send(history, &repair)?;
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

/// A history that ends with a request must still end with one of its requests: when
/// repair removes the whole pending request because its results answer no call, there is
/// nothing left to send, and the caller is told rather than handed a history ending with
/// the model's turn (an assistant prefill, for Anthropic). pydantic-ai keeps its last
/// request, emptied: it never gets here. A pending request removed for being empty (an
/// Anthropic user message without content) is not this case: it had nothing to send.
fn check_something_to_send(history: &History, repair: &Repair<'_>) -> Result<()> {
    let msgs = &history.messages;
    let n = msgs.len();
    let pending = msgs.iter().rposition(|m| m.side == Side::Response).map_or(0, |r| r + 1);
    if pending == n || (pending..n).any(|i| repair.alive_message[i]) {
        return Ok(());
    }
    let parts = &history.parts[msgs[pending].parts.start..msgs[n - 1].parts.end];
    if !parts.iter().any(|p| p.kind.is_result()) {
        return Ok(());
    }
    Err(Error::InvalidMessage {
        index: n - 1,
        reason: "the history ends with this request, but its tool results answer no call in the history, \
                 so nothing is left to send"
            .to_owned(),
    })
}

/// Section 4, step 3: the window of the most exchanges (at most `most`) whose repaired
/// result fits the target, or of one exchange if none fits. `try_k` repairs the window
/// of `k` exchanges and tells whether it fits.
///
/// Found without repairing every window: from `seed` (the estimate of
/// [`Shape::estimated_window`]), galloping up while windows fit (or down while they do
/// not), then bisecting the bracket. More exchanges cost more tokens in practice (the
/// selections are nested), so this finds the largest fitting window; where repair makes
/// a larger window cheaper than a smaller one, the result is still a window that fits
/// whose next larger one does not, the same one the baseline finds. A few repairs of
/// the whole history instead of one per exchange: the 10,000-message benchmark keeps
/// hundreds of exchanges.
pub fn search_window<T>(seed: usize, most: usize, mut try_k: impl FnMut(usize) -> (T, bool)) -> T {
    let mut tried: Vec<(usize, T, bool)> = Vec::new();
    let mut fits = |k: usize, tried: &mut Vec<(usize, T, bool)>| -> bool {
        if let Some(t) = tried.iter().find(|t| t.0 == k) {
            return t.2;
        }
        let (value, ok) = try_k(k);
        tried.push((k, value, ok));
        ok
    };
    let seed = seed.clamp(1, most);
    // Invariant once bracketed: `lo` fits (or is 1), `hi` does not (or is most + 1).
    let (mut lo, mut hi);
    if fits(seed, &mut tried) {
        lo = seed;
        hi = most + 1;
        let mut step = 1;
        while lo < most {
            let next = (lo + step).min(most);
            if fits(next, &mut tried) {
                lo = next;
                step *= 2;
            } else {
                hi = next;
                break;
            }
        }
    } else {
        hi = seed;
        lo = 1;
        let mut step = 1;
        while hi > 1 {
            let next = hi.saturating_sub(step).max(1);
            if fits(next, &mut tried) {
                lo = next;
                break;
            }
            hi = next;
            step *= 2;
        }
        if hi == 1 {
            lo = 1;
            hi = 2;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid, &mut tried) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if !tried.iter().any(|t| t.0 == lo) {
        fits(lo, &mut tried);
    }
    let at = tried.iter().position(|t| t.0 == lo).expect("tried above");
    tried.swap_remove(at).1
}

/// The message ranges of a history's exchanges, oldest first (section 2; the pending
/// request is in none).
pub fn exchange_ranges(history: &History) -> Vec<std::ops::Range<usize>> {
    Shape::of(history).exchanges
}

/// Pinned messages and exchange boundaries of a history (section 2).
struct Shape {
    /// Messages with a system part, ascending.
    system: Vec<usize>,
    /// Messages with a prompt part, ascending; the last one is the current task.
    prompts: Vec<usize>,
    /// Message ranges of the exchanges, oldest first.
    exchanges: Vec<std::ops::Range<usize>>,
}

/// Whether message `i` is made only of results tokensieve synthesized.
fn only_stub_results(history: &History, i: usize) -> bool {
    let parts = &history.parts[history.messages[i].parts.clone()];
    !parts.is_empty() && parts.iter().all(|p| matches!(p.kind, PartKind::StubResult(_)))
}

impl Shape {
    fn of(history: &History) -> Self {
        let msgs = &history.messages;
        let n = msgs.len();
        let kinds = |i: usize| history.parts[msgs[i].parts.clone()].iter().map(|p| p.kind);
        let prompts: Vec<usize> = (0..n).filter(|&i| kinds(i).any(|k| k == PartKind::Prompt)).collect();
        let system: Vec<usize> = (0..n).filter(|&i| kinds(i).any(|k| k == PartKind::System)).collect();
        // An exchange starts at each run of requests after a response, except a run made
        // only of synthesized results: those answer the response before them, and a
        // stub-mode output compacted again must show the exchanges its input had.
        let mut starts = vec![0];
        let mut i = 1;
        while i < n {
            if msgs[i].side == Side::Request && msgs[i - 1].side == Side::Response {
                let end = (i..n).find(|&j| msgs[j].side == Side::Response).unwrap_or(n);
                if !(i..end).all(|j| only_stub_results(history, j)) {
                    starts.push(i);
                }
                i = end;
            } else {
                i += 1;
            }
        }
        // A last run of requests that starts an exchange is the pending request.
        let last = *starts.last().expect("starts at 0");
        let pending = (n > 0 && (last..n).all(|j| msgs[j].side == Side::Request)).then_some(last);
        if pending.is_some() || n == 0 {
            starts.pop();
        }
        let ends = starts.iter().skip(1).copied().chain(std::iter::once(pending.unwrap_or(n)));
        let exchanges = starts.iter().zip(ends).map(|(&s, e)| s..e).collect();
        Shape { system, prompts, exchanges }
    }

    /// The search's starting point: the most exchanges (at most `most`) whose window,
    /// counted before repair as the messages from its first exchange on plus the pinned
    /// messages before it (system messages whole, the current task; not the opener), fits
    /// the target. 1 if none does. One pass over the history.
    fn estimated_window(&self, history: &History, budget: &Budget, most: usize) -> usize {
        let tokens = history.tokens_per_message();
        let n = tokens.len();
        let task = self.prompts.last().copied();
        let pinned = |i: usize| self.system.binary_search(&i).is_ok() || Some(i) == task;
        let pinned_total: u64 = (0..n).filter(|&i| pinned(i)).map(|i| tokens[i]).sum();
        // Walking the window's start back one exchange at a time: the suffix grows, the
        // pinned messages it swallows leave the pinned sum.
        let mut suffix = 0u64;
        let mut pinned_before = pinned_total;
        let mut at = n;
        let mut best = 1;
        for k in 1..=most {
            let from = self.exchanges[self.exchanges.len() - k].start;
            while at > from {
                at -= 1;
                suffix += tokens[at];
                if pinned(at) {
                    pinned_before -= tokens[at];
                }
            }
            if budget.reserved_tokens + suffix + pinned_before <= budget.target_input_tokens {
                best = k;
            } else {
                break;
            }
        }
        best
    }

    /// Section 2: pinned messages, the last `k` exchanges and the pending request. Where
    /// the provider needs a user message first and the window does not start with a
    /// prompt, also the prompt of the turn the window starts in: a window that opens
    /// inside a tool loop would otherwise start with results whose calls are gone, and
    /// removing those would unravel the whole loop.
    ///
    /// Returns the selection and the messages kept for their system parts only: pinned
    /// for a system part but outside the window (neither the current task nor the
    /// window's opener), their prompts go with their exchange.
    fn window(&self, history: &History, k: usize, user_first: bool) -> (Vec<bool>, Vec<usize>) {
        let mut selection = vec![false; history.len()];
        let from = self.exchanges[self.exchanges.len() - k].start;
        selection[from..].iter_mut().for_each(|s| *s = true);
        let task = self.prompts.last().copied();
        let mut opener = None;
        if user_first && self.prompts.binary_search(&from).is_err() {
            opener = self.prompts.iter().rev().find(|&&p| p < from).copied();
        }
        for i in task.into_iter().chain(opener) {
            selection[i] = true;
        }
        let mut trim = Vec::new();
        for &i in &self.system {
            if !selection[i] {
                selection[i] = true;
                trim.push(i);
            }
        }
        (selection, trim)
    }
}

/// The state of one repair: which messages and parts are alive, which calls are stubbed.
struct Repair<'h> {
    history: &'h History,
    rules: Rules,
    dangling: Dangling,
    /// Whether the selection was the whole history with nothing trimmed.
    whole: bool,
    alive_message: Vec<bool>,
    alive_part: Vec<bool>,
    stubbed: Vec<bool>,
    orphans_removed: usize,
    calls_repaired: usize,
    /// The parts removed as orphans or removed or stubbed as unanswered calls.
    repaired: Vec<usize>,
}

impl<'h> Repair<'h> {
    /// Repair the messages of `selection`, the ones of `trim` reduced to their system
    /// parts (and instructions).
    fn run(history: &'h History, rules: Rules, dangling: Dangling, selection: &[bool], trim: &[usize]) -> Self {
        let mut state = Repair {
            history,
            rules,
            dangling,
            whole: trim.is_empty() && selection.iter().all(|&s| s),
            alive_message: selection.to_vec(),
            alive_part: vec![true; history.parts.len()],
            stubbed: vec![false; history.parts.len()],
            orphans_removed: 0,
            calls_repaired: 0,
            repaired: Vec::new(),
        };
        for &i in trim {
            for p in state.parts(i) {
                if !matches!(history.parts[p].kind, PartKind::System | PartKind::Instructions) {
                    state.alive_part[p] = false;
                }
            }
        }
        while state.pass() {}
        state
    }

    fn parts(&self, i: usize) -> std::ops::Range<usize> {
        self.history.messages[i].parts.clone()
    }

    fn alive_parts(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.parts(i).filter(move |&p| self.alive_part[p])
    }

    /// A request whose alive parts are all results (one of a block of tool messages).
    fn only_results(&self, i: usize) -> bool {
        self.history.messages[i].side == Side::Request
            && self.alive_parts(i).all(|p| self.history.parts[p].kind.is_result())
    }

    /// One pass of section 3; returns whether anything changed.
    fn pass(&mut self) -> bool {
        let history = self.history;
        let seq: Vec<usize> = (0..history.len()).filter(|&i| self.alive_message[i]).collect();
        let mut changed = false;

        // 1. Pair each result with a call, or remove it.
        let mut paired = vec![false; history.parts.len()];
        let mut open_calls: FxHashMap<CallId, Vec<usize>> = FxHashMap::default(); // for `anywhere`
        let mut last_response = None; // the nearest alive response before message `j`
        for (pos, &j) in seq.iter().enumerate() {
            for p in self.parts(j) {
                let Some(id) = history.parts[p].kind.result_id() else { continue };
                if !self.alive_part[p] {
                    continue;
                }
                let call = match self.rules.pairing {
                    Pairing::RequestRun => last_response.and_then(|i| self.open_call_in(i, id, &paired)),
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
                        self.repaired.push(p);
                        changed = true;
                    }
                }
            }
            if history.messages[j].side == Side::Response {
                last_response = Some(j);
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
                    self.repaired.push(p);
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
        let owner = before.iter().rev().copied().find(|&k| !self.only_results(k))?;
        (self.history.messages[owner].side == Side::Response).then_some(owner)
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
            match self.rules.stubs {
                StubPlacement::NextRequest => match alive.get(pos + 1) {
                    Some(&j) if history.messages[j].side == Side::Request => {
                        into_next.entry(j).or_default().extend(calls)
                    }
                    _ => new_after.push((i, calls)),
                },
                StubPlacement::AfterToolBlock => {
                    let mut end = pos;
                    while alive.get(end + 1).is_some_and(|&k| self.only_results(k)) {
                        end += 1;
                    }
                    for c in calls {
                        new_after.push((alive[end], vec![c]));
                    }
                }
                StubPlacement::AfterCall => {
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
            tokens += history.overhead(i)
                + kept
                    .iter()
                    .map(|&p| &history.parts[range.start + p])
                    .filter(|p| p.kind != PartKind::Instructions)
                    .map(|p| p.tokens)
                    .sum::<u64>();
            let stubs = into_next.remove(&i).unwrap_or_default();
            tokens += stubs.iter().map(|&c| history.parts[c].stub_tokens).sum::<u64>();
            // Synthesized results go after the message's last result (tool results first).
            let stub_at =
                kept.iter().rposition(|&p| history.parts[range.start + p].kind.is_result()).map_or(0, |q| q + 1);
            let parts = (kept.len() != range.len()).then_some(kept);
            messages.push(OutMessage::Kept { index: i, parts, stubs, stub_at });
            while let Some((_, calls)) = new_after.next_if(|(after, _)| *after == i) {
                tokens += history.message_overhead + calls.iter().map(|&c| history.parts[c].stub_tokens).sum::<u64>();
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
            input_defects_repaired: 0,
            pairs_cut_by_window: 0,
        }
    }
}

/// Exchanges in the output: its runs of response messages, where a request made only of
/// synthesized results does not end a run (as [`Shape::of`] reads it).
fn count_exchanges(history: &History, out: &[OutMessage]) -> usize {
    let mut count = 0;
    let mut in_run = false;
    for m in out {
        match m {
            OutMessage::Kept { index, parts, stubs, .. } => {
                let message = &history.messages[*index];
                if message.side == Side::Response {
                    count += usize::from(!in_run);
                    in_run = true;
                } else {
                    let local = |p: usize| history.parts[message.parts.start + p].kind;
                    let synthesized = match parts {
                        None => only_stub_results(history, *index),
                        Some(kept) => {
                            !(kept.is_empty() && stubs.is_empty())
                                && kept.iter().all(|&p| matches!(local(p), PartKind::StubResult(_)))
                        }
                    };
                    in_run &= synthesized;
                }
            }
            OutMessage::Stub { .. } => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Part;

    #[test]
    fn dropped_indices_are_handed_over_as_runs_that_expand_to_the_same_indices() {
        assert_eq!(index_runs(&[]), vec![]);
        assert_eq!(index_runs(&[1, 2, 3, 5, 8, 9]), vec![(1, 4), (5, 6), (8, 10)]);
        for indices in [vec![0], vec![3, 4, 2, 7], vec![0, 2, 4, 5, 6, 100]] {
            let expanded: Vec<usize> = index_runs(&indices).into_iter().flat_map(|(a, b)| a..b).collect();
            assert_eq!(expanded, indices);
        }
    }

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
            max_exchanges: Some(max_exchanges),
            reserved_tokens: 0,
            dangling: Dangling::Drop,
        }
    }

    /// The rules of the four formats.
    const ANTHROPIC: Rules = Rules::ANTHROPIC;
    const BLOCK: Rules = Rules::OPENAI_CHAT;
    const ANY: Rules = Rules::RESPONSES;
    const PYDANTIC_AI: Rules = Rules::PYDANTIC_AI;
    const ALL: [Rules; 4] = [ANTHROPIC, BLOCK, ANY, PYDANTIC_AI];

    /// A budget that always compacts and keeps `k` exchanges (the target never binds).
    fn window(k: usize) -> Budget {
        Budget { compaction_threshold: 0.0, target_input_tokens: 1000, ..budget(k) }
    }

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
    fn without_a_bound_the_window_keeps_as_many_exchanges_as_fit_the_target() {
        // Issue 11, item 4: 40 exchanges of 3 messages of 10 tokens (14 with overhead).
        let spec = tool_loop(40);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let h = history(&spec, 10);
        for rules in ALL {
            for target in [30, 100, 300, 555, 1000] {
                let b =
                    Budget { max_exchanges: None, target_input_tokens: target, max_input_tokens: 2000, ..budget(1) };
                let o = compact(&h, rules, &b).unwrap();
                // The largest k whose window fits, found by trying them all.
                let fitting = (1..=40)
                    .rev()
                    .find(|&k| {
                        let o = compact(&h, rules, &Budget { max_exchanges: Some(k), ..b }).unwrap();
                        o.tokens_after <= target
                    })
                    .unwrap_or(1);
                let exact = compact(&h, rules, &Budget { max_exchanges: Some(fitting), ..b }).unwrap();
                assert_eq!(o, exact, "{rules:?} target {target}");
                assert!(o.tokens_after <= target || fitting == 1);
            }
        }
    }

    #[test]
    fn the_window_search_finds_the_largest_fitting_k_from_any_seed() {
        for most in 1..=40 {
            for limit in 0..=most + 1 {
                for seed in 0..=most + 2 {
                    let mut calls = 0;
                    let k = search_window(seed, most, |k| {
                        calls += 1;
                        (k, k <= limit)
                    });
                    assert_eq!(k, limit.clamp(1, most), "most {most} limit {limit} seed {seed}");
                    assert!(calls <= 2 * (usize::BITS - most.leading_zeros()) as usize + 2, "{calls}");
                }
            }
        }
    }

    #[test]
    fn a_bound_on_exchanges_still_caps_a_window_the_target_has_room_for() {
        let spec = tool_loop(10);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let h = history(&spec, 1);
        let b = Budget { compaction_threshold: 0.0, target_input_tokens: 1000, ..budget(3) };
        assert_eq!(compact(&h, ANTHROPIC, &b).unwrap().exchanges_kept, 3);
        let o = compact(&h, ANTHROPIC, &Budget { max_exchanges: None, ..b }).unwrap();
        assert_eq!(o.exchanges_kept, 10);
        assert_eq!(o.action, Action::None);
    }

    #[test]
    fn below_the_threshold_a_valid_history_comes_back_whole() {
        let spec = tool_loop(3);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let o = compact(&history(&spec, 1), ANTHROPIC, &budget(4)).unwrap();
        assert_eq!(o.action, Action::None);
        assert_eq!(kept(&o), (0..spec.len()).collect::<Vec<_>>());
        assert!(o.messages.iter().all(|m| matches!(m, OutMessage::Kept { parts: None, .. })));
    }

    #[test]
    fn the_window_keeps_system_prompt_task_and_last_exchanges() {
        let spec = tool_loop(10);
        let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
        let o = compact(&history(&spec, 10), ANTHROPIC, &budget(2)).unwrap();
        assert_eq!(o.action, Action::Compacted);
        // message 0 (system + task), then the last two exchanges: the request of the
        // first of them is the result of a call that was cut away, so it goes, and the
        // exchange then starts with its response.
        assert_eq!(kept(&o), vec![0, 17, 18, 19, 20]);
        assert_eq!(o.orphans_removed, 1);
        assert_eq!(o.exchanges_kept, 2);
        // That orphan is a pair the window cut, not a defect of the input.
        assert_eq!((o.pairs_cut_by_window, o.input_defects_repaired), (1, 0));
    }

    #[test]
    fn a_result_whose_call_is_gone_is_removed_and_a_call_without_result_too() {
        let h = history(&["Q:U", "R:A c1 c2", "Q:r1 r3"], 1);
        let o = compact(&h, ANTHROPIC, &budget(4)).unwrap();
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
    fn a_result_after_a_prompt_pairs_in_pydantic_ai_and_responses_but_not_in_anthropic() {
        // Anthropic merges the two user turns: the result would follow the text.
        let h = history(&["Q:U", "R:c1", "Q:U", "Q:r1"], 1);
        let o = compact(&h, ANTHROPIC, &budget(4)).unwrap();
        assert_eq!(kept(&o), vec![0, 2]);
        // pydantic-ai merges them too, hoisting the result first; `anywhere` accepts it.
        assert_eq!(kept(&compact(&h, PYDANTIC_AI, &budget(4)).unwrap()), vec![0, 1, 2, 3]);
        assert_eq!(kept(&compact(&h, ANY, &budget(4)).unwrap()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn results_of_one_response_split_over_consecutive_requests_stay_with_their_calls() {
        // Issue 8, item 2: the Anthropic reproducer (6 messages in, 6 out).
        let h = history(&["Q:U", "R:c1 c2", "Q:r1", "Q:r2", "R:A", "Q:U"], 1);
        for rules in [ANTHROPIC, PYDANTIC_AI, BLOCK, ANY] {
            for dangling in [Dangling::Drop, Dangling::Stub] {
                let mut b = budget(4);
                b.dangling = dangling;
                let o = compact(&h, rules, &b).unwrap();
                assert_eq!(kept(&o), vec![0, 1, 2, 3, 4, 5], "{rules:?}");
                assert!(o
                    .messages
                    .iter()
                    .all(|m| matches!(m, OutMessage::Kept { parts: None, stubs, .. } if stubs.is_empty())));
                assert_eq!((o.orphans_removed, o.calls_repaired), (0, 0));
            }
        }
        // Anthropic: a result after text in the merged turn is an orphan; pydantic-ai hoists it.
        let h = history(&["Q:U", "R:c1 c2", "Q:r1 U", "Q:r2"], 1);
        let o = compact(&h, ANTHROPIC, &budget(4)).unwrap();
        assert_eq!(kept(&o), vec![0, 1, 2]);
        assert_eq!((o.orphans_removed, o.calls_repaired), (1, 1));
        assert_eq!(kept(&compact(&h, PYDANTIC_AI, &budget(4)).unwrap()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_window_never_cuts_between_results_of_one_run() {
        let h = history(&["Q:U", "R:c1 c2", "Q:r1", "Q:r2", "R:c3", "Q:r3", "R:A", "Q:U"], 10);
        for rules in [ANTHROPIC, PYDANTIC_AI] {
            for k in 1..=4 {
                let out = kept(&compact(&h, rules, &budget(k)).unwrap());
                assert_eq!(out.contains(&2), out.contains(&3), "k={k}: {out:?}");
                assert_eq!(out.contains(&1), out.contains(&2), "k={k}: {out:?}");
            }
        }
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
        assert_eq!(kept(&compact(&h, ANTHROPIC, &budget(4)).unwrap()), vec![1, 2, 3]);
        assert_eq!(kept(&compact(&h, BLOCK, &budget(4)).unwrap()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn removing_a_leading_response_cascades_to_its_results() {
        let h = history(&["Q:S", "R:c1", "Q:r1", "R:A", "Q:U"], 1);
        // c1's message goes first (it leads), then r1 has no call, then the text response leads.
        assert_eq!(kept(&compact(&h, ANTHROPIC, &budget(4)).unwrap()), vec![0, 4]);
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
        let o = compact(&h, ANTHROPIC, &budget(3)).unwrap();
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
        assert_eq!(kept(&compact(&h, ANTHROPIC, &budget(4)).unwrap()), vec![0, 2]);
    }

    #[test]
    fn a_pending_request_of_orphan_results_is_an_error_except_where_the_framework_keeps_it_emptied() {
        // Issue 8, item 5: the output never ends with the model's turn when the input
        // ended with a request (it used to come back as [U, A]).
        let h = history(&["Q:U", "R:A", "Q:r9"], 1);
        assert_eq!(kept(&compact(&h, PYDANTIC_AI, &budget(4)).unwrap()), vec![0, 1, 2]);
        for rules in [ANTHROPIC, BLOCK, ANY] {
            for dangling in [Dangling::Drop, Dangling::Stub] {
                let mut b = budget(4);
                b.dangling = dangling;
                match compact(&h, rules, &b) {
                    Err(Error::InvalidMessage { index: 2, reason }) => {
                        assert!(reason.contains("answer no call"), "{reason}")
                    }
                    other => panic!("{rules:?}: {other:?}"),
                }
            }
        }
        // Compacting or not, a request that survives is enough.
        let h = history(&["Q:U", "R:A", "Q:U", "Q:r9"], 1);
        assert_eq!(kept(&compact(&h, ANTHROPIC, &budget(4)).unwrap()), vec![0, 1, 2]);
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
        let o = compact(&h, ANTHROPIC, &b).unwrap();
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
        match compact(&h, ANTHROPIC, &b) {
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
        let once = compact(&h, ANTHROPIC, &budget(3)).unwrap();
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
        let twice = compact(&again, ANTHROPIC, &budget(3)).unwrap();
        assert_eq!(kept(&twice), (0..again.len()).collect::<Vec<_>>());
        assert_eq!(twice.tokens_after, once.tokens_after);
    }

    /// The output of `o` as a history: kept parts, synthesized results as `StubResult`s.
    fn rebuild(h: &History, o: &Outcome) -> History {
        let mut out = History::default();
        let stub = |c: usize| match h.parts[c].kind {
            PartKind::Call(id) => Part::new(PartKind::StubResult(id), h.parts[c].stub_tokens),
            _ => unreachable!(),
        };
        for m in &o.messages {
            match m {
                OutMessage::Kept { index, parts, stubs, stub_at } => {
                    let msg = &h.messages[*index];
                    out.begin(msg.side);
                    let local: Vec<usize> = parts.clone().unwrap_or_else(|| (0..msg.parts.len()).collect());
                    let mut items: Vec<Part> = local.iter().map(|&p| h.parts[msg.parts.start + p]).collect();
                    let at = (*stub_at).min(items.len());
                    items.splice(at..at, stubs.iter().map(|&c| stub(c)));
                    for mut part in items {
                        part.stub_tokens = 1;
                        out.push(part);
                    }
                }
                OutMessage::Stub { calls, .. } => {
                    out.begin(Side::Request);
                    for &c in calls {
                        out.push(stub(c));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn compacting_a_stub_mode_output_again_changes_nothing() {
        // Issue 8, item 4: the stub for c1 is a new request between two responses; read
        // as the start of an exchange, it made a second pass drop the first exchange.
        let h = history(&["Q:U", "R:c1", "R:A", "Q:U", "R:A", "Q:U"], 10);
        for rules in ALL {
            let b = Budget { dangling: Dangling::Stub, ..window(2) };
            let once = compact(&h, rules, &b).unwrap();
            assert_eq!(once.dropped, Vec::<usize>::new(), "{rules:?}");
            assert_eq!(once.exchanges_kept, 2, "{rules:?}");
            let output = rebuild(&h, &once);
            let twice = compact(&output, rules, &b).unwrap();
            assert_eq!(kept(&twice), (0..output.len()).collect::<Vec<_>>(), "{rules:?}");
            assert!(twice
                .messages
                .iter()
                .all(|m| matches!(m, OutMessage::Kept { parts: None, stubs, .. } if stubs.is_empty())));
            assert_eq!((twice.orphans_removed, twice.calls_repaired, twice.exchanges_kept), (0, 0, 2));
            assert_eq!(twice.tokens_after, once.tokens_after);
        }
    }

    #[test]
    fn a_history_its_stubs_push_over_the_threshold_is_compacted_at_once() {
        // 112 tokens, the threshold at 115: repaired whole, the stub (5 tokens) would put
        // it over, and compacting that output again would window it.
        let h = history(&["Q:U", "R:c1", "R:A", "Q:U", "R:A", "Q:U", "R:A", "Q:U"], 10);
        for rules in ALL {
            let b = Budget { dangling: Dangling::Stub, compaction_threshold: 0.115, ..window(1) };
            let once = compact(&h, rules, &b).unwrap();
            assert_eq!(once.action, Action::Compacted, "{rules:?}");
            assert_eq!(kept(&once), vec![5, 6, 7]);
            let output = rebuild(&h, &once);
            let twice = compact(&output, rules, &b).unwrap();
            assert_eq!((twice.action, twice.tokens_after), (Action::None, once.tokens_after));
            // Without stubs to add, the same history stays whole.
            let o = compact(&h, rules, &Budget { dangling: Dangling::Drop, ..b }).unwrap();
            assert_eq!(o.action, Action::None);
        }
    }

    #[test]
    fn a_system_message_outside_the_window_keeps_only_its_system_parts() {
        // Issue 9, item 1: the first request holds the system prompt and the first
        // prompt; once the window moved on, the prompt goes with its exchange.
        let h = history(&["Q:S U", "R:A", "Q:U", "R:A", "Q:U"], 10);
        let o = compact(&h, PYDANTIC_AI, &window(1)).unwrap();
        assert_eq!(o.messages[0], OutMessage::Kept { index: 0, parts: Some(vec![0]), stubs: vec![], stub_at: 0 });
        assert_eq!(kept(&o), vec![0, 2, 3, 4]);
        assert_eq!(o.dropped, vec![1]);
        // ...unless it is the current task, or the prompt that opens the window.
        let h = history(&["Q:S U", "R:A"], 10);
        assert!(matches!(
            compact(&h, PYDANTIC_AI, &window(1)).unwrap().messages[0],
            OutMessage::Kept { parts: None, .. }
        ));
        let h = history(&["Q:S U", "R:c1", "Q:r1", "R:c2", "Q:r2"], 10);
        let o = compact(&h, PYDANTIC_AI, &window(1)).unwrap();
        assert_eq!(kept(&o), vec![0, 3, 4]);
        assert!(matches!(o.messages[0], OutMessage::Kept { parts: None, .. }));
    }

    #[test]
    fn pairs_cut_by_the_window_are_told_apart_from_defects_of_the_input() {
        // Issue 9, item 10. c1's result and r9 (answering nothing) are defects of the
        // input; the window then cuts the pair c3/r3.
        let h = history(&["Q:U", "R:c1", "Q:U", "R:c3", "Q:r3 r9", "R:A", "Q:U"], 10);
        let o = compact(&h, ANTHROPIC, &budget(4)).unwrap();
        assert_eq!(o.action, Action::None);
        assert_eq!((o.input_defects_repaired, o.pairs_cut_by_window), (2, 0));
        assert_eq!((o.orphans_removed, o.calls_repaired), (1, 1));
        let o = compact(&h, BLOCK, &window(1)).unwrap();
        assert_eq!(kept(&o), vec![5, 6]);
        assert_eq!((o.orphans_removed, o.calls_repaired), (2, 0));
        assert_eq!((o.input_defects_repaired, o.pairs_cut_by_window), (1, 1));
        assert_eq!(o.orphans_removed + o.calls_repaired, o.input_defects_repaired + o.pairs_cut_by_window);
    }
}
