//! The AWS clients users reach for first — boto3 and the AWS CLI — run as
//! child processes against a simulator, so tests exercise the simulator with
//! the very code a user's script would run. Each call gets a clean
//! environment: the simulator's endpoint and example keys, one attempt (the
//! test sees what the simulator sent), no profile files, no instance
//! metadata lookups, no pager.
//!
//! A missing client is a skip with a note on a developer's machine and a
//! failure with `CI=true` (`scripts/test` installs both from PyPI).

use std::process::{Output, Stdio};

use tokio::process::Command;

use quarry_sim::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};

use crate::docker::require_tool;

/// The Region every client is configured with.
pub const REGION: &str = "us-east-1";

/// boto3, for `test`: `None` (skip, with a note) when `python3 -c "import
/// boto3"` fails, a panic instead with `CI=true`.
pub fn require_boto3(test: &str) -> Option<()> {
    require_tool(test, "python3", &["-c", "import boto3"])
}

/// The AWS CLI, for `test`: like [`require_boto3`].
pub fn require_aws_cli(test: &str) -> Option<()> {
    require_tool(test, "aws", &["--version"])
}

/// A command with the clean client environment pointed at `endpoint`.
fn client_command(program: &str, endpoint: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .env("QUARRY_SIM_URL", endpoint)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs the Python program `code` (boto3 is importable) with the
/// simulator's URL in `QUARRY_SIM_URL` and `extra_env` on top of the clean
/// client environment. Clients are built as
/// `boto3.client(..., endpoint_url=os.environ["QUARRY_SIM_URL"])`.
pub async fn python(endpoint: &str, code: &str, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = client_command("python3", endpoint);
    cmd.arg("-c").arg(code);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("python3 runs")
}

/// Runs `aws --endpoint-url ENDPOINT --output json ARGS...`.
pub async fn aws(endpoint: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = client_command("aws", endpoint);
    cmd.args(["--endpoint-url", endpoint, "--output", "json"])
        .args(args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("aws runs")
}

/// Runs the `quarry` binary with `args` in the clean client environment
/// (the simulator's example keys, one attempt, no profile files), in `dir`.
pub async fn quarry(endpoint: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    let bin = crate::procs::quarry_bin();
    let mut cmd = client_command(&bin.to_string_lossy(), endpoint);
    cmd.current_dir(dir).args(args);
    cmd.output().await.expect("quarry runs")
}

/// The stdout of a client that must have succeeded, parsed as JSON; a
/// panic naming `what`, the exit status and stderr otherwise.
pub fn json_ok(what: &str, out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: exited {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
