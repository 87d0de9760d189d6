//! The plan as files: `plan.json` (versioned, `docs/plan-schema.md`) and
//! `plan.txt`. Both are pure functions of the [`Plan`] value, and the text
//! renders the same from a plan read back from its JSON, so `plan.txt` can
//! always be reproduced from `plan.json` alone.

mod text;

pub use text::render_text;

use crate::plan::{PLAN_SCHEMA_VERSION, Plan};

/// `plan.json` could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum PlanJsonError {
    /// Not JSON, or not a plan.
    #[error("not a plan.json: {0}")]
    Parse(#[from] serde_json::Error),
    /// Written by a Quarry with another schema version.
    #[error("plan.json has schema_version {found}; this Quarry reads version {expected}")]
    Version {
        /// The file's version.
        found: u64,
        /// The version this build reads.
        expected: u32,
    },
}

/// `plan.json`: pretty-printed, ending in a newline.
pub fn to_json(plan: &Plan) -> String {
    // Serializing plain data with string keys cannot fail; the fallback keeps
    // the function total all the same.
    let mut text =
        serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// Reads `plan.json` back, refusing another schema version.
pub fn from_json(text: &str) -> Result<Plan, PlanJsonError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let found = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if found != u64::from(PLAN_SCHEMA_VERSION) {
        return Err(PlanJsonError::Version {
            found,
            expected: PLAN_SCHEMA_VERSION,
        });
    }
    Ok(serde_json::from_value(value)?)
}
