//! `quarry-bedrock`: the Amazon Bedrock Runtime wire protocol, for both sides of
//! the wire.
//!
//! The load agent builds, signs and sends requests and decodes responses with
//! it; the simulator verifies, parses and answers with it. Keeping both sides in
//! one crate means one definition of every shape, so the simulator cannot drift
//! from what the client expects. PROTOCOL.md (shipped in `docs/`) holds the facts
//! and their sources; each module cites the section it implements.
//!
//! Nothing here does I/O except credential resolution: callers own sockets,
//! clocks and retries.

pub mod cloudwatch;
mod error;
mod family;
mod framing;
mod operation;
pub mod quota;
mod usage;

// Endpoints, model ids, request and response bodies, response headers.
mod converse;
mod endpoint;
mod headers;
mod model_id;
mod native;

// Event streams: frames and typed events.
mod eventstream;
mod stream;

// SigV4 signing and verification, bearer keys, credentials.
pub mod auth;

pub use error::{
    ERROR_TYPE_HEADER, ERROR_TYPE_NAMESPACE, ErrorCode, Fault, MAX_ECHO_CHARS, Outcome, QuotaWall,
    Retry, ServiceError, bounded_echo, is_daily_quota_message, messages, sanitize_error_code,
};
pub use family::{GEO_PREFIXES, ModelFamily, base_model_id, geo_of_region, geo_prefix};
pub use framing::Framing;
pub use operation::{Operation, UnknownOperation};
pub use quota::{claude_version, output_burndown, reservation, settlement};
pub use usage::{TokenUsage, UsageSource};

// -- endpoints, model ids, bodies, headers (pub use block) --
pub use converse::{
    Blob, CacheDetail, CachePointBlock, CachePointType, CacheTtl, ContentBlock, ConverseMetrics,
    ConverseOutput, ConverseRequest, ConverseResponse, ConverseTokensRequest, ConverseUsage,
    CountTokensInput, CountTokensRequest, CountTokensResponse, DocumentBlock, DocumentSource,
    ImageBlock, InferenceConfiguration, InvokeModelTokensRequest, MediaSource, Message,
    PerformanceConfiguration, PerformanceLatency, Role, S3Location, ServiceTier, ServiceTierType,
    StopReason, SystemContentBlock, ToolResultBlock, ToolUseBlock,
};
pub use endpoint::{Endpoint, EndpointError, EndpointSettings};
pub use headers::{HeaderError, ResponseHeaders};
pub use model_id::{MAX_MODEL_ID_LEN, ModelId, ModelIdError, ModelIdKind};
pub use native::{
    ANTHROPIC_VERSION, AnthropicBlock, AnthropicCacheCreation, AnthropicContent, AnthropicMessage,
    AnthropicRequest, AnthropicResponse, AnthropicUsage, CacheControl, Exchange, InvokeOutput,
    LlamaRequest, LlamaResponse, MalformedInput, NOVA_SCHEMA_VERSION, NativeRequest,
    NativeResponse, NovaInferenceConfig, NovaRequest, NovaResponse, NovaUsage, Prompt,
    TitanGenerationConfig, TitanRequest, TitanResponse, TitanResult,
};
/// Bedrock HTTP header names (PROTOCOL.md §1.2, §2.5).
pub mod header_names {
    pub use crate::headers::{
        APPLICATION_JSON, BEDROCK_ACCEPT, BEDROCK_CONTENT_TYPE, CACHE_READ_INPUT_TOKEN_COUNT,
        CACHE_WRITE_INPUT_TOKEN_COUNT, GUARDRAIL_IDENTIFIER, GUARDRAIL_VERSION, INPUT_TOKEN_COUNT,
        INVOCATION_LATENCY, OUTPUT_TOKEN_COUNT, PERFORMANCE_CONFIG_LATENCY, REQUEST_ID,
        REQUEST_METADATA, SERVICE_TIER, TRACE,
    };
}

// -- event streams (pub use block) --
pub use eventstream::{
    EVENT_STREAM_CONTENT_TYPE, EncodeError, Frame, FrameDecoder, FrameError, FrameErrorKind,
    HeaderValue, Headers, MAX_FRAME_LEN, PendingStamp, WRITTEN_NS_HEADER, encode_frame,
    encode_frame_with,
};
pub use stream::{
    BlockDelta, BlockStart, ConverseStreamDecoder, ConverseStreamEvent, EventOrigin,
    InvocationMetrics, InvokeStreamDecoder, InvokeStreamEncoder, InvokeStreamEvent,
    PADDING_ALPHABET, StreamDecoder, StreamError, StreamMetadata, StreamStart, encode_exception,
    encode_service_exception, padding,
};
