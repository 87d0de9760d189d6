//! Token usage as the service reports it, and where each count came from.

use serde::{Deserialize, Serialize};

/// Token counts for one request, in the Converse vocabulary.
///
/// `input_tokens` excludes cached tokens, as Bedrock reports it (PROTOCOL.md §5.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input tokens billed at the input price (cache reads and writes excluded).
    pub input_tokens: u64,
    /// Output tokens generated.
    pub output_tokens: u64,
    /// Input tokens served from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
}

impl TokenUsage {
    /// Every input token the model read: billed, cache-read and cache-written.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens
    }

    /// `inputTokens + outputTokens`, what Converse reports as `totalTokens`.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Adds another request's usage to this one.
    pub fn accumulate(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
    }
}

/// Where a token count came from. Reports keep this beside every count, because
/// a client-side estimate is not the number the bill or the quota uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// Converse `usage` or ConverseStream `metadata.usage`.
    ConverseUsage,
    /// The `X-Amzn-Bedrock-*-Token-Count` headers of InvokeModel.
    ResponseHeaders,
    /// `amazon-bedrock-invocationMetrics` on the last InvokeModelWithResponseStream chunk.
    InvocationMetrics,
    /// The provider-native body (`usage`, `prompt_token_count`, ...).
    NativeBody,
    /// No server count was available: estimated by the client.
    ClientEstimate,
}

impl UsageSource {
    /// Every provenance, in the order counters keep them.
    pub const ALL: [UsageSource; 5] = [
        UsageSource::ConverseUsage,
        UsageSource::ResponseHeaders,
        UsageSource::InvocationMetrics,
        UsageSource::NativeBody,
        UsageSource::ClientEstimate,
    ];

    /// The snake_case name used in results files (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::ConverseUsage => "converse_usage",
            UsageSource::ResponseHeaders => "response_headers",
            UsageSource::InvocationMetrics => "invocation_metrics",
            UsageSource::NativeBody => "native_body",
            UsageSource::ClientEstimate => "client_estimate",
        }
    }
}
