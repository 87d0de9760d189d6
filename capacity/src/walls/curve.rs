//! Walls read from measured curves (sweeps), and the sweeps' throttling held
//! against the quota arithmetic.
//!
//! Levels are taken in order of offered load; a level whose load generator
//! was saturated is skipped (it measured the generator, not the service).
//! - Latency wall: the first level where one of the class's latency
//!   objectives fails; the wall is the successful request rate of the level
//!   before it (the highest load measured to meet the SLO).
//! - Concurrency wall: the first level where throughput stops scaling: the
//!   per-stream output speed falls below the class's minimum, an open-loop
//!   level achieves under 95% of its offered rate, a closed-loop level
//!   achieves no more than the level before, or the sweep names service
//!   capacity or errors. Levels with more than 1% throttling are left out of
//!   this rule: they measure a quota, which the quota walls place.
//!
//! Both walls bind when the peak load of every class on the model reaches
//! that rate. The sweep's request shape stands in for the class's; the plan
//! says so when they differ.

use super::binding::place;
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::input::{LatencyMetric, LatencyObjective, Percentile};
use crate::load::Load;
use crate::measured::{CurveLevel, LatencyPercentiles, LoadVariable, MeasuredCurve};
use crate::num::num;
use crate::plan::{Binding, Check, Wall, WallKind};
use crate::resolve::ResolvedClass;

/// Throttling above this marks a level as measuring a quota.
const THROTTLED: f64 = 0.01;

/// The curve a class reads for `model`: the one it names, else one of the model.
fn find_curve<'a>(ctx: &Ctx<'a>, class: &ResolvedClass, model: &str) -> Option<&'a MeasuredCurve> {
    let curves = &ctx.input.measured.curves;
    match &class.curve {
        Some(label) => curves.iter().find(|c| &c.label == label),
        None => curves.iter().find(|c| c.model == model).or_else(|| {
            curves.iter().find(|c| {
                quarry_bedrock::base_model_id(&c.model) == quarry_bedrock::base_model_id(model)
            })
        }),
    }
}

/// Valid levels by offered load.
fn levels(curve: &MeasuredCurve) -> Vec<&CurveLevel> {
    let mut levels: Vec<&CurveLevel> = curve.levels.iter().filter(|l| !l.saturated).collect();
    levels.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    levels
}

/// Concurrency and latency walls of every class on every model of `load`.
pub(crate) fn curve_walls(ctx: &mut Ctx<'_>, classes: &[ResolvedClass], load: &Load) -> Vec<Wall> {
    let mut walls = Vec::new();
    for (model, model_load) in &load.models {
        let mut seen = Vec::new();
        for &index in &model_load.classes {
            if seen.contains(&index) {
                continue;
            }
            seen.push(index);
            if let Some(class) = classes.iter().find(|c| c.index == index) {
                walls.extend(class_walls(ctx, class, model, model_load.rpm_peak));
            }
        }
    }
    walls
}

/// The latency and concurrency walls of `class` on `model`, whose classes
/// together peak at `rpm` today.
fn class_walls(ctx: &mut Ctx<'_>, class: &ResolvedClass, model: &str, rpm: f64) -> Vec<Wall> {
    let Some(curve) = find_curve(ctx, class, model) else {
        ctx.missing(
            format!(
                "walls: concurrency and latency of class {} on {model}",
                class.name
            ),
            format!("no sweep of {model}: run `quarry sweep` on it and pass the sweep with --from"),
        );
        return Vec::new();
    };
    let levels = levels(curve);
    let mut walls = Vec::new();
    let on = Measuring {
        class,
        model,
        curve,
        levels: &levels,
        rpm_today: rpm,
    };
    if class.slo.latency.is_empty() {
        ctx.missing(
            format!("walls: latency of class {}", class.name),
            format!(
                "no latency objective: enter {} (ttft_p99_ms, e2e_p95_ms ...)",
                class.path("slo")
            ),
        );
    } else {
        let failure = levels
            .iter()
            .enumerate()
            .find_map(|(i, l)| latency_failure(&class.slo.latency, l).map(|why| (i, why)));
        walls.push(measured_wall(ctx, WallKind::Latency, &on, failure));
    }
    let failure = (0..levels.len())
        .find_map(|i| concurrency_failure(class, curve.variable, &levels, i).map(|why| (i, why)));
    walls.push(measured_wall(ctx, WallKind::Concurrency, &on, failure));
    walls
}

fn percentile(p: &LatencyPercentiles, which: Percentile) -> Option<f64> {
    match which {
        Percentile::P50 => p.p50,
        Percentile::P95 => p.p95,
        Percentile::P99 => p.p99,
    }
}

fn objective_name(o: &LatencyObjective) -> String {
    let metric = match o.metric {
        LatencyMetric::Ttft => "ttft",
        LatencyMetric::E2e => "e2e",
    };
    let p = match o.percentile {
        Percentile::P50 => "p50",
        Percentile::P95 => "p95",
        Percentile::P99 => "p99",
    };
    format!("{metric}.{p}")
}

/// The first latency objective `level` breaks, described.
fn latency_failure(objectives: &[LatencyObjective], level: &CurveLevel) -> Option<String> {
    objectives.iter().find_map(|o| {
        let measured = match o.metric {
            LatencyMetric::Ttft => percentile(&level.ttft_ms, o.percentile),
            LatencyMetric::E2e => percentile(&level.e2e_ms, o.percentile),
        }?;
        (measured > o.max_ms).then(|| {
            format!(
                "{} {} ms > {} ms",
                objective_name(o),
                num(measured),
                num(o.max_ms)
            )
        })
    })
}

/// Why level `i` shows throughput no longer scaling, if it does.
fn concurrency_failure(
    class: &ResolvedClass,
    variable: LoadVariable,
    levels: &[&CurveLevel],
    i: usize,
) -> Option<String> {
    let level = levels[i];
    if level.throttle_rate > THROTTLED {
        return None;
    }
    if let (Some(min), Some(speed)) = (
        class.slo.min_output_tokens_per_s,
        level.output_tokens_per_s_per_stream,
    ) && speed < min
    {
        return Some(format!(
            "{} output tokens/s per stream, below the SLO's {}",
            num(speed),
            num(min)
        ));
    }
    if let Some(failed) = &level.failed
        && (failed.contains("capacity") || failed.contains("error"))
    {
        return Some(format!("the sweep's verdict: {failed}"));
    }
    match variable {
        LoadVariable::Rate if level.achieved_rps < 0.95 * level.offered => Some(format!(
            "achieved {} req/s of {} offered",
            num(level.achieved_rps),
            num(level.offered)
        )),
        LoadVariable::Concurrency if i > 0 && level.achieved_rps <= levels[i - 1].achieved_rps => {
            Some(format!(
                "{} req/s at concurrency {}, no more than {} at {}",
                num(level.achieved_rps),
                num(level.offered),
                num(levels[i - 1].achieved_rps),
                num(levels[i - 1].offered)
            ))
        }
        _ => None,
    }
}

fn level_rpm(ctx: &mut Ctx<'_>, curve: &MeasuredCurve, level: &CurveLevel) -> Figure {
    let what = format!(
        "successful requests/s at offered load {}",
        num(level.offered)
    );
    let rps = ctx.measured(
        &curve.label,
        level.location(curve),
        &what,
        level.achieved_rps,
        Unit::RequestsPerSecond,
    );
    rps.derive(
        level.achieved_rps * 60.0,
        Unit::RequestsPerMinute,
        "measured successful requests/s × 60",
    )
}

/// A class on a model, read against one sweep.
struct Measuring<'a> {
    class: &'a ResolvedClass,
    model: &'a str,
    curve: &'a MeasuredCurve,
    levels: &'a [&'a CurveLevel],
    /// Peak RPM of every class on the model today.
    rpm_today: f64,
}

/// A measured wall from the first failing level (`None`: none failed).
fn measured_wall(
    ctx: &mut Ctx<'_>,
    kind: WallKind,
    on: &Measuring<'_>,
    failure: Option<(usize, String)>,
) -> Wall {
    let (limit, measured_binding, note) = measured_limit(ctx, on, failure);
    let mut notes = vec![note];
    notes.extend(shape_note(on.curve, on.class));
    let load_today = Figure::computed(
        on.rpm_today,
        Unit::RequestsPerMinute,
        format!("peak requests per minute on {}, all classes", on.model),
        [&on.class.peak_rpm],
    );
    let binds_at = limit.as_ref().filter(|_| on.rpm_today > 0.0).map(|l| {
        Figure::computed(
            l.value / on.rpm_today,
            Unit::DemandFactor,
            "measured capacity ÷ load today",
            [l, &load_today],
        )
    });
    let binds = measured_binding.unwrap_or_else(|| place(ctx, binds_at.as_ref().map(|f| f.value)));
    Wall {
        kind,
        scope: format!(
            "class {} on {} (sweep {})",
            on.class.name, on.model, on.curve.label
        ),
        pool: None,
        limit,
        accounts: 1,
        load_today: Some(load_today),
        binds_at,
        binds,
        at_binding: Vec::new(),
        fixed: true,
        adjustable: None,
        quota_name: None,
        quota_code: None,
        notes,
    }
}

/// The measured capacity: the successful rate of the last level before the
/// failure; a binding when it is not a matter of growth (failing already at
/// the lowest level, or never failing); and what the sweep showed.
fn measured_limit(
    ctx: &mut Ctx<'_>,
    on: &Measuring<'_>,
    failure: Option<(usize, String)>,
) -> (Option<Figure>, Option<Binding>, String) {
    let levels = on.levels;
    match failure {
        Some((0, why)) => (
            levels.first().map(|l| level_rpm(ctx, on.curve, l)),
            Some(Binding::Already),
            format!("fails at the lowest level measured: {why}"),
        ),
        Some((i, why)) => (
            Some(level_rpm(ctx, on.curve, levels[i - 1])),
            None,
            format!(
                "holds up to offered load {}, breaks at {}: {why}",
                num(levels[i - 1].offered),
                num(levels[i].offered)
            ),
        ),
        None => (
            levels.last().map(|l| level_rpm(ctx, on.curve, l)),
            Some(Binding::BeyondMeasured),
            "did not break within the load measured: the wall is beyond the highest level"
                .to_owned(),
        ),
    }
}

/// Says so when the sweep's requests are far from the class's.
fn shape_note(curve: &MeasuredCurve, class: &ResolvedClass) -> Option<String> {
    let shape = curve.request?;
    let (i, o) = (class.input_tokens.value, class.output_tokens.value);
    let near = |a: f64, b: f64| (0.5..=2.0).contains(&(a / b.max(1.0)));
    (!near(shape.input_tokens, i) || !near(shape.output_tokens, o)).then(|| {
        format!(
            "the sweep's requests ({} in, {} out) differ from class {}'s ({} in, {} out) by more than 2×: sweep the class's shape",
            num(shape.input_tokens),
            num(shape.output_tokens),
            class.name,
            num(i),
            num(o)
        )
    })
}

/// Each sweep's throttling held against the quota arithmetic for its own
/// request shape and quotas (when the sweep recorded them).
pub(crate) fn quota_checks(ctx: &mut Ctx<'_>) -> Vec<Check> {
    let curves = ctx.input.measured.curves.clone();
    curves.iter().filter_map(|c| quota_check(ctx, c)).collect()
}

fn quota_check(ctx: &mut Ctx<'_>, curve: &MeasuredCurve) -> Option<Check> {
    let shape = curve.request?;
    let tpm = curve.quota_tpm? as f64;
    let info = crate::models::model_info(ctx, &curve.model);
    let reserved_output = shape
        .max_tokens
        .map(|m| m as f64)
        .or(info.max_output.as_ref().map(|m| m.value))?;
    let levels = levels(curve);
    let first = levels.iter().position(|l| l.throttle_rate > THROTTLED);
    // A reservation is held for the request's time: the E2E median where throttling began.
    let held = first
        .and_then(|i| levels[i].e2e_ms.p50)
        .map_or(60.0, |ms| ms / 1000.0);
    let reserved = shape.input_tokens + reserved_output;
    let settled = shape.input_tokens + shape.output_tokens * info.burndown.value;
    if settled <= 0.0 || tpm <= 0.0 {
        return None;
    }
    let window = settled + (held / 60.0).min(1.0) * (reserved - settled);
    let mut wall = ((tpm - reserved).max(0.0) / window).min(tpm / settled);
    if let Some(rpm) = curve.quota_rpm {
        wall = wall.min(rpm as f64);
    }
    let arithmetic = Figure::computed(
        wall,
        Unit::RequestsPerMinute,
        "the lowest of RPM quota, (TPM − reservation) ÷ window tokens per request, TPM ÷ settled tokens per request",
        [&info.burndown],
    );
    let (measured, agrees, note) = measured_throttling(ctx, curve, &levels, first, wall);
    Some(Check {
        subject: format!(
            "sweep {} of {}: where the quota wall binds",
            curve.label, curve.model
        ),
        arithmetic: Some(arithmetic),
        measured: Some(measured),
        agrees: Some(agrees),
        note,
    })
}

/// Where the sweep's throttling began, and whether `wall` (RPM) agrees: in
/// an open loop it must fall between the last unthrottled and the first
/// throttled offered rate (±10%); in a closed loop the successful rate at
/// the first throttled level is the quota's, within 15%.
fn measured_throttling(
    ctx: &mut Ctx<'_>,
    curve: &MeasuredCurve,
    levels: &[&CurveLevel],
    first: Option<usize>,
    wall: f64,
) -> (Figure, bool, String) {
    let offered_rpm = |l: &CurveLevel| match curve.variable {
        LoadVariable::Rate => l.offered * 60.0,
        LoadVariable::Concurrency => l.achieved_rps * 60.0,
    };
    match first {
        Some(i) => {
            let at = offered_rpm(levels[i]);
            let below = if i > 0 {
                offered_rpm(levels[i - 1])
            } else {
                0.0
            };
            let agrees = match curve.variable {
                LoadVariable::Rate => wall >= below * 0.9 && wall <= at * 1.1,
                LoadVariable::Concurrency => (wall - at).abs() <= 0.15 * at,
            };
            let what = format!("first throttled level (offered {})", num(levels[i].offered));
            let m = ctx.measured(
                &curve.label,
                levels[i].location(curve),
                &what,
                at,
                Unit::RequestsPerMinute,
            );
            (
                m,
                agrees,
                format!(
                    "throttling began between {} and {} requests per minute",
                    num(below),
                    num(at)
                ),
            )
        }
        None => {
            let top = levels.last().map_or(0.0, |l| offered_rpm(l));
            let m = ctx.measured(
                &curve.label,
                levels
                    .last()
                    .map_or(curve.source.as_str(), |l| l.location(curve)),
                "highest level without throttling",
                top,
                Unit::RequestsPerMinute,
            );
            (
                m,
                wall >= top * 0.9,
                format!("no level throttled, up to {} requests per minute", num(top)),
            )
        }
    }
}
