//! Encodings from a user's file: a tiktoken rank file (`.tiktoken`, Meta's Llama 3
//! `tokenizer.model`) plus a pattern name, or a Hugging Face `tokenizer.json` of a
//! byte-level BPE model. Pure Rust: the glue reads the bytes, this turns them into an
//! [`EncodingSpec`] (or an error naming what was found), [`crate::encoding::register`]
//! makes it usable by name.
//!
//! A `tokenizer.json` is counted by the same rank-based merging as tiktoken: each token's
//! rank is the position of the first merge that makes it (single bytes first), which is
//! its id in every byte-level BPE file whose merges follow the ids (those converted from
//! tiktoken ranks, and those trained by `tokenizers`). The `Split` regex runs on a
//! hand-written scanner when it is one of the known patterns character for character,
//! else on `fancy-regex` (slower, never guessed).

use crate::bpe::{Rank, Ranks, Vocabulary};
use crate::encoding::{EncodingSpec, Family, Normalization};
use crate::error::{Error, Result};
use crate::pretokenize::{Pattern, Splitter};
use serde_json::Value;

/// The pre-tokenizer regex of `tokenizers`' `ByteLevel` step with `use_regex: true`
/// (GPT-2's pattern), for files that have no `Split`.
pub const BYTE_LEVEL_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

fn invalid(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!("{what}: {reason}"))
}

/// A tiktoken rank file: `base64(token) rank` per line, ranks `0..n` (in any order).
pub fn parse_tiktoken(data: &[u8]) -> Result<Vec<Vec<u8>>> {
    use base64::Engine as _;
    const WHAT: &str = "the tiktoken rank file";
    let text = std::str::from_utf8(data).map_err(|e| invalid(WHAT, format!("not UTF-8 text ({e})")))?;
    // Ranks are 0..n for n tokens: a larger one is a gap, refused before allocating for it.
    let n = text.lines().filter(|l| !l.trim().is_empty()).count();
    let mut by_rank: Vec<Option<Vec<u8>>> = vec![None; n];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || invalid(WHAT, format!("line {}: expected `base64-token rank`, got {:?}", i + 1, truncate(line)));
        let (token, rank) = line.trim().split_once(' ').ok_or_else(bad)?;
        let rank: usize = rank.trim().parse().map_err(|_| bad())?;
        let token = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| bad())?;
        if token.is_empty() || token.len() > 255 {
            return Err(invalid(
                WHAT,
                format!("line {}: a token of {} bytes (1 to 255 are supported)", i + 1, token.len()),
            ));
        }
        if rank >= n {
            return Err(invalid(
                WHAT,
                format!("line {}: rank {rank} in a file of {n} tokens (ranks must be 0, 1, 2, ...)", i + 1),
            ));
        }
        if by_rank[rank].replace(token).is_some() {
            return Err(invalid(WHAT, format!("line {}: rank {rank} appears twice", i + 1)));
        }
    }
    if by_rank.is_empty() {
        return Err(invalid(WHAT, "it holds no tokens"));
    }
    by_rank
        .into_iter()
        .enumerate()
        .map(|(rank, t)| t.ok_or_else(|| invalid(WHAT, format!("rank {rank} is missing (ranks must be 0, 1, 2, ...)"))))
        .collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The vocabulary of `tokens` (by rank), checked: distinct, and every single byte a token
/// (the merging starts from bytes).
fn vocabulary(tokens: Vec<Vec<u8>>, what: &str) -> Result<Vocabulary> {
    // The table's layout (`vocab_table.rs`) holds at most 16 MiB of token bytes.
    let bytes: usize = tokens.iter().map(Vec::len).sum();
    if bytes >= 1 << 24 {
        return Err(invalid(
            what,
            format!("{} tokens of {bytes} bytes in all; at most 16 MiB are supported", tokens.len()),
        ));
    }
    let mut ranks = Ranks::default();
    ranks.reserve(tokens.len());
    let n = tokens.len();
    for (rank, token) in tokens.into_iter().enumerate() {
        if let Some(other) = ranks.insert(token.clone(), rank as Rank) {
            return Err(invalid(
                what,
                format!("the token {:?} has two ranks, {other} and {rank}", String::from_utf8_lossy(&token)),
            ));
        }
    }
    if let Some(b) = (0..=255u8).find(|b| !ranks.contains_key(&[*b][..])) {
        return Err(invalid(
            what,
            format!(
                "byte 0x{b:02X} is no token: tokensieve counts byte-level BPE vocabularies, where every byte is one"
            ),
        ));
    }
    debug_assert_eq!(ranks.len(), n);
    Ok(Vocabulary::new(ranks))
}

/// Llama 3's special tokens after `base` ordinary tokens (`llama_models/llama3/tokenizer.py`):
/// 256 of them, the named ones first.
pub fn llama3_specials(base: u32) -> Vec<(String, u32)> {
    const NAMED: [&str; 12] = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>",
        "<|step_id|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|python_tag|>",
        "<|image|>",
    ];
    let reserved = (0..256 - NAMED.len()).map(|i| format!("<|reserved_special_token_{}|>", 2 + i));
    NAMED.iter().map(|s| s.to_string()).chain(reserved).enumerate().map(|(i, s)| (s, base + i as u32)).collect()
}

/// The family whose chat template an encoding of this name, or with these special
/// tokens, renders with: by name first (`llama3*`, `qwen*`, `*harmony*`, `gpt-oss*`,
/// the OpenAI `*_base`), then by the template's special tokens; OpenAI's recipe otherwise.
pub fn guess_family(name: &str, specials: &[(String, u32)]) -> Family {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("llama3") || lower.starts_with("llama-3") {
        return Family::Llama3;
    }
    if lower.starts_with("qwen") {
        return Family::ChatMl;
    }
    if lower.contains("harmony") || lower.starts_with("gpt-oss") {
        return Family::Harmony;
    }
    let has = |t: &str| specials.iter().any(|(s, _)| s == t);
    if has("<|start_header_id|>") && has("<|eot_id|>") {
        Family::Llama3
    } else if has("<|im_start|>") && has("<|im_end|>") {
        Family::ChatMl
    } else if has("<|start|>") && has("<|message|>") {
        Family::Harmony
    } else {
        Family::OpenAi
    }
}

/// An encoding from a tiktoken rank file split with `pattern`.
pub fn from_tiktoken(
    name: &str,
    data: &[u8],
    splitter: Splitter,
    normalization: Normalization,
    family: Option<Family>,
    specials: Option<Vec<(String, u32)>>,
) -> Result<EncodingSpec> {
    let tokens = parse_tiktoken(data)?;
    let n = tokens.len() as u32;
    let vocabulary = vocabulary(tokens, "the tiktoken rank file")?;
    let llama3 = matches!(splitter, Splitter::Scanner(Pattern::Llama3));
    let specials = specials.unwrap_or_else(|| if llama3 { llama3_specials(n) } else { Vec::new() });
    let family = family.unwrap_or_else(|| guess_family(name, &specials));
    Ok(EncodingSpec { name: name.to_owned(), splitter, normalization, family, vocabulary, specials })
}

/// GPT-2's byte-to-character table of byte-level BPE files, inverted: the byte each
/// character of a `tokenizer.json` token stands for.
fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("below U+0200")
        };
        map.insert(c, b);
    }
    map
}

fn type_of(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("(no type)")
}

/// An encoding from a Hugging Face `tokenizer.json` of a byte-level BPE model.
pub fn from_hf_json(name: &str, data: &[u8], family: Option<Family>) -> Result<EncodingSpec> {
    const WHAT: &str = "tokenizer.json";
    let root: Value = serde_json::from_slice(data).map_err(|e| invalid(WHAT, format!("not valid JSON ({e})")))?;
    let model = root.get("model").ok_or_else(|| invalid(WHAT, "no \"model\": not a Hugging Face tokenizer file"))?;
    let model_type = match model.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None if model.get("merges").is_some() => "BPE",
        None => "(no type)",
    };
    if model_type != "BPE" {
        let kind = match model_type {
            "Unigram" => " (SentencePiece unigram)",
            "WordPiece" => " (BERT-style WordPiece)",
            "WordLevel" => " (a word-level vocabulary)",
            _ => "",
        };
        return Err(invalid(
            WHAT,
            format!("the model is {model_type:?}{kind}; tokensieve counts byte-level BPE models (\"type\": \"BPE\" with a ByteLevel pre-tokenizer)"),
        ));
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            WHAT,
            "a BPE with byte_fallback (SentencePiece-style); tokensieve counts byte-level BPE models",
        ));
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if model.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(invalid(WHAT, format!("the BPE model sets {key}, which byte-level BPE models do not use")));
        }
    }
    if model.get("dropout").is_some_and(|d| !d.is_null()) {
        return Err(invalid(WHAT, "the BPE model sets dropout (random merges cannot be counted exactly)"));
    }

    let normalization = normalization(root.get("normalizer").unwrap_or(&Value::Null))?;
    let splitter = pre_tokenizer(root.get("pre_tokenizer").unwrap_or(&Value::Null))?;

    // Added tokens: the specials, and ids to leave out of the ordinary vocabulary.
    let mut specials = Vec::new();
    if let Some(added) = root.get("added_tokens").and_then(Value::as_array) {
        for t in added {
            if let (Some(id), Some(content)) =
                (t.get("id").and_then(Value::as_u64), t.get("content").and_then(Value::as_str))
            {
                specials.push((content.to_owned(), id as u32));
            }
        }
    }
    let added_ids: std::collections::HashSet<u32> = specials.iter().map(|&(_, id)| id).collect();

    let decoder = byte_level_decoder();
    let decode = |s: &str| -> Result<Vec<u8>> {
        s.chars().map(|c| decoder.get(&c).copied()).collect::<Option<Vec<u8>>>().ok_or_else(|| {
            invalid(
                WHAT,
                format!("the token {:?} is not in byte-level form (is the model byte-level BPE?)", truncate(s)),
            )
        })
    };
    let vocab =
        model.get("vocab").and_then(Value::as_object).ok_or_else(|| invalid(WHAT, "the BPE model has no vocab"))?;
    let mut by_id: Vec<(u64, Vec<u8>)> = Vec::with_capacity(vocab.len());
    for (token, id) in vocab {
        let id =
            id.as_u64().ok_or_else(|| invalid(WHAT, format!("the id of {:?} is not a number", truncate(token))))?;
        if added_ids.contains(&(id as u32)) {
            continue;
        }
        let bytes = decode(token)?;
        if bytes.is_empty() || bytes.len() > 255 {
            return Err(invalid(WHAT, format!("a token of {} bytes (1 to 255 are supported)", bytes.len())));
        }
        by_id.push((id, bytes));
    }
    by_id.sort_unstable();

    // Ranks follow the merges: single bytes first, then each merge's result at its
    // first merge, then any other token, by id.
    let merges =
        model.get("merges").and_then(Value::as_array).ok_or_else(|| invalid(WHAT, "the BPE model has no merges"))?;
    let index: rustc_hash::FxHashMap<&[u8], usize> =
        by_id.iter().enumerate().map(|(i, (_, t))| (t.as_slice(), i)).collect();
    let mut placed = vec![false; by_id.len()];
    let mut order: Vec<usize> = Vec::with_capacity(by_id.len());
    for (i, (_, t)) in by_id.iter().enumerate() {
        if t.len() == 1 {
            placed[i] = true;
            order.push(i);
        }
    }
    for (k, merge) in merges.iter().enumerate() {
        let (left, right) = match merge {
            Value::String(s) => {
                s.split_once(' ').ok_or_else(|| invalid(WHAT, format!("merge {k} ({s:?}) is not `left right`")))?
            }
            Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), pair[1].as_str()) {
                (Some(l), Some(r)) => (l, r),
                _ => return Err(invalid(WHAT, format!("merge {k} is not a pair of strings"))),
            },
            _ => return Err(invalid(WHAT, format!("merge {k} is neither `left right` nor [left, right]"))),
        };
        let mut merged = decode(left)?;
        merged.extend(decode(right)?);
        let i = *index.get(merged.as_slice()).ok_or_else(|| {
            invalid(WHAT, format!("merge {k} ({left:?} + {right:?}) makes a token that is not in the vocab"))
        })?;
        if !placed[i] {
            placed[i] = true;
            order.push(i);
        }
    }
    order.extend((0..by_id.len()).filter(|&i| !placed[i]));
    let tokens: Vec<Vec<u8>> = order.into_iter().map(|i| std::mem::take(&mut by_id[i].1)).collect();
    let vocabulary = vocabulary(tokens, WHAT)?;
    let family = family.unwrap_or_else(|| guess_family(name, &specials));
    Ok(EncodingSpec { name: name.to_owned(), splitter, normalization, family, vocabulary, specials })
}

fn normalization(v: &Value) -> Result<Normalization> {
    match v {
        Value::Null => Ok(Normalization::None),
        _ => match type_of(v) {
            "NFC" => Ok(Normalization::Nfc),
            "Sequence" => {
                let list = v.get("normalizers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                match list {
                    [] => Ok(Normalization::None),
                    [one] => normalization(one),
                    _ => Err(invalid(
                        "tokenizer.json",
                        format!("a Sequence of {} normalizers; tokensieve supports NFC or none", list.len()),
                    )),
                }
            }
            other => {
                Err(invalid("tokenizer.json", format!("the normalizer is {other:?}; tokensieve supports NFC or none")))
            }
        },
    }
}

fn pre_tokenizer(v: &Value) -> Result<Splitter> {
    const WHAT: &str = "tokenizer.json";
    let steps: Vec<&Value> = match type_of(v) {
        "Sequence" => v.get("pretokenizers").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default(),
        "(no type)" if v.is_null() => Vec::new(),
        _ => vec![v],
    };
    let mut split: Option<Splitter> = None;
    let mut byte_level = false;
    for step in steps {
        match type_of(step) {
            "Split" => {
                if split.is_some() {
                    return Err(invalid(WHAT, "more than one Split pre-tokenizer; tokensieve supports one"));
                }
                let behavior = step.get("behavior").and_then(Value::as_str).unwrap_or("Isolated");
                if behavior != "Isolated" || step.get("invert").and_then(Value::as_bool) == Some(true) {
                    return Err(invalid(
                        WHAT,
                        format!("a Split with behavior {behavior:?}; tokensieve supports \"Isolated\", not inverted"),
                    ));
                }
                let pattern = step.get("pattern");
                let regex = if let Some(r) = pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str) {
                    r.to_owned()
                } else if let Some(s) = pattern.and_then(|p| p.get("String")).and_then(Value::as_str) {
                    fancy_regex::escape(s).into_owned()
                } else {
                    return Err(invalid(WHAT, "a Split without a Regex or String pattern"));
                };
                split = Some(match Pattern::from_regex(&regex) {
                    Some(p) => Splitter::Scanner(p),
                    None => Splitter::regex(&regex, true).map_err(|e| invalid(WHAT, e))?,
                });
            }
            "ByteLevel" => {
                if step.get("add_prefix_space").and_then(Value::as_bool) == Some(true) {
                    return Err(invalid(
                        WHAT,
                        "a ByteLevel pre-tokenizer with add_prefix_space, which tokensieve does not support",
                    ));
                }
                byte_level = true;
                if step.get("use_regex").and_then(Value::as_bool) != Some(false) {
                    if split.is_some() {
                        return Err(invalid(WHAT, "a Split followed by a ByteLevel step that splits again (use_regex); tokensieve supports one split"));
                    }
                    split = Some(Splitter::regex(BYTE_LEVEL_REGEX, true).map_err(|e| invalid(WHAT, e))?);
                }
            }
            other => {
                return Err(invalid(
                    WHAT,
                    format!("a {other:?} pre-tokenizer; tokensieve supports Split (one regex) and ByteLevel"),
                ))
            }
        }
    }
    if !byte_level {
        return Err(invalid(WHAT, "no ByteLevel pre-tokenizer: tokensieve counts byte-level BPE models"));
    }
    split.ok_or_else(|| invalid(WHAT, "no pre-tokenizer split"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_tiktoken() -> Vec<u8> {
        use base64::Engine as _;
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(b"ab".to_vec());
        tokens.push(b"abc".to_vec());
        let mut out = String::new();
        for (i, t) in tokens.iter().enumerate() {
            out += &format!("{} {i}\n", base64::engine::general_purpose::STANDARD.encode(t));
        }
        out.into_bytes()
    }

    #[test]
    fn a_tiktoken_file_loads_with_its_pattern() {
        let spec = from_tiktoken(
            "tiny",
            &tiny_tiktoken(),
            Splitter::Scanner(Pattern::Cl100k),
            Normalization::None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(spec.vocabulary.len(), 258);
        assert_eq!(spec.vocabulary.count_piece(b"abcab"), 2);
        assert_eq!(spec.family, Family::OpenAi);
    }

    #[test]
    fn a_llama3_rank_file_gets_llama3_specials_and_template() {
        let spec = from_tiktoken(
            "llama3",
            &tiny_tiktoken(),
            Splitter::Scanner(Pattern::Llama3),
            Normalization::None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(spec.family, Family::Llama3);
        assert_eq!(spec.specials.len(), 256);
        assert_eq!(spec.specials[9], ("<|eot_id|>".to_owned(), 258 + 9));
        assert_eq!(spec.specials[255].0, "<|reserved_special_token_245|>");
    }

    #[test]
    fn broken_rank_files_are_errors_naming_the_line() {
        let err = parse_tiktoken(b"YQ== 0\nnot-a-line\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse_tiktoken(b"YQ== 0\nYg== 2\n").unwrap_err().to_string();
        assert!(err.contains("rank 2 in a file of 2 tokens"), "{err}");
        let err = parse_tiktoken(b"YQ== 0\nYg== 0\n").unwrap_err().to_string();
        assert!(err.contains("rank 0 appears twice"), "{err}");
        let err = from_tiktoken("x", b"YQ== 0\n", Splitter::Scanner(Pattern::Cl100k), Normalization::None, None, None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("byte 0x00 is no token"), "{err}");
    }

    fn hf_json(model: &str, pre: &str, normalizer: &str) -> Vec<u8> {
        format!(r#"{{"normalizer": {normalizer}, "pre_tokenizer": {pre}, "model": {model}, "added_tokens": [{{"id": 300, "content": "<|im_start|>", "special": true}}, {{"id": 301, "content": "<|im_end|>", "special": true}}]}}"#)
            .into_bytes()
    }

    fn byte_level_bpe() -> String {
        let enc: std::collections::HashMap<u8, char> = byte_level_decoder().into_iter().map(|(c, b)| (b, c)).collect();
        let mut vocab = serde_json::Map::new();
        for b in 0..=255u8 {
            vocab.insert(enc[&b].to_string(), Value::from(b as u64));
        }
        vocab.insert("ab".into(), Value::from(256u64));
        vocab.insert("Ġa".into(), Value::from(257u64));
        serde_json::json!({"type": "BPE", "vocab": vocab, "merges": ["a b", "Ġ a"]}).to_string()
    }

    const SPLIT_QWEN: &str = r#"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}"#;

    #[test]
    fn a_byte_level_bpe_tokenizer_json_loads_with_its_scanner_and_nfc() {
        let spec = from_hf_json("mine", &hf_json(&byte_level_bpe(), SPLIT_QWEN, r#"{"type": "NFC"}"#), None).unwrap();
        assert!(matches!(spec.splitter, Splitter::Scanner(Pattern::Qwen2)));
        assert_eq!(spec.normalization, Normalization::Nfc);
        assert_eq!(spec.family, Family::ChatMl);
        assert_eq!(spec.vocabulary.len(), 258);
        assert_eq!(spec.vocabulary.count_piece(b" ab"), 2); // " a" (rank 257) loses to "ab" (256)
    }

    #[test]
    fn an_unknown_split_regex_runs_on_the_regex_engine() {
        let pre = r#"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\d|\\D+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}"#;
        let spec = from_hf_json("mine", &hf_json(&byte_level_bpe(), pre, "null"), None).unwrap();
        assert!(matches!(spec.splitter, Splitter::Regex { .. }));
        let pieces: Vec<&[u8]> = spec.splitter.pieces("ab12").collect();
        assert_eq!(pieces, [&b"ab"[..], b"1", b"2"]);
    }

    #[test]
    fn unsupported_tokenizers_are_errors_naming_what_was_found() {
        let unigram = hf_json(r#"{"type": "Unigram", "vocab": []}"#, SPLIT_QWEN, "null");
        let err = from_hf_json("x", &unigram, None).err().unwrap().to_string();
        assert!(err.contains("Unigram") && err.contains("SentencePiece"), "{err}");
        let wordpiece = hf_json(r#"{"type": "WordPiece", "vocab": {}}"#, SPLIT_QWEN, "null");
        assert!(from_hf_json("x", &wordpiece, None).err().unwrap().to_string().contains("WordPiece"));
        let lower = hf_json(&byte_level_bpe(), SPLIT_QWEN, r#"{"type": "Lowercase"}"#);
        assert!(from_hf_json("x", &lower, None).err().unwrap().to_string().contains("Lowercase"));
        let whitespace = hf_json(&byte_level_bpe(), r#"{"type": "Whitespace"}"#, "null");
        assert!(from_hf_json("x", &whitespace, None).err().unwrap().to_string().contains("Whitespace"));
        assert!(from_hf_json("x", b"[1, 2", None).err().unwrap().to_string().contains("not valid JSON"));
    }
}
