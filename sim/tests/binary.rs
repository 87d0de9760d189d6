//! The `quarry-sim` binary: its first line of output names the bound
//! address, it serves; SIGTERM (or Ctrl-C) lets requests in flight finish
//! and exits 0, a second signal cuts them and exits 1; a config error is
//! printed once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn prints_listening_line_then_exits_zero_on_sigterm() {
    let mut sim = start_sim(&["--seed", "3"]);
    let mut conn = TcpStream::connect(&sim.addr).unwrap();
    write!(
        conn,
        "GET /_quarry/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    sim.signal("TERM");
    assert_eq!(sim.child.wait().unwrap().code(), Some(0));
}

/// A running `quarry-sim` with its address and a line-by-line view of its
/// standard error.
struct Running {
    child: std::process::Child,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

fn start_sim(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry-sim"))
        .args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let (tx, stderr) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        addr,
        stderr,
    }
}

impl Running {
    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for a stderr line containing `needle` (the liveness bound only
    /// keeps a broken binary from hanging the suite).
    fn wait_for_stderr(&self, needle: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no stderr line with {needle:?}: {e}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Polls `/_quarry/stats` until a request is in flight on its quota pool.
    fn wait_until_in_flight(&self) {
        for _ in 0..6_000 {
            let mut conn = TcpStream::connect(&self.addr).unwrap();
            write!(
                conn,
                "GET /_quarry/stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            let mut reply = String::new();
            conn.read_to_string(&mut reply).unwrap();
            if reply.contains("\"in_flight\": 1") {
                return;
            }
            // A plain test thread, no runtime to stall: a short pause
            // between polls of another process.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the request never went in flight");
    }
}

/// A signed Converse request for Llama as raw HTTP/1.1 (`connection: close`).
fn signed_converse(addr: &str) -> Vec<u8> {
    use quarry_bedrock::auth::{Credentials, Signer};
    let path = "/model/meta.llama3-3-70b-instruct-v1%3A0/converse";
    let body = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":4}}"#;
    let mut req = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(())
        .unwrap();
    Signer::new(
        "us-east-1",
        Credentials::new(
            quarry_sim::DEFAULT_ACCESS_KEY_ID,
            quarry_sim::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ),
    )
    .sign(&mut req, body, quarry_sim::system_clock())
    .unwrap();
    let mut raw = format!("POST {path} HTTP/1.1\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in req.headers() {
        raw.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-sim-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A simulator whose answers take `ttft_ms`, with `grace_secs` to stop, a
/// Converse request in flight on the returned connection, and a SIGTERM
/// taken (its stopping line read).
fn stopping_with_a_request_in_flight(
    name: &str,
    ttft_ms: u32,
    grace_secs: u32,
) -> (Running, TcpStream) {
    let config = config_file(
        name,
        &format!(
            "[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\nlatency = {{ kind = \"fixed\", ttft_ms = {ttft_ms}.0, gap_ms = 0.0 }}\n"
        ),
    );
    let grace = grace_secs.to_string();
    let sim = start_sim(&["--config", config.to_str().unwrap(), "--grace-secs", &grace]);
    let mut conn = TcpStream::connect(&sim.addr).unwrap();
    conn.write_all(&signed_converse(&sim.addr)).unwrap();
    sim.wait_until_in_flight();
    sim.signal("TERM");
    sim.wait_for_stderr("stopping: no new connections");
    (sim, conn)
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    // Answers take 2 s: long enough to be in flight when the signal comes.
    let (mut sim, mut conn) = stopping_with_a_request_in_flight("slow.toml", 2_000, 120);
    assert!(
        TcpStream::connect(&sim.addr).is_err(),
        "no new connections once stopping"
    );
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("\"stopReason\""),
        "the whole answer: {reply}"
    );
    assert_eq!(sim.child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_second_signal_cuts_the_requests_in_flight_and_exits_one() {
    // Answers would take ten minutes, and so would the grace.
    let (mut sim, mut conn) = stopping_with_a_request_in_flight("stuck.toml", 600_000, 600);
    sim.signal("INT");
    let line = sim.wait_for_stderr("second signal");
    assert!(line.contains("cutting 1 open connection"), "{line}");
    assert_eq!(sim.child.wait().unwrap().code(), Some(1));
    let mut reply = String::new();
    let _ = conn.read_to_string(&mut reply);
    assert_eq!(reply, "", "cut, not answered");
}

#[test]
fn a_config_error_is_printed_once() {
    let config = config_file("bad.toml", "seed = \"x\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_quarry-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("quarry-sim: bad.toml: "), "{stderr}");
    assert_eq!(stderr.matches("invalid type").count(), 1, "{stderr}");
    // The whole TOML error once: its position line and its caret line.
    assert_eq!(stderr.matches("TOML parse error").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("line 1").count(), 1, "{stderr}");
    let carets = stderr.lines().filter(|l| l.contains('^')).count();
    assert_eq!(carets, 1, "{stderr}");
}
