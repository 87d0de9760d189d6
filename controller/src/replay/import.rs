//! `quarry trace import`: trace files from Bedrock model invocation logs
//! and from plain CSV. The field mapping is in docs/trace-schema.md.
//!
//! Invocation logs are the JSON records Bedrock writes to CloudWatch Logs
//! or S3 (`schemaType: "ModelInvocationLog"`), one per line; a line may
//! carry the timestamp prefix a CloudWatch Logs export adds before the
//! record, and a file ending in `.gz` (how S3 delivery writes them) is
//! read through gzip. Each record becomes one trace line:
//! `timestamp`, `modelId`, `operation`, `requestId`, input tokens
//! `input.inputTokenCount` + `input.cacheReadInputTokenCount` +
//! `input.cacheWriteInputTokenCount` (everything the model read) and
//! output tokens `output.outputTokenCount`. A record that read or wrote the
//! prompt cache gets a `cache_prefix` of `cacheRead + cacheWrite` tokens,
//! named by a hash of the request body up to its last cache point when the
//! record holds the body (`input.inputBodyJson`; the text itself is not
//! kept), else by its size (`size-N`: prefixes of one size on one model are
//! taken to be one prefix).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use quarry_engine::{PromptCacheSupport, prompt_cache_support};

use super::{MAX_TRACE_BYTES, TraceIssue, TraceRecord, parse_rfc3339};

/// What the files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Bedrock model invocation log records (JSON lines).
    InvocationLogs,
    /// CSV with a header row naming the trace fields.
    Csv,
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "invocation-logs" => Ok(Source::InvocationLogs),
            "csv" => Ok(Source::Csv),
            other => Err(format!(
                "unknown source {other:?}: expected invocation-logs or csv"
            )),
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imported {
    /// The trace lines, in time order.
    pub records: Vec<TraceRecord>,
    /// Bad records skipped (with `skip_bad`), each with its file.
    pub skipped: Vec<(PathBuf, TraceIssue)>,
}

impl Imported {
    /// The trace file: one JSON record per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            // A record of strings and numbers always serializes.
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

/// Imports `files` of `source`. A bad record is an error naming
/// `FILE:LINE: field`, or with `skip_bad` skipped and listed.
pub fn import(source: Source, files: &[PathBuf], skip_bad: bool) -> Result<Imported, Vec<String>> {
    let mut out = Imported::default();
    let mut errors = Vec::new();
    let mut timed = Vec::new();
    for path in files {
        let text = read_text(path).map_err(|e| vec![e])?;
        let parsed = match source {
            Source::InvocationLogs => parse_invocation_logs(&text),
            Source::Csv => parse_csv(&text),
        };
        for item in parsed {
            match item {
                Ok(record) => timed.push(record),
                Err(issue) if skip_bad => out.skipped.push((path.clone(), issue)),
                Err(issue) => errors.push(issue.render(path)),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Stable sort by time: records of equal time keep file order.
    timed.sort_by_key(|(at, _)| *at);
    out.records = timed.into_iter().map(|(_, r)| r).collect();
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, String> {
    let fail = |e: String| format!("{}: cannot read: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    let limited = MAX_TRACE_BYTES + 1;
    let read = if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .take(limited)
            .read_to_end(&mut bytes)
    } else {
        file.take(limited).read_to_end(&mut bytes)
    };
    read.map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_TRACE_BYTES {
        return Err(fail(format!("larger than {MAX_TRACE_BYTES} bytes")));
    }
    String::from_utf8(bytes)
        .map_err(|e| fail(format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))
}

/// A record with its time order key: unix ns for timestamps, offset ns.
type Timed = (i128, TraceRecord);

/// Parses invocation-log records, one per non-blank line.
pub fn parse_invocation_logs(text: &str) -> Vec<Result<Timed, TraceIssue>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| invocation_record(i as u64 + 1, l))
        .collect()
}

fn invocation_record(line: u64, raw: &str) -> Result<Timed, TraceIssue> {
    let issue = |field: &str, message: String| TraceIssue {
        line,
        field: field.to_owned(),
        message,
    };
    // A CloudWatch Logs export puts the event's time before the record.
    let json = match raw.find('{') {
        Some(i) => &raw[i..],
        None => return Err(issue("", "not a JSON invocation log record".to_owned())),
    };
    let v: Value = serde_json::from_str(json)
        .map_err(|e| issue("", format!("not a JSON invocation log record: {e}")))?;
    if let Some(kind) = v.get("schemaType").and_then(Value::as_str)
        && kind != "ModelInvocationLog"
    {
        return Err(issue(
            "schemaType",
            format!("{kind:?} is not a model invocation log record (\"ModelInvocationLog\")"),
        ));
    }
    let text = |field: &str| -> Result<String, TraceIssue> {
        match v.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(issue(field, "must be a non-empty string".to_owned())),
            None => Err(issue(field, "is required".to_owned())),
        }
    };
    let count = |path: &[&str], required: bool| -> Result<u64, TraceIssue> {
        let field = path.join(".");
        let mut at = &v;
        for p in path {
            match at.get(p) {
                Some(next) => at = next,
                None if required => return Err(issue(&field, "is required".to_owned())),
                None => return Ok(0),
            }
        }
        at.as_u64().ok_or_else(|| {
            issue(
                &field,
                format!("must be a whole number of tokens >= 0, got {at}"),
            )
        })
    };
    let timestamp = text("timestamp")?;
    let at = parse_rfc3339(&timestamp).map_err(|m| issue("timestamp", m))?;
    let model = text("modelId")?;
    crate::spec::check_model_id(&model).map_err(|m| issue("modelId", m))?;
    let operation = text("operation")?;
    if !matches!(
        operation.as_str(),
        "Converse" | "ConverseStream" | "InvokeModel" | "InvokeModelWithResponseStream"
    ) {
        return Err(issue(
            "operation",
            format!(
                "{operation:?} is not a model invocation Quarry replays (Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream)"
            ),
        ));
    }
    let cached = count(&["input", "cacheReadInputTokenCount"], false)?
        + count(&["input", "cacheWriteInputTokenCount"], false)?;
    let input = count(&["input", "inputTokenCount"], true)? + cached;
    if input == 0 {
        return Err(issue(
            "input.inputTokenCount",
            "is 0: a replayed request needs at least one input token".to_owned(),
        ));
    }
    let output = count(&["output", "outputTokenCount"], true)?;
    if output == 0 {
        return Err(issue(
            "output.outputTokenCount",
            "is 0: a replayed request needs max_tokens >= 1".to_owned(),
        ));
    }
    let request_id = v
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (cache_prefix, cache_prefix_tokens) = match cached_prefix(&v, &model, cached, input) {
        Some((id, tokens)) => (Some(id), Some(tokens)),
        None => (None, None),
    };
    Ok((
        at,
        TraceRecord {
            timestamp: Some(timestamp),
            model,
            operation: Some(operation),
            input_tokens: input,
            output_tokens: output,
            cache_prefix,
            cache_prefix_tokens,
            request_id,
            ..TraceRecord::default()
        },
    ))
}

/// The cached prefix of a record that read or wrote `cached` tokens of the
/// prompt cache, of `input` in all: its id and tokens. None when nothing was
/// cached, or the model caches no prompts (the tokens are then plain
/// input). The prefix is at most `input - 1` tokens (a trace line's prefix
/// leaves the rest of the request a token).
fn cached_prefix(record: &Value, model: &str, cached: u64, input: u64) -> Option<(String, u64)> {
    if cached == 0 || prompt_cache_support(model) == PromptCacheSupport::Unsupported {
        return None;
    }
    let tokens = cached.min(input.saturating_sub(1));
    if tokens == 0 {
        return None;
    }
    let body = record
        .pointer("/input/inputBodyJson")
        .and_then(|b| match b {
            // Some deliveries hold the body as JSON text.
            Value::String(text) => serde_json::from_str(text).ok(),
            other => Some(other.clone()),
        });
    let id = body
        .as_ref()
        .and_then(body_prefix_id)
        .unwrap_or_else(|| format!("size-{cached}"));
    Some((id, tokens))
}

/// `body-<hash>`: FNV-1a of what a request body holds before its last cache
/// point, in the order Bedrock caches (tools, system, messages with their
/// roles), each block as its JSON. Converse and Nova mark a point with a
/// `cachePoint` block after what it covers; Anthropic with `cache_control`
/// on the block it covers. None when the body has no cache point.
fn body_prefix_id(body: &Value) -> Option<String> {
    let mut items: Vec<String> = Vec::new();
    let mut cut: Option<usize> = None;
    let mut visit = |item: &Value, items: &mut Vec<String>| {
        if item.get("cachePoint").is_some() {
            cut = Some(items.len());
            return;
        }
        items.push(item.to_string());
        if item.get("cache_control").is_some() {
            cut = Some(items.len());
        }
    };
    let blocks = |v: Option<&Value>| -> Vec<Value> {
        match v {
            Some(Value::Array(a)) => a.clone(),
            Some(other @ Value::String(_)) => vec![other.clone()],
            _ => Vec::new(),
        }
    };
    for tools in [body.pointer("/toolConfig/tools"), body.get("tools")] {
        for t in blocks(tools) {
            visit(&t, &mut items);
        }
    }
    for s in blocks(body.get("system")) {
        visit(&s, &mut items);
    }
    for m in blocks(body.get("messages")) {
        items.push(format!("role {}", m.get("role").unwrap_or(&Value::Null)));
        for c in blocks(m.get("content")) {
            visit(&c, &mut items);
        }
    }
    let cut = cut?;
    Some(format!(
        "body-{:016x}",
        super::fnv1a(&items[..cut].join("\0"))
    ))
}

/// The CSV columns read (others are an error, so a misspelt header is
/// caught): the trace fields of the same names.
const CSV_COLUMNS: &[&str] = &[
    "timestamp",
    "offset",
    "model",
    "operation",
    "input_tokens",
    "output_tokens",
    "prompt",
    "session",
    "cache_prefix",
    "cache_prefix_tokens",
    "request_id",
];

/// Parses CSV with a header row; one record per line (RFC 4180 quoting,
/// without line breaks inside a field).
pub fn parse_csv(text: &str) -> Vec<Result<Timed, TraceIssue>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((h, header)) = lines.next() else {
        return vec![Err(TraceIssue::new(
            1,
            "",
            "empty: a header row is required",
        ))];
    };
    let header_line = h as u64 + 1;
    let columns = match split_csv(header) {
        Ok(c) => c,
        Err(m) => return vec![Err(TraceIssue::new(header_line, "", m))],
    };
    for c in &columns {
        if !CSV_COLUMNS.contains(&c.trim()) {
            return vec![Err(TraceIssue::new(
                header_line,
                c.trim(),
                format!(
                    "unknown column: expected some of {}",
                    CSV_COLUMNS.join(", ")
                ),
            ))];
        }
    }
    for needed in ["model", "input_tokens", "output_tokens"] {
        if !columns.iter().any(|c| c.trim() == needed) {
            return vec![Err(TraceIssue::new(
                header_line,
                needed,
                "column is required",
            ))];
        }
    }
    lines
        .map(|(i, l)| csv_record(i as u64 + 1, &columns, l))
        .collect()
}

fn csv_record(line: u64, columns: &[String], raw: &str) -> Result<Timed, TraceIssue> {
    let cells = split_csv(raw).map_err(|m| TraceIssue::new(line, "", m))?;
    if cells.len() != columns.len() {
        return Err(TraceIssue::new(
            line,
            "",
            format!("has {} fields, the header {}", cells.len(), columns.len()),
        ));
    }
    let get = |name: &str| {
        columns
            .iter()
            .position(|c| c.trim() == name)
            .map(|i| cells[i].clone())
            .filter(|v| !v.is_empty())
    };
    let number = |name: &str| -> Result<u64, TraceIssue> {
        let v = get(name).ok_or_else(|| TraceIssue::new(line, name, "is required"))?;
        v.trim().parse::<u64>().map_err(|_| {
            TraceIssue::new(line, name, format!("{v:?} is not a whole number of tokens"))
        })
    };
    let mut record = TraceRecord {
        model: get("model").ok_or_else(|| TraceIssue::new(line, "model", "is required"))?,
        operation: get("operation"),
        input_tokens: number("input_tokens")?,
        output_tokens: number("output_tokens")?,
        prompt: get("prompt"),
        session: get("session"),
        cache_prefix: get("cache_prefix"),
        cache_prefix_tokens: get("cache_prefix_tokens")
            .is_some()
            .then(|| number("cache_prefix_tokens"))
            .transpose()?,
        request_id: get("request_id"),
        ..TraceRecord::default()
    };
    record.timestamp = get("timestamp").map(|t| t.trim().to_owned());
    record.offset = get("offset")
        .map(|o| {
            o.trim().parse::<f64>().map_err(|_| {
                TraceIssue::new(line, "offset", format!("{o:?} is not a number of seconds"))
            })
        })
        .transpose()?;
    // The trace reader's own check of one line (timestamp or offset, model
    // id, counts, operation), so the import names the CSV line with the
    // reader's messages and takes its time from the same parse.
    let json = serde_json::to_string(&record).unwrap_or_default();
    let (when, _) = super::parse_line(line, &json)?;
    let at = match when {
        super::When::Time(unix_ns) => unix_ns,
        super::When::Offset(ns) => i128::from(ns),
    };
    Ok((at, record))
}

/// Splits one CSV line: commas, double-quoted fields with `""` for a quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                cells.push(std::mem::take(&mut cell));
                was_quoted = false;
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    cells.push(cell);
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../tests/data/invocation-logs.jsonl");

    #[test]
    fn the_sample_maps_every_field() {
        let parsed: Vec<Timed> = parse_invocation_logs(SAMPLE)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed.len(), 5);
        let (_, first) = &parsed[0];
        assert_eq!(first.timestamp.as_deref(), Some("2026-11-30T14:00:00.120Z"));
        assert_eq!(first.model, "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(first.operation.as_deref(), Some("ConverseStream"));
        assert_eq!(first.input_tokens, 1_204);
        assert_eq!(first.output_tokens, 312);
        assert_eq!(
            first.request_id.as_deref(),
            Some("5f1c7c1e-0001-4c0e-9d7a-8a1f00000001")
        );
        // Cache reads and writes are input the model read, and a prefix:
        // the record holds no body, so it is named by its size.
        let (_, cached) = &parsed[2];
        assert_eq!(cached.input_tokens, 150 + 2_048);
        assert_eq!(cached.cache_prefix.as_deref(), Some("size-2048"));
        assert_eq!(cached.cache_prefix_tokens, Some(2_048));
        assert_eq!(
            (first.cache_prefix.as_ref(), first.cache_prefix_tokens),
            (None, None)
        );
        // The CloudWatch export's time prefix is skipped.
        let (_, exported) = &parsed[4];
        assert_eq!(exported.model, "meta.llama3-3-70b-instruct-v1:0");
        // The import is a valid trace.
        let imported = Imported {
            records: parsed.into_iter().map(|(_, r)| r).collect(),
            skipped: vec![],
        };
        let trace = super::super::parse_trace(&imported.to_jsonl(), false).unwrap();
        assert_eq!(trace.lines.len(), 5);
        assert_eq!(trace.lines[1].at_ns, 850_000_000);
    }

    /// A Converse invocation-log record that read `read` and wrote `write`
    /// cached tokens, with `body` as its `inputBodyJson` (or none).
    fn cached_record(model: &str, read: u64, write: u64, plain: u64, body: Option<&str>) -> String {
        let body = body
            .map(|b| format!(r#","inputBodyJson":{b}"#))
            .unwrap_or_default();
        format!(
            r#"{{"timestamp":"2026-01-01T00:00:00Z","modelId":"{model}","operation":"Converse","input":{{"inputTokenCount":{plain},"cacheReadInputTokenCount":{read},"cacheWriteInputTokenCount":{write}{body}}},"output":{{"outputTokenCount":9}}}}"#
        )
    }

    #[test]
    fn cached_tokens_become_a_prefix_named_by_the_body_before_its_cache_point() {
        const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let converse = |system: &str, question: &str| {
            format!(
                r#"{{"system":[{{"text":"{system}"}},{{"cachePoint":{{"type":"default"}}}}],"messages":[{{"role":"user","content":[{{"text":"{question}"}}]}}]}}"#
            )
        };
        let anthropic = |system: &str, question: &str| {
            format!(
                r#"{{"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"system":[{{"type":"text","text":"{system}","cache_control":{{"type":"ephemeral"}}}}],"messages":[{{"role":"user","content":"{question}"}}]}}"#
            )
        };
        let records = [
            cached_record(SONNET, 0, 1_500, 40, Some(&converse("You help.", "Hi"))),
            cached_record(SONNET, 1_500, 0, 55, Some(&converse("You help.", "Bye"))),
            cached_record(SONNET, 0, 1_700, 40, Some(&converse("You don't.", "Hi"))),
            // The body as JSON text, Anthropic's cache_control on the block it covers.
            cached_record(
                SONNET,
                1_200,
                0,
                30,
                Some(&serde_json::to_string(&anthropic("You help.", "Hi")).unwrap()),
            ),
            cached_record(SONNET, 1_200, 0, 30, Some(&anthropic("You help.", "Other"))),
            // A body without a cache point: named by its size.
            cached_record(SONNET, 800, 0, 30, Some(r#"{"messages":[]}"#)),
            // Everything cached: the prefix leaves one token.
            cached_record(SONNET, 900, 0, 0, None),
            // A model without prompt caching: plain input.
            cached_record("meta.llama3-3-70b-instruct-v1:0", 700, 0, 30, None),
        ]
        .join(
            "
",
        );
        let parsed: Vec<TraceRecord> = parse_invocation_logs(&records)
            .into_iter()
            .map(|r| r.unwrap().1)
            .collect();
        let prefix = |i: usize| {
            (
                parsed[i].cache_prefix.clone().unwrap_or_default(),
                parsed[i].cache_prefix_tokens,
                parsed[i].input_tokens,
            )
        };
        let (a, tokens, input) = prefix(0);
        assert!(
            a.starts_with("body-") && a.len() == "body-".len() + 16,
            "{a}"
        );
        assert_eq!((tokens, input), (Some(1_500), 1_540));
        // The same system prompt before the cache point: the same id,
        // whatever follows it and whether it was read or written.
        assert_eq!(prefix(1).0, a);
        assert_ne!(prefix(2).0, a);
        let (native, tokens, _) = prefix(3);
        assert!(native.starts_with("body-") && native != a, "{native}");
        assert_eq!(tokens, Some(1_200));
        assert_eq!(prefix(4).0, native);
        assert_eq!(prefix(5).0, "size-800");
        assert_eq!(prefix(6), ("size-900".to_owned(), Some(899), 900));
        assert_eq!(prefix(7), (String::new(), None, 730));
        // Each imported line is a valid trace line.
        let imported = Imported {
            records: parsed,
            skipped: vec![],
        };
        let trace = super::super::parse_trace(&imported.to_jsonl(), false).unwrap();
        assert_eq!(trace.lines.len(), 8);
        assert!(trace.lines[0].cache_prefix.is_some());
    }

    #[test]
    fn malformed_records_name_their_line_and_field() {
        let bad = [
            ("not json", ""),
            (
                r#"{"schemaType":"Other","timestamp":"2026-01-01T00:00:00Z"}"#,
                "schemaType",
            ),
            (
                r#"{"timestamp":"yesterday","modelId":"m","operation":"Converse","input":{"inputTokenCount":1},"output":{"outputTokenCount":1}}"#,
                "timestamp",
            ),
            (
                r#"{"timestamp":"2026-01-01T00:00:00Z","operation":"Converse","input":{"inputTokenCount":1},"output":{"outputTokenCount":1}}"#,
                "modelId",
            ),
            (
                r#"{"timestamp":"2026-01-01T00:00:00Z","modelId":"m","operation":"ListFoundationModels","input":{"inputTokenCount":1},"output":{"outputTokenCount":1}}"#,
                "operation",
            ),
            (
                r#"{"timestamp":"2026-01-01T00:00:00Z","modelId":"m","operation":"Converse","output":{"outputTokenCount":1}}"#,
                "input.inputTokenCount",
            ),
            (
                r#"{"timestamp":"2026-01-01T00:00:00Z","modelId":"m","operation":"Converse","input":{"inputTokenCount":"12"},"output":{"outputTokenCount":1}}"#,
                "input.inputTokenCount",
            ),
            (
                r#"{"timestamp":"2026-01-01T00:00:00Z","modelId":"m","operation":"Converse","input":{"inputTokenCount":5}}"#,
                "output.outputTokenCount",
            ),
            (
                r#"{"timestamp":"2026-01-01T00:00:00Z","modelId":"m","operation":"Converse","input":{"inputTokenCount":5},"output":{"outputTokenCount":0}}"#,
                "output.outputTokenCount",
            ),
        ];
        let text: String = bad.iter().map(|(l, _)| format!("{l}\n")).collect();
        let parsed = parse_invocation_logs(&text);
        assert_eq!(parsed.len(), bad.len());
        for (i, (result, (_, field))) in parsed.iter().zip(bad).enumerate() {
            let issue = result.as_ref().unwrap_err();
            assert_eq!(issue.line, i as u64 + 1);
            assert_eq!(issue.field, field, "{issue:?}");
        }
    }

    #[test]
    fn import_fails_on_a_bad_record_or_skips_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.jsonl");
        let mut text = SAMPLE.to_owned();
        text.push_str("{\"timestamp\":\"2026-01-01T00:00:00Z\",\"modelId\":\"m\"}\n");
        std::fs::write(&path, &text).unwrap();
        let line = text.lines().count();
        let err = import(Source::InvocationLogs, std::slice::from_ref(&path), false).unwrap_err();
        assert_eq!(
            err,
            vec![format!("{}:{line}: operation: is required", path.display())]
        );
        let ok = import(Source::InvocationLogs, &[path], true).unwrap();
        assert_eq!(ok.records.len(), 5);
        assert_eq!(ok.skipped.len(), 1);
        assert_eq!(ok.skipped[0].1.line, line as u64);
    }

    #[test]
    fn gzip_files_are_read_through() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.json.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(SAMPLE.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let ok = import(Source::InvocationLogs, &[path], false).unwrap();
        assert_eq!(ok.records.len(), 5);
    }

    #[test]
    fn csv_reads_quoted_fields_and_names_bad_cells() {
        let text = "offset,model,input_tokens,output_tokens,prompt,session\n\
                    0.5,meta.llama3-3-70b-instruct-v1:0,120,40,\"Hello, \"\"world\"\"\",s1\n\
                    0,meta.llama3-3-70b-instruct-v1:0,80,10,,\n\
                    1.5,meta.llama3-3-70b-instruct-v1:0,eighty,10,,\n\
                    2,meta.llama3-3-70b-instruct-v1:0,80,0,,\n";
        let parsed = parse_csv(text);
        assert_eq!(parsed.len(), 4);
        let (at, first) = parsed[0].as_ref().unwrap();
        assert_eq!(*at, 500_000_000);
        assert_eq!(first.prompt.as_deref(), Some("Hello, \"world\""));
        assert_eq!(first.session.as_deref(), Some("s1"));
        assert_eq!(parsed[1].as_ref().unwrap().1.prompt, None);
        let e = parsed[2].as_ref().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "input_tokens"));
        let e = parsed[3].as_ref().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (5, "output_tokens"));
        let prefixed = parse_csv(
            "offset,model,input_tokens,output_tokens,cache_prefix,cache_prefix_tokens\n\
             0,anthropic.claude-3-5-haiku-20241022-v1:0,3000,10,sys,2048\n\
             1,anthropic.claude-3-5-haiku-20241022-v1:0,3000,10,,\n\
             2,anthropic.claude-3-5-haiku-20241022-v1:0,3000,10,sys,\n",
        );
        let (_, with) = prefixed[0].as_ref().unwrap();
        assert_eq!(
            (with.cache_prefix.as_deref(), with.cache_prefix_tokens),
            (Some("sys"), Some(2_048))
        );
        assert_eq!(prefixed[1].as_ref().unwrap().1.cache_prefix, None);
        let e = prefixed[2].as_ref().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "cache_prefix_tokens"));
        let header = parse_csv("offset,model,tokens\n");
        let e = header[0].as_ref().unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "tokens"));
    }
}
