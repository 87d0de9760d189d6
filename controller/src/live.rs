//! The live view: one status line per interval on stderr while a run goes.
//!
//! On a terminal the line refreshes in place (`\r` and erase-line); in CI
//! (stderr not a terminal) each interval prints its own plain line. It is
//! fed from the snapshot consumer, never from the request path.

use std::io::Write as _;

use quarry_engine::IntervalSnapshot;

use crate::report::{duration_ns, rate};
use crate::results::IntervalSummary;

/// What the live view knows beyond the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveContext {
    /// Requests in flight now.
    pub in_flight: u64,
    /// The configured tokens-per-minute quota of the pools in use, when the
    /// target can tell (the embedded simulator).
    pub quota_tpm: Option<u64>,
}

/// Prints progress lines to stderr.
#[derive(Debug)]
pub struct LiveView {
    /// Refresh one line in place (a terminal) or print a line each time.
    in_place: bool,
    /// A line is on screen that needs a newline before anything else prints.
    dirty: bool,
    /// The nominal interval, ns.
    interval_ns: u64,
    /// The previous interval's summary and span, to fold a short last
    /// interval into: rates over a few milliseconds are noise.
    previous: Option<(IntervalSummary, u64)>,
    /// Printed before each line (a sweep's level); empty for a run.
    label: String,
}

impl LiveView {
    /// A view that refreshes in place when `in_place` (stderr is a TTY),
    /// for snapshots every `interval_ns`.
    pub fn new(in_place: bool, interval_ns: u64) -> Self {
        LiveView {
            in_place,
            dirty: false,
            interval_ns,
            previous: None,
            label: String::new(),
        }
    }

    /// Starts every line with `label` (a sweep names its level).
    pub fn labelled(mut self, label: Option<&str>) -> Self {
        self.label = label.map_or_else(String::new, |l| format!("{l} | "));
        self
    }

    /// Shows the line for one interval.
    pub fn show(
        &mut self,
        snapshot: &IntervalSnapshot,
        summary: &IntervalSummary,
        ctx: LiveContext,
    ) {
        let span = snapshot.end.saturating_sub(snapshot.start);
        let (shown, shown_span) = match self.previous {
            Some((prev, prev_span)) if span < self.interval_ns / 2 => {
                (combine(&prev, summary), prev_span + span)
            }
            _ => (*summary, span),
        };
        self.previous = Some((*summary, span));
        let line = format!(
            "{}{}",
            self.label,
            status_line(snapshot, &shown, shown_span, ctx)
        );
        let mut err = std::io::stderr().lock();
        // A failed write to stderr has nowhere to be reported; progress is
        // best effort.
        let _ = if self.in_place {
            self.dirty = true;
            write!(err, "\r\x1b[K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Prints a message on its own line (ending the status line first).
    pub fn message(&mut self, text: &str) {
        self.finish();
        eprintln!("{text}");
    }

    /// Ends the status line so later output starts on a fresh line.
    pub fn finish(&mut self) {
        if self.dirty {
            eprintln!();
            self.dirty = false;
        }
    }
}

/// Two neighbouring intervals' counts together; TTFT from the later one
/// when it has any, else the earlier.
fn combine(earlier: &IntervalSummary, later: &IntervalSummary) -> IntervalSummary {
    let ttft = if later.ok > 0 { later } else { earlier };
    IntervalSummary {
        requests: earlier.requests + later.requests,
        ok: earlier.ok + later.ok,
        throttled: earlier.throttled + later.throttled,
        output_tokens: earlier.output_tokens + later.output_tokens,
        quota_settled: earlier.quota_settled + later.quota_settled,
        ttft_p50_ns: ttft.ttft_p50_ns,
        ttft_p99_ns: ttft.ttft_p99_ns,
        e2e_p50_ns: ttft.e2e_p50_ns,
    }
}

/// The status line at the end of `snapshot` for counts `s` over `span_ns`:
/// elapsed, in flight, req/s, output tokens/min, quota tokens/min against
/// the configured quota, TTFT p50/p99, throttle %, agent CPU.
pub fn status_line(
    snapshot: &IntervalSnapshot,
    s: &IntervalSummary,
    span_ns: u64,
    ctx: LiveContext,
) -> String {
    let span_s = span_ns as f64 / 1e9;
    let per_s = |n: u64| if span_s > 0.0 { n as f64 / span_s } else { 0.0 };
    let ttft = |ns: u64| {
        if s.ok == 0 {
            "-".to_owned()
        } else {
            duration_ns(ns)
        }
    };
    let quota = match ctx.quota_tpm {
        Some(tpm) => format!(
            "{}/min of {} TPM",
            rate(per_s(s.quota_settled) * 60.0),
            rate(tpm as f64)
        ),
        None => format!("{}/min", rate(per_s(s.quota_settled) * 60.0)),
    };
    let throttled = if s.requests == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * s.throttled as f64 / s.requests as f64)
    };
    let cpu = snapshot
        .health
        .cpu_percent
        .map_or("-".to_owned(), |c| format!("{c:.0}%"));
    format!(
        "[{:>7.1}s] in flight {} | {} req/s | out {} tok/min | quota {quota} | TTFT p50 {} p99 {} | throttled {throttled} | cpu {cpu}{}",
        snapshot.end as f64 / 1e9,
        ctx.in_flight,
        rate(per_s(s.requests)),
        rate(per_s(s.output_tokens) * 60.0),
        ttft(s.ttft_p50_ns),
        ttft(s.ttft_p99_ns),
        if snapshot.health.saturated {
            " | SATURATED"
        } else {
            ""
        },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use quarry_engine::HealthSample;

    use super::*;

    #[test]
    fn line_shows_every_figure() {
        let snapshot = IntervalSnapshot {
            index: 2,
            start: 2_000_000_000,
            end: 3_000_000_000,
            series: BTreeMap::new(),
            health: HealthSample {
                cpu_percent: Some(12.4),
                ..Default::default()
            },
        };
        let summary = IntervalSummary {
            requests: 20,
            ok: 19,
            throttled: 1,
            output_tokens: 1_000,
            quota_settled: 5_000,
            ttft_p50_ns: 300_000_000,
            ttft_p99_ns: 1_200_000_000,
            e2e_p50_ns: 2_000_000_000,
        };
        let ctx = LiveContext {
            in_flight: 4,
            quota_tpm: Some(600_000),
        };
        assert_eq!(
            status_line(&snapshot, &summary, 1_000_000_000, ctx),
            "[    3.0s] in flight 4 | 20.00 req/s | out 60,000 tok/min | quota 300,000/min of 600,000 TPM | TTFT p50 300ms p99 1.20s | throttled 5.0% | cpu 12%"
        );
    }

    #[test]
    fn a_short_last_interval_is_folded_into_the_previous_one() {
        let full = IntervalSummary {
            requests: 10,
            ok: 10,
            throttled: 0,
            output_tokens: 100,
            quota_settled: 200,
            ttft_p50_ns: 5,
            ttft_p99_ns: 9,
            e2e_p50_ns: 20,
        };
        let tail = IntervalSummary {
            requests: 1,
            ok: 0,
            ..full
        };
        let both = combine(&full, &tail);
        assert_eq!((both.requests, both.ok, both.output_tokens), (11, 10, 200));
        assert_eq!((both.ttft_p50_ns, both.ttft_p99_ns), (5, 9));
    }
}
