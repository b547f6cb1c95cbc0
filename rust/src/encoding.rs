//! The encodings tokensieve counts with, and their embedded vocabularies.
//!
//! The vocabularies are OpenAI's published `.tiktoken` rank files (`rust/vocab/`), laid
//! out at compile time by `build.rs` into hash tables that are compiled into the binary,
//! so nothing is ever downloaded, parsed or built at run time: loading an encoding takes
//! a few pointers (microseconds), and only the pages of the table that counting touches
//! become resident. Pre-tokenizing and merging are this crate's own
//! ([`crate::pretokenize`], [`crate::bpe`]), linear on every input and exactly
//! tiktoken's counts.

use crate::bpe::Vocabulary;
use crate::error::{Error, Result};
use crate::fork::Global;
use crate::pretokenize::{Pattern, Pieces};
use base64::Engine as _;

/// The names [`get_encoding`] accepts.
pub const ENCODING_NAMES: [&str; 2] = ["o200k_base", "cl100k_base"];

/// Identifies an encoding compactly (cache keys carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EncodingId {
    O200kBase = 0,
    Cl100kBase = 1,
}

impl EncodingId {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "o200k_base" => Ok(EncodingId::O200kBase),
            "cl100k_base" => Ok(EncodingId::Cl100kBase),
            _ => Err(Error::UnknownEncoding { name: name.to_owned() }),
        }
    }

    pub fn name(self) -> &'static str {
        ENCODING_NAMES[self as usize]
    }
}

/// A loaded encoding: pre-tokenizer pattern plus vocabulary. Immutable and `Sync`.
pub struct Encoding {
    id: EncodingId,
    pattern: Pattern,
    vocabulary: Vocabulary,
}

impl Encoding {
    pub fn id(&self) -> EncodingId {
        self.id
    }

    pub fn name(&self) -> &'static str {
        self.id.name()
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// Number of ordinary (non-special) tokens.
    pub fn vocabulary_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// Exact number of tokens of `text`, as tiktoken's `len(encode_ordinary(text))`:
    /// special-token text such as `<|endoftext|>` is counted as plain text.
    pub fn count(&self, text: &str) -> usize {
        self.vocabulary.count_pieces(Pieces::new(text, self.pattern))
    }

    /// The pre-tokenized pieces of `text` (they tile it; their counts add up to
    /// [`Encoding::count`]).
    pub fn pieces<'a>(&self, text: &'a str) -> Pieces<'a> {
        Pieces::new(text, self.pattern)
    }

    /// Tokens of one piece from [`Encoding::pieces`].
    pub fn count_piece(&self, piece: &[u8]) -> usize {
        self.vocabulary.count_piece(piece)
    }

    /// `Some(count(text))` when it is at most `limit`, else None, reading only as much of
    /// the text as it takes to pass the limit.
    pub fn count_up_to(&self, text: &str, limit: usize) -> Option<usize> {
        let mut n = 0;
        for piece in self.pieces(text) {
            n += self.vocabulary.count_piece(piece);
            if n > limit {
                return None;
            }
        }
        Some(n)
    }

    /// The vocabulary in tiktoken's `.tiktoken` format (`base64(token) rank` per line,
    /// by rank), byte for byte the file OpenAI publishes.
    pub fn tiktoken_file(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.vocabulary.len() * 16);
        for (rank, token) in self.vocabulary.tokens().enumerate() {
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(token).as_bytes());
            out.push(b' ');
            out.extend_from_slice(rank.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// The encoding named `name`, loaded on first use (microseconds) and shared afterwards.
pub fn get_encoding(name: &str) -> Result<&'static Encoding> {
    Ok(encoding(EncodingId::from_name(name)?))
}

/// The encoding `id`, loaded on first use and shared afterwards.
#[inline]
pub fn encoding(id: EncodingId) -> &'static Encoding {
    let cell = match id {
        EncodingId::O200kBase => &O200K,
        EncodingId::Cl100kBase => &CL100K,
    };
    cell.get()
}

/// Loading is a few pointers into the tables below, so threads racing at first use may
/// each build the `Encoding` (one is published). Not a `OnceLock`: a child forked while
/// one was initializing would wait for it forever (see `fork.rs`).
static O200K: Global<Encoding> = Global::new(|| Encoding {
    id: EncodingId::O200kBase,
    pattern: Pattern::O200k,
    vocabulary: Vocabulary::embedded(&O200K_TABLE.0, O200K_BLOB, O200K_LENS, 1),
});
static CL100K: Global<Encoding> = Global::new(|| Encoding {
    id: EncodingId::Cl100kBase,
    pattern: Pattern::Cl100k,
    vocabulary: Vocabulary::embedded(&CL100K_TABLE.0, CL100K_BLOB, CL100K_LENS, 2),
});

/// Bytes aligned for the table's 16-byte slots (`include_bytes!` only promises 1).
#[repr(C, align(16))]
struct Aligned<B: ?Sized>(B);

macro_rules! out_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

static O200K_TABLE: &Aligned<[u8]> = &Aligned(*out_file!("o200k_base.table"));
static O200K_BLOB: &[u8] = out_file!("o200k_base.blob");
static O200K_LENS: &[u8] = out_file!("o200k_base.lens");
static CL100K_TABLE: &Aligned<[u8]> = &Aligned(*out_file!("cl100k_base.table"));
static CL100K_BLOB: &[u8] = out_file!("cl100k_base.blob");
static CL100K_LENS: &[u8] = out_file!("cl100k_base.lens");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_encoding_names_are_an_error_naming_the_choices() {
        let err = get_encoding("gpt2").err().expect("gpt2 is not offered");
        assert!(err.to_string().contains("gpt2"));
        assert!(err.to_string().contains("o200k_base"));
    }

    #[test]
    fn vocabulary_sizes_are_the_published_ones() {
        assert_eq!(encoding(EncodingId::O200kBase).vocabulary_size(), 199_998);
        assert_eq!(encoding(EncodingId::Cl100kBase).vocabulary_size(), 100_256);
    }

    #[test]
    fn the_tiktoken_file_is_byte_for_byte_the_vendored_one() {
        // rust/vocab/ holds OpenAI's published files (sha256 in rust/vocab/README.md).
        let o200k: &[u8] = include_bytes!("../vocab/o200k_base.tiktoken");
        let cl100k: &[u8] = include_bytes!("../vocab/cl100k_base.tiktoken");
        assert!(encoding(EncodingId::O200kBase).tiktoken_file() == o200k);
        assert!(encoding(EncodingId::Cl100kBase).tiktoken_file() == cl100k);
    }

    #[test]
    fn every_token_is_found_at_its_own_rank() {
        for id in [EncodingId::O200kBase, EncodingId::Cl100kBase] {
            let v = encoding(id).vocabulary();
            for (rank, token) in v.tokens().enumerate() {
                assert_eq!(v.rank(token), Some(rank as u32), "{id:?} rank {rank}");
            }
        }
    }
}
