//! A memo of pydantic-ai parts already read, by object identity, checked on every use.
//!
//! Reading a part means fetching a few attributes (`part_kind`, `content`, `tool_name`,
//! ...), borrowing their strings, handing them to be counted and, later, releasing
//! them. For a part met before, most of that is not needed: this memo keeps, per part
//! object, the attribute values it held (strong references: no other object can take
//! their addresses) and the tokens they counted to. A later read fetches the same
//! attributes again and compares addresses only; when every one is the same object (an
//! immutable one, or a dict or list whose value-memo stamp shows it still holds what it
//! held then), the remembered tokens stand. Any difference is a miss and the part is
//! read in full.
//!
//! Entries are checked without the lock held (fetching an attribute may run Python code,
//! which may let other threads run): a generation counter, bumped whenever an entry is
//! dropped, tells whether the objects compared against stayed alive meanwhile.
//! Only used with the GIL held. Bounded by the text the pinned values hold, evicted by
//! CLOCK, cleared with the content cache, bypassed when the cache is disabled.

use crate::encoding::{EncodingId, MEMO_SLOTS};
use crate::fork::Global;
use crate::history::{PartKind, Side};
use crate::slab::Slab;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The most text (bytes of the pinned strings, roughly) the memo may keep alive.
pub const MAX_MEMO_BYTES: usize = 64 << 20;

/// Most attribute fetches a memoized part may need (a named retry prompt needs five).
pub const MAX_FIELDS: usize = 5;

const UNKNOWN: u64 = u64::MAX;

/// One attribute fetch: which attribute, the address of what it returned (0: the
/// attribute was missing) and, for a dict or list, the value memo's stamp of what it
/// held then (0 otherwise).
pub type Fetch = (u8, usize, u64);

/// Fetches as kept: addresses, and `stamp << 3 | field` (small enough to copy cheaply).
#[derive(Clone, Copy)]
pub struct Fetches {
    addresses: [usize; MAX_FIELDS],
    fields: [u64; MAX_FIELDS],
    n: u8,
}

impl Fetches {
    pub fn new(all: impl IntoIterator<Item = Fetch>) -> Fetches {
        let mut f = Fetches { addresses: [0; MAX_FIELDS], fields: [0; MAX_FIELDS], n: 0 };
        for (i, (field, address, stamp)) in all.into_iter().take(MAX_FIELDS).enumerate() {
            f.addresses[i] = address;
            f.fields[i] = stamp << 3 | field as u64;
            f.n = i as u8 + 1;
        }
        f
    }

    /// Every fetch, in the order made.
    pub fn iter(&self) -> impl Iterator<Item = Fetch> + '_ {
        (0..self.n as usize).map(|i| ((self.fields[i] & 7) as u8, self.addresses[i], self.fields[i] >> 3))
    }
}

/// What a read needs from an entry, copied out of the memo.
pub struct Hit {
    fetches: Fetches,
    /// The part's kind; a call's or result's id is the one of this read, not this one.
    pub kind: PartKind,
    pub tokens: u64,
    pub stub_tokens: u64,
    generation: u64,
}

impl Hit {
    pub fn fetches(&self) -> impl Iterator<Item = Fetch> + '_ {
        self.fetches.iter()
    }

    /// Whether every object compared against was alive throughout (no entry dropped).
    pub fn still_valid(&self) -> bool {
        GENERATION.load(Ordering::Acquire) == self.generation
    }
}

struct Entry {
    _held: Vec<Py<PyAny>>,
    fetches: Fetches,
    side: Side,
    kind: PartKind,
    tokens: [u64; MEMO_SLOTS],
    stub_tokens: [u64; MEMO_SLOTS],
}

type Memo = Slab<Entry>;

/// Replaced in a child forked while another thread held it (see `fork.rs`).
static MEMO: Global<Mutex<Option<Memo>>> = Global::new(|| Mutex::new(None));
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn with_memo<R>(f: impl FnOnce(&mut Memo) -> R) -> R {
    f(MEMO.lock().get_or_insert_with(Memo::default))
}

pub(super) fn after_fork_in_child() {
    MEMO.reset_if_held();
}

fn enabled() -> bool {
    crate::cache::global().enabled()
}

/// The entry for the part at `address`, read on `side`, if it has tokens for `encoding`
/// (and stub tokens, when `stubs`).
pub fn lookup(address: usize, side: Side, encoding: EncodingId, stubs: bool) -> Option<Hit> {
    if !enabled() {
        return None;
    }
    let slot = encoding.memo_slot()?;
    let generation = GENERATION.load(Ordering::Acquire);
    with_memo(|m| {
        let e = m.get_mut(address)?;
        let (tokens, stub_tokens) = (e.tokens[slot], e.stub_tokens[slot]);
        if e.side != side
            || tokens == UNKNOWN
            || (stubs && matches!(e.kind, PartKind::Call(_)) && stub_tokens == UNKNOWN)
        {
            return None;
        }
        Some(Hit { fetches: e.fetches, kind: e.kind, tokens, stub_tokens, generation })
    })
}

/// A part read in full, to remember once its tokens are counted.
pub struct Pending {
    pub part_index: usize,
    pub part: Py<PyAny>,
    pub side: Side,
    pub kind: PartKind,
    pub fetched: Vec<(u8, Option<Py<PyAny>>, u64)>,
    /// Roughly the bytes of text the fetched values hold.
    pub text_bytes: usize,
}

/// Remember parts read in full, with the tokens (and stub tokens, if `stubs`) counted for
/// them in `encoding` (`tokens(part_index)`).
pub fn store(pending: Vec<Pending>, tokens: impl Fn(usize) -> (u64, u64), encoding: EncodingId, stubs: bool) {
    let Some(slot) = encoding.memo_slot() else { return };
    if pending.is_empty() || !enabled() {
        return;
    }
    let (mut evicted, mut skipped) = (Vec::new(), Vec::new());
    with_memo(|m| {
        m.reserve(pending.len());
        for p in pending {
            let n = p.fetched.len();
            if n > MAX_FIELDS {
                skipped.push(p); // its references too are released outside the lock
                continue;
            }
            let address = p.part.as_ptr() as usize;
            let fetches = Fetches::new(
                p.fetched
                    .iter()
                    .map(|(field, value, stamp)| (*field, value.as_ref().map_or(0, |v| v.as_ptr() as usize), *stamp)),
            );
            let (t, s) = tokens(p.part_index);
            let mut entry_tokens = [UNKNOWN; MEMO_SLOTS];
            let mut entry_stubs = [UNKNOWN; MEMO_SLOTS];
            entry_tokens[slot] = t;
            if stubs {
                entry_stubs[slot] = s;
            }
            let mut held = Vec::with_capacity(n + 1);
            held.push(p.part);
            held.extend(p.fetched.into_iter().filter_map(|(_, v, _)| v));
            let cost = p.text_bytes + 64 * held.len();
            let entry = Entry {
                _held: held,
                fetches,
                side: p.side,
                kind: p.kind,
                tokens: entry_tokens,
                stub_tokens: entry_stubs,
            };
            let dropped = evicted.len();
            evicted.extend(m.remove(address));
            m.insert(address, cost, entry, MAX_MEMO_BYTES, &mut evicted);
            if evicted.len() > dropped {
                GENERATION.fetch_add(1, Ordering::AcqRel);
            }
        }
    });
    drop((evicted, skipped)); // references released outside the lock
}

/// Forget every part (with `clear_cache`).
pub fn clear() {
    let old = with_memo(std::mem::take);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    drop(old);
}
