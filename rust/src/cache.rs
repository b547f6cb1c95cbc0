//! The content cache: token counts keyed by the text itself.
//!
//! Agents resend their whole history on every request; only the newest messages are
//! new text. Keying counts by content makes re-counting a history cost one hash of
//! each message instead of a tokenization.
//!
//! * Key: encoding, byte length and the 128-bit XXH3 of the bytes. XXH3 runs at memory
//!   speed (tens of GB/s, against tens of MB/s for tokenizing), and 128 bits plus the
//!   length make a collision, i.e. a wrong count, astronomically unlikely.
//! * Bounded: at most `max_entries` entries, evicted by CLOCK (second chance), which keeps
//!   entries that are hit again and costs O(1) per operation, without LRU's list updates
//!   on every hit.
//! * Thread-safe: 16 independently locked shards, so parallel batch counting rarely
//!   contends. Fork-safe: a child forked while a shard was locked gets a fresh cache
//!   (see `fork.rs`).
//! * Observable: hits, misses, size.

use crate::encoding::EncodingId;
use crate::fork::{self, Global};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// Default bound: enough for a 100,000-message session; about 5 MB when full.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Texts shorter than this are counted directly. Measured on tool-call ids, names and
/// small argument dicts (16-60 bytes): a cache hit (hash, lock, lookup) costs about a
/// fifth of tokenizing them, so only the tiniest texts skip the cache.
pub const MIN_CACHED_BYTES: usize = 16;

/// A text with its content hash, which callers that already know it (a memo of large
/// strings, say) can supply instead of having it computed again.
pub trait CacheText: AsRef<str> {
    /// The 128-bit XXH3 of the text's UTF-8 bytes.
    fn content_hash(&self) -> u128 {
        xxhash_rust::xxh3::xxh3_128(self.as_ref().as_bytes())
    }
}

impl CacheText for &str {}
impl CacheText for String {}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key {
    hash: u128,
    len: usize,
    encoding: EncodingId,
}

impl Key {
    fn new(encoding: EncodingId, text: &str) -> Self {
        Key { hash: xxhash_rust::xxh3::xxh3_128(text.as_bytes()), len: text.len(), encoding }
    }

    /// The key of a sequence of texts counted together: the hash of each text's length
    /// and 128-bit hash, so that ("ab", "c") and ("a", "bc") differ. Hashing each text in
    /// one shot and then the short digest list is faster than a streaming hash, which
    /// copies the input through its buffer.
    fn of<S: CacheText>(encoding: EncodingId, text: &S) -> Self {
        Key { hash: text.content_hash(), len: text.as_ref().len(), encoding }
    }

    fn group<S: CacheText>(encoding: EncodingId, texts: &[S]) -> Self {
        // Most groups are a few texts (a call's name, id and arguments): no allocation.
        let mut small = [0u8; 24 * 8];
        let mut large = Vec::new();
        let digest: &mut [u8] = if texts.len() <= 8 {
            &mut small[..24 * texts.len()]
        } else {
            large.resize(24 * texts.len(), 0);
            &mut large
        };
        let mut len = 0;
        for (text, slot) in texts.iter().zip(digest.chunks_exact_mut(24)) {
            let bytes = text.as_ref().as_bytes();
            slot[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            slot[8..].copy_from_slice(&text.content_hash().to_le_bytes());
            len += bytes.len();
        }
        Key { hash: xxhash_rust::xxh3::xxh3_128(digest), len: len + 24 * texts.len(), encoding }
    }

    fn shard(&self) -> usize {
        (self.hash as usize) % SHARDS
    }
}

#[derive(Default)]
struct Shard {
    /// count, and the CLOCK "referenced" bit.
    map: FxHashMap<Key, (u32, bool)>,
    /// The clock hand walks this queue from the front.
    order: VecDeque<Key>,
}

impl Shard {
    fn get(&mut self, key: &Key) -> Option<u32> {
        let entry = self.map.get_mut(key)?;
        entry.1 = true;
        Some(entry.0)
    }

    fn insert(&mut self, key: Key, count: u32, capacity: usize) {
        if capacity == 0 || self.map.contains_key(&key) {
            return;
        }
        while self.map.len() >= capacity {
            let Some(victim) = self.order.pop_front() else { break };
            match self.map.get_mut(&victim) {
                Some(entry) if entry.1 => {
                    entry.1 = false;
                    self.order.push_back(victim);
                }
                Some(_) => {
                    self.map.remove(&victim);
                }
                None => {}
            }
        }
        self.map.insert(key, (count, false));
        self.order.push_back(key);
    }
}

/// The key a group of texts is cached under: one text shares the entry of the text
/// counted alone; `None` when the group is not cached (empty, too short, cache off).
fn group_key<S: CacheText>(encoding: EncodingId, texts: &[S], enabled: bool) -> Option<Key> {
    let total: usize = texts.iter().map(|t| t.as_ref().len()).sum();
    if texts.is_empty() || total < MIN_CACHED_BYTES || !enabled {
        return None;
    }
    Some(match texts {
        [one] => Key::of(encoding, one),
        _ => Key::group(encoding, texts),
    })
}

/// Where a missed group's count goes (see `CountCache::probe_group`).
#[derive(Clone, Copy, Debug)]
pub struct GroupKey(Key);

/// Counters and size of the cache at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    pub hits: u64,
    pub misses: u64,
    pub size: usize,
    pub max_entries: usize,
    pub enabled: bool,
}

pub struct CountCache {
    shards: [Mutex<Shard>; SHARDS],
    max_entries: AtomicUsize,
    enabled: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CountCache {
    pub fn new(max_entries: usize) -> Self {
        CountCache {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            max_entries: AtomicUsize::new(max_entries),
            enabled: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The count of `text`, from the cache or from `count` (then remembered).
    #[inline]
    pub fn get_or_count(&self, encoding: EncodingId, text: &str, count: impl FnOnce(&str) -> usize) -> usize {
        if text.len() < MIN_CACHED_BYTES || !self.enabled.load(Relaxed) {
            return count(text);
        }
        self.lookup(Key::new(encoding, text), || count(text))
    }

    /// The cached count of a group of texts, or the key to store it under once counted
    /// (`Err(None)`: not cacheable, count it directly). Lets a batch look everything up
    /// first and tokenize only the misses, in parallel.
    #[cfg(test)] // batches go through `probe_groups`; this is its tests' oracle
    pub fn probe_group<S: CacheText>(&self, encoding: EncodingId, texts: &[S]) -> Result<usize, Option<GroupKey>> {
        let Some(key) = group_key(encoding, texts, self.enabled.load(Relaxed)) else { return Err(None) };
        if let Some(n) = lock(&self.shards[key.shard()]).get(&key) {
            self.hits.fetch_add(1, Relaxed);
            return Ok(n as usize);
        }
        self.misses.fetch_add(1, Relaxed);
        Err(Some(GroupKey(key)))
    }

    /// For each group (`groups[i]` a range of `texts`), its cached count, or the key to
    /// store it under once counted (`Err(None)`: not cacheable, count it directly), in
    /// `out[i]`. Each shard is locked once for all the groups that fall in it, so a batch
    /// looks everything up first and tokenizes only the misses, in parallel.
    pub fn probe_groups<S: CacheText>(
        &self,
        encoding: EncodingId,
        texts: &[S],
        groups: &[std::ops::Range<usize>],
        out: &mut Vec<Result<usize, Option<GroupKey>>>,
    ) {
        out.clear();
        let enabled = self.enabled.load(Relaxed);
        let mut by_shard: [Vec<u32>; SHARDS] = Default::default();
        for (i, group) in groups.iter().enumerate() {
            let Some(key) = group_key(encoding, &texts[group.clone()], enabled) else {
                out.push(Err(None));
                continue;
            };
            by_shard[key.shard()].push(i as u32);
            out.push(Err(Some(GroupKey(key))));
        }
        let (mut hits, mut misses) = (0, 0);
        for (shard, members) in self.shards.iter().zip(&by_shard) {
            if members.is_empty() {
                continue;
            }
            let mut shard = lock(shard);
            for &i in members {
                let Err(Some(GroupKey(key))) = out[i as usize] else { continue };
                match shard.get(&key) {
                    Some(n) => {
                        out[i as usize] = Ok(n as usize);
                        hits += 1;
                    }
                    None => misses += 1,
                }
            }
        }
        self.hits.fetch_add(hits, Relaxed);
        self.misses.fetch_add(misses, Relaxed);
    }

    /// Remember the counts of many groups `probe_groups` missed: each shard locked once.
    pub fn store_many(&self, counted: &[(GroupKey, usize)]) {
        let max_entries = self.max_entries.load(Relaxed);
        let mut by_shard: [Vec<(Key, u32)>; SHARDS] = Default::default();
        for &(GroupKey(key), count) in counted {
            if let Ok(n32) = u32::try_from(count) {
                by_shard[key.shard()].push((key, n32));
            }
        }
        for (i, (shard, members)) in self.shards.iter().zip(by_shard).enumerate() {
            if members.is_empty() {
                continue;
            }
            let capacity = shard_capacity(max_entries, i);
            let mut shard = lock(shard);
            for (key, n) in members {
                shard.insert(key, n, capacity);
            }
        }
    }

    /// Remember the count of a group that [`Self::probe_group`] missed.
    #[cfg(test)] // batches go through `store_many`; this is its tests' oracle
    pub fn store(&self, key: GroupKey, count: usize) {
        if let Ok(n32) = u32::try_from(count) {
            let capacity = shard_capacity(self.max_entries.load(Relaxed), key.0.shard());
            lock(&self.shards[key.0.shard()]).insert(key.0, n32, capacity);
        }
    }

    fn lookup(&self, key: Key, count: impl FnOnce() -> usize) -> usize {
        let shard = &self.shards[key.shard()];
        if let Some(n) = lock(shard).get(&key) {
            self.hits.fetch_add(1, Relaxed);
            return n as usize;
        }
        self.misses.fetch_add(1, Relaxed);
        // Count outside the lock: other threads keep using the shard meanwhile.
        let n = count();
        if let Ok(n32) = u32::try_from(n) {
            let capacity = shard_capacity(self.max_entries.load(Relaxed), key.shard());
            lock(shard).insert(key, n32, capacity);
        }
        n
    }

    /// Whether counts are cached (see [`CountCache::configure`]).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub fn info(&self) -> CacheInfo {
        CacheInfo {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            size: self.shards.iter().map(|s| lock(s).map.len()).sum(),
            max_entries: self.max_entries.load(Relaxed),
            enabled: self.enabled.load(Relaxed),
        }
    }

    /// Empty the cache and reset its counters.
    pub fn clear(&self) {
        for shard in &self.shards {
            *lock(shard) = Shard::default();
        }
        self.hits.store(0, Relaxed);
        self.misses.store(0, Relaxed);
    }

    /// Change the bound (entries beyond it are dropped now) and switch caching on or off.
    pub fn configure(&self, max_entries: usize, enabled: bool) {
        self.max_entries.store(max_entries, Relaxed);
        self.enabled.store(enabled, Relaxed);
        for (i, shard) in self.shards.iter().enumerate() {
            let capacity = shard_capacity(max_entries, i);
            let mut shard = lock(shard);
            if !enabled || capacity == 0 {
                *shard = Shard::default();
                continue;
            }
            while shard.map.len() > capacity {
                if let Some(victim) = shard.order.pop_front() {
                    shard.map.remove(&victim);
                }
            }
        }
    }
}

/// Shard `i`'s share of `max_entries`: the shares add up to exactly `max_entries`.
fn shard_capacity(max_entries: usize, i: usize) -> usize {
    max_entries / SHARDS + usize::from(i < max_entries % SHARDS)
}

/// A poisoned shard only means another thread panicked mid-operation; the map is still
/// a valid map of correct counts, so keep using it.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

static CACHE: Global<CountCache> = Global::new(|| CountCache::new(DEFAULT_MAX_ENTRIES));

/// The process-wide cache that counting goes through.
#[inline]
pub fn global() -> &'static CountCache {
    CACHE.get()
}

/// In a forked child: if the fork caught a shard locked (a thread inserting or clearing),
/// the cache may be half-updated and that shard would never unlock; start an empty one
/// with the same settings and counters instead (the old one is leaked). A cache caught
/// unlocked is whole, and kept.
pub(crate) fn after_fork_in_child() {
    let Some(old) = CACHE.peek() else { return };
    if old.shards.iter().any(fork::held) {
        let fresh = CountCache::new(old.max_entries.load(Relaxed));
        fresh.enabled.store(old.enabled.load(Relaxed), Relaxed);
        fresh.hits.store(old.hits.load(Relaxed), Relaxed);
        fresh.misses.store(old.misses.load(Relaxed), Relaxed);
        CACHE.replace(fresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn long(i: usize) -> String {
        format!("{i:>80}")
    }

    #[test]
    fn texts_at_the_minimum_length_are_cached() {
        let cache = CountCache::new(100);
        cache.get_or_count(EncodingId::O200kBase, &"x".repeat(MIN_CACHED_BYTES), |_| 1);
        assert_eq!(cache.info().size, 1);
    }

    #[test]
    fn a_second_count_of_the_same_text_is_a_hit_and_does_not_recount() {
        let cache = CountCache::new(100);
        let calls = Cell::new(0);
        let counter = |t: &str| {
            calls.set(calls.get() + 1);
            t.len()
        };
        assert_eq!(cache.get_or_count(EncodingId::O200kBase, &long(1), counter), 80);
        assert_eq!(cache.get_or_count(EncodingId::O200kBase, &long(1), counter), 80);
        assert_eq!(calls.get(), 1);
        let info = cache.info();
        assert_eq!((info.hits, info.misses, info.size), (1, 1, 1));
    }

    #[test]
    fn the_same_text_under_another_encoding_is_another_entry() {
        let cache = CountCache::new(100);
        cache.get_or_count(EncodingId::O200kBase, &long(1), |_| 1);
        assert_eq!(cache.get_or_count(EncodingId::Cl100kBase, &long(1), |_| 2), 2);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = CountCache::new(64);
        for i in 0..10_000 {
            cache.get_or_count(EncodingId::O200kBase, &long(i), |_| i);
        }
        assert!(cache.info().size <= 64, "{}", cache.info().size);
        cache.configure(16, true);
        assert!(cache.info().size <= 16);
    }

    #[test]
    fn a_bound_that_is_not_a_multiple_of_the_shards_is_still_exact() {
        for bound in [1, 10, 100, 1000] {
            let cache = CountCache::new(bound);
            for i in 0..5000 {
                cache.get_or_count(EncodingId::O200kBase, &long(i), |_| i);
            }
            assert!(cache.info().size <= bound, "{bound}: {}", cache.info().size);
        }
    }

    #[test]
    fn entries_that_are_hit_survive_eviction() {
        let cache = CountCache::new(SHARDS * 4);
        let hot = long(999_999);
        cache.get_or_count(EncodingId::O200kBase, &hot, |_| 7);
        for i in 0..1000 {
            cache.get_or_count(EncodingId::O200kBase, &hot, |_| 0);
            cache.get_or_count(EncodingId::O200kBase, &long(i), |_| i);
        }
        assert_eq!(cache.get_or_count(EncodingId::O200kBase, &hot, |_| 0), 7);
    }

    #[test]
    fn a_group_is_one_entry_and_differs_from_its_concatenation() {
        let cache = CountCache::new(100);
        let group = ["tool_name_long_enough", "call_0123456789abcdef"];
        let Err(Some(key)) = cache.probe_group(EncodingId::O200kBase, &group) else { panic!("a miss") };
        cache.store(key, 42);
        assert_eq!(cache.probe_group(EncodingId::O200kBase, &group).ok(), Some(42));
        assert_eq!(cache.info().size, 1);
        let split = ["tool_name_long_enoughcall_", "0123456789abcdef"];
        assert!(cache.probe_group(EncodingId::O200kBase, &split).is_err());
        // A group of one text shares its entry with the text counted alone.
        cache.get_or_count(EncodingId::O200kBase, group[0], |_| 7);
        assert_eq!(cache.probe_group(EncodingId::O200kBase, &group[..1]).ok(), Some(7));
    }

    #[test]
    fn probing_and_storing_many_groups_at_once_answers_as_one_by_one() {
        let texts: Vec<String> = (0..300).map(long).chain(["short".to_owned()]).collect();
        let groups: Vec<std::ops::Range<usize>> =
            (0..100).map(|i| 3 * i..3 * i + 1 + i % 3).chain([300..301, 0..0]).collect();
        let batched = CountCache::new(1000);
        let single = CountCache::new(1000);
        // Every other group counted before, one by one.
        for (i, g) in groups.iter().enumerate().step_by(2) {
            for cache in [&batched, &single] {
                if let Err(Some(key)) = cache.probe_group(EncodingId::O200kBase, &texts[g.clone()]) {
                    cache.store(key, i);
                }
            }
        }
        let mut out = Vec::new();
        batched.probe_groups(EncodingId::O200kBase, &texts, &groups, &mut out);
        let mut counted = Vec::new();
        for (i, (g, answer)) in groups.iter().zip(&out).enumerate() {
            let one = single.probe_group(EncodingId::O200kBase, &texts[g.clone()]);
            assert_eq!(answer.as_ref().ok(), one.as_ref().ok(), "group {i}");
            assert_eq!(matches!(answer, Err(Some(_))), matches!(one, Err(Some(_))), "group {i}");
            if let (Err(Some(key)), Err(Some(k1))) = (answer, one) {
                counted.push((*key, 1000 + i));
                single.store(k1, 1000 + i);
            }
        }
        batched.store_many(&counted);
        assert_eq!(batched.info(), single.info());
        batched.probe_groups(EncodingId::O200kBase, &texts, &groups, &mut out);
        for (i, (g, answer)) in groups.iter().zip(&out).enumerate() {
            assert_eq!(
                answer.as_ref().ok(),
                single.probe_group(EncodingId::O200kBase, &texts[g.clone()]).as_ref().ok()
            );
            if !g.is_empty() && texts[g.clone()].iter().map(String::len).sum::<usize>() >= MIN_CACHED_BYTES {
                assert!(answer.is_ok(), "group {i} is cached now");
            }
        }
    }

    #[test]
    fn storing_many_never_holds_more_than_the_bound() {
        let cache = CountCache::new(40);
        let texts: Vec<String> = (0..1000).map(long).collect();
        let groups: Vec<std::ops::Range<usize>> = (0..1000).map(|i| i..i + 1).collect();
        let mut out = Vec::new();
        cache.probe_groups(EncodingId::O200kBase, &texts, &groups, &mut out);
        let counted: Vec<(GroupKey, usize)> =
            out.iter().enumerate().filter_map(|(i, a)| a.err().flatten().map(|k| (k, i))).collect();
        assert_eq!(counted.len(), 1000);
        cache.store_many(&counted);
        assert!(cache.info().size <= 40, "{}", cache.info().size);
    }

    #[cfg(unix)]
    #[test]
    fn a_child_forked_while_a_shard_is_locked_counts_with_a_fresh_cache() {
        let code = crate::fork::tests::fork_while_held(
            || Box::new(lock(&global().shards[0])),
            || {
                let before = global().info();
                // Enough texts to land in every shard, the locked one included.
                (0..200).all(|i| global().get_or_count(EncodingId::O200kBase, &long(i), |_| i) == i)
                    && global().info().size == 200
                    && global().info().max_entries == before.max_entries
            },
        );
        assert_eq!(code, Some(0), "the child hung (None) or counted wrong");
    }

    #[test]
    fn short_texts_bypass_the_cache() {
        let cache = CountCache::new(100);
        cache.get_or_count(EncodingId::O200kBase, "hi", |_| 1);
        assert_eq!(cache.info().size, 0);
    }
}
