//! The scenarios: for each, the simulator configuration and run spec it
//! needs, and the figures it reports (a JSON object plus a human summary).

use std::time::Duration;

use quarry_engine::{Count, Metric, Saturation, SeriesDelta};
use serde_json::{Value, json};

use crate::Args;
use crate::run::{Auth, BENCH_API_KEY, RunOutcome, RunSetup};

const MS: f64 = 1e6;

/// What the simulator's model does per request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Latency {
    /// No waiting at all: the load generator's own ceiling.
    Zero,
    /// Exact TTFT and inter-token gap, no contention or queueing.
    Fixed {
        /// Time to first token, ms.
        ttft_ms: f64,
        /// Gap between output tokens, ms.
        gap_ms: f64,
    },
}

/// The simulator configuration: one account (the documentation example keys
/// plus the bench's API key) whose quotas never bind, and the model answering
/// exactly `max_tokens` tokens with `latency`; with `stamp_frames`, every
/// frame carries the time the simulator handed it to its connection.
pub(crate) fn sim_config(args: &Args, latency: Latency, stamp_frames: bool) -> String {
    let latency = match latency {
        Latency::Zero => r#"{ kind = "zero" }"#.to_owned(),
        Latency::Fixed { ttft_ms, gap_ms } => {
            format!(r#"{{ kind = "fixed", ttft_ms = {ttft_ms:.3}, gap_ms = {gap_ms:.3} }}"#)
        }
    };
    format!(
        r#"seed = 1
default_account = false
{stamp}[[accounts]]
access_key_id = "{key}"
secret_access_key = "{secret}"
account_id = "123456789012"
api_keys = ["{BENCH_API_KEY}"]
quotas = {{ tpm = 1000000000000, cross_region_tpm = 1000000000000, tpd = 1000000000000000, rpm = 1000000000, cross_region_rpm = 1000000000 }}
[[models]]
id = "{model}"
latency = {latency}
output = {{ kind = "fixed", tokens = {tokens} }}
"#,
        key = quarry_bedrock::auth::EXAMPLE_ACCESS_KEY_ID,
        secret = quarry_bedrock::auth::EXAMPLE_SECRET_ACCESS_KEY,
        model = args.model,
        tokens = args.max_tokens,
        stamp = if stamp_frames {
            "stamp_frames = true\n"
        } else {
            ""
        },
    )
}

/// How load is offered.
pub(crate) enum Offered {
    /// Closed loop: this many users, each sending its next request the
    /// moment the last one ends.
    Closed(u32),
    /// Open loop: arrivals at this rate (req/s), spaced as `--arrival` says.
    Open(f64),
}

/// The stage whose requests the closed-loop figures are taken over.
const HOLD: &str = "hold";

/// The run spec. The prompt has no nonce, so every request's body is
/// byte-identical (what the external-client comparison sends).
///
/// A closed loop ramps its users up linearly over the warmup and then holds
/// them: against a fixed latency with no jitter, users started together stay
/// in lock-step forever, and every wave would land as one burst of
/// `concurrency` requests, measuring the burst rather than the engine.
pub(crate) fn spec(args: &Args, offered: &Offered) -> String {
    let load = match (offered, args.requests) {
        (Offered::Closed(users), Some(n)) => format!("concurrency = {users}\nrequests = {n}"),
        (Offered::Closed(users), None) => format!(
            r#"concurrency = {users}
[[load.stages]]
kind = "ramp"
name = "ramp"
duration = "{warmup}s"
target = {users}
[[load.stages]]
kind = "hold"
name = "{HOLD}"
duration = "{duration}s""#,
            warmup = args.warmup,
            duration = args.duration,
        ),
        (Offered::Open(rate), Some(n)) => {
            format!(
                "rate = {rate}\narrival = {}\nrequests = {n}",
                json!(args.arrival)
            )
        }
        (Offered::Open(rate), None) => format!(
            "rate = {rate}\narrival = {}\nwarmup = \"{}s\"\nduration = \"{}s\"",
            json!(args.arrival),
            args.warmup,
            args.duration
        ),
    };
    format!(
        r#"seed = 7
[[workload]]
model = "{model}"
operation = "ConverseStream"
input_tokens = {input}
max_tokens = {output}
nonce = false
[timeouts]
request = "600s"
[load]
{load}
"#,
        model = args.model,
        input = args.input_tokens,
        output = args.max_tokens,
    )
}

/// The run setup shared by every scenario.
pub(crate) fn setup<'a>(args: &Args, spec: &'a str, sample: Option<Duration>) -> RunSetup<'a> {
    RunSetup {
        spec,
        auth: args.auth,
        interval: Duration::from_millis(args.interval_ms),
        sample_every: sample,
        dispatch_timer: args.dispatch_timer,
    }
}

/// Interval indices of the measured window (after warmup, whole intervals).
fn measured_intervals(args: &Args) -> (u64, u64) {
    let per_s = 1000 / args.interval_ms.max(1);
    (args.warmup * per_s, (args.warmup + args.duration) * per_s)
}

fn errors(series: &SeriesDelta) -> u64 {
    let counters = series.counters();
    counters.requests() - counters.get(Count::Outcome(quarry_bedrock::Outcome::Ok))
}

fn ms(ns: u64) -> f64 {
    ns as f64 / MS
}

/// Throughput and CPU cost, over the measured window (or, with a fixed
/// request count, over the whole run).
pub(crate) fn throughput(args: &Args, out: &RunOutcome) -> (Value, String) {
    // With `--requests` the run has no measured window of whole intervals,
    // so no health verdicts either.
    let (window, health) = match args.requests {
        Some(_) => (out.whole(), None),
        None => {
            let (from, to) = measured_intervals(args);
            (out.window(from, to), Some(verdicts(out, from, to)))
        }
    };
    let all = out.report.cumulative.total_where(|_| true);
    let e2e = all.histogram(Metric::E2eFromSend);
    let value = json!({
        "ok_per_s": window.ok_per_s(),
        "ok": window.ok,
        "requests": window.requests,
        "errors_whole_run": errors(&all),
        "span_s": window.span_ns as f64 / 1e9,
        "agent_cpu_us_per_request": window.cpu_us_per_request(),
        "agent_cpu_percent": window.cpu_percent(),
        "sim_cpu_us_per_request": window.sim_cpu_us_per_request(),
        "sim_cpu_percent": window.sim_cpu_percent(),
        "e2e_p50_ms": ms(e2e.value_at_quantile(0.5)),
        "e2e_p99_ms": ms(e2e.value_at_quantile(0.99)),
        "health": health.as_ref().map(Verdicts::value),
    });
    let human = format!(
        "{:.0} ok req/s over {:.1} s ({} ok, {} errors in the run); agent {:.1} µs CPU/request ({:.0}% of a core); simulator {:.1} µs/request ({:.0}%){}",
        window.ok_per_s(),
        window.span_ns as f64 / 1e9,
        window.ok,
        errors(&all),
        window.cpu_us_per_request(),
        window.cpu_percent(),
        window.sim_cpu_us_per_request(),
        window.sim_cpu_percent(),
        health.map_or_else(String::new, |h| format!("; {}", h.human())),
    );
    (value, human)
}

/// Percentiles of a read-delay histogram in µs (null when empty: the
/// simulator did not stamp its frames).
fn read_delay_us(h: &hdrhistogram::Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let us = |ns: u64| ns as f64 / 1e3;
    let q = |q: f64| us(h.highest_equivalent(h.value_at_quantile(q)));
    json!({
        "samples": h.len(),
        "p50_us": q(0.5),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
        "max_us": us(h.max()),
    })
}

/// TTFT and inter-token gap as measured, minus what the simulator was told;
/// and, measured directly, the client's own read delay: the engine's read
/// stamp minus the simulator's write stamp, for the first-token frame and
/// for every frame (the injected-latency error also holds the simulator's
/// own timer lateness; the read delay does not).
pub(crate) fn ttft_error(args: &Args, out: &RunOutcome) -> (Value, String) {
    let measured = out.report.cumulative.total_where(|k| &*k.stage == HOLD);
    let ttft = measured.histogram(Metric::TtftFromSend);
    let itl = measured.histogram(Metric::Itl);
    let err = |ns: u64, truth: f64| ms(ns) - truth;
    let q = |h: &hdrhistogram::Histogram<u64>, q: f64| h.highest_equivalent(h.value_at_quantile(q));
    let (from, to) = measured_intervals(args);
    let window = out.window(from, to);
    let in_flight_min = out
        .intervals
        .iter()
        .filter(|r| r.index >= from && r.index + 1 < to)
        .map(|r| r.end.in_flight)
        .min()
        .unwrap_or(0);
    let first_read = measured.histogram(Metric::FirstTokenReadDelay);
    let frame_read = measured.histogram(Metric::FrameReadDelay);
    let read_before_written = measured.counters().get(Count::FramesReadBeforeWritten);
    let health = verdicts(out, from, to);
    let value = json!({
        "concurrency": args.concurrency,
        "configured_ttft_ms": args.ttft_ms,
        "configured_gap_ms": args.gap_ms,
        "ttft_samples": ttft.len(),
        "ttft_error_p50_ms": err(q(ttft, 0.5), args.ttft_ms),
        "ttft_error_p99_ms": err(q(ttft, 0.99), args.ttft_ms),
        "ttft_error_p999_ms": err(q(ttft, 0.999), args.ttft_ms),
        "ttft_error_max_ms": err(ttft.max(), args.ttft_ms),
        "ttft_error_min_ms": err(ttft.min(), args.ttft_ms),
        "itl_error_p50_ms": err(q(itl, 0.5), args.gap_ms),
        "itl_error_p99_ms": err(q(itl, 0.99), args.gap_ms),
        "first_token_read_delay": read_delay_us(first_read),
        "frame_read_delay": read_delay_us(frame_read),
        "frames_read_before_written": read_before_written,
        "in_flight_min_at_interval_ends": in_flight_min,
        "errors": errors(&measured),
        "ok_per_s": window.ok_per_s(),
        "agent_cpu_percent": window.cpu_percent(),
        "sim_cpu_percent": window.sim_cpu_percent(),
        "health": health.value(),
    });
    let us = |ns: u64| ns as f64 / 1e3;
    let read = if frame_read.is_empty() {
        "; no stamped frames (start the simulator with --stamp-frames)".to_owned()
    } else {
        format!(
            "; client read delay (simulator write → engine read): first token p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs; every frame p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs over {} frames ({} read before written)",
            us(q(first_read, 0.5)),
            us(q(first_read, 0.99)),
            us(q(first_read, 0.999)),
            us(first_read.max()),
            us(q(frame_read, 0.5)),
            us(q(frame_read, 0.99)),
            us(q(frame_read, 0.999)),
            us(frame_read.max()),
            frame_read.len(),
            read_before_written,
        )
    };
    let human = format!(
        "concurrency {}: TTFT error p50 {:+.2} ms, p99 {:+.2} ms, max {:+.2} ms over {} requests (ITL error p50 {:+.2} ms, p99 {:+.2} ms){read}; {:.0} req/s, agent {:.0}% / simulator {:.0}% of a core; {}",
        args.concurrency,
        err(q(ttft, 0.5), args.ttft_ms),
        err(q(ttft, 0.99), args.ttft_ms),
        err(ttft.max(), args.ttft_ms),
        ttft.len(),
        err(q(itl, 0.5), args.gap_ms),
        err(q(itl, 0.99), args.gap_ms),
        window.ok_per_s(),
        window.cpu_percent(),
        window.sim_cpu_percent(),
        health.human(),
    );
    (value, human)
}

/// The engine's health verdicts over the measured intervals.
struct Verdicts {
    /// Each interval's runtime-delay p95, ns, in interval order.
    runtime_delay_p95_ns: Vec<u64>,
    /// Intervals judged saturated, and by which signs.
    saturated: u64,
    by: Saturation,
}

fn verdicts(out: &RunOutcome, from: u64, to: u64) -> Verdicts {
    let rows = out
        .intervals
        .iter()
        .filter(|r| r.index >= from && r.index < to);
    let mut v = Verdicts {
        runtime_delay_p95_ns: Vec::new(),
        saturated: 0,
        by: Saturation::default(),
    };
    for r in rows {
        v.runtime_delay_p95_ns.push(r.health.runtime_delay_p95_ns);
        v.saturated += u64::from(r.health.saturated);
        v.by = v.by.union(r.health.saturation);
    }
    v
}

impl Verdicts {
    fn median_max_us(&self) -> (f64, f64) {
        let mut d = self.runtime_delay_p95_ns.clone();
        d.sort_unstable();
        let us = |ns: u64| ns as f64 / 1e3;
        (
            d.get(d.len() / 2).copied().map_or(0.0, us),
            d.last().copied().map_or(0.0, us),
        )
    }

    fn value(&self) -> Value {
        let (median, max) = self.median_max_us();
        json!({
            "intervals": self.runtime_delay_p95_ns.len(),
            "runtime_delay_p95_us_median": median,
            "runtime_delay_p95_us_max": max,
            "runtime_delay_p95_us_by_interval": self
                .runtime_delay_p95_ns
                .iter()
                .map(|&ns| ns as f64 / 1e3)
                .collect::<Vec<_>>(),
            "saturated_intervals": self.saturated,
            "saturated_by": {
                "schedule_lag": self.by.schedule_lag,
                "cpu": self.by.cpu,
                "pool_wait": self.by.pool_wait,
                "runtime_delay": self.by.runtime_delay,
            },
        })
    }

    fn human(&self) -> String {
        let (median, max) = self.median_max_us();
        format!(
            "runtime delay p95 per interval median {median:.0} µs, max {max:.0} µs; saturated in {} of {} intervals{}",
            self.saturated,
            self.runtime_delay_p95_ns.len(),
            if self.saturated > 0 {
                format!(" ({:?})", self.by)
            } else {
                String::new()
            }
        )
    }
}

/// Resident memory per in-flight stream: the median RSS of the samples taken
/// while every user had a request in flight, minus RSS before the run.
pub(crate) fn memory(args: &Args, out: &RunOutcome) -> (Value, String) {
    let users = u64::from(args.concurrency);
    let mut full: Vec<u64> = out
        .samples
        .iter()
        .filter(|s| s.in_flight == users)
        .map(|s| s.rss)
        .collect();
    full.sort_unstable();
    let median = full.get(full.len() / 2).copied().unwrap_or(0);
    let peak = out.samples.iter().map(|s| s.rss).max().unwrap_or(0);
    let idle = out.start.rss;
    let per_stream = median.saturating_sub(idle) as f64 / users.max(1) as f64;
    let peak_per_stream = peak.saturating_sub(idle) as f64 / users.max(1) as f64;
    let value = json!({
        "concurrency": users,
        "rss_idle_bytes": idle,
        "rss_full_median_bytes": median,
        "rss_peak_bytes": peak,
        "samples_at_full_concurrency": full.len(),
        "bytes_per_stream": per_stream,
        "peak_bytes_per_stream": peak_per_stream,
        "errors": errors(&out.report.cumulative.total_where(|_| true)),
    });
    let human = format!(
        "{users} streams in flight: RSS {:.1} MiB idle, {:.1} MiB median at full concurrency ({} samples), {:.1} MiB peak: {:.1} KiB per stream ({:.1} KiB at peak)",
        idle as f64 / 1048576.0,
        median as f64 / 1048576.0,
        full.len(),
        peak as f64 / 1048576.0,
        per_stream / 1024.0,
        peak_per_stream / 1024.0,
    );
    (value, human)
}

/// Schedule lag (sent − intended) of an open-loop run.
pub(crate) fn lag(args: &Args, out: &RunOutcome) -> (Value, String) {
    let measured = out.report.measured();
    let lag = measured.histogram(Metric::ScheduleLag);
    let q = |q: f64| lag.highest_equivalent(lag.value_at_quantile(q)) as f64 / 1e3;
    // With `--requests` the run has no warmup and no fixed duration: its
    // figures are over the whole run, as the throughput scenario's are.
    let (window, span_s, health) = match args.requests {
        Some(_) => {
            let whole = out.whole();
            let span_s = whole.span_ns as f64 / 1e9;
            (whole, span_s, None)
        }
        None => {
            let (from, to) = measured_intervals(args);
            let health = verdicts(out, from, to);
            (
                out.window(from, to),
                args.duration.max(1) as f64,
                Some(health),
            )
        }
    };
    let sent = measured.counters().get(Count::Attempts);
    let value = json!({
        "rate": args.rate,
        "arrival": args.arrival,
        "dispatch_timer": format!("{:?}", args.dispatch_timer),
        "sent": sent,
        "sent_per_s": sent as f64 / span_s,
        "lag_samples": lag.len(),
        "lag_p50_us": q(0.5),
        "lag_p99_us": q(0.99),
        "lag_p999_us": q(0.999),
        "lag_max_us": lag.max() as f64 / 1e3,
        "late_sends": measured.counters().get(Count::LateSends),
        "errors": errors(&measured),
        "agent_cpu_percent": window.cpu_percent(),
        "agent_cpu_us_per_request": window.cpu_us_per_request(),
        "sim_cpu_percent": window.sim_cpu_percent(),
        "health": health.as_ref().map(Verdicts::value),
    });
    let human = format!(
        "{:?} {} req/s ({:?}): sent {:.0}/s; schedule lag p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs; {} late (>1 ms); agent {:.0}% of a core{}",
        args.arrival,
        args.rate,
        args.dispatch_timer,
        sent as f64 / span_s,
        q(0.5),
        q(0.99),
        q(0.999),
        lag.max() as f64 / 1e3,
        measured.counters().get(Count::LateSends),
        window.cpu_percent(),
        health.map_or_else(String::new, |h| format!("; {}", h.human())),
    );
    (value, human)
}

/// The auth mode's name in results.
pub(crate) fn auth_name(auth: Auth) -> &'static str {
    match auth {
        Auth::Sigv4 => "sigv4",
        Auth::Bearer => "bearer",
    }
}
