//! What `quarry plan` adds to a parsed plan file before planning: the built-in
//! prices. The CLI copies them from the agent's price table; these tests use
//! the same figures (PROTOCOL.md §6, USD per 1M tokens, regional profiles of
//! Claude 4.5+ at +10%) for the models they plan, so the crate's tests need
//! no other crate.

#![allow(dead_code, unreachable_pub)]

use quarry_capacity::{PlanInput, TokenPrices};

/// USD per 1M tokens → pico-USD per token.
fn p(
    input: f64,
    output: f64,
    write_5m: Option<f64>,
    write_1h: Option<f64>,
    read: Option<f64>,
) -> TokenPrices {
    let pico = |usd: f64| (usd * 1e6).round() as u64;
    TokenPrices {
        input: pico(input),
        output: pico(output),
        cache_write_5m: write_5m.map(pico),
        cache_write_1h: write_1h.map(pico),
        cache_read: read.map(pico),
    }
}

/// PROTOCOL.md §6 prices of the models these tests plan, by exact id.
fn table(id: &str) -> Option<TokenPrices> {
    let base = id
        .split_once('.')
        .filter(|(geo, _)| ["us", "eu", "apac", "global"].contains(geo))
        .map_or(id, |(_, b)| b);
    let regional = id.starts_with("us.") || id.starts_with("eu.") || id.starts_with("apac.");
    let (prices, uplift) = match base {
        "anthropic.claude-opus-4-6-v1" => (p(5.0, 25.0, Some(6.25), Some(10.0), Some(0.5)), true),
        "anthropic.claude-sonnet-4-5-20250929-v1:0" => {
            (p(3.0, 15.0, Some(3.75), Some(6.0), Some(0.3)), true)
        }
        "anthropic.claude-haiku-4-5-20251001-v1:0" => {
            (p(1.0, 5.0, Some(1.25), Some(2.0), Some(0.1)), true)
        }
        "meta.llama3-3-70b-instruct-v1:0" => (p(0.72, 0.72, None, None, None), false),
        _ => return None,
    };
    if regional && uplift {
        let up = |x: u64| x * 11 / 10;
        return Some(TokenPrices {
            input: up(prices.input),
            output: up(prices.output),
            cache_write_5m: prices.cache_write_5m.map(up),
            cache_write_1h: prices.cache_write_1h.map(up),
            cache_read: prices.cache_read.map(up),
        });
    }
    Some(prices)
}

/// Fills the built-in prices the way the CLI does.
pub fn with_builtin_prices(mut input: PlanInput) -> PlanInput {
    for id in input.priced_model_ids() {
        if let Some(prices) = table(&id) {
            input.prices.builtin.insert(id, prices);
        }
    }
    input.prices.builtin_source =
        Some("PROTOCOL.md §6 (LiteLLM price map; verify before relying on it)".to_owned());
    input
}
