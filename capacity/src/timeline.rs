//! Time in a plan: how demand grows from day zero, when it reaches a given
//! multiple of today's, and which calendar day that is.
//!
//! Time is counted in days from `start`. A month is an average Gregorian
//! month (365.25 / 12 = 30.4375 days), so "+25% a month" compounds smoothly
//! rather than jumping on the first of each month; the plan lists this among
//! its assumptions. Dated growth levels are joined geometrically (constant
//! percentage growth between them), and demand stays at the last level after it.

use crate::date::CivilDate;
use crate::input::{Growth, GrowthAt, GrowthCurve};

/// Days in an average month.
pub(crate) const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
/// Minutes in a day.
pub(crate) const MINUTES_PER_DAY: f64 = 1_440.0;
/// Minutes in an average month.
pub(crate) const MINUTES_PER_MONTH: f64 = DAYS_PER_MONTH * MINUTES_PER_DAY;
/// Hours in an average month.
pub(crate) const HOURS_PER_MONTH: f64 = DAYS_PER_MONTH * 24.0;

/// When demand first reaches a multiple of today's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Reach {
    /// Today's demand is already at or past it.
    Already,
    /// This many days after `start`.
    Day(f64),
    /// Never, at the growth entered.
    Never,
}

/// Demand over time.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    start: Option<CivilDate>,
    horizon_days: f64,
    curve: Curve,
    users_rate: Option<f64>,
}

#[derive(Debug, Clone)]
enum Curve {
    Flat,
    Monthly(f64),
    /// `(day, factor)`, starting at `(0, 1)`, days increasing.
    Points(Vec<(f64, f64)>),
}

impl Timeline {
    /// The timeline of `growth` from `start` over `horizon_months`. Dated
    /// levels without a start cannot be placed and are left out (the input
    /// parser refuses them; a caller building input by hand gets flat growth).
    pub(crate) fn new(start: Option<CivilDate>, horizon_months: f64, growth: &Growth) -> Self {
        let curve = match &growth.demand {
            GrowthCurve::Flat => Curve::Flat,
            GrowthCurve::Monthly { rate } => Curve::Monthly(*rate),
            GrowthCurve::Levels(levels) => {
                let mut points = vec![(0.0, 1.0)];
                for level in levels {
                    let day = match level.at {
                        GrowthAt::Month(m) => m * DAYS_PER_MONTH,
                        GrowthAt::Date(d) => match start {
                            Some(s) => s.days_until(d) as f64,
                            None => continue,
                        },
                    };
                    if day > points.last().map_or(0.0, |p| p.0) && level.factor > 0.0 {
                        points.push((day, level.factor));
                    }
                }
                Curve::Points(points)
            }
        };
        Timeline {
            start,
            horizon_days: horizon_months * DAYS_PER_MONTH,
            curve,
            users_rate: growth.users_monthly_rate,
        }
    }

    /// Days from start to the horizon.
    pub(crate) fn horizon_days(&self) -> f64 {
        self.horizon_days
    }

    /// Day zero, if entered.
    pub(crate) fn start(&self) -> Option<CivilDate> {
        self.start
    }

    /// Demand on `day` as a multiple of today's.
    pub(crate) fn factor_at(&self, day: f64) -> f64 {
        match &self.curve {
            Curve::Flat => 1.0,
            Curve::Monthly(rate) => (1.0 + rate).powf(day / DAYS_PER_MONTH),
            Curve::Points(points) => {
                let mut prev = (0.0, 1.0);
                for &(d, f) in points {
                    if day <= d {
                        if d <= prev.0 {
                            return f;
                        }
                        let t = (day - prev.0) / (d - prev.0);
                        return prev.1 * (f / prev.1).powf(t);
                    }
                    prev = (d, f);
                }
                prev.1
            }
        }
    }

    /// Demand at the horizon as a multiple of today's.
    pub(crate) fn horizon_factor(&self) -> f64 {
        self.factor_at(self.horizon_days)
    }

    /// Users on `day` as a multiple of today's.
    pub(crate) fn users_factor_at(&self, day: f64) -> f64 {
        match self.users_rate {
            Some(rate) => (1.0 + rate).powf(day / DAYS_PER_MONTH),
            None => self.factor_at(day),
        }
    }

    /// The first day demand reaches `factor` × today's.
    pub(crate) fn reach(&self, factor: f64) -> Reach {
        if factor <= 1.0 {
            return Reach::Already;
        }
        match &self.curve {
            Curve::Flat => Reach::Never,
            Curve::Monthly(rate) if *rate > 0.0 => {
                Reach::Day(DAYS_PER_MONTH * factor.ln() / rate.ln_1p())
            }
            Curve::Monthly(_) => Reach::Never,
            Curve::Points(points) => {
                let mut prev = (0.0, 1.0);
                for &(d, f) in points {
                    if f >= factor && prev.1 < factor {
                        let t = (factor / prev.1).ln() / (f / prev.1).ln();
                        return Reach::Day(prev.0 + t * (d - prev.0));
                    }
                    prev = (d, f);
                }
                Reach::Never
            }
        }
    }

    /// The calendar date `day` days after start (rounded up to a whole day,
    /// so a wall is never dated before it binds).
    pub(crate) fn date_of(&self, day: f64) -> Option<CivilDate> {
        let whole = day.ceil();
        if !whole.is_finite() || whole.abs() > 1e7 {
            return None;
        }
        self.start?.add_days(whole as i64)
    }

    /// A one-line description of the growth, for the report.
    pub(crate) fn describe(&self) -> String {
        match &self.curve {
            Curve::Flat => "none entered: demand stays at today's level".to_owned(),
            Curve::Monthly(rate) => format!("{:+.1}% a month, compounding", rate * 100.0),
            Curve::Points(points) => {
                let levels: Vec<String> = points
                    .iter()
                    .skip(1)
                    .map(|(d, f)| match self.date_of(*d) {
                        Some(date) => format!("×{f} by {date}"),
                        None => format!("×{f} by day {d:.0}"),
                    })
                    .collect();
                format!(
                    "levels {} (geometric between levels, flat after)",
                    levels.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::GrowthLevel;

    fn monthly(rate: f64) -> Growth {
        Growth {
            demand: GrowthCurve::Monthly { rate },
            users_monthly_rate: None,
        }
    }

    #[test]
    fn monthly_growth_compounds_and_inverts() {
        let t = Timeline::new(None, 12.0, &monthly(1.0));
        // Doubling every month: ×2 after one month, ×4 after two.
        assert!((t.factor_at(DAYS_PER_MONTH) - 2.0).abs() < 1e-12);
        assert!((t.factor_at(2.0 * DAYS_PER_MONTH) - 4.0).abs() < 1e-12);
        match t.reach(4.0) {
            Reach::Day(d) => assert!((d - 2.0 * DAYS_PER_MONTH).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.reach(0.5), Reach::Already);
        assert_eq!(
            Timeline::new(None, 12.0, &monthly(0.0)).reach(1.1),
            Reach::Never
        );
        assert_eq!(
            Timeline::new(None, 12.0, &Growth::default()).reach(1.1),
            Reach::Never
        );
    }

    #[test]
    fn levels_are_joined_geometrically_and_held_after() {
        let start = CivilDate::parse("2026-01-01");
        let growth = Growth {
            demand: GrowthCurve::Levels(vec![
                GrowthLevel {
                    at: GrowthAt::Date(CivilDate::parse("2026-01-11").unwrap()),
                    factor: 4.0,
                },
                GrowthLevel {
                    at: GrowthAt::Month(1.0),
                    factor: 4.0,
                },
            ]),
            users_monthly_rate: Some(0.0),
        };
        let t = Timeline::new(start, 2.0, &growth);
        // ×4 over 10 days geometrically: ×2 on day 5.
        assert!((t.factor_at(5.0) - 2.0).abs() < 1e-12);
        assert_eq!(t.factor_at(60.0), 4.0);
        match t.reach(2.0) {
            Reach::Day(d) => assert!((d - 5.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.reach(4.5), Reach::Never);
        assert_eq!(t.date_of(4.2).unwrap().to_string(), "2026-01-06");
        assert_eq!(t.users_factor_at(40.0), 1.0);
    }
}
