//! One measured run: a plan's share driven by the real engine on this
//! process's runtime against the simulator process, with this process's and
//! the simulator's CPU time read at every snapshot interval, so that figures
//! are taken over whole intervals of the measured window.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use quarry_bedrock::auth::ApiKey;
use quarry_bedrock::{Endpoint, Outcome};
use quarry_engine::exec::SignerSource;
use quarry_engine::http::TransportConfig;
use quarry_engine::{
    AuthMethod, Connection, Count, EngineConfig, HealthSample, IntervalSnapshot, RunClock,
    RunReport, SIM_REGION, Share,
};
use tokio::sync::mpsc;

use crate::probe::Proc;
use crate::simproc::SimProcess;

/// The bearer key the scenarios' simulator account accepts.
pub(crate) const BENCH_API_KEY: &str = "bedrock-api-key-loadbench";

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Auth {
    /// SigV4, signed per request (what Bedrock clients do).
    Sigv4,
    /// A Bedrock API key (`Authorization: Bearer`): no signing work.
    Bearer,
}

/// CPU and memory at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    /// Run-clock time of the reading, ns.
    pub(crate) at_ns: u64,
    /// This process's CPU time, ns.
    pub(crate) cpu_ns: u64,
    /// The simulator's CPU time, ns.
    pub(crate) sim_cpu_ns: u64,
    /// This process's resident memory, bytes.
    pub(crate) rss: u64,
    /// Requests in flight.
    pub(crate) in_flight: u64,
}

/// One snapshot interval, as the harness saw it arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntervalRow {
    /// The interval's index (0-based; interval i covers second i at 1 s).
    pub(crate) index: u64,
    /// Requests completed (recorded) in the interval, any outcome.
    pub(crate) requests: u64,
    /// Of which successful.
    pub(crate) ok: u64,
    /// Readings when the interval's snapshot arrived (its end).
    pub(crate) end: Mark,
    /// The engine's health verdict on the interval.
    pub(crate) health: HealthSample,
}

/// Everything a run left behind.
pub(crate) struct RunOutcome {
    /// The engine's totals.
    pub(crate) report: RunReport,
    /// Readings just before the run started.
    pub(crate) start: Mark,
    /// One row per snapshot interval.
    pub(crate) intervals: Vec<IntervalRow>,
    /// Memory samples taken every `sample_every`, when asked for.
    pub(crate) samples: Vec<Mark>,
}

/// What to run and how to watch it.
pub(crate) struct RunSetup<'a> {
    /// The spec text, as a user writes it.
    pub(crate) spec: &'a str,
    /// How requests are authenticated.
    pub(crate) auth: Auth,
    /// Snapshot interval.
    pub(crate) interval: Duration,
    /// Memory sampling period, if any.
    pub(crate) sample_every: Option<Duration>,
    /// How the open-loop dispatcher waits for each deadline.
    pub(crate) dispatch_timer: quarry_engine::DispatchTimer,
}

/// Runs `setup` against `sim` and returns what was measured.
pub(crate) async fn run(sim: &SimProcess, setup: &RunSetup<'_>) -> anyhow::Result<RunOutcome> {
    let spec = quarry::spec::parse_spec(Path::new("loadbench.toml"), setup.spec)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("scenario spec")?;
    let plan = spec.plan;
    let connection = match setup.auth {
        Auth::Sigv4 => Connection::for_target(&plan.target, Some(sim.url())).await?,
        Auth::Bearer => Connection {
            endpoint: Endpoint::custom(sim.url(), SIM_REGION)?,
            signer: SignerSource::api_key(ApiKey::new(BENCH_API_KEY)),
            auth: AuthMethod::ApiKey,
        },
    };
    let clock = RunClock::start(quarry_sim::system_clock());
    let config = EngineConfig {
        interval: setup.interval,
        dispatch_timer: setup.dispatch_timer,
        ..EngineConfig::default()
    };
    let share = Share::new(
        &plan,
        connection,
        &TransportConfig::default(),
        config,
        0,
        clock,
    )?;
    let gauge = share.in_flight();
    let sim_proc = sim.proc();
    let mark = {
        let gauge = gauge.clone();
        move || Mark {
            at_ns: clock.now_ns(),
            cpu_ns: Proc::Me.cpu_ns().unwrap_or(0),
            sim_cpu_ns: sim_proc.and_then(Proc::cpu_ns).unwrap_or(0),
            rss: Proc::Me.rss_bytes().unwrap_or(0),
            in_flight: gauge.get(),
        }
    };
    let (tx, mut rx) = mpsc::channel::<IntervalSnapshot>(64);
    let rows = {
        let mark = mark.clone();
        tokio::spawn(async move {
            let mut rows = Vec::new();
            while let Some(snapshot) = rx.recv().await {
                rows.push(row(&snapshot, mark()));
            }
            rows
        })
    };
    let done = Arc::new(AtomicBool::new(false));
    let sampler = setup.sample_every.map(|every| {
        let (done, mark) = (done.clone(), mark.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                samples.push(mark());
            }
            samples
        })
    });
    let start = mark();
    // On a worker, as the agent and `quarry run` drive a share (spawned),
    // not on this `block_on` thread: the dispatcher then shares the worker
    // with the requests, as it does in production.
    let report = tokio::spawn(share.run(tx, std::future::pending())).await?;
    done.store(true, Ordering::Relaxed);
    let intervals = rows.await?;
    let samples = match sampler {
        Some(task) => task.await?,
        None => Vec::new(),
    };
    Ok(RunOutcome {
        report,
        start,
        intervals,
        samples,
    })
}

fn row(snapshot: &IntervalSnapshot, end: Mark) -> IntervalRow {
    let (mut requests, mut ok) = (0, 0);
    for series in snapshot.series.values() {
        requests += series.counters().requests();
        ok += series.counters().get(Count::Outcome(Outcome::Ok));
    }
    IntervalRow {
        index: snapshot.index,
        requests,
        ok,
        end,
        health: snapshot.health,
    }
}

/// Totals over a span of whole intervals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Wall time covered, ns.
    pub(crate) span_ns: u64,
    /// Requests completed, any outcome.
    pub(crate) requests: u64,
    /// Successful requests.
    pub(crate) ok: u64,
    /// This process's CPU over the span, ns.
    pub(crate) cpu_ns: u64,
    /// The simulator's CPU over the span, ns.
    pub(crate) sim_cpu_ns: u64,
}

impl Window {
    /// Successful requests per second.
    pub(crate) fn ok_per_s(&self) -> f64 {
        self.ok as f64 * 1e9 / self.span_ns.max(1) as f64
    }

    /// Agent CPU per successful request, µs.
    pub(crate) fn cpu_us_per_request(&self) -> f64 {
        self.cpu_ns as f64 / 1e3 / self.ok.max(1) as f64
    }

    /// Simulator CPU per successful request, µs.
    pub(crate) fn sim_cpu_us_per_request(&self) -> f64 {
        self.sim_cpu_ns as f64 / 1e3 / self.ok.max(1) as f64
    }

    /// Agent CPU, percent of one core.
    pub(crate) fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu_ns as f64 / self.span_ns.max(1) as f64
    }

    /// Simulator CPU, percent of one core.
    pub(crate) fn sim_cpu_percent(&self) -> f64 {
        100.0 * self.sim_cpu_ns as f64 / self.span_ns.max(1) as f64
    }
}

impl RunOutcome {
    /// Totals over the intervals whose index is in `from..to` (the readings
    /// at the end of interval `from − 1`, or the start, open the span).
    pub(crate) fn window(&self, from: u64, to: u64) -> Window {
        let opening = self
            .intervals
            .iter()
            .rev()
            .find(|r| r.index + 1 == from)
            .map_or(self.start, |r| r.end);
        let inside: Vec<&IntervalRow> = self
            .intervals
            .iter()
            .filter(|r| r.index >= from && r.index < to)
            .collect();
        let closing = inside.last().map_or(opening, |r| r.end);
        Window {
            span_ns: closing.at_ns.saturating_sub(opening.at_ns),
            requests: inside.iter().map(|r| r.requests).sum(),
            ok: inside.iter().map(|r| r.ok).sum(),
            cpu_ns: closing.cpu_ns.saturating_sub(opening.cpu_ns),
            sim_cpu_ns: closing.sim_cpu_ns.saturating_sub(opening.sim_cpu_ns),
        }
    }

    /// The whole run, start to last snapshot.
    pub(crate) fn whole(&self) -> Window {
        self.window(0, u64::MAX)
    }
}
