//! pydantic-ai `ModelMessage` objects (`format="pydantic-ai"`), with the part memo.

use super::{each, history_memo, part_memo, type_name, value_memo, At, Reader, Target, NO_SLOT};
use crate::history::{PartKind, Side, BINARY_PART_TOKENS};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

impl<'py> Reader<'py> {
    pub(super) fn pydantic_ai(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let kind_value = message
            .getattr(intern!(py, "kind"))
            .map_err(|_| self.invalid(format!("expected a pydantic-ai ModelMessage, got {}", type_name(message))))?;
        let kind = kind_value.clone().cast_into::<PyString>().or_else(|k| k.into_inner().str())?;
        let side = match kind.to_str()? {
            "request" => Side::Request,
            "response" => Side::Response,
            other => return Err(self.invalid(format!("unknown message kind {other:?}"))),
        };
        self.history.begin(side);
        self.at = At::key("parts");
        let parts = message.getattr(intern!(py, "parts"))?;
        // What this message is read from, for the history memo (while it still takes messages).
        self.record = self.memo.as_ref().filter(|e| e.open()).map(|_| history_memo::MessageRecord {
            message: message.clone(),
            kind: kind_value,
            parts_list: Some(parts.clone()),
            instructions: None,
            request: side == Side::Request,
            parts: Vec::new(),
            ok: true,
        });
        each(&parts, |slot, part| {
            self.at = At::item("parts", slot as u32, "");
            self.pydantic_ai_part(&part, slot as u32, side)
        })?;
        self.walker.enclosing[1] = 0;
        // Counted only if this stays the last request (see `PartKind::Instructions`).
        if side == Side::Request {
            self.at = At::key("instructions");
            if let Ok(instructions) = message.getattr(intern!(py, "instructions")) {
                if let Some(record) = &mut self.record {
                    record.instructions = Some(instructions.clone());
                }
                if !instructions.is_none() {
                    let p = self.part(PartKind::Instructions, NO_SLOT);
                    self.value(Target::Part(p), &instructions, At::key("instructions"))?;
                }
            }
        }
        if let (Some(record), Some(entry)) = (self.record.take(), &mut self.memo) {
            entry.record(record);
        }
        Ok(())
    }

    fn pydantic_ai_part(&mut self, part: &Bound<'py, PyAny>, slot: u32, side: Side) -> PyResult<()> {
        self.walker.enclosing[1] = part.as_ptr() as usize;
        if let Some(hit) = part_memo::lookup(part.as_ptr() as usize, side, self.encoding.id(), self.stubs) {
            let mut fetched = Vec::new();
            if self.reuse(part, slot, &hit, &mut fetched)? {
                if let Some(record) = &mut self.record {
                    record.parts.push((part.clone(), fetched));
                }
                return Ok(());
            }
        }
        let before = self.history.parts.len();
        let values_before = self.values.len();
        self.recording = Some(Vec::new());
        let read = self.pydantic_ai_part_read(part, slot, side);
        let fetched = self.recording.take();
        read?;
        let remembered = match fetched {
            Some(fetched) if self.history.parts.len() == before + 1 => {
                self.remember(part, side, before, values_before, fetched)
            }
            _ => false,
        };
        if !remembered {
            if let Some(record) = &mut self.record {
                record.ok = false;
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
    /// the tokens counted then (the values fetched go to `fetched`). False if anything
    /// changed (the part is then read anew).
    fn reuse(
        &mut self,
        part: &Bound<'py, PyAny>,
        slot: u32,
        hit: &part_memo::Hit,
        fetched: &mut Vec<(u8, Option<Bound<'py, PyAny>>, u64)>,
    ) -> PyResult<bool> {
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
                        id = value.clone();
                    }
                }
                _ => return Ok(false),
            }
            if self.record.is_some() {
                fetched.push((field, value, stamp));
            }
        }
        if !hit.still_valid() {
            return Ok(false);
        }
        // Ids are interned by each read: a call's or result's is found anew.
        let kind = match hit.kind {
            PartKind::Call(_) => {
                PartKind::Call(self.call_id(id, "tool call", At::item("parts", slot, "tool_call_id"))?)
            }
            PartKind::Result(_) => {
                PartKind::Result(self.call_id(id, "tool return", At::item("parts", slot, "tool_call_id"))?)
            }
            PartKind::StubResult(_) => {
                PartKind::StubResult(self.call_id(id, "tool return", At::item("parts", slot, "tool_call_id"))?)
            }
            other => other,
        };
        let p = self.part(kind, slot);
        self.history.parts[p].tokens = hit.tokens;
        if self.stubs && matches!(kind, PartKind::Call(_)) {
            self.history.parts[p].stub_tokens = hit.stub_tokens;
        }
        Ok(true)
    }

    /// Note a part just read in full (`self.history.parts[index]`) for the part memo (and
    /// the message's record for the history memo), if everything it was read from is
    /// immutable or a container the value memo holds (or will hold: rendered by this read
    /// from `values[values_before..]` on). False if it cannot be remembered.
    fn remember(
        &mut self,
        part: &Bound<'py, PyAny>,
        side: Side,
        index: usize,
        values_before: usize,
        fetched: Vec<(u8, Option<Bound<'py, PyAny>>)>,
    ) -> bool {
        if fetched.len() > part_memo::MAX_FIELDS {
            return false;
        }
        let mut text_bytes = 0;
        let mut stamps = [0u64; part_memo::MAX_FIELDS];
        for ((_, value), stamp) in fetched.iter().zip(&mut stamps) {
            let Some(v) = value else { continue };
            if let Ok(s) = v.cast_exact::<PyString>() {
                text_bytes += s.to_str().map_or(0, str::len);
            } else if value_memo::is_container(v) {
                match self.value_stamp(v, values_before) {
                    Some(known) => *stamp = known,
                    None => return false,
                }
            } else if !value_memo::is_leaf(v) {
                return false;
            }
        }
        let kind = self.history.parts[index].kind;
        if kind == PartKind::Instructions {
            return false;
        }
        let fetched: Vec<_> = fetched.into_iter().zip(stamps).map(|((f, v), stamp)| (f, v, stamp)).collect();
        if let Some(record) = &mut self.record {
            record.parts.push((part.clone(), fetched.clone()));
        }
        self.pending.push(part_memo::Pending {
            part_index: index,
            part: part.clone().unbind(),
            side,
            kind,
            fetched: fetched.into_iter().map(|(f, v, stamp)| (f, v.map(Bound::unbind), stamp)).collect(),
            text_bytes,
        });
        true
    }

    fn pydantic_ai_part_read(&mut self, part: &Bound<'py, PyAny>, slot: u32, side: Side) -> PyResult<()> {
        let py = self.py;
        let at = |key| At::item("parts", slot, key);
        self.at = at("part_kind");
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
                self.content_of(p, part, slot)?;
            }
            ("compaction", Side::Request) => {
                let p = self.part(PartKind::System, slot);
                self.content_of(p, part, slot)?;
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
                    each(&content, |_, item| self.value(Target::Part(p), &item, at("content")))?;
                } else {
                    self.value(Target::Part(p), &content, at("content"))?;
                }
            }
            ("thinking", Side::Response) => {
                let p = self.part(PartKind::Thinking, slot);
                self.content_of(p, part, slot)?;
            }
            ("tool-return", _) | ("retry-prompt", _) if part_kind == "tool-return" || named_retry => {
                let id = self.fetch(part, TOOL_CALL_ID);
                let id = self.call_id(id, "tool return", at("tool_call_id"))?;
                let p = self.part(PartKind::Result(id), slot);
                self.id_texts(p, id, None)?;
                if let Some(name) = self.fetch(part, TOOL_NAME) {
                    self.value(Target::Part(p), &name, at("tool_name"))?;
                }
                self.content_of(p, part, slot)?;
            }
            ("tool-call", Side::Response) => {
                let id = self.fetch(part, TOOL_CALL_ID);
                let id = self.call_id(id, "tool call", at("tool_call_id"))?;
                let p = self.part(PartKind::Call(id), slot);
                let name = self.fetch(part, TOOL_NAME);
                self.id_texts(p, id, name.as_ref().map(|n| (n, at("tool_name"))))?;
                if let Some(name) = &name {
                    self.value(Target::Part(p), name, at("tool_name"))?;
                }
                if let Some(args) = self.fetch(part, ARGS) {
                    self.value(Target::Part(p), &args, at("args"))?;
                }
            }
            ("builtin-tool-call", _) => {
                let p = self.part(PartKind::Content, slot);
                for (field, label) in [(TOOL_NAME, "tool_name"), (ARGS, "args")] {
                    if let Some(v) = self.fetch(part, field) {
                        self.value(Target::Part(p), &v, at(label))?;
                    }
                }
            }
            ("builtin-tool-return", _) => {
                let p = self.part(PartKind::Content, slot);
                if let Some(v) = self.fetch(part, TOOL_NAME) {
                    self.value(Target::Part(p), &v, at("tool_name"))?;
                }
                self.content_of(p, part, slot)?;
            }
            ("file", _) => {
                let p = self.part(PartKind::Content, slot);
                self.add_fixed(p, BINARY_PART_TOKENS);
            }
            ("speech", _) => {
                let p = self.part(PartKind::Content, slot);
                if let Some(t) = self.fetch(part, TRANSCRIPT) {
                    self.value(Target::Part(p), &t, at("transcript"))?;
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
                self.content_of(p, part, slot)?;
            }
        }
        Ok(())
    }

    /// Count the `content` attribute of a pydantic-ai part, if it has one.
    fn content_of(&mut self, p: usize, part: &Bound<'py, PyAny>, slot: u32) -> PyResult<()> {
        if let Some(content) = self.fetch(part, CONTENT) {
            self.value(Target::Part(p), &content, At::item("parts", slot, "content"))?;
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

pub(in crate::python) fn field_name(py: Python<'_>, field: u8) -> &Bound<'_, PyString> {
    match field {
        PART_KIND => intern!(py, "part_kind"),
        CONTENT => intern!(py, "content"),
        TOOL_NAME => intern!(py, "tool_name"),
        TOOL_CALL_ID => intern!(py, "tool_call_id"),
        ARGS => intern!(py, "args"),
        _ => intern!(py, "transcript"),
    }
}
