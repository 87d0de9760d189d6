//! The merged live figures as OTLP metrics: the GenAI client metrics
//! (`gen_ai.client.operation.duration`, `gen_ai.client.operation
//! .time_to_first_chunk`) and Quarry's counters (requests by outcome,
//! throttles by reason, tokens by type, quota tokens reserved and settled).
//!
//! Every merged interval is recorded bucket by bucket from its HDR
//! histograms (each bucket's median-equivalent value, as many times as it
//! counted), so the exported distributions are the run's, not a sample.
//! Collection is manual and export runs on the run's own tokio runtime
//! every [`EXPORT_EVERY`] and once more at the end, so a slow backend holds
//! up only its own task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hdrhistogram::Histogram as Hdr;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use quarry_bedrock::{Operation, Outcome};
use quarry_engine::{Count, IntervalSnapshot, Metric, TokenKind, USAGE_SOURCES};
use tokio::task::JoinHandle;

use super::{TelemetryConfig, TelemetryError};

/// How often metrics are exported during a run.
pub(super) const EXPORT_EVERY: Duration = Duration::from_secs(10);

/// The manual reader, shared between the provider and the export task.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

#[derive(Debug)]
struct Instruments {
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    requests: Counter<u64>,
    throttles: Counter<u64>,
    tokens: Counter<u64>,
    quota_tokens: Counter<u64>,
}

/// A run's metrics pipeline.
#[derive(Debug)]
pub struct RunMetrics {
    provider: SdkMeterProvider,
    reader: SharedReader,
    exporter: Arc<opentelemetry_otlp::MetricExporter>,
    instruments: Instruments,
    failures: Arc<AtomicU64>,
    periodic: JoinHandle<()>,
}

impl RunMetrics {
    /// Builds the instruments and starts the periodic export.
    pub(super) fn start(
        config: &TelemetryConfig,
        resource: Resource,
    ) -> Result<Self, TelemetryError> {
        let exporter = Arc::new(config.metric_exporter()?);
        let reader = SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .with_resource(resource)
            .build();
        let meter = provider.meter("quarry");
        let instruments = Instruments {
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration.")
                .build(),
            time_to_first_chunk: meter
                .f64_histogram("gen_ai.client.operation.time_to_first_chunk")
                .with_unit("s")
                .with_description(
                    "Time to receive the first chunk of a streaming response, from the request.",
                )
                .build(),
            requests: meter
                .u64_counter("quarry.requests")
                .with_unit("{request}")
                .with_description("Requests by outcome.")
                .build(),
            throttles: meter
                .u64_counter("quarry.throttles")
                .with_unit("{request}")
                .with_description("Requests rejected by a quota, by reason.")
                .build(),
            tokens: meter
                .u64_counter("quarry.tokens")
                .with_unit("{token}")
                .with_description("Tokens by gen_ai.token.type, as the service reported them.")
                .build(),
            quota_tokens: meter
                .u64_counter("quarry.quota.tokens")
                .with_unit("{token}")
                .with_description("Quota tokens reserved at admission and settled at completion.")
                .build(),
        };
        let failures = Arc::new(AtomicU64::new(0));
        let periodic = {
            let (reader, exporter, failures) =
                (reader.clone(), Arc::clone(&exporter), Arc::clone(&failures));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(EXPORT_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    export(&reader, &exporter, &failures).await;
                }
            })
        };
        Ok(RunMetrics {
            provider,
            reader,
            exporter,
            instruments,
            failures,
            periodic,
        })
    }

    /// Records one merged interval.
    pub(super) fn record(&self, snapshot: &IntervalSnapshot) {
        let i = &self.instruments;
        for (key, delta) in &snapshot.series {
            let operation = key.operation.unwrap_or(Operation::Converse);
            let base = vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.provider.name", "aws.bedrock"),
                KeyValue::new("gen_ai.request.model", key.model.to_string()),
                KeyValue::new("quarry.operation", operation.name()),
                KeyValue::new("quarry.stage", key.stage.to_string()),
                KeyValue::new("quarry.group", key.group.to_string()),
            ];
            record_hdr(&i.duration, delta.histogram(Metric::E2eFromSend), &base);
            let mut throttled = base.clone();
            throttled.push(KeyValue::new("error.type", "ThrottlingException"));
            record_hdr(
                &i.duration,
                delta.histogram(Metric::ThrottledLatency),
                &throttled,
            );
            if matches!(
                operation,
                Operation::ConverseStream | Operation::InvokeModelWithResponseStream
            ) {
                record_hdr(
                    &i.time_to_first_chunk,
                    delta.histogram(Metric::TtftFromSend),
                    &base,
                );
            }
            let counters = delta.counters();
            for outcome in Outcome::ALL {
                let n = counters.get(Count::Outcome(outcome));
                if n > 0 {
                    let mut a = base.clone();
                    a.push(KeyValue::new("quarry.outcome", outcome.as_str()));
                    i.requests.add(n, &a);
                }
            }
            for (outcome, reason) in [
                (Outcome::Throttled, "per_minute_quota"),
                (Outcome::DailyQuota, "daily_quota"),
            ] {
                let n = counters.get(Count::Outcome(outcome));
                if n > 0 {
                    let mut a = base.clone();
                    a.push(KeyValue::new("quarry.throttle.reason", reason));
                    i.throttles.add(n, &a);
                }
            }
            for (kind, name) in [
                (TokenKind::Input, "input"),
                (TokenKind::Output, "output"),
                (TokenKind::CacheRead, "cache_read"),
                (TokenKind::CacheWrite, "cache_creation"),
            ] {
                let n: u64 = USAGE_SOURCES
                    .iter()
                    .map(|s| counters.get(Count::Tokens(*s, kind)))
                    .sum();
                if n > 0 {
                    let mut a = base.clone();
                    a.push(KeyValue::new("gen_ai.token.type", name));
                    i.tokens.add(n, &a);
                }
            }
            for (count, kind) in [
                (Count::QuotaReserved, "reserved"),
                (Count::QuotaSettled, "settled"),
            ] {
                let n = counters.get(count);
                if n > 0 {
                    let mut a = base.clone();
                    a.push(KeyValue::new("quarry.quota.kind", kind));
                    i.quota_tokens.add(n, &a);
                }
            }
        }
    }

    /// Exports what was recorded one last time (before `deadline`) and
    /// shuts down; returns how many metric exports failed in the run.
    pub(super) async fn finish(self, deadline: tokio::time::Instant) -> u64 {
        self.periodic.abort();
        let last = export(&self.reader, &self.exporter, &self.failures);
        if tokio::time::timeout_at(deadline, last).await.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        // Nothing is left to flush: the reader is manual.
        let _ = self.provider.shutdown();
        self.failures.load(Ordering::Relaxed)
    }
}

/// Records an HDR histogram (ns) into an OTel histogram (s).
fn record_hdr(into: &Histogram<f64>, hdr: &Hdr<u64>, attributes: &[KeyValue]) {
    if hdr.is_empty() {
        return;
    }
    for v in hdr.iter_recorded() {
        let seconds = hdr.median_equivalent(v.value_iterated_to()) as f64 / 1e9;
        for _ in 0..v.count_at_value() {
            into.record(seconds, attributes);
        }
    }
}

async fn export(
    reader: &SharedReader,
    exporter: &opentelemetry_otlp::MetricExporter,
    failures: &AtomicU64,
) {
    let mut rm = ResourceMetrics::default();
    if reader.collect(&mut rm).is_err() {
        failures.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Err(e) = exporter.export(&rm).await {
        tracing::debug!(error = %e, "metric export failed");
        failures.fetch_add(1, Ordering::Relaxed);
    }
}
