//! Trace replay end to end against the simulator: a trace file named by a
//! spec (`[load] replay`, at `speed = 2`, a window), dealt over two shares
//! as a two-agent run deals it, each share driven by the engine's open
//! loop through the Bedrock executor into the in-process simulator.
//!
//! What is asserted exactly, and why it is deterministic:
//! - each request's scheduled send time (`intended_at`) equals the trace's
//!   offset, rebased on the window's start and divided by the speed, to the
//!   nanosecond (the schedule is arithmetic, not a timing);
//! - every trace line in the window is sent exactly once, by one share, and
//!   a session's requests all by the same share;
//! - the simulator's usage for each request equals the trace line's input
//!   and output tokens (input: the generated text plus the model's framing;
//!   output: `max_tokens`, which the simulator's long natural answers
//!   always reach).
//!
//! How late each request actually went out (sent − intended) depends on the
//! machine: it is printed, not asserted.
//!
//! And a trace whose lines share cacheable prefixes (`cache_prefix`): the
//! second request of a prefix reads it from the simulator's cache, and every
//! request's input tokens (billed, read and written) still add up to its
//! line's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use quarry::coordinator::split::{ShareSlot, share_specs};
use quarry_engine::exec::{BedrockExecutor, MixWorkload};
use quarry_engine::http::TransportConfig;
use quarry_engine::{
    Completion, Connection, Engine, Executor, PlannedRequest, RequestTicket, RunClock, ShareSpec,
    WorkloadSampler,
};
use quarry_sim::{SimConfig, SimServer};

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// One request as the executor saw it.
#[derive(Debug, Clone)]
struct Sent {
    replay: u64,
    intended_at: Option<u64>,
    sent_at: u64,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    /// Every input token: billed, read from and written to the cache.
    total_input_tokens: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    ok: bool,
}

/// The Bedrock executor, recording every request it sends.
struct Recording {
    inner: BedrockExecutor,
    log: Mutex<Vec<Sent>>,
}

impl Executor<usize> for Recording {
    async fn execute(
        &self,
        ticket: RequestTicket,
        request: PlannedRequest<usize>,
        clock: RunClock,
    ) -> Completion {
        let c = self.inner.execute(ticket, request, clock).await;
        self.log.lock().unwrap().push(Sent {
            replay: ticket.replay.expect("a replayed request carries its index"),
            intended_at: c.timeline.intended_at,
            sent_at: c.timeline.sent_at,
            input_tokens: c.usage.as_ref().map(|u| u.tokens.input_tokens),
            output_tokens: c.usage.as_ref().map(|u| u.tokens.output_tokens),
            total_input_tokens: c.usage.as_ref().map(|u| u.tokens.total_input_tokens()),
            cache_read: c.usage.as_ref().map(|u| u.tokens.cache_read_input_tokens),
            cache_write: c.usage.as_ref().map(|u| u.tokens.cache_write_input_tokens),
            ok: c.outcome == quarry_bedrock::Outcome::Ok,
        });
        c
    }
}

/// Runs one share through the engine's open loop and the Bedrock executor
/// (the share's `sim_url` is the simulator's); returns every request sent.
async fn drive(share: &ShareSpec, k: usize) -> Vec<Sent> {
    let connection = Connection::for_target(&share.plan.target, share.sim_url.as_deref())
        .await
        .unwrap();
    let sampler = Arc::new(WorkloadSampler::new(
        &share.plan.mix,
        share.plan.seed,
        k as u64,
    ));
    let executor = Arc::new(Recording {
        inner: BedrockExecutor::new(
            &share.plan,
            &connection.endpoint,
            sampler.clone(),
            connection.signer,
            &TransportConfig::default(),
        )
        .unwrap(),
        log: Mutex::new(Vec::new()),
    });
    let workload = Arc::new(MixWorkload::new(sampler, &share.plan));
    #[allow(clippy::disallowed_methods)] // the clock's one wall-clock anchor
    let now = std::time::SystemTime::now();
    let engine = Engine::new(
        share.plan.load.clone(),
        share.engine_config(),
        RunClock::start(now),
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let report = engine
        .run(workload, executor.clone(), tx, std::future::pending())
        .await;
    drain.await.unwrap();
    let sent = executor.log.lock().unwrap().clone();
    assert_eq!(report.sent, sent.len() as u64);
    let dealt = share.plan.replay.as_ref().map_or(0, |r| r.requests().len());
    assert_eq!(sent.len(), dealt);
    sent
}

/// One trace line as written: offset (s), input and output tokens, session.
type Line = (f64, u64, u64, Option<String>);

/// A trace of `n` lines over two models, four sessions and some without,
/// offsets 37 ms apart with a gap, token counts all different.
fn trace(n: u64) -> (String, Vec<Line>) {
    let mut text = String::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let offset = i as f64 * 0.037 + if i >= n / 2 { 0.4 } else { 0.0 };
        let model = if i % 3 == 0 { HAIKU } else { LLAMA };
        let input = 30 + 17 * i;
        let output = 3 + i % 11;
        let session = (i % 5 != 0).then(|| format!("session-{}", i % 4));
        let session_json = session
            .as_ref()
            .map(|s| format!(r#","session":"{s}""#))
            .unwrap_or_default();
        let operation = if i % 4 == 1 {
            r#","operation":"Converse""#
        } else {
            ""
        };
        text.push_str(&format!(
            r#"{{"offset":{offset},"model":"{model}","input_tokens":{input},"output_tokens":{output}{session_json}{operation}}}"#
        ));
        text.push('\n');
        lines.push((offset, input, output, session));
    }
    (text, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_requests_keep_the_traces_times_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (text, lines) = trace(60);
    std::fs::write(dir.path().join("trace.jsonl"), &text).unwrap();
    let spec_path = dir.path().join("replay.toml");
    let spec = r#"
        seed = 11
        [load]
        replay = "trace.jsonl"
        speed = 2.0
        from = "0.1s"
        to = "2.5s"
    "#;
    let valid = quarry::spec::parse_spec(&spec_path, spec).unwrap_or_else(|e| panic!("{e}"));
    let plan = valid.plan;
    // The window [0.1 s, 2.5 s) of the trace, rebased and at twice the pace.
    let expected: Vec<(u64, u64, u64, Option<String>)> = lines
        .iter()
        .filter(|(o, ..)| *o >= 0.1 && *o < 2.5)
        .map(|(o, i, out, s)| {
            let at = ((((o * 1e9).round() as u64) - 100_000_000) as f64 / 2.0).round() as u64;
            (at, *i, *out, s.clone())
        })
        .collect();
    assert!(expected.len() > 40 && expected.len() < lines.len());
    let replay = plan.replay.clone().expect("the plan replays the trace");
    assert_eq!(replay.requests().len(), expected.len());

    let config = SimConfig::from_toml(
        &format!(
            r#"
            seed = 1
            [[models]]
            id = "{LLAMA}"
            latency = {{ kind = "fixed", ttft_ms = 5.0, gap_ms = 1.0 }}
            output = {{ kind = "fixed", tokens = 100000 }}
            [[models]]
            id = "{HAIKU}"
            latency = {{ kind = "fixed", ttft_ms = 5.0, gap_ms = 1.0 }}
            output = {{ kind = "fixed", tokens = 100000 }}
            "#
        ),
        "sim.toml",
    )
    .unwrap();
    let sim = SimServer::start(&config).await.unwrap();

    let slots = [
        ShareSlot::new(1.0, "default"),
        ShareSlot::new(1.0, "default"),
    ];
    let shares = share_specs("replay-test", &plan, &slots, 1_000, Some(&sim.url())).unwrap();
    let mut all: Vec<(u64, Sent)> = Vec::new();
    let mut owner: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, share) in shares.iter().enumerate() {
        assert!(
            share.requires.iter().any(|f| f == "replay"),
            "{:?}",
            share.requires
        );
        let part = share.plan.replay.as_ref().unwrap();
        assert!(!part.requests().is_empty(), "share {k} was dealt nothing");
        for sent in &drive(share, k).await {
            let request = &part.requests()[sent.replay as usize];
            assert_eq!(sent.intended_at, Some(request.at_ns));
            owner.insert(request.line, k);
            all.push((request.line, sent.clone()));
        }
    }
    // Every line of the window once, in the trace's order of times.
    all.sort_by_key(|(_, s)| s.intended_at);
    assert_eq!(all.len(), expected.len());
    let mut lags = Vec::new();
    let window_lines: Vec<u64> = lines
        .iter()
        .enumerate()
        .filter(|(_, (o, ..))| *o >= 0.1 && *o < 2.5)
        .map(|(i, _)| i as u64 + 1)
        .collect();
    for (((line, sent), exp), want_line) in all.iter().zip(&expected).zip(&window_lines) {
        assert_eq!(line, want_line);
        assert!(sent.ok, "line {line}: {sent:?}");
        assert_eq!(sent.intended_at, Some(exp.0), "line {line}: the schedule");
        assert_eq!(sent.input_tokens, Some(exp.1), "line {line}: input tokens");
        assert_eq!(
            sent.output_tokens,
            Some(exp.2),
            "line {line}: output tokens"
        );
        lags.push(sent.sent_at.saturating_sub(exp.0));
    }
    // A session's requests all went out from one share.
    let mut session_share: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (.., session)) in lines.iter().enumerate() {
        let line = i as u64 + 1;
        if let (Some(s), Some(&k)) = (session, owner.get(&line)) {
            assert_eq!(*session_share.entry(s).or_insert(k), k, "{s}");
        }
    }
    lags.sort_unstable();
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p).round() as usize] as f64 / 1e3;
    eprintln!(
        "replay send lag (sent - scheduled), {} requests over 2 shares: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        lags.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    drop(sim);
}

const HAIKU_35: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const NOVA_MICRO: &str = "amazon.nova-micro-v1:0";

/// One line of the cache trace: offset (s), model, operation, input
/// tokens, prefix (id, tokens), and the cache read and write the simulator
/// must report.
type CacheLine = (
    f64,
    &'static str,
    &'static str,
    u64,
    Option<(&'static str, u64)>,
    u64,
    u64,
);

/// The simulator's minimum prefix is 2,048 tokens on Claude 3.5 Haiku and
/// 1,536 on Nova Micro (docs/sim-defaults.md). Lines are half a second
/// apart, each answered in a few milliseconds, so each prefix is cached
/// before its next request arrives.
const CACHE_TRACE: &[CacheLine] = &[
    // The first request of sys-a writes its 2,100 tokens ...
    (
        0.0,
        HAIKU_35,
        "ConverseStream",
        3_000,
        Some(("sys-a", 2_100)),
        0,
        2_100,
    ),
    // ... the next reads them, by Converse and by the native Messages body
    // (the same text: one cache entry).
    (
        0.5,
        HAIKU_35,
        "Converse",
        2_500,
        Some(("sys-a", 2_100)),
        2_100,
        0,
    ),
    (
        1.0,
        HAIKU_35,
        "InvokeModel",
        2_600,
        Some(("sys-a", 2_100)),
        2_100,
        0,
    ),
    // Another prefix on Nova Micro: written, then read.
    (
        1.5,
        NOVA_MICRO,
        "Converse",
        2_000,
        Some(("sys-b", 1_600)),
        0,
        1_600,
    ),
    (
        2.0,
        NOVA_MICRO,
        "InvokeModelWithResponseStream",
        1_800,
        Some(("sys-b", 1_600)),
        1_600,
        0,
    ),
    // Below the model's minimum the cache point is ignored: nothing cached.
    (
        2.5,
        HAIKU_35,
        "ConverseStream",
        1_500,
        Some(("small", 1_000)),
        0,
        0,
    ),
    (
        3.0,
        HAIKU_35,
        "ConverseStream",
        1_500,
        Some(("small", 1_000)),
        0,
        0,
    ),
    // And a line without a prefix.
    (3.5, HAIKU_35, "ConverseStream", 500, None, 0, 0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_cache_prefixes_are_read_from_the_cache_with_the_input_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (at, model, op, input, prefix, _, _) in CACHE_TRACE {
        let prefix = prefix
            .map(|(id, n)| format!(r#","cache_prefix":"{id}","cache_prefix_tokens":{n}"#))
            .unwrap_or_default();
        text.push_str(&format!(
            r#"{{"offset":{at},"model":"{model}","operation":"{op}","input_tokens":{input},"output_tokens":4{prefix}}}"#
        ));
        text.push('\n');
    }
    std::fs::write(dir.path().join("trace.jsonl"), &text).unwrap();
    let spec = "seed = 3\n[load]\nreplay = \"trace.jsonl\"\n";
    let valid = quarry::spec::parse_spec(&dir.path().join("replay.toml"), spec)
        .unwrap_or_else(|e| panic!("{e}"));
    let config = SimConfig::from_toml(
        &[HAIKU_35, NOVA_MICRO]
            .iter()
            .map(|m| {
                format!(
                    "[[models]]\nid = \"{m}\"\nlatency = {{ kind = \"fixed\", ttft_ms = 2.0, gap_ms = 0.5 }}\noutput = {{ kind = \"fixed\", tokens = 100000 }}\n"
                )
            })
            .collect::<String>(),
        "sim.toml",
    )
    .unwrap();
    let sim = SimServer::start(&config).await.unwrap();
    let shares = share_specs(
        "cache-test",
        &valid.plan,
        &[ShareSlot::new(1.0, "default")],
        1_000,
        Some(&sim.url()),
    )
    .unwrap();
    assert!(
        shares[0]
            .requires
            .iter()
            .any(|f| f == quarry_engine::FEATURE_REPLAY_CACHE_PREFIX),
        "{:?}",
        shares[0].requires
    );
    let mut sent = drive(&shares[0], 0).await;
    sent.sort_by_key(|s| s.replay);
    assert_eq!(sent.len(), CACHE_TRACE.len());
    for (i, (s, (_, model, op, input, _, read, write))) in sent.iter().zip(CACHE_TRACE).enumerate()
    {
        let line = i + 1;
        assert!(s.ok, "line {line}: {s:?}");
        assert_eq!(
            s.total_input_tokens,
            Some(*input),
            "line {line} ({model} {op}): input tokens, billed + read + written"
        );
        assert_eq!(
            (s.cache_read, s.cache_write),
            (Some(*read), Some(*write)),
            "line {line} ({model} {op}): cache read and write"
        );
        assert_eq!(s.input_tokens, Some(input - read - write), "line {line}");
        assert_eq!(s.output_tokens, Some(4), "line {line}");
    }
    drop(sim);
}
