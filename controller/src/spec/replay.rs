//! `[load] replay = "trace.jsonl"`: a trace replayed at its recorded times
//! (docs/trace-schema.md), with `speed`, a window (`from`, `to`), `scale`
//! and `skip_bad`. The trace is read here, once, relative to the spec's
//! directory; its bad lines are findings like the spec's own.

use std::time::Duration;

use quarry_engine::{
    Arrival, EndCondition, LoadModel, LoadProfile, MAX_RATE_PER_S, Replay, Stage, StageKind,
    WorkloadMix,
};
use toml::Spanned;

use super::parse_duration;
use super::raw::RawLoad;
use super::validate::Checker;
use crate::replay::{
    Bound, BuildError, MAX_SCALE, ReplayOptions, build, parse_rfc3339, read_trace, render_issues,
    resolve,
};

/// The name of a replay's one stage.
pub(crate) const REPLAY_STAGE: &str = "replay";

/// The fastest replay: a million times the recorded pace.
const MAX_SPEED: f64 = 1_000_000.0;

/// What a replay puts in the plan.
pub(crate) struct SpecReplay {
    pub(crate) load: LoadProfile,
    pub(crate) mix: WorkloadMix,
    pub(crate) replay: Replay,
}

/// The fields of `[load]` that do not apply to a replay (the trace gives
/// every request's time).
fn conflicting(raw: &RawLoad) -> Vec<(std::ops::Range<usize>, &'static str)> {
    [
        (
            raw.concurrency.as_ref().map(Spanned::span),
            "load.concurrency",
        ),
        (raw.rate.as_ref().map(Spanned::span), "load.rate"),
        (raw.arrival.as_ref().map(Spanned::span), "load.arrival"),
        (raw.duration.as_ref().map(Spanned::span), "load.duration"),
        (raw.requests.as_ref().map(Spanned::span), "load.requests"),
        (raw.warmup.as_ref().map(Spanned::span), "load.warmup"),
        (raw.cooldown.as_ref().map(Spanned::span), "load.cooldown"),
        (
            raw.on_throttle.as_ref().map(Spanned::span),
            "load.on_throttle",
        ),
        (
            raw.stages
                .as_ref()
                .and_then(|s| s.first())
                .map(Spanned::span),
            "load.stages",
        ),
    ]
    .into_iter()
    .filter_map(|(span, field)| span.map(|s| (s, field)))
    .collect()
}

/// The replay-only fields, for an error when they come without `replay`.
pub(crate) fn replay_only(raw: &RawLoad) -> Vec<(std::ops::Range<usize>, &'static str)> {
    [
        (raw.speed.as_ref().map(Spanned::span), "load.speed"),
        (raw.from.as_ref().map(Spanned::span), "load.from"),
        (raw.to.as_ref().map(Spanned::span), "load.to"),
        (raw.scale.as_ref().map(Spanned::span), "load.scale"),
        (raw.skip_bad.as_ref().map(Spanned::span), "load.skip_bad"),
    ]
    .into_iter()
    .filter_map(|(span, field)| span.map(|s| (s, field)))
    .collect()
}

fn bound(c: &mut Checker, at: &Spanned<String>, field: &str) -> Option<Bound> {
    let text = at.get_ref();
    if let Ok(d) = parse_duration(text) {
        return Some(Bound::Offset(d));
    }
    match parse_rfc3339(text) {
        Ok(t) => Some(Bound::Time(t)),
        Err(_) => {
            let msg = format!(
                "{text:?} is neither an offset into the trace (\"30s\", \"2m\") nor an RFC 3339 time (\"2026-12-01T10:00:00Z\")"
            );
            c.error(at, field, msg);
            None
        }
    }
}

fn positive(c: &mut Checker, at: Option<&Spanned<f64>>, field: &str, max: f64) -> Option<f64> {
    let Some(at) = at else { return Some(1.0) };
    let v = *at.get_ref();
    if v.is_finite() && v > 0.0 && v <= max {
        Some(v)
    } else {
        c.error(
            at,
            field,
            format!("must be a number > 0 and at most {max}, got {v}"),
        );
        None
    }
}

/// Validates a replay `[load]` and reads its trace; `None` when any error
/// was recorded.
pub(crate) fn validate_replay(
    c: &mut Checker,
    l: &Spanned<RawLoad>,
    path: &Spanned<String>,
    seed: u64,
) -> Option<SpecReplay> {
    let raw = l.get_ref();
    let mut ok = true;
    for (span, field) in conflicting(raw) {
        c.error_at(
            Some(span),
            field,
            "does not apply to a replay: the trace gives every request's time (use speed, from, to and scale)",
        );
        ok = false;
    }
    let speed = positive(c, raw.speed.as_ref(), "load.speed", MAX_SPEED);
    let scale = positive(c, raw.scale.as_ref(), "load.scale", MAX_SCALE);
    let from = raw.from.as_ref().map(|f| bound(c, f, "load.from"));
    let to = raw.to.as_ref().map(|t| bound(c, t, "load.to"));
    let (cap, catch_up) = super::load::open_loop_limits(c, raw);
    if path.get_ref().trim().is_empty() {
        c.error(path, "load.replay", "must name a trace file");
        return None;
    }
    let file = resolve(c.spec_dir(), path.get_ref());
    let skip_bad = raw.skip_bad.as_ref().is_some_and(|s| *s.get_ref());
    let trace = match read_trace(&file, skip_bad) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                c.error_elsewhere(e);
            }
            return None;
        }
    };
    if !trace.skipped.is_empty() {
        let first = render_issues(&file, &trace.skipped[..1]).join("");
        let msg = format!(
            "skipped {} bad lines of {} ({} lines replayable); the first: {first}",
            trace.skipped.len(),
            file.display(),
            trace.lines.len()
        );
        c.warn(path, "load.replay", msg);
    }
    let (speed, scale, cap, catch_up) = (speed?, scale?, cap?, catch_up?);
    let opts = ReplayOptions {
        speed,
        from: from.flatten(),
        to: to.flatten(),
        scale,
    };
    if from.is_some_and(|f| f.is_none()) || to.is_some_and(|t| t.is_none()) || !ok {
        return None;
    }
    let built = match build(&trace, &opts, seed) {
        Ok(b) => b,
        Err(e) => {
            let at = match e {
                BuildError::TimeOnOffsets("load.from") => raw.from.as_ref(),
                BuildError::TimeOnOffsets(_) => raw.to.as_ref(),
                BuildError::Empty(_) => None,
            };
            let msg = e.to_string();
            match (at, e) {
                (Some(at), BuildError::TimeOnOffsets(field)) => c.error(at, field, msg),
                _ => c.error(path, "load.replay", msg),
            }
            return None;
        }
    };
    // The run lasts until the last deadline (and 1 ms, so the stage holds it).
    let last = built.replay.last_at_ns();
    let span = Duration::from_nanos(last).max(Duration::from_millis(1));
    let n = built.replay.requests().len() as f64;
    // The mean arrival rate: what the live view and the over-saturation
    // detector read as the offered load; arrivals follow the trace.
    let rate = (n / span.as_secs_f64()).clamp(f64::MIN_POSITIVE, MAX_RATE_PER_S);
    let model = LoadModel::open(rate, Arrival::Constant, cap, catch_up)
        .map_err(|e| c.error(l, "load", e.to_string()))
        .ok()?;
    let stage = Stage {
        name: REPLAY_STAGE.to_owned(),
        kind: StageKind::Hold,
        duration: Duration::from_nanos(last) + Duration::from_millis(1),
        target: None,
    };
    let load = LoadProfile::new(model, vec![stage], EndCondition::AfterStages)
        .map_err(|e| c.error(l, "load", e.to_string()))
        .ok()?;
    Some(SpecReplay {
        load,
        mix: built.mix,
        replay: built.replay,
    })
}
