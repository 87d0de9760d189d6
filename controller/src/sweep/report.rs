//! `report.txt` of a sweep: one row per level in three tables (load and
//! throughput, latency, quota/cost/SLO), then the finding. A pure function
//! of `sweep.json`.

use std::fmt::Write as _;

use super::level::{LevelRecord, Percentiles};
use super::{SweepDocument, value_text};
use crate::report::duration_ns;
use crate::spec::SweepVariable;

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn lat(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), duration_ns)
}

fn triple(p: &Percentiles) -> String {
    format!("{}/{}/{}", lat(p.p50_ns), lat(p.p95_ns), lat(p.p99_ns))
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:>w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}

/// The goodput cell: % of measured requests that succeeded within every
/// `[slo.request]` bound.
fn goodput(r: &LevelRecord) -> String {
    match &r.goodput {
        None => "-".to_owned(),
        Some(g) => format!("{:.2}%", 100.0 * g.fraction),
    }
}

fn quota_cells(r: &LevelRecord) -> [String; 4] {
    match r.quota.as_deref() {
        None | Some([]) => std::array::from_fn(|_| "unknown".to_owned()),
        Some(pools) => {
            let max = |f: &dyn Fn(&super::QuotaUse) -> Option<f64>| {
                let v = pools.iter().filter_map(f).reduce(f64::max);
                v.map_or_else(|| "unknown".to_owned(), |v| format!("{v:.1}%"))
            };
            [
                max(&|q| Some(q.tpm_admission_percent)),
                max(&|q| Some(q.tpm_settled_percent)),
                max(&|q| q.rpm_percent),
                max(&|q| Some(q.tpd_percent)),
            ]
        }
    }
}

/// The levels finished so far, for stderr after each level: the sweep's
/// live table (the running level has its own live line).
pub fn progress_table(levels: &[LevelRecord], variable: SweepVariable) -> String {
    let mut rows = vec![vec![
        "level".to_owned(),
        variable.as_str().to_owned(),
        "requests".to_owned(),
        "req/s".to_owned(),
        "stream tok/s p50".to_owned(),
        "TTFT p99".to_owned(),
        "throttle %att".to_owned(),
        "error %req".to_owned(),
        "goodput".to_owned(),
        "verdict".to_owned(),
    ]];
    for r in levels {
        rows.push(vec![
            (r.index + 1).to_string(),
            value_text(r.value),
            r.requests.to_string(),
            opt(r.requests_per_s, 2),
            opt(r.decode_tokens_per_s_per_stream_p50, 1),
            lat(r.ttft.p99_ns),
            opt(r.throttle_percent, 1),
            opt(r.error_percent, 1),
            goodput(r),
            r.verdict.as_str().to_owned(),
        ]);
    }
    table(&rows)
}

/// One finished level, for stderr while the sweep runs.
pub fn level_line(r: &LevelRecord, variable: SweepVariable) -> String {
    format!(
        "quarry: sweep level {} ({} = {}): {} measured requests, {} req/s, TTFT p99 {}, throttle {}% of attempts, error {}% of requests: {}",
        r.index + 1,
        variable.as_str(),
        value_text(r.value),
        r.requests,
        opt(r.requests_per_s, 2),
        lat(r.ttft.p99_ns),
        opt(r.throttle_percent, 1),
        opt(r.error_percent, 1),
        r.verdict.as_str()
    )
}

/// A level whose criteria or validity the report spells out.
fn noted(r: &LevelRecord) -> bool {
    !r.failed.is_empty() || !r.inconclusive.is_empty() || r.invalid_reason.is_some()
}

/// The sweep's `report.txt`.
pub fn render_sweep(doc: &SweepDocument) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "quarry sweep of {} ({} {}, {} level(s) run; ended: {})",
        doc.spec,
        doc.variable,
        doc.mode,
        doc.levels.len(),
        doc.ended
    );
    let _ = writeln!(out, "offered load: {} ({})", doc.variable, doc.unit);
    let _ = writeln!(
        out,
        "All figures are over each level's measured stages (warmup and cooldown excluded), \
         except quota use (the simulator's counters over the whole level)."
    );
    let _ = writeln!(out, "\n== Load and throughput ==");
    let mut rows = vec![vec![
        "offered".to_owned(),
        "ended".to_owned(),
        "requests".to_owned(),
        "req/s".to_owned(),
        "ok/s".to_owned(),
        "out tok/s".to_owned(),
        "stream tok/s p50".to_owned(),
        "req tok/s p50".to_owned(),
        "throttle %att".to_owned(),
        "error %req".to_owned(),
    ]];
    for r in &doc.levels {
        rows.push(vec![
            value_text(r.value),
            r.ended.clone(),
            r.requests.to_string(),
            opt(r.requests_per_s, 2),
            opt(r.ok_per_s, 2),
            opt(r.output_tokens_per_s, 1),
            opt(r.decode_tokens_per_s_per_stream_p50, 1),
            opt(r.output_tokens_per_s_per_request_p50, 1),
            opt(r.throttle_percent, 2),
            opt(r.error_percent, 2),
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "  req/s: measured requests ended per second (every outcome; the achieved load); ok/s: successful ones;\n  \
         stream tok/s: median decode rate of one stream (1 / TPOT: output tokens per second after the first);\n  \
         req tok/s: median output tokens / E2E of successful requests (TTFT included);\n  \
         throttle %att: throttled attempts (final and retried) over attempts; error %req: failed over measured requests."
    );
    let _ = writeln!(
        out,
        "\n== Latency p50/p95/p99 (successful requests, from send) =="
    );
    let mut rows = vec![vec![
        "offered".to_owned(),
        "TTFT".to_owned(),
        "E2E".to_owned(),
        "ITL".to_owned(),
        "TPOT".to_owned(),
    ]];
    for r in &doc.levels {
        rows.push(vec![
            value_text(r.value),
            triple(&r.ttft),
            triple(&r.e2e),
            triple(&r.itl),
            triple(&r.tpot),
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(out, "\n== Quota, cost and SLO ==");
    let mut rows = vec![vec![
        "offered".to_owned(),
        "TPM adm".to_owned(),
        "TPM settled".to_owned(),
        "RPM".to_owned(),
        "TPD".to_owned(),
        "$/1k ok".to_owned(),
        "goodput".to_owned(),
        "verdict".to_owned(),
    ]];
    for r in &doc.levels {
        let [adm, settled, rpm, tpd] = quota_cells(r);
        rows.push(vec![
            value_text(r.value),
            adm,
            settled,
            rpm,
            tpd,
            opt(r.cost_per_1k_ok_usd, 4),
            goodput(r),
            r.verdict.as_str().to_owned(),
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "  quota use: % of the busiest pool's limit (TPM: tokens reserved at admission / settled per minute of the level; \
         TPD: of the daily cap); 'unknown' when the limits are not visible (a real service).\n  \
         $/1k ok: cost per 1,000 successful requests ('-': unpriced or none succeeded).\n  \
         goodput: measured requests that succeeded with TTFT, TPOT and E2E of that request within every\n  \
         [slo.request] bound (judged by the load generator as each request ended), over measured requests.\n  \
         verdict: percentile and attainment claims pass only when shown at 99% confidence, fail only when\n  \
         refuted at 99% (binomial rule, docs/sweep-schema.md); in between, inconclusive (not passed)."
    );
    if doc
        .levels
        .iter()
        .any(|r| r.quota.as_ref().is_some_and(|q| !q.is_empty()) && r.measured_s < 60.0)
    {
        let _ = writeln!(
            out,
            "  Levels shorter than a minute: quota use is their token rate against the per-minute limit; \
             the quota window started empty, so such a level can pass 100% without being throttled."
        );
    }
    for r in doc.levels.iter().filter(|r| noted(r)) {
        let _ = write!(out, "\n  {} = {}:", doc.variable, value_text(r.value));
        if let Some(why) = &r.invalid_reason {
            let _ = write!(out, " invalid: {why}");
        }
        let judged = [("failed", &r.failed), ("inconclusive", &r.inconclusive)];
        for (how, criteria) in judged {
            for c in criteria {
                let actual = c.actual.as_deref().unwrap_or("no data");
                let _ = write!(
                    out,
                    " {how} {} {} (got {actual});",
                    c.key,
                    c.condition.trim()
                );
            }
        }
    }
    if doc.levels.iter().any(noted) {
        out.push('\n');
    }
    let _ = writeln!(out, "\n== Finding ==");
    let res = &doc.result;
    let level = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), value_text);
    let _ = writeln!(out, "  feasible_max:   {}", level(res.feasible_max));
    let _ = writeln!(out, "  infeasible_min: {}", level(res.infeasible_min));
    if let Some(end) = &res.search_end {
        let _ = writeln!(out, "  search ended:   {end}");
    }
    if let Some(t) = &res.target {
        let _ = writeln!(
            out,
            "  target:         {} = {}: {}",
            doc.variable,
            value_text(t.value),
            if t.met {
                "met (a level at or above it passed)"
            } else {
                "NOT met (no level at or above it passed)"
            }
        );
    }
    match &res.binding {
        None => {
            let _ = writeln!(out, "  binding:        none (no level failed)");
        }
        Some(b) => {
            let _ = writeln!(
                out,
                "  binding:        at {} = {}: {}{}",
                doc.variable,
                value_text(b.level),
                b.criterion.as_deref().unwrap_or("no SLO criterion"),
                b.wall
                    .as_deref()
                    .map_or_else(String::new, |w| format!("; wall: {w}"))
            );
        }
    }
    if !doc.not_run.is_empty() {
        let values: Vec<String> = doc.not_run.iter().map(|v| value_text(*v)).collect();
        let _ = writeln!(out, "  not run:        {}", values.join(", "));
    }
    out
}
