//! The simulator as a separate process: `quarry-sim` started with a scenario's
//! configuration (optionally pinned to a CPU with `taskset`), so its work never
//! shares the agent's core, and its CPU time can be read from outside.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::probe::Proc;

/// A running `quarry-sim`: started here (and killed when dropped), or one
/// already running that several client processes take turns against.
pub(crate) struct SimProcess {
    child: Option<Child>,
    pid: Option<u32>,
    url: String,
    /// Kept alive for the process's lifetime (it reads the file at start).
    _config: Option<tempfile::NamedTempFile>,
}

impl SimProcess {
    /// Starts `bin` with `config` (TOML) on a free loopback port, one tokio
    /// worker, pinned to `cpu` when given, and waits for its
    /// `listening on http://...` line.
    pub(crate) fn spawn(bin: &Path, config: &str, cpu: Option<&str>) -> anyhow::Result<Self> {
        let mut file = tempfile::Builder::new()
            .prefix("loadbench-sim-")
            .suffix(".toml")
            .tempfile()?;
        file.write_all(config.as_bytes())?;
        file.flush()?;
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpu]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        command
            .args(["--listen", "127.0.0.1:0", "--threads", "1"])
            .args(["--max-connections", "20000"])
            .arg("--config")
            .arg(file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("simulator stdout was not captured");
        };
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first)?;
        let Some(url) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("simulator did not start: first line {first:?}");
        };
        let url = url.to_owned();
        // Keep draining stdout so the simulator can never block on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        Ok(SimProcess {
            pid: Some(child.id()),
            child: Some(child),
            url,
            _config: Some(file),
        })
    }

    /// A simulator already listening at `url`, with process id `pid` when
    /// known (for its CPU readings).
    pub(crate) fn external(url: &str, pid: Option<u32>) -> Self {
        SimProcess {
            child: None,
            pid,
            url: url.trim_end_matches('/').to_owned(),
            _config: None,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The simulator process, for CPU readings (taskset execs it in place,
    /// so the child's id is the simulator's).
    pub(crate) fn proc(&self) -> Option<Proc> {
        self.pid.map(Proc::Pid)
    }

    /// Requests the simulator answered `ok`, from `GET /_quarry/stats`.
    pub(crate) async fn ok_requests(&self) -> anyhow::Result<u64> {
        let stats = self.stats().await?;
        let lanes = stats["lanes"].as_array().cloned().unwrap_or_default();
        Ok(lanes
            .iter()
            .flat_map(|lane| lane["requests"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["outcome"] == "ok")
            .filter_map(|r| r["count"].as_u64())
            .sum())
    }

    /// The simulator's stats snapshot (one HTTP/1.1 GET, connection closed).
    async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        let authority = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let request = format!(
            "GET /_quarry/stats HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let text = String::from_utf8_lossy(&response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            bail!("stats: no HTTP header end in {} bytes", response.len());
        };
        if !head.starts_with("HTTP/1.1 200") {
            bail!("stats: {}", head.lines().next().unwrap_or_default());
        }
        // A chunked body would need de-chunking; the simulator sends a length.
        Ok(serde_json::from_str(body.trim())?)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
