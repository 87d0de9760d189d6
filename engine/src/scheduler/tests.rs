//! Scheduler tests against a fake executor under paused tokio time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use quarry_bedrock::{Operation, Outcome};
use tokio::sync::mpsc;

use super::*;
use crate::load::{Arrival, CatchUp, Stage};
use crate::series::{Count, Metric};
use crate::timeline::Timeline;

const MODEL: &str = "amazon.nova-pro-v1:0";

struct OneModel;

impl Workload for OneModel {
    type Item = ();
    fn pick(&self, _ticket: &RequestTicket) -> PlannedRequest<()> {
        PlannedRequest {
            model: Arc::from(MODEL),
            operation: Operation::ConverseStream,
            service_tier: None,
            item: (),
        }
    }
}

/// A server whose response time is a function of the send time.
struct FakeServer {
    /// Maps (seq, sent_at) to the completion time.
    done_at: Box<dyn Fn(u64, u64) -> u64 + Send + Sync>,
    /// Every (ticket, sent_at), in send order.
    sends: Mutex<Vec<(RequestTicket, u64)>>,
    /// Requests inside `execute` right now, and the most ever.
    active: AtomicU64,
    max_active: AtomicU64,
}

impl FakeServer {
    fn new(done_at: impl Fn(u64, u64) -> u64 + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(FakeServer {
            done_at: Box::new(done_at),
            sends: Mutex::new(Vec::new()),
            active: AtomicU64::new(0),
            max_active: AtomicU64::new(0),
        })
    }

    fn sends(&self) -> Vec<(RequestTicket, u64)> {
        self.sends.lock().unwrap().clone()
    }
}

impl Executor<()> for FakeServer {
    async fn execute(
        &self,
        ticket: RequestTicket,
        _r: PlannedRequest<()>,
        clock: RunClock,
    ) -> Completion {
        let sent = clock.now_ns();
        self.sends.lock().unwrap().push((ticket, sent));
        let now_active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now_active, Ordering::SeqCst);
        let done = (self.done_at)(ticket.seq, sent);
        clock.sleep_coarse_until(done).await;
        let at = clock.now_ns();
        self.active.fetch_sub(1, Ordering::SeqCst);
        let mut timeline = Timeline::started(ticket.intended_at, sent);
        timeline.on_headers(at);
        timeline.on_content(at, 1);
        timeline.close(at);
        Completion::new(timeline, Outcome::Ok)
    }
}

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn stage(name: &str, kind: StageKind, secs: u64, target: Option<f64>) -> Stage {
    Stage {
        name: name.to_owned(),
        kind,
        duration: Duration::from_secs(secs),
        target,
    }
}

async fn run(
    profile: LoadProfile,
    config: EngineConfig,
    server: &Arc<FakeServer>,
    stop_after: Option<Duration>,
) -> (RunReport, Vec<IntervalSnapshot>) {
    let clock = RunClock::start(UNIX_EPOCH);
    let engine = Engine::new(profile, config, clock);
    let (tx, mut rx) = mpsc::channel(1024);
    let shutdown = async move {
        match stop_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let report = engine
        .run(Arc::new(OneModel), Arc::clone(server), tx, shutdown)
        .await;
    let mut snapshots = Vec::new();
    while let Ok(s) = rx.try_recv() {
        snapshots.push(s);
    }
    (report, snapshots)
}

fn ok_count(report: &RunReport) -> u64 {
    report
        .cumulative
        .total_where(|_| true)
        .counters()
        .get(Count::Outcome(Outcome::Ok))
}

#[tokio::test(start_paused = true)]
async fn closed_loop_keeps_exactly_n_in_flight() {
    // Seeded-looking spread of response times, 1-97 ms, so slots desynchronise.
    let server = FakeServer::new(|seq, sent| sent + (1 + (seq * 7919) % 97) * MS);
    let profile = LoadProfile::steady(
        LoadModel::closed(50).unwrap(),
        Some(Duration::from_secs(10)),
        None,
    )
    .unwrap();
    let clock = RunClock::start(UNIX_EPOCH);
    let engine = Engine::new(profile, EngineConfig::default(), clock);
    let gauge = engine.in_flight();
    let (tx, _rx) = mpsc::channel(1024);
    let watched = Arc::clone(&server);
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for ms in 1..9_990u64 {
            clock.sleep_coarse_until(ms * MS).await;
            samples.push((gauge.get(), watched.active.load(Ordering::SeqCst)));
        }
        samples
    });
    let report = engine
        .run(
            Arc::new(OneModel),
            Arc::clone(&server),
            tx,
            std::future::pending(),
        )
        .await;
    let samples = sampler.await.unwrap();
    assert!(
        samples.iter().all(|s| *s == (50, 50)),
        "{:?}",
        samples.iter().find(|s| **s != (50, 50))
    );
    assert_eq!(server.max_active.load(Ordering::SeqCst), 50);
    assert_eq!(report.ended, EndReason::Completed);
    assert_eq!(ok_count(&report), report.sent);
    // Mean latency 49 ms at 50 slots: ~1,020 requests/s for 10 s.
    assert!((9_000..11_000).contains(&report.sent), "{}", report.sent);
}

#[tokio::test(start_paused = true)]
async fn closed_ramp_changes_concurrency_as_planned() {
    let server = FakeServer::new(|_, sent| sent + 100 * MS);
    let model = LoadModel::closed(10).unwrap();
    let stages = vec![
        stage("up", StageKind::Ramp, 10, None),
        stage("hold", StageKind::Hold, 3, None),
    ];
    let profile = LoadProfile::new(model, stages, EndCondition::AfterStages).unwrap();
    let clock = RunClock::start(UNIX_EPOCH);
    let engine = Engine::new(profile, EngineConfig::default(), clock);
    let gauge = engine.in_flight();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for k in 0..12u64 {
            clock.sleep_coarse_until(k * S + S / 2).await;
            samples.push(gauge.get());
        }
        samples
    });
    let (tx, _rx) = mpsc::channel(1024);
    let report = engine
        .run(
            Arc::new(OneModel),
            Arc::clone(&server),
            tx,
            std::future::pending(),
        )
        .await;
    // Slot i joins when the level reaches i + 1, i.e. at (i + 1) s.
    assert_eq!(
        sampler.await.unwrap(),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10]
    );
    assert!(report.cumulative.series.keys().any(|k| &*k.stage == "up"));
    assert!(report.cumulative.series.keys().any(|k| &*k.stage == "hold"));
}

#[tokio::test(start_paused = true)]
async fn open_loop_meets_deadlines_exactly_in_paused_time() {
    let server = FakeServer::new(|_, sent| sent + 25 * MS);
    let model = LoadModel::open(100.0, Arrival::Constant, None, CatchUp::SendLate).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(2)), None).unwrap();
    let (report, snapshots) = run(profile, EngineConfig::default(), &server, None).await;
    let sends = server.sends();
    assert_eq!(sends.len(), 200);
    for (k, (ticket, sent)) in sends.iter().enumerate() {
        assert_eq!(ticket.seq, k as u64);
        assert_eq!(ticket.intended_at, Some(k as u64 * 10 * MS));
        assert_eq!(*sent, k as u64 * 10 * MS, "request {k} sent late");
    }
    let total = report.cumulative.total_where(|_| true);
    assert_eq!(total.counters().get(Count::LateSends), 0);
    assert_eq!(total.histogram(Metric::ScheduleLag).max(), 0);
    assert_eq!(report.sent, 200);
    // Snapshots are dense, contiguous, and add up to the totals.
    assert!(
        snapshots
            .iter()
            .enumerate()
            .all(|(i, s)| s.index == i as u64)
    );
    assert!(snapshots.windows(2).all(|w| w[0].end == w[1].start));
    let summed: u64 = snapshots
        .iter()
        .flat_map(|s| s.series.values())
        .map(|d| d.counters().get(Count::Outcome(Outcome::Ok)))
        .sum();
    assert_eq!(summed, 200);
}

#[tokio::test(start_paused = true)]
async fn open_ramp_follows_the_integrated_rate() {
    let server = FakeServer::new(|_, sent| sent);
    let model = LoadModel::open(100.0, Arrival::Constant, None, CatchUp::SendLate).unwrap();
    let profile = LoadProfile::new(
        model,
        vec![stage("up", StageKind::Ramp, 10, None)],
        EndCondition::AfterStages,
    )
    .unwrap();
    let (report, _) = run(profile, EngineConfig::default(), &server, None).await;
    let sends = server.sends();
    // Λ(t) = 5 t²: 5 (2k + 1) arrivals in second k, 500 in all.
    for k in 0..10u64 {
        let n = sends.iter().filter(|(_, at)| *at / S == k).count() as u64;
        assert_eq!(n, 5 * (2 * k + 1), "second {k}");
    }
    assert_eq!(report.sent, 500);
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_with_send_late_counts_late_sends() {
    let server = FakeServer::new(|_, sent| sent + 50 * MS);
    let model = LoadModel::open(100.0, Arrival::Constant, Some(2), CatchUp::SendLate).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(2)), None).unwrap();
    let config = EngineConfig {
        grace: Duration::from_secs(60),
        ..EngineConfig::default()
    };
    let (report, _) = run(profile, config, &server, None).await;
    assert_eq!(server.max_active.load(Ordering::SeqCst), 2);
    // Every arrival is eventually sent (2 at a time, 40/s), most of them late.
    assert_eq!(report.sent, 200);
    let total = report.cumulative.total_where(|_| true);
    assert_eq!(total.counters().get(Count::DroppedSends), 0);
    assert!(
        total.counters().get(Count::LateSends) > 150,
        "{}",
        total.counters().get(Count::LateSends)
    );
    assert!(total.histogram(Metric::ScheduleLag).max() > 2 * S);
}

/// A rate far above what the server answers, with no cap in the plan:
/// the default cap bounds what is in flight, and the rest is dropped and
/// counted (issue 17: `rate = 1e12` had 189,761 requests in flight).
#[tokio::test(start_paused = true)]
async fn an_open_loop_without_a_cap_is_held_to_the_default_cap() {
    // Nothing answers within the run.
    let server = FakeServer::new(|_, sent| sent + 3_600 * S);
    let catch_up = CatchUp::Drop {
        after: Duration::from_millis(1),
    };
    let arrivals = 3 * u64::from(crate::load::DEFAULT_MAX_IN_FLIGHT);
    let model = LoadModel::open(arrivals as f64, Arrival::Constant, None, catch_up).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(1)), None).unwrap();
    let config = EngineConfig {
        grace: Duration::from_millis(10),
        ..EngineConfig::default()
    };
    let (report, _) = run(profile, config, &server, None).await;
    assert_eq!(
        server.max_active.load(Ordering::SeqCst),
        u64::from(crate::load::DEFAULT_MAX_IN_FLIGHT)
    );
    let total = report.cumulative.total_where(|_| true);
    let dropped = total.counters().get(Count::DroppedSends);
    assert_eq!(report.sent, u64::from(crate::load::DEFAULT_MAX_IN_FLIGHT));
    assert_eq!(report.sent + dropped, arrivals);
}

#[test]
fn rates_no_dispatcher_could_schedule_are_refused() {
    let open = |rate| LoadModel::open(rate, Arrival::Poisson, None, CatchUp::SendLate);
    assert!(open(crate::load::MAX_RATE_PER_S).is_ok());
    let e = open(1e12).unwrap_err().to_string();
    assert!(e.contains("at most 1000000 per second"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_with_drop_counts_dropped_sends() {
    let server = FakeServer::new(|_, sent| sent + 50 * MS);
    let catch_up = CatchUp::Drop {
        after: Duration::from_millis(5),
    };
    let model = LoadModel::open(100.0, Arrival::Constant, Some(2), catch_up).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(2)), None).unwrap();
    let (report, _) = run(profile, EngineConfig::default(), &server, None).await;
    assert_eq!(server.max_active.load(Ordering::SeqCst), 2);
    let total = report.cumulative.total_where(|_| true);
    let dropped = total.counters().get(Count::DroppedSends);
    assert_eq!(report.sent + dropped, 200);
    assert!(dropped > 100, "{dropped}");
    // Dropped arrivals sit in the stage's schedule series.
    let key = SeriesKey::schedule(Arc::from("default"), Arc::from(crate::load::STEADY_STAGE));
    assert_eq!(
        report.cumulative.series[&key]
            .counters()
            .get(Count::DroppedSends),
        dropped
    );
    // Nothing sent was more than 5 ms late.
    assert!(total.histogram(Metric::ScheduleLag).max() <= 5 * MS);
}

#[tokio::test(start_paused = true)]
async fn stalled_server_shows_in_the_from_schedule_view_only() {
    // 10 ms responses, except the server stalls from 5 s to 7 s: nothing
    // sent in that window completes before 7 s.
    let server = FakeServer::new(|_, sent| {
        if (5 * S..7 * S).contains(&sent) {
            7 * S
        } else {
            sent + 10 * MS
        }
    });
    let model = LoadModel::open(100.0, Arrival::Poisson, Some(10), CatchUp::SendLate).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(20)), None).unwrap();
    let config = EngineConfig {
        seed: 11,
        ..EngineConfig::default()
    };
    let (report, _) = run(profile, config, &server, None).await;
    let total = report.cumulative.total_where(|_| true);
    for (from_send, from_schedule) in [
        (Metric::E2eFromSend, Metric::E2eFromSchedule),
        (Metric::TtftFromSend, Metric::TtftFromSchedule),
    ] {
        let send_p99 = total.histogram(from_send).value_at_quantile(0.99);
        let schedule_p99 = total.histogram(from_schedule).value_at_quantile(0.99);
        assert!(
            schedule_p99 >= 1_500 * MS,
            "{from_schedule:?} p99 {schedule_p99}"
        );
        assert!(send_p99 < schedule_p99 / 10, "{from_send:?} p99 {send_p99}");
    }
    assert!(
        report.cumulative.saturated,
        "a 2 s backlog must flag the schedule lag"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_grace_then_counts_abandoned() {
    let server = FakeServer::new(|_, sent| sent + 10 * S);
    let profile = LoadProfile::steady(
        LoadModel::closed(4).unwrap(),
        Some(Duration::from_secs(60)),
        None,
    )
    .unwrap();
    let config = EngineConfig {
        grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let (report, snapshots) = run(profile, config, &server, Some(Duration::from_secs(3))).await;
    assert_eq!(report.ended, EndReason::Stopped);
    assert_eq!(report.sent, 4);
    assert_eq!(report.finished_at, 4 * S);
    let total = report.cumulative.total_where(|_| true);
    assert_eq!(total.counters().get(Count::Abandoned), 4);
    assert_eq!(total.counters().requests(), 0);
    assert_eq!(snapshots.last().unwrap().health.in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn request_limit_ends_the_run() {
    let server = FakeServer::new(|seq, sent| sent + (1 + seq % 5) * MS);
    let profile = LoadProfile::steady(LoadModel::closed(5).unwrap(), None, Some(100)).unwrap();
    let (report, _) = run(profile, EngineConfig::default(), &server, None).await;
    assert_eq!(report.ended, EndReason::RequestLimit);
    assert_eq!(report.sent, 100);
    assert_eq!(ok_count(&report), 100);
    assert_eq!(server.sends().len(), 100);

    let server = FakeServer::new(|_, sent| sent + MS);
    let model = LoadModel::open(1000.0, Arrival::Poisson, None, CatchUp::SendLate).unwrap();
    let profile = LoadProfile::steady(model, None, Some(250)).unwrap();
    let (report, _) = run(profile, EngineConfig::default(), &server, None).await;
    assert_eq!(report.ended, EndReason::RequestLimit);
    assert_eq!((report.sent, ok_count(&report)), (250, 250));
}

#[tokio::test(start_paused = true)]
async fn poisson_open_loop_achieves_its_rate() {
    let server = FakeServer::new(|_, sent| sent + 20 * MS);
    let model = LoadModel::open(500.0, Arrival::Poisson, None, CatchUp::SendLate).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(20)), None).unwrap();
    let config = EngineConfig {
        seed: 3,
        ..EngineConfig::default()
    };
    let (report, _) = run(profile, config, &server, None).await;
    let rate = report.sent as f64 / 20.0;
    assert!((rate / 500.0 - 1.0).abs() < 0.02, "{rate}/s");
    assert_eq!(ok_count(&report), report.sent);
    // Paused time rounds each sub-ms deadline up to the next timer tick.
    // (Checked on the raw stamps: HDR's max is a bucket's upper edge.)
    let late = server
        .sends()
        .into_iter()
        .find(|(t, sent)| sent - t.intended_at.unwrap() >= MS);
    assert_eq!(late, None);
}

#[test]
fn measured_excludes_warmup_and_cooldown() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let server = FakeServer::new(|_, sent| sent + 100 * MS);
        let stages = vec![
            stage("warm", StageKind::Warmup, 1, None),
            stage("hold", StageKind::Hold, 1, None),
            stage("cool", StageKind::Cooldown, 1, None),
        ];
        let profile = LoadProfile::new(
            LoadModel::closed(1).unwrap(),
            stages,
            EndCondition::AfterStages,
        )
        .unwrap();
        let (report, _) = run(profile, EngineConfig::default(), &server, None).await;
        assert_eq!(report.stage_kind("warm"), Some(StageKind::Warmup));
        let measured = report
            .measured()
            .counters()
            .get(Count::Outcome(Outcome::Ok));
        assert_eq!(measured, 10);
        assert_eq!(ok_count(&report), 30);
    });
}

fn sessions(turns: u32, think_ms: Option<u32>) -> Option<SessionPlan> {
    Some(
        SessionPlan::new(
            crate::plan::TokenDistribution::Fixed { tokens: turns },
            think_ms.map(|ms| crate::plan::TokenDistribution::Fixed { tokens: ms }),
            false,
        )
        .unwrap(),
    )
}

/// The sends of each session, in turn order: (turn index, sent_at).
fn by_session(server: &FakeServer) -> std::collections::BTreeMap<u64, Vec<(u32, u64)>> {
    let mut out = std::collections::BTreeMap::<u64, Vec<(u32, u64)>>::new();
    for (ticket, sent) in server.sends() {
        let turn = ticket.turn.expect("every send of a session run is a turn");
        out.entry(turn.session)
            .or_default()
            .push((turn.index, sent));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_closed_loop_user_holds_one_session_after_another_with_think_time_between_turns() {
    // Each turn takes 100 ms; a user thinks 2 s between turns: a session of
    // 3 turns is 100 + 2000 + 100 + 2000 + 100 ms = 4.3 s.
    let server = FakeServer::new(|_, sent| sent + 100 * MS);
    let profile = LoadProfile::steady(
        LoadModel::closed(2).unwrap(),
        Some(Duration::from_secs(10)),
        None,
    )
    .unwrap();
    let config = EngineConfig {
        sessions: sessions(3, Some(2_000)),
        ..EngineConfig::default()
    };
    let (report, _) = run(profile, config, &server, None).await;
    let sessions = by_session(&server);
    // Two users: sessions at 0 and 4.3 s each (a third would start at 8.6 s
    // and be cut off by the end at 10 s after its first turn).
    assert_eq!(sessions.len(), 6, "{sessions:?}");
    for turns in sessions.values() {
        let indices: Vec<u32> = turns.iter().map(|t| t.0).collect();
        assert_eq!(indices, (1..=indices.len() as u32).collect::<Vec<_>>());
        for pair in turns.windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, 2_100 * MS, "answer + think time");
        }
    }
    let total = report.cumulative.total_where(|_| true);
    let c = total.counters();
    assert_eq!(c.get(Count::SessionsCompleted), 4);
    assert_eq!(c.get(Count::SessionsUnfinished), 2, "cut off by the end");
    assert_eq!(c.get(Count::SessionsFailed), 0);
    let duration = total.histogram(Metric::SessionDuration);
    assert_eq!(duration.len(), 4, "completed sessions only");
    assert!(duration.equivalent(duration.min(), 4_300 * MS));
    assert!(duration.equivalent(duration.max(), 4_300 * MS));
    // One series per turn index; the sessions are counted in turn 1's.
    let turn_of = |k: &SeriesKey| k.turn;
    let mut turns: Vec<Option<u32>> = report.cumulative.series.keys().map(turn_of).collect();
    turns.dedup();
    assert_eq!(turns, [Some(1), Some(2), Some(3)]);
    let first = report
        .cumulative
        .series
        .iter()
        .find(|(k, _)| k.turn == Some(1))
        .unwrap()
        .1;
    assert_eq!(first.counters().get(Count::SessionsCompleted), 4);
}

#[tokio::test(start_paused = true)]
async fn an_open_loop_arrival_starts_a_session_and_the_cap_counts_sessions() {
    // 10 sessions/s for 2 s, 4 turns of 50 ms without think time: each
    // session lasts 200 ms, so about 2 are in progress at any time.
    let server = FakeServer::new(|_, sent| sent + 50 * MS);
    let model = LoadModel::open(10.0, Arrival::Constant, Some(1), CatchUp::SendLate).unwrap();
    let profile = LoadProfile::steady(model, Some(Duration::from_secs(2)), None).unwrap();
    let config = EngineConfig {
        sessions: sessions(4, None),
        ..EngineConfig::default()
    };
    let (report, _) = run(profile, config, &server, None).await;
    let sessions = by_session(&server);
    // With the cap at one session, a session starts only when the last
    // one ended: one every 200 ms, late, whatever the 100 ms schedule.
    assert_eq!(server.max_active.load(Ordering::SeqCst), 1);
    let starts: Vec<(u64, usize)> = sessions.values().map(|t| (t[0].1, t.len())).collect();
    // Twenty arrivals in 2 s. Ten sessions fit, back to back; the other ten
    // arrivals wait for the cap (send-late) and go after the end: their
    // first turn is sent, late, and no later turn starts once the run is
    // over, so they are unfinished.
    let expected: Vec<(u64, usize)> = (0..10)
        .map(|i| (i * 200 * MS, 4))
        .chain((0..10).map(|i| (2 * S + i * 50 * MS, 1)))
        .collect();
    assert_eq!(starts, expected);
    let sends = server.sends();
    let first_turns: Vec<_> = sends
        .iter()
        .filter(|(t, _)| t.turn.unwrap().index == 1)
        .collect();
    // The first turn's schedule is the arrival's; the later turns are due
    // when sent (no think time), so they have no schedule lag.
    for (t, sent) in &sends {
        let lag = sent - t.intended_at.unwrap();
        if t.turn.unwrap().index > 1 {
            assert_eq!(lag, 0);
        }
    }
    assert!(
        first_turns
            .iter()
            .any(|(t, sent)| sent > &t.intended_at.unwrap())
    );
    let c = report.cumulative.total_where(|_| true);
    assert_eq!(c.counters().get(Count::SessionsCompleted), 10);
    assert_eq!(c.counters().get(Count::SessionsUnfinished), 10);
}
