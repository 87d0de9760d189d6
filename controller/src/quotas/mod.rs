//! `quarry quotas`: the account's Bedrock quotas from the Service Quotas API
//! (service code `bedrock`), through `aws-sdk-servicequotas` with
//! aws-config's standard credential chain, for the models a spec uses (or
//! `--models`), as a table or as `quotas.json` (module [`document`]), which
//! `quarry plan --quotas` takes.

pub mod document;

use std::collections::BTreeSet;
use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_servicequotas::error::DisplayErrorContext;
use quarry_bedrock::base_model_id;
use quarry_bedrock::quota::SERVICE_QUOTAS_SERVICE_CODE;
use quarry_engine::Target;

pub use document::{
    ListedQuota, MappedQuota, PlanQuota, QUOTAS_VERSION, QuotasDocument, QuotasFileError,
    UnmappedQuota, UnmappedReason, build_document, mapping_text,
};

use crate::spec::{SpecError, check_model_id, load_spec};

/// `quarry quotas`' exit codes (its `--help` and the README).
pub const QUOTAS_EXIT_CODES: &str = "\
Exit codes:
  0  the quotas were read and printed
  2  usage or spec error (a bad --models id, an unreadable or invalid --spec); nothing was asked
  3  Service Quotas could not be read (credentials, endpoint, permissions)";

/// The Region used when neither `--region`, the spec, nor the environment
/// names one.
const FALLBACK_REGION: &str = "us-east-1";

/// What `quarry quotas` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct QuotasOptions {
    /// `--region`; else the spec's target Region, else aws-config's chain.
    pub region: Option<String>,
    /// `--models`: model ids in any form.
    pub models: Vec<String>,
    /// `--spec`: take the models (and Region and profile) from a run spec.
    pub spec: Option<PathBuf>,
    /// `--endpoint-url`: another Service Quotas endpoint (the simulator).
    pub endpoint_url: Option<String>,
}

/// Why `quarry quotas` printed no quotas.
#[derive(Debug, thiserror::Error)]
pub enum QuotasError {
    /// A `--models` id is malformed.
    #[error("--models: {id:?}: {message}")]
    BadModel {
        /// The id as given.
        id: String,
        /// Why.
        message: String,
    },
    /// The spec could not be read or is invalid.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// Service Quotas answered with an error or could not be reached.
    #[error("Service Quotas ListServiceQuotas (service code bedrock, Region {region}): {message}")]
    Api {
        /// The Region asked.
        region: String,
        /// The SDK's error with its context.
        message: String,
    },
}

impl QuotasError {
    /// The process exit code (see [`QUOTAS_EXIT_CODES`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            QuotasError::BadModel { .. } | QuotasError::Spec(_) => 2,
            QuotasError::Api { .. } => 3,
        }
    }
}

/// The base model ids asked for, the spec's Region and credential profile.
struct Scope {
    models: BTreeSet<String>,
    region: Option<String>,
    profile: Option<String>,
}

fn scope(opts: &QuotasOptions) -> Result<Scope, QuotasError> {
    let mut scope = Scope {
        models: BTreeSet::new(),
        region: None,
        profile: None,
    };
    for id in &opts.models {
        check_model_id(id).map_err(|message| QuotasError::BadModel {
            id: id.clone(),
            message,
        })?;
        scope.models.insert(base_model_id(id).to_owned());
    }
    if let Some(path) = &opts.spec {
        let spec = load_spec(path)?;
        for entry in spec.plan.mix.entries() {
            scope
                .models
                .insert(base_model_id(&entry.model_id).to_owned());
        }
        if let Target::Aws {
            region, profile, ..
        } = &spec.plan.target
        {
            scope.region = Some(region.clone());
            scope.profile = profile.clone();
        }
    }
    Ok(scope)
}

/// Reads the account's Bedrock quotas and maps them (see the module doc).
pub async fn read_quotas(opts: &QuotasOptions) -> Result<QuotasDocument, QuotasError> {
    let scope = scope(opts)?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = opts.region.clone().or(scope.region) {
        loader = loader.region(Region::new(region));
    }
    if let Some(profile) = &scope.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let region = config
        .region()
        .map_or(FALLBACK_REGION.to_owned(), |r| r.as_ref().to_owned());
    let client = if config.region().is_none() {
        let conf = aws_sdk_servicequotas::config::Builder::from(&config)
            .region(Region::new(FALLBACK_REGION))
            .build();
        aws_sdk_servicequotas::Client::from_conf(conf)
    } else {
        aws_sdk_servicequotas::Client::new(&config)
    };
    let mut pages = client
        .list_service_quotas()
        .service_code(SERVICE_QUOTAS_SERVICE_CODE)
        .max_results(100)
        .into_paginator()
        .send();
    let mut listed = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| QuotasError::Api {
            region: region.clone(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
        for q in page.quotas() {
            listed.push(ListedQuota {
                code: q.quota_code().unwrap_or_default().to_owned(),
                name: q.quota_name().unwrap_or_default().to_owned(),
                value: q.value().unwrap_or_default(),
                unit: q.unit().unwrap_or("None").to_owned(),
                adjustable: q.adjustable(),
            });
        }
    }
    Ok(build_document(
        listed,
        &region,
        opts.endpoint_url.clone(),
        &scope.models,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_model_id_is_a_usage_error_naming_it() {
        let opts = QuotasOptions {
            models: vec!["not a model".into()],
            ..QuotasOptions::default()
        };
        let err = scope(&opts).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with("--models: \"not a model\": "),
            "{err}"
        );
    }

    #[test]
    fn models_reduce_to_base_ids() {
        let opts = QuotasOptions {
            models: vec![
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
                "anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
            ],
            ..QuotasOptions::default()
        };
        let s = scope(&opts).ok().unwrap();
        assert_eq!(
            s.models.into_iter().collect::<Vec<_>>(),
            ["anthropic.claude-sonnet-4-5-20250929-v1:0"]
        );
    }
}
