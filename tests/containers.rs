//! Quarry in containers: the runtime images (built here from the binaries
//! cargo already built, with no registry pull: `scripts/docker-images
//! --bin-dir`), agents on three Docker networks standing for three regions,
//! and the faults containers meet — a killed container, a network cut.
//!
//! Topology of the fault tests: one bridge network per region; each agent
//! on its region's network only; the simulator on all three (alias `sim`,
//! standing for the Bedrock endpoint every region reaches); the controller
//! (the `quarry` image) on all three, dialling agents by name over mutual
//! TLS made at test time. The test process only builds, starts, cuts and
//! reads: it asks the simulator for its counts through a port published on
//! loopback. The compose test runs `docker/compose.yaml` itself (bearer
//! token auth) with its documented `run --rm controller`.
//!
//! What is exact: the merged counts of a completed run equal the
//! simulator's; a killed or cut-off agent's share is flagged, the other
//! shares are whole (their agents' own logs, fetched again, hold exactly
//! what merged); a cut-off agent stops on its lease and its results are
//! recovered after the network returns, with nothing counted twice.
//!
//! Without Docker these tests print a note and pass on a developer's
//! machine; with `CI=true` they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_e2e::docker::{
    Images, Scope, SimCounts, docker, docker_ok, logs, mtls_material, networks_of,
    open_to_containers, published_port, readable_by_containers, require_compose, require_docker,
    require_tool, sim_counts, wait_exit, wait_for_log, workspace,
};

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

/// The AWS documentation's example keys, which the simulator accepts: the
/// agents find them in their environment through the standard chain.
const AWS_ENV: [&str; 6] = [
    "-e",
    "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
    "-e",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "-e",
    "AWS_EC2_METADATA_DISABLED=true",
];

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];
const AGENTS: [&str; 3] = ["agent-0", "agent-1", "agent-2"];

/// A non-root uid for containers that write to host directories: the
/// host user's own (so the files can be removed), or the images' user when
/// the tests run as root.
fn container_user() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("0")
        .to_owned();
    if uid == "0" {
        "65532:65532".to_owned()
    } else {
        format!("{uid}:{uid}")
    }
}

fn spec(target_endpoint: &str, load: &str) -> String {
    format!(
        r#"
seed = 5
[target]
kind = "aws"
region = "us-east-1"
endpoint = "{target_endpoint}"
[load]
{load}
[[workload]]
model = "{LLAMA}"
operation = "ConverseStream"
input_tokens = 40
max_tokens = 6
"#
    )
}

/// Three regions: networks, the simulator on all of them, one agent on
/// each, mutual TLS between agents and controller.
struct Regions {
    scope: Scope,
    images: Images,
    networks: Vec<String>,
    sim_addr: String,
    agents: Vec<String>,
    tls: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Regions {
    /// `None` when Docker is missing and the test is skipped.
    async fn start(test: &str) -> Option<Regions> {
        require_docker(test)?;
        let images = Images::get();
        let scope = Scope::new();
        let networks: Vec<String> = (0..3).map(|i| scope.network(&format!("r{i}"))).collect();
        let nets: Vec<&str> = networks.iter().map(String::as_str).collect();
        let tls = tempfile::tempdir().unwrap();
        mtls_material(tls.path(), &AGENTS);
        readable_by_containers(tls.path());
        for entry in std::fs::read_dir(tls.path()).unwrap() {
            readable_by_containers(&entry.unwrap().path());
        }
        let work = tempfile::tempdir().unwrap();
        open_to_containers(work.path());
        let sim_config = work.path().join("sim.toml");
        std::fs::write(
            &sim_config,
            format!(
                "seed = 1\n[[models]]\nid = \"{LLAMA}\"\n\
                 latency = {{ kind = \"fixed\", ttft_ms = 20.0, gap_ms = 2.0 }}\n"
            ),
        )
        .unwrap();
        readable_by_containers(&sim_config);
        let mount_work = format!("{}:/mnt/quarry", work.path().display());
        let sim = scope.start_on(
            "sim",
            &nets,
            "sim",
            &[
                "-p",
                "127.0.0.1::8080",
                "-v",
                &mount_work,
                &images.image("quarry-sim"),
                "--listen=0.0.0.0:8080",
                "--config=/mnt/quarry/sim.toml",
            ],
        );
        let mount_tls = format!("{}:/tls:ro", tls.path().display());
        let mut agents = Vec::new();
        for (i, name) in AGENTS.iter().enumerate() {
            let mut args: Vec<String> = AWS_ENV.iter().map(|s| (*s).to_owned()).collect();
            args.extend(
                [
                    "-v",
                    &mount_tls,
                    &images.image("quarry-agent"),
                    "--listen=0.0.0.0:7400",
                    &format!("--agent-id={name}"),
                    &format!("--region={}", REGIONS[i]),
                    "--results-dir=/var/lib/quarry/agent-results",
                    &format!("--tls-cert=/tls/{name}.pem"),
                    &format!("--tls-key=/tls/{name}.key"),
                    "--client-ca=/tls/ca.pem",
                ]
                .map(str::to_owned),
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            agents.push(scope.start_on(name, &nets[i..=i], name, &args));
        }
        wait_for_log(&sim, "listening on", Duration::from_secs(30)).await;
        for agent in &agents {
            wait_for_log(agent, "quarry-agent: listening on", Duration::from_secs(30)).await;
        }
        let sim_addr = format!("127.0.0.1:{}", published_port(&sim, 8080));
        Some(Regions {
            scope,
            images,
            networks,
            sim_addr,
            agents,
            tls,
            work,
        })
    }

    /// Starts a controller container on every region's network with the
    /// `quarry` arguments `args` (the mTLS flags are added); its name.
    fn controller(&self, what: &str, args: &[&str]) -> String {
        let nets: Vec<&str> = self.networks.iter().map(String::as_str).collect();
        let mount_work = format!("{}:/mnt/quarry", self.work.path().display());
        let mount_tls = format!("{}:/tls:ro", self.tls.path().display());
        let user = container_user();
        let mut all = vec![
            "--user",
            &user,
            "-w",
            "/mnt/quarry",
            "-v",
            &mount_work,
            "-v",
            &mount_tls,
        ];
        let image = self.images.image("quarry");
        all.push(&image);
        all.extend_from_slice(args);
        all.extend([
            "--agent-ca=/tls/ca.pem",
            "--client-cert=/tls/controller.pem",
            "--client-key=/tls/controller.key",
        ]);
        self.scope.start_on(what, &nets, what, &all)
    }

    fn sim(&self) -> SimCounts {
        sim_counts(&self.sim_addr)
    }

    /// Waits until the simulator has answered `n` requests (the run is
    /// under way), at most a minute.
    async fn wait_for_requests(&self, n: u64) {
        for _ in 0..600 {
            if self.sim().ok >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the simulator saw fewer than {n} requests within a minute");
    }

    fn results(&self, name: &str) -> PathBuf {
        self.work.path().join("results").join(name)
    }
}

/// Counters summed per agent group over a results directory's series.
fn group_counts(dir: &Path) -> BTreeMap<String, BTreeMap<String, u64>> {
    let doc = quarry::results::read_results(dir)
        .unwrap_or_else(|e| panic!("results in {}: {e}", dir.display()));
    let mut groups: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in &doc.series {
        let counters = groups.entry(s.group.clone()).or_default();
        for (name, n) in &s.counters {
            *counters.entry(name.clone()).or_default() += n;
        }
    }
    groups
}

fn counter(groups: &BTreeMap<String, BTreeMap<String, u64>>, group: &str, name: &str) -> u64 {
    groups
        .get(group)
        .and_then(|c| c.get(name))
        .copied()
        .unwrap_or(0)
}

/// Sum over every group of the counters named `name` or starting with
/// `prefix_` (token counters are split by usage source).
fn total(groups: &BTreeMap<String, BTreeMap<String, u64>>, prefix: &str) -> u64 {
    groups
        .values()
        .flat_map(|c| c.iter())
        .filter(|(name, _)| *name == prefix || name.starts_with(&format!("{prefix}_")))
        .map(|(_, n)| n)
        .sum()
}

/// `fleet.json` of a results directory: each share by agent id.
fn shares(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("fleet.json"))
        .unwrap_or_else(|e| panic!("fleet.json in {}: {e}", dir.display()));
    let fleet: serde_json::Value = serde_json::from_str(&text).unwrap();
    fleet["shares"]
        .as_array()
        .expect("fleet.json has shares")
        .iter()
        .map(|s| (s["agent_id"].as_str().unwrap().to_owned(), s.clone()))
        .collect()
}

fn run_id(dir: &Path) -> String {
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    run["run_id"].as_str().unwrap().to_owned()
}

fn whole(share: &serde_json::Value) {
    assert_eq!(share["partial"], false, "{share}");
    assert_eq!(share["lost"], false, "{share}");
    assert_eq!(share["totals_match"], true, "{share}");
}

fn all_agents() -> String {
    AGENTS.map(|a| format!("{a}:7400")).join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_container_leaves_its_share_partial_and_the_others_whole() {
    let Some(regions) =
        Regions::start("a_killed_agent_container_leaves_its_share_partial_and_the_others_whole")
            .await
    else {
        return;
    };
    std::fs::write(
        regions.work.path().join("spec.toml"),
        spec("http://sim:8080", "concurrency = 3\nduration = \"6s\""),
    )
    .unwrap();
    let agents = all_agents();
    let live = regions.controller(
        "controller-live",
        &[
            "run",
            "/mnt/quarry/spec.toml",
            "--agents",
            &agents,
            "--interval-secs=0.2",
            "--lease-ttl-secs=1",
            "--out=/mnt/quarry/results/live",
        ],
    );
    regions.wait_for_requests(60).await;
    docker_ok(&["kill", &regions.agents[1]]);
    let code = wait_exit(&live, Duration::from_secs(120));
    let report = logs(&live);
    assert_eq!(code, 3, "a lost share makes the run degraded:\n{report}");
    assert!(report.contains("PARTIAL share: agent agent-1"), "{report}");
    let state = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.Status}}",
        &regions.agents[1],
    ]);
    assert_eq!(state, "exited");

    let dir = regions.results("live");
    let by_agent = shares(&dir);
    let lost = &by_agent["agent-1"];
    assert_eq!(lost["lost"], true, "{lost}");
    assert_eq!(lost["partial"], true, "{lost}");
    assert!(lost["intervals"].as_u64().unwrap() >= 1, "{lost}");
    whole(&by_agent["agent-0"]);
    whole(&by_agent["agent-2"]);

    // The survivors' shares, fetched again from their agents' own logs,
    // hold exactly what the live run merged for them.
    let run = run_id(&dir);
    let survivors = regions.controller(
        "controller-survivors",
        &[
            "results",
            "--attach",
            &run,
            "--agents=agent-0:7400,agent-2:7400",
            "--from=/mnt/quarry/results/live",
            "--out=/mnt/quarry/results/survivors",
        ],
    );
    let code = wait_exit(&survivors, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", logs(&survivors));
    let live_counts = group_counts(&dir);
    let fetched = group_counts(&regions.results("survivors"));
    for region in [REGIONS[0], REGIONS[2]] {
        assert_eq!(live_counts.get(region), fetched.get(region), "{region}");
        assert!(counter(&fetched, region, "outcome_ok") > 0, "{region}");
    }
    // Nothing counted twice: the simulator answered at least what merged.
    let sim = regions.sim();
    assert!(
        total(&live_counts, "outcome_ok") <= sim.ok,
        "{live_counts:?} {sim:?}"
    );
    assert!(counter(&live_counts, REGIONS[1], "outcome_ok") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_agent_stops_on_its_lease_and_its_results_are_recovered_once() {
    let Some(regions) =
        Regions::start("a_cut_off_agent_stops_on_its_lease_and_its_results_are_recovered_once")
            .await
    else {
        return;
    };
    // Long enough that the cut-off agent's lease (1 s, after at most 5 s
    // of HTTP/2 pings unanswered) runs out well before its share would end.
    std::fs::write(
        regions.work.path().join("spec.toml"),
        spec("http://sim:8080", "concurrency = 3\nduration = \"15s\""),
    )
    .unwrap();
    let agents = all_agents();
    let live = regions.controller(
        "controller-live",
        &[
            "run",
            "/mnt/quarry/spec.toml",
            "--agents",
            &agents,
            "--interval-secs=0.2",
            "--lease-ttl-secs=1",
            "--out=/mnt/quarry/results/live",
        ],
    );
    regions.wait_for_requests(60).await;
    let victim = &regions.agents[1];
    let region_net = &regions.networks[1];
    docker_ok(&["network", "disconnect", region_net, victim]);
    // Cut off from the controller (and the simulator), the agent stops
    // firing on its own: its lease runs out with no stream holding it.
    wait_for_log(victim, "lease expired", Duration::from_secs(30)).await;
    // The controller gives the agent up (its re-attach window passes while
    // the network is still cut) and finishes the run degraded.
    let code = wait_exit(&live, Duration::from_secs(120));
    let report = logs(&live);
    assert_eq!(code, 3, "{report}");
    let dir = regions.results("live");
    let live_shares = shares(&dir);
    let cut = &live_shares["agent-1"];
    assert_eq!(cut["partial"], true, "{cut}");
    assert_eq!(cut["lost"], true, "{cut}");
    whole(&live_shares["agent-0"]);
    whole(&live_shares["agent-2"]);
    assert!(report.contains("PARTIAL share: agent agent-1"), "{report}");

    // The network returns; the agent kept its share's log, and `quarry
    // results --attach` recovers every share from the agents.
    docker_ok(&[
        "network", "connect", "--alias", "agent-1", region_net, victim,
    ]);
    let run = run_id(&dir);
    let recover = regions.controller(
        "controller-recover",
        &[
            "results",
            "--attach",
            &run,
            "--agents",
            &agents,
            "--from=/mnt/quarry/results/live",
            "--out=/mnt/quarry/results/recovered",
        ],
    );
    let code = wait_exit(&recover, Duration::from_secs(60));
    // Still degraded: the cut-off share stopped early (its lease expired).
    assert_eq!(code, 3, "{}", logs(&recover));
    let recovered_dir = regions.results("recovered");
    let recovered_shares = shares(&recovered_dir);
    let back = &recovered_shares["agent-1"];
    assert_eq!(back["lost"], false, "{back}");
    assert_eq!(back["partial"], true, "{back}");
    assert_eq!(back["totals_match"], true, "{back}");
    assert!(
        back["reason"].as_str().unwrap().contains("lease expired"),
        "{back}"
    );
    assert!(
        back["intervals"].as_u64() >= cut["intervals"].as_u64(),
        "{back} {cut}"
    );

    let live_counts = group_counts(&dir);
    let recovered = group_counts(&recovered_dir);
    for region in [REGIONS[0], REGIONS[2]] {
        assert_eq!(live_counts.get(region), recovered.get(region), "{region}");
    }
    // Never double counted, nothing lost: every request the simulator
    // answered is in the recovered results, except those the cut-off agent
    // had in flight when the network went (the simulator's answer never
    // reached it; the agent counts them as not completed).
    let sim = regions.sim();
    let ok = total(&recovered, "outcome_ok");
    let cut_region = REGIONS[1];
    let unfinished = counter(&recovered, cut_region, "abandoned")
        + counter(&recovered, cut_region, "attempts")
        - counter(&recovered, cut_region, "outcome_ok");
    assert!(ok <= sim.ok, "recovered {ok} > simulator {}", sim.ok);
    assert!(
        sim.ok <= ok + unfinished,
        "simulator {} > recovered {ok} + unfinished {unfinished}",
        sim.ok
    );
    assert!(total(&live_counts, "outcome_ok") <= ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_three_regions_one_quarry_run_matches_the_simulator() {
    let test = "compose_three_regions_one_quarry_run_matches_the_simulator";
    if require_docker(test).is_none() {
        return;
    }
    let Some(program) = require_compose(test) else {
        return;
    };
    let images = Images::get();
    let scope = Scope::new();
    let dir = tempfile::tempdir().unwrap();
    let (secrets, results, specs) = (
        dir.path().join("secrets"),
        dir.path().join("results"),
        dir.path().join("specs"),
    );
    for d in [&secrets, &results, &specs] {
        std::fs::create_dir(d).unwrap();
        readable_by_containers(d);
    }
    open_to_containers(&results);
    let token = secrets.join("agent-token");
    std::fs::write(&token, format!("compose-test-{}\n", scope.project())).unwrap();
    readable_by_containers(&token);
    // The compose file's default controller command runs
    // /specs/three-regions.toml; here it is a short, request-bounded run.
    let spec_path = specs.join("three-regions.toml");
    std::fs::write(
        &spec_path,
        spec("http://sim:8080", "concurrency = 6\nrequests = 150"),
    )
    .unwrap();
    readable_by_containers(&spec_path);
    let user = container_user();
    let (uid, gid) = user.split_once(':').unwrap();
    let env = [
        ("QUARRY_TAG", images.tag.as_str()),
        ("QUARRY_SECRETS", &secrets.display().to_string()),
        ("QUARRY_RESULTS", &results.display().to_string()),
        ("QUARRY_SPECS", &specs.display().to_string()),
        ("QUARRY_UID", uid),
        ("QUARRY_GID", gid),
        ("QUARRY_SIM_PORT", "0"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let compose = scope.compose(program, &workspace().join("docker/compose.yaml"), env);
    compose.ok(&["up", "-d"]);

    // Three agents, each on its own region's network; the simulator on all.
    let mut agent_networks = Vec::new();
    for agent in ["agent-us", "agent-eu", "agent-ap"] {
        let nets = networks_of(&compose.container(agent));
        assert_eq!(nets.len(), 1, "{agent}: {nets:?}");
        agent_networks.push(nets[0].clone());
    }
    let mut distinct = agent_networks.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{agent_networks:?}");
    let sim_container = compose.container("sim");
    let mut sim_networks = networks_of(&sim_container);
    sim_networks.sort();
    assert_eq!(sim_networks, distinct);

    // The documented command: one `quarry run` across the three agents.
    let run = compose.output(&["run", "--rm", "-T", "controller"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    let run_dirs: Vec<PathBuf> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(run_dirs.len(), 1, "{run_dirs:?}");
    let counts = group_counts(&run_dirs[0]);

    let port = compose.ok(&["port", "sim", "8080"]);
    let sim = sim_counts(port.trim());
    assert_eq!(total(&counts, "outcome_ok"), 150, "{counts:?}");
    assert_eq!(total(&counts, "outcome_ok"), sim.ok);
    assert_eq!(sim.other, 0, "{sim:?}");
    assert_eq!(total(&counts, "tokens_output"), sim.output_tokens);
    assert_eq!(total(&counts, "tokens_input"), sim.input_tokens);
    let by_agent = shares(&run_dirs[0]);
    assert_eq!(by_agent.len(), 3, "{by_agent:?}");
    for (agent, share) in &by_agent {
        whole(share);
        assert!(agent.starts_with("agent-"), "{agent}");
    }
    // Each region's agent reported under its own group.
    let groups: Vec<&String> = counts.keys().collect();
    for region in ["us-east-1", "eu-west-1", "ap-northeast-1"] {
        assert!(groups.iter().any(|g| g.contains(region)), "{groups:?}");
    }
    assert!(stdout.contains("3 agents; start skew"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_scratch_images_that_run_as_non_root_with_health_probes() {
    let test = "images_are_scratch_images_that_run_as_non_root_with_health_probes";
    if require_docker(test).is_none() {
        return;
    }
    let images = Images::get();
    let scope = Scope::new();
    for name in ["quarry-agent", "quarry", "quarry-sim"] {
        let image = images.image(name);
        let inspect: serde_json::Value =
            serde_json::from_str(&docker_ok(&["image", "inspect", &image])).unwrap();
        let config = &inspect[0]["Config"];
        assert_eq!(config["User"], "65532:65532", "{name}");
        for env in config["Env"].as_array().into_iter().flatten() {
            let env = env.as_str().unwrap();
            assert!(
                !["AWS_", "TOKEN", "SECRET", "KEY", "PASSWORD"]
                    .iter()
                    .any(|s| env.to_ascii_uppercase().contains(s)),
                "{name} bakes in {env}"
            );
        }
        let health: Vec<&str> = config["Healthcheck"]["Test"]
            .as_array()
            .map(|t| t.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        if name == "quarry" {
            assert_eq!(health, ["NONE"], "{name}");
        } else {
            assert_eq!(
                health[..3],
                ["CMD", &format!("/usr/local/bin/{name}"), "health"]
            );
        }
        let size = inspect[0]["Size"].as_u64().unwrap();
        assert!(size < 64 << 20, "{name} is {size} bytes");

        // The file system: the binary, its shared libraries, the user and
        // name-service files, the CA bundle, and nothing else (no shell, no
        // key material).
        let container = scope.create(&format!("fs-{name}"), &[&image]);
        let export = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("docker export {container} | tar -t"))
            .output()
            .unwrap();
        assert!(export.status.success());
        let files = String::from_utf8_lossy(&export.stdout);
        assert!(
            files.lines().any(|f| f == format!("usr/local/bin/{name}")),
            "{files}"
        );
        for file in files.lines().filter(|f| !f.ends_with('/')) {
            let allowed = file.starts_with("usr/local/bin/")
                || file.starts_with("lib/x86_64-linux-gnu/")
                || file.starts_with("lib/aarch64-linux-gnu/")
                || file.starts_with("lib64/ld-linux")
                || file.starts_with("lib/ld-linux")
                || [
                    "etc/passwd",
                    "etc/group",
                    "etc/nsswitch.conf",
                    "etc/ssl/certs/ca-certificates.crt",
                    // Mount points Docker adds to every container.
                    "etc/hosts",
                    "etc/hostname",
                    "etc/resolv.conf",
                    "etc/mtab",
                    ".dockerenv",
                ]
                .contains(&file)
                || file.starts_with("dev/")
                || file.starts_with("proc")
                || file.starts_with("sys");
            assert!(allowed, "{name} holds unexpected file {file}");
        }
        assert!(!files.lines().any(|f| f == "bin/sh" || f == "usr/bin/env"));
    }

    // Without credentials for controllers, the agent refuses 0.0.0.0.
    let refused = scope.create("agent-no-auth", &[&images.image("quarry-agent")]);
    docker_ok(&["start", &refused]);
    assert_eq!(wait_exit(&refused, Duration::from_secs(30)), 2);
    assert!(
        logs(&refused).contains("no authentication configured"),
        "{}",
        logs(&refused)
    );

    // With a token from its environment (as an ECS task secret gives it),
    // the agent serves as the images' user, and its probe says so.
    let net = scope.network("net");
    let agent = scope.start_on(
        "agent",
        &[&net],
        "agent",
        &[
            "-e",
            "QUARRY_AGENT_TOKEN=probe-token",
            &images.image("quarry-agent"),
            "--listen=0.0.0.0:7400",
            "--token-env=QUARRY_AGENT_TOKEN",
            "--results-dir=/var/lib/quarry/agent-results",
        ],
    );
    let sim = scope.start_on("sim", &[&net], "sim", &[&images.image("quarry-sim")]);
    wait_for_log(
        &agent,
        "quarry-agent: listening on",
        Duration::from_secs(30),
    )
    .await;
    wait_for_log(&sim, "listening on", Duration::from_secs(30)).await;
    for (container, binary) in [(&agent, "quarry-agent"), (&sim, "quarry-sim")] {
        let pid = docker_ok(&["inspect", "--format", "{{.State.Pid}}", container]);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["65532"; 4],
            "{binary}: {uid}"
        );
        // The HEALTHCHECK command, run as Docker runs it.
        let probe = docker(&[
            "exec",
            container,
            &format!("/usr/local/bin/{binary}"),
            "health",
        ]);
        assert!(
            probe.status.success(),
            "{binary} health: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        // And it can fail: nothing listens on this port.
        let wrong = docker(&[
            "exec",
            container,
            &format!("/usr/local/bin/{binary}"),
            "health",
            "--addr=127.0.0.1:9",
        ]);
        assert_eq!(wrong.status.code(), Some(1), "{binary}");
    }
    let version = docker_ok(&["run", "--rm", &images.image("quarry"), "--version"]);
    assert!(version.starts_with("quarry "), "{version}");
}

/// The runtime stages of `docker/Dockerfile` (from source) and
/// `docker/Dockerfile.prebuilt` (from local binaries) are the same but for
/// where the root file system comes from.
#[test]
fn both_dockerfiles_define_the_same_runtime_images() {
    let stages = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(workspace().join(file)).unwrap();
        let start = text
            .find("# --- runtime stages")
            .unwrap_or_else(|| panic!("{file}: no runtime stages marker"));
        let end = text
            .find("# --- end of runtime stages ---")
            .unwrap_or_else(|| panic!("{file}: no end marker"));
        text[start..end]
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                if let Some(rest) = l.strip_prefix("COPY --from=build /out/") {
                    format!("COPY <rootfs>/{rest}")
                } else if let Some(rest) = l.strip_prefix("COPY rootfs/") {
                    format!("COPY <rootfs>/{rest}")
                } else {
                    l.to_owned()
                }
            })
            .collect()
    };
    let source = stages("docker/Dockerfile");
    let prebuilt = stages("docker/Dockerfile.prebuilt");
    assert_eq!(source, prebuilt);
    for image in ["quarry-agent", "quarry", "quarry-sim"] {
        assert!(
            source
                .iter()
                .any(|l| l == &format!("FROM scratch AS {image}")),
            "{image}"
        );
    }
    assert!(
        source
            .iter()
            .filter(|l| l.starts_with("USER 65532"))
            .count()
            == 3
    );
}

/// The specs the container and Kubernetes set-ups ship are valid.
#[test]
fn shipped_specs_validate() {
    for spec in ["docker/specs/three-regions.toml", "deploy/k8s/spec.toml"] {
        let path = workspace().join(spec);
        if let Err(e) = quarry::spec::load_spec(&path) {
            panic!("{spec}: {e}");
        }
    }
}

/// The Kubernetes manifests validate against the Kubernetes API schemas
/// (kubernetes-validate, strict: unknown fields are errors) for the
/// versions EKS supports, and the ECS task definition against the ECS API
/// model (botocore's parameter validator, the AWS CLI's own check); a
/// broken manifest is rejected, so the check can fail.
#[test]
fn deploy_manifests_validate_against_the_kubernetes_and_ecs_schemas() {
    let test = "deploy_manifests_validate_against_the_kubernetes_and_ecs_schemas";
    if require_tool(test, "kubernetes-validate", &["--version"]).is_none()
        || require_tool(test, "python3", &["-c", "import botocore"]).is_none()
    {
        return;
    }
    let root = workspace();
    let script = root.join("scripts/validate-deploy");
    let out = std::process::Command::new(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let broken = tempfile::tempdir().unwrap();
    let deployment = std::fs::read_to_string(root.join("deploy/k8s/agent-deployment.yaml"))
        .unwrap()
        .replacen("replicas: 3", "replicas: three", 1);
    assert!(deployment.contains("replicas: three"));
    std::fs::write(broken.path().join("agent-deployment.yaml"), deployment).unwrap();
    let out = std::process::Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(broken.path().join("agent-deployment.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken Deployment passed");

    let task: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/ecs/agent-task-definition.json")).unwrap(),
    )
    .unwrap();
    let mut task = task;
    task["containerDefinitions"][0]["healthcheck"] = serde_json::json!({});
    let broken_task = broken.path().join("task.json");
    std::fs::write(&broken_task, task.to_string()).unwrap();
    let out = std::process::Command::new(&script)
        .args(["--ecs-only", broken_task.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken task definition passed");
}

/// The role credentials the fake container-credentials endpoint hands out,
/// and the only ones the simulator below accepts (its default account is
/// off, and the session token is required).
const ROLE_KEY_ID: &str = "ASIAQUARRYROLE000001";
const ROLE_SECRET: &str = "quarryRoleSecretKey0000000000000000000000";
const ROLE_SESSION: &str = "quarry-role-session-token";
const POD_IDENTITY_TOKEN: &str = "pod-identity-authorization-token";

/// A container credentials endpoint on loopback, as ECS serves a task role
/// and EKS Pod Identity serves a pod's role: `GET /role` with the
/// authorization token answers the role's temporary credentials. Counts
/// the requests it answered.
async fn credentials_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/role", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let authorized = head.starts_with("get /role ")
                    && head.contains(&format!("authorization: {POD_IDENTITY_TOKEN}"));
                let (status, body) = if authorized {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::json!({
                        "AccessKeyId": ROLE_KEY_ID,
                        "SecretAccessKey": ROLE_SECRET,
                        "Token": ROLE_SESSION,
                        "Expiration": "2099-01-01T00:00:00Z",
                        "RoleArn": "arn:aws:iam::111122223333:role/quarry-agent-bedrock",
                    });
                    ("200 OK", body.to_string())
                } else {
                    ("403 Forbidden", "{}".to_owned())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, served)
}

/// Inside its container, the agent finds AWS credentials through the
/// standard chain: here the container credentials endpoint of an ECS task
/// role or EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_FULL_URI` and an
/// authorization token). The simulator accepts only those role
/// credentials, so every answered request proves where they came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_container_signs_with_its_role_credentials_from_the_standard_chain() {
    let test = "an_agent_container_signs_with_its_role_credentials_from_the_standard_chain";
    if require_docker(test).is_none() {
        return;
    }
    let images = Images::get();
    let scope = Scope::new();
    let (credentials_url, served) = credentials_endpoint().await;
    let work = tempfile::tempdir().unwrap();
    open_to_containers(work.path());
    let sim_config = work.path().join("sim.toml");
    std::fs::write(
        &sim_config,
        format!(
            "seed = 1\ndefault_account = false\n\
             [[models]]\nid = \"{LLAMA}\"\n\
             latency = {{ kind = \"fixed\", ttft_ms = 5.0, gap_ms = 1.0 }}\n\
             [[accounts]]\naccess_key_id = \"{ROLE_KEY_ID}\"\n\
             secret_access_key = \"{ROLE_SECRET}\"\naccount_id = \"111122223333\"\n\
             session_tokens = [\"{ROLE_SESSION}\"]\n"
        ),
    )
    .unwrap();
    readable_by_containers(&sim_config);
    let mount_work = format!("{}:/mnt/quarry", work.path().display());
    let sim = scope.create(
        "sim",
        &[
            "-p",
            "127.0.0.1::8080",
            "-v",
            &mount_work,
            &images.image("quarry-sim"),
            "--listen=0.0.0.0:8080",
            "--config=/mnt/quarry/sim.toml",
        ],
    );
    docker_ok(&["start", &sim]);
    wait_for_log(&sim, "listening on", Duration::from_secs(30)).await;
    let sim_addr = format!("127.0.0.1:{}", published_port(&sim, 8080));

    // The host's network namespace, so that the endpoint is on the agent's
    // loopback, where the SDK allows a plain-HTTP credentials endpoint (as
    // ECS's and EKS's link-local ones); then the agent may listen on
    // loopback without authentication.
    let full_uri = format!("AWS_CONTAINER_CREDENTIALS_FULL_URI={credentials_url}");
    let token = format!("AWS_CONTAINER_AUTHORIZATION_TOKEN={POD_IDENTITY_TOKEN}");
    let agent = scope.create(
        "agent",
        &[
            "--network=host",
            "-e",
            &full_uri,
            "-e",
            &token,
            "-e",
            "AWS_EC2_METADATA_DISABLED=true",
            &images.image("quarry-agent"),
            "--listen=127.0.0.1:0",
            "--insecure",
            "--agent-id=role-agent",
            "--results-dir=/var/lib/quarry/agent-results",
        ],
    );
    docker_ok(&["start", &agent]);
    let needle = "quarry-agent: listening on ";
    wait_for_log(&agent, needle, Duration::from_secs(30)).await;
    let address = logs(&agent)
        .lines()
        .find_map(|l| l.strip_prefix(needle))
        .unwrap()
        .trim()
        .to_owned();

    let spec_path = work.path().join("spec.toml");
    std::fs::write(
        &spec_path,
        spec(
            &format!("http://{sim_addr}"),
            "concurrency = 2\nrequests = 20",
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let run = tokio::process::Command::new(quarry_e2e::procs::quarry_bin())
        .arg("run")
        .arg(&spec_path)
        .args(["--interval-secs", "0.2", "--agents", &address])
        .arg("--out")
        .arg(&out)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}\n{}", logs(&agent));
    let counts = group_counts(&out);
    assert_eq!(total(&counts, "outcome_ok"), 20, "{counts:?}");
    let sim_seen = sim_counts(&sim_addr);
    assert_eq!(sim_seen.ok, 20, "{sim_seen:?}");
    assert_eq!(sim_seen.other, 0, "{sim_seen:?}");
    assert!(
        served.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the credentials endpoint was never asked"
    );
}
