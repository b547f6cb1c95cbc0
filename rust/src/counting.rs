//! Counting entry points: one text, or many at once, through the content cache.
//!
//! Batches are split across cores with rayon only when there is enough text for it to
//! pay (thread hand-off costs microseconds; tokenizing 256 KiB costs milliseconds).
//! `TOKENSIEVE_PARALLELISM=0` (or `false`/`off`) keeps everything on the calling thread,
//! and a forked child never touches the parent's thread pool (see [`disable_parallelism`]).

use crate::cache::{self, CacheText};
use crate::encoding::Encoding;
use crate::pretokenize::Splitter;
use rayon::prelude::*;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Batches with less text than this are counted on the calling thread.
pub const PARALLEL_MIN_BYTES: usize = 256 * 1024;

static FORCED_SERIAL: AtomicBool = AtomicBool::new(false);

/// Turn parallel counting off for the rest of this process. Called in a forked child:
/// rayon's worker threads were not copied by `fork`, so using the pool would hang.
pub fn disable_parallelism() {
    FORCED_SERIAL.store(true, Relaxed);
}

/// Whether batches may run in parallel: not after a fork, not when the environment says no.
pub fn parallelism_allowed() -> bool {
    if FORCED_SERIAL.load(Relaxed) {
        return false;
    }
    match std::env::var("TOKENSIEVE_PARALLELISM") {
        Ok(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"),
        Err(_) => true,
    }
}

/// Tokens of `text`, through the process-wide cache.
#[inline]
pub fn count(encoding: &Encoding, text: &str) -> usize {
    cache::global().get_or_count(encoding.id(), text, |t| count_text(encoding, t))
}

/// One text at least this long is cut at safe boundaries into chunks counted in
/// parallel (when parallelism is allowed and the pattern has a scanner). 16 KiB take
/// 0.1-0.3 ms to count, a chunk's hand-off to a worker a few microseconds.
pub const SPLIT_MIN_BYTES: usize = 16 * 1024;
/// Chunks are at least this long (a chunk costs a thread hand-off, microseconds).
const CHUNK_MIN_BYTES: usize = 4 * 1024;

/// [`Encoding::count`], with a long text cut into chunks counted on all cores.
///
/// Exact: a chunk ends only where every pre-tokenizer with a scanner ends a piece
/// whatever follows ([`is_safe_boundary`]), so the chunks' pieces are the text's. A
/// user's regex pattern is never cut.
pub fn count_text(encoding: &Encoding, text: &str) -> usize {
    if text.len() < SPLIT_MIN_BYTES
        || !matches!(encoding.splitter(), Splitter::Scanner(_))
        || rayon::current_num_threads() < 2
        || !parallelism_allowed()
    {
        return encoding.count(text);
    }
    let text = encoding.normalize(text);
    let target = (text.len() / (rayon::current_num_threads() * 4)).max(CHUNK_MIN_BYTES);
    let chunks = safe_chunks(text.as_bytes(), target);
    if chunks.len() < 2 {
        return encoding.vocabulary().count_pieces(encoding.pieces(&text));
    }
    chunks.into_par_iter().map(|r| encoding.vocabulary().count_pieces(encoding.pieces(&text[r]))).sum()
}

/// Whether every scanner ([`Pattern`](crate::pretokenize::Pattern)) ends a piece at byte
/// `b` of `s`, and the pieces before `b` are the same whether or not the text goes on
/// after it. Two cases, both ASCII:
///
/// * a newline, then a letter: no alternative takes a letter after a newline (the
///   letters' optional prefix excludes `\r` and `\n`; punctuation takes trailing
///   `[\r\n/]*` and whitespace runs end at their last newline, the same at the end of
///   the text, where cl100k's `\s++$` matches exactly what `\s*[\r\n]` does there);
/// * a letter, a space, a letter: the letter run ends at the space, which leads the next
///   word (`[^\r\n\p{L}\p{N}]?` then letters) in every pattern.
///
/// A test checks that cutting at every such boundary gives the same pieces.
#[inline]
pub fn is_safe_boundary(s: &[u8], b: usize) -> bool {
    if b == 0 || b + 1 >= s.len() {
        return false;
    }
    let letter = |c: u8| c.is_ascii_alphabetic();
    (s[b - 1] == b'\n' && letter(s[b])) || (letter(s[b - 1]) && s[b] == b' ' && letter(s[b + 1]))
}

/// `s` cut into ranges of about `target` bytes (at least), each ending at a safe
/// boundary or at the end.
fn safe_chunks(s: &[u8], target: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while s.len() - start >= 2 * target {
        match (start + target..s.len()).find(|&b| is_safe_boundary(s, b)) {
            Some(b) => {
                chunks.push(start..b);
                start = b;
            }
            None => break,
        }
    }
    chunks.push(start..s.len());
    chunks
}

/// Tokens of each text, through the cache, in parallel when the batch is large enough.
pub fn count_batch<S: AsRef<str> + Sync>(encoding: &Encoding, texts: &[S]) -> Vec<i64> {
    let total: usize = texts.iter().map(|t| t.as_ref().len()).sum();
    if texts.len() > 1 && total >= PARALLEL_MIN_BYTES && parallelism_allowed() {
        // Small chunks keep cores busy when a few texts are much longer than the rest.
        texts.par_iter().with_min_len(8).map(|t| count(encoding, t.as_ref()) as i64).collect()
    } else {
        texts.iter().map(|t| count(encoding, t.as_ref()) as i64).collect()
    }
}

/// Token counts of groups of texts: `groups[i]` is a range of `texts` whose counts are
/// summed. Each group is one cache entry, so a re-read history costs one lookup per
/// message part instead of one per string.
///
/// Every group is looked up first, on this thread (each cache shard locked once for the
/// batch); only the misses are tokenized, in parallel when there is enough new text, and
/// their counts stored together at the end (again one lock per shard). Re-counting a
/// history is all hits, where threads would only add hand-off costs.
pub fn count_groups<S: CacheText + Sync>(encoding: &Encoding, texts: &[S], groups: &[Range<usize>]) -> Vec<i64> {
    let cache = cache::global();
    let mut counts = vec![0i64; groups.len()];
    let mut probed = Vec::with_capacity(groups.len());
    // One lock per shard for the whole batch, not one per group.
    cache.probe_groups(encoding.id(), texts, groups, &mut probed);
    let mut misses = Vec::new();
    let mut miss_bytes = 0;
    for (i, answer) in probed.into_iter().enumerate() {
        match answer {
            Ok(n) => counts[i] = n as i64,
            Err(key) => {
                miss_bytes += texts[groups[i].clone()].iter().map(|t| t.as_ref().len()).sum::<usize>();
                misses.push((i, key));
            }
        }
    }
    let count = |&(i, key): &(usize, Option<cache::GroupKey>)| {
        let n: usize = texts[groups[i].clone()].iter().map(|t| count_text(encoding, t.as_ref())).sum();
        (i, key, n)
    };
    let counted: Vec<(usize, Option<cache::GroupKey>, usize)> =
        if misses.len() > 1 && miss_bytes >= PARALLEL_MIN_BYTES && parallelism_allowed() {
            misses.par_iter().with_min_len(8).map(count).collect()
        } else {
            misses.iter().map(count).collect()
        };
    let mut stored = Vec::with_capacity(counted.len());
    for (i, key, n) in counted {
        counts[i] = n as i64;
        if let Some(key) = key {
            stored.push((key, n));
        }
    }
    cache.store_many(&stored);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{encoding, EncodingId};

    use crate::pretokenize::{Pattern, Pieces};

    const PARTS: &[&str] = &[
        "a", "Z", "word", "Word", "HTTP", "x", "ab", " ", " ", " ", " ", "  ", "\n", "\n", "\r\n", "\r", "\t",
        "\n\n  ", "'s", "'LL", "'", "7", "123", "/", "//", ";", "{", "}", ".", "é", "\u{301}", "中", "٣", "\u{a0}",
        "\u{3000}", "😀", "ſ", "\x0b",
    ];

    fn random_text(seed: &mut u64, parts: usize) -> String {
        (0..parts)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                PARTS[(*seed >> 8) as usize % PARTS.len()]
            })
            .collect()
    }

    fn pieces(text: &str, p: Pattern) -> Vec<&str> {
        Pieces::new(text, p).map(|b| std::str::from_utf8(b).unwrap()).collect()
    }

    #[test]
    fn cutting_at_a_safe_boundary_keeps_every_scanners_pieces() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut cuts = 0;
        for _ in 0..20_000 {
            let text = random_text(&mut seed, 16);
            for b in 0..text.len() {
                if !is_safe_boundary(text.as_bytes(), b) {
                    continue;
                }
                cuts += 1;
                for p in [Pattern::O200k, Pattern::Cl100k, Pattern::Llama3, Pattern::Qwen2] {
                    let mut cut = pieces(&text[..b], p);
                    cut.extend(pieces(&text[b..], p));
                    assert_eq!(cut, pieces(&text, p), "{p:?} cut at {b} of {text:?}");
                }
            }
        }
        assert!(cuts > 5_000, "the texts have safe boundaries to test ({cuts})");
    }

    #[test]
    fn a_long_text_counted_in_chunks_counts_as_in_one_piece() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let text = random_text(&mut seed, 200_000);
        assert!(text.len() >= 4 * SPLIT_MIN_BYTES);
        let chunks = safe_chunks(text.as_bytes(), CHUNK_MIN_BYTES);
        assert!(chunks.len() > 4);
        assert_eq!(chunks.iter().map(|r| r.len()).sum::<usize>(), text.len());
        for id in [EncodingId::O200kBase, EncodingId::Cl100kBase] {
            let enc = encoding(id);
            let whole = enc.count(&text);
            let chunked: usize = chunks.iter().map(|r| enc.count(&text[r.clone()])).sum();
            assert_eq!(chunked, whole, "{id:?}");
            assert_eq!(count_text(enc, &text), whole, "{id:?}");
        }
    }

    #[test]
    fn groups_count_as_their_texts_counted_alone_cold_and_cached() {
        let enc = encoding(EncodingId::O200kBase);
        let mut seed = 0x51_7CC1_B727_220Au64;
        // Enough text for the misses to be counted in parallel, groups of 1 to 4 texts
        // (some shorter than the cache's minimum, some empty).
        let texts: Vec<String> = (0..3000).map(|i| random_text(&mut seed, [0, 1, 3, 40, 200][i % 5])).collect();
        let mut groups = Vec::new();
        let mut start = 0;
        while start < texts.len() {
            let end = (start + 1 + start % 4).min(texts.len());
            groups.push(start..end);
            start = end;
        }
        assert!(texts.iter().map(String::len).sum::<usize>() >= PARALLEL_MIN_BYTES);
        let expected: Vec<i64> =
            groups.iter().map(|g| texts[g.clone()].iter().map(|t| enc.count(t) as i64).sum()).collect();
        assert_eq!(count_groups(enc, &texts, &groups), expected, "cold");
        assert_eq!(count_groups(enc, &texts, &groups), expected, "from the cache");
    }

    #[test]
    fn a_text_of_16_kib_or_more_is_cut_and_counts_as_uncut() {
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        for parts in [9_500, 12_000, 20_000, 35_000] {
            let text = random_text(&mut seed, parts);
            assert!(text.len() >= SPLIT_MIN_BYTES, "{}", text.len());
            let target = (text.len() / (rayon::current_num_threads().max(2) * 4)).max(CHUNK_MIN_BYTES);
            assert!(safe_chunks(text.as_bytes(), target).len() > 1, "{} bytes are cut", text.len());
            for id in [EncodingId::O200kBase, EncodingId::Cl100kBase, EncodingId::O200kHarmony, EncodingId::Qwen3] {
                let enc = encoding(id);
                assert_eq!(count_text(enc, &text), enc.count(&text), "{id:?} on {} bytes", text.len());
            }
        }
    }

    #[test]
    fn parallel_and_serial_batches_give_the_same_counts() {
        let enc = encoding(EncodingId::O200kBase);
        let texts: Vec<String> =
            (0..2000).map(|i| format!("message {i}: {}", "lorem ipsum dolor sit amet ".repeat(i % 50))).collect();
        assert!(texts.iter().map(String::len).sum::<usize>() >= PARALLEL_MIN_BYTES);
        let parallel = count_batch(enc, &texts);
        let serial: Vec<i64> = texts.iter().map(|t| enc.count(t) as i64).collect();
        assert_eq!(parallel, serial);
    }
}
