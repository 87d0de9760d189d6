//! The sweep's page, from `sweep.json` alone: latency against load with
//! the SLO bounds and the knee, throughput against load (the concurrency
//! wall), throttling and cost against load, and the levels' table.

use super::{Axis, Cell, Chart, Page, Section, Series, Table, number};
use crate::report::duration_ns;
use crate::sweep::{LevelRecord, Percentiles, SweepDocument, Verdict, value_text};
use crate::thresholds::{Bound, LatencyMetric, MetricPath, Threshold};

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e6)
}

/// The SLO bounds on a latency metric, as `(label, ms)`: `[slo.request]`'s
/// per-request bound and every `[slo.criteria]` percentile bound on it.
fn bounds(doc: &SweepDocument, metric: LatencyMetric, key: &str) -> Vec<(String, f64)> {
    let Some(slo) = &doc.slo else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let request = match metric {
        LatencyMetric::Ttft => slo.ttft_ns,
        LatencyMetric::Tpot => slo.tpot_ns,
        LatencyMetric::E2e => slo.e2e_ns,
        _ => None,
    };
    if let Some(ns) = request {
        out.push((format!("[slo.request] {key} bound"), ns as f64 / 1e6));
    }
    for (k, condition) in &slo.criteria {
        if let Ok(t) = Threshold::parse(k, condition)
            && let (MetricPath::Latency(m, _), Bound::Duration(d)) = (t.metric, t.bound)
            && m == metric
        {
            out.push((
                format!("SLO {k} {}", condition.trim()),
                d.as_secs_f64() * 1e3,
            ));
        }
    }
    out
}

/// Percentiles of one latency against load, with its SLO lines and the
/// knee marked on the p99 series.
fn latency_chart(
    doc: &SweepDocument,
    id: &str,
    title: &str,
    metric: LatencyMetric,
    key: &str,
    pick: fn(&LevelRecord) -> &Percentiles,
) -> Chart {
    let x = Axis::linear(format!("{} ({})", doc.variable, doc.unit));
    let mut chart = Chart::new(id, title, x, Axis::from_zero("ms")).with_points();
    let p99 = format!("{title} p99");
    chart.series(Series::new(format!("{title} p50")));
    chart.series(Series::new(format!("{title} p95")));
    chart.series(Series::new(p99.clone()));
    let lines = bounds(doc, metric, key);
    for (label, _) in &lines {
        chart.series(Series::reference(label.clone()));
    }
    for r in sorted(doc) {
        let p = pick(r);
        let mut values = vec![ms(p.p50_ns), ms(p.p95_ns), ms(p.p99_ns)];
        values.extend(lines.iter().map(|(_, v)| Some(*v)));
        chart.row(r.value, values);
    }
    knee(doc, &mut chart, &p99);
    chart.note("Successful requests of each level's measured stages, from send.");
    chart
}

/// Marks `feasible_max` (the knee: the highest level that passed) on
/// `series`.
fn knee(doc: &SweepDocument, chart: &mut Chart, series: &str) {
    if let Some(k) = doc.result.feasible_max {
        chart.annotate(
            series,
            k,
            "knee",
            format!(
                "feasible_max = {} {}: the highest level that passed",
                value_text(k),
                doc.unit
            ),
        );
    }
}

/// The levels in order of load (a search runs them out of order; an
/// extended level's first run is not in the list).
fn sorted(doc: &SweepDocument) -> Vec<&LevelRecord> {
    let mut levels: Vec<&LevelRecord> = doc.levels.iter().collect();
    levels.sort_by(|a, b| a.value.total_cmp(&b.value));
    levels
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), number)
}

/// The page of a sweep.
pub fn sweep_page(doc: &SweepDocument, text: &str) -> Page {
    let mut page = Page::new(format!("quarry sweep of {}", doc.spec));
    page.note(format!(
        "{} {} started {}; {} level(s) run; ended: {}. Offered load: {} ({}).",
        doc.variable,
        doc.mode,
        doc.started_at,
        doc.levels.len(),
        doc.ended,
        doc.variable,
        doc.unit
    ));
    let res = &doc.result;
    let level = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), value_text);
    let mut f = Section::new("Finding");
    let mut t = Table::new(["", ""]);
    t.row([
        "feasible_max (the knee)".to_owned(),
        level(res.feasible_max),
    ]);
    t.row(["infeasible_min".to_owned(), level(res.infeasible_min)]);
    if let Some(end) = &res.search_end {
        t.row(["search ended".to_owned(), end.clone()]);
    }
    if let Some(target) = &res.target {
        t.row([
            Cell::from(format!(
                "target {} = {}",
                doc.variable,
                value_text(target.value)
            )),
            Cell {
                text: if target.met { "met" } else { "NOT met" }.to_owned(),
                verdict: Some(target.met),
            },
        ]);
    }
    t.row([
        "binding".to_owned(),
        match &res.binding {
            None => "none (no level failed)".to_owned(),
            Some(b) => format!(
                "at {} = {}: {}{}",
                doc.variable,
                value_text(b.level),
                b.criterion.as_deref().unwrap_or("no SLO criterion"),
                b.wall
                    .as_deref()
                    .map_or_else(String::new, |w| format!("; wall: {w}"))
            ),
        },
    ]);
    f.table(t);
    page.section(f);

    let mut l = Section::new("Latency against load");
    l.chart(latency_chart(
        doc,
        "ttft",
        "TTFT",
        LatencyMetric::Ttft,
        "ttft",
        |r| &r.ttft,
    ));
    l.chart(latency_chart(
        doc,
        "e2e",
        "E2E",
        LatencyMetric::E2e,
        "e2e",
        |r| &r.e2e,
    ));
    l.chart(latency_chart(
        doc,
        "tpot",
        "TPOT",
        LatencyMetric::Tpot,
        "tpot",
        |r| &r.tpot,
    ));
    l.chart(latency_chart(
        doc,
        "itl",
        "ITL",
        LatencyMetric::Itl,
        "itl",
        |r| &r.itl,
    ));
    page.section(l);

    let x = || Axis::linear(format!("{} ({})", doc.variable, doc.unit));
    let mut th = Section::new("Throughput against load");
    let mut c = Chart::new(
        "throughput",
        "Output tokens per second",
        x(),
        Axis::from_zero("aggregate output tokens/s"),
    )
    .with_points()
    .with_y2(Axis::from_zero("per-stream tokens/s"));
    c.series(Series::new("aggregate output tok/s"));
    c.series(Series::new("per-stream decode tok/s p50").on_y2());
    c.series(Series::new("per-request tok/s p50").on_y2());
    for r in sorted(doc) {
        c.row(
            r.value,
            [
                r.output_tokens_per_s,
                r.decode_tokens_per_s_per_stream_p50,
                r.output_tokens_per_s_per_request_p50,
            ],
        );
    }
    knee(doc, &mut c, "aggregate output tok/s");
    c.note("Aggregate: output tokens of the level's measured requests per second. Per stream: the median decode rate of one stream (1 / TPOT). Per request: the median output tokens / E2E (TTFT included). Aggregate rising while per-stream falls is the concurrency wall.");
    th.chart(c);
    let mut c =
        Chart::new("rates", "Achieved load", x(), Axis::from_zero("requests/s")).with_points();
    c.series(Series::new("requests/s"));
    c.series(Series::new("ok/s"));
    for r in sorted(doc) {
        c.row(r.value, [r.requests_per_s, r.ok_per_s]);
    }
    c.note("Measured requests ended per second (every outcome), and the successful ones.");
    th.chart(c);
    page.section(th);

    let mut q = Section::new("Throttling and cost against load");
    let mut c = Chart::new(
        "throttle",
        "Throttled attempts and errors",
        x(),
        Axis::from_zero("%"),
    )
    .with_points();
    c.series(Series::new("throttle % of attempts"));
    c.series(Series::new("error % of requests"));
    for r in sorted(doc) {
        c.row(r.value, [r.throttle_percent, r.error_percent]);
    }
    knee(doc, &mut c, "throttle % of attempts");
    c.note("Throttled attempts (final and retried) over attempts; failed measured requests over measured requests.");
    q.chart(c);
    let mut c = Chart::new(
        "cost",
        "Cost per 1,000 successful requests",
        x(),
        Axis::from_zero("USD"),
    )
    .with_points();
    c.series(Series::new("$ per 1k ok"));
    for r in sorted(doc) {
        c.row(r.value, [r.cost_per_1k_ok_usd]);
    }
    c.note("The cost of each level's successful requests at the built-in prices, per 1,000 of them (no point: unpriced, or none succeeded).");
    q.chart(c);
    page.section(q);

    let mut lv = Section::new("Levels");
    let mut t = Table::new([
        "offered",
        "ended",
        "requests",
        "req/s",
        "out tok/s",
        "TTFT p99",
        "E2E p99",
        "throttle %att",
        "error %req",
        "$/1k ok",
        "goodput",
        "verdict",
        "dir",
    ]);
    for r in &doc.levels {
        let verdict = match r.verdict {
            Verdict::Pass => Cell::verdict(true),
            Verdict::Fail => Cell::verdict(false),
            other => Cell::from(other.as_str()),
        };
        t.row([
            Cell::from(value_text(r.value)),
            Cell::from(r.ended.clone()),
            Cell::from(r.requests.to_string()),
            Cell::from(opt(r.requests_per_s)),
            Cell::from(opt(r.output_tokens_per_s)),
            Cell::from(r.ttft.p99_ns.map_or_else(|| "-".to_owned(), duration_ns)),
            Cell::from(r.e2e.p99_ns.map_or_else(|| "-".to_owned(), duration_ns)),
            Cell::from(opt(r.throttle_percent)),
            Cell::from(opt(r.error_percent)),
            Cell::from(opt(r.cost_per_1k_ok_usd)),
            Cell::from(
                r.goodput
                    .map_or_else(|| "-".to_owned(), |g| format!("{:.2}%", 100.0 * g.fraction)),
            ),
            verdict,
            Cell::from(r.dir.clone()),
        ]);
    }
    lv.table(t);
    lv.text("Each level's own report.html is in its directory.");
    page.section(lv);

    let mut txt = Section::new("Text report");
    txt.preformatted(text);
    page.section(txt);
    page
}
