//! Reading the caller's messages into a [`History`], with the GIL held.
//!
//! One walk over the Python objects: attributes and dict keys are looked up with
//! interned names, strings are borrowed (not copied) for counting later without the GIL,
//! and only tool-call ids and non-string values (rendered as JSON text) are copied.
//! What was read before is not read again: a pydantic-ai part (`part_memo.rs`) or a dict
//! or list (`value_memo.rs`) still holding the same objects keeps the tokens it counted.
//! The mapping of each format is documented in `docs/compaction.md`.
//!
//! One module per format (`pydantic_ai`, `openai`, `responses`, `anthropic`), the
//! typed content blocks several formats share (`content`), and the one walker of nested
//! values (`walk`: JSON text, iterative, refusing cycles). Whatever a caller's objects do
//! while being read (a `__str__` that raises, a `parts` that is not a list, a cycle), the
//! error is an `InvalidMessageError` naming the message and the field, the original
//! exception chained as its `__cause__`.

mod anthropic;
mod content;
mod openai;
mod pydantic_ai;
mod responses;
pub(super) mod walk;

pub(super) use pydantic_ai::field_name;

use super::{borrow_text, history_memo, part_memo, type_name, value_memo, TokensieveError};
use crate::counting;
use crate::encoding::{Encoding, EncodingId};
use crate::error::Error;
use crate::history::{CallId, History, Part, PartKind, Rules, Side};
use pyo3::exceptions::{PyException, PyMemoryError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rustc_hash::FxHashMap;
use walk::{WalkError, Walker};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    PydanticAi,
    OpenAi,
    Responses,
    Anthropic,
}

impl Format {
    pub fn from_name(name: &str) -> Result<Self, Error> {
        match name {
            "pydantic-ai" | "pydantic_ai" => Ok(Format::PydanticAi),
            "openai" | "chat" => Ok(Format::OpenAi),
            "responses" | "openai-responses" => Ok(Format::Responses),
            "anthropic" => Ok(Format::Anthropic),
            _ => Err(Error::InvalidConfig(format!(
                "unknown format {name:?}; expected 'pydantic-ai', 'openai', 'responses' or 'anthropic'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::PydanticAi => "pydantic-ai",
            Format::OpenAi => "openai",
            Format::Responses => "responses",
            Format::Anthropic => "anthropic",
        }
    }

    pub fn rules(self) -> Rules {
        match self {
            Format::PydanticAi => Rules::PYDANTIC_AI,
            Format::Anthropic => Rules::ANTHROPIC,
            Format::OpenAi => Rules::OPENAI_CHAT,
            Format::Responses => Rules::RESPONSES,
        }
    }
}

/// A piece of text to count once the GIL is released.
pub enum Text {
    Borrowed(PyBackedStr),
    /// A large string whose content hash is already known (see `memo.rs`).
    Hashed(PyBackedStr, u128),
    /// A large string met for the first time: hashed by the thread that counts it (the
    /// hash is kept here), then remembered by [`release`] (see `memo.rs`).
    Large(PyBackedStr, std::sync::OnceLock<u128>),
    Owned(String),
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        match self {
            Text::Borrowed(s) | Text::Hashed(s, _) | Text::Large(s, _) => s,
            Text::Owned(s) => s,
        }
    }
}

impl crate::cache::CacheText for Text {
    fn content_hash(&self) -> u128 {
        match self {
            Text::Hashed(_, hash) => *hash,
            Text::Large(s, hash) => *hash.get_or_init(|| xxhash_rust::xxh3::xxh3_128(s.as_bytes())),
            _ => xxhash_rust::xxh3::xxh3_128(self.as_ref().as_bytes()),
        }
    }
}

/// Whose tokens a text adds to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Part(usize),
    Stub(usize),
    /// A container's JSON text (see `value_memo::Deferred`): its tokens go to the part
    /// and, once counted, to the container's value-memo entry (`Read::values[value]`).
    /// Counted as a group of its own.
    Value {
        part: u32,
        value: u32,
    },
}

/// Hand back a counted chunk, with the GIL held: the large strings hashed while it was
/// counted have their hashes remembered (`memo.rs`), and every text is released. The
/// chunk is left empty, to be filled again.
pub fn release(py: Python<'_>, chunk: &mut Chunk) {
    let mut hashed = Vec::new();
    for text in chunk.0.drain(..) {
        if let Text::Large(s, hash) = text {
            if let Some(&hash) = hash.get() {
                hashed.push((s, hash));
            }
        }
    }
    if !hashed.is_empty() {
        super::memo::remember(py, hashed);
    }
    chunk.1.clear();
}

/// Messages per chunk of texts handed over for counting while reading goes on.
pub const CHUNK_MESSAGES: usize = 256;

/// The texts of a run of messages, each with the part (or stub) it counts for.
pub type Chunk = (Vec<Text>, Vec<Target>);

/// A history read from Python; its texts went to the chunk callback for counting.
pub struct Read {
    pub format: Format,
    pub history: History,
    /// For each part: the index of the Python item it came from in its message's list
    /// (`parts`, `content` blocks or `tool_calls`), or `NO_SLOT`.
    pub slots: Vec<u32>,
    /// Call id strings, by [`CallId`] (borrowed from the caller's objects).
    pub ids: Vec<PyBackedStr>,
    /// Parts read in full, to remember once their tokens are counted.
    pub pending: Vec<part_memo::Pending>,
    /// Call ids to their numbers (kept with the history memo for the next read).
    pub id_of: FxHashMap<PyBackedStr, CallId>,
    /// The history memo's entry this read went on from and extended (see
    /// `history_memo.rs`): given back by [`Read::keep`] once the history is counted.
    pub memo: Option<history_memo::Entry>,
    /// How many leading messages were taken from the history memo as read before.
    pub memo_prefix: usize,
    /// The pipeline's details of the read before (see `details.rs`), kept with the memo.
    pub details: Option<history_memo::KeptDetails>,
    /// The summary's events kept with the history memo's entry (passed on untouched).
    pub events: Option<history_memo::KeptEvents>,
    /// Containers rendered for the first time, for the value memo once counted.
    pub values: Vec<value_memo::Deferred>,
}

pub const NO_SLOT: u32 = u32::MAX;

/// Consecutive texts with the same target, as ranges: each is counted as one group (one
/// cache entry for, say, a tool call's name, id and arguments).
pub fn groups(targets: &[Target]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=targets.len() {
        if i == targets.len() || targets[i] != targets[start] {
            groups.push(start..i);
            start = i;
        }
    }
    groups
}

impl Read {
    /// Hand this read, counted, to the history memo for the next read of the same history.
    pub fn keep(self) {
        if let Some(entry) = self.memo {
            let state = history_memo::State {
                history: self.history,
                slots: self.slots,
                ids: self.ids,
                id_of: self.id_of,
                details: self.details,
                events: self.events,
            };
            history_memo::keep(entry, state);
        }
    }

    /// Add counted tokens to the parts (or stubs) they belong to.
    pub fn apply_counts(&mut self, counts: &[(Target, i64)]) {
        for &(target, n) in counts {
            match target {
                Target::Part(p) => self.history.parts[p].tokens += n as u64,
                Target::Stub(p) => self.history.parts[p].stub_tokens += n as u64,
                Target::Value { part, value } => {
                    self.history.parts[part as usize].tokens += n as u64;
                    self.values[value as usize].tokens = Some(n as u64);
                }
            }
        }
    }

    /// Once every text is counted ([`Read::apply_counts`]): remember the containers and the
    /// parts read in full, for the next read (the containers first: the parts' entries
    /// rely on their stamps).
    pub fn remember(&mut self, encoding: EncodingId, stubs: bool) {
        value_memo::store_deferred(std::mem::take(&mut self.values), encoding);
        let parts = &self.history.parts;
        part_memo::store(
            std::mem::take(&mut self.pending),
            |i| (parts[i].tokens, parts[i].stub_tokens),
            encoding,
            stubs,
        );
    }
}

/// The format a content block's `type` belongs to, when only one format has it. Detection
/// and reading use this one table, so they agree: a block that tells one format is an
/// error in a history of another (`docs/compaction.md`, "Formats").
pub fn block_format(kind: &str) -> Option<Format> {
    match kind {
        "tool_use" | "tool_result" | "thinking" | "redacted_thinking" | "image" | "document" | "server_tool_use"
        | "search_result" => Some(Format::Anthropic),
        k if k.ends_with("_tool_result") => Some(Format::Anthropic),
        "image_url" | "input_audio" | "refusal" => Some(Format::OpenAi),
        "input_text" | "output_text" | "input_image" | "input_file" => Some(Format::Responses),
        _ => None,
    }
}

/// Whether a block of type `kind` may appear in a history of `format`: not when it tells
/// another format (Responses messages share `refusal` and `input_audio` with chat).
pub(super) fn block_allowed(format: Format, kind: &str) -> bool {
    match block_format(kind) {
        None => true,
        Some(f) if f == format => true,
        Some(Format::OpenAi) => format == Format::Responses && matches!(kind, "refusal" | "input_audio"),
        Some(_) => false,
    }
}

/// Detect the format of `messages` from the first message that tells. Roles shared by
/// several formats (`system`, `developer`, `user`, `assistant`) do not tell; a history of
/// nothing else is read as OpenAI chat (plain chat messages read alike everywhere).
pub fn detect(py: Python<'_>, messages: &Bound<'_, PyList>) -> PyResult<Format> {
    for (index, message) in messages.iter().enumerate() {
        match detect_one(py, &message) {
            Ok(Some(format)) => return Ok(format),
            Ok(None) => {}
            Err(err) => return Err(wrap(py, err, index, At::key("detecting the format"))),
        }
        if !message.is_instance_of::<PyDict>() {
            if message.hasattr(intern!(py, "parts")).unwrap_or(false)
                && message.hasattr(intern!(py, "kind")).unwrap_or(false)
            {
                return Ok(Format::PydanticAi);
            }
            return Err(Error::InvalidMessage {
                index,
                reason: format!("expected a dict or a pydantic-ai ModelMessage, got {}", type_name(&message)),
            }
            .into());
        }
    }
    Ok(Format::OpenAi)
}

/// The format one dict message tells, if it tells one.
fn detect_one(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Option<Format>> {
    let Ok(d) = message.cast::<PyDict>() else { return Ok(None) };
    if d.contains(intern!(py, "type"))? || d.contains(intern!(py, "call_id"))? {
        return Ok(Some(Format::Responses));
    }
    if present(d, intern!(py, "tool_calls"))? || present(d, intern!(py, "function_call"))? {
        return Ok(Some(Format::OpenAi));
    }
    if let Some(role) = d.get_item(intern!(py, "role"))? {
        if let Ok(role) = role.cast::<PyString>() {
            if matches!(role.to_str()?, "tool" | "function") {
                return Ok(Some(Format::OpenAi));
            }
        }
    }
    if let Some(content) = d.get_item(intern!(py, "content"))? {
        if let Ok(blocks) = content.cast::<PyList>() {
            for block in blocks.iter() {
                let Ok(block) = block.cast::<PyDict>() else { continue };
                let Some(t) = block.get_item(intern!(py, "type"))? else { continue };
                let Ok(t) = t.cast::<PyString>() else { continue };
                if let Some(format) = block_format(t.to_str()?) {
                    return Ok(Some(format));
                }
            }
        }
    }
    Ok(None)
}

/// What is said of a message of format `other` met in a history of format `read`.
/// A dict message's `role`: `Ok(Err(reason))` when it has none or it is not a string (the
/// caller names the message), `Err` when reading it raised. The readers and the summary's
/// event reader share it.
pub(super) fn role(d: &Bound<'_, PyDict>) -> PyResult<Result<String, String>> {
    Ok(match d.get_item(intern!(d.py(), "role"))? {
        Some(r) if r.is_instance_of::<PyString>() => Ok(r.str()?.to_cow()?.into_owned()),
        Some(r) => Err(format!("role must be a string, got {}", type_name(&r))),
        None => Err("message without a role".to_owned()),
    })
}

pub(super) fn foreign_message(what: &str, other: Format, read: Format) -> String {
    format!(
        "{what} belongs to the {} format, not to this {} history (formats cannot be mixed)",
        other.name(),
        read.name()
    )
}

/// Whether dict message `d` carries the keys of another format than `format`: `type` /
/// `call_id` (Responses items) or `tool_calls` / `function_call` (OpenAI chat). Returns
/// what it carries and that format.
pub(super) fn foreign_keys(
    py: Python<'_>,
    d: &Bound<'_, PyDict>,
    format: Format,
) -> PyResult<Option<(String, Format)>> {
    if format != Format::Responses {
        for key in [intern!(py, "type"), intern!(py, "call_id")] {
            if d.contains(key)? {
                return Ok(Some((format!("a dict with {:?} (a Responses item)", key.to_str()?), Format::Responses)));
            }
        }
    }
    if format != Format::OpenAi {
        for key in [intern!(py, "tool_calls"), intern!(py, "function_call")] {
            if present(d, key)? {
                return Ok(Some((format!("a message with {:?}", key.to_str()?), Format::OpenAi)));
            }
        }
    }
    Ok(None)
}

/// Whether `d` has `key` with a value other than None.
fn present(d: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> PyResult<bool> {
    Ok(d.get_item(key)?.is_some_and(|v| !v.is_none()))
}

/// Where in a message a value was read: `list[slot].key`, or `key` alone.
#[derive(Clone, Copy)]
pub struct At {
    list: &'static str,
    slot: u32,
    key: &'static str,
}

impl At {
    pub const fn key(key: &'static str) -> At {
        At { list: "", slot: 0, key }
    }

    pub const fn item(list: &'static str, slot: u32, key: &'static str) -> At {
        At { list, slot, key }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.list.is_empty(), self.key.is_empty()) {
            (true, _) => f.write_str(self.key),
            (false, true) => write!(f, "{}[{}]", self.list, self.slot),
            (false, false) => write!(f, "{}[{}].{}", self.list, self.slot, self.key),
        }
    }
}

/// An error raised by the caller's objects while message `index` was read (at `at`), as
/// an `InvalidMessageError` with the original chained. tokensieve's own errors, and
/// what is not an `Exception` (KeyboardInterrupt) or is a `MemoryError`, pass unchanged.
pub fn wrap(py: Python<'_>, err: PyErr, index: usize, at: At) -> PyErr {
    if err.is_instance_of::<TokensieveError>(py)
        || !err.is_instance_of::<PyException>(py)
        || err.is_instance_of::<PyMemoryError>(py)
    {
        return err;
    }
    let name = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".to_owned());
    let text = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let reason = if text.is_empty() { format!("{at}: {name}") } else { format!("{at}: {name}: {text}") };
    let wrapped = PyErr::from(Error::InvalidMessage { index, reason });
    wrapped.set_cause(py, Some(err));
    wrapped
}

struct Reader<'py> {
    py: Python<'py>,
    format: Format,
    encoding: &'static Encoding,
    index: usize,
    /// The field being read, named by an error raised meanwhile.
    at: At,
    history: History,
    texts: Vec<Text>,
    targets: Vec<Target>,
    slots: Vec<u32>,
    ids: Vec<PyBackedStr>,
    id_of: FxHashMap<PyBackedStr, CallId>,
    /// The legacy `function_call` of the previous message, if it had one.
    legacy_call: Option<CallId>,
    /// Whether to count what stub results would cost (only when stubs may be made).
    stubs: bool,
    /// The attributes fetched from the part being read in full.
    recording: Option<Vec<(u8, Option<Bound<'py, PyAny>>)>>,
    /// Parts read in full, for the part memo once counted.
    pending: Vec<part_memo::Pending>,
    /// Containers rendered, for the value memo once counted.
    values: Vec<value_memo::Deferred>,
    /// The walker of nested values (its stack is reused from value to value).
    walker: Walker<'py>,
    /// The lists of content blocks being read, outermost first (see `content.rs`).
    blocks: Vec<usize>,
    /// The history memo's entry (pydantic-ai histories), extended as messages are read.
    memo: Option<history_memo::Entry>,
    /// What the message being read was read from, for the history memo.
    record: Option<history_memo::MessageRecord<'py>>,
}

/// Read `messages` as `format`. Every [`CHUNK_MESSAGES`] messages (and at the end) the
/// texts read so far go to `on_chunk`, so they can be counted while reading goes on.
/// `on_chunk` may hand back an emptied chunk to fill next: buffers still in cache.
pub fn read(
    py: Python<'_>,
    messages: &Bound<'_, PyList>,
    format: Format,
    stubs: bool,
    encoding: &'static Encoding,
    on_chunk: &mut dyn FnMut(Chunk) -> Option<Chunk>,
) -> PyResult<Read> {
    let mut r = Reader {
        py,
        format,
        encoding,
        index: 0,
        at: At::key(""),
        history: History {
            message_overhead: encoding.message_overhead(),
            response_overhead: encoding.family().response_overhead(),
            ..History::default()
        },
        texts: Vec::new(),
        targets: Vec::new(),
        slots: Vec::new(),
        ids: Vec::new(),
        id_of: FxHashMap::default(),
        legacy_call: None,
        stubs,
        recording: None,
        pending: Vec::new(),
        values: Vec::new(),
        walker: Walker::default(),
        blocks: Vec::new(),
        memo: None,
        record: None,
    };
    // A history read before: the messages still as they were are taken as read then.
    let mut start = 0;
    let mut details = None;
    let mut events = None;
    history_memo::clear_proof();
    if format == Format::PydanticAi {
        r.memo = history_memo::take(messages, encoding.id(), stubs);
        if let Some(entry) = &mut r.memo {
            let valid = entry.validate(py, messages);
            match entry.take_state() {
                Some(state) if valid > 0 => {
                    r.history = state.history;
                    r.slots = state.slots;
                    r.ids = state.ids;
                    r.id_of = state.id_of;
                    details = state.details;
                    events = state.events;
                    start = valid;
                }
                _ => entry.truncate(0),
            }
        }
    }
    let n = messages.len() - start;
    r.history.messages.reserve(n);
    r.history.parts.reserve(n * 2);
    r.slots.reserve(n * 2);
    r.texts.reserve(n.min(CHUNK_MESSAGES) * 3);
    r.targets.reserve(n.min(CHUNK_MESSAGES) * 3);
    r.id_of.reserve(n);
    r.ids.reserve(n);
    r.pending.reserve(n * 2);
    for (index, message) in messages.iter().enumerate().skip(start) {
        if index > start && index % CHUNK_MESSAGES == 0 {
            let (texts_cap, targets_cap) = (r.texts.capacity(), r.targets.capacity());
            let chunk = (std::mem::take(&mut r.texts), std::mem::take(&mut r.targets));
            // The next chunk will be about as long: spare it the regrowing.
            (r.texts, r.targets) =
                on_chunk(chunk).unwrap_or_else(|| (Vec::with_capacity(texts_cap), Vec::with_capacity(targets_cap)));
        }
        r.index = index;
        r.at = At::key("");
        r.blocks.clear();
        r.walker.enclosing = [message.as_ptr() as usize, 0];
        let result = match format {
            Format::PydanticAi => r.pydantic_ai(&message),
            Format::OpenAi => r.openai(&message),
            Format::Responses => r.responses(&message),
            Format::Anthropic => r.anthropic(&message),
        };
        if let Err(err) = result {
            return Err(wrap(py, err, index, r.at));
        }
    }
    // Responses: a reasoning item is bonded to the response item that follows it.
    if format == Format::Responses {
        let n = r.history.messages.len();
        for i in 0..n.saturating_sub(1) {
            if r.history.messages[i].bonded_to_next && r.history.messages[i + 1].side != Side::Response {
                r.history.messages[i].bonded_to_next = false;
            }
        }
        if let Some(last) = r.history.messages.last_mut() {
            last.bonded_to_next = false;
        }
    }
    on_chunk((r.texts, r.targets));
    Ok(Read {
        format,
        history: r.history,
        slots: r.slots,
        ids: r.ids,
        pending: r.pending,
        values: r.values,
        id_of: r.id_of,
        memo: r.memo,
        memo_prefix: start,
        details,
        events,
    })
}

impl<'py> Reader<'py> {
    fn invalid(&self, reason: impl Into<String>) -> PyErr {
        Error::InvalidMessage { index: self.index, reason: reason.into() }.into()
    }

    fn part(&mut self, kind: PartKind, slot: u32) -> usize {
        self.slots.push(slot);
        self.history.push(Part::new(kind, 0))
    }

    fn add_fixed(&mut self, part: usize, tokens: u64) {
        self.history.parts[part].tokens += tokens;
    }

    fn text(&mut self, target: Target, text: Text) {
        if !text.as_ref().is_empty() {
            self.texts.push(text);
            self.targets.push(target);
        }
    }

    /// Count a value's JSON text (see `docs/compaction.md`) into `target`; `at` names
    /// the field in errors.
    fn value(&mut self, target: Target, value: &Bound<'py, PyAny>, at: At) -> PyResult<()> {
        self.at = at;
        if let Ok(string) = value.cast::<PyString>() {
            let s = borrow_text(string.as_any(), || "text".to_owned())?;
            // A result whose text is STUB_TEXT is one tokensieve synthesized.
            if let (Target::Part(p), crate::history::STUB_TEXT) = (target, &*s) {
                if let PartKind::Result(id) = self.history.parts[p].kind {
                    self.history.parts[p].kind = PartKind::StubResult(id);
                }
            }
            // A large string is hashed once: its hash is remembered by address (`memo.rs`);
            // met for the first time, it is hashed by the thread that counts it.
            let text = if s.len() < super::memo::MIN_MEMO_BYTES {
                Text::Borrowed(s)
            } else if let Some(hash) = super::memo::known_hash(string) {
                Text::Hashed(s, hash)
            } else if s.as_py_str().as_ptr() == string.as_ptr() {
                Text::Large(s, std::sync::OnceLock::new())
            } else {
                Text::Borrowed(s) // repaired (lone surrogates): another object than the caller's
            };
            self.text(target, text);
            return Ok(());
        }
        // Dicts and lists (tool arguments, structured results): unchanged ones are
        // counted from the memo, without rendering or touching their items.
        let trace = if value_memo::is_container(value) {
            if let Some(known) = value_memo::lookup(value, self.encoding.id()) {
                self.add_counted(target, known.tokens as u64, known.binary);
                return Ok(());
            }
            value_memo::record(value)
        } else {
            None
        };
        let mut out = String::with_capacity(64);
        let mut binary = 0;
        match self.walker.json_text(value, &mut out, &mut binary, true) {
            Ok(()) => {}
            Err(WalkError::Circular) => return Err(self.invalid(format!("{at}: circular reference"))),
            Err(WalkError::Python(err)) => return Err(err),
        }
        match (trace, target) {
            // Counted with the other texts, off this thread; remembered once counted.
            (Some(trace), Target::Part(p)) if p <= u32::MAX as usize && self.values.len() < u32::MAX as usize => {
                let value_index = self.values.len() as u32;
                self.values.push(value_memo::defer(value, trace, binary, out.len()));
                self.add_fixed(p, binary);
                self.text(Target::Value { part: p as u32, value: value_index }, Text::Owned(out));
            }
            // Counted now (through the content cache), to be remembered.
            (Some(trace), _) => {
                let tokens = counting::count(self.encoding, &out);
                value_memo::store(value, trace, self.encoding.id(), tokens, binary, out.len());
                self.add_counted(target, tokens as u64, binary);
            }
            (None, _) => {
                if let Target::Part(p) = target {
                    self.add_fixed(p, binary);
                }
                self.text(target, Text::Owned(out));
            }
        }
        Ok(())
    }

    /// Tokens already counted: `text` for the part or its stub, `binary` (media) for the part.
    fn add_counted(&mut self, target: Target, text: u64, binary: u64) {
        match target {
            Target::Part(p) => self.history.parts[p].tokens += text + binary,
            Target::Stub(p) => self.history.parts[p].stub_tokens += text,
            Target::Value { part, .. } => self.history.parts[part as usize].tokens += text + binary,
        }
    }

    /// The value-memo stamp of container `v` read for the part being read: the stamp it
    /// will have if this read rendered it (`values[since..]`), else the memo's.
    fn value_stamp(&self, v: &Bound<'py, PyAny>, since: usize) -> Option<u64> {
        let address = v.as_ptr() as usize;
        match self.values[since.min(self.values.len())..].iter().rev().find(|d| d.address() == address) {
            Some(d) => Some(d.stamp),
            None => value_memo::lookup(v, self.encoding.id()).map(|k| k.stamp),
        }
    }

    /// A call id field (`at`): a string, or anything else as its `str()`.
    fn call_id(&mut self, value: Option<Bound<'py, PyAny>>, what: &str, at: At) -> PyResult<CallId> {
        self.at = at;
        let Some(value) = value.filter(|v| !v.is_none()) else {
            return Err(self.invalid(format!("{what} without an id")));
        };
        let text = match value.cast_into::<PyString>() {
            Ok(s) => s,
            Err(e) => e.into_inner().str()?,
        };
        if let Ok(id) = text.to_str() {
            if id.is_empty() {
                return Err(self.invalid(format!("{what} with an empty id")));
            }
            // Usually the call's id, met before: found without borrowing the string.
            if let Some(&n) = self.id_of.get(id) {
                return Ok(n);
            }
        }
        let id = borrow_text(text.as_any(), || "id".to_owned())?;
        if id.is_empty() {
            return Err(self.invalid(format!("{what} with an empty id")));
        }
        Ok(self.intern_id(id))
    }

    fn intern_id(&mut self, id: PyBackedStr) -> CallId {
        if let Some(&n) = self.id_of.get(&*id) {
            return n;
        }
        let n = self.ids.len() as CallId;
        self.ids.push(id.clone_ref(self.py));
        self.id_of.insert(id, n);
        n
    }

    /// An id made up by the reader (legacy `function_call`s have none).
    fn synthetic_id(&mut self, id: String) -> PyResult<CallId> {
        let id = PyBackedStr::try_from(PyString::new(self.py, &id))?;
        Ok(self.intern_id(id))
    }

    fn id_texts(&mut self, part: usize, id: CallId, stub_extra: Option<(&Bound<'py, PyAny>, At)>) -> PyResult<()> {
        let id_text = self.ids[id as usize].clone_ref(self.py);
        if self.stubs && matches!(self.history.parts[part].kind, PartKind::Call(_)) {
            self.text(Target::Stub(part), Text::Borrowed(id_text.clone_ref(self.py)));
            self.text(Target::Stub(part), Text::Owned(crate::history::STUB_TEXT.to_owned()));
            if let Some((name, at)) = stub_extra {
                self.value(Target::Stub(part), name, at)?;
            }
        }
        self.text(Target::Part(part), Text::Borrowed(id_text));
        Ok(())
    }

    fn dict<'a>(&self, message: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyDict>> {
        message.cast::<PyDict>().map_err(|_| self.invalid(format!("expected a dict, got {}", type_name(message))))
    }

    fn role(&mut self, d: &Bound<'py, PyDict>) -> PyResult<String> {
        self.at = At::key("role");
        role(d)?.map_err(|reason| self.invalid(reason))
    }

    /// The `type` of a dict (a message item or a content block) as a string, "" if none.
    fn type_of(&mut self, d: &Bound<'py, PyDict>, at: At) -> PyResult<String> {
        self.at = at;
        // `"type": None` is no type, as an absent key is (what a model's dump with
        // `exclude_none=False` writes), not a type named "None".
        Ok(match d.get_item(intern!(self.py, "type"))?.filter(|t| !t.is_none()) {
            Some(t) => t.str()?.to_cow()?.into_owned(),
            None => String::new(),
        })
    }

    /// A message that belongs to another format than the one read (detected or named).
    fn foreign(&self, what: &str, other: Format) -> PyErr {
        self.invalid(foreign_message(what, other, self.format))
    }

    /// A dict message that carries the keys of another format (see [`foreign_keys`]).
    fn check_keys(&self, d: &Bound<'py, PyDict>) -> PyResult<()> {
        match foreign_keys(self.py, d, self.format)? {
            Some((what, other)) => Err(self.foreign(&what, other)),
            None => Ok(()),
        }
    }
}

/// Call `f` on each item of `items`. Lists and tuples are read in place: a generic
/// iterator is a garbage-collected object, and making one per message would run the
/// cyclic collector over the caller's heap several times per history.
fn each<'py>(items: &Bound<'py, PyAny>, mut f: impl FnMut(usize, Bound<'py, PyAny>) -> PyResult<()>) -> PyResult<()> {
    if let Ok(list) = items.cast::<PyList>() {
        return list.iter().enumerate().try_for_each(|(i, item)| f(i, item));
    }
    if let Ok(tuple) = items.cast::<PyTuple>() {
        return tuple.iter().enumerate().try_for_each(|(i, item)| f(i, item));
    }
    for (i, item) in items.try_iter()?.enumerate() {
        f(i, item?)?;
    }
    Ok(())
}
