//! The plan's page, from `plan.json` alone: demand over the horizon
//! against each wall, the walls and the strategies compared.

use quarry_capacity::{Binding, Carries, Figure, Plan};

use super::{Axis, Cell, Chart, Page, Section, Series, Table, number};

fn figure(f: Option<&Figure>) -> String {
    f.map_or_else(|| "-".to_owned(), |f| number(f.value))
}

fn binding_text(b: &Binding) -> String {
    let date =
        |d: &Option<quarry_capacity::CivilDate>| d.map_or_else(String::new, |d| format!(" ({d})"));
    match b {
        Binding::Already => "already (today's demand)".to_owned(),
        Binding::Within { day, date: d } => format!("day {}{}", number(day.round()), date(d)),
        Binding::AfterHorizon { day, date: d } => {
            format!("after the horizon: day {}{}", number(day.round()), date(d))
        }
        Binding::NotAtEnteredGrowth => "never at the growth entered".to_owned(),
        Binding::BeyondMeasured => "beyond what was measured".to_owned(),
        Binding::Unplaced => "cannot be placed (an input is missing)".to_owned(),
    }
}

fn carries_text(c: &Carries) -> (String, Option<bool>) {
    match c {
        Carries::Yes => ("yes".to_owned(), Some(true)),
        Carries::WithQuotaIncreases => ("yes, with the quota increases".to_owned(), Some(true)),
        Carries::No { wall, binds } => {
            (format!("no: {wall}, {}", binding_text(binds)), Some(false))
        }
        Carries::Unknown => ("unknown (see missing inputs)".to_owned(), None),
    }
}

/// The page of a plan.
pub fn plan_page(plan: &Plan, text: &str) -> Page {
    let title = plan.title.as_deref().unwrap_or("capacity plan");
    let mut page = Page::new(format!("quarry plan: {title}"));
    let t = &plan.timeline;
    page.note(format!(
        "Horizon {} days{}; growth: {}; demand at the horizon ×{} of today's; {} account(s){}.",
        number(t.horizon.value.round()),
        t.horizon_end
            .map_or_else(String::new, |d| format!(" (to {d})")),
        t.growth,
        number(t.horizon_factor.value),
        number(t.accounts.value),
        t.region
            .as_deref()
            .map_or_else(String::new, |r| format!(", Region {r}"))
    ));

    let mut w = Section::new("Demand against the walls");
    let placed: Vec<(usize, &quarry_capacity::Wall, f64)> = plan
        .walls
        .iter()
        .enumerate()
        .filter_map(|(i, wall)| wall.binds_at.as_ref().map(|f| (i, wall, f.value)))
        .filter(|(_, _, f)| f.is_finite() && *f > 0.0)
        .collect();
    if t.demand.is_empty() {
        w.text("This plan.json has no demand curve (written before it was recorded): the walls are in the table below.");
    } else {
        let mut c = Chart::new(
            "demand",
            "Demand over the horizon and the demand at which each wall binds",
            Axis::linear("days from start"),
            Axis::log("demand (multiple of today's)"),
        );
        c.series(Series::new("demand"));
        for (i, wall, _) in &placed {
            c.series(Series::dashed(format!(
                "{}. {} ({})",
                i + 1,
                wall.kind.label(),
                wall.scope
            )));
        }
        let mut rows: Vec<(f64, f64)> = t.demand.iter().map(|p| (p[0], p[1])).collect();
        let mut marks = Vec::new();
        for (i, wall, at) in &placed {
            if let Binding::Within { day, .. } = wall.binds {
                rows.push((day, *at));
                marks.push((day, i + 1));
            }
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        for (day, demand) in rows {
            let mut values = vec![Some(demand)];
            values.extend(placed.iter().map(|(_, _, at)| Some(*at)));
            c.row(day, values);
        }
        for (day, n) in marks {
            c.annotate(
                "demand",
                day,
                n.to_string(),
                format!("wall {n} binds on day {}", number(day.round())),
            );
        }
        c.note("The solid line is demand as a multiple of today's (plan.json timeline.demand); each dashed line is the demand at which a wall binds (binds_at). A wall binds where demand crosses its line; the numbered marks are the walls that bind within the horizon.");
        let unplaced = plan.walls.len() - placed.len();
        if unplaced > 0 {
            c.note(format!(
                "{unplaced} wall(s) have no binding demand and are not drawn (see the table)."
            ));
        }
        w.chart(c);
    }
    let mut table = Table::new([
        "#",
        "wall",
        "scope",
        "limit",
        "load today",
        "binds at ×",
        "binds",
        "fixed",
    ]);
    for (i, wall) in plan.walls.iter().enumerate() {
        table.row([
            Cell::from((i + 1).to_string()),
            Cell::from(wall.kind.label()),
            Cell::from(wall.scope.clone()),
            Cell::from(figure(wall.limit.as_ref())),
            Cell::from(figure(wall.load_today.as_ref())),
            Cell::from(figure(wall.binds_at.as_ref())),
            Cell {
                text: binding_text(&wall.binds),
                verdict: wall.binds.within_horizon().then_some(false),
            },
            Cell::from(if wall.fixed { "fixed" } else { "" }),
        ]);
    }
    w.table(table.caption("The walls, in the order demand meets them"));
    page.section(w);

    let mut s = Section::new("Strategies compared");
    if plan.strategies.is_empty() {
        s.text("No strategy was assessed.");
    } else {
        let bars: Vec<(String, Option<f64>)> = plan
            .strategies
            .iter()
            .map(|st| (st.name.clone(), st.monthly_cost.as_ref().map(|f| f.value)))
            .collect();
        let mut c = Chart::bar(
            "strategies",
            "Monthly cost at the horizon's demand",
            "strategy",
            Axis::from_zero("USD per month"),
            "monthly cost",
            &bars,
        );
        c.note("All in, at the horizon's demand; no bar where the cost is unknown.");
        s.chart(c);
        let mut table = Table::new([
            "rank",
            "strategy",
            "monthly cost",
            "vs quota increase",
            "carries the demand",
            "needs",
        ]);
        for st in &plan.strategies {
            let (carries, verdict) = carries_text(&st.carries);
            table.row([
                Cell::from(st.rank.map_or_else(|| "-".to_owned(), |r| r.to_string())),
                Cell::from(st.name.clone()),
                Cell::from(figure(st.monthly_cost.as_ref())),
                Cell::from(figure(st.versus_baseline.as_ref())),
                Cell {
                    text: carries,
                    verdict,
                },
                Cell::from(st.needs.join("; ")),
            ]);
        }
        s.table(
            table.caption(
                "Ranked by monthly cost among those that carry the demand (USD per month)",
            ),
        );
    }
    page.section(s);

    if !plan.missing.is_empty() {
        let mut m = Section::new("Missing inputs");
        let mut table = Table::new(["section", "needs"]);
        for x in &plan.missing {
            table.row([x.section.clone(), x.needs.clone()]);
        }
        m.table(table);
        page.section(m);
    }

    let mut txt = Section::new("Text report");
    txt.text("plan.txt as printed: the quota requests with their file-by dates, checks, assumptions and every source.");
    txt.preformatted(text);
    page.section(txt);
    page
}
