//! Where telemetry goes and how it is sampled: the CLI's `--otlp-endpoint`,
//! the standard `OTEL_*` environment and the spec's `[telemetry]`, in that
//! order of precedence (a flag beats the environment, which beats the
//! checked-in spec, so one spec serves every environment).

use std::time::Duration;

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use quarry_engine::trace::TraceSampling;

use crate::spec::TelemetrySpec;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    HttpProtobuf,
}

impl Protocol {
    fn parse(text: &str, source: &str) -> Result<Self, TelemetryError> {
        match text.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(TelemetryError::Setting {
                setting: source.to_owned(),
                detail: format!("{other:?}: expected \"grpc\" or \"http/protobuf\""),
            }),
        }
    }

    /// The name as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting is invalid.
    #[error("{setting}: {detail}")]
    Setting {
        /// The flag, variable or spec field.
        setting: String,
        /// What is wrong.
        detail: String,
    },
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter for {endpoint}: {detail}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// Why.
        detail: String,
    },
}

/// How a run exports its telemetry.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP base URL (`/v1/traces` and `/v1/metrics` are appended for HTTP).
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// Request sampling for the whole run (the cap is divided among shares).
    pub sampling: TraceSampling,
    /// Export metrics too.
    pub metrics: bool,
    /// How long the end of the run waits for outstanding exports.
    pub flush_timeout: Duration,
    /// How long one export call may take.
    pub export_timeout: Duration,
}

/// One exporter builder's transport, endpoint and timeout from a config:
/// the span and metric builders are different types with the same methods.
macro_rules! otlp_exporter {
    ($config:expr, $builder:expr, $signal:literal) => {{
        let config = $config;
        let url = config.signal_url($signal);
        match config.protocol {
            Protocol::Grpc => $builder
                .with_tonic()
                .with_endpoint(url)
                .with_timeout(config.export_timeout)
                .build(),
            Protocol::HttpProtobuf => $builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(config.export_timeout)
                .build(),
        }
        .map_err(|e| config.exporter_error(e))
    }};
}

impl TelemetryConfig {
    /// The configuration from `--otlp-endpoint` (`cli`), the environment
    /// (`env` looks a variable up) and `[telemetry]`; `None` when none of
    /// them asks for telemetry.
    pub fn resolve(
        cli_endpoint: Option<&str>,
        spec: Option<&TelemetrySpec>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, TelemetryError> {
        let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let env_endpoint = env_nonempty("OTEL_EXPORTER_OTLP_ENDPOINT");
        let spec_endpoint = spec.and_then(|s| s.endpoint.clone());
        if cli_endpoint.is_none() && env_endpoint.is_none() && spec.is_none() {
            return Ok(None);
        }
        let protocol = match env_nonempty("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(p) => Protocol::parse(&p, "OTEL_EXPORTER_OTLP_PROTOCOL")?,
            None => match spec.and_then(|s| s.protocol.as_deref()) {
                Some(p) => Protocol::parse(p, "telemetry.protocol")?,
                None => Protocol::Grpc,
            },
        };
        let (endpoint, source) = match (cli_endpoint, env_endpoint, spec_endpoint) {
            (Some(e), _, _) => (e.to_owned(), "--otlp-endpoint"),
            (None, Some(e), _) => (e, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (None, None, Some(e)) => (e, "telemetry.endpoint"),
            (None, None, None) => (protocol.default_endpoint().to_owned(), "default"),
        };
        let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
        match endpoint.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {}
            _ => {
                return Err(TelemetryError::Setting {
                    setting: source.to_owned(),
                    detail: format!("{endpoint:?} is not an http:// or https:// URL"),
                });
            }
        }
        let export_timeout = match env_nonempty("OTEL_EXPORTER_OTLP_TIMEOUT") {
            Some(ms) => {
                Duration::from_millis(ms.trim().parse().map_err(|_| TelemetryError::Setting {
                    setting: "OTEL_EXPORTER_OTLP_TIMEOUT".to_owned(),
                    detail: format!("{ms:?} is not a number of milliseconds"),
                })?)
            }
            None => Duration::from_secs(10),
        };
        let defaults = TraceSampling::default();
        Ok(Some(TelemetryConfig {
            endpoint,
            protocol,
            sampling: TraceSampling {
                ratio: spec.and_then(|s| s.sample_ratio).unwrap_or(defaults.ratio),
                keep_errors: spec
                    .and_then(|s| s.keep_errors)
                    .unwrap_or(defaults.keep_errors),
                max_per_second: spec
                    .and_then(|s| s.max_spans_per_second)
                    .unwrap_or(defaults.max_per_second),
            },
            metrics: spec.and_then(|s| s.metrics).unwrap_or(true),
            flush_timeout: spec
                .and_then(|s| s.flush_timeout)
                .unwrap_or(Duration::from_secs(5)),
            export_timeout,
        }))
    }

    /// Share `k` of `n`'s sampling: the run's ratio and error rule, and its
    /// part of the per-second cap (rounded up, so a small cap is not zero).
    pub fn share_sampling(&self, n: usize) -> TraceSampling {
        let cap = self.sampling.max_per_second;
        TraceSampling {
            max_per_second: if cap == 0 {
                0
            } else {
                cap.div_ceil(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
            },
            ..self.sampling
        }
    }

    /// The resource every span and metric carries: `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` as the SDK reads them, with
    /// `service.name = quarry` unless those set one.
    pub fn resource(&self) -> Resource {
        let detected = Resource::builder().build();
        let named = detected
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
        let builder = Resource::builder();
        let builder = if named {
            builder
        } else {
            builder.with_service_name("quarry")
        };
        builder
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build()
    }

    fn signal_url(&self, signal: &str) -> String {
        match self.protocol {
            Protocol::Grpc => self.endpoint.clone(),
            Protocol::HttpProtobuf => format!("{}/v1/{signal}", self.endpoint),
        }
    }

    fn exporter_error(&self, e: impl std::fmt::Display) -> TelemetryError {
        TelemetryError::Exporter {
            endpoint: self.endpoint.clone(),
            detail: e.to_string(),
        }
    }

    /// The OTLP span exporter (headers from `OTEL_EXPORTER_OTLP_HEADERS`).
    pub(crate) fn span_exporter(&self) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
        otlp_exporter!(self, opentelemetry_otlp::SpanExporter::builder(), "traces")
    }

    /// The OTLP metric exporter.
    pub(crate) fn metric_exporter(
        &self,
    ) -> Result<opentelemetry_otlp::MetricExporter, TelemetryError> {
        otlp_exporter!(
            self,
            opentelemetry_otlp::MetricExporter::builder(),
            "metrics"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn nothing_asked_means_no_telemetry() {
        assert_eq!(
            TelemetryConfig::resolve(None, None, env(&[])).unwrap(),
            None
        );
    }

    #[test]
    fn flag_beats_environment_beats_spec() {
        let spec = TelemetrySpec {
            endpoint: Some("http://spec:4317".into()),
            sample_ratio: Some(0.5),
            ..TelemetrySpec::default()
        };
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317/")]);
        let c = |cli| {
            TelemetryConfig::resolve(cli, Some(&spec), &e)
                .unwrap()
                .unwrap()
        };
        assert_eq!(c(Some("http://cli:4317")).endpoint, "http://cli:4317");
        assert_eq!(c(None).endpoint, "http://env:4317");
        let no_env = TelemetryConfig::resolve(None, Some(&spec), env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(no_env.endpoint, "http://spec:4317");
        assert_eq!(no_env.sampling.ratio, 0.5);
    }

    #[test]
    fn protocol_and_timeout_come_from_the_environment() {
        let c = TelemetryConfig::resolve(
            Some("http://h:4318"),
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.export_timeout, Duration::from_millis(250));
        assert_eq!(c.signal_url("traces"), "http://h:4318/v1/traces");
    }

    #[test]
    fn bad_settings_name_their_source() {
        let err = TelemetryConfig::resolve(
            None,
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:1"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: \"http/json\"")
        );
        let err = TelemetryConfig::resolve(Some("localhost:4317"), None, env(&[])).unwrap_err();
        assert!(err.to_string().starts_with("--otlp-endpoint:"), "{err}");
    }

    #[test]
    fn the_cap_is_divided_among_shares_rounding_up() {
        let c = TelemetryConfig::resolve(Some("http://h:1"), None, env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(c.share_sampling(3).max_per_second, 34);
        assert_eq!(c.share_sampling(1).max_per_second, 100);
    }
}
