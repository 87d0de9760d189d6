//! Trace replay: the trace file (JSON lines, docs/trace-schema.md), read
//! with `FILE:LINE: field` findings, and turned into what a run plan
//! carries — the engine's [`Replay`] (each request's deadline, model entry
//! and token counts) and the mix of the models it uses — under a window,
//! a speed and a scale on arrivals.
//!
//! `import` turns Bedrock model invocation logs and plain CSV into trace
//! files (`quarry trace import`).

pub mod import;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_bedrock::Operation;
use quarry_engine::{
    MAX_INPUT_TOKENS, MixEntry, PromptCacheSupport, Replay, ReplayPrefix, ReplayRequest,
    TokenDistribution, WorkloadMix, prompt_cache_support,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The largest trace file read: 256 MiB (about two million lines of
/// token counts; prompt texts make lines longer).
pub const MAX_TRACE_BYTES: u64 = 256 * 1024 * 1024;

/// The highest `scale`: every line sent a hundred times over.
pub const MAX_SCALE: f64 = 100.0;

/// The bad lines reported one by one before the rest are only counted.
pub const MAX_LISTED_ISSUES: usize = 20;

/// One line of a trace file as written (docs/trace-schema.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRecord {
    /// When the request was sent, RFC 3339 (`2026-12-01T10:00:00.250Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Or: seconds since the trace's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    /// Bedrock model id, inference-profile id or ARN.
    pub model: String,
    /// `Converse`, `ConverseStream` (the default), `InvokeModel` or
    /// `InvokeModelWithResponseStream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Input tokens the model counted, framing included (cached ones too).
    pub input_tokens: u64,
    /// Output tokens the model produced.
    pub output_tokens: u64,
    /// The prompt text, sent verbatim when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A session (conversation, user) id: a session's requests stay on one
    /// agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The id of a shared cacheable prefix: requests of one id send the
    /// same prefix text, then a cache point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prefix: Option<String>,
    /// Tokens of the prefix, part of `input_tokens`; required with
    /// `cache_prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_prefix_tokens: Option<u64>,
    /// The recorded request id, kept for reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A bad line: `line: field: message` (the caller adds the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIssue {
    /// 1-based line.
    pub line: u64,
    /// The field at fault (empty for the whole line).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl TraceIssue {
    fn new(line: u64, field: &str, message: impl Into<String>) -> Self {
        TraceIssue {
            line,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// `FILE:LINE: field: message`.
    pub fn render(&self, file: &Path) -> String {
        if self.field.is_empty() {
            format!("{}:{}: {}", file.display(), self.line, self.message)
        } else {
            format!(
                "{}:{}: {}: {}",
                file.display(),
                self.line,
                self.field,
                self.message
            )
        }
    }
}

/// When a line's request was sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum When {
    /// Unix ns.
    Time(i128),
    /// ns since the trace's start.
    Offset(u64),
}

/// One valid line.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLine {
    /// 1-based line in the file.
    pub line: u64,
    /// ns since the trace's first request (the earliest timestamp, or
    /// offset 0).
    pub at_ns: u64,
    /// Model id.
    pub model: String,
    /// Operation.
    pub operation: Operation,
    /// Input tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: NonZeroU32,
    /// The prompt, when recorded.
    pub prompt: Option<String>,
    /// The session id, when recorded.
    pub session: Option<String>,
    /// The shared cacheable prefix, when recorded.
    pub cache_prefix: Option<TracePrefix>,
}

/// A trace line's shared cacheable prefix (`cache_prefix`,
/// `cache_prefix_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracePrefix {
    /// The prefix id: lines of one id send the same text.
    pub id: String,
    /// Its tokens, fewer than the line's input tokens.
    pub tokens: NonZeroU32,
}

/// A trace file read: its valid lines in time order, and the bad ones it
/// skipped (with `skip_bad`).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Valid lines, sorted by time (stable: file order among equal times).
    pub lines: Vec<TraceLine>,
    /// Unix ns of the first request when the trace has timestamps (then a
    /// window may be given as times).
    pub start_unix_ns: Option<i128>,
    /// Bad lines skipped.
    pub skipped: Vec<TraceIssue>,
}

/// Reads the trace at `path` (at most [`MAX_TRACE_BYTES`]). Bad lines are
/// errors, or with `skip_bad` skipped and listed in [`Trace::skipped`];
/// each error is rendered `FILE:LINE: field: message`.
pub fn read_trace(path: &Path, skip_bad: bool) -> Result<Trace, Vec<String>> {
    use std::io::Read as _;
    let fail = |e: String| vec![format!("{}: cannot read the trace: {e}", path.display())];
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TRACE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_TRACE_BYTES {
        return Err(fail(format!("larger than {MAX_TRACE_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| fail(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
    parse_trace(&text, skip_bad).map_err(|issues| render_issues(path, &issues))
}

/// The issues rendered, at most [`MAX_LISTED_ISSUES`] and a count of the rest.
pub fn render_issues(path: &Path, issues: &[TraceIssue]) -> Vec<String> {
    let mut out: Vec<String> = issues
        .iter()
        .take(MAX_LISTED_ISSUES)
        .map(|i| i.render(path))
        .collect();
    if issues.len() > MAX_LISTED_ISSUES {
        out.push(format!(
            "{}: and {} more bad lines",
            path.display(),
            issues.len() - MAX_LISTED_ISSUES
        ));
    }
    out
}

/// Parses trace text (JSON lines; blank lines are ignored).
pub fn parse_trace(text: &str, skip_bad: bool) -> Result<Trace, Vec<TraceIssue>> {
    let mut issues = Vec::new();
    let mut lines = Vec::new();
    let mut kind: Option<(bool, u64)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(line, raw) {
            Ok((when, parsed)) => {
                let is_time = matches!(when, When::Time(_));
                match kind {
                    None => kind = Some((is_time, line)),
                    Some((k, first)) if k != is_time => {
                        let (field, has) = if is_time {
                            ("timestamp", "offsets")
                        } else {
                            ("offset", "timestamps")
                        };
                        issues.push(TraceIssue::new(
                            line,
                            field,
                            format!("the trace has {has} (from line {first}): use one or the other throughout"),
                        ));
                        continue;
                    }
                    Some(_) => {}
                }
                lines.push((when, parsed));
            }
            Err(issue) => issues.push(issue),
        }
    }
    if !issues.is_empty() && !skip_bad {
        return Err(issues);
    }
    if lines.is_empty() {
        issues.push(TraceIssue::new(
            text.lines().count().max(1) as u64,
            "",
            "the trace holds no valid request",
        ));
        return Err(issues);
    }
    let start_unix_ns = lines
        .iter()
        .filter_map(|(w, _)| match w {
            When::Time(t) => Some(*t),
            When::Offset(_) => None,
        })
        .min();
    let mut out: Vec<TraceLine> = lines
        .into_iter()
        .map(|(when, mut l)| {
            l.at_ns = match when {
                When::Offset(ns) => ns,
                When::Time(t) => u64::try_from(t - start_unix_ns.unwrap_or(t)).unwrap_or(u64::MAX),
            };
            l
        })
        .collect();
    out.sort_by_key(|l| l.at_ns);
    Ok(Trace {
        lines: out,
        start_unix_ns,
        skipped: issues,
    })
}

pub(super) fn parse_line(line: u64, raw: &str) -> Result<(When, TraceLine), TraceIssue> {
    let record: TraceRecord = serde_json::from_str(raw).map_err(|e| {
        let message = e.to_string();
        // serde names the field in its message ("missing field `model`").
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .unwrap_or("")
            .to_owned();
        TraceIssue {
            line,
            field,
            message: strip_position(&message),
        }
    })?;
    let when = match (&record.timestamp, record.offset) {
        (Some(_), Some(_)) => {
            return Err(TraceIssue::new(
                line,
                "offset",
                "give timestamp or offset, not both",
            ));
        }
        (None, None) => {
            return Err(TraceIssue::new(
                line,
                "timestamp",
                "is required (or offset, seconds since the trace's start)",
            ));
        }
        (Some(t), None) => {
            When::Time(parse_rfc3339(t).map_err(|m| TraceIssue::new(line, "timestamp", m))?)
        }
        (None, Some(o)) => {
            if !(o.is_finite() && (0.0..=1e9).contains(&o)) {
                return Err(TraceIssue::new(
                    line,
                    "offset",
                    format!("must be a number of seconds >= 0, got {o}"),
                ));
            }
            When::Offset((o * 1e9).round() as u64)
        }
    };
    if let Err(m) = crate::spec::check_model_id(&record.model) {
        return Err(TraceIssue::new(line, "model", m));
    }
    let operation = match record.operation.as_deref() {
        None => Operation::ConverseStream,
        Some(name) => match name.parse::<Operation>() {
            Ok(op) if op != Operation::CountTokens => op,
            _ => {
                return Err(TraceIssue::new(
                    line,
                    "operation",
                    format!(
                        "unknown operation {name:?}: expected Converse, ConverseStream, InvokeModel or InvokeModelWithResponseStream"
                    ),
                ));
            }
        },
    };
    if record.input_tokens == 0 || record.input_tokens > u64::from(MAX_INPUT_TOKENS) {
        return Err(TraceIssue::new(
            line,
            "input_tokens",
            format!(
                "must be between 1 and {MAX_INPUT_TOKENS}, got {}",
                record.input_tokens
            ),
        ));
    }
    let output_tokens = u32::try_from(record.output_tokens)
        .ok()
        .and_then(NonZeroU32::new)
        .filter(|n| n.get() <= MAX_INPUT_TOKENS)
        .ok_or_else(|| {
            TraceIssue::new(
                line,
                "output_tokens",
                format!(
                    "must be between 1 and {MAX_INPUT_TOKENS} (it is sent as max_tokens), got {}",
                    record.output_tokens
                ),
            )
        })?;
    let cache_prefix = cache_prefix(line, &record)?;
    Ok((
        when,
        TraceLine {
            line,
            at_ns: 0,
            model: record.model,
            operation,
            input_tokens: record.input_tokens as u32,
            output_tokens,
            prompt: record.prompt,
            session: record.session,
            cache_prefix,
        },
    ))
}

/// A line's `cache_prefix` and `cache_prefix_tokens`, checked: both or
/// neither, a non-empty id, at least one token and fewer than the line's
/// input tokens (the rest of the request needs one), no recorded prompt (it
/// is sent as recorded), and a model that caches prompts.
fn cache_prefix(line: u64, record: &TraceRecord) -> Result<Option<TracePrefix>, TraceIssue> {
    let (id, tokens) = match (&record.cache_prefix, record.cache_prefix_tokens) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(TraceIssue::new(
                line,
                "cache_prefix_tokens",
                "only applies with cache_prefix (the prefix's id)",
            ));
        }
        (Some(_), None) => {
            return Err(TraceIssue::new(
                line,
                "cache_prefix_tokens",
                "is required with cache_prefix: the prefix's tokens (part of input_tokens)",
            ));
        }
        (Some(id), Some(tokens)) => (id, tokens),
    };
    if id.trim().is_empty() {
        return Err(TraceIssue::new(line, "cache_prefix", "must not be empty"));
    }
    if record.prompt.is_some() {
        return Err(TraceIssue::new(
            line,
            "cache_prefix",
            "not with prompt: a recorded prompt is sent as recorded, its shared part included",
        ));
    }
    let tokens = u32::try_from(tokens)
        .ok()
        .and_then(NonZeroU32::new)
        .filter(|t| u64::from(t.get()) < record.input_tokens)
        .ok_or_else(|| {
            TraceIssue::new(
                line,
                "cache_prefix_tokens",
                format!(
                    "must be between 1 and input_tokens - 1 ({}): the prefix is part of the input, and the rest of the request needs a token; got {tokens}",
                    record.input_tokens - 1
                ),
            )
        })?;
    if let PromptCacheSupport::Unsupported = prompt_cache_support(&record.model) {
        return Err(TraceIssue::new(
            line,
            "cache_prefix",
            format!(
                "model {:?} does not support prompt caching (PROTOCOL.md §5.8)",
                record.model
            ),
        ));
    }
    Ok(Some(TracePrefix {
        id: id.clone(),
        tokens,
    }))
}

/// serde_json's message without its " at line 1 column 7" tail (a trace
/// line is one JSON line; the file line is given separately).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Unix ns of an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Result<i128, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time (2026-12-01T10:00:00Z): {e}"))
}

/// One end of a replay window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// An offset from the trace's first request.
    Offset(Duration),
    /// A time (unix ns); only for traces with timestamps.
    Time(i128),
}

/// How a trace is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// Replay this many times faster than recorded (2.0: twice as fast).
    pub speed: f64,
    /// Keep requests at or after this point.
    pub from: Option<Bound>,
    /// Keep requests before this point.
    pub to: Option<Bound>,
    /// Arrivals per recorded request: below 1 thins (each kept with this
    /// probability), above 1 duplicates (⌊scale⌋ copies and one more with
    /// the fractional part's probability), each copy with fresh text and
    /// session; deterministic from the run seed.
    pub scale: f64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: 1.0,
            from: None,
            to: None,
            scale: 1.0,
        }
    }
}

/// A trace ready for a run plan.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltReplay {
    /// One entry per (model, operation) the replayed requests use, in order
    /// of first use.
    pub mix: WorkloadMix,
    /// The requests, deadlines from the window's start over the speed.
    pub replay: Replay,
    /// Trace lines inside the window.
    pub lines_in_window: usize,
}

/// Why a trace cannot be replayed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A window given as a time on a trace of offsets.
    #[error("is a time, but the trace gives offsets: give the window as durations (\"30s\")")]
    TimeOnOffsets(&'static str),
    /// Nothing in the window (or everything thinned out).
    #[error("no request of the trace is left to replay ({0})")]
    Empty(String),
}

/// Applies the window, speed and scale to `trace`; `seed` (the run's)
/// decides thinning and duplicates' text.
pub fn build(trace: &Trace, opts: &ReplayOptions, seed: u64) -> Result<BuiltReplay, BuildError> {
    let bound_ns = |b: Option<Bound>, field: &'static str| -> Result<Option<u64>, BuildError> {
        match b {
            None => Ok(None),
            Some(Bound::Offset(d)) => Ok(Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))),
            Some(Bound::Time(t)) => match trace.start_unix_ns {
                None => Err(BuildError::TimeOnOffsets(field)),
                Some(start) => Ok(Some(u64::try_from((t - start).max(0)).unwrap_or(u64::MAX))),
            },
        }
    };
    let from = bound_ns(opts.from, "load.from")?.unwrap_or(0);
    let to = bound_ns(opts.to, "load.to")?;
    let window: Vec<&TraceLine> = trace
        .lines
        .iter()
        .filter(|l| l.at_ns >= from && to.is_none_or(|t| l.at_ns < t))
        .collect();
    let mut entries: Vec<MixEntry> = Vec::new();
    let mut index: BTreeMap<(String, &'static str), u32> = BTreeMap::new();
    let mut requests = Vec::new();
    let whole = opts.scale.floor();
    let fraction = opts.scale - whole;
    for l in &window {
        let key = (l.model.clone(), l.operation.name());
        let entry = match index.get(&key) {
            Some(&e) => {
                let m = &mut entries[e as usize];
                if let TokenDistribution::Fixed { tokens } = &mut m.input_tokens {
                    *tokens = (*tokens).max(l.input_tokens);
                }
                m.max_tokens = m.max_tokens.max(l.output_tokens);
                e
            }
            None => {
                let e = entries.len() as u32;
                entries.push(MixEntry {
                    weight: 1,
                    model_id: l.model.clone(),
                    operation: l.operation,
                    input_tokens: TokenDistribution::Fixed {
                        tokens: l.input_tokens,
                    },
                    max_tokens: l.output_tokens,
                    system_prompt: None,
                    cache: None,
                    nonce: true,
                    temperature: None,
                    // A trace line names no tier: Standard.
                    service_tier: None,
                });
                index.insert(key, e);
                e
            }
        };
        let line_seed = mix64(seed, l.line);
        let mut rng = ChaCha8Rng::seed_from_u64(line_seed);
        let copies = whole as u64 + u64::from(rng.random::<f64>() < fraction);
        let at_ns = ((l.at_ns - from) as f64 / opts.speed).round() as u64;
        let session = l.session.as_deref().map(fnv1a);
        for copy in 0..copies {
            requests.push(ReplayRequest {
                at_ns,
                entry,
                input_tokens: l.input_tokens,
                output_tokens: l.output_tokens,
                prompt: l.prompt.clone(),
                session: session.map(|s| if copy == 0 { s } else { mix64(s, copy) }),
                text_seed: if copy == 0 {
                    line_seed
                } else {
                    mix64(line_seed, copy)
                },
                line: l.line,
                // Copies share their line's prefix: it is shared text.
                cache_prefix: l.cache_prefix.as_ref().map(|p| ReplayPrefix {
                    tokens: p.tokens,
                    seed: mix64(seed, fnv1a(&p.id)),
                }),
            });
        }
    }
    if requests.is_empty() {
        let why = if window.is_empty() {
            format!("{} lines, none inside the window", trace.lines.len())
        } else {
            format!(
                "scale {} thinned out all {} lines of the window",
                opts.scale,
                window.len()
            )
        };
        return Err(BuildError::Empty(why));
    }
    // Deadlines are non-decreasing: lines are sorted and copies share theirs.
    let replay = Replay::new(requests).map_err(|e| BuildError::Empty(e.to_string()))?;
    let mix = WorkloadMix::new(entries).map_err(|e| BuildError::Empty(e.to_string()))?;
    Ok(BuiltReplay {
        mix,
        replay,
        lines_in_window: window.len(),
    })
}

/// FNV-1a of a session or prefix id: the same id hashes alike on every
/// controller.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 of `a` combined with `b`.
pub(crate) fn mix64(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The trace path as a spec names it: relative to the spec's directory.
pub fn resolve(spec_dir: &Path, named: &str) -> PathBuf {
    let p = Path::new(named);
    if p.is_absolute() {
        p.to_owned()
    } else {
        spec_dir.join(p)
    }
}

#[cfg(test)]
mod tests;
