//! `quarry`: the controller library behind the `quarry` CLI.
//!
//! It turns a spec file into a validated [`quarry_engine::RunPlan`] ([`spec`]),
//! runs it in-process against the embedded simulator or Bedrock ([`run`]),
//! shows progress while it runs ([`live`]), writes and reads the results
//! directory ([`results`]), computes and renders the report ([`report`]) and
//! owns the run's pass/fail thresholds ([`thresholds`]) and exports the run's
//! OpenTelemetry trace and metrics ([`telemetry`]).

pub mod fleet;
pub mod live;
pub mod report;
pub mod results;
pub mod run;
pub mod spec;
pub mod telemetry;
pub mod thresholds;
