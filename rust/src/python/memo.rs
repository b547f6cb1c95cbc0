//! A memo of the content hashes of large strings, by object identity.
//!
//! Re-reading a history hashes every string again to find its count in the content
//! cache; for the large ones (tool results of kilobytes) that hashing is most of the
//! cost. Python strings are immutable, so while this memo holds a strong reference to a
//! string, its address names its content: a hit returns the hash without reading the
//! bytes. The counts themselves stay in the content cache, keyed by content; only the
//! hashing is skipped. Bounded by the bytes it keeps alive, evicted by CLOCK.

use crate::fork::Global;
use crate::slab::Slab;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::Mutex;

/// Strings shorter than this are hashed directly: a lookup would cost as much.
pub const MIN_MEMO_BYTES: usize = 1024;

/// The most string bytes the memo keeps alive.
pub const MAX_MEMO_BYTES: usize = 64 << 20;

struct Entry {
    /// Keeps the string alive, so its address cannot be reused by another object.
    _string: Py<PyString>,
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

/// The content hash of `string`, whose UTF-8 is `text`: remembered for large strings.
pub fn content_hash(string: &Bound<'_, PyString>, text: &str) -> u128 {
    let address = string.as_ptr() as usize;
    if let Some(hash) = with_memo(|m| m.get_mut(address).map(|e| e.hash)) {
        return hash;
    }
    let hash = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
    let entry = Entry { _string: string.clone().unbind(), hash };
    let mut evicted = Vec::new();
    with_memo(|m| m.insert(address, text.len(), entry, MAX_MEMO_BYTES, &mut evicted));
    drop(evicted); // decrefs outside the lock
    hash
}

/// Forget every string (with `clear_cache`).
pub fn clear() {
    let old = with_memo(std::mem::take);
    drop(old);
}
