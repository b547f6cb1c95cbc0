//! Reading what the pipeline's steps need from the parts of a history already read:
//! tool names, the key argument of each call, and the size and state of each result's
//! text (see `strategies::PartDetail`).
//!
//! Read only when a step will run (the history is over the compaction threshold), from
//! the objects the reader walked (by the slots it noted), with the GIL held. Strings are
//! borrowed; a result's text is counted through the content cache (a hash lookup, as it
//! was counted when the history was read). Whatever a caller's object does meanwhile is
//! tolerated: a part whose details cannot be read simply has none (its step skips it).

use super::read::{Format, Read, NO_SLOT};
use crate::counting;
use crate::encoding::Encoding;
use crate::history::PartKind;
use crate::strategies::mask::is_placeholder;
use crate::strategies::{Details, PartDetail};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

/// The argument that names what a call works on, by preference.
const KEY_FIELDS: [&str; 12] = [
    "path",
    "file_path",
    "filepath",
    "filename",
    "file",
    "target_file",
    "command",
    "cmd",
    "url",
    "query",
    "pattern",
    "name",
];

/// The details of every call and result of `read`'s history.
pub fn read_details(py: Python<'_>, messages: &Bound<'_, PyList>, read: &Read, enc: &'static Encoding) -> Details {
    let history = &read.history;
    let mut details = Details::with_parts(history.parts.len());
    for (i, message) in history.messages.iter().enumerate() {
        let wanted = history.parts[message.parts.clone()]
            .iter()
            .any(|p| matches!(p.kind, PartKind::Call(_) | PartKind::Result(_)));
        if !wanted {
            continue;
        }
        let Ok(object) = messages.get_item(i) else { continue };
        let container = match read.format {
            Format::PydanticAi => object.getattr(intern!(py, "parts")).ok(),
            Format::Anthropic => object.get_item(intern!(py, "content")).ok(),
            Format::OpenAi => object.get_item(intern!(py, "tool_calls")).ok(),
            Format::Responses => None,
        };
        for p in message.parts.clone() {
            let kind = history.parts[p].kind;
            if !matches!(kind, PartKind::Call(_) | PartKind::Result(_)) {
                continue;
            }
            let slot = read.slots[p];
            let source = match (&container, slot) {
                (_, NO_SLOT) => Some(object.clone()),
                (Some(items), slot) => item_at(items, slot as usize),
                (None, _) => None,
            };
            let Some(source) = source else { continue };
            let detail = match kind {
                PartKind::Call(_) => call_detail(py, read.format, &source, &mut details),
                _ => result_detail(py, read.format, &source, enc, &mut details),
            };
            details.parts[p] = detail;
        }
    }
    details
}

/// Item `slot` of a list or tuple (the reader took other iterables the same way; those
/// are not read again here).
fn item_at<'py>(items: &Bound<'py, PyAny>, slot: usize) -> Option<Bound<'py, PyAny>> {
    if let Ok(list) = items.cast::<PyList>() {
        return list.get_item(slot).ok();
    }
    if let Ok(tuple) = items.cast::<PyTuple>() {
        return tuple.get_item(slot).ok();
    }
    None
}

/// Field `key` of a dict, or attribute `key` of an object.
fn field<'py>(obj: &Bound<'py, PyAny>, key: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
    match obj.cast::<PyDict>() {
        Ok(d) => d.get_item(key).ok().flatten(),
        Err(_) => obj.getattr(key).ok(),
    }
    .filter(|v| !v.is_none())
}

fn string_of(value: &Bound<'_, PyAny>) -> Option<String> {
    value.cast::<PyString>().ok().and_then(|s| s.to_str().ok().map(str::to_owned))
}

fn call_detail(py: Python<'_>, format: Format, source: &Bound<'_, PyAny>, details: &mut Details) -> PartDetail {
    // (name, arguments) where the format keeps them.
    let (name, args) = match format {
        Format::PydanticAi => (field(source, intern!(py, "tool_name")), field(source, intern!(py, "args"))),
        Format::Anthropic => (field(source, intern!(py, "name")), field(source, intern!(py, "input"))),
        Format::Responses => (
            field(source, intern!(py, "name")),
            field(source, intern!(py, "arguments")).or_else(|| field(source, intern!(py, "input"))),
        ),
        Format::OpenAi => {
            let body = field(source, intern!(py, "function"))
                .or_else(|| field(source, intern!(py, "custom")))
                .or_else(|| field(source, intern!(py, "function_call")));
            match body {
                Some(b) => (
                    field(&b, intern!(py, "name")),
                    field(&b, intern!(py, "arguments")).or_else(|| field(&b, intern!(py, "input"))),
                ),
                None => (None, None),
            }
        }
    };
    let mut detail = PartDetail::default();
    if let Some(name) = name.as_ref().and_then(string_of) {
        detail.tool = Some(details.intern(&name));
    }
    if let Some(args) = args {
        let found = if let Ok(d) = args.cast::<PyDict>() {
            KEY_FIELDS.iter().find_map(|&k| {
                let v = d.get_item(k).ok().flatten()?;
                Some((k, string_of(&v)?))
            })
        } else if let Some(text) = string_of(&args) {
            KEY_FIELDS.iter().find_map(|&k| json_string_field(&text, k).map(|v| (k, v)))
        } else {
            None
        };
        if let Some((k, v)) = found {
            detail.key = Some((details.intern(k), details.intern(&v)));
        }
    }
    detail
}

fn result_detail(
    py: Python<'_>,
    format: Format,
    source: &Bound<'_, PyAny>,
    enc: &'static Encoding,
    details: &mut Details,
) -> PartDetail {
    let mut detail = PartDetail::default();
    let content = match format {
        Format::PydanticAi => {
            let kind = field(source, intern!(py, "part_kind")).and_then(|k| string_of(&k)).unwrap_or_default();
            let outcome = field(source, intern!(py, "outcome")).and_then(|k| string_of(&k));
            detail.error = kind == "retry-prompt" || outcome.is_some_and(|o| o != "success");
            if let Some(name) = field(source, intern!(py, "tool_name")).and_then(|n| string_of(&n)) {
                detail.tool = Some(details.intern(&name));
            }
            // A retry prompt's text is pydantic-ai's own feedback: not masked.
            if kind == "tool-return" {
                field(source, intern!(py, "content"))
            } else {
                None
            }
        }
        Format::Anthropic => {
            detail.error = field(source, intern!(py, "is_error")).is_some_and(|e| e.is_truthy().unwrap_or(false));
            field(source, intern!(py, "content"))
        }
        Format::OpenAi => field(source, intern!(py, "content")),
        Format::Responses => field(source, intern!(py, "output")),
    };
    if let Some(text) = content.and_then(|c| c.cast_into::<PyString>().ok()) {
        if let Ok(text) = text.to_str() {
            detail.placeholder = is_placeholder(text);
            detail.content_tokens = counting::count(enc, text) as u64;
            detail.lines = line_count(text);
            detail.hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes()) | 1;
        }
    }
    detail
}

/// Lines of a text: its newlines, plus one for a last line without one.
fn line_count(text: &str) -> u32 {
    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
    (newlines + usize::from(!text.is_empty() && !text.ends_with('\n'))) as u32
}

/// The string value of `key` in a JSON object's text, if it has one (the first
/// occurrence of `"key":` followed by a string; escapes decoded). No full parse: only
/// the one field is needed, and arguments are usually small.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = json[from..].find(&needle) {
        let rest = json[from + at + needle.len()..].trim_start();
        from += at + needle.len();
        let Some(rest) = rest.strip_prefix(':') else { continue };
        let rest = rest.trim_start();
        let Some(body) = rest.strip_prefix('"') else { return None };
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        return None;
    }
    None
}
