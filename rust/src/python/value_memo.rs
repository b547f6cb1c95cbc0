//! A memo of the token counts of rendered containers, by object identity, checked on
//! every use.
//!
//! Tool-call arguments and structured tool results are dicts and lists, counted by their
//! JSON text (`docs/compaction.md`). Rendering one again on every request touches every
//! key and value object in it: on a long history, most of the reading time. Here a
//! container made only of exact built-in containers (`dict`, `list`, `tuple`) and
//! immutable leaves (`str`, `int`, `float`, `bool`, `None`, `bytes`) is remembered with
//! the objects it held, in order, and the tokens of its text. A later use walks the
//! container and compares object addresses only: the same containers with the same
//! items, in the same order, hold the same immutable leaves (the memo keeps them alive,
//! so no other object can take their addresses), hence render the same text. Any
//! difference (a key added, a value replaced, a list grown) is a miss: the container is
//! rendered and counted again. Nothing of a leaf is read on a hit, not even its header.
//!
//! Only called with the GIL held; the lock is never held while Python code could run
//! (walking uses `PyDict_Next` and item getters, which run none), and entries are
//! dropped outside it. Bounded by the size of the text the pinned objects render to,
//! evicted by CLOCK; cleared with the content cache, and bypassed when it is disabled.

use crate::encoding::{EncodingId, MEMO_SLOTS};
use crate::fork::Global;
use crate::slab::Slab;
use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::Mutex;

/// The most rendered bytes the pinned containers may stand for.
pub const MAX_MEMO_BYTES: usize = 64 << 20;

/// Marks a leaf in a [`Trace`]; a container records its length.
const LEAF: u32 = u32::MAX;

/// What a container held, depth first: every object (with a strong reference) and, for
/// containers, their length.
pub struct Trace {
    objects: Vec<Py<PyAny>>,
    lens: Vec<u32>,
}

/// Traces of at most this many objects (a dict of two arguments is five) are kept inline
/// in the memo's table, so checking one reads no other memory.
const INLINE: usize = 6;

/// A trace as checked: the addresses and lengths, inline when small.
enum Layout {
    Inline { n: u8, addresses: [usize; INLINE], lens: [u32; INLINE] },
    Heap { addresses: Box<[usize]>, lens: Box<[u32]> },
}

impl Layout {
    fn of(trace: &Trace) -> Layout {
        let n = trace.objects.len();
        if n <= INLINE {
            let mut addresses = [0; INLINE];
            let mut lens = [0; INLINE];
            for (i, (o, l)) in trace.objects.iter().zip(&trace.lens).enumerate() {
                addresses[i] = o.as_ptr() as usize;
                lens[i] = *l;
            }
            Layout::Inline { n: n as u8, addresses, lens }
        } else {
            Layout::Heap {
                addresses: trace.objects.iter().map(|o| o.as_ptr() as usize).collect(),
                lens: trace.lens.clone().into_boxed_slice(),
            }
        }
    }

    fn parts(&self) -> (&[usize], &[u32]) {
        match self {
            Layout::Inline { n, addresses, lens } => (&addresses[..*n as usize], &lens[..*n as usize]),
            Layout::Heap { addresses, lens } => (addresses, lens),
        }
    }

    /// Whether `obj` holds exactly what was recorded.
    ///
    /// # Safety
    /// The GIL is held and `obj` is alive.
    unsafe fn matches(&self, obj: *mut ffi::PyObject) -> bool {
        let (addresses, lens) = self.parts();
        let mut pos = 0;
        matches(obj, addresses, lens, &mut pos) && pos == addresses.len()
    }
}

const UNKNOWN: u32 = u32::MAX;

struct Entry {
    layout: Layout,
    /// Keeps every recorded object alive, so no other object can take its address.
    _held: Vec<Py<PyAny>>,
    /// Tokens of the text, per encoding (`UNKNOWN` until counted with it).
    tokens: [u32; MEMO_SLOTS],
    binary: u64,
    /// Which rendering this is: a new stamp whenever the container is stored with other
    /// contents, so a reader that relied on it can tell it changed since.
    stamp: u64,
}

static STAMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

type Memo = Slab<Entry>;

/// Replaced in a child forked while another thread held it (see `fork.rs`).
static MEMO: Global<Mutex<Option<Memo>>> = Global::new(|| Mutex::new(None));

fn with_memo<R>(f: impl FnOnce(&mut Memo) -> R) -> R {
    f(MEMO.lock().get_or_insert_with(Memo::default))
}

pub(super) fn after_fork_in_child() {
    MEMO.reset_if_held();
}

fn enabled() -> bool {
    crate::cache::global().enabled()
}

/// Whether `value` is a container this memo can take (its items still to be checked).
pub fn is_container(value: &Bound<'_, PyAny>) -> bool {
    // Safety: `value` is alive and the GIL is held.
    let t = unsafe { ffi::Py_TYPE(value.as_ptr()) };
    t == std::ptr::addr_of_mut!(ffi::PyDict_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyList_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyTuple_Type)
}

/// Whether `value` is an immutable leaf (exact `str`, `int`, `float`, `bool`, `bytes`, or
/// `None`): the same object always renders the same.
pub fn is_leaf(value: &Bound<'_, PyAny>) -> bool {
    // Safety: `value` is alive and the GIL is held.
    matches!(unsafe { shape(value.as_ptr()) }, Shape::Leaf)
}

enum Shape {
    Leaf,
    Dict,
    List,
    Tuple,
    Other,
}

/// # Safety
/// `obj` is a live object and the GIL is held.
unsafe fn shape(obj: *mut ffi::PyObject) -> Shape {
    let t = ffi::Py_TYPE(obj);
    if obj == ffi::Py_None()
        || t == std::ptr::addr_of_mut!(ffi::PyUnicode_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyLong_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyFloat_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyBool_Type)
        || t == std::ptr::addr_of_mut!(ffi::PyBytes_Type)
    {
        Shape::Leaf
    } else if t == std::ptr::addr_of_mut!(ffi::PyDict_Type) {
        Shape::Dict
    } else if t == std::ptr::addr_of_mut!(ffi::PyList_Type) {
        Shape::List
    } else if t == std::ptr::addr_of_mut!(ffi::PyTuple_Type) {
        Shape::Tuple
    } else {
        Shape::Other
    }
}

/// Containers nested deeper than this are not remembered (they are rendered, by the
/// iterative walker, every time): tool arguments nest a few levels. The bound keeps the
/// recursive walks here shallow (`matches` follows a recorded trace, so no deeper), and
/// ends the recording of a cyclic value, which the walker then reports as an error.
pub const MAX_DEPTH: usize = 64;

/// Record what `value` holds, or None if anything in it is not an exact built-in
/// container or immutable leaf, or is nested deeper than [`MAX_DEPTH`] (such a value
/// is rendered every time).
pub fn record(value: &Bound<'_, PyAny>) -> Option<Trace> {
    let mut trace = Trace { objects: Vec::new(), lens: Vec::new() };
    // Safety: the GIL is held (`value` is bound) and `value` is alive; every object met
    // is held (a strong reference in the trace) before anything else is looked at.
    unsafe { record_into(value.py(), value.as_ptr(), &mut trace, 0) }.then_some(trace)
}

unsafe fn record_into(py: Python<'_>, obj: *mut ffi::PyObject, trace: &mut Trace, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let held = Bound::from_borrowed_ptr(py, obj).unbind();
    let len = match shape(obj) {
        Shape::Leaf => LEAF,
        Shape::Dict => ffi::PyDict_Size(obj) as u32,
        Shape::List => ffi::PyList_Size(obj) as u32,
        Shape::Tuple => ffi::PyTuple_Size(obj) as u32,
        Shape::Other => return false,
    };
    trace.objects.push(held);
    trace.lens.push(len);
    match shape(obj) {
        Shape::Dict => {
            let mut pos: ffi::Py_ssize_t = 0;
            let (mut key, mut item) = (std::ptr::null_mut(), std::ptr::null_mut());
            while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut item) != 0 {
                if !record_into(py, key, trace, depth + 1) || !record_into(py, item, trace, depth + 1) {
                    return false;
                }
            }
            true
        }
        Shape::List | Shape::Tuple => {
            for i in 0..len as ffi::Py_ssize_t {
                let item = match shape(obj) {
                    Shape::List => ffi::PyList_GetItem(obj, i),
                    _ => ffi::PyTuple_GetItem(obj, i),
                };
                if item.is_null() || !record_into(py, item, trace, depth + 1) {
                    ffi::PyErr_Clear();
                    return false;
                }
            }
            true
        }
        _ => true,
    }
}

/// Whether `obj` still holds exactly what was recorded (`addresses`, `lens`) from
/// position `pos` on.
///
/// # Safety
/// The GIL is held and `obj` is alive. Runs no Python code.
unsafe fn matches(obj: *mut ffi::PyObject, addresses: &[usize], lens: &[u32], pos: &mut usize) -> bool {
    let i = *pos;
    if i >= addresses.len() || addresses[i] != obj as usize {
        return false;
    }
    *pos += 1;
    let len = lens[i];
    if len == LEAF {
        return true;
    }
    // The same object as recorded, so the same exact type.
    match shape(obj) {
        Shape::Dict => {
            if ffi::PyDict_Size(obj) != len as ffi::Py_ssize_t {
                return false;
            }
            let mut at: ffi::Py_ssize_t = 0;
            let (mut key, mut item) = (std::ptr::null_mut(), std::ptr::null_mut());
            while ffi::PyDict_Next(obj, &mut at, &mut key, &mut item) != 0 {
                if !matches(key, addresses, lens, pos) || !matches(item, addresses, lens, pos) {
                    return false;
                }
            }
            true
        }
        Shape::List => {
            if ffi::PyList_Size(obj) != len as ffi::Py_ssize_t {
                return false;
            }
            (0..len as ffi::Py_ssize_t).all(|j| matches(ffi::PyList_GetItem(obj, j), addresses, lens, pos))
        }
        Shape::Tuple => {
            (0..len as ffi::Py_ssize_t).all(|j| matches(ffi::PyTuple_GetItem(obj, j), addresses, lens, pos))
        }
        _ => false,
    }
}

/// What the memo knows of a container: its tokens (text, binary) and the stamp of the
/// contents they were counted for.
#[derive(Clone, Copy)]
pub struct Known {
    pub tokens: u32,
    pub binary: u64,
    pub stamp: u64,
}

/// What is known of `value` in `encoding`, if it is remembered and unchanged.
pub fn lookup(value: &Bound<'_, PyAny>, encoding: EncodingId) -> Option<Known> {
    if !enabled() {
        return None;
    }
    let slot = encoding.memo_slot()?;
    let address = value.as_ptr() as usize;
    with_memo(|m| {
        let entry = m.get_mut(address)?;
        let tokens = entry.tokens[slot];
        // Safety: the GIL is held (`value` is bound); `matches` runs no Python code, so
        // nothing is freed while the lock is held.
        if tokens == UNKNOWN || !unsafe { entry.layout.matches(value.as_ptr()) } {
            return None;
        }
        Some(Known { tokens, binary: entry.binary, stamp: entry.stamp })
    })
}

/// Remember that `value`, holding what `trace` recorded, renders to `text_len` bytes of
/// `tokens` tokens in `encoding` (and `binary` tokens of media).
pub fn store(
    value: &Bound<'_, PyAny>,
    trace: Trace,
    encoding: EncodingId,
    tokens: usize,
    binary: u64,
    text_len: usize,
) {
    let Ok(tokens) = u32::try_from(tokens) else {
        return;
    };
    let Some(slot) = encoding.memo_slot() else { return };
    if tokens == UNKNOWN || !enabled() {
        return;
    }
    let address = value.as_ptr() as usize;
    let cost = text_len + 16 * trace.objects.len();
    if cost > MAX_MEMO_BYTES / 4 {
        return;
    }
    let mut entry_tokens = [UNKNOWN; MEMO_SLOTS];
    entry_tokens[slot] = tokens;
    let stamp = STAMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut entry = Entry { layout: Layout::of(&trace), _held: trace.objects, tokens: entry_tokens, binary, stamp };
    let mut evicted = Vec::new();
    with_memo(|m| {
        if let Some(old) = m.remove(address) {
            // Counted before in another encoding, with the same contents: keep those
            // counts, and the stamp (nothing changed for a reader that relied on it).
            // Safety: as in `lookup`.
            if unsafe { old.layout.matches(value.as_ptr()) } {
                for (mine, theirs) in entry.tokens.iter_mut().zip(old.tokens) {
                    if *mine == UNKNOWN {
                        *mine = theirs;
                    }
                }
                entry.stamp = old.stamp;
            }
            evicted.push(old);
        }
        m.insert(address, cost, entry, MAX_MEMO_BYTES, &mut evicted);
    });
    drop(evicted); // references released outside the lock
}

/// A container the reader rendered and recorded, whose text is counted later with the
/// history's other texts (off the reading thread, see `read/mod.rs`), then stored by
/// [`store_deferred`]. Its stamp is drawn now, so that a part read meanwhile can note it
/// (`part_memo.rs`, `history_memo.rs`) before the entry exists.
pub struct Deferred {
    value: Py<PyAny>,
    trace: Trace,
    /// The stamp the entry will have.
    pub stamp: u64,
    binary: u64,
    text_len: usize,
    /// Tokens of the text, once counted.
    pub tokens: Option<u64>,
}

impl Deferred {
    /// The address of the container.
    pub fn address(&self) -> usize {
        self.value.as_ptr() as usize
    }
}

/// `value`, holding what `trace` recorded (nothing of Python ran between the two), rendered
/// to `text_len` bytes and `binary` tokens of media, to be stored once its text is counted.
pub fn defer(value: &Bound<'_, PyAny>, trace: Trace, binary: u64, text_len: usize) -> Deferred {
    let stamp = STAMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Deferred { value: value.clone().unbind(), trace, stamp, binary, text_len, tokens: None }
}

/// Store the containers of [`defer`] that were counted, each with its own stamp, under
/// one lock. Unlike [`store`], an older entry's counts in other encodings are kept only
/// when it recorded the very objects this trace did (the container may have changed since
/// it was recorded: its current contents say nothing about the trace).
pub fn store_deferred(deferred: Vec<Deferred>, encoding: EncodingId) {
    let Some(slot) = encoding.memo_slot() else { return };
    if deferred.is_empty() || !enabled() {
        return;
    }
    let mut evicted = Vec::new();
    let mut skipped = Vec::new();
    let mut released = Vec::new();
    with_memo(|m| {
        m.reserve(deferred.len());
        for d in deferred {
            let (Some(tokens), cost) = (d.tokens, d.text_len + 16 * d.trace.objects.len()) else {
                skipped.push(d);
                continue;
            };
            let Ok(tokens) = u32::try_from(tokens) else {
                skipped.push(d);
                continue;
            };
            if tokens == UNKNOWN || cost > MAX_MEMO_BYTES / 4 {
                skipped.push(d);
                continue;
            }
            let address = d.address();
            let mut entry_tokens = [UNKNOWN; MEMO_SLOTS];
            entry_tokens[slot] = tokens;
            let layout = Layout::of(&d.trace);
            if let Some(old) = m.remove(address) {
                if old.layout.parts() == layout.parts() {
                    for (mine, theirs) in entry_tokens.iter_mut().zip(old.tokens) {
                        if *mine == UNKNOWN {
                            *mine = theirs;
                        }
                    }
                }
                evicted.push(old);
            }
            let Deferred { value, trace, stamp, binary, .. } = d;
            released.push(value); // the trace holds it too (its first object)
            let entry = Entry { layout, _held: trace.objects, tokens: entry_tokens, binary, stamp };
            m.insert(address, cost, entry, MAX_MEMO_BYTES, &mut evicted);
        }
    });
    drop((evicted, skipped, released)); // references released outside the lock
}

/// Forget everything (with `clear_cache`).
pub fn clear() {
    let old = with_memo(std::mem::take);
    drop(old);
}
