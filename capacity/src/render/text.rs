//! `plan.txt`: the plan for a reader. Every figure is printed with a short tag
//! of where it came from (`entered PLAN.toml:12`, `built-in, field report`,
//! `measured sweep-1`, `computed`, `assumed`); the sources section and
//! `plan.json` hold the rest.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::figure::{Basis, Figure, Source, Unit};
use crate::num::{num, pct, usd};
use crate::plan::{Binding, Carries, Plan, QuotaRequest, StrategyResult, Wall};

/// Renders `plan.txt`.
pub fn render_text(plan: &Plan) -> String {
    let sources: BTreeMap<&str, &Source> =
        plan.sources.iter().map(|s| (s.id.as_str(), s)).collect();
    let r = Renderer { sources };
    let mut out = String::new();
    r.header(&mut out, plan);
    r.classes(&mut out, plan);
    r.walls(&mut out, plan);
    r.requests(&mut out, plan);
    r.strategies(&mut out, plan);
    r.checks(&mut out, plan);
    r.notes(&mut out, plan);
    out
}

struct Renderer<'a> {
    sources: BTreeMap<&'a str, &'a Source>,
}

/// A value in its unit, as a reader says it.
fn value(f: &Figure) -> String {
    let v = f.value;
    match f.unit {
        Unit::RequestsPerMinute => format!("{} RPM", num(v)),
        Unit::RequestsPerSecond => format!("{} requests/s", num(v)),
        Unit::TokensPerMinute => format!("{} TPM", num(v)),
        Unit::TokensPerDay => format!("{} tokens/day", num(v)),
        Unit::TokensPerRequest => format!("{} tokens/request", num(v)),
        Unit::Concurrency => format!("{} in flight", num(v)),
        Unit::UsdPerMonth => format!("{}/month", usd(v)),
        Unit::UsdPerUserPerMonth => format!("{}/user/month", usd(v)),
        Unit::UsdPerRequest => format!("{}/request", usd(v)),
        Unit::UsdPerHour => format!("{}/hour", usd(v)),
        Unit::Ratio => pct(v),
        Unit::DemandFactor => format!("×{}", num(v)),
        Unit::Users => format!("{} users", num(v)),
        Unit::SessionsPerDay => format!("{} sessions/day", num(v)),
        Unit::RequestsPerSession => format!("{} requests/session", num(v)),
        Unit::Accounts => format!("{} account(s)", num(v)),
        Unit::Units => format!("{} unit(s)", num(v)),
        Unit::Days => format!("{} days", num(v)),
        Unit::Months => format!("{} months", num(v)),
        Unit::Seconds => format!("{} s", num(v)),
        Unit::Minutes => format!("{} min", num(v)),
        Unit::Milliseconds => format!("{} ms", num(v)),
        Unit::TokensPerSecond => format!("{} tokens/s", num(v)),
    }
}

fn when(b: Binding) -> String {
    let day = |d: f64| format!("day {}", d.ceil());
    match b {
        Binding::Already => "already binding at today's demand".to_owned(),
        Binding::Within {
            day: d,
            date: Some(date),
        } => format!("binds on {date} ({})", day(d)),
        Binding::Within { day: d, date: None } => format!("binds on {}", day(d)),
        Binding::AfterHorizon {
            day: d,
            date: Some(date),
        } => format!("binds after the horizon, on {date} ({})", day(d)),
        Binding::AfterHorizon { day: d, date: None } => {
            format!("binds after the horizon, on {}", day(d))
        }
        Binding::NotAtEnteredGrowth => "not reached at the growth entered".to_owned(),
        Binding::BeyondMeasured => "beyond the highest load measured".to_owned(),
        Binding::Unplaced => "cannot be placed (see missing inputs)".to_owned(),
    }
}

impl Renderer<'_> {
    /// `value [tag]`.
    fn fig(&self, f: &Figure) -> String {
        format!("{} [{}]", value(f), self.tag(f))
    }

    fn tag(&self, f: &Figure) -> String {
        let first = f.from.first().and_then(|id| self.sources.get(id.as_str()));
        match (f.basis, first) {
            (Basis::Entered, Some(s)) => format!(
                "entered {}",
                s.location
                    .clone()
                    .unwrap_or_else(|| s.id.trim_start_matches("input:").to_owned())
            ),
            (Basis::Measured, Some(s)) => {
                format!("measured, {}", s.location.clone().unwrap_or_default())
            }
            (Basis::BuiltIn, Some(s)) => {
                format!("built-in, {}", s.confidence.clone().unwrap_or_default())
            }
            (Basis::Assumed, _) => "assumed".to_owned(),
            (Basis::Computed, _) => "computed".to_owned(),
            (basis, None) => format!("{basis:?}").to_lowercase(),
        }
    }

    fn header(&self, out: &mut String, plan: &Plan) {
        let t = &plan.timeline;
        let _ = writeln!(
            out,
            "Capacity plan{}",
            plan.title
                .as_ref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        );
        let start = t
            .start
            .map_or("today (no start entered)".to_owned(), |d| d.to_string());
        let end = t
            .horizon_end
            .map(|d| format!(" (to {d})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  start {start}; horizon {}{end}",
            self.fig(&t.horizon)
        );
        let _ = writeln!(
            out,
            "  growth: {}; demand at the horizon {}",
            t.growth,
            self.fig(&t.horizon_factor)
        );
        let _ = writeln!(
            out,
            "  accounts {}; Region {}; quota lead time {}",
            self.fig(&t.accounts),
            t.region.as_deref().unwrap_or("(not entered)"),
            self.fig(&t.lead_time)
        );
    }

    fn classes(&self, out: &mut String, plan: &Plan) {
        let _ = writeln!(out, "\nClasses, today");
        for c in &plan.classes {
            let kind = if c.interactive {
                "interactive"
            } else {
                "non-interactive"
            };
            let _ = writeln!(out, "  {} ({kind}) on {}", c.name, c.model);
            let _ = writeln!(
                out,
                "    peak {}; average {}",
                self.fig(&c.peak_rpm),
                self.fig(&c.average_rpm)
            );
            let _ = writeln!(
                out,
                "    input {}; output {}",
                self.fig(&c.input_tokens),
                self.fig(&c.output_tokens)
            );
            let reserve = match &c.reservation {
                Some(r) if c.max_tokens_unset => format!(
                    "{} (max_tokens unset: the model's output limit is reserved)",
                    self.fig(r)
                ),
                Some(r) => self.fig(r),
                None => "unknown (max_tokens unset, model output limit unknown)".to_owned(),
            };
            let _ = writeln!(
                out,
                "    reserves {reserve}; settles {}",
                self.fig(&c.settlement)
            );
            if let Some(cost) = &c.cost_per_request {
                let _ = writeln!(out, "    costs {}", self.fig(cost));
            }
        }
    }

    fn walls(&self, out: &mut String, plan: &Plan) {
        let _ = writeln!(out, "\n1. Walls, in the order demand meets them");
        if plan.walls.is_empty() {
            let _ = writeln!(out, "  (none could be computed: see missing inputs)");
        }
        for (i, w) in plan.walls.iter().enumerate() {
            self.wall(out, i + 1, w);
        }
    }

    fn wall(&self, out: &mut String, n: usize, w: &Wall) {
        let fixed = if w.fixed && w.kind.quota_metric().is_some() {
            " (fixed: no quota increase lifts it)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {n}) {} of {}: {}{fixed}",
            w.kind.label(),
            w.scope,
            when(w.binds)
        );
        if let Some(at) = &w.binds_at {
            let _ = writeln!(
                out,
                "     binds at demand {} = {}",
                self.fig(at),
                at.how.as_deref().unwrap_or("")
            );
        }
        if let Some(limit) = &w.limit {
            let per = if w.accounts > 1 {
                format!(" per account, × {} accounts", w.accounts)
            } else {
                String::new()
            };
            let _ = writeln!(out, "     limit {}{per}", self.fig(limit));
        }
        if let Some(load) = &w.load_today {
            let _ = writeln!(out, "     load today {}", self.fig(load));
            if let Some(how) = &load.how {
                let _ = writeln!(out, "       = {how}");
            }
        }
        for f in &w.at_binding {
            let _ = writeln!(out, "     {}: {}", f.label, self.fig(&f.figure));
        }
        if let Some(name) = &w.quota_name {
            let code = w
                .quota_code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let _ = writeln!(out, "     Service Quotas: {name}{code}");
        }
        for note in &w.notes {
            let _ = writeln!(out, "     note: {note}");
        }
    }

    fn requests(&self, out: &mut String, plan: &Plan) {
        let _ = writeln!(out, "\n2. Quota increase requests");
        if plan.quota_requests.is_empty() {
            let _ = writeln!(out, "  none needed within the horizon");
        }
        for q in &plan.quota_requests {
            self.request(out, q);
        }
        if !plan.fixed_caps.is_empty() {
            let _ = writeln!(
                out,
                "  Fixed caps (no request lifts them; see the strategies):"
            );
        }
        for cap in &plan.fixed_caps {
            let name = cap
                .quota_name
                .as_deref()
                .unwrap_or(cap.metric.abbreviation());
            let _ = writeln!(
                out,
                "    {} of {}: {}; {}",
                name,
                cap.pool.label(),
                self.fig(&cap.limit),
                when(cap.binds)
            );
        }
    }

    fn request(&self, out: &mut String, q: &QuotaRequest) {
        let file = match (q.file_by.overdue, q.file_by.date) {
            (true, _) => "file now: the lead time has run out".to_owned(),
            (false, Some(d)) => format!("file by {d}"),
            (false, None) => format!("file by day {}", q.file_by.day.floor()),
        };
        let region = q.region.as_deref().unwrap_or("(Region not entered)");
        let _ = writeln!(
            out,
            "  {} in {region} ({}); {file}; {}",
            q.model_id,
            q.pool_kind.as_str(),
            when(q.binds)
        );
        for item in &q.items {
            let name = item
                .quota_name
                .as_deref()
                .unwrap_or(item.metric.abbreviation());
            let code = item
                .quota_code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let adjustable = if item.adjustable.is_none() {
                "; adjustability not known: ask"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    raise {name}{code}: {} → {} per account{adjustable}",
                value(&item.current),
                value(&item.requested)
            );
        }
        let f = &q.form;
        let _ = writeln!(
            out,
            "    form: steady-state {}, peak {}; steady-state {}, peak {}",
            value(&f.steady_state_tpm),
            value(&f.peak_tpm),
            value(&f.steady_state_rpm),
            value(&f.peak_rpm)
        );
        let _ = writeln!(
            out,
            "          average input {}, average output {}; {}",
            value(&f.average_input_tokens),
            value(&f.average_output_tokens),
            value(&f.tokens_per_day)
        );
    }

    fn strategies(&self, out: &mut String, plan: &Plan) {
        let _ = writeln!(
            out,
            "\n3. Strategies, ranked by monthly cost at the horizon among those that carry the demand"
        );
        for s in &plan.strategies {
            self.strategy(out, s);
        }
    }

    fn strategy(&self, out: &mut String, s: &StrategyResult) {
        let rank = s.rank.map_or("--".to_owned(), |r| format!("#{r}"));
        let cost = s
            .monthly_cost
            .as_ref()
            .map_or("cost unknown".to_owned(), |c| self.fig(c));
        let versus = s
            .versus_baseline
            .as_ref()
            .filter(|v| v.value != 0.0)
            .map(|v| format!(" ({} vs today's set-up)", usd(v.value)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {rank} {}: {cost}{versus}", s.name);
        let carries = match &s.carries {
            Carries::Yes => "carries the horizon's demand as it stands".to_owned(),
            Carries::WithQuotaIncreases => {
                "carries the horizon's demand once the quota increases below are granted".to_owned()
            }
            Carries::No { wall, binds } => format!(
                "does not carry the horizon's demand: {wall}, {}",
                when(*binds)
            ),
            Carries::Unknown => {
                "cannot tell whether it carries the demand (see missing)".to_owned()
            }
        };
        let _ = writeln!(out, "     {}; {carries}", s.summary);
        for f in &s.figures {
            let _ = writeln!(out, "     {}: {}", f.label, self.fig(&f.figure));
        }
        for n in &s.needs {
            let _ = writeln!(out, "     needs: {n}");
        }
        for r in &s.risks {
            let _ = writeln!(out, "     risk: {r}");
        }
        for m in &s.missing {
            let _ = writeln!(out, "     missing: {}: {}", m.section, m.needs);
        }
    }

    fn checks(&self, out: &mut String, plan: &Plan) {
        if plan.checks.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nMeasurements held against the arithmetic");
        for c in &plan.checks {
            let verdict = match c.agrees {
                Some(true) => "agree",
                Some(false) => "DISAGREE",
                None => "not comparable",
            };
            let _ = writeln!(out, "  {}: {verdict}", c.subject);
            if let Some(a) = &c.arithmetic {
                let _ = writeln!(out, "    arithmetic {}", self.fig(a));
            }
            if let Some(m) = &c.measured {
                let _ = writeln!(out, "    measured {}", self.fig(m));
            }
            let _ = writeln!(out, "    {}", c.note);
        }
    }

    fn notes(&self, out: &mut String, plan: &Plan) {
        let _ = writeln!(out, "\n4. Assumptions");
        for a in &plan.assumptions {
            let _ = writeln!(out, "  - {a}");
        }
        if !plan.missing.is_empty() {
            let _ = writeln!(out, "\nMissing inputs (the plan computed the rest)");
            for m in &plan.missing {
                let _ = writeln!(out, "  - {}: {}", m.section, m.needs);
            }
        }
        let _ = writeln!(out, "\nSources");
        for s in &plan.sources {
            let location = s
                .location
                .as_ref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            let confidence = s
                .confidence
                .as_ref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {}: {}{location}{confidence}", s.id, s.label);
        }
    }
}
