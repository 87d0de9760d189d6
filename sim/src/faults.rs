//! Injected faults, seeded and deterministic: configuration rules become a
//! [`FaultPlan`] that decides, from a request's sequence numbers, its start
//! time and its seeded RNG, which faults apply to it and at which point.
//!
//! A rule (`[[faults]]`) has a `kind` and selectors; a request is selected
//! when every selector given matches:
//! * `requests = [from, to]`: sequence number in `from..to` (half-open);
//! * `every = n`: the n-th, 2n-th ... request (sequence `n−1`, `2n−1`, ...);
//! * `rate = p`: with probability p, drawn from the request's seeded RNG;
//! * `from_s`/`until_s`: the request started in that span of run time;
//! * `model = "id"`: only that base model, and then `requests`/`every`
//!   count that model's requests instead of all requests.
//!
//! Kinds: `internal_server` (500), `service_unavailable` (503),
//! `model_timeout` (408), `model_not_ready` (429), `throttling` (429),
//! `model_stream_error` (424, in-stream) answer with an error before the
//! headers, or, with `at_token = n`, as an in-stream exception after n output
//! tokens; `reset` closes the connection (before headers, or after
//! `at_token` tokens); `stall` pauses a stream `seconds` at `at_token`
//! (default 0); `slow_headers` delays the response headers by `seconds`;
//! `stall_window` holds every token due in `from_s..until_s` of run time
//! until `until_s` ("all streams stall from 10 s to 12 s").
//!
//! Examples: `{ kind = "service_unavailable", requests = [100, 110] }`,
//! `{ kind = "stall", every = 50, at_token = 5, seconds = 2.0 }`,
//! `{ kind = "stall_window", from_s = 10.0, until_s = 12.0 }`.

use std::time::Duration;

use quarry_bedrock::{ErrorCode, messages};
use rand::Rng;
use serde::Deserialize;

use crate::catalog::{Catalog, ModelIdx};
use crate::field::{FieldError, Seg, field_error};
use crate::text::{RequestSeed, RngStream};

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500 InternalServerException.
    InternalServer,
    /// 503 ServiceUnavailableException.
    ServiceUnavailable,
    /// 408 ModelTimeoutException.
    ModelTimeout,
    /// 429 ModelNotReadyException.
    ModelNotReady,
    /// 429 ThrottlingException, regardless of quotas.
    Throttling,
    /// 424 ModelStreamErrorException (in-stream only).
    ModelStreamError,
    /// The connection is reset.
    Reset,
    /// The stream pauses.
    Stall,
    /// The response headers are delayed.
    SlowHeaders,
    /// Every stream pauses during a span of run time.
    StallWindow,
}

impl FaultKind {
    /// The error this kind answers with, if it is an error.
    fn error(self) -> Option<InjectedError> {
        let (code, message) = match self {
            FaultKind::InternalServer => (
                ErrorCode::InternalServerException,
                "The server encountered an internal error while processing the request.",
            ),
            FaultKind::ServiceUnavailable => (
                ErrorCode::ServiceUnavailableException,
                messages::SERVICE_UNAVAILABLE,
            ),
            FaultKind::ModelTimeout => (
                ErrorCode::ModelTimeoutException,
                "Model has timed out in processing the request. Try your request again.",
            ),
            FaultKind::ModelNotReady => (
                ErrorCode::ModelNotReadyException,
                "Model is not ready to serve inference requests. Try again later.",
            ),
            FaultKind::Throttling => (ErrorCode::ThrottlingException, messages::TOO_MANY_TOKENS),
            FaultKind::ModelStreamError => (
                ErrorCode::ModelStreamErrorException,
                messages::MODEL_STREAM_ERROR,
            ),
            _ => return None,
        };
        Some(InjectedError { code, message })
    }
}

/// One `[[faults]]` rule as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What happens.
    pub kind: FaultKind,
    /// Only requests to this base model (and count that model's requests).
    pub model: Option<String>,
    /// Probability per request.
    pub rate: Option<f64>,
    /// Sequence numbers `[from, to)`.
    pub requests: Option<[u64; 2]>,
    /// Every n-th request.
    pub every: Option<u64>,
    /// Output tokens sent before the fault (in-stream faults).
    pub at_token: Option<u64>,
    /// Stall or header delay, seconds.
    pub seconds: Option<f64>,
    /// Run time (s) from which requests are selected / the window starts.
    pub from_s: Option<f64>,
    /// Run time (s) until which requests are selected / the window ends.
    pub until_s: Option<f64>,
}

impl FaultRule {
    /// Checks ranges and references; `path` locates the rule for errors.
    pub(crate) fn check(&self, path: Vec<Seg>, catalog: &Catalog) -> Result<(), FieldError> {
        let at = |k: &str| {
            let mut p = path.clone();
            p.push(Seg::Key(k.to_owned()));
            p
        };
        if let Some(m) = &self.model
            && catalog.find(m).is_none()
        {
            return Err(field_error(
                at("model"),
                "names a model that is not in the catalog",
            ));
        }
        if let Some(r) = self.rate
            && !(0.0..=1.0).contains(&r)
        {
            return Err(field_error(
                at("rate"),
                format!("must be in [0, 1], got {r}"),
            ));
        }
        if let Some([from, to]) = self.requests
            && from >= to
        {
            return Err(field_error(
                at("requests"),
                format!("must be [from, to) with from < to, got [{from}, {to}]"),
            ));
        }
        if self.every == Some(0) {
            return Err(field_error(at("every"), "must be >= 1, got 0"));
        }
        let needs_seconds = matches!(self.kind, FaultKind::Stall | FaultKind::SlowHeaders);
        match self.seconds {
            Some(s) if !(s.is_finite() && s >= 0.0) => {
                return Err(field_error(at("seconds"), format!("must be >= 0, got {s}")));
            }
            None if needs_seconds => {
                return Err(field_error(at("seconds"), "is required for this kind"));
            }
            _ => {}
        }
        for (name, v) in [("from_s", self.from_s), ("until_s", self.until_s)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(field_error(at(name), format!("must be >= 0, got {v}")));
            }
        }
        if self.kind == FaultKind::StallWindow {
            let (Some(from), Some(until)) = (self.from_s, self.until_s) else {
                return Err(field_error(
                    at("until_s"),
                    "stall_window needs from_s and until_s",
                ));
            };
            if from >= until {
                return Err(field_error(
                    at("until_s"),
                    format!("must be > from_s, got {until} <= {from}"),
                ));
            }
        }
        if self.at_token.is_some() && self.kind == FaultKind::SlowHeaders {
            return Err(field_error(
                at("at_token"),
                "does not apply to slow_headers",
            ));
        }
        Ok(())
    }
}

/// An error response to send instead of (or inside) the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedError {
    /// The error code (status via [`ErrorCode::status`]).
    pub code: ErrorCode,
    /// The message text.
    pub message: &'static str,
}

/// What happens before the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFault {
    /// Answer with this error.
    Error(InjectedError),
    /// Close the connection without answering.
    Reset,
}

/// What happens inside a stream, after some output tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFaultKind {
    /// Send an exception frame and end the stream.
    Exception(InjectedError),
    /// Close the connection mid-stream.
    Reset,
    /// Pause before the next token.
    Stall(Duration),
}

/// An in-stream fault and where it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFault {
    /// Output tokens sent before it.
    pub at_token: u64,
    /// What happens.
    pub kind: StreamFaultKind,
}

/// Every fault that applies to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultDecision {
    /// Delay before the response headers.
    pub slow_headers: Option<Duration>,
    /// An error or reset instead of a response.
    pub before_headers: Option<HeaderFault>,
    /// In-stream faults, by `at_token`.
    pub in_stream: Vec<StreamFault>,
}

impl FaultDecision {
    /// True when nothing happens to the request.
    pub fn is_empty(&self) -> bool {
        self.slow_headers.is_none() && self.before_headers.is_none() && self.in_stream.is_empty()
    }
}

/// The facts about a request that fault selection looks at.
#[derive(Debug, Clone, Copy)]
pub struct FaultContext {
    /// Per-request seed (its sequence is the global sequence number).
    pub seed: RequestSeed,
    /// The base model.
    pub model: ModelIdx,
    /// The request's sequence number among that model's requests.
    pub model_sequence: u64,
    /// Run time when the request started.
    pub elapsed: Duration,
}

/// A resolved rule.
#[derive(Debug, Clone)]
struct PlannedRule {
    rule: FaultRule,
    model: Option<ModelIdx>,
}

/// The fault rules of a run, ready to decide.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    rules: Vec<PlannedRule>,
    /// `stall_window` spans, `(from, until)`.
    windows: Vec<(Duration, Duration)>,
}

impl FaultPlan {
    /// Builds the plan from validated rules; model names resolve in `catalog`
    /// (rules naming unknown models never match).
    pub fn new(rules: &[FaultRule], catalog: &Catalog) -> Self {
        let mut plan = FaultPlan::default();
        for rule in rules {
            if rule.kind == FaultKind::StallWindow {
                let from = Duration::from_secs_f64(rule.from_s.unwrap_or(0.0));
                let until = Duration::from_secs_f64(rule.until_s.unwrap_or(0.0));
                plan.windows.push((from, until));
                continue;
            }
            let model = match &rule.model {
                Some(id) => match catalog.find(id) {
                    Some(idx) => Some(idx),
                    None => continue,
                },
                None => None,
            };
            plan.rules.push(PlannedRule {
                rule: rule.clone(),
                model,
            });
        }
        plan
    }

    /// True when no rule can ever fire (the server may skip `decide`).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.windows.is_empty()
    }

    /// The faults that apply to a request. Same inputs, same answer.
    pub fn decide(&self, ctx: &FaultContext) -> FaultDecision {
        let mut out = FaultDecision::default();
        if self.rules.is_empty() {
            return out;
        }
        let mut rng = ctx.seed.rng(RngStream::Faults);
        for planned in &self.rules {
            let r = &planned.rule;
            // Draw for every rate rule so one rule's draw never shifts another's.
            let draw: f64 = if r.rate.is_some() { rng.random() } else { 0.0 };
            if !selects(planned, ctx, draw) {
                continue;
            }
            let seconds = Duration::from_secs_f64(r.seconds.unwrap_or(0.0));
            match (r.kind, r.at_token, r.kind.error()) {
                (FaultKind::SlowHeaders, _, _) => {
                    out.slow_headers.get_or_insert(seconds);
                }
                (FaultKind::Stall, at, _) => out.in_stream.push(StreamFault {
                    at_token: at.unwrap_or(0),
                    kind: StreamFaultKind::Stall(seconds),
                }),
                (FaultKind::Reset, None, _) => {
                    out.before_headers.get_or_insert(HeaderFault::Reset);
                }
                (FaultKind::Reset, Some(at), _) => out.in_stream.push(StreamFault {
                    at_token: at,
                    kind: StreamFaultKind::Reset,
                }),
                (FaultKind::ModelStreamError, at, Some(e)) => out.in_stream.push(StreamFault {
                    at_token: at.unwrap_or(0),
                    kind: StreamFaultKind::Exception(e),
                }),
                (_, None, Some(e)) => {
                    out.before_headers.get_or_insert(HeaderFault::Error(e));
                }
                (_, Some(at), Some(e)) => out.in_stream.push(StreamFault {
                    at_token: at,
                    kind: StreamFaultKind::Exception(e),
                }),
                (_, _, None) => {}
            }
        }
        out.in_stream.sort_by_key(|f| f.at_token);
        out
    }

    /// When run time `elapsed` falls in a `stall_window`, the run time at
    /// which the window ends: a token due now must wait until then.
    pub fn stall_until(&self, elapsed: Duration) -> Option<Duration> {
        self.windows
            .iter()
            .filter(|(from, until)| (*from..*until).contains(&elapsed))
            .map(|(_, until)| *until)
            .max()
    }
}

fn selects(planned: &PlannedRule, ctx: &FaultContext, draw: f64) -> bool {
    let r = &planned.rule;
    if planned.model.is_some_and(|m| m != ctx.model) {
        return false;
    }
    let seq = if planned.model.is_some() {
        ctx.model_sequence
    } else {
        ctx.seed.sequence
    };
    let t = ctx.elapsed.as_secs_f64();
    r.requests
        .is_none_or(|[from, to]| (from..to).contains(&seq))
        && r.every.is_none_or(|n| (seq + 1) % n == 0)
        && r.rate.is_none_or(|p| draw < p)
        && r.from_s.is_none_or(|from| t >= from)
        && r.until_s.is_none_or(|until| t < until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    fn plan(toml_rules: &str) -> (FaultPlan, Catalog) {
        let config = SimConfig::from_toml(toml_rules, "sim.toml").unwrap();
        let catalog = config.catalog().unwrap();
        (FaultPlan::new(&config.faults, &catalog), catalog)
    }

    fn ctx(seed: u64, seq: u64, secs: f64) -> FaultContext {
        FaultContext {
            seed: RequestSeed {
                seed,
                sequence: seq,
            },
            model: ModelIdx(0),
            model_sequence: seq,
            elapsed: Duration::from_secs_f64(secs),
        }
    }

    #[test]
    fn schedules_hit_exactly_the_requests_named() {
        let (p, _) = plan(
            "[[faults]]\nkind = \"service_unavailable\"\nrequests = [100, 110]\n\
             [[faults]]\nkind = \"stall\"\nevery = 50\nat_token = 5\nseconds = 2.0\n",
        );
        let hit: Vec<u64> = (0..200)
            .filter(|&s| p.decide(&ctx(1, s, 0.0)).before_headers.is_some())
            .collect();
        assert_eq!(hit, (100..110).collect::<Vec<_>>());
        let e = p.decide(&ctx(1, 100, 0.0)).before_headers.unwrap();
        assert_eq!(
            e,
            HeaderFault::Error(InjectedError {
                code: ErrorCode::ServiceUnavailableException,
                message: "Bedrock is unable to process your request."
            })
        );
        let stalls: Vec<u64> = (0..200)
            .filter(|&s| !p.decide(&ctx(1, s, 0.0)).in_stream.is_empty())
            .collect();
        assert_eq!(stalls, vec![49, 99, 149, 199]);
        assert_eq!(
            p.decide(&ctx(1, 49, 0.0)).in_stream,
            vec![StreamFault {
                at_token: 5,
                kind: StreamFaultKind::Stall(Duration::from_secs(2))
            }]
        );
    }

    #[test]
    fn rates_are_deterministic_per_seed_and_near_the_rate() {
        let (p, _) = plan("[[faults]]\nkind = \"internal_server\"\nrate = 0.1\n");
        let run = |seed| -> Vec<bool> {
            (0..5000)
                .map(|s| p.decide(&ctx(seed, s, 0.0)).before_headers.is_some())
                .collect()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let hits = a.iter().filter(|h| **h).count();
        assert!((400..600).contains(&hits), "{hits}");
    }

    #[test]
    fn mid_stream_reset_slow_headers_and_windows() {
        let (p, _) = plan(
            "[[faults]]\nkind = \"throttling\"\nrequests = [0, 1]\nat_token = 3\n\
             [[faults]]\nkind = \"reset\"\nrequests = [1, 2]\n\
             [[faults]]\nkind = \"slow_headers\"\nseconds = 1.5\nfrom_s = 5.0\n\
             [[faults]]\nkind = \"stall_window\"\nfrom_s = 10.0\nuntil_s = 12.0\n",
        );
        let d = p.decide(&ctx(1, 0, 0.0));
        assert_eq!(d.in_stream[0].at_token, 3);
        assert!(
            matches!(d.in_stream[0].kind, StreamFaultKind::Exception(e) if e.code == ErrorCode::ThrottlingException)
        );
        assert_eq!(
            p.decide(&ctx(1, 1, 0.0)).before_headers,
            Some(HeaderFault::Reset)
        );
        assert!(p.decide(&ctx(1, 2, 4.0)).is_empty());
        assert_eq!(
            p.decide(&ctx(1, 2, 6.0)).slow_headers,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            p.stall_until(Duration::from_secs(11)),
            Some(Duration::from_secs(12))
        );
        assert_eq!(p.stall_until(Duration::from_secs(12)), None);
    }

    #[test]
    fn per_model_rules_count_that_models_requests() {
        let (p, catalog) = plan(
            "[[faults]]\nkind = \"model_timeout\"\nmodel = \"amazon.nova-lite-v1:0\"\nrequests = [0, 1]\n",
        );
        let nova = catalog.find("amazon.nova-lite-v1:0").unwrap();
        let mut c = ctx(1, 500, 0.0);
        assert!(p.decide(&c).is_empty(), "another model");
        c.model = nova;
        c.model_sequence = 0;
        assert!(
            matches!(p.decide(&c).before_headers, Some(HeaderFault::Error(e)) if e.code.status() == 408)
        );
    }

    #[test]
    fn bad_rules_are_named() {
        let err = SimConfig::from_toml(
            "[[faults]]\nkind = \"stall\"\nrate = 1.5\nseconds = 1.0\n",
            "sim.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:3: faults[0].rate must be in [0, 1], got 1.5"
        );
        let err = SimConfig::from_toml("[[faults]]\nkind = \"stall\"\n", "sim.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:1: faults[0].seconds is required for this kind"
        );
    }
}
