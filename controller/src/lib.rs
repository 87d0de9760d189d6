//! `quarry`: the controller library behind the `quarry` CLI.
//!
//! It turns a spec file into a validated [`quarry_engine::RunPlan`] ([`spec`])
//! and runs it down one road ([`run::execute`]): the plan split into shares
//! ([`coordinator::split`]) that run in this process or on agent daemons
//! ([`fleet`]), their interval streams merged exactly ([`coordinator`]) and
//! fed to the results directory ([`results`]), the live view ([`live`]) and
//! the run's OpenTelemetry trace and metrics ([`telemetry`]); then the
//! report's figures are computed once from the document ([`report`]) and its
//! pass/fail thresholds ([`thresholds`]) evaluated against them. A sweep
//! ([`sweep`]) is many such runs, one per level, judged against an SLO.
//!
//! `quarry plan` ([`capacity_plan`]) turns a plan file, the built-in prices
//! and measured runs and sweeps into a capacity plan; `quarry quotas`
//! ([`quotas`]) reads the account's quotas from Service Quotas for it.

pub mod capacity_plan;
pub mod clock;
pub mod compare;
pub mod coordinator;
pub mod duration;
pub mod fleet;
pub mod live;
pub mod quotas;
pub mod replay;
pub mod report;
pub mod results;
pub mod run;
pub mod spec;
pub mod sweep;
pub mod telemetry;
pub mod thresholds;
