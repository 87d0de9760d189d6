//! A trace as a plan's demand: `quarry plan PLAN.toml --from trace.jsonl`.
//!
//! The trace is read with the replay's own reader ([`read_trace`]: bad lines
//! are errors named `FILE:LINE: field: message`, none skipped), and each
//! model it sends to becomes one demand profile ([`MeasuredDemand`])
//! labelled `<file name>:<model id>`, read from the trace alone:
//!
//! - **span**: from the trace's first request to its last (all models); at
//!   least [`PEAK_WINDOW_S`] seconds, or no minute's peak can be read;
//! - **average RPM**: the model's requests ÷ the span × 60;
//! - **peak RPM**: the most of the model's requests in any 60-second window
//!   `[t, t + 60 s)` (windows start at a request; the busiest is named by
//!   its first line and time), and never below the average (a trace too
//!   sparse for its busiest minute to reach its average rate takes the
//!   average, and says so);
//! - **tokens per request**: input and output means (what the planner's
//!   arithmetic uses), and p50, p95 and the largest by nearest rank;
//! - **max_tokens**: not in a trace (it records what was produced, not what
//!   was asked). The profile offers the largest output the model produced,
//!   the smallest `max_tokens` every request is consistent with; the plan
//!   shows it as assumed and says so. A class that enters `max_tokens` wins;
//! - **sessions**, when lines carry `session`: distinct ids, requests per
//!   session, and sessions per day (ids ÷ span × 86,400 s);
//! - **cache reads and writes**, when lines carry `cache_prefix`: the
//!   model's lines in time order through a 5-minute prompt cache (the TTL a
//!   replay sends), as the simulator keeps it.
//!
//! [`cover_classes`] then gives each profile its class. A class takes a
//! trace's demand by naming the trace (`measured = "trace.jsonl"`: the
//! profile of the model it uses first) or one profile
//! (`measured = "trace.jsonl:<model id>"`); a profile no class takes gets a
//! class of its own (named by its label: interactive, no SLO, its model its
//! only candidate), so the whole trace is planned. Two definitions of one
//! model's demand are an error naming both: a profile no class takes while
//! a class of the plan file uses that model with demand of its own (or
//! another trace's), two traces of one model no class tells apart, two
//! classes taking one profile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use quarry_capacity::{
    Demand, MeasuredDemand, MeasuredSessions, PlanInput, Slo, TokenStat, WorkloadClass,
};

use crate::replay::{Trace, TraceLine, read_trace};
use crate::report::trim;

/// The window a peak is read over, in seconds: a minute, as RPM quotas count.
pub const PEAK_WINDOW_S: u64 = 60;

/// The prompt cache's TTL a replayed prefix is sent with (the default), in
/// seconds.
pub const CACHE_TTL_S: u64 = 300;

const NS_PER_S: f64 = 1e9;

/// A trace read as demand.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceDemand {
    /// The name classes use for the trace: its file name.
    pub label: String,
    /// The trace file.
    pub path: PathBuf,
    /// Requests (valid lines) in the trace.
    pub requests: usize,
    /// Seconds from its first request to its last.
    pub span_s: f64,
    /// One profile per model, in order of first use.
    pub profiles: Vec<MeasuredDemand>,
    /// What each profile's figures were read from, for the notes: the
    /// profile's label, then a line of figures.
    pub summaries: Vec<(String, String)>,
}

impl TraceDemand {
    /// The profile of `model`, if the trace sends to it.
    pub fn profile(&self, model: &str) -> Option<&MeasuredDemand> {
        self.profiles
            .iter()
            .find(|p| p.model.as_deref() == Some(model))
    }

    fn models(&self) -> String {
        let models: Vec<&str> = self
            .profiles
            .iter()
            .filter_map(|p| p.model.as_deref())
            .collect();
        models.join(", ")
    }
}

/// The label of `trace`'s profile of `model`.
pub fn profile_label(trace: &str, model: &str) -> String {
    format!("{trace}:{model}")
}

/// Reads the trace at `path` as demand labelled `label`. Errors are lines
/// to print: the reader's `FILE:LINE: field: message` findings, or why the
/// trace cannot be a demand.
pub fn read_trace_demand(path: &Path, label: &str) -> Result<TraceDemand, Vec<String>> {
    let trace = read_trace(path, false)?;
    trace_demand(path, label, &trace).map_err(|why| vec![format!("{}: {why}", path.display())])
}

/// The demand of `trace` (read from `path`), one profile per model.
pub fn trace_demand(path: &Path, label: &str, trace: &Trace) -> Result<TraceDemand, String> {
    let (Some(first), Some(last)) = (trace.lines.first(), trace.lines.last()) else {
        return Err("the trace holds no request".to_owned());
    };
    let span_ns = last.at_ns - first.at_ns;
    let span_s = span_ns as f64 / NS_PER_S;
    if span_ns < PEAK_WINDOW_S * 1_000_000_000 {
        return Err(format!(
            "its requests span {} s (line {} to line {}): a peak over a {PEAK_WINDOW_S}-second window needs a trace of at least {PEAK_WINDOW_S} s",
            trim(span_s),
            first.line,
            last.line
        ));
    }
    let line_range = {
        let lo = trace.lines.iter().map(|l| l.line).min().unwrap_or(1);
        let hi = trace.lines.iter().map(|l| l.line).max().unwrap_or(1);
        format!("lines {lo}–{hi}")
    };
    let whole = format!(
        "{}: {} requests ({line_range}), {} to {} (a span of {} s)",
        path.display(),
        trace.lines.len(),
        when(trace, first.at_ns),
        when(trace, last.at_ns),
        trim(span_s)
    );
    let mut models: Vec<&str> = Vec::new();
    for l in &trace.lines {
        if !models.contains(&l.model.as_str()) {
            models.push(&l.model);
        }
    }
    let mut profiles = Vec::new();
    let mut summaries = Vec::new();
    for model in models {
        let lines: Vec<&TraceLine> = trace.lines.iter().filter(|l| l.model == model).collect();
        let (profile, summary) = model_profile(trace, label, model, &lines, span_s, &whole);
        summaries.push((profile.label.clone(), summary));
        profiles.push(profile);
    }
    Ok(TraceDemand {
        label: label.to_owned(),
        path: path.to_owned(),
        requests: trace.lines.len(),
        span_s,
        profiles,
        summaries,
    })
}

/// A trace time as written: RFC 3339 for a trace of timestamps, an offset
/// for one of offsets.
fn when(trace: &Trace, at_ns: u64) -> String {
    let Some(start) = trace.start_unix_ns else {
        return format!("offset {} s", trim(at_ns as f64 / NS_PER_S));
    };
    let unix_ns = (start + i128::from(at_ns)).max(0);
    let secs = u64::try_from(unix_ns / 1_000_000_000).unwrap_or(u64::MAX);
    let whole = crate::run::rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
    match unix_ns % 1_000_000_000 {
        0 => whole,
        frac => {
            let digits = format!("{frac:09}");
            format!(
                "{}.{}Z",
                whole.trim_end_matches('Z'),
                digits.trim_end_matches('0')
            )
        }
    }
}

/// The most of `times` (sorted, ns) in any window `[t, t + 60 s)`: the
/// count and the index of the window's first request (the earliest
/// busiest window).
fn busiest_window(times: &[u64]) -> (usize, usize) {
    let window = PEAK_WINDOW_S * 1_000_000_000;
    let mut best = (0, 0);
    let mut end = 0;
    for (start, &t) in times.iter().enumerate() {
        while end < times.len() && times[end] < t.saturating_add(window) {
            end += 1;
        }
        if end - start > best.0 {
            best = (end - start, start);
        }
    }
    best
}

/// The `p`-quantile of `sorted` by nearest rank: the ⌈p·n⌉-th smallest.
fn nearest_rank(sorted: &[u32], p: f64) -> Option<f64> {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
    sorted.get(rank - 1).map(|&v| f64::from(v))
}

/// Mean, p50, p95 and the largest of `values`.
fn token_stat(values: impl Iterator<Item = u32>) -> TokenStat {
    let mut sorted: Vec<u32> = values.collect();
    sorted.sort_unstable();
    let sum: u64 = sorted.iter().map(|&v| u64::from(v)).sum();
    TokenStat {
        mean: sum as f64 / sorted.len().max(1) as f64,
        p50: nearest_rank(&sorted, 0.50),
        p95: nearest_rank(&sorted, 0.95),
        max: sorted.last().map(|&v| f64::from(v)),
    }
}

fn model_profile(
    trace: &Trace,
    trace_label: &str,
    model: &str,
    lines: &[&TraceLine],
    span_s: f64,
    whole: &str,
) -> (MeasuredDemand, String) {
    let n = lines.len();
    let average = n as f64 / span_s * 60.0;
    let times: Vec<u64> = lines.iter().map(|l| l.at_ns).collect();
    let (count, first) = busiest_window(&times);
    let window = format!(
        "[{}, +{PEAK_WINDOW_S} s) from line {}",
        when(trace, times[first]),
        lines[first].line
    );
    let (peak, peak_how) = if (count as f64) < average {
        (
            average,
            format!(
                "taken as the average: its busiest {PEAK_WINDOW_S}-second window, {window}, holds {count}"
            ),
        )
    } else {
        (
            count as f64,
            format!("{count} in its busiest {PEAK_WINDOW_S}-second window, {window}"),
        )
    };
    let input = token_stat(lines.iter().map(|l| l.input_tokens));
    let output = token_stat(lines.iter().map(|l| l.output_tokens.get()));
    let largest_output = lines
        .iter()
        .map(|l| u64::from(l.output_tokens.get()))
        .max()
        .unwrap_or(1);
    let sessions = {
        let with: Vec<&str> = lines.iter().filter_map(|l| l.session.as_deref()).collect();
        let ids: BTreeSet<&str> = with.iter().copied().collect();
        (!ids.is_empty()).then(|| MeasuredSessions {
            sessions: ids.len() as u64,
            requests: with.len() as u64,
            per_day: ids.len() as f64 / span_s * 86_400.0,
            requests_per_session: with.len() as f64 / ids.len() as f64,
        })
    };
    let sessions_how = sessions
        .map(|s| {
            format!(
                "; {} sessions over {} of its requests",
                s.sessions, s.requests
            )
        })
        .unwrap_or_default();
    let cache = cache_use(model, lines);
    let cache_how = cache
        .map(|c| {
            format!(
                "; cache: its {} cache_prefix lines in time order through a {CACHE_TTL_S}-second cache, {} reads and {} writes{}",
                c.prefixed,
                c.reads,
                c.writes,
                if c.below_minimum > 0 {
                    format!(
                        ", {} below the model's minimum prefix and not cached",
                        c.below_minimum
                    )
                } else {
                    String::new()
                }
            )
        })
        .unwrap_or_default();
    let source = format!(
        "{whole}; {n} of them to {model}: average over the span; peak {peak_how}; tokens: means over its {n} requests{sessions_how}{cache_how}"
    );
    let caching = cache.filter(|c| c.read_tokens + c.write_tokens > 0);
    let per_request = |t: u64| t as f64 / n as f64;
    let stat = |s: &TokenStat| {
        format!(
            "mean {}, p50 {}, p95 {}, max {}",
            trim(s.mean),
            s.p50.map_or("-".to_owned(), trim),
            s.p95.map_or("-".to_owned(), trim),
            s.max.map_or("-".to_owned(), trim)
        )
    };
    let summary = format!(
        "{n} requests, average {} RPM, peak {} RPM ({peak_how}); input tokens {}; output tokens {}{}",
        trim(average),
        trim(peak),
        stat(&input),
        stat(&output),
        sessions
            .map(|s| format!(
                "; {} sessions, {} requests each, {} a day",
                s.sessions,
                trim(s.requests_per_session),
                trim(s.per_day)
            ))
            .unwrap_or_default()
    );
    let profile = MeasuredDemand {
        label: profile_label(trace_label, model),
        source,
        model: Some(model.to_owned()),
        duration_s: span_s,
        requests: n as u64,
        peak_rpm: Some(peak),
        average_rpm: Some(average),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: caching.map(|c| per_request(c.read_tokens)),
        cache_write_tokens: caching.map(|c| per_request(c.write_tokens)),
        max_tokens: Some(largest_output),
        max_tokens_assumed: Some(format!(
            "a trace records the tokens produced, not the max_tokens asked for; {trace_label} taken as sending {largest_output}, the largest output of its requests to {model} (the least every one of them is consistent with: enter the class's max_tokens if the callers send more)"
        )),
        mean_e2e_seconds: None,
        sessions,
    };
    (profile, summary)
}

/// How a model's `cache_prefix` lines use the prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CacheUse {
    /// Lines with a prefix.
    prefixed: u64,
    /// Those that read their prefix from the cache.
    reads: u64,
    /// The tokens they read.
    read_tokens: u64,
    /// Those that wrote it.
    writes: u64,
    /// The tokens they wrote.
    write_tokens: u64,
    /// Those whose prefix is below the model's minimum: not cached.
    below_minimum: u64,
}

/// The model's lines (in time order) through a prompt cache of
/// [`CACHE_TTL_S`], as the simulator keeps it: a prefix (its id and tokens)
/// seen within the TTL of its last use is read, and its TTL restarts;
/// otherwise it is written. A prefix below the model's minimum
/// ([`quarry_engine::prompt_cache_support`]) is neither. `None` when no
/// line has a prefix.
fn cache_use(model: &str, lines: &[&TraceLine]) -> Option<CacheUse> {
    let min = match quarry_engine::prompt_cache_support(model) {
        quarry_engine::PromptCacheSupport::Supported { min_tokens, .. } => min_tokens.unwrap_or(0),
        _ => 0,
    };
    let ttl = CACHE_TTL_S * 1_000_000_000;
    let mut last: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    let mut out = CacheUse::default();
    for l in lines {
        let Some(p) = &l.cache_prefix else { continue };
        out.prefixed += 1;
        let tokens = p.tokens.get();
        if tokens < min {
            out.below_minimum += 1;
            continue;
        }
        match last.insert((p.id.as_str(), tokens), l.at_ns) {
            Some(at) if l.at_ns - at < ttl => {
                out.reads += 1;
                out.read_tokens += u64::from(tokens);
            }
            _ => {
                out.writes += 1;
                out.write_tokens += u64::from(tokens);
            }
        }
    }
    (out.prefixed > 0).then_some(out)
}

/// `FILE:LINE: path` of an entered field, or `FILE: path` without a line.
fn at(input: &PlanInput, plan_file: &Path, path: &str) -> String {
    match input.origins.get(path) {
        Some(o) => format!("{}:{}: {path}", o.file, o.line),
        None => format!("{}: {path}", plan_file.display()),
    }
}

/// The field a class's demand was entered at, for messages.
fn demand_field(class: &WorkloadClass) -> &'static str {
    match class.demand {
        Some(Demand::Rate { .. }) => "peak_rpm",
        Some(Demand::Users { .. }) => "concurrent_users",
        Some(Demand::Sessions { .. }) => "sessions_per_day",
        None => "measured",
    }
}

/// Gives every profile of `traces` a class (see the module doc): resolves
/// classes naming a trace to its profile of their model, and adds a class
/// for each profile none takes. Returns a note per profile; errors name the
/// plan file's line and the trace.
pub fn cover_classes(
    input: &mut PlanInput,
    traces: &[TraceDemand],
    plan_file: &Path,
) -> Result<Vec<String>, Vec<String>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    // Which class takes each profile (by label).
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let profile_of = |label: &str| {
        traces
            .iter()
            .find_map(|t| t.profiles.iter().find(|p| p.label == label).map(|p| (t, p)))
    };
    for i in 0..input.classes.len() {
        let Some(named) = input.classes[i].measured.clone() else {
            continue;
        };
        let model = input.classes[i].models[0].clone();
        let label = match traces.iter().find(|t| t.label == named) {
            Some(t) => match t.profile(&model) {
                Some(p) => p.label.clone(),
                None => {
                    errors.push(format!(
                        "{}: names trace {named:?} ({}), which sends no request to {model}, the model class[{i}] uses first; its models: {}",
                        at(input, plan_file, &format!("class[{i}].measured")),
                        t.path.display(),
                        t.models()
                    ));
                    continue;
                }
            },
            None => named,
        };
        let Some((t, _)) = profile_of(&label) else {
            continue;
        };
        if let Some(&j) = taken.get(&label) {
            errors.push(format!(
                "{}: class {:?} takes the demand of {label} ({}), and so does class {:?} ({}): its requests would be counted twice",
                at(input, plan_file, &format!("class[{i}].measured")),
                input.classes[i].name,
                t.path.display(),
                input.classes[j].name,
                at(input, plan_file, &format!("class[{j}].measured")),
            ));
            continue;
        }
        input.classes[i].measured = Some(label.clone());
        taken.insert(label.clone(), i);
        notes.push(format!(
            "{}: {label} is the demand of class {:?}",
            t.path.display(),
            input.classes[i].name
        ));
    }
    // Profiles no class takes: a class each, unless the model's demand is
    // already defined elsewhere.
    let mut made: BTreeMap<String, &TraceDemand> = BTreeMap::new();
    for t in traces {
        for p in &t.profiles {
            if taken.contains_key(&p.label) {
                continue;
            }
            let model = p.model.clone().unwrap_or_default();
            if let Some(other) = made.get(&model) {
                errors.push(format!(
                    "--from {}: no class takes its requests to {model}, nor those of --from {}: two traces of one model would both be planned as its demand. Name each in the class it is the demand of (measured = \"{}\" / \"{}\")",
                    t.path.display(),
                    other.path.display(),
                    p.label,
                    profile_label(&other.label, &model)
                ));
                continue;
            }
            if let Some(i) = input.classes.iter().position(|c| c.models[0] == model) {
                let class = &input.classes[i];
                let field = demand_field(class);
                errors.push(format!(
                    "{}: class {:?} uses {model} with demand of its own, and --from {} supplies {model}'s demand too ({} requests), which no class takes: one would be counted twice. Take the trace as this class's demand (class[{i}].measured = \"{}\"), or give its requests a class of their own (measured = \"{}\")",
                    at(input, plan_file, &format!("class[{i}].{field}")),
                    class.name,
                    t.path.display(),
                    p.requests,
                    t.label,
                    p.label
                ));
                continue;
            }
            if input.classes.iter().any(|c| c.name == p.label) {
                errors.push(format!(
                    "--from {}: a class for its requests to {model} would be named {:?}, which a class of the plan file already is",
                    t.path.display(),
                    p.label
                ));
                continue;
            }
            made.insert(model.clone(), t);
            input.classes.push(WorkloadClass {
                name: p.label.clone(),
                interactive: true,
                demand: None,
                input_tokens: None,
                output_tokens: None,
                max_tokens: None,
                cache: None,
                mean_e2e_seconds: None,
                users: None,
                slo: Slo::default(),
                models: vec![model.clone()],
                routes: Vec::new(),
                measured: Some(p.label.clone()),
                curve: None,
            });
            input.assumptions.push(format!(
                "class {}: made for the requests of {} to {model}, which no class of the plan file takes: interactive, no SLO, {model} its only candidate model",
                p.label, t.label
            ));
            notes.push(format!(
                "{}: {} is the demand of a class of its own, {:?} (no class of the plan file takes it)",
                t.path.display(),
                p.label,
                p.label
            ));
        }
    }
    if errors.is_empty() {
        Ok(notes)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
