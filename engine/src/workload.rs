//! Seeded sampling of the workload mix: which entry a request uses, how many
//! input tokens it carries, and the synthetic prompt text of about that size.
//!
//! Every draw is a pure function of (run seed, stream, request sequence
//! number), so a run repeats exactly and agents can draw independently. The
//! text is cut from pools built once, so a draw allocates nothing: it is called
//! per request at up to ~10k requests/s.
//!
//! Token counts here are estimates, used only to size the prompt text
//! ([`CHARS_PER_TOKEN`]). The server's count, recorded from each response, is
//! the number every report uses.

use quarry_bedrock::{ModelFamily, base_model_id, claude_version};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};

use crate::plan::{MixEntry, TokenDistribution, WorkloadMix};

/// Characters of synthetic English text per token: the usual rule of thumb
/// for the Claude, Llama and Nova tokenizers on prose. Prompts come out within
/// some tens of percent of the target; the server's count is the truth.
pub const CHARS_PER_TOKEN: usize = 4;

/// Spread of body start offsets into the text pool: each request's text is
/// cut at a different place, so bodies differ even before the nonce.
const OFFSET_SPAN: usize = 64 * 1024;

/// Short common words: with the separators they average about four characters
/// per token, matching [`CHARS_PER_TOKEN`].
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "from", "have", "or", "by", "one", "had",
    "not", "but", "what", "all", "were", "when", "we", "there", "can", "an", "your", "which",
    "their", "said", "if", "do", "will", "each", "about", "how", "up", "out", "them", "then",
    "she", "many", "some", "so", "these", "would", "other", "into", "has", "more", "her", "two",
    "like", "him", "see", "time", "could", "no", "make", "than", "first", "been", "its", "who",
    "now", "people", "my", "made", "over", "did", "down", "only", "way", "find", "use", "may",
    "water", "long", "little", "very", "after", "words", "called", "just", "where", "most", "know",
    "get", "through", "back", "much", "before", "go", "good", "new", "write", "our", "used", "me",
    "man", "too", "any", "day", "same", "right", "look", "think", "also", "around",
];

/// A request's unique marker, written at the start of its uncached text so no
/// two requests share a prompt (and no server-side cache can match it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub u64);

impl Nonce {
    /// Length of the rendered marker in bytes (`"ref-" + 16 hex + ": "`).
    pub const LEN: usize = 22;
}

impl std::fmt::Display for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ref-{:016x}: ", self.0)
    }
}

/// One request's draw: the mix entry and the prompt parts, borrowed from the
/// sampler's pools.
#[derive(Debug, Clone, Copy)]
pub struct Draw<'a> {
    /// Index of the entry in [`WorkloadMix::entries`] (series key, stats).
    pub entry_index: usize,
    /// The entry itself: model, operation, max_tokens, temperature.
    pub entry: &'a MixEntry,
    /// The drawn input-token target for the uncached user text (nonce included).
    pub input_tokens: u32,
    /// System prompt, verbatim from the plan.
    pub system_prompt: Option<&'a str>,
    /// Shared prefix to send before a cachePoint; identical for every request
    /// of this entry, across agents.
    pub cache_prefix: Option<&'a str>,
    /// The request's nonce, when the entry asks for one.
    pub nonce: Option<Nonce>,
    /// Filler text after the nonce.
    pub body: &'a str,
}

impl Draw<'_> {
    /// Appends the uncached user text (nonce, then body) to `out`.
    pub fn write_user_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        if let Some(nonce) = self.nonce {
            // Writing to a String cannot fail.
            let _ = write!(out, "{nonce}");
        }
        out.push_str(self.body);
    }
}

/// Draws requests from a [`WorkloadMix`]. Build once per agent share; share
/// it freely (`draw` takes `&self`).
#[derive(Debug, Clone)]
pub struct WorkloadSampler {
    /// The mix entries, cloned so draws can borrow them.
    entries: Vec<MixEntry>,
    /// Per entry: the sampling form of its distribution.
    dists: Vec<PreparedDist>,
    /// Per entry: its shared cache prefix text.
    prefixes: Vec<Option<String>>,
    /// Running sum of weights, for a binary-searched weighted pick.
    cumulative: Vec<u64>,
    /// Filler text that bodies are cut from.
    pool: String,
    /// Seed of this sampler's stream of draws.
    stream_seed: u64,
}

#[derive(Debug, Clone, Copy)]
enum PreparedDist {
    Fixed(u32),
    Uniform(u32, u32),
    Normal(Normal<f64>, u32, u32),
    LogNormal(LogNormal<f64>, u32, u32),
}

impl WorkloadSampler {
    /// A sampler for `mix`. Prefix and pool text depend only on `run_seed`, so
    /// every agent sends the same cacheable prefix; the draws depend on
    /// `(run_seed, stream)`, so agent shares (streams) draw independently.
    pub fn new(mix: &WorkloadMix, run_seed: u64, stream: u64) -> Self {
        let entries = mix.entries().to_vec();
        let dists = entries.iter().map(|e| prepare(&e.input_tokens)).collect();
        let mut total = 0u64;
        let cumulative = entries
            .iter()
            .map(|e| {
                total += u64::from(e.weight);
                total
            })
            .collect();
        let prefixes = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.cache.map(|c| {
                    let chars = c.tokens.get() as usize * CHARS_PER_TOKEN;
                    let mut rng = ChaCha8Rng::seed_from_u64(mix64(run_seed, 1 + i as u64));
                    let mut text = format!("Shared context {i}. ");
                    fill_words(&mut rng, &mut text, chars);
                    text
                })
            })
            .collect();
        let longest = entries
            .iter()
            .map(|e| e.input_tokens.max_tokens() as usize)
            .max();
        let pool_chars = longest.unwrap_or(0) * CHARS_PER_TOKEN + OFFSET_SPAN;
        let mut pool = String::with_capacity(pool_chars + 16);
        fill_words(
            &mut ChaCha8Rng::seed_from_u64(mix64(run_seed, 0)),
            &mut pool,
            pool_chars,
        );
        WorkloadSampler {
            entries,
            dists,
            prefixes,
            cumulative,
            pool,
            stream_seed: mix64(run_seed, stream.wrapping_add(0x5eed)),
        }
    }

    /// The draw for request `seq` of this stream: always the same for the
    /// same `(run_seed, stream, seq)`. The user text is sized to the drawn
    /// token count, except that a nonce is never cut: a target shorter than
    /// the nonce (a handful of tokens) sends the nonce alone.
    pub fn draw(&self, seq: u64) -> Draw<'_> {
        let mut rng = self.request_rng(seq);
        let index = self.pick(&mut rng);
        self.fill(index, &mut rng)
    }

    /// The mix entry of request `seq`: `draw(seq).entry_index`, without
    /// drawing the rest (and, for a mix of one entry, without seeding a
    /// generator at all).
    pub fn entry(&self, seq: u64) -> usize {
        if self.entries.len() == 1 {
            return 0;
        }
        self.pick(&mut self.request_rng(seq))
    }

    /// The generator of request `seq`'s draw: its entry is the first thing
    /// drawn from it.
    fn request_rng(&self, seq: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix64(self.stream_seed, seq))
    }

    /// The mix entry session `session` of this stream talks to: one for
    /// all its turns, drawn by weight like a request's.
    pub fn session_entry(&self, session: u64) -> usize {
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(self.session_seed(), session));
        self.pick(&mut rng)
    }

    /// The new question of turn `turn` of session `session`: its entry is
    /// [`WorkloadSampler::session_entry`], its size a draw from the entry's
    /// `input_tokens`, its text (and nonce) fresh for every turn.
    pub fn draw_turn(&self, session: u64, turn: u32) -> Draw<'_> {
        let index = self.session_entry(session);
        let seed = mix64(mix64(self.session_seed(), session), u64::from(turn));
        self.fill(index, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// The seed of this stream's sessions, apart from its requests'.
    fn session_seed(&self) -> u64 {
        mix64(self.stream_seed, 0x5e55_1015)
    }

    /// A weighted pick of an entry.
    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        // The mix has a positive total weight (WorkloadMix invariant).
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let pick = rng.random_range(0..total);
        let index = self.cumulative.partition_point(|&c| c <= pick);
        index.min(self.entries.len() - 1)
    }

    /// The rest of a draw of entry `index`: token count, nonce and body.
    fn fill(&self, index: usize, rng: &mut ChaCha8Rng) -> Draw<'_> {
        let entry = &self.entries[index];
        let tokens = sample(&self.dists[index], rng);
        let nonce = entry.nonce.then(|| Nonce(rng.random()));
        let nonce_len = if nonce.is_some() { Nonce::LEN } else { 0 };
        let body_len = (tokens as usize * CHARS_PER_TOKEN).saturating_sub(nonce_len);
        // Without a nonce the body starts at the pool's start, so requests of
        // equal size are identical (what a whole-prompt cache test wants).
        let start = if nonce.is_some() {
            rng.random_range(0..OFFSET_SPAN)
        } else {
            0
        };
        let end = (start + body_len).min(self.pool.len());
        Draw {
            entry_index: index,
            entry,
            input_tokens: tokens,
            system_prompt: entry.system_prompt.as_deref(),
            cache_prefix: self.prefixes[index].as_deref(),
            nonce,
            // The pool is ASCII, so every byte offset is a char boundary.
            body: &self.pool[start.min(end)..end],
        }
    }
}

/// A distribution of whole numbers (token counts, turns, think times in
/// ms), ready to sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WholeNumbers(PreparedDist);

impl WholeNumbers {
    pub(crate) fn new(dist: &TokenDistribution) -> Self {
        WholeNumbers(prepare(dist))
    }

    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        sample(&self.0, rng)
    }
}

fn prepare(dist: &TokenDistribution) -> PreparedDist {
    match *dist {
        TokenDistribution::Fixed { tokens } => PreparedDist::Fixed(tokens),
        TokenDistribution::Uniform { min, max } => PreparedDist::Uniform(min, max),
        TokenDistribution::Normal {
            mean,
            stddev,
            min,
            max,
        } => match Normal::new(mean, stddev) {
            Ok(n) => PreparedDist::Normal(n, min, max),
            // Only a non-finite stddev fails, which the plan rejects.
            Err(_) => PreparedDist::Fixed(clamp(mean, min, max)),
        },
        TokenDistribution::LogNormal {
            mean,
            stddev,
            min,
            max,
        } => {
            // Parameters of the underlying normal from the count's own mean
            // and stddev: sigma^2 = ln(1 + sd^2/mean^2), mu = ln(mean) - sigma^2/2.
            let sigma2 = (1.0 + (stddev / mean).powi(2)).ln();
            match LogNormal::new(mean.ln() - sigma2 / 2.0, sigma2.sqrt()) {
                Ok(d) => PreparedDist::LogNormal(d, min, max),
                Err(_) => PreparedDist::Fixed(clamp(mean, min, max)),
            }
        }
    }
}

fn sample(dist: &PreparedDist, rng: &mut ChaCha8Rng) -> u32 {
    match *dist {
        PreparedDist::Fixed(n) => n,
        PreparedDist::Uniform(min, max) => rng.random_range(min..=max),
        PreparedDist::Normal(d, min, max) => clamp(d.sample(rng), min, max),
        PreparedDist::LogNormal(d, min, max) => clamp(d.sample(rng), min, max),
    }
}

fn clamp(x: f64, min: u32, max: u32) -> u32 {
    // `as` saturates (NaN becomes 0), then the clamp applies the bounds.
    (x.round() as u32).clamp(min, max)
}

/// SplitMix64 of `a` combined with `b`: decorrelates neighbouring seeds and
/// sequence numbers before they seed a generator.
pub(crate) fn mix64(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Appends random words to `out` until it holds at least `chars` bytes, with
/// a full stop every dozen or so words.
fn fill_words(rng: &mut ChaCha8Rng, out: &mut String, chars: usize) {
    let mut since_stop = 0;
    while out.len() < chars {
        out.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        since_stop += 1;
        if since_stop >= 12 && rng.random_range(0..4) == 0 {
            out.push_str(". ");
            since_stop = 0;
        } else {
            out.push(' ');
        }
    }
    out.truncate(chars);
}

/// Whether a model supports prompt caching (PROTOCOL.md §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptCacheSupport {
    /// cachePoints work on this model.
    Supported {
        /// Tokens needed before a checkpoint, below which it is silently
        /// ignored; `None` where §5.8 does not say.
        min_tokens: Option<u32>,
        /// Whether the 1-hour TTL is available.
        one_hour_ttl: bool,
    },
    /// The model does not support prompt caching.
    Unsupported,
    /// The id does not say (provisioned throughput, unknown or newer models).
    Unknown,
}

/// Prompt-caching support for `model_id`, from the §5.8 model list (2026).
pub fn prompt_cache_support(model_id: &str) -> PromptCacheSupport {
    use PromptCacheSupport::{Supported, Unknown, Unsupported};
    let base = base_model_id(model_id);
    let supported = |min: u32, one_hour_ttl: bool| Supported {
        min_tokens: Some(min),
        one_hour_ttl,
    };
    match ModelFamily::from_model_id(model_id) {
        Some(ModelFamily::Anthropic) => {
            let tier = |t: &str| base.contains(t);
            match claude_version(model_id) {
                None | Some((3, 0)) => Unsupported,
                Some((3, 5)) if tier("haiku") => supported(2048, false),
                // 3.5 Sonnet v2 (preview customers only); v1 never.
                Some((3, 5)) if base.contains("20241022-v2") => supported(1024, false),
                Some((3, 5)) => Unsupported,
                Some((3, 7) | (4, 0) | (4, 1)) => supported(1024, false),
                Some((4, 5)) if tier("sonnet") => supported(1024, true),
                Some((4, 5)) => supported(4096, true),
                Some((4, 6)) if tier("sonnet") => supported(2048, true),
                Some((4, 6)) => supported(4096, true),
                Some(_) => Unknown,
            }
        }
        Some(ModelFamily::Nova) => {
            if base.starts_with("amazon.nova-micro") || base.starts_with("amazon.nova-lite") {
                supported(1536, false)
            } else if base.starts_with("amazon.nova-pro") {
                supported(1024, false)
            } else if base.starts_with("amazon.nova-premier") {
                Supported {
                    min_tokens: None,
                    one_hour_ttl: false,
                }
            } else {
                Unknown
            }
        }
        Some(ModelFamily::Llama | ModelFamily::Titan) => Unsupported,
        None => Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use quarry_bedrock::Operation;

    use super::*;
    use crate::plan::CachePrefix;
    use quarry_bedrock::CacheTtl;

    fn entry(weight: u32, dist: TokenDistribution) -> MixEntry {
        MixEntry {
            weight,
            model_id: "meta.llama3-3-70b-instruct-v1:0".to_owned(),
            operation: Operation::ConverseStream,
            input_tokens: dist,
            max_tokens: NonZeroU32::new(100).unwrap(),
            system_prompt: Some("Be brief.".to_owned()),
            cache: None,
            nonce: true,
            temperature: None,
            service_tier: None,
        }
    }

    #[test]
    fn draws_are_deterministic_per_seed_stream_and_seq() {
        let mix = WorkloadMix::new(vec![entry(
            1,
            TokenDistribution::LogNormal {
                mean: 800.0,
                stddev: 300.0,
                min: 10,
                max: 4000,
            },
        )])
        .unwrap();
        let a = WorkloadSampler::new(&mix, 7, 0);
        let b = WorkloadSampler::new(&mix, 7, 0);
        let c = WorkloadSampler::new(&mix, 7, 1);
        for seq in 0..50 {
            let (x, y) = (a.draw(seq), b.draw(seq));
            assert_eq!(
                (x.input_tokens, x.nonce, x.body),
                (y.input_tokens, y.nonce, y.body)
            );
        }
        assert_ne!(a.draw(3).nonce, c.draw(3).nonce);
        assert_ne!(a.draw(3).nonce, a.draw(4).nonce);
    }

    #[test]
    fn weights_are_respected() {
        let fixed = TokenDistribution::Fixed { tokens: 5 };
        let mix =
            WorkloadMix::new(vec![entry(1, fixed), entry(0, fixed), entry(3, fixed)]).unwrap();
        let s = WorkloadSampler::new(&mix, 1, 0);
        let mut counts = [0u32; 3];
        for seq in 0..8000 {
            counts[s.draw(seq).entry_index] += 1;
        }
        assert_eq!(counts[1], 0);
        // Expected 2000 / 6000; a seeded run, so the bounds are generous but fixed.
        assert!((1700..2300).contains(&counts[0]), "{counts:?}");
        assert!((5700..6300).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn the_entry_alone_is_the_draws_entry() {
        let fixed = TokenDistribution::Fixed { tokens: 5 };
        let three =
            WorkloadMix::new(vec![entry(1, fixed), entry(0, fixed), entry(3, fixed)]).unwrap();
        let one = WorkloadMix::new(vec![entry(2, fixed)]).unwrap();
        for mix in [three, one] {
            let s = WorkloadSampler::new(&mix, 7, 3);
            for seq in 0..2000 {
                assert_eq!(s.entry(seq), s.draw(seq).entry_index, "seq {seq}");
            }
        }
    }

    #[test]
    fn draws_stay_in_bounds_and_lognormal_mean_is_close() {
        let mix = WorkloadMix::new(vec![entry(
            1,
            TokenDistribution::LogNormal {
                mean: 800.0,
                stddev: 300.0,
                min: 100,
                max: 100_000,
            },
        )])
        .unwrap();
        let s = WorkloadSampler::new(&mix, 42, 0);
        let n = 20_000u64;
        let mut sum = 0u64;
        for seq in 0..n {
            let d = s.draw(seq);
            assert!((100..=100_000).contains(&d.input_tokens));
            sum += u64::from(d.input_tokens);
        }
        let mean = sum as f64 / n as f64;
        assert!((770.0..830.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn text_length_tracks_the_token_target() {
        let mix = WorkloadMix::new(vec![entry(
            1,
            TokenDistribution::Uniform { min: 50, max: 3000 },
        )])
        .unwrap();
        let s = WorkloadSampler::new(&mix, 3, 0);
        for seq in 0..200 {
            let d = s.draw(seq);
            let mut text = String::new();
            d.write_user_text(&mut text);
            assert_eq!(text.len(), d.input_tokens as usize * CHARS_PER_TOKEN);
            assert!(text.starts_with("ref-"));
            assert_eq!(d.system_prompt, Some("Be brief."));
        }
    }

    #[test]
    fn cache_prefix_is_shared_across_streams_and_nonce_off_repeats_text() {
        let mut e = entry(1, TokenDistribution::Fixed { tokens: 64 });
        e.cache = Some(CachePrefix {
            tokens: NonZeroU32::new(1024).unwrap(),
            ttl: CacheTtl::FiveMinutes,
        });
        e.nonce = false;
        let mix = WorkloadMix::new(vec![e]).unwrap();
        let a = WorkloadSampler::new(&mix, 9, 0);
        let b = WorkloadSampler::new(&mix, 9, 5);
        let (x, y) = (a.draw(0), b.draw(17));
        assert_eq!(x.cache_prefix, y.cache_prefix);
        assert_eq!(x.cache_prefix.unwrap().len(), 1024 * CHARS_PER_TOKEN);
        assert_eq!(x.nonce, None);
        assert_eq!(x.body, y.body);
        let other_run = WorkloadSampler::new(&mix, 10, 0);
        assert_ne!(other_run.draw(0).cache_prefix, x.cache_prefix);
    }

    #[test]
    fn cache_support_follows_the_model_list() {
        use PromptCacheSupport::*;
        let s = |id| prompt_cache_support(id);
        assert_eq!(s("meta.llama3-3-70b-instruct-v1:0"), Unsupported);
        assert_eq!(s("anthropic.claude-3-haiku-20240307-v1:0"), Unsupported);
        assert_eq!(s("anthropic.claude-3-5-sonnet-20240620-v1:0"), Unsupported);
        assert_eq!(
            s("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            Supported {
                min_tokens: Some(1024),
                one_hour_ttl: true
            }
        );
        assert_eq!(
            s("anthropic.claude-3-7-sonnet-20250219-v1:0"),
            Supported {
                min_tokens: Some(1024),
                one_hour_ttl: false
            }
        );
        assert_eq!(
            s("anthropic.claude-haiku-4-5-20251001-v1:0"),
            Supported {
                min_tokens: Some(4096),
                one_hour_ttl: true
            }
        );
        assert_eq!(
            s("anthropic.claude-sonnet-4-6"),
            Supported {
                min_tokens: Some(2048),
                one_hour_ttl: true
            }
        );
        assert_eq!(
            s("amazon.nova-lite-v1:0"),
            Supported {
                min_tokens: Some(1536),
                one_hour_ttl: false
            }
        );
        assert_eq!(
            s("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl"),
            Unknown
        );
    }

    proptest::proptest! {
        /// Any valid distribution draws within its bounds, and the user text
        /// is sized from the drawn count, for any seed and sequence number.
        #[test]
        fn draws_respect_bounds(
            seed: u64,
            seq: u64,
            min in 1u32..5000,
            span in 0u32..5000,
            mean in 1.0f64..8000.0,
            stddev in 0.0f64..4000.0,
            kind in 0u8..4,
        ) {
            let max = min + span;
            let dist = match kind {
                0 => TokenDistribution::Fixed { tokens: min },
                1 => TokenDistribution::Uniform { min, max },
                2 => TokenDistribution::Normal { mean, stddev, min, max },
                _ => TokenDistribution::LogNormal { mean, stddev, min, max },
            };
            let mix = WorkloadMix::new(vec![entry(1, dist)]).unwrap();
            let sampler = WorkloadSampler::new(&mix, seed, 0);
            let d = sampler.draw(seq);
            let (lo, hi) = if kind == 0 { (min, min) } else { (min, max) };
            proptest::prop_assert!((lo..=hi).contains(&d.input_tokens));
            let mut text = String::new();
            d.write_user_text(&mut text);
            // The nonce is never cut: a target shorter than the nonce yields
            // just the nonce (uniqueness beats size for tiny prompts).
            let nonce_len = if d.nonce.is_some() { Nonce::LEN } else { 0 };
            let expected = (d.input_tokens as usize * CHARS_PER_TOKEN).max(nonce_len);
            proptest::prop_assert_eq!(text.len(), expected);
        }
    }
}
