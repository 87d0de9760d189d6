//! Validation of `[[workload]]` entries into a [`WorkloadMix`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use quarry_bedrock::{ModelId, Operation};
use quarry_engine::{
    CachePrefix, CacheTtl, MAX_INPUT_TOKENS, MixEntry, ModelPrices, PriceTable, PromptCacheSupport,
    TokenDistribution, WorkloadMix, prompt_cache_support,
};
use toml::Spanned;

use super::raw::{RawMixEntry, RawTokenTable, RawTokens};
use super::validate::Checker;

/// Largest `max_tokens` accepted: above every Bedrock model's output limit
/// (64K for Claude 3.7/4.x), low enough to catch a typo.
const MAX_OUTPUT_TOKENS: i64 = 1_000_000;

/// The model-id check: non-empty, at most 2048 characters (the service
/// model's limit), characters from `[a-zA-Z0-9._:/-]`, then the bedrock
/// crate's full grammar (§1.3) — the same parse the executor does when a
/// run starts, so `quarry validate` accepts exactly what `quarry run` does.
pub fn check_model_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("model id must not be empty".to_owned());
    }
    if id.len() > 2048 {
        return Err(format!(
            "model id is {} characters long; at most 2048 are allowed",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:/-".contains(*c)))
    {
        return Err(format!(
            "model id {id:?} contains {bad:?}: allowed are letters, digits and . _ : / -"
        ));
    }
    ModelId::parse(id).map(|_| ()).map_err(|e| e.to_string())
}

/// Validates every entry and the mix as a whole; `None` on any error.
pub(crate) fn validate_mix(
    c: &mut Checker,
    w: &Spanned<Vec<Spanned<RawMixEntry>>>,
) -> Option<WorkloadMix> {
    let mut entries = Vec::new();
    let mut ok = true;
    for (i, e) in w.get_ref().iter().enumerate() {
        match entry(c, i, e) {
            Some(entry) => entries.push(entry),
            None => ok = false,
        }
    }
    if w.get_ref().is_empty() {
        c.error(w, "workload", "at least one [[workload]] entry is required");
        return None;
    }
    if !ok {
        return None;
    }
    match WorkloadMix::new(entries) {
        Ok(mix) => Some(mix),
        Err(e) => {
            let at = w.get_ref().first().map_or(w.span(), Spanned::span);
            c.error_at(Some(at), "workload", e.to_string());
            None
        }
    }
}

fn entry(c: &mut Checker, i: usize, e: &Spanned<RawMixEntry>) -> Option<MixEntry> {
    let raw = e.get_ref();
    let field = |name: &str| format!("workload[{i}].{name}");
    let weight = match &raw.weight {
        None => Some(1),
        Some(w) => c
            .int_in(w, &field("weight"), 0, i64::from(u32::MAX))
            .map(|w| w as u32),
    };
    let model = model(c, &field("model"), e);
    let operation = match &raw.operation {
        None => Some(Operation::ConverseStream),
        Some(o) => o
            .get_ref()
            .parse::<Operation>()
            .map_err(|err| c.error(o, field("operation"), err.to_string()))
            .ok(),
    };
    let input_tokens = match &raw.input_tokens {
        None => {
            c.missing(
                e,
                &field("input_tokens"),
                " (a count, or { dist = \"lognormal\", mean = 800, stddev = 300 })",
            );
            None
        }
        Some(t) => tokens(c, &field("input_tokens"), t),
    };
    let max_tokens = max_tokens(c, &field("max_tokens"), e);
    let temperature = match &raw.temperature {
        Some(t) if !(0.0..=1.0).contains(t.get_ref()) => {
            c.error(
                t,
                field("temperature"),
                format!("must be between 0 and 1, got {}", t.get_ref()),
            );
            None
        }
        other => Some(other.as_ref().map(|t| *t.get_ref() as f32)),
    };
    // The native operations need the model's family for their body (as the
    // executor does when a run starts); Converse bodies are the same for all.
    if let (Some(id), Some(op)) = (&model, operation)
        && op.is_native()
        && ModelId::parse(id).is_ok_and(|m| m.family().is_none())
        && let Some(m) = &raw.model
    {
        c.error(
            m,
            field("model"),
            format!(
                "{op} needs a model family quarry knows the native body of; {id:?} has none (use Converse or ConverseStream)"
            ),
        );
    }
    let system_prompt = raw.system_prompt.as_ref().map(|s| s.get_ref().clone());
    let cache = cache(c, i, raw, model.as_deref());
    let service_tier = match &raw.service_tier {
        None => Some(None),
        Some(t) => match quarry_bedrock::ServiceTierType::parse(t.get_ref()) {
            None => {
                c.error(
                    t,
                    field("service_tier"),
                    format!(
                        "must be \"priority\", \"default\", \"flex\" or \"reserved\", got {:?}",
                        t.get_ref()
                    ),
                );
                None
            }
            Some(_) if operation == Some(Operation::CountTokens) => {
                c.error(
                    t,
                    field("service_tier"),
                    "CountTokens takes no service tier (only Converse, ConverseStream and InvokeModel and its stream do)",
                );
                None
            }
            Some(tier) => Some(Some(tier)),
        },
    };
    Some(MixEntry {
        weight: weight?,
        model_id: model?,
        operation: operation?,
        input_tokens: input_tokens?,
        max_tokens: max_tokens?,
        system_prompt,
        cache: cache?,
        nonce: raw.nonce.as_ref().is_none_or(|n| *n.get_ref()),
        temperature: temperature?,
        service_tier: service_tier?,
    })
}

fn model(c: &mut Checker, field: &str, e: &Spanned<RawMixEntry>) -> Option<String> {
    let Some(m) = &e.get_ref().model else {
        let example = " (a Bedrock model id, e.g. \"meta.llama3-3-70b-instruct-v1:0\")";
        c.missing(e, field, example);
        return None;
    };
    match check_model_id(m.get_ref()) {
        Ok(()) => Some(m.get_ref().clone()),
        Err(msg) => {
            c.error(m, field, msg);
            None
        }
    }
}

fn max_tokens(c: &mut Checker, field: &str, e: &Spanned<RawMixEntry>) -> Option<NonZeroU32> {
    let Some(m) = &e.get_ref().max_tokens else {
        let why = ": Bedrock reserves max_tokens against the TPM quota at admission, \
                   and the model maximum when unset";
        c.missing(e, field, why);
        return None;
    };
    c.int_in(m, field, 1, MAX_OUTPUT_TOKENS)
        .and_then(|m| NonZeroU32::new(m as u32))
}

fn cache(
    c: &mut Checker,
    i: usize,
    raw: &RawMixEntry,
    model: Option<&str>,
) -> Option<Option<CachePrefix>> {
    let field = |name: &str| format!("workload[{i}].{name}");
    let ttl = match raw.cache_ttl.as_ref().map(|t| (t, t.get_ref().as_str())) {
        None | Some((_, "5m")) => Some(CacheTtl::FiveMinutes),
        Some((_, "1h")) => Some(CacheTtl::OneHour),
        Some((t, other)) => {
            c.error(
                t,
                field("cache_ttl"),
                format!("unknown cache TTL {other:?}: expected \"5m\" or \"1h\""),
            );
            None
        }
    };
    let Some(tokens) = &raw.cache_prefix_tokens else {
        if let Some(t) = &raw.cache_ttl {
            c.error(
                t,
                field("cache_ttl"),
                "only applies with cache_prefix_tokens",
            );
            return None;
        }
        return Some(None);
    };
    let n = c.int_in(
        tokens,
        &field("cache_prefix_tokens"),
        1,
        i64::from(MAX_INPUT_TOKENS),
    )? as u32;
    let ttl = ttl?;
    let model = model?;
    match prompt_cache_support(model) {
        PromptCacheSupport::Unsupported => {
            c.error(tokens, field("cache_prefix_tokens"), format!("model {model:?} does not support prompt caching (PROTOCOL.md §5.8)"));
            return None;
        }
        PromptCacheSupport::Unknown => c.warn(
            tokens,
            field("cache_prefix_tokens"),
            format!("cannot tell from {model:?} whether the model supports prompt caching; the run will show it"),
        ),
        PromptCacheSupport::Supported { min_tokens, one_hour_ttl } => {
            if ttl == CacheTtl::OneHour && !one_hour_ttl {
                let at = raw.cache_ttl.as_ref().map_or(tokens.span(), Spanned::span);
                c.error_at(Some(at), field("cache_ttl"), format!("model {model:?} does not support the 1h cache TTL (PROTOCOL.md §5.8)"));
                return None;
            }
            if let Some(min) = min_tokens.filter(|&m| n < m) {
                c.warn(tokens, field("cache_prefix_tokens"), format!("{n} is below {model:?}'s minimum of {min} tokens per cache checkpoint: Bedrock silently ignores the cachePoint"));
            }
        }
    }
    // n >= 1 was checked above, so the MIN fallback is never taken.
    Some(Some(CachePrefix {
        tokens: NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
        ttl,
    }))
}

pub(super) fn tokens(
    c: &mut Checker,
    field: &str,
    t: &Spanned<RawTokens>,
) -> Option<TokenDistribution> {
    let dist = match t.get_ref() {
        RawTokens::Fixed(n) => {
            let n = c.int_in(
                &Spanned::new(t.span(), *n),
                field,
                1,
                i64::from(MAX_INPUT_TOKENS),
            )?;
            return Some(TokenDistribution::Fixed { tokens: n as u32 });
        }
        RawTokens::Table(table) => table_dist(c, field, t, table)?,
    };
    match dist.check() {
        Ok(()) => Some(dist),
        Err(reason) => {
            c.error(t, field, reason);
            None
        }
    }
}

fn table_dist(
    c: &mut Checker,
    field: &str,
    at: &Spanned<RawTokens>,
    raw: &RawTokenTable,
) -> Option<TokenDistribution> {
    let d = DistTable { field, at, raw };
    let Some(name) = &raw.dist else {
        let expected = ": \"fixed\", \"uniform\", \"normal\" or \"lognormal\"";
        c.missing(at, &d.part("dist"), expected);
        return None;
    };
    match name.get_ref().as_str() {
        "fixed" => {
            d.reject(c, &["mean", "stddev", "min", "max"], "fixed");
            let tokens = d.count(c, &raw.tokens, "tokens")?;
            Some(TokenDistribution::Fixed {
                tokens: d.required(c, tokens, "tokens", "fixed")?,
            })
        }
        "uniform" => {
            d.reject(c, &["mean", "stddev", "tokens"], "uniform");
            let min = d
                .count(c, &raw.min, "min")
                .map(|m| d.required(c, m, "min", "uniform"));
            let max = d
                .count(c, &raw.max, "max")
                .map(|m| d.required(c, m, "max", "uniform"));
            Some(TokenDistribution::Uniform {
                min: min??,
                max: max??,
            })
        }
        dist @ ("normal" | "lognormal") => {
            d.reject(c, &["tokens"], dist);
            let mean = d.required(c, raw.mean.as_ref().map(|m| *m.get_ref()), "mean", dist);
            let stddev = d.required(c, raw.stddev.as_ref().map(|s| *s.get_ref()), "stddev", dist);
            let (min, max) = (d.count(c, &raw.min, "min")?, d.count(c, &raw.max, "max")?);
            let (mean, stddev, min) = (mean?, stddev?, min.unwrap_or(1));
            Some(bell(dist, mean, stddev, min, max, MAX_INPUT_TOKENS))
        }
        other => {
            let msg = format!(
                "unknown distribution {other:?}: expected \"fixed\", \"uniform\", \"normal\" or \"lognormal\""
            );
            c.error(name, d.part("dist"), msg);
            None
        }
    }
}

/// A `"normal"` (else log-normal) distribution clamped to `[min, max]`;
/// without a `max`, six standard deviations above the mean, within
/// `[min, cap]`.
pub(super) fn bell(
    dist: &str,
    mean: f64,
    stddev: f64,
    min: u32,
    max: Option<u32>,
    cap: u32,
) -> TokenDistribution {
    let max = max.unwrap_or_else(|| {
        (mean + 6.0 * stddev)
            .ceil()
            .clamp(f64::from(min), f64::from(cap)) as u32
    });
    if dist == "normal" {
        TokenDistribution::Normal {
            mean,
            stddev,
            min,
            max,
        }
    } else {
        TokenDistribution::LogNormal {
            mean,
            stddev,
            min,
            max,
        }
    }
}

/// The table form of `input_tokens` while it is checked.
struct DistTable<'a> {
    /// Field path of `input_tokens`.
    field: &'a str,
    /// The table, for findings about missing parameters.
    at: &'a Spanned<RawTokens>,
    raw: &'a RawTokenTable,
}

impl DistTable<'_> {
    fn part(&self, name: &str) -> String {
        format!("{}.{name}", self.field)
    }

    /// A token-count parameter: `None` when invalid (error recorded),
    /// `Some(None)` when absent.
    fn count(&self, c: &mut Checker, v: &Option<Spanned<i64>>, name: &str) -> Option<Option<u32>> {
        match v {
            None => Some(None),
            Some(v) => c
                .int_in(v, &self.part(name), 1, i64::from(MAX_INPUT_TOKENS))
                .map(|n| Some(n as u32)),
        }
    }

    /// Records an error when a parameter `dist` needs is absent.
    fn required<T>(&self, c: &mut Checker, v: Option<T>, name: &str, dist: &str) -> Option<T> {
        if v.is_none() {
            c.missing(self.at, &self.part(name), &format!(" for dist = {dist:?}"));
        }
        v
    }

    /// Records an error for each of `names` that is present but unused by `dist`.
    fn reject(&self, c: &mut Checker, names: &[&str], dist: &str) {
        let raw = self.raw;
        for name in names {
            let present = match *name {
                "tokens" => raw.tokens.is_some(),
                "mean" => raw.mean.is_some(),
                "stddev" => raw.stddev.is_some(),
                "min" => raw.min.is_some(),
                _ => raw.max.is_some(),
            };
            if present {
                let msg = format!("does not apply to dist = {dist:?}");
                c.error(self.at, self.part(name), msg);
            }
        }
    }
}

/// Warns about models the price table does not know: their cost is reported
/// as "no price" rather than guessed.
pub(crate) fn warn_unpriced(
    c: &mut Checker,
    raw: Option<&Spanned<Vec<Spanned<RawMixEntry>>>>,
    mix: &WorkloadMix,
    overrides: &BTreeMap<String, ModelPrices>,
) {
    let table = PriceTable::with_overrides(overrides.clone());
    let raw_entries = raw.map(|w| w.get_ref().as_slice()).unwrap_or_default();
    for (i, (entry, raw)) in mix.entries().iter().zip(raw_entries).enumerate() {
        if table.lookup(&entry.model_id).is_none()
            && let Some(m) = &raw.get_ref().model
        {
            c.warn(m, format!("workload[{i}].model"), format!("no price for {:?}: cost will be reported as \"no price\"; add [pricing.{:?}] to set one", entry.model_id, entry.model_id));
        }
    }
}
