//! Byte-pair encoding of one piece, counting tokens only.
//!
//! The merge rule is tiktoken's: repeatedly merge the adjacent pair whose concatenation
//! has the lowest rank, the leftmost one on ties, until no pair is in the vocabulary.
//! Short pieces (almost all of them) use tiktoken's own quadratic scan over a small
//! vector, which is fastest there; long pieces (a megabyte of one character is a single
//! piece) use a heap with lazy invalidation, O(n log n), so no input goes quadratic.
//! Both produce the same merges; the tests check one against the other.
//!
//! Before any merging, a piece is looked up whole (most pieces of prose and code are
//! one token), then in a small per-thread memo of the pieces merged recently (names,
//! words and indentation recur). See `docs/performance.md` for the figures.

use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

#[path = "vocab_table.rs"]
mod table;

use crate::pretokenize::Pieces;
use table::Slot;

pub type Rank = u32;
pub type Ranks = FxHashMap<Vec<u8>, Rank>;

/// Pieces at least this long use the heap merge (tiktoken switches at 100 bytes; with
/// part ranks and its pair cache the heap is cheaper from about 40: 64 is between).
const LARGE_PIECE: usize = 64;

/// The vocabulary of one encoding: token bytes to rank, in the hash table of
/// `vocab_table.rs` (compiled into the binary for the embedded encodings).
pub struct Vocabulary {
    table: Cow<'static, [Slot]>,
    /// The tokens' bytes, concatenated by rank.
    blob: Cow<'static, [u8]>,
    /// Each token's length, by rank.
    lens: Cow<'static, [u8]>,
    /// No token is longer: longer slices are not looked up at all.
    max_token_len: usize,
    /// This vocabulary's entries in the per-thread memo carry this id (never 0).
    memo_id: u32,
    /// The rank of each single byte when every byte is a token (the byte-level
    /// vocabularies): then the heap merge keeps each part's rank beside it. Found at the
    /// first heap merge, not at load: 256 probes of the table fault in pages all over it
    /// (8 MB more resident after a first count of "Hello, world!", measured).
    byte_ranks: std::sync::OnceLock<Option<Box<[Rank; 256]>>>,
}

/// Ids below 16 are the embedded vocabularies' (`encoding.rs`); vocabularies built at run
/// time take the next.
static NEXT_MEMO_ID: AtomicU32 = AtomicU32::new(16);

impl Vocabulary {
    /// A vocabulary built at run time from its tokens, ranks `0..ranks.len()`.
    ///
    /// # Panics
    /// If the ranks are not exactly `0..ranks.len()` or a token is empty or longer than 255 bytes.
    pub fn new(ranks: Ranks) -> Self {
        let mut by_rank: Vec<(&[u8], Rank)> = ranks.iter().map(|(k, &v)| (k.as_slice(), v)).collect();
        by_rank.sort_unstable_by_key(|&(_, rank)| rank);
        assert!(by_rank.iter().enumerate().all(|(i, &(_, r))| r as usize == i), "ranks are 0..n");
        let tokens: Vec<&[u8]> = by_rank.into_iter().map(|(t, _)| t).collect();
        let (slots, blob, lens) = table::build(&tokens);
        Self::from_parts(Cow::Owned(slots), Cow::Owned(blob), Cow::Owned(lens), NEXT_MEMO_ID.fetch_add(1, Relaxed))
    }

    /// An embedded vocabulary: the three arrays `build.rs` laid out, taken as they are.
    /// `table` must be 16-byte aligned and in the target's byte order.
    pub(crate) fn embedded(table: &'static [u8], blob: &'static [u8], lens: &'static [u8], memo_id: u32) -> Self {
        assert!(table.as_ptr() as usize % std::mem::align_of::<Slot>() == 0, "the table is aligned");
        assert!(table.len() % table::SLOT_BYTES == 0 && (table.len() / table::SLOT_BYTES).is_power_of_two());
        // SAFETY: `Slot` is `repr(C)`, 16 bytes of plain integers with no padding, so any
        // bytes are a valid `Slot`; the pointer is aligned and the length a whole number
        // of slots (both checked above), and the bytes are 'static and immutable.
        let slots: &'static [Slot] =
            unsafe { std::slice::from_raw_parts(table.as_ptr().cast::<Slot>(), table.len() / table::SLOT_BYTES) };
        Self::from_parts(Cow::Borrowed(slots), Cow::Borrowed(blob), Cow::Borrowed(lens), memo_id)
    }

    fn from_parts(
        table: Cow<'static, [Slot]>,
        blob: Cow<'static, [u8]>,
        lens: Cow<'static, [u8]>,
        memo_id: u32,
    ) -> Self {
        let max_token_len = lens.iter().copied().max().unwrap_or(0) as usize;
        Vocabulary { table, blob, lens, max_token_len, memo_id, byte_ranks: std::sync::OnceLock::new() }
    }

    /// The rank of every single byte, when each is a token.
    fn byte_ranks(&self) -> Option<&[Rank; 256]> {
        self.byte_ranks
            .get_or_init(|| {
                let mut byte_ranks = Box::new([0; 256]);
                for (b, r) in byte_ranks.iter_mut().enumerate() {
                    *r = self.rank(&[b as u8])?;
                }
                Some(byte_ranks)
            })
            .as_deref()
    }

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The tokens' bytes, by rank (rank 0 first).
    pub fn tokens(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut offset = 0;
        self.lens.iter().map(move |&len| {
            let token = &self.blob[offset..offset + len as usize];
            offset += len as usize;
            token
        })
    }

    /// Bytes of the longest token: no token is longer, so a text of `n` bytes has at
    /// least `n / max_token_len` tokens.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// The rank of the token `bytes`, if it is one.
    #[inline(always)]
    pub fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        if bytes.len() > self.max_token_len {
            return None;
        }
        let head = table::head(bytes);
        table::lookup(&self.table, &self.blob, bytes, head, table::hash(bytes, head))
    }

    /// Number of tokens of one pre-tokenized piece (tiktoken's `encode_ordinary` per piece).
    #[inline]
    pub fn count_piece(&self, piece: &[u8]) -> usize {
        // A single byte is always a token in the byte-level vocabularies used here.
        if piece.len() <= 1 || self.rank(piece).is_some() {
            return piece.len().min(1);
        }
        self.merge(piece, &mut Vec::new())
    }

    /// Total tokens of `pieces`, each counted as [`Self::count_piece`] does, through this
    /// thread's memo of recently merged pieces.
    pub fn count_pieces(&self, pieces: Pieces<'_>) -> usize {
        let text = pieces.text();
        let mut pieces = Some(pieces);
        let counted = MEMO.try_with(|memo| {
            let mut memo = memo.try_borrow_mut().ok()?;
            let memo = &mut *memo;
            Some(self.count_batched(text, pieces.take()?, memo))
        });
        // Without the memo only while this thread is being torn down.
        counted.ok().flatten().unwrap_or_else(|| pieces.into_iter().flatten().map(|p| self.count_piece(p)).sum())
    }

    /// The pieces in batches of [`BATCH`]: the scanner finds a batch's pieces, counting
    /// single bytes at once, and for the others computes the head and hash and
    /// prefetches the home slot in the table; then the batch is looked up and counted.
    /// The scanner's mispredicted branches then come while no table load is in flight,
    /// and the loads of a batch overlap (see `docs/performance.md`, third round).
    /// Same counts as [`Self::count_piece`] piece by piece: only the order of the work
    /// changes.
    #[inline(always)]
    fn count_batched(&self, text: &[u8], mut pieces: Pieces<'_>, memo: &mut Memo) -> usize {
        let mut total = 0;
        let mut batch: [(&[u8], (u64, u64)); BATCH] = [(&[], (0, 0)); BATCH];
        let bits = self.table.len().trailing_zeros();
        loop {
            let mut k = 0;
            while k < BATCH {
                let Some(piece) = pieces.next() else { break };
                // A single byte is a token (the scanner's last branches predict this one).
                if piece.len() <= 1 {
                    total += piece.len();
                    continue;
                }
                let (head, h) = head_and_hash(text, piece);
                prefetch(&self.table[table::home(h, bits)]);
                batch[k] = (piece, (head, h));
                k += 1;
            }
            for &(piece, hash) in &batch[..k] {
                total += self.count_piece_memo(piece, hash, memo);
            }
            if k < BATCH {
                return total;
            }
        }
    }

    /// Tokens of `piece`, whose [`head_and_hash`] is `(head, h)`.
    #[inline(always)]
    fn count_piece_memo(&self, piece: &[u8], (head, h): (u64, u64), memo: &mut Memo) -> usize {
        let n = piece.len();
        if n <= 1 {
            return n;
        }
        if n <= self.max_token_len && table::lookup(&self.table, &self.blob, piece, head, h).is_some() {
            return 1;
        }
        let h = h ^ (self.memo_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if n <= SHORT_KEY {
            return memo
                .short
                .get_or_insert(self.memo_id, piece, h, &mut memo.clock, || self.merge(piece, &mut memo.parts));
        }
        if n <= MID_KEY {
            return memo
                .mid
                .get_or_insert(self.memo_id, piece, h, &mut memo.clock, || self.merge(piece, &mut memo.parts));
        }
        if n > LONG_MEMO_MAX {
            return self.merge(piece, &mut memo.parts);
        }
        let set = (h >> (64 - LONG_MEMO_SETS_BITS)) as usize * LONG_WAYS;
        let mut free = None;
        for way in set..set + LONG_WAYS {
            let entry = memo.long[way];
            let start = entry.offset as usize;
            if entry.owner == self.memo_id && entry.len as usize == n && memo.arena[start..start + n] == *piece {
                return entry.count as usize;
            }
            if entry.owner == 0 && free.is_none() {
                free = Some(way);
            }
        }
        let count = self.merge(piece, &mut memo.parts);
        let way = if memo.arena.len() + n > LONG_MEMO_ARENA {
            memo.arena.clear();
            memo.long.fill(LongEntry::default());
            set
        } else {
            free.unwrap_or_else(|| {
                memo.clock = memo.clock.wrapping_add(1);
                set + memo.clock as usize % LONG_WAYS
            })
        };
        memo.long[way] =
            LongEntry { owner: self.memo_id, len: n as u32, count: count as u32, offset: memo.arena.len() as u32 };
        memo.arena.extend_from_slice(piece);
        count
    }

    /// Tokens of a piece that is not itself a token (at least two bytes).
    fn merge(&self, piece: &[u8], parts: &mut Vec<(usize, Rank)>) -> usize {
        if piece.len() < LARGE_PIECE {
            self.merge_small(piece, parts)
        } else {
            self.merge_large(piece)
        }
    }

    /// tiktoken's `_byte_pair_merge`: a vector of part starts with the rank of the pair
    /// each starts, rescanned for its minimum after every merge.
    fn merge_small(&self, piece: &[u8], parts: &mut Vec<(usize, Rank)>) -> usize {
        let n = piece.len();
        parts.clear();
        parts.extend((0..n - 1).map(|i| (i, self.rank(&piece[i..i + 2]).unwrap_or(Rank::MAX))));
        parts.push((n - 1, Rank::MAX));
        parts.push((n, Rank::MAX));
        let pair_rank = |parts: &[(usize, Rank)], i: usize| {
            if i + 3 < parts.len() {
                self.rank(&piece[parts[i].0..parts[i + 3].0]).unwrap_or(Rank::MAX)
            } else {
                Rank::MAX
            }
        };
        loop {
            let mut min = (Rank::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
            if min.0 == Rank::MAX {
                break;
            }
            let i = min.1;
            if i > 0 {
                parts[i - 1].1 = pair_rank(parts, i - 1);
            }
            parts[i].1 = pair_rank(parts, i);
            parts.remove(i + 1);
        }
        parts.len() - 1
    }

    /// [`Self::merge_large_bytes`]'s merges, cheaper: each part's own rank is kept beside
    /// it, so the rank of two adjacent parts joined is a function of their two ranks and
    /// is looked up first in a small cache of pairs local to this piece (a run of one
    /// character or a repeated pattern, most long pieces, asks about a few pairs
    /// thousands of times); the heap holds (rank, start) packed in one `u64`.
    fn merge_large(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        let Some(byte_ranks) = self.byte_ranks().filter(|_| n < u32::MAX as usize) else {
            return self.merge_large_bytes(piece);
        };
        const GONE: u32 = u32::MAX;
        let slots = n.next_power_of_two().clamp(64, 4096);
        let shift = 64 - slots.trailing_zeros();
        // (the two ranks, the rank of the two joined); the key u64::MAX is empty (no
        // rank is u32::MAX).
        let mut cache = vec![(u64::MAX, Rank::MAX); slots];
        let mut pair = |a: Rank, b: Rank, bytes: &[u8]| {
            let key = (a as u64) << 32 | b as u64;
            let slot = &mut cache[(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize];
            if slot.0 != key {
                *slot = (key, self.rank(bytes).unwrap_or(Rank::MAX));
            }
            slot.1
        };
        // next[i]: start of the part after the part starting at i (n at the end);
        // prev[i]: start of the part before it; tok[i]: the part's rank. next[i] == GONE
        // once merged into its left.
        let mut next: Vec<u32> = (1..=n as u32).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut tok: Vec<Rank> = piece.iter().map(|&b| byte_ranks[b as usize]).collect();
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            let rank = pair(tok[i], tok[i + 1], &piece[i..i + 2]);
            if rank != Rank::MAX {
                heap.push(Reverse((rank as u64) << 32 | i as u64));
            }
        }
        let n32 = n as u32;
        let mut parts = n;
        while let Some(Reverse(key)) = heap.pop() {
            let (rank, i) = ((key >> 32) as Rank, key as u32 as usize);
            let j = next[i];
            if j == GONE || j >= n32 {
                continue;
            }
            let k = next[j as usize];
            if pair(tok[i], tok[j as usize], &piece[i..k as usize]) != rank {
                continue;
            }
            next[i] = k;
            next[j as usize] = GONE;
            tok[i] = rank;
            if k < n32 {
                prev[k as usize] = i as u32;
                let r = pair(rank, tok[k as usize], &piece[i..next[k as usize] as usize]);
                if r != Rank::MAX {
                    heap.push(Reverse((r as u64) << 32 | i as u64));
                }
            }
            if i > 0 {
                let p = prev[i] as usize;
                let r = pair(tok[p], rank, &piece[p..k as usize]);
                if r != Rank::MAX {
                    heap.push(Reverse((r as u64) << 32 | p as u64));
                }
            }
            parts -= 1;
        }
        parts
    }

    /// Same merges as [`Self::merge_small`], in O(n log n): a doubly linked list of parts
    /// and a min-heap of (rank, start) pair candidates. A candidate is stale when its left
    /// part was merged away or its pair no longer has that rank; stale ones are skipped.
    /// Ordering by (rank, start) reproduces "lowest rank, leftmost on ties".
    fn merge_large_bytes(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        const GONE: usize = usize::MAX;
        // next[i]: start of the part after the part starting at i (n at the end);
        // prev[i]: start of the part before it. next[i] == GONE once merged into its left.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            if let Some(rank) = self.rank(&piece[i..i + 2]) {
                heap.push(Reverse((rank, i)));
            }
        }
        let mut parts = n;
        while let Some(Reverse((rank, i))) = heap.pop() {
            let j = next[i];
            if j == GONE || j >= n {
                continue;
            }
            let k = next[j];
            if self.rank(&piece[i..k]) != Some(rank) {
                continue;
            }
            next[i] = k;
            next[j] = GONE;
            if k < n {
                prev[k] = i;
                if let Some(r) = self.rank(&piece[i..next[k]]) {
                    heap.push(Reverse((r, i)));
                }
            }
            if i > 0 {
                let p = prev[i];
                if let Some(r) = self.rank(&piece[p..k]) {
                    heap.push(Reverse((r, p)));
                }
            }
            parts -= 1;
        }
        parts
    }
}

/// Pieces scanned ahead of their lookups in [`Vocabulary::count_pieces`].
const BATCH: usize = 32;

/// A hint to bring `slot`'s cache line in; no effect on what any load returns.
#[inline(always)]
fn prefetch(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and cannot fault;
    // the pointer comes from a reference anyway. SSE is in every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((slot as *const Slot).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// [`table::head`] and [`table::hash`] of `piece`, a non-empty slice of `text`, from two
/// whole 8-byte loads of the text around it where the text has them: no branch on the
/// piece's length (pieces of 1 to 8+ bytes follow each other in no predictable order).
#[inline(always)]
fn head_and_hash(text: &[u8], piece: &[u8]) -> (u64, u64) {
    let n = piece.len();
    let start = piece.as_ptr() as usize - text.as_ptr() as usize;
    let end = start + n;
    match (text.get(start..start + 8), end.checked_sub(8).and_then(|s| text.get(s..end))) {
        (Some(first), Some(last)) => {
            let first = u64::from_le_bytes(first.try_into().unwrap());
            let last = u64::from_le_bytes(last.try_into().unwrap());
            let head = first & ((1u128 << (8 * n.min(8))) - 1) as u64;
            let tail = last & ((n > 8) as u64).wrapping_neg();
            (head, table::hash_parts(n, head, tail))
        }
        _ => {
            let head = table::head(piece);
            (head, table::hash(piece, head))
        }
    }
}

/// The short memo: pieces up to [`SHORT_KEY`] bytes (nine in ten of the pieces that need
/// merging) in 32-byte entries, 2^16 of them (2 MiB, and 256 KiB of tags), in sets of 16.
/// 2^17 held the 5.3 MB corpus' pieces better but missed the last-level cache more on
/// the messages corpus (see docs/performance.md).
const SHORT_KEY: usize = 24;
const SHORT_SETS_BITS: u32 = 12;
/// The middle memo: pieces up to [`MID_KEY`] bytes in 64-byte entries, 2^13 of them (512 KiB).
const MID_KEY: usize = 56;
const MID_SETS_BITS: u32 = 9;
/// Ways per set: their tags (`u32`) fill one cache line.
const MEMO_WAYS: usize = 16;
/// Longer pieces, up to [`LONG_MEMO_MAX`] bytes, go to a third memo whose entries point
/// into an arena of [`LONG_MEMO_ARENA`] bytes, emptied when full. Longer ones are merged
/// every time (they take O(n log n) anyway).
const LONG_MEMO_SETS_BITS: u32 = 10;
const LONG_WAYS: usize = 8;
const LONG_MEMO_MAX: usize = 64 << 10;
const LONG_MEMO_ARENA: usize = 4 << 20;

/// One memoized piece of at most `K` bytes: which vocabulary, the piece, its count.
/// 8 + `K` bytes (32 or 64: half a cache line or one).
#[repr(C)]
#[derive(Clone, Copy)]
struct MemoEntry<const K: usize> {
    /// [`Vocabulary::memo_id`] of the vocabulary that counted it; 0 for an empty entry.
    owner: u32,
    len: u16,
    count: u16,
    key: [u8; K],
}

/// `n` values of `T` in zeroed memory straight from the allocator, so its pages are
/// touched only when used (`Box::new_zeroed_slice`, stable only since Rust 1.92, above
/// the crate's MSRV).
///
/// # Safety
/// All-zero bytes must be a valid `T`.
unsafe fn zeroed_slice<T>(n: usize) -> Box<[T]> {
    let layout = std::alloc::Layout::array::<T>(n).expect("memo size fits in memory");
    if layout.size() == 0 {
        return Vec::new().into_boxed_slice();
    }
    // SAFETY: the layout is non-zero-sized; the allocation is zeroed, which the caller
    // guarantees is a valid `[T; n]`, and owned by the box from here on (freed with the
    // same layout, which `Box<[T]>` computes from `n`).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut T;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n))
    }
}

/// A set-associative memo of pieces of at most `K` bytes, keyed by the hash the
/// vocabulary lookup already computed. A set is 16 tags in one cache line; a tag equal
/// to the piece's (32 bits of the hash, never 0) points at the entry to confirm, which
/// holds the piece itself, so a count is never another piece's.
struct SetMemo<const K: usize, const BITS: u32> {
    /// Per entry, 32 bits of the hash of its piece (or'ed with 1), 0 while empty.
    tags: Box<[u32]>,
    entries: Box<[MemoEntry<K>]>,
}

impl<const K: usize, const BITS: u32> SetMemo<K, BITS> {
    fn new() -> Self {
        // SAFETY: all-zero bytes are a valid `MemoEntry` (integers and bytes).
        let entries = unsafe { zeroed_slice::<MemoEntry<K>>(MEMO_WAYS << BITS) };
        SetMemo { tags: vec![0u32; MEMO_WAYS << BITS].into_boxed_slice(), entries }
    }

    /// The count of `piece` (at most `K` bytes, hash `h`) for vocabulary `owner`: the
    /// memoized one, or `count()` stored.
    #[inline(always)]
    fn get_or_insert(
        &mut self,
        owner: u32,
        piece: &[u8],
        h: u64,
        clock: &mut u32,
        count: impl FnOnce() -> usize,
    ) -> usize {
        let n = piece.len();
        debug_assert!(n <= K);
        let tag = h as u32 | 1;
        let set = (h >> (64 - BITS)) as usize * MEMO_WAYS;
        let tags: &[u32; MEMO_WAYS] = self.tags[set..set + MEMO_WAYS].try_into().unwrap();
        // The ways whose tag matches, as a bit mask built without branching (a branch
        // per way mispredicted on every hit whose way differs from the last one's).
        let mut hits = 0u32;
        let mut empty = 0u32;
        for (way, &t) in tags.iter().enumerate() {
            hits |= ((t == tag) as u32) << way;
            empty |= ((t == 0) as u32) << way;
        }
        while hits != 0 {
            let entry = &self.entries[set + hits.trailing_zeros() as usize];
            if entry.owner == owner && entry.len as usize == n && entry.key[..n] == *piece {
                return entry.count as usize;
            }
            hits &= hits - 1;
        }
        let count = count();
        // An empty way if there is one, else one in turn (a clock over all sets: as good
        // as random replacement, and no state per set).
        let way = if empty != 0 {
            empty.trailing_zeros() as usize
        } else {
            *clock = clock.wrapping_add(1);
            *clock as usize % MEMO_WAYS
        };
        self.tags[set + way] = tag;
        let entry = &mut self.entries[set + way];
        entry.owner = owner;
        entry.len = n as u16;
        entry.count = count as u16;
        entry.key[..n].copy_from_slice(piece);
        count
    }
}

/// An entry of the long memo: the piece is `len` bytes at `offset` in the arena.
#[derive(Clone, Copy, Default)]
struct LongEntry {
    owner: u32,
    len: u32,
    count: u32,
    offset: u32,
}

/// A memo of pieces that needed merging, keyed by the hash the vocabulary lookup
/// already computed, in sets of eight. One per
/// thread, so there is no locking and nothing shared; a forked child gets a copy of it,
/// which is as valid there as in the parent (vocabularies are immutable).
struct Memo {
    short: SetMemo<SHORT_KEY, SHORT_SETS_BITS>,
    mid: SetMemo<MID_KEY, MID_SETS_BITS>,
    /// Picks the way a new piece replaces in a full set.
    clock: u32,
    long: Box<[LongEntry]>,
    arena: Vec<u8>,
    /// Scratch for [`Vocabulary::merge_small`], reused so no piece allocates.
    parts: Vec<(usize, Rank)>,
}

impl Memo {
    fn new() -> Self {
        Memo {
            short: SetMemo::new(),
            mid: SetMemo::new(),
            clock: 0,
            long: vec![LongEntry::default(); LONG_WAYS << LONG_MEMO_SETS_BITS].into_boxed_slice(),
            arena: Vec::new(),
            parts: Vec::with_capacity(LARGE_PIECE + 1),
        }
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Vocabulary {
        let mut ranks = Ranks::default();
        let merges = ["ab", "bc", "abc", "aa", "aaaa", "cd", "abcd"];
        for (i, t) in merges.iter().enumerate() {
            ranks.insert(t.as_bytes().to_vec(), i as Rank);
        }
        for b in 0..=255u8 {
            ranks.insert(vec![b], b as Rank + merges.len() as Rank);
        }
        Vocabulary::new(ranks)
    }

    #[test]
    fn small_and_large_merges_agree_on_every_toy_string() {
        let v = toy();
        let alphabet = [b'a', b'b', b'c', b'd'];
        let mut seed = 0x2545F4914F6CDD1Du64;
        for len in 2..2 * LARGE_PIECE {
            for _ in 0..20 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % 4) as usize]
                    })
                    .collect();
                assert_eq!(v.merge_small(&s, &mut Vec::new()), v.merge_large(&s), "{:?}", String::from_utf8_lossy(&s));
            }
        }
    }

    fn random_piece(seed: &mut u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                alphabet[(*seed >> 8) as usize % alphabet.len()]
            })
            .collect()
    }

    #[test]
    fn memoized_counts_equal_the_merges_at_every_length_across_the_three_memos() {
        // Lengths on both sides of the short, middle and long memos' limits, counted
        // first into a fresh memo, then again from it.
        let v = toy();
        let mut memo = Memo::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let pieces: Vec<Vec<u8>> =
            (0..20_000).map(|i| random_piece(&mut seed, 2 + i % (MID_KEY + 20), b"abcd")).collect();
        for round in 0..2 {
            for p in &pieces {
                let expected = if v.rank(p).is_some() {
                    1
                } else if p.len() < LARGE_PIECE {
                    v.merge_small(p, &mut Vec::new())
                } else {
                    v.merge_large(p)
                };
                assert_eq!(v.count_piece_memo(p, head_and_hash(p, p), &mut memo), expected, "round {round} {p:?}");
            }
        }
    }

    #[test]
    fn a_tag_collision_never_returns_another_pieces_count() {
        // Every piece given the same hash, so one set of 16 ways: each lookup must
        // confirm the piece itself, and a full set replaces a way.
        let mut memo: SetMemo<SHORT_KEY, 1> = SetMemo::new();
        let mut clock = 0;
        let mut seed = 7u64;
        let pieces: Vec<Vec<u8>> = (0..100).map(|i| random_piece(&mut seed, 1 + i % SHORT_KEY, b"xyz")).collect();
        for _ in 0..3 {
            for p in &pieces {
                // A count that names the piece: the index of its first occurrence.
                let first = pieces.iter().position(|q| q == p).unwrap();
                assert_eq!(memo.get_or_insert(5, p, 0x1234_5678_9ABC_DEF0, &mut clock, || first), first, "{p:?}");
            }
        }
        // Another vocabulary never sees these counts.
        assert_eq!(memo.get_or_insert(6, &pieces[0], 0x1234_5678_9ABC_DEF0, &mut clock, || 999), 999);
    }

    #[test]
    fn the_heap_merge_with_part_ranks_equals_the_one_on_bytes() {
        // Random strings, runs of one character and of a repeated pattern, long enough
        // to fill and overwrite the pair cache of the piece.
        let v = toy();
        assert!(v.byte_ranks().is_some());
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in (2..700).chain([1000, 4095, 4096, 4097, 9000]) {
            let mut pieces = vec![random_piece(&mut seed, len, b"abcd"), random_piece(&mut seed, len, b"ab")];
            pieces.push(vec![b'a'; len]);
            pieces.push(b"abc".iter().cycle().take(len).copied().collect());
            pieces.push(random_piece(&mut seed, len, b"abcdefghijklmnopqrstuvwxyz \x00\xff"));
            for p in &pieces {
                assert_eq!(v.merge_large(p), v.merge_large_bytes(p), "{:?}", String::from_utf8_lossy(p));
            }
        }
    }

    #[test]
    fn head_and_hash_from_the_text_equal_the_tables_on_every_piece() {
        let text = "ab c\ndefghijklmnopq rstuvwxyz0123456789 é中😀 the end.";
        let t = text.as_bytes();
        for start in 0..t.len() {
            for end in start + 1..=t.len() {
                let piece = &t[start..end];
                let head = table::head(piece);
                assert_eq!(head_and_hash(t, piece), (head, table::hash(piece, head)), "{start}..{end}");
            }
        }
    }

    #[test]
    fn counting_in_batches_equals_counting_piece_by_piece_at_every_batch_boundary() {
        use crate::pretokenize::{Pattern, Pieces};
        let v = toy();
        // Pieces of one byte (counted while scanning), tokens, merged pieces, and texts
        // of around one, two and three batches of pieces.
        let words = ["abcd", " ab", "aaaaa", ".", "\n", " bcda", "z", "1234", " é", "dcba"];
        for pieces in [0, 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH, 3 * BATCH + 7] {
            for shift in 0..words.len() {
                let text: String = (0..pieces).map(|i| words[(i * 7 + shift) % words.len()]).collect();
                let one_by_one: usize = Pieces::new(&text, Pattern::O200k).map(|p| v.count_piece(p)).sum();
                assert_eq!(v.count_pieces(Pieces::new(&text, Pattern::O200k)), one_by_one, "{text:?}");
                // Twice: the second time through the memo.
                assert_eq!(v.count_pieces(Pieces::new(&text, Pattern::O200k)), one_by_one, "{text:?}");
            }
        }
    }

    #[test]
    fn leftmost_pair_wins_a_tie() {
        // "aaa": "aa" at 0 merges first, leaving "aa" + "a": two tokens either way, but
        // "aaaaa" shows the order: (aa)(aa)(a) -> (aaaa)(a) = 2 tokens.
        let v = toy();
        assert_eq!(v.merge_small(b"aaaaa", &mut Vec::new()), 2);
        assert_eq!(v.merge_large(b"aaaaa"), 2);
    }

    #[test]
    fn a_whole_piece_in_the_vocabulary_is_one_token() {
        assert_eq!(toy().count_piece(b"abcd"), 1);
        assert_eq!(toy().count_piece(b""), 0);
        assert_eq!(toy().count_piece(b"z"), 1);
    }
}
