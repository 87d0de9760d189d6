//! A workload's prompt, and the request body it becomes for each operation
//! and family. The cacheable prefix goes first, then a cache marker, then the
//! per-request text, since a cache checkpoint covers what precedes it (§5.8).

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

    /// Converse-shaped user content (also Nova's).
    fn converse_content(&self) -> Vec<ContentBlock> {
        let mut content = Vec::with_capacity(3);
        if let Some(prefix) = &self.cached_prefix {
            content.push(ContentBlock::Text(prefix.clone()));
            content.push(ContentBlock::CachePoint(CachePointBlock {
                ttl: self.cache_ttl,
                ..CachePointBlock::default()
            }));
        }
        content.push(ContentBlock::Text(self.user_text.clone()));
        content
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
            messages: vec![Message {
                role: Role::User,
                content: self.converse_content(),
            }],
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
                prompt: LlamaRequest::chat_prompt(self.system.as_deref(), &self.joined_text()),
                max_gen_len: Some(self.max_tokens),
                temperature: self.temperature,
                top_p: None,
                images: None,
            }),
            ModelFamily::Nova => NativeRequest::Nova(NovaRequest {
                schema_version: Some(NOVA_SCHEMA_VERSION.to_owned()),
                system: self.converse_system(),
                messages: vec![Message {
                    role: Role::User,
                    content: self.converse_content(),
                }],
                inference_config: Some(NovaInferenceConfig {
                    max_tokens: Some(self.max_tokens),
                    temperature: self.temperature,
                    ..NovaInferenceConfig::default()
                }),
                tool_config: None,
            }),
            ModelFamily::Titan => NativeRequest::Titan(TitanRequest {
                input_text: match &self.system {
                    Some(system) => format!("{system}\n\n{}", self.joined_text()),
                    None => self.joined_text(),
                },
                text_generation_config: Some(TitanGenerationConfig {
                    max_token_count: Some(self.max_tokens),
                    temperature: self.temperature,
                    ..TitanGenerationConfig::default()
                }),
            }),
        }
    }

    fn anthropic(&self) -> AnthropicRequest {
        let mut blocks = Vec::with_capacity(2);
        if let Some(prefix) = &self.cached_prefix {
            let mut block = AnthropicBlock::text(prefix.clone());
            block.cache_control = Some(CacheControl::ephemeral(self.ttl_str()));
            blocks.push(block);
        }
        blocks.push(AnthropicBlock::text(self.user_text.clone()));
        AnthropicRequest {
            anthropic_version: ANTHROPIC_VERSION.to_owned(),
            anthropic_beta: Vec::new(),
            max_tokens: self.max_tokens,
            system: self.system.clone().map(AnthropicContent::Text),
            messages: vec![AnthropicMessage {
                role: Role::User,
                content: AnthropicContent::Blocks(blocks),
            }],
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
    pub fn body(&self, operation: Operation, family: ModelFamily) -> Vec<u8> {
        match operation {
            Operation::Converse | Operation::ConverseStream => self.converse_request().to_vec(),
            Operation::InvokeModel | Operation::InvokeModelWithResponseStream => {
                self.native_request(family).to_vec()
            }
            Operation::CountTokens => self.count_tokens_converse().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt() -> Prompt {
        Prompt {
            system: Some("S".to_owned()),
            cached_prefix: Some("P".to_owned()),
            user_text: "U".to_owned(),
            max_tokens: 64,
            temperature: Some(0.5),
            cache_ttl: Some(CacheTtl::OneHour),
            service_tier: None,
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
