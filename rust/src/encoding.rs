//! The encodings tokensieve counts with, and their embedded vocabularies.
//!
//! The vocabularies are the `.tiktoken` rank files that tiktoken-rs compiles into the
//! binary (`include_str!`), so nothing is ever downloaded. tiktoken-rs is used only to
//! read them; pre-tokenizing and merging are this crate's own ([`crate::pretokenize`],
//! [`crate::bpe`]), linear on every input and exactly tiktoken's counts.

use crate::bpe::{Ranks, Vocabulary};
use crate::error::{Error, Result};
use crate::fork::Global;
use crate::pretokenize::{Pattern, Pieces};
use base64::Engine as _;
use std::sync::Mutex;

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
        Pieces::new(text, self.pattern).map(|piece| self.vocabulary.count_piece(piece)).sum()
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
        let mut by_rank: Vec<(&[u8], u32)> = self.vocabulary.ranks().iter().map(|(k, &v)| (k.as_slice(), v)).collect();
        by_rank.sort_unstable_by_key(|&(_, rank)| rank);
        let mut out = Vec::with_capacity(by_rank.len() * 16);
        for (token, rank) in by_rank {
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(token).as_bytes());
            out.push(b' ');
            out.extend_from_slice(rank.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// The encoding named `name`, loaded on first use (about 0.1 s) and shared afterwards.
pub fn get_encoding(name: &str) -> Result<&'static Encoding> {
    Ok(encoding(EncodingId::from_name(name)?))
}

static O200K: Global<Encoding> = Global::new(|| load(EncodingId::O200kBase, Pattern::O200k, tiktoken_rs::o200k_base));
static CL100K: Global<Encoding> =
    Global::new(|| load(EncodingId::Cl100kBase, Pattern::Cl100k, tiktoken_rs::cl100k_base));

/// Held while a vocabulary loads, so that threads asking at once load it once. Not a
/// `OnceLock`: a child forked mid-load would find that one initializing forever; this
/// lock is replaced in such a child (see `fork.rs`), and the half-built vocabulary, never
/// published, is simply not there.
static LOADING: Global<Mutex<()>> = Global::new(|| Mutex::new(()));

/// The encoding `id`, loaded on first use and shared afterwards.
#[inline]
pub fn encoding(id: EncodingId) -> &'static Encoding {
    let cell = match id {
        EncodingId::O200kBase => &O200K,
        EncodingId::Cl100kBase => &CL100K,
    };
    match cell.peek() {
        Some(encoding) => encoding,
        None => {
            let _one_at_a_time = LOADING.lock();
            cell.get()
        }
    }
}

/// In a forked child: a load the fork interrupted never finishes; let a new one start.
pub(crate) fn after_fork_in_child() {
    LOADING.reset_if_held();
}

fn load<E: std::fmt::Debug>(
    id: EncodingId,
    pattern: Pattern,
    build: fn() -> std::result::Result<tiktoken_rs::CoreBPE, E>,
) -> Encoding {
    // tiktoken-rs keeps its rank map private; its decoder gives the same map back.
    // The CoreBPE is dropped right after, so only one copy of the vocabulary stays.
    let bpe = build().expect("the vocabulary embedded in tiktoken-rs parses");
    let mut ranks = Ranks::default();
    let mut rank = 0u32;
    while let Ok(bytes) = bpe.decode_bytes(&[rank]) {
        ranks.insert(bytes, rank);
        rank += 1;
    }
    Encoding { id, pattern, vocabulary: Vocabulary::new(ranks) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_encoding_names_are_an_error_naming_the_choices() {
        let err = get_encoding("gpt2").err().expect("gpt2 is not offered");
        assert!(err.to_string().contains("gpt2"));
        assert!(err.to_string().contains("o200k_base"));
    }

    #[cfg(unix)]
    #[test]
    fn a_child_forked_while_a_vocabulary_loads_loads_it_itself() {
        // The loader's lock held at fork, as by a thread in the middle of a load.
        let code = crate::fork::tests::fork_while_held(
            || Box::new(LOADING.lock()),
            || {
                drop(LOADING.lock()); // usable, whether or not another test loaded cl100k first
                encoding(EncodingId::Cl100kBase).count("hello world") == 2
            },
        );
        assert_eq!(code, Some(0), "the child hung (None) or counted wrong");
    }

    #[test]
    fn vocabulary_sizes_are_the_published_ones() {
        assert_eq!(encoding(EncodingId::O200kBase).vocabulary_size(), 199_998);
        assert_eq!(encoding(EncodingId::Cl100kBase).vocabulary_size(), 100_256);
    }
}
