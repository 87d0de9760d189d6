//! Bedrock-specific HTTP header names, and the response headers InvokeModel
//! carries outside the service model: request id, token counts and invocation
//! latency (PROTOCOL.md §1.2, §2.5).

use http::{HeaderMap, HeaderValue};

use crate::TokenUsage;

/// The request id every response carries.
pub const REQUEST_ID: &str = "x-amzn-RequestId";
/// Billed input tokens (cache reads and writes excluded).
pub const INPUT_TOKEN_COUNT: &str = "X-Amzn-Bedrock-Input-Token-Count";
/// Output tokens.
pub const OUTPUT_TOKEN_COUNT: &str = "X-Amzn-Bedrock-Output-Token-Count";
/// Server-side latency in milliseconds.
pub const INVOCATION_LATENCY: &str = "X-Amzn-Bedrock-Invocation-Latency";
/// Prompt-cache read tokens.
pub const CACHE_READ_INPUT_TOKEN_COUNT: &str = "X-Amzn-Bedrock-Cache-Read-Input-Token-Count";
/// Prompt-cache write tokens.
pub const CACHE_WRITE_INPUT_TOKEN_COUNT: &str = "X-Amzn-Bedrock-Cache-Write-Input-Token-Count";
/// InvokeModelWithResponseStream: the MIME type of the inner chunks.
pub const BEDROCK_CONTENT_TYPE: &str = "X-Amzn-Bedrock-Content-Type";
/// Requested (request) or used (response) latency mode.
pub const PERFORMANCE_CONFIG_LATENCY: &str = "X-Amzn-Bedrock-PerformanceConfig-Latency";
/// Requested (request) or used (response) service tier.
pub const SERVICE_TIER: &str = "X-Amzn-Bedrock-Service-Tier";
/// InvokeModelWithResponseStream's `accept` (plain `Accept` on InvokeModel).
pub const BEDROCK_ACCEPT: &str = "X-Amzn-Bedrock-Accept";
/// `ENABLED | DISABLED | ENABLED_FULL` guardrail trace.
pub const TRACE: &str = "X-Amzn-Bedrock-Trace";
/// Guardrail to apply.
pub const GUARDRAIL_IDENTIFIER: &str = "X-Amzn-Bedrock-GuardrailIdentifier";
/// Guardrail version (`[1-9][0-9]{0,7}` or `DRAFT`).
pub const GUARDRAIL_VERSION: &str = "X-Amzn-Bedrock-GuardrailVersion";
/// Invocation-log metadata, a JSON string of at most 8500 characters.
pub const REQUEST_METADATA: &str = "X-Amzn-Bedrock-Request-Metadata";
/// The media type of every Converse/CountTokens body.
pub const APPLICATION_JSON: &str = "application/json";

/// A header that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A count or latency header that is not a non-negative integer.
    #[error("response header {header}: expected a non-negative integer, got {value:?}")]
    MalformedNumber {
        /// The header's name.
        header: &'static str,
        /// The value received (lossy if not ASCII).
        value: String,
    },
    /// A header value with bytes that are not visible ASCII.
    #[error("header {header}: value is not visible ASCII")]
    NotAscii {
        /// The header's name.
        header: &'static str,
    },
}

/// What Quarry reads from (and the simulator writes to) response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    /// `x-amzn-RequestId`.
    pub request_id: Option<String>,
    /// Token counts from the `X-Amzn-Bedrock-*-Token-Count` headers; `Some`
    /// when the input or output count is present (absent cache counts are 0).
    pub usage: Option<TokenUsage>,
    /// `X-Amzn-Bedrock-Invocation-Latency`, in milliseconds.
    pub invocation_latency_ms: Option<u64>,
    /// `X-Amzn-Bedrock-Content-Type` (streams only).
    pub bedrock_content_type: Option<String>,
    /// `X-Amzn-Bedrock-PerformanceConfig-Latency`, verbatim.
    pub performance_config_latency: Option<String>,
    /// `X-Amzn-Bedrock-Service-Tier`, verbatim.
    pub service_tier: Option<String>,
}

fn text<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, HeaderError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| HeaderError::NotAscii { header: name })
        })
        .transpose()
}

fn number(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, HeaderError> {
    let Some(raw) = text(headers, name)? else {
        return Ok(None);
    };
    let trimmed = raw.trim();
    // u64::from_str accepts a leading '+', which no server sends.
    if trimmed.starts_with('+') {
        return Err(HeaderError::MalformedNumber {
            header: name,
            value: raw.to_owned(),
        });
    }
    trimmed
        .parse()
        .map(Some)
        .map_err(|_| HeaderError::MalformedNumber {
            header: name,
            value: raw.to_owned(),
        })
}

impl ResponseHeaders {
    /// Reads the headers; missing ones are `None`, malformed ones an error
    /// naming the header. Names match in any letter case.
    pub fn parse(headers: &HeaderMap) -> Result<Self, HeaderError> {
        let input = number(headers, INPUT_TOKEN_COUNT)?;
        let output = number(headers, OUTPUT_TOKEN_COUNT)?;
        let cache_read = number(headers, CACHE_READ_INPUT_TOKEN_COUNT)?;
        let cache_write = number(headers, CACHE_WRITE_INPUT_TOKEN_COUNT)?;
        let usage = (input.is_some() || output.is_some()).then(|| TokenUsage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cache_read_input_tokens: cache_read.unwrap_or(0),
            cache_write_input_tokens: cache_write.unwrap_or(0),
        });
        let owned = |name| text(headers, name).map(|v| v.map(str::to_owned));
        Ok(ResponseHeaders {
            request_id: owned(REQUEST_ID)?,
            usage,
            invocation_latency_ms: number(headers, INVOCATION_LATENCY)?,
            bedrock_content_type: owned(BEDROCK_CONTENT_TYPE)?,
            performance_config_latency: owned(PERFORMANCE_CONFIG_LATENCY)?,
            service_tier: owned(SERVICE_TIER)?,
        })
    }

    /// Writes every present field as Bedrock does (all four token counts when
    /// usage is set), replacing existing values.
    pub fn write_to(&self, headers: &mut HeaderMap) -> Result<(), HeaderError> {
        let put = |headers: &mut HeaderMap, name: &'static str, value: &str| {
            let value =
                HeaderValue::from_str(value).map_err(|_| HeaderError::NotAscii { header: name })?;
            headers.insert(name, value);
            Ok(())
        };
        if let Some(id) = &self.request_id {
            put(headers, REQUEST_ID, id)?;
        }
        if let Some(u) = &self.usage {
            for (name, n) in [
                (INPUT_TOKEN_COUNT, u.input_tokens),
                (OUTPUT_TOKEN_COUNT, u.output_tokens),
                (CACHE_READ_INPUT_TOKEN_COUNT, u.cache_read_input_tokens),
                (CACHE_WRITE_INPUT_TOKEN_COUNT, u.cache_write_input_tokens),
            ] {
                headers.insert(name, HeaderValue::from(n));
            }
        }
        if let Some(ms) = self.invocation_latency_ms {
            headers.insert(INVOCATION_LATENCY, HeaderValue::from(ms));
        }
        for (name, value) in [
            (BEDROCK_CONTENT_TYPE, &self.bedrock_content_type),
            (PERFORMANCE_CONFIG_LATENCY, &self.performance_config_latency),
            (SERVICE_TIER, &self.service_tier),
        ] {
            if let Some(v) = value {
                put(headers, name, v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_invoke_model_headers_in_any_case() {
        let h = map(&[
            ("x-amzn-requestid", "ca47a5ce-e260-4824-aa0e-2e62669d5d6e"),
            ("x-amzn-bedrock-input-token-count", "14"),
            ("X-AMZN-BEDROCK-OUTPUT-TOKEN-COUNT", "36"),
            ("x-amzn-bedrock-invocation-latency", " 926 "),
            ("x-amzn-bedrock-cache-read-input-token-count", "7"),
        ]);
        let r = ResponseHeaders::parse(&h).unwrap();
        assert_eq!(
            r.request_id.as_deref(),
            Some("ca47a5ce-e260-4824-aa0e-2e62669d5d6e")
        );
        assert_eq!(
            r.usage,
            Some(TokenUsage {
                input_tokens: 14,
                output_tokens: 36,
                cache_read_input_tokens: 7,
                cache_write_input_tokens: 0
            })
        );
        assert_eq!(r.invocation_latency_ms, Some(926));
    }

    #[test]
    fn missing_headers_are_none() {
        let r = ResponseHeaders::parse(&HeaderMap::new()).unwrap();
        assert_eq!(r, ResponseHeaders::default());
        // Cache counts alone (no input/output) do not make a usage.
        let r = ResponseHeaders::parse(&map(&[(CACHE_READ_INPUT_TOKEN_COUNT, "3")])).unwrap();
        assert_eq!(r.usage, None);
    }

    #[test]
    fn malformed_numbers_name_the_header() {
        for bad in ["-1", "1.5", "", "abc", "+3", "99999999999999999999"] {
            let err = ResponseHeaders::parse(&map(&[(OUTPUT_TOKEN_COUNT, bad)])).unwrap_err();
            assert_eq!(
                err,
                HeaderError::MalformedNumber {
                    header: OUTPUT_TOKEN_COUNT,
                    value: bad.to_owned()
                }
            );
            assert!(
                err.to_string()
                    .contains("X-Amzn-Bedrock-Output-Token-Count")
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            INVOCATION_LATENCY,
            HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert_eq!(
            ResponseHeaders::parse(&h),
            Err(HeaderError::NotAscii {
                header: INVOCATION_LATENCY
            })
        );
    }

    #[test]
    fn write_then_parse_round_trips() {
        let r = ResponseHeaders {
            request_id: Some("id-1".to_owned()),
            usage: Some(TokenUsage {
                input_tokens: 1,
                output_tokens: 2,
                cache_read_input_tokens: 3,
                cache_write_input_tokens: 4,
            }),
            invocation_latency_ms: Some(5),
            bedrock_content_type: Some(APPLICATION_JSON.to_owned()),
            performance_config_latency: Some("optimized".to_owned()),
            service_tier: Some("priority".to_owned()),
        };
        let mut h = HeaderMap::new();
        r.write_to(&mut h).unwrap();
        assert_eq!(h.len(), 9);
        assert_eq!(ResponseHeaders::parse(&h).unwrap(), r);
        let bad = ResponseHeaders {
            request_id: Some("a\nb".to_owned()),
            ..Default::default()
        };
        assert_eq!(
            bad.write_to(&mut h),
            Err(HeaderError::NotAscii { header: REQUEST_ID })
        );
    }
}
