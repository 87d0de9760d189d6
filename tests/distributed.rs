//! Distributed runs end to end: three `quarry-agent` processes (listening
//! on 127.0.0.1:0, `--insecure`) driven by the controller's fleet client
//! against one in-process simulator.
//!
//! What is asserted exactly, and why it is deterministic:
//! - merged request and token counts equal the simulator's own counters
//!   (every request the agents sent reached it, and nothing is counted twice);
//! - merged histograms equal an independent merge of the three agents' own
//!   result files (`events.bin`), so the controller's merge is exact;
//! - a 3-agent and a 1-agent run of the same closed-loop workload with a
//!   request-count end condition have identical counters and identical
//!   sample counts per histogram: which requests are sent and what they
//!   cost is fixed by the plan, while the latency *values* depend on timing
//!   and are not compared;
//! - a broken stream re-attached mid-run leaves no gap and no duplicate;
//! - an agent killed with SIGKILL leaves its share partial and the others
//!   complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prost::Message;
use quarry::clock::ControllerClock;
use quarry::coordinator::SharesOutcome;
use quarry::fleet::{self, AgentAddress, ConnectOptions, FleetPlan};
use quarry_e2e::procs::{agent_bin, quarry_bin};
use quarry_engine::ShareEvent;
use quarry_engine::{
    Count, Cumulative, IntervalSnapshot, Metric, RunPlan, SeriesDelta, SeriesKey, TokenKind,
    USAGE_SOURCES, merge_series,
};
use quarry_proto::v1::RunEvent;
use quarry_proto::wire::EventDecoder;
use quarry_sim::{SimConfig, SimServer, StatsSnapshot};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

/// A running agent process.
struct AgentProcess {
    child: Child,
    address: AgentAddress,
    results: tempfile::TempDir,
}

impl AgentProcess {
    async fn start(id: &str) -> AgentProcess {
        AgentProcess::start_with(id, &[], None).await
    }

    /// An agent with extra flags; with `credentials` (the text of an AWS
    /// shared credentials file) it has only those, no keys in its
    /// environment, so a target of kind "aws" works only through a named
    /// profile of that file.
    async fn start_with(id: &str, flags: &[&str], credentials: Option<&str>) -> AgentProcess {
        let results = tempfile::tempdir().unwrap();
        let mut command = Command::new(agent_bin());
        command
            .args(["--listen", "127.0.0.1:0", "--insecure", "--agent-id", id])
            .args(flags)
            .arg("--results-dir")
            .arg(results.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", results.path().join("no-aws-config"))
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .kill_on_drop(true);
        match credentials {
            // Credentials for a target of kind "aws" pointed at the
            // simulator (its built-in example keys); nothing from the host.
            None => command
                .env(
                    "AWS_ACCESS_KEY_ID",
                    quarry_bedrock::auth::EXAMPLE_ACCESS_KEY_ID,
                )
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    quarry_bedrock::auth::EXAMPLE_SECRET_ACCESS_KEY,
                )
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    results.path().join("no-aws-credentials"),
                ),
            Some(text) => {
                let file = results.path().join("aws-credentials");
                std::fs::write(&file, text).unwrap();
                command
                    .env_remove("AWS_ACCESS_KEY_ID")
                    .env_remove("AWS_SECRET_ACCESS_KEY")
                    .env("AWS_SHARED_CREDENTIALS_FILE", file)
            }
        };
        let mut child = command.spawn().expect("quarry-agent starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let socket = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(addr) = line.strip_prefix("quarry-agent: listening on ") {
                    return addr.trim().to_owned();
                }
            }
            panic!("quarry-agent exited before listening");
        })
        .await
        .expect("quarry-agent listens within 30 s");
        // Keep draining stderr so the agent never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        AgentProcess {
            child,
            address: AgentAddress {
                socket,
                tls_name: "127.0.0.1".into(),
            },
            results,
        }
    }

    /// The share's events as the agent stored them, decoded.
    fn stored_events(&self, run_id: &str) -> Vec<ShareEvent> {
        let bytes = std::fs::read(self.results.path().join(run_id).join("events.bin")).unwrap();
        let mut decoder = EventDecoder::new();
        let mut events = Vec::new();
        let mut rest = bytes.as_slice();
        while rest.len() >= 4 {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let event = RunEvent::decode(&rest[4..4 + len]).unwrap();
            rest = &rest[4 + len..];
            if let Some(e) = decoder.decode(&event).unwrap() {
                events.push(e.event);
            }
        }
        events
    }
}

async fn start_agents(n: usize) -> Vec<AgentProcess> {
    let mut agents = Vec::new();
    for i in 0..n {
        agents.push(AgentProcess::start(&format!("agent-{i}")).await);
    }
    agents
}

async fn start_sim() -> SimServer {
    let config = SimConfig::from_toml(
        &format!(
            r#"
            seed = 1
            [[models]]
            id = "{LLAMA}"
            latency = {{ kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }}
            "#
        ),
        "sim.toml",
    )
    .unwrap();
    SimServer::start(&config).await.unwrap()
}

fn plan(load: &str) -> RunPlan {
    let spec = format!(
        r#"
        seed = 5
        [load]
        {load}
        [[workload]]
        model = "{LLAMA}"
        operation = "ConverseStream"
        input_tokens = 40
        max_tokens = 6
        "#
    );
    quarry::spec::parse_spec(Path::new("distributed.toml"), &spec)
        .unwrap_or_else(|e| panic!("{e}"))
        .plan
}

fn clock() -> ControllerClock {
    #[allow(clippy::disallowed_methods)] // the controller's one wall-clock read
    let now = SystemTime::now();
    ControllerClock::new(now)
}

/// What a distributed run produced on the controller side.
struct Merged {
    run_id: String,
    snapshots: Vec<IntervalSnapshot>,
    outcome: SharesOutcome,
}

impl Merged {
    fn series(&self) -> BTreeMap<SeriesKey, SeriesDelta> {
        let mut c = Cumulative::new();
        for s in &self.snapshots {
            c.add(s);
        }
        c.series
    }

    fn total(&self) -> SeriesDelta {
        let mut total = SeriesDelta::new();
        for d in self.series().values() {
            total.merge(d);
        }
        total
    }
}

async fn run_on(
    addresses: &[AgentAddress],
    plan: RunPlan,
    sim: &SimServer,
    run_id: &str,
    during: impl FnOnce() -> JoinHandle<()>,
) -> Merged {
    let clock = clock();
    let agents = fleet::discover(addresses, &ConnectOptions::default(), &clock)
        .await
        .unwrap();
    assert_eq!(agents.len(), addresses.len());
    let fleet_plan = FleetPlan {
        run_id: run_id.into(),
        plan,
        interval: Duration::from_millis(200),
        sim_url: Some(sim.url()),
        lease_ttl: Duration::from_secs(1),
        start_lead: Duration::from_millis(200),
        trace: None,
    };
    let mut run = fleet::start(agents, &fleet_plan, clock)
        .await
        .unwrap()
        .coordinate(None);
    let side = during();
    let mut snapshots = Vec::new();
    let collect = async {
        while let Some(s) = run.snapshots.recv().await {
            snapshots.push(s);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), collect)
        .await
        .expect("the run ends within 2 minutes");
    side.await.unwrap();
    Merged {
        run_id: run_id.into(),
        snapshots,
        outcome: run.outcome.await.unwrap(),
    }
}

fn nothing() -> JoinHandle<()> {
    tokio::spawn(async {})
}

fn tokens(series: &SeriesDelta, kind: TokenKind) -> u64 {
    USAGE_SOURCES
        .iter()
        .map(|source| series.counters().get(Count::Tokens(*source, kind)))
        .sum()
}

fn sim_requests(sim: &StatsSnapshot, outcome: &str) -> u64 {
    sim.lanes
        .iter()
        .flat_map(|l| &l.requests)
        .filter(|r| r.outcome == outcome)
        .map(|r| r.count)
        .sum()
}

fn ok(series: &SeriesDelta) -> u64 {
    series
        .counters()
        .get(Count::Outcome(quarry_bedrock::Outcome::Ok))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_merge_exactly_and_match_the_simulator() {
    let sim = start_sim().await;
    let agents = start_agents(3).await;
    let addresses: Vec<_> = agents.iter().map(|a| a.address.clone()).collect();
    let merged = run_on(
        &addresses,
        plan("concurrency = 6\nrequests = 150"),
        &sim,
        "three",
        nothing,
    )
    .await;
    assert!(!merged.outcome.degraded(), "{:?}", merged.outcome);
    assert_eq!(merged.outcome.requests_sent(), Some(150));
    let total = merged.total();
    let stats = sim.simulator().stats_snapshot();
    assert_eq!(ok(&total), 150);
    assert_eq!(ok(&total), sim_requests(&stats, "ok"));
    let sim_out: u64 = stats.lanes.iter().map(|l| l.tokens.output_tokens).sum();
    let sim_in: u64 = stats.lanes.iter().map(|l| l.tokens.input_tokens).sum();
    assert_eq!(tokens(&total, TokenKind::Output), sim_out);
    assert_eq!(tokens(&total, TokenKind::Input), sim_in);

    // An independent merge of the agents' own result files.
    let mut from_files = BTreeMap::new();
    for agent in &agents {
        let events = agent.stored_events(&merged.run_id);
        let Some(ShareEvent::Finished(finished)) = events.last() else {
            panic!("the stored log ends with Finished")
        };
        assert!(!finished.partial());
        merge_series(&mut from_files, &finished.series);
    }
    assert_eq!(merged.series(), from_files);
    let mut file_total = SeriesDelta::new();
    for d in from_files.values() {
        file_total.merge(d);
    }
    for metric in [Metric::TtftFromSend, Metric::E2eFromSend, Metric::Itl] {
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                total.histogram(metric).value_at_quantile(q),
                file_total.histogram(metric).value_at_quantile(q),
                "{metric:?} p{q}"
            );
        }
    }
    let skew = merged.outcome.start_skew.expect("start skew measured");
    eprintln!(
        "start skew across 3 local agents: {:.3} ms ± {:.3} ms",
        skew.skew_ns as f64 / 1e6,
        skew.uncertainty_ns as f64 / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_and_one_agent_count_the_same() {
    let load = "concurrency = 6\nrequests = 90";
    let agents = start_agents(3).await;
    let addresses: Vec<_> = agents.iter().map(|a| a.address.clone()).collect();
    let sim = start_sim().await;
    let three = run_on(&addresses, plan(load), &sim, "three-vs-one-a", nothing).await;
    drop(sim);
    let sim = start_sim().await;
    let one = run_on(&addresses[..1], plan(load), &sim, "three-vs-one-b", nothing).await;
    assert!(!three.outcome.degraded() && !one.outcome.degraded());
    let (a, b) = (three.total(), one.total());
    // Which requests are sent, their outcomes and their output is fixed by
    // the plan (closed loop, request-count end, fixed max_tokens the model
    // always reaches). Input tokens are not: each share draws its own
    // prompt text (its own stream), and the simulator counts the tokens of
    // the text it receives, so they — and the quota and cost derived from
    // them — vary by a few tokens with the layout of shares.
    let deterministic = |d: &SeriesDelta| {
        let mut counts: Vec<(&'static str, u64)> = d
            .counters()
            .named()
            .filter(|(name, _)| {
                !name.starts_with("tokens_input")
                    && !name.starts_with("quota")
                    && !name.starts_with("cost")
            })
            .collect();
        counts.sort();
        counts
    };
    assert_eq!(deterministic(&a), deterministic(&b));
    assert_eq!(ok(&a), 90);
    assert_eq!(tokens(&a, TokenKind::Output), 90 * 6);
    for metric in Metric::ALL {
        assert_eq!(
            a.histogram(metric).len(),
            b.histogram(metric).len(),
            "{metric:?} sample count"
        );
    }
    assert_eq!(
        three.series().keys().collect::<Vec<_>>(),
        one.series().keys().collect::<Vec<_>>()
    );
}

/// A TCP proxy whose open connections can be cut, to break a live stream.
struct Proxy {
    address: AgentAddress,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(to: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = AgentAddress {
            socket: listener.local_addr().unwrap().to_string(),
            tls_name: "127.0.0.1".into(),
        };
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = to.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap().push(task);
            }
        });
        Proxy {
            address,
            connections,
        }
    }

    /// Drops every open connection (both sockets close).
    fn cut(&self) -> usize {
        let tasks: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        tasks.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_mid_run_is_reattached_without_gap_or_duplicate() {
    let sim = start_sim().await;
    let agents = start_agents(2).await;
    let proxy = Arc::new(Proxy::start(agents[1].address.socket.clone()).await);
    let addresses = vec![agents[0].address.clone(), proxy.address.clone()];
    let cutter = proxy.clone();
    let merged = run_on(
        &addresses,
        plan("concurrency = 4\nduration = \"3s\""),
        &sim,
        "broken",
        move || {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                assert!(cutter.cut() > 0, "a connection was open to cut");
            })
        },
    )
    .await;
    let share = &merged.outcome.shares[1];
    assert!(share.reattaches >= 1, "{share:?}");
    assert!(!merged.outcome.degraded(), "{:?}", merged.outcome);
    assert_eq!(share.totals_match, Some(true), "{share:?}");
    let total = merged.total();
    let stats = sim.simulator().stats_snapshot();
    assert_eq!(ok(&total), sim_requests(&stats, "ok"));
    assert_eq!(
        Some(total.counters().get(Count::Attempts)),
        merged.outcome.requests_sent()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_run_leaves_a_partial_share() {
    let sim = start_sim().await;
    let mut agents = start_agents(3).await;
    let addresses: Vec<_> = agents.iter().map(|a| a.address.clone()).collect();
    let victim_pid = agents[1].child.id().unwrap();
    let merged = run_on(
        &addresses,
        plan("concurrency = 3\nduration = \"3s\""),
        &sim,
        "killed",
        move || {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_200)).await;
                let status = std::process::Command::new("kill")
                    .args(["-9", &victim_pid.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            })
        },
    )
    .await;
    let _ = agents[1].child.wait().await;
    let outcome = &merged.outcome;
    assert!(outcome.degraded());
    let lost = &outcome.shares[1];
    assert!(lost.lost && lost.partial, "{lost:?}");
    assert!(lost.intervals >= 1, "{lost:?}");
    // What results.json and the report record of the lost share.
    let partial = fleet::partial_shares(outcome);
    assert!(
        partial.iter().any(|p| p.agent_id == "agent-1" && p.lost),
        "{partial:?}"
    );
    for survivor in [&outcome.shares[0], &outcome.shares[2]] {
        assert!(!survivor.partial && !survivor.lost, "{survivor:?}");
        assert_eq!(survivor.totals_match, Some(true), "{survivor:?}");
    }
    // The survivors' data is complete: their stored logs equal what merged.
    let mut survivors = BTreeMap::new();
    for i in [0, 2] {
        let events = agents[i].stored_events("killed");
        let Some(ShareEvent::Finished(f)) = events.last() else {
            panic!("survivor {i} finished")
        };
        merge_series(&mut survivors, &f.series);
    }
    let merged_ok = ok(&merged.total());
    let survivors_ok: u64 = survivors.values().map(ok).sum();
    assert!(merged_ok >= survivors_ok);
    assert!(merged_ok <= sim_requests(&sim.simulator().stats_snapshot(), "ok"));
}

fn agents_flag(agents: &[AgentProcess]) -> String {
    agents
        .iter()
        .map(|a| a.address.socket.clone())
        .collect::<Vec<_>>()
        .join(",")
}

fn spec_file(dir: &Path, target: &str, load: &str) -> PathBuf {
    let path = dir.join("spec.toml");
    let text = format!(
        r#"
seed = 5
{target}
[load]
{load}
[[workload]]
model = "{LLAMA}"
operation = "ConverseStream"
input_tokens = 40
max_tokens = 6
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Successful requests in a results directory's overall figures (the
/// specs here have one stage, so that is every request).
fn document_ok(dir: &Path) -> u64 {
    let doc = quarry::results::read_results(dir).unwrap();
    let figures = quarry::report::RunFigures::from_document(&doc).unwrap();
    ok(&figures.overall.delta)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarry_run_with_agents_and_quarry_agents() {
    let agents = start_agents(3).await;
    let work = tempfile::tempdir().unwrap();
    // `quarry agents` lists every agent, and an unreachable one as DOWN.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let listing = Command::new(quarry_bin())
        .args(["agents", "--agents"])
        .arg(format!("{},{dead_addr}", agents_flag(&agents)))
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&listing.stdout);
    for i in 0..3 {
        assert!(table.contains(&format!("agent-{i}")), "{table}");
    }
    assert!(table.contains("DOWN"), "{table}");
    assert_eq!(listing.status.code(), Some(3), "{table}");

    // `quarry run --agents` against the controller's embedded simulator.
    let spec = spec_file(work.path(), "", "concurrency = 6\nrequests = 60");
    let out = work.path().join("out");
    let run = Command::new(quarry_bin())
        .arg("run")
        .arg(&spec)
        .args(["--interval-secs", "0.2", "--agents", &agents_flag(&agents)])
        .arg("--out")
        .arg(&out)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert_eq!(document_ok(&out), 60);
    let doc = quarry::results::read_results(&out).unwrap();
    assert!(doc.simulator.is_some(), "the simulator's view is recorded");
    let fleet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fleet.json")).unwrap()).unwrap();
    assert_eq!(fleet["shares"].as_array().unwrap().len(), 3);
    let report = std::fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(report.contains("3 agents; start skew"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_stops_the_load_and_results_can_be_fetched() {
    let sim = start_sim().await;
    let agents = start_agents(3).await;
    let work = tempfile::tempdir().unwrap();
    let target = format!(
        "[target]\nkind = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"{}\"",
        sim.url()
    );
    let spec = spec_file(work.path(), &target, "concurrency = 3\nduration = \"60s\"");
    let out = work.path().join("out");
    let mut controller = Command::new(quarry_bin())
        .arg("run")
        .arg(&spec)
        .args(["--interval-secs", "0.2", "--lease-ttl-secs", "1"])
        .args(["--agents", &agents_flag(&agents)])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sent = || sim_requests(&sim.simulator().stats_snapshot(), "ok");
    let mut waited = 0;
    while sent() < 30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(waited < 300, "the run did not start within 30 s");
    }
    controller.start_kill().unwrap();
    controller.wait().await.unwrap();
    // Lease 1 s; the agents then stop firing and give in-flight requests
    // (20 ms each here) their stop grace. By 3 s the counter must be still.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = sent();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent(), settled, "the simulator still receives requests");

    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let fetched = work.path().join("fetched");
    let attach = Command::new(quarry_bin())
        .args([
            "results",
            "--attach",
            &run_id,
            "--agents",
            &agents_flag(&agents),
        ])
        .arg("--from")
        .arg(&out)
        .arg("--out")
        .arg(&fetched)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&attach.stderr);
    let report = String::from_utf8_lossy(&attach.stdout);
    // Every share ended early (lease expired): the run is degraded.
    assert_eq!(attach.status.code(), Some(3), "{stderr}\n{report}");
    assert!(report.contains("PARTIAL share"), "{report}");
    assert!(report.contains("lease expired"), "{report}");
    // Nothing was lost: every request the simulator answered is in the
    // fetched results.
    assert_eq!(document_ok(&fetched), settled);
    // results.json says so too: degraded, every share listed as ended early
    // by its agent (not lost: the agents kept and served their results).
    let doc = quarry::results::read_results(&fetched).unwrap();
    assert_eq!(doc.end.ended.as_str(), "degraded");
    assert_eq!(doc.partial_shares.len(), 3, "{:?}", doc.partial_shares);
    assert!(
        doc.partial_shares
            .iter()
            .all(|p| !p.lost && p.reason.contains("lease expired")),
        "{:?}",
        doc.partial_shares
    );
}

/// The second account of the two-account simulator.
const TEAM_B_KEY_ID: &str = "AKIAQUARRYTEAMB00001";
const TEAM_B_SECRET: &str = "quarry/team-b/secret/key/for/tests/000000";
const TEAM_B_ACCOUNT: &str = "111122223333";

/// A simulator serving the default account and team B's.
async fn start_two_account_sim() -> SimServer {
    let config = SimConfig::from_toml(
        &format!(
            r#"
            seed = 1
            [[accounts]]
            access_key_id = "{TEAM_B_KEY_ID}"
            secret_access_key = "{TEAM_B_SECRET}"
            account_id = "{TEAM_B_ACCOUNT}"
            [[models]]
            id = "{LLAMA}"
            latency = {{ kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }}
            "#
        ),
        "sim.toml",
    )
    .unwrap();
    SimServer::start(&config).await.unwrap()
}

/// A spec whose `[[agents.group]]` are `groups`, against `sim` as an AWS
/// endpoint.
fn group_spec(dir: &Path, sim: &SimServer, load: &str, groups: &str) -> PathBuf {
    let target = format!(
        "[target]\nkind = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n{groups}",
        sim.url()
    );
    spec_file(dir, &target, load)
}

fn counter(group: &quarry::results::GroupRecord, name: &str) -> u64 {
    group.counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_weighted_groups_in_two_accounts_split_by_weight_and_match_the_simulator() {
    let sim = start_two_account_sim().await;
    // Team A: two agents deployed in us-west-2 for account "alpha", with
    // the default account's keys in their environment. Team B: one agent
    // whose only credentials are profile "team-b" of its credentials file.
    let region = ["--region", "us-west-2", "--account-alias", "alpha"];
    let a0 = AgentProcess::start_with("a0", &region, None).await;
    let a1 = AgentProcess::start_with("a1", &region, None).await;
    let b_credentials = format!(
        "[team-b]\naws_access_key_id = {TEAM_B_KEY_ID}\naws_secret_access_key = {TEAM_B_SECRET}\n"
    );
    let b0 =
        AgentProcess::start_with("b0", &["--account-alias", "beta"], Some(&b_credentials)).await;
    let work = tempfile::tempdir().unwrap();
    let groups = format!(
        "[[agents.group]]\nname = \"team-a\"\nweight = 2\nagents = [\"{}\", \"{}\"]\n\
         region = \"us-west-2\"\naccount_alias = \"alpha\"\n\
         [[agents.group]]\nname = \"team-b\"\nagents = [\"{}\"]\n\
         account_alias = \"beta\"\ncredential_profile = \"team-b\"\n",
        a0.address.socket, a1.address.socket, b0.address.socket
    );
    let spec = group_spec(work.path(), &sim, "concurrency = 6\nrequests = 90", &groups);
    let out = work.path().join("out");
    // No --agents: the spec's groups are the run's agents.
    let run = Command::new(quarry_bin())
        .arg("run")
        .arg(&spec)
        .args(["--interval-secs", "0.2", "--out"])
        .arg(&out)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");

    let doc = quarry::results::read_results(&out).unwrap();
    assert_eq!(doc.end.ended.as_str(), "request_limit");
    assert!(doc.partial_shares.is_empty(), "{:?}", doc.partial_shares);
    let [a, b] = doc.groups.as_slice() else {
        panic!("two groups: {:?}", doc.groups)
    };
    // The weights' split, exactly: 6 users and 90 requests by 2:1.
    assert_eq!(
        (a.name.as_str(), a.weight, a.agents.clone()),
        ("team-a", 2.0, vec!["a0".to_owned(), "a1".to_owned()])
    );
    assert_eq!(
        (a.planned.concurrency, a.planned.requests),
        (Some(4), Some(60))
    );
    assert_eq!(
        (a.region.as_deref(), a.account_alias.as_deref()),
        (Some("us-west-2"), Some("alpha"))
    );
    assert_eq!(
        (b.name.as_str(), b.weight, b.agents.clone()),
        ("team-b", 1.0, vec!["b0".to_owned()])
    );
    assert_eq!(
        (b.planned.concurrency, b.planned.requests),
        (Some(2), Some(30))
    );
    assert_eq!(b.credential_profile.as_deref(), Some("team-b"));
    // Each group sent and completed its part, as its own series.
    assert_eq!(counter(a, "outcome_ok"), 60);
    assert_eq!(counter(b, "outcome_ok"), 30);
    let series_groups: std::collections::BTreeSet<&str> =
        doc.series.iter().map(|s| s.group.as_str()).collect();
    assert_eq!(series_groups, ["team-a", "team-b"].into_iter().collect());

    // The totals are the simulator's, and each group's quota was settled
    // against its own account: team B's agent signed with its profile.
    let stats = sim.simulator().stats_snapshot();
    assert_eq!(sim_requests(&stats, "ok"), 90);
    let settled = |account: &str| -> u64 {
        stats
            .quota
            .iter()
            .filter(|q| q.account_id == account && q.scope == "on_demand")
            .map(|q| q.settled_total)
            .sum()
    };
    assert_eq!(counter(a, "quota_settled"), settled("123456789012"));
    assert_eq!(counter(b, "quota_settled"), settled(TEAM_B_ACCOUNT));
    assert!(counter(b, "quota_settled") > 0);
    let sim_out: u64 = stats.lanes.iter().map(|l| l.tokens.output_tokens).sum();
    let doc_out: u64 = doc
        .groups
        .iter()
        .map(|g| {
            g.counters
                .iter()
                .filter(|(k, _)| k.starts_with("tokens_output_"))
                .map(|(_, v)| v)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(doc_out, sim_out);

    let report = std::fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(
        report.contains("== Agent groups (measured stages) =="),
        "{report}"
    );
    assert!(
        report.contains("team-a: weight 2 (66.7% of the load); 2 agents: a0, a1"),
        "{report}"
    );
    assert!(
        report.contains("planned    concurrency 2, requests 30"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_run_makes_the_run_degraded_with_its_share_listed() {
    let sim = start_sim().await;
    let mut agents = start_agents(2).await;
    let work = tempfile::tempdir().unwrap();
    let groups = format!(
        "[[agents.group]]\nname = \"steady\"\nagents = [\"{}\"]\n\
         [[agents.group]]\nname = \"doomed\"\nagents = [\"{}\"]\n",
        agents[0].address.socket, agents[1].address.socket
    );
    let spec = group_spec(
        work.path(),
        &sim,
        "concurrency = 2\nduration = \"4s\"",
        &groups,
    );
    let out = work.path().join("out");
    let controller = Command::new(quarry_bin())
        .arg("run")
        .arg(&spec)
        .args(["--interval-secs", "0.2", "--lease-ttl-secs", "1", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ok = || sim_requests(&sim.simulator().stats_snapshot(), "ok");
    let mut waited = 0;
    while ok() < 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(waited < 300, "the run did not start within 30 s");
    }
    agents[1].child.start_kill().unwrap();
    let _ = agents[1].child.wait().await;
    let run = controller.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}\n{stdout}");
    assert!(stderr.contains("degraded"), "{stderr}");

    let doc = quarry::results::read_results(&out).unwrap();
    assert_eq!(doc.end.ended.as_str(), "degraded");
    let [lost] = doc.partial_shares.as_slice() else {
        panic!("one partial share: {:?}", doc.partial_shares)
    };
    assert_eq!(
        (lost.agent_id.as_str(), lost.group.as_str()),
        ("agent-1", "doomed")
    );
    assert!(lost.lost, "{lost:?}");
    assert!(lost.last_interval.is_some(), "{lost:?}");
    // The survivor's group ran to its end; the lost one's data is kept up
    // to its last interval and never exceeds what the simulator answered.
    let (steady, doomed) = (&doc.groups[0], &doc.groups[1]);
    assert!(counter(steady, "outcome_ok") > 0 && counter(doomed, "outcome_ok") > 0);
    assert!(counter(steady, "outcome_ok") + counter(doomed, "outcome_ok") <= ok());
    let report = std::fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(report.contains("ended: degraded"), "{report}");
    assert!(
        report.contains("DEGRADED: 1 of 2 shares partial"),
        "{report}"
    );
    assert!(report.contains("PARTIAL share: agent agent-1"), "{report}");
    // The report is rendered from results.json alone.
    let again = Command::new(quarry_bin())
        .arg("report")
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stdout).contains("PARTIAL share: agent agent-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_that_cannot_be_set_up_is_refused_and_nothing_runs() {
    let sim = start_sim().await;
    // Agents with no AWS credentials at all (an empty credentials file and
    // none in their environment): the spec is valid, and only each agent's
    // set-up of its share — resolving credentials before anything fires —
    // finds that it cannot sign.
    let mut agents = Vec::new();
    for i in 0..2 {
        agents.push(AgentProcess::start_with(&format!("agent-{i}"), &[], Some("")).await);
    }
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("spec.toml");
    let text = format!(
        "seed = 5\n[target]\nkind = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n\
         [load]\nconcurrency = 2\nduration = \"5s\"\n\
         [[workload]]\nmodel = \"{LLAMA}\"\noperation = \"Converse\"\ninput_tokens = 40\nmax_tokens = 6\n",
        sim.url()
    );
    std::fs::write(&path, text).unwrap();
    let run = Command::new(quarry_bin())
        .arg("run")
        .arg(&path)
        .args([
            "--interval-secs",
            "0.2",
            "--agents",
            &agents_flag(&agents),
            "--out",
        ])
        .arg(work.path().join("out"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refused its share"), "{stderr}");
    assert!(
        stderr.contains("cannot set up the share: AWS credentials:"),
        "{stderr}"
    );
    // Refused before Started: no share fired a single request.
    let stats = sim.simulator().stats_snapshot();
    assert_eq!(
        stats
            .lanes
            .iter()
            .flat_map(|l| &l.requests)
            .map(|r| r.count)
            .sum::<u64>(),
        0
    );
}
