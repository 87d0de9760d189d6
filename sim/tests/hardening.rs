//! What a hostile or broken client may cost the simulator, over real
//! sockets: unsigned bodies are refused before they are read, idle, slow
//! and oversized requests are closed, a connection past the cap is told at
//! once, and error messages never echo a client's value whole.
//!
//! No assertion is on elapsed time. Limits are configured short and each
//! test asserts what happened (an answer before any body byte was sent, a
//! close the server made, the server's own counters); the timeouts around
//! reads only keep a broken server from hanging the suite.

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use quarry_bedrock::auth::{Credentials, Signer};
use quarry_bedrock::{ModelId, Operation, Prompt};
use quarry_sim::{
    DEFAULT_ACCESS_KEY_ID, Limits, ServerOptions, ServerSnapshot, SimConfig, SimServer, Simulator,
    system_clock,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const API_KEY: &str = "ABSKquarryhardeningkey";
/// A liveness bound: long enough for a loaded machine, only there so a
/// regression fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

async fn serve(toml: &str, limits: Limits) -> SimServer {
    let config = SimConfig::from_toml(toml, "sim.toml").unwrap();
    let options = ServerOptions {
        limits,
        ..ServerOptions::default()
    };
    SimServer::bind(Simulator::new(&config).unwrap(), options)
        .await
        .unwrap()
}

fn zero_with_api_key() -> String {
    format!(
        "latency = {{ kind = \"zero\" }}\n[[accounts]]\naccess_key_id = \"AKIAQUARRYHARD\"\nsecret_access_key = \"s3cret\"\naccount_id = \"111122223333\"\napi_keys = [\"{API_KEY}\"]\n"
    )
}

fn converse_path() -> String {
    format!(
        "/model/{}/{}",
        ModelId::parse(LLAMA).unwrap().encode_path_segment(),
        Operation::Converse.path_suffix()
    )
}

fn counters(server: &SimServer) -> ServerSnapshot {
    server.simulator().stats_snapshot().server
}

/// Reads until the server closes, or fails the test after [`PATIENCE`].
async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 8192];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server neither answered nor closed");
    String::from_utf8_lossy(&got).into_owned()
}

/// A request head, as raw HTTP/1.1, with `headers` added.
fn head(addr: SocketAddr, path: &str, content_length: usize, headers: &[(&str, &str)]) -> String {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out
}

/// A signer with the simulator's default (AWS documentation example) keys.
fn example_signer() -> Signer {
    Signer::new(
        "us-east-1",
        Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            quarry_sim::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "t",
        ),
    )
}

/// Connects and sends a Converse head with `headers` (owned pairs, as
/// [`signed_headers`] gives them), declaring `content_length`, then `body`.
async fn send(
    addr: SocketAddr,
    headers: &[(String, String)],
    content_length: usize,
    body: &[u8],
) -> TcpStream {
    let extra: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head(addr, &converse_path(), content_length, &extra).as_bytes())
        .await
        .unwrap();
    conn.write_all(body).await.unwrap();
    conn
}

/// The headers a SigV4 signer adds for `body` sent to `path` (but `host`,
/// which [`head`] writes).
fn signed_headers(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    signer: &Signer,
) -> Vec<(String, String)> {
    let mut req = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    signer.sign(&mut req, body, system_clock()).unwrap();
    req.headers()
        .iter()
        .filter(|(n, _)| *n != "content-type" && *n != "host")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_request_that_fails_at_its_head_is_answered_before_its_body_is_sent() {
    let server = serve(&zero_with_api_key(), Limits::default()).await;
    let addr = server.local_addr();
    let unknown = Signer::new(
        "us-east-1",
        Credentials::new("AKIANOBODY", "x", None, None, "t"),
    );
    let big = 23 * 1024 * 1024;
    let mut cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("MissingAuthenticationTokenException", Vec::new()),
        (
            "MissingAuthenticationTokenException",
            vec![("expect".to_owned(), "100-continue".to_owned())],
        ),
        (
            "AccessDeniedException",
            vec![(
                "authorization".to_owned(),
                "Bearer sk-not-bedrock".to_owned(),
            )],
        ),
    ];
    let unknown_headers = signed_headers(addr, &converse_path(), b"{}", &unknown);
    cases.push(("UnrecognizedClientException", unknown_headers));
    for (code, extra) in &cases {
        let mut conn = send(addr, extra, big, b"").await;
        // Not one byte of the 23 MiB body is sent: the answer must come,
        // and the connection close (the body will never be read).
        let answer = read_to_close(&mut conn).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{code}: {answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(
            answer.contains(&format!("x-amzn-errortype: {code}")),
            "{answer}"
        );
    }
    let c = counters(&server);
    assert_eq!(c.requests_refused_before_body, cases.len() as u64);
    assert_eq!(c.unverified_body_bytes, 0);
}

#[tokio::test]
async fn a_body_under_a_known_key_is_read_within_the_budget_then_refused() {
    let server = serve("latency = { kind = \"zero\" }\n", Limits::default()).await;
    let addr = server.local_addr();
    let wrong = Signer::new(
        "us-east-1",
        Credentials::new(DEFAULT_ACCESS_KEY_ID, "not-the-secret", None, None, "t"),
    );
    let body = vec![b' '; 300_000];
    let mut headers = signed_headers(addr, &converse_path(), &body, &wrong);
    headers.push(("connection".to_owned(), "close".to_owned()));
    let mut conn = send(addr, &headers, body.len(), &body).await;
    let answer = read_to_close(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("InvalidSignatureException"), "{answer}");
    let c = counters(&server);
    assert_eq!(c.unverified_body_bytes, body.len() as u64);
    assert_eq!(c.requests_refused_before_body, 0);
}

#[tokio::test]
async fn idle_connections_and_slow_heads_are_closed_but_answers_in_flight_are_not() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    // Answers take 1.5 s, far past both timeouts.
    let slow = "[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\nlatency = { kind = \"fixed\", ttft_ms = 1500.0, gap_ms = 0.0 }\n";
    let server = serve(slow, limits).await;
    let addr = server.local_addr();
    // Idle: connects, sends nothing.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        read_to_close(&mut idle).await,
        "",
        "closed without an answer"
    );
    // Slowloris: half a head, then nothing.
    let mut slow_head = TcpStream::connect(addr).await.unwrap();
    slow_head
        .write_all(b"POST /model/x/converse HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut slow_head).await, "");
    // In flight: a signed request whose answer outlasts both timeouts, then
    // the same connection idles and is closed.
    let signer = example_signer();
    let body = Prompt {
        system: None,
        cached_prefix: None,
        user_text: "Hello".into(),
        max_tokens: 4,
        temperature: None,
        cache_ttl: None,
        service_tier: None,
        history: Vec::new(),
        conversation_cache: false,
    }
    .converse_request()
    .to_vec();
    let headers = signed_headers(addr, &converse_path(), &body, &signer);
    let mut busy = send(addr, &headers, body.len(), &body).await;
    let answer = read_to_close(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"stopReason\""), "{answer}");
    let c = counters(&server);
    assert_eq!(c.connections_closed_slow_head, 1);
    assert_eq!(
        c.connections_closed_idle, 2,
        "the idle one, then the answered one"
    );
}

#[tokio::test]
async fn a_body_slower_than_the_body_timeout_is_cut() {
    let limits = Limits {
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = serve(&zero_with_api_key(), limits).await;
    let addr = server.local_addr();
    let auth = format!("Bearer {API_KEY}");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head(addr, &converse_path(), 100, &[("authorization", &auth)]).as_bytes())
        .await
        .unwrap();
    conn.write_all(b"{\"messages\":").await.unwrap();
    assert_eq!(read_to_close(&mut conn).await, "", "cut without an answer");
    assert_eq!(counters(&server).connections_closed_slow_body, 1);
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_gets_a_prompt_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let server = serve("", limits).await;
    let addr = server.local_addr();
    let _held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    tokio::time::timeout(PATIENCE, async {
        while server.open_connections() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /_quarry/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("ServiceUnavailableException"), "{answer}");
    assert!(answer.contains("maximum of 2 connections"), "{answer}");
    assert_eq!(counters(&server).connections_refused_at_capacity, 1);
}

#[tokio::test]
async fn two_authorization_headers_are_refused_as_aws_refuses_them() {
    let server = serve("latency = { kind = \"zero\" }\n", Limits::default()).await;
    let addr = server.local_addr();
    let signer = example_signer();
    let body = b"{}";
    let mut headers = signed_headers(addr, &converse_path(), body, &signer);
    let auth = headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1
        .clone();
    headers.push(("authorization".to_owned(), auth));
    let mut conn = send(addr, &headers, body.len(), body).await;
    conn.shutdown().await.unwrap();
    let answer = read_to_close(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("x-amzn-errortype: IncompleteSignatureException"),
        "{answer}"
    );
    assert!(
        answer.contains("'AWS4-HMAC-SHA256' not a valid key=value pair (missing equal-sign)"),
        "{answer}"
    );
}

#[tokio::test]
async fn huge_heads_are_refused_and_long_values_are_not_echoed_whole() {
    let server = serve("latency = { kind = \"zero\" }\n", Limits::default()).await;
    let addr = server.local_addr();
    // 400 KB: past the 64 KiB head cap, refused by the HTTP layer.
    let huge = format!("AWS4-HMAC-SHA256 {}", "A".repeat(400_000));
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let _ = conn
        .write_all(head(addr, &converse_path(), 2, &[("authorization", &huge)]).as_bytes())
        .await;
    let answer = read_to_close(&mut conn).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.len() < 1_000, "{} bytes", answer.len());
    // 40 KB: under the cap, refused as a malformed header, echoed in part.
    let long = format!("AWS4-HMAC-SHA256 Credential={}", "A".repeat(40_000));
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        head(
            addr,
            &converse_path(),
            2,
            &[("authorization", &long), ("x-amz-date", "20250101T000000Z")],
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut conn).await;
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.len() < 2_000, "{} bytes echoed", answer.len());
    assert!(answer.contains("more bytes)"), "{answer}");
}

#[tokio::test]
async fn messages_never_carry_control_characters() {
    let server = serve(&zero_with_api_key(), Limits::default()).await;
    let addr = server.local_addr();
    let body = br#"{"messages":[{"role":"\u0000\u001b[31muser","content":[{"text":"hi"}]}]}"#;
    let auth = format!("Bearer {API_KEY}");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        head(
            addr,
            &converse_path(),
            body.len(),
            &[("authorization", &auth), ("connection", "close")],
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    conn.write_all(body).await.unwrap();
    let answer = read_to_close(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let json = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let message = v["message"].as_str().unwrap();
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(
        message.contains("\\u{1b}[31muser"),
        "the value is echoed, escaped: {message:?}"
    );
}
