//! `[[class]]` validation: demand in one of its three forms (rates, users,
//! sessions) or from a measured profile, token counts, `max_tokens`,
//! caching, SLO, candidate models and routing mixes.

use toml::Spanned;

use super::check::{Checker, NumberRule};
use super::raw::{RawCache, RawClass, RawRoute, RawSlo, RawTokens};
use crate::input::{
    CacheProfile, CacheTtl, Demand, LatencyMetric, LatencyObjective, Percentile, RouteMix, Slo,
    WorkloadClass,
};
use crate::measured::TokenStat;

pub(super) fn validate_classes(
    c: &mut Checker,
    classes: &[Spanned<RawClass>],
) -> Vec<WorkloadClass> {
    let mut out: Vec<WorkloadClass> = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        let Some(valid) = validate_class(c, i, class) else {
            continue;
        };
        if out.iter().any(|k| k.name == valid.name) {
            if let Some(name) = &class.get_ref().name {
                c.error(
                    name,
                    format!("class[{i}].name"),
                    format!(
                        "{:?} names another class too: names must be unique",
                        valid.name
                    ),
                );
            }
            continue;
        }
        out.push(valid);
    }
    out
}

fn validate_class(c: &mut Checker, i: usize, class: &Spanned<RawClass>) -> Option<WorkloadClass> {
    let path = |f: &str| format!("class[{i}].{f}");
    let raw = class.get_ref();
    let name = c
        .required(raw.name.as_ref(), class.span(), &path("name"))
        .and_then(|n| c.text(n, &path("name")));
    let measured = raw
        .measured
        .as_ref()
        .and_then(|m| c.text(m, &path("measured")));
    let demand = demand(c, i, class, measured.is_some());
    let input_tokens = tokens(
        c,
        raw.input_tokens.as_ref(),
        &path("input_tokens"),
        measured.is_some(),
        class.span(),
    );
    let output_tokens = tokens(
        c,
        raw.output_tokens.as_ref(),
        &path("output_tokens"),
        measured.is_some(),
        class.span(),
    );
    let max_tokens = max_tokens(c, i, raw, output_tokens);
    let models = models(c, i, raw, class);
    let cache = raw
        .cache
        .as_ref()
        .and_then(|k| cache(c, i, k, input_tokens));
    let routes = raw.route.as_deref().unwrap_or_default();
    let routes = routes
        .iter()
        .enumerate()
        .filter_map(|(r, route)| self::route(c, i, r, route))
        .collect();
    Some(WorkloadClass {
        name: name?,
        interactive: raw.interactive.as_ref().is_none_or(|v| {
            c.record(&path("interactive"), v.span());
            *v.get_ref()
        }),
        demand: demand?,
        input_tokens,
        output_tokens,
        max_tokens,
        cache,
        mean_e2e_seconds: c.opt_number(
            raw.mean_e2e_seconds.as_ref(),
            &path("mean_e2e_seconds"),
            NumberRule::Positive,
        ),
        users: c.opt_number(raw.users.as_ref(), &path("users"), NumberRule::Positive),
        slo: raw.slo.as_ref().map(|s| slo(c, i, s)).unwrap_or_default(),
        models: models?,
        routes,
        measured,
        curve: raw.curve.as_ref().and_then(|v| c.text(v, &path("curve"))),
    })
}

/// The class's demand: `Some(None)` when a measured profile supplies it.
fn demand(
    c: &mut Checker,
    i: usize,
    class: &Spanned<RawClass>,
    measured: bool,
) -> Option<Option<Demand>> {
    let path = format!("class[{i}].peak_rpm");
    let raw = class.get_ref();
    let forms = [
        raw.peak_rpm.is_some() || raw.average_rpm.is_some(),
        raw.concurrent_users.is_some()
            || raw.requests_per_user_per_minute.is_some()
            || raw.average_concurrent_users.is_some(),
        raw.sessions_per_day.is_some()
            || raw.requests_per_session.is_some()
            || raw.session_minutes.is_some()
            || raw.peak_concurrent_sessions.is_some(),
    ];
    match forms.iter().filter(|f| **f).count() {
        0 if measured => Some(None),
        0 => {
            c.error(class, path, "no demand: give peak_rpm and average_rpm, or concurrent_users and requests_per_user_per_minute, or sessions_per_day, requests_per_session, session_minutes and peak_concurrent_sessions, or name a measured profile");
            None
        }
        1 if forms[0] => rate_form(c, i, class).map(Some),
        1 if forms[1] => users_form(c, i, class).map(Some),
        1 => sessions_form(c, i, class).map(Some),
        _ => {
            c.error(
                class,
                path,
                "give demand in one form only: rates, users, or sessions",
            );
            None
        }
    }
}

/// A required positive number of a class.
fn need(
    c: &mut Checker,
    i: usize,
    class: &Spanned<RawClass>,
    v: &Option<Spanned<f64>>,
    field: &str,
) -> Option<f64> {
    let path = format!("class[{i}].{field}");
    c.required(v.as_ref(), class.span(), &path)
        .and_then(|v| c.number(v, &path, NumberRule::Positive))
}

fn rate_form(c: &mut Checker, i: usize, class: &Spanned<RawClass>) -> Option<Demand> {
    let raw = class.get_ref();
    let peak = need(c, i, class, &raw.peak_rpm, "peak_rpm");
    let average = need(c, i, class, &raw.average_rpm, "average_rpm");
    let (peak, average) = (peak?, average?);
    if average > peak {
        c.error_at(
            raw.average_rpm.as_ref().map(Spanned::span),
            format!("class[{i}].average_rpm"),
            format!("{average} is above peak_rpm ({peak})"),
        );
        return None;
    }
    Some(Demand::Rate {
        peak_rpm: peak,
        average_rpm: average,
    })
}

fn users_form(c: &mut Checker, i: usize, class: &Spanned<RawClass>) -> Option<Demand> {
    let raw = class.get_ref();
    let users = need(c, i, class, &raw.concurrent_users, "concurrent_users");
    let rate = need(
        c,
        i,
        class,
        &raw.requests_per_user_per_minute,
        "requests_per_user_per_minute",
    );
    let path = format!("class[{i}].average_concurrent_users");
    let average = c.opt_number(
        raw.average_concurrent_users.as_ref(),
        &path,
        NumberRule::Positive,
    );
    let (users, rate) = (users?, rate?);
    if average.is_some_and(|a| a > users) {
        c.error_at(
            raw.average_concurrent_users.as_ref().map(Spanned::span),
            path,
            format!("is above concurrent_users ({users})"),
        );
        return None;
    }
    Some(Demand::Users {
        concurrent_users: users,
        requests_per_user_per_minute: rate,
        average_concurrent_users: average,
    })
}

fn sessions_form(c: &mut Checker, i: usize, class: &Spanned<RawClass>) -> Option<Demand> {
    let raw = class.get_ref();
    let per_day = need(c, i, class, &raw.sessions_per_day, "sessions_per_day");
    let per_session = need(
        c,
        i,
        class,
        &raw.requests_per_session,
        "requests_per_session",
    );
    let minutes = need(c, i, class, &raw.session_minutes, "session_minutes");
    let peak = need(
        c,
        i,
        class,
        &raw.peak_concurrent_sessions,
        "peak_concurrent_sessions",
    );
    let (per_day, per_session, minutes, peak) = (per_day?, per_session?, minutes?, peak?);
    let average = per_day * minutes / crate::timeline::MINUTES_PER_DAY;
    if average > peak * (1.0 + 1e-9) {
        c.error_at(
            raw.peak_concurrent_sessions.as_ref().map(Spanned::span),
            format!("class[{i}].peak_concurrent_sessions"),
            format!("is below the {average} sessions running on average (sessions_per_day × session_minutes ÷ 1,440)"),
        );
        return None;
    }
    Some(Demand::Sessions {
        sessions_per_day: per_day,
        requests_per_session: per_session,
        session_minutes: minutes,
        peak_concurrent_sessions: peak,
    })
}

/// `max_tokens`, which cannot be below the mean output.
fn max_tokens(c: &mut Checker, i: usize, raw: &RawClass, output: Option<TokenStat>) -> Option<u64> {
    let path = format!("class[{i}].max_tokens");
    let at = raw.max_tokens.as_ref()?;
    let max = c.count(at, &path, 1)?;
    if let Some(out) = output
        && out.mean > max as f64
    {
        c.error(at, path, format!("is below the mean output of {} tokens per request: requests cannot produce more than max_tokens", out.mean));
    }
    Some(max)
}

fn tokens(
    c: &mut Checker,
    v: Option<&Spanned<RawTokens>>,
    path: &str,
    measured: bool,
    class: std::ops::Range<usize>,
) -> Option<TokenStat> {
    let Some(v) = v else {
        if !measured {
            c.error_at(
                Some(class),
                path,
                "missing: give the mean tokens per request, or name a measured profile",
            );
        }
        return None;
    };
    let check = |c: &mut Checker, x: f64, at: std::ops::Range<usize>, p: &str| {
        if x.is_finite() && (1.0..=1e9).contains(&x) {
            c.record(p, at);
            Some(x)
        } else {
            c.error_at(
                Some(at),
                p,
                format!("must be between 1 and 1e9 tokens, got {x}"),
            );
            None
        }
    };
    match v.get_ref() {
        RawTokens::Mean(x) => check(c, *x, v.span(), path).map(TokenStat::mean),
        RawTokens::Table(t) => {
            c.record(path, v.span());
            let mean = c.required(t.mean.as_ref(), v.span(), &format!("{path}.mean"));
            let mean = mean.and_then(|m| check(c, *m.get_ref(), m.span(), &format!("{path}.mean")));
            let mut opt = |x: &Option<Spanned<f64>>, f: &str| {
                x.as_ref()
                    .and_then(|s| check(c, *s.get_ref(), s.span(), &format!("{path}.{f}")))
            };
            let (p50, p95, max) = (opt(&t.p50, "p50"), opt(&t.p95, "p95"), opt(&t.max, "max"));
            Some(TokenStat {
                mean: mean?,
                p50,
                p95,
                max,
            })
        }
    }
}

fn models(
    c: &mut Checker,
    i: usize,
    raw: &RawClass,
    class: &Spanned<RawClass>,
) -> Option<Vec<String>> {
    let path = format!("class[{i}].models");
    let list = c.required(raw.models.as_ref(), class.span(), &path)?;
    if list.get_ref().is_empty() {
        c.error(
            list,
            &path,
            "must name at least one model id (the first is the one in use)",
        );
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for (k, m) in list.get_ref().iter().enumerate() {
        let p = format!("{path}[{k}]");
        let Some(id) = c.text(m, &p) else { continue };
        if id.contains(char::is_whitespace) {
            c.error(m, p, format!("{id:?} is not a model id (no spaces)"));
        } else if out.contains(&id) {
            c.error(m, p, format!("{id:?} is listed twice"));
        } else {
            out.push(id);
        }
    }
    (out.len() == list.get_ref().len()).then_some(out)
}

fn cache(
    c: &mut Checker,
    i: usize,
    k: &Spanned<RawCache>,
    input: Option<TokenStat>,
) -> Option<CacheProfile> {
    let path = |f: &str| format!("class[{i}].cache.{f}");
    let raw = k.get_ref();
    let prefix = c
        .required(raw.prefix_tokens.as_ref(), k.span(), &path("prefix_tokens"))
        .and_then(|p| c.number(p, &path("prefix_tokens"), NumberRule::Positive));
    if let (Some(p), Some(input), Some(at)) = (prefix, input, &raw.prefix_tokens)
        && p > input.mean
    {
        c.error(
            at,
            path("prefix_tokens"),
            format!(
                "{p} is more than the {} input tokens per request",
                input.mean
            ),
        );
    }
    let hit_ratio = c.opt_number(
        raw.hit_ratio.as_ref(),
        &path("hit_ratio"),
        NumberRule::Fraction,
    );
    let ttl = match raw.ttl.as_ref() {
        None => CacheTtl::FiveMinutes,
        Some(t) => match t.get_ref().as_str() {
            "5m" => CacheTtl::FiveMinutes,
            "1h" => CacheTtl::OneHour,
            other => {
                c.error(
                    t,
                    path("ttl"),
                    format!("must be \"5m\" or \"1h\", got {other:?}"),
                );
                return None;
            }
        },
    };
    let in_use = raw.in_use.as_ref().is_some_and(|v| *v.get_ref());
    Some(CacheProfile {
        prefix_tokens: prefix?,
        hit_ratio,
        ttl,
        in_use,
    })
}

fn slo(c: &mut Checker, i: usize, s: &Spanned<RawSlo>) -> Slo {
    let raw = s.get_ref();
    let fields = [
        (
            &raw.ttft_p50_ms,
            "ttft_p50_ms",
            LatencyMetric::Ttft,
            Percentile::P50,
        ),
        (
            &raw.ttft_p95_ms,
            "ttft_p95_ms",
            LatencyMetric::Ttft,
            Percentile::P95,
        ),
        (
            &raw.ttft_p99_ms,
            "ttft_p99_ms",
            LatencyMetric::Ttft,
            Percentile::P99,
        ),
        (
            &raw.e2e_p50_ms,
            "e2e_p50_ms",
            LatencyMetric::E2e,
            Percentile::P50,
        ),
        (
            &raw.e2e_p95_ms,
            "e2e_p95_ms",
            LatencyMetric::E2e,
            Percentile::P95,
        ),
        (
            &raw.e2e_p99_ms,
            "e2e_p99_ms",
            LatencyMetric::E2e,
            Percentile::P99,
        ),
    ];
    let latency = fields
        .into_iter()
        .filter_map(|(v, f, metric, percentile)| {
            let max_ms = c.opt_number(
                v.as_ref(),
                &format!("class[{i}].slo.{f}"),
                NumberRule::Positive,
            )?;
            Some(LatencyObjective {
                metric,
                percentile,
                max_ms,
            })
        })
        .collect();
    Slo {
        latency,
        min_output_tokens_per_s: c.opt_number(
            raw.min_output_tokens_per_s.as_ref(),
            &format!("class[{i}].slo.min_output_tokens_per_s"),
            NumberRule::Positive,
        ),
    }
}

fn route(c: &mut Checker, i: usize, r: usize, route: &Spanned<RawRoute>) -> Option<RouteMix> {
    let path = |f: &str| format!("class[{i}].route[{r}].{f}");
    let raw = route.get_ref();
    let name = c
        .required(raw.name.as_ref(), route.span(), &path("name"))
        .and_then(|n| c.text(n, &path("name")));
    let mix = c.required(raw.mix.as_ref(), route.span(), &path("mix"))?;
    let mut shares = Vec::new();
    for (model, share) in mix.get_ref() {
        let p = format!("{}.{model:?}", path("mix"));
        if let Some(s) = c.number(share, &p, NumberRule::Fraction) {
            shares.push((model.clone(), s));
        }
    }
    let total: f64 = shares.iter().map(|(_, s)| s).sum();
    if shares.len() == mix.get_ref().len() && (total - 1.0).abs() > 1e-6 {
        c.error(
            mix,
            path("mix"),
            format!("shares must add up to 1, they add up to {total}"),
        );
        return None;
    }
    if shares.is_empty() {
        c.error(
            mix,
            path("mix"),
            "must give at least one model and its share",
        );
        return None;
    }
    Some(RouteMix {
        name: name?,
        shares,
    })
}
