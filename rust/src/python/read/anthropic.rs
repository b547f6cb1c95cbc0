//! Anthropic Messages (`format="anthropic"`).

use super::{At, Reader, Target, NO_SLOT};
use crate::history::{PartKind, Side};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

impl<'py> Reader<'py> {
    pub(super) fn anthropic(&mut self, message: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let d = self.dict(message)?;
        self.check_keys(d)?;
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
        self.at = At::key("content");
        let content = d.get_item(intern!(py, "content"))?.filter(|c| !c.is_none());
        let Some(content) = content else { return Ok(()) };
        let plain = if side == Side::Request { PartKind::Prompt } else { PartKind::Content };
        let Ok(blocks) = content.cast::<PyList>() else {
            let p = self.part(plain, NO_SLOT);
            return self.value(Target::Part(p), &content, At::key("content"));
        };
        for (slot, block) in blocks.iter().enumerate() {
            let at = |key| At::item("content", slot as u32, key);
            let slot = slot as u32;
            let Ok(b) = block.cast::<PyDict>() else {
                let p = self.part(plain, slot);
                self.value(Target::Part(p), &block, at(""))?;
                continue;
            };
            let kind = self.type_of(b, at("type"))?;
            self.check_block(&kind, at(""))?;
            match (kind.as_str(), side) {
                ("tool_use", Side::Response) => {
                    let id = self.call_id(b.get_item(intern!(py, "id"))?, "tool_use block", at("id"))?;
                    let p = self.part(PartKind::Call(id), slot);
                    self.id_texts(p, id, None)?;
                    for (label, key) in [("name", intern!(py, "name")), ("input", intern!(py, "input"))] {
                        self.at = at(label);
                        if let Some(v) = b.get_item(key)? {
                            self.value(Target::Part(p), &v, at(label))?;
                        }
                    }
                }
                ("tool_result", Side::Request) => {
                    let id =
                        self.call_id(b.get_item(intern!(py, "tool_use_id"))?, "tool_result block", at("tool_use_id"))?;
                    let p = self.part(PartKind::Result(id), slot);
                    self.id_texts(p, id, None)?;
                    self.at = at("content");
                    if let Some(c) = b.get_item(intern!(py, "content"))? {
                        self.nested_content(p, &c, at("content"))?;
                    }
                }
                ("thinking" | "redacted_thinking", Side::Response) => {
                    let p = self.part(PartKind::Thinking, slot);
                    self.block_text(p, &block, at(""))?;
                }
                _ => {
                    let p = self.part(plain, slot);
                    self.block_text(p, &block, at(""))?;
                }
            }
        }
        Ok(())
    }
}
