//! Reading the caller's messages into a [`History`], with the GIL held.
//!
//! One walk over the Python objects: attributes and dict keys are looked up with
//! interned names, strings are borrowed (not copied) for counting later without the GIL,
//! and only tool-call ids and non-string values (rendered as JSON text) are copied.
//! What was read before is not read again: a pydantic-ai part (`part_memo.rs`) or a dict
//! or list (`value_memo.rs`) still holding the same objects keeps the tokens it counted.
//! The mapping of each format is documented in `docs/compaction.md`.

use super::{borrow_text, part_memo, type_name, value_memo};
use crate::counting;
use crate::encoding::Encoding;
use crate::error::Error;
use crate::history::{CallId, History, Part, PartKind, Rules, Side, BINARY_PART_TOKENS};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rustc_hash::FxHashMap;

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
    Owned(String),
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        match self {
            Text::Borrowed(s) | Text::Hashed(s, _) => s,
            Text::Owned(s) => s,
        }
    }
}

impl crate::cache::CacheText for Text {
    fn content_hash(&self) -> u128 {
        match self {
            Text::Hashed(_, hash) => *hash,
            _ => xxhash_rust::xxh3::xxh3_128(self.as_ref().as_bytes()),
        }
    }
}

/// Whose tokens a text adds to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Part(usize),
    Stub(usize),
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
    /// Add counted tokens to the parts (or stubs) they belong to.
    pub fn apply_counts(&mut self, counts: &[(Target, i64)]) {
        for &(target, n) in counts {
            match target {
                Target::Part(p) => self.history.parts[p].tokens += n as u64,
                Target::Stub(p) => self.history.parts[p].stub_tokens += n as u64,
            }
        }
    }
}

/// Detect the format of `messages` from the first message that tells. Roles shared by
/// several formats (`system`, `developer`, `user`, `assistant`) do not tell; a history of
/// nothing else is read as OpenAI chat (plain chat messages read alike everywhere).
pub fn detect(py: Python<'_>, messages: &Bound<'_, PyList>) -> PyResult<Format> {
    for (index, message) in messages.iter().enumerate() {
        if let Ok(d) = message.cast::<PyDict>() {
            if d.contains(intern!(py, "type"))? || d.contains(intern!(py, "call_id"))? {
                return Ok(Format::Responses);
            }
            if d.contains(intern!(py, "tool_calls"))? || d.contains(intern!(py, "function_call"))? {
                return Ok(Format::OpenAi);
            }
            if let Some(role) = d.get_item(intern!(py, "role"))? {
                if let Ok(role) = role.cast::<PyString>() {
                    if matches!(role.to_str()?, "tool" | "function") {
                        return Ok(Format::OpenAi);
                    }
                }
            }
            if let Some(content) = d.get_item(intern!(py, "content"))? {
                if let Ok(blocks) = content.cast::<PyList>() {
                    for block in blocks.iter() {
                        let Ok(block) = block.cast::<PyDict>() else { continue };
                        let Some(t) = block.get_item(intern!(py, "type"))? else { continue };
                        let Ok(t) = t.cast::<PyString>() else { continue };
                        match t.to_str()? {
                            "tool_use" | "tool_result" | "thinking" | "redacted_thinking" | "image" | "document" => {
                                return Ok(Format::Anthropic)
                            }
                            "image_url" | "input_audio" | "refusal" => return Ok(Format::OpenAi),
                            "input_text" | "output_text" | "input_image" | "input_file" => {
                                return Ok(Format::Responses)
                            }
                            _ => {}
                        }
                    }
                }
            }
            continue;
        }
        if message.hasattr(intern!(py, "parts"))? && message.hasattr(intern!(py, "kind"))? {
            return Ok(Format::PydanticAi);
        }
        return Err(Error::InvalidMessage {
            index,
            reason: format!("expected a dict or a pydantic-ai ModelMessage, got {}", type_name(&message)),
        }
        .into());
    }
    Ok(Format::OpenAi)
}

struct Reader<'py> {
    py: Python<'py>,
    encoding: &'static Encoding,
    index: usize,
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
        encoding,
        index: 0,
        history: History::default(),
        texts: Vec::new(),
        targets: Vec::new(),
        slots: Vec::new(),
        ids: Vec::new(),
        id_of: FxHashMap::default(),
        legacy_call: None,
        stubs,
        recording: None,
        pending: Vec::new(),
    };
    let n = messages.len();
    r.history.messages.reserve(n);
    r.history.parts.reserve(n * 2);
    r.slots.reserve(n * 2);
    r.texts.reserve(n.min(CHUNK_MESSAGES) * 3);
    r.targets.reserve(n.min(CHUNK_MESSAGES) * 3);
    r.id_of.reserve(n);
    r.ids.reserve(n);
    for (index, message) in messages.iter().enumerate() {
        if index > 0 && index % CHUNK_MESSAGES == 0 {
            let (texts_cap, targets_cap) = (r.texts.capacity(), r.targets.capacity());
            let chunk = (std::mem::take(&mut r.texts), std::mem::take(&mut r.targets));
            // The next chunk will be about as long: spare it the regrowing.
            (r.texts, r.targets) =
                on_chunk(chunk).unwrap_or_else(|| (Vec::with_capacity(texts_cap), Vec::with_capacity(targets_cap)));
        }
        r.index = index;
        match format {
            Format::PydanticAi => r.pydantic_ai(&message)?,
            Format::OpenAi => r.openai(&message)?,
            Format::Responses => r.responses(&message)?,
            Format::Anthropic => r.anthropic(&message)?,
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
    Ok(Read { format, history: r.history, slots: r.slots, ids: r.ids, pending: r.pending })
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

    /// Count a value's JSON text (see `docs/compaction.md`) into `target`.
    fn value(&mut self, target: Target, value: &Bound<'py, PyAny>) -> PyResult<()> {
        if let Ok(string) = value.cast::<PyString>() {
            let s = borrow_text(string.as_any(), || "text".to_owned())?;
            // A result whose text is STUB_TEXT is one tokensieve synthesized.
            if let (Target::Part(p), crate::history::STUB_TEXT) = (target, &*s) {
                if let PartKind::Result(id) = self.history.parts[p].kind {
                    self.history.parts[p].kind = PartKind::StubResult(id);
                }
            }
            let text = if s.len() >= super::memo::MIN_MEMO_BYTES {
                let hash = super::memo::content_hash(string, &s);
                Text::Hashed(s, hash)
            } else {
                Text::Borrowed(s)
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
        json_text(value, &mut out, &mut binary, true)?;
        match trace {
            // Counted now (through the content cache), to be remembered.
            Some(trace) => {
                let tokens = counting::count(self.encoding, &out);
                value_memo::store(value, trace, self.encoding.id(), tokens, binary, out.len());
                self.add_counted(target, tokens as u64, binary);
            }
            None => {
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
        }
    }

    /// A string-valued field, if present and a string; anything else is rendered.
    fn call_id(&mut self, value: Option<Bound<'py, PyAny>>, what: &str) -> PyResult<CallId> {
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

    fn id_texts(&mut self, part: usize, id: CallId, stub_extra: Option<&Bound<'py, PyAny>>) -> PyResult<()> {
        let id_text = self.ids[id as usize].clone_ref(self.py);
        if self.stubs && matches!(self.history.parts[part].kind, PartKind::Call(_)) {
            self.text(Target::Stub(part), Text::Borrowed(id_text.clone_ref(self.py)));
            self.text(Target::Stub(part), Text::Owned(crate::history::STUB_TEXT.to_owned()));
            if let Some(name) = stub_extra {
                self.value(Target::Stub(part), name)?;
            }
        }
        self.text(Target::Part(part), Text::Borrowed(id_text));
        Ok(())
    }

    // ---- pydantic-ai -------------------------------------------------------------

    fn pydantic_ai(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let kind = message
            .getattr(intern!(py, "kind"))
            .map_err(|_| self.invalid(format!("expected a pydantic-ai ModelMessage, got {}", type_name(message))))?;
        let kind = kind.cast_into::<PyString>().or_else(|k| k.into_inner().str())?;
        let side = match kind.to_str()? {
            "request" => Side::Request,
            "response" => Side::Response,
            other => return Err(self.invalid(format!("unknown message kind {other:?}"))),
        };
        self.history.begin(side);
        let parts = message.getattr(intern!(py, "parts"))?;
        each(&parts, |slot, part| self.pydantic_ai_part(&part, slot as u32, side))?;
        // Counted only if this stays the last request (see `PartKind::Instructions`).
        if side == Side::Request {
            if let Ok(instructions) = message.getattr(intern!(py, "instructions")) {
                if !instructions.is_none() {
                    let p = self.part(PartKind::Instructions, NO_SLOT);
                    self.value(Target::Part(p), &instructions)?;
                }
            }
        }
        Ok(())
    }

    fn pydantic_ai_part(&mut self, part: &Bound<'py, PyAny>, slot: u32, side: Side) -> PyResult<()> {
        if let Some(hit) = part_memo::lookup(part.as_ptr() as usize, side, self.encoding.id(), self.stubs) {
            if self.reuse(part, slot, &hit)? {
                return Ok(());
            }
        }
        let before = self.history.parts.len();
        self.recording = Some(Vec::new());
        let read = self.pydantic_ai_part_read(part, slot, side);
        let fetched = self.recording.take();
        read?;
        if let Some(fetched) = fetched {
            if self.history.parts.len() == before + 1 {
                self.remember(part, side, before, fetched);
            }
        }
        Ok(())
    }

    /// Fetch attribute `field` of `part` (None if it has none), noted for the part memo.
    fn fetch(&mut self, part: &Bound<'py, PyAny>, field: u8) -> Option<Bound<'py, PyAny>> {
        let value = part.getattr(field_name(self.py, field)).ok();
        if let Some(recording) = &mut self.recording {
            recording.push((field, value.clone()));
        }
        value
    }

    /// A part met before: if every attribute is still the object it was, push it with
    /// the tokens counted then. False if anything changed (the part is then read anew).
    fn reuse(&mut self, part: &Bound<'py, PyAny>, slot: u32, hit: &part_memo::Hit) -> PyResult<bool> {
        let mut id = None;
        for (field, address, stamp) in hit.fetches() {
            let value = part.getattr(field_name(self.py, field)).ok();
            match (&value, address) {
                (None, 0) => {}
                (Some(v), a) if v.as_ptr() as usize == a => {
                    // A dict or list must still hold what it held when the part was read.
                    if stamp != 0 && value_memo::lookup(v, self.encoding.id()).map(|k| k.stamp) != Some(stamp) {
                        return Ok(false);
                    }
                    if field == TOOL_CALL_ID {
                        id = value;
                    }
                }
                _ => return Ok(false),
            }
        }
        if !hit.still_valid() {
            return Ok(false);
        }
        // Ids are interned by each read: a call's or result's is found anew.
        let kind = match hit.kind {
            PartKind::Call(_) => PartKind::Call(self.call_id(id, "tool call")?),
            PartKind::Result(_) => PartKind::Result(self.call_id(id, "tool return")?),
            PartKind::StubResult(_) => PartKind::StubResult(self.call_id(id, "tool return")?),
            other => other,
        };
        let p = self.part(kind, slot);
        self.history.parts[p].tokens = hit.tokens;
        if self.stubs && matches!(kind, PartKind::Call(_)) {
            self.history.parts[p].stub_tokens = hit.stub_tokens;
        }
        Ok(true)
    }

    /// Note a part just read in full (`self.history.parts[index]`) for the part memo, if
    /// everything it was read from is immutable or a container the value memo holds.
    fn remember(
        &mut self,
        part: &Bound<'py, PyAny>,
        side: Side,
        index: usize,
        fetched: Vec<(u8, Option<Bound<'py, PyAny>>)>,
    ) {
        if fetched.len() > part_memo::MAX_FIELDS {
            return;
        }
        let mut text_bytes = 0;
        let mut stamps = [0u64; part_memo::MAX_FIELDS];
        for ((_, value), stamp) in fetched.iter().zip(&mut stamps) {
            let Some(v) = value else { continue };
            if let Ok(s) = v.cast_exact::<PyString>() {
                text_bytes += s.to_str().map_or(0, str::len);
            } else if value_memo::is_container(v) {
                match value_memo::lookup(v, self.encoding.id()) {
                    Some(known) => *stamp = known.stamp,
                    None => return,
                }
            } else if !value_memo::is_leaf(v) {
                return;
            }
        }
        let kind = self.history.parts[index].kind;
        if kind == PartKind::Instructions {
            return;
        }
        self.pending.push(part_memo::Pending {
            part_index: index,
            part: part.clone().unbind(),
            side,
            kind,
            fetched: fetched.into_iter().zip(stamps).map(|((f, v), stamp)| (f, v.map(Bound::unbind), stamp)).collect(),
            text_bytes,
        });
    }

    fn pydantic_ai_part_read(&mut self, part: &Bound<'py, PyAny>, slot: u32, side: Side) -> PyResult<()> {
        let py = self.py;
        let part_kind = match self.fetch(part, PART_KIND) {
            Some(k) => Some(k.cast_into::<PyString>().or_else(|k| k.into_inner().str())?),
            None => None,
        };
        let part_kind: &str = match &part_kind {
            Some(k) => k.to_str()?,
            None => "",
        };
        let named_retry = part_kind == "retry-prompt" && self.fetch(part, TOOL_NAME).is_some_and(|n| !n.is_none());
        match (part_kind, side) {
            ("system-prompt", _) => {
                let p = self.part(PartKind::System, slot);
                self.content_of(p, part)?;
            }
            ("compaction", Side::Request) => {
                let p = self.part(PartKind::System, slot);
                self.content_of(p, part)?;
            }
            ("user-prompt", _) => {
                // A list prompt counts item by item (text as text, media as a fixed
                // estimate), as chat formats send it, not as one JSON array.
                let p = self.part(PartKind::Prompt, slot);
                let content = match self.fetch(part, CONTENT) {
                    Some(content) => content,
                    None => part.getattr(intern!(py, "content"))?, // raises
                };
                if content.is_instance_of::<PyList>() || content.is_instance_of::<PyTuple>() {
                    each(&content, |_, item| self.value(Target::Part(p), &item))?;
                } else {
                    self.value(Target::Part(p), &content)?;
                }
            }
            ("thinking", Side::Response) => {
                let p = self.part(PartKind::Thinking, slot);
                self.content_of(p, part)?;
            }
            ("tool-return", _) | ("retry-prompt", _) if part_kind == "tool-return" || named_retry => {
                let id = self.fetch(part, TOOL_CALL_ID);
                let id = self.call_id(id, "tool return")?;
                let p = self.part(PartKind::Result(id), slot);
                self.id_texts(p, id, None)?;
                if let Some(name) = self.fetch(part, TOOL_NAME) {
                    self.value(Target::Part(p), &name)?;
                }
                self.content_of(p, part)?;
            }
            ("tool-call", Side::Response) => {
                let id = self.fetch(part, TOOL_CALL_ID);
                let id = self.call_id(id, "tool call")?;
                let p = self.part(PartKind::Call(id), slot);
                let name = self.fetch(part, TOOL_NAME);
                self.id_texts(p, id, name.as_ref())?;
                if let Some(name) = &name {
                    self.value(Target::Part(p), name)?;
                }
                if let Some(args) = self.fetch(part, ARGS) {
                    self.value(Target::Part(p), &args)?;
                }
            }
            ("builtin-tool-call", _) => {
                let p = self.part(PartKind::Content, slot);
                for field in [TOOL_NAME, ARGS] {
                    if let Some(v) = self.fetch(part, field) {
                        self.value(Target::Part(p), &v)?;
                    }
                }
            }
            ("builtin-tool-return", _) => {
                let p = self.part(PartKind::Content, slot);
                if let Some(v) = self.fetch(part, TOOL_NAME) {
                    self.value(Target::Part(p), &v)?;
                }
                self.content_of(p, part)?;
            }
            ("file", _) => {
                let p = self.part(PartKind::Content, slot);
                self.add_fixed(p, BINARY_PART_TOKENS);
            }
            ("speech", _) => {
                let p = self.part(PartKind::Content, slot);
                if let Some(t) = self.fetch(part, TRANSCRIPT) {
                    self.value(Target::Part(p), &t)?;
                }
            }
            // Framework bookkeeping is never sent as such: kept, not counted.
            (
                "tool-availability-delta" | "capability-load-delta" | "model-settings-delta" | "instruction-baseline",
                _,
            ) => {
                self.part(PartKind::Content, slot);
            }
            // text, thinking, retry-feedback, instruction-delta, response compaction, and
            // any part kind this version does not know: counted by their content.
            _ => {
                let p = self.part(PartKind::Content, slot);
                self.content_of(p, part)?;
            }
        }
        Ok(())
    }

    /// Count the `content` attribute of a pydantic-ai part, if it has one.
    fn content_of(&mut self, p: usize, part: &Bound<'py, PyAny>) -> PyResult<()> {
        if let Some(content) = self.fetch(part, CONTENT) {
            self.value(Target::Part(p), &content)?;
        }
        Ok(())
    }

    // ---- OpenAI chat completions -------------------------------------------------

    fn dict<'a>(&self, message: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyDict>> {
        message.cast::<PyDict>().map_err(|_| self.invalid(format!("expected a dict, got {}", type_name(message))))
    }

    fn role(&self, d: &Bound<'py, PyDict>) -> PyResult<String> {
        match d.get_item(intern!(self.py, "role"))? {
            Some(r) if r.is_instance_of::<PyString>() => Ok(r.str()?.to_cow()?.into_owned()),
            Some(r) => Err(self.invalid(format!("role must be a string, got {}", type_name(&r)))),
            None => Err(self.invalid("message without a role")),
        }
    }

    fn openai(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let role = self.role(d)?;
        let content = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none());
        let legacy_before = self.legacy_call.take();
        match role.as_str() {
            "system" | "developer" => {
                self.history.begin(Side::Request);
                let p = self.part(PartKind::System, NO_SLOT);
                if let Some(c) = content {
                    self.openai_content(p, &c)?;
                }
            }
            "user" => {
                self.history.begin(Side::Request);
                let p = self.part(PartKind::Prompt, NO_SLOT);
                if let Some(c) = content {
                    self.openai_content(p, &c)?;
                }
                if let Some(name) = d.get_item(intern!(py, "name"))? {
                    self.value(Target::Part(p), &name)?;
                }
            }
            "assistant" => {
                self.history.begin(Side::Response);
                let refusal = d.get_item(intern!(py, "refusal"))?.filter(|r| !r.is_none());
                let has_text = match &content {
                    Some(c) => !(c.is_instance_of::<PyString>() && c.len()? == 0),
                    None => false,
                };
                if has_text || refusal.is_some() {
                    let p = self.part(PartKind::Content, NO_SLOT);
                    if let Some(c) = &content {
                        self.openai_content(p, c)?;
                    }
                    if let Some(r) = &refusal {
                        self.value(Target::Part(p), r)?;
                    }
                }
                if let Some(calls) = d.get_item(intern!(py, "tool_calls"))?.filter(|c| !c.is_none()) {
                    let sequence = calls.is_instance_of::<PyList>() || calls.is_instance_of::<PyTuple>();
                    if !sequence && calls.try_iter().is_err() {
                        return Err(self.invalid("tool_calls must be a list"));
                    }
                    each(&calls, |slot, call| {
                        let call = call
                            .cast::<PyDict>()
                            .map_err(|_| self.invalid(format!("tool_calls[{slot}] must be a dict")))?;
                        let id =
                            self.call_id(call.get_item(intern!(py, "id"))?, &format!("tool_calls[{slot}]: tool call"))?;
                        let p = self.part(PartKind::Call(id), slot as u32);
                        self.id_texts(p, id, None)?;
                        let body = match call.get_item(intern!(py, "function"))? {
                            Some(f) => Some(f),
                            None => call.get_item(intern!(py, "custom"))?,
                        };
                        if let Some(body) = body.as_ref().and_then(|b| b.cast::<PyDict>().ok()) {
                            for key in [intern!(py, "name"), intern!(py, "arguments"), intern!(py, "input")] {
                                if let Some(v) = body.get_item(key)? {
                                    self.value(Target::Part(p), &v)?;
                                }
                            }
                        }
                        Ok(())
                    })?;
                }
                if let Some(f) = d.get_item(intern!(py, "function_call"))?.filter(|c| !c.is_none()) {
                    let id = self.synthetic_id(format!("\u{0}function_call@{}", self.index))?;
                    let p = self.part(PartKind::Call(id), NO_SLOT);
                    let f = f.cast::<PyDict>().ok();
                    let field = |key| f.map(|f| f.get_item(key)).transpose().map(Option::flatten);
                    let name = field(intern!(py, "name"))?;
                    if self.stubs {
                        // Its stub is a `function` message carrying the function's name.
                        self.text(Target::Stub(p), Text::Owned(crate::history::STUB_TEXT.to_owned()));
                        if let Some(name) = &name {
                            self.value(Target::Stub(p), name)?;
                        }
                    }
                    for v in [name, field(intern!(py, "arguments"))?].into_iter().flatten() {
                        self.value(Target::Part(p), &v)?;
                    }
                    self.legacy_call = Some(id);
                }
            }
            "tool" => {
                self.history.begin(Side::Request);
                let id = self.call_id(d.get_item(intern!(py, "tool_call_id"))?, "tool message")?;
                let p = self.part(PartKind::Result(id), NO_SLOT);
                self.id_texts(p, id, None)?;
                if let Some(c) = content {
                    self.openai_content(p, &c)?;
                }
            }
            "function" => {
                self.history.begin(Side::Request);
                // Answers the function_call of the message just before, by position.
                let id = match legacy_before {
                    Some(id) => id,
                    None => self.synthetic_id(format!("\u{0}function@{}", self.index))?,
                };
                let p = self.part(PartKind::Result(id), NO_SLOT);
                if let Some(name) = d.get_item(intern!(py, "name"))? {
                    self.value(Target::Part(p), &name)?;
                }
                if let Some(c) = content {
                    self.openai_content(p, &c)?;
                }
            }
            other => return Err(self.invalid(format!("unknown role {other:?}"))),
        }
        Ok(())
    }

    /// A chat-completions `content`: a string, or a list of typed parts.
    fn openai_content(&mut self, p: usize, content: &Bound<'py, PyAny>) -> PyResult<()> {
        if content.is_instance_of::<PyString>() {
            return self.value(Target::Part(p), content);
        }
        if let Ok(items) = content.cast::<PyList>() {
            for item in items.iter() {
                self.block_text(p, &item)?;
            }
            return Ok(());
        }
        self.value(Target::Part(p), content)
    }

    /// A typed content item or block: its text, or a fixed estimate for media.
    fn block_text(&mut self, p: usize, item: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let Ok(block) = item.cast::<PyDict>() else {
            return self.value(Target::Part(p), item);
        };
        let kind = block.get_item(intern!(py, "type"))?;
        let kind = match &kind {
            Some(k) => k.str()?.to_cow()?.into_owned(),
            None => String::new(),
        };
        match kind.as_str() {
            "text" | "input_text" | "output_text" | "summary_text" => {
                if let Some(t) = block.get_item(intern!(py, "text"))? {
                    self.value(Target::Part(p), &t)?;
                }
            }
            "refusal" => {
                if let Some(t) = block.get_item(intern!(py, "refusal"))? {
                    self.value(Target::Part(p), &t)?;
                }
            }
            "thinking" => {
                if let Some(t) = block.get_item(intern!(py, "thinking"))? {
                    self.value(Target::Part(p), &t)?;
                }
            }
            "tool_use" | "server_tool_use" => {
                for key in [intern!(py, "name"), intern!(py, "id"), intern!(py, "input")] {
                    if let Some(v) = block.get_item(key)? {
                        self.value(Target::Part(p), &v)?;
                    }
                }
            }
            "tool_result" => {
                if let Some(c) = block.get_item(intern!(py, "content"))? {
                    self.nested_content(p, &c)?;
                }
            }
            _ if kind.ends_with("_tool_result") => {
                if let Some(c) = block.get_item(intern!(py, "content"))? {
                    self.value(Target::Part(p), &c)?;
                }
            }
            _ => self.add_fixed(p, BINARY_PART_TOKENS),
        }
        Ok(())
    }

    /// Content that is a string or a list of blocks (tool results).
    fn nested_content(&mut self, p: usize, content: &Bound<'py, PyAny>) -> PyResult<()> {
        if let Ok(items) = content.cast::<PyList>() {
            if items.iter().all(|i| i.is_instance_of::<PyDict>()) {
                for item in items.iter() {
                    self.block_text(p, &item)?;
                }
                return Ok(());
            }
        }
        self.value(Target::Part(p), content)
    }

    // ---- OpenAI Responses --------------------------------------------------------

    fn responses(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let kind = match d.get_item(intern!(py, "type"))? {
            Some(t) => t.str()?.to_cow()?.into_owned(),
            None => String::new(),
        };
        if kind.is_empty() || kind == "message" {
            let role = self.role(d)?;
            let (side, part_kind) = match role.as_str() {
                "user" => (Side::Request, PartKind::Prompt),
                "system" | "developer" => (Side::Request, PartKind::System),
                "assistant" => (Side::Response, PartKind::Content),
                other => return Err(self.invalid(format!("unknown role {other:?}"))),
            };
            self.history.begin(side);
            let p = self.part(part_kind, NO_SLOT);
            if let Some(c) = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none()) {
                self.openai_content(p, &c)?;
            }
            return Ok(());
        }
        if kind.ends_with("_call_output") {
            self.history.begin(Side::Request);
            let id = self.call_id(d.get_item(intern!(py, "call_id"))?, &format!("{kind} item"))?;
            let p = self.part(PartKind::Result(id), NO_SLOT);
            self.id_texts(p, id, None)?;
            if let Some(o) = d.get_item(intern!(py, "output"))? {
                self.nested_content(p, &o)?;
            }
            return Ok(());
        }
        // Tool calls the caller answers carry a `call_id`; built-in ones (`web_search_call`,
        // ...) have only an `id` and no output item, and are plain content.
        let answered = matches!(
            kind.as_str(),
            "function_call"
                | "custom_tool_call"
                | "computer_call"
                | "local_shell_call"
                | "shell_call"
                | "apply_patch_call"
        );
        if kind.ends_with("_call") && (answered || d.contains(intern!(py, "call_id"))?) {
            self.history.begin(Side::Response);
            let id = self.call_id(d.get_item(intern!(py, "call_id"))?, &format!("{kind} item"))?;
            let p = self.part(PartKind::Call(id), NO_SLOT);
            self.id_texts(p, id, None)?;
            for key in [intern!(py, "name"), intern!(py, "arguments"), intern!(py, "input"), intern!(py, "action")] {
                if let Some(v) = d.get_item(key)? {
                    self.value(Target::Part(p), &v)?;
                }
            }
            return Ok(());
        }
        match kind.as_str() {
            "reasoning" => {
                self.history.begin(Side::Response);
                let p = self.part(PartKind::Content, NO_SLOT);
                if let Some(s) = d.get_item(intern!(py, "summary"))? {
                    self.nested_content(p, &s)?;
                }
                self.history.messages.last_mut().expect("begun").bonded_to_next = true;
            }
            "compaction" => {
                self.history.begin(Side::Request);
                let p = self.part(PartKind::System, NO_SLOT);
                if let Some(s) = d.get_item(intern!(py, "summary"))? {
                    self.value(Target::Part(p), &s)?;
                }
            }
            _ => {
                self.history.begin(Side::Response);
                let p = self.part(PartKind::Content, NO_SLOT);
                if let Some(c) = d.get_item(intern!(py, "content"))? {
                    self.value(Target::Part(p), &c)?;
                }
            }
        }
        Ok(())
    }

    // ---- Anthropic Messages ------------------------------------------------------

    fn anthropic(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let role = self.role(d)?;
        let side = match role.as_str() {
            "user" => Side::Request,
            "assistant" => Side::Response,
            other => {
                return Err(self.invalid(format!(
                    "unknown role {other:?} (Anthropic messages are 'user' or 'assistant'; the system prompt is a separate parameter)"
                )))
            }
        };
        self.history.begin(side);
        let content = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none());
        let Some(content) = content else { return Ok(()) };
        let plain = if side == Side::Request { PartKind::Prompt } else { PartKind::Content };
        let Ok(blocks) = content.cast::<PyList>() else {
            let p = self.part(plain, NO_SLOT);
            return self.value(Target::Part(p), &content);
        };
        for (slot, block) in blocks.iter().enumerate() {
            let slot = slot as u32;
            let Ok(b) = block.cast::<PyDict>() else {
                let p = self.part(plain, slot);
                self.value(Target::Part(p), &block)?;
                continue;
            };
            let kind = match b.get_item(intern!(py, "type"))? {
                Some(t) => t.str()?.to_cow()?.into_owned(),
                None => String::new(),
            };
            match (kind.as_str(), side) {
                ("tool_use", Side::Response) => {
                    let id = self.call_id(b.get_item(intern!(py, "id"))?, "tool_use block")?;
                    let p = self.part(PartKind::Call(id), slot);
                    self.id_texts(p, id, None)?;
                    for key in [intern!(py, "name"), intern!(py, "input")] {
                        if let Some(v) = b.get_item(key)? {
                            self.value(Target::Part(p), &v)?;
                        }
                    }
                }
                ("tool_result", Side::Request) => {
                    let id = self.call_id(b.get_item(intern!(py, "tool_use_id"))?, "tool_result block")?;
                    let p = self.part(PartKind::Result(id), slot);
                    self.id_texts(p, id, None)?;
                    if let Some(c) = b.get_item(intern!(py, "content"))? {
                        self.nested_content(p, &c)?;
                    }
                }
                ("thinking" | "redacted_thinking", Side::Response) => {
                    let p = self.part(PartKind::Thinking, slot);
                    self.block_text(p, &block)?;
                }
                _ => {
                    let p = self.part(plain, slot);
                    self.block_text(p, &block)?;
                }
            }
        }
        Ok(())
    }
}

// The attributes of a pydantic-ai part the reader fetches (see `part_memo.rs`).
const PART_KIND: u8 = 0;
const CONTENT: u8 = 1;
const TOOL_NAME: u8 = 2;
const TOOL_CALL_ID: u8 = 3;
const ARGS: u8 = 4;
const TRANSCRIPT: u8 = 5;

fn field_name(py: Python<'_>, field: u8) -> &Bound<'_, PyString> {
    match field {
        PART_KIND => intern!(py, "part_kind"),
        CONTENT => intern!(py, "content"),
        TOOL_NAME => intern!(py, "tool_name"),
        TOOL_CALL_ID => intern!(py, "tool_call_id"),
        ARGS => intern!(py, "args"),
        _ => intern!(py, "transcript"),
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

const BINARY_KINDS: [&str; 6] = ["binary", "image-url", "audio-url", "video-url", "document-url", "uploaded-file"];

/// Render `value` as the JSON text of `docs/compaction.md`; binary items add to `binary`.
///
/// The exact built-in types (what tool arguments and results are made of) are told apart
/// by comparing type pointers, before the slower checks that also accept subclasses.
fn json_text(value: &Bound<'_, PyAny>, out: &mut String, binary: &mut u64, top: bool) -> PyResult<()> {
    if let Ok(s) = value.cast_exact::<PyString>() {
        return push_str_value(s, out, top);
    }
    if let Ok(d) = value.cast_exact::<PyDict>() {
        return json_dict(d, out, binary);
    }
    if value.is_exact_instance_of::<PyInt>() {
        return push_int(value, out);
    }
    json_text_general(value, out, binary, top)
}

fn json_text_general(value: &Bound<'_, PyAny>, out: &mut String, binary: &mut u64, top: bool) -> PyResult<()> {
    let py = value.py();
    if let Ok(s) = value.cast::<PyString>() {
        push_str_value(s, out, top)?;
    } else if value.is_none() {
        if !top {
            out.push_str("null");
        }
    } else if let Ok(b) = value.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if value.is_instance_of::<PyInt>() {
        push_int(value, out)?;
    } else if value.is_instance_of::<PyFloat>() {
        out.push_str(&value.str()?.to_cow()?);
    } else if let Ok(d) = value.cast::<PyDict>() {
        json_dict(d, out, binary)?;
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        out.push('[');
        each(value, |i, item| {
            if i > 0 {
                out.push(',');
            }
            json_text(&item, out, binary, false)
        })?;
        out.push(']');
    } else if value.is_instance_of::<PyBytes>() || value.is_instance_of::<PyByteArray>() {
        *binary += BINARY_PART_TOKENS;
        if !top {
            out.push_str("null");
        }
    } else {
        // Objects: media items by their kind, text wrappers by their content, the rest as str().
        let kind = value.getattr(intern!(py, "kind")).ok().and_then(|k| k.extract::<String>().ok());
        match kind.as_deref() {
            Some(k) if BINARY_KINDS.contains(&k) => {
                *binary += BINARY_PART_TOKENS;
                if !top {
                    out.push_str("null");
                }
            }
            Some("cache-point") => {
                if !top {
                    out.push_str("null");
                }
            }
            Some("text-content" | "structured-content") => {
                let content = value.getattr(intern!(py, "content"))?;
                json_text(&content, out, binary, top)?;
            }
            _ => {
                let s = value.str()?;
                let s = borrow_text(s.as_any(), || "text".to_owned())?;
                if top {
                    out.push_str(&s);
                } else {
                    json_string(&s, out);
                }
            }
        }
    }
    Ok(())
}

fn json_dict(d: &Bound<'_, PyDict>, out: &mut String, binary: &mut u64) -> PyResult<()> {
    out.push('{');
    for (i, (k, v)) in d.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match k.cast::<PyString>() {
            Ok(key) => push_str_value(key, out, false)?,
            Err(_) => push_str_value(&k.str()?, out, false)?,
        }
        out.push(':');
        json_text(&v, out, binary, false)?;
    }
    out.push('}');
    Ok(())
}

/// An `int` as Python prints it (`bool` is handled before: it is an `int` too).
fn push_int(value: &Bound<'_, PyAny>, out: &mut String) -> PyResult<()> {
    match value.extract::<i64>() {
        Ok(i) => push_decimal(i, out),
        Err(_) => out.push_str(&value.str()?.to_cow()?), // beyond 64 bits
    }
    Ok(())
}

/// `i` in decimal, without the formatting machinery of `write!`.
fn push_decimal(i: i64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// A string inside JSON text (quoted and escaped), or as is at the top level. Read in
/// place: the text is copied into `out` while the string is held, so it is not borrowed.
fn push_str_value(s: &Bound<'_, PyString>, out: &mut String, top: bool) -> PyResult<()> {
    let repaired;
    let text = match s.to_str() {
        Ok(text) => text,
        Err(_) => {
            repaired = borrow_text(s.as_any(), || "text".to_owned())?;
            &*repaired
        }
    };
    if top {
        out.push_str(text);
    } else {
        json_string(text, out);
    }
    Ok(())
}

/// A JSON string literal as Python's `json.dumps(s, ensure_ascii=False)` writes it.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
