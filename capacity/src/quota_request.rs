//! The quota increase request: for each pool whose quota binds within the
//! horizon, what to ask AWS for in the terms its form uses (steady-state and
//! peak TPM and RPM, average input and output tokens per request), named by
//! Service Quotas name and code, and the day to file it (the binding day
//! minus the lead time). A quota no increase lifts is listed apart, never
//! requested.

use quarry_bedrock::quota::QuotaMetric;

use crate::context::{Ctx, DEFAULT_LEAD_TIME_DAYS};
use crate::figure::{Figure, Unit};
use crate::load::{Load, PoolLoad};
use crate::models::{metric_unit, pool_quotas};
use crate::plan::{Binding, FileBy, FixedCap, QuotaRequest, QuotaRequestItem, RequestForm, Wall};
use crate::pool::PoolKey;

/// What the horizon's demand needs per account from `metric` of `pool`: for
/// token quotas, room for one more reservation on top of the load, as the
/// admission check asks.
pub(crate) fn need_at(pool: &PoolLoad, metric: QuotaMetric, factor: f64, accounts: u32) -> f64 {
    let n = f64::from(accounts);
    match metric {
        QuotaMetric::RequestsPerMinute => pool.rpm_peak * factor / n,
        QuotaMetric::TokensPerMinute => {
            let settled = pool.tpm_settled_peak * factor / n;
            let admission = pool
                .tpm_admission
                .map_or(0.0, |a| a * factor / n + pool.max_reservation);
            settled.max(admission)
        }
        QuotaMetric::TokensPerDay => pool.tpd * factor / n + pool.max_reservation,
    }
}

/// Rounds a requested quota up to a value a form takes: whole requests,
/// tokens to the next thousand.
pub(crate) fn round_up(metric: QuotaMetric, value: f64) -> f64 {
    match metric {
        QuotaMetric::RequestsPerMinute => value.ceil(),
        _ => (value / 1_000.0).ceil() * 1_000.0,
    }
}

/// The requests and the fixed caps, from the walls of the plan's scenario.
pub(crate) fn quota_requests(
    ctx: &mut Ctx<'_>,
    load: &Load,
    walls: &[Wall],
    accounts: u32,
    horizon: &Figure,
) -> (Vec<QuotaRequest>, Vec<FixedCap>) {
    let mut requests = Vec::new();
    let mut fixed = Vec::new();
    for (key, pool) in &load.pools {
        let binding: Vec<&Wall> = walls
            .iter()
            .filter(|w| {
                w.pool.as_ref() == Some(key)
                    && w.binds.within_horizon()
                    && w.kind.quota_metric().is_some()
            })
            .collect();
        if binding.is_empty() {
            continue;
        }
        let (items, first) = request_items(ctx, key, pool, &binding, accounts, horizon, &mut fixed);
        let Some(binds) = first else { continue };
        requests.push(QuotaRequest {
            pool: key.clone(),
            model_id: key.model_id(),
            region: ctx.input.region.clone(),
            pool_kind: key.pool,
            items,
            form: form(pool, horizon, accounts),
            binds,
            file_by: file_by(ctx, binds),
        });
    }
    if ctx.input.region.is_none() && !requests.is_empty() {
        ctx.missing(
            "quota request",
            "enter region: quotas and requests are per Region",
        );
    }
    (requests, fixed)
}

/// The quotas of one pool to raise, and when the first of them binds; the
/// fixed ones among `binding` go to `fixed` instead.
fn request_items(
    ctx: &mut Ctx<'_>,
    key: &PoolKey,
    pool: &PoolLoad,
    binding: &[&Wall],
    accounts: u32,
    horizon: &Figure,
    fixed: &mut Vec<FixedCap>,
) -> (Vec<QuotaRequestItem>, Option<Binding>) {
    let quotas = pool_quotas(ctx, key);
    let mut items: Vec<QuotaRequestItem> = Vec::new();
    let mut first: Option<Binding> = None;
    for wall in binding {
        let Some(metric) = wall.kind.quota_metric() else {
            continue;
        };
        let Some(limit) = quotas.get(metric) else {
            continue;
        };
        if limit.adjustable == Some(false) {
            if !fixed.iter().any(|f| &f.pool == key && f.metric == metric) {
                fixed.push(FixedCap {
                    pool: key.clone(),
                    metric,
                    quota_name: limit.name.clone(),
                    limit: limit.value.clone(),
                    binds: wall.binds,
                });
            }
            continue;
        }
        first = earliest(first, wall.binds);
        if items.iter().any(|i| i.metric == metric) {
            continue;
        }
        let need = round_up(metric, need_at(pool, metric, horizon.value, accounts));
        let from: Vec<&Figure> = wall
            .load_today
            .iter()
            .chain([horizon, &limit.value])
            .collect();
        items.push(QuotaRequestItem {
            metric,
            quota_name: limit.name.clone(),
            quota_code: limit.code.clone(),
            current: limit.value.clone(),
            requested: Figure::computed(
                need,
                metric_unit(metric),
                "need per account at the horizon's peak, rounded up",
                from,
            ),
            adjustable: limit.adjustable,
        });
    }
    items.sort_by_key(|i| i.metric);
    (items, first)
}

fn earliest(a: Option<Binding>, b: Binding) -> Option<Binding> {
    match (a, b.day()) {
        (None, _) => Some(b),
        (Some(a), Some(db)) if a.day().is_none_or(|da| db < da) => Some(b),
        (a, _) => a,
    }
}

fn file_by(ctx: &mut Ctx<'_>, binds: Binding) -> FileBy {
    let lead = match ctx.input.lead_time_days {
        Some(d) => f64::from(d),
        None => {
            ctx.assume(format!(
                "quota requests are filed {DEFAULT_LEAD_TIME_DAYS} days (six weeks) before they are needed: AWS reviews take weeks; enter lead_time_days to change it"
            ));
            f64::from(DEFAULT_LEAD_TIME_DAYS)
        }
    };
    let day = binds.day().unwrap_or(0.0) - lead;
    FileBy {
        day: crate::figure::round_sig(day),
        date: ctx.timeline.date_of(day.max(0.0).floor()),
        overdue: day < 0.0,
    }
}

fn form(pool: &PoolLoad, horizon: &Figure, accounts: u32) -> RequestForm {
    let n = f64::from(accounts);
    let f = horizon.value;
    let fig = |value: f64, unit: Unit, how: &str| {
        let mut figure = Figure::computed(value, unit, how, [horizon]);
        figure.from.extend(pool.from.iter().cloned());
        figure.from.sort();
        figure.from.dedup();
        figure
    };
    let per_request = |total: f64| {
        if pool.rpm_avg > 0.0 {
            total / pool.rpm_avg
        } else {
            0.0
        }
    };
    RequestForm {
        steady_state_tpm: fig(
            pool.tpm_settled_avg * f / n,
            Unit::TokensPerMinute,
            "average RPM × settled tokens per request, at the horizon, per account",
        ),
        peak_tpm: fig(
            need_at(pool, QuotaMetric::TokensPerMinute, f, accounts),
            Unit::TokensPerMinute,
            "the larger of TPM at admission and settled at the horizon's peak, per account",
        ),
        steady_state_rpm: fig(
            pool.rpm_avg * f / n,
            Unit::RequestsPerMinute,
            "average RPM at the horizon, per account",
        ),
        peak_rpm: fig(
            pool.rpm_peak * f / n,
            Unit::RequestsPerMinute,
            "peak RPM at the horizon, per account",
        ),
        average_input_tokens: fig(
            per_request(pool.input_avg),
            Unit::TokensPerRequest,
            "mean prompt tokens per request (cached ones included)",
        ),
        average_output_tokens: fig(
            per_request(pool.output_avg),
            Unit::TokensPerRequest,
            "mean output tokens per request",
        ),
        tokens_per_day: fig(
            pool.tpd * f / n,
            Unit::TokensPerDay,
            "settled tokens per day at the horizon, per account",
        ),
    }
}
