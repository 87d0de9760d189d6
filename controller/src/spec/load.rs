//! Validation of `[load]` into the engine's [`LoadProfile`]: closed or open
//! model, the warmup/cooldown shorthands or explicit stages, and the end
//! condition.

use std::time::Duration;

use quarry_engine::{
    Arrival, CatchUp, EndCondition, LoadModel, LoadProfile, MAX_CONCURRENCY, MAX_RATE_PER_S,
    STEADY_STAGE, Stage, StageKind, ThrottlePacing,
};
use toml::Spanned;

use super::raw::{RawLoad, RawOnThrottle, RawStage};
use super::validate::Checker;

/// Validates `[load]`; `None` when any error was recorded.
pub(crate) fn validate_load(c: &mut Checker, l: &Spanned<RawLoad>) -> Option<LoadProfile> {
    let raw = l.get_ref();
    let replay_only = super::replay::replay_only(raw);
    for (span, field) in &replay_only {
        c.error_at(
            Some(span.clone()),
            *field,
            "only applies to a replay (load.replay = \"trace.jsonl\")",
        );
    }
    if !replay_only.is_empty() {
        return None;
    }
    let model = model(c, l);
    let end = match &raw.requests {
        None => Some(EndCondition::AfterStages),
        Some(n) => c
            .int_in(n, "load.requests", 1, i64::MAX)
            .map(EndCondition::Requests),
    };
    let warmup = raw.warmup.as_ref().map(|d| c.duration(d, "load.warmup"));
    let cooldown = raw
        .cooldown
        .as_ref()
        .map(|d| c.duration(d, "load.cooldown"));
    let middle = match (&raw.stages, &raw.duration) {
        (Some(_), Some(d)) => {
            c.error(
                d,
                "load.duration",
                "conflicts with [[load.stages]]: give each stage its own duration",
            );
            None
        }
        (Some(stages), None) => explicit_stages(c, stages, model.as_ref()),
        (None, Some(d)) => c.duration(d, "load.duration").map(|d| vec![steady(d)]),
        // Bounded by the request count alone: the hold lasts until it is reached.
        (None, None) if raw.requests.is_some() => {
            Some(vec![steady(Duration::from_nanos(u64::MAX))])
        }
        (None, None) => {
            c.error(
                l,
                "load",
                "needs duration = \"60s\", requests = N, or [[load.stages]] to know when to stop",
            );
            None
        }
    };
    let middle = middle.and_then(|m| shorthand_clash(c, raw, m));
    let mut stages = Vec::new();
    if let Some(w) = warmup {
        stages.push(Stage {
            name: "warmup".to_owned(),
            kind: StageKind::Warmup,
            duration: w?,
            target: None,
        });
    }
    stages.extend(middle?);
    if let Some(d) = cooldown {
        stages.push(Stage {
            name: "cooldown".to_owned(),
            kind: StageKind::Cooldown,
            duration: d?,
            target: None,
        });
    }
    match LoadProfile::new(model?, stages, end?) {
        Ok(profile) => Some(profile),
        Err(e) => {
            c.error(l, "load", e.to_string());
            None
        }
    }
}

/// The longest `on_throttle = { think = ... }` pause: a user that waits
/// longer than this after a throttle has stopped being load.
const MAX_THINK: Duration = Duration::from_secs(3600);

/// Validates `load.on_throttle`: `"none"` (the default), `"backoff"` (the
/// SDK standard back-off) or `{ think = "1s" }`, for a closed model only.
pub(crate) fn validate_on_throttle(
    c: &mut Checker,
    l: &Spanned<RawLoad>,
) -> Option<ThrottlePacing> {
    let raw = l.get_ref();
    let Some(at) = &raw.on_throttle else {
        return Some(ThrottlePacing::None);
    };
    let field = "load.on_throttle";
    let pacing = match at.get_ref() {
        RawOnThrottle::Name(name) if name == "none" => ThrottlePacing::None,
        RawOnThrottle::Name(name) if name == "backoff" => ThrottlePacing::sdk_backoff(),
        RawOnThrottle::Name(other) => {
            let msg = format!(
                "unknown value {other:?}: expected \"none\", \"backoff\" or {{ think = \"1s\" }}"
            );
            c.error(at, field, msg);
            return None;
        }
        RawOnThrottle::Table(t) => {
            let Some(think) = &t.think else {
                c.error(
                    at,
                    field,
                    "the table form needs think = \"1s\" (the pause after a throttle)",
                );
                return None;
            };
            let pause = c.duration(think, "load.on_throttle.think")?;
            if pause > MAX_THINK {
                let msg = format!("must be at most 1h, got {}", think.get_ref());
                c.error(think, "load.on_throttle.think", msg);
                return None;
            }
            ThrottlePacing::Think { pause }
        }
    };
    if raw.rate.is_some() && !pacing.is_none() {
        c.error(
            at,
            field,
            "only applies to a closed model (concurrency): an open loop's arrivals keep their schedule whatever the answers",
        );
        return None;
    }
    Some(pacing)
}

/// The warmup and cooldown shorthands add stages named "warmup" and
/// "cooldown"; an explicit stage of the same name would make the names clash.
fn shorthand_clash(c: &mut Checker, raw: &RawLoad, stages: Vec<Stage>) -> Option<Vec<Stage>> {
    let mut ok = true;
    for (shorthand, name, field) in [
        (&raw.warmup, "warmup", "load.warmup"),
        (&raw.cooldown, "cooldown", "load.cooldown"),
    ] {
        if let Some(at) = shorthand
            && stages.iter().any(|s| s.name == name)
        {
            let msg = format!(
                "conflicts with the stage named {name:?}: rename the stage or drop {field}"
            );
            c.error(at, field, msg);
            ok = false;
        }
    }
    ok.then_some(stages)
}

fn steady(duration: Duration) -> Stage {
    Stage {
        name: STEADY_STAGE.to_owned(),
        kind: StageKind::Hold,
        duration,
        target: None,
    }
}

fn model(c: &mut Checker, l: &Spanned<RawLoad>) -> Option<LoadModel> {
    let raw = l.get_ref();
    match (&raw.concurrency, &raw.rate) {
        (Some(_), Some(r)) => {
            let msg = "give either concurrency (closed model) or rate (open model), not both";
            c.error(r, "load.rate", msg);
            None
        }
        (None, None) => {
            let msg = "needs concurrency = N (closed model) or rate = R per second (open model)";
            c.error(l, "load", msg);
            None
        }
        (Some(n), None) => closed_model(c, l, n),
        (None, Some(r)) => open_model(c, l, r),
    }
}

fn closed_model(c: &mut Checker, l: &Spanned<RawLoad>, n: &Spanned<i64>) -> Option<LoadModel> {
    let raw = l.get_ref();
    let open_only = [
        (raw.arrival.as_ref().map(Spanned::span), "load.arrival"),
        (
            raw.max_in_flight.as_ref().map(Spanned::span),
            "load.max_in_flight",
        ),
        (
            raw.drop_late_after.as_ref().map(Spanned::span),
            "load.drop_late_after",
        ),
    ];
    for (span, field) in open_only {
        if span.is_some() {
            let msg = "only applies to an open model (rate), not to concurrency";
            c.error_at(span, field, msg);
        }
    }
    let n = c.int_in(n, "load.concurrency", 1, i64::from(MAX_CONCURRENCY))?;
    LoadModel::closed(n as u32)
        .map_err(|e| c.error(l, "load", e.to_string()))
        .ok()
}

/// `load.max_in_flight` and `load.drop_late_after`, which bound every open
/// loop (a rate or a replayed trace): `None` where the field was bad.
pub(crate) fn open_loop_limits(
    c: &mut Checker,
    raw: &RawLoad,
) -> (Option<Option<u32>>, Option<CatchUp>) {
    let cap = match &raw.max_in_flight {
        None => Some(None),
        Some(m) => c
            .int_in(m, "load.max_in_flight", 1, i64::from(MAX_CONCURRENCY))
            .map(|m| Some(m as u32)),
    };
    let catch_up = match &raw.drop_late_after {
        None => Some(CatchUp::SendLate),
        Some(d) => c
            .duration(d, "load.drop_late_after")
            .map(|after| CatchUp::Drop { after }),
    };
    (cap, catch_up)
}

fn open_model(c: &mut Checker, l: &Spanned<RawLoad>, r: &Spanned<f64>) -> Option<LoadModel> {
    let raw = l.get_ref();
    let rate = *r.get_ref();
    let rate_ok = rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_PER_S;
    if !rate_ok {
        let msg = if rate > MAX_RATE_PER_S {
            format!(
                "must be at most {MAX_RATE_PER_S} requests per second (what one dispatcher can schedule), got {rate}"
            )
        } else {
            format!("must be > 0 requests per second, got {rate}")
        };
        c.error(r, "load.rate", msg);
    }
    let arrival = match raw.arrival.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "constant")) => Some(Arrival::Constant),
        Some((_, "poisson")) => Some(Arrival::Poisson),
        Some((a, other)) => {
            let msg = format!("unknown arrival {other:?}: expected \"constant\" or \"poisson\"");
            c.error(a, "load.arrival", msg);
            None
        }
    };
    let (cap, catch_up) = open_loop_limits(c, raw);
    if !rate_ok {
        return None;
    }
    LoadModel::open(rate, arrival?, cap?, catch_up?)
        .map_err(|e| c.error(l, "load", e.to_string()))
        .ok()
}

fn explicit_stages(
    c: &mut Checker,
    raw: &[Spanned<RawStage>],
    model: Option<&LoadModel>,
) -> Option<Vec<Stage>> {
    let mut stages = Vec::new();
    let mut ok = true;
    // Names seen so far: one set, so validation stays linear in the stage
    // count (a scan of the earlier stages made 100,000 stages take 22 s).
    let mut names = std::collections::HashSet::new();
    for (i, s) in raw.iter().enumerate() {
        match stage(c, i, s, model) {
            Some(stage) => {
                if !names.insert(stage.name.clone()) {
                    c.error(
                        s,
                        format!("load.stages[{i}].name"),
                        format!(
                            "{:?} is used by an earlier stage: names must be unique",
                            stage.name
                        ),
                    );
                    ok = false;
                }
                stages.push(stage);
            }
            None => ok = false,
        }
    }
    if raw.is_empty() {
        c.error_at(None, "load.stages", "must contain at least one stage");
        ok = false;
    }
    ok.then_some(stages)
}

fn stage(
    c: &mut Checker,
    i: usize,
    s: &Spanned<RawStage>,
    model: Option<&LoadModel>,
) -> Option<Stage> {
    let raw = s.get_ref();
    let field = |name: &str| format!("load.stages[{i}].{name}");
    let kind = match raw.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
        None => {
            c.missing(
                s,
                &field("kind"),
                ": \"warmup\", \"ramp\", \"hold\" or \"cooldown\"",
            );
            None
        }
        Some((_, "warmup")) => Some(StageKind::Warmup),
        Some((_, "ramp")) => Some(StageKind::Ramp),
        Some((_, "hold")) => Some(StageKind::Hold),
        Some((_, "cooldown")) => Some(StageKind::Cooldown),
        Some((k, other)) => {
            c.error(k, field("kind"), format!("unknown stage kind {other:?}: expected \"warmup\", \"ramp\", \"hold\" or \"cooldown\""));
            None
        }
    };
    let duration = match &raw.duration {
        None => {
            c.missing(s, &field("duration"), " (e.g. duration = \"30s\")");
            None
        }
        Some(d) => c.duration(d, &field("duration")),
    };
    if let (Some(t), Some(m)) = (&raw.target, model) {
        let v = *t.get_ref();
        match m {
            LoadModel::Closed { .. }
                if !(v.fract() == 0.0 && (0.0..=f64::from(MAX_CONCURRENCY)).contains(&v)) =>
            {
                c.error(
                    t,
                    field("target"),
                    format!("must be a whole concurrency between 0 and {MAX_CONCURRENCY}, got {v}"),
                );
                return None;
            }
            LoadModel::Open { .. } if !(v.is_finite() && (0.0..=MAX_RATE_PER_S).contains(&v)) => {
                c.error(
                    t,
                    field("target"),
                    format!("must be a rate >= 0 and at most {MAX_RATE_PER_S} per second, got {v}"),
                );
                return None;
            }
            _ => {}
        }
    }
    let kind = kind?;
    let name = match &raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            c.error(n, field("name"), "must not be empty");
            return None;
        }
        Some(n) => n.get_ref().clone(),
        None => format!("{}-{i}", kind_name(kind)),
    };
    Some(Stage {
        name,
        kind,
        duration: duration?,
        target: raw.target.as_ref().map(|t| *t.get_ref()),
    })
}

fn kind_name(kind: StageKind) -> &'static str {
    match kind {
        StageKind::Warmup => "warmup",
        StageKind::Ramp => "ramp",
        StageKind::Hold => "hold",
        StageKind::Cooldown => "cooldown",
    }
}
