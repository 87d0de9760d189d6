//! Unary answers: Converse (Converse JSON), InvokeModel (the family's native
//! JSON plus the `X-Amzn-Bedrock-*` token and latency headers, §2.5) and
//! CountTokens. The whole answer is generated (taking the modelled time),
//! then sent as one buffer.

use bytes::Bytes;
use http::Response;
use quarry_bedrock::Fault;
use quarry_bedrock::header_names::APPLICATION_JSON;
use quarry_bedrock::{
    AnthropicBlock, AnthropicCacheCreation, AnthropicResponse, AnthropicUsage, ContentBlock,
    ConverseMetrics, ConverseOutput, ConverseResponse, ConverseUsage, CountTokensResponse,
    LlamaResponse, Message, ModelFamily, NativeResponse, NovaResponse, NovaUsage,
    PerformanceConfiguration, ResponseHeaders, Role, ServiceTier, StopReason as WireStop,
    TitanResponse, TitanResult,
};

use super::body::{ConnectionReset, SimBody};
use super::context::{Admitted, Shared, response};
use super::errors::WireError;
use super::prompt::{latency_name, native_stop_reason};
use crate::cache::CacheTtl;
use crate::cloudwatch::CloudWatchEvent;
use crate::runtime::{Completion, Step};
use crate::text::StopReason;

/// Room for a Converse answer's JSON around its text (usage, metrics,
/// stop reason, the optional echoes).
const CONVERSE_ENVELOPE_BYTES: usize = 384;

/// `{"inputTokens": n}`.
pub(crate) fn count_tokens(shared: &Shared, tokens: u64) -> Response<SimBody> {
    let body = serde_json::to_vec(&CountTokensResponse {
        input_tokens: tokens,
    })
    .unwrap_or_default();
    response(
        shared,
        &uuid::Uuid::new_v4().to_string(),
        APPLICATION_JSON,
        SimBody::full(Bytes::from(body)),
    )
}

/// Converse or InvokeModel, after admission.
pub(crate) async fn answer(a: Admitted<'_>) -> Result<Response<SimBody>, ConnectionReset> {
    let Admitted {
        shared,
        operation,
        model_id,
        model,
        prompt,
        mut ticket,
        ..
    } = a;
    ticket.before_headers().await;
    let (text, end) = ticket.collect().await;
    let request_id = ticket.request_id().to_string();
    let served_tier = ticket.served_tier();
    let done = ticket.finish();
    let burndown = model.profile.burndown;
    let record = |event| {
        shared
            .sim
            .cloudwatch()
            .record((shared.clock)(), &model_id, event);
    };
    let failed = |server| CloudWatchEvent::Failed {
        usage: done.usage,
        burndown,
        server,
    };
    match end {
        Step::Exception(e) => {
            record(failed(e.code.fault() == Fault::Server));
            return Ok(WireError::from(e).into_response(&request_id, shared.date()));
        }
        Step::Reset => {
            record(failed(true));
            return Err(ConnectionReset);
        }
        Step::Done(_) | Step::Token(_) => {}
    }
    let latency_ms = u64::try_from(done.latency.as_millis()).unwrap_or(u64::MAX);
    record(CloudWatchEvent::Success {
        usage: done.usage,
        burndown,
        latency_ms,
        ttft_ms: None,
    });
    if operation == quarry_bedrock::Operation::Converse {
        // Sized once: growing from serde_json's default copied the body
        // three times (memcpy was a top entry of the profile).
        let mut buf = Vec::with_capacity(text.len() + CONVERSE_ENVELOPE_BYTES);
        let body = ConverseResponse {
            output: ConverseOutput {
                message: Message {
                    role: Role::Assistant,
                    content: vec![ContentBlock::Text(text)],
                },
            },
            stop_reason: wire_stop(done.stop_reason),
            usage: ConverseUsage::from_usage(&done.usage),
            metrics: ConverseMetrics { latency_ms },
            additional_model_response_fields: None,
            trace: None,
            performance_config: prompt
                .latency_mode
                .map(|l| PerformanceConfiguration { latency: Some(l) }),
            service_tier: served_tier.map(|kind| ServiceTier { kind }),
        };
        // unwrap-free: serializing these plain structs into a Vec cannot
        // fail; an empty body would be the answer if it somehow did.
        if serde_json::to_writer(&mut buf, &body).is_err() {
            buf.clear();
        }
        return Ok(response(
            shared,
            &request_id,
            APPLICATION_JSON,
            SimBody::full(Bytes::from(buf)),
        ));
    }
    let native = NativeAnswer {
        family: model.profile.family,
        model_id: &model.profile.id,
        request_id: &request_id,
        text,
        done: &done,
        one_hour_writes: prompt
            .cache_points
            .last()
            .is_some_and(|p| p.ttl == CacheTtl::OneHour),
    };
    let body = native.body().to_vec();
    let mut r = response(
        shared,
        &request_id,
        APPLICATION_JSON,
        SimBody::full(Bytes::from(body)),
    );
    let headers = ResponseHeaders {
        request_id: Some(request_id.clone()),
        usage: Some(done.usage),
        invocation_latency_ms: Some(latency_ms),
        bedrock_content_type: None,
        performance_config_latency: prompt.latency_mode.map(|l| latency_name(l).to_owned()),
        service_tier: served_tier.map(|t| t.as_str().to_owned()),
    };
    // Every value written is ASCII (numbers, a UUID, fixed names).
    let _ = headers.write_to(r.headers_mut());
    Ok(r)
}

/// The Converse stop reason for the simulator's.
pub(crate) fn wire_stop(stop: StopReason) -> WireStop {
    match stop {
        StopReason::EndTurn => WireStop::EndTurn,
        StopReason::MaxTokens => WireStop::MaxTokens,
    }
}

/// Anthropic's model name inside its bodies: `claude-sonnet-4-5-20250929`
/// for `anthropic.claude-sonnet-4-5-20250929-v1:0`.
pub(crate) fn anthropic_model_name(model_id: &str) -> &str {
    let name = model_id.strip_prefix("anthropic.").unwrap_or(model_id);
    let name = name.rsplit_once(':').map_or(name, |(n, _)| n);
    match name.rsplit_once("-v") {
        Some((n, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => name,
    }
}

/// Anthropic's message id (`msg_bdrk_` and 24 base-62 characters), derived
/// from the request id so it follows the seed.
pub(crate) fn anthropic_message_id(request_id: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = uuid::Uuid::parse_str(request_id).map_or(0, |u| u.as_u128());
    let mut id = String::with_capacity(33);
    id.push_str("msg_bdrk_");
    for _ in 0..24 {
        id.push(char::from(ALPHABET[(x % 62) as usize]));
        x /= 62;
        if x == 0 {
            x = u128::from(id.len() as u64) * 0x9E37_79B9_7F4A_7C15;
        }
    }
    id
}

/// An InvokeModel answer in the family's native shape.
struct NativeAnswer<'a> {
    family: ModelFamily,
    model_id: &'a str,
    request_id: &'a str,
    text: String,
    done: &'a Completion,
    one_hour_writes: bool,
}

impl NativeAnswer<'_> {
    fn body(self) -> NativeResponse {
        let u = self.done.usage;
        let stop = native_stop_reason(self.family, self.done.stop_reason);
        match self.family {
            ModelFamily::Anthropic => {
                let (five, hour) = if self.one_hour_writes {
                    (0, u.cache_write_input_tokens)
                } else {
                    (u.cache_write_input_tokens, 0)
                };
                NativeResponse::Anthropic(AnthropicResponse {
                    id: anthropic_message_id(self.request_id),
                    kind: "message".to_owned(),
                    role: Role::Assistant,
                    model: anthropic_model_name(self.model_id).to_owned(),
                    content: vec![AnthropicBlock::text(self.text)],
                    stop_reason: Some(stop.to_owned()),
                    stop_sequence: None,
                    usage: AnthropicUsage {
                        input_tokens: u.input_tokens,
                        cache_creation_input_tokens: Some(u.cache_write_input_tokens),
                        cache_read_input_tokens: Some(u.cache_read_input_tokens),
                        cache_creation: Some(AnthropicCacheCreation {
                            ephemeral_5m_input_tokens: five,
                            ephemeral_1h_input_tokens: hour,
                        }),
                        output_tokens: u.output_tokens,
                    },
                })
            }
            ModelFamily::Llama => NativeResponse::Llama(LlamaResponse {
                generation: self.text,
                prompt_token_count: Some(u.input_tokens),
                generation_token_count: Some(u.output_tokens),
                stop_reason: Some(stop.to_owned()),
            }),
            ModelFamily::Nova => NativeResponse::Nova(NovaResponse {
                output: ConverseOutput {
                    message: Message {
                        role: Role::Assistant,
                        content: vec![ContentBlock::Text(self.text)],
                    },
                },
                stop_reason: wire_stop(self.done.stop_reason),
                usage: NovaUsage::from_usage(&u),
            }),
            ModelFamily::Titan => NativeResponse::Titan(TitanResponse {
                input_text_token_count: u.input_tokens,
                results: vec![TitanResult {
                    token_count: u.output_tokens,
                    output_text: self.text,
                    completion_reason: Some(stop.to_owned()),
                }],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_model_names() {
        assert_eq!(
            anthropic_model_name("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(
            anthropic_model_name("anthropic.claude-opus-4-6-v1"),
            "claude-opus-4-6"
        );
        assert_eq!(
            anthropic_model_name("anthropic.claude-sonnet-4-6"),
            "claude-sonnet-4-6"
        );
    }

    #[test]
    fn message_ids_are_stable_and_shaped() {
        let id = "ca47a5ce-e260-4824-aa0e-2e62669d5d6e";
        let a = anthropic_message_id(id);
        assert_eq!(a, anthropic_message_id(id));
        assert!(a.starts_with("msg_bdrk_"));
        assert_eq!(a.len(), 33);
        assert!(a[9..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
