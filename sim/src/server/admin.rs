//! The simulator's own endpoints, unauthenticated and outside Bedrock's
//! route space (`/_quarry/…`, see [`super::router::ADMIN_PREFIX`]):
//!
//! - `GET /_quarry/stats`: the stats snapshot as JSON;
//! - `GET /_quarry/metrics`: the same counters in Prometheus text format;
//! - `GET /_quarry/health`: `{"status":"ok"}` while the server runs;
//! - `GET /_quarry/cloudwatch`: per-minute, per-model-id figures named as
//!   CloudWatch's `AWS/Bedrock` metrics (docs/cloudwatch.md).

use bytes::Bytes;
use http::Response;
use quarry_bedrock::header_names::APPLICATION_JSON;

use super::body::SimBody;
use super::context::{Shared, response};
use super::router::AdminEndpoint;

/// Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn answer(shared: &Shared, endpoint: AdminEndpoint) -> Response<SimBody> {
    let (content_type, body) = match endpoint {
        AdminEndpoint::Stats => (APPLICATION_JSON, shared.sim.stats_snapshot().to_json()),
        AdminEndpoint::Metrics => (
            PROMETHEUS_CONTENT_TYPE,
            shared.sim.stats_snapshot().to_prometheus(),
        ),
        AdminEndpoint::Health => (APPLICATION_JSON, r#"{"status":"ok"}"#.to_owned()),
        AdminEndpoint::CloudWatch => (
            APPLICATION_JSON,
            shared.sim.cloudwatch().snapshot().to_json(),
        ),
    };
    response(
        shared,
        &uuid::Uuid::new_v4().to_string(),
        content_type,
        SimBody::full(Bytes::from(body)),
    )
}
