//! Tokens and pseudo-text: the one token-counting rule the simulator uses for
//! `inputTokens`, CountTokens and generation, the seeded text generator that
//! produces exactly N tokens under that rule, and the per-request randomness
//! every seeded decision is drawn from.
//!
//! # The token rule
//!
//! Scanning left to right, a token is the longest match of, in order:
//! 1. one ASCII space followed by 1–4 ASCII letters or digits (`" quar"`);
//! 2. 1–4 ASCII letters or digits (`"quar"`);
//! 3. any other single Unicode scalar value (`"."`, `"\n"`, `" "` not
//!    followed by a letter or digit, `"é"`).
//!
//! So `"Hello, world"` is `Hell` `o` `,` ` wor` `ld`: 5 tokens. English prose
//! comes out near 4 characters per token, like the real tokenizers, and
//! counting is one pass over the bytes with no tables (the simulator targets
//! tens of thousands of requests per second per core).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Counts tokens in `text` under the module's rule.
pub fn count_tokens(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut tokens = 0u64;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b' ' && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) {
            i += 1 + alnum_run(&bytes[i + 1..]);
        } else if b.is_ascii_alphanumeric() {
            i += alnum_run(&bytes[i..]);
        } else {
            // One scalar value: skip its UTF-8 continuation bytes.
            i += 1;
            while i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
                i += 1;
            }
        }
        tokens += 1;
    }
    tokens
}

/// Length of the leading run of ASCII alphanumerics, capped at 4.
fn alnum_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count()
}

/// Per-request randomness: every seeded decision about a request (its output
/// length, text, jitter, faults) comes from an RNG derived from the run seed
/// and the request's sequence number, never from a shared RNG, so the same
/// seed gives the same bytes whatever the thread interleaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestSeed {
    /// The run seed from the configuration.
    pub seed: u64,
    /// The request's global sequence number (0-based, in admission order).
    pub sequence: u64,
}

/// Independent random streams drawn from one [`RequestSeed`]: changing how
/// many numbers one consumer draws must not shift another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RngStream {
    /// Output length and stop reason.
    Length,
    /// The generated text.
    Text,
    /// Latency jitter.
    Jitter,
    /// Rate-based fault decisions.
    Faults,
    /// Request ids and other identifiers.
    Ids,
}

impl RequestSeed {
    /// A ChaCha8 RNG for one stream of this request's decisions.
    pub fn rng(self, stream: RngStream) -> ChaCha8Rng {
        let domain = match stream {
            RngStream::Length => 1,
            RngStream::Text => 2,
            RngStream::Jitter => 3,
            RngStream::Faults => 4,
            RngStream::Ids => 5,
        };
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&splitmix64(self.seed).to_le_bytes());
        key[8..16].copy_from_slice(&splitmix64(self.sequence ^ 0x5155_4152_5259).to_le_bytes());
        key[16..24].copy_from_slice(&splitmix64(domain).to_le_bytes());
        key[24..]
            .copy_from_slice(&splitmix64(self.seed ^ self.sequence.rotate_left(29)).to_le_bytes());
        ChaCha8Rng::from_seed(key)
    }
}

/// SplitMix64's finaliser: spreads nearby inputs (seeds 1, 2, 3) far apart.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Words prose is drawn from; each is emitted with a leading space except at
/// a paragraph start, and split into 4-character tokens when longer.
const WORDS: [&str; 48] = [
    " the",
    " load",
    " model",
    " quarry",
    " tokens",
    " stream",
    " latency",
    " of",
    " a",
    " request",
    " queue",
    " minute",
    " and",
    " to",
    " in",
    " capacity",
    " region",
    " is",
    " throughput",
    " every",
    " cache",
    " prompt",
    " answer",
    " for",
    " with",
    " budget",
    " each",
    " server",
    " client",
    " quota",
    " window",
    " burst",
    " steady",
    " on",
    " at",
    " simulated",
    " output",
    " input",
    " test",
    " run",
    " fast",
    " slow",
    " then",
    " it",
    " we",
    " plan",
    " 42",
    " 2026",
];

/// Sentence openers (capitalised); the leading space is dropped after a
/// paragraph break.
const OPENERS: [&str; 8] = [
    " The", " A", " Each", " This", " Every", " Our", " Then", " Quarry",
];

/// An iterator over the pieces of seeded pseudo-text, each exactly one token
/// under [`count_tokens`]; any prefix of the pieces, concatenated, re-counts
/// to its length. Pieces are `&'static str`: generating text allocates nothing.
#[derive(Debug, Clone)]
pub struct PseudoText {
    rng: ChaCha8Rng,
    remaining: u64,
    /// The rest of the current word still to emit (after its first token).
    pending: &'static str,
    /// Words left in the current sentence.
    words_left: u32,
    /// Sentences left in the current paragraph.
    sentences_left: u32,
    /// True right after a paragraph break: the next word has no leading space.
    paragraph_start: bool,
    /// Newlines still to emit for a paragraph break.
    newlines: u8,
}

impl PseudoText {
    /// Text of exactly `tokens` tokens drawn from `rng`.
    pub fn new(rng: ChaCha8Rng, tokens: u64) -> Self {
        PseudoText {
            rng,
            remaining: tokens,
            pending: "",
            words_left: 0,
            sentences_left: 0,
            paragraph_start: true,
            newlines: 0,
        }
    }

    /// Tokens not yet emitted.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The whole text at once (non-streaming responses).
    pub fn collect_string(self) -> String {
        let mut out = String::with_capacity(self.remaining as usize * 4);
        for piece in self {
            out.push_str(piece);
        }
        out
    }

    /// Emits the first token of `word`, keeping the rest pending.
    fn start_word(&mut self, word: &'static str) -> &'static str {
        let word = if self.paragraph_start {
            self.paragraph_start = false;
            word.trim_start_matches(' ')
        } else {
            word
        };
        // The first token is an optional space plus up to 4 alphanumerics.
        let lead = usize::from(word.starts_with(' '));
        let end = lead + alnum_run(&word.as_bytes()[lead..]);
        self.pending = &word[end..];
        &word[..end]
    }

    fn next_piece(&mut self) -> &'static str {
        if !self.pending.is_empty() {
            let end = alnum_run(self.pending.as_bytes());
            let (piece, rest) = self.pending.split_at(end);
            self.pending = rest;
            return piece;
        }
        if self.newlines > 0 {
            self.newlines -= 1;
            return "\n";
        }
        if self.words_left == 0 {
            if self.sentences_left == 0 {
                self.sentences_left = self.rng.random_range(2..6);
            }
            self.words_left = self.rng.random_range(4..14);
            let opener = OPENERS[self.rng.random_range(0..OPENERS.len())];
            return self.start_word(opener);
        }
        self.words_left -= 1;
        if self.words_left == 0 {
            self.sentences_left -= 1;
            if self.sentences_left == 0 {
                self.newlines = 2;
                self.paragraph_start = true;
            }
            return ".";
        }
        if self.words_left > 2 && self.rng.random_ratio(1, 12) {
            return ",";
        }
        let word = WORDS[self.rng.random_range(0..WORDS.len())];
        self.start_word(word)
    }
}

impl Iterator for PseudoText {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(self.next_piece())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// Why generation stopped, as Converse reports it in `stopReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer within `max_tokens`.
    EndTurn,
    /// The answer was cut at `max_tokens`.
    MaxTokens,
}

impl StopReason {
    /// The Converse wire value (`end_turn`, `max_tokens`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
        }
    }
}

/// How long a request's answer is before `max_tokens` applies, per model
/// profile. Draws come from the request's [`RngStream::Length`] stream.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputLength {
    /// Always this many tokens.
    Fixed {
        /// The answer length in tokens.
        tokens: u64,
    },
    /// Uniform over `min..=max` tokens.
    Uniform {
        /// Shortest answer.
        min: u64,
        /// Longest answer.
        max: u64,
    },
    /// Log-normal with this median and shape, at least 1 token: the long
    /// right tail real answer lengths show.
    LogNormal {
        /// Median answer length in tokens.
        median: f64,
        /// Shape (standard deviation of the log); 0.5–1.0 is realistic.
        sigma: f64,
    },
}

impl OutputLength {
    /// Draws the natural answer length (before `max_tokens`).
    pub fn draw(&self, rng: &mut impl Rng) -> u64 {
        match *self {
            OutputLength::Fixed { tokens } => tokens,
            OutputLength::Uniform { min, max } => rng.random_range(min..=max.max(min)),
            OutputLength::LogNormal { median, sigma } => {
                // Box–Muller: one standard normal from two uniforms.
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let tokens = (median.ln() + sigma * z).exp().round();
                (tokens as u64).max(1)
            }
        }
    }

    /// The planned output: the natural length cut at `max_tokens`, with the
    /// stop reason that cut implies.
    pub fn plan(&self, seed: RequestSeed, max_tokens: u64) -> (u64, StopReason) {
        let natural = self.draw(&mut seed.rng(RngStream::Length));
        if natural > max_tokens {
            (max_tokens, StopReason::MaxTokens)
        } else {
            (natural, StopReason::EndTurn)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counting_rule_examples() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("Hello, world"), 5);
        assert_eq!(count_tokens(" quarry"), 2);
        assert_eq!(count_tokens("a  b"), 3); // "a", " ", " b"
        assert_eq!(count_tokens("héllo"), 3); // "h", "é", "llo"
        assert_eq!(count_tokens("12345678"), 2);
        assert_eq!(count_tokens("\n\n"), 2);
    }

    #[test]
    fn generated_text_recounts_to_n() {
        for n in [0u64, 1, 2, 3, 7, 100, 1000, 4096] {
            let seed = RequestSeed {
                seed: 7,
                sequence: n,
            };
            let text = PseudoText::new(seed.rng(RngStream::Text), n).collect_string();
            assert_eq!(count_tokens(&text), n, "{text:?}");
        }
    }

    #[test]
    fn same_seed_same_text_other_seed_other_text() {
        let text_of = |seed, sequence| {
            let s = RequestSeed { seed, sequence };
            PseudoText::new(s.rng(RngStream::Text), 200).collect_string()
        };
        assert_eq!(text_of(1, 5), text_of(1, 5));
        assert_ne!(text_of(1, 5), text_of(1, 6));
        assert_ne!(text_of(1, 5), text_of(2, 5));
    }

    #[test]
    fn output_plan_cuts_at_max_tokens() {
        let len = OutputLength::Fixed { tokens: 300 };
        let seed = RequestSeed {
            seed: 1,
            sequence: 1,
        };
        assert_eq!(len.plan(seed, 1000), (300, StopReason::EndTurn));
        assert_eq!(len.plan(seed, 300), (300, StopReason::EndTurn));
        assert_eq!(len.plan(seed, 299), (299, StopReason::MaxTokens));
    }

    #[test]
    fn log_normal_median_is_near_its_parameter() {
        let len = OutputLength::LogNormal {
            median: 400.0,
            sigma: 0.6,
        };
        let mut draws: Vec<u64> = (0..2001)
            .map(|i| {
                len.draw(
                    &mut RequestSeed {
                        seed: 3,
                        sequence: i,
                    }
                    .rng(RngStream::Length),
                )
            })
            .collect();
        draws.sort_unstable();
        let median = draws[1000] as f64;
        assert!((median - 400.0).abs() < 40.0, "median {median}");
    }

    proptest! {
        #[test]
        fn every_prefix_of_pieces_recounts(seed in any::<u64>(), n in 0u64..600) {
            let rs = RequestSeed { seed, sequence: n };
            let mut text = String::new();
            for (i, piece) in PseudoText::new(rs.rng(RngStream::Text), n).enumerate() {
                prop_assert_eq!(count_tokens(piece), 1, "piece {:?}", piece);
                text.push_str(piece);
                prop_assert_eq!(count_tokens(&text), i as u64 + 1);
            }
            prop_assert_eq!(count_tokens(&text), n);
        }

        #[test]
        fn counting_never_exceeds_chars(s in ".{0,200}") {
            let n = count_tokens(&s);
            prop_assert!(n <= s.chars().count() as u64);
            prop_assert!(s.is_empty() || n >= 1);
        }
    }
}
