//! A workload's prompt, and the request body it becomes for each operation
//! and family. The cacheable prefix goes first, then a cache marker, then the
//! per-request text, since a cache checkpoint covers what precedes it (§5.8).
//!
//! A turn of a conversation carries the earlier turns before its own
//! question: user and assistant messages alternating, oldest first, the
//! shared prefix (if any) at the head of the first question. With
//! [`Prompt::conversation_cache`] it marks two checkpoints more: after the
//! previous question (everything the previous turn sent, which that turn's
//! own last checkpoint wrote, so this turn reads it) and after its own
//! question (written, for the next turn to read). Cached reads so grow by
//! one exchange a turn.

use super::{
    ANTHROPIC_VERSION, AnthropicBlock, AnthropicContent, AnthropicMessage, AnthropicRequest,
    CacheControl, LlamaRequest, NOVA_SCHEMA_VERSION, NativeRequest, NovaInferenceConfig,
    NovaRequest, TitanGenerationConfig, TitanRequest,
};
use crate::converse::{
    Blob, CachePointBlock, CacheTtl, ContentBlock, ConverseRequest, ConverseTokensRequest,
    CountTokensInput, CountTokensRequest, InferenceConfiguration, InvokeModelTokensRequest,
    Message, Role, ServiceTier, ServiceTierType, SystemContentBlock,
};
use crate::{ModelFamily, Operation};

/// Room for a body's JSON beyond its text, for the common one-message body
/// (`loadbench`'s Converse body, 400 bytes of text, has 88 more). Bodies with
/// a system prompt, cache points or history may grow once more. Kept tight:
/// the body's buffer lives as long as its request, slack included.
const BODY_JSON_BYTES: usize = 128;

/// One request's prompt, as a workload describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// System prompt.
    pub system: Option<String>,
    /// Text shared by many requests, followed by a cache checkpoint (Converse
    /// `cachePoint`, Anthropic `cache_control`, Nova `cachePoint`). Llama and
    /// Titan have no prompt cache: it is simply prepended.
    pub cached_prefix: Option<String>,
    /// Per-request user text.
    pub user_text: String,
    /// Output cap.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Cache TTL; `None` is the 5-minute default and sends no `ttl`.
    pub cache_ttl: Option<CacheTtl>,
    /// The service tier: Converse's `serviceTier` member. InvokeModel sends
    /// it as the `X-Amzn-Bedrock-Service-Tier` header, outside the body
    /// (the caller sets it: [`crate::header_names::SERVICE_TIER`]).
    pub service_tier: Option<ServiceTierType>,
    /// The conversation's earlier turns, oldest first; empty for a request
    /// that is not part of one. [`Prompt::user_text`] is the new question.
    pub history: Vec<Exchange>,
    /// Cache checkpoints at the conversation's turn boundaries (after the
    /// previous question and after this one; see the module docs). Llama
    /// and Titan have no prompt cache and ignore it.
    pub conversation_cache: bool,
}

/// One earlier turn of a conversation: what the user asked and the
/// answer the model gave, both sent back verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The user's question, as sent (without the shared prefix).
    pub question: String,
    /// The model's answer text, as received.
    pub answer: String,
}

impl Prompt {
    fn ttl_str(&self) -> Option<&'static str> {
        self.cache_ttl.map(|t| match t {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        })
    }

    /// The prefix and user text as one string, for families without a cache.
    fn joined_text(&self) -> String {
        match &self.cached_prefix {
            Some(prefix) => format!("{prefix}\n\n{}", self.user_text),
            None => self.user_text.clone(),
        }
    }

    /// The cache marker this prompt's checkpoints carry.
    fn cache_point(&self) -> ContentBlock {
        ContentBlock::CachePoint(CachePointBlock {
            ttl: self.cache_ttl,
            ..CachePointBlock::default()
        })
    }

    /// The questions of the conversation, oldest first, the new one last,
    /// each with whether a conversation checkpoint follows it (the last
    /// two, when [`Prompt::conversation_cache`]).
    fn questions(&self) -> impl Iterator<Item = (usize, &str, bool)> {
        let n = self.history.len() + 1;
        self.history
            .iter()
            .map(|e| e.question.as_str())
            .chain(std::iter::once(self.user_text.as_str()))
            .enumerate()
            .map(move |(i, q)| (i, q, self.conversation_cache && i + 2 >= n))
    }

    /// Converse-shaped messages (also Nova's): the shared prefix and its
    /// checkpoint at the head of the first question, then the questions
    /// and answers alternating.
    fn converse_messages(&self) -> Vec<Message> {
        let mut messages = Vec::with_capacity(2 * self.history.len() + 1);
        for (i, question, checkpoint) in self.questions() {
            let mut content = Vec::with_capacity(4);
            if i == 0
                && let Some(prefix) = &self.cached_prefix
            {
                content.push(ContentBlock::Text(prefix.clone()));
                content.push(self.cache_point());
            }
            content.push(ContentBlock::Text(question.to_owned()));
            if checkpoint {
                content.push(self.cache_point());
            }
            messages.push(Message {
                role: Role::User,
                content,
            });
            if let Some(exchange) = self.history.get(i) {
                messages.push(Message {
                    role: Role::Assistant,
                    content: vec![ContentBlock::Text(exchange.answer.clone())],
                });
            }
        }
        messages
    }

    fn converse_system(&self) -> Vec<SystemContentBlock> {
        self.system
            .iter()
            .map(|s| SystemContentBlock::Text(s.clone()))
            .collect()
    }

    /// The Converse / ConverseStream body.
    pub fn converse_request(&self) -> ConverseRequest {
        ConverseRequest {
            messages: self.converse_messages(),
            system: self.converse_system(),
            inference_config: Some(InferenceConfiguration {
                max_tokens: Some(self.max_tokens),
                temperature: self.temperature,
                ..InferenceConfiguration::default()
            }),
            service_tier: self.service_tier.map(|kind| ServiceTier { kind }),
            ..ConverseRequest::default()
        }
    }

    /// The family's native InvokeModel body.
    pub fn native_request(&self, family: ModelFamily) -> NativeRequest {
        match family {
            ModelFamily::Anthropic => NativeRequest::Anthropic(self.anthropic()),
            ModelFamily::Llama => NativeRequest::Llama(LlamaRequest {
                prompt: self.llama_prompt(),
                max_gen_len: Some(self.max_tokens),
                temperature: self.temperature,
                top_p: None,
                images: None,
            }),
            ModelFamily::Nova => NativeRequest::Nova(NovaRequest {
                schema_version: Some(NOVA_SCHEMA_VERSION.to_owned()),
                system: self.converse_system(),
                messages: self.converse_messages(),
                inference_config: Some(NovaInferenceConfig {
                    max_tokens: Some(self.max_tokens),
                    temperature: self.temperature,
                    ..NovaInferenceConfig::default()
                }),
                tool_config: None,
            }),
            ModelFamily::Titan => NativeRequest::Titan(TitanRequest {
                input_text: self.titan_text(),
                text_generation_config: Some(TitanGenerationConfig {
                    max_token_count: Some(self.max_tokens),
                    temperature: self.temperature,
                    ..TitanGenerationConfig::default()
                }),
            }),
        }
    }

    /// Llama's chat template over the whole conversation (no cache: the
    /// shared prefix is plain text at the head of the first question).
    fn llama_prompt(&self) -> String {
        if self.history.is_empty() {
            return LlamaRequest::chat_prompt(self.system.as_deref(), &self.joined_text());
        }
        let mut turns = Vec::with_capacity(self.history.len() + 1);
        let first = self.first_question_text();
        for (i, question, _) in self.questions() {
            let question = if i == 0 { first.as_str() } else { question };
            turns.push((question, self.history.get(i).map(|e| e.answer.as_str())));
        }
        LlamaRequest::conversation_prompt(self.system.as_deref(), &turns)
    }

    /// The first question with the shared prefix before it, for families
    /// without a cache.
    fn first_question_text(&self) -> String {
        let first = self
            .history
            .first()
            .map_or(self.user_text.as_str(), |e| e.question.as_str());
        match &self.cached_prefix {
            Some(prefix) => format!("{prefix}\n\n{first}"),
            None => first.to_owned(),
        }
    }

    /// Titan's single text: system, then the conversation as
    /// `User:`/`Bot:` lines (Titan's own chat convention), or the text alone.
    fn titan_text(&self) -> String {
        let mut text = String::new();
        if let Some(system) = &self.system {
            text.push_str(system);
            text.push_str("\n\n");
        }
        if self.history.is_empty() {
            text.push_str(&self.joined_text());
            return text;
        }
        let first = self.first_question_text();
        for (i, question, _) in self.questions() {
            let question = if i == 0 { first.as_str() } else { question };
            text.push_str("User: ");
            text.push_str(question);
            text.push_str("\nBot:");
            if let Some(exchange) = self.history.get(i) {
                text.push(' ');
                text.push_str(&exchange.answer);
                text.push('\n');
            }
        }
        text
    }

    fn anthropic(&self) -> AnthropicRequest {
        let control = || Some(CacheControl::ephemeral(self.ttl_str()));
        let mut messages = Vec::with_capacity(2 * self.history.len() + 1);
        for (i, question, checkpoint) in self.questions() {
            let mut blocks = Vec::with_capacity(2);
            if i == 0
                && let Some(prefix) = &self.cached_prefix
            {
                let mut block = AnthropicBlock::text(prefix.clone());
                block.cache_control = control();
                blocks.push(block);
            }
            let mut block = AnthropicBlock::text(question.to_owned());
            if checkpoint {
                block.cache_control = control();
            }
            blocks.push(block);
            messages.push(AnthropicMessage {
                role: Role::User,
                content: AnthropicContent::Blocks(blocks),
            });
            if let Some(exchange) = self.history.get(i) {
                messages.push(AnthropicMessage {
                    role: Role::Assistant,
                    content: AnthropicContent::Text(exchange.answer.clone()),
                });
            }
        }
        AnthropicRequest {
            anthropic_version: ANTHROPIC_VERSION.to_owned(),
            anthropic_beta: Vec::new(),
            max_tokens: self.max_tokens,
            system: self.system.clone().map(AnthropicContent::Text),
            messages,
            temperature: self.temperature,
            top_p: None,
            top_k: None,
            stop_sequences: Vec::new(),
            tools: None,
            tool_choice: None,
            thinking: None,
            metadata: None,
            output_config: None,
        }
    }

    /// CountTokens in its Converse variant.
    pub fn count_tokens_converse(&self) -> CountTokensRequest {
        CountTokensRequest {
            input: CountTokensInput::Converse(ConverseTokensRequest::from(
                &self.converse_request(),
            )),
        }
    }

    /// CountTokens in its InvokeModel variant (the native body, base64).
    pub fn count_tokens_invoke(&self, family: ModelFamily) -> CountTokensRequest {
        CountTokensRequest {
            input: CountTokensInput::InvokeModel(InvokeModelTokensRequest {
                body: Blob(self.native_request(family).to_vec()),
            }),
        }
    }

    /// The request body for `operation`: Converse JSON for Converse*, the
    /// family's native JSON for InvokeModel*, the Converse variant for CountTokens.
    ///
    /// The buffer is sized for the prompt's text and the JSON around it up
    /// front: grown from serde_json's 128 bytes it was reallocated two or
    /// three times a request (0.5% of the agent's samples at 64 connections).
    pub fn body(&self, operation: Operation, family: ModelFamily) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text_len() + BODY_JSON_BYTES);
        match operation {
            Operation::Converse | Operation::ConverseStream => {
                self.converse_request().write_json(&mut out);
            }
            Operation::InvokeModel | Operation::InvokeModelWithResponseStream => {
                self.native_request(family).write_json(&mut out);
            }
            Operation::CountTokens => return self.count_tokens_converse().to_vec(),
        }
        out
    }

    /// Bytes of text the body carries, before JSON escaping.
    fn text_len(&self) -> usize {
        let history: usize = self
            .history
            .iter()
            .map(|e| e.question.len() + e.answer.len())
            .sum();
        self.system.as_ref().map_or(0, String::len)
            + self.cached_prefix.as_ref().map_or(0, String::len)
            + self.user_text.len()
            + history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presized_body_is_the_request_serialized() {
        // A one-message body is sized once, never grown: the buffer is the
        // one `body` allocated.
        let plain = Prompt {
            system: None,
            cached_prefix: None,
            user_text: "x".repeat(400),
            temperature: None,
            cache_ttl: None,
            ..prompt()
        };
        for operation in [Operation::ConverseStream, Operation::InvokeModel] {
            let body = plain.body(operation, ModelFamily::Anthropic);
            assert_eq!(body.capacity(), plain.text_len() + BODY_JSON_BYTES);
        }
        for p in [prompt(), third_turn(true)] {
            for family in [
                ModelFamily::Anthropic,
                ModelFamily::Nova,
                ModelFamily::Llama,
            ] {
                assert_eq!(
                    p.body(Operation::ConverseStream, family),
                    p.converse_request().to_vec()
                );
                assert_eq!(
                    p.body(Operation::InvokeModel, family),
                    p.native_request(family).to_vec()
                );
            }
            assert_eq!(
                p.body(Operation::CountTokens, ModelFamily::Anthropic),
                p.count_tokens_converse().to_vec()
            );
        }
    }

    fn prompt() -> Prompt {
        Prompt {
            system: Some("S".to_owned()),
            cached_prefix: Some("P".to_owned()),
            user_text: "U".to_owned(),
            max_tokens: 64,
            temperature: Some(0.5),
            cache_ttl: Some(CacheTtl::OneHour),
            service_tier: None,
            history: Vec::new(),
            conversation_cache: false,
        }
    }

    /// The third turn of a conversation: two exchanges, then "Q3".
    fn third_turn(conversation_cache: bool) -> Prompt {
        let exchange = |q: &str, a: &str| Exchange {
            question: q.to_owned(),
            answer: a.to_owned(),
        };
        Prompt {
            user_text: "Q3".to_owned(),
            cache_ttl: None,
            temperature: None,
            history: vec![exchange("Q1", "A1"), exchange("Q2", "A2")],
            conversation_cache,
            ..prompt()
        }
    }

    #[test]
    fn a_turn_carries_the_earlier_turns_and_checkpoints_after_the_last_two_questions() {
        let body = String::from_utf8(
            third_turn(true).body(Operation::ConverseStream, ModelFamily::Anthropic),
        )
        .unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"messages":["#,
                r#"{"role":"user","content":[{"text":"P"},{"cachePoint":{"type":"default"}},{"text":"Q1"}]},"#,
                r#"{"role":"assistant","content":[{"text":"A1"}]},"#,
                r#"{"role":"user","content":[{"text":"Q2"},{"cachePoint":{"type":"default"}}]},"#,
                r#"{"role":"assistant","content":[{"text":"A2"}]},"#,
                r#"{"role":"user","content":[{"text":"Q3"},{"cachePoint":{"type":"default"}}]}],"#,
                r#""system":[{"text":"S"}],"inferenceConfig":{"maxTokens":64}}"#
            )
        );
        let plain =
            String::from_utf8(third_turn(false).body(Operation::Converse, ModelFamily::Nova))
                .unwrap();
        assert_eq!(plain.matches("cachePoint").count(), 1, "{plain}");
        // The first turn with the conversation cache: its question is the last.
        let first = Prompt {
            history: Vec::new(),
            ..third_turn(true)
        };
        let first =
            String::from_utf8(first.body(Operation::Converse, ModelFamily::Anthropic)).unwrap();
        assert!(
            first.contains(r#"{"text":"Q3"},{"cachePoint":{"type":"default"}}]}]"#),
            "{first}"
        );
    }

    #[test]
    fn native_conversations_in_each_family_shape() {
        let anthropic = String::from_utf8(
            third_turn(true).body(Operation::InvokeModel, ModelFamily::Anthropic),
        )
        .unwrap();
        assert_eq!(
            anthropic,
            concat!(
                r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"system":"S","messages":["#,
                r#"{"role":"user","content":[{"type":"text","text":"P","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Q1"}]},"#,
                r#"{"role":"assistant","content":"A1"},"#,
                r#"{"role":"user","content":[{"type":"text","text":"Q2","cache_control":{"type":"ephemeral"}}]},"#,
                r#"{"role":"assistant","content":"A2"},"#,
                r#"{"role":"user","content":[{"type":"text","text":"Q3","cache_control":{"type":"ephemeral"}}]}]}"#
            )
        );
        let NativeRequest::Llama(llama) = third_turn(true).native_request(ModelFamily::Llama)
        else {
            panic!("family")
        };
        assert_eq!(
            llama.prompt,
            concat!(
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>",
                "<|start_header_id|>user<|end_header_id|>\n\nP\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>",
                "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA2<|eot_id|>",
                "<|start_header_id|>user<|end_header_id|>\n\nQ3<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            )
        );
        let NativeRequest::Titan(titan) = third_turn(true).native_request(ModelFamily::Titan)
        else {
            panic!("family")
        };
        assert_eq!(
            titan.input_text,
            "S\n\nUser: P\n\nQ1\nBot: A1\nUser: Q2\nBot: A2\nUser: Q3\nBot:"
        );
        for family in ModelFamily::ALL {
            let body = third_turn(true).body(Operation::InvokeModel, family);
            assert_eq!(
                NativeRequest::parse(family, &body).unwrap(),
                third_turn(true).native_request(family),
                "{family}"
            );
        }
    }

    #[test]
    fn converse_body_carries_the_tier_and_native_bodies_do_not() {
        let tiered = Prompt {
            service_tier: Some(ServiceTierType::Flex),
            ..prompt()
        };
        let body =
            String::from_utf8(tiered.body(Operation::ConverseStream, ModelFamily::Anthropic))
                .unwrap();
        assert!(
            body.ends_with(r#","serviceTier":{"type":"flex"}}"#),
            "{body}"
        );
        let native = tiered.body(Operation::InvokeModel, ModelFamily::Anthropic);
        assert_eq!(
            native,
            prompt().body(Operation::InvokeModel, ModelFamily::Anthropic)
        );
    }

    #[test]
    fn converse_body_puts_cache_point_after_prefix() {
        let body =
            String::from_utf8(prompt().body(Operation::Converse, ModelFamily::Anthropic)).unwrap();
        assert_eq!(
            body,
            r#"{"messages":[{"role":"user","content":[{"text":"P"},{"cachePoint":{"type":"default","ttl":"1h"}},{"text":"U"}]}],"system":[{"text":"S"}],"inferenceConfig":{"maxTokens":64,"temperature":0.5}}"#
        );
    }

    #[test]
    fn native_bodies_parse_back_strictly() {
        for family in ModelFamily::ALL {
            let body = prompt().body(Operation::InvokeModel, family);
            let parsed = NativeRequest::parse(family, &body).unwrap();
            assert_eq!(parsed, prompt().native_request(family), "{family}");
            assert_eq!(parsed.max_tokens(), Some(64));
        }
        let body = String::from_utf8(prompt().body(Operation::InvokeModel, ModelFamily::Anthropic))
            .unwrap();
        assert_eq!(
            body,
            r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"system":"S","messages":[{"role":"user","content":[{"type":"text","text":"P","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"U"}]}],"temperature":0.5}"#
        );
    }

    #[test]
    fn count_tokens_bodies() {
        let body = prompt().body(Operation::CountTokens, ModelFamily::Anthropic);
        assert!(body.starts_with(br#"{"input":{"converse":{"messages":"#));
        let invoke = prompt().count_tokens_invoke(ModelFamily::Llama);
        let CountTokensInput::InvokeModel(inner) = &invoke.input else {
            panic!("variant")
        };
        assert!(NativeRequest::parse(ModelFamily::Llama, &inner.body.0).is_ok());
    }
}
