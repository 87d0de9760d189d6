//! The run spec: a TOML file parsed raw (module `raw`), then validated into a
//! [`RunPlan`] plus [`Thresholds`]. Nothing runs on an invalid spec, and every
//! mistake found is reported with its file, line and field, not just the first.
//!
//! The spec's sections and fields are documented on [`load_spec`] and shown in
//! `examples/`.

mod agents;
mod error;
mod load;
mod raw;
mod replay;
mod sessions;
mod sweep;
mod target;
mod telemetry;
mod validate;
mod workload;

use std::path::Path;

use quarry_engine::RunPlan;

pub use crate::duration::parse_duration;
pub use crate::fleet::{AgentGroupSpec, AgentsSpec};
pub use error::{Diagnostic, Severity, SpecError};
pub use sweep::{
    DEFAULT_LADDER, DEFAULT_MAX_LEVELS, DEFAULT_TOLERANCE, RequestSlo, SearchSpec, SloSpec,
    SweepMode, SweepSpec, SweepVariable, level_spec_text,
};
pub use telemetry::{PROTOCOLS, TelemetrySpec};
pub use workload::check_model_id;

use crate::thresholds::Thresholds;

/// A spec that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedSpec {
    /// The spec file's text, exactly as read and validated (a run keeps
    /// this text in its results, never a second read of the file).
    pub text: String,
    /// The plan agents run.
    pub plan: RunPlan,
    /// The run's pass/fail conditions, evaluated by the controller.
    pub thresholds: Thresholds,
    /// `[agents]`: the agent groups of a distributed run and how to reach
    /// them; `None` when the spec has no such section.
    pub agents: Option<AgentsSpec>,
    /// `[telemetry]`: OTLP export and request sampling (`None`: no section).
    pub telemetry: Option<TelemetrySpec>,
    /// `[sweep]`: the spec is a sweep (`quarry sweep`), not a single run.
    pub sweep: Option<SweepSpec>,
    /// `[slo]`: what each sweep level is judged against.
    pub slo: Option<SloSpec>,
    /// Findings that do not stop the run (unpriced models, cache prefixes
    /// below a model's minimum ...).
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates the spec at `path`.
///
/// # Spec format
///
/// ```toml
/// seed = 42                      # every random choice derives from it (default 0)
///
/// [target]                       # optional; default kind = "sim"
/// kind = "sim"                   # "sim": the embedded simulator; "aws": Bedrock
/// # sim_profile = "..."          # sim only: simulator latency profile
/// # region = "us-east-1"         # aws only, required
/// # endpoint = "https://..."     # aws only, optional override
/// # profile = "default"          # aws only, optional credentials profile
///
/// [load]
/// concurrency = 8                # closed model: N virtual users, or ...
/// # rate = 20.0                  # ... open model: arrivals per second
/// # arrival = "poisson"          # open: "constant" (default) or "poisson"
/// # max_in_flight = 100          # open: cap on requests in flight (default 10000;
///                                #   arrivals finding it full are sent late, or dropped
///                                #   with drop_late_after; rate at most 1000000/s)
/// # drop_late_after = "1s"       # open: drop arrivals this late (default: send late)
/// duration = "60s"               # and/or requests = N (whichever comes first)
/// warmup = "5s"                  # optional, excluded from results
/// # cooldown = "5s"              # optional, reported separately
/// # [[load.stages]]              # instead of duration: ramps and holds
/// # kind = "ramp"                # "warmup" | "ramp" | "hold" | "cooldown"
/// # duration = "30s"             # required
/// # target = 50                  # concurrency or rate at the stage's end
/// # name = "ramp-to-50"          # optional, unique
///
/// [[workload]]                   # one or more, drawn by weight
/// weight = 1                     # default 1
/// model = "meta.llama3-3-70b-instruct-v1:0"
/// operation = "ConverseStream"   # default ConverseStream
/// input_tokens = { dist = "lognormal", mean = 800, stddev = 300, min = 50, max = 4000 }
/// #   or a number; dist = "fixed" (tokens) | "uniform" (min, max)
/// #   | "normal" / "lognormal" (mean, stddev, optional min = 1, max = mean + 6 stddev)
/// max_tokens = 256               # required (Bedrock reserves it against TPM)
/// # system_prompt = "..."
/// # cache_prefix_tokens = 2048   # shared prefix + cachePoint (caching models only)
/// # cache_ttl = "5m"             # "5m" (default) or "1h"
/// # nonce = true                 # unique marker per request (default true)
/// # temperature = 0.7            # 0 to 1
///
/// [retry]                        # optional; default mode = "off"
/// mode = "standard"              # SDK standard: 3 attempts, 1s initial, 20s cap
/// # max_attempts = 3, initial_backoff = "1s", max_backoff = "20s"
///
/// [timeouts]                     # optional; defaults connect 10s, request 300s
/// # connect = "10s", request = "300s", first_token = "30s"
///
/// [pricing."my-model-id"]        # USD per 1M tokens; input and output required
/// # input = 3.0, output = 15.0, cache_write_5m = 3.75, cache_write_1h = 6.0, cache_read = 0.3
///
/// [thresholds]                   # see the thresholds module for the language
/// "ttft.p99" = "< 2s"
///
/// [agents]                       # optional: run on quarry-agent daemons
/// # token_file = "token"         # bearer token; or ca / client_cert / client_key (TLS)
/// # lease_ttl = "10s"
/// [[agents.group]]               # one or more; each its own series group
/// name = "prod-eu"
/// agents = ["10.0.1.5:7400", "dns:quarry-agents.eu.svc:7400"]
/// weight = 2                     # its part of the load (default 1)
/// # region = "eu-west-1"         # the Region it fires at (checked against Describe)
/// # account_alias = "prod"       # checked against Describe
/// # credential_profile = "prod"  # AWS profile its agents use (target.kind = "aws")
///
/// [sweep]                        # `quarry sweep` only: one run per level (see the sweep module)
/// # variable = "concurrency"     # or "rate"; levels = [1, 5, 10, 25, 50] or [sweep.search]
///
/// [slo]                          # with [sweep]: per-request bounds, attainment, criteria
/// # attainment = "99%"
///
/// [telemetry]                    # optional: OTLP trace and metrics (see the telemetry module)
/// # endpoint = "http://localhost:4317"   # OTEL_EXPORTER_OTLP_ENDPOINT / --otlp-endpoint win
/// # protocol = "grpc"            # or "http/protobuf"
/// # sample_ratio = 1.0           # fraction of requests traced (default: all, under the cap)
/// # keep_errors = true           # always trace failed and throttled requests
/// # max_spans_per_second = 100   # whole-run cap on request spans (0: none)
/// # metrics = true
/// # flush_timeout = "5s"
/// ```
///
/// Without `--agents` a spec with `[[agents.group]]` runs on those groups;
/// `--agents` replaces the groups (the section's connection settings still
/// apply unless a flag overrides them). See the `agents` module.
///
/// A cache prefix on a model known not to support prompt caching is an
/// error (the run would measure nothing it claims to); on a model whose
/// support the id does not reveal, or below the model's minimum prefix size
/// (Bedrock silently ignores the checkpoint), it is a warning.
pub fn load_spec(path: &Path) -> Result<ValidatedSpec, SpecError> {
    use std::io::Read as _;
    let read = |error| SpecError::Read {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let too_large = |size| SpecError::TooLarge {
        path: path.to_owned(),
        size,
        limit: MAX_SPEC_BYTES,
    };
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > MAX_SPEC_BYTES
    {
        return Err(too_large(meta.len()));
    }
    // Bounded even when the size lies (a pipe, a device, a growing file).
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        read(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        ))
    })?;
    parse_spec(path, &text)
}

/// The largest spec file read: 16 MiB, far above any hand-written or
/// generated run description (100,000 stages take about 6 MiB), low enough
/// that parsing a hostile file costs little memory.
pub const MAX_SPEC_BYTES: u64 = 16 * 1024 * 1024;

/// Validates spec `text`; `path` only labels the findings.
pub fn parse_spec(path: &Path, text: &str) -> Result<ValidatedSpec, SpecError> {
    let lines = LineMap::new(text);
    let mut checker = validate::Checker::new(path.to_owned(), lines);
    let mut raw = match toml::from_str::<raw::RawSpec>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span();
            let field = span
                .as_ref()
                .map(|s| field_at(text, s.start))
                .unwrap_or_default();
            checker.error_at(span, field, e.message().trim().to_owned());
            return Err(checker.into_error());
        }
    };
    let raw_agents = raw.agents.take();
    let telemetry = raw
        .telemetry
        .take()
        .map(|t| telemetry::validate_telemetry(&mut checker, &t));
    let user_load = raw.load.as_ref().map_or((false, false), |l| {
        (
            l.get_ref().concurrency.is_some(),
            l.get_ref().rate.is_some(),
        )
    });
    if let (Some(s), Some(l)) = (&raw.sweep, &mut raw.load) {
        sweep::fill_load(s, l);
    }
    let raw_sweep = raw.sweep.take();
    let sweep = raw_sweep
        .as_ref()
        .map(|s| sweep::validate_sweep(&mut checker, s, raw.load.as_ref(), user_load));
    let slo = raw.slo.take().map(|s| {
        let variable = sweep.as_ref().and_then(|v| v.as_ref().map(|v| v.variable));
        sweep::validate_slo(&mut checker, &s, raw_sweep.is_some(), variable)
    });
    if let (Some(span), None) = (
        raw_sweep.as_ref().and_then(|s| s.get_ref().search_span()),
        &slo,
    ) {
        let msg =
            "a search needs an [slo] (criteria or request bounds) to judge each level against";
        checker.error_at(Some(span), "sweep.search", msg);
    }
    let validated = validate::validate(raw, &mut checker);
    let agents = match &raw_agents {
        None => Some(None),
        Some(a) => {
            let plan = validated.as_ref().map(|(plan, _)| plan);
            let spec_dir = path.parent().unwrap_or(Path::new(""));
            agents::validate_agents(&mut checker, a, plan, spec_dir).map(Some)
        }
    };
    match (validated, agents) {
        (Some((plan, thresholds)), Some(agents)) if !checker.has_errors() => Ok(ValidatedSpec {
            text: text.to_owned(),
            plan,
            thresholds,
            agents,
            telemetry,
            sweep: sweep.flatten(),
            slo: slo.flatten(),
            warnings: checker.into_warnings(),
        }),
        _ => Err(checker.into_error()),
    }
}

/// Byte offset to 1-based line number.
#[derive(Debug, Clone)]
pub(crate) struct LineMap {
    starts: Vec<usize>,
}

impl LineMap {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineMap { starts }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

/// Best-effort dotted field path at `offset`, for TOML parse and type errors
/// (which carry a span but no path): the enclosing `[table]` header, with an
/// index for `[[array]]` tables, plus the key on the offending line.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let header_of = |l: &str| -> Option<(String, bool)> {
        let l = l.trim();
        let array = l.starts_with("[[");
        let inner = l.trim_start_matches('[').split(']').next()?;
        l.starts_with('[')
            .then(|| (inner.trim().replace(['"', '\''], ""), array))
    };
    if let Some((header, _)) = header_of(line) {
        return header;
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .replace(['"', '\''], "");
    let before = &text[..line_start];
    let header = before.lines().rev().find_map(header_of);
    let table = match header {
        Some((name, true)) => {
            let count = before
                .lines()
                .filter(|l| header_of(l).is_some_and(|(n, a)| a && n == name))
                .count();
            format!("{name}[{}]", count.saturating_sub(1))
        }
        Some((name, false)) => name,
        None => String::new(),
    };
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        let m = LineMap::new("a\nbc\n\nd");
        assert_eq!(
            [m.line(0), m.line(2), m.line(3), m.line(5), m.line(6)],
            [1, 2, 2, 3, 4]
        );
    }

    #[test]
    fn field_paths_from_offsets() {
        let text = "seed = 1\n[load]\nconcurrency = 0\n[[workload]]\nmodel = \"a\"\n[[workload]]\nbad = 1\n";
        assert_eq!(
            field_at(text, text.find("concurrency").unwrap()),
            "load.concurrency"
        );
        assert_eq!(field_at(text, text.find("bad").unwrap()), "workload[1].bad");
        assert_eq!(field_at(text, 0), "seed");
        assert_eq!(field_at(text, text.find("[load]").unwrap()), "load");
    }
}
