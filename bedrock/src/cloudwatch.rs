//! Bedrock's per-minute CloudWatch figures (namespace `AWS/Bedrock`,
//! dimension `ModelId`), defined once: the simulator publishes them from
//! what it served and `quarry report --cloudwatch` computes them from what
//! Quarry measured, so the two can be held against each other and against a
//! user's dashboards. Definitions (AWS's `monitoring-runtime-metrics.html`,
//! CAPACITY.md §5) and where each side's figure comes from are in
//! docs/cloudwatch.md.

use serde::{Deserialize, Serialize};

use crate::quota::settlement;
use crate::usage::TokenUsage;

/// The CloudWatch namespace of Bedrock Runtime's metrics.
pub const CLOUDWATCH_NAMESPACE: &str = "AWS/Bedrock";

/// The period of the figures, in seconds (per-minute, as
/// `TimeToFirstToken` and `EstimatedTPMQuotaUsage` are published).
pub const CLOUDWATCH_PERIOD_SECONDS: u64 = 60;

/// One model id's figures over one minute. Counts and token metrics are
/// the `Sum` statistic; latencies are kept as sum and sample count, so
/// their `Average` is exact whatever the minutes merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MinuteFigures {
    /// Invocations: requests accepted for processing (admitted), including
    /// those that then failed; not throttled or refused ones.
    pub invocations: u64,
    /// InvocationThrottles: requests refused by a quota (429 ThrottlingException).
    pub invocation_throttles: u64,
    /// InvocationClientErrors: accepted requests that ended in a 4xx other
    /// than a throttle.
    pub invocation_client_errors: u64,
    /// InvocationServerErrors: accepted requests that ended in a 5xx.
    pub invocation_server_errors: u64,
    /// InputTokenCount: input tokens billed at the input price (cache reads
    /// and writes are their own metrics).
    pub input_token_count: u64,
    /// OutputTokenCount.
    pub output_token_count: u64,
    /// CacheReadInputTokens.
    pub cache_read_input_tokens: u64,
    /// CacheWriteInputTokens.
    pub cache_write_input_tokens: u64,
    /// EstimatedTPMQuotaUsage: quota tokens settled (input + cache writes +
    /// output × burndown).
    #[serde(rename = "EstimatedTPMQuotaUsage")]
    pub estimated_tpm_quota_usage: u64,
    /// InvocationLatency: sum of milliseconds over successful requests.
    pub invocation_latency_ms_sum: u64,
    /// InvocationLatency: sample count.
    pub invocation_latency_samples: u64,
    /// TimeToFirstToken (streaming only): sum of milliseconds.
    pub time_to_first_token_ms_sum: u64,
    /// TimeToFirstToken: sample count.
    pub time_to_first_token_samples: u64,
}

impl MinuteFigures {
    /// Adds a request that finished successfully with `usage` under
    /// `burndown`, its latency to the last token and, for streams, to the
    /// first.
    pub fn add_success(
        &mut self,
        usage: &TokenUsage,
        burndown: u64,
        latency_ms: u64,
        ttft_ms: Option<u64>,
    ) {
        self.invocations += 1;
        self.add_usage(usage, burndown);
        self.invocation_latency_ms_sum += latency_ms;
        self.invocation_latency_samples += 1;
        if let Some(t) = ttft_ms {
            self.time_to_first_token_ms_sum += t;
            self.time_to_first_token_samples += 1;
        }
    }

    /// Adds the tokens an accepted request consumed.
    pub fn add_usage(&mut self, usage: &TokenUsage, burndown: u64) {
        self.input_token_count += usage.input_tokens;
        self.output_token_count += usage.output_tokens;
        self.cache_read_input_tokens += usage.cache_read_input_tokens;
        self.cache_write_input_tokens += usage.cache_write_input_tokens;
        self.estimated_tpm_quota_usage += settlement(usage, burndown);
    }

    /// Adds another minute's figures (the same minute and model, from
    /// another source or agent).
    pub fn merge(&mut self, other: &MinuteFigures) {
        self.invocations += other.invocations;
        self.invocation_throttles += other.invocation_throttles;
        self.invocation_client_errors += other.invocation_client_errors;
        self.invocation_server_errors += other.invocation_server_errors;
        self.input_token_count += other.input_token_count;
        self.output_token_count += other.output_token_count;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_write_input_tokens += other.cache_write_input_tokens;
        self.estimated_tpm_quota_usage += other.estimated_tpm_quota_usage;
        self.invocation_latency_ms_sum += other.invocation_latency_ms_sum;
        self.invocation_latency_samples += other.invocation_latency_samples;
        self.time_to_first_token_ms_sum += other.time_to_first_token_ms_sum;
        self.time_to_first_token_samples += other.time_to_first_token_samples;
    }

    /// InvocationLatency's `Average` in milliseconds; `None` without samples.
    pub fn invocation_latency_average_ms(&self) -> Option<f64> {
        average(
            self.invocation_latency_ms_sum,
            self.invocation_latency_samples,
        )
    }

    /// TimeToFirstToken's `Average` in milliseconds; `None` without samples.
    pub fn time_to_first_token_average_ms(&self) -> Option<f64> {
        average(
            self.time_to_first_token_ms_sum,
            self.time_to_first_token_samples,
        )
    }
}

fn average(sum: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| sum as f64 / n as f64)
}

/// One datapoint row: a minute, a model id, its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudWatchMinute {
    /// The minute's start, in seconds since the Unix epoch (a multiple of 60).
    pub minute: u64,
    /// The `ModelId` dimension: the model id as the request sent it.
    pub model_id: String,
    /// The figures.
    pub figures: MinuteFigures,
}

/// The minute (seconds since the epoch, floored to 60) holding `unix_seconds`.
pub fn minute_of(unix_seconds: u64) -> u64 {
    unix_seconds - unix_seconds % CLOUDWATCH_PERIOD_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_merge_and_average() {
        let usage = TokenUsage {
            input_tokens: 100,
            output_tokens: 10,
            cache_read_input_tokens: 50,
            cache_write_input_tokens: 20,
        };
        let mut a = MinuteFigures::default();
        a.add_success(&usage, 5, 300, Some(40));
        a.add_success(&usage, 5, 100, None);
        assert_eq!(a.invocations, 2);
        // Settlement: input + cache writes + output × burndown; reads are free.
        assert_eq!(a.estimated_tpm_quota_usage, 2 * (100 + 20 + 50));
        assert_eq!(a.invocation_latency_average_ms(), Some(200.0));
        assert_eq!(a.time_to_first_token_average_ms(), Some(40.0));
        let mut b = MinuteFigures {
            invocation_throttles: 3,
            ..MinuteFigures::default()
        };
        b.merge(&a);
        assert_eq!(b.invocation_throttles, 3);
        assert_eq!(b.cache_read_input_tokens, 100);
        assert_eq!(
            MinuteFigures::default().invocation_latency_average_ms(),
            None
        );
        assert_eq!(minute_of(125), 120);
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json["EstimatedTPMQuotaUsage"], 340);
        assert_eq!(json["InputTokenCount"], 200);
    }
}
