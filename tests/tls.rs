//! HTTPS end to end: the agent's own transport against the simulator's
//! self-signed TLS, over HTTP/2 (ALPN h2) and HTTP/1.1, with signed requests.

use std::path::Path;

use quarry_bedrock::Outcome;
use quarry_engine::http::{HttpVersion, TlsRoots, TransportConfig};
use quarry_engine::{Connection, Count, EngineConfig, RunClock, Share};
use quarry_sim::{ServerOptions, SimConfig, SimServer, Simulator, TlsSettings, system_clock};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::mpsc;

/// Runs 20 ConverseStream requests over `version` and returns
/// (client ok count, simulator ok count).
async fn run_over_tls(version: HttpVersion) -> (u64, u64) {
    let config = SimConfig::from_toml(r#"latency = { kind = "zero" }"#, "sim.toml").unwrap();
    let tls = TlsSettings::self_signed(&["127.0.0.1"]).unwrap();
    let cert = CertificateDer::pem_slice_iter(tls.cert_pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let options = ServerOptions {
        tls: Some(tls),
        ..ServerOptions::default()
    };
    let sim = SimServer::bind(Simulator::new(&config).unwrap(), options)
        .await
        .unwrap();
    assert!(sim.url().starts_with("https://"), "{}", sim.url());

    let spec = r#"
        seed = 5
        [load]
        concurrency = 4
        requests = 20
        [[workload]]
        model = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        operation = "ConverseStream"
        input_tokens = 30
        max_tokens = 16
    "#;
    let plan = quarry::spec::parse_spec(Path::new("tls.toml"), spec)
        .unwrap()
        .plan;
    let connection = Connection::for_target(&plan.target, Some(&sim.url()))
        .await
        .unwrap();
    let transport = TransportConfig {
        version,
        tls_roots: TlsRoots::WebPkiAnd(cert),
        ..TransportConfig::default()
    };
    let share = Share::new(
        &plan,
        connection,
        &transport,
        EngineConfig::default(),
        0,
        RunClock::start(system_clock()),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let report = share.run(tx, std::future::pending()).await;
    drain.await.unwrap();
    let client_ok = report
        .cumulative
        .total_where(|_| true)
        .counters()
        .get(Count::Outcome(Outcome::Ok));
    let sim_ok = sim
        .simulator()
        .stats_snapshot()
        .lanes
        .iter()
        .flat_map(|l| &l.requests)
        .filter(|r| r.outcome == "ok")
        .map(|r| r.count)
        .sum();
    sim.shutdown().await;
    (client_ok, sim_ok)
}

#[tokio::test]
async fn signed_streams_over_https_http2() {
    assert_eq!(run_over_tls(HttpVersion::Http2).await, (20, 20));
}

#[tokio::test]
async fn signed_streams_over_https_http1() {
    assert_eq!(run_over_tls(HttpVersion::Http1).await, (20, 20));
}

#[tokio::test]
async fn alpn_auto_works_too() {
    assert_eq!(run_over_tls(HttpVersion::Auto).await, (20, 20));
}
