//! A comparison as a page (`quarry compare --html FILE`): the same
//! [`Comparison`] the text renders, through the report's page builder.
//! Every table is the text's, and each latency metric gets a chart of its
//! percentiles, baseline against candidate.

use super::render::{figure_difference, figure_shown, label, relative, run_verdict, signed_ns};
use super::{Comparison, FigureRow, PercentileRow, RunComparison, Significance, SweepComparison};
use crate::report::duration_ns;
use crate::report::html::{Axis, Cell, Chart, Page, Section, Series, Table};
use crate::sweep::value_text;

/// The page of `c`: one section per candidate against the baseline, the
/// method stated, and the text report at the end.
pub fn compare_page(c: &Comparison) -> Page {
    let mut page = Page::new(format!("quarry compare: {} inputs", c.inputs.len()));
    let mut inputs = Table::new(["input", "path"]);
    for (i, path) in c.inputs.iter().enumerate() {
        let name = label(i);
        let role = if i == 0 { " (baseline)" } else { "" };
        inputs.row([format!("{name}{role}"), path.clone()]);
    }
    let mut about = Section::new("Inputs and method");
    about.table(inputs);
    about.text(format!(
        "Latency percentiles are judged by this method (counts, rates and cost are shown, not tested): {}",
        c.method.description
    ));
    page.section(about);
    for (i, v) in c.comparisons.iter().enumerate() {
        let b = label(i + 1);
        if let Some(r) = &v.run {
            let mut section = Section::new(format!("{b} against A"));
            run_section(&mut section, r, &b, c.method.confidence, &format!("v{i}"));
            page.section(section);
        }
        if let Some(s) = &v.sweep {
            page.section(sweep_section(s, &b, c.method.confidence, i));
        }
    }
    let mut text = Section::new("As text");
    text.preformatted(super::render_text(c));
    page.section(text);
    page
}

fn figures_table(figures: &[FigureRow], b: &str) -> Table {
    let mut t = Table::new([
        "figure".to_owned(),
        "A".to_owned(),
        b.to_owned(),
        format!("{b} − A"),
        "change".to_owned(),
        "what (measured stages, every series)".to_owned(),
    ]);
    for f in figures {
        t.row([
            f.key.clone(),
            figure_shown(f, f.baseline),
            figure_shown(f, f.candidate),
            figure_difference(f),
            relative(f.relative),
            f.what.clone(),
        ]);
    }
    t
}

fn verdict_cell(p: &PercentileRow) -> Cell {
    match (&p.significance, &p.not_judged_reason) {
        (Significance::NotJudged, Some(why)) => Cell::from(format!("not judged: {why}")),
        (Significance::Higher, _) => Cell {
            text: Significance::Higher.latency_text().to_owned(),
            verdict: Some(false),
        },
        (Significance::Lower, _) => Cell {
            text: Significance::Lower.latency_text().to_owned(),
            verdict: Some(true),
        },
        (s, _) => Cell::from(s.latency_text()),
    }
}

fn percentiles_table(rows: &[PercentileRow], b: &str, confidence: f64) -> Table {
    let mut t = Table::new([
        "latency".to_owned(),
        format!("n A / n {b}"),
        "A".to_owned(),
        b.to_owned(),
        format!("{b} − A"),
        "change".to_owned(),
        format!("{:.0}% interval of {b} − A", confidence * 100.0),
        "verdict".to_owned(),
    ]);
    for p in rows {
        let show = |v: Option<u64>| v.map_or("-".to_owned(), duration_ns);
        let interval = p.interval_ns.map_or_else(
            || "-".to_owned(),
            |[lo, hi]| format!("[{}, {}]", signed_ns(lo), signed_ns(hi)),
        );
        t.row([
            Cell::from(format!("{} p{}", p.metric.to_uppercase(), p.percentile)),
            Cell::from(format!("{} / {}", p.baseline_n, p.candidate_n)),
            Cell::from(show(p.baseline_ns)),
            Cell::from(show(p.candidate_ns)),
            Cell::from(p.difference_ns.map_or("-".to_owned(), signed_ns)),
            Cell::from(relative(p.relative)),
            Cell::from(interval),
            verdict_cell(p),
        ]);
    }
    t
}

/// One chart per latency metric: A's and `b`'s value at each percentile
/// compared (x as the run page draws percentiles: 1 / (1 − q)).
fn percentile_charts(rows: &[PercentileRow], b: &str, id: &str) -> Vec<Chart> {
    let mut metrics: Vec<&str> = Vec::new();
    for p in rows {
        if !metrics.contains(&p.metric.as_str()) {
            metrics.push(&p.metric);
        }
    }
    let ms = |v: Option<u64>| v.map(|ns| ns as f64 / 1e6);
    metrics
        .into_iter()
        .filter_map(|metric| {
            let points: Vec<&PercentileRow> = rows
                .iter()
                .filter(|p| {
                    p.metric == metric && (p.baseline_ns.is_some() || p.candidate_ns.is_some())
                })
                .collect();
            if points.is_empty() {
                return None;
            }
            let mut chart = Chart::new(
                format!("{id}-{metric}"),
                format!("{}: A and {b} by percentile", metric.to_uppercase()),
                Axis::percentile(),
                Axis::from_zero("ms"),
            );
            chart.series(Series::new("A"));
            chart.series(Series::new(b));
            for p in points {
                let x = 1.0 / (1.0 - p.percentile / 100.0);
                chart.row(x, [ms(p.baseline_ns), ms(p.candidate_ns)]);
            }
            chart.note(format!("{}.", points_over(rows, metric)));
            Some(chart)
        })
        .collect()
}

fn points_over(rows: &[PercentileRow], metric: &str) -> String {
    rows.iter()
        .find(|p| p.metric == metric)
        .map_or_else(String::new, |p| p.over.clone())
}

fn run_section(section: &mut Section, r: &RunComparison, b: &str, confidence: f64, id: &str) {
    for (name, side) in [("A", &r.baseline), (b, &r.candidate)] {
        section.text(format!(
            "{name}: {}: run {} ({}, seed {}), started {}, {}, {}, measured window {}",
            side.path,
            side.run_id,
            side.spec,
            side.seed,
            side.started_at,
            side.ended,
            side.load,
            duration_ns((side.measured_s * 1e9) as u64)
        ));
    }
    section.text(format!("Verdict: {}", run_verdict(r, b)));
    section.table(figures_table(&r.figures, b));
    section.table(percentiles_table(&r.percentiles, b, confidence));
    for chart in percentile_charts(&r.percentiles, b, id) {
        section.chart(chart);
    }
}

fn sweep_section(s: &SweepComparison, b: &str, confidence: f64, i: usize) -> Section {
    let mut section = Section::new(format!("{b} against A (sweeps of {})", s.baseline.variable));
    let opt = |v: Option<f64>| v.map_or("none".to_owned(), value_text);
    let mut t = Table::new(["", "A", b]);
    t.row([
        format!("feasible max ({})", s.baseline.unit),
        opt(s.baseline.feasible_max),
        opt(s.candidate.feasible_max),
    ]);
    t.row([
        format!("infeasible min ({})", s.baseline.unit),
        opt(s.baseline.infeasible_min),
        opt(s.candidate.infeasible_min),
    ]);
    let binding = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
    t.row([
        "binding constraint".to_owned(),
        binding(&s.baseline.binding),
        binding(&s.candidate.binding),
    ]);
    section.table(t);
    // TTFT p99 of each level compared, A against B.
    let mut chart = Chart::new(
        format!("s{i}-ttft-p99"),
        format!("TTFT p99 by level: A and {b}"),
        Axis::linear(s.baseline.unit.clone()),
        Axis::from_zero("ms"),
    );
    chart.series(Series::new("A"));
    chart.series(Series::new(b));
    let mut any = false;
    for l in &s.levels {
        if let Some(p) = l
            .run
            .percentiles
            .iter()
            .find(|p| p.metric == "ttft" && p.percentile == 99.0)
        {
            any = true;
            let ms = |v: Option<u64>| v.map(|ns| ns as f64 / 1e6);
            chart.row(l.value, [ms(p.baseline_ns), ms(p.candidate_ns)]);
        }
    }
    if any {
        section.chart(chart);
    }
    for l in &s.levels {
        section.text(format!(
            "Level {} {}: A {}, {b} {}",
            value_text(l.value),
            s.baseline.unit,
            l.baseline_verdict,
            l.candidate_verdict
        ));
        let id = format!("s{i}-l{}", value_text(l.value).replace('.', "_"));
        run_section(&mut section, &l.run, b, confidence, &id);
    }
    section
}
