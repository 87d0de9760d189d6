//! Message framing: the tokens a model's prompt template adds around the
//! text of a structured request (role markers, turn delimiters, the opening
//! of the assistant's turn), which the model counts as input.
//!
//! Real models count them: one user message "hi" is more than one token.
//! The figures below are the simulator's approximation, per family, not a
//! tokenizer's: Llama 3's are its chat template's special tokens
//! (`<|begin_of_text|>`, `<|start_header_id|>role<|end_header_id|>\n\n` and
//! `<|eot_id|>` per message, the assistant header at the end); the others are
//! round figures of the same order. They apply where Bedrock renders the
//! template — Converse, CountTokens of a Converse input, and the native
//! bodies of the message-shaped families (Anthropic Messages, Nova) — and
//! not to a raw native prompt (Llama's `prompt`, Titan's `inputText`), where
//! the caller writes the template. CountTokens and the `inputTokens` a
//! Converse or InvokeModel answer reports use the same figures, so they
//! agree. Framing is counted after the content, outside cached prefixes.
//!
//! It lives in the protocol crate because both sides need it: the simulator
//! adds it to every count, and a load generator that must send a prompt of
//! an exact input-token count (trace replay) takes it off.

use crate::{ModelFamily, Operation};

/// Framing tokens of one family's prompt template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Once per request: begin-of-text and the opening of the answer.
    pub per_request: u64,
    /// Once per message: its role marker and delimiters.
    pub per_message: u64,
    /// Once when the request has a system prompt (its role and delimiters).
    pub system: u64,
}

impl Framing {
    /// The framing of `family`'s message template.
    pub fn of(family: ModelFamily) -> Self {
        match family {
            ModelFamily::Llama => Framing {
                per_request: 5,
                per_message: 5,
                system: 5,
            },
            ModelFamily::Anthropic => Framing {
                per_request: 4,
                per_message: 3,
                system: 3,
            },
            ModelFamily::Nova => Framing {
                per_request: 3,
                per_message: 3,
                system: 3,
            },
            ModelFamily::Titan => Framing {
                per_request: 2,
                per_message: 2,
                system: 2,
            },
        }
    }

    /// The framing tokens of a request with `messages` messages and, when
    /// `system`, a system prompt.
    pub fn tokens(self, messages: usize, system: bool) -> u64 {
        self.per_request + self.per_message * messages as u64 + if system { self.system } else { 0 }
    }

    /// Whether Bedrock renders `family`'s template around a request of
    /// `operation` (so its framing counts as input): always for Converse,
    /// for the message-shaped native bodies (Anthropic Messages, Nova), never
    /// for a raw native prompt (Llama's `prompt`, Titan's `inputText`).
    pub fn applies(operation: Operation, family: ModelFamily) -> bool {
        !operation.is_native() || matches!(family, ModelFamily::Anthropic | ModelFamily::Nova)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_3_template_tokens() {
        // <|begin_of_text|> + the assistant header (4), then per message
        // <|start_header_id|> role <|end_header_id|> "\n\n" ... <|eot_id|>.
        let f = Framing::of(ModelFamily::Llama);
        assert_eq!(f.tokens(1, false), 10);
        assert_eq!(f.tokens(3, true), 5 + 15 + 5);
    }

    #[test]
    fn only_raw_native_prompts_go_unframed() {
        assert!(Framing::applies(
            Operation::ConverseStream,
            ModelFamily::Llama
        ));
        assert!(Framing::applies(
            Operation::InvokeModel,
            ModelFamily::Anthropic
        ));
        assert!(Framing::applies(Operation::InvokeModel, ModelFamily::Nova));
        assert!(!Framing::applies(
            Operation::InvokeModel,
            ModelFamily::Llama
        ));
        assert!(!Framing::applies(
            Operation::InvokeModelWithResponseStream,
            ModelFamily::Titan
        ));
    }

    #[test]
    fn every_family_frames_a_message() {
        for family in [
            ModelFamily::Anthropic,
            ModelFamily::Llama,
            ModelFamily::Nova,
            ModelFamily::Titan,
        ] {
            let f = Framing::of(family);
            assert!(f.tokens(1, false) > f.tokens(0, false), "{family:?}");
            assert!(f.tokens(1, true) > f.tokens(1, false), "{family:?}");
        }
    }
}
