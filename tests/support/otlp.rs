//! A real OTLP receiver for the end-to-end tests: OTLP/gRPC (the collector's
//! `TraceService`, `MetricsService` and `LogsService`, from
//! opentelemetry-proto's generated tonic stubs) or OTLP/HTTP (`POST
//! /v1/traces`, `/v1/metrics`, `/v1/logs`, protobuf or JSON, optionally
//! gzip), on a free loopback port.
//!
//! Every export is kept as it arrived, with its headers (gRPC metadata), so a
//! test can check what Quarry exported, how it was labelled
//! (`OTEL_EXPORTER_OTLP_HEADERS`), and that no credential leaked into any of
//! it ([`OtlpReceiver::all_strings`]). A [`Behaviour`] makes the receiver a
//! slow or failing backend.
//!
//! The server is our own accept loop (hyper-util, HTTP/1 and HTTP/2) rather
//! than tonic's `Server`, so dropping the receiver really cuts every open
//! connection, as a collector that went away would: tonic's server leaves
//! accepted connections running after its serve future is dropped.

use std::convert::Infallible;
use std::fmt;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::codegen::Service as _;

pub use opentelemetry_proto::tonic as proto;
pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
pub use opentelemetry_proto::tonic::logs::v1::LogRecord;
pub use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
pub use opentelemetry_proto::tonic::trace::v1::Span;
pub use opentelemetry_proto::tonic::trace::v1::span::Event;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Largest export accepted, compressed or not (gRPC message or HTTP body).
pub const MAX_EXPORT_BYTES: usize = 64 * 1024 * 1024;

/// Which OTLP signal an export carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `TraceService/Export` or `POST /v1/traces`.
    Traces,
    /// `MetricsService/Export` or `POST /v1/metrics`.
    Metrics,
    /// `LogsService/Export` or `POST /v1/logs`.
    Logs,
}

impl Signal {
    /// The OTLP/HTTP path for this signal (`/v1/traces`, ...).
    pub fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Metrics => "/v1/metrics",
            Self::Logs => "/v1/logs",
        }
    }
}

/// How the receiver is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP (protobuf or JSON bodies).
    Http,
}

/// The error every export (or the first few) is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// gRPC `UNAVAILABLE` / HTTP 503: retryable, a backend that is down.
    Unavailable,
    /// gRPC `INVALID_ARGUMENT` / HTTP 400: not retryable.
    InvalidArgument,
    /// gRPC `UNAUTHENTICATED` / HTTP 401: bad or missing credentials header.
    Unauthenticated,
}

impl Failure {
    /// The gRPC status code this failure answers with.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::Unavailable => tonic::Code::Unavailable,
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
        }
    }

    /// The HTTP status this failure answers with.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Unavailable => "test receiver: backend unavailable",
            Self::InvalidArgument => "test receiver: export rejected",
            Self::Unauthenticated => "test receiver: not authenticated",
        }
    }
}

/// How the receiver answers exports. The default accepts every export at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Wait this long before answering each export (it is recorded on
    /// arrival, before the wait): a slow backend.
    pub delay: Duration,
    /// Answer exports with this error instead of accepting them.
    pub failure: Option<Failure>,
    /// With `failure`: fail only the first this-many exports and accept the
    /// rest (a backend that comes back). `None`: fail every export.
    pub fail_first: Option<usize>,
}

impl Behaviour {
    /// Accept every export after `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Answer every export with `failure`.
    pub fn failing(failure: Failure) -> Self {
        Self {
            failure: Some(failure),
            ..Self::default()
        }
    }

    /// Answer the first `count` exports with `failure`, then accept.
    pub fn failing_first(count: usize, failure: Failure) -> Self {
        Self {
            failure: Some(failure),
            fail_first: Some(count),
            ..Self::default()
        }
    }
}

/// What was in an export.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A decoded trace export.
    Traces(ExportTraceServiceRequest),
    /// A decoded metrics export.
    Metrics(ExportMetricsServiceRequest),
    /// A decoded logs export.
    Logs(ExportLogsServiceRequest),
    /// An OTLP/HTTP body the receiver could not take (wrong content type,
    /// encoding, or not a valid message), kept raw.
    Undecodable(Bytes),
}

/// How the receiver answered an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (gRPC OK / HTTP 200).
    Accepted,
    /// Answered with the [`Behaviour`]'s failure.
    Failed(Failure),
    /// Refused as malformed (HTTP 400 / 415), with the reason sent back.
    Rejected {
        /// The HTTP status sent.
        status: u16,
        /// Why.
        reason: String,
    },
}

/// One export as it arrived.
#[derive(Clone, Debug)]
pub struct Export {
    /// The signal (from the gRPC service or the HTTP path).
    pub signal: Signal,
    /// Over which transport.
    pub transport: Transport,
    /// HTTP headers, or the gRPC request metadata.
    pub headers: HeaderMap,
    /// The decoded request.
    pub payload: Payload,
    /// The answer given.
    pub outcome: Outcome,
}

/// One span with the resource and instrumentation scope it was exported
/// under.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The resource attributes (`service.name`, ...).
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The instrumentation scope's version.
    pub scope_version: String,
    /// The span itself.
    pub span: Span,
}

impl ReceivedSpan {
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id as lowercase hex.
    pub fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }

    /// The span id as lowercase hex.
    pub fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }

    /// The parent span id as lowercase hex; `None` for a root span.
    pub fn parent_span_id(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| hex::encode(&self.span.parent_span_id))
    }

    /// The span attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        self.span.attributes.attr(key)
    }

    /// The span attribute `key` as an owned [`AttrValue`].
    pub fn attr_value(&self, key: &str) -> Option<AttrValue> {
        self.span.attributes.attr_value(key)
    }

    /// The span attribute `key` if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.span.attributes.str_attr(key)
    }

    /// The span attribute `key` if it is an integer.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.span.attributes.int_attr(key)
    }

    /// The span attribute `key` if it is a double.
    pub fn double_attr(&self, key: &str) -> Option<f64> {
        self.span.attributes.double_attr(key)
    }

    /// The span attribute `key` if it is a bool.
    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        self.span.attributes.bool_attr(key)
    }

    /// The span attribute `key` if it is an array of strings.
    pub fn str_array_attr(&self, key: &str) -> Option<Vec<&str>> {
        self.span.attributes.str_array_attr(key)
    }

    /// The resource attribute `key` if it is a string.
    pub fn resource_str(&self, key: &str) -> Option<&str> {
        self.resource.str_attr(key)
    }

    /// The first event called `name`.
    pub fn event(&self, name: &str) -> Option<&Event> {
        self.span.events.iter().find(|event| event.name == name)
    }

    /// Every event called `name`, in order.
    pub fn events(&self, name: &str) -> Vec<&Event> {
        self.span
            .events
            .iter()
            .filter(|event| event.name == name)
            .collect()
    }
}

/// One log record with the resource and scope it was exported under.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLog {
    /// The resource attributes.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The record itself.
    pub record: LogRecord,
}

/// A metric's shape, with its temporality where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge.
    Gauge,
    /// A sum (counter or up-down counter).
    Sum {
        /// Whether it only goes up.
        monotonic: bool,
        /// Delta or cumulative.
        temporality: AggregationTemporality,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// Delta or cumulative.
        temporality: AggregationTemporality,
    },
    /// An exponential histogram.
    ExponentialHistogram {
        /// Delta or cumulative.
        temporality: AggregationTemporality,
    },
    /// A summary.
    Summary,
    /// No data at all.
    Empty,
}

/// A data point's value.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// An integer gauge or sum value.
    Int(i64),
    /// A double gauge or sum value.
    Double(f64),
    /// An explicit-bucket histogram point.
    Histogram {
        /// Number of recorded values.
        count: u64,
        /// Their sum, when sent.
        sum: Option<f64>,
        /// The smallest, when sent.
        min: Option<f64>,
        /// The largest, when sent.
        max: Option<f64>,
        /// Count per bucket (one more than `explicit_bounds`).
        bucket_counts: Vec<u64>,
        /// Bucket upper bounds.
        explicit_bounds: Vec<f64>,
    },
    /// An exponential histogram point (buckets left out).
    ExponentialHistogram {
        /// Number of recorded values.
        count: u64,
        /// Their sum, when sent.
        sum: Option<f64>,
        /// The smallest, when sent.
        min: Option<f64>,
        /// The largest, when sent.
        max: Option<f64>,
    },
    /// A summary point (quantiles left out).
    Summary {
        /// Number of recorded values.
        count: u64,
        /// Their sum.
        sum: f64,
    },
    /// A number point without a value.
    Missing,
}

/// One data point of a [`ReceivedMetric`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedPoint {
    /// The point's attributes (the series).
    pub attributes: Vec<KeyValue>,
    /// Start of the aggregation interval.
    pub start_time_unix_nano: u64,
    /// End of the aggregation interval.
    pub time_unix_nano: u64,
    /// The value.
    pub value: PointValue,
}

impl ReceivedPoint {
    /// A gauge or sum value as `f64`.
    pub fn number(&self) -> Option<f64> {
        match self.value {
            #[allow(clippy::cast_precision_loss, reason = "test values are small")]
            PointValue::Int(value) => Some(value as f64),
            PointValue::Double(value) => Some(value),
            _ => None,
        }
    }

    /// A histogram's or summary's count.
    pub fn count(&self) -> Option<u64> {
        match self.value {
            PointValue::Histogram { count, .. }
            | PointValue::ExponentialHistogram { count, .. }
            | PointValue::Summary { count, .. } => Some(count),
            _ => None,
        }
    }

    /// A histogram's or summary's sum.
    pub fn sum(&self) -> Option<f64> {
        match self.value {
            PointValue::Histogram { sum, .. } | PointValue::ExponentialHistogram { sum, .. } => sum,
            PointValue::Summary { sum, .. } => Some(sum),
            _ => None,
        }
    }

    /// The point attribute `key` if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attributes.str_attr(key)
    }
}

/// One metric with its resource and scope, data points flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMetric {
    /// The resource attributes.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The metric name (`gen_ai.client.token.usage`, ...).
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its unit (`s`, `{token}`, ...).
    pub unit: String,
    /// Gauge, sum, histogram, ...
    pub kind: MetricKind,
    /// The data points.
    pub points: Vec<ReceivedPoint>,
}

impl ReceivedMetric {
    /// The first point whose attributes include every `(key, string value)`
    /// pair in `series`.
    pub fn point(&self, series: &[(&str, &str)]) -> Option<&ReceivedPoint> {
        self.points.iter().find(|point| {
            series
                .iter()
                .all(|(key, value)| point.attributes.str_attr(key) == Some(*value))
        })
    }
}

/// An attribute value without the protobuf wrapping, for `assert_eq!`.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// No value set.
    Empty,
    /// A string.
    Str(String),
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<AttrValue>),
    /// A key-value list.
    Map(Vec<(String, AttrValue)>),
}

impl From<&AnyValue> for AttrValue {
    fn from(value: &AnyValue) -> Self {
        match &value.value {
            None | Some(Value::StringValueStrindex(_)) => Self::Empty,
            Some(Value::StringValue(text)) => Self::Str(text.clone()),
            Some(Value::BoolValue(flag)) => Self::Bool(*flag),
            Some(Value::IntValue(number)) => Self::Int(*number),
            Some(Value::DoubleValue(number)) => Self::Double(*number),
            Some(Value::BytesValue(bytes)) => Self::Bytes(bytes.clone()),
            Some(Value::ArrayValue(array)) => {
                Self::Array(array.values.iter().map(Self::from).collect())
            }
            Some(Value::KvlistValue(list)) => Self::Map(
                list.values
                    .iter()
                    .map(|kv| {
                        let value = kv.value.as_ref().map_or(Self::Empty, Self::from);
                        (kv.key.clone(), value)
                    })
                    .collect(),
            ),
        }
    }
}

/// Attribute lookup on a list of OTLP attributes (span, event, resource,
/// data point, log record). The first attribute with the key wins.
pub trait Attributes {
    /// The value of `key`.
    fn attr(&self, key: &str) -> Option<&AnyValue>;

    /// The value of `key` as an owned [`AttrValue`].
    fn attr_value(&self, key: &str) -> Option<AttrValue> {
        self.attr(key).map(AttrValue::from)
    }

    /// The value of `key` if it is a string.
    fn str_attr(&self, key: &str) -> Option<&str> {
        match self.attr(key)?.value.as_ref()? {
            Value::StringValue(text) => Some(text),
            _ => None,
        }
    }

    /// The value of `key` if it is an integer.
    fn int_attr(&self, key: &str) -> Option<i64> {
        match self.attr(key)?.value.as_ref()? {
            Value::IntValue(number) => Some(*number),
            _ => None,
        }
    }

    /// The value of `key` if it is a double.
    fn double_attr(&self, key: &str) -> Option<f64> {
        match self.attr(key)?.value.as_ref()? {
            Value::DoubleValue(number) => Some(*number),
            _ => None,
        }
    }

    /// The value of `key` if it is a bool.
    fn bool_attr(&self, key: &str) -> Option<bool> {
        match self.attr(key)?.value.as_ref()? {
            Value::BoolValue(flag) => Some(*flag),
            _ => None,
        }
    }

    /// The value of `key` if it is an array.
    fn array_attr(&self, key: &str) -> Option<&[AnyValue]> {
        match self.attr(key)?.value.as_ref()? {
            Value::ArrayValue(array) => Some(&array.values),
            _ => None,
        }
    }

    /// The value of `key` if it is an array of strings only.
    fn str_array_attr(&self, key: &str) -> Option<Vec<&str>> {
        self.array_attr(key)?
            .iter()
            .map(|value| match value.value.as_ref()? {
                Value::StringValue(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl Attributes for [KeyValue] {
    fn attr(&self, key: &str) -> Option<&AnyValue> {
        self.iter().find(|kv| kv.key == key)?.value.as_ref()
    }
}

/// The `google.rpc.Status` body of an OTLP/HTTP error response (`details`
/// left out).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// What the receiver has seen; shared with the connection tasks.
struct Shared {
    behaviour: Behaviour,
    exports: Mutex<Vec<Export>>,
    /// Woken whenever an export is recorded.
    changed: Notify,
    /// Exports admitted so far (decides `fail_first`).
    admitted: AtomicUsize,
    /// Cancelled when the receiver stops: ends `delay` waits at once.
    closed: CancellationToken,
}

impl Shared {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            exports: Mutex::new(Vec::new()),
            changed: Notify::new(),
            admitted: AtomicUsize::new(0),
            closed: CancellationToken::new(),
        })
    }

    fn exports(&self) -> MutexGuard<'_, Vec<Export>> {
        self.exports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, export: Export) {
        self.exports().push(export);
        self.changed.notify_waiters();
    }

    /// Records a decoded export, waits out the delay, and says how to answer.
    async fn admit(
        &self,
        signal: Signal,
        transport: Transport,
        headers: HeaderMap,
        payload: Payload,
    ) -> Result<(), Failure> {
        let seen = self.admitted.fetch_add(1, Ordering::SeqCst);
        let failure = match (self.behaviour.failure, self.behaviour.fail_first) {
            (Some(failure), Some(first)) if seen < first => Some(failure),
            (Some(_), Some(_)) | (None, _) => None,
            (Some(failure), None) => Some(failure),
        };
        self.record(Export {
            signal,
            transport,
            headers,
            payload,
            outcome: failure.map_or(Outcome::Accepted, Outcome::Failed),
        });
        if !self.behaviour.delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(self.behaviour.delay) => {}
                () = self.closed.cancelled() => {}
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// An OTLP receiver on `127.0.0.1:0`. Dropping it (or [`shutdown`]) stops
/// the server and cuts its connections.
///
/// [`shutdown`]: OtlpReceiver::shutdown
pub struct OtlpReceiver {
    addr: SocketAddr,
    transport: Transport,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("addr", &self.addr)
            .field("transport", &self.transport)
            .field("behaviour", &self.shared.behaviour)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// OTLP/gRPC (`TraceService`, `MetricsService`, `LogsService`) that
    /// accepts every export.
    pub async fn grpc() -> Self {
        Self::grpc_with(Behaviour::default()).await
    }

    /// OTLP/HTTP (`POST /v1/traces`, `/v1/metrics`, `/v1/logs`) that accepts
    /// every export.
    pub async fn http() -> Self {
        Self::http_with(Behaviour::default()).await
    }

    /// OTLP/gRPC answering as `behaviour` says.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn grpc_with(behaviour: Behaviour) -> Self {
        let shared = Shared::new(behaviour);
        let sink = Sink {
            shared: Arc::clone(&shared),
        };
        let routes = tonic::service::Routes::new(
            TraceServiceServer::new(sink.clone()).max_decoding_message_size(MAX_EXPORT_BYTES),
        )
        .add_service(
            MetricsServiceServer::new(sink.clone()).max_decoding_message_size(MAX_EXPORT_BYTES),
        )
        .add_service(LogsServiceServer::new(sink).max_decoding_message_size(MAX_EXPORT_BYTES))
        .prepare();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut routes = routes.clone();
            async move { routes.call(request).await }
        });
        Self::start(Transport::Grpc, shared, service).await
    }

    /// OTLP/HTTP answering as `behaviour` says.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn http_with(behaviour: Behaviour) -> Self {
        let shared = Shared::new(behaviour);
        let handler_shared = Arc::clone(&shared);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let shared = Arc::clone(&handler_shared);
            async move { Ok::<_, Infallible>(handle_http(&shared, request).await) }
        });
        Self::start(Transport::Http, shared, service).await
    }

    async fn start<S, B>(transport: Transport, shared: Arc<Shared>, service: S) -> Self
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the OTLP receiver on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("the OTLP receiver's bound address");
        let server = tokio::spawn(serve(listener, service));
        Self {
            addr,
            transport,
            shared,
            server,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`, as `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// takes it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full URL of one signal on an OTLP/HTTP receiver, as
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (etc.) take it.
    pub fn signal_url(&self, signal: Signal) -> String {
        format!("{}{}", self.endpoint(), signal.http_path())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// gRPC or HTTP.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Every export, in arrival order, whatever the answer was.
    pub fn exports(&self) -> Vec<Export> {
        self.shared.exports().clone()
    }

    /// Headers (gRPC metadata) of every export, accepted or not, in arrival
    /// order.
    pub fn request_headers(&self) -> Vec<HeaderMap> {
        self.shared
            .exports()
            .iter()
            .map(|export| export.headers.clone())
            .collect()
    }

    /// Accepted trace exports, raw, in arrival order.
    pub fn trace_requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.accepted(|payload| match payload {
            Payload::Traces(request) => Some(request.clone()),
            _ => None,
        })
    }

    /// Accepted metrics exports, raw, in arrival order.
    pub fn metric_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.accepted(|payload| match payload {
            Payload::Metrics(request) => Some(request.clone()),
            _ => None,
        })
    }

    /// Accepted logs exports, raw, in arrival order.
    pub fn log_requests(&self) -> Vec<ExportLogsServiceRequest> {
        self.accepted(|payload| match payload {
            Payload::Logs(request) => Some(request.clone()),
            _ => None,
        })
    }

    fn accepted<T>(&self, pick: impl Fn(&Payload) -> Option<T>) -> Vec<T> {
        self.shared
            .exports()
            .iter()
            .filter(|export| export.outcome == Outcome::Accepted)
            .filter_map(|export| pick(&export.payload))
            .collect()
    }

    /// Every accepted span, flattened, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let mut spans = Vec::new();
        for request in self.trace_requests() {
            for resource_spans in request.resource_spans {
                let resource = resource_attributes(resource_spans.resource);
                for scope_spans in resource_spans.scope_spans {
                    let scope = scope_spans.scope.unwrap_or_default();
                    spans.extend(scope_spans.spans.into_iter().map(|span| ReceivedSpan {
                        resource: resource.clone(),
                        scope: scope.name.clone(),
                        scope_version: scope.version.clone(),
                        span,
                    }));
                }
            }
        }
        spans
    }

    /// Every accepted span called `name`.
    pub fn spans_named(&self, name: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|span| span.span.name == name)
            .collect()
    }

    /// Every accepted metric, flattened, in arrival order. With cumulative
    /// temporality each export repeats every series: see
    /// [`last_metric`](Self::last_metric).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        let mut metrics = Vec::new();
        for request in self.metric_requests() {
            for resource_metrics in request.resource_metrics {
                let resource = resource_attributes(resource_metrics.resource);
                for scope_metrics in resource_metrics.scope_metrics {
                    let scope = scope_metrics.scope.unwrap_or_default().name;
                    metrics.extend(
                        scope_metrics
                            .metrics
                            .into_iter()
                            .map(|metric| flatten_metric(&resource, &scope, metric)),
                    );
                }
            }
        }
        metrics
    }

    /// Every accepted metric called `name`, in arrival order.
    pub fn metrics_named(&self, name: &str) -> Vec<ReceivedMetric> {
        self.metrics()
            .into_iter()
            .filter(|metric| metric.name == name)
            .collect()
    }

    /// The last metric called `name` to arrive (the latest cumulative state).
    pub fn last_metric(&self, name: &str) -> Option<ReceivedMetric> {
        self.metrics_named(name).pop()
    }

    /// Every accepted log record, flattened, in arrival order.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        let mut logs = Vec::new();
        for request in self.log_requests() {
            for resource_logs in request.resource_logs {
                let resource = resource_attributes(resource_logs.resource);
                for scope_logs in resource_logs.scope_logs {
                    let scope = scope_logs.scope.unwrap_or_default().name;
                    logs.extend(
                        scope_logs
                            .log_records
                            .into_iter()
                            .map(|record| ReceivedLog {
                                resource: resource.clone(),
                                scope: scope.clone(),
                                record,
                            }),
                    );
                }
            }
        }
        logs
    }

    /// Every string in everything received, accepted or not: header names and
    /// values, resource, scope, span, event, link, metric and log strings
    /// (attribute keys and string values, names, units, descriptions, status
    /// messages, trace state, log bodies), and undecodable bodies (lossy
    /// UTF-8). For tests that scan exports for credentials.
    pub fn all_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for export in self.shared.exports().iter() {
            for (name, value) in &export.headers {
                out.push(name.as_str().to_owned());
                out.push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            match &export.payload {
                Payload::Traces(request) => trace_strings(request, &mut out),
                Payload::Metrics(request) => metric_strings(request, &mut out),
                Payload::Logs(request) => log_strings(request, &mut out),
                Payload::Undecodable(body) => out.push(String::from_utf8_lossy(body).into_owned()),
            }
        }
        out.retain(|text| !text.is_empty());
        out
    }

    /// Waits until `done(self)` holds, re-checking whenever an export
    /// arrives, for at most `timeout`. Returns whether it held.
    pub async fn wait_until(&self, mut done: impl FnMut(&Self) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(self);
            }
        }
    }

    /// Waits (at most `timeout`) until the accepted spans satisfy `done`, and
    /// returns them; at the timeout, returns what there is.
    pub async fn wait_for_spans(
        &self,
        done: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let mut spans = Vec::new();
        self.wait_until(
            |receiver| {
                spans = receiver.spans();
                done(&spans)
            },
            timeout,
        )
        .await;
        spans
    }

    /// Waits (at most `timeout`) until the accepted metrics satisfy `done`,
    /// and returns them; at the timeout, returns what there is.
    pub async fn wait_for_metrics(
        &self,
        done: impl Fn(&[ReceivedMetric]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedMetric> {
        let mut metrics = Vec::new();
        self.wait_until(
            |receiver| {
                metrics = receiver.metrics();
                done(&metrics)
            },
            timeout,
        )
        .await;
        metrics
    }

    /// Stops the server, closes the listener and cuts every connection
    /// (in-flight exports get a broken connection); returns once the
    /// listening port is closed.
    pub async fn shutdown(mut self) {
        self.shared.closed.cancel();
        self.server.abort();
        // Aborted is the expected end; a panic in the accept loop is not.
        if let Err(error) = (&mut self.server).await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shared.closed.cancel();
        self.server.abort();
    }
}

/// Accepts connections until aborted; aborting drops the `JoinSet`, which
/// aborts every connection task.
async fn serve<S, B>(listener: TcpListener, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = service.clone();
                    connections.spawn(async move {
                        // A client hanging up mid-request is not the receiver's error.
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The gRPC services: each records the export and answers as the behaviour
/// says.
#[derive(Clone)]
struct Sink {
    shared: Arc<Shared>,
}

impl Sink {
    async fn admit<T>(
        &self,
        request: tonic::Request<T>,
        signal: Signal,
        payload: impl FnOnce(T) -> Payload,
    ) -> Result<(), tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.shared
            .admit(
                signal,
                Transport::Grpc,
                headers,
                payload(request.into_inner()),
            )
            .await
            .map_err(|failure| tonic::Status::new(failure.grpc_code(), failure.message()))
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.admit(request, Signal::Traces, Payload::Traces).await?;
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.admit(request, Signal::Metrics, Payload::Metrics)
            .await?;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.admit(request, Signal::Logs, Payload::Logs).await?;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// OTLP/HTTP body encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// One OTLP/HTTP request: route, read, decode, record, answer.
async fn handle_http(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let signal = match request.uri().path() {
        "/v1/traces" => Signal::Traces,
        "/v1/metrics" => Signal::Metrics,
        "/v1/logs" => Signal::Logs,
        other => return plain(StatusCode::NOT_FOUND, format!("no OTLP signal at {other}")),
    };
    if request.method() != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} takes POST", signal.http_path()),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("POST"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let body = match Limited::new(body, MAX_EXPORT_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let reason = format!("reading the body: {error}");
            return reject(
                shared,
                signal,
                headers,
                Bytes::new(),
                StatusCode::BAD_REQUEST,
                None,
                reason,
            );
        }
    };
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let encoding = match media_type.as_str() {
        "application/x-protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            // As the collector: 415 naming what it takes.
            let reason = format!(
                "content-type {media_type:?} is not supported, use application/x-protobuf or application/json"
            );
            return reject(
                shared,
                signal,
                headers,
                body,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                reason,
            );
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let decompressed = match content_encoding.as_str() {
        "" | "identity" => Ok(body.clone()),
        "gzip" => gunzip(&body),
        other => Err(format!(
            "content-encoding {other:?} is not supported, use gzip"
        )),
    };
    let decoded = decompressed.and_then(|bytes| decode(signal, encoding, &bytes));
    let payload = match decoded {
        Ok(payload) => payload,
        Err(reason) => {
            return reject(
                shared,
                signal,
                headers,
                body,
                StatusCode::BAD_REQUEST,
                Some(encoding),
                reason,
            );
        }
    };
    match shared
        .admit(signal, Transport::Http, headers, payload)
        .await
    {
        Ok(()) => success(signal, encoding),
        Err(failure) => {
            let mut response = status_response(
                failure.http_status(),
                encoding,
                failure.grpc_code() as i32,
                failure.message(),
            );
            if failure == Failure::Unavailable {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            }
            response
        }
    }
}

/// Records a refused OTLP/HTTP request and builds its answer.
fn reject(
    shared: &Shared,
    signal: Signal,
    headers: HeaderMap,
    body: Bytes,
    status: StatusCode,
    encoding: Option<Encoding>,
    reason: String,
) -> Response<Full<Bytes>> {
    shared.record(Export {
        signal,
        transport: Transport::Http,
        headers,
        payload: Payload::Undecodable(body),
        outcome: Outcome::Rejected {
            status: status.as_u16(),
            reason: reason.clone(),
        },
    });
    match encoding {
        Some(encoding) => status_response(
            status,
            encoding,
            tonic::Code::InvalidArgument as i32,
            &reason,
        ),
        None => plain(status, reason),
    }
}

fn gunzip(body: &[u8]) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_EXPORT_BYTES).unwrap_or(u64::MAX) + 1;
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|error| format!("gzip body: {error}"))?;
    if out.len() > MAX_EXPORT_BYTES {
        return Err(format!("gzip body inflates past {MAX_EXPORT_BYTES} bytes"));
    }
    Ok(out.into())
}

fn decode(signal: Signal, encoding: Encoding, body: &[u8]) -> Result<Payload, String> {
    fn parse<T: prost::Message + Default + serde::de::DeserializeOwned>(
        encoding: Encoding,
        body: &[u8],
    ) -> Result<T, String> {
        match encoding {
            Encoding::Protobuf => {
                T::decode(body).map_err(|error| format!("protobuf body: {error}"))
            }
            Encoding::Json => {
                serde_json::from_slice(body).map_err(|error| format!("JSON body: {error}"))
            }
        }
    }
    Ok(match signal {
        Signal::Traces => Payload::Traces(parse(encoding, body)?),
        Signal::Metrics => Payload::Metrics(parse(encoding, body)?),
        Signal::Logs => Payload::Logs(parse(encoding, body)?),
    })
}

fn success(signal: Signal, encoding: Encoding) -> Response<Full<Bytes>> {
    fn encode<T: prost::Message + serde::Serialize>(encoding: Encoding, message: &T) -> Vec<u8> {
        match encoding {
            Encoding::Protobuf => message.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
        }
    }
    let body = match signal {
        Signal::Traces => encode(encoding, &ExportTraceServiceResponse::default()),
        Signal::Metrics => encode(encoding, &ExportMetricsServiceResponse::default()),
        Signal::Logs => encode(encoding, &ExportLogsServiceResponse::default()),
    };
    with_body(StatusCode::OK, encoding.content_type(), body)
}

fn status_response(
    status: StatusCode,
    encoding: Encoding,
    code: i32,
    message: &str,
) -> Response<Full<Bytes>> {
    let rpc = RpcStatus {
        code,
        message: message.to_owned(),
    };
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&rpc).unwrap_or_default(),
    };
    with_body(status, encoding.content_type(), body)
}

fn plain(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    with_body(status, "text/plain; charset=utf-8", message.into_bytes())
}

fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn resource_attributes(resource: Option<Resource>) -> Vec<KeyValue> {
    resource
        .map(|resource| resource.attributes)
        .unwrap_or_default()
}

fn flatten_metric(resource: &[KeyValue], scope: &str, metric: Metric) -> ReceivedMetric {
    fn temporality(value: i32) -> AggregationTemporality {
        AggregationTemporality::try_from(value).unwrap_or(AggregationTemporality::Unspecified)
    }
    fn number(point: proto::metrics::v1::NumberDataPoint) -> ReceivedPoint {
        ReceivedPoint {
            attributes: point.attributes,
            start_time_unix_nano: point.start_time_unix_nano,
            time_unix_nano: point.time_unix_nano,
            value: match point.value {
                Some(number_data_point::Value::AsInt(value)) => PointValue::Int(value),
                Some(number_data_point::Value::AsDouble(value)) => PointValue::Double(value),
                None => PointValue::Missing,
            },
        }
    }
    let (kind, points) = match metric.data {
        None => (MetricKind::Empty, Vec::new()),
        Some(metric::Data::Gauge(gauge)) => (
            MetricKind::Gauge,
            gauge.data_points.into_iter().map(number).collect(),
        ),
        Some(metric::Data::Sum(sum)) => (
            MetricKind::Sum {
                monotonic: sum.is_monotonic,
                temporality: temporality(sum.aggregation_temporality),
            },
            sum.data_points.into_iter().map(number).collect(),
        ),
        Some(metric::Data::Histogram(histogram)) => (
            MetricKind::Histogram {
                temporality: temporality(histogram.aggregation_temporality),
            },
            histogram
                .data_points
                .into_iter()
                .map(|point| ReceivedPoint {
                    attributes: point.attributes,
                    start_time_unix_nano: point.start_time_unix_nano,
                    time_unix_nano: point.time_unix_nano,
                    value: PointValue::Histogram {
                        count: point.count,
                        sum: point.sum,
                        min: point.min,
                        max: point.max,
                        bucket_counts: point.bucket_counts,
                        explicit_bounds: point.explicit_bounds,
                    },
                })
                .collect(),
        ),
        Some(metric::Data::ExponentialHistogram(histogram)) => (
            MetricKind::ExponentialHistogram {
                temporality: temporality(histogram.aggregation_temporality),
            },
            histogram
                .data_points
                .into_iter()
                .map(|point| ReceivedPoint {
                    attributes: point.attributes,
                    start_time_unix_nano: point.start_time_unix_nano,
                    time_unix_nano: point.time_unix_nano,
                    value: PointValue::ExponentialHistogram {
                        count: point.count,
                        sum: point.sum,
                        min: point.min,
                        max: point.max,
                    },
                })
                .collect(),
        ),
        Some(metric::Data::Summary(summary)) => (
            MetricKind::Summary,
            summary
                .data_points
                .into_iter()
                .map(|point| ReceivedPoint {
                    attributes: point.attributes,
                    start_time_unix_nano: point.start_time_unix_nano,
                    time_unix_nano: point.time_unix_nano,
                    value: PointValue::Summary {
                        count: point.count,
                        sum: point.sum,
                    },
                })
                .collect(),
        ),
    };
    ReceivedMetric {
        resource: resource.to_vec(),
        scope: scope.to_owned(),
        name: metric.name,
        description: metric.description,
        unit: metric.unit,
        kind,
        points,
    }
}

fn value_strings(value: &AnyValue, out: &mut Vec<String>) {
    match &value.value {
        Some(Value::StringValue(text)) => out.push(text.clone()),
        Some(Value::BytesValue(bytes)) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::ArrayValue(array)) => {
            for item in &array.values {
                value_strings(item, out);
            }
        }
        Some(Value::KvlistValue(list)) => attribute_strings(&list.values, out),
        Some(
            Value::BoolValue(_)
            | Value::IntValue(_)
            | Value::DoubleValue(_)
            | Value::StringValueStrindex(_),
        )
        | None => {}
    }
}

fn attribute_strings(attributes: &[KeyValue], out: &mut Vec<String>) {
    for kv in attributes {
        out.push(kv.key.clone());
        if let Some(value) = &kv.value {
            value_strings(value, out);
        }
    }
}

fn resource_strings(resource: Option<&Resource>, schema_url: &str, out: &mut Vec<String>) {
    if let Some(resource) = resource {
        attribute_strings(&resource.attributes, out);
    }
    out.push(schema_url.to_owned());
}

fn scope_strings(scope: Option<&InstrumentationScope>, schema_url: &str, out: &mut Vec<String>) {
    if let Some(scope) = scope {
        out.push(scope.name.clone());
        out.push(scope.version.clone());
        attribute_strings(&scope.attributes, out);
    }
    out.push(schema_url.to_owned());
}

fn trace_strings(request: &ExportTraceServiceRequest, out: &mut Vec<String>) {
    for resource_spans in &request.resource_spans {
        resource_strings(
            resource_spans.resource.as_ref(),
            &resource_spans.schema_url,
            out,
        );
        for scope_spans in &resource_spans.scope_spans {
            scope_strings(scope_spans.scope.as_ref(), &scope_spans.schema_url, out);
            for span in &scope_spans.spans {
                out.push(span.name.clone());
                out.push(span.trace_state.clone());
                attribute_strings(&span.attributes, out);
                for event in &span.events {
                    out.push(event.name.clone());
                    attribute_strings(&event.attributes, out);
                }
                for link in &span.links {
                    out.push(link.trace_state.clone());
                    attribute_strings(&link.attributes, out);
                }
                if let Some(status) = &span.status {
                    out.push(status.message.clone());
                }
            }
        }
    }
}

fn metric_strings(request: &ExportMetricsServiceRequest, out: &mut Vec<String>) {
    for resource_metrics in &request.resource_metrics {
        resource_strings(
            resource_metrics.resource.as_ref(),
            &resource_metrics.schema_url,
            out,
        );
        for scope_metrics in &resource_metrics.scope_metrics {
            scope_strings(scope_metrics.scope.as_ref(), &scope_metrics.schema_url, out);
            for metric in &scope_metrics.metrics {
                out.push(metric.name.clone());
                out.push(metric.description.clone());
                out.push(metric.unit.clone());
                attribute_strings(&metric.metadata, out);
                metric_point_strings(metric, out);
            }
        }
    }
}

fn metric_point_strings(metric: &Metric, out: &mut Vec<String>) {
    use proto::metrics::v1::Exemplar;
    let mut point = |attributes: &[KeyValue], exemplars: &[Exemplar]| {
        attribute_strings(attributes, out);
        for exemplar in exemplars {
            attribute_strings(&exemplar.filtered_attributes, out);
        }
    };
    match &metric.data {
        Some(metric::Data::Gauge(gauge)) => {
            for p in &gauge.data_points {
                point(&p.attributes, &p.exemplars);
            }
        }
        Some(metric::Data::Sum(sum)) => {
            for p in &sum.data_points {
                point(&p.attributes, &p.exemplars);
            }
        }
        Some(metric::Data::Histogram(histogram)) => {
            for p in &histogram.data_points {
                point(&p.attributes, &p.exemplars);
            }
        }
        Some(metric::Data::ExponentialHistogram(histogram)) => {
            for p in &histogram.data_points {
                point(&p.attributes, &p.exemplars);
            }
        }
        Some(metric::Data::Summary(summary)) => {
            for p in &summary.data_points {
                point(&p.attributes, &[]);
            }
        }
        None => {}
    }
}

fn log_strings(request: &ExportLogsServiceRequest, out: &mut Vec<String>) {
    for resource_logs in &request.resource_logs {
        resource_strings(
            resource_logs.resource.as_ref(),
            &resource_logs.schema_url,
            out,
        );
        for scope_logs in &resource_logs.scope_logs {
            scope_strings(scope_logs.scope.as_ref(), &scope_logs.schema_url, out);
            for record in &scope_logs.log_records {
                out.push(record.severity_text.clone());
                out.push(record.event_name.clone());
                if let Some(body) = &record.body {
                    value_strings(body, out);
                }
                attribute_strings(&record.attributes, out);
            }
        }
    }
}
