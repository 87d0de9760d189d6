//! Trace replay: the requests of a recorded trace, each at its own time
//! with its own model and token counts, as a run plan carries them.
//!
//! The controller reads the trace file (JSON lines, docs/trace-schema.md),
//! applies the window, speed and scale, and hands the engine a [`Replay`]:
//! the requests in send order, each with its deadline on the run clock and
//! the index of its mix entry (one entry per model and operation the trace
//! uses). The open-loop dispatcher walks [`Replay::arrivals`] instead of a
//! rate schedule, on the same absolute deadlines; the executor builds each
//! request from [`ReplayRequest`] instead of a mix draw.
//!
//! Input tokens: a replayed request's text is built so that the simulator
//! counts exactly the trace's `input_tokens` — the user text holds
//! `input_tokens − framing` tokens under the simulator's token rule (each
//! word of at most four letters after a space is one token), and the
//! family's framing ([`quarry_bedrock::Framing`]) makes up the rest. Real
//! tokenizers count the same text differently (about a token per four or
//! five characters of prose), so against Bedrock the count is approximate.
//! Output tokens go out as `max_tokens`: a model stops at or before it.
//!
//! A shared cacheable prefix ([`ReplayPrefix`], the trace's `cache_prefix`):
//! the request's text is the prefix — text of exactly its tokens, the same
//! for every request of one prefix id, so the model can cache it — then a
//! cache point, then the user text, which holds the rest of `input_tokens`.

use std::num::NonZeroU32;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One recorded request, as replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// The send deadline, ns since the run's origin (window, speed applied).
    pub at_ns: u64,
    /// Index of the request's mix entry (model and operation).
    pub entry: u32,
    /// Input tokens the model counts for the request, framing included.
    pub input_tokens: u32,
    /// Output tokens recorded; sent as `max_tokens`.
    pub output_tokens: NonZeroU32,
    /// The recorded prompt, sent verbatim instead of generated text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A hash of the session id, when the trace gives one (and of the copy,
    /// for a duplicated arrival): requests of one session stay on one share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// Seeds the generated text: distinct for every line and copy.
    pub text_seed: u64,
    /// The trace line the request came from (1-based), for reports.
    pub line: u64,
    /// A shared prefix sent before the user text with a cache point after
    /// it; its tokens are part of `input_tokens`. A share carrying one
    /// requires [`crate::FEATURE_REPLAY_CACHE_PREFIX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prefix: Option<ReplayPrefix>,
}

/// A replayed request's shared cacheable prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPrefix {
    /// Tokens of the prefix, under the simulator's rule.
    pub tokens: NonZeroU32,
    /// Seeds the prefix text: one per prefix id, so every request of the id
    /// sends the same text (a shorter prefix of an id is the start of a
    /// longer one).
    pub seed: u64,
}

impl ReplayRequest {
    /// The generated text of a request without a recorded prompt, when the
    /// model adds `framing` tokens of template: the cached prefix, if any
    /// (exactly its tokens), and the user text, which holds the rest of
    /// `input_tokens` less the framing (at least one token, see
    /// [`text_tokens`]).
    pub fn generated_text(&self, framing: u64) -> (Option<String>, String) {
        let prefix_tokens = self.cache_prefix.map_or(0, |p| p.tokens.get());
        let prefix = self.cache_prefix.map(|p| {
            let mut text = String::new();
            write_exact_text(&mut text, p.tokens.get(), p.seed);
            text
        });
        let mut text = String::new();
        write_exact_text(
            &mut text,
            text_tokens(self.input_tokens.saturating_sub(prefix_tokens), framing),
            self.text_seed,
        );
        (prefix, text)
    }
}

/// A replay's requests in send order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<ReplayRequest>", into = "Vec<ReplayRequest>")]
pub struct Replay {
    requests: Vec<ReplayRequest>,
}

/// A replay built from values that break its invariants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Deadlines must not go backwards.
    #[error("replay request {index} is due at {at_ns} ns, before the one before it")]
    OutOfOrder {
        /// Position of the request.
        index: usize,
        /// Its deadline.
        at_ns: u64,
    },
}

impl Replay {
    /// Validates the requests: deadlines in non-decreasing order. An empty
    /// replay is valid (a share may be dealt no line); a plan needs one.
    pub fn new(requests: Vec<ReplayRequest>) -> Result<Self, ReplayError> {
        if let Some(index) = requests.windows(2).position(|w| w[1].at_ns < w[0].at_ns) {
            return Err(ReplayError::OutOfOrder {
                index: index + 1,
                at_ns: requests[index + 1].at_ns,
            });
        }
        Ok(Replay { requests })
    }

    /// The requests in send order.
    pub fn requests(&self) -> &[ReplayRequest] {
        &self.requests
    }

    /// The request at `index`.
    pub fn get(&self, index: u64) -> Option<&ReplayRequest> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.requests.get(i))
    }

    /// The last deadline, ns (0 when empty).
    pub fn last_at_ns(&self) -> u64 {
        self.requests.last().map_or(0, |r| r.at_ns)
    }

    /// Keeps the requests `keep` selects (by position and request), in order.
    pub fn retain(&self, mut keep: impl FnMut(usize, &ReplayRequest) -> bool) -> Replay {
        Replay {
            requests: self
                .requests
                .iter()
                .enumerate()
                .filter(|(i, r)| keep(*i, r))
                .map(|(_, r)| r.clone())
                .collect(),
        }
    }
}

impl TryFrom<Vec<ReplayRequest>> for Replay {
    type Error = ReplayError;
    fn try_from(requests: Vec<ReplayRequest>) -> Result<Self, ReplayError> {
        Replay::new(requests)
    }
}

impl From<Replay> for Vec<ReplayRequest> {
    fn from(r: Replay) -> Self {
        r.requests
    }
}

/// Words of one to four ASCII letters: after a space each is exactly one
/// token under the simulator's rule (`" the"`, `" know"`).
const SHORT_WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "from", "have", "or", "by", "one", "had",
    "not", "but", "what", "all", "were", "when", "we", "can", "an", "your", "said", "if", "do",
    "will", "each", "how", "up", "out", "them", "then", "she", "many", "some", "so", "into", "has",
    "more", "her", "two", "like", "him", "see", "time", "no", "make", "than", "been", "its", "who",
    "now", "my", "made", "over", "did", "down", "only", "way", "find", "use", "may", "long",
    "very", "just", "most", "know", "get", "back", "much", "go", "good", "new", "our", "used",
    "me", "man", "too", "any", "day", "same", "look", "also",
];

/// Appends text of exactly `tokens` tokens under the simulator's rule
/// (`quarry_sim::count_tokens`): that many words from a fixed list of short words, each
/// after one space, drawn from `seed`. About 4.3 bytes per token.
pub fn write_exact_text(out: &mut String, tokens: u32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    out.reserve(tokens as usize * 5);
    for _ in 0..tokens {
        out.push(' ');
        out.push_str(SHORT_WORDS[rng.random_range(0..SHORT_WORDS.len())]);
    }
}

/// The user-text tokens of a request the model counts `input_tokens` for
/// in all, when it adds `framing` tokens of template: at least one (a
/// message cannot be empty), so a trace line below the framing is sent one
/// token over.
pub fn text_tokens(input_tokens: u32, framing: u64) -> u32 {
    let framing = u32::try_from(framing).unwrap_or(u32::MAX);
    input_tokens.saturating_sub(framing).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at_ns: u64) -> ReplayRequest {
        ReplayRequest {
            at_ns,
            entry: 0,
            input_tokens: 10,
            output_tokens: NonZeroU32::new(5).unwrap(),
            prompt: None,
            session: None,
            text_seed: at_ns,
            line: 1,
            cache_prefix: None,
        }
    }

    #[test]
    fn a_prefix_is_the_same_text_per_seed_and_the_rest_of_the_input_follows() {
        let mut r = request(1);
        r.input_tokens = 3_000;
        let none = r.generated_text(7);
        assert_eq!(none.0, None);
        assert_eq!(quarry_sim::count_tokens(&none.1), 2_993);
        r.cache_prefix = Some(ReplayPrefix {
            tokens: NonZeroU32::new(2_048).unwrap(),
            seed: 99,
        });
        let (prefix, user) = r.generated_text(7);
        let prefix = prefix.unwrap();
        // Prefix + user text + framing = the trace's input tokens.
        assert_eq!(quarry_sim::count_tokens(&prefix), 2_048);
        assert_eq!(quarry_sim::count_tokens(&user), 3_000 - 2_048 - 7);
        // Another request of the same prefix: the same prefix, its own text.
        let mut other = r.clone();
        other.text_seed = 2;
        let (same, own) = other.generated_text(7);
        assert_eq!(same.as_deref(), Some(prefix.as_str()));
        assert_ne!(own, user);
        // A shorter prefix of the same seed is the start of the longer one.
        other.cache_prefix = Some(ReplayPrefix {
            tokens: NonZeroU32::new(1_024).unwrap(),
            seed: 99,
        });
        let shorter = other.generated_text(7).0.unwrap();
        assert!(prefix.starts_with(&shorter));
        // A prefix leaving less than the framing sends one token of text.
        other.input_tokens = 1_026;
        assert_eq!(quarry_sim::count_tokens(&other.generated_text(7).1), 1);
        // The prefix crosses the wire, and an older plan without it reads.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ReplayRequest>(&json).unwrap(), r);
        let plain = serde_json::to_string(&request(1)).unwrap();
        assert!(!plain.contains("cache_prefix"), "{plain}");
    }

    #[test]
    fn generated_text_has_exactly_the_tokens_the_simulator_counts() {
        assert!(
            SHORT_WORDS
                .iter()
                .all(|w| (1..=4).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_alphabetic()))
        );
        for (tokens, seed) in [(1, 0), (7, 1), (1_000, 2), (100_000, 3)] {
            let mut text = String::new();
            write_exact_text(&mut text, tokens, seed);
            assert_eq!(
                quarry_sim::count_tokens(&text),
                u64::from(tokens),
                "{tokens}"
            );
        }
        let (mut a, mut b) = (String::new(), String::new());
        write_exact_text(&mut a, 50, 1);
        write_exact_text(&mut b, 50, 2);
        assert_ne!(a, b, "fresh seeds give fresh text");
    }

    #[test]
    fn text_tokens_take_the_framing_off_and_keep_one() {
        assert_eq!(text_tokens(100, 7), 93);
        assert_eq!(text_tokens(5, 7), 1);
        assert_eq!(text_tokens(8, 7), 1);
    }

    #[test]
    fn deadlines_must_not_go_backwards_even_over_the_wire() {
        assert!(Replay::new(vec![request(1), request(1), request(5)]).is_ok());
        let err = Replay::new(vec![request(5), request(1)]).unwrap_err();
        assert_eq!(err, ReplayError::OutOfOrder { index: 1, at_ns: 1 });
        let json = serde_json::to_string(&vec![request(5), request(1)]).unwrap();
        assert!(serde_json::from_str::<Replay>(&json).is_err());
        let ok = Replay::new(vec![request(1), request(2)]).unwrap();
        let back: Replay = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        assert_eq!(ok.retain(|i, _| i == 1).requests(), &[request(2)]);
    }
}
