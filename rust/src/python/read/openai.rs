//! OpenAI chat completions messages (`format="openai"`).

use super::{each, At, Reader, Target, Text, NO_SLOT};
use crate::history::{PartKind, Side};
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

impl<'py> Reader<'py> {
    pub(super) fn openai(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        self.check_keys(d)?;
        let role = self.role(d)?;
        self.at = At::key("content");
        let content = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none());
        let legacy_before = self.legacy_call.take();
        match role.as_str() {
            "system" | "developer" => {
                self.history.begin(Side::Request);
                let p = self.part(PartKind::System, NO_SLOT);
                if let Some(c) = content {
                    self.openai_content(p, &c, At::key("content"))?;
                }
            }
            "user" => {
                self.history.begin(Side::Request);
                let p = self.part(PartKind::Prompt, NO_SLOT);
                if let Some(c) = content {
                    self.openai_content(p, &c, At::key("content"))?;
                }
                if let Some(name) = d.get_item(intern!(py, "name"))? {
                    self.value(Target::Part(p), &name, At::key("name"))?;
                }
            }
            "assistant" => self.openai_assistant(d, content)?,
            "tool" => {
                self.history.begin(Side::Request);
                let id =
                    self.call_id(d.get_item(intern!(py, "tool_call_id"))?, "tool message", At::key("tool_call_id"))?;
                let p = self.part(PartKind::Result(id), NO_SLOT);
                self.id_texts(p, id, None)?;
                if let Some(c) = content {
                    self.openai_content(p, &c, At::key("content"))?;
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
                    self.value(Target::Part(p), &name, At::key("name"))?;
                }
                if let Some(c) = content {
                    self.openai_content(p, &c, At::key("content"))?;
                }
            }
            other => return Err(self.invalid(format!("unknown role {other:?}"))),
        }
        Ok(())
    }

    fn openai_assistant(&mut self, d: &Bound<'py, PyDict>, content: Option<Bound<'py, PyAny>>) -> PyResult<()> {
        let py = self.py;
        self.history.begin(Side::Response);
        self.at = At::key("refusal");
        let refusal = d.get_item(intern!(py, "refusal"))?.filter(|r| !r.is_none());
        self.at = At::key("tool_calls");
        let calls = d.get_item(intern!(py, "tool_calls"))?.filter(|c| !c.is_none());
        let function_call = d.get_item(intern!(py, "function_call"))?.filter(|c| !c.is_none());
        // An empty string is no text beside tool calls (the message goes with its calls),
        // but it is the whole of a plain assistant turn, which OpenAI accepts: kept.
        self.at = At::key("content");
        let has_text = match &content {
            Some(c) => {
                !(c.is_instance_of::<PyString>() && c.len()? == 0) || (calls.is_none() && function_call.is_none())
            }
            None => false,
        };
        if has_text || refusal.is_some() {
            let p = self.part(PartKind::Content, NO_SLOT);
            if let Some(c) = &content {
                self.openai_content(p, c, At::key("content"))?;
            }
            if let Some(r) = &refusal {
                self.value(Target::Part(p), r, At::key("refusal"))?;
            }
        }
        if let Some(calls) = calls {
            self.at = At::key("tool_calls");
            let sequence = calls.is_instance_of::<PyList>() || calls.is_instance_of::<PyTuple>();
            if !sequence {
                if let Err(err) = calls.try_iter() {
                    if !err.is_instance_of::<PyTypeError>(py) {
                        return Err(err);
                    }
                    let invalid = self.invalid("tool_calls: expected a list of tool calls");
                    invalid.set_cause(py, Some(err));
                    return Err(invalid);
                }
            }
            each(&calls, |slot, call| {
                let at = |key| At::item("tool_calls", slot as u32, key);
                self.at = at("");
                let call =
                    call.cast::<PyDict>().map_err(|_| self.invalid(format!("tool_calls[{slot}] must be a dict")))?;
                let id = self.call_id(
                    call.get_item(intern!(py, "id"))?,
                    &format!("tool_calls[{slot}]: tool call"),
                    at("id"),
                )?;
                let p = self.part(PartKind::Call(id), slot as u32);
                self.id_texts(p, id, None)?;
                self.at = at("function");
                let (body, custom) = match call.get_item(intern!(py, "function"))? {
                    Some(f) => (Some(f), false),
                    None => (call.get_item(intern!(py, "custom"))?, true),
                };
                if let Some(body) = body.as_ref().and_then(|b| b.cast::<PyDict>().ok()) {
                    let keys = if custom {
                        [
                            ("custom.name", intern!(py, "name")),
                            ("custom.arguments", intern!(py, "arguments")),
                            ("custom.input", intern!(py, "input")),
                        ]
                    } else {
                        [
                            ("function.name", intern!(py, "name")),
                            ("function.arguments", intern!(py, "arguments")),
                            ("function.input", intern!(py, "input")),
                        ]
                    };
                    for (label, key) in keys {
                        self.at = at(label);
                        if let Some(v) = body.get_item(key)? {
                            self.value(Target::Part(p), &v, at(label))?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        if let Some(f) = function_call {
            let id = self.synthetic_id(format!("\u{0}function_call@{}", self.index))?;
            let p = self.part(PartKind::Call(id), NO_SLOT);
            let f = f.cast::<PyDict>().ok();
            self.at = At::key("function_call");
            let field = |key| f.map(|f| f.get_item(key)).transpose().map(Option::flatten);
            let name = field(intern!(py, "name"))?;
            if self.stubs {
                // Its stub is a `function` message carrying the function's name.
                self.text(Target::Stub(p), Text::Owned(crate::history::STUB_TEXT.to_owned()));
                if let Some(name) = &name {
                    self.value(Target::Stub(p), name, At::key("function_call.name"))?;
                }
            }
            if let Some(name) = name {
                self.value(Target::Part(p), &name, At::key("function_call.name"))?;
            }
            self.at = At::key("function_call");
            if let Some(arguments) = field(intern!(py, "arguments"))? {
                self.value(Target::Part(p), &arguments, At::key("function_call.arguments"))?;
            }
            self.legacy_call = Some(id);
        }
        Ok(())
    }
}
