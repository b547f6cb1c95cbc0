//! A memo of the content hashes of large strings, by object identity.
//!
//! Re-reading a history hashes every string again to find its count in the content
//! cache; for the large ones (tool results of kilobytes) that hashing is most of the
//! cost. Python strings are immutable, so while this memo holds a strong reference to a
//! string, its address names its content: a hit returns the hash without reading the
//! bytes. The counts themselves stay in the content cache, keyed by content; only the
//! hashing is skipped. Bounded by the bytes it keeps alive, evicted by CLOCK.
//!
//! A string read for the first time is not hashed by the reader: the thread that counts
//! it hashes it (for the content cache) and the reader, once the chunk comes back,
//! remembers that hash here (`read::release`), so a cold read hashes each large string
//! once, off the thread that holds the GIL.

use crate::fork::Global;
use crate::slab::Slab;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyString;
use std::sync::Mutex;

/// Strings shorter than this are hashed directly: a lookup would cost as much.
pub const MIN_MEMO_BYTES: usize = 1024;

/// The most string bytes the memo keeps alive.
pub const MAX_MEMO_BYTES: usize = 64 << 20;

struct Entry {
    /// Keeps the string alive, so its address cannot be reused by another object.
    _string: PyBackedStr,
    hash: u128,
}

type Memo = Slab<Entry>;

/// Replaced in a child forked while another thread held it (see `fork.rs`).
static MEMO: Global<Mutex<Option<Memo>>> = Global::new(|| Mutex::new(None));

fn with_memo<R>(f: impl FnOnce(&mut Memo) -> R) -> R {
    f(MEMO.lock().get_or_insert_with(Memo::default))
}

pub(super) fn after_fork_in_child() {
    MEMO.reset_if_held();
}

/// The content hash of `string`, if remembered.
pub fn known_hash(string: &Bound<'_, PyString>) -> Option<u128> {
    let address = string.as_ptr() as usize;
    with_memo(|m| m.get_mut(address).map(|e| e.hash))
}

/// Remember the content hashes of large strings, each keyed by the address of the string
/// that holds it (the strings are moved in: no reference is taken). Called with the GIL
/// held: evicted entries release their strings.
pub fn remember(_py: Python<'_>, hashed: impl IntoIterator<Item = (PyBackedStr, u128)>) {
    let mut evicted = Vec::new();
    with_memo(|m| {
        for (string, hash) in hashed {
            let address = string.as_py_str().as_ptr() as usize;
            let len = string.len();
            // The same string met twice in one read: one entry.
            evicted.extend(m.remove(address));
            m.insert(address, len, Entry { _string: string, hash }, MAX_MEMO_BYTES, &mut evicted);
        }
    });
    drop(evicted); // decrefs outside the lock
}

/// Forget every string (with `clear_cache`).
pub fn clear() {
    let old = with_memo(std::mem::take);
    drop(old);
}
