//! `quarry`: the controller library behind the `quarry` CLI.
//!
//! It turns a spec file into a validated [`quarry_agent::RunPlan`] ([`spec`])
//! and owns the run's pass/fail thresholds ([`thresholds`]).

pub mod spec;
pub mod thresholds;
