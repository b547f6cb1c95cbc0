//! OpenAI Responses input items (`format="responses"`).

use super::{At, Reader, Target, NO_SLOT};
use crate::history::{PartKind, Side};
use pyo3::intern;
use pyo3::prelude::*;

impl<'py> Reader<'py> {
    pub(super) fn responses(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        let kind = self.type_of(d, At::key("type"))?;
        if kind.is_empty() || kind == "message" {
            self.check_keys(d)?;
            let role = self.role(d)?;
            let (side, part_kind) = match role.as_str() {
                "user" => (Side::Request, PartKind::Prompt),
                "system" | "developer" => (Side::Request, PartKind::System),
                "assistant" => (Side::Response, PartKind::Content),
                other => return Err(self.invalid(format!("unknown role {other:?}"))),
            };
            self.history.begin(side);
            let p = self.part(part_kind, NO_SLOT);
            self.at = At::key("content");
            if let Some(c) = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none()) {
                self.openai_content(p, &c, At::key("content"))?;
            }
            return Ok(());
        }
        if kind.ends_with("_call_output") {
            self.history.begin(Side::Request);
            let id = self.call_id(d.get_item(intern!(py, "call_id"))?, &format!("{kind} item"), At::key("call_id"))?;
            let p = self.part(PartKind::Result(id), NO_SLOT);
            self.id_texts(p, id, None)?;
            self.at = At::key("output");
            if let Some(o) = d.get_item(intern!(py, "output"))? {
                self.nested_content(p, &o, At::key("output"))?;
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
            let id = self.call_id(d.get_item(intern!(py, "call_id"))?, &format!("{kind} item"), At::key("call_id"))?;
            let p = self.part(PartKind::Call(id), NO_SLOT);
            self.id_texts(p, id, None)?;
            for (label, key) in [
                ("name", intern!(py, "name")),
                ("arguments", intern!(py, "arguments")),
                ("input", intern!(py, "input")),
                ("action", intern!(py, "action")),
            ] {
                self.at = At::key(label);
                if let Some(v) = d.get_item(key)? {
                    self.value(Target::Part(p), &v, At::key(label))?;
                }
            }
            return Ok(());
        }
        match kind.as_str() {
            "reasoning" => {
                self.history.begin(Side::Response);
                let p = self.part(PartKind::Content, NO_SLOT);
                self.at = At::key("summary");
                if let Some(s) = d.get_item(intern!(py, "summary"))? {
                    self.nested_content(p, &s, At::key("summary"))?;
                }
                self.history.messages.last_mut().expect("begun").bonded_to_next = true;
            }
            "compaction" => {
                self.history.begin(Side::Request);
                let p = self.part(PartKind::System, NO_SLOT);
                self.at = At::key("summary");
                if let Some(s) = d.get_item(intern!(py, "summary"))? {
                    self.value(Target::Part(p), &s, At::key("summary"))?;
                }
            }
            _ => {
                self.history.begin(Side::Response);
                let p = self.part(PartKind::Content, NO_SLOT);
                self.at = At::key("content");
                if let Some(c) = d.get_item(intern!(py, "content"))? {
                    self.value(Target::Part(p), &c, At::key("content"))?;
                }
            }
        }
        Ok(())
    }
}
