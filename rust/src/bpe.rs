//! Byte-pair encoding of one piece, counting tokens only.
//!
//! The merge rule is tiktoken's: repeatedly merge the adjacent pair whose concatenation
//! has the lowest rank, the leftmost one on ties, until no pair is in the vocabulary.
//! Short pieces (almost all of them) use tiktoken's own quadratic scan over a small
//! vector, which is fastest there; long pieces (a megabyte of one character is a single
//! piece) use a heap with lazy invalidation, O(n log n), so no input goes quadratic.
//! Both produce the same merges; the tests check one against the other.

use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub type Rank = u32;
pub type Ranks = FxHashMap<Vec<u8>, Rank>;

/// Pieces at least this long use the heap. tiktoken switches at 100 bytes too.
const LARGE_PIECE: usize = 100;

/// The vocabulary of one encoding: token bytes to rank.
pub struct Vocabulary {
    ranks: Ranks,
    /// No token is longer: longer slices are not looked up at all.
    max_token_len: usize,
}

impl Vocabulary {
    pub fn new(ranks: Ranks) -> Self {
        let max_token_len = ranks.keys().map(Vec::len).max().unwrap_or(0);
        Vocabulary { ranks, max_token_len }
    }

    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    pub fn ranks(&self) -> &Ranks {
        &self.ranks
    }

    /// Bytes of the longest token: no token is longer, so a text of `n` bytes has at
    /// least `n / max_token_len` tokens.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    #[inline(always)]
    fn rank(&self, bytes: &[u8]) -> Option<Rank> {
        if bytes.len() > self.max_token_len {
            return None;
        }
        self.ranks.get(bytes).copied()
    }

    /// Number of tokens of one pre-tokenized piece (tiktoken's `encode_ordinary` per piece).
    #[inline]
    pub fn count_piece(&self, piece: &[u8]) -> usize {
        // A single byte is always a token in the byte-level vocabularies used here.
        if piece.len() <= 1 || self.rank(piece).is_some() {
            return piece.len().min(1);
        }
        if piece.len() < LARGE_PIECE {
            self.merge_small(piece)
        } else {
            self.merge_large(piece)
        }
    }

    /// tiktoken's `_byte_pair_merge`: a vector of part starts with the rank of the pair
    /// each starts, rescanned for its minimum after every merge.
    fn merge_small(&self, piece: &[u8]) -> usize {
        let mut parts: [(usize, Rank); LARGE_PIECE + 1] = [(0, Rank::MAX); LARGE_PIECE + 1];
        let n = piece.len();
        for (i, part) in parts.iter_mut().enumerate().take(n - 1) {
            *part = (i, self.rank(&piece[i..i + 2]).unwrap_or(Rank::MAX));
        }
        parts[n - 1] = (n - 1, Rank::MAX);
        parts[n] = (n, Rank::MAX);
        let mut len = n + 1;
        let pair_rank = |parts: &[(usize, Rank)], len: usize, i: usize| {
            if i + 3 < len {
                self.rank(&piece[parts[i].0..parts[i + 3].0]).unwrap_or(Rank::MAX)
            } else {
                Rank::MAX
            }
        };
        loop {
            let mut min = (Rank::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..len - 1].iter().enumerate() {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
            if min.0 == Rank::MAX {
                break;
            }
            let i = min.1;
            if i > 0 {
                parts[i - 1].1 = pair_rank(&parts, len, i - 1);
            }
            parts[i].1 = pair_rank(&parts, len, i);
            parts.copy_within(i + 2..len, i + 1);
            len -= 1;
        }
        len - 1
    }

    /// Same merges as [`Self::merge_small`], in O(n log n): a doubly linked list of parts
    /// and a min-heap of (rank, start) pair candidates. A candidate is stale when its left
    /// part was merged away or its pair no longer has that rank; stale ones are skipped.
    /// Ordering by (rank, start) reproduces "lowest rank, leftmost on ties".
    fn merge_large(&self, piece: &[u8]) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Vocabulary {
        let mut ranks = Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], b as Rank + 1000);
        }
        for (i, t) in ["ab", "bc", "abc", "aa", "aaaa", "cd", "abcd"].iter().enumerate() {
            ranks.insert(t.as_bytes().to_vec(), i as Rank);
        }
        Vocabulary::new(ranks)
    }

    #[test]
    fn small_and_large_merges_agree_on_every_toy_string() {
        let v = toy();
        let alphabet = [b'a', b'b', b'c', b'd'];
        let mut seed = 0x2545F4914F6CDD1Du64;
        for len in 2..LARGE_PIECE {
            for _ in 0..20 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % 4) as usize]
                    })
                    .collect();
                assert_eq!(v.merge_small(&s), v.merge_large(&s), "{:?}", String::from_utf8_lossy(&s));
            }
        }
    }

    #[test]
    fn leftmost_pair_wins_a_tie() {
        // "aaa": "aa" at 0 merges first, leaving "aa" + "a": two tokens either way, but
        // "aaaaa" shows the order: (aa)(aa)(a) -> (aaaa)(a) = 2 tokens.
        let v = toy();
        assert_eq!(v.merge_small(b"aaaaa"), 2);
        assert_eq!(v.merge_large(b"aaaaa"), 2);
    }

    #[test]
    fn a_whole_piece_in_the_vocabulary_is_one_token() {
        assert_eq!(toy().count_piece(b"abcd"), 1);
        assert_eq!(toy().count_piece(b""), 0);
        assert_eq!(toy().count_piece(b"z"), 1);
    }
}
