//! The simulator's configuration file (TOML): accounts and their credentials
//! and quotas, model catalog additions and overrides, provisioned models,
//! faults, the seed. Parsed strictly (unknown fields are errors), then
//! validated so that every error names the file, the line and the field:
//! `sim.toml:7: accounts[1].quotas.tpm must be > 0, got 0`.
//!
//! ```toml
//! seed = 42
//! default_account = true           # keep the AKIDEXAMPLE account (default)
//! latency = { kind = "zero" }      # every model: zero latency (benchmarks)
//! [quota]
//! window = "sliding"               # or "fixed"
//! [cache]
//! max_entries = 100000
//! [[accounts]]
//! access_key_id = "AKIAQUARRYTEST000001"
//! secret_access_key = "..."
//! account_id = "111122223333"
//! session_tokens = []              # when set, one of them is required
//! api_keys = ["bedrock-api-key-..."]
//! daily_token_cap = 50000000       # cross-model tokens per day
//! quotas = { tpm = 20000 }         # every model of this account
//! [accounts.model_quotas."meta.llama3-3-70b-instruct-v1:0"]
//! tpm = 1000000                    # also tpd, rpm (every pool of the model),
//! rpm = 6000                       # cross_region_tpm, _tpd, _rpm (us., eu. ...)
//! [accounts.reserved."meta.llama3-3-70b-instruct-v1:0"]
//! tpm = 100000                     # Reserved tier: own TPM, overflow to Standard
//! [tiers]
//! priority_speedup = 0.25          # Priority decodes 1.25x as many tokens/s
//! flex_queue_limit = 32            # Flex waiting for a decode slot before 503
//! [[models]]                       # override or add a model
//! id = "meta.llama3-3-70b-instruct-v1:0"
//! latency = { kind = "fixed", ttft_ms = 200.0, gap_ms = 10.0 }
//! burndown = 1                     # quota tokens per output token
//! quotas = { rpm = 800 }           # the model's defaults, same fields
//! [[provisioned]]
//! arn = "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/abcdefghijkl"
//! model = "amazon.nova-pro-v1:0"
//! model_units = 2
//! [[faults]]                       # see the faults module
//! kind = "service_unavailable"
//! requests = [100, 110]
//! ```
//!
//! `stamp_frames = true` (top level; off by default) adds the
//! `x-quarry-written-ns` header to every frame of a streaming answer, for a
//! client on the same host to measure its own read delay (ARCHITECTURE.md,
//! "Measuring the client's own error"). Off, the wire is Bedrock's.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use quarry_bedrock::{ModelFamily, output_burndown};
use serde::Deserialize;

use crate::catalog::{CacheRules, Catalog, ModelProfile};
use crate::faults::FaultRule;
use crate::field::{FieldError, Seg, field_error, key, line_of, render};
use crate::latency::LatencyModel;
use crate::quota::{PoolLimits, PoolScope, WindowKind};
use crate::text::OutputLength;

/// The AWS documentation's example access key id, served by default.
pub const DEFAULT_ACCESS_KEY_ID: &str = quarry_bedrock::auth::EXAMPLE_ACCESS_KEY_ID;
/// The AWS documentation's example secret key, served by default.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = quarry_bedrock::auth::EXAMPLE_SECRET_ACCESS_KEY;
/// The account id of the default account.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// A configuration that could not be read or is invalid.
///
/// Each message is whole in itself (file, and line where there is one, and
/// the cause) and the error has no `source`: printed with `{}` or as an
/// error chain (`{:#}`), the cause appears once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why (kept out of the chain: the message already says it).
        error: std::io::Error,
    },
    /// Not TOML, or a field of the wrong type or unknown (toml names the
    /// line, column and field).
    #[error("{origin}: {error}")]
    Parse {
        /// The file name, for the message.
        origin: String,
        /// The parser's error (kept out of the chain, as above).
        error: toml::de::Error,
    },
    /// A value out of range or a reference to something that does not exist.
    #[error("{origin}{}: {field} {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file name, for the message.
        origin: String,
        /// 1-based line of the offending value, when it is in the file.
        line: Option<usize>,
        /// The field path (`accounts[1].quotas.tpm`).
        field: String,
        /// What is wrong (`must be > 0, got 0`).
        message: String,
    },
}

/// Quota overrides; unset fields keep the model's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    /// On-demand tokens per minute.
    pub tpm: Option<u64>,
    /// Cross-Region tokens per minute.
    pub cross_region_tpm: Option<u64>,
    /// Tokens per day of every pool of the model (default TPM × 1440, or
    /// the model's fixed cap).
    pub tpd: Option<u64>,
    /// Tokens per day of the cross-Region pools (wins over `tpd` there).
    pub cross_region_tpd: Option<u64>,
    /// Requests per minute of every pool of the model (enforced when set
    /// here or by the model's default, docs/sim-defaults.md).
    pub rpm: Option<u64>,
    /// Requests per minute of the cross-Region pools (wins over `rpm` there).
    pub cross_region_rpm: Option<u64>,
}

/// One account: credentials and quotas.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// SigV4 access key id.
    pub access_key_id: String,
    /// SigV4 secret access key.
    pub secret_access_key: String,
    /// 12-digit AWS account id.
    pub account_id: String,
    /// Session tokens accepted with this key; when non-empty a request must
    /// carry one of them, when empty it must carry none.
    #[serde(default)]
    pub session_tokens: Vec<String>,
    /// Bedrock API keys (`Authorization: Bearer ...`) for this account.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Overrides for every model of this account.
    #[serde(default)]
    pub quotas: QuotaOverride,
    /// Overrides per base model id (win over `quotas`).
    #[serde(default)]
    pub model_quotas: BTreeMap<String, QuotaOverride>,
    /// Cross-model tokens per day for the whole account.
    #[serde(default)]
    pub daily_token_cap: Option<u64>,
    /// Reserved-tier capacity per base model id: requests with
    /// `serviceTier` `reserved` draw on this pool first and overflow to the
    /// Standard (on-demand or cross-Region) pool when it is full.
    #[serde(default)]
    pub reserved: BTreeMap<String, ReservedConfig>,
}

/// A Reserved-tier pool (PROTOCOL.md §5.7): reserved tokens per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedConfig {
    /// Tokens per minute reserved (input, cache writes and output × the
    /// model's burndown, reserved and settled as on-demand quota is).
    pub tpm: u64,
}

/// How the service tiers behave under load (PROTOCOL.md §5.7,
/// docs/sim-defaults.md).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// How much faster Priority decodes than Standard: output tokens per
    /// second × (1 + this). AWS: "up to 25% better output tokens per second".
    #[serde(default = "TierConfig::default_priority_speedup")]
    pub priority_speedup: f64,
    /// Flex requests that may wait for a decode slot of a model at once; a
    /// Flex request that finds every slot busy and this many Flex requests
    /// waiting is refused with 503 ServiceUnavailableException. Priority and
    /// Standard requests are never refused for capacity.
    #[serde(default = "TierConfig::default_flex_queue_limit")]
    pub flex_queue_limit: u32,
}

impl TierConfig {
    fn default_priority_speedup() -> f64 {
        0.25
    }

    fn default_flex_queue_limit() -> u32 {
        32
    }
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            priority_speedup: TierConfig::default_priority_speedup(),
            flex_queue_limit: TierConfig::default_flex_queue_limit(),
        }
    }
}

impl fmt::Debug for AccountConfig {
    // Credentials never reach logs: only their count is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("session_tokens", &self.session_tokens.len())
            .field("api_keys", &self.api_keys.len())
            .field("quotas", &self.quotas)
            .field("model_quotas", &self.model_quotas)
            .field("daily_token_cap", &self.daily_token_cap)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl AccountConfig {
    /// The default account: the AWS documentation example credentials.
    pub fn default_account() -> Self {
        AccountConfig {
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_owned(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            session_tokens: Vec::new(),
            api_keys: Vec::new(),
            quotas: QuotaOverride::default(),
            model_quotas: BTreeMap::new(),
            daily_token_cap: None,
            reserved: BTreeMap::new(),
        }
    }

    /// True when a request carrying `token` (`x-amz-security-token`) is
    /// acceptable for this key.
    pub fn accepts_session_token(&self, token: Option<&str>) -> bool {
        match token {
            None => self.session_tokens.is_empty(),
            Some(t) => self.session_tokens.iter().any(|s| s == t),
        }
    }
}

/// A model added to or overridden in the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Base model id; an existing id is overridden, a new one added.
    pub id: String,
    /// Family of a new model (default: the family its id implies).
    pub family: Option<ModelFamily>,
    /// Built-in model to copy the profile from (default: the existing
    /// profile, or the family's reference model).
    pub like: Option<String>,
    /// Output limit (largest `max_tokens`).
    pub max_output_tokens: Option<u64>,
    /// Context window.
    pub context_window: Option<u64>,
    /// Quota tokens per output token.
    pub burndown: Option<u64>,
    /// Default quotas of the model.
    #[serde(default)]
    pub quotas: QuotaOverride,
    /// Prompt-cache minimum tokens (0 disables caching).
    pub cache_min_tokens: Option<u64>,
    /// Whether the 1-hour cache TTL is accepted.
    pub cache_ttl_1h: Option<bool>,
    /// Whether the base id is refused on-demand.
    pub requires_profile: Option<bool>,
    /// Latency model.
    pub latency: Option<LatencyModel>,
    /// Answer length distribution.
    pub output: Option<OutputLength>,
    /// Decode slots per provisioned model unit.
    pub streams_per_model_unit: Option<u32>,
}

/// A provisioned-throughput model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionedConfig {
    /// Its ARN (`arn:aws:bedrock:{region}:{account}:provisioned-model/{id}`).
    pub arn: String,
    /// The base model id it serves.
    pub model: String,
    /// Model units bought.
    pub model_units: u32,
}

/// Quota behaviour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Sliding or fixed windows.
    #[serde(default)]
    pub window: WindowKind,
}

/// Prompt-cache sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Entries kept before the least recently used is evicted.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 100_000,
        }
    }
}

/// The whole configuration. Build it with [`SimConfig::default`],
/// [`SimConfig::from_toml`] or [`SimConfig::load`]; the latter two validate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The seed every per-request decision derives from.
    #[serde(default)]
    pub seed: u64,
    /// Serve the default AKIDEXAMPLE account besides `accounts`.
    #[serde(default = "yes")]
    pub default_account: bool,
    /// A latency model for every model, overriding their profiles (e.g.
    /// `{ kind = "zero" }` for load-generator benchmarks).
    pub latency: Option<LatencyModel>,
    /// Quota windows.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Prompt cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Accounts.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Catalog additions and overrides.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Provisioned-throughput models.
    #[serde(default)]
    pub provisioned: Vec<ProvisionedConfig>,
    /// Injected faults.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// Service-tier behaviour.
    #[serde(default)]
    pub tiers: TierConfig,
    /// Add [`quarry_bedrock::WRITTEN_NS_HEADER`] to every frame of a
    /// streaming answer: the `CLOCK_MONOTONIC` nanoseconds at which the
    /// frame was handed to the connection. Not a Bedrock header, so off by
    /// default; unix only (the clock is `CLOCK_MONOTONIC`).
    #[serde(default)]
    pub stamp_frames: bool,
}

fn yes() -> bool {
    true
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            default_account: true,
            latency: None,
            quota: QuotaConfig::default(),
            cache: CacheConfig::default(),
            accounts: Vec::new(),
            models: Vec::new(),
            provisioned: Vec::new(),
            faults: Vec::new(),
            tiers: TierConfig::default(),
            stamp_frames: false,
        }
    }
}

/// `Ok` when `v` is unset or positive.
fn positive(path: Vec<Seg>, v: Option<u64>) -> Result<(), FieldError> {
    match v {
        Some(0) => Err(field_error(path, "must be > 0, got 0")),
        _ => Ok(()),
    }
}

fn check_quotas(mut path: Vec<Seg>, q: &QuotaOverride) -> Result<(), FieldError> {
    for (name, v) in [
        ("tpm", q.tpm),
        ("cross_region_tpm", q.cross_region_tpm),
        ("tpd", q.tpd),
        ("cross_region_tpd", q.cross_region_tpd),
        ("rpm", q.rpm),
        ("cross_region_rpm", q.cross_region_rpm),
    ] {
        path.push(key(name));
        positive(path.clone(), v)?;
        path.pop();
    }
    Ok(())
}

impl SimConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.display().to_string(),
            error,
        })?;
        let origin = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        SimConfig::from_toml(&text, &origin)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: SimConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_owned(),
            error,
        })?;
        config.check().map_err(|e| ConfigError::Invalid {
            origin: origin.to_owned(),
            line: line_of(text, &e.path),
            field: render(&e.path),
            message: e.message,
        })?;
        Ok(config)
    }

    /// Validates a config built in code; errors carry no line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|e| ConfigError::Invalid {
            origin: "config".to_owned(),
            line: None,
            field: render(&e.path),
            message: e.message,
        })
    }

    fn check(&self) -> Result<(), FieldError> {
        if let Some(l) = &self.latency {
            l.validate()
                .map_err(|m| field_error(vec![key("latency")], m))?;
        }
        if self.cache.max_entries == 0 {
            return Err(field_error(
                vec![key("cache"), key("max_entries")],
                "must be >= 1, got 0",
            ));
        }
        let speedup = self.tiers.priority_speedup;
        if !(speedup.is_finite() && (0.0..=10.0).contains(&speedup)) {
            return Err(field_error(
                vec![key("tiers"), key("priority_speedup")],
                format!("must be between 0 and 10, got {speedup}"),
            ));
        }
        if self.stamp_frames && !cfg!(unix) {
            return Err(field_error(
                vec![key("stamp_frames")],
                "needs CLOCK_MONOTONIC, which only unix systems have",
            ));
        }
        let catalog = self.build_catalog()?;
        self.check_accounts(&catalog)?;
        for (i, rule) in self.faults.iter().enumerate() {
            rule.check(vec![key("faults"), Seg::Index(i)], &catalog)?;
        }
        Ok(())
    }

    fn check_accounts(&self, catalog: &Catalog) -> Result<(), FieldError> {
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let at = |k: &str| vec![key("accounts"), Seg::Index(i), key(k)];
            if a.access_key_id.is_empty() {
                return Err(field_error(at("access_key_id"), "must not be empty"));
            }
            if !seen.insert(a.access_key_id.as_str()) {
                return Err(field_error(
                    at("access_key_id"),
                    format!("{:?} is used by two accounts", a.access_key_id),
                ));
            }
            if a.secret_access_key.is_empty() {
                return Err(field_error(at("secret_access_key"), "must not be empty"));
            }
            if a.account_id.len() != 12 || !a.account_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(field_error(
                    at("account_id"),
                    format!("must be 12 digits, got {:?}", a.account_id),
                ));
            }
            check_quotas(at("quotas"), &a.quotas)?;
            positive(at("daily_token_cap"), a.daily_token_cap)?;
            for (model, q) in &a.model_quotas {
                let mut path = at("model_quotas");
                path.push(key(model));
                if catalog.find(model).is_none() {
                    return Err(field_error(
                        path,
                        "names a model that is not in the catalog",
                    ));
                }
                check_quotas(path, q)?;
            }
            for (model, r) in &a.reserved {
                let mut path = at("reserved");
                path.push(key(model));
                if catalog.find(model).is_none() {
                    return Err(field_error(
                        path,
                        "names a model that is not in the catalog",
                    ));
                }
                path.push(key("tpm"));
                positive(path, Some(r.tpm))?;
            }
        }
        Ok(())
    }

    /// The catalog this configuration serves: the built-in models, the
    /// `models` overrides and additions, the global latency override and the
    /// provisioned models.
    pub fn catalog(&self) -> Result<Catalog, ConfigError> {
        self.build_catalog().map_err(|e| ConfigError::Invalid {
            origin: "config".to_owned(),
            line: None,
            field: render(&e.path),
            message: e.message,
        })
    }

    fn build_catalog(&self) -> Result<Catalog, FieldError> {
        let mut catalog = Catalog::builtin();
        for (i, m) in self.models.iter().enumerate() {
            let profile = model_profile(&catalog, m, &|k: &str| {
                vec![key("models"), Seg::Index(i), key(k)]
            })?;
            catalog.upsert(profile);
        }
        if let Some(latency) = self.latency {
            let ids: Vec<_> = catalog.models().map(|(_, p)| p.id.clone()).collect();
            for id in ids {
                // unwrap-free: the id was just read from the catalog.
                if let Some(idx) = catalog.find(&id) {
                    let mut p = ModelProfile::clone(catalog.profile(idx));
                    p.latency = latency;
                    catalog.upsert(p);
                }
            }
        }
        for (i, pt) in self.provisioned.iter().enumerate() {
            let at = |k: &str| vec![key("provisioned"), Seg::Index(i), key(k)];
            if !pt.arn.starts_with("arn:") || !pt.arn.contains(":provisioned-model/") {
                return Err(field_error(
                    at("arn"),
                    format!("must be a provisioned-model ARN, got {:?}", pt.arn),
                ));
            }
            if catalog.provisioned().iter().any(|p| p.arn == pt.arn) {
                return Err(field_error(at("arn"), "is configured twice"));
            }
            let model = catalog.find(&pt.model).ok_or_else(|| {
                field_error(at("model"), "names a model that is not in the catalog")
            })?;
            if pt.model_units == 0 {
                return Err(field_error(at("model_units"), "must be >= 1, got 0"));
            }
            catalog.add_provisioned(pt.arn.clone(), model, pt.model_units);
        }
        Ok(catalog)
    }

    /// Every account served: the configured ones, then the default account
    /// unless disabled or its key is reused. An account's index in this list
    /// is its quota identity.
    pub fn effective_accounts(&self) -> Vec<AccountConfig> {
        let mut accounts = self.accounts.clone();
        if self.default_account
            && !accounts
                .iter()
                .any(|a| a.access_key_id == DEFAULT_ACCESS_KEY_ID)
        {
            accounts.push(AccountConfig::default_account());
        }
        accounts
    }

    /// The limits of `account`'s pool for `profile` in `scope`: the account's
    /// per-model override, else its all-model override, else the model's
    /// default (in a cross-Region pool, a `cross_region_` figure wins over
    /// the all-pool one at each level); TPD defaults to the model's fixed
    /// cap or TPM × 1440.
    pub fn pool_limits(
        account: &AccountConfig,
        profile: &ModelProfile,
        scope: PoolScope,
    ) -> PoolLimits {
        let specific = account.model_quotas.get(&profile.id);
        let pick = |f: fn(&QuotaOverride) -> Option<u64>| {
            specific.and_then(f).or_else(|| f(&account.quotas))
        };
        let q = &profile.quotas;
        let (tpm, tpd, rpm) = match scope {
            PoolScope::OnDemand => (
                pick(|o| o.tpm).unwrap_or(q.tpm),
                pick(|o| o.tpd).or(q.tpd),
                pick(|o| o.rpm).or(q.rpm),
            ),
            PoolScope::Reserved => {
                return Self::reserved_limits(account, profile).unwrap_or(PoolLimits {
                    tpm: 0,
                    tpd: 0,
                    rpm: None,
                });
            }
            PoolScope::CrossRegion(_) => (
                pick(|o| o.cross_region_tpm).unwrap_or(q.cross_region_tpm),
                pick(|o| o.cross_region_tpd)
                    .or_else(|| pick(|o| o.tpd))
                    .or(q.cross_region_tpd),
                pick(|o| o.cross_region_rpm)
                    .or_else(|| pick(|o| o.rpm))
                    .or(q.cross_region_rpm),
            ),
        };
        let tpd = tpd.unwrap_or(tpm.saturating_mul(1440));
        PoolLimits { tpm, tpd, rpm }
    }

    /// The account's Reserved-tier pool for a model, when it has one: its
    /// TPM, a day of it, no RPM.
    pub fn reserved_limits(account: &AccountConfig, profile: &ModelProfile) -> Option<PoolLimits> {
        account.reserved.get(&profile.id).map(|r| PoolLimits {
            tpm: r.tpm,
            tpd: r.tpm.saturating_mul(1440),
            rpm: None,
        })
    }
}

/// The profile a `[[models]]` entry describes.
fn model_profile(
    catalog: &Catalog,
    m: &ModelConfig,
    at: &dyn Fn(&str) -> Vec<Seg>,
) -> Result<ModelProfile, FieldError> {
    if m.id.is_empty() {
        return Err(field_error(at("id"), "must not be empty"));
    }
    let base = match (&m.like, catalog.find(&m.id)) {
        (Some(like), _) => catalog
            .find(like)
            .ok_or_else(|| field_error(at("like"), format!("{like:?} is not in the catalog")))?,
        (None, Some(existing)) => existing,
        (None, None) => {
            let family = m
                .family
                .or_else(|| ModelFamily::from_model_id(&m.id))
                .ok_or_else(|| {
                    field_error(
                        at("family"),
                        "is required for a new model whose id names no family",
                    )
                })?;
            // unwrap-free: every family has a built-in reference model.
            catalog
                .find(reference_model(family))
                .ok_or_else(|| field_error(at("family"), "has no reference model"))?
        }
    };
    let mut p = ModelProfile::clone(catalog.profile(base));
    if p.id != m.id {
        p.id.clone_from(&m.id);
        p.family = m
            .family
            .or_else(|| ModelFamily::from_model_id(&m.id))
            .unwrap_or(p.family);
        p.burndown = output_burndown(&m.id);
    }
    if let Some(f) = m.family {
        p.family = f;
    }
    positive(at("max_output_tokens"), m.max_output_tokens)?;
    positive(at("context_window"), m.context_window)?;
    positive(at("burndown"), m.burndown)?;
    check_quotas(at("quotas"), &m.quotas)?;
    p.max_output_tokens = m.max_output_tokens.unwrap_or(p.max_output_tokens);
    p.context_window = m.context_window.unwrap_or(p.context_window);
    p.burndown = m.burndown.unwrap_or(p.burndown);
    p.quotas.tpm = m.quotas.tpm.unwrap_or(p.quotas.tpm);
    p.quotas.cross_region_tpm = m
        .quotas
        .cross_region_tpm
        .unwrap_or(p.quotas.cross_region_tpm);
    p.quotas.tpd = m.quotas.tpd.or(p.quotas.tpd);
    p.quotas.cross_region_tpd = m
        .quotas
        .cross_region_tpd
        .or(m.quotas.tpd)
        .or(p.quotas.cross_region_tpd);
    p.quotas.rpm = m.quotas.rpm.or(p.quotas.rpm);
    p.quotas.cross_region_rpm = m
        .quotas
        .cross_region_rpm
        .or(m.quotas.rpm)
        .or(p.quotas.cross_region_rpm);
    if let Some(min) = m.cache_min_tokens {
        let ttl_1h = p.cache.is_some_and(|c| c.ttl_1h);
        p.cache = (min > 0).then_some(CacheRules {
            min_tokens: min,
            ttl_1h,
        });
    }
    if let (Some(ttl_1h), Some(cache)) = (m.cache_ttl_1h, p.cache.as_mut()) {
        cache.ttl_1h = ttl_1h;
    }
    p.requires_profile = m.requires_profile.unwrap_or(p.requires_profile);
    if let Some(l) = m.latency {
        l.validate()
            .map_err(|msg| field_error(at("latency"), msg))?;
        p.latency = l;
    }
    if let Some(o) = m.output {
        check_output(&o).map_err(|msg| field_error(at("output"), msg))?;
        p.output = o;
    }
    if let Some(s) = m.streams_per_model_unit {
        positive(at("streams_per_model_unit"), Some(u64::from(s)))?;
        p.streams_per_model_unit = s;
    }
    Ok(p)
}

fn check_output(o: &OutputLength) -> Result<(), String> {
    match *o {
        OutputLength::Fixed { .. } => Ok(()),
        OutputLength::Uniform { min, max } if min > max => {
            Err(format!("min must be <= max, got {min} > {max}"))
        }
        OutputLength::Uniform { .. } => Ok(()),
        OutputLength::LogNormal { median, sigma } if !(median.is_finite() && median >= 1.0) => {
            let _ = sigma;
            Err(format!("median must be >= 1, got {median}"))
        }
        OutputLength::LogNormal { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => {
            Err(format!("sigma must be >= 0, got {sigma}"))
        }
        OutputLength::LogNormal { .. } => Ok(()),
    }
}

/// The built-in model a new model of `family` copies by default.
fn reference_model(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::Anthropic => "anthropic.claude-3-5-sonnet-20241022-v2:0",
        ModelFamily::Llama => "meta.llama3-3-70b-instruct-v1:0",
        ModelFamily::Nova => "amazon.nova-pro-v1:0",
        ModelFamily::Titan => "amazon.titan-text-express-v1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_serves_the_default_account() {
        let c = SimConfig::from_toml("", "sim.toml").unwrap();
        let accounts = c.effective_accounts();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            accounts[0].secret_access_key,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        );
        assert!(!format!("{:?}", accounts[0]).contains("EXAMPLEKEY"));
    }

    #[test]
    fn range_errors_name_file_line_and_field() {
        let text = r#"
seed = 1
[[accounts]]
access_key_id = "AKIAONE"
secret_access_key = "s1"
account_id = "111122223333"

[[accounts]]
access_key_id = "AKIATWO"
secret_access_key = "s2"
account_id = "444455556666"
quotas = { tpm = 0 }
"#;
        let err = SimConfig::from_toml(text, "sim.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:12: accounts[1].quotas.tpm must be > 0, got 0"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let err =
            SimConfig::from_toml("[[accounts]]\naccess_key = \"x\"\n", "sim.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("sim.toml: "), "{msg}");
        assert!(
            msg.contains("access_key") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn errors_say_their_cause_once_even_as_a_chain() {
        let parse = SimConfig::from_toml("seed = \"x\"\n", "sim.toml").unwrap_err();
        let missing =
            SimConfig::load(Path::new("/nonexistent/quarry-sim-test/sim.toml")).unwrap_err();
        for (err, cause) in [(parse, "invalid type"), (missing, "No such file")] {
            let plain = err.to_string();
            let chain = format!("{:#}", anyhow::Error::new(err));
            assert_eq!(plain, chain, "no source repeats the message");
            assert_eq!(chain.matches(cause).count(), 1, "{chain}");
        }
    }

    #[test]
    fn model_overrides_additions_and_provisioned() {
        let text = r#"
latency = { kind = "zero" }
[[models]]
id = "meta.llama3-3-70b-instruct-v1:0"
output = { kind = "fixed", tokens = 5 }
quotas = { tpm = 123 }
[[models]]
id = "meta.llama3-2-3b-instruct-v1:0"
[[provisioned]]
arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl"
model = "meta.llama3-2-3b-instruct-v1:0"
model_units = 1
[[accounts]]
access_key_id = "AKIAONE"
secret_access_key = "s1"
account_id = "111122223333"
[accounts.model_quotas."meta.llama3-3-70b-instruct-v1:0"]
cross_region_tpm = 777
"#;
        let c = SimConfig::from_toml(text, "sim.toml").unwrap();
        let catalog = c.catalog().unwrap();
        let llama = catalog.profile(catalog.find("meta.llama3-3-70b-instruct-v1:0").unwrap());
        assert_eq!(llama.output, OutputLength::Fixed { tokens: 5 });
        assert!(llama.latency.is_zero());
        let small = catalog.profile(catalog.find("meta.llama3-2-3b-instruct-v1:0").unwrap());
        assert_eq!(small.family, ModelFamily::Llama);
        assert_eq!(catalog.provisioned().len(), 1);
        let accounts = c.effective_accounts();
        assert_eq!(accounts.len(), 2);
        let od = SimConfig::pool_limits(&accounts[0], llama, PoolScope::OnDemand);
        assert_eq!((od.tpm, od.tpd), (123, 123 * 1440));
        let xr = SimConfig::pool_limits(&accounts[0], llama, PoolScope::CrossRegion("us"));
        assert_eq!(xr.tpm, 777);
    }

    #[test]
    fn bad_references_are_named() {
        let err = SimConfig::from_toml(
            "[[provisioned]]\narn = \"arn:aws:bedrock:us-east-1:1:provisioned-model/x\"\nmodel = \"nope\"\nmodel_units = 1\n",
            "sim.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:3: provisioned[0].model names a model that is not in the catalog"
        );
        let err = SimConfig::from_toml(
            "[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\nlatency = { kind = \"contended\", base_ttft_ms = 1.0, prefill_tokens_per_s = 1.0, gap_ms = 1.0, gap_per_stream_ms = 0.0, gap_per_context_token_ms = 0.0, capacity = 0 }\n",
            "sim.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:3: models[0].latency capacity must be >= 1, got 0"
        );
    }

    #[test]
    fn default_pools_carry_the_figures_quarry_was_built_from() {
        let c = SimConfig::default();
        let catalog = c.catalog().unwrap();
        let account = AccountConfig::default_account();
        let limits = |id: &str, scope| {
            let p = catalog.profile(catalog.find(id).unwrap());
            SimConfig::pool_limits(&account, p, scope)
        };
        let us = PoolScope::CrossRegion("us");
        let llama = limits("meta.llama3-3-70b-instruct-v1:0", PoolScope::OnDemand);
        assert_eq!(
            (llama.rpm, llama.tpm, llama.tpd),
            (Some(800), 600_000, 600_000 * 1440)
        );
        let opus = limits("anthropic.claude-opus-4-6-v1", us);
        assert_eq!(
            (opus.rpm, opus.tpm, opus.tpd),
            (Some(25), 2_000_000, 2_592_000)
        );
        for sonnet in [
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-6",
        ] {
            assert_eq!(limits(sonnet, us).tpd, 3_600_000_000, "{sonnet}");
            assert_eq!(limits(sonnet, us).rpm, None, "{sonnet}");
        }
        // No RPM quota where no source gives one.
        assert_eq!(
            limits("amazon.nova-pro-v1:0", PoolScope::OnDemand).rpm,
            None
        );
        assert_eq!(limits("meta.llama3-3-70b-instruct-v1:0", us).rpm, None);
    }

    #[test]
    fn cross_region_figures_win_in_cross_region_pools() {
        let text = r#"
[[models]]
id = "anthropic.claude-opus-4-6-v1"
quotas = { rpm = 3 }
[[accounts]]
access_key_id = "AKIAONE"
secret_access_key = "s1"
account_id = "111122223333"
quotas = { rpm = 10, tpd = 5000000 }
[accounts.model_quotas."meta.llama3-3-70b-instruct-v1:0"]
cross_region_rpm = 7
cross_region_tpd = 9000000
"#;
        let c = SimConfig::from_toml(text, "sim.toml").unwrap();
        let catalog = c.catalog().unwrap();
        let accounts = c.effective_accounts();
        let (one, default) = (&accounts[0], &accounts[1]);
        let llama = catalog.profile(catalog.find("meta.llama3-3-70b-instruct-v1:0").unwrap());
        let us = PoolScope::CrossRegion("us");
        let od = SimConfig::pool_limits(one, llama, PoolScope::OnDemand);
        assert_eq!((od.rpm, od.tpd), (Some(10), 5_000_000));
        let xr = SimConfig::pool_limits(one, llama, us);
        assert_eq!((xr.rpm, xr.tpd), (Some(7), 9_000_000));
        // A model's `rpm` sets both of its pools.
        let opus = catalog.profile(catalog.find("anthropic.claude-opus-4-6-v1").unwrap());
        assert_eq!(SimConfig::pool_limits(default, opus, us).rpm, Some(3));
        let err = SimConfig::from_toml(
            "[[models]]\nid = \"anthropic.claude-opus-4-6-v1\"\nquotas = { cross_region_rpm = 0 }\n",
            "sim.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:3: models[0].quotas.cross_region_rpm must be > 0, got 0"
        );
    }

    #[test]
    fn burndown_per_model_overrides_the_table() {
        let text = "[[models]]\nid = \"anthropic.claude-opus-4-6-v1\"\nburndown = 10\n";
        let c = SimConfig::from_toml(text, "sim.toml").unwrap();
        let catalog = c.catalog().unwrap();
        let burndown = |id: &str| catalog.profile(catalog.find(id).unwrap()).burndown;
        assert_eq!(burndown("anthropic.claude-opus-4-6-v1"), 10);
        assert_eq!(burndown("anthropic.claude-sonnet-4-6"), 5);
        assert_eq!(burndown("meta.llama3-3-70b-instruct-v1:0"), 1);
        let err = SimConfig::from_toml(
            "seed = 1\n[[models]]\nid = \"anthropic.claude-opus-4-6-v1\"\nburndown = 0\n",
            "sim.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sim.toml:4: models[0].burndown must be > 0, got 0"
        );
        let err = SimConfig::from_toml(
            "[[models]]\nid = \"anthropic.claude-opus-4-6-v1\"\nburndown = -1\n",
            "sim.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("sim.toml: ") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn session_tokens() {
        let mut a = AccountConfig::default_account();
        assert!(a.accepts_session_token(None));
        assert!(!a.accepts_session_token(Some("t")));
        a.session_tokens.push("t".to_owned());
        assert!(a.accepts_session_token(Some("t")));
        assert!(!a.accepts_session_token(None));
    }
}
