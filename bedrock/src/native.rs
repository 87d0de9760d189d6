//! InvokeModel native bodies per model family (PROTOCOL.md §2.4): strict
//! request parsing for the simulator, response summaries for the agent, and
//! building any operation's body from a [`Prompt`].

mod anthropic;
mod fields;
mod llama;
mod nova;
mod prompt;
mod titan;

pub use anthropic::{
    ANTHROPIC_VERSION, AnthropicBlock, AnthropicCacheCreation, AnthropicContent, AnthropicMessage,
    AnthropicRequest, AnthropicResponse, AnthropicUsage, CacheControl,
};
pub use fields::MalformedInput;
pub use llama::{LlamaRequest, LlamaResponse};
pub use nova::{NOVA_SCHEMA_VERSION, NovaInferenceConfig, NovaRequest, NovaResponse, NovaUsage};
pub use prompt::{Exchange, Prompt};
pub use titan::{TitanGenerationConfig, TitanRequest, TitanResponse, TitanResult};

use crate::headers::ResponseHeaders;
use crate::{ModelFamily, TokenUsage, UsageSource};

/// A native InvokeModel request body of any family.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeRequest {
    /// Anthropic Messages API.
    Anthropic(AnthropicRequest),
    /// Meta Llama.
    Llama(LlamaRequest),
    /// Amazon Nova.
    Nova(NovaRequest),
    /// Amazon Titan Text.
    Titan(TitanRequest),
}

impl NativeRequest {
    /// Validates and decodes `body` as `family`'s request, with Bedrock's
    /// "Malformed input request" wording on failure.
    pub fn parse(family: ModelFamily, body: &[u8]) -> Result<Self, MalformedInput> {
        Ok(match family {
            ModelFamily::Anthropic => NativeRequest::Anthropic(AnthropicRequest::parse(body)?),
            ModelFamily::Llama => NativeRequest::Llama(LlamaRequest::parse(body)?),
            ModelFamily::Nova => NativeRequest::Nova(NovaRequest::parse(body)?),
            ModelFamily::Titan => NativeRequest::Titan(TitanRequest::parse(body)?),
        })
    }

    /// The family this body belongs to.
    pub fn family(&self) -> ModelFamily {
        match self {
            NativeRequest::Anthropic(_) => ModelFamily::Anthropic,
            NativeRequest::Llama(_) => ModelFamily::Llama,
            NativeRequest::Nova(_) => ModelFamily::Nova,
            NativeRequest::Titan(_) => ModelFamily::Titan,
        }
    }

    /// The output cap, when the body sets one (quota reservation, §5.2).
    pub fn max_tokens(&self) -> Option<u32> {
        match self {
            NativeRequest::Anthropic(r) => Some(r.max_tokens),
            NativeRequest::Llama(r) => r.max_gen_len,
            NativeRequest::Nova(r) => r.max_tokens(),
            NativeRequest::Titan(r) => r.text_generation_config.as_ref()?.max_token_count,
        }
    }

    /// The compact JSON body.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out);
        out
    }

    /// Appends the compact JSON body to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // unwrap is safe because writing to a Vec cannot fail and every member
        // serializes to JSON infallibly: map keys are strings and serde_json
        // writes non-finite floats as null.
        match self {
            NativeRequest::Anthropic(r) => serde_json::to_writer(out, r).unwrap(),
            NativeRequest::Llama(r) => serde_json::to_writer(out, r).unwrap(),
            NativeRequest::Nova(r) => serde_json::to_writer(out, r).unwrap(),
            NativeRequest::Titan(r) => serde_json::to_writer(out, r).unwrap(),
        }
    }
}

/// A native InvokeModel response body of any family.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeResponse {
    /// Anthropic Messages API.
    Anthropic(AnthropicResponse),
    /// Meta Llama.
    Llama(LlamaResponse),
    /// Amazon Nova.
    Nova(NovaResponse),
    /// Amazon Titan Text.
    Titan(TitanResponse),
}

/// What the agent keeps from an InvokeModel response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeOutput {
    /// The generated text.
    pub text: String,
    /// The family's own stop reason (`end_turn`, `length`, `FINISH`, ...).
    pub stop_reason: Option<String>,
    /// Token counts, when the service reported any.
    pub usage: Option<TokenUsage>,
    /// Where `usage` came from.
    pub usage_source: Option<UsageSource>,
}

impl NativeResponse {
    /// Decodes `body` as `family`'s response.
    pub fn parse(family: ModelFamily, body: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match family {
            ModelFamily::Anthropic => NativeResponse::Anthropic(serde_json::from_slice(body)?),
            ModelFamily::Llama => NativeResponse::Llama(serde_json::from_slice(body)?),
            ModelFamily::Nova => NativeResponse::Nova(serde_json::from_slice(body)?),
            ModelFamily::Titan => NativeResponse::Titan(serde_json::from_slice(body)?),
        })
    }

    /// The compact JSON body.
    pub fn to_vec(&self) -> Vec<u8> {
        // unwrap is safe because every member serializes to JSON infallibly.
        match self {
            NativeResponse::Anthropic(r) => serde_json::to_vec(r).unwrap(),
            NativeResponse::Llama(r) => serde_json::to_vec(r).unwrap(),
            NativeResponse::Nova(r) => serde_json::to_vec(r).unwrap(),
            NativeResponse::Titan(r) => serde_json::to_vec(r).unwrap(),
        }
    }

    /// The generated text.
    pub fn text(&self) -> String {
        match self {
            NativeResponse::Anthropic(r) => r.text(),
            NativeResponse::Llama(r) => r.generation.clone(),
            NativeResponse::Nova(r) => r.output.message.text(),
            NativeResponse::Titan(r) => r.text(),
        }
    }

    /// The family's stop reason, verbatim.
    pub fn stop_reason(&self) -> Option<String> {
        match self {
            NativeResponse::Anthropic(r) => r.stop_reason.clone(),
            NativeResponse::Llama(r) => r.stop_reason.clone(),
            NativeResponse::Nova(r) => Some(r.stop_reason.as_str().to_owned()),
            NativeResponse::Titan(r) => r.results.first().and_then(|r| r.completion_reason.clone()),
        }
    }

    /// Token counts from the body itself.
    pub fn usage(&self) -> Option<TokenUsage> {
        match self {
            NativeResponse::Anthropic(r) => Some(r.usage.to_usage()),
            NativeResponse::Llama(r) => r.usage(),
            NativeResponse::Nova(r) => Some(r.usage.to_usage()),
            NativeResponse::Titan(r) => Some(r.usage()),
        }
    }

    /// Text, stop reason and usage. Usage prefers the response headers: they
    /// are Bedrock's own count, uniform across families and carry cache
    /// counts Llama and Titan bodies lack; the body is the fallback.
    pub fn summarize(&self, headers: &ResponseHeaders) -> InvokeOutput {
        let (usage, usage_source) = match (headers.usage, self.usage()) {
            (Some(u), _) => (Some(u), Some(UsageSource::ResponseHeaders)),
            (None, Some(u)) => (Some(u), Some(UsageSource::NativeBody)),
            (None, None) => (None, None),
        };
        InvokeOutput {
            text: self.text(),
            stop_reason: self.stop_reason(),
            usage,
            usage_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = r#"{"generation":"ok","prompt_token_count":14,"generation_token_count":2,"stop_reason":"stop"}"#;

    #[test]
    fn summary_prefers_headers_then_body() {
        let r = NativeResponse::parse(ModelFamily::Llama, LLAMA.as_bytes()).unwrap();
        let out = r.summarize(&ResponseHeaders::default());
        assert_eq!(out.text, "ok");
        assert_eq!(out.stop_reason.as_deref(), Some("stop"));
        assert_eq!(out.usage_source, Some(UsageSource::NativeBody));
        assert_eq!(out.usage.unwrap().input_tokens, 14);
        let headers = ResponseHeaders {
            usage: Some(TokenUsage {
                input_tokens: 15,
                output_tokens: 2,
                ..TokenUsage::default()
            }),
            ..ResponseHeaders::default()
        };
        let out = r.summarize(&headers);
        assert_eq!(out.usage_source, Some(UsageSource::ResponseHeaders));
        assert_eq!(out.usage.unwrap().input_tokens, 15);
        assert_eq!(r.to_vec(), LLAMA.as_bytes());
        let bare = NativeResponse::parse(ModelFamily::Llama, br#"{"generation":""}"#).unwrap();
        assert_eq!(bare.summarize(&ResponseHeaders::default()).usage, None);
    }

    #[test]
    fn family_mismatch_is_an_error() {
        assert!(NativeResponse::parse(ModelFamily::Titan, LLAMA.as_bytes()).is_err());
        let err = NativeRequest::parse(ModelFamily::Anthropic, br#"{"prompt":"x"}"#).unwrap_err();
        assert_eq!(err.detail, "4 schema violations found");
    }
}
