//! A memo of the last histories read, by the identity of their messages: the warm path.
//!
//! An agent sends, on every request, the history it sent last time plus one new
//! exchange. The part memo (`part_memo.rs`) already spares re-counting the old parts,
//! but each one is still looked up, its call id interned and pushed into a new
//! [`History`]. Here the whole read of a previous call is kept: its [`History`] (with
//! the tokens counted), the parts' slots, the call-id table, and, for every message,
//! what it was read from (the message object, its `kind`, its `parts` list and each part
//! in it, each attribute the reader fetched from a part, its `instructions`), with a
//! strong reference to each so that no other object can take their addresses.
//!
//! A later call whose list starts with the same message object checks, message by
//! message, that each is still the very object read then and still holds what it held:
//! the same `kind`, the same `parts` list of the same length holding the same part
//! objects, each part's fetched attributes the same objects (a dict or list among them
//! still holding what it held, by the value memo's stamp, as the part memo checks), the
//! same `instructions`. That is the part memo's own check, lifted to the history, without
//! the per-part lookups, id interning and pushes. The longest prefix that passes is taken
//! as it was read, and only the rest of the list is read (through the part memo as
//! before). An object mutated in place since (an attribute reassigned, the `parts` list
//! appended to or reordered, a part replaced, an argument dict changed) ends the prefix
//! there: it and everything after it is read again.
//!
//! A message or part whose type looks those attributes up in the instance `__dict__`
//! first (the default `__getattribute__`, no data descriptor of those names: pydantic-ai's
//! dataclasses; decided once per type, [`plain_type`]) is checked in its `__dict__`:
//! entries looked up borrowed and compared by address, without fetching the values (a
//! fetch writes each value's reference count: on a long history, a cache miss per value),
//! on borrowed pointers (an object is used only once its address matched a recorded one,
//! which the entry holds). Such a check is bound by cache misses, a chain of them per
//! object (the object, its `__dict__`, the dict's values): the addresses each check will
//! read were noted when the message was read ([`Hints`]) and are prefetched a few
//! messages ahead ([`PREFETCH_AHEAD`]), so the chains of several messages overlap. A hint
//! is only ever prefetched: a stale one (a list grown since) costs a wasted load.
//!
//! Only pydantic-ai histories (attribute objects); dict formats are read as before.
//! Only exact `list`/`tuple` parts and parts whose values the part memo could take are
//! remembered; the first message that is not ends what an entry remembers (the rest is
//! read every time).
//!
//! Thread safety: a call takes its entry out of the memo (under the lock) and puts it
//! back when it is done, so no two calls share one; everything compared against is held
//! by the entry, so Python code run by an attribute fetch cannot free it. Bounded:
//! [`MAX_ENTRIES`] histories and [`MAX_MEMO_BYTES`] of the text they pin (an entry stops
//! growing there); least recently used evicted first. Cleared with the content cache
//! (`clear_cache`), bypassed when it is disabled, reset in a forked child.

use super::instance::{dict_hint, entry, fields_in_dict, instance_dict, list_items_hint, prefetch, prefetch_object};
use super::part_memo;
use super::value_memo;
use crate::encoding::EncodingId;
use crate::fork::Global;
use crate::history::{CallId, History};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyList, PyString, PyTuple};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Histories remembered at once (concurrent conversations of one process).
pub const MAX_ENTRIES: usize = 8;

/// The most text (bytes of the pinned strings, roughly) all entries may keep alive.
pub const MAX_MEMO_BYTES: usize = 64 << 20;

/// What one message was read from.
struct MessageCheck {
    address: usize,
    kind: usize,
    parts_list: usize,
    /// 0: the message had no `instructions` attribute (or is a response).
    instructions: usize,
    request: bool,
    /// This message's parts in [`Entry::parts`]: `first_part..first_part + n_parts`.
    first_part: u32,
    n_parts: u32,
    /// Where this message's references start in [`Entry::held`].
    held_start: u32,
    cost: u32,
    /// Its type's address when `kind`, `parts` (and a request's `instructions`) are plain
    /// entries of its `__dict__` (see [`plain_type`]): checked there; 0: fetched.
    plain_type: usize,
    /// Where its check will read, as found when it was read: prefetched by the check of
    /// an earlier message ([`Entry::prefetch`]), never dereferenced (0: none).
    hints: Hints,
}

/// Addresses a check of an object reads besides the object itself, noted when it was
/// read: its `__dict__`, what a lookup there reads (`instance::dict_hint`), and one more
/// (a message's `parts` item array; a part's first dict or list among its fetched
/// values, and what walking it reads). Only prefetched: a stale one costs a wasted load.
#[derive(Clone, Copy, Default)]
struct Hints {
    dict: usize,
    dict_reads: usize,
    extra: usize,
    extra_reads: usize,
}

/// What one part was read from: its address and the attributes fetched.
struct PartCheck {
    address: usize,
    /// Its type's address when its fetched attributes are plain entries of its
    /// `__dict__` (see [`plain_type`]): checked there, without fetching them; 0: fetched.
    plain_type: usize,
    fetches: part_memo::Fetches,
    /// A tool return's `outcome` (0: it has none; None: not a tool return), which the
    /// pipeline's details read besides what the reader fetched (kept with the entry).
    outcome: Option<usize>,
    hints: Hints,
}

/// The pipeline's details of a read (`details.rs`), kept for the next read: valid for
/// the parts of its first `messages` messages while those are unchanged.
pub struct KeptDetails {
    pub acknowledgements: bool,
    pub messages: usize,
    pub details: crate::strategies::Details,
}

/// The state a read leaves behind, handed to the next read of the same history.
pub struct State {
    pub history: History,
    pub slots: Vec<u32>,
    pub ids: Vec<PyBackedStr>,
    pub id_of: FxHashMap<PyBackedStr, CallId>,
    pub details: Option<KeptDetails>,
    /// The summary's events of the leading messages (`events.rs`), read after the
    /// pipeline's read of this history: valid while those messages are unchanged.
    pub events: Option<KeptEvents>,
}

/// The extractive summary's events of a history's leading messages, one entry per message.
#[derive(Default)]
pub struct KeptEvents {
    pub messages: Vec<std::sync::Arc<[crate::strategies::summary::Event]>>,
    pub digests: Vec<u128>,
    /// `chain[n]`: the digest of no facts with the first `n` messages folded in.
    pub chain: Vec<u128>,
}

/// Gives each entry put back a new number: a proof names the entry as its read left it.
static SERIAL: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The last read of this thread: the serial of the entry it put back and how many of
    /// its leading messages that read proved unchanged (or read and remembered). Taken by
    /// the summary's read of the same request ([`take_proven`]); cleared by every read.
    static PROOF: std::cell::Cell<Option<(u64, usize)>> = const { std::cell::Cell::new(None) };
}

/// Forget this thread's proof (a read starts: whatever it proves replaces it).
pub fn clear_proof() {
    PROOF.with(|p| p.set(None));
}

/// The entry this thread's last read put back, untouched since (no other read took it),
/// with the number of leading messages that read proved; None when there is none. The
/// proof is used up.
pub fn take_proven() -> Option<(Entry, usize)> {
    let (serial, n) = PROOF.with(|p| p.take())?;
    if !enabled() {
        return None;
    }
    with_memo(|m| {
        let at = m.entries.iter().position(|e| e.serial == serial)?;
        Some((m.entries.remove(at), n))
    })
}

/// One remembered history, owned by the call using it while it is out of the memo.
pub struct Entry {
    encoding: EncodingId,
    stubs: bool,
    epoch: u64,
    /// Set when put back (see [`PROOF`]).
    serial: u64,
    messages: Vec<MessageCheck>,
    parts: Vec<PartCheck>,
    held: Vec<Py<PyAny>>,
    cost: usize,
    /// False once a message could not be remembered: later ones are not either.
    open: bool,
    /// The read's state for `messages` (taken by the reader, put back by [`keep`]).
    state: Option<State>,
}

struct Memo {
    /// Most recently used last.
    entries: Vec<Entry>,
}

static MEMO: Global<Mutex<Option<Memo>>> = Global::new(|| Mutex::new(None));
/// Bumped by [`clear`]: an entry taken before a clear is not put back.
static EPOCH: AtomicU64 = AtomicU64::new(0);

fn with_memo<R>(f: impl FnOnce(&mut Memo) -> R) -> R {
    f(MEMO.lock().get_or_insert_with(|| Memo { entries: Vec::new() }))
}

pub(super) fn after_fork_in_child() {
    MEMO.reset_if_held();
    PLAIN_TYPES.reset_if_held();
}

fn enabled() -> bool {
    crate::cache::global().enabled()
}

/// Forget every history (with `clear_cache`).
pub fn clear() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    let old = with_memo(|m| std::mem::take(&mut m.entries));
    drop(old); // references released outside the lock
}

/// A new, empty entry for a read in `encoding` (with stub tokens if `stubs`).
fn fresh(encoding: EncodingId, stubs: bool) -> Entry {
    Entry {
        encoding,
        stubs,
        epoch: EPOCH.load(Ordering::Acquire),
        serial: 0,
        messages: Vec::new(),
        parts: Vec::new(),
        held: Vec::new(),
        cost: 0,
        open: true,
        state: None,
    }
}

/// The entry to read `messages` with: the remembered one sharing the longest run of
/// leading message objects with it (taken out of the memo), or a fresh one. None when
/// the memo is off (the cache is disabled).
pub fn take(messages: &Bound<'_, PyList>, encoding: EncodingId, stubs: bool) -> Option<Entry> {
    if !enabled() || encoding.memo_slot().is_none() {
        return None;
    }
    let n = messages.len();
    let first = if n > 0 { messages.get_item(0).ok().map(|m| m.as_ptr() as usize) } else { None };
    let taken = first.and_then(|first| {
        with_memo(|m| {
            let mut best: Option<(usize, usize)> = None;
            for (at, e) in m.entries.iter().enumerate() {
                if e.encoding != encoding || e.stubs != stubs || e.messages.first().map(|c| c.address) != Some(first) {
                    continue;
                }
                // Safety: the GIL is held (`messages` is bound) and nothing here runs
                // Python code; the list is read in bounds.
                let same = e
                    .messages
                    .iter()
                    .take(n)
                    .enumerate()
                    .take_while(
                        |(i, c)| unsafe { ffi::PyList_GetItem(messages.as_ptr(), *i as _) } as usize == c.address,
                    )
                    .count();
                if best.is_none_or(|(_, b)| same >= b) {
                    best = Some((at, same));
                }
            }
            best.map(|(at, _)| m.entries.remove(at))
        })
    });
    let mut entry = taken.unwrap_or_else(|| fresh(encoding, stubs));
    // A clear from now on (by Python code an attribute fetch runs) keeps it out.
    entry.epoch = EPOCH.load(Ordering::Acquire);
    Some(entry)
}

impl Entry {
    /// How many leading messages of `messages` are still what this entry read; the
    /// entry is cut to them. Runs Python code (attribute fetches): everything compared
    /// against is held by the entry.
    pub fn validate(&mut self, py: Python<'_>, messages: &Bound<'_, PyList>) -> usize {
        let names = Names::new(py);
        let n = self.messages.len();
        for k in 0..PREFETCH_AHEAD.min(n) {
            self.prefetch(k);
        }
        let mut valid = 0;
        for (i, check) in self.messages.iter().enumerate() {
            if i + PREFETCH_AHEAD < n {
                self.prefetch(i + PREFETCH_AHEAD);
            }
            let unchanged = if check.plain_type != 0 {
                self.plain_message_unchanged(py, messages, i, check, &names)
            } else {
                self.message_unchanged(py, messages, i, check)
            };
            if !unchanged {
                break;
            }
            valid += 1;
        }
        self.truncate(valid);
        valid
    }

    /// Ask for the memory the check of message `k` will read (see [`Hints`]).
    #[inline]
    fn prefetch(&self, k: usize) {
        let c = &self.messages[k];
        prefetch_object(c.address);
        prefetch(c.parts_list);
        for hint in [c.hints.dict, c.hints.dict_reads, c.hints.extra] {
            if hint != 0 {
                prefetch(hint);
            }
        }
        let parts = &self.parts[c.first_part as usize..(c.first_part + c.n_parts) as usize];
        for p in parts {
            prefetch_object(p.address);
            let h = &p.hints;
            if h.dict != 0 {
                prefetch(h.dict);
            }
            if h.dict_reads != 0 {
                // A part's values array: its fields may run past one line.
                prefetch(h.dict_reads);
                prefetch(h.dict_reads + 64);
            }
            if h.extra != 0 {
                prefetch(h.extra);
                if h.extra_reads != 0 {
                    prefetch(h.extra_reads);
                }
            }
        }
    }

    /// [`Entry::message_unchanged`] for a message whose type keeps `kind`, `parts` and
    /// `instructions` in its `__dict__` ([`plain_type`]), on borrowed pointers: neither
    /// the message nor its parts nor their values have their reference counts written.
    fn plain_message_unchanged(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyList>,
        i: usize,
        c: &MessageCheck,
        names: &Names,
    ) -> bool {
        // SAFETY: the GIL is held. A borrowed pointer taken from a list or dict is compared
        // with a recorded address before anything else is done with it, and used only when
        // equal: the entry holds a strong reference to every recorded object (`held`), so
        // such a pointer stays valid even if Python code runs meanwhile (creating a
        // `__dict__` may collect garbage; a dict lookup may call a key's `__eq__`) and
        // changes the containers. The lists are read through `PyList_GetItem`, which checks
        // bounds on every call. NULL results have their errors cleared.
        unsafe {
            let message = ffi::PyList_GetItem(messages.as_ptr(), i as ffi::Py_ssize_t);
            if message.is_null() {
                ffi::PyErr_Clear();
                return false;
            }
            if message as usize != c.address || ffi::Py_TYPE(message) as usize != c.plain_type {
                return false;
            }
            let dict = ffi::PyObject_GenericGetDict(message, std::ptr::null_mut());
            if dict.is_null() {
                ffi::PyErr_Clear();
                return false;
            }
            let dict = Bound::from_owned_ptr(py, dict);
            if lookup(&dict, names.kind) != c.kind
                || lookup(&dict, names.parts) != c.parts_list
                || (c.request && lookup(&dict, names.instructions) != c.instructions)
            {
                return false;
            }
            drop(dict);
            // The very list recorded (found in the dict just now): held by the entry.
            let parts = c.parts_list as *mut ffi::PyObject;
            let checks = &self.parts[c.first_part as usize..(c.first_part + c.n_parts) as usize];
            let list = ffi::PyList_CheckExact(parts) != 0;
            if !list && ffi::PyTuple_CheckExact(parts) == 0 {
                return false;
            }
            let len = if list { ffi::PyList_Size(parts) } else { ffi::PyTuple_Size(parts) };
            if len != checks.len() as ffi::Py_ssize_t {
                return false;
            }
            for (j, check) in checks.iter().enumerate() {
                let j = j as ffi::Py_ssize_t;
                let part = if list { ffi::PyList_GetItem(parts, j) } else { ffi::PyTuple_GetItem(parts, j) };
                if part.is_null() {
                    ffi::PyErr_Clear();
                    return false;
                }
                if part as usize != check.address {
                    return false;
                }
                let unchanged = if check.plain_type != 0 {
                    self.plain_part_unchanged(py, part, check, names)
                } else {
                    self.part_unchanged(py, &Bound::from_borrowed_ptr(py, part), check)
                };
                if !unchanged {
                    return false;
                }
            }
            true
        }
    }

    fn message_unchanged(&self, py: Python<'_>, messages: &Bound<'_, PyList>, i: usize, c: &MessageCheck) -> bool {
        let Ok(message) = messages.get_item(i) else { return false };
        if message.as_ptr() as usize != c.address {
            return false;
        }
        let same = |value: PyResult<Bound<'_, PyAny>>, address: usize| match value {
            Ok(v) => v.as_ptr() as usize == address,
            Err(_) => address == 0,
        };
        // (A message of a plain type is checked by `plain_message_unchanged`.)
        if !same(message.getattr(intern!(py, "kind")), c.kind) {
            return false;
        }
        let Ok(parts) = message.getattr(intern!(py, "parts")) else { return false };
        if parts.as_ptr() as usize != c.parts_list {
            return false;
        }
        if c.request && !same(message.getattr(intern!(py, "instructions")), c.instructions) {
            return false;
        }
        let checks = &self.parts[c.first_part as usize..(c.first_part + c.n_parts) as usize];
        let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = parts.cast_exact::<PyList>() {
            if list.len() != checks.len() {
                return false;
            }
            list.iter().collect()
        } else if let Ok(tuple) = parts.cast_exact::<PyTuple>() {
            tuple.iter().collect()
        } else {
            return false;
        };
        if items.len() != checks.len() {
            return false;
        }
        for (part, check) in items.iter().zip(checks) {
            if part.as_ptr() as usize != check.address || !self.part_unchanged(py, part, check) {
                return false;
            }
        }
        true
    }

    fn part_unchanged(&self, py: Python<'_>, part: &Bound<'_, PyAny>, check: &PartCheck) -> bool {
        let fetches = &check.fetches;
        if check.plain_type != 0 {
            return self.plain_part_unchanged(py, part.as_ptr(), check, &Names::new(py));
        }
        if let Some(outcome) = check.outcome {
            if part.getattr(intern!(py, "outcome")).map_or(0, |o| o.as_ptr() as usize) != outcome {
                return false;
            }
        }
        for (field, address, stamp) in fetches.iter() {
            match part.getattr(super::read::field_name(py, field)) {
                Err(_) => {
                    if address != 0 {
                        return false;
                    }
                }
                Ok(v) => {
                    if v.as_ptr() as usize != address {
                        return false;
                    }
                    if stamp != 0 && value_memo::lookup(&v, self.encoding).map(|k| k.stamp) != Some(stamp) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// [`Entry::part_unchanged`] for a part whose attributes are plain `__dict__` entries:
    /// the same type, and each fetched attribute still that very object in its `__dict__`
    /// (looked up there, borrowed: neither the values nor their reference counts are
    /// touched, which on a long history is most of the cost of fetching them). `part` is
    /// the recorded part itself (its address compared already: held by the entry).
    fn plain_part_unchanged(&self, py: Python<'_>, part: *mut ffi::PyObject, check: &PartCheck, names: &Names) -> bool {
        // SAFETY: the GIL is held and `part` is alive (held by the entry);
        // `PyObject_GenericGetDict` returns a new reference (or NULL with an error set,
        // cleared here), released on return; a value looked up is compared with a recorded
        // address and used (its value-memo stamp checked) only when equal, hence held by
        // the entry (a value-memo lookup runs no Python code).
        unsafe {
            if ffi::Py_TYPE(part) as usize != check.plain_type {
                return false;
            }
            let dict = ffi::PyObject_GenericGetDict(part, std::ptr::null_mut());
            if dict.is_null() {
                ffi::PyErr_Clear();
                return false;
            }
            let dict = Bound::from_owned_ptr(py, dict);
            if let Some(outcome) = check.outcome {
                if lookup(&dict, names.outcome) != outcome {
                    return false;
                }
            }
            for (field, address, stamp) in check.fetches.iter() {
                let value = lookup(&dict, names.fields[field as usize]);
                if value == 0 || value != address {
                    return false;
                }
                if stamp != 0 {
                    let value = Bound::from_borrowed_ptr(py, value as *mut ffi::PyObject);
                    if value_memo::lookup(&value, self.encoding).map(|k| k.stamp) != Some(stamp) {
                        return false;
                    }
                }
            }
            true
        }
    }

    /// Keep the first `n` messages only.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.messages.len() {
            return;
        }
        let c = &self.messages[n];
        self.parts.truncate(c.first_part as usize);
        self.held.truncate(c.held_start as usize);
        self.cost = self.messages[..n].iter().map(|c| c.cost as usize).sum();
        self.messages.truncate(n);
        self.open = true;
        if let Some(state) = &mut self.state {
            cut_state(state, n);
        }
    }

    /// The read state of the validated messages, for the reader to go on from.
    pub fn take_state(&mut self) -> Option<State> {
        self.state.take()
    }

    /// The address of remembered message `i`, if any (held by the entry: no other object
    /// can have it).
    pub fn address(&self, i: usize) -> Option<usize> {
        self.messages.get(i).map(|c| c.address)
    }

    /// Messages remembered.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// The read state held (the summary's read keeps its events in it).
    pub fn state_mut(&mut self) -> Option<&mut State> {
        self.state.as_mut()
    }

    /// Whether the next message read may still be remembered.
    pub fn open(&self) -> bool {
        self.open
    }

    /// Remember message `message` just read (its `kind`, `parts` list, `instructions`,
    /// and each part with its fetched attributes). Closes the entry when the message
    /// cannot be remembered or the entry is full.
    pub fn record(&mut self, record: MessageRecord<'_>) {
        if !self.open {
            return;
        }
        let MessageRecord { message, kind, parts_list, instructions, request, parts, ok } = record;
        let exact = parts_list
            .as_ref()
            .is_some_and(|l| l.is_exact_instance_of::<PyList>() || l.is_exact_instance_of::<PyTuple>());
        let instructions_ok = instructions.as_ref().is_none_or(value_memo::is_leaf);
        let kind_ok = kind.is_exact_instance_of::<PyString>();
        let (Some(parts_list), true, true, true) = (parts_list, ok && exact, instructions_ok, kind_ok) else {
            self.open = false;
            return;
        };
        let held_start = self.held.len() as u32;
        let first_part = self.parts.len() as u32;
        let mut cost = 64;
        let check = MessageCheck {
            address: message.as_ptr() as usize,
            kind: kind.as_ptr() as usize,
            parts_list: parts_list.as_ptr() as usize,
            instructions: instructions.as_ref().map_or(0, |v| v.as_ptr() as usize),
            request,
            first_part,
            n_parts: parts.len() as u32,
            held_start,
            cost: 0,
            plain_type: 0,
            hints: Hints { extra: list_items_hint(&parts_list), ..Hints::default() },
        };
        let mut hints = check.hints;
        let plain = plain_type(&message.get_type())
            && instance_dict(&message).is_some_and(|d| {
                hints.dict = d.as_ptr() as usize;
                hints.dict_reads = dict_hint(&d);
                let found = |name: &Bound<'_, PyString>| entry(&d, name);
                found(intern!(message.py(), "kind")) == check.kind
                    && found(intern!(message.py(), "parts")) == check.parts_list
                    && (!request || found(intern!(message.py(), "instructions")) == check.instructions)
            });
        let check =
            MessageCheck { plain_type: if plain { message.get_type().as_ptr() as usize } else { 0 }, hints, ..check };
        self.held.push(message.clone().unbind());
        self.held.push(kind.unbind());
        self.held.push(parts_list.unbind());
        if let Some(i) = instructions {
            cost += text_bytes(&i);
            self.held.push(i.unbind());
        }
        for (part, fetched) in parts {
            if fetched.len() > part_memo::MAX_FIELDS {
                self.held.truncate(held_start as usize);
                self.parts.truncate(first_part as usize);
                self.open = false;
                return;
            }
            let fetches = part_memo::Fetches::new(
                fetched.iter().map(|(f, v, s)| (*f, v.as_ref().map_or(0, |v| v.as_ptr() as usize), *s)),
            );
            let tool_return = fetched.iter().any(|(f, v, _)| {
                *f == 0
                    && v.as_ref().is_some_and(|v| {
                        v.cast::<PyString>().is_ok_and(|k| k.to_str().is_ok_and(|k| k == "tool-return"))
                    })
            });
            let outcome = if tool_return {
                match part.getattr(intern!(part.py(), "outcome")) {
                    Ok(o) => {
                        let address = o.as_ptr() as usize;
                        self.held.push(o.unbind());
                        Some(address)
                    }
                    Err(_) => Some(0),
                }
            } else {
                None
            };
            let mut hints = Hints::default();
            if let Some((_, Some(v), _)) = fetched.iter().find(|(_, v, stamp)| *stamp != 0 && v.is_some()) {
                hints.extra = v.as_ptr() as usize;
                hints.extra_reads = dict_hint(v).max(list_items_hint(v));
            }
            let plain_type =
                if plain_fields(&part, &fetched, outcome, &mut hints) { part.get_type().as_ptr() as usize } else { 0 };
            self.parts.push(PartCheck { address: part.as_ptr() as usize, plain_type, fetches, outcome, hints });
            cost += 64;
            self.held.push(part.unbind());
            for (_, v, _) in fetched {
                if let Some(v) = v {
                    cost += 16 + text_bytes(&v);
                    self.held.push(v.unbind());
                }
            }
        }
        let cost = cost.min(u32::MAX as usize);
        if self.cost + cost > MAX_MEMO_BYTES {
            self.held.truncate(held_start as usize);
            self.parts.truncate(first_part as usize);
            self.open = false;
            return;
        }
        self.cost += cost;
        self.messages.push(MessageCheck { cost: cost as u32, ..check });
    }
}

/// Messages whose memory is asked for ahead of the one checked (see [`Entry::prefetch`]).
const PREFETCH_AHEAD: usize = 3;

/// The attribute names a check looks up, interned, taken once per check.
struct Names {
    fields: [*mut ffi::PyObject; 6],
    outcome: *mut ffi::PyObject,
    kind: *mut ffi::PyObject,
    parts: *mut ffi::PyObject,
    instructions: *mut ffi::PyObject,
}

impl Names {
    fn new(py: Python<'_>) -> Names {
        // The interned strings live as long as the interpreter (`intern!` holds them).
        Names {
            fields: std::array::from_fn(|f| super::read::field_name(py, f as u8).as_ptr()),
            outcome: intern!(py, "outcome").as_ptr(),
            kind: intern!(py, "kind").as_ptr(),
            parts: intern!(py, "parts").as_ptr(),
            instructions: intern!(py, "instructions").as_ptr(),
        }
    }
}

/// The address of `dict[name]`, borrowed (0: absent).
fn lookup(dict: &Bound<'_, PyAny>, name: *mut ffi::PyObject) -> usize {
    // SAFETY: the GIL is held, `dict` is a dict (from `PyObject_GenericGetDict`) and
    // `name` an interned string (`Names`); the borrowed result's address is all that is kept.
    unsafe {
        let found = ffi::PyDict_GetItemWithError(dict.as_ptr(), name);
        if found.is_null() {
            ffi::PyErr_Clear();
        }
        found as usize
    }
}

/// Whether `part`'s fetched attributes are all plain entries of its `__dict__`: present,
/// the very objects found there, and its type ([`plain_type`]) looks attributes up there
/// first. Then a later check may look them up in the `__dict__` directly.
fn plain_fields(part: &Bound<'_, PyAny>, fetched: &[Fetched<'_>], outcome: Option<usize>, hints: &mut Hints) -> bool {
    let py = part.py();
    if fetched.is_empty() || fetched.iter().any(|(_, v, _)| v.is_none()) || !plain_type(&part.get_type()) {
        return false;
    }
    // Safety: as in `plain_part_unchanged`.
    unsafe {
        let dict = ffi::PyObject_GenericGetDict(part.as_ptr(), std::ptr::null_mut());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let dict = Bound::from_owned_ptr(py, dict);
        hints.dict = dict.as_ptr() as usize;
        hints.dict_reads = dict_hint(&dict);
        if let Some(outcome) = outcome {
            let found = ffi::PyDict_GetItemWithError(dict.as_ptr(), intern!(py, "outcome").as_ptr());
            if found.is_null() {
                ffi::PyErr_Clear();
            }
            if found as usize != outcome {
                return false;
            }
        }
        fetched.iter().all(|(field, value, _)| {
            let found = ffi::PyDict_GetItemWithError(dict.as_ptr(), super::read::field_name(py, *field).as_ptr());
            if found.is_null() {
                ffi::PyErr_Clear();
            }
            value.as_ref().is_some_and(|v| v.as_ptr() == found)
        })
    }
}

/// Types whose instances keep the attributes the reader fetches in their `__dict__`,
/// found there by `getattr`: the default `__getattribute__`, and no data descriptor (a
/// property, a slot) of any of those names on the type or its bases, which would take
/// precedence over the `__dict__`. Decided once per type (a class changed afterwards, a
/// property added to it, is not seen). Pydantic-ai's parts are such (dataclasses).
static PLAIN_TYPES: Global<Mutex<Vec<TypeDecision>>> = Global::new(|| Mutex::new(Vec::new()));

/// A type met, held, and whether it is plain.
type TypeDecision = (Py<PyAny>, bool);

fn plain_type(ty: &Bound<'_, pyo3::types::PyType>) -> bool {
    let known = PLAIN_TYPES.lock().iter().find(|(t, _)| t.as_ptr() == ty.as_ptr()).map(|(_, plain)| *plain);
    if let Some(plain) = known {
        return plain;
    }
    let plain = decide_plain(ty).unwrap_or(false);
    let mut table = PLAIN_TYPES.lock();
    if table.len() < 256 && !table.iter().any(|(t, _)| t.as_ptr() == ty.as_ptr()) {
        table.push((ty.clone().into_any().unbind(), plain));
    }
    plain
}

fn decide_plain(ty: &Bound<'_, pyo3::types::PyType>) -> PyResult<bool> {
    let py = ty.py();
    let names = (0..6).map(|field| super::read::field_name(py, field).clone()).chain([
        intern!(py, "outcome").clone(),
        intern!(py, "kind").clone(),
        intern!(py, "parts").clone(),
        intern!(py, "instructions").clone(),
    ]);
    fields_in_dict(ty, names)
}

/// Keep the first `n` messages of a read's state (its call-id table whole: an id no part
/// refers to any more is harmless, and one read again maps to the same number).
fn cut_state(state: &mut State, n: usize) {
    let parts = state.history.messages.get(n).map_or(state.history.parts.len(), |m| m.parts.start);
    state.history.messages.truncate(n);
    state.history.parts.truncate(parts);
    state.slots.truncate(parts);
    if let Some(kept) = &mut state.details {
        kept.messages = kept.messages.min(n);
    }
    if let Some(kept) = &mut state.events {
        kept.messages.truncate(n);
        kept.digests.truncate(n);
        kept.chain.truncate(n + 1);
    }
}

fn text_bytes(v: &Bound<'_, PyAny>) -> usize {
    v.cast_exact::<PyString>().ok().and_then(|s| s.len().ok()).unwrap_or(0)
}

/// An attribute fetched from a part: `(field, value, value-memo stamp)` (see `part_memo.rs`).
pub type Fetched<'py> = (u8, Option<Bound<'py, PyAny>>, u64);

/// What the reader gathered while reading one pydantic-ai message.
pub struct MessageRecord<'py> {
    pub message: Bound<'py, PyAny>,
    pub kind: Bound<'py, PyAny>,
    pub parts_list: Option<Bound<'py, PyAny>>,
    pub instructions: Option<Bound<'py, PyAny>>,
    pub request: bool,
    /// Each part and its fetched attributes.
    pub parts: Vec<(Bound<'py, PyAny>, Vec<Fetched<'py>>)>,
    /// False if a part could not be remembered.
    pub ok: bool,
}

/// Put `entry` back, holding `state` (the read of its messages, counted), unless the
/// memo was cleared or disabled meanwhile. Evicts the least recently used entries over
/// the bounds.
pub fn keep(mut entry: Entry, state: State) {
    if !enabled() || entry.messages.is_empty() || entry.epoch != EPOCH.load(Ordering::Acquire) {
        return;
    }
    // The state may hold messages past the remembered ones (read after the entry closed).
    let mut state = state;
    cut_state(&mut state, entry.messages.len());
    entry.state = Some(state);
    put_back(entry);
}

/// Put back an entry holding its state (see [`keep`]), proving its messages for this
/// thread's next summary read.
pub fn put_back(mut entry: Entry) {
    if !enabled() || entry.messages.is_empty() || entry.epoch != EPOCH.load(Ordering::Acquire) {
        return;
    }
    entry.serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let proof = (entry.serial, entry.messages.len());
    PROOF.with(|p| p.set(Some(proof)));
    let mut evicted = Vec::new();
    with_memo(|m| {
        m.entries.push(entry);
        let mut total: usize = m.entries.iter().map(|e| e.cost).sum();
        while m.entries.len() > MAX_ENTRIES || (total > MAX_MEMO_BYTES && m.entries.len() > 1) {
            let old = m.entries.remove(0);
            total -= old.cost;
            evicted.push(old);
        }
    });
    drop(evicted); // references released outside the lock
}
