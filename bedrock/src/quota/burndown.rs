//! Output burndown: how many quota tokens one output token consumes
//! (PROTOCOL.md §5.2 item 4; CAPACITY.md §2).
//!
//! A table, not a rule in code, because AWS changes it model by model: 5× for
//! Claude 3.7 and newer is documented, and newer text quoted in public code
//! gives 10× or 15× for some of the newest Claude models. Which ones is not
//! established well enough to build in, so those are overrides a user enters
//! (`BurndownTable::with_overrides`), never guesses. Burndown is quota
//! accounting only; billing counts each output token once.

use std::collections::BTreeMap;

use serde::Serialize;

use super::facts::{Confidence, FactSource};
use crate::family::base_model_id;
use crate::quota::claude_version;

/// Which models a burndown rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BurndownMatch {
    /// Anthropic Claude models of this `(major, minor)` version or newer.
    ClaudeFrom(u32, u32),
    /// Exactly this base model id.
    BaseModel(&'static str),
}

impl BurndownMatch {
    fn covers(self, model_id: &str) -> bool {
        match self {
            BurndownMatch::ClaudeFrom(major, minor) => {
                claude_version(model_id).is_some_and(|v| v >= (major, minor))
            }
            BurndownMatch::BaseModel(id) => base_model_id(model_id) == id,
        }
    }
}

/// One built-in burndown rule and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BurndownRule {
    /// The models it covers.
    pub covers: BurndownMatch,
    /// Quota tokens per output token.
    pub factor: u64,
    /// Where the figure comes from.
    pub source: FactSource,
}

/// The built-in rules, most specific first; a model no rule covers burns 1×.
const RULES: &[BurndownRule] = &[BurndownRule {
    covers: BurndownMatch::ClaudeFrom(3, 7),
    factor: 5,
    source: FactSource {
        cite: "AWS Bedrock user guide, quotas-token-burndown.html: 5x output tokens for Anthropic Claude 3.7 and newer (PROTOCOL.md §5.2)",
        confidence: Confidence::Documented,
    },
}];

/// Where a model's burndown factor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BurndownOrigin {
    /// An override the user entered for this model.
    Override,
    /// A built-in rule.
    Rule(BurndownRule),
    /// No rule covers the model: AWS documents 1× for every other model.
    Default,
}

/// A model's burndown factor and its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Burndown {
    /// Quota tokens per output token.
    pub factor: u64,
    /// Where `factor` came from.
    pub origin: BurndownOrigin,
}

/// The burndown table: the built-in rules plus per-model overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BurndownTable {
    /// Factor by model id (exact id or base id; the exact id wins).
    overrides: BTreeMap<String, u64>,
}

impl BurndownTable {
    /// The built-in rules, no overrides.
    pub fn builtin() -> Self {
        BurndownTable::default()
    }

    /// The built-in rules with `overrides` (model id or base id → factor)
    /// taking precedence.
    pub fn with_overrides(overrides: BTreeMap<String, u64>) -> Self {
        BurndownTable { overrides }
    }

    /// The built-in rules, for listing their sources.
    pub fn rules() -> &'static [BurndownRule] {
        RULES
    }

    /// The factor for `model_id` (any id form: base, profile, ARN) and why.
    pub fn lookup(&self, model_id: &str) -> Burndown {
        let overridden = self
            .overrides
            .get(model_id)
            .or_else(|| self.overrides.get(base_model_id(model_id)));
        if let Some(&factor) = overridden {
            return Burndown {
                factor,
                origin: BurndownOrigin::Override,
            };
        }
        match RULES.iter().find(|r| r.covers.covers(model_id)) {
            Some(rule) => Burndown {
                factor: rule.factor,
                origin: BurndownOrigin::Rule(*rule),
            },
            None => Burndown {
                factor: 1,
                origin: BurndownOrigin::Default,
            },
        }
    }
}

/// How many quota tokens one output token consumes for `model_id`, by the
/// built-in table: 5 for Anthropic Claude 3.7 and newer, 1 for every other
/// model. This is quota accounting only; billing counts each output token once.
pub fn output_burndown(model_id: &str) -> u64 {
    BurndownTable::builtin().lookup(model_id).factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burndown_is_five_for_claude_3_7_and_newer_only() {
        assert_eq!(
            output_burndown("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            1
        );
        assert_eq!(
            output_burndown("us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            5
        );
        assert_eq!(output_burndown("anthropic.claude-opus-4-20250514-v1:0"), 5);
        assert_eq!(output_burndown("global.anthropic.claude-opus-4-6-v1"), 5);
        assert_eq!(output_burndown("amazon.nova-pro-v1:0"), 1);
        assert_eq!(output_burndown("meta.llama3-3-70b-instruct-v1:0"), 1);
    }

    #[test]
    fn overrides_win_by_exact_then_base_id() {
        let mut o = BTreeMap::new();
        o.insert("anthropic.claude-opus-4-6-v1".to_owned(), 10);
        o.insert("us.anthropic.claude-opus-4-6-v1".to_owned(), 15);
        let t = BurndownTable::with_overrides(o);
        let us = t.lookup("us.anthropic.claude-opus-4-6-v1");
        assert_eq!((us.factor, us.origin), (15, BurndownOrigin::Override));
        assert_eq!(t.lookup("global.anthropic.claude-opus-4-6-v1").factor, 10);
        let sonnet = t.lookup("us.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(sonnet.factor, 5);
        assert!(
            matches!(sonnet.origin, BurndownOrigin::Rule(r) if r.source.confidence == Confidence::Documented)
        );
        let llama = t.lookup("meta.llama3-3-70b-instruct-v1:0");
        assert_eq!((llama.factor, llama.origin), (1, BurndownOrigin::Default));
    }
}
