//! `[sessions]`: multi-turn conversations instead of single requests
//! (`quarry_engine::SessionPlan`).
//!
//! ```toml
//! [sessions]
//! turns = { dist = "uniform", min = 4, max = 12 }   # or turns = 8
//! think_time = "20s"                                 # or a table of durations
//! cache = true                                       # conversation cache points
//! ```
//!
//! `think_time` as a table: `{ dist = "uniform", min = "5s", max = "40s" }`
//! or `{ dist = "normal" | "lognormal", mean = "20s", stddev = "10s" }`
//! (optional `min`, `max`), in whole milliseconds.

use std::time::Duration;

use quarry_engine::{MAX_THINK_MS, MAX_TURNS, SessionPlan, TokenDistribution};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;

use super::raw::RawTokens;
use super::validate::Checker;

/// `[sessions]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    pub(crate) turns: Option<Spanned<RawTokens>>,
    pub(crate) think_time: Option<Spanned<RawThinkTime>>,
    pub(crate) cache: Option<Spanned<bool>>,
}

/// `think_time = "20s"` or a table of durations.
#[derive(Debug)]
pub(crate) enum RawThinkTime {
    Fixed(String),
    Table(RawThinkTable),
}

/// The table form of `think_time`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThinkTable {
    pub(crate) dist: Option<Spanned<String>>,
    pub(crate) mean: Option<Spanned<String>>,
    pub(crate) stddev: Option<Spanned<String>>,
    pub(crate) min: Option<Spanned<String>>,
    pub(crate) max: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawThinkTime {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawThinkTime;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a duration like \"20s\" or a table like { dist = \"uniform\", min = \"5s\", max = \"40s\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawThinkTime, E> {
                Ok(RawThinkTime::Fixed(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawThinkTime, A::Error> {
                RawThinkTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawThinkTime::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// Validates `[sessions]`; `replaying` when `[load] replay` is set (a
/// trace already says what each request is).
pub(crate) fn validate_sessions(
    c: &mut Checker,
    s: &Spanned<RawSessions>,
    replaying: bool,
) -> Option<SessionPlan> {
    let raw = s.get_ref();
    if replaying {
        c.error(
            s,
            "sessions",
            "conflicts with load.replay: a trace's requests are replayed as recorded (its session ids keep a conversation on one agent)",
        );
        return None;
    }
    let turns = match &raw.turns {
        None => {
            c.missing(s, "sessions.turns", ": a count like 8 or a distribution table");
            None
        }
        Some(t) => super::workload::tokens(c, "sessions.turns", t).and_then(|d| {
            if d.max_tokens() > MAX_TURNS {
                let msg = format!(
                    "must be at most {MAX_TURNS} turns (each turn index keeps its own histograms), got {}",
                    d.max_tokens()
                );
                c.error(t, "sessions.turns", msg);
                return None;
            }
            Some(d)
        }),
    };
    let think = match &raw.think_time {
        None => Some(None),
        Some(t) => think_time(c, t).map(Some),
    };
    let cache = raw.cache.as_ref().is_some_and(|c| *c.get_ref());
    match SessionPlan::new(turns?, think?, cache) {
        Ok(plan) => Some(plan),
        Err((field, reason)) => {
            c.error(s, format!("sessions.{field}"), reason);
            None
        }
    }
}

const THINK: &str = "sessions.think_time";

/// A think time in whole milliseconds, at most [`MAX_THINK_MS`]; zero is
/// allowed (no pause).
fn think_ms(c: &mut Checker, v: &Spanned<String>, field: &str) -> Option<u32> {
    let d = match crate::duration::parse_duration(v.get_ref()) {
        Ok(d) => d,
        Err(e) => {
            c.error(v, field, e);
            return None;
        }
    };
    let max = Duration::from_millis(u64::from(MAX_THINK_MS));
    if d > max {
        c.error(v, field, format!("must be at most 1h, got {}", v.get_ref()));
        return None;
    }
    // Within an hour: fits in u32 milliseconds.
    Some(d.as_millis() as u32)
}

fn think_time(c: &mut Checker, t: &Spanned<RawThinkTime>) -> Option<TokenDistribution> {
    let table = match t.get_ref() {
        RawThinkTime::Fixed(text) => {
            let ms = think_ms(c, &Spanned::new(t.span(), text.clone()), THINK)?;
            return Some(TokenDistribution::Fixed { tokens: ms });
        }
        RawThinkTime::Table(table) => table,
    };
    let part = |name: &str| format!("{THINK}.{name}");
    let ms = |c: &mut Checker, v: &Option<Spanned<String>>, name: &str| match v {
        None => Some(None),
        Some(v) => think_ms(c, v, &part(name)).map(Some),
    };
    let (mean, stddev) = (ms(c, &table.mean, "mean"), ms(c, &table.stddev, "stddev"));
    let (min, max) = (ms(c, &table.min, "min"), ms(c, &table.max, "max"));
    let (mean, stddev, min, max) = (mean?, stddev?, min?, max?);
    let Some(dist) = &table.dist else {
        c.missing(
            t,
            &part("dist"),
            ": \"uniform\", \"normal\" or \"lognormal\"",
        );
        return None;
    };
    let need = |c: &mut Checker, v: Option<u32>, name: &str| {
        if v.is_none() {
            c.missing(t, &part(name), &format!(" for dist = {:?}", dist.get_ref()));
        }
        v
    };
    let d = match dist.get_ref().as_str() {
        "uniform" => {
            if table.mean.is_some() || table.stddev.is_some() {
                c.error(
                    t,
                    part("mean"),
                    "mean and stddev do not apply to dist = \"uniform\"",
                );
                return None;
            }
            let (min, max) = (need(c, min, "min"), need(c, max, "max"));
            TokenDistribution::Uniform {
                min: min?,
                max: max?,
            }
        }
        name @ ("normal" | "lognormal") => {
            let (mean, stddev) = (need(c, mean, "mean")?, need(c, stddev, "stddev")?);
            let (mean, stddev) = (f64::from(mean), f64::from(stddev));
            super::workload::bell(name, mean, stddev, min.unwrap_or(0), max, MAX_THINK_MS)
        }
        other => {
            c.error(
                dist,
                part("dist"),
                format!("unknown distribution {other:?}: expected \"uniform\", \"normal\" or \"lognormal\""),
            );
            return None;
        }
    };
    Some(d)
}
