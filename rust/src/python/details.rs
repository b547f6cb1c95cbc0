//! Reading what the pipeline's steps need from the parts of a history already read:
//! tool names, the key argument of each call, and the size and state of each result's
//! text (see `strategies::PartDetail`).
//!
//! Read only when a step will run (the history is over the compaction threshold), from
//! the objects the reader walked (by the slots it noted), with the GIL held. Strings are
//! borrowed; a result's text is counted through the content cache (a hash lookup, as it
//! was counted when the history was read). Whatever a caller's object does meanwhile is
//! tolerated: a part whose details cannot be read simply has none (its step skips it).
//!
//! A result's text is measured once per string object: an identity memo (the pattern of
//! `memo.rs`: a strong reference keeps the address from being reused, strings are
//! immutable) keeps its tokens, lines, hash and whether it is a placeholder, so the warm
//! path of a long history reads an attribute and looks up an address per result instead
//! of counting and hashing megabytes again (measured: 30 ms → a few on the 10,000-message
//! benchmark).

use super::read::walk::Walker;
use super::read::{Format, Read, NO_SLOT};
use crate::counting;
use crate::encoding::Encoding;
use crate::history::PartKind;
use crate::strategies::failure;
use crate::strategies::mask::is_placeholder;
use crate::strategies::prune::runs_command;
use crate::strategies::{Details, PartDetail};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::sync::Mutex;

use crate::fork::Global;
use crate::slab::Slab;

/// The most result text the memo keeps alive.
const MAX_MEMO_BYTES: usize = 64 << 20;

struct Entry {
    _string: Py<PyString>,
    encoding: crate::encoding::EncodingId,
    tokens: u64,
    lines: u32,
    placeholder: bool,
    hash: u64,
    /// Whether the text says its call failed (`strategies::failure::says_failed`), read
    /// as any tool's output `[0]` and as a command's `[1]`, once asked.
    said: [Option<bool>; 2],
}

/// What [`measure`] finds in a result's text.
#[derive(Clone, Copy, Default)]
struct Measured {
    tokens: u64,
    lines: u32,
    placeholder: bool,
    hash: u64,
    said_failed: bool,
}

static MEMO: Global<Mutex<Option<Slab<Entry>>>> = Global::new(|| Mutex::new(None));

fn with_memo<R>(f: impl FnOnce(&mut Slab<Entry>) -> R) -> R {
    f(MEMO.lock().get_or_insert_with(Slab::default))
}

/// What a call's arguments give the steps: their hash and key argument (an index into
/// [`KEY_FIELDS`] and its value).
#[derive(Clone)]
struct ArgsFacts {
    hash: u64,
    key: Option<(u8, Box<str>)>,
}

/// A call's arguments already read, by identity: a string (immutable), or a dict the
/// value memo knows (`stamp`: its stamp then; the value memo checks on every lookup that
/// the dict still holds the very objects it held, so an equal stamp means the same
/// contents). The strong reference keeps the address from being reused.
struct ArgsEntry {
    _args: Py<PyAny>,
    stamp: u64,
    facts: ArgsFacts,
}

static ARGS_MEMO: Global<Mutex<Option<Slab<ArgsEntry>>>> = Global::new(|| Mutex::new(None));

fn with_args_memo<R>(f: impl FnOnce(&mut Slab<ArgsEntry>) -> R) -> R {
    f(ARGS_MEMO.lock().get_or_insert_with(Slab::default))
}

pub(super) fn after_fork_in_child() {
    MEMO.reset_if_held();
    ARGS_MEMO.reset_if_held();
}

/// Forget every text and arguments (with `clear_cache`).
pub fn clear() {
    let old = with_memo(std::mem::take);
    drop(old);
    let old = with_args_memo(std::mem::take);
    drop(old);
}

/// The facts of a call's arguments, memoized by identity (see [`ArgsEntry`]): a warm
/// request reads no argument again, it looks up two addresses.
fn args_facts(py: Python<'_>, args: &Bound<'_, PyAny>, enc: &'static Encoding) -> ArgsFacts {
    let memoizable = crate::cache::global().enabled();
    // 0: a string; a dict's value-memo stamp; None: not memoizable.
    let stamp = if !memoizable {
        None
    } else if args.is_exact_instance_of::<PyString>() {
        Some(0)
    } else if args.is_exact_instance_of::<PyDict>() {
        super::value_memo::lookup(args, enc.id()).map(|k| k.stamp | 1 << 63)
    } else {
        None
    };
    let address = args.as_ptr() as usize;
    if let Some(stamp) = stamp {
        let known = with_args_memo(|m| m.get_mut(address).filter(|e| e.stamp == stamp).map(|e| e.facts.clone()));
        if let Some(facts) = known {
            return facts;
        }
    }
    let facts = read_args(py, args);
    if let Some(stamp) = stamp {
        let cost = 64 + facts.key.as_ref().map_or(0, |(_, v)| v.len());
        let entry = ArgsEntry { _args: args.clone().unbind(), stamp, facts: facts.clone() };
        let mut evicted = Vec::new();
        with_args_memo(|m| {
            if let Some(old) = m.remove(address) {
                evicted.push(old);
            }
            m.insert(address, cost, entry, MAX_ARGS_MEMO_BYTES, &mut evicted);
        });
        drop(evicted); // decrefs outside the lock
    }
    facts
}

/// The most the arguments memo may account for (entries are small: it holds the
/// arguments alive, which the caller's history holds anyway).
const MAX_ARGS_MEMO_BYTES: usize = 16 << 20;

/// [`ArgsFacts`] read from the arguments.
fn read_args(py: Python<'_>, args: &Bound<'_, PyAny>) -> ArgsFacts {
    let hash = args_hash(args);
    let mut key = None;
    if let Ok(d) = args.cast::<PyDict>() {
        for (k, name) in key_names(py).into_iter().enumerate() {
            if let Some(v) = d.get_item(name).ok().flatten() {
                if let Some(v) = v.cast::<PyString>().ok().and_then(|s| s.to_str().ok().map(Box::from)) {
                    key = Some((k as u8, v));
                    break;
                }
            }
        }
    } else if let Some(text) = args.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) {
        key = KEY_FIELDS
            .iter()
            .enumerate()
            .find_map(|(k, &f)| json_string_field(text, f).map(|v| (k as u8, v.into_boxed_str())));
    }
    ArgsFacts { hash, key }
}

/// Tokens, lines, placeholder flag and hash of a result's text, and with `said` (`Some(is
/// a command)`) whether it says its call failed, memoized by identity.
fn measure(string: &Bound<'_, PyString>, enc: &'static Encoding, said: Option<bool>) -> Option<Measured> {
    let address = string.as_ptr() as usize;
    let known = with_memo(|m| {
        let e = m.get_mut(address).filter(|e| e.encoding == enc.id())?;
        let mut said_failed = false;
        if let Some(command) = said {
            let known = &mut e.said[usize::from(command)];
            if known.is_none() {
                *known = Some(failure::says_failed(string.to_str().ok()?, command));
            }
            said_failed = known.unwrap_or(false);
        }
        Some(Measured { tokens: e.tokens, lines: e.lines, placeholder: e.placeholder, hash: e.hash, said_failed })
    });
    if known.is_some() {
        return known;
    }
    let text = string.to_str().ok()?;
    let tokens = counting::count(enc, text) as u64;
    let lines = line_count(text);
    let placeholder = is_placeholder(text);
    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes()) | 1;
    let mut said_known = [None; 2];
    let said_failed = said.is_some_and(|command| {
        let failed = failure::says_failed(text, command);
        said_known[usize::from(command)] = Some(failed);
        failed
    });
    let said = said_known;
    if crate::cache::global().info().enabled {
        let entry =
            Entry { _string: string.clone().unbind(), encoding: enc.id(), tokens, lines, placeholder, hash, said };
        let mut evicted = Vec::new();
        with_memo(|m| {
            // Present under another encoding: kept as it is (measured anew each time).
            if m.get_mut(address).is_none() {
                m.insert(address, text.len(), entry, MAX_MEMO_BYTES, &mut evicted);
            } else {
                evicted.push(entry);
            }
        });
        drop(evicted); // decrefs outside the lock
    }
    Some(Measured { tokens, lines, placeholder, hash, said_failed })
}

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
/// `acknowledgements`: also read whether each request of a single prompt only
/// acknowledges (the text of a prompt that is a plain string; see [`prompt_text`]).
pub fn read_details(
    py: Python<'_>,
    messages: &Bound<'_, PyList>,
    read: &Read,
    enc: &'static Encoding,
    acknowledgements: bool,
    known: Option<(usize, Details)>,
) -> Details {
    let history = &read.history;
    // `known`: the details of the first messages, read before from these very objects
    // (the history memo checked them unchanged, `history_memo.rs`).
    let (from, mut details) = match known {
        Some((from, mut details)) => {
            let parts = history.messages.get(from).map_or(history.parts.len(), |m| m.parts.start);
            details.cut(parts, history.parts.len());
            (from, details)
        }
        None => (0, Details::with_parts(history.parts.len())),
    };
    // Formats with no failure flag read a result's text, as a command's output when its
    // call runs one: each call id's latest call part so far (as the prune step pairs them).
    let flagless = matches!(read.format, Format::OpenAi | Format::Responses);
    let mut calls: rustc_hash::FxHashMap<crate::history::CallId, usize> = Default::default();
    if flagless {
        // The calls of the known prefix answer results read below.
        let known_parts = history.messages.get(from).map_or(history.parts.len(), |m| m.parts.start);
        for (p, part) in history.parts[..known_parts].iter().enumerate() {
            if let PartKind::Call(id) = part.kind {
                calls.insert(id, p);
            }
        }
    }
    for (i, message) in history.messages.iter().enumerate().skip(from) {
        let parts = &history.parts[message.parts.clone()];
        // A request of one prompt: is it an acknowledgement (the prune step's rule)?
        if acknowledgements && parts.len() == 1 && parts[0].kind == PartKind::Prompt {
            let p = message.parts.start;
            if let Ok(object) = messages.get_item(i) {
                details.parts[p].ack = prompt_text(py, read.format, &object, read.slots[p])
                    .is_some_and(|t| t.to_str().is_ok_and(crate::strategies::prune::is_acknowledgement));
            }
            continue;
        }
        let wanted = parts.iter().any(|p| matches!(p.kind, PartKind::Call(_) | PartKind::Result(_)));
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
                PartKind::Call(id) => {
                    if flagless {
                        calls.insert(id, p);
                    }
                    call_detail(py, read.format, &source, enc, &mut details)
                }
                PartKind::Result(id) => {
                    let command = flagless
                        && calls.get(&id).is_some_and(|&c| {
                            let call = &details.parts[c];
                            call.tool.is_some_and(|t| {
                                let field = call.key.map(|(f, _)| details.string(f));
                                runs_command(details.string(t), field)
                            })
                        });
                    result_detail(py, read.format, &source, enc, command, &mut details)
                }
                _ => continue,
            };
            details.parts[p] = detail;
        }
    }
    details
}

/// The text of the prompt at `slot` of `object`, when it is a plain string: a
/// pydantic-ai `UserPromptPart`'s `content`, a message's `content` (OpenAI, Responses,
/// Anthropic), an Anthropic `text` block's `text`. Other prompts (images, lists of
/// blocks elsewhere) are never acknowledgements.
fn prompt_text<'py>(
    py: Python<'py>,
    format: Format,
    object: &Bound<'py, PyAny>,
    slot: u32,
) -> Option<Bound<'py, PyString>> {
    let text = match (format, slot) {
        (Format::PydanticAi, NO_SLOT) => None,
        (Format::PydanticAi, slot) => {
            let part = item_at(&field(object, intern!(py, "parts"))?, slot as usize)?;
            field(&part, intern!(py, "content"))
        }
        (_, NO_SLOT) => field(object, intern!(py, "content")),
        (Format::Anthropic, slot) => {
            let block = item_at(&field(object, intern!(py, "content"))?, slot as usize)?;
            if !is_str(field(&block, intern!(py, "type")), "text") {
                return None;
            }
            field(&block, intern!(py, "text"))
        }
        _ => None,
    };
    text?.cast_into::<PyString>().ok()
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

/// Intern a string value into `details` without copying it first.
fn intern_str(value: &Bound<'_, PyAny>, details: &mut Details) -> Option<u32> {
    let s = value.cast::<PyString>().ok()?;
    Some(details.intern(s.to_str().ok()?))
}

/// Whether a value is the string `expected`.
fn is_str(value: Option<Bound<'_, PyAny>>, expected: &str) -> bool {
    value.is_some_and(|v| v.cast::<PyString>().is_ok_and(|s| s.to_str().is_ok_and(|s| s == expected)))
}

/// [`KEY_FIELDS`] as interned Python strings.
fn key_names(py: Python<'_>) -> [&Bound<'_, PyString>; 12] {
    [
        intern!(py, "path"),
        intern!(py, "file_path"),
        intern!(py, "filepath"),
        intern!(py, "filename"),
        intern!(py, "file"),
        intern!(py, "target_file"),
        intern!(py, "command"),
        intern!(py, "cmd"),
        intern!(py, "url"),
        intern!(py, "query"),
        intern!(py, "pattern"),
        intern!(py, "name"),
    ]
}

fn call_detail(
    py: Python<'_>,
    format: Format,
    source: &Bound<'_, PyAny>,
    enc: &'static Encoding,
    details: &mut Details,
) -> PartDetail {
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
    if let Some(name) = &name {
        detail.tool = intern_str(name, details);
    }
    if let Some(args) = args {
        let facts = args_facts(py, &args, enc);
        detail.args_hash = facts.hash;
        if let Some((k, v)) = &facts.key {
            detail.key = Some((details.intern(KEY_FIELDS[*k as usize]), details.intern(v)));
        }
    }
    detail
}

/// `command`: its call runs a command (`prune::runs_command`), so an exit code in its text
/// counts.
fn result_detail(
    py: Python<'_>,
    format: Format,
    source: &Bound<'_, PyAny>,
    enc: &'static Encoding,
    command: bool,
    details: &mut Details,
) -> PartDetail {
    let mut detail = PartDetail::default();
    let content = match format {
        Format::PydanticAi => {
            let tool_return = is_str(field(source, intern!(py, "part_kind")), "tool-return");
            let outcome = field(source, intern!(py, "outcome"));
            detail.error = !tool_return || outcome.is_some_and(|o| !is_str(Some(o), "success"));
            if let Some(name) = field(source, intern!(py, "tool_name")) {
                detail.tool = intern_str(&name, details);
            }
            let content = field(source, intern!(py, "content"));
            // A retry prompt (the reader reads one with a `tool_name` as the call's
            // result): a failed attempt for the prune step, pydantic-ai's own feedback
            // for the mask step (not masked). Its content is a string (`ModelRetry`) or
            // a list of validation errors, measured by its JSON text as the reader
            // counted it.
            if !tool_return {
                detail.retry = true;
                if let Some(c) = content.as_ref().filter(|c| !c.is_instance_of::<PyString>()) {
                    if let Some((m, text)) = measure_json(c, enc) {
                        (detail.content_tokens, detail.lines, detail.hash) = (m.tokens, m.lines, m.hash);
                        detail.reason = Some(details.intern(failure::reason(&text)));
                    }
                    return detail;
                }
            }
            content
        }
        Format::Anthropic => {
            detail.error = field(source, intern!(py, "is_error")).is_some_and(|e| e.is_truthy().unwrap_or(false));
            field(source, intern!(py, "content"))
        }
        Format::OpenAi => field(source, intern!(py, "content")),
        Format::Responses => field(source, intern!(py, "output")),
    };
    // Formats with no failure flag: what the text says.
    let said = matches!(format, Format::OpenAi | Format::Responses).then_some(command);
    if let Some(text) = content.and_then(|c| c.cast_into::<PyString>().ok()) {
        if let Some(m) = measure(&text, enc, said) {
            detail.content_tokens = m.tokens;
            detail.lines = m.lines;
            detail.placeholder = m.placeholder;
            detail.hash = m.hash;
            detail.says_failed = m.said_failed;
            if detail.error || detail.says_failed {
                if let Ok(text) = text.to_str() {
                    detail.reason = Some(details.intern(failure::reason(text)));
                }
            }
        }
    }
    detail
}

/// A non-string value's tokens as the reader counted it (its JSON text, plus media),
/// lines and hash, and that text. Not memoized: only retry prompts' lists of errors are
/// measured so, and they are few and small. None if it cannot be rendered (it changed
/// since it was read).
fn measure_json(value: &Bound<'_, PyAny>, enc: &'static Encoding) -> Option<(Measured, String)> {
    let mut out = String::new();
    let mut binary = 0;
    Walker::default().json_text(value, &mut out, &mut binary, true).ok()?;
    let measured = Measured {
        tokens: counting::count(enc, &out) as u64 + binary,
        lines: line_count(&out),
        hash: xxhash_rust::xxh3::xxh3_64(out.as_bytes()) | 1,
        ..Measured::default()
    };
    Some((measured, out))
}

/// A hash of a call's arguments (0: not hashable here): of a JSON string, its bytes; of
/// a dict, each key and the `str()` of each value in order (what identical calls share).
fn args_hash(args: &Bound<'_, PyAny>) -> u64 {
    use std::hash::Hasher;
    if let Ok(s) = args.cast::<PyString>() {
        return s.to_str().map_or(0, |t| xxhash_rust::xxh3::xxh3_64(t.as_bytes()) | 1);
    }
    let Ok(d) = args.cast::<PyDict>() else { return 0 };
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (k, v) in d.iter() {
        let (Ok(k), Ok(v)) = (k.str(), v.str()) else { return 0 };
        let (Ok(k), Ok(v)) = (k.to_str(), v.to_str()) else { return 0 };
        hasher.write(k.as_bytes());
        hasher.write(&[0]);
        hasher.write(v.as_bytes());
        hasher.write(&[0]);
    }
    hasher.finish() | 1
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
        let body = rest.strip_prefix('"')?;
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
