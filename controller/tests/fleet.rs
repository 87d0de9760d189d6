//! The controller's distributed-run client against fake in-process agents
//! (tonic servers on loopback, port 0) that replay scripted event logs:
//! discovery and clock probes, the exact merge, re-attach after a broken
//! stream (no gap, no double count), a gap detected, a lost agent leaving a
//! partial share, and the bearer token on every call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use quarry::clock::ControllerClock;
use quarry::coordinator::SharesOutcome;
use quarry::fleet::{self, AgentAddress, BearerToken, ConnectOptions, FleetPlan};
use quarry_bedrock::{Operation, Outcome};
use quarry_engine::{
    Count, Cumulative, EndCondition, HealthSample, IntervalSnapshot, LoadModel, LoadProfile,
    Metric, RetryPolicy, RunPlan, SeriesDelta, SeriesKey, ShareSpec, Timeouts,
};
use quarry_engine::{ShareEvent, ShareFinished};
use quarry_proto::v1::agent_server::{Agent, AgentServer};
use quarry_proto::v1::{
    DescribeRequest, DescribeResponse, ResultsRequest, RunEvent, RunRequest, StopRequest,
    StopResponse, SyncClockRequest, SyncClockResponse,
};
use quarry_proto::wire::event_to_proto;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// How a fake agent misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    /// Streams every event.
    Whole,
    /// The Run stream breaks after `n` events; Results resends from one
    /// event before the one asked for (an overlap to drop).
    BreakAfter(usize),
    /// The Run stream breaks after `n` events; Results skips one event.
    GapAfter(usize),
    /// The Run stream breaks after `n` events and the agent never answers
    /// again.
    DieAfter(usize),
}

#[derive(Clone)]
struct FakeAgent {
    id: String,
    script: Script,
    /// Built when Run arrives (the share says which group to use).
    log: Arc<Mutex<Vec<RunEvent>>>,
    intervals: usize,
    token: Option<String>,
    calls: Arc<Mutex<Vec<String>>>,
    /// The agent clock is this far ahead of the controller's.
    offset_ns: i64,
}

fn now_ns() -> i64 {
    #[allow(clippy::disallowed_methods)] // the fake agent's wall clock
    let now = SystemTime::now();
    now.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn key(group: &str) -> SeriesKey {
    SeriesKey {
        group: Arc::from(group),
        model: Arc::from("m"),
        operation: Some(Operation::Converse),
        stage: Arc::from("steady"),
        tier: None,
        turn: None,
    }
}

/// Interval `i` of an agent: `i + 1` requests with latencies derived from
/// the agent's seed.
fn interval(i: u64, group: &str, seed: u64) -> IntervalSnapshot {
    let mut delta = SeriesDelta::new();
    for r in 0..=i {
        delta.record(Metric::ALL[0], 1_000 + seed * 7_919 + r * 104_729 + i * 13);
        delta.counters_mut().add(Count::Outcome(Outcome::Ok), 1);
    }
    IntervalSnapshot {
        index: i,
        start: i * 1_000_000,
        end: (i + 1) * 1_000_000,
        series: BTreeMap::from([(key(group), delta)]),
        health: HealthSample::default(),
    }
}

fn event_log(group: &str, seed: u64, intervals: usize, start_ns: i64) -> Vec<RunEvent> {
    let mut events = vec![ShareEvent::Started {
        started_at_unix_ns: start_ns,
    }];
    let mut total = Cumulative::new();
    for i in 0..intervals as u64 {
        let snap = interval(i, group, seed);
        total.add(&snap);
        events.push(ShareEvent::Interval(snap));
    }
    events.push(ShareEvent::Finished(ShareFinished {
        series: total.series,
        kind: quarry_engine::FinishKind::Completed,
        reason: "completed".into(),
        requests_sent: (1..=intervals as u64).sum(),
        finished_at_unix_ns: start_ns + intervals as i64 * 1_000_000,
    }));
    events
        .iter()
        .enumerate()
        .map(|(i, e)| event_to_proto(i as u64 + 1, e, start_ns).unwrap())
        .collect()
}

impl FakeAgent {
    fn new(id: &str, script: Script) -> Self {
        FakeAgent {
            id: id.into(),
            script,
            log: Arc::new(Mutex::new(Vec::new())),
            intervals: 5,
            token: None,
            calls: Arc::new(Mutex::new(Vec::new())),
            offset_ns: 0,
        }
    }

    fn check<T>(&self, call: &str, request: &Request<T>) -> Result<(), Status> {
        self.calls.lock().unwrap().push(call.to_owned());
        if let Some(token) = &self.token {
            let got = request.metadata().get("authorization");
            if got.and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {token}")) {
                return Err(Status::unauthenticated("bad token"));
            }
        }
        Ok(())
    }

    fn stream(events: Vec<Result<RunEvent, Status>>) -> BoxStream<RunEvent> {
        Box::pin(tonic::codegen::tokio_stream::iter(events))
    }
}

#[tonic::async_trait]
impl Agent for FakeAgent {
    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        self.check("Describe", &request)?;
        Ok(Response::new(DescribeResponse {
            protocol_version: quarry_proto::PROTOCOL_VERSION.into(),
            agent_version: "0.1.0".into(),
            agent_id: self.id.clone(),
            region: String::new(),
            account_alias: String::new(),
            cores: 2,
            guard_rails: None,
            capabilities: vec![],
        }))
    }

    async fn sync_clock(
        &self,
        request: Request<SyncClockRequest>,
    ) -> Result<Response<SyncClockResponse>, Status> {
        self.check("SyncClock", &request)?;
        let at = now_ns() + self.offset_ns;
        Ok(Response::new(SyncClockResponse {
            controller_send_ns: request.get_ref().controller_send_ns,
            agent_receive_ns: at,
            agent_send_ns: at + 1_000,
        }))
    }

    type RunStream = BoxStream<RunEvent>;

    async fn run(&self, request: Request<RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        self.check("Run", &request)?;
        let req = request.into_inner();
        let spec: ShareSpec = serde_json::from_slice(&req.share_json)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let log = event_log(
            &spec.group,
            spec.stream,
            self.intervals,
            req.start_at_unix_ns,
        );
        *self.log.lock().unwrap() = log.clone();
        let events: Vec<_> = match self.script {
            Script::Whole => log.into_iter().map(Ok).collect(),
            Script::BreakAfter(n) | Script::GapAfter(n) | Script::DieAfter(n) => log
                .into_iter()
                .take(n)
                .map(Ok)
                .chain([Err(Status::unavailable("connection reset"))])
                .collect(),
        };
        Ok(Response::new(FakeAgent::stream(events)))
    }

    async fn stop(&self, request: Request<StopRequest>) -> Result<Response<StopResponse>, Status> {
        self.check("Stop", &request)?;
        Ok(Response::new(StopResponse { was_running: false }))
    }

    type ResultsStream = BoxStream<RunEvent>;

    async fn results(
        &self,
        request: Request<ResultsRequest>,
    ) -> Result<Response<Self::ResultsStream>, Status> {
        self.check("Results", &request)?;
        let after = request.get_ref().after_sequence;
        let log = self.log.lock().unwrap().clone();
        let events: Vec<RunEvent> = match self.script {
            Script::DieAfter(_) => return Err(Status::unavailable("agent is gone")),
            Script::BreakAfter(_) | Script::Whole => {
                log.into_iter().filter(|e| e.sequence + 1 > after).collect()
            }
            Script::GapAfter(_) => log.into_iter().filter(|e| e.sequence > after + 1).collect(),
        };
        Ok(Response::new(FakeAgent::stream(
            events.into_iter().map(Ok).collect(),
        )))
    }
}

async fn serve(agent: FakeAgent) -> AgentAddress {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServer::new(agent))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    AgentAddress {
        socket: addr.to_string(),
        tls_name: "127.0.0.1".into(),
    }
}

fn plan() -> RunPlan {
    let load = LoadProfile::steady(LoadModel::closed(6).unwrap(), None, Some(600)).unwrap();
    assert_eq!(load.end(), EndCondition::Requests(600));
    serde_json::from_value(serde_json::json!({
        "target": {"kind": "sim", "sim_profile": null},
        "load": load,
        "mix": [{
            "weight": 1, "model_id": "m", "operation": "Converse",
            "input_tokens": {"dist": "fixed", "tokens": 10}, "max_tokens": 16,
            "system_prompt": null, "cache": null, "nonce": true, "temperature": null
        }],
        "retry": RetryPolicy::default(),
        "timeouts": Timeouts::default(),
        "seed": 7,
        "pricing": {}
    }))
    .unwrap()
}

async fn run_fleet(
    agents: Vec<FakeAgent>,
    options: ConnectOptions,
) -> (Vec<IntervalSnapshot>, SharesOutcome) {
    let mut addresses = Vec::new();
    for a in agents {
        addresses.push(serve(a).await);
    }
    #[allow(clippy::disallowed_methods)] // the test's one wall-clock read
    let clock = ControllerClock::new(SystemTime::now());
    let connected = fleet::discover(&addresses, &options, &clock).await.unwrap();
    let fleet_plan = FleetPlan {
        run_id: "run-1".into(),
        plan: plan(),
        interval: Duration::from_secs(1),
        sim_url: None,
        lease_ttl: Duration::from_millis(200),
        start_lead: Duration::from_millis(50),
        trace: None,
    };
    let mut run = fleet::start(connected, &fleet_plan, clock)
        .await
        .unwrap()
        .coordinate(None);
    let mut merged = Vec::new();
    while let Some(s) = run.snapshots.recv().await {
        merged.push(s);
    }
    (merged, run.outcome.await.unwrap())
}

/// What the fake agents' logs hold in total, for agents with these streams.
fn expected_total(streams: &[u64], intervals: usize) -> SeriesDelta {
    let mut total = SeriesDelta::new();
    for s in streams {
        for i in 0..intervals as u64 {
            total.merge(interval(i, "default", *s).series.values().next().unwrap());
        }
    }
    total
}

fn merged_total(merged: &[IntervalSnapshot]) -> SeriesDelta {
    let mut c = Cumulative::new();
    for s in merged {
        c.add(s);
    }
    c.total_where(|_| true)
}

#[tokio::test]
async fn three_agents_merge_exactly() {
    let agents = vec![
        FakeAgent::new("a", Script::Whole),
        FakeAgent::new("b", Script::Whole),
        FakeAgent::new("c", Script::Whole),
    ];
    let calls = agents[1].calls.clone();
    let (merged, outcome) = run_fleet(agents, ConnectOptions::default()).await;
    assert_eq!(
        merged.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(merged_total(&merged), expected_total(&[0, 1, 2], 5));
    assert!(!outcome.degraded(), "{outcome:?}");
    assert_eq!(outcome.requests_sent(), Some(45));
    assert!(outcome.shares.iter().all(|s| s.totals_match == Some(true)));
    assert!(outcome.start_skew.is_some());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.iter().filter(|c| *c == "SyncClock").count(), 8);
    assert_eq!(calls.iter().filter(|c| *c == "Run").count(), 1);
}

#[tokio::test]
async fn a_broken_stream_is_reattached_without_gap_or_duplicate() {
    let agents = vec![
        FakeAgent::new("a", Script::Whole),
        FakeAgent::new("b", Script::BreakAfter(3)),
    ];
    let (merged, outcome) = run_fleet(agents, ConnectOptions::default()).await;
    assert_eq!(merged_total(&merged), expected_total(&[0, 1], 5));
    let b = &outcome.shares[1];
    assert_eq!(b.reattaches, 1);
    assert_eq!(b.duplicates, 1, "the overlap was resent and dropped");
    assert!(!outcome.degraded(), "{outcome:?}");
    assert_eq!(b.totals_match, Some(true));
}

#[tokio::test]
async fn a_gap_after_reattach_is_an_error_not_silence() {
    let agents = vec![
        FakeAgent::new("a", Script::Whole),
        FakeAgent::new("b", Script::GapAfter(3)),
    ];
    let (merged, outcome) = run_fleet(agents, ConnectOptions::default()).await;
    let b = &outcome.shares[1];
    assert!(b.lost && b.partial, "{b:?}");
    assert!(b.reason.contains("sequence gap"), "{}", b.reason);
    assert!(outcome.degraded());
    // Share b delivered Started and intervals 0 and 1 before the break.
    assert_eq!(b.intervals, 2);
    let mut expected = expected_total(&[0], 5);
    for i in 0..2 {
        expected.merge(interval(i, "default", 1).series.values().next().unwrap());
    }
    assert_eq!(merged_total(&merged), expected);
}

#[tokio::test]
async fn a_lost_agent_leaves_a_partial_share_and_the_rest_complete() {
    let agents = vec![
        FakeAgent::new("a", Script::Whole),
        FakeAgent::new("b", Script::DieAfter(4)),
        FakeAgent::new("c", Script::Whole),
    ];
    let (merged, outcome) = run_fleet(agents, ConnectOptions::default()).await;
    let b = &outcome.shares[1];
    assert!(b.lost && b.partial, "{b:?}");
    assert_eq!(b.intervals, 3);
    assert_eq!(b.requests_sent, None);
    assert!(outcome.degraded());
    // What results.json and the report record of the lost share.
    let partial = fleet::partial_shares(&outcome);
    assert!(
        partial.iter().any(|p| p.agent_id == "b" && p.lost),
        "{partial:?}"
    );
    for s in [&outcome.shares[0], &outcome.shares[2]] {
        assert!(
            !s.partial && !s.lost && s.totals_match == Some(true),
            "{s:?}"
        );
    }
    let mut expected = expected_total(&[0, 2], 5);
    for i in 0..3 {
        expected.merge(interval(i, "default", 1).series.values().next().unwrap());
    }
    assert_eq!(merged_total(&merged), expected);
}

#[tokio::test]
async fn the_bearer_token_goes_with_every_call() {
    let mut agent = FakeAgent::new("a", Script::BreakAfter(2));
    agent.token = Some("s3cret".into());
    let calls = agent.calls.clone();
    let options = ConnectOptions {
        tls: None,
        token: BearerToken::new("s3cret\n").unwrap(),
    };
    assert!(!format!("{options:?}").contains("s3cret"));
    let (_, outcome) = run_fleet(vec![agent.clone()], options).await;
    assert!(!outcome.degraded(), "{outcome:?}");
    assert!(calls.lock().unwrap().contains(&"Results".to_owned()));

    // Without the token the agent refuses at discovery.
    let address = serve(agent).await;
    #[allow(clippy::disallowed_methods)] // the test's one wall-clock read
    let clock = ControllerClock::new(SystemTime::now());
    let err = fleet::discover(&[address], &ConnectOptions::default(), &clock)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Unauthenticated"), "{err}");
}

#[tokio::test]
async fn clock_offsets_are_measured() {
    let mut agent = FakeAgent::new("a", Script::Whole);
    agent.offset_ns = 250_000_000;
    let address = serve(agent).await;
    #[allow(clippy::disallowed_methods)] // the test's one wall-clock read
    let clock = ControllerClock::new(SystemTime::now());
    let agents = fleet::discover(&[address], &ConnectOptions::default(), &clock)
        .await
        .unwrap();
    let est = agents[0].info.clock;
    // Loopback: within a few ms even on a busy machine; the bound is the
    // estimate's own uncertainty plus the two clocks' read jitter.
    assert!(
        est.offset_ns.abs_diff(250_000_000) <= est.uncertainty_ns + 5_000_000,
        "{est:?}"
    );
    let table = fleet::agents_table(&[fleet::AgentStatus::Up(agents[0].info.clone())]);
    assert!(table.contains("+250."), "{table}");
}
