//! Quarry's view of Bedrock's CloudWatch figures (`AWS/Bedrock`, per minute
//! and `ModelId`), computed on the client from a results directory's
//! `intervals.jsonl`, so a run can be held against a user's dashboards and
//! against the simulator's own (`GET /_quarry/cloudwatch`). `quarry report
//! DIR --cloudwatch` prints it. Where the client's figure is defined as
//! CloudWatch's and where it differs is in docs/cloudwatch.md.
//!
//! A request is in the interval in which it completed; an interval's
//! figures go to the minute holding its end (`run.started_at`, second
//! precision, plus `end_ns`), so a request finishing within an interval of
//! a minute boundary may land in the neighbouring minute.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use quarry_bedrock::cloudwatch::{
    CLOUDWATCH_NAMESPACE, CLOUDWATCH_PERIOD_SECONDS, CloudWatchMinute, MinuteFigures, minute_of,
};
use quarry_bedrock::{Operation, Outcome};
use quarry_engine::{Count, Metric, SeriesDelta, TokenKind};
use serde::Serialize;

use super::figures::Figures;
use crate::results::{IntervalRecord, ResultsError, RunMeta};

/// `run.json` and `intervals.jsonl`, as the results directory names them.
const RUN_FILE: &str = "run.json";
const INTERVALS_FILE: &str = "intervals.jsonl";

/// The client's CloudWatch view of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientCloudWatch {
    /// `AWS/Bedrock`.
    pub namespace: &'static str,
    /// 60.
    pub period_seconds: u64,
    /// Rows by minute, then model id.
    pub minutes: Vec<CloudWatchMinute>,
}

/// Reads `dir`'s `run.json` and `intervals.jsonl` into per-minute figures.
pub fn client_cloudwatch(dir: &Path) -> Result<ClientCloudWatch, ResultsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| ResultsError::Io { path, source })
    };
    let run = read(RUN_FILE)?;
    let intervals = read(INTERVALS_FILE)?;
    let meta: RunMeta = serde_json::from_str(&run).map_err(|e| ResultsError::Json {
        path: dir.join(RUN_FILE),
        line: None,
        detail: e.to_string(),
    })?;
    let origin = unix_seconds(&meta.started_at).ok_or_else(|| ResultsError::Json {
        path: dir.join(RUN_FILE),
        line: None,
        detail: format!("started_at: not an RFC 3339 time: {:?}", meta.started_at),
    })?;
    let mut rows: BTreeMap<(u64, String), MinuteFigures> = BTreeMap::new();
    for (i, line) in intervals.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: IntervalRecord =
            serde_json::from_str(line).map_err(|e| ResultsError::Json {
                path: dir.join(INTERVALS_FILE),
                line: Some(i + 1),
                detail: e.to_string(),
            })?;
        let minute = minute_of(origin + record.end_ns / 1_000_000_000);
        for series in &record.series {
            if series.model.is_empty() {
                continue;
            }
            let (key, delta) = series.decode()?;
            let streaming = matches!(
                key.operation,
                Some(Operation::ConverseStream | Operation::InvokeModelWithResponseStream)
            );
            if key.operation == Some(Operation::CountTokens) {
                continue;
            }
            rows.entry((minute, series.model.clone()))
                .or_default()
                .merge(&series_figures(delta, streaming));
        }
    }
    Ok(ClientCloudWatch {
        namespace: CLOUDWATCH_NAMESPACE,
        period_seconds: CLOUDWATCH_PERIOD_SECONDS,
        minutes: rows
            .into_iter()
            .map(|((minute, model_id), figures)| CloudWatchMinute {
                minute,
                model_id,
                figures,
            })
            .collect(),
    })
}

/// One series' interval delta in CloudWatch's terms.
fn series_figures(delta: SeriesDelta, streaming: bool) -> MinuteFigures {
    let f = Figures::new(delta, 0, true);
    let e2e = f.histogram(Metric::E2eFromSend);
    let ttft = f.histogram(Metric::TtftFromSend);
    let ms_sum =
        |h: &hdrhistogram::Histogram<u64>| (h.mean() * h.len() as f64 / 1e6).round() as u64;
    let server_errors = f.outcome(Outcome::ServerError);
    let stream_errors = f.outcome(Outcome::StreamError);
    MinuteFigures {
        invocations: f.outcome(Outcome::Ok) + server_errors + stream_errors,
        invocation_throttles: f.outcome(Outcome::Throttled)
            + f.outcome(Outcome::DailyQuota)
            + f.count(Count::RetriedThrottles),
        invocation_client_errors: stream_errors,
        invocation_server_errors: server_errors,
        input_token_count: f.tokens(TokenKind::Input),
        output_token_count: f.tokens(TokenKind::Output),
        cache_read_input_tokens: f.tokens(TokenKind::CacheRead),
        cache_write_input_tokens: f.tokens(TokenKind::CacheWrite),
        estimated_tpm_quota_usage: f.count(Count::QuotaSettled),
        invocation_latency_ms_sum: ms_sum(e2e),
        invocation_latency_samples: e2e.len(),
        time_to_first_token_ms_sum: if streaming { ms_sum(ttft) } else { 0 },
        time_to_first_token_samples: if streaming { ttft.len() } else { 0 },
    }
}

/// Seconds since the epoch of `run.started_at`, an RFC 3339 UTC time of
/// second precision as `run::rfc3339` writes it (`2026-12-06T10:44:38Z`).
fn unix_seconds(text: &str) -> Option<u64> {
    let (date, clock) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(str::parse::<u32>);
    let (Some(Ok(y)), Some(Ok(mo)), Some(Ok(day)), None) = (d.next(), d.next(), d.next(), d.next())
    else {
        return None;
    };
    let mut c = clock.split(':').map(str::parse::<u8>);
    let (Some(Ok(h)), Some(Ok(mi)), Some(Ok(sec)), None) = (c.next(), c.next(), c.next(), c.next())
    else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
    let t = date.with_hms(h, mi, sec).ok()?.assume_utc();
    u64::try_from(t.unix_timestamp()).ok()
}

impl ClientCloudWatch {
    /// As JSON (the simulator's `GET /_quarry/cloudwatch` shape).
    pub fn to_json(&self) -> String {
        // unwrap-free: counters and strings always serialize.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// As a table: one row per minute and model id.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "CloudWatch figures as Quarry measured them ({CLOUDWATCH_NAMESPACE}, per minute (UTC) and ModelId, every request that completed in the minute; docs/cloudwatch.md):\n"
        );
        let header = [
            "minute",
            "ModelId",
            "Invocations",
            "Throttles",
            "InputTokens",
            "OutputTokens",
            "CacheRead",
            "CacheWrite",
            "EstTPMQuotaUsage",
            "Latency avg ms",
            "TTFT avg ms",
        ];
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let rows: Vec<Vec<String>> = self
            .minutes
            .iter()
            .map(|m| {
                let f = &m.figures;
                vec![
                    clock_minute(m.minute),
                    m.model_id.clone(),
                    f.invocations.to_string(),
                    f.invocation_throttles.to_string(),
                    f.input_token_count.to_string(),
                    f.output_token_count.to_string(),
                    f.cache_read_input_tokens.to_string(),
                    f.cache_write_input_tokens.to_string(),
                    f.estimated_tpm_quota_usage.to_string(),
                    ms(f.invocation_latency_average_ms()),
                    ms(f.time_to_first_token_average_ms()),
                ]
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let mut line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i < 2 {
                    let _ = write!(s, "{c:<w$}  ");
                } else {
                    let _ = write!(s, "{c:>w$}  ");
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&header);
        for r in &rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            line(&cells);
        }
        if self.minutes.is_empty() {
            out.push_str("  no request completed\n");
        }
        out.push_str(
            "Latency avg: Quarry's E2E from send (client view, network included), not CloudWatch's server-side InvocationLatency; TTFT avg: streaming requests only.\n",
        );
        out
    }
}

/// `2026-12-06 10:44` for a minute in seconds since the epoch.
fn clock_minute(minute: u64) -> String {
    i64::try_from(minute)
        .ok()
        .and_then(|m| time::OffsetDateTime::from_unix_timestamp(m).ok())
        .map_or_else(
            || minute.to_string(),
            |t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute()
                )
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_print() {
        assert_eq!(unix_seconds("1970-01-01T00:01:05Z"), Some(65));
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(clock_minute(1_764_000_000), "2025-11-24 16:00");
    }
}
