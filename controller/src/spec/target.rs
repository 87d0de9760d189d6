//! Validation of `[target]`: the embedded simulator or real Bedrock.

use quarry_engine::Target;
use toml::Spanned;

use super::raw::RawTarget;
use super::validate::Checker;

/// Validates `[target]`; `None` when any error was recorded.
pub(crate) fn validate_target(c: &mut Checker, t: &Spanned<RawTarget>) -> Option<Target> {
    let raw = t.get_ref();
    match raw.kind.as_ref().map_or("sim", |k| k.get_ref().as_str()) {
        "sim" => {
            only_for(c, &raw.region, "target.region", "aws");
            only_for(c, &raw.endpoint, "target.endpoint", "aws");
            only_for(c, &raw.profile, "target.profile", "aws");
            let sim_profile = non_empty(c, &raw.sim_profile, "target.sim_profile")?;
            Some(Target::Sim { sim_profile })
        }
        "aws" => aws(c, t),
        other => {
            let at = raw.kind.as_ref().map_or(t.span(), Spanned::span);
            let msg = format!("unknown target {other:?}: expected \"sim\" or \"aws\"");
            c.error_at(Some(at), "target.kind", msg);
            None
        }
    }
}

fn aws(c: &mut Checker, t: &Spanned<RawTarget>) -> Option<Target> {
    let raw = t.get_ref();
    only_for(c, &raw.sim_profile, "target.sim_profile", "sim");
    let region = match &raw.region {
        None => {
            let why = " when kind = \"aws\" (e.g. region = \"us-east-1\")";
            c.missing(t, "target.region", why);
            None
        }
        Some(r) => {
            let name = r.get_ref();
            let ok = is_region_name(name);
            if !ok {
                let msg = format!("{name:?} is not an AWS Region name like \"us-east-1\"");
                c.error(r, "target.region", msg);
            }
            ok.then(|| name.clone())
        }
    };
    let endpoint = non_empty(c, &raw.endpoint, "target.endpoint")?;
    if let (Some(e), Some(at)) = (&endpoint, &raw.endpoint)
        && !(e.starts_with("https://") || e.starts_with("http://"))
    {
        let msg = format!("must be an http:// or https:// URL, got {e:?}");
        c.error(at, "target.endpoint", msg);
        return None;
    }
    let profile = non_empty(c, &raw.profile, "target.profile")?;
    Some(Target::Aws {
        region: region?,
        endpoint,
        profile,
    })
}

/// Whether `name` looks like an AWS Region name (`us-east-1`): non-empty,
/// lowercase letters, digits and dashes.
pub(crate) fn is_region_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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

/// Records an error when `v` is set on a target of another kind.
fn only_for(c: &mut Checker, v: &Option<Spanned<String>>, field: &str, kind: &str) {
    if let Some(v) = v {
        c.error(v, field, format!("only applies to kind = \"{kind}\""));
    }
}
