//! A harness over the `docker` and compose CLIs for the container tests
//! (`tests/containers.rs`): whether Docker is there (a skip with a note on a
//! developer's machine, a failure with `CI=true`), Quarry's runtime images
//! built once from the binaries cargo already built (`scripts/docker-images
//! --bin-dir`, no registry pull), and a [`Scope`] that names every
//! container, network and compose project a test makes and removes them
//! when dropped — on a panic too. Leftovers of a test process that was
//! killed (a nextest timeout) are swept by the next one.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::procs::workspace_bin;

/// The label on every container and network the tests create; its value is
/// the creating test process's pid.
pub const LABEL: &str = "org.quarry.test.pid";

/// The prefix of every name the tests give (containers, networks, compose
/// projects): `quarrytest<pid>x<n>`.
const PREFIX: &str = "quarrytest";

/// The images the tests run (the script builds them all).
pub const IMAGES: [&str; 3] = ["quarry-agent", "quarry", "quarry-sim"];

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `program args` runs and exits 0.
fn works(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` exited {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("`{program}` cannot run: {e}")),
    }
}

/// `Some(())` when `what` is usable; otherwise a note on stderr and `None`
/// (the caller returns: the test is skipped), or, with `CI=true`, a panic:
/// CI must run these tests, not pass them by skipping.
fn require(test: &str, what: &str, probe: Result<(), String>) -> Option<()> {
    match probe {
        Ok(()) => Some(()),
        Err(e) if ci() => panic!("{test}: {what} is required with CI=true but unusable: {e}"),
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: {what} is unusable here ({e}); CI=true makes this a failure"
            );
            None
        }
    }
}

/// Docker, for `test`: `None` (skip, with a note) when it is unusable,
/// a panic instead with `CI=true`.
pub fn require_docker(test: &str) -> Option<()> {
    require(
        test,
        "Docker",
        works("docker", &["version", "--format", "{{.Server.Version}}"]),
    )
}

/// A command-line tool (`probe` is a harmless invocation), for `test`:
/// like [`require_docker`].
pub fn require_tool(test: &str, program: &str, probe: &[&str]) -> Option<()> {
    require(test, program, works(program, probe))
}

/// The compose CLI: `docker-compose` (v1, or v2's standalone binary), else
/// the `docker compose` plugin.
pub fn require_compose(test: &str) -> Option<Vec<String>> {
    let v1 = works("docker-compose", &["version"]);
    if v1.is_ok() {
        return Some(vec!["docker-compose".to_owned()]);
    }
    let v2 = works("docker", &["compose", "version"]);
    let probe = v2.map_err(|e| format!("{}; {e}", v1.unwrap_err()));
    require(test, "docker compose", probe)?;
    Some(vec!["docker".to_owned(), "compose".to_owned()])
}

/// Runs `docker args`.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker runs")
}

/// Runs `docker args`, which must succeed; its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Quarry's runtime images, as built for this test run.
#[derive(Debug, Clone)]
pub struct Images {
    /// The tag on all of them: `test-<fingerprint of binaries and scripts>`.
    pub tag: String,
}

impl Images {
    /// Builds the images from the workspace's binaries with
    /// `scripts/docker-images --bin-dir`, once per fingerprint: a test
    /// process that finds them already built (an earlier test, an earlier
    /// run with the same binaries) reuses them. Older test tags are removed.
    pub fn get() -> Images {
        static BUILT: OnceLock<Mutex<Option<Images>>> = OnceLock::new();
        let mut built = BUILT
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(images) = built.as_ref() {
            return images.clone();
        }
        let bins: Vec<PathBuf> = IMAGES.iter().map(|b| workspace_bin(b, b)).collect();
        let bin_dir = bins[0]
            .parent()
            .expect("a binary has a directory")
            .to_owned();
        let root = workspace();
        let mut hasher = DefaultHasher::new();
        for bin in &bins {
            let meta = std::fs::metadata(bin).expect("the binary exists");
            (bin, meta.len(), meta.modified().ok()).hash(&mut hasher);
        }
        for script in [
            "docker/Dockerfile.prebuilt",
            "docker/assemble-rootfs",
            "scripts/docker-images",
        ] {
            std::fs::read(root.join(script))
                .expect("the image scripts exist")
                .hash(&mut hasher);
        }
        let tag = format!("test-{:016x}", hasher.finish());
        let present = IMAGES.iter().all(|i| {
            docker(&["image", "inspect", &format!("{i}:{tag}")])
                .status
                .success()
        });
        if !present {
            let out = Command::new(root.join("scripts/docker-images"))
                .arg("--bin-dir")
                .arg(&bin_dir)
                .args(["--tag", &tag])
                .stdin(Stdio::null())
                .output()
                .expect("scripts/docker-images runs");
            assert!(
                out.status.success(),
                "scripts/docker-images failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            remove_old_test_tags(&tag);
        }
        let images = Images { tag };
        *built = Some(images.clone());
        images
    }

    /// `name:tag` of image `name` (one of [`IMAGES`]).
    pub fn image(&self, name: &str) -> String {
        format!("{name}:{}", self.tag)
    }
}

/// Removes the images of earlier test builds (other `test-*` tags), so
/// repeated runs do not fill the disk. Images a container still uses stay.
fn remove_old_test_tags(current: &str) {
    let listed = docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let old: Vec<&str> = listed
        .lines()
        .filter(|line| {
            line.split_once(':').is_some_and(|(repo, tag)| {
                IMAGES.contains(&repo) && tag.starts_with("test-") && tag != current
            })
        })
        .collect();
    if !old.is_empty() {
        let mut args = vec!["rmi"];
        args.extend(old);
        // Best effort: an image in use by a running container stays.
        let _ = docker(&args);
    }
}

/// Removes what killed test processes left behind: containers and networks
/// labelled with a pid that is no longer running, and compose projects
/// named after one.
fn sweep_leftovers() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let dead = |pid: &str| !pid.is_empty() && !Path::new("/proc").join(pid).exists();
        let format = format!("{{{{.Names}}}} {{{{.Label \"{LABEL}\"}}}}");
        let listed = docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL}"),
            "--format",
            &format,
        ]);
        for line in listed.lines() {
            if let Some((name, pid)) = line.split_once(' ')
                && dead(pid.trim())
            {
                let _ = docker(&["rm", "-f", "-v", name]);
            }
        }
        let format = "{{.Label \"com.docker.compose.project\"}}";
        let projects = docker_ok(&[
            "ps",
            "-a",
            "--filter",
            "label=com.docker.compose.project",
            "--format",
            format,
        ]);
        let mut stale: Vec<&str> = projects
            .lines()
            .filter(|p| {
                p.strip_prefix(PREFIX)
                    .and_then(|rest| rest.split_once('x'))
                    .is_some_and(|(pid, _)| dead(pid))
            })
            .collect();
        stale.sort_unstable();
        stale.dedup();
        for project in stale {
            remove_compose_leftovers(project);
        }
        let format = format!("{{{{.Name}}}} {{{{.Label \"{LABEL}\"}}}}");
        let networks = docker_ok(&[
            "network",
            "ls",
            "--filter",
            &format!("label={LABEL}"),
            "--format",
            &format,
        ]);
        for line in networks.lines() {
            if let Some((name, pid)) = line.split_once(' ')
                && dead(pid.trim())
            {
                let _ = docker(&["network", "rm", name]);
            }
        }
    });
}

/// Removes a compose project's containers, networks and volumes by label
/// (without its compose file).
fn remove_compose_leftovers(project: &str) {
    let filter = format!("label=com.docker.compose.project={project}");
    let containers = docker_ok(&["ps", "-aq", "--filter", &filter]);
    let ids: Vec<&str> = containers.lines().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids);
        let _ = docker(&args);
    }
    for kind in ["network", "volume"] {
        let listed = docker_ok(&[kind, "ls", "-q", "--filter", &filter]);
        for id in listed.lines() {
            let _ = docker(&[kind, "rm", id]);
        }
    }
}

/// The containers, networks and compose projects of one test, removed on
/// drop.
pub struct Scope {
    prefix: String,
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    projects: Mutex<Vec<Compose>>,
}

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

impl Scope {
    /// A new scope with a name prefix unique on this machine.
    pub fn new() -> Scope {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        sweep_leftovers();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scope {
            prefix: format!("{PREFIX}{}x{n}", std::process::id()),
            containers: Mutex::default(),
            networks: Mutex::default(),
            projects: Mutex::default(),
        }
    }

    /// The scope's name for `what`: `<prefix>-<what>`.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// The scope's compose project name (one per scope).
    pub fn project(&self) -> String {
        self.prefix.clone()
    }

    fn label(&self) -> String {
        format!("{LABEL}={}", std::process::id())
    }

    /// Creates a bridge network `<prefix>-<what>`; its name.
    pub fn network(&self, what: &str) -> String {
        let name = self.name(what);
        docker_ok(&["network", "create", "--label", &self.label(), &name]);
        lock(&self.networks).push(name.clone());
        name
    }

    /// Creates (does not start) container `<prefix>-<what>` from `args`
    /// (`docker create` options, the image, then its arguments); its name.
    pub fn create(&self, what: &str, args: &[&str]) -> String {
        let name = self.name(what);
        let label = self.label();
        let mut all = vec!["create", "--name", &name, "--label", &label];
        all.extend_from_slice(args);
        docker_ok(&all);
        lock(&self.containers).push(name.clone());
        name
    }

    /// [`Scope::create`], attached to every one of `networks` (the first at
    /// creation, the others before it starts) with `alias` on each, then
    /// started.
    pub fn start_on(&self, what: &str, networks: &[&str], alias: &str, args: &[&str]) -> String {
        let (first, others) = networks.split_first().expect("at least one network");
        let network = format!("--network={first}");
        let alias_flag = format!("--network-alias={alias}");
        let mut all = vec![network.as_str(), alias_flag.as_str()];
        all.extend_from_slice(args);
        let name = self.create(what, &all);
        for net in others {
            docker_ok(&["network", "connect", "--alias", alias, net, &name]);
        }
        docker_ok(&["start", &name]);
        name
    }

    /// A compose project of this scope over `file`, with `env` set for
    /// every compose command; `down -v` when the scope drops.
    pub fn compose(
        &self,
        program: Vec<String>,
        file: &Path,
        env: Vec<(String, String)>,
    ) -> Compose {
        let compose = Compose {
            program,
            file: file.to_owned(),
            project: self.project(),
            env,
        };
        lock(&self.projects).push(compose.clone());
        compose
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        for compose in lock(&self.projects).drain(..) {
            let _ = compose.output(&["down", "-v", "--remove-orphans", "--timeout", "2"]);
            remove_compose_leftovers(&compose.project);
        }
        let containers: Vec<String> = lock(&self.containers).drain(..).collect();
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            let _ = docker(&args);
        }
        for network in lock(&self.networks).drain(..) {
            let _ = docker(&["network", "rm", &network]);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One compose project.
#[derive(Debug, Clone)]
pub struct Compose {
    program: Vec<String>,
    file: PathBuf,
    /// The project name (`-p`).
    pub project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    /// Runs a compose command; its output.
    pub fn output(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..])
            .arg("-f")
            .arg(&self.file)
            .args(["-p", &self.project])
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("the compose CLI runs")
    }

    /// Runs a compose command that must succeed; its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "compose {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The id of `service`'s container.
    pub fn container(&self, service: &str) -> String {
        self.ok(&["ps", "-q", service])
    }
}

/// A container's logs (stdout and stderr).
pub fn logs(container: &str) -> String {
    let out = docker(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until `container`'s logs contain `needle`, checking every 100 ms
/// for at most `limit`; panics with the logs when it never does.
pub async fn wait_for_log(container: &str, needle: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let text = logs(container);
        if text.contains(needle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{container} did not log {needle:?} within {limit:?}; its logs:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most `limit`) for `container` to exit; its exit code.
pub fn wait_exit(container: &str, limit: Duration) -> i64 {
    let secs = limit.as_secs().max(1).to_string();
    // `timeout` bounds `docker wait`, which has no limit of its own.
    let out = Command::new("timeout")
        .args([secs.as_str(), "docker", "wait", container])
        .stdin(Stdio::null())
        .output()
        .expect("timeout and docker run");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "{container} did not exit within {limit:?} ({}); its logs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            logs(container)
        )
    })
}

/// The networks `container` is attached to, sorted.
pub fn networks_of(container: &str) -> Vec<String> {
    let listed = docker_ok(&[
        "inspect",
        "--format",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
        container,
    ]);
    let mut names: Vec<String> = listed.split_whitespace().map(str::to_owned).collect();
    names.sort();
    names
}

/// The host's loopback port that `container`'s `port` is published on.
pub fn published_port(container: &str, port: u16) -> u16 {
    let mapping = docker_ok(&["port", container, &format!("{port}/tcp")]);
    mapping
        .lines()
        .find_map(|l| l.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{container}:{port} is not published on 127.0.0.1: {mapping}"))
}

/// `GET path` from `addr` over HTTP/1.0 (no chunked answer); the body of a
/// 200 answer.
pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("socket timeouts");
    write!(stream, "GET {path} HTTP/1.0\r\nhost: {addr}\r\n\r\n").expect("request sent");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("reading GET {path} from {addr}: {e}"));
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end in {answer:?}"));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {path} from {addr}: {head}"
    );
    body.to_owned()
}

/// The simulator's own counts, from its `/_quarry/stats` JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCounts {
    /// Requests it answered with outcome `ok`.
    pub ok: u64,
    /// Requests with any other outcome.
    pub other: u64,
    /// Input tokens it counted.
    pub input_tokens: u64,
    /// Output tokens it produced.
    pub output_tokens: u64,
}

/// [`SimCounts`] of the simulator at `addr` (host:port).
pub fn sim_counts(addr: &str) -> SimCounts {
    let stats: serde_json::Value =
        serde_json::from_str(&http_get(addr, "/_quarry/stats")).expect("stats are JSON");
    let mut counts = SimCounts {
        ok: 0,
        other: 0,
        input_tokens: 0,
        output_tokens: 0,
    };
    for lane in stats["lanes"].as_array().expect("stats have lanes") {
        for r in lane["requests"].as_array().expect("a lane has requests") {
            let n = r["count"].as_u64().expect("a count");
            if r["outcome"] == "ok" {
                counts.ok += n;
            } else {
                counts.other += n;
            }
        }
        counts.input_tokens += lane["tokens"]["input_tokens"].as_u64().unwrap_or(0);
        counts.output_tokens += lane["tokens"]["output_tokens"].as_u64().unwrap_or(0);
    }
    counts
}

/// Mutual-TLS material for agents named `agents` (each certificate carries
/// its agent's name, which the controller dials) and one controller client
/// certificate, all from one fresh CA; written to `dir` as `ca.pem`,
/// `<name>.pem` / `<name>.key` and `controller.pem` / `controller.key`.
/// Made at test time and mounted read-only: never in an image. The files
/// are world-readable because the containers' user (65532) reads them
/// through a bind mount.
pub fn mtls_material(dir: &Path, agents: &[&str]) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key"))
        .expect("the CA signs itself");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).expect("TLS material written");
    };
    write("ca.pem", &ca.pem());
    for name in agents.iter().copied().chain(["controller"]) {
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("cert params")
            .signed_by(&key, &ca)
            .expect("the CA signs");
        write(&format!("{name}.pem"), &cert.pem());
        write(&format!("{name}.key"), &key.serialize_pem());
    }
}

/// Makes `path` readable and writable by every user (a directory a
/// container's non-root user writes results to through a bind mount).
pub fn open_to_containers(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
        .expect("permissions set");
}

/// Makes `path` readable by every user (a file a container's non-root user
/// reads through a bind mount).
pub fn readable_by_containers(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("permissions set");
}
