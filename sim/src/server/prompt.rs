//! What the simulator needs from a request body: input tokens, the output
//! cap and the prompt-cache checkpoints, with Bedrock's validation errors
//! for the common mistakes (PROTOCOL.md §2, §4.3, §5.8).
//!
//! Input tokens are counted with [`count_tokens`] over every text the model
//! reads (system, messages, tool definitions), plus the family's message
//! framing ([`Framing`]) for message-shaped requests; non-text blocks
//! (images, documents, tool calls and results) count as their JSON. A checkpoint's
//! prefix is everything before it in the order Bedrock caches: tools, then
//! system, then messages.

use quarry_bedrock::{
    AnthropicBlock, AnthropicContent, CacheTtl as WireTtl, ContentBlock, ConverseRequest,
    ConverseTokensRequest, CountTokensInput, CountTokensRequest, Framing, Message, ModelFamily,
    NativeRequest, PerformanceLatency, Role, ServiceTierType, SystemContentBlock, messages,
};
use serde::Serialize;

use super::errors::WireError;
use crate::cache::{CachePoint, CacheTtl, prefix_hash};
use crate::catalog::ModelProfile;
use crate::text::count_tokens;

/// Most cache checkpoints one request may carry.
pub(crate) const MAX_CACHE_POINTS: usize = 4;

/// A request body, reduced to what admission and the answer need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PromptSummary {
    /// Every input token, cached prefixes included.
    pub(crate) input_tokens: u64,
    /// The output cap, when the request set one.
    pub(crate) max_tokens: Option<u64>,
    /// Cache checkpoints in request order.
    pub(crate) cache_points: Vec<CachePoint>,
    /// `performanceConfig.latency` / the header, echoed in the answer.
    pub(crate) latency_mode: Option<PerformanceLatency>,
    /// `serviceTier.type` / the header, echoed in the answer.
    pub(crate) service_tier: Option<ServiceTierType>,
}

/// Counts tokens and collects checkpoints while walking a prompt in order.
struct PromptWalk<'p> {
    profile: &'p ModelProfile,
    tokens: u64,
    /// The prefix bytes so far; kept only when the request has checkpoints.
    prefix: Option<Vec<u8>>,
    points: Vec<CachePoint>,
}

impl<'p> PromptWalk<'p> {
    fn new(profile: &'p ModelProfile, has_cache_points: bool) -> Self {
        PromptWalk {
            profile,
            tokens: 0,
            prefix: has_cache_points.then(Vec::new),
            points: Vec::new(),
        }
    }

    fn text(&mut self, text: &str) {
        self.tokens += count_tokens(text);
        if let Some(p) = &mut self.prefix {
            p.extend_from_slice(text.as_bytes());
            p.push(0);
        }
    }

    fn json<T: Serialize + ?Sized>(&mut self, value: &T) {
        // unwrap-free: a value that does not serialize counts as nothing.
        if let Ok(s) = serde_json::to_string(value) {
            self.text(&s);
        }
    }

    fn checkpoint(&mut self, ttl: Option<WireTtl>) -> Result<(), WireError> {
        if self.points.len() == MAX_CACHE_POINTS {
            return Err(WireError::validation(format!(
                "A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. Found {}.",
                MAX_CACHE_POINTS + 1
            )));
        }
        let ttl = match ttl {
            Some(WireTtl::OneHour) => {
                if !self.profile.cache.is_some_and(|c| c.ttl_1h) {
                    return Err(WireError::validation(format!(
                        "The model {} does not support a 1h time-to-live for cache points. Remove the ttl or use 5m and try again.",
                        self.profile.id
                    )));
                }
                CacheTtl::OneHour
            }
            _ => CacheTtl::FiveMinutes,
        };
        let prefix = self.prefix.as_deref().unwrap_or_default();
        self.points.push(CachePoint {
            prefix_hash: prefix_hash(prefix),
            prefix_tokens: self.tokens,
            ttl,
        });
        Ok(())
    }

    fn system(&mut self, blocks: &[SystemContentBlock]) -> Result<(), WireError> {
        for b in blocks {
            match b {
                SystemContentBlock::Text(t) => self.text(t),
                SystemContentBlock::CachePoint(c) => self.checkpoint(c.ttl)?,
                SystemContentBlock::Other { value, .. } => self.json(value),
            }
        }
        Ok(())
    }

    fn messages(&mut self, messages: &[Message]) -> Result<(), WireError> {
        for m in messages {
            for b in &m.content {
                match b {
                    ContentBlock::Text(t) => self.text(t),
                    ContentBlock::CachePoint(c) => self.checkpoint(c.ttl)?,
                    ContentBlock::Image(b) => self.json(b),
                    ContentBlock::Document(b) => self.json(b),
                    ContentBlock::ToolUse(b) => self.json(b),
                    ContentBlock::ToolResult(b) => self.json(b),
                    ContentBlock::Other { value, .. } => self.json(value),
                }
            }
        }
        Ok(())
    }

    fn anthropic(&mut self, content: &AnthropicContent) -> Result<(), WireError> {
        match content {
            AnthropicContent::Text(t) => self.text(t),
            AnthropicContent::Blocks(blocks) => {
                for b in blocks {
                    self.anthropic_block(b)?;
                }
            }
        }
        Ok(())
    }

    fn anthropic_block(&mut self, b: &AnthropicBlock) -> Result<(), WireError> {
        match &b.text {
            Some(t) => self.text(t),
            None => self.json(&b.rest),
        }
        if let Some(cc) = &b.cache_control {
            let ttl = match cc.ttl.as_deref() {
                Some("1h") => Some(WireTtl::OneHour),
                _ => None,
            };
            self.checkpoint(ttl)?;
        }
        Ok(())
    }

    /// Adds the template's framing of `messages` messages and a system
    /// prompt when `system`, after the content: outside every cached prefix.
    fn frame(&mut self, messages: usize, system: bool) {
        self.tokens += Framing::of(self.profile.family).tokens(messages, system);
    }

    fn finish(self, max_tokens: Option<u64>) -> PromptSummary {
        PromptSummary {
            input_tokens: self.tokens,
            max_tokens,
            cache_points: self.points,
            latency_mode: None,
            service_tier: None,
        }
    }
}

/// True when a Converse-shaped system list has content (not only cache points).
fn has_system(system: &[SystemContentBlock]) -> bool {
    system
        .iter()
        .any(|b| !matches!(b, SystemContentBlock::CachePoint(_)))
}

fn converse_has_cache_points(system: &[SystemContentBlock], messages: &[Message]) -> bool {
    system
        .iter()
        .any(|b| matches!(b, SystemContentBlock::CachePoint(_)))
        || messages.iter().any(|m| {
            m.content
                .iter()
                .any(|b| matches!(b, ContentBlock::CachePoint(_)))
        })
}

/// Bedrock's role rules for a conversation (PROTOCOL.md §4.3).
fn check_roles(messages: &[Message]) -> Result<(), WireError> {
    if messages.first().is_none_or(|m| m.role != Role::User) {
        return Err(WireError::validation(messages::MUST_START_WITH_USER));
    }
    if messages.windows(2).any(|w| w[0].role == w[1].role) {
        return Err(WireError::validation(messages::MUST_ALTERNATE));
    }
    Ok(())
}

/// A unit-interval sampling parameter.
fn check_unit(member: &str, v: Option<f32>) -> Result<(), WireError> {
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) => {
            let rule = if x < 0.0 {
                "have value greater than or equal to 0"
            } else {
                "have value less than or equal to 1"
            };
            Err(WireError::constraint(member, x, rule))
        }
        _ => Ok(()),
    }
}

/// Converse and ConverseStream bodies.
pub(crate) fn converse(profile: &ModelProfile, body: &[u8]) -> Result<PromptSummary, WireError> {
    let req: ConverseRequest = serde_json::from_slice(body).map_err(WireError::malformed)?;
    check_roles(&req.messages)?;
    let config = req.inference_config.as_ref();
    let max_tokens = config.and_then(|c| c.max_tokens);
    if max_tokens == Some(0) {
        return Err(WireError::constraint(
            "inferenceConfig.maxTokens",
            0,
            "have value greater than or equal to 1",
        ));
    }
    check_unit(
        "inferenceConfig.temperature",
        config.and_then(|c| c.temperature),
    )?;
    check_unit("inferenceConfig.topP", config.and_then(|c| c.top_p))?;
    let mut walk = PromptWalk::new(
        profile,
        converse_has_cache_points(&req.system, &req.messages),
    );
    if let Some(tools) = &req.tool_config {
        walk.json(tools);
    }
    walk.system(&req.system)?;
    walk.messages(&req.messages)?;
    walk.frame(req.messages.len(), has_system(&req.system));
    let mut summary = walk.finish(max_tokens.map(u64::from));
    summary.latency_mode = req.performance_config.and_then(|p| p.latency);
    summary.service_tier = req.service_tier.map(|t| t.kind);
    Ok(summary)
}

/// The wire name of a latency mode (header and body spelling).
pub(crate) fn latency_name(l: PerformanceLatency) -> &'static str {
    match l {
        PerformanceLatency::Standard => "standard",
        PerformanceLatency::Optimized => "optimized",
    }
}

/// InvokeModel's `X-Amzn-Bedrock-PerformanceConfig-Latency` and
/// `X-Amzn-Bedrock-Service-Tier` request headers (unknown values ignored).
pub(crate) fn invoke_headers(summary: &mut PromptSummary, headers: &http::HeaderMap) {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    summary.latency_mode =
        get(quarry_bedrock::header_names::PERFORMANCE_CONFIG_LATENCY).and_then(|v| {
            [PerformanceLatency::Standard, PerformanceLatency::Optimized]
                .into_iter()
                .find(|l| latency_name(*l) == v)
        });
    summary.service_tier =
        get(quarry_bedrock::header_names::SERVICE_TIER).and_then(ServiceTierType::parse);
}

/// InvokeModel and InvokeModelWithResponseStream bodies of the model's family.
pub(crate) fn native(profile: &ModelProfile, body: &[u8]) -> Result<PromptSummary, WireError> {
    let req = NativeRequest::parse(profile.family, body)?;
    summarize_native(profile, &req)
}

fn summarize_native(
    profile: &ModelProfile,
    req: &NativeRequest,
) -> Result<PromptSummary, WireError> {
    let max_tokens = req.max_tokens().map(u64::from);
    match req {
        NativeRequest::Anthropic(r) => {
            if r.messages.first().is_none_or(|m| m.role != Role::User) {
                return Err(WireError::validation(messages::MUST_START_WITH_USER));
            }
            let has_points = anthropic_has_cache_points(r.system.as_ref())
                || r.messages
                    .iter()
                    .any(|m| anthropic_has_cache_points(Some(&m.content)));
            let mut walk = PromptWalk::new(profile, has_points);
            if let Some(tools) = &r.tools {
                walk.json(tools);
            }
            if let Some(system) = &r.system {
                walk.anthropic(system)?;
            }
            for m in &r.messages {
                walk.anthropic(&m.content)?;
            }
            let system = match &r.system {
                Some(AnthropicContent::Text(t)) => !t.is_empty(),
                Some(AnthropicContent::Blocks(b)) => !b.is_empty(),
                None => false,
            };
            walk.frame(r.messages.len(), system);
            Ok(walk.finish(max_tokens))
        }
        NativeRequest::Nova(r) => {
            let mut walk =
                PromptWalk::new(profile, converse_has_cache_points(&r.system, &r.messages));
            if let Some(tools) = &r.tool_config {
                walk.json(tools);
            }
            walk.system(&r.system)?;
            walk.messages(&r.messages)?;
            walk.frame(r.messages.len(), has_system(&r.system));
            Ok(walk.finish(max_tokens))
        }
        NativeRequest::Llama(r) => {
            let mut walk = PromptWalk::new(profile, false);
            walk.text(&r.prompt);
            Ok(walk.finish(max_tokens))
        }
        NativeRequest::Titan(r) => {
            let mut walk = PromptWalk::new(profile, false);
            walk.text(&r.input_text);
            Ok(walk.finish(max_tokens))
        }
    }
}

fn anthropic_has_cache_points(content: Option<&AnthropicContent>) -> bool {
    matches!(content, Some(AnthropicContent::Blocks(b)) if b.iter().any(|b| b.cache_control.is_some()))
}

/// CountTokens: the input tokens either request shape would use.
pub(crate) fn count_tokens_request(profile: &ModelProfile, body: &[u8]) -> Result<u64, WireError> {
    let req: CountTokensRequest = serde_json::from_slice(body).map_err(WireError::malformed)?;
    match req.input {
        CountTokensInput::Converse(c) => converse_tokens(profile, &c),
        CountTokensInput::InvokeModel(i) => {
            let native = NativeRequest::parse(profile.family, &i.body.0)?;
            Ok(summarize_native(profile, &native)?.input_tokens)
        }
    }
}

fn converse_tokens(profile: &ModelProfile, c: &ConverseTokensRequest) -> Result<u64, WireError> {
    let mut walk = PromptWalk::new(profile, false);
    if let Some(tools) = &c.tool_config {
        walk.json(tools);
    }
    walk.system(&c.system)?;
    walk.messages(&c.messages)?;
    walk.frame(c.messages.len(), has_system(&c.system));
    Ok(walk.tokens)
}

/// The family's own spelling of a stop reason.
pub(crate) fn native_stop_reason(
    family: ModelFamily,
    stop: crate::text::StopReason,
) -> &'static str {
    use crate::text::StopReason as S;
    match (family, stop) {
        (ModelFamily::Anthropic | ModelFamily::Nova, s) => s.as_str(),
        (ModelFamily::Llama, S::EndTurn) => "stop",
        (ModelFamily::Llama, S::MaxTokens) => "length",
        (ModelFamily::Titan, S::EndTurn) => "FINISH",
        (ModelFamily::Titan, S::MaxTokens) => "LENGTH",
    }
}
