//! The encodings tokensieve counts with, and their embedded vocabularies.
//!
//! The embedded vocabularies (`rust/vocab/`: OpenAI's published `.tiktoken` rank files and
//! Qwen's) are laid out at compile time by `build.rs` into hash tables that are compiled
//! into the binary, so nothing is ever downloaded, parsed or built at run time: loading an
//! encoding takes a few pointers (microseconds), and only the pages of the table that
//! counting touches become resident. Pre-tokenizing and merging are this crate's own
//! ([`crate::pretokenize`], [`crate::bpe`]), linear on every input and exactly
//! tiktoken's counts.
//!
//! One row per family in [`BUILTIN`] (ranks, pre-tokenizer, normalization, chat template);
//! encodings loaded from a user's file ([`crate::loading`]) are registered by name in
//! [`register`] and are used exactly like the built-in ones.

use crate::bpe::Vocabulary;
use crate::error::{Error, Result};
use crate::fork::Global;
use crate::pretokenize::{Pattern, Pieces, Splitter};
use base64::Engine as _;
use std::borrow::Cow;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The names of the embedded encodings, which [`get_encoding`] always accepts.
pub const ENCODING_NAMES: [&str; 4] = ["o200k_base", "cl100k_base", "o200k_harmony", "qwen3"];

/// Identifies an encoding compactly (cache keys carry it): the embedded ones by their
/// index in [`ENCODING_NAMES`], the loaded ones from [`FIRST_LOADED`] on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EncodingId(u16);

/// Counts per object in the glue's identity memos (see [`EncodingId::memo_slot`]).
pub const MEMO_SLOTS: usize = 3;

/// The first id of a loaded encoding.
const FIRST_LOADED: u16 = 16;
/// At most this many encodings can be loaded in one process (each one's tables stay
/// alive for the process: counts and `Encoding` objects refer to them).
pub const MAX_LOADED: usize = 256;

#[allow(non_upper_case_globals)]
impl EncodingId {
    pub const O200kBase: EncodingId = EncodingId(0);
    pub const Cl100kBase: EncodingId = EncodingId(1);
    pub const O200kHarmony: EncodingId = EncodingId(2);
    pub const Qwen3: EncodingId = EncodingId(3);

    pub fn from_name(name: &str) -> Result<Self> {
        if let Some(i) = ENCODING_NAMES.iter().position(|&n| n == name) {
            return Ok(EncodingId(i as u16));
        }
        // The most recently loaded encoding of that name wins.
        let n = LOADED_COUNT.load(Ordering::Acquire).min(MAX_LOADED);
        for slot in LOADED[..n].iter().rev() {
            // SAFETY: a non-null pointer comes from `Box::leak` and is never freed.
            if let Some(enc) = unsafe { slot.load(Ordering::Acquire).as_ref() } {
                if enc.name() == name {
                    return Ok(enc.id);
                }
            }
        }
        Err(Error::UnknownEncoding { name: name.to_owned() })
    }

    pub fn name(self) -> &'static str {
        encoding(self).name()
    }

    /// A small integer, unique per encoding in this process.
    pub fn index(self) -> u16 {
        self.0
    }

    /// The slot of this encoding's counts in the glue's identity memos, which keep
    /// [`MEMO_SLOTS`] counts per remembered object: o200k_harmony shares o200k_base's
    /// (same ranks, same split: the same counts). Loaded encodings have none; their
    /// counts still go through the content cache.
    pub fn memo_slot(self) -> Option<usize> {
        match self {
            EncodingId::O200kBase | EncodingId::O200kHarmony => Some(0),
            EncodingId::Cl100kBase => Some(1),
            EncodingId::Qwen3 => Some(2),
            _ => None,
        }
    }
}

/// The chat-template family of an encoding: what each message costs besides its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// OpenAI chat models: 3 tokens of message framing plus 1 for the role, as in OpenAI's
    /// published counting recipe.
    OpenAi,
    /// gpt-oss's harmony format: `<|start|>{role}<|message|>{content}<|end|>`.
    Harmony,
    /// Llama 3.x: `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`.
    Llama3,
    /// ChatML (Qwen): `<|im_start|>{role}\n{content}<|im_end|>\n`.
    ChatMl,
}

impl Family {
    /// Tokens each message costs besides its content, as the family's template renders
    /// it (the role a single token, as `system`, `user`, `assistant` and `tool` are in
    /// these vocabularies):
    /// - OpenAI: 4 (OpenAI's recipe).
    /// - harmony: `<|start|>` + role + `<|message|>` + `<|end|>` = 4.
    /// - Llama 3: `<|start_header_id|>` + role + `<|end_header_id|>` + `\n\n` + `<|eot_id|>` = 5.
    /// - ChatML: `<|im_start|>` + role + `\n` + `<|im_end|>` + `\n` = 5.
    pub fn message_overhead(self) -> u64 {
        match self {
            Family::OpenAi | Family::Harmony => 4,
            Family::Llama3 | Family::ChatMl => 5,
        }
    }

    /// Tokens each model response message costs besides its content: harmony's
    /// assistant messages carry `<|channel|>final` (2 more), the others cost what every
    /// message does.
    pub fn response_overhead(self) -> u64 {
        match self {
            Family::Harmony => self.message_overhead() + 2,
            _ => self.message_overhead(),
        }
    }

    /// Tokens every request adds after its messages to prime the reply (and, for Llama 3,
    /// the `<|begin_of_text|>` before them):
    /// - OpenAI: 3 (OpenAI's recipe: `<|start|>assistant<|message|>`).
    /// - harmony: `<|start|>` + `assistant` = 2.
    /// - Llama 3: `<|begin_of_text|>` + `<|start_header_id|>` + `assistant` + `<|end_header_id|>` + `\n\n` = 5.
    /// - ChatML: `<|im_start|>` + `assistant` + `\n` = 3.
    pub fn reply_priming(self) -> u64 {
        match self {
            Family::OpenAi | Family::ChatMl => 3,
            Family::Harmony => 2,
            Family::Llama3 => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::OpenAi => "openai",
            Family::Harmony => "harmony",
            Family::Llama3 => "llama3",
            Family::ChatMl => "chatml",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "openai" => Family::OpenAi,
            "harmony" => Family::Harmony,
            "llama3" => Family::Llama3,
            "chatml" => Family::ChatMl,
            _ => return None,
        })
    }
}

/// Unicode normalization applied to text before it is split (Qwen: NFC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    None,
    Nfc,
}

/// A loaded encoding: pre-tokenizer, vocabulary, normalization and chat-template family.
/// Immutable and `Sync`.
pub struct Encoding {
    id: EncodingId,
    name: Cow<'static, str>,
    splitter: Splitter,
    normalization: Normalization,
    family: Family,
    vocabulary: Vocabulary,
    /// Special tokens (text, id), as the tokenizer defines them.
    specials: Vec<(String, u32)>,
}

/// What it takes to make an encoding at run time ([`register`]).
pub struct EncodingSpec {
    pub name: String,
    pub splitter: Splitter,
    pub normalization: Normalization,
    pub family: Family,
    pub vocabulary: Vocabulary,
    pub specials: Vec<(String, u32)>,
}

impl Encoding {
    pub fn id(&self) -> EncodingId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    pub fn splitter(&self) -> &Splitter {
        &self.splitter
    }

    /// The special tokens (text, id).
    pub fn specials(&self) -> &[(String, u32)] {
        &self.specials
    }

    /// Tokens each message costs besides its content (see [`Family::message_overhead`]).
    pub fn message_overhead(&self) -> u64 {
        self.family.message_overhead()
    }

    /// Number of ordinary (non-special) tokens.
    pub fn vocabulary_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// `text` as this encoding's tokenizer sees it: NFC-normalized if the family
    /// normalizes (borrowed when it already is, as ASCII and most text is).
    #[inline]
    pub fn normalize<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.normalization {
            Normalization::None => Cow::Borrowed(text),
            Normalization::Nfc => nfc(text),
        }
    }

    /// Exact number of tokens of `text`, as tiktoken's `len(encode_ordinary(text))`:
    /// special-token text such as `<|endoftext|>` is counted as plain text.
    pub fn count(&self, text: &str) -> usize {
        let text = self.normalize(text);
        self.vocabulary.count_pieces(self.splitter.pieces(&text))
    }

    /// The pre-tokenized pieces of `text` (they tile it; their counts add up to
    /// [`Encoding::count`] for encodings that do not normalize).
    pub fn pieces<'a>(&'a self, text: &'a str) -> Pieces<'a> {
        self.splitter.pieces(text)
    }

    /// Tokens of one piece from [`Encoding::pieces`].
    pub fn count_piece(&self, piece: &[u8]) -> usize {
        self.vocabulary.count_piece(piece)
    }

    /// `Some(count(text))` when it is at most `limit`, else None, reading only as much of
    /// the text as it takes to pass the limit.
    pub fn count_up_to(&self, text: &str, limit: usize) -> Option<usize> {
        let text = self.normalize(text);
        let mut n = 0;
        for piece in self.pieces(&text) {
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

/// NFC of `text`, borrowed when it is NFC already. Text below U+0300 is always NFC
/// (no character there composes with what precedes it), so ASCII and Latin-1 text is
/// only scanned; the quick check decides most of the rest without normalizing.
fn nfc(text: &str) -> Cow<'_, str> {
    use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
    if text.bytes().all(|b| b < 0xCC) {
        return Cow::Borrowed(text);
    }
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        _ => {
            let normalized: String = text.nfc().collect();
            if normalized == text {
                Cow::Borrowed(text)
            } else {
                Cow::Owned(normalized)
            }
        }
    }
}

/// The encoding named `name`, loaded on first use (microseconds) and shared afterwards.
pub fn get_encoding(name: &str) -> Result<&'static Encoding> {
    Ok(encoding(EncodingId::from_name(name)?))
}

/// The encoding `id`, loaded on first use and shared afterwards.
#[inline]
pub fn encoding(id: EncodingId) -> &'static Encoding {
    match id {
        EncodingId::O200kBase => O200K.get(),
        EncodingId::Cl100kBase => CL100K.get(),
        EncodingId::O200kHarmony => O200K_HARMONY.get(),
        EncodingId::Qwen3 => QWEN3.get(),
        EncodingId(i) => {
            let slot = &LOADED[(i - FIRST_LOADED) as usize];
            // SAFETY: an id of a loaded encoding is handed out only after its pointer was
            // published (release), from `Box::leak`, never freed.
            unsafe { slot.load(Ordering::Acquire).as_ref() }.expect("a loaded encoding's id refers to it")
        }
    }
}

/// Register an encoding made at run time under its name; a later one of the same name
/// takes its place for lookups by name (the earlier one stays valid for those holding it).
/// The names of the embedded encodings cannot be taken.
pub fn register(spec: EncodingSpec) -> Result<&'static Encoding> {
    if spec.name.is_empty() || ENCODING_NAMES.contains(&spec.name.as_str()) {
        return Err(Error::InvalidConfig(format!(
            "an encoding cannot be loaded under the name {:?}: {}",
            spec.name,
            if spec.name.is_empty() { "the name is empty" } else { "an embedded encoding has it" }
        )));
    }
    // Lock-free (a forked child must never wait for a lock held by a thread it lost):
    // take a slot, fill it, publish it.
    let slot = LOADED_COUNT.fetch_add(1, Ordering::AcqRel);
    if slot >= MAX_LOADED {
        LOADED_COUNT.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::InvalidConfig(format!("at most {MAX_LOADED} encodings can be loaded in one process")));
    }
    let enc: &'static Encoding = Box::leak(Box::new(Encoding {
        id: EncodingId(FIRST_LOADED + slot as u16),
        name: Cow::Owned(spec.name),
        splitter: spec.splitter,
        normalization: spec.normalization,
        family: spec.family,
        vocabulary: spec.vocabulary,
        specials: spec.specials,
    }));
    LOADED[slot].store(enc as *const Encoding as *mut Encoding, Ordering::Release);
    Ok(enc)
}

/// The names of every encoding usable now: the embedded ones, then the loaded ones.
pub fn encoding_names() -> Vec<String> {
    let mut names: Vec<String> = ENCODING_NAMES.iter().map(|&n| n.to_owned()).collect();
    let n = LOADED_COUNT.load(Ordering::Acquire).min(MAX_LOADED);
    for slot in &LOADED[..n] {
        // SAFETY: as in `from_name`.
        if let Some(enc) = unsafe { slot.load(Ordering::Acquire).as_ref() } {
            if !names.iter().any(|x| x == enc.name()) {
                names.push(enc.name().to_owned());
            }
        }
    }
    names
}

static LOADED: [AtomicPtr<Encoding>; MAX_LOADED] = [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_LOADED];
static LOADED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// harmony's special tokens (`tiktoken_ext.openai_public.o200k_harmony`): o200k_base's two
/// plus the named ones; 200013..201088 are `<|reserved_N|>` (so 200018 has two names,
/// `<|endofprompt|>` and `<|reserved_200018|>`, as in tiktoken).
const HARMONY_SPECIALS: [(&str, u32); 15] = [
    ("<|endofprompt|>", 200018),
    ("<|startoftext|>", 199998),
    ("<|endoftext|>", 199999),
    ("<|reserved_200000|>", 200000),
    ("<|reserved_200001|>", 200001),
    ("<|return|>", 200002),
    ("<|constrain|>", 200003),
    ("<|reserved_200004|>", 200004),
    ("<|channel|>", 200005),
    ("<|start|>", 200006),
    ("<|end|>", 200007),
    ("<|message|>", 200008),
    ("<|reserved_200009|>", 200009),
    ("<|reserved_200010|>", 200010),
    ("<|reserved_200011|>", 200011),
];

fn specials(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|&(t, i)| (t.to_owned(), i)).collect()
}

/// Loading is a few pointers into the tables below, so threads racing at first use may
/// each build the `Encoding` (one is published). Not a `OnceLock`: a child forked while
/// one was initializing would wait for it forever (see `fork.rs`).
static O200K: Global<Encoding> = Global::new(|| Encoding {
    id: EncodingId::O200kBase,
    name: Cow::Borrowed("o200k_base"),
    splitter: Splitter::Scanner(Pattern::O200k),
    normalization: Normalization::None,
    family: Family::OpenAi,
    vocabulary: Vocabulary::embedded(&O200K_TABLE.0, O200K_BLOB, O200K_LENS, 1),
    specials: specials(&[("<|endoftext|>", 199999), ("<|endofprompt|>", 200018)]),
});
static CL100K: Global<Encoding> = Global::new(|| Encoding {
    id: EncodingId::Cl100kBase,
    name: Cow::Borrowed("cl100k_base"),
    splitter: Splitter::Scanner(Pattern::Cl100k),
    normalization: Normalization::None,
    family: Family::OpenAi,
    vocabulary: Vocabulary::embedded(&CL100K_TABLE.0, CL100K_BLOB, CL100K_LENS, 2),
    specials: specials(&[
        ("<|endoftext|>", 100257),
        ("<|fim_prefix|>", 100258),
        ("<|fim_middle|>", 100259),
        ("<|fim_suffix|>", 100260),
        ("<|endofprompt|>", 100276),
    ]),
});
/// gpt-oss: o200k_base's ranks (the same table, so the same memo id) with harmony's
/// special tokens.
static O200K_HARMONY: Global<Encoding> = Global::new(|| {
    let mut all = specials(&HARMONY_SPECIALS);
    all.push(("<|call|>".to_owned(), 200012));
    all.extend((200013..201088).map(|i| (format!("<|reserved_{i}|>"), i)));
    Encoding {
        id: EncodingId::O200kHarmony,
        name: Cow::Borrowed("o200k_harmony"),
        splitter: Splitter::Scanner(Pattern::O200k),
        normalization: Normalization::None,
        family: Family::Harmony,
        vocabulary: Vocabulary::embedded(&O200K_TABLE.0, O200K_BLOB, O200K_LENS, 1),
        specials: all,
    }
});
/// Qwen 2.5 / 3: byte-level BPE of 151,643 tokens, NFC, one digit per piece; special
/// tokens from 151643 on (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, ...).
static QWEN3: Global<Encoding> = Global::new(|| Encoding {
    id: EncodingId::Qwen3,
    name: Cow::Borrowed("qwen3"),
    splitter: Splitter::Scanner(Pattern::Qwen2),
    normalization: Normalization::Nfc,
    family: Family::ChatMl,
    vocabulary: Vocabulary::embedded(&QWEN3_TABLE.0, QWEN3_BLOB, QWEN3_LENS, 3),
    specials: QWEN3_SPECIALS.iter().enumerate().map(|(i, t)| (t.to_string(), 151643 + i as u32)).collect(),
});

/// The special tokens of Qwen 2.5 / 3 (`added_tokens` of their `tokenizer.json`), from id 151643.
const QWEN3_SPECIALS: [&str; 26] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
];

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
static QWEN3_TABLE: &Aligned<[u8]> = &Aligned(*out_file!("qwen3.table"));
static QWEN3_BLOB: &[u8] = out_file!("qwen3.blob");
static QWEN3_LENS: &[u8] = out_file!("qwen3.lens");

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
        assert_eq!(encoding(EncodingId::O200kHarmony).vocabulary_size(), 199_998);
        assert_eq!(encoding(EncodingId::Qwen3).vocabulary_size(), 151_643);
    }

    #[test]
    fn harmony_counts_as_o200k_with_its_own_name_and_specials() {
        let h = get_encoding("o200k_harmony").unwrap();
        assert_eq!(h.name(), "o200k_harmony");
        assert_eq!(
            h.count("<|start|>user<|message|>hi"),
            encoding(EncodingId::O200kBase).count("<|start|>user<|message|>hi")
        );
        assert!(h.specials().contains(&("<|channel|>".to_owned(), 200005)));
        assert!(h.specials().contains(&("<|reserved_201087|>".to_owned(), 201087)));
        assert_eq!(h.specials().len(), 201088 - 199998 + 1);
    }

    #[test]
    fn qwen_normalizes_to_nfc_before_counting() {
        let q = get_encoding("qwen3").unwrap();
        // "é" decomposed (e + U+0301) counts as the composed "é".
        assert_eq!(q.count("caf\u{65}\u{301}"), q.count("caf\u{e9}"));
        assert!(matches!(q.normalize("plain ascii"), Cow::Borrowed(_)));
        assert_eq!(q.specials()[2], ("<|im_end|>".to_owned(), 151645));
    }

    #[test]
    fn each_family_has_its_template_overhead() {
        assert_eq!(get_encoding("o200k_base").unwrap().message_overhead(), 4);
        assert_eq!(get_encoding("o200k_harmony").unwrap().message_overhead(), 4);
        assert_eq!(get_encoding("qwen3").unwrap().message_overhead(), 5);
        assert_eq!(Family::Llama3.message_overhead(), 5);
        assert_eq!(Family::Harmony.response_overhead(), 6);
        assert_eq!(Family::ChatMl.response_overhead(), 5);
    }

    #[test]
    fn loaded_encodings_are_found_by_name_and_the_newest_wins() {
        let ranks: crate::bpe::Ranks = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        let make = |family| EncodingSpec {
            name: "bytes_only_test".to_owned(),
            splitter: Splitter::Scanner(Pattern::Cl100k),
            normalization: Normalization::None,
            family,
            vocabulary: Vocabulary::new(ranks.clone()),
            specials: Vec::new(),
        };
        let first = register(make(Family::OpenAi)).unwrap();
        assert_eq!(first.count("abc"), 3);
        let second = register(make(Family::ChatMl)).unwrap();
        assert_ne!(first.id(), second.id());
        assert_eq!(get_encoding("bytes_only_test").unwrap().id(), second.id());
        assert_eq!(encoding(first.id()).family(), Family::OpenAi);
        assert!(encoding_names().contains(&"bytes_only_test".to_owned()));
        let taken = EncodingSpec { name: "o200k_base".to_owned(), ..make(Family::OpenAi) };
        assert!(register(taken).is_err());
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
        for id in [EncodingId::O200kBase, EncodingId::Cl100kBase, EncodingId::Qwen3] {
            let v = encoding(id).vocabulary();
            for (rank, token) in v.tokens().enumerate() {
                assert_eq!(v.rank(token), Some(rank as u32), "{id:?} rank {rank}");
            }
        }
    }
}
