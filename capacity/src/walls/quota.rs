//! Quota walls: RPM, TPM at admission, TPM settled and tokens per day of
//! every pool a scenario loads, each placed where `(accounts × (quota −
//! set-aside) + reserved capacity) ÷ load today` puts it.

use super::binding::place;
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::load::{Load, PoolLoad, Scenario, Term};
use crate::models::{Limit, pool_quotas};
use crate::num::num;
use crate::plan::{Binding, NamedFigure, Wall, WallKind};
use crate::pool::PoolKey;

/// The quota walls of every pool `load` uses.
pub(crate) fn quota_walls(ctx: &mut Ctx<'_>, scenario: &Scenario, load: &Load) -> Vec<Wall> {
    let mut walls = Vec::new();
    for (key, pool) in &load.pools {
        let bonus: f64 = scenario
            .reserved
            .iter()
            .filter(|r| &r.pool == key)
            .map(|r| r.input_tpm + r.output_tpm)
            .sum();
        walls.extend(pool_walls(ctx, key, pool, scenario.accounts, bonus));
    }
    walls
}

/// What a pool's quota wall is computed from.
struct QuotaLoad {
    kind: WallKind,
    load: Option<Figure>,
    /// Capacity one account cannot use (the largest reservation must fit).
    set_aside: f64,
    /// Extra TPM (a reserved tier) on top of the quotas.
    bonus: f64,
}

fn pool_walls(
    ctx: &mut Ctx<'_>,
    key: &PoolKey,
    pool: &PoolLoad,
    accounts: u32,
    bonus: f64,
) -> Vec<Wall> {
    let quotas = pool_quotas(ctx, key);
    let mut walls = Vec::new();
    if let Some(rpm) = &quotas.rpm {
        let load = QuotaLoad {
            kind: WallKind::Rpm,
            load: Some(rpm_load(pool)),
            set_aside: 0.0,
            bonus: 0.0,
        };
        walls.push(quota_wall(ctx, key, pool, rpm, accounts, load));
    }
    let Some(tpm) = &quotas.tpm else {
        ctx.missing(
            format!("walls: TPM and tokens per day of {}", key.label()),
            format!(
                "no TPM quota entered or built in: enter [[quota]] model = {:?} tpm = ... (Service Quotas, or `quarry quotas`)",
                key.model_id()
            ),
        );
        walls.push(unknown_tpm_wall(key, pool, accounts));
        return walls;
    };
    let admission = QuotaLoad {
        kind: WallKind::TpmAdmission,
        load: admission_load(pool),
        set_aside: pool.max_reservation,
        bonus,
    };
    walls.push(quota_wall(ctx, key, pool, tpm, accounts, admission));
    let settled = QuotaLoad {
        kind: WallKind::TpmSettled,
        load: Some(settled_load(pool)),
        set_aside: 0.0,
        bonus,
    };
    walls.push(quota_wall(ctx, key, pool, tpm, accounts, settled));
    if let Some(tpd) = &quotas.tpd {
        // The day window, like the minute's, must hold a new request's reservation.
        let daily = QuotaLoad {
            kind: WallKind::TokensPerDay,
            load: Some(daily_load(pool)),
            set_aside: pool.max_reservation,
            bonus: 0.0,
        };
        walls.push(quota_wall(ctx, key, pool, tpd, accounts, daily));
    }
    walls
}

fn quota_wall(
    ctx: &mut Ctx<'_>,
    key: &PoolKey,
    pool: &PoolLoad,
    limit: &Limit,
    accounts: u32,
    q: QuotaLoad,
) -> Wall {
    let quota = limit.value.value;
    let mut notes = Vec::new();
    let binds_at = binding_factor(&q, limit, accounts, &mut notes);
    let factor = binds_at.as_ref().map(|f| f.value);
    if q.load.is_none() {
        notes.push(
            "a reservation is unknown (max_tokens unset and the model's output limit not known)"
                .to_owned(),
        );
    }
    if q.bonus > 0.0 {
        notes.push(format!(
            "includes {} TPM of reserved-tier capacity",
            num(q.bonus)
        ));
    }
    notes.extend(kind_notes(q.kind, pool, quota));
    let binds = place(ctx, factor);
    let at_binding = factor
        .map(|f| binding_demand(pool, f, binds_at.as_ref()))
        .unwrap_or_default();
    Wall {
        kind: q.kind,
        scope: key.label(),
        pool: Some(key.clone()),
        limit: Some(limit.value.clone()),
        accounts,
        load_today: q.load,
        binds_at,
        binds,
        at_binding,
        fixed: limit.adjustable == Some(false),
        adjustable: limit.adjustable,
        quota_name: limit.name.clone(),
        quota_code: limit.code.clone(),
        notes,
    }
}

/// The demand factor at which `q` meets `limit` on `accounts` accounts:
/// `(accounts × (quota − set-aside) + bonus) ÷ load today`; zero when one
/// request does not fit at all, `None` when the load is unknown or nil.
fn binding_factor(
    q: &QuotaLoad,
    limit: &Limit,
    accounts: u32,
    notes: &mut Vec<String>,
) -> Option<Figure> {
    let load = q.load.as_ref().filter(|l| l.value > 0.0)?;
    let quota = limit.value.value;
    if q.set_aside >= quota {
        notes.push(format!(
            "one request reserves {} quota tokens, more than the {} quota: it can never be admitted",
            num(q.set_aside),
            num(quota)
        ));
        return Some(Figure::computed(
            0.0,
            Unit::DemandFactor,
            "one request's reservation exceeds the quota",
            [&limit.value, load],
        ));
    }
    let factor = (f64::from(accounts) * (quota - q.set_aside) + q.bonus) / load.value;
    let how = match (q.set_aside > 0.0, accounts > 1) {
        (false, false) => "quota ÷ load today".to_owned(),
        (false, true) => format!("{accounts} accounts × quota ÷ load today"),
        (true, _) => format!(
            "{accounts} account(s) × (quota − the largest reservation, {}) ÷ load today",
            num(q.set_aside)
        ),
    };
    Some(Figure::computed(
        factor,
        Unit::DemandFactor,
        how,
        [&limit.value, load],
    ))
}

/// A pool whose TPM quota is unknown: its load is shown, the wall unplaced.
fn unknown_tpm_wall(key: &PoolKey, pool: &PoolLoad, accounts: u32) -> Wall {
    Wall {
        kind: WallKind::TpmSettled,
        scope: key.label(),
        pool: Some(key.clone()),
        limit: None,
        accounts,
        load_today: Some(settled_load(pool)),
        binds_at: None,
        binds: Binding::Unplaced,
        at_binding: Vec::new(),
        fixed: false,
        adjustable: None,
        quota_name: None,
        quota_code: None,
        notes: vec!["no TPM quota known for this pool".to_owned()],
    }
}

fn kind_notes(kind: WallKind, pool: &PoolLoad, quota: f64) -> Vec<String> {
    let mut notes = Vec::new();
    match kind {
        WallKind::Rpm => notes.push(
            "AWS release notes (May 2026, secondary source) say RPM quotas are no longer enforced on bedrock-runtime: check whether your account still has one".to_owned(),
        ),
        WallKind::TpmAdmission => {
            for t in pool.terms.iter().filter(|t| t.trap) {
                notes.push(format!(
                    "class {} sends no max_tokens: each request reserves {} tokens (its prompt plus the model's output limit), though it settles at {}",
                    t.class,
                    t.reservation.map_or("an unknown number of".to_owned(), num),
                    num(t.settlement)
                ));
            }
            if let Some(mean) = mean_reservation(pool).filter(|m| *m > 0.0) {
                notes.push(format!(
                    "at the mean reservation of {} tokens, the {} TPM quota admits about {} requests at once per account",
                    num(mean),
                    num(quota),
                    num((quota / mean).floor())
                ));
            }
        }
        WallKind::TokensPerDay => notes.push("daily tokens are counted as settled quota tokens (burndown applied, cache reads excluded), as the simulator counts them".to_owned()),
        _ => {}
    }
    notes
}

fn mean_reservation(pool: &PoolLoad) -> Option<f64> {
    let rate: f64 = pool.terms.iter().map(|t| t.rate_peak).sum();
    let weighted: Option<f64> = pool
        .terms
        .iter()
        .map(|t| t.reservation.map(|r| r * t.rate_peak))
        .sum();
    weighted.filter(|_| rate > 0.0).map(|w| w / rate)
}

/// Demand at the binding factor: the pool's peak RPM, and sessions per day
/// where the demand was entered in sessions.
fn binding_demand(pool: &PoolLoad, factor: f64, binds_at: Option<&Figure>) -> Vec<NamedFigure> {
    let Some(at) = binds_at else {
        return Vec::new();
    };
    let mut out = vec![NamedFigure {
        label: "peak requests per minute on the pool when it binds".to_owned(),
        figure: at.derive(
            pool.rpm_peak * factor,
            Unit::RequestsPerMinute,
            "binding factor × today's peak RPM on the pool",
        ),
    }];
    let sessions: Option<f64> = pool.terms.iter().map(|t| t.sessions_per_day).sum();
    if let Some(s) = sessions {
        out.push(NamedFigure {
            label: "sessions per day when it binds".to_owned(),
            figure: at.derive(
                s * factor,
                Unit::SessionsPerDay,
                "binding factor × today's sessions per day",
            ),
        });
    }
    out
}

fn terms_how(pool: &PoolLoad, what: &str, each: impl Fn(&Term) -> String) -> String {
    let parts: Vec<String> = pool
        .terms
        .iter()
        .map(|t| format!("{} {}", t.class, each(t)))
        .collect();
    format!("{what}: {}", parts.join(" + "))
}

fn pool_figure(pool: &PoolLoad, value: f64, unit: Unit, how: String) -> Figure {
    let mut f = Figure::computed(value, unit, how, []);
    f.from = pool.from.clone();
    f.from.sort();
    f
}

fn rpm_load(pool: &PoolLoad) -> Figure {
    let how = terms_how(pool, "peak requests per minute", |t| num(t.rate_peak));
    pool_figure(pool, pool.rpm_peak, Unit::RequestsPerMinute, how)
}

fn settled_load(pool: &PoolLoad) -> Figure {
    let how = terms_how(pool, "peak RPM × settled tokens per request", |t| {
        format!("{} × {}", num(t.rate_peak), num(t.settlement))
    });
    pool_figure(pool, pool.tpm_settled_peak, Unit::TokensPerMinute, how)
}

fn admission_load(pool: &PoolLoad) -> Option<Figure> {
    let value = pool.tpm_admission?;
    let how = terms_how(
        pool,
        "peak RPM × (settled + share of the minute a reservation is held × (reserved − settled)), the minute window at admission",
        |t| {
            let held = (t.held_seconds / 60.0).min(1.0);
            format!(
                "{} × ({} + {} × ({} − {}))",
                num(t.rate_peak),
                num(t.settlement),
                num(held),
                t.reservation.map_or("?".to_owned(), num),
                num(t.settlement)
            )
        },
    );
    Some(pool_figure(pool, value, Unit::TokensPerMinute, how))
}

fn daily_load(pool: &PoolLoad) -> Figure {
    let how = terms_how(
        pool,
        "average RPM × 1,440 × settled tokens per request",
        |t| format!("{} × 1,440 × {}", num(t.rate_avg), num(t.settlement)),
    );
    pool_figure(pool, pool.tpd, Unit::TokensPerDay, how)
}
