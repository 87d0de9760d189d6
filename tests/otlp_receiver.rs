//! The end-to-end tests' OTLP receiver (`quarry_e2e::otlp`) against real OTLP
//! clients: opentelemetry-proto's generated tonic clients over gRPC, and
//! plain hyper HTTP/1 POSTs of prost-encoded (or JSON, or gzip) bodies.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use prost::Message as _;
use quarry_e2e::otlp::proto::collector::logs::v1::logs_service_client::LogsServiceClient;
use quarry_e2e::otlp::proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use quarry_e2e::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use quarry_e2e::otlp::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use quarry_e2e::otlp::proto::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use quarry_e2e::otlp::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use quarry_e2e::otlp::proto::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use quarry_e2e::otlp::proto::resource::v1::Resource;
use quarry_e2e::otlp::proto::trace::v1::span::{Event, SpanKind};
use quarry_e2e::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use quarry_e2e::otlp::{
    AttrValue, Attributes as _, Behaviour, ExportLogsServiceRequest, ExportMetricsServiceRequest,
    ExportTraceServiceRequest, Failure, MetricKind, OtlpReceiver, Outcome, Payload, PointValue,
    RpcStatus, Signal, Transport,
};

/// Bound on every wait in this file: generous, only there so a broken
/// receiver fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

fn string(text: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(text.to_owned())),
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv_str("service.name", service)],
        ..Resource::default()
    })
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_owned(),
        version: "0.1.0".to_owned(),
        ..InstrumentationScope::default()
    })
}

/// A GenAI-style client span, its id bytes all `id`.
fn chat_span(id: u8, parent: Option<u8>) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
        name: "chat claude-test".to_owned(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        attributes: vec![
            kv_str("gen_ai.operation.name", "chat"),
            kv("gen_ai.usage.input_tokens", Value::IntValue(42)),
            kv("gen_ai.request.temperature", Value::DoubleValue(0.5)),
            kv("quarry.streaming", Value::BoolValue(true)),
            kv(
                "gen_ai.response.finish_reasons",
                Value::ArrayValue(ArrayValue {
                    values: vec![string("end_turn"), string("max_tokens")],
                }),
            ),
        ],
        events: vec![Event {
            time_unix_nano: 1_500,
            name: "gen_ai.first_token".to_owned(),
            attributes: vec![kv("quarry.ttft_ms", Value::IntValue(12))],
            ..Event::default()
        }],
        ..Span::default()
    }
}

fn trace_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                scope: scope("quarry"),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn metrics_request() -> ExportMetricsServiceRequest {
    let series = vec![kv_str("gen_ai.token.type", "input")];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("quarry"),
            scope_metrics: vec![ScopeMetrics {
                scope: scope("quarry"),
                metrics: vec![
                    Metric {
                        name: "gen_ai.client.token.usage".to_owned(),
                        unit: "{token}".to_owned(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: series,
                                count: 3,
                                sum: Some(126.0),
                                bucket_counts: vec![0, 3, 0],
                                explicit_bounds: vec![1.0, 256.0],
                                ..HistogramDataPoint::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Metric::default()
                    },
                    Metric {
                        name: "quarry.requests".to_owned(),
                        unit: "{request}".to_owned(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                value: Some(number_data_point::Value::AsInt(7)),
                                ..NumberDataPoint::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        })),
                        ..Metric::default()
                    },
                ],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn logs_request(body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("quarry"),
            scope_logs: vec![ScopeLogs {
                scope: scope("quarry"),
                log_records: vec![LogRecord {
                    severity_text: "WARN".to_owned(),
                    body: Some(string(body)),
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// An HTTP/1 POST over a fresh connection; returns status, headers, body.
async fn post(
    receiver: &OtlpReceiver,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    send(receiver, "POST", path, headers, body).await
}

async fn send(
    receiver: &OtlpReceiver,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    let stream = tokio::net::TcpStream::connect(receiver.addr())
        .await
        .expect("connect to the receiver");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1 handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", receiver.addr().to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    let response = sender.send_request(request).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the response body").to_bytes();
    (parts.status, parts.headers, body)
}

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

#[tokio::test]
async fn grpc_traces_are_captured_with_metadata_and_flattened() {
    let receiver = OtlpReceiver::grpc().await;
    assert_eq!(receiver.transport(), Transport::Grpc);
    assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
    let mut client = TraceServiceClient::connect(receiver.endpoint())
        .await
        .expect("connect");

    let mut request = tonic::Request::new(trace_request(
        "quarry-agent",
        vec![chat_span(1, None), chat_span(2, Some(1))],
    ));
    request
        .metadata_mut()
        .insert("x-quarry-tenant", "blue".parse().expect("ascii"));
    client.export(request).await.expect("export accepted");

    let requests = receiver.trace_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].resource_spans[0].scope_spans[0].spans.len(), 2);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 2);
    let root = &spans[0];
    assert_eq!(root.name(), "chat claude-test");
    assert_eq!(root.resource_str("service.name"), Some("quarry-agent"));
    assert_eq!(root.scope, "quarry");
    assert_eq!(root.scope_version, "0.1.0");
    assert_eq!(root.trace_id(), "ab".repeat(16));
    assert_eq!(root.span_id(), "01".repeat(8));
    assert_eq!(root.parent_span_id(), None);
    assert_eq!(spans[1].parent_span_id(), Some("01".repeat(8)));
    assert_eq!(root.span.kind(), SpanKind::Client);
    assert_eq!(root.str_attr("gen_ai.operation.name"), Some("chat"));
    assert_eq!(root.int_attr("gen_ai.usage.input_tokens"), Some(42));
    assert_eq!(root.double_attr("gen_ai.request.temperature"), Some(0.5));
    assert_eq!(root.bool_attr("quarry.streaming"), Some(true));
    // Typed lookups do not coerce.
    assert_eq!(root.str_attr("gen_ai.usage.input_tokens"), None);
    assert_eq!(root.int_attr("no.such.key"), None);
    assert_eq!(
        root.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["end_turn", "max_tokens"])
    );
    assert_eq!(
        root.attr_value("gen_ai.response.finish_reasons"),
        Some(AttrValue::Array(vec![
            AttrValue::Str("end_turn".into()),
            AttrValue::Str("max_tokens".into())
        ]))
    );
    let event = root.event("gen_ai.first_token").expect("the event");
    assert_eq!(event.attributes.int_attr("quarry.ttft_ms"), Some(12));
    assert_eq!(root.events("gen_ai.first_token").len(), 1);
    assert!(root.event("no.such.event").is_none());
    assert_eq!(receiver.spans_named("chat claude-test").len(), 2);

    let headers = receiver.request_headers();
    assert_eq!(headers.len(), 1);
    assert_eq!(
        headers[0].get("x-quarry-tenant").map(|v| v.as_bytes()),
        Some(&b"blue"[..])
    );
    assert_eq!(
        headers[0].get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/grpc"[..])
    );
    let exports = receiver.exports();
    assert_eq!(exports[0].signal, Signal::Traces);
    assert_eq!(exports[0].transport, Transport::Grpc);
    assert_eq!(exports[0].outcome, Outcome::Accepted);
}

#[tokio::test]
async fn grpc_metrics_and_logs_are_captured() {
    let receiver = OtlpReceiver::grpc().await;
    let mut metrics = MetricsServiceClient::connect(receiver.endpoint())
        .await
        .expect("connect");
    metrics
        .export(metrics_request())
        .await
        .expect("metrics accepted");
    metrics
        .export(metrics_request())
        .await
        .expect("metrics accepted");
    let mut logs = LogsServiceClient::connect(receiver.endpoint())
        .await
        .expect("connect");
    logs.export(logs_request("slow down"))
        .await
        .expect("logs accepted");

    assert_eq!(receiver.metric_requests().len(), 2);
    let all = receiver.metrics();
    assert_eq!(all.len(), 4, "two metrics per export, two exports");
    assert_eq!(receiver.metrics_named("gen_ai.client.token.usage").len(), 2);

    let usage = receiver
        .last_metric("gen_ai.client.token.usage")
        .expect("token usage");
    assert_eq!(usage.unit, "{token}");
    assert_eq!(usage.scope, "quarry");
    assert_eq!(usage.resource.str_attr("service.name"), Some("quarry"));
    assert_eq!(
        usage.kind,
        MetricKind::Histogram {
            temporality: AggregationTemporality::Cumulative
        }
    );
    let input = usage
        .point(&[("gen_ai.token.type", "input")])
        .expect("the input series");
    assert_eq!(input.count(), Some(3));
    assert_eq!(input.sum(), Some(126.0));
    assert_eq!(input.number(), None);
    assert!(matches!(
        &input.value,
        PointValue::Histogram { bucket_counts, explicit_bounds, .. }
            if bucket_counts == &[0, 3, 0] && explicit_bounds == &[1.0, 256.0]
    ));
    assert!(usage.point(&[("gen_ai.token.type", "output")]).is_none());

    let requests = receiver.last_metric("quarry.requests").expect("requests");
    assert_eq!(
        requests.kind,
        MetricKind::Sum {
            monotonic: true,
            temporality: AggregationTemporality::Delta
        }
    );
    assert_eq!(requests.points[0].number(), Some(7.0));
    assert_eq!(requests.points[0].value, PointValue::Int(7));

    assert_eq!(receiver.log_requests().len(), 1);
    let logs = receiver.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].record.severity_text, "WARN");
    assert_eq!(logs[0].resource.str_attr("service.name"), Some("quarry"));
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn http_protobuf_exports_are_captured_and_answered_in_kind() {
    let receiver = OtlpReceiver::http().await;
    assert_eq!(receiver.transport(), Transport::Http);
    assert_eq!(
        receiver.signal_url(Signal::Traces),
        format!("{}/v1/traces", receiver.endpoint())
    );

    let body = trace_request("quarry-http", vec![chat_span(7, None)]).encode_to_vec();
    let (status, headers, answer) = post(
        &receiver,
        "/v1/traces",
        &[PROTOBUF, ("x-quarry-tenant", "green")],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/x-protobuf"[..])
    );
    ExportTraceServiceResponse::decode(answer).expect("an ExportTraceServiceResponse");

    let (status, _, _) = post(
        &receiver,
        "/v1/metrics",
        &[PROTOBUF],
        metrics_request().encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = post(
        &receiver,
        "/v1/logs",
        &[("content-type", "application/x-protobuf; charset=binary")],
        logs_request("hello").encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].span_id(), "07".repeat(8));
    assert_eq!(spans[0].resource_str("service.name"), Some("quarry-http"));
    assert_eq!(receiver.metric_requests(), vec![metrics_request()]);
    assert_eq!(receiver.log_requests(), vec![logs_request("hello")]);
    let exports = receiver.exports();
    let signals: Vec<_> = exports.iter().map(|export| export.signal).collect();
    assert_eq!(signals, [Signal::Traces, Signal::Metrics, Signal::Logs]);
    assert!(
        exports
            .iter()
            .all(|export| export.transport == Transport::Http)
    );
    assert_eq!(
        receiver.request_headers()[0]
            .get("x-quarry-tenant")
            .map(|v| v.as_bytes()),
        Some(&b"green"[..])
    );
}

#[tokio::test]
async fn http_json_and_gzip_bodies_are_decoded() {
    let receiver = OtlpReceiver::http().await;
    // OTLP/JSON: hex ids, camelCase fields, int64 as a string.
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"quarry-json"}}]},
      "scopeSpans":[{"scope":{"name":"quarry"},"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "name":"chat json","kind":3,"startTimeUnixNano":"1000","endTimeUnixNano":"2000",
        "attributes":[{"key":"gen_ai.usage.output_tokens","value":{"intValue":"9"}}]}]}]}]}"#;
    let (status, headers, answer) = post(
        &receiver,
        "/v1/traces",
        &[("content-type", "application/json")],
        json.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    serde_json::from_slice::<serde_json::Value>(&answer).expect("a JSON answer");

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&trace_request("quarry-gzip", vec![chat_span(3, None)]).encode_to_vec())
        .expect("gzip");
    let (status, _, _) = post(
        &receiver,
        "/v1/traces",
        &[PROTOBUF, ("content-encoding", "gzip")],
        gzip.finish().expect("gzip"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].trace_id(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(spans[0].span_id(), "eee19b7ec3c1b174");
    assert_eq!(spans[0].span.kind(), SpanKind::Client);
    assert_eq!(spans[0].int_attr("gen_ai.usage.output_tokens"), Some(9));
    assert_eq!(spans[0].resource_str("service.name"), Some("quarry-json"));
    assert_eq!(spans[1].resource_str("service.name"), Some("quarry-gzip"));
}

#[tokio::test]
async fn http_refuses_what_a_collector_refuses() {
    let receiver = OtlpReceiver::http().await;

    // Wrong content type: 415, the body kept for scanning.
    let (status, _, answer) = post(
        &receiver,
        "/v1/traces",
        &[("content-type", "text/plain")],
        b"token=hunter2".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&answer).contains("application/x-protobuf"));
    // No content type at all: the same.
    let (status, _, _) = post(&receiver, "/v1/traces", &[], Vec::new()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Not a protobuf message: 400 with a google.rpc.Status body.
    let (status, headers, answer) = post(
        &receiver,
        "/v1/metrics",
        &[PROTOBUF],
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/x-protobuf"[..])
    );
    let rpc = RpcStatus::decode(answer).expect("a google.rpc.Status");
    assert_eq!(rpc.code, tonic::Code::InvalidArgument as i32);
    assert!(rpc.message.contains("protobuf body"), "{}", rpc.message);

    // Bad JSON, a content-encoding it does not speak, a broken gzip body.
    let (status, _, _) = post(
        &receiver,
        "/v1/logs",
        &[("content-type", "application/json")],
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = post(
        &receiver,
        "/v1/traces",
        &[PROTOBUF, ("content-encoding", "br")],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = post(
        &receiver,
        "/v1/traces",
        &[PROTOBUF, ("content-encoding", "gzip")],
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Not an OTLP path, not a POST.
    let (status, _, _) = post(&receiver, "/v1/profiles", &[PROTOBUF], Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = send(&receiver, "GET", "/v1/traces", &[], Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        headers.get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );

    // Nothing accepted; the six refused exports on OTLP paths are kept.
    assert!(receiver.trace_requests().is_empty());
    assert!(receiver.metric_requests().is_empty());
    assert!(receiver.log_requests().is_empty());
    let exports = receiver.exports();
    let statuses: Vec<_> = exports
        .iter()
        .map(|export| match &export.outcome {
            Outcome::Rejected { status, .. } => *status,
            other => panic!("unexpected outcome {other:?}"),
        })
        .collect();
    assert_eq!(statuses, [415, 415, 400, 400, 400, 400]);
    assert!(matches!(&exports[0].payload, Payload::Undecodable(body) if body == "token=hunter2"));
    assert!(receiver.all_strings().iter().any(|s| s == "token=hunter2"));
}

#[tokio::test]
async fn failing_receivers_answer_unavailable_and_keep_nothing() {
    let grpc = OtlpReceiver::grpc_with(Behaviour::failing(Failure::Unavailable)).await;
    let mut client = TraceServiceClient::connect(grpc.endpoint())
        .await
        .expect("connect");
    let mut request = tonic::Request::new(trace_request("quarry", vec![chat_span(1, None)]));
    request
        .metadata_mut()
        .insert("x-api-key", "k-123".parse().expect("ascii"));
    let status = client.export(request).await.expect_err("UNAVAILABLE");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(grpc.trace_requests().is_empty());
    assert!(grpc.spans().is_empty());
    let exports = grpc.exports();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].outcome, Outcome::Failed(Failure::Unavailable));
    // The refused export still counts for secret scans.
    assert!(grpc.all_strings().iter().any(|s| s == "k-123"));
    assert!(grpc.all_strings().iter().any(|s| s == "chat claude-test"));

    let http = OtlpReceiver::http_with(Behaviour::failing(Failure::Unavailable)).await;
    let body = trace_request("quarry", vec![chat_span(1, None)]).encode_to_vec();
    let (status, headers, answer) = post(&http, "/v1/traces", &[PROTOBUF], body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let rpc = RpcStatus::decode(answer).expect("a google.rpc.Status");
    assert_eq!(rpc.code, tonic::Code::Unavailable as i32);
    assert!(http.trace_requests().is_empty());
    assert_eq!(
        http.exports()[0].outcome,
        Outcome::Failed(Failure::Unavailable)
    );

    let http = OtlpReceiver::http_with(Behaviour::failing(Failure::Unauthenticated)).await;
    let body = trace_request("quarry", vec![chat_span(1, None)]).encode_to_vec();
    let (status, _, _) = post(&http, "/v1/traces", &[PROTOBUF], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_backend_that_comes_back_accepts_after_the_first_failures() {
    let grpc = OtlpReceiver::grpc_with(Behaviour::failing_first(2, Failure::Unavailable)).await;
    let mut client = TraceServiceClient::connect(grpc.endpoint())
        .await
        .expect("connect");
    let mut codes = Vec::new();
    for id in 1..=3 {
        let result = client
            .export(trace_request("quarry", vec![chat_span(id, None)]))
            .await;
        codes.push(result.map_or_else(|status| status.code(), |_| tonic::Code::Ok));
    }
    assert_eq!(
        codes,
        [
            tonic::Code::Unavailable,
            tonic::Code::Unavailable,
            tonic::Code::Ok
        ]
    );
    let spans = grpc.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].span_id(), "03".repeat(8));

    let http = OtlpReceiver::http_with(Behaviour::failing_first(1, Failure::InvalidArgument)).await;
    let body = trace_request("quarry", vec![chat_span(1, None)]).encode_to_vec();
    let (first, _, _) = post(&http, "/v1/traces", &[PROTOBUF], body.clone()).await;
    let (second, _, _) = post(&http, "/v1/traces", &[PROTOBUF], body).await;
    assert_eq!((first, second), (StatusCode::BAD_REQUEST, StatusCode::OK));
    assert_eq!(http.trace_requests().len(), 1);
}

#[tokio::test]
async fn a_slow_backend_holds_each_answer_back() {
    let delay = Duration::from_millis(300);
    let grpc = OtlpReceiver::grpc_with(Behaviour::slow(delay)).await;
    let mut client = TraceServiceClient::connect(grpc.endpoint())
        .await
        .expect("connect");

    // A client that gives up first gets nothing back, but the export arrived.
    let impatient = tokio::time::timeout(
        Duration::from_millis(20),
        client.export(trace_request("quarry", vec![chat_span(1, None)])),
    )
    .await;
    assert!(
        impatient.is_err(),
        "answered before the delay: {impatient:?}"
    );
    assert!(
        grpc.wait_until(|r| r.exports().len() == 1, PATIENCE).await,
        "the export was recorded on arrival"
    );

    // A patient one is answered, not before the delay.
    let started = tokio::time::Instant::now();
    client
        .export(trace_request("quarry", vec![chat_span(2, None)]))
        .await
        .expect("accepted after the delay");
    assert!(started.elapsed() >= delay);

    let http = OtlpReceiver::http_with(Behaviour::slow(delay)).await;
    let body = trace_request("quarry", vec![chat_span(1, None)]).encode_to_vec();
    let started = tokio::time::Instant::now();
    let (status, _, _) = post(&http, "/v1/traces", &[PROTOBUF], body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= delay);
    assert_eq!(http.spans().len(), 1);
}

#[tokio::test]
async fn shutdown_cuts_open_connections_and_closes_the_port() {
    // A backend that would hold the export for an hour.
    let grpc = OtlpReceiver::grpc_with(Behaviour::slow(Duration::from_secs(3600))).await;
    let addr = grpc.addr();
    let mut client = TraceServiceClient::connect(grpc.endpoint())
        .await
        .expect("connect");
    let in_flight = tokio::spawn(async move {
        client
            .export(trace_request("quarry", vec![chat_span(1, None)]))
            .await
    });
    assert!(grpc.wait_until(|r| r.exports().len() == 1, PATIENCE).await);

    grpc.shutdown().await;
    let answer = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .expect("the in-flight export ends when the receiver stops")
        .expect("no panic");
    assert!(answer.is_err(), "an export answered by a stopped receiver");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port still accepts connections"
    );

    // Dropping an HTTP receiver stops it too.
    let http = OtlpReceiver::http().await;
    let addr = http.addr();
    drop(http);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "a dropped receiver still accepts connections");
}

#[tokio::test]
async fn wait_for_spans_returns_early_or_what_it_has_at_the_timeout() {
    let receiver = OtlpReceiver::grpc().await;
    let nothing = receiver
        .wait_for_spans(|spans| !spans.is_empty(), Duration::from_millis(50))
        .await;
    assert!(nothing.is_empty());

    let endpoint = receiver.endpoint();
    let sender = tokio::spawn(async move {
        let mut client = TraceServiceClient::connect(endpoint)
            .await
            .expect("connect");
        for id in 1..=3 {
            client
                .export(trace_request("quarry", vec![chat_span(id, None)]))
                .await
                .expect("accepted");
        }
    });
    let spans = receiver
        .wait_for_spans(|spans| spans.len() >= 3, PATIENCE)
        .await;
    assert_eq!(spans.len(), 3);
    sender.await.expect("sender");

    // At the timeout: what there is, even though the predicate never held.
    let partial = receiver
        .wait_for_spans(|spans| spans.len() >= 10, Duration::from_millis(50))
        .await;
    assert_eq!(partial.len(), 3);

    let metrics = receiver
        .wait_for_metrics(|metrics| !metrics.is_empty(), Duration::from_millis(50))
        .await;
    assert!(metrics.is_empty());
}

#[tokio::test]
async fn all_strings_reaches_every_corner_of_an_export() {
    let receiver = OtlpReceiver::http().await;
    let mut span = chat_span(1, None);
    span.attributes.push(kv(
        "nested",
        Value::KvlistValue(KeyValueList {
            values: vec![kv(
                "list",
                Value::ArrayValue(ArrayValue {
                    values: vec![string("secret-in-nested-array")],
                }),
            )],
        }),
    ));
    span.events[0]
        .attributes
        .push(kv_str("event.detail", "secret-in-event"));
    span.status = Some(quarry_e2e::otlp::proto::trace::v1::Status {
        message: "secret-in-status".to_owned(),
        code: 2,
    });
    let mut request = trace_request("secret-in-resource", vec![span]);
    request.resource_spans[0].scope_spans[0]
        .scope
        .as_mut()
        .expect("scope")
        .attributes
        .push(kv_str("scope.attr", "secret-in-scope"));
    let (status, _, _) = post(
        &receiver,
        "/v1/traces",
        &[PROTOBUF, ("authorization", "Bearer secret-in-header")],
        request.encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut metrics = metrics_request();
    if let Some(metric::Data::Histogram(histogram)) =
        &mut metrics.resource_metrics[0].scope_metrics[0].metrics[0].data
    {
        histogram.data_points[0]
            .attributes
            .push(kv_str("point", "secret-in-point"));
    }
    post(
        &receiver,
        "/v1/metrics",
        &[PROTOBUF],
        metrics.encode_to_vec(),
    )
    .await;
    post(
        &receiver,
        "/v1/logs",
        &[PROTOBUF],
        logs_request("secret-in-log-body").encode_to_vec(),
    )
    .await;

    let strings = receiver.all_strings();
    for needle in [
        "secret-in-nested-array",
        "secret-in-event",
        "secret-in-status",
        "secret-in-resource",
        "secret-in-scope",
        "Bearer secret-in-header",
        "authorization",
        "secret-in-point",
        "secret-in-log-body",
        "gen_ai.client.token.usage",
        "{token}",
        "gen_ai.first_token",
        "event.detail",
    ] {
        assert!(
            strings.iter().any(|s| s == needle),
            "{needle} missing from all_strings"
        );
    }
    assert!(strings.iter().all(|s| !s.is_empty()));
}
