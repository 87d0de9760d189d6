//! OTLP request spans from agents into the SDK's [`SpanData`], with their
//! times moved from the agent's clock into the controller's.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as OtlpKeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, span, status};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// Every span of `batch` as [`SpanData`], times shifted by `−offset_ns`
/// (agent clock − controller clock) and the agent's resource attributes
/// (its id, Region, account) added to each span, since the exporter sends
/// one resource: the controller's. Spans with malformed ids are skipped.
pub(super) fn resource_spans(
    batch: ResourceSpans,
    offset_ns: i64,
    scope: &InstrumentationScope,
) -> Vec<SpanData> {
    let agent: Vec<KeyValue> = batch
        .resource
        .map(|r| r.attributes.into_iter().filter_map(key_value).collect())
        .unwrap_or_default();
    batch
        .scope_spans
        .into_iter()
        .flat_map(|s| s.spans)
        .filter_map(|s| span_data(s, &agent, offset_ns, scope))
        .collect()
}

fn span_data(
    span: Span,
    agent: &[KeyValue],
    offset_ns: i64,
    scope: &InstrumentationScope,
) -> Option<SpanData> {
    let trace_id: [u8; 16] = span.trace_id.as_slice().try_into().ok()?;
    let span_id: [u8; 8] = span.span_id.as_slice().try_into().ok()?;
    let parent: [u8; 8] = if span.parent_span_id.is_empty() {
        [0; 8]
    } else {
        span.parent_span_id.as_slice().try_into().ok()?
    };
    let mut attributes: Vec<KeyValue> = span.attributes.into_iter().filter_map(key_value).collect();
    attributes.extend(agent.iter().cloned());
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .into_iter()
        .map(|e| {
            Event::new(
                e.name,
                shifted(e.time_unix_nano, offset_ns),
                e.attributes.into_iter().filter_map(key_value).collect(),
                e.dropped_attributes_count,
            )
        })
        .collect();
    let status = match span.status {
        Some(s) if s.code == status::StatusCode::Error as i32 => Status::error(s.message),
        Some(s) if s.code == status::StatusCode::Ok as i32 => Status::Ok,
        _ => Status::Unset,
    };
    let kind = match span::SpanKind::try_from(span.kind) {
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        _ => SpanKind::Internal,
    };
    Some(SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace_id),
            SpanId::from_bytes(span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes(parent),
        // The parent (a stage span) was made by the controller, in another
        // process from the agent that made this span.
        parent_span_is_remote: true,
        span_kind: kind,
        name: Cow::Owned(span.name),
        start_time: shifted(span.start_time_unix_nano, offset_ns),
        end_time: shifted(span.end_time_unix_nano, offset_ns),
        attributes,
        dropped_attributes_count: span.dropped_attributes_count,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    })
}

/// Agent Unix ns → controller time.
fn shifted(agent_unix_ns: u64, offset_ns: i64) -> SystemTime {
    let ns = i128::from(agent_unix_ns) - i128::from(offset_ns);
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
}

fn key_value(kv: OtlpKeyValue) -> Option<KeyValue> {
    Some(KeyValue::new(kv.key, value(kv.value?)?))
}

fn value(v: AnyValue) -> Option<Value> {
    Some(match v.value? {
        any_value::Value::StringValue(s) => Value::String(s.into()),
        any_value::Value::BoolValue(b) => Value::Bool(b),
        any_value::Value::IntValue(i) => Value::I64(i),
        any_value::Value::DoubleValue(d) => Value::F64(d),
        any_value::Value::ArrayValue(a) => {
            // Homogeneous string arrays are all Quarry sends (finish reasons).
            let strings: Vec<StringValue> = a
                .values
                .into_iter()
                .filter_map(|v| match v.value {
                    Some(any_value::Value::StringValue(s)) => Some(StringValue::from(s)),
                    _ => None,
                })
                .collect();
            Value::Array(Array::String(strings))
        }
        any_value::Value::BytesValue(b) => Value::String(hex::encode(b).into()),
        any_value::Value::KvlistValue(_) | any_value::Value::StringValueStrindex(_) => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;
    use quarry_engine::trace::{kv_int, kv_str};

    use super::*;

    #[test]
    fn times_move_into_the_controller_clock_and_agent_identity_is_kept() {
        let batch = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv_str("quarry.agent.id", "a1")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    parent_span_id: vec![3; 8],
                    name: "chat m".into(),
                    kind: span::SpanKind::Client as i32,
                    start_time_unix_nano: 5_000,
                    end_time_unix_nano: 9_000,
                    attributes: vec![kv_int("gen_ai.usage.output_tokens", 7)],
                    events: vec![span::Event {
                        time_unix_nano: 6_000,
                        name: "first".into(),
                        ..span::Event::default()
                    }],
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        let scope = InstrumentationScope::builder("quarry").build();
        // The agent's clock runs 1,000 ns ahead of the controller's.
        let spans = resource_spans(batch, 1_000, &scope);
        let s = &spans[0];
        assert_eq!(s.start_time, UNIX_EPOCH + Duration::from_nanos(4_000));
        assert_eq!(s.end_time, UNIX_EPOCH + Duration::from_nanos(8_000));
        assert_eq!(
            s.events.events[0].timestamp,
            UNIX_EPOCH + Duration::from_nanos(5_000)
        );
        assert_eq!(s.span_kind, SpanKind::Client);
        assert_eq!(s.parent_span_id, SpanId::from_bytes([3; 8]));
        assert!(
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "quarry.agent.id")
        );
        assert!(
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "gen_ai.usage.output_tokens"
                    && kv.value == Value::I64(7))
        );
    }

    #[test]
    fn malformed_ids_are_skipped() {
        let batch = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 3],
                    span_id: vec![2; 8],
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        let scope = InstrumentationScope::builder("quarry").build();
        assert!(resource_spans(batch, 0, &scope).is_empty());
    }
}
