//! A comparison as text: rendered from the [`Comparison`] document alone.

use std::fmt::Write as _;

use super::{
    Comparison, FigureRow, InputKind, PercentileRow, RunComparison, RunSide, Significance,
    SweepComparison, SweepSide, Versus,
};
use crate::report::{count, duration_ns, rate, usd};
use crate::sweep::value_text;

/// The label of the `i`-th input: `A`, `B`, ... then `#27`.
pub(super) fn label(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => char::from(b'A' + i).to_string(),
        _ => format!("#{}", i + 1),
    }
}

/// The comparison as printed by `quarry compare`.
pub fn render_text(c: &Comparison) -> String {
    let mut out = String::new();
    let noun = match c.kind {
        InputKind::Run => "runs",
        InputKind::Sweep => "sweeps",
    };
    let _ = writeln!(
        out,
        "quarry compare: {} {noun}; each compared to the baseline A",
        c.inputs.len()
    );
    for (i, v) in c.comparisons.iter().enumerate() {
        if i == 0 {
            header_line(&mut out, "A", v, true);
        }
        header_line(&mut out, &label(i + 1), v, false);
    }
    let _ = writeln!(
        out,
        "method (latency percentiles; counts, rates and cost are shown, not tested): {}",
        c.method.description
    );
    for (i, v) in c.comparisons.iter().enumerate() {
        let b = label(i + 1);
        if let Some(r) = &v.run {
            let _ = writeln!(out, "\n== {b} vs A ==");
            run_tables(&mut out, r, &b, c.method.confidence);
        }
        if let Some(s) = &v.sweep {
            let _ = writeln!(out, "\n== {b} vs A ==");
            sweep_tables(&mut out, s, &b, c.method.confidence);
        }
    }
    out
}

fn header_line(out: &mut String, name: &str, v: &Versus, baseline: bool) {
    if let Some(r) = &v.run {
        run_side(out, name, if baseline { &r.baseline } else { &r.candidate });
    }
    if let Some(s) = &v.sweep {
        sweep_side(out, name, if baseline { &s.baseline } else { &s.candidate });
    }
}

fn run_side(out: &mut String, name: &str, s: &RunSide) {
    let _ = writeln!(
        out,
        "  {name}  {}: run {} ({}, seed {}), started {}, {}, {}, measured window {}",
        s.path,
        s.run_id,
        s.spec,
        s.seed,
        s.started_at,
        s.ended,
        s.load,
        duration_ns((s.measured_s * 1e9) as u64)
    );
}

fn sweep_side(out: &mut String, name: &str, s: &SweepSide) {
    let _ = writeln!(
        out,
        "  {name}  {}: sweep of {} ({}) from {}, started {}, {}, {} levels",
        s.path, s.variable, s.unit, s.spec, s.started_at, s.ended, s.levels
    );
}

/// A signed value: `+` or `−` and `show` of its magnitude.
pub(super) fn signed(v: f64, show: impl Fn(f64) -> String) -> String {
    if v == 0.0 {
        return show(0.0);
    }
    let sign = if v < 0.0 { "−" } else { "+" };
    format!("{sign}{}", show(v.abs()))
}

pub(super) fn signed_ns(v: i64) -> String {
    signed(v as f64, |x| duration_ns(x as u64))
}

pub(super) fn relative(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| {
        signed(r, |x| format!("{:.1}%", x * 100.0))
    })
}

/// A figure's value in its unit.
pub(super) fn figure_value(unit: &str, v: f64) -> String {
    match unit {
        "requests" => count(v.round() as u64),
        "fraction" => format!("{:.2}%", v * 100.0),
        "USD" => usd(v),
        _ => rate(v),
    }
}

/// A figure row's baseline or candidate value, in its unit.
pub(super) fn figure_shown(f: &FigureRow, v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| figure_value(&f.unit, v))
}

/// A figure row's difference, signed (fractions in percentage points).
pub(super) fn figure_difference(f: &FigureRow) -> String {
    f.difference.map_or("-".to_owned(), |d| {
        if f.unit == "fraction" {
            signed(d, |x| format!("{:.2} pts", x * 100.0))
        } else {
            signed(d, |x| figure_value(&f.unit, x))
        }
    })
}

fn figure_line(out: &mut String, f: &FigureRow) {
    let show = |v: Option<f64>| figure_shown(f, v);
    let diff = figure_difference(f);
    let _ = writeln!(
        out,
        "{:<24}{:>13}{:>13}{:>14}{:>10}   {}",
        f.key,
        show(f.baseline),
        show(f.candidate),
        diff,
        relative(f.relative),
        f.what
    );
}

fn percentile_line(out: &mut String, p: &PercentileRow) {
    let show = |v: Option<u64>| v.map_or("-".to_owned(), duration_ns);
    let interval = p.interval_ns.map_or_else(
        || "-".to_owned(),
        |[lo, hi]| format!("[{}, {}]", signed_ns(lo), signed_ns(hi)),
    );
    let verdict = match (&p.significance, &p.not_judged_reason) {
        (Significance::NotJudged, Some(why)) => format!("not judged: {why}"),
        (s, _) => s.latency_text().to_owned(),
    };
    let _ = writeln!(
        out,
        "{:<10}{:>17}{:>11}{:>11}{:>11}{:>10}  {:<25}{verdict}",
        format!("{} p{}", p.metric.to_uppercase(), p.percentile),
        format!("{} / {}", count(p.baseline_n), count(p.candidate_n)),
        show(p.baseline_ns),
        show(p.candidate_ns),
        p.difference_ns.map_or("-".to_owned(), signed_ns),
        relative(p.relative),
        interval
    );
}

fn run_tables(out: &mut String, r: &RunComparison, b: &str, confidence: f64) {
    let _ = writeln!(
        out,
        "{:<24}{:>13}{:>13}{:>14}{:>10}   what (measured stages, every series)",
        "figure",
        "A",
        b,
        format!("{b} − A"),
        "change"
    );
    for f in &r.figures {
        figure_line(out, f);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<10}{:>17}{:>11}{:>11}{:>11}{:>10}  {:<25}verdict",
        "latency",
        format!("n A / n {b}"),
        "A",
        b,
        format!("{b} − A"),
        "change",
        format!("{:.0}% interval of {b} − A", confidence * 100.0)
    );
    for p in &r.percentiles {
        percentile_line(out, p);
    }
    let mut seen = Vec::new();
    for p in &r.percentiles {
        if !seen.contains(&&p.metric) {
            seen.push(&p.metric);
            let _ = writeln!(out, "  {}: {}", p.metric.to_uppercase(), p.over);
        }
    }
    let _ = writeln!(out, "verdict: {}", run_verdict(r, b));
}

pub(super) fn run_verdict(r: &RunComparison, b: &str) -> String {
    let judged = r
        .percentiles
        .iter()
        .filter(|p| p.significance != Significance::NotJudged)
        .count();
    let not_judged = r.percentiles.len() - judged;
    let upper = |v: &[String]| {
        v.iter()
            .map(|s| s.to_uppercase().replacen(" P", " p", 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !r.slower.is_empty() {
        parts.push(format!(
            "{b} is significantly SLOWER at {}",
            upper(&r.slower)
        ));
    }
    if !r.faster.is_empty() {
        parts.push(format!(
            "{b} is significantly FASTER at {}",
            upper(&r.faster)
        ));
    }
    let tail = if not_judged > 0 {
        format!(" ({judged} percentiles judged, {not_judged} not)")
    } else {
        format!(" ({judged} percentiles judged)")
    };
    if parts.is_empty() {
        if judged == 0 {
            return format!("nothing judged{tail}");
        }
        return format!("no significant difference in any judged latency percentile{tail}");
    }
    format!("{}{tail}", parts.join("; "))
}

fn opt_value(v: Option<f64>) -> String {
    v.map_or("none".to_owned(), value_text)
}

fn sweep_tables(out: &mut String, s: &SweepComparison, b: &str, confidence: f64) {
    let (x, y) = (&s.baseline, &s.candidate);
    let diff = s.feasible_max_difference.map_or(String::new(), |d| {
        format!("  ({b} − A: {})", signed(d, value_text))
    });
    let _ = writeln!(
        out,
        "feasible max ({}): A {}, {b} {}{diff}",
        x.unit,
        opt_value(x.feasible_max),
        opt_value(y.feasible_max)
    );
    let _ = writeln!(
        out,
        "infeasible min ({}): A {}, {b} {}",
        x.unit,
        opt_value(x.infeasible_min),
        opt_value(y.infeasible_min)
    );
    let binding = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
    let _ = writeln!(out, "binding constraint: A {}", binding(&x.binding));
    let _ = writeln!(out, "binding constraint: {b} {}", binding(&y.binding));
    let values = |v: &[f64]| {
        v.iter()
            .map(|x| value_text(*x))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !s.baseline_only.is_empty() {
        let _ = writeln!(
            out,
            "levels only A ran (not compared): {}",
            values(&s.baseline_only)
        );
    }
    if !s.candidate_only.is_empty() {
        let _ = writeln!(
            out,
            "levels only {b} ran (not compared): {}",
            values(&s.candidate_only)
        );
    }
    if s.levels.is_empty() {
        out.push_str("no level value was run by both sweeps: nothing compared level by level\n");
    }
    for l in &s.levels {
        let _ = writeln!(
            out,
            "\n-- level {} {}: A {}, {b} {} --",
            value_text(l.value),
            x.unit,
            l.baseline_verdict,
            l.candidate_verdict
        );
        run_tables(out, &l.run, b, confidence);
    }
    let slower: Vec<String> = s
        .levels
        .iter()
        .filter(|l| l.run.regressed())
        .map(|l| value_text(l.value))
        .collect();
    let _ = writeln!(
        out,
        "\nsweep verdict: {}",
        if slower.is_empty() {
            format!(
                "no level significantly slower in {b} ({} levels compared)",
                s.levels.len()
            )
        } else {
            format!(
                "{b} significantly slower at levels {} ({} levels compared)",
                slower.join(", "),
                s.levels.len()
            )
        }
    );
}
