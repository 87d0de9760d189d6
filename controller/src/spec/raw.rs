//! The spec file as written: every field optional and spanned, so validation
//! can report what is missing or wrong with its line, and report all of it.
//!
//! Integers are read as `i64` and checked in validation, so the message can say
//! "must be >= 1, got 0" instead of serde's "invalid value".

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The whole spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub(crate) seed: Option<Spanned<i64>>,
    pub(crate) target: Option<Spanned<RawTarget>>,
    pub(crate) load: Option<Spanned<RawLoad>>,
    pub(crate) workload: Option<Spanned<Vec<Spanned<RawMixEntry>>>>,
    pub(crate) retry: Option<Spanned<RawRetry>>,
    pub(crate) timeouts: Option<Spanned<RawTimeouts>>,
    pub(crate) pricing: Option<BTreeMap<String, Spanned<RawPrices>>>,
    pub(crate) tier_pricing: Option<Spanned<RawTierPricing>>,
    pub(crate) thresholds: Option<BTreeMap<String, Spanned<RawThreshold>>>,
    pub(crate) agents: Option<Spanned<super::agents::RawAgents>>,
    pub(crate) telemetry: Option<Spanned<super::telemetry::RawTelemetry>>,
    pub(crate) sweep: Option<Spanned<super::sweep::RawSweep>>,
    pub(crate) slo: Option<Spanned<super::sweep::RawSlo>>,
    pub(crate) sessions: Option<Spanned<super::sessions::RawSessions>>,
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub(crate) kind: Option<Spanned<String>>,
    pub(crate) region: Option<Spanned<String>>,
    pub(crate) endpoint: Option<Spanned<String>>,
    pub(crate) profile: Option<Spanned<String>>,
    pub(crate) sim_profile: Option<Spanned<String>>,
}

/// `[load]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    pub(crate) concurrency: Option<Spanned<i64>>,
    pub(crate) rate: Option<Spanned<f64>>,
    pub(crate) arrival: Option<Spanned<String>>,
    pub(crate) max_in_flight: Option<Spanned<i64>>,
    pub(crate) drop_late_after: Option<Spanned<String>>,
    pub(crate) duration: Option<Spanned<String>>,
    pub(crate) requests: Option<Spanned<i64>>,
    pub(crate) warmup: Option<Spanned<String>>,
    pub(crate) cooldown: Option<Spanned<String>>,
    pub(crate) stages: Option<Vec<Spanned<RawStage>>>,
    pub(crate) on_throttle: Option<Spanned<RawOnThrottle>>,
    pub(crate) replay: Option<Spanned<String>>,
    pub(crate) speed: Option<Spanned<f64>>,
    pub(crate) from: Option<Spanned<String>>,
    pub(crate) to: Option<Spanned<String>>,
    pub(crate) scale: Option<Spanned<f64>>,
    pub(crate) skip_bad: Option<Spanned<bool>>,
}

/// `on_throttle = "none" | "backoff"` or `on_throttle = { think = "1s" }`.
#[derive(Debug)]
pub(crate) enum RawOnThrottle {
    Name(String),
    Table(RawThink),
}

/// The table form of `on_throttle`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThink {
    pub(crate) think: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawOnThrottle {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawOnThrottle;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"none\", \"backoff\" or a table like { think = \"1s\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawOnThrottle, E> {
                Ok(RawOnThrottle::Name(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawOnThrottle, A::Error> {
                RawThink::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawOnThrottle::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[load.stages]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) kind: Option<Spanned<String>>,
    pub(crate) duration: Option<Spanned<String>>,
    pub(crate) target: Option<Spanned<f64>>,
}

/// `[[workload]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMixEntry {
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) model: Option<Spanned<String>>,
    pub(crate) operation: Option<Spanned<String>>,
    pub(crate) input_tokens: Option<Spanned<RawTokens>>,
    pub(crate) max_tokens: Option<Spanned<i64>>,
    pub(crate) system_prompt: Option<Spanned<String>>,
    pub(crate) cache_prefix_tokens: Option<Spanned<i64>>,
    pub(crate) cache_ttl: Option<Spanned<String>>,
    pub(crate) nonce: Option<Spanned<bool>>,
    pub(crate) temperature: Option<Spanned<f64>>,
    pub(crate) service_tier: Option<Spanned<String>>,
}

/// `input_tokens = 800` or `input_tokens = { dist = "lognormal", ... }`.
#[derive(Debug)]
pub(crate) enum RawTokens {
    Fixed(i64),
    Table(RawTokenTable),
}

/// The table form of `input_tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenTable {
    pub(crate) dist: Option<Spanned<String>>,
    pub(crate) tokens: Option<Spanned<i64>>,
    pub(crate) mean: Option<Spanned<f64>>,
    pub(crate) stddev: Option<Spanned<f64>>,
    pub(crate) min: Option<Spanned<i64>>,
    pub(crate) max: Option<Spanned<i64>>,
}

impl<'de> Deserialize<'de> for RawTokens {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count or a table like { dist = \"lognormal\", mean = 800, stddev = 300 }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTokens, E> {
                Ok(RawTokens::Fixed(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTokens, E> {
                Ok(RawTokens::Fixed(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTokens, A::Error> {
                RawTokenTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTokens::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) max_attempts: Option<Spanned<i64>>,
    pub(crate) initial_backoff: Option<Spanned<String>>,
    pub(crate) max_backoff: Option<Spanned<String>>,
}

/// `[timeouts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) connect: Option<Spanned<String>>,
    pub(crate) request: Option<Spanned<String>>,
    pub(crate) first_token: Option<Spanned<String>>,
}

/// `[pricing."model-id"]`, USD per 1M tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrices {
    pub(crate) input: Option<Spanned<f64>>,
    pub(crate) output: Option<Spanned<f64>>,
    pub(crate) cache_write_5m: Option<Spanned<f64>>,
    pub(crate) cache_write_1h: Option<Spanned<f64>>,
    pub(crate) cache_read: Option<Spanned<f64>>,
}

/// `[tier_pricing]`: each tier's price as a multiple of the Standard price.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTierPricing {
    pub(crate) priority: Option<Spanned<f64>>,
    pub(crate) default: Option<Spanned<f64>>,
    pub(crate) flex: Option<Spanned<f64>>,
    pub(crate) reserved: Option<Spanned<f64>>,
}

/// A `[thresholds]` value: a condition, a list of them, or (for a bare dotted
/// key such as `ttft.p99 = "< 2s"`, which TOML reads as nested tables) a table.
#[derive(Debug)]
pub(crate) enum RawThreshold {
    One(String),
    Many(Vec<Spanned<String>>),
    Nested(BTreeMap<String, Spanned<RawThreshold>>),
}

impl<'de> Deserialize<'de> for RawThreshold {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawThreshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a condition like \"< 2s\" or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawThreshold, E> {
                Ok(RawThreshold::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawThreshold, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(RawThreshold::Many(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawThreshold, A::Error> {
                let mut nested = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<Spanned<RawThreshold>>()?;
                    nested.insert(key, value);
                }
                Ok(RawThreshold::Nested(nested))
            }
        }
        d.deserialize_any(V)
    }
}
