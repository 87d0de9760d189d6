//! Request routing (PROTOCOL.md §1.2, §1.3, §8): `POST /model/{id}/{op}` for
//! the five operations, `/guardrail/{id}/version/{v}/apply`, `POST /` with
//! `X-Amz-Target: ServiceQuotasV20190624.*` for the Service Quotas subset, the
//! simulator's own `/_quarry/…` endpoints, and everything else as Coral's
//! UnknownOperationException. The `{id}` segment is handed on still
//! percent-encoded; it is decoded exactly once by the handler. A raw `/`
//! inside an ARN splits the path into more segments and so reaches no
//! operation, as on Bedrock.

use http::Method;
use quarry_bedrock::Operation;

use super::quotas::QuotasOperation;

/// Prefix of the simulator's own endpoints; Bedrock has no `/_quarry` route.
pub(crate) const ADMIN_PREFIX: &str = "/_quarry/";

/// The simulator's own endpoints (unauthenticated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminEndpoint {
    /// `GET /_quarry/stats`: JSON.
    Stats,
    /// `GET /_quarry/metrics`: Prometheus text.
    Metrics,
    /// `GET /_quarry/health`.
    Health,
    /// `GET /_quarry/cloudwatch`: per-minute, per-model-id figures (JSON).
    CloudWatch,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// A Bedrock Runtime operation on the raw (still encoded) model segment.
    Model {
        operation: Operation,
        raw_model_id: &'a str,
    },
    /// ApplyGuardrail.
    Guardrail,
    /// A Service Quotas operation (AWS JSON 1.1 on `POST /`).
    ServiceQuotas(QuotasOperation),
    /// A simulator endpoint.
    Admin(AdminEndpoint),
    /// No such operation.
    Unknown,
}

/// Routes on the method, the raw path (query ignored) and `X-Amz-Target`.
pub(crate) fn route<'a>(method: &Method, path: &'a str, target: Option<&str>) -> Route<'a> {
    if let Some(rest) = path.strip_prefix(ADMIN_PREFIX) {
        if method != Method::GET && method != Method::HEAD {
            return Route::Unknown;
        }
        return match rest {
            "stats" => Route::Admin(AdminEndpoint::Stats),
            "metrics" => Route::Admin(AdminEndpoint::Metrics),
            "health" => Route::Admin(AdminEndpoint::Health),
            "cloudwatch" => Route::Admin(AdminEndpoint::CloudWatch),
            _ => Route::Unknown,
        };
    }
    if method != Method::POST {
        return Route::Unknown;
    }
    if path == "/"
        && let Some(op) = target.and_then(QuotasOperation::from_target)
    {
        return Route::ServiceQuotas(op);
    }
    if let Some(rest) = path.strip_prefix("/model/") {
        let mut parts = rest.split('/');
        let (Some(id), Some(suffix), None) = (parts.next(), parts.next(), parts.next()) else {
            return Route::Unknown;
        };
        return match Operation::from_path_suffix(suffix) {
            Some(operation) if !id.is_empty() => Route::Model {
                operation,
                raw_model_id: id,
            },
            _ => Route::Unknown,
        };
    }
    if let Some(rest) = path.strip_prefix("/guardrail/") {
        let parts: Vec<&str> = rest.split('/').collect();
        if let [id, "version", v, "apply"] = parts.as_slice()
            && !id.is_empty()
            && !v.is_empty()
        {
            return Route::Guardrail;
        }
    }
    Route::Unknown
}

/// Coral's answer to a path that names no operation: HTTP 200 with this
/// body, as live Bedrock answers a raw `/` in an ARN (PROTOCOL.md §1.3).
pub(crate) const UNKNOWN_OPERATION_BODY: &str =
    r#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn route_<'a>(method: &Method, path: &'a str) -> Route<'a> {
        route(method, path, None)
    }

    #[test]
    fn service_quotas_by_target_on_the_root() {
        let post = Method::POST;
        let list = Some("ServiceQuotasV20190624.ListServiceQuotas");
        assert_eq!(
            route(&post, "/", list),
            Route::ServiceQuotas(QuotasOperation::List)
        );
        assert_eq!(route(&post, "/", Some("Other.Op")), Route::Unknown);
        assert_eq!(route(&post, "/x", list), Route::Unknown);
        assert_eq!(route(&Method::GET, "/", list), Route::Unknown);
    }

    #[test]
    fn routes_every_operation_and_encoding() {
        let post = Method::POST;
        assert_eq!(
            route_(
                &post,
                "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
            ),
            Route::Model {
                operation: Operation::Converse,
                raw_model_id: "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"
            }
        );
        assert_eq!(
            route_(
                &post,
                "/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke-with-response-stream"
            ),
            Route::Model {
                operation: Operation::InvokeModelWithResponseStream,
                raw_model_id: "anthropic.claude-3-5-haiku-20241022-v1:0"
            }
        );
        for op in Operation::ALL {
            let path = format!("/model/m/{}", op.path_suffix());
            assert!(
                matches!(route_(&post, &path), Route::Model { operation, .. } if operation == op)
            );
        }
        assert_eq!(
            route_(
                &post,
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aprovisioned-model%2Fabcdefghijkl/invoke"
            ),
            Route::Model {
                operation: Operation::InvokeModel,
                raw_model_id: "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aprovisioned-model%2Fabcdefghijkl"
            }
        );
    }

    #[test]
    fn raw_slash_and_strangers_are_unknown_operations() {
        let post = Method::POST;
        assert_eq!(
            route_(
                &post,
                "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc/converse"
            ),
            Route::Unknown
        );
        assert_eq!(route_(&post, "/model/x/chat"), Route::Unknown);
        assert_eq!(route_(&post, "/model//converse"), Route::Unknown);
        assert_eq!(route_(&Method::GET, "/model/x/converse"), Route::Unknown);
        assert_eq!(route_(&post, "/"), Route::Unknown);
        assert_eq!(
            route_(&post, "/guardrail/g1/version/1/apply"),
            Route::Guardrail
        );
        assert_eq!(
            route_(&Method::GET, "/_quarry/stats"),
            Route::Admin(AdminEndpoint::Stats)
        );
        assert_eq!(
            route_(&Method::GET, "/_quarry/metrics"),
            Route::Admin(AdminEndpoint::Metrics)
        );
        assert_eq!(
            route_(&Method::GET, "/_quarry/health"),
            Route::Admin(AdminEndpoint::Health)
        );
        assert_eq!(route_(&post, "/_quarry/stats"), Route::Unknown);
        assert_eq!(
            route_(&Method::GET, "/_quarry/cloudwatch"),
            Route::Admin(AdminEndpoint::CloudWatch)
        );
    }
}
