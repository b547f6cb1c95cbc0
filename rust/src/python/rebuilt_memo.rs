//! A memo of the pydantic-ai messages `build.rs` rebuilt, by the identity of the input
//! message: the masked results of the pipeline's warm path.
//!
//! A masked tool result is a new part (`dataclasses.replace(part, content=placeholder)`)
//! in a new message (`dataclasses.replace(message, parts=[...])`). Rebuilding them on
//! every request costs two `dataclasses.replace` per masked result still in the window,
//! most of the pipeline's warm cost. A later request that rebuilds the same message the
//! same way (the same parts kept, the same placeholders) gets the message it got last
//! time, if nothing changed since, checked by identity as the other memos check:
//!
//! * the input message still holds, in every `__init__` field (what `dataclasses.replace`
//!   copies), the very objects it held; its `parts` list still holds the same parts;
//!   each replaced part still holds, in every `__init__` field, the same objects;
//! * the message handed out last time, its `parts` list and each new part in it still
//!   hold what they held when made (a caller may change what it was given).
//!
//! Any difference and the message is rebuilt (and remembered anew). Everything compared
//! against is held by the entry, so no other object can take its address. Entries are
//! taken out of the memo while checked (attribute fetches run Python code), so no lock is
//! held meanwhile and no two threads check one entry. Bounded by [`MAX_MEMO_BYTES`]
//! (placeholder text and references), evicted by CLOCK, cleared with the content cache,
//! bypassed when it is disabled.

use super::instance::{entry, fields_in_dict, instance_dict};
use crate::fork::Global;
use crate::slab::Slab;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple, PyType};
use std::sync::Mutex;

/// The most the memo may account for (placeholders, and 64 bytes per reference).
pub const MAX_MEMO_BYTES: usize = 16 << 20;

/// What a dataclass object held in its `__init__` fields: their values' addresses.
struct Snapshot {
    address: usize,
    /// Its type, and the names of the type's `__init__` fields then.
    type_address: usize,
    names: Vec<Py<PyString>>,
    values: Vec<usize>,
    /// Its type's address if every field is a plain entry of its `__dict__` (found there
    /// by `getattr` first): checked there, borrowed, without fetching them. 0: fetched.
    plain_type: usize,
}

/// How a message was rebuilt: the slots of its parts kept, and the text that replaced
/// the content of some of them.
#[derive(PartialEq, Eq)]
pub struct Plan {
    pub kept: Vec<u32>,
    pub replaced: Vec<(u32, Box<str>)>,
}

struct Entry {
    plan: Plan,
    message: Snapshot,
    /// The input's `parts` items (addresses), in order.
    items: Vec<usize>,
    /// The replaced input parts.
    parts: Vec<Snapshot>,
    out: Py<PyAny>,
    out_message: Snapshot,
    /// The output's `parts` items, in order.
    out_items: Vec<usize>,
    /// The new parts in it.
    out_parts: Vec<Snapshot>,
    _held: Vec<Py<PyAny>>,
}

static MEMO: Global<Mutex<Option<Slab<Entry>>>> = Global::new(|| Mutex::new(None));

/// A dataclass type (its address, itself), the names of its `__init__` fields, and
/// whether `getattr` finds them in an instance's `__dict__` first (the default
/// `__getattribute__`, no data descriptor of those names on the type or its bases).
type TypeFields = (usize, Py<PyType>, Vec<Py<PyString>>, bool);

/// `__init__` field names of dataclass types met, by type.
static FIELDS: Global<Mutex<Vec<TypeFields>>> = Global::new(|| Mutex::new(Vec::new()));

fn with_memo<R>(f: impl FnOnce(&mut Slab<Entry>) -> R) -> R {
    f(MEMO.lock().get_or_insert_with(Slab::default))
}

pub(super) fn after_fork_in_child() {
    MEMO.reset_if_held();
    FIELDS.reset_if_held();
}

fn enabled() -> bool {
    crate::cache::global().enabled()
}

/// Forget every message (with `clear_cache`).
pub fn clear() {
    let old = with_memo(std::mem::take);
    drop(old);
    let old = std::mem::take(&mut *FIELDS.lock());
    drop(old);
}

/// The `__init__` field names of `obj`'s dataclass type (None: not a dataclass), and
/// whether they are plain `__dict__` entries (see [`TypeFields`]).
fn init_fields<'py>(obj: &Bound<'py, PyAny>) -> Option<(Vec<Bound<'py, PyString>>, bool)> {
    let py = obj.py();
    let ty = obj.get_type();
    let address = ty.as_ptr() as usize;
    let known = FIELDS
        .lock()
        .iter()
        .find(|(a, _, _, _)| *a == address)
        .map(|(_, _, names, plain)| (names.iter().map(|n| n.bind(py).clone()).collect::<Vec<_>>(), *plain));
    if known.is_some() {
        return known;
    }
    let fields = py.import("dataclasses").ok()?.getattr("fields").ok()?.call1((&ty,)).ok()?;
    let mut names = Vec::new();
    for field in fields.try_iter().ok()? {
        let field = field.ok()?;
        if field.getattr("init").ok()?.is_truthy().ok()? {
            names.push(field.getattr("name").ok()?.cast_into::<PyString>().ok()?);
        }
    }
    let plain = fields_in_dict(&ty, names.iter().cloned()).unwrap_or(false);
    let mut table = FIELDS.lock();
    if table.len() < 64 && !table.iter().any(|(a, _, _, _)| *a == address) {
        table.push((address, ty.unbind(), names.iter().map(|n| n.clone().unbind()).collect(), plain));
    }
    Some((names, plain))
}

fn snapshot(obj: &Bound<'_, PyAny>, held: &mut Vec<Py<PyAny>>) -> Option<Snapshot> {
    let (names, plain) = init_fields(obj)?;
    let mut values = Vec::new();
    for name in &names {
        let v = obj.getattr(name).ok()?;
        values.push(v.as_ptr() as usize);
        held.push(v.unbind());
    }
    let plain = plain
        && instance_dict(obj).is_some_and(|d| {
            d.is_exact_instance_of::<pyo3::types::PyDict>()
                && names.iter().zip(&values).all(|(n, &a)| entry(&d, n) == a)
        });
    held.push(obj.clone().unbind());
    let type_address = obj.get_type().as_ptr() as usize;
    let plain_type = if plain { type_address } else { 0 };
    let names = names.into_iter().map(Bound::unbind).collect();
    Some(Snapshot { address: obj.as_ptr() as usize, type_address, names, values, plain_type })
}

fn unchanged(obj: &Bound<'_, PyAny>, snap: &Snapshot) -> bool {
    let py = obj.py();
    // The same object of the same type (whose `__init__` fields are the names recorded).
    if obj.as_ptr() as usize != snap.address || obj.get_type().as_ptr() as usize != snap.type_address {
        return false;
    }
    if snap.plain_type != 0 {
        let Some(dict) = instance_dict(obj) else { return false };
        return dict.is_exact_instance_of::<pyo3::types::PyDict>()
            && snap.names.iter().zip(&snap.values).all(|(n, &a)| entry(&dict, n.bind(py)) == a);
    }
    snap.names.iter().zip(&snap.values).all(|(n, &a)| obj.getattr(n.bind(py)).is_ok_and(|v| v.as_ptr() as usize == a))
}

/// The items of an exact list or tuple, by address.
fn items_of<'py>(list: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = list.cast_exact::<PyList>() {
        return Some(l.iter().collect());
    }
    if let Ok(t) = list.cast_exact::<PyTuple>() {
        return Some(t.iter().collect());
    }
    None
}

fn same_items(list: &Bound<'_, PyAny>, addresses: &[usize]) -> bool {
    items_of(list).is_some_and(|items| {
        items.len() == addresses.len() && items.iter().zip(addresses).all(|(i, &a)| i.as_ptr() as usize == a)
    })
}

/// The message `message` was rebuilt into by `plan` last time, if nothing changed since.
pub fn lookup<'py>(message: &Bound<'py, PyAny>, parts: &Bound<'py, PyAny>, plan: &Plan) -> Option<Bound<'py, PyAny>> {
    if !enabled() {
        return None;
    }
    let py = message.py();
    let address = message.as_ptr() as usize;
    let entry = with_memo(|m| m.remove(address))?;
    let valid = entry.plan == *plan
        && unchanged(message, &entry.message)
        && same_items(parts, &entry.items)
        && entry
            .parts
            .iter()
            .zip(&entry.plan.replaced)
            .all(|(snap, (slot, _))| parts.get_item(*slot as usize).is_ok_and(|p| unchanged(&p, snap)))
        && {
            let out = entry.out.bind(py);
            unchanged(out, &entry.out_message)
                && out.getattr(pyo3::intern!(py, "parts")).is_ok_and(|list| {
                    same_items(&list, &entry.out_items)
                        && entry.out_parts.iter().all(|snap| {
                            entry
                                .out_items
                                .iter()
                                .position(|&a| a == snap.address)
                                .and_then(|i| list.get_item(i).ok())
                                .is_some_and(|p| unchanged(&p, snap))
                        })
                })
        };
    if !valid {
        drop(entry);
        return None;
    }
    let out = entry.out.bind(py).clone();
    let cost = cost_of(&entry);
    let mut evicted = Vec::new();
    with_memo(|m| {
        if let Some(other) = m.remove(address) {
            evicted.push(other);
        }
        m.insert(address, cost, entry, MAX_MEMO_BYTES, &mut evicted);
    });
    drop(evicted); // references released outside the lock
    Some(out)
}

fn cost_of(entry: &Entry) -> usize {
    entry.plan.replaced.iter().map(|(_, t)| t.len()).sum::<usize>() + 64 * entry._held.len()
}

/// Remember that `message` (whose parts list is `parts`) was rebuilt by `plan` into `out`.
pub fn store(message: &Bound<'_, PyAny>, parts: &Bound<'_, PyAny>, plan: Plan, out: &Bound<'_, PyAny>) {
    if !enabled() {
        return;
    }
    let py = message.py();
    let mut held = Vec::new();
    let Some(message_snap) = snapshot(message, &mut held) else { return };
    let Some(items) = items_of(parts) else { return };
    let mut replaced_parts = Vec::new();
    for (slot, _) in &plan.replaced {
        let Some(part) = items.get(*slot as usize) else { return };
        let Some(snap) = snapshot(part, &mut held) else { return };
        replaced_parts.push(snap);
    }
    let Some(out_message) = snapshot(out, &mut held) else { return };
    let Ok(out_list) = out.getattr(pyo3::intern!(py, "parts")) else { return };
    let Some(out_items) = items_of(&out_list) else { return };
    // The new parts: those of the output that are not the input's.
    let mut out_parts = Vec::new();
    for item in &out_items {
        if !items.iter().any(|i| i.is(item)) {
            let Some(snap) = snapshot(item, &mut held) else { return };
            out_parts.push(snap);
        }
    }
    let entry = Entry {
        plan,
        message: message_snap,
        items: items.iter().map(|i| i.as_ptr() as usize).collect(),
        parts: replaced_parts,
        out: out.clone().unbind(),
        out_message,
        out_items: out_items.iter().map(|i| i.as_ptr() as usize).collect(),
        out_parts,
        _held: {
            held.extend(items.into_iter().map(Bound::unbind));
            held.extend(out_items.into_iter().map(Bound::unbind));
            held.push(parts.clone().unbind());
            held.push(out_list.unbind());
            held
        },
    };
    let address = message.as_ptr() as usize;
    let cost = cost_of(&entry);
    let mut evicted = Vec::new();
    with_memo(|m| {
        if let Some(old) = m.remove(address) {
            evicted.push(old);
        }
        m.insert(address, cost, entry, MAX_MEMO_BYTES, &mut evicted);
    });
    drop(evicted); // references released outside the lock
}
