//! The report as text: a header, the measured figures overall and per
//! series, the cooldown, the load generator's health, the simulator's view
//! beside the client's, and the thresholds.

use std::fmt::Write as _;

use quarry_bedrock::{Outcome, UsageSource};
use quarry_engine::{
    Count, LoadModel, Metric, Target, TokenDistribution, TokenKind, USAGE_SOURCES,
};

use super::figures::{Figures, RunFigures, stat};
use super::format::{count, duration_ns, percent, rate, usd};
use crate::coordinator::SharesOutcome;
use crate::results::{Ended, ResultsDocument, SimulatorView};
use crate::thresholds::LatencyStat;

/// The latency rows: label and histogram. From-schedule rows appear only
/// when they hold data (open-loop runs).
const LATENCIES: [(&str, Metric); 7] = [
    ("TTFT", Metric::TtftFromSend),
    ("TTFT (from schedule)", Metric::TtftFromSchedule),
    ("E2E", Metric::E2eFromSend),
    ("E2E (from schedule)", Metric::E2eFromSchedule),
    ("ITL", Metric::Itl),
    ("TPOT", Metric::Tpot),
    ("schedule lag", Metric::ScheduleLag),
];

const STATS: [(&str, LatencyStat); 8] = [
    ("p50", LatencyStat::P50),
    ("p90", LatencyStat::P90),
    ("p95", LatencyStat::P95),
    ("p99", LatencyStat::P99),
    ("p99.9", LatencyStat::P999),
    ("max", LatencyStat::Max),
    ("mean", LatencyStat::Mean),
    ("min", LatencyStat::Min),
];

/// Renders the whole report of `doc` from its `figures` (computed once by
/// [`super::evaluate`]).
pub fn render_report(doc: &ResultsDocument, figures: &RunFigures) -> String {
    let mut out = String::new();
    header(&mut out, doc, figures);
    out.push_str("\n== Measured (");
    out.push_str(&figures.measured_stages.join(", "));
    out.push_str(") ==\n");
    section(&mut out, &figures.overall);
    quota_wall(&mut out, doc, &figures.overall);
    if figures.series.len() > 1 {
        for s in &figures.series {
            let _ = writeln!(out, "\n== Series {} ==", s.label);
            section(&mut out, &s.figures);
        }
    }
    groups(&mut out, doc, figures);
    tiers(&mut out, figures);
    sessions(&mut out, doc, figures);
    if let Some(c) = &figures.cooldown {
        out.push_str("\n== Cooldown (reported apart, not in the figures above) ==\n");
        section(&mut out, c);
    }
    health(&mut out, doc);
    if let Some(sim) = &doc.simulator {
        simulator(&mut out, sim, &figures.all_stages);
    }
    thresholds(&mut out, doc);
    out
}

fn header(out: &mut String, doc: &ResultsDocument, f: &RunFigures) {
    let run = &doc.run;
    let _ = writeln!(out, "quarry run {} ({})", run.run_id, run.spec);
    let target = match &doc.plan.target {
        Target::Sim { sim_profile: None } => "the embedded simulator".to_owned(),
        Target::Sim {
            sim_profile: Some(p),
        } => format!("the embedded simulator, profile {p:?}"),
        Target::Aws { region, .. } => format!("Bedrock in {region}"),
    };
    let load = match doc.plan.load.model() {
        LoadModel::Closed { concurrency } => format!("closed, {concurrency} virtual users"),
        LoadModel::Open { rate_per_s, .. } => format!("open, {}/s", rate(*rate_per_s)),
    };
    let _ = writeln!(
        out,
        "started {}; target {target}; load {load}",
        run.started_at
    );
    let _ = writeln!(
        out,
        "ended: {} after {}; measured window {}",
        doc.end.ended.as_str(),
        duration_ns(doc.end.finished_at_ns),
        duration_ns(f.overall.window_ns)
    );
    if let Some(sent) = doc.end.sent {
        let _ = writeln!(out, "requests sent: {}", count(sent));
    }
    partial_shares(out, doc);
}

/// The shares that ended before their plan did, and what that means.
fn partial_shares(out: &mut String, doc: &ResultsDocument) {
    if doc.partial_shares.is_empty() {
        return;
    }
    if doc.end.ended == Ended::Degraded {
        let _ = writeln!(
            out,
            "DEGRADED: {} of {} shares partial; every figure holds a partial share's data up to its last interval",
            doc.partial_shares.len(),
            doc.groups
                .iter()
                .map(|g| g.agents.len())
                .sum::<usize>()
                .max(doc.partial_shares.len())
        );
    }
    for p in &doc.partial_shares {
        let last = p
            .last_interval
            .map_or("no interval".to_owned(), |i| format!("last interval {i}"));
        let how = if p.lost { "lost" } else { "ended early" };
        let _ = writeln!(
            out,
            "  PARTIAL share: agent {} ({}, group {}): {how}, {last}: {}",
            p.agent_id, p.address, p.group, p.reason
        );
    }
}

/// Each agent group of a distributed run: its part of the plan, its agents
/// and its measured figures.
fn groups(out: &mut String, doc: &ResultsDocument, figures: &RunFigures) {
    if doc.groups.is_empty() {
        return;
    }
    let total_weight: f64 = doc.groups.iter().map(|g| g.weight).sum();
    out.push_str("\n== Agent groups (measured stages) ==\n");
    for (g, f) in doc.groups.iter().zip(&figures.groups) {
        let mut about = vec![format!(
            "weight {} ({:.1}% of the load)",
            trim_float(g.weight),
            100.0 * g.weight / total_weight.max(f64::MIN_POSITIVE)
        )];
        about.push(format!(
            "{} agents: {}",
            g.agents.len(),
            g.agents.join(", ")
        ));
        if let Some(r) = &g.region {
            about.push(format!("region {r}"));
        }
        if let Some(a) = &g.account_alias {
            about.push(format!("account {a}"));
        }
        if let Some(p) = &g.credential_profile {
            about.push(format!("profile {p}"));
        }
        let _ = writeln!(out, "{}: {}", g.name, about.join("; "));
        let mut planned = Vec::new();
        if let Some(c) = g.planned.concurrency {
            planned.push(format!("concurrency {}", count(c)));
        }
        if let Some(r) = g.planned.rate_per_s {
            planned.push(format!("rate {}/s", rate(r)));
        }
        if let Some(m) = g.planned.max_in_flight {
            planned.push(format!("max in flight {}", count(m)));
        }
        if let Some(n) = g.planned.requests {
            planned.push(format!("requests {}", count(n)));
        }
        if !planned.is_empty() {
            let _ = writeln!(out, "  planned    {}", planned.join(", "));
        }
        let f = &f.figures;
        let requests = f.requests();
        let per = |n: u64| f.per_s(n).map_or("-".to_owned(), rate);
        let ok = f.outcome(Outcome::Ok);
        let throttled = f.outcome(Outcome::Throttled) + f.outcome(Outcome::DailyQuota);
        let _ = writeln!(
            out,
            "  requests   {} ended ({}/s); ok {} ({}); throttled {} ({}); errors {}",
            count(requests),
            per(requests),
            count(ok),
            percent(ok, requests),
            count(throttled),
            percent(throttled, requests),
            count(requests.saturating_sub(ok + throttled)),
        );
        let ttft = f.histogram(Metric::TtftFromSend);
        let e2e = f.histogram(Metric::E2eFromSend);
        let show = |h, s| stat(h, s).map_or("-".to_owned(), duration_ns);
        let _ = writeln!(
            out,
            "  latency    TTFT p50 {} p99 {}; E2E p50 {} p99 {}; output tokens {} ({}/s)",
            show(ttft, LatencyStat::P50),
            show(ttft, LatencyStat::P99),
            show(e2e, LatencyStat::P50),
            show(e2e, LatencyStat::P99),
            count(f.tokens(TokenKind::Output)),
            per(f.tokens(TokenKind::Output)),
        );
    }
}

/// Per service tier the requests asked for (measured stages): requests,
/// throttles, 503s, TTFT and E2E percentiles, cost at the tier's price.
fn tiers(out: &mut String, figures: &RunFigures) {
    if figures.tiers.is_empty() {
        return;
    }
    out.push_str("\n== Service tiers (measured stages; by the tier each request asked for) ==\n");
    for t in &figures.tiers {
        let f = &t.figures;
        let requests = f.requests();
        let ok = f.outcome(Outcome::Ok);
        let throttled = f.outcome(Outcome::Throttled) + f.outcome(Outcome::DailyQuota);
        let unavailable = f.count(Count::Unavailable);
        let _ = writeln!(out, "{}:", t.label);
        let _ = writeln!(
            out,
            "  requests   {} ended; ok {} ({}); throttled {} ({}); 503 unavailable {} ({}); other errors {}",
            count(requests),
            count(ok),
            percent(ok, requests),
            count(throttled),
            percent(throttled, requests),
            count(unavailable),
            percent(unavailable, requests),
            count(requests.saturating_sub(ok + throttled + unavailable)),
        );
        let fallback = f.count(Count::TierFallback);
        if fallback > 0 {
            let _ = writeln!(
                out,
                "             {} ok served at another tier than asked (Reserved full: Standard), priced at the tier that served them",
                count(fallback)
            );
        }
        let ttft = f.histogram(Metric::TtftFromSend);
        let e2e = f.histogram(Metric::E2eFromSend);
        let show = |h, s| stat(h, s).map_or("-".to_owned(), duration_ns);
        let _ = writeln!(
            out,
            "  latency    TTFT p50 {} p99 {} (streaming ok); E2E p50 {} p99 {} (every ok)",
            show(ttft, LatencyStat::P50),
            show(ttft, LatencyStat::P99),
            show(e2e, LatencyStat::P50),
            show(e2e, LatencyStat::P99),
        );
        out.push_str("  ");
        cost(out, f);
    }
}

/// When requests were throttled: that the run met a quota wall, which quota
/// the service named, the demand it refused, and whether users paced.
fn quota_wall(out: &mut String, doc: &ResultsDocument, f: &Figures) {
    let requests = f.requests();
    let throttled = f.outcome(Outcome::Throttled) + f.outcome(Outcome::DailyQuota);
    if throttled == 0 {
        return;
    }
    out.push_str("\n== Quota wall (measured stages) ==\n");
    let _ = writeln!(
        out,
        "{} of {} requests ({}) ended throttled: this run measured the account's quota wall, not the model's capacity",
        count(throttled),
        count(requests),
        percent(throttled, requests),
    );
    let walls = [
        ("tokens per minute (TPM)", Count::ThrottlesTpm),
        ("requests per minute (RPM)", Count::ThrottlesRpm),
        ("tokens per day (TPD)", Count::ThrottlesTpd),
        ("no quota named", Count::ThrottlesUnnamed),
    ];
    let named: Vec<String> = walls
        .iter()
        .filter(|(_, c)| f.count(*c) > 0)
        .map(|(name, c)| format!("{name} {}", count(f.count(*c))))
        .collect();
    if named.is_empty() {
        out.push_str(
            "  quota hit: unknown (these results predate the throttle messages being kept)\n",
        );
    } else {
        let _ = writeln!(
            out,
            "  quota hit, by the throttle messages (throttled attempts, retries included): {}",
            named.join("; ")
        );
    }
    let per = |n: u64| f.per_s(n).map_or("-".to_owned(), rate);
    let with_usage = f
        .outcome(Outcome::Ok)
        .saturating_sub(f.count(Count::UsageMissing));
    let mean_reserved = f
        .count(Count::QuotaReserved)
        .checked_div(with_usage)
        .filter(|m| *m > 0);
    let refused_tokens = match mean_reserved {
        Some(mean) => format!(
            "about {} tokens/min (each throttled request at the mean quota reservation of the admitted ones, {} tokens)",
            f.per_s(throttled * mean)
                .map_or("-".to_owned(), |r| rate(r * 60.0)),
            count(mean)
        ),
        None => "tokens unknown (no request was admitted to measure a reservation)".to_owned(),
    };
    let _ = writeln!(
        out,
        "  refused demand: {} throttled requests/s; {refused_tokens}",
        per(throttled)
    );
    let pacing = match doc.plan.load.model() {
        LoadModel::Open { .. } => {
            "open loop: arrivals kept their schedule whatever the answers".to_owned()
        }
        LoadModel::Closed { .. } if doc.plan.on_throttle.is_none() => {
            "none: each virtual user sent its next request as soon as a throttle returned \
             (load.on_throttle = \"backoff\" or { think = \"1s\" } paces them)"
                .to_owned()
        }
        LoadModel::Closed { .. } => doc.plan.on_throttle.describe(),
    };
    let _ = writeln!(out, "  pacing after a throttle: {pacing}");
    walls_met(out, doc);
}

/// When the run first met each quota wall, by the throttle messages.
fn walls_met(out: &mut String, doc: &ResultsDocument) {
    for w in &doc.walls_met {
        let name = match w.wall.as_str() {
            "tokens_per_minute" => "tokens per minute (TPM)",
            "requests_per_minute" => "requests per minute (RPM)",
            "tokens_per_day" => "the daily token cap (TPD)",
            other => other,
        };
        let _ = writeln!(
            out,
            "  first met {name}: in the interval {}–{} into the run ({} throttles named it), \
             with between {} and {} quota tokens settled (before and through that interval, \
             every stage); {} tokens reported before it",
            duration_ns(w.interval_start_ns),
            duration_ns(w.interval_end_ns),
            count(w.throttles_in_interval),
            count(w.quota_settled_before),
            count(w.quota_settled_through),
            count(w.tokens_before),
        );
    }
}

/// A distribution of whole numbers as the spec writes it.
pub fn dist_text(d: &TokenDistribution) -> String {
    match *d {
        TokenDistribution::Fixed { tokens } => tokens.to_string(),
        TokenDistribution::Uniform { min, max } => format!("uniform {min}–{max}"),
        TokenDistribution::Normal {
            mean,
            stddev,
            min,
            max,
        } => format!("normal mean {mean} sd {stddev} ({min}–{max})"),
        TokenDistribution::LogNormal {
            mean,
            stddev,
            min,
            max,
        } => format!("lognormal mean {mean} sd {stddev} ({min}–{max})"),
    }
}

/// Multi-turn sessions: how they ended, per-session figures, and each
/// turn's figures against its index.
fn sessions(out: &mut String, doc: &ResultsDocument, figures: &RunFigures) {
    let Some(plan) = &doc.plan.sessions else {
        return;
    };
    let f = &figures.overall;
    let (completed, failed, unfinished) = (
        f.count(Count::SessionsCompleted),
        f.count(Count::SessionsFailed),
        f.count(Count::SessionsUnfinished),
    );
    out.push_str("\n== Sessions (measured stages, by the stage of their first turn) ==\n");
    let _ = writeln!(
        out,
        "{} started: {} completed, {} failed (a turn's final answer was an error), {} unfinished (the run ended first)",
        count(completed + failed + unfinished),
        count(completed),
        count(failed),
        count(unfinished),
    );
    let think = plan
        .think_time_ms()
        .map_or("none".to_owned(), |d| format!("{} ms", dist_text(d)));
    let _ = writeln!(
        out,
        "  plan: turns {}; think time {think}; conversation cache points {}",
        dist_text(plan.turns()),
        if plan.cache() { "on" } else { "off" },
    );
    if completed > 0 {
        let row = |metric: Metric, show: &dyn Fn(u64) -> String| {
            let h = f.histogram(metric);
            let at = |s| stat(h, s).map_or("-".to_owned(), show);
            format!(
                "p50 {} p95 {} p99 {} max {} mean {}",
                at(LatencyStat::P50),
                at(LatencyStat::P95),
                at(LatencyStat::P99),
                at(LatencyStat::Max),
                at(LatencyStat::Mean),
            )
        };
        let _ = writeln!(
            out,
            "  per completed session: duration (first send to last answer, think time included) {}",
            row(Metric::SessionDuration, &duration_ns)
        );
        let _ = writeln!(
            out,
            "  per completed session: tokens (input, cache read and write, output, as reported) {}",
            row(Metric::SessionTokens, &count)
        );
        if f.priced {
            let _ = writeln!(
                out,
                "  per completed session: cost {}",
                row(Metric::SessionCostNanoUsd, &|n| usd(n as f64 / 1e9))
            );
        } else {
            out.push_str("  per completed session: cost unknown (a model has no price)\n");
        }
    }
    if figures.turns.is_empty() {
        return;
    }
    out.push_str(
        "  per turn (tokens: mean over the turn's successful requests that reported usage):\n",
    );
    let _ = writeln!(
        out,
        "  {:>4} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "turn",
        "requests",
        "ok",
        "TTFT p50",
        "TTFT p99",
        "E2E p50",
        "input",
        "cache read",
        "output"
    );
    for (turn, t) in &figures.turns {
        let with_usage = t
            .outcome(Outcome::Ok)
            .saturating_sub(t.count(Count::UsageMissing));
        let mean = |n: u64| n.checked_div(with_usage).map_or("-".to_owned(), count);
        let input = t.tokens(TokenKind::Input)
            + t.tokens(TokenKind::CacheRead)
            + t.tokens(TokenKind::CacheWrite);
        let lat =
            |m: Metric, s: LatencyStat| stat(t.histogram(m), s).map_or("-".to_owned(), duration_ns);
        let _ = writeln!(
            out,
            "  {:>4} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10}",
            turn,
            count(t.requests()),
            count(t.outcome(Outcome::Ok)),
            lat(Metric::TtftFromSend, LatencyStat::P50),
            lat(Metric::TtftFromSend, LatencyStat::P99),
            lat(Metric::E2eFromSend, LatencyStat::P50),
            mean(input),
            mean(t.tokens(TokenKind::CacheRead)),
            mean(t.tokens(TokenKind::Output)),
        );
    }
}

/// A weight with at most six decimals and no trailing zeros (a group's
/// weight is the sum of its agents' parts, which may be off by an ulp).
fn trim_float(x: f64) -> String {
    let text = format!("{x:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One block of figures: requests, latencies, outcomes, tokens, cost.
fn section(out: &mut String, f: &Figures) {
    let requests = f.requests();
    let per = |n: u64| f.per_s(n).map_or("-".to_owned(), rate);
    let per_min = |n: u64| f.per_s(n).map_or("-".to_owned(), |r| rate(r * 60.0));
    let ok = f.outcome(Outcome::Ok);
    let _ = writeln!(
        out,
        "requests   {} ended ({}/s, {}/min); ok {} ({}/s)",
        count(requests),
        per(requests),
        per_min(requests),
        count(ok),
        per(ok),
    );
    latencies(out, f);
    outcomes(out, f);
    tokens(out, f);
    let _ = writeln!(
        out,
        "quota      reserved {} tokens ({}/min); settled {} tokens ({}/min)",
        count(f.count(Count::QuotaReserved)),
        per_min(f.count(Count::QuotaReserved)),
        count(f.count(Count::QuotaSettled)),
        per_min(f.count(Count::QuotaSettled)),
    );
    cost(out, f);
}

/// Cost: the total, per successful request, and what the requests that did
/// not succeed cost apart (throttled ones nothing: refused at admission).
fn cost(out: &mut String, f: &Figures) {
    let (Some(total), Some(failed_usd)) = (f.cost_usd(), f.cost_failed_usd()) else {
        out.push_str(
            "cost       no price (a model or service tier in this section has no price: [pricing], [tier_pricing])\n",
        );
        return;
    };
    let ok = f.outcome(Outcome::Ok);
    match f.cost_per_ok_request() {
        Some(each) => {
            let _ = writeln!(
                out,
                "cost       {} total; {} per successful request, {} per 1,000 (over {} ok)",
                usd(total),
                usd(each),
                usd(each * 1000.0),
                count(ok)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "cost       {} total; no successful request",
                usd(total)
            );
        }
    }
    let throttled = f.outcome(Outcome::Throttled) + f.outcome(Outcome::DailyQuota);
    let failed = f.requests().saturating_sub(ok + throttled);
    if throttled + failed > 0 {
        let _ = writeln!(
            out,
            "           throttled {} cost $0 (refused at admission, no usage billed); \
             other failures {} cost {} (priced from the usage they reported; none reported is priced $0)",
            count(throttled),
            count(failed),
            usd(failed_usd)
        );
    }
}

fn latencies(out: &mut String, f: &Figures) {
    let _ = write!(out, "{:<22}", "latency");
    for (name, _) in STATS {
        let _ = write!(out, "{name:>9}");
    }
    let _ = writeln!(out, "{:>9}", "count");
    for (label, metric) in LATENCIES {
        let h = f.histogram(metric);
        let optional = !matches!(metric, Metric::TtftFromSend | Metric::E2eFromSend);
        if h.is_empty() && optional {
            continue;
        }
        let _ = write!(out, "  {label:<20}");
        for (_, s) in STATS {
            let v = stat(h, s).map_or("-".to_owned(), duration_ns);
            let _ = write!(out, "{v:>9}");
        }
        let _ = writeln!(out, "{:>9}", h.len());
    }
    let streamed = f.histogram(Metric::TtftFromSend).len();
    let ok = f.histogram(Metric::E2eFromSend).len();
    if ok > 0 {
        let _ = writeln!(
            out,
            "  (TTFT, ITL and TPOT count ok streaming requests only, {} with a first token; \
             non-streaming requests are in E2E alone, which counts every ok request, {})",
            count(streamed),
            count(ok),
        );
    }
}

fn outcomes(out: &mut String, f: &Figures) {
    let requests = f.requests();
    out.push_str("outcomes  ");
    let mut any = false;
    for o in Outcome::ALL {
        let n = f.outcome(o);
        if n > 0 || o == Outcome::Ok {
            let _ = write!(
                out,
                " {} {} ({})",
                o.as_str(),
                count(n),
                percent(n, requests)
            );
            any = true;
        }
    }
    if !any {
        out.push_str(" none");
    }
    out.push('\n');
    let extra = [
        ("attempts", Count::Attempts),
        ("retries", Count::Retries),
        ("retried throttles", Count::RetriedThrottles),
        ("late sends", Count::LateSends),
        ("dropped sends", Count::DroppedSends),
        ("abandoned", Count::Abandoned),
        ("clamped values", Count::SaturatedValues),
        ("503 unavailable", Count::Unavailable),
        ("served at another tier", Count::TierFallback),
    ];
    let shown: Vec<String> = extra
        .iter()
        .filter(|(name, c)| f.count(*c) > 0 && (*name != "attempts" || f.count(Count::Retries) > 0))
        .map(|(name, c)| format!("{name} {}", count(f.count(*c))))
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(out, "           {}", shown.join("; "));
    }
}

fn tokens(out: &mut String, f: &Figures) {
    let kinds = [
        ("input", TokenKind::Input),
        ("output", TokenKind::Output),
        ("cache read", TokenKind::CacheRead),
        ("cache write", TokenKind::CacheWrite),
    ];
    let per = |n: u64| f.per_s(n).map_or("-".to_owned(), rate);
    let per_min = |n: u64| f.per_s(n).map_or("-".to_owned(), |r| rate(r * 60.0));
    for (name, kind) in kinds {
        let n = f.tokens(kind);
        if n == 0 && matches!(kind, TokenKind::CacheRead | TokenKind::CacheWrite) {
            continue;
        }
        let _ = writeln!(
            out,
            "tokens     {name:<11} {:>12} ({}/s, {}/min)",
            count(n),
            per(n),
            per_min(n)
        );
    }
    let sources: Vec<String> = USAGE_SOURCES
        .iter()
        .filter_map(|s| {
            let n: u64 = kinds
                .iter()
                .map(|(_, k)| f.count(Count::Tokens(*s, *k)))
                .sum();
            (n > 0).then(|| format!("{} {}", source_name(*s), count(n)))
        })
        .collect();
    let ok = f.outcome(Outcome::Ok);
    let missing = f.count(Count::UsageMissing);
    let _ = writeln!(
        out,
        "           provenance: {}; ok requests with reported usage {} of {}, without {}",
        if sources.is_empty() {
            "none".to_owned()
        } else {
            sources.join(", ")
        },
        count(ok.saturating_sub(missing)),
        count(ok),
        count(missing),
    );
}

/// How a usage provenance is named in the report (the counters' names).
fn source_name(source: UsageSource) -> &'static str {
    match source {
        UsageSource::ConverseUsage => "converse_usage",
        UsageSource::ResponseHeaders => "response_headers",
        UsageSource::InvocationMetrics => "invocation_metrics",
        UsageSource::NativeBody => "native_body",
        UsageSource::ClientEstimate => "client_estimate (not server-reported)",
    }
}

fn health(out: &mut String, doc: &ResultsDocument) {
    let h = &doc.health;
    let cpu = |v: Option<f64>| v.map_or("n/a".to_owned(), |c| format!("{c:.1}%"));
    out.push_str("\n== Load generator ==\n");
    let _ = writeln!(
        out,
        "cpu mean {} max {} (of one core); peak in flight {}; intervals {}",
        cpu(h.cpu_percent_mean),
        cpu(h.cpu_percent_max),
        count(h.in_flight_max),
        count(h.intervals)
    );
    let _ = writeln!(
        out,
        "schedule lag p99 (worst interval) {}; pool wait p99 (worst interval) {}",
        duration_ns(h.schedule_lag_p99_max_ns),
        duration_ns(h.pool_wait_p99_max_ns)
    );
    if doc.run.saturation_runtime_delay_p95_ns > 0 {
        let _ = writeln!(
            out,
            "runtime delay p95 (worst interval) {}: how long a task that became ready \
             waited for the generator's runtime, which every latency it stamps includes",
            duration_ns(h.runtime_delay_p95_max_ns)
        );
    }
    if h.saturated {
        let _ = writeln!(
            out,
            "WARNING: saturated load generator in {} of {} intervals: {}; \
             its latencies describe this machine, not the service, and cannot be trusted",
            h.saturated_intervals,
            h.intervals,
            saturation_signs(doc)
        );
    } else {
        let _ = writeln!(out, "not saturated ({})", saturation_bounds(doc));
    }
}

/// Which signs of a saturated load generator passed their bounds, and in
/// how many intervals: `CPU passed 90% of its cores in 3 intervals`.
pub fn saturation_signs(doc: &ResultsDocument) -> String {
    let h = &doc.health;
    let run = &doc.run;
    let by = h.saturated_by;
    let mut signs = Vec::new();
    let mut sign = |n: u64, what: String| {
        if n > 0 {
            signs.push(format!("{what} in {n}"));
        }
    };
    sign(
        by.schedule_lag,
        format!(
            "schedule-lag p99 passed {}",
            duration_ns(run.saturation_lag_p99_ns)
        ),
    );
    sign(
        by.cpu,
        format!(
            "CPU, less idle deadline polling, passed {:.0}% of the cores it may use",
            100.0 * run.saturation_cpu_share
        ),
    );
    sign(
        by.pool_wait,
        format!(
            "connection-pool-wait p99 passed {}",
            duration_ns(run.saturation_pool_wait_p99_ns)
        ),
    );
    sign(
        by.runtime_delay,
        format!(
            "runtime-delay p95 passed {}",
            duration_ns(run.saturation_runtime_delay_p95_ns)
        ),
    );
    if signs.is_empty() {
        // A document from before the signs were kept: lag was the only one.
        return format!(
            "schedule-lag p99 passed {}",
            duration_ns(run.saturation_lag_p99_ns)
        );
    }
    signs.join("; ")
}

/// The bounds a healthy run stayed under.
fn saturation_bounds(doc: &ResultsDocument) -> String {
    let run = &doc.run;
    let mut bounds = vec![format!(
        "schedule-lag p99 stayed under {}",
        duration_ns(run.saturation_lag_p99_ns)
    )];
    if run.saturation_cpu_share > 0.0 {
        bounds.push(format!(
            "CPU, less idle deadline polling, under {:.0}% of the cores it may use",
            100.0 * run.saturation_cpu_share
        ));
    }
    if run.saturation_pool_wait_p99_ns > 0 {
        bounds.push(format!(
            "pool-wait p99 under {}",
            duration_ns(run.saturation_pool_wait_p99_ns)
        ));
    }
    if run.saturation_runtime_delay_p95_ns > 0 {
        bounds.push(format!(
            "runtime-delay p95 under {}",
            duration_ns(run.saturation_runtime_delay_p95_ns)
        ));
    }
    bounds.join(", ")
}

fn simulator(out: &mut String, sim: &SimulatorView, client: &Figures) {
    out.push_str("\n== Simulator's view (every stage, warmup included) ==\n");
    let _ = writeln!(out, "{:<22}{:>14}{:>14}", "", "client", "simulator");
    let sim_outcome = |o: &str| -> u64 { sim.lanes.iter().filter_map(|l| l.requests.get(o)).sum() };
    let sim_total: u64 = sim.lanes.iter().flat_map(|l| l.requests.values()).sum();
    let mut row = |label: &str, a: u64, b: u64| {
        let _ = writeln!(out, "  {label:<20}{:>14}{:>14}", count(a), count(b));
    };
    row("requests", client.requests(), sim_total);
    for o in Outcome::ALL {
        let (a, b) = (client.outcome(o), sim_outcome(o.as_str()));
        if a > 0 || b > 0 {
            row(o.as_str(), a, b);
        }
    }
    let sum = |f: fn(&crate::results::SimLane) -> u64| -> u64 { sim.lanes.iter().map(f).sum() };
    row(
        "input tokens",
        client.tokens(TokenKind::Input),
        sum(|l| l.input_tokens),
    );
    row(
        "output tokens",
        client.tokens(TokenKind::Output),
        sum(|l| l.output_tokens),
    );
    row(
        "cache read tokens",
        client.tokens(TokenKind::CacheRead),
        sum(|l| l.cache_read_tokens),
    );
    row(
        "cache write tokens",
        client.tokens(TokenKind::CacheWrite),
        sum(|l| l.cache_write_tokens),
    );
    row(
        "quota reserved",
        client.count(Count::QuotaReserved),
        sim.quota.iter().map(|q| q.reserved_total).sum(),
    );
    row(
        "quota settled",
        client.count(Count::QuotaSettled),
        sim.quota.iter().map(|q| q.settled_total).sum(),
    );
    for l in &sim.lanes {
        let throttles: Vec<String> = l
            .throttles
            .iter()
            .map(|(r, n)| format!("{r} {}", count(*n)))
            .collect();
        if !throttles.is_empty() || l.aborted > 0 {
            let _ = writeln!(
                out,
                "  {}: throttles {}; aborted by the client {}",
                l.model,
                if throttles.is_empty() {
                    "none".to_owned()
                } else {
                    throttles.join(", ")
                },
                count(l.aborted)
            );
        }
    }
    for q in &sim.quota {
        let rpm = q
            .rpm
            .map_or(String::new(), |r| format!(", RPM {}", count(r)));
        let _ = writeln!(
            out,
            "  quota pool {} {} ({}): TPM {}, TPD {}{rpm}",
            q.model,
            q.scope,
            q.account_id,
            count(q.tpm),
            count(q.tpd)
        );
    }
}

fn thresholds(out: &mut String, doc: &ResultsDocument) {
    out.push_str("\n== Thresholds ==\n");
    if doc.thresholds.is_empty() {
        out.push_str("none set\n");
        return;
    }
    for t in &doc.thresholds {
        let verdict = if t.passed { "pass" } else { "FAIL" };
        let actual = t.actual.as_deref().unwrap_or("no data");
        let _ = writeln!(
            out,
            "  {verdict}  {} {} (got {actual})",
            t.key,
            t.condition.trim()
        );
    }
    let failed = doc.thresholds.iter().filter(|t| !t.passed).count();
    let _ = writeln!(
        out,
        "{failed} of {} thresholds broken",
        doc.thresholds.len()
    );
}

/// The distributed-run section that follows the report of a run on agents:
/// how many agents, their start skew, and any break in their streams'
/// merge (groups and partial shares are in `results.json` and rendered
/// above). Empty when there is nothing to say.
pub fn render_fleet_section(outcome: &SharesOutcome) -> String {
    let mut lines = Vec::new();
    if let Some(skew) = &outcome.start_skew {
        lines.push(format!(
            "{} agents; start skew {:.3} ms (± {:.3} ms)",
            outcome.shares.len(),
            skew.skew_ns as f64 / 1e6,
            skew.uncertainty_ns as f64 / 1e6
        ));
    }
    lines.extend(outcome.merge_errors.iter().cloned());
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nDistributed run\n");
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
    out
}
