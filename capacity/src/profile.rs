//! One request of a class on a model, as the quota and the bill see it: the
//! mean token usage (with or without prompt caching), the reservation at
//! admission, the settlement, and the price. The arithmetic is
//! `quarry_bedrock::quota`'s; this module only feeds it the class's means.

use quarry_bedrock::quota::{MeanUsage, mean_reservation, mean_settlement};

use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::input::{CacheTtl, TokenPrices};
use crate::models::{ModelInfo, model_info};
use crate::resolve::ResolvedClass;

/// Pico-USD to USD.
const USD_PER_PICO: f64 = 1e-12;

/// The mean request of a class on one model.
#[derive(Debug, Clone)]
pub(crate) struct RequestProfile {
    pub(crate) usage: MeanUsage,
    /// Quota tokens reserved at admission; `None` when `max_tokens` is unset
    /// and the model's output limit is unknown.
    pub(crate) reservation: Option<Figure>,
    /// True when `max_tokens` is unset and the model's limit is reserved.
    pub(crate) trap: bool,
    /// Quota tokens settled at the end.
    pub(crate) settlement: Figure,
    /// Prompt plus output tokens (what a model unit or a self-hosted server
    /// processes), no burndown.
    pub(crate) raw_tokens: Figure,
    /// USD per request at the on-demand Standard price; `None` if unpriced.
    pub(crate) cost: Option<Figure>,
}

/// The mean request of `class` on `model_id`, cached when `caching` and the
/// class has a cache profile with a hit ratio.
pub(crate) fn request_profile(
    ctx: &mut Ctx<'_>,
    class: &ResolvedClass,
    model_id: &str,
    caching: bool,
) -> RequestProfile {
    let info = model_info(ctx, model_id);
    let (input, output) = (&class.input_tokens, &class.output_tokens);
    let cache = class
        .cache
        .as_ref()
        .filter(|_| caching)
        .and_then(|c| c.hit_ratio.as_ref().map(|h| (c, h)));
    let mut basis: Vec<&Figure> = vec![input, output];
    if let Some((c, hit)) = cache {
        basis.extend([&c.prefix_tokens, hit]);
    }
    let usage = mean_usage(
        input.value,
        output.value,
        cache.map(|(c, h)| (c.prefix_tokens.value, h.value)),
    );
    // The reservation counts every prompt token, cached or not: it is taken
    // from the class's prompt size, not re-added from the caching split (whose
    // parts need not sum back to it to the last bit).
    let (reservation, trap) = reservation(ctx, class, model_id, &info, input.value, &basis);
    let settled_from: Vec<&Figure> = basis.iter().copied().chain([&info.burndown]).collect();
    let settlement = Figure::computed(
        mean_settlement(&usage, info.burndown.value),
        Unit::TokensPerRequest,
        format!(
            "input + cache writes + output × burndown {}",
            info.burndown.value
        ),
        settled_from,
    );
    let raw_tokens = Figure::computed(
        input.value + output.value,
        Unit::TokensPerRequest,
        "input + output tokens",
        [input, output],
    );
    let cost = info.prices.and_then(|(prices, source)| {
        let Some(usd) = request_cost(&usage, &prices, cache.map(|(c, _)| c.ttl)) else {
            ctx.missing(
                "cost",
                format!("{model_id} has no cache price: enter [pricing.{model_id:?}] cache_read and cache_write_5m/1h"),
            );
            return None;
        };
        let mut figure = Figure::computed(usd, Unit::UsdPerRequest, "tokens × prices per token", basis.iter().copied());
        figure.from.push(source);
        Some(figure)
    });
    RequestProfile {
        usage,
        reservation,
        trap,
        settlement,
        raw_tokens,
        cost,
    }
}

/// Mean usage of a request of `input` prompt and `output` tokens, with
/// `(prefix, hit ratio)` when its prefix is cached: reads are the hits'
/// prefixes, writes the misses', and billed input the rest.
fn mean_usage(input: f64, output: f64, cache: Option<(f64, f64)>) -> MeanUsage {
    match cache {
        Some((prefix, hit)) => {
            let prefix = prefix.min(input);
            MeanUsage {
                input_tokens: input - prefix,
                output_tokens: output,
                cache_read_input_tokens: hit * prefix,
                cache_write_input_tokens: (1.0 - hit) * prefix,
            }
        }
        None => MeanUsage {
            input_tokens: input,
            output_tokens: output,
            ..MeanUsage::default()
        },
    }
}

/// The reservation at admission, and whether it is the max_tokens trap (the
/// model's output limit reserved because requests send none).
fn reservation(
    ctx: &mut Ctx<'_>,
    class: &ResolvedClass,
    model_id: &str,
    info: &ModelInfo,
    prompt_tokens: f64,
    basis: &[&Figure],
) -> (Option<Figure>, bool) {
    let (reserved_output, trap) = match (&class.max_tokens, &info.max_output) {
        (Some(m), _) => (m, false),
        (None, Some(limit)) => (limit, true),
        (None, None) => {
            ctx.missing(
                "walls: TPM at admission",
                format!(
                    "class {} sends no max_tokens and {model_id}'s output limit is not known: enter {} or models.{model_id:?}.max_output_tokens",
                    class.name,
                    class.path("max_tokens")
                ),
            );
            return (None, true);
        }
    };
    let how = if trap {
        "input tokens (cached ones included) + the model's output limit (max_tokens unset)"
    } else {
        "input tokens (cached ones included) + max_tokens"
    };
    let from: Vec<&Figure> = basis.iter().copied().chain([reserved_output]).collect();
    let figure = Figure::computed(
        mean_reservation(
            &MeanUsage {
                input_tokens: prompt_tokens,
                ..MeanUsage::default()
            },
            reserved_output.value,
        ),
        Unit::TokensPerRequest,
        how,
        from,
    );
    (Some(figure), trap)
}

/// USD for the mean request; `None` when it uses a cache price the model
/// does not have.
fn request_cost(usage: &MeanUsage, p: &TokenPrices, ttl: Option<CacheTtl>) -> Option<f64> {
    let mut pico = usage.input_tokens * p.input as f64 + usage.output_tokens * p.output as f64;
    if usage.cache_read_input_tokens > 0.0 {
        pico += usage.cache_read_input_tokens * p.cache_read? as f64;
    }
    if usage.cache_write_input_tokens > 0.0 {
        let write = match ttl.unwrap_or_default() {
            CacheTtl::FiveMinutes => p.cache_write_5m?,
            CacheTtl::OneHour => p.cache_write_1h?,
        };
        pico += usage.cache_write_input_tokens * write as f64;
    }
    Some(pico * USD_PER_PICO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_of_a_cached_request() {
        // Haiku 4.5: $1 in, $5 out, $1.25 write (5m), $0.10 read per 1M.
        let p = TokenPrices {
            input: 1_000_000,
            output: 5_000_000,
            cache_write_5m: Some(1_250_000),
            cache_write_1h: Some(2_000_000),
            cache_read: Some(100_000),
        };
        let u = MeanUsage {
            input_tokens: 200.0,
            output_tokens: 100.0,
            cache_read_input_tokens: 800.0,
            cache_write_input_tokens: 200.0,
        };
        // 200 × 1 + 100 × 5 + 800 × 0.1 + 200 × 1.25 = 1,030 µ$ per 1M-tokens unit → $0.00103.
        let usd = request_cost(&u, &p, Some(CacheTtl::FiveMinutes)).unwrap();
        assert!((usd - 0.001_03).abs() < 1e-12);
        let no_cache = TokenPrices {
            cache_read: None,
            ..p
        };
        assert_eq!(
            request_cost(&u, &no_cache, Some(CacheTtl::FiveMinutes)),
            None
        );
    }
}
