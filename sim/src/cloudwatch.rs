//! The simulator's CloudWatch view: per minute and per `ModelId` (the id as
//! the request sent it), the figures Bedrock publishes in `AWS/Bedrock`
//! ([`quarry_bedrock::cloudwatch::MinuteFigures`]), recorded as requests end
//! and served as JSON at `GET /_quarry/cloudwatch`.
//!
//! Memory is bounded: at most [`MAX_ROWS`] (minute, model id) rows are kept;
//! past that the oldest minute is dropped whole.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use quarry_bedrock::TokenUsage;
use quarry_bedrock::cloudwatch::{
    CLOUDWATCH_NAMESPACE, CLOUDWATCH_PERIOD_SECONDS, CloudWatchMinute, MinuteFigures, minute_of,
};
use serde::Serialize;

/// The most (minute, model id) rows kept: a day of minutes for ten ids.
pub const MAX_ROWS: usize = 14_400;

/// How a request ended, as CloudWatch counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudWatchEvent {
    /// Accepted and answered in full.
    Success {
        /// What it consumed.
        usage: TokenUsage,
        /// Quota tokens per output token of its model.
        burndown: u64,
        /// Arrival to the last token, in milliseconds.
        latency_ms: u64,
        /// Arrival to the first token, in milliseconds (streams only).
        ttft_ms: Option<u64>,
    },
    /// Accepted, then failed: what it consumed and whether the fault was
    /// the server's (5xx) or the client's (4xx).
    Failed {
        /// What it consumed before it failed.
        usage: TokenUsage,
        /// Quota tokens per output token of its model.
        burndown: u64,
        /// True for a 5xx.
        server: bool,
    },
    /// Refused by a quota.
    Throttled,
}

/// Per-minute, per-model-id figures.
#[derive(Debug, Default)]
pub struct CloudWatchBook {
    rows: Mutex<BTreeMap<(u64, String), MinuteFigures>>,
}

/// The JSON `GET /_quarry/cloudwatch` serves.
#[derive(Debug, Clone, Serialize)]
pub struct CloudWatchSnapshot {
    /// `AWS/Bedrock`.
    pub namespace: &'static str,
    /// 60.
    pub period_seconds: u64,
    /// Rows by minute, then model id.
    pub minutes: Vec<CloudWatchMinute>,
}

impl CloudWatchBook {
    /// Records how a request to `model_id` ended at wall-clock time `at`.
    pub fn record(&self, at: SystemTime, model_id: &str, event: CloudWatchEvent) {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let key = (minute_of(secs), model_id.to_owned());
        // A poisoned lock only means another request panicked mid-update of
        // plain counters; the figures stay usable.
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let figures = rows.entry(key).or_default();
        match event {
            CloudWatchEvent::Success {
                usage,
                burndown,
                latency_ms,
                ttft_ms,
            } => figures.add_success(&usage, burndown, latency_ms, ttft_ms),
            CloudWatchEvent::Failed {
                usage,
                burndown,
                server,
            } => {
                figures.invocations += 1;
                figures.add_usage(&usage, burndown);
                if server {
                    figures.invocation_server_errors += 1;
                } else {
                    figures.invocation_client_errors += 1;
                }
            }
            CloudWatchEvent::Throttled => figures.invocation_throttles += 1,
        }
        while rows.len() > MAX_ROWS {
            let Some(oldest) = rows.keys().next().map(|(minute, _)| *minute) else {
                break;
            };
            rows.retain(|(minute, _), _| *minute != oldest);
        }
    }

    /// Every row, by minute then model id.
    pub fn snapshot(&self) -> CloudWatchSnapshot {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        CloudWatchSnapshot {
            namespace: CLOUDWATCH_NAMESPACE,
            period_seconds: CLOUDWATCH_PERIOD_SECONDS,
            minutes: rows
                .iter()
                .map(|((minute, model_id), figures)| CloudWatchMinute {
                    minute: *minute,
                    model_id: model_id.clone(),
                    figures: *figures,
                })
                .collect(),
        }
    }
}

impl CloudWatchSnapshot {
    /// As JSON.
    pub fn to_json(&self) -> String {
        // unwrap-free: plain counters and strings always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rows_by_minute_and_model_id() {
        let book = CloudWatchBook::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        let usage = TokenUsage {
            input_tokens: 10,
            output_tokens: 2,
            ..TokenUsage::default()
        };
        let ok = CloudWatchEvent::Success {
            usage,
            burndown: 5,
            latency_ms: 100,
            ttft_ms: Some(20),
        };
        book.record(t0, "us.m", ok);
        book.record(t0 + Duration::from_secs(59), "us.m", ok);
        book.record(
            t0 + Duration::from_secs(60),
            "us.m",
            CloudWatchEvent::Throttled,
        );
        book.record(
            t0,
            "m",
            CloudWatchEvent::Failed {
                usage,
                burndown: 1,
                server: true,
            },
        );
        let snap = book.snapshot();
        let rows: Vec<_> = snap
            .minutes
            .iter()
            .map(|r| (r.minute, r.model_id.as_str(), r.figures.invocations))
            .collect();
        assert_eq!(rows, [(600, "m", 1), (600, "us.m", 2), (660, "us.m", 0)]);
        assert_eq!(snap.minutes[1].figures.estimated_tpm_quota_usage, 2 * 20);
        assert_eq!(snap.minutes[2].figures.invocation_throttles, 1);
        assert_eq!(snap.minutes[0].figures.invocation_server_errors, 1);
        assert!(snap.to_json().contains("\"namespace\":\"AWS/Bedrock\""));
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_oldest_minute() {
        let book = CloudWatchBook::default();
        for i in 0..(MAX_ROWS as u64 + 5) {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(i * 60);
            book.record(at, "m", CloudWatchEvent::Throttled);
        }
        let snap = book.snapshot();
        assert_eq!(snap.minutes.len(), MAX_ROWS);
        assert_eq!(snap.minutes[0].minute, 5 * 60);
    }
}
