//! The walls a scenario's demand meets as it grows, and when.
//!
//! Loads are linear in demand, so each wall binds at the demand factor
//! `f = capacity / load today` (for TPM at admission, the capacity left once
//! the largest single reservation is set aside), and the timeline turns that
//! factor into a day. Quota walls are here; measured walls (concurrency,
//! latency) in `curve`, cost walls in `cost`.

mod binding;
mod cost;
mod curve;
mod quota;

pub(crate) use binding::sort_walls;
pub(crate) use cost::{cost_walls, monthly_cost_figure};
pub(crate) use curve::{curve_walls, quota_checks};
pub(crate) use quota::quota_walls;
