//! Turning a compaction plan back into Python messages, with the GIL held.
//!
//! Untouched messages are the caller's own objects. A message that lost parts is a new
//! object of the same type: pydantic-ai messages through `dataclasses.replace` (same
//! class, every other field kept), dicts as a shallow copy with the filtered list.
//! A kept part whose content the pipeline replaced (a masked tool result) is a new
//! object the same way: a `dataclasses.replace` of the pydantic-ai part, a copy of the
//! dict (tool message, `tool_result` block, `function_call_output` item) with its
//! `content` / `output` replaced. The caller's objects are never mutated.

use super::read::{At, Format, Read, NO_SLOT};
use crate::compact::OutMessage;
use crate::history::{PartKind, STUB_TEXT};
use pyo3::exceptions::PyIndexError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rustc_hash::FxHashMap;

/// Parts whose content is replaced (global part index → new text).
pub type Replaced = FxHashMap<usize, String>;

pub fn build<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
    read: &Read,
    plan: &[OutMessage],
    replaced: &Replaced,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for item in plan {
        build_one(py, messages, read, item, replaced, &out).map_err(|err| {
            // A stub answers calls of the message it follows: errors name that one.
            let index = match item {
                OutMessage::Kept { index, .. } => *index,
                OutMessage::Stub { calls, .. } => message_of(read, calls[0]),
            };
            super::read::wrap(py, err, index, At::key("rebuilding it"))
        })?;
    }
    Ok(out)
}

/// Append what `item` of the plan stands for to `out`. The caller's objects may have
/// changed or misbehave since they were read: what they raise is named by `build`.
fn build_one<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
    read: &Read,
    item: &OutMessage,
    replaced: &Replaced,
    out: &Bound<'py, PyList>,
) -> PyResult<()> {
    let touched = |index: usize| {
        !replaced.is_empty() && read.history.messages[index].parts.clone().any(|p| replaced.contains_key(&p))
    };
    match item {
        OutMessage::Kept { index, parts: None, stubs, .. } if stubs.is_empty() && !touched(*index) => {
            out.append(messages.get_item(*index)?)?;
        }
        OutMessage::Kept { index, parts, stubs, stub_at } => {
            let message = messages.get_item(*index)?;
            let range = read.history.messages[*index].parts.clone();
            let kept: Vec<usize> = match parts {
                Some(p) => p.iter().map(|&local| range.start + local).collect(),
                None => range.collect(),
            };
            out.append(rebuild(py, read, messages, &message, &kept, stubs, *stub_at, replaced)?)?;
        }
        OutMessage::Stub { calls, .. } => {
            for message in stub_messages(py, read, messages, calls)? {
                out.append(message)?;
            }
        }
    }
    Ok(())
}

/// The Python list items of `message` that `kept` (global part indices) came from.
fn kept_items<'py>(list: &Bound<'py, PyAny>, read: &Read, kept: &[usize]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    kept.iter()
        .map(|&p| read.slots[p])
        .filter(|&slot| slot != NO_SLOT)
        .map(|slot| item_at(list, slot as usize))
        .collect()
}

/// Like [`kept_items`], with each item whose part's content is replaced rebuilt by `with`.
fn kept_items_replaced<'py>(
    list: &Bound<'py, PyAny>,
    read: &Read,
    kept: &[usize],
    replaced: &Replaced,
    with: impl Fn(&Bound<'py, PyAny>, &str) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    kept.iter()
        .filter(|&&p| read.slots[p] != NO_SLOT)
        .map(|&p| {
            let item = item_at(list, read.slots[p] as usize)?;
            match replaced.get(&p) {
                Some(text) => with(&item, text),
                None => Ok(item),
            }
        })
        .collect()
}

/// A copy of a dict with `key` set to `text`.
fn dict_with<'py>(d: &Bound<'py, PyAny>, key: &Bound<'py, PyString>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let copy = d.cast::<PyDict>()?.copy()?;
    copy.set_item(key, text)?;
    Ok(copy.into_any())
}

/// Item `slot` of a list of parts, taken as the reader took it (`each` in `read/mod.rs`):
/// a list or a tuple (subclasses too) in place, any other iterable (a set, a dict's keys)
/// by iterating it again, never by a `__getitem__` the reader did not use.
fn item_at<'py>(items: &Bound<'py, PyAny>, slot: usize) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(list) = items.cast::<PyList>() {
        return list.get_item(slot);
    }
    if let Ok(tuple) = items.cast::<PyTuple>() {
        return tuple.get_item(slot);
    }
    match items.try_iter()?.nth(slot) {
        Some(item) => item,
        None => Err(PyIndexError::new_err("the list of parts changed since it was read")),
    }
}

fn call_id(read: &Read, call: usize) -> &str {
    match read.history.parts[call].kind {
        PartKind::Call(id) => &read.ids[id as usize],
        _ => unreachable!("stubs answer calls"),
    }
}

// The rebuilt message's inputs, each borrowed from a different owner: a struct would
// only rename them.
#[allow(clippy::too_many_arguments)]
fn rebuild<'py>(
    py: Python<'py>,
    read: &Read,
    messages: &Bound<'py, PyList>,
    message: &Bound<'py, PyAny>,
    kept: &[usize],
    stubs: &[usize],
    stub_at: usize,
    replaced: &Replaced,
) -> PyResult<Bound<'py, PyAny>> {
    // A message of one part without a slot whose content is replaced: a tool message,
    // a Responses output item.
    if let Some(text) = kept.iter().find_map(|&p| (read.slots[p] == NO_SLOT).then(|| replaced.get(&p)).flatten()) {
        match read.format {
            Format::OpenAi => return dict_with(message, intern!(py, "content"), text),
            Format::Responses => return dict_with(message, intern!(py, "output"), text),
            _ => {}
        }
    }
    match read.format {
        Format::PydanticAi => {
            let parts = message.getattr(intern!(py, "parts"))?;
            // The same message rebuilt the same way last time, unchanged since (`rebuilt_memo.rs`).
            let plan = stubs.is_empty().then(|| super::rebuilt_memo::Plan {
                kept: kept.iter().map(|&p| read.slots[p]).collect(),
                replaced: kept
                    .iter()
                    .filter_map(|&p| Some((read.slots[p], replaced.get(&p)?.as_str().into())))
                    .collect(),
            });
            if let Some(out) = plan.as_ref().and_then(|plan| super::rebuilt_memo::lookup(message, &parts, plan)) {
                return Ok(out);
            }
            let mut items = kept_items_replaced(&parts, read, kept, replaced, |part, text| {
                // A retry prompt (a pruned failed attempt): its class is deprecated and
                // warns when built, about a part the caller did not build: copied without
                // its constructor, as `copy.copy` would without `__new__`'s warning.
                if is_retry_prompt(py, part) {
                    if let Ok(fields) = part.getattr(intern!(py, "__dict__")) {
                        let copy = py
                            .get_type::<pyo3::types::PyAny>()
                            .call_method1(intern!(py, "__new__"), (part.get_type(),))?;
                        copy.getattr(intern!(py, "__dict__"))?.call_method1(intern!(py, "update"), (fields,))?;
                        copy.setattr(intern!(py, "content"), text)?;
                        return Ok(copy);
                    }
                }
                let kwargs = PyDict::new(py);
                kwargs.set_item(intern!(py, "content"), text)?;
                dataclasses_replace(py)?.call((part,), Some(&kwargs))
            })?;
            let stub_parts =
                stubs.iter().map(|&c| pydantic_ai_stub_part(py, read, messages, c)).collect::<PyResult<Vec<_>>>()?;
            splice(&mut items, stub_at, stub_parts);
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "parts"), PyList::new(py, items)?)?;
            let out = dataclasses_replace(py)?.call((message,), Some(&kwargs))?;
            if let Some(plan) = plan {
                super::rebuilt_memo::store(message, &parts, plan, &out);
            }
            Ok(out)
        }
        Format::Anthropic => {
            let copy = message.cast::<PyDict>()?.copy()?;
            let content = copy.get_item(intern!(py, "content"))?.expect("read from it");
            let mut items = if content.is_instance_of::<PyString>() {
                // A plain-string message that receives stubs becomes blocks: the results
                // first (as Anthropic requires), then the text as a text block.
                let text = PyDict::new(py);
                text.set_item("type", "text")?;
                text.set_item("text", &content)?;
                vec![text.into_any()]
            } else {
                kept_items_replaced(&content, read, kept, replaced, |block, text| {
                    dict_with(block, intern!(py, "content"), text)
                })?
            };
            let stub_blocks = stubs
                .iter()
                .map(|&c| {
                    let block = PyDict::new(py);
                    block.set_item("type", "tool_result")?;
                    block.set_item("tool_use_id", call_id(read, c))?;
                    block.set_item("content", STUB_TEXT)?;
                    Ok(block.into_any())
                })
                .collect::<PyResult<Vec<_>>>()?;
            splice(&mut items, stub_at, stub_blocks);
            copy.set_item(intern!(py, "content"), PyList::new(py, items)?)?;
            Ok(copy.into_any())
        }
        Format::OpenAi => {
            // Only an assistant message loses parts: some of its tool calls.
            let copy = message.cast::<PyDict>()?.copy()?;
            if let Some(calls) = copy.get_item(intern!(py, "tool_calls"))?.filter(|c| !c.is_none()) {
                let items = kept_items(&calls, read, kept)?;
                if items.is_empty() {
                    copy.del_item(intern!(py, "tool_calls"))?;
                } else {
                    copy.set_item(intern!(py, "tool_calls"), PyList::new(py, items)?)?;
                }
            }
            let keeps_legacy = kept
                .iter()
                .any(|&p| read.slots[p] == NO_SLOT && matches!(read.history.parts[p].kind, PartKind::Call(_)));
            if !keeps_legacy && copy.contains(intern!(py, "function_call"))? {
                copy.del_item(intern!(py, "function_call"))?;
            }
            Ok(copy.into_any())
        }
        Format::Responses => Ok(message.clone()), // items have one part: kept whole or dropped
    }
}

fn splice<T>(items: &mut Vec<T>, at: usize, new: Vec<T>) {
    let at = at.min(items.len());
    items.splice(at..at, new);
}

/// The Python object a call part was read from: the message itself, or the item of its
/// list that the part's slot points at.
fn call_source<'py>(read: &Read, messages: &Bound<'py, PyList>, call: usize) -> PyResult<Bound<'py, PyAny>> {
    let message = messages.get_item(message_of(read, call))?;
    let py = messages.py();
    match (read.format, read.slots[call]) {
        (_, NO_SLOT) => Ok(message),
        (Format::PydanticAi, slot) => item_at(&message.getattr(intern!(py, "parts"))?, slot as usize),
        (Format::Anthropic, slot) => item_at(&message.get_item(intern!(py, "content"))?, slot as usize),
        (Format::OpenAi | Format::Responses, slot) => {
            item_at(&message.get_item(intern!(py, "tool_calls"))?, slot as usize)
        }
    }
}

/// A `ToolReturnPart` answering `call`, derived from the input alone (as pydantic-ai's own
/// `_repair_dangling_tool_calls` makes its synthesized returns): the timestamp of the
/// response being answered, pydantic-ai's marker of synthesized returns in `metadata`
/// where the installed version has one; nothing from the clock, so compacting the same
/// history twice gives equal results (and the same prompt prefix to cache).
fn pydantic_ai_stub_part<'py>(
    py: Python<'py>,
    read: &Read,
    messages: &Bound<'py, PyList>,
    call: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let name = call_source(read, messages, call)?.getattr(intern!(py, "tool_name"))?;
    let kwargs = PyDict::new(py);
    let response = messages.get_item(message_of(read, call))?;
    if let Ok(timestamp) = response.getattr(intern!(py, "timestamp")) {
        kwargs.set_item(intern!(py, "timestamp"), timestamp)?;
    }
    if let Some(key) = synthesized_metadata_key(py)? {
        let metadata = PyDict::new(py);
        metadata.set_item(key, true)?;
        kwargs.set_item(intern!(py, "metadata"), metadata)?;
    }
    tool_return_part(py)?.call((name, STUB_TEXT, call_id(read, call)), Some(&kwargs))
}

/// `pydantic_ai.messages.SYNTHESIZED_TOOL_RETURN_METADATA_KEY`, if this version has it.
fn synthesized_metadata_key(py: Python<'_>) -> PyResult<Option<&Bound<'_, PyAny>>> {
    static KEY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let key = KEY.get_or_try_init(py, || {
        let module = py.import(intern!(py, "pydantic_ai.messages"))?;
        Ok::<_, PyErr>(module.getattr("SYNTHESIZED_TOOL_RETURN_METADATA_KEY").map_or_else(|_| py.None(), Bound::unbind))
    })?;
    Ok((!key.is_none(py)).then(|| key.bind(py)))
}

/// The input message a part belongs to.
fn message_of(read: &Read, part: usize) -> usize {
    read.history.messages.partition_point(|m| m.parts.end <= part)
}

/// New messages answering `calls` (global part indices), in the format's shape.
fn stub_messages<'py>(
    py: Python<'py>,
    read: &Read,
    messages: &Bound<'py, PyList>,
    calls: &[usize],
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    match read.format {
        Format::PydanticAi => {
            let parts =
                calls.iter().map(|&c| pydantic_ai_stub_part(py, read, messages, c)).collect::<PyResult<Vec<_>>>()?;
            let module = py.import(intern!(py, "pydantic_ai.messages"))?;
            Ok(vec![module.getattr(intern!(py, "ModelRequest"))?.call1((PyList::new(py, parts)?,))?])
        }
        Format::Anthropic => {
            let blocks = PyList::empty(py);
            for &c in calls {
                let block = PyDict::new(py);
                block.set_item("type", "tool_result")?;
                block.set_item("tool_use_id", call_id(read, c))?;
                block.set_item("content", STUB_TEXT)?;
                blocks.append(block)?;
            }
            let message = PyDict::new(py);
            message.set_item("role", "user")?;
            message.set_item("content", blocks)?;
            Ok(vec![message.into_any()])
        }
        Format::OpenAi => calls
            .iter()
            .map(|&c| {
                let message = PyDict::new(py);
                if read.slots[c] == NO_SLOT {
                    // A legacy function_call is answered by a `function` message, by position.
                    // Named as the reader read the name (none if the call had none).
                    let source = call_source(read, messages, c)?;
                    let fields = source.get_item(intern!(py, "function_call"))?;
                    message.set_item("role", "function")?;
                    if let Some(name) =
                        fields.cast::<PyDict>().ok().map(|f| f.get_item(intern!(py, "name"))).transpose()?.flatten()
                    {
                        message.set_item("name", name)?;
                    }
                } else {
                    message.set_item("role", "tool")?;
                    message.set_item("tool_call_id", call_id(read, c))?;
                }
                message.set_item("content", STUB_TEXT)?;
                Ok(message.into_any())
            })
            .collect(),
        Format::Responses => calls
            .iter()
            .map(|&c| {
                let item = PyDict::new(py);
                let call_type = call_source(read, messages, c)?.get_item(intern!(py, "type"))?;
                item.set_item("type", format!("{}_output", call_type.str()?.to_cow()?))?;
                item.set_item("call_id", call_id(read, c))?;
                item.set_item("output", STUB_TEXT)?;
                Ok(item.into_any())
            })
            .collect(),
    }
}

fn is_retry_prompt(py: Python<'_>, part: &Bound<'_, PyAny>) -> bool {
    part.getattr(intern!(py, "part_kind"))
        .is_ok_and(|k| k.cast::<PyString>().is_ok_and(|k| k.to_str().is_ok_and(|k| k == "retry-prompt")))
}

fn dataclasses_replace(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static REPLACE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    imported(py, &REPLACE, "dataclasses", "replace")
}

fn tool_return_part(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    imported(py, &CLASS, "pydantic_ai.messages", "ToolReturnPart")
}

/// `module.name`, imported on first use. Not `PyOnceLock::import`, which holds the cell's
/// lock while the import runs Python code (letting other threads run, and fork): a child
/// forked meanwhile would wait on it forever. Here the import runs unlocked (threads racing
/// at first use may each import it) and the cell is filled with the GIL held and no Python
/// code running, so no fork can interrupt that.
fn imported<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    if cell.get(py).is_none() {
        let value = py.import(module)?.getattr(name)?.unbind();
        let _ = cell.set(py, value);
    }
    Ok(cell.get(py).expect("filled above").bind(py))
}
