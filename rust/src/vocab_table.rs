//! The layout of a vocabulary's lookup table, shared by the build script and the crate.
//!
//! `build.rs` includes this file (`#[path]`) to lay the embedded vocabularies out at
//! compile time; [`crate::bpe`] includes it to read those tables straight from the
//! binary (loading an encoding is taking a pointer, not parsing a file) and to build
//! the same table at run time for vocabularies made in tests. One definition of the
//! hash and of the slot format keeps the two sides from drifting apart.
//!
//! The table is open addressing with linear probing, at most 40% full. A slot holds
//! the token's first eight bytes, its length and where its bytes are in the token blob
//! (the tokens concatenated by rank), and its rank. Tokens of at most eight bytes (three
//! in four) are confirmed from the slot alone; longer ones compare the rest in the blob.
//! Std only: the build script has no dependencies.

#![allow(dead_code)] // each includer uses its own half

/// Rank of an empty slot.
pub const EMPTY: u32 = u32::MAX;

/// One slot of the table. `off_len` is the token's offset in the blob, shifted left by
/// eight, or'ed with its length (tokens are at most 255 bytes, blobs under 16 MiB).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub head: u64,
    pub rank: u32,
    pub off_len: u32,
}

pub const SLOT_BYTES: usize = 16;
pub const EMPTY_SLOT: Slot = Slot { head: 0, rank: EMPTY, off_len: 0 };

/// The first `min(8, len)` bytes of `bytes` as a little-endian integer, zero-padded.
#[inline(always)]
pub fn head(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if n >= 8 {
        u64::from_le_bytes(bytes[..8].try_into().unwrap())
    } else if n >= 4 {
        // Two overlapping loads; the overlapping bytes are equal, so `|` is exact.
        let lo = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as u64;
        let hi = u32::from_le_bytes(bytes[n - 4..].try_into().unwrap()) as u64;
        lo | hi << ((n - 4) * 8)
    } else if n > 0 {
        bytes[0] as u64 | (bytes[n / 2] as u64) << (n / 2 * 8) | (bytes[n - 1] as u64) << ((n - 1) * 8)
    } else {
        0
    }
}

/// Hash of `bytes` whose [`head`] is `head`: the head, the last eight bytes and the
/// length. Tokens sharing all three are rare and only lengthen a probe.
#[inline(always)]
pub fn hash(bytes: &[u8], head: u64) -> u64 {
    let n = bytes.len();
    let tail = if n > 8 { u64::from_le_bytes(bytes[n - 8..].try_into().unwrap()) } else { 0 };
    hash_parts(n, head, tail)
}

/// [`hash`] from its parts: the length, the head, and the last eight bytes when there
/// are more than eight (else 0).
#[inline(always)]
pub fn hash_parts(n: usize, head: u64, tail: u64) -> u64 {
    let h = (head ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ tail.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// log2 of the table size for `n` tokens: at most 40% full.
pub fn bits_for(n: usize) -> u32 {
    let mut bits = 4;
    while (1usize << bits) * 2 < n * 5 {
        bits += 1;
    }
    bits
}

#[inline(always)]
pub fn home(h: u64, bits: u32) -> usize {
    (h >> (64 - bits)) as usize
}

/// Lay out `tokens` (indexed by rank): the table, the blob, and each token's length.
pub fn build(tokens: &[&[u8]]) -> (Vec<Slot>, Vec<u8>, Vec<u8>) {
    let bits = bits_for(tokens.len());
    let mask = (1usize << bits) - 1;
    let mut table = vec![EMPTY_SLOT; 1 << bits];
    let mut blob = Vec::new();
    let mut lens = Vec::with_capacity(tokens.len());
    for (rank, token) in tokens.iter().enumerate() {
        assert!(!token.is_empty() && token.len() <= 255, "token {rank} has {} bytes", token.len());
        let offset = blob.len();
        assert!(offset < 1 << 24, "the token blob outgrew 16 MiB");
        blob.extend_from_slice(token);
        lens.push(token.len() as u8);
        let h = head(token);
        let mut i = home(hash(token, h), bits);
        while table[i].rank != EMPTY {
            let s = table[i];
            let len = (s.off_len & 0xFF) as usize;
            let start = (s.off_len >> 8) as usize;
            assert!(&blob[start..start + len] != *token, "token {rank} is also rank {}", s.rank);
            i = (i + 1) & mask;
        }
        table[i] = Slot { head: h, rank: rank as u32, off_len: (offset as u32) << 8 | token.len() as u32 };
    }
    (table, blob, lens)
}

/// The rank of `bytes`, whose [`head`] is `head` and [`hash`] is `h`.
#[inline(always)]
pub fn lookup(table: &[Slot], blob: &[u8], bytes: &[u8], head: u64, h: u64) -> Option<u32> {
    let mask = table.len() - 1;
    let bits = table.len().trailing_zeros();
    let n = bytes.len() as u32;
    let mut i = home(h, bits);
    loop {
        let s = table[i];
        // One branch for the common outcome (a token, found in its home slot): `&`, not
        // `&&`. An empty slot has length 0, never a piece's.
        if (s.head == head) & (s.off_len & 0xFF == n) {
            if n <= 8 {
                return Some(s.rank);
            }
            let start = (s.off_len >> 8) as usize;
            if blob.get(start + 8..start + n as usize) == Some(&bytes[8..]) {
                return Some(s.rank);
            }
        }
        if s.rank == EMPTY {
            return None;
        }
        i = (i + 1) & mask;
    }
}

/// The table as bytes in the target's byte order (`little` is whether it is little-endian).
pub fn slots_to_bytes(table: &[Slot], little: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() * SLOT_BYTES);
    for s in table {
        if little {
            out.extend_from_slice(&s.head.to_le_bytes());
            out.extend_from_slice(&s.rank.to_le_bytes());
            out.extend_from_slice(&s.off_len.to_le_bytes());
        } else {
            out.extend_from_slice(&s.head.to_be_bytes());
            out.extend_from_slice(&s.rank.to_be_bytes());
            out.extend_from_slice(&s.off_len.to_be_bytes());
        }
    }
    out
}

/// Parse a `.tiktoken` file (`base64(token) rank` per line, ranks 0, 1, 2, ...).
pub fn parse_tiktoken(file: &str) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    for (i, line) in file.lines().enumerate() {
        let (token, rank) = line.split_once(' ').expect("a line is `base64 rank`");
        assert_eq!(rank.parse::<usize>().ok(), Some(i), "ranks are 0, 1, 2, ... in order");
        tokens.push(base64_decode(token));
    }
    tokens
}

fn base64_decode(s: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (k, &c) in chunk.iter().enumerate() {
            acc |= value(c) << (18 - 6 * k);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
