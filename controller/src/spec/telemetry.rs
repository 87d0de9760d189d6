//! Validation of `[telemetry]`: where a run's trace and metrics go over
//! OTLP and how requests are sampled.
//!
//! ```toml
//! [telemetry]
//! endpoint = "http://localhost:4317"  # OTLP base URL (OTEL_EXPORTER_OTLP_ENDPOINT overrides)
//! protocol = "grpc"                   # or "http/protobuf" (OTEL_EXPORTER_OTLP_PROTOCOL overrides)
//! sample_ratio = 1.0                  # fraction of requests traced, 0 to 1 (default 1: all, under the cap)
//! keep_errors = true                  # always trace failed and throttled requests
//! max_spans_per_second = 100          # cap on request spans per second, whole run (0: none)
//! metrics = true                      # export the GenAI client metrics too
//! flush_timeout = "5s"                # how long the end of a run waits for the backend
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::validate::Checker;

/// `[telemetry]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    pub(crate) endpoint: Option<Spanned<String>>,
    pub(crate) protocol: Option<Spanned<String>>,
    pub(crate) sample_ratio: Option<Spanned<f64>>,
    pub(crate) keep_errors: Option<Spanned<bool>>,
    pub(crate) max_spans_per_second: Option<Spanned<i64>>,
    pub(crate) metrics: Option<Spanned<bool>>,
    pub(crate) flush_timeout: Option<Spanned<String>>,
}

/// `[telemetry]`, validated. Absent fields are `None`: the environment
/// (`OTEL_*`) or the defaults decide them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetrySpec {
    /// OTLP base URL.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    pub protocol: Option<String>,
    /// Fraction of requests traced.
    pub sample_ratio: Option<f64>,
    /// Always trace failed and throttled requests.
    pub keep_errors: Option<bool>,
    /// Cap on request spans per second over the whole run (0: none).
    pub max_spans_per_second: Option<u32>,
    /// Export metrics as well as traces.
    pub metrics: Option<bool>,
    /// How long the end of a run waits for the backend.
    pub flush_timeout: Option<Duration>,
}

/// The OTLP protocols Quarry exports with.
pub const PROTOCOLS: [&str; 2] = ["grpc", "http/protobuf"];

/// Validates `[telemetry]`.
pub(crate) fn validate_telemetry(c: &mut Checker, raw: &Spanned<RawTelemetry>) -> TelemetrySpec {
    let t = raw.get_ref();
    let endpoint = t.endpoint.as_ref().and_then(|e| {
        let text = e.get_ref().trim();
        match text.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {
                Some(text.trim_end_matches('/').to_owned())
            }
            _ => {
                c.error(
                    e,
                    "telemetry.endpoint",
                    format!("{text:?} is not an http:// or https:// URL"),
                );
                None
            }
        }
    });
    let protocol = t.protocol.as_ref().and_then(|p| {
        if PROTOCOLS.contains(&p.get_ref().as_str()) {
            Some(p.get_ref().clone())
        } else {
            c.error(
                p,
                "telemetry.protocol",
                format!("{:?}: expected \"grpc\" or \"http/protobuf\"", p.get_ref()),
            );
            None
        }
    });
    let sample_ratio = t.sample_ratio.as_ref().and_then(|r| {
        let v = *r.get_ref();
        if (0.0..=1.0).contains(&v) {
            Some(v)
        } else {
            c.error(
                r,
                "telemetry.sample_ratio",
                format!("must be 0 to 1, got {v}"),
            );
            None
        }
    });
    let max_spans_per_second = t.max_spans_per_second.as_ref().and_then(|m| {
        c.int_in(m, "telemetry.max_spans_per_second", 0, 1_000_000)
            .map(|n| n as u32)
    });
    let flush_timeout = t
        .flush_timeout
        .as_ref()
        .and_then(|d| c.duration(d, "telemetry.flush_timeout"));
    TelemetrySpec {
        endpoint,
        protocol,
        sample_ratio,
        keep_errors: t.keep_errors.as_ref().map(|k| *k.get_ref()),
        max_spans_per_second,
        metrics: t.metrics.as_ref().map(|m| *m.get_ref()),
        flush_timeout,
    }
}
