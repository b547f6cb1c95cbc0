//! Counting entry points: one text, or many at once, through the content cache.
//!
//! Batches are split across cores with rayon only when there is enough text for it to
//! pay (thread hand-off costs microseconds; tokenizing 256 KiB costs milliseconds).
//! `TOKENSIEVE_PARALLELISM=0` (or `false`/`off`) keeps everything on the calling thread,
//! and a forked child never touches the parent's thread pool (see [`disable_parallelism`]).

use crate::cache::{self, CacheText};
use crate::encoding::Encoding;
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
    cache::global().get_or_count(encoding.id(), text, |t| encoding.count(t))
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
/// Every group is looked up first, on this thread; only the misses are tokenized, in
/// parallel when there is enough new text. Re-counting a history is all hits, where
/// threads would only add hand-off costs.
pub fn count_groups<S: CacheText + Sync>(encoding: &Encoding, texts: &[S], groups: &[Range<usize>]) -> Vec<i64> {
    let cache = cache::global();
    let mut counts = vec![0i64; groups.len()];
    let mut misses = Vec::new();
    let mut miss_bytes = 0;
    for (i, group) in groups.iter().enumerate() {
        match cache.probe_group(encoding.id(), &texts[group.clone()]) {
            Ok(n) => counts[i] = n as i64,
            Err(key) => {
                miss_bytes += texts[group.clone()].iter().map(|t| t.as_ref().len()).sum::<usize>();
                misses.push((i, key));
            }
        }
    }
    let count = |&(i, key): &(usize, Option<cache::GroupKey>)| {
        let n: usize = texts[groups[i].clone()].iter().map(|t| encoding.count(t.as_ref())).sum();
        if let Some(key) = key {
            cache.store(key, n);
        }
        (i, n as i64)
    };
    let counted: Vec<(usize, i64)> = if misses.len() > 1 && miss_bytes >= PARALLEL_MIN_BYTES && parallelism_allowed() {
        misses.par_iter().with_min_len(8).map(count).collect()
    } else {
        misses.iter().map(count).collect()
    };
    for (i, n) in counted {
        counts[i] = n;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{encoding, EncodingId};

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
