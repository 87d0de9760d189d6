//! The run's page: percentile distributions from the merged histograms,
//! time series from `intervals.jsonl`, the breakdowns and thresholds of
//! [`RunReport`], and the text report.

use std::io::BufRead as _;
use std::path::Path;

use quarry_engine::Metric;
use serde::Deserialize;

use super::{Axis, Cell, Chart, MAX_CHART_ROWS, Page, Section, Series, Table, number};
use crate::report::duration_ns;
use crate::report::figures::RunFigures;
use crate::report::json::{REPORT_METRICS, RunReport, SectionSummary};
use crate::results::{
    HealthRecord, INTERVALS_FILE, IntervalSummary, ResultsDocument, ResultsError,
};

/// One interval's plotted figures, as `intervals.jsonl` holds them.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct TimePoint {
    /// Start, ns since the origin.
    pub start_ns: u64,
    /// End, ns since the origin.
    pub end_ns: u64,
    /// The load generator's health.
    pub health: HealthRecord,
    /// Headline figures.
    pub summary: IntervalSummary,
}

/// Reads the time series of a results directory: each line of
/// `intervals.jsonl` without its histograms (which a chart does not
/// need). A missing file is no intervals; a torn last line (a crash) is
/// left out, as recovery does.
pub fn read_time_series(dir: &Path) -> Result<Vec<TimePoint>, ResultsError> {
    let path = dir.join(INTERVALS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ResultsError::Io { path, source }),
    };
    let mut points = Vec::new();
    let mut lines = std::io::BufReader::new(file).lines().peekable();
    let mut number = 0;
    while let Some(line) = lines.next() {
        number += 1;
        let line = line.map_err(|source| ResultsError::Io {
            path: path.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<TimePoint>(&line) {
            Ok(p) => points.push(p),
            Err(_) if lines.peek().is_none() => break,
            Err(e) => {
                return Err(ResultsError::Json {
                    path,
                    line: Some(number),
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(points)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The percentile spectrum of one metric in both views (where it has two),
/// x = `1 / (1 - p)`, y in ms: the points `.hgrm` prints.
fn distribution(
    figures: &RunFigures,
    id: &str,
    title: &str,
    views: &[(Metric, &str)],
) -> Option<Chart> {
    let mut columns: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for (metric, label) in views {
        let h = figures.overall.histogram(*metric);
        if h.is_empty() {
            continue;
        }
        let points = h
            .iter_quantiles(crate::results::TICKS_PER_HALF_DISTANCE)
            .filter(|v| v.quantile_iterated_to() < 1.0)
            .map(|v| {
                let x = 1.0 / (1.0 - v.quantile_iterated_to());
                (x, ms(h.highest_equivalent(v.value_iterated_to())))
            })
            .collect();
        columns.push((*label, points));
    }
    if columns.is_empty() {
        return None;
    }
    let mut chart = Chart::new(id, title, Axis::percentile(), Axis::from_zero("ms"));
    for (label, _) in &columns {
        chart.series(Series::new(*label));
    }
    let mut xs: Vec<f64> = columns
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let values = columns
            .iter()
            .map(|(_, points)| points.iter().find(|p| p.0 == x).map(|p| p.1));
        chart.row(x, values.collect::<Vec<_>>());
    }
    chart.note(
        "Successful requests of the measured stages; the value at each percentile, read from the merged HDR histogram (as the .hgrm files print it; the maximum is in the table above).",
    );
    Some(chart)
}

/// A time-series column: its series and how to read its value off an interval.
type Column<'a> = (Series, &'a dyn Fn(&TimePoint) -> Option<f64>);

/// A time-series chart of `columns`, bucketed to [`MAX_CHART_ROWS`] rows
/// (each bucket's minimum, mean and maximum) when longer.
fn time_chart(
    points: &[TimePoint],
    id: &str,
    title: &str,
    y: Axis,
    columns: &[Column<'_>],
) -> Chart {
    let span_s = points.last().map_or(0.0, |p| p.end_ns as f64 / 1e9);
    let x = if span_s > 7_200.0 {
        Axis::hours("time since the run's start")
    } else {
        Axis::linear("s since the run's start")
    };
    let mut chart = Chart::new(id, title, x, y);
    for (s, _) in columns {
        chart.series(s.clone());
    }
    let at = |p: &TimePoint| p.end_ns as f64 / 1e9;
    if points.len() <= MAX_CHART_ROWS {
        for p in points {
            chart.row(at(p), columns.iter().map(|(_, f)| f(p)).collect::<Vec<_>>());
        }
    } else {
        let per = points.len().div_ceil(MAX_CHART_ROWS);
        for bucket in points.chunks(per) {
            let values: Vec<Option<[f64; 3]>> = columns
                .iter()
                .map(|(_, f)| {
                    let vs: Vec<f64> = bucket.iter().filter_map(f).collect();
                    if vs.is_empty() {
                        return None;
                    }
                    let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let mean = vs.iter().sum::<f64>() / vs.len() as f64;
                    Some([min, mean, max])
                })
                .collect();
            chart.band_row(at(&bucket[0]), values);
        }
        chart.note(format!(
            "{} intervals bucketed {per} to a row ({} rows): each row is its bucket's minimum, mean and maximum, at the end of the bucket's first interval; intervals.jsonl has every interval.",
            points.len(),
            points.len().div_ceil(per)
        ));
    }
    chart
}

fn interval_s(p: &TimePoint) -> f64 {
    (p.end_ns.saturating_sub(p.start_ns)) as f64 / 1e9
}

fn per_s(n: u64, p: &TimePoint) -> Option<f64> {
    let s = interval_s(p);
    (s > 0.0).then(|| n as f64 / s)
}

fn time_series(doc: &ResultsDocument, points: &[TimePoint]) -> Section {
    let mut s = Section::new("Over time");
    if points.is_empty() {
        s.text("No interval was recorded (intervals.jsonl is missing or empty).");
        return s;
    }
    s.text("Every stage, warmup and cooldown included, one point per interval of intervals.jsonl (the x value is the interval's end).");
    let mut c = time_chart(
        points,
        "requests",
        "Requests and throttles per second",
        Axis::from_zero("per s"),
        &[
            (Series::new("requests/s"), &|p| per_s(p.summary.requests, p)),
            (Series::new("ok/s"), &|p| per_s(p.summary.ok, p)),
            (Series::new("throttled/s"), &|p| {
                per_s(p.summary.throttled, p)
            }),
        ],
    );
    c.note("Requests that ended in the interval (every outcome), of them successful, of them throttled, over the interval's length.");
    s.chart(c);
    let c = time_chart(
        points,
        "in-flight",
        "Requests in flight",
        Axis::from_zero("requests"),
        &[(Series::new("in flight"), &|p| {
            Some(p.health.in_flight as f64)
        })],
    );
    s.chart(c);
    let mut c = time_chart(
        points,
        "ttft",
        "TTFT p50 and p99 per interval",
        Axis::from_zero("ms"),
        &[
            (Series::new("TTFT p50"), &|p| {
                (p.summary.ttft_p50_ns > 0).then(|| ms(p.summary.ttft_p50_ns))
            }),
            (Series::new("TTFT p99"), &|p| {
                (p.summary.ttft_p99_ns > 0).then(|| ms(p.summary.ttft_p99_ns))
            }),
        ],
    );
    c.note("From send, successful streaming requests that ended in the interval; no point where none did.");
    s.chart(c);
    let pools = doc
        .simulator
        .as_ref()
        .map(|v| v.quota.as_slice())
        .unwrap_or(&[]);
    let tpm_limit = match pools {
        [one] => Some(one.tpm as f64),
        _ => None,
    };
    let quota_label = match pools {
        [one] => format!("TPM quota ({} {} {})", one.account_id, one.model, one.scope),
        _ => "TPM quota".to_owned(),
    };
    let limit = move |_: &TimePoint| tpm_limit;
    let settled = |p: &TimePoint| per_s(p.summary.quota_settled, p).map(|r| r * 60.0);
    let mut columns: Vec<Column<'_>> = Vec::new();
    columns.push((Series::new("quota tokens settled per minute"), &settled));
    if tpm_limit.is_some() {
        columns.push((Series::reference(quota_label), &limit));
    }
    let mut c = time_chart(
        points,
        "quota",
        "Quota tokens per minute",
        Axis::from_zero("tokens per minute"),
        &columns,
    );
    c.note("Quota tokens settled in the interval (input, cache writes and output with its burndown, as Bedrock counts them), as a per-minute rate.");
    match pools {
        [] => {
            c.note("The quota line is unknown: the target was not the embedded simulator (a real service does not say its limit).");
        }
        [_] => {
            c.note("The dashed line is the simulator's TPM limit for the one pool the run used.");
        }
        many => {
            c.note(format!(
                "No quota line: the run used {} quota pools and intervals.jsonl does not split the tokens by pool (see the simulator's view in the text report).",
                many.len()
            ));
        }
    }
    s.chart(c);
    let mut c = time_chart(
        points,
        "schedule-lag",
        "Schedule lag p99",
        Axis::from_zero("ms"),
        &[(Series::new("schedule lag p99"), &|p| {
            Some(ms(p.health.schedule_lag_p99_ns))
        })],
    );
    c.note(format!(
        "How late requests were sent after they were due (open loop; 0 in a closed loop); the run calls the generator saturated past {}.",
        duration_ns(doc.run.saturation_lag_p99_ns)
    ));
    s.chart(c);
    if doc.run.saturation_runtime_delay_p95_ns > 0 {
        let mut c = time_chart(
            points,
            "runtime-delay",
            "Runtime delay p95",
            Axis::from_zero("ms"),
            &[(Series::new("runtime delay p95"), &|p| {
                Some(ms(p.health.runtime_delay_p95_ns))
            })],
        );
        c.note(format!(
            "How long a task that became ready waited for the load generator's runtime (its probe, 100 samples a second), which every latency it stamps includes; the run calls the generator saturated past {}.",
            duration_ns(doc.run.saturation_runtime_delay_p95_ns)
        ));
        s.chart(c);
    }
    let mut c = time_chart(
        points,
        "cpu",
        "Load generator CPU",
        Axis::from_zero("% of one core"),
        &[(Series::new("process CPU"), &|p| p.health.cpu_percent)],
    );
    c.note("The load generator process's CPU time over the interval's length (no point where it was not measured).");
    s.chart(c);
    s
}

fn lat_cell(
    s: &SectionSummary,
    metric: &str,
    pick: fn(&crate::report::json::LatencySummary) -> u64,
) -> String {
    s.latency
        .get(metric)
        .map_or_else(|| "-".to_owned(), |l| duration_ns(pick(l)))
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), number)
}

fn breakdown(title: &str, rows: &[SectionSummary]) -> Table {
    let mut t = Table::new([
        title,
        "requests",
        "ok",
        "throttled",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "E2E p50",
        "E2E p99",
        "TPOT p50",
        "$/1k ok",
    ]);
    for r in rows {
        let outcome = |o: &str| r.outcomes.get(o).copied().unwrap_or(0).to_string();
        t.row([
            r.label.clone(),
            r.requests.to_string(),
            outcome("ok"),
            outcome("throttled"),
            opt(r.requests_per_s),
            opt(r.output_tokens_per_s),
            lat_cell(r, "ttft", |l| l.p50_ns),
            lat_cell(r, "ttft", |l| l.p99_ns),
            lat_cell(r, "e2e", |l| l.p50_ns),
            lat_cell(r, "e2e", |l| l.p99_ns),
            lat_cell(r, "tpot", |l| l.p50_ns),
            opt(r.cost_per_1k_ok_usd),
        ]);
    }
    t
}

/// Multi-turn sessions: how they ended, per-session figures, and TTFT and
/// tokens against the turn number.
fn sessions_section(
    sessions: &crate::report::json::SessionsSummary,
    turns: &[SectionSummary],
) -> Section {
    let mut s = Section::new("Sessions");
    s.text(format!(
        "{} sessions started in the measured stages: {} completed, {} failed (a turn's final answer was an error, which ends the session), {} unfinished (the run ended first).",
        sessions.completed + sessions.failed + sessions.unfinished,
        sessions.completed,
        sessions.failed,
        sessions.unfinished
    ));
    let mut per = Table::new(["per completed session", "p50", "p95", "p99", "max", "mean"]);
    let row =
        |label: &str, l: &crate::report::json::LatencySummary, show: &dyn Fn(u64) -> String| {
            [
                label.to_owned(),
                show(l.p50_ns),
                show(l.p95_ns),
                show(l.p99_ns),
                show(l.max_ns),
                show(l.mean_ns),
            ]
        };
    if let Some(l) = &sessions.duration {
        per.row(row("duration (think time included)", l, &duration_ns));
    }
    if let Some(l) = &sessions.tokens {
        per.row(row("tokens (input, cache, output)", l, &|n| {
            number(n as f64)
        }));
    }
    if let Some(l) = &sessions.cost_nano_usd {
        per.row(row("cost, USD", l, &|n| number(n as f64 / 1e9)));
    }
    s.table(per);
    if turns.is_empty() {
        return s;
    }
    let turn_no = |t: &SectionSummary| {
        t.label
            .strip_prefix("turn ")
            .and_then(|n| n.parse::<f64>().ok())
    };
    let mut chart = Chart::new(
        "sessions-turns",
        "TTFT and input tokens against the turn number",
        Axis::linear("turn"),
        Axis::from_zero("TTFT, ms"),
    )
    .with_y2(Axis::from_zero(
        "input tokens per request (mean, cache included)",
    ));
    chart.series(Series::new("TTFT p50"));
    chart.series(Series::new("TTFT p99"));
    chart.series(Series::new("input tokens").on_y2());
    for t in turns {
        let Some(x) = turn_no(t) else { continue };
        let ttft = |pick: fn(&crate::report::json::LatencySummary) -> u64| {
            t.latency.get("ttft").map(|l| ms(pick(l)))
        };
        let ok = t.outcomes.get("ok").copied().unwrap_or(0);
        let input: u64 = ["input", "cache_read", "cache_write"]
            .iter()
            .map(|k| t.tokens.get(*k).copied().unwrap_or(0))
            .sum();
        let mean_input = (ok > 0).then(|| input as f64 / ok as f64);
        chart.row(x, [ttft(|l| l.p50_ns), ttft(|l| l.p99_ns), mean_input]);
    }
    chart.note("TTFT of the turn's successful streaming requests; input tokens over its successful requests, as the service reported them (the context grows by the last answer and the new question each turn).");
    s.chart(chart);
    s.table(breakdown("turn", turns));
    s
}

/// The page of a run: built from the document as read back, its figures
/// (computed once by [`crate::report::evaluate`]), its text report and
/// the time series of its `intervals.jsonl`.
pub fn run_page(
    doc: &ResultsDocument,
    figures: &RunFigures,
    text: &str,
    points: &[TimePoint],
) -> Page {
    let report = RunReport::of(doc, figures);
    let mut page = Page::new(format!("quarry run {}", doc.run.run_id));
    page.note(format!(
        "Spec {}; started {}; ended: {}; measured stages: {}.",
        doc.run.spec,
        doc.run.started_at,
        report.ended,
        report.measured_stages.join(", ")
    ));
    if doc.health.saturated {
        page.note(format!(
            "WARNING: the load generator was saturated in {} of {} intervals: the figures describe it, not the service.",
            doc.health.saturated_intervals, doc.health.intervals
        ));
    }

    let mut t = Section::new("Thresholds");
    if report.thresholds.is_empty() {
        t.text("The spec states no thresholds.");
    } else {
        let mut table = Table::new(["threshold", "condition", "measured", "verdict"]);
        for r in &report.thresholds {
            table.row([
                Cell::from(r.key.clone()),
                Cell::from(r.condition.trim().to_owned()),
                Cell::from(r.actual.clone().unwrap_or_else(|| "no data".to_owned())),
                Cell::verdict(r.passed),
            ]);
        }
        t.table(table);
    }
    page.section(t);

    let mut m = Section::new("Measured stages");
    m.text("Every figure below is over the measured stages (ramp and hold; warmup and cooldown excluded), all series merged; latencies of successful requests.");
    m.table(breakdown("section", std::slice::from_ref(&report.measured)));
    let mut lat = Table::new([
        "metric", "count", "min", "p50", "p90", "p95", "p99", "p99.9", "max",
    ]);
    for (_, name, title) in REPORT_METRICS {
        if let Some(l) = report.measured.latency.get(name) {
            lat.row([
                title.to_owned(),
                l.count.to_string(),
                duration_ns(l.min_ns),
                duration_ns(l.p50_ns),
                duration_ns(l.p90_ns),
                duration_ns(l.p95_ns),
                duration_ns(l.p99_ns),
                duration_ns(l.p999_ns),
                duration_ns(l.max_ns),
            ]);
        }
    }
    m.table(lat.caption("Latency percentiles"));
    page.section(m);

    let mut d = Section::new("Latency distributions");
    let charts = [
        distribution(
            figures,
            "dist-ttft",
            "TTFT",
            &[
                (Metric::TtftFromSend, "from send"),
                (Metric::TtftFromSchedule, "from schedule"),
            ],
        ),
        distribution(
            figures,
            "dist-e2e",
            "E2E",
            &[
                (Metric::E2eFromSend, "from send"),
                (Metric::E2eFromSchedule, "from schedule"),
            ],
        ),
        distribution(
            figures,
            "dist-itl",
            "ITL (inter-token latency)",
            &[(Metric::Itl, "ITL")],
        ),
        distribution(
            figures,
            "dist-tpot",
            "TPOT (time per output token)",
            &[(Metric::Tpot, "TPOT")],
        ),
    ];
    let mut any = false;
    for c in charts.into_iter().flatten() {
        any = true;
        d.chart(c);
    }
    if !any {
        d.text("No successful request was measured: there is no distribution to draw.");
    }
    d.text("\"From schedule\" counts from when an open-loop request was due, so it includes the time the generator waited (free of coordinated omission); a closed loop has only the \"from send\" view.");
    page.section(d);

    page.section(time_series(doc, points));

    if let Some(sessions) = &report.sessions {
        page.section(sessions_section(sessions, &report.turns));
    }

    let mut b = Section::new("Breakdown");
    if report.series.len() > 1 || !report.groups.is_empty() {
        if report.series.len() > 1 {
            b.table(breakdown(
                "series (group/model/operation/stage)",
                &report.series,
            ));
        }
        if !report.groups.is_empty() {
            b.table(breakdown("agent group", &report.groups));
        }
    } else if let Some(one) = report.series.first() {
        b.text(format!("One series: {}.", one.label));
    }
    page.section(b);

    let mut txt = Section::new("Text report");
    txt.text("report.txt as printed, with the load generator's health, token provenance, the quota wall and the simulator's view.");
    txt.preformatted(text);
    page.section(txt);
    page
}
