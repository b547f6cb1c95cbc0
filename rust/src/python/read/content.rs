//! Typed content blocks, shared by the dict formats: chat-completions content parts,
//! Responses content items, Anthropic blocks, and the blocks nested in tool results.
//!
//! Blocks nest only through tool results whose content is itself a list of blocks. That
//! nesting is followed to [`MAX_BLOCK_DEPTH`] levels (far beyond any real history: a
//! provider nests one); deeper is an `InvalidMessageError`, and so is a list of blocks
//! that holds itself. Values inside blocks (tool inputs...) go to the iterative walker,
//! which has no depth limit.

use super::{block_allowed, At, Format, Reader, Target};
use crate::history::BINARY_PART_TOKENS;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

/// How deep lists of blocks may nest inside tool results.
pub const MAX_BLOCK_DEPTH: usize = 32;

impl<'py> Reader<'py> {
    /// A message's `content` (`at`) in the chat formats: a string, or a list of typed
    /// parts, none of which may tell another format.
    pub(super) fn openai_content(&mut self, p: usize, content: &Bound<'py, PyAny>, at: At) -> PyResult<()> {
        if content.is_instance_of::<PyString>() {
            return self.value(Target::Part(p), content, at);
        }
        if let Ok(items) = content.cast::<PyList>() {
            for (slot, item) in items.iter().enumerate() {
                let item_at = At::item(at_list(at), slot as u32, "");
                if let Ok(block) = item.cast::<PyDict>() {
                    let kind = self.type_of(block, item_at)?;
                    self.check_block(&kind, item_at)?;
                }
                self.block_text(p, &item, item_at)?;
            }
            return Ok(());
        }
        self.value(Target::Part(p), content, at)
    }

    /// A block of type `kind` at `at` must not belong to another format.
    pub(super) fn check_block(&self, kind: &str, at: At) -> PyResult<()> {
        if block_allowed(self.format, kind) {
            return Ok(());
        }
        let other = super::block_format(kind).unwrap_or(Format::OpenAi);
        Err(self.foreign(&format!("{at}: a {kind:?} block"), other))
    }

    /// A typed content item or block: its text, or a fixed estimate for media.
    pub(super) fn block_text(&mut self, p: usize, item: &Bound<'py, PyAny>, at: At) -> PyResult<()> {
        let py = self.py;
        let Ok(block) = item.cast::<PyDict>() else {
            return self.value(Target::Part(p), item, at);
        };
        let kind = self.type_of(block, at)?;
        match kind.as_str() {
            "text" | "input_text" | "output_text" | "summary_text" => {
                self.block_field(p, block, intern!(py, "text"), with_key(at, "text"))?;
            }
            "refusal" => self.block_field(p, block, intern!(py, "refusal"), with_key(at, "refusal"))?,
            "thinking" => self.block_field(p, block, intern!(py, "thinking"), with_key(at, "thinking"))?,
            "tool_use" | "server_tool_use" => {
                self.block_field(p, block, intern!(py, "name"), with_key(at, "name"))?;
                self.block_field(p, block, intern!(py, "id"), with_key(at, "id"))?;
                self.block_field(p, block, intern!(py, "input"), with_key(at, "input"))?;
            }
            "tool_result" => {
                self.at = at;
                if let Some(c) = block.get_item(intern!(py, "content"))? {
                    self.nested_content(p, &c, with_key(at, "content"))?;
                }
            }
            _ if kind.ends_with("_tool_result") => {
                self.block_field(p, block, intern!(py, "content"), with_key(at, "content"))?;
            }
            _ => self.add_fixed(p, BINARY_PART_TOKENS),
        }
        Ok(())
    }

    /// The value of `key` in `block`, if it has one, counted into part `p`.
    fn block_field(
        &mut self,
        p: usize,
        block: &Bound<'py, PyDict>,
        key: &Bound<'py, PyString>,
        at: At,
    ) -> PyResult<()> {
        self.at = at;
        if let Some(v) = block.get_item(key)? {
            self.value(Target::Part(p), &v, at)?;
        }
        Ok(())
    }

    /// Content that is a string or a list of blocks (tool results, summaries), at `at`.
    pub(super) fn nested_content(&mut self, p: usize, content: &Bound<'py, PyAny>, at: At) -> PyResult<()> {
        if let Ok(items) = content.cast::<PyList>() {
            if items.iter().all(|i| i.is_instance_of::<PyDict>()) {
                let address = items.as_ptr() as usize;
                if self.blocks.contains(&address) {
                    return Err(self.invalid(format!("{at}: circular reference")));
                }
                if self.blocks.len() >= MAX_BLOCK_DEPTH {
                    return Err(self.invalid(format!("{at}: content blocks nested more than {MAX_BLOCK_DEPTH} deep")));
                }
                self.blocks.push(address);
                for item in items.iter() {
                    self.block_text(p, &item, at)?;
                }
                self.blocks.pop();
                return Ok(());
            }
        }
        self.value(Target::Part(p), content, at)
    }
}

/// The list part of `at` (`content` for `content`), for the items of a list field.
fn at_list(at: At) -> &'static str {
    if at.list.is_empty() {
        at.key
    } else {
        at.list
    }
}

/// `at` with its key: `content[2]` becomes `content[2].text`; a plain key is kept (the
/// outer field already says where the value is).
fn with_key(at: At, key: &'static str) -> At {
    if !at.list.is_empty() && at.key.is_empty() {
        At::item(at.list, at.slot, key)
    } else {
        at
    }
}
