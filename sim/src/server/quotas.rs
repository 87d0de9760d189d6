//! The Service Quotas API subset the simulator serves, so `quarry quotas`
//! and the SDKs' Service Quotas clients work offline: `ListServiceQuotas`
//! (with `NextToken`/`MaxResults` pagination and the `QuotaCode` filter) and
//! `GetServiceQuota`, over AWS JSON 1.1 (`POST /`, `X-Amz-Target:
//! ServiceQuotasV20190624.<Operation>`, content type
//! `application/x-amz-json-1.1`), SigV4-signed for service `servicequotas`.
//! The quotas are the caller's account's ([`crate::account_quotas`]).
//!
//! Errors are answered as the service names them (`__type` in the body and
//! `x-amzn-ErrorType`): `NoSuchResourceException` for a service code other
//! than `bedrock` or an unknown quota code, `InvalidPaginationTokenException`
//! for a token this server did not issue, `ValidationException` for a missing
//! or out-of-range member, `SerializationException` for a body that is not a
//! JSON object, `UnknownOperationException` for any other operation. The
//! messages are the simulator's wording.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, DATE};
use http::{HeaderValue, Response, StatusCode};
use quarry_bedrock::header_names::REQUEST_ID;
use quarry_bedrock::quota::SERVICE_QUOTAS_SERVICE_CODE;
use serde_json::{Map, Value, json};

use super::body::SimBody;
use super::context::{Shared, new_id};
use crate::runtime::AccountIdx;
use crate::service_quotas::{SERVICE_NAME, SimServiceQuota, account_quotas};

/// The `X-Amz-Target` prefix of Service Quotas operations.
pub(crate) const TARGET_PREFIX: &str = "ServiceQuotasV20190624.";

/// AWS JSON 1.1's content type.
const AMZ_JSON_1_1: &str = "application/x-amz-json-1.1";

/// The most quotas one page holds (the API's `MaxResults` bound), and the
/// page size when the request sets none.
const MAX_RESULTS: u64 = 100;

/// Pagination tokens this server issues: this prefix, then the offset of
/// the page in hex.
const TOKEN_PREFIX: &str = "quarry-sim-sq1-";

/// A Service Quotas operation named by `X-Amz-Target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotasOperation {
    /// `ListServiceQuotas`.
    List,
    /// `GetServiceQuota`.
    Get,
    /// Any other operation of the service: not served.
    Other,
}

impl QuotasOperation {
    /// The operation of an `X-Amz-Target` value; `None` for another service's.
    pub(crate) fn from_target(target: &str) -> Option<Self> {
        let op = target.strip_prefix(TARGET_PREFIX)?;
        Some(match op {
            "ListServiceQuotas" => QuotasOperation::List,
            "GetServiceQuota" => QuotasOperation::Get,
            _ => QuotasOperation::Other,
        })
    }
}

/// A Service Quotas error, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuotasError {
    code: &'static str,
    message: String,
}

impl QuotasError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        QuotasError {
            code,
            message: message.into(),
        }
    }

    fn missing(member: &str) -> Self {
        QuotasError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }
}

/// The answer to an authenticated Service Quotas request by `account`,
/// signed for `region`.
pub(crate) fn answer(
    shared: &Shared,
    operation: QuotasOperation,
    account: AccountIdx,
    region: &str,
    body: &[u8],
) -> Response<SimBody> {
    let result = match operation {
        QuotasOperation::List => list(shared, account, region, body),
        QuotasOperation::Get => get(shared, account, region, body),
        QuotasOperation::Other => Err(unknown_operation()),
    };
    match result {
        Ok(value) => reply(shared, StatusCode::OK, None, value.to_string()),
        Err(e) => error_response(shared, e),
    }
}

/// `UnknownOperationException`, for an operation this server does not serve.
pub(crate) fn unknown_operation() -> QuotasError {
    QuotasError::new(
        "UnknownOperationException",
        "The simulator serves ListServiceQuotas and GetServiceQuota only.",
    )
}

/// An error as AWS JSON 1.1 carries it.
pub(crate) fn error_response(shared: &Shared, e: QuotasError) -> Response<SimBody> {
    let status = match e.code {
        "AccessDeniedException" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = json!({ "__type": e.code, "message": e.message }).to_string();
    reply(shared, status, Some(e.code), body)
}

fn reply(
    shared: &Shared,
    status: StatusCode,
    error_type: Option<&str>,
    body: String,
) -> Response<SimBody> {
    let mut r = Response::new(SimBody::full(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON_1_1));
    if let Some(v) = error_type.and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert("x-amzn-errortype", v);
    }
    if let Ok(v) = HeaderValue::from_str(&new_id()) {
        h.insert(REQUEST_ID, v);
    }
    h.insert(DATE, shared.date());
    r
}

/// The request body as a JSON object (an empty body reads as `{}`).
fn object(body: &[u8]) -> Result<Map<String, Value>, QuotasError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(QuotasError::new(
            "SerializationException",
            "The request body is not a JSON object.",
        )),
    }
}

fn string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    member: &str,
) -> Result<Option<&'a str>, QuotasError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(QuotasError::new(
            "SerializationException",
            format!("{member} must be a string"),
        )),
    }
}

/// The caller's quotas, after checking the service code.
fn quotas_of(
    shared: &Shared,
    account: AccountIdx,
    map: &Map<String, Value>,
) -> Result<Vec<SimServiceQuota>, QuotasError> {
    let code =
        string(map, "ServiceCode", "serviceCode")?.ok_or(QuotasError::missing("serviceCode"))?;
    if code != SERVICE_QUOTAS_SERVICE_CODE {
        return Err(QuotasError::new(
            "NoSuchResourceException",
            format!(
                "The service code {code:?} does not exist in the simulator (it serves Service Quotas for \"bedrock\" only)."
            ),
        ));
    }
    let account = &shared.sim.accounts()[account.0 as usize];
    Ok(account_quotas(shared.sim.catalog(), account))
}

fn list(
    shared: &Shared,
    account: AccountIdx,
    region: &str,
    body: &[u8],
) -> Result<Value, QuotasError> {
    let map = object(body)?;
    let quotas = quotas_of(shared, account, &map)?;
    let max = match map.get("MaxResults") {
        None | Some(Value::Null) => MAX_RESULTS,
        Some(v) => {
            let n = v.as_i64().ok_or_else(|| {
                QuotasError::new("SerializationException", "maxResults must be an integer")
            })?;
            if !(1..=MAX_RESULTS as i64).contains(&n) {
                let rule = if n < 1 {
                    "greater than or equal to 1".to_owned()
                } else {
                    format!("less than or equal to {MAX_RESULTS}")
                };
                return Err(QuotasError::new(
                    "ValidationException",
                    format!(
                        "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value {rule}"
                    ),
                ));
            }
            n as u64
        }
    };
    let start = match string(&map, "NextToken", "nextToken")? {
        None => 0,
        Some(token) => parse_token(token)
            .filter(|&at| at < quotas.len())
            .ok_or_else(|| {
                QuotasError::new(
                    "InvalidPaginationTokenException",
                    "The pagination token is invalid or expired.",
                )
            })?,
    };
    let filter = string(&map, "QuotaCode", "quotaCode")?;
    let account_id = &shared.sim.accounts()[account.0 as usize].account_id;
    let selected: Vec<&SimServiceQuota> = quotas
        .iter()
        .filter(|q| filter.is_none_or(|code| q.code == code))
        .collect();
    let end = (start + max as usize).min(selected.len());
    let page: Vec<Value> = selected
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|q| quota_json(q, region, account_id))
        .collect();
    let mut out = json!({ "Quotas": page });
    if end < selected.len() {
        out["NextToken"] = Value::String(format!("{TOKEN_PREFIX}{end:x}"));
    }
    Ok(out)
}

fn parse_token(token: &str) -> Option<usize> {
    let hex = token.strip_prefix(TOKEN_PREFIX)?;
    usize::from_str_radix(hex, 16).ok()
}

fn get(
    shared: &Shared,
    account: AccountIdx,
    region: &str,
    body: &[u8],
) -> Result<Value, QuotasError> {
    let map = object(body)?;
    let quotas = quotas_of(shared, account, &map)?;
    let code = string(&map, "QuotaCode", "quotaCode")?.ok_or(QuotasError::missing("quotaCode"))?;
    let account_id = &shared.sim.accounts()[account.0 as usize].account_id;
    let quota = quotas.iter().find(|q| q.code == code).ok_or_else(|| {
        QuotasError::new(
            "NoSuchResourceException",
            format!("The quota code {code:?} does not exist for service bedrock."),
        )
    })?;
    Ok(json!({ "Quota": quota_json(quota, region, account_id) }))
}

/// One `ServiceQuota` structure.
fn quota_json(q: &SimServiceQuota, region: &str, account_id: &str) -> Value {
    json!({
        "ServiceCode": SERVICE_QUOTAS_SERVICE_CODE,
        "ServiceName": SERVICE_NAME,
        "QuotaArn": format!("arn:aws:servicequotas:{region}:{account_id}:{SERVICE_QUOTAS_SERVICE_CODE}/{}", q.code),
        "QuotaCode": q.code,
        "QuotaName": q.name,
        "Value": q.value as f64,
        "Unit": "None",
        "Adjustable": q.adjustable,
        "GlobalQuota": false,
        "QuotaAppliedAtLevel": "ACCOUNT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_tokens() {
        assert_eq!(
            QuotasOperation::from_target("ServiceQuotasV20190624.ListServiceQuotas"),
            Some(QuotasOperation::List)
        );
        assert_eq!(
            QuotasOperation::from_target("ServiceQuotasV20190624.GetServiceQuota"),
            Some(QuotasOperation::Get)
        );
        assert_eq!(
            QuotasOperation::from_target("ServiceQuotasV20190624.RequestServiceQuotaIncrease"),
            Some(QuotasOperation::Other)
        );
        assert_eq!(
            QuotasOperation::from_target("DynamoDB_20120810.GetItem"),
            None
        );
        assert_eq!(parse_token(&format!("{TOKEN_PREFIX}{:x}", 42)), Some(42));
        assert_eq!(parse_token("42"), None);
        assert_eq!(parse_token(&format!("{TOKEN_PREFIX}zz")), None);
    }

    #[test]
    fn bodies() {
        assert!(object(b"").unwrap().is_empty());
        assert!(object(b"{\"ServiceCode\":\"bedrock\"}").is_ok());
        assert_eq!(object(b"[1]").unwrap_err().code, "SerializationException");
        let map = object(b"{\"QuotaCode\":5}").unwrap();
        assert!(string(&map, "QuotaCode", "quotaCode").is_err());
    }
}
