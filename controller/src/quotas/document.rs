//! What `quarry quotas` makes of the quotas Service Quotas lists: each
//! mapped to a model, pool and metric through the name families and the
//! model-name table (`quarry_bedrock::quota`), or kept as unmapped with the
//! reason; the plan-ready `quota` entries `quarry plan --quotas` takes; and
//! the text and JSON forms (`docs/quotas-schema.md`). Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use quarry_bedrock::quota::{
    QuotaMetric, QuotaPool, SERVICE_QUOTAS_SERVICE_CODE, model_for_quota_model_name,
    parse_service_quota_name,
};
use quarry_bedrock::{base_model_id, geo_of_region};
use serde::{Deserialize, Serialize};

/// The version of `quotas.json` this build writes and reads.
pub const QUOTAS_VERSION: u32 = 1;

/// One quota as Service Quotas returned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedQuota {
    /// The quota code (`L-...`).
    pub code: String,
    /// The quota name.
    pub name: String,
    /// The value applied to the account.
    pub value: f64,
    /// The unit Service Quotas reports (`None` for counts).
    pub unit: String,
    /// Whether an increase can be requested.
    pub adjustable: bool,
}

/// A quota mapped to the pool and metric it sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappedQuota {
    /// What Service Quotas returned.
    #[serde(flatten)]
    pub listed: ListedQuota,
    /// The base model id its name maps to.
    pub model: String,
    /// The pool (the daily quota of in-Region and geographic calls reads as
    /// `cross_region`).
    pub pool: QuotaPool,
    /// What it counts.
    pub metric: QuotaMetric,
}

/// A quota that could not be mapped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmappedQuota {
    /// What Service Quotas returned.
    #[serde(flatten)]
    pub listed: ListedQuota,
    /// Why it was not mapped.
    pub reason: UnmappedReason,
}

/// Why a quota was not mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmappedReason {
    /// A runtime quota name family, but its model name is in no row of the
    /// model-name table (`quarry quotas --show-mapping`).
    UnknownModelName,
    /// A name of another family (batch, provisioned model units, agents,
    /// knowledge bases ...): not a runtime quota pool the planner models.
    OtherFamily,
}

/// The account's quotas of one pool in the plan file's `[[quota]]` terms:
/// `quarry plan --quotas` reads these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanQuota {
    /// The model id whose form names the pool: a base id (on-demand), the
    /// Region's geographic profile (`us.` ...), or `global.`.
    pub model: String,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
    /// Whether AWS raises the RPM quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_adjustable: Option<bool>,
    /// Whether AWS raises the TPM quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_adjustable: Option<bool>,
    /// Whether AWS raises the TPD quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd_adjustable: Option<bool>,
}

/// `quotas.json`: what `quarry quotas --format json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasDocument {
    /// [`QUOTAS_VERSION`].
    pub version: u32,
    /// Always `bedrock`.
    pub service_code: String,
    /// The Region the quotas were read in.
    pub region: String,
    /// The endpoint used, when not AWS's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The base model ids asked for (from `--models` or the spec); empty:
    /// every model.
    pub models: Vec<String>,
    /// How many quotas Service Quotas listed under `bedrock`.
    pub listed: usize,
    /// Plan-ready entries, one per pool with a mapped quota.
    pub quota: Vec<PlanQuota>,
    /// Every mapped quota of the models asked for.
    pub quotas: Vec<MappedQuota>,
    /// Every quota that could not be mapped (whatever `models`).
    pub unmapped: Vec<UnmappedQuota>,
}

/// Why a `quotas.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QuotasFileError {
    /// Not JSON of this shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Written by another version.
    #[error("version: this build reads version {QUOTAS_VERSION}, got {0}")]
    Version(u32),
}

/// Maps `listed` for `region`, keeping the mapped quotas of `models` (base
/// ids; empty keeps every model). Quotas are ordered by model, pool, metric.
pub fn build_document(
    listed: Vec<ListedQuota>,
    region: &str,
    endpoint: Option<String>,
    models: &BTreeSet<String>,
) -> QuotasDocument {
    let count = listed.len();
    let mut quotas = Vec::new();
    let mut unmapped = Vec::new();
    for q in listed {
        match map_quota(&q.name) {
            Ok((model, pool, metric)) => {
                if models.is_empty() || models.contains(model.as_str()) {
                    quotas.push(MappedQuota {
                        listed: q,
                        model,
                        pool,
                        metric,
                    });
                }
            }
            Err(reason) => unmapped.push(UnmappedQuota { listed: q, reason }),
        }
    }
    quotas.sort_by(|a, b| {
        (&a.model, a.pool, a.metric, &a.listed.code).cmp(&(
            &b.model,
            b.pool,
            b.metric,
            &b.listed.code,
        ))
    });
    unmapped
        .sort_by(|a, b| (a.reason as u8, &a.listed.name).cmp(&(b.reason as u8, &b.listed.name)));
    QuotasDocument {
        version: QUOTAS_VERSION,
        service_code: SERVICE_QUOTAS_SERVICE_CODE.to_owned(),
        region: region.to_owned(),
        endpoint,
        models: models.iter().cloned().collect(),
        listed: count,
        quota: plan_entries(&quotas, region),
        quotas,
        unmapped,
    }
}

/// A quota name's model, pool and metric.
fn map_quota(name: &str) -> Result<(String, QuotaPool, QuotaMetric), UnmappedReason> {
    let parsed = parse_service_quota_name(name).ok_or(UnmappedReason::OtherFamily)?;
    let model = model_for_quota_model_name(&parsed.model_name)
        .map(str::to_owned)
        .or_else(|| looks_like_model_id(&parsed.model_name).then(|| parsed.model_name.clone()))
        .ok_or(UnmappedReason::UnknownModelName)?;
    Ok((model, parsed.pool, parsed.metric))
}

/// A name that is itself a base model id (`provider.model-v1:0`): the
/// simulator names the quotas of models outside the table so.
fn looks_like_model_id(name: &str) -> bool {
    !name.contains(char::is_whitespace)
        && name.contains('.')
        && base_model_id(name) == name
        && quarry_bedrock::ModelFamily::from_model_id(name).is_some()
}

/// One entry per pool: the model id naming the pool, its quotas. Geographic
/// pools need the Region's geography; in a Region without one they are
/// left out (the mapped quotas still list them).
fn plan_entries(quotas: &[MappedQuota], region: &str) -> Vec<PlanQuota> {
    let mut by_id: BTreeMap<String, PlanQuota> = BTreeMap::new();
    for q in quotas {
        let id = match q.pool {
            QuotaPool::OnDemand => q.model.clone(),
            QuotaPool::CrossRegion => match geo_of_region(region) {
                Some(geo) => format!("{geo}.{}", q.model),
                None => continue,
            },
            QuotaPool::Global => format!("global.{}", q.model),
        };
        let entry = by_id.entry(id.clone()).or_insert_with(|| PlanQuota {
            model: id,
            ..PlanQuota::default()
        });
        // Fractional values do not occur for these counts; round up so a
        // plan never sees less quota than the account has.
        let value = q.listed.value.max(0.0).ceil() as u64;
        let adjustable = Some(q.listed.adjustable);
        match q.metric {
            QuotaMetric::RequestsPerMinute => {
                (entry.rpm, entry.rpm_adjustable) = (Some(value), adjustable)
            }
            QuotaMetric::TokensPerMinute => {
                (entry.tpm, entry.tpm_adjustable) = (Some(value), adjustable)
            }
            QuotaMetric::TokensPerDay => {
                (entry.tpd, entry.tpd_adjustable) = (Some(value), adjustable)
            }
        }
    }
    by_id.into_values().collect()
}

impl QuotasDocument {
    /// The JSON form: one top-level member per line and one array element
    /// per line, so `quarry plan` can cite an entry's line.
    pub fn to_json(&self) -> String {
        fn one<T: Serialize>(v: &T) -> String {
            // unwrap is safe because these types serialize to JSON without fail
            // (string keys, finite numbers).
            serde_json::to_string(v).unwrap_or_default()
        }
        fn array<T: Serialize>(out: &mut String, key: &str, items: &[T], last: bool) {
            let _ = write!(out, "  {}: [", one(&key));
            for (i, item) in items.iter().enumerate() {
                let sep = if i + 1 < items.len() { "," } else { "" };
                let _ = write!(out, "\n    {}{sep}", one(item));
            }
            let end = if items.is_empty() { "]" } else { "\n  ]" };
            let _ = writeln!(out, "{end}{}", if last { "" } else { "," });
        }
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"version\": {},", self.version);
        let _ = writeln!(out, "  \"service_code\": {},", one(&self.service_code));
        let _ = writeln!(out, "  \"region\": {},", one(&self.region));
        if let Some(e) = &self.endpoint {
            let _ = writeln!(out, "  \"endpoint\": {},", one(e));
        }
        let _ = writeln!(out, "  \"models\": {},", one(&self.models));
        let _ = writeln!(out, "  \"listed\": {},", self.listed);
        array(&mut out, "quota", &self.quota, false);
        array(&mut out, "quotas", &self.quotas, false);
        array(&mut out, "unmapped", &self.unmapped, true);
        out.push_str("}\n");
        out
    }

    /// Reads `quotas.json`.
    pub fn from_json(text: &str) -> Result<Self, QuotasFileError> {
        let doc: QuotasDocument = serde_json::from_str(text)?;
        if doc.version != QUOTAS_VERSION {
            return Err(QuotasFileError::Version(doc.version));
        }
        Ok(doc)
    }

    /// The text form: the mapped quotas as a table, then what was not mapped.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let scope = if self.models.is_empty() {
            "every model".to_owned()
        } else {
            self.models.join(", ")
        };
        let _ = writeln!(
            out,
            "Bedrock quotas in {} (Service Quotas, service code {}{}): {} listed; {} mapped for {scope}",
            self.region,
            self.service_code,
            self.endpoint
                .as_deref()
                .map(|e| format!(", endpoint {e}"))
                .unwrap_or_default(),
            self.listed,
            self.quotas.len(),
        );
        let rows: Vec<[String; 7]> = self
            .quotas
            .iter()
            .map(|q| {
                [
                    q.model.clone(),
                    q.pool.as_str().to_owned(),
                    q.metric.abbreviation().to_owned(),
                    format_value(q.listed.value),
                    q.listed.unit.clone(),
                    if q.listed.adjustable { "yes" } else { "no" }.to_owned(),
                    q.listed.code.clone(),
                ]
            })
            .collect();
        let header = [
            "model",
            "pool",
            "quota",
            "value",
            "unit",
            "adjustable",
            "code",
        ];
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 3 {
                    let _ = write!(s, "{cell:>w$}  ");
                } else {
                    let _ = write!(s, "{cell:<w$}  ");
                }
            }
            s.trim_end().to_owned()
        };
        if rows.is_empty() {
            out.push_str("  no quota of these models was found\n");
        } else {
            let _ = writeln!(out, "{}", line(&header));
            for r in &rows {
                let cells: Vec<&str> = r.iter().map(String::as_str).collect();
                let _ = writeln!(out, "{}", line(&cells));
            }
            out.push_str(
                "RPM: requests per minute; TPM: tokens per minute (quota tokens, burndown applied); TPD: tokens per day. \
                 The cross-Region TPD is Bedrock's daily quota for in-Region and geographic calls.\n",
            );
        }
        let unknown: Vec<&UnmappedQuota> = self
            .unmapped
            .iter()
            .filter(|u| u.reason == UnmappedReason::UnknownModelName)
            .collect();
        if !unknown.is_empty() {
            let _ = writeln!(
                out,
                "Not mapped: {} runtime quota(s) whose model name is in no row of the name table (quarry quotas --show-mapping):",
                unknown.len()
            );
            for u in unknown {
                let _ = writeln!(
                    out,
                    "  {}  {} = {}",
                    u.listed.code,
                    u.listed.name,
                    format_value(u.listed.value)
                );
            }
        }
        let other = self.unmapped.len() - self.unmapped_unknown_models();
        if other > 0 {
            let _ = writeln!(
                out,
                "Not mapped: {other} quota(s) of other families (batch, provisioned throughput, agents ...); listed in the JSON form."
            );
        }
        out
    }

    fn unmapped_unknown_models(&self) -> usize {
        self.unmapped
            .iter()
            .filter(|u| u.reason == UnmappedReason::UnknownModelName)
            .count()
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let digits = format!("{}", v as i64);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 && c != '-' {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{v}")
    }
}

/// The model-name table as text (`quarry quotas --show-mapping`).
pub fn mapping_text() -> String {
    let mut out = String::from(
        "How quarry maps Service Quotas names to models. A name is read as one of the families\n\
         \"On-demand model inference {requests|tokens} per minute for X\", \"Cross-region model inference\n\
         {requests|tokens} per minute for X\", \"Global cross-region model inference tokens per {minute|day} for X\",\n\
         \"Model invocation max tokens per day for X (doubled for cross-region calls)\", and X through this table\n\
         (case and spacing ignored; quoted = a public source quotes the spelling, else Quarry's own):\n",
    );
    let rows = quarry_bedrock::quota::quota_model_names();
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<width$}  {}{}",
            r.name,
            r.model,
            if r.quoted { "  (quoted)" } else { "" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(code: &str, name: &str, value: f64, adjustable: bool) -> ListedQuota {
        ListedQuota {
            code: code.into(),
            name: name.into(),
            value,
            unit: "None".into(),
            adjustable,
        }
    }

    fn sample() -> Vec<ListedQuota> {
        vec![
            listed(
                "L-F4DDD3EB",
                "Cross-region model inference tokens per minute for Anthropic Claude Sonnet 4.5 V1",
                800_000.0,
                true,
            ),
            listed(
                "L-4A6BFAB1",
                "Cross-region model inference requests per minute for Anthropic Claude Sonnet 4.5 V1",
                200.0,
                true,
            ),
            listed(
                "L-381AD9EE",
                "Model invocation max tokens per day for Anthropic Claude Sonnet 4.5 V1 (doubled for cross-region calls)",
                3_600_000_000.0,
                false,
            ),
            listed(
                "L-27C57EE8",
                "Global cross-region model inference tokens per minute for Anthropic Claude Sonnet 4.5 V1",
                1_000_000.0,
                true,
            ),
            listed(
                "L-00000001",
                "On-demand model inference tokens per minute for Meta Llama 3.3 70B Instruct",
                300_000.0,
                true,
            ),
            listed(
                "L-00000002",
                "On-demand model inference tokens per minute for Cohere Command R Plus",
                100.0,
                true,
            ),
            listed("L-00000003", "Batch inference job size (in GB)", 5.0, false),
        ]
    }

    #[test]
    fn maps_names_and_keeps_the_rest_as_unmapped() {
        let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let models = BTreeSet::from([sonnet.to_owned()]);
        let doc = build_document(sample(), "us-west-2", None, &models);
        assert_eq!(doc.listed, 7);
        assert_eq!(doc.quotas.len(), 4, "{:?}", doc.quotas);
        assert!(doc.quotas.iter().all(|q| q.model == sonnet));
        let reasons: Vec<_> = doc.unmapped.iter().map(|u| u.reason).collect();
        assert_eq!(
            reasons,
            [
                UnmappedReason::UnknownModelName,
                UnmappedReason::OtherFamily
            ]
        );
        assert_eq!(
            doc.quota,
            vec![
                PlanQuota {
                    model: format!("global.{sonnet}"),
                    tpm: Some(1_000_000),
                    tpm_adjustable: Some(true),
                    ..PlanQuota::default()
                },
                PlanQuota {
                    model: format!("us.{sonnet}"),
                    rpm: Some(200),
                    tpm: Some(800_000),
                    tpd: Some(3_600_000_000),
                    rpm_adjustable: Some(true),
                    tpm_adjustable: Some(true),
                    tpd_adjustable: Some(false),
                },
            ]
        );
        // Every model when none is named; the Llama quota is on-demand.
        let all = build_document(sample(), "eu-central-1", None, &BTreeSet::new());
        assert_eq!(all.quotas.len(), 5);
        assert!(
            all.quota
                .iter()
                .any(|q| q.model == "meta.llama3-3-70b-instruct-v1:0")
        );
        assert!(all.quota.iter().any(|q| q.model == format!("eu.{sonnet}")));
        // A Region with no geography: the geographic pool has no entry.
        let ca = build_document(sample(), "ca-central-1", None, &models);
        assert!(ca.quota.iter().all(|q| !q.model.starts_with("us.")));
        assert_eq!(ca.quotas.len(), 4);
    }

    #[test]
    fn json_round_trips_one_entry_per_line() {
        let doc = build_document(
            sample(),
            "us-east-1",
            Some("http://127.0.0.1:1".into()),
            &BTreeSet::new(),
        );
        let text = doc.to_json();
        assert_eq!(QuotasDocument::from_json(&text).unwrap(), doc);
        let serde_value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            serde_value["quota"].as_array().unwrap().len(),
            doc.quota.len()
        );
        for entry in &doc.quota {
            let needle = format!("{{\"model\":\"{}\"", entry.model);
            assert_eq!(
                text.lines().filter(|l| l.contains(&needle)).count(),
                1,
                "{needle}"
            );
        }
        let err = QuotasDocument::from_json(&text.replace("\"version\": 1", "\"version\": 9"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "version: this build reads version 1, got 9"
        );
    }

    #[test]
    fn text_names_every_figure_and_what_was_not_mapped() {
        let doc = build_document(sample(), "us-east-1", None, &BTreeSet::new());
        let text = doc.to_text();
        assert!(
            text.contains("7 listed; 5 mapped for every model"),
            "{text}"
        );
        assert!(text.contains("3,600,000,000"), "{text}");
        assert!(text.contains("Cohere Command R Plus"), "{text}");
        assert!(text.contains("1 quota(s) of other families"), "{text}");
        assert!(mapping_text().contains("Anthropic Claude Sonnet 4.5 V1"));
    }

    #[test]
    fn model_ids_as_names_map_to_themselves() {
        assert!(looks_like_model_id("meta.llama3-3-70b-instruct-v1:0"));
        assert!(!looks_like_model_id("Meta Llama"));
        assert!(!looks_like_model_id("us.meta.llama3-3-70b-instruct-v1:0"));
        assert_eq!(format_value(1234567.0), "1,234,567");
        assert_eq!(format_value(0.5), "0.5");
    }
}
