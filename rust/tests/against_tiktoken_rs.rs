//! Differential tests: the hand-written pre-tokenizer and merge against tiktoken's own
//! regexes (fancy-regex) and BPE (tiktoken-rs), on strings built from the characters
//! where the patterns' alternatives disagree.

use tokensieve::bpe::Vocabulary;
use tokensieve::encoding::{encoding, EncodingId};
use tokensieve::pretokenize::{Pattern, Pieces};

const CL100K_PAT: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// Characters chosen to hit every branch: each letter category, marks, several kinds
/// of digits and whitespace, the contraction letters (with the long s that case-folds
/// to `s`), the slash o200k treats specially, emoji, CJK.
const TRICKY: &[&str] = &[
    "a",
    "b",
    "z",
    "A",
    "Z",
    "s",
    "S",
    "t",
    "T",
    "r",
    "e",
    "E",
    "v",
    "l",
    "L",
    "d",
    "m",
    "M",
    "ſ",
    "'",
    "'",
    " ",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "\u{85}",
    "\u{b}",
    "\u{1c}",
    "/",
    "//",
    "{",
    "}",
    "(",
    ")",
    ";",
    ".",
    ",",
    "-",
    "_",
    "\"",
    "0",
    "7",
    "123",
    "٣",
    "Ⅷ",
    "½",
    "é",
    "É",
    "\u{301}",
    "\u{94d}",
    "ǅ",
    "ʰ",
    "ß",
    "中",
    "文",
    "ｶ",
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "\u{200d}",
    "Σ",
    "ω",
    "Ж",
    "ж",
    "<|endoftext|>",
    "ǈ",
    "ᾈ",
    "\u{e000}",
    "\u{10ffff}",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self, max_parts: u64) -> String {
        let n = self.next() % (max_parts + 1);
        (0..n).map(|_| TRICKY[(self.next() % TRICKY.len() as u64) as usize]).collect()
    }
}

fn regex_pieces<'a>(re: &fancy_regex::Regex, text: &'a str) -> Vec<&'a str> {
    re.find_iter(text).map(|m| m.expect("regex runs").as_str()).collect()
}

fn our_pieces(text: &str, pattern: Pattern) -> Vec<&str> {
    Pieces::new(text, pattern).map(|p| std::str::from_utf8(p).expect("pieces end on char boundaries")).collect()
}

fn assert_same_pieces(pattern: Pattern, regex: &str, seed: u64) {
    let re = fancy_regex::Regex::new(regex).expect("pattern compiles");
    let mut rng = Rng(seed);
    for _ in 0..30_000 {
        let text = rng.text(24);
        assert_eq!(our_pieces(&text, pattern), regex_pieces(&re, &text), "{pattern:?} on {text:?}");
    }
}

#[test]
fn o200k_pieces_equal_the_fancy_regex_pieces() {
    assert_same_pieces(Pattern::O200k, tiktoken_rs::O200K_BASE_PAT_STR, 0x9E3779B97F4A7C15);
}

#[test]
fn cl100k_pieces_equal_the_fancy_regex_pieces() {
    assert_same_pieces(Pattern::Cl100k, CL100K_PAT, 0xD1B54A32D192ED03);
}

/// Llama 3's and Qwen's scanners against their published regexes (llama_models'
/// `pat_str`, Qwen's `PAT_STR`, copied into `pretokenize.rs` and checked against those
/// packages' sources by the Python suite), run by fancy-regex.
#[test]
fn llama3_pieces_equal_the_fancy_regex_pieces() {
    assert_same_pieces(Pattern::Llama3, tokensieve::pretokenize::LLAMA3_REGEX, 0xA0761D6478BD642F);
}

#[test]
fn qwen2_pieces_equal_the_fancy_regex_pieces() {
    assert_same_pieces(Pattern::Qwen2, tokensieve::pretokenize::QWEN2_REGEX, 0xE7037ED1A0B428DB);
}

#[test]
fn the_published_regex_constants_are_tiktokens_own() {
    assert_eq!(tokensieve::pretokenize::O200K_REGEX, tiktoken_rs::O200K_BASE_PAT_STR);
    assert_eq!(tokensieve::pretokenize::CL100K_REGEX, CL100K_PAT);
}

#[test]
fn counts_equal_tiktoken_rs_on_tricky_text() {
    for (id, bpe) in [
        (EncodingId::O200kBase, tiktoken_rs::o200k_base_singleton()),
        (EncodingId::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
    ] {
        let enc = encoding(id);
        let mut rng = Rng(42 + id.index() as u64);
        for _ in 0..5_000 {
            let text = rng.text(60);
            assert_eq!(enc.count(&text), bpe.encode_ordinary(&text).len(), "{id:?} on {text:?}");
        }
    }
}

/// Long single pieces take the heap merge; tiktoken's merge is the oracle.
#[test]
fn long_pieces_merge_exactly_as_tiktoken() {
    let enc = encoding(EncodingId::O200kBase);
    let vocab: &Vocabulary = enc.vocabulary();
    let ranks: rustc_hash::FxHashMap<Vec<u8>, u32> =
        vocab.tokens().enumerate().map(|(rank, token)| (token.to_vec(), rank as u32)).collect();
    let mut rng = Rng(7);
    for len in [100usize, 101, 150, 257, 1000, 5000] {
        for alphabet in [&b"a"[..], b"ab", b"abc ", b"x1_", b"\xe4\xb8\xad"] {
            let piece: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
            let expected = tiktoken_rs::byte_pair_split(&piece, &ranks).len();
            assert_eq!(vocab.count_piece(&piece), expected, "len {len} alphabet {alphabet:?}");
        }
    }
}

/// Runs of one character or unit of every length up to 600 and some longer (the heap
/// merge keeps each part's rank and caches pairs by ranks): tiktoken's merge is the oracle.
#[test]
fn runs_of_one_unit_merge_exactly_as_tiktoken() {
    for id in [EncodingId::O200kBase, EncodingId::Cl100kBase] {
        let enc = encoding(id);
        let vocab: &Vocabulary = enc.vocabulary();
        let ranks: rustc_hash::FxHashMap<Vec<u8>, u32> =
            vocab.tokens().enumerate().map(|(rank, token)| (token.to_vec(), rank as u32)).collect();
        for unit in [" ", "=", "\t", "\n", "\r\n", "A", "ſ", "😀", "-", "*", "0", "中", "ab"] {
            for len in (2..600).step_by(7).chain([1000, 3999, 4001, 4002, 9001]) {
                let piece = unit.repeat(len).into_bytes();
                let expected = tiktoken_rs::byte_pair_split(&piece, &ranks).len();
                assert_eq!(vocab.count_piece(&piece), expected, "{id:?} {unit:?} x {len}");
            }
        }
    }
}

/// Inputs that make regex-based tokenizers backtrack for minutes or overflow their stack.
#[test]
fn megabyte_runs_are_counted_without_crashing() {
    const MB: usize = 1 << 20;
    for id in [EncodingId::O200kBase, EncodingId::Cl100kBase] {
        let enc = encoding(id);
        for unit in ["a", " ", "\n", "😀", "\t "] {
            let text = unit.repeat(MB / unit.len());
            let n = enc.count(&text);
            assert!(n > 0 && n <= text.len(), "{id:?} {unit:?}: {n}");
            // One piece each: the whole text merges as one, like tiktoken's BPE would.
            if unit != "\t " {
                let pieces: Vec<_> = Pieces::new(&text, pattern_of(id)).collect();
                assert_eq!(pieces.len(), 1, "{id:?} {unit:?}");
            }
        }
    }
}

fn pattern_of(id: EncodingId) -> Pattern {
    match id {
        EncodingId::O200kBase => Pattern::O200k,
        EncodingId::Cl100kBase => Pattern::Cl100k,
        _ => unreachable!("only the two OpenAI encodings are tested here"),
    }
}

/// The per-thread memo of merged pieces: the same pieces under both encodings, counted
/// again and again (hits), short ones and long ones (the arena), on this thread and on
/// others, always tiktoken's count.
#[test]
fn memoized_pieces_count_exactly_under_each_encoding_on_every_thread() {
    let mut rng = Rng(99);
    let pieces: Vec<String> = (0..40)
        .map(|i| {
            let unit = ["😀", "中文", "ab", "..", "\r\n", "ſt", "x1"][i % 7];
            unit.repeat([3usize, 20, 60, 150, 1500][i % 5])
        })
        .chain((0..40).map(|_| rng.text(12)))
        .collect();
    let check = |pieces: &[String]| {
        for round in 0..3 {
            for text in pieces {
                for (id, bpe) in [
                    (EncodingId::O200kBase, tiktoken_rs::o200k_base_singleton()),
                    (EncodingId::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
                ] {
                    assert_eq!(encoding(id).count(text), bpe.encode_ordinary(text).len(), "{id:?} round {round}");
                }
            }
        }
    };
    check(&pieces);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| check(&pieces));
        }
    });
}
