//! The pattern half of model-id validation: the plain-id alphabets and the
//! ARN forms of `InvokeModelIdentifier` / `ConversationalModelId`.

use super::{ModelIdError, ModelIdKind};
use crate::GEO_PREFIXES;

/// The six colon-separated fields of an ARN; the resource keeps its colons.
pub(super) struct ArnFields<'a> {
    pub(super) partition: &'a str,
    pub(super) service: &'a str,
    pub(super) region: &'a str,
    pub(super) account: &'a str,
    pub(super) resource: &'a str,
}

impl<'a> ArnFields<'a> {
    pub(super) fn split(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(ArnFields {
            partition,
            service,
            region,
            account,
            resource: parts.next()?,
        })
    }
}

fn all(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(ok)
}

fn is_profile_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'.')
}

fn is_twelve(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    s.len() == 12 && all(s, ok)
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// The non-ARN alternatives of the pattern: `[a-zA-Z0-9-:.]+` or
/// `([0-9a-zA-Z][_-]?)+` (the only form that admits `_`).
pub(super) fn plain_kind(id: &str) -> Result<ModelIdKind, ModelIdError> {
    // Report a character outside both alphabets before the subtler
    // underscore-placement rule, so the message points at the real culprit.
    if let Some((offset, ch)) = id
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '_')))
    {
        return Err(ModelIdError::InvalidCharacter {
            id: id.to_owned(),
            ch,
            offset,
        });
    }
    let dotted = all(id, is_profile_char);
    if !dotted {
        check_underscore_form(id)?;
        return Ok(ModelIdKind::Other);
    }
    let Some((prefix, rest)) = id.split_once('.') else {
        return Ok(ModelIdKind::Other);
    };
    if GEO_PREFIXES.contains(&prefix) && rest.contains('.') {
        Ok(ModelIdKind::CrossRegionProfile)
    } else {
        Ok(ModelIdKind::FoundationModel)
    }
}

fn check_underscore_form(id: &str) -> Result<(), ModelIdError> {
    let mut prev_sep = true;
    for (offset, ch) in id.char_indices() {
        let ok = if ch.is_ascii_alphanumeric() {
            prev_sep = false;
            true
        } else if ch == '_' || ch == '-' {
            let ok = !prev_sep;
            prev_sep = true;
            ok
        } else {
            false
        };
        if !ok {
            return Err(ModelIdError::InvalidCharacter {
                id: id.to_owned(),
                ch,
                offset,
            });
        }
    }
    Ok(())
}

pub(super) fn arn_kind(id: &str) -> Result<ModelIdKind, ModelIdError> {
    let bad = |reason| ModelIdError::MalformedArn {
        id: id.to_owned(),
        reason,
    };
    let f = ArnFields::split(id)
        .ok_or_else(|| bad("expected arn:partition:service:region:account:resource"))?;
    if f.partition != "aws" && !(f.partition.starts_with("aws-") && f.partition.len() > 4) {
        return Err(bad("partition must be aws or aws-*"));
    }
    let twelve_digits = is_twelve(f.account, |b| b.is_ascii_digit());
    if f.service == "sagemaker" {
        let name = f.resource.strip_prefix("endpoint/");
        let ok = f.partition == "aws"
            && all(f.region, |b| is_lower_alnum(b) || b == b'-')
            && twelve_digits
            && name.is_some_and(|n| all(n, |b| b.is_ascii_alphanumeric() || b == b'-'));
        return if ok {
            Ok(ModelIdKind::SageMakerEndpointArn)
        } else {
            Err(bad(
                "expected arn:aws:sagemaker:{region}:{account}:endpoint/{name}",
            ))
        };
    }
    if f.service != "bedrock" {
        return Err(bad("service must be bedrock or sagemaker"));
    }
    if f.region.len() > 20 || !all(f.region, |b| is_lower_alnum(b) || b == b'-') {
        return Err(bad("region must be 1..=20 of [a-z0-9-]"));
    }
    let (resource_type, rid) = f
        .resource
        .split_once('/')
        .ok_or_else(|| bad("resource must be {type}/{id}"))?;
    if resource_type == "foundation-model" {
        return if !f.account.is_empty() {
            Err(bad("foundation-model ARNs have an empty account field"))
        } else if all(rid, |b| {
            is_lower_alnum(b) || matches!(b, b'-' | b'.' | b':')
        }) {
            Ok(ModelIdKind::FoundationModelArn)
        } else {
            Err(bad("foundation-model id must be of [a-z0-9-.:]"))
        };
    }
    if !twelve_digits {
        return Err(bad("account must be 12 digits"));
    }
    let (kind, ok) = match resource_type {
        "inference-profile" => (ModelIdKind::InferenceProfileArn, all(rid, is_profile_char)),
        "application-inference-profile" => (
            ModelIdKind::ApplicationInferenceProfileArn,
            all(rid, is_profile_char),
        ),
        "provisioned-model" => (
            ModelIdKind::ProvisionedModelArn,
            is_twelve(rid, is_lower_alnum),
        ),
        "imported-model" => (
            ModelIdKind::ImportedModelArn,
            is_twelve(rid, is_lower_alnum),
        ),
        "custom-model-deployment" => (
            ModelIdKind::CustomModelDeploymentArn,
            is_twelve(rid, is_lower_alnum),
        ),
        "custom-model" => (
            ModelIdKind::CustomModelArn,
            rid.rsplit_once('/').is_some_and(|(base, tail)| {
                all(base, |b| {
                    is_lower_alnum(b) || matches!(b, b'-' | b'.' | b':')
                }) && is_twelve(tail, is_lower_alnum)
            }),
        ),
        "prompt" => (ModelIdKind::PromptArn, is_prompt_id(rid)),
        "prompt-router" | "default-prompt-router" => {
            (ModelIdKind::PromptRouterArn, all(rid, is_profile_char))
        }
        _ => return Err(bad("unknown resource type")),
    };
    if ok {
        Ok(kind)
    } else {
        Err(bad("resource id does not match its type's pattern"))
    }
}

/// `[0-9a-zA-Z]{10}(:[0-9]{1,5})?`
fn is_prompt_id(rid: &str) -> bool {
    let (id, version) = match rid.split_once(':') {
        Some((id, v)) => (id, Some(v)),
        None => (rid, None),
    };
    id.len() == 10
        && all(id, |b| b.is_ascii_alphanumeric())
        && version.is_none_or(|v| v.len() <= 5 && all(v, |b| b.is_ascii_digit()))
}
