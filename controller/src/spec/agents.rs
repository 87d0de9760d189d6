//! Validation of `[agents]`: the agent groups of a distributed run and how
//! the controller reaches them.
//!
//! ```toml
//! [agents]
//! token_file = "agent-token"        # bearer token (paths relative to the spec)
//! # ca = "agents-ca.pem"            # TLS: the CA of the agents' certificates
//! # client_cert = "controller.pem"  # mutual TLS (with client_key and ca)
//! # client_key = "controller.key"
//! # lease_ttl = "10s"               # 1s to 1h
//!
//! [[agents.group]]
//! name = "prod-eu"                  # series and totals are reported under it
//! agents = ["10.0.1.5:7400", "dns:quarry-agents.eu.svc:7400"]
//! weight = 2                        # its part of the load, relative to the others (default 1)
//! region = "eu-west-1"              # the Region it fires at; its agents must be deployed there
//! account_alias = "prod"            # its agents must hold this account's credentials
//! credential_profile = "bedrock-load"   # AWS profile the agents use (target.kind = "aws")
//! ```
//!
//! A group's part of the load (concurrency, rate, request count, in-flight
//! cap) is its weight's exact part of the plan; inside the group it is
//! split equally among the agents its entries resolve to.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use quarry_engine::{RunPlan, Target};
use serde::Deserialize;
use toml::Spanned;

use super::target::is_region_name;
use super::validate::Checker;
use crate::coordinator::split::ShareSlot;
use crate::coordinator::split::{SplitError, split_slots};
use crate::fleet::{AgentGroupSpec, AgentSource, AgentsSpec, DiscoveryError, parse_agent};

/// `[agents]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgents {
    pub(crate) group: Option<Vec<Spanned<RawAgentGroup>>>,
    pub(crate) token_file: Option<Spanned<String>>,
    pub(crate) ca: Option<Spanned<String>>,
    pub(crate) client_cert: Option<Spanned<String>>,
    pub(crate) client_key: Option<Spanned<String>>,
    pub(crate) lease_ttl: Option<Spanned<String>>,
}

/// `[[agents.group]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgentGroup {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) agents: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) weight: Option<Spanned<f64>>,
    pub(crate) region: Option<Spanned<String>>,
    pub(crate) account_alias: Option<Spanned<String>>,
    pub(crate) credential_profile: Option<Spanned<String>>,
}

/// The shortest and longest lease TTL a spec may set.
const LEASE_TTL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));

/// The longest group name.
const MAX_GROUP_NAME: usize = 64;

/// Validates `[agents]`. `plan` (when the rest of the spec is valid) lets
/// the load's split over the groups be checked before anything runs;
/// relative paths are resolved against `spec_dir`.
pub(crate) fn validate_agents(
    c: &mut Checker,
    raw: &Spanned<RawAgents>,
    plan: Option<&RunPlan>,
    spec_dir: &Path,
) -> Option<AgentsSpec> {
    let a = raw.get_ref();
    let path = |c: &mut Checker, v: &Option<Spanned<String>>, field: &str| match v {
        Some(p) if p.get_ref().trim().is_empty() => {
            c.error(p, field, "must not be empty");
            None
        }
        Some(p) => Some(Some(spec_dir.join(p.get_ref()))),
        None => Some(None),
    };
    let token_file = path(c, &a.token_file, "agents.token_file");
    let ca = path(c, &a.ca, "agents.ca");
    let client_cert = path(c, &a.client_cert, "agents.client_cert");
    let client_key = path(c, &a.client_key, "agents.client_key");
    let mut ok = true;
    match (&a.client_cert, &a.client_key) {
        (Some(cert), None) => {
            c.error(
                cert,
                "agents.client_cert",
                "needs agents.client_key (mutual TLS)",
            );
            ok = false;
        }
        (None, Some(key)) => {
            c.error(
                key,
                "agents.client_key",
                "needs agents.client_cert (mutual TLS)",
            );
            ok = false;
        }
        _ => {}
    }
    if let (Some(cert), None) = (&a.client_cert, &a.ca) {
        let msg = "needs agents.ca: mutual TLS runs over TLS, which needs the agents' CA";
        c.error(cert, "agents.client_cert", msg);
        ok = false;
    }
    let lease_ttl = match &a.lease_ttl {
        None => Some(None),
        Some(v) => match c.duration(v, "agents.lease_ttl") {
            Some(d) if d < LEASE_TTL_RANGE.0 || d > LEASE_TTL_RANGE.1 => {
                c.error(
                    v,
                    "agents.lease_ttl",
                    format!("must be between 1s and 1h, got {d:?}"),
                );
                None
            }
            Some(d) => Some(Some(d)),
            None => None,
        },
    };
    let groups = groups(c, a.group.as_deref().unwrap_or_default(), plan);
    if let (Some(groups), Some(plan)) = (&groups, plan) {
        ok &= check_split(c, a.group.as_deref().unwrap_or_default(), groups, plan);
    }
    if !ok {
        return None;
    }
    Some(AgentsSpec {
        groups: groups?,
        token_file: token_file?,
        ca: ca?,
        client_cert: client_cert?,
        client_key: client_key?,
        lease_ttl: lease_ttl?,
    })
}

/// Every `[[agents.group]]`; `None` when any is invalid.
fn groups(
    c: &mut Checker,
    raw: &[Spanned<RawAgentGroup>],
    plan: Option<&RunPlan>,
) -> Option<Vec<AgentGroupSpec>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    // Name -> line, and agent entry -> (group, line), for duplicates.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut entries: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (i, g) in raw.iter().enumerate() {
        match group(c, i, g, plan, &mut names, &mut entries) {
            Some(group) => out.push(group),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn group(
    c: &mut Checker,
    i: usize,
    g: &Spanned<RawAgentGroup>,
    plan: Option<&RunPlan>,
    names: &mut BTreeMap<String, usize>,
    entries: &mut BTreeMap<String, (String, usize)>,
) -> Option<AgentGroupSpec> {
    let raw = g.get_ref();
    let field = |name: &str| format!("agents.group[{i}].{name}");
    let name = match &raw.name {
        None => {
            c.missing(
                g,
                &field("name"),
                " (the group's series and totals are reported under it)",
            );
            None
        }
        Some(n) => group_name(c, n, &field("name"), names),
    };
    let agents = match &raw.agents {
        None => {
            let why = ": a list of \"host:port\" or \"dns:name:port\" entries";
            c.missing(g, &field("agents"), why);
            None
        }
        Some(list) => agent_list(c, list, &field("agents"), name.as_deref(), entries),
    };
    let weight = match &raw.weight {
        None => Some(1.0),
        Some(w) if w.get_ref().is_finite() && *w.get_ref() > 0.0 => Some(*w.get_ref()),
        Some(w) => {
            let msg = format!("must be a number > 0, got {}", w.get_ref());
            c.error(w, field("weight"), msg);
            None
        }
    };
    let region = match &raw.region {
        None => Some(None),
        Some(r) if is_region_name(r.get_ref()) => Some(Some(r.get_ref().clone())),
        Some(r) => {
            let msg = format!(
                "{:?} is not an AWS Region name like \"eu-west-1\"",
                r.get_ref()
            );
            c.error(r, field("region"), msg);
            None
        }
    };
    let account_alias = non_empty(c, &raw.account_alias, &field("account_alias"));
    let mut credential_profile =
        non_empty(c, &raw.credential_profile, &field("credential_profile"));
    if let (Some(p), Some(plan)) = (&raw.credential_profile, plan)
        && !matches!(plan.target, Target::Aws { .. })
    {
        let msg = "only applies to target.kind = \"aws\" (the simulator takes its built-in keys)";
        c.error(p, field("credential_profile"), msg);
        credential_profile = None;
    }
    Some(AgentGroupSpec {
        name: name?,
        agents: agents?,
        weight: weight?,
        region: region?,
        account_alias: account_alias?,
        credential_profile: credential_profile?,
    })
}

/// A group name: 1-64 of `[A-Za-z0-9._@-]` (it appears in series labels
/// `group/model/operation/stage`), unique.
fn group_name(
    c: &mut Checker,
    n: &Spanned<String>,
    field: &str,
    names: &mut BTreeMap<String, usize>,
) -> Option<String> {
    let name = n.get_ref();
    let valid = !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._@-".contains(ch));
    if !valid {
        let msg = format!(
            "must be 1-{MAX_GROUP_NAME} letters, digits, '.', '_', '@' or '-', got {name:?}"
        );
        c.error(n, field, msg);
        return None;
    }
    let line = c.line_of(n);
    if let Some(first) = names.get(name) {
        let msg = format!("group {name:?} is already defined on line {first}");
        c.error(n, field, msg);
        return None;
    }
    names.insert(name.clone(), line);
    Some(name.clone())
}

/// A group's `agents` list: at least one entry, each `host:port` or
/// `dns:name:port`, none listed in another group (an agent runs one share
/// at a time).
fn agent_list(
    c: &mut Checker,
    list: &Spanned<Vec<Spanned<String>>>,
    field: &str,
    group: Option<&str>,
    entries: &mut BTreeMap<String, (String, usize)>,
) -> Option<Vec<AgentSource>> {
    if list.get_ref().is_empty() {
        c.error(list, field, "must list at least one agent");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (j, entry) in list.get_ref().iter().enumerate() {
        let field = format!("{field}[{j}]");
        match parse_agent(entry.get_ref()) {
            Ok(source) => {
                let key = source.to_string();
                let line = c.line_of(entry);
                match entries.get(&key) {
                    Some((other, first)) => {
                        let msg = format!(
                            "{key:?} is already listed in group {other:?} (line {first}): an agent runs one share at a time"
                        );
                        c.error(entry, field, msg);
                        ok = false;
                    }
                    None => {
                        entries.insert(key, (group.unwrap_or("?").to_owned(), line));
                        out.push(source);
                    }
                }
            }
            Err(DiscoveryError::Entry { reason, .. }) => {
                c.error(entry, field, format!("{:?}: {reason}", entry.get_ref()));
                ok = false;
            }
            Err(e) => {
                c.error(entry, field, e.to_string());
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// An optional string that must not be blank when given.
fn non_empty(c: &mut Checker, v: &Option<Spanned<String>>, field: &str) -> Option<Option<String>> {
    match v {
        Some(s) if s.get_ref().trim().is_empty() => {
            c.error(s, field, "must not be empty");
            None
        }
        other => Some(other.as_ref().map(|s| s.get_ref().clone())),
    }
}

/// Checks that the load splits over the groups, counting each entry as one
/// agent (a DNS name may stand for more, which is checked again when it is
/// resolved). The error is placed at the group it concerns.
fn check_split(
    c: &mut Checker,
    raw: &[Spanned<RawAgentGroup>],
    groups: &[AgentGroupSpec],
    plan: &RunPlan,
) -> bool {
    if groups.is_empty() {
        return true;
    }
    let slots: Vec<ShareSlot> = groups
        .iter()
        .flat_map(|g| g.slots(g.agents.len()))
        .collect();
    let err = match split_slots(plan, &slots) {
        Ok(_) => return true,
        Err(e) => e,
    };
    let at = match &err {
        SplitError::GroupTooSmall { group, .. } | SplitError::GroupLoad { group, .. } => {
            groups.iter().position(|g| &g.name == group).unwrap_or(0)
        }
        _ => 0,
    };
    let span = raw.get(at).map(Spanned::span);
    c.error_at(span, format!("agents.group[{at}]"), err.to_string());
    false
}
