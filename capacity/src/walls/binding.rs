//! Where a wall binds: a demand factor turned into a day of the timeline,
//! and the order walls are met in.

use crate::context::Ctx;
use crate::figure::round_sig;
use crate::plan::{Binding, Wall};
use crate::timeline::Reach;

/// When demand at `factor` × today's is reached.
pub(crate) fn place(ctx: &Ctx<'_>, factor: Option<f64>) -> Binding {
    let Some(factor) = factor.filter(|f| f.is_finite()) else {
        return Binding::Unplaced;
    };
    match ctx.timeline.reach(factor) {
        Reach::Already => Binding::Already,
        Reach::Day(day) if day <= ctx.timeline.horizon_days() => Binding::Within {
            day: round_sig(day),
            date: ctx.timeline.date_of(day),
        },
        Reach::Day(day) => Binding::AfterHorizon {
            day: round_sig(day),
            date: ctx.timeline.date_of(day),
        },
        Reach::Never => Binding::NotAtEnteredGrowth,
    }
}

/// Orders walls as demand meets them: by binding factor, unplaced last.
pub(crate) fn sort_walls(walls: &mut [Wall]) {
    let key = |w: &Wall| match (w.binds, &w.binds_at) {
        (Binding::Unplaced, _) | (_, None) => f64::INFINITY,
        (_, Some(f)) => f.value,
    };
    walls.sort_by(|a, b| {
        key(a)
            .total_cmp(&key(b))
            .then(a.kind.cmp(&b.kind))
            .then(a.scope.cmp(&b.scope))
    });
}
