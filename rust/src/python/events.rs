//! Glue of the extractive summary (`crate::strategies::summary`): the events of the
//! caller's messages, read with the GIL in any of the four formats, then folded into
//! facts and rendered without it.
//!
//! Reading follows the readers of `read/` (the same format names and detection, the same
//! JSON text of arguments through the one walker of nested values, the same error
//! discipline: whatever a message or the caller's objects do wrong is an
//! `InvalidMessageError` naming the message index and the field), but keeps the text
//! (prompts, assistant text, results, arguments) instead of counting it.

use super::read::walk::{WalkError, Walker};
use super::read::{self, wrap, At, Format};
use super::{borrow_text, history_memo, resolve_encoding, type_name};
use crate::counting;
use crate::encoding::{self, EncodingId};
use crate::error::Error;
use crate::strategies::summary::{self, Event, EventKind, Facts, FileAction, Outcome};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyString, PyTuple};
use std::sync::Arc;

/// An event as Python sees it: (kind, text, tool, arguments, is_error, call_id).
type EventTuple = (&'static str, String, String, String, bool, String);

/// How deep lists of content blocks are followed for their text (tool results nest one).
const MAX_TEXT_DEPTH: usize = 8;

/// The events of a list of messages, one list per message, with each message's digest.
#[pyclass(frozen, name = "SummaryEvents", module = "tokensieve._core")]
pub struct PyEvents {
    messages: Vec<Arc<[Event]>>,
    digests: Vec<u128>,
    /// `chain[n]`: the digest of no facts with the first `n` messages folded in, for the
    /// leading messages whose chain is known (kept with the events on the warm path).
    chain: Vec<u128>,
    format: Format,
}

/// The facts of an extractive summary (see ``tokensieve.summarize``).
#[pyclass(frozen, name = "SummaryFacts", module = "tokensieve._core")]
pub struct PyFacts {
    inner: Facts,
}

/// Read the events of ``messages`` (a list; a tuple is read as one) in ``format``
/// (detected when None). ``proven`` (the pipeline's own call, right after its read of
/// the history): the leading messages that are the very objects this thread's last read
/// proved unchanged (the history memo, see `history_memo.rs`) take the events read from
/// them last time; only the others are read, and their events kept for next time.
#[pyfunction]
#[pyo3(signature = (messages, *, format = None, proven = false))]
pub fn read_events(
    py: Python<'_>,
    messages: &Bound<'_, PyAny>,
    format: Option<&Bound<'_, PyAny>>,
    proven: bool,
) -> PyResult<PyEvents> {
    let (list, format) = super::history_and_format(py, messages, format)?;
    let mut memo = if proven && format == Format::PydanticAi { history_memo::take_proven() } else { None };
    // The leading messages whose events are known: proved by the last read, the same
    // objects, and read by the summary before.
    let mut known = 0;
    let mut same = 0;
    let mut kept = history_memo::KeptEvents::default();
    if let Some((entry, n)) = &mut memo {
        same = (0..(*n).min(entry.len()).min(list.len()))
            .take_while(|&i| {
                // Safety: the GIL is held and the list is read in bounds; no Python code runs.
                let item = unsafe { pyo3::ffi::PyList_GetItem(list.as_ptr(), i as _) } as usize;
                entry.address(i) == Some(item)
            })
            .count();
        if let Some(state) = entry.state_mut() {
            kept = state.events.take().unwrap_or_default();
        }
        kept.messages.truncate(same);
        kept.digests.truncate(same);
        kept.chain.truncate(same + 1);
        known = kept.messages.len();
    }
    let mut reader =
        EventReader { py, format, index: 0, at: At::key(""), walker: Walker::default(), legacy_call: None };
    let mut messages: Vec<Arc<[Event]>> = Vec::with_capacity(list.len());
    messages.extend(kept.messages.iter().cloned());
    let mut read_error = None;
    for (index, message) in list.iter().enumerate().skip(known) {
        reader.index = index;
        reader.at = At::key("");
        reader.walker.enclosing = [message.as_ptr() as usize, 0];
        let mut events = Vec::new();
        let result = match format {
            Format::PydanticAi => reader.pydantic_ai(&message, &mut events),
            Format::OpenAi => reader.openai(&message, &mut events),
            Format::Responses => reader.responses(&message, &mut events),
            Format::Anthropic => reader.anthropic(&message, &mut events),
        };
        if let Err(err) = result {
            read_error = Some(wrap(py, err, index, reader.at));
            break;
        }
        messages.push(events.into());
    }
    let mut digests = kept.digests;
    let mut chain = kept.chain;
    if read_error.is_none() {
        let new: Vec<u128> = py.detach(|| messages[known..].iter().map(|m| summary::message_digest(m)).collect());
        digests.extend(new);
        if memo.is_some() {
            if chain.is_empty() {
                chain.push(0);
            }
            while chain.len() <= digests.len() {
                let d = summary::chain_digest(chain[chain.len() - 1], digests[chain.len() - 1]);
                chain.push(d);
            }
        }
    }
    if let Some((mut entry, _)) = memo {
        // Kept for the leading messages that are the entry's own (it holds them: their
        // addresses stay theirs) and were proved by the read.
        let keep = if read_error.is_none() { same } else { known };
        if let Some(state) = entry.state_mut() {
            state.events = Some(history_memo::KeptEvents {
                messages: messages[..keep].to_vec(),
                digests: digests[..keep].to_vec(),
                chain: chain[..(keep + 1).min(chain.len())].to_vec(),
            });
        }
        history_memo::put_back(entry);
    }
    if let Some(err) = read_error {
        return Err(err);
    }
    Ok(PyEvents { messages, digests, chain, format })
}

#[pymethods]
impl PyEvents {
    /// The format the messages were read as.
    #[getter]
    fn format(&self) -> &'static str {
        self.format.name()
    }

    fn __len__(&self) -> usize {
        self.messages.len()
    }

    /// The digest of facts of digest ``base`` with the first ``n`` messages folded in.
    fn digest(&self, base: u128, n: usize) -> u128 {
        let n = n.min(self.digests.len());
        if base == 0 && n < self.chain.len() {
            return self.chain[n];
        }
        self.digests[..n].iter().fold(base, |d, &m| summary::chain_digest(d, m))
    }

    /// The largest ``n`` such that ``digest(base, n)`` is in ``known`` (a set or dict of
    /// digests), or -1 when none is: the longest prefix already summarized.
    fn longest_known(&self, py: Python<'_>, base: u128, known: &Bound<'_, PyAny>) -> PyResult<i64> {
        let kept = base == 0 && self.chain.len() == self.digests.len() + 1;
        let chain: Vec<u128> = if kept {
            self.chain.clone()
        } else {
            py.detach(|| {
                let mut chain = Vec::with_capacity(self.digests.len() + 1);
                let mut d = base;
                chain.push(d);
                for &m in &self.digests {
                    d = summary::chain_digest(d, m);
                    chain.push(d);
                }
                chain
            })
        };
        let set = known.cast::<PySet>().ok();
        let dict = known.cast::<PyDict>().ok();
        for (n, d) in chain.iter().enumerate().rev() {
            let found = match (&set, &dict) {
                (Some(s), _) => s.contains(*d)?,
                (_, Some(m)) => m.contains(*d)?,
                _ => known.contains(*d)?,
            };
            if found {
                return Ok(n as i64);
            }
        }
        Ok(-1)
    }

    /// The facts of ``facts`` (or of nothing) with messages ``start:`` folded in.
    #[pyo3(signature = (facts = None, start = 0))]
    fn fold(&self, py: Python<'_>, facts: Option<&Bound<'_, PyFacts>>, start: usize) -> PyFacts {
        let base = facts.map(|f| &f.get().inner);
        let messages = &self.messages[start.min(self.messages.len())..];
        let inner = py.detach(|| match base {
            Some(base) => base.merged(messages.iter().map(|m| &m[..])),
            None => summary::summarize(messages.iter().map(|m| &m[..])),
        });
        PyFacts { inner }
    }

    /// A plain transcript of messages ``start:`` for a model to summarize, each event
    /// shortened to ``max_chars`` characters.
    #[pyo3(signature = (max_chars = 2000, start = 0))]
    fn transcript(&self, py: Python<'_>, max_chars: usize, start: usize) -> String {
        let messages = &self.messages[start.min(self.messages.len())..];
        py.detach(|| summary::transcript(messages.iter().map(|m| &m[..]), max_chars.max(16)))
    }

    /// The events of message ``index`` as ``(kind, text, tool, arguments, is_error,
    /// call_id)`` tuples (for tests and debugging).
    fn events(&self, index: usize) -> PyResult<Vec<EventTuple>> {
        let message = self
            .messages
            .get(index)
            .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err("message index out of range"))?;
        Ok(message
            .iter()
            .map(|e| {
                let kind = match e.kind {
                    EventKind::System => "system",
                    EventKind::Prompt => "prompt",
                    EventKind::Text => "text",
                    EventKind::Call => "call",
                    EventKind::Result => "result",
                };
                (kind, e.text.clone(), e.tool.clone(), e.arguments.clone(), e.is_error, e.call_id.clone())
            })
            .collect())
    }
}

#[pymethods]
impl PyFacts {
    /// Facts of nothing (the start of a fold).
    #[new]
    fn new() -> Self {
        PyFacts { inner: Facts::default() }
    }

    /// Messages folded.
    #[getter]
    fn messages(&self) -> u64 {
        self.inner.messages
    }

    /// A content hash of every message folded, in order.
    #[getter]
    fn digest(&self) -> u128 {
        self.inner.digest
    }

    /// The user's first prompt, verbatim.
    #[getter]
    fn task(&self) -> Option<String> {
        self.inner.task.clone()
    }

    /// ``(action, path, moved_to)`` of every file touched, in order of first mention;
    /// action is ``created``, ``modified``, ``written``, ``deleted`` or ``moved``.
    #[getter]
    fn files(&self) -> Vec<(&'static str, String, Option<String>)> {
        self.inner
            .files
            .iter()
            .map(|f| {
                let to = match &f.action {
                    FileAction::MovedTo(to) => Some(to.clone()),
                    _ => None,
                };
                (f.action.name(), f.path.clone(), to)
            })
            .collect()
    }

    /// Every path the files section names (destinations of moves too).
    #[getter]
    fn paths(&self) -> Vec<String> {
        self.inner.paths().into_iter().map(str::to_owned).collect()
    }

    #[getter]
    fn follow_ups(&self) -> Vec<String> {
        self.inner.follow_ups.clone()
    }

    #[getter]
    fn decisions(&self) -> Vec<String> {
        self.inner.decisions.clone()
    }

    /// ``(command, outcome, runs)``; outcome is ``ok``, ``exit N: line`` or ``error: line``.
    #[getter]
    fn commands(&self) -> Vec<(String, String, u32)> {
        self.inner
            .commands
            .iter()
            .map(|c| {
                let outcome = match &c.outcome {
                    Outcome::Ok => "ok".to_owned(),
                    Outcome::Exit(code, line) => format!("exit {code}: {line}"),
                    Outcome::Error(line) => format!("error: {line}"),
                    Outcome::Pending => "no result".to_owned(),
                };
                (c.command.clone(), outcome, c.runs)
            })
            .collect()
    }

    /// ``(what, message)`` of each error with no later success.
    #[getter]
    fn open_errors(&self) -> Vec<(String, String)> {
        self.inner.errors.iter().map(|e| (e.what.clone(), e.message.clone())).collect()
    }

    /// The summary text: ``(text, tokens, omitted)``. With ``max_tokens``, sections are
    /// shortened (lowest priority first, never the task) until the text fits;
    /// ``omitted`` counts the items left out for it, ``tokens`` is exact in ``encoding``.
    #[pyo3(signature = (max_tokens = None, encoding = None))]
    fn render(
        &self,
        py: Python<'_>,
        max_tokens: Option<usize>,
        encoding: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(String, u64, u64)> {
        let enc = match encoding.filter(|e| !e.is_none()) {
            Some(e) => resolve_encoding(py, e)?,
            None => py.detach(|| encoding::encoding(EncodingId::O200kBase)),
        };
        let facts = &self.inner;
        let rendered = py.detach(|| match max_tokens {
            Some(cap) => facts.render(Some((enc, cap))),
            None => {
                let mut r = facts.render(None);
                r.tokens = counting::count(enc, &r.text) as u64;
                r
            }
        });
        Ok((rendered.text, rendered.tokens, rendered.omitted))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyFacts>().is_ok_and(|o| o.get().inner == self.inner)
    }

    /// The facts as bytes (``SummaryFacts.from_bytes`` reads them back).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Facts written by ``to_bytes``.
    ///
    /// Raises:
    ///     ValueError: the bytes are not such facts.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<PyFacts> {
        Facts::from_bytes(data)
            .map(|inner| PyFacts { inner })
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("not the bytes of SummaryFacts.to_bytes()"))
    }

    /// Pickled as its bytes.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let from_bytes = py.get_type::<PyFacts>().getattr("from_bytes")?;
        Ok((from_bytes, (self.to_bytes(py),)))
    }

    fn __hash__(&self) -> u64 {
        self.inner.digest as u64
    }

    fn __repr__(&self) -> String {
        format!(
            "<SummaryFacts of {} messages: {} files, {} commands, {} open errors>",
            self.inner.messages,
            self.inner.files.len(),
            self.inner.commands.len(),
            self.inner.errors.len()
        )
    }
}

struct EventReader<'py> {
    py: Python<'py>,
    format: Format,
    index: usize,
    /// The field being read, named by an error raised meanwhile.
    at: At,
    walker: Walker<'py>,
    /// The id given to the legacy `function_call` of the previous message (OpenAI chat).
    legacy_call: Option<String>,
}

impl<'py> EventReader<'py> {
    fn invalid(&self, reason: impl Into<String>) -> PyErr {
        Error::InvalidMessage { index: self.index, reason: reason.into() }.into()
    }

    /// A value as text: a string as is, anything else as its JSON text.
    fn json(&mut self, value: &Bound<'py, PyAny>, at: At) -> PyResult<String> {
        self.at = at;
        let mut out = String::new();
        let mut binary = 0;
        match self.walker.json_text(value, &mut out, &mut binary, true) {
            Ok(()) => Ok(out),
            Err(WalkError::Circular) => Err(self.invalid(format!("{at}: circular reference"))),
            Err(WalkError::Python(err)) => Err(err),
        }
    }

    /// The text of content: a string, the `text` of blocks (and of the blocks nested in
    /// tool results), JSON text for anything else; media contribute nothing.
    fn text(&mut self, value: &Bound<'py, PyAny>, at: At) -> PyResult<String> {
        let mut out = String::new();
        self.text_into(value, at, &mut out, 0)?;
        Ok(out)
    }

    fn text_into(&mut self, value: &Bound<'py, PyAny>, at: At, out: &mut String, depth: usize) -> PyResult<()> {
        let py = self.py;
        self.at = at;
        if value.is_none() {
            return Ok(());
        }
        if let Ok(s) = value.cast::<PyString>() {
            push_line(out, &borrow_text(s.as_any(), || "text".to_owned())?);
            return Ok(());
        }
        let items: Option<Vec<Bound<'py, PyAny>>> = if let Ok(list) = value.cast::<PyList>() {
            Some(list.iter().collect())
        } else {
            value.cast::<PyTuple>().ok().map(|t| t.iter().collect())
        };
        if let Some(items) = items {
            if depth >= MAX_TEXT_DEPTH {
                return Err(self.invalid(format!("{at}: content nested more than {MAX_TEXT_DEPTH} deep")));
            }
            for item in items {
                self.text_into(&item, at, out, depth + 1)?;
            }
            return Ok(());
        }
        if let Ok(d) = value.cast::<PyDict>() {
            if let Some(text) = d.get_item(intern!(py, "text"))? {
                if text.is_instance_of::<PyString>() {
                    return self.text_into(&text, at, out, depth + 1);
                }
            }
            let kind = match d.get_item(intern!(py, "type"))? {
                Some(t) => t.str()?.to_cow()?.into_owned(),
                None => String::new(),
            };
            if kind == "tool_result" || kind.ends_with("_tool_result") {
                if let Some(content) = d.get_item(intern!(py, "content"))? {
                    return self.text_into(&content, at, out, depth + 1);
                }
            }
            if !kind.is_empty()
                && (kind.contains("image") || kind.contains("audio") || kind.contains("file") || kind == "document")
            {
                return Ok(());
            }
        }
        let json = self.json(value, at)?;
        push_line(out, &json);
        Ok(())
    }

    fn dict<'a>(&self, message: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyDict>> {
        let d = message
            .cast::<PyDict>()
            .map_err(|_| self.invalid(format!("expected a dict, got {}", type_name(message))))?;
        self.check_keys(d)?;
        Ok(d)
    }

    /// A message of another format than the one read (the readers' rule, `read/mod.rs`).
    fn foreign(&self, what: &str, other: Format) -> PyErr {
        self.invalid(read::foreign_message(what, other, self.format))
    }

    fn check_keys(&self, d: &Bound<'py, PyDict>) -> PyResult<()> {
        match read::foreign_keys(self.py, d, self.format)? {
            Some((what, other)) => Err(self.foreign(&what, other)),
            None => Ok(()),
        }
    }

    /// The blocks of a message's content must not tell another format.
    fn check_blocks(&mut self, content: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let Ok(blocks) = content.cast::<PyList>() else { return Ok(()) };
        for (slot, block) in blocks.iter().enumerate() {
            let Ok(b) = block.cast::<PyDict>() else { continue };
            let at = At::item("content", slot as u32, "type");
            let kind = self.string(b, intern!(py, "type"), at)?;
            if !read::block_allowed(self.format, &kind) {
                let other = read::block_format(&kind).unwrap_or(Format::OpenAi);
                return Err(self.foreign(&format!("content[{slot}]: a {kind:?} block"), other));
            }
        }
        Ok(())
    }

    fn role(&mut self, d: &Bound<'py, PyDict>) -> PyResult<String> {
        self.at = At::key("role");
        read::role(d)?.map_err(|reason| self.invalid(reason))
    }

    /// A string field (`str()` of anything else), "" when absent or None.
    fn string(&mut self, d: &Bound<'py, PyDict>, key: &Bound<'py, PyString>, at: At) -> PyResult<String> {
        self.at = at;
        Ok(match d.get_item(key)? {
            Some(v) if !v.is_none() => str_of(&v)?,
            _ => String::new(),
        })
    }

    fn attr(&self, obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
        obj.getattr(name).ok().filter(|v| !v.is_none())
    }

    fn pydantic_ai(&mut self, message: &Bound<'py, PyAny>, events: &mut Vec<Event>) -> PyResult<()> {
        let py = self.py;
        let kind = message
            .getattr(intern!(py, "kind"))
            .map_err(|_| self.invalid(format!("expected a pydantic-ai ModelMessage, got {}", type_name(message))))?;
        let kind = str_of(&kind)?;
        let response = match kind.as_str() {
            "request" => false,
            "response" => true,
            other => return Err(self.invalid(format!("unknown message kind {other:?}"))),
        };
        self.at = At::key("parts");
        let parts = message.getattr(intern!(py, "parts"))?;
        for (slot, part) in parts.try_iter()?.enumerate() {
            let part = part?;
            let slot = slot as u32;
            let at = |key| At::item("parts", slot, key);
            self.at = at("part_kind");
            self.walker.enclosing[1] = part.as_ptr() as usize;
            let part_kind = match self.attr(&part, intern!(py, "part_kind")) {
                Some(k) => str_of(&k)?,
                None => String::new(),
            };
            let content = |me: &mut Self| -> PyResult<String> {
                me.at = at("content");
                match me.attr(&part, intern!(py, "content")) {
                    Some(c) => me.text(&c, at("content")),
                    None => Ok(String::new()),
                }
            };
            let field = |me: &mut Self, name: &Bound<'py, PyString>, label| -> PyResult<String> {
                me.at = at(label);
                match me.attr(&part, name) {
                    Some(v) => str_of(&v),
                    None => Ok(String::new()),
                }
            };
            match (part_kind.as_str(), response) {
                // A compaction part may hold a summary written earlier: read back from it.
                ("system-prompt" | "compaction", _) => events.push(Event::system(content(self)?)),
                ("user-prompt", false) => events.push(Event::prompt(content(self)?)),
                ("tool-return", false) => {
                    let id = field(self, intern!(py, "tool_call_id"), "tool_call_id")?;
                    let tool = field(self, intern!(py, "tool_name"), "tool_name")?;
                    let outcome = field(self, intern!(py, "outcome"), "outcome")?;
                    let failed = matches!(outcome.as_str(), "failed" | "retried");
                    events.push(Event::result(id, content(self)?, failed).with_tool(tool));
                }
                ("retry-prompt", false) => {
                    let tool = field(self, intern!(py, "tool_name"), "tool_name")?;
                    if !tool.is_empty() {
                        let id = field(self, intern!(py, "tool_call_id"), "tool_call_id")?;
                        events.push(Event::result(id, content(self)?, true).with_tool(tool));
                    }
                }
                ("text", true) => events.push(Event::text(content(self)?)),
                ("tool-call", true) => {
                    let id = field(self, intern!(py, "tool_call_id"), "tool_call_id")?;
                    let tool = field(self, intern!(py, "tool_name"), "tool_name")?;
                    let args = match self.attr(&part, intern!(py, "args")) {
                        Some(a) => self.json(&a, at("args"))?,
                        None => String::new(),
                    };
                    events.push(Event::call(id, tool, args));
                }
                _ => {}
            }
        }
        self.walker.enclosing[1] = 0;
        Ok(())
    }

    fn openai(&mut self, message: &Bound<'py, PyAny>, events: &mut Vec<Event>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let role = self.role(d)?;
        self.at = At::key("content");
        let content = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none());
        if let Some(c) = &content {
            self.check_blocks(c)?;
        }
        let legacy_before = self.legacy_call.take();
        let content_text = |me: &mut Self| -> PyResult<String> {
            match &content {
                Some(c) => me.text(c, At::key("content")),
                None => Ok(String::new()),
            }
        };
        match role.as_str() {
            "system" | "developer" => events.push(Event::system(content_text(self)?)),
            "user" => events.push(Event::prompt(content_text(self)?)),
            "assistant" => {
                let text = content_text(self)?;
                if !text.is_empty() {
                    events.push(Event::text(text));
                }
                self.at = At::key("tool_calls");
                if let Some(calls) = d.get_item(intern!(py, "tool_calls"))?.filter(|c| !c.is_none()) {
                    let iter =
                        calls.try_iter().map_err(|_| self.invalid("tool_calls: expected a list of tool calls"))?;
                    for (slot, call) in iter.enumerate() {
                        let call = call?;
                        let at = |key| At::item("tool_calls", slot as u32, key);
                        self.at = at("");
                        let call = call
                            .cast::<PyDict>()
                            .map_err(|_| self.invalid(format!("tool_calls[{slot}] must be a dict")))?;
                        let id = self.string(call, intern!(py, "id"), at("id"))?;
                        self.at = at("function");
                        let body = match call.get_item(intern!(py, "function"))? {
                            Some(f) => Some(f),
                            None => call.get_item(intern!(py, "custom"))?,
                        };
                        let (mut tool, mut args) = (String::new(), String::new());
                        if let Some(body) = body.as_ref().and_then(|b| b.cast::<PyDict>().ok()) {
                            tool = self.string(body, intern!(py, "name"), at("function.name"))?;
                            self.at = at("function.arguments");
                            let value = match body.get_item(intern!(py, "arguments"))? {
                                Some(v) => Some(v),
                                None => body.get_item(intern!(py, "input"))?,
                            };
                            if let Some(v) = value.filter(|v| !v.is_none()) {
                                args = self.json(&v, at("function.arguments"))?;
                            }
                        }
                        events.push(Event::call(id, tool, args));
                    }
                }
                self.at = At::key("function_call");
                if let Some(f) = d.get_item(intern!(py, "function_call"))?.filter(|c| !c.is_none()) {
                    let id = format!("\u{0}function_call@{}", self.index);
                    let (mut tool, mut args) = (String::new(), String::new());
                    if let Ok(f) = f.cast::<PyDict>() {
                        tool = self.string(f, intern!(py, "name"), At::key("function_call.name"))?;
                        if let Some(v) = f.get_item(intern!(py, "arguments"))?.filter(|v| !v.is_none()) {
                            args = self.json(&v, At::key("function_call.arguments"))?;
                        }
                    }
                    events.push(Event::call(id.clone(), tool, args));
                    self.legacy_call = Some(id);
                }
            }
            "tool" => {
                let id = self.string(d, intern!(py, "tool_call_id"), At::key("tool_call_id"))?;
                events.push(Event::result(id, content_text(self)?, false));
            }
            "function" => {
                let tool = self.string(d, intern!(py, "name"), At::key("name"))?;
                let id = legacy_before.unwrap_or_default();
                events.push(Event::result(id, content_text(self)?, false).with_tool(tool));
            }
            other => return Err(self.invalid(format!("unknown role {other:?}"))),
        }
        Ok(())
    }

    fn responses(&mut self, message: &Bound<'py, PyAny>, events: &mut Vec<Event>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let kind = self.string(d, intern!(py, "type"), At::key("type"))?;
        if kind.is_empty() || kind == "message" {
            let role = self.role(d)?;
            self.at = At::key("content");
            let text = match d.get_item(intern!(py, "content"))? {
                Some(c) => {
                    self.check_blocks(&c)?;
                    self.text(&c, At::key("content"))?
                }
                None => String::new(),
            };
            match role.as_str() {
                "user" => events.push(Event::prompt(text)),
                "system" | "developer" => events.push(Event::system(text)),
                "assistant" => events.push(Event::text(text)),
                other => return Err(self.invalid(format!("unknown role {other:?}"))),
            }
            return Ok(());
        }
        if kind.ends_with("_call_output") {
            let id = self.string(d, intern!(py, "call_id"), At::key("call_id"))?;
            self.at = At::key("output");
            let text = match d.get_item(intern!(py, "output"))? {
                Some(o) => self.text(&o, At::key("output"))?,
                None => String::new(),
            };
            events.push(Event::result(id, text, false));
            return Ok(());
        }
        if kind.ends_with("_call") && d.contains(intern!(py, "call_id"))? {
            let id = self.string(d, intern!(py, "call_id"), At::key("call_id"))?;
            let mut tool = self.string(d, intern!(py, "name"), At::key("name"))?;
            if tool.is_empty() {
                tool = kind.trim_end_matches("_call").to_owned();
            }
            let mut args = String::new();
            for (label, key) in [
                ("arguments", intern!(py, "arguments")),
                ("input", intern!(py, "input")),
                ("action", intern!(py, "action")),
                ("operation", intern!(py, "operation")),
            ] {
                self.at = At::key(label);
                if let Some(v) = d.get_item(key)?.filter(|v| !v.is_none()) {
                    args = self.json(&v, At::key(label))?;
                    break;
                }
            }
            events.push(Event::call(id, tool, args));
        }
        if kind == "compaction" {
            // It may hold a summary written earlier: read back from it.
            self.at = At::key("summary");
            if let Some(summary) = d.get_item(intern!(py, "summary"))?.filter(|v| !v.is_none()) {
                let text = self.text(&summary, At::key("summary"))?;
                events.push(Event::system(text));
            }
        }
        // Reasoning and built-in tool items: nothing to summarize.
        Ok(())
    }

    fn anthropic(&mut self, message: &Bound<'py, PyAny>, events: &mut Vec<Event>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let role = self.role(d)?;
        let user = match role.as_str() {
            "user" => true,
            "assistant" => false,
            other => {
                return Err(self.invalid(format!(
                    "unknown role {other:?} (Anthropic messages are 'user' or 'assistant'; the system prompt is a separate parameter)"
                )))
            }
        };
        self.at = At::key("content");
        let Some(content) = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none()) else { return Ok(()) };
        self.check_blocks(&content)?;
        let plain = |text: String| if user { Event::prompt(text) } else { Event::text(text) };
        let Ok(blocks) = content.cast::<PyList>() else {
            events.push(plain(self.text(&content, At::key("content"))?));
            return Ok(());
        };
        let mut texts = String::new();
        for (slot, block) in blocks.iter().enumerate() {
            let at = |key| At::item("content", slot as u32, key);
            self.at = at("");
            let Ok(b) = block.cast::<PyDict>() else {
                let text = self.text(&block, at(""))?;
                push_line(&mut texts, &text);
                continue;
            };
            let kind = self.string(b, intern!(py, "type"), at("type"))?;
            match (kind.as_str(), user) {
                ("text", _) => {
                    let text = self.text(&block, at("text"))?;
                    push_line(&mut texts, &text);
                }
                ("tool_use", false) => {
                    let id = self.string(b, intern!(py, "id"), at("id"))?;
                    let tool = self.string(b, intern!(py, "name"), at("name"))?;
                    self.at = at("input");
                    let args = match b.get_item(intern!(py, "input"))?.filter(|v| !v.is_none()) {
                        Some(v) => self.json(&v, at("input"))?,
                        None => String::new(),
                    };
                    events.push(Event::call(id, tool, args));
                }
                ("tool_result", true) => {
                    let id = self.string(b, intern!(py, "tool_use_id"), at("tool_use_id"))?;
                    self.at = at("is_error");
                    let is_error = match b.get_item(intern!(py, "is_error"))? {
                        Some(v) => v.is_truthy()?,
                        None => false,
                    };
                    self.at = at("content");
                    let text = match b.get_item(intern!(py, "content"))? {
                        Some(c) => self.text(&c, at("content"))?,
                        None => String::new(),
                    };
                    events.push(Event::result(id, text, is_error));
                }
                _ => {}
            }
        }
        if !texts.is_empty() {
            events.push(plain(texts));
        }
        Ok(())
    }
}

/// `value` as a string: itself if it is one, else its `str()`.
fn str_of(value: &Bound<'_, PyAny>) -> PyResult<String> {
    let s = match value.cast::<PyString>() {
        Ok(s) => s.clone(),
        Err(_) => value.str()?,
    };
    Ok(borrow_text(s.as_any(), || "text".to_owned())?.to_string())
}

fn push_line(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(text);
}
