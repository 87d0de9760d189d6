//! From a class as entered (and the measured profile it names) to the figures
//! the arithmetic uses, each with its source: today's peak and average rate,
//! tokens per request, `max_tokens`, caching, how long a reservation is held.
//! Entered values win; a measured profile fills what is not entered; what
//! neither gives is either assumed (and listed) or reported missing.

use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::input::{CacheTtl, Demand, RouteMix, Slo, WorkloadClass};
use crate::measured::MeasuredDemand;
use crate::timeline::MINUTES_PER_DAY;

/// A class ready for arithmetic.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedClass {
    /// Index in the input (field paths use it).
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) interactive: bool,
    /// Requests per minute at today's peak.
    pub(crate) peak_rpm: Figure,
    /// Requests per minute averaged over 24 hours, today.
    pub(crate) average_rpm: Figure,
    /// For session demand: sessions per day and requests per session.
    pub(crate) sessions: Option<(Figure, Figure)>,
    /// Users served (for cost per user).
    pub(crate) users: Option<Figure>,
    /// Mean prompt tokens per request, cached prefix included.
    pub(crate) input_tokens: Figure,
    /// Mean output tokens per request.
    pub(crate) output_tokens: Figure,
    /// `max_tokens` sent; `None`: unset (the model's maximum is reserved).
    pub(crate) max_tokens: Option<Figure>,
    pub(crate) cache: Option<ResolvedCache>,
    /// Seconds a request holds its reservation.
    pub(crate) held_seconds: Figure,
    pub(crate) slo: Slo,
    /// Candidate models, the first in use.
    pub(crate) models: Vec<String>,
    pub(crate) routes: Vec<RouteMix>,
    pub(crate) curve: Option<String>,
}

/// Prompt caching of a class.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedCache {
    pub(crate) prefix_tokens: Figure,
    /// `None` when neither entered nor measured: caching cannot be quantified.
    pub(crate) hit_ratio: Option<Figure>,
    pub(crate) ttl: CacheTtl,
    pub(crate) in_use: bool,
}

impl ResolvedClass {
    /// Field path of this class's `field`.
    pub(crate) fn path(&self, field: &str) -> String {
        format!("class[{}].{field}", self.index)
    }
}

/// Resolves every class; a class that lacks demand or token sizes is left
/// out, and the plan says what to enter.
pub(crate) fn resolve_classes(ctx: &mut Ctx<'_>) -> Vec<ResolvedClass> {
    let input = ctx.input;
    input
        .classes
        .iter()
        .enumerate()
        .filter_map(|(index, class)| resolve_class(ctx, index, class))
        .collect()
}

fn resolve_class(ctx: &mut Ctx<'_>, index: usize, class: &WorkloadClass) -> Option<ResolvedClass> {
    let path = |f: &str| format!("class[{index}].{f}");
    let measured = measured_profile(ctx, index, class);
    let demand = resolve_demand(ctx, index, class, measured);
    let input_tokens = tokens(
        ctx,
        &path("input_tokens"),
        class.input_tokens.map(|t| t.mean),
        measured,
        "input tokens per request",
        |m| m.input_tokens.mean,
    );
    let output_tokens = tokens(
        ctx,
        &path("output_tokens"),
        class.output_tokens.map(|t| t.mean),
        measured,
        "output tokens per request",
        |m| m.output_tokens.mean,
    );
    let (Some((peak_rpm, average_rpm, sessions)), Some(input_tokens), Some(output_tokens)) =
        (demand, input_tokens, output_tokens)
    else {
        ctx.missing(
            format!("class {}", class.name),
            format!(
                "left out of the plan: enter its demand ({} and {}, or users or sessions) and {} and {}, or name a measured profile in {}",
                path("peak_rpm"),
                path("average_rpm"),
                path("input_tokens"),
                path("output_tokens"),
                path("measured")
            ),
        );
        return None;
    };
    if class.models.is_empty() {
        ctx.missing(
            format!("class {}", class.name),
            format!("left out of the plan: enter {}", path("models")),
        );
        return None;
    }
    Some(ResolvedClass {
        index,
        name: class.name.clone(),
        interactive: class.interactive,
        peak_rpm,
        average_rpm,
        sessions,
        users: class
            .users
            .map(|u| ctx.entered(&path("users"), u, Unit::Users)),
        input_tokens,
        output_tokens,
        max_tokens: max_tokens(ctx, index, class, measured),
        cache: resolve_cache(ctx, index, class, measured),
        held_seconds: held_seconds(ctx, index, class, measured),
        slo: class.slo.clone(),
        models: class.models.clone(),
        routes: class.routes.clone(),
        curve: class.curve.clone(),
    })
}

/// The measured profile a class names, if one was supplied.
fn measured_profile<'a>(
    ctx: &mut Ctx<'a>,
    index: usize,
    class: &WorkloadClass,
) -> Option<&'a MeasuredDemand> {
    let label = class.measured.as_ref()?;
    let found = ctx.input.measured.demand.iter().find(|d| &d.label == label);
    if found.is_none() {
        ctx.missing(
            format!("class {}", class.name),
            format!("class[{index}].measured names measured profile {label:?}, which no --from input supplied"),
        );
    }
    found
}

/// `max_tokens` as sent: entered, else measured; `None` when unset.
fn max_tokens(
    ctx: &mut Ctx<'_>,
    index: usize,
    class: &WorkloadClass,
    measured: Option<&MeasuredDemand>,
) -> Option<Figure> {
    match (
        class.max_tokens,
        measured.and_then(|m| m.max_tokens.map(|v| (m, v))),
    ) {
        (Some(v), _) => Some(ctx.entered(
            &format!("class[{index}].max_tokens"),
            v as f64,
            Unit::TokensPerRequest,
        )),
        (None, Some((m, v))) => Some(match &m.max_tokens_assumed {
            // Not recorded: the profile's stand-in, shown as what it is.
            Some(why) => ctx.assumed(
                &format!("max_tokens:{}", m.label),
                &format!("class {}: max_tokens is not entered: {why}", class.name),
                v as f64,
                Unit::TokensPerRequest,
            ),
            None => ctx.measured(
                &m.label,
                &m.source,
                "max_tokens",
                v as f64,
                Unit::TokensPerRequest,
            ),
        }),
        (None, None) => None,
    }
}

/// How long a request holds its reservation: entered, measured, or a full minute.
fn held_seconds(
    ctx: &mut Ctx<'_>,
    index: usize,
    class: &WorkloadClass,
    measured: Option<&MeasuredDemand>,
) -> Figure {
    match (class.mean_e2e_seconds, measured.and_then(|m| m.mean_e2e_seconds.map(|v| (m, v)))) {
        (Some(v), _) => ctx.entered(&format!("class[{index}].mean_e2e_seconds"), v, Unit::Seconds),
        (None, Some((m, v))) => ctx.measured(&m.label, &m.source, "mean end-to-end seconds", v, Unit::Seconds),
        (None, None) => ctx.assumed(
            "reservation_held_a_minute",
            "where a class's mean end-to-end time is not entered, each request is taken to hold its TPM reservation for a full minute (the conservative bound of the admission check)",
            60.0,
            Unit::Seconds,
        ),
    }
}

/// An entered token mean, else the measured one.
fn tokens(
    ctx: &mut Ctx<'_>,
    path: &str,
    entered: Option<f64>,
    measured: Option<&MeasuredDemand>,
    what: &str,
    pick: impl Fn(&MeasuredDemand) -> f64,
) -> Option<Figure> {
    match (entered, measured) {
        (Some(v), _) => Some(ctx.entered(path, v, Unit::TokensPerRequest)),
        (None, Some(m)) => {
            Some(ctx.measured(&m.label, &m.source, what, pick(m), Unit::TokensPerRequest))
        }
        (None, None) => None,
    }
}

type DemandFigures = (Figure, Figure, Option<(Figure, Figure)>);

fn resolve_demand(
    ctx: &mut Ctx<'_>,
    index: usize,
    class: &WorkloadClass,
    measured: Option<&MeasuredDemand>,
) -> Option<DemandFigures> {
    let path = |f: &str| format!("class[{index}].{f}");
    match class.demand {
        Some(Demand::Rate {
            peak_rpm,
            average_rpm,
        }) => Some((
            ctx.entered(&path("peak_rpm"), peak_rpm, Unit::RequestsPerMinute),
            ctx.entered(&path("average_rpm"), average_rpm, Unit::RequestsPerMinute),
            None,
        )),
        Some(Demand::Users {
            concurrent_users,
            requests_per_user_per_minute,
            average_concurrent_users,
        }) => Some(users_demand(
            ctx,
            index,
            class,
            concurrent_users,
            requests_per_user_per_minute,
            average_concurrent_users,
        )),
        Some(Demand::Sessions {
            sessions_per_day,
            requests_per_session,
            session_minutes,
            peak_concurrent_sessions,
        }) => {
            let per_day = ctx.entered(
                &path("sessions_per_day"),
                sessions_per_day,
                Unit::SessionsPerDay,
            );
            let per_session = ctx.entered(
                &path("requests_per_session"),
                requests_per_session,
                Unit::RequestsPerSession,
            );
            let minutes = ctx.entered(&path("session_minutes"), session_minutes, Unit::Minutes);
            let concurrent = ctx.entered(
                &path("peak_concurrent_sessions"),
                peak_concurrent_sessions,
                Unit::Concurrency,
            );
            let peak = Figure::computed(
                concurrent.value * per_session.value / minutes.value,
                Unit::RequestsPerMinute,
                "peak concurrent sessions × requests per session ÷ session minutes",
                [&concurrent, &per_session, &minutes],
            );
            let average = Figure::computed(
                per_day.value * per_session.value / MINUTES_PER_DAY,
                Unit::RequestsPerMinute,
                "sessions per day × requests per session ÷ 1,440 minutes",
                [&per_day, &per_session],
            );
            Some((peak, average, Some((per_day, per_session))))
        }
        None => measured_demand(ctx, class, measured?),
    }
}

fn users_demand(
    ctx: &mut Ctx<'_>,
    index: usize,
    class: &WorkloadClass,
    concurrent: f64,
    per_user: f64,
    average: Option<f64>,
) -> DemandFigures {
    let path = |f: &str| format!("class[{index}].{f}");
    let users = ctx.entered(&path("concurrent_users"), concurrent, Unit::Users);
    let rate = ctx.entered(
        &path("requests_per_user_per_minute"),
        per_user,
        Unit::RequestsPerMinute,
    );
    let average_users = match average {
        Some(a) => ctx.entered(&path("average_concurrent_users"), a, Unit::Users),
        None => {
            ctx.assume(format!(
                "class {}: average concurrent users not entered, taken as the peak's (daily totals and cost are upper bounds)",
                class.name
            ));
            users.clone()
        }
    };
    let peak = Figure::computed(
        users.value * rate.value,
        Unit::RequestsPerMinute,
        "concurrent users × requests per user per minute",
        [&users, &rate],
    );
    let average = Figure::computed(
        average_users.value * rate.value,
        Unit::RequestsPerMinute,
        "average concurrent users × requests per user per minute",
        [&average_users, &rate],
    );
    (peak, average, None)
}

fn measured_demand(
    ctx: &mut Ctx<'_>,
    class: &WorkloadClass,
    m: &MeasuredDemand,
) -> Option<DemandFigures> {
    let (peak, average) = (m.peak_rpm?, m.average_rpm?);
    if m.duration_s < 86_400.0 {
        ctx.assume(format!(
            "class {}: the average rate measured over {:.0} s in {} is taken as the 24-hour average",
            class.name, m.duration_s, m.label
        ));
    }
    let sessions = m.sessions.map(|s| {
        (
            ctx.measured(
                &m.label,
                &m.source,
                "sessions per day",
                s.per_day,
                Unit::SessionsPerDay,
            ),
            ctx.measured(
                &m.label,
                &m.source,
                "requests per session",
                s.requests_per_session,
                Unit::RequestsPerSession,
            ),
        )
    });
    Some((
        ctx.measured(
            &m.label,
            &m.source,
            "peak requests per minute",
            peak,
            Unit::RequestsPerMinute,
        ),
        ctx.measured(
            &m.label,
            &m.source,
            "average requests per minute",
            average,
            Unit::RequestsPerMinute,
        ),
        sessions,
    ))
}

fn resolve_cache(
    ctx: &mut Ctx<'_>,
    index: usize,
    class: &WorkloadClass,
    measured: Option<&MeasuredDemand>,
) -> Option<ResolvedCache> {
    let path = |f: &str| format!("class[{index}].cache.{f}");
    let measured_hit = measured.and_then(|m| m.cache_hit_ratio().map(|h| (m, h)));
    match class.cache {
        Some(c) => {
            let prefix_tokens = ctx.entered(
                &path("prefix_tokens"),
                c.prefix_tokens,
                Unit::TokensPerRequest,
            );
            let hit_ratio = match (c.hit_ratio, measured_hit) {
                (Some(h), _) => Some(ctx.entered(&path("hit_ratio"), h, Unit::Ratio)),
                (None, Some((m, h))) => {
                    Some(ctx.measured(&m.label, &m.source, "cache hit ratio", h, Unit::Ratio))
                }
                (None, None) => None,
            };
            Some(ResolvedCache {
                prefix_tokens,
                hit_ratio,
                ttl: c.ttl,
                in_use: c.in_use,
            })
        }
        None => {
            // A measured profile that read or wrote the cache already caches.
            let (m, h) = measured_hit?;
            let prefix = m.cache_read_tokens.unwrap_or(0.0) + m.cache_write_tokens.unwrap_or(0.0);
            Some(ResolvedCache {
                prefix_tokens: ctx.measured(
                    &m.label,
                    &m.source,
                    "cached prefix tokens per request",
                    prefix,
                    Unit::TokensPerRequest,
                ),
                hit_ratio: Some(ctx.measured(
                    &m.label,
                    &m.source,
                    "cache hit ratio",
                    h,
                    Unit::Ratio,
                )),
                ttl: CacheTtl::FiveMinutes,
                in_use: true,
            })
        }
    }
}
