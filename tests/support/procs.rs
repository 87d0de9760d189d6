//! The workspace's binaries as child processes: `quarry-agent` daemons on
//! loopback port 0, and the paths of `quarry` and `quarry-agent`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The directory the workspace's binaries are built into: the test binary
/// lives in `<target>/<profile>/deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in <target>/<profile>/deps")
        .to_owned()
}

/// A workspace binary. nextest builds every workspace binary before running
/// tests; under plain `cargo test -p quarry-e2e` it is built here.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if std::env::var_os("NEXTEST_RUN_ID").is_none() || !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", package, "--bin", name]);
        if bin_dir().ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build runs");
        assert!(status.success(), "cargo build -p {package} failed");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// The `quarry-agent` binary.
pub fn agent_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| workspace_bin("quarry-agent", "quarry-agent"))
        .clone()
}

/// The `quarry` binary.
pub fn quarry_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| workspace_bin("quarry", "quarry"))
        .clone()
}

/// Runs the `quarry` binary with `args` in `cwd` to its end: its exit
/// status and everything it printed.
pub fn quarry(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    std::process::Command::new(quarry_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// What a process printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `quarry-agent` on loopback (`--insecure`), killed when dropped.
pub struct Agent {
    /// The process.
    pub child: Child,
    /// `host:port` it listens on.
    pub socket: String,
    /// Its results directory.
    pub results: tempfile::TempDir,
}

impl Agent {
    /// Starts agent `id` with the simulator's keys as its only AWS
    /// credentials (nothing from the host).
    pub async fn start(id: &str) -> Agent {
        let results = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new(agent_bin())
            .args(["--listen", "127.0.0.1:0", "--insecure", "--agent-id", id])
            .arg("--results-dir")
            .arg(results.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env(
                "AWS_ACCESS_KEY_ID",
                quarry_bedrock::auth::EXAMPLE_ACCESS_KEY_ID,
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                quarry_bedrock::auth::EXAMPLE_SECRET_ACCESS_KEY,
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", results.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                results.path().join("no-aws-credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .kill_on_drop(true)
            .spawn()
            .expect("quarry-agent starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let socket = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
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
        Agent {
            child,
            socket,
            results,
        }
    }

    /// `n` agents named `agent-0` ...
    pub async fn start_many(n: usize) -> Vec<Agent> {
        let mut agents = Vec::with_capacity(n);
        for i in 0..n {
            agents.push(Agent::start(&format!("agent-{i}")).await);
        }
        agents
    }

    /// The `--agents` value for `agents`.
    pub fn flag(agents: &[Agent]) -> String {
        agents
            .iter()
            .map(|a| a.socket.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}
