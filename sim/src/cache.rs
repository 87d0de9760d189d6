//! The prompt cache (PROTOCOL.md §5.8): which prefixes of a request are
//! already cached, what it reads and writes, with TTLs refreshed on hit and
//! bounded memory.
//!
//! An entry is keyed by (account, model, hash of the prefix up to a cache
//! point, tokens in that prefix). The server hands over, per cache point in
//! request order, the prefix's hash ([`prefix_hash`] of the canonical bytes
//! of everything before the point) and its token count. Semantics, as
//! Anthropic documents them:
//! * checkpoints whose prefix has fewer tokens than the model's minimum are
//!   ignored (no error);
//! * the longest prefix found unexpired is read (`cacheReadInputTokens`) and
//!   its TTL restarts;
//! * the tokens between it and the last checkpoint are written
//!   (`cacheWriteInputTokens`), and every checkpoint is stored;
//! * `inputTokens` is what remains: total − read − write.
//!
//! Memory is bounded by `max_entries`: the least recently used entry goes
//! first (expired entries are dropped when met).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::{CacheRules, ModelIdx};

/// The two TTLs Bedrock offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheTtl {
    /// 5 minutes (default).
    FiveMinutes,
    /// 1 hour (some Claude 4.5+ models).
    OneHour,
}

impl CacheTtl {
    /// The duration.
    pub fn duration(self) -> Duration {
        match self {
            CacheTtl::FiveMinutes => Duration::from_secs(300),
            CacheTtl::OneHour => Duration::from_secs(3600),
        }
    }
}

/// One cache checkpoint of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePoint {
    /// [`prefix_hash`] of everything before the checkpoint.
    pub prefix_hash: u64,
    /// Input tokens before the checkpoint.
    pub prefix_tokens: u64,
    /// The checkpoint's TTL.
    pub ttl: CacheTtl,
}

/// How a request's input tokens split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Tokens read from the cache.
    pub read: u64,
    /// Tokens written to the cache.
    pub write: u64,
}

/// Hashes the canonical bytes of a prompt prefix (SipHash with fixed keys:
/// stable within and across runs).
pub fn prefix_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    account: u32,
    model: ModelIdx,
    prefix_hash: u64,
    prefix_tokens: u64,
}

#[derive(Debug)]
struct Entry {
    expires: Instant,
    ttl: Duration,
    /// Position in the LRU order.
    tick: u64,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Key, Entry>,
    lru: BTreeMap<u64, Key>,
    tick: u64,
}

impl Shard {
    fn touch(&mut self, key: Key, expires: Instant, ttl: Duration) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(old) = self.entries.insert(key, Entry { expires, ttl, tick }) {
            self.lru.remove(&old.tick);
        }
        self.lru.insert(tick, key);
    }

    fn evict_to(&mut self, max: usize) {
        while self.entries.len() > max {
            let Some((_, key)) = self.lru.pop_first() else {
                break;
            };
            self.entries.remove(&key);
        }
    }
}

const SHARDS: usize = 16;

/// The prompt cache of the whole simulator.
#[derive(Debug)]
pub struct PromptCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl PromptCache {
    /// A cache holding at most about `max_entries` prefixes.
    pub fn new(max_entries: usize) -> Self {
        PromptCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() % SHARDS as u64) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a request's checkpoints (in request order) and says how its
    /// input splits. `rules` is the model's caching (None: no caching).
    pub fn apply(
        &self,
        account: u32,
        model: ModelIdx,
        rules: Option<CacheRules>,
        points: &[CachePoint],
        now: Instant,
    ) -> CacheUsage {
        let Some(rules) = rules else {
            return CacheUsage::default();
        };
        let key = |p: &CachePoint| Key {
            account,
            model,
            prefix_hash: p.prefix_hash,
            prefix_tokens: p.prefix_tokens,
        };
        let live: Vec<&CachePoint> = points
            .iter()
            .filter(|p| p.prefix_tokens >= rules.min_tokens)
            .collect();
        let Some(last) = live.iter().map(|p| p.prefix_tokens).max() else {
            return CacheUsage::default();
        };
        let mut read = 0;
        for p in &live {
            let k = key(p);
            let mut shard = self.shard(&k);
            let hit = match shard.entries.get(&k) {
                Some(e) if e.expires > now => Some(e.ttl),
                Some(_) => {
                    if let Some(e) = shard.entries.remove(&k) {
                        shard.lru.remove(&e.tick);
                    }
                    None
                }
                None => None,
            };
            if let Some(ttl) = hit {
                read = read.max(p.prefix_tokens);
                shard.touch(k, now + ttl, ttl);
            }
        }
        for p in &live {
            if p.prefix_tokens > read {
                let k = key(p);
                let ttl = p.ttl.duration();
                let mut shard = self.shard(&k);
                shard.touch(k, now + ttl, ttl);
                shard.evict_to(self.per_shard);
            }
        }
        CacheUsage {
            read,
            write: last - read,
        }
    }

    /// Entries held (expired ones included until met).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Option<CacheRules> = Some(CacheRules {
        min_tokens: 1_024,
        ttl_1h: false,
    });

    fn point(bytes: &[u8], tokens: u64) -> CachePoint {
        CachePoint {
            prefix_hash: prefix_hash(bytes),
            prefix_tokens: tokens,
            ttl: CacheTtl::FiveMinutes,
        }
    }

    #[test]
    fn write_then_read_within_ttl_refreshed_on_hit() {
        let cache = PromptCache::new(100);
        let t0 = Instant::now();
        let p = [point(b"system prompt", 2_000)];
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &p, t0),
            CacheUsage {
                read: 0,
                write: 2_000
            }
        );
        let t1 = t0 + Duration::from_secs(299);
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &p, t1),
            CacheUsage {
                read: 2_000,
                write: 0
            }
        );
        // Refreshed at t1: still a hit 4 minutes later, 9 minutes after the write.
        let t2 = t1 + Duration::from_secs(240);
        assert_eq!(cache.apply(0, ModelIdx(1), RULES, &p, t2).read, 2_000);
        // Expired after 5 idle minutes: written again.
        let t3 = t2 + Duration::from_secs(301);
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &p, t3),
            CacheUsage {
                read: 0,
                write: 2_000
            }
        );
    }

    #[test]
    fn keyed_per_account_and_model_and_prefix() {
        let cache = PromptCache::new(100);
        let t = Instant::now();
        let p = [point(b"abc", 1_500)];
        cache.apply(0, ModelIdx(1), RULES, &p, t);
        assert_eq!(
            cache.apply(1, ModelIdx(1), RULES, &p, t).read,
            0,
            "other account"
        );
        assert_eq!(
            cache.apply(0, ModelIdx(2), RULES, &p, t).read,
            0,
            "other model"
        );
        assert_eq!(
            cache
                .apply(0, ModelIdx(1), RULES, &[point(b"abd", 1_500)], t)
                .read,
            0
        );
    }

    #[test]
    fn below_minimum_is_silently_not_cached_and_longest_prefix_wins() {
        let cache = PromptCache::new(100);
        let t = Instant::now();
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &[point(b"short", 1_023)], t),
            CacheUsage::default()
        );
        assert_eq!(
            cache.apply(0, ModelIdx(1), None, &[point(b"x", 5_000)], t),
            CacheUsage::default()
        );
        let two = [point(b"sys", 1_100), point(b"sys+doc", 3_000)];
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &[two[0]], t),
            CacheUsage {
                read: 0,
                write: 1_100
            }
        );
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &two, t),
            CacheUsage {
                read: 1_100,
                write: 1_900
            }
        );
        assert_eq!(
            cache.apply(0, ModelIdx(1), RULES, &two, t),
            CacheUsage {
                read: 3_000,
                write: 0
            }
        );
    }

    #[test]
    fn memory_is_bounded() {
        let cache = PromptCache::new(32);
        let t = Instant::now();
        for i in 0u64..1_000 {
            cache.apply(0, ModelIdx(0), RULES, &[point(&i.to_le_bytes(), 2_000)], t);
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        // The most recent survives.
        assert_eq!(
            cache
                .apply(
                    0,
                    ModelIdx(0),
                    RULES,
                    &[point(&999u64.to_le_bytes(), 2_000)],
                    t
                )
                .read,
            2_000
        );
    }
}
