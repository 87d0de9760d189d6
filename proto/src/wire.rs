//! The gRPC edge: conversions between the `quarry.v1` prost types and the
//! engine's domain types, used by both ends of the control plane.
//!
//! Prost types go no further than this module, the daemon's service shell
//! and the controller's client; everything else (engine, registry,
//! controller merge) works on
//! [`IntervalSnapshot`], [`SeriesDelta`], [`SeriesKey`] and [`HealthSample`].
//! Both ends use the same functions, so what the agent encodes is exactly
//! what the controller decodes: histograms travel as HdrHistogram V2+DEFLATE
//! bytes (lossless), counters by name, times as Unix nanoseconds on the
//! agent's wall clock.
//!
//! Interval times are kept relative to the share's origin in the domain and
//! absolute on the wire; the origin is the `Started` event's
//! `started_at_unix_ns`, so [`EventDecoder`] needs `Started` before any
//! `Interval` (a replay from sequence 0 always begins with it; a re-attach
//! keeps the decoder it had).

use std::collections::BTreeMap;

use quarry_bedrock::{Operation, ServiceTierType};
use quarry_engine::{
    CodecError, FinishKind, HealthSample, IntervalSnapshot, Saturation, SeriesDelta, SeriesKey,
    ShareEvent, ShareFinished,
};

use crate::v1 as pb;

/// A message from the wire is malformed or does not fit the domain.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A required message field is absent.
    #[error("{0} is missing")]
    MissingField(&'static str),
    /// `SeriesKey.operation` is not an operation this build knows.
    #[error("SeriesKey.operation {0:?} is not a known operation")]
    Operation(String),
    /// `SeriesKey.tier` is not a service tier this build knows.
    #[error("SeriesKey.tier {0:?} is not a known service tier")]
    Tier(String),
    /// A histogram or counter failed to decode (or to encode).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The same series key appears twice in one message.
    #[error("series {0} appears twice in one message")]
    DuplicateSeries(String),
    /// An interval time lies before the share's origin or overflows.
    #[error(
        "Interval.{field} = {value} ns lies before the share's start ({origin} ns) or overflows"
    )]
    IntervalTime {
        /// `start_unix_ns` or `end_unix_ns`.
        field: &'static str,
        /// The value received.
        value: i64,
        /// The share's origin, Unix ns.
        origin: i64,
    },
    /// An `Interval` arrived before the `Started` that anchors its times.
    #[error("RunEvent {sequence}: an interval arrived before the share's Started event")]
    IntervalBeforeStarted {
        /// Its sequence number.
        sequence: u64,
    },
    /// Sequence numbers skipped: events were lost.
    #[error("RunEvent sequence gap: expected {expected}, got {got}")]
    SequenceGap {
        /// The next sequence number due.
        expected: u64,
        /// The one received.
        got: u64,
    },
}

// ---------------------------------------------------------------------------
// Series.

/// The operation's wire spelling: its service-model name, empty for a
/// stage's schedule series.
fn operation_name(op: Option<Operation>) -> &'static str {
    op.map_or("", Operation::name)
}

/// A series key as sent.
pub fn series_key_to_proto(key: &SeriesKey) -> pb::SeriesKey {
    pb::SeriesKey {
        group: key.group.to_string(),
        model: key.model.to_string(),
        operation: operation_name(key.operation).to_owned(),
        stage: key.stage.to_string(),
        tier: key.tier.map_or("", ServiceTierType::as_str).to_owned(),
        turn: key.turn.unwrap_or(0),
    }
}

/// A series key as received.
pub fn series_key_from_proto(key: &pb::SeriesKey) -> Result<SeriesKey, WireError> {
    let operation = if key.operation.is_empty() {
        None
    } else {
        // Exact names only: the sender always writes `Operation::name`.
        let op = Operation::ALL
            .into_iter()
            .find(|op| op.name() == key.operation)
            .ok_or_else(|| WireError::Operation(key.operation.clone()))?;
        Some(op)
    };
    let tier = if key.tier.is_empty() {
        None
    } else {
        Some(ServiceTierType::parse(&key.tier).ok_or_else(|| WireError::Tier(key.tier.clone()))?)
    };
    Ok(SeriesKey {
        group: key.group.as_str().into(),
        model: key.model.as_str().into(),
        operation,
        stage: key.stage.as_str().into(),
        tier,
        turn: (key.turn > 0).then_some(key.turn),
    })
}

/// One series as sent: every non-empty histogram (plain V2: far cheaper for
/// the controller to decode than V2+DEFLATE, which it also reads) and every
/// non-zero counter (absent ones decode as empty / zero).
pub fn series_to_proto(key: &SeriesKey, delta: &SeriesDelta) -> Result<pb::SeriesDelta, WireError> {
    let histograms = delta
        .encode_histograms_v2()?
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect();
    let counters = delta
        .counters()
        .named()
        .filter(|(_, v)| *v != 0)
        .map(|(name, v)| (name.to_owned(), v))
        .collect();
    Ok(pb::SeriesDelta {
        key: Some(series_key_to_proto(key)),
        histograms,
        counters,
    })
}

/// One series as received.
pub fn series_from_proto(series: &pb::SeriesDelta) -> Result<(SeriesKey, SeriesDelta), WireError> {
    let key = series
        .key
        .as_ref()
        .ok_or(WireError::MissingField("SeriesDelta.key"))?;
    let key = series_key_from_proto(key)?;
    let delta = SeriesDelta::decode(
        series
            .histograms
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice())),
        series.counters.iter().map(|(n, v)| (n.as_str(), *v)),
    )?;
    Ok((key, delta))
}

/// A set of series as sent, in key order.
pub fn series_map_to_proto(
    series: &BTreeMap<SeriesKey, SeriesDelta>,
) -> Result<Vec<pb::SeriesDelta>, WireError> {
    series
        .iter()
        .map(|(key, delta)| series_to_proto(key, delta))
        .collect()
}

/// A set of series as received; a key sent twice is refused.
pub fn series_map_from_proto(
    series: &[pb::SeriesDelta],
) -> Result<BTreeMap<SeriesKey, SeriesDelta>, WireError> {
    let mut out = BTreeMap::new();
    for s in series {
        let (key, delta) = series_from_proto(s)?;
        if out.contains_key(&key) {
            return Err(WireError::DuplicateSeries(key.to_string()));
        }
        out.insert(key, delta);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Health and intervals.

/// An interval's health as sent.
pub fn health_to_proto(health: &HealthSample) -> pb::AgentHealth {
    pb::AgentHealth {
        cpu_percent: health.cpu_percent.unwrap_or(0.0),
        in_flight: health.in_flight,
        schedule_lag_p99_ns: health.schedule_lag_p99_ns,
        pool_wait_p99_ns: health.pool_wait_p99_ns,
        runtime_delay_p95_ns: health.runtime_delay_p95_ns,
        saturated: health.saturated,
        cpu_percent_unavailable: health.cpu_percent.is_none(),
        saturation_causes: health.saturation.bits(),
    }
}

/// An interval's health as received.
pub fn health_from_proto(health: &pb::AgentHealth) -> HealthSample {
    HealthSample {
        cpu_percent: (!health.cpu_percent_unavailable).then_some(health.cpu_percent),
        in_flight: health.in_flight,
        schedule_lag_p99_ns: health.schedule_lag_p99_ns,
        pool_wait_p99_ns: health.pool_wait_p99_ns,
        runtime_delay_p95_ns: health.runtime_delay_p95_ns,
        saturated: health.saturated,
        saturation: match health.saturation_causes {
            // An agent from before the causes: lag was its only sign.
            0 if health.saturated => Saturation {
                schedule_lag: true,
                ..Saturation::default()
            },
            bits => Saturation::from_bits(bits),
        },
    }
}

/// `origin + ns` as Unix ns, saturating (±292 years never happens in a run).
fn unix_at(origin_unix_ns: i64, ns: u64) -> i64 {
    origin_unix_ns.saturating_add(i64::try_from(ns).unwrap_or(i64::MAX))
}

/// Unix ns back to ns since the origin.
fn since_origin(field: &'static str, value: i64, origin: i64) -> Result<u64, WireError> {
    value
        .checked_sub(origin)
        .and_then(|d| u64::try_from(d).ok())
        .ok_or(WireError::IntervalTime {
            field,
            value,
            origin,
        })
}

/// An interval as sent; `origin_unix_ns` is the share's origin on the
/// agent's wall clock (`RunClock::unix_ns_at(0)`, the `Started` time).
pub fn interval_to_proto(
    snapshot: &IntervalSnapshot,
    origin_unix_ns: i64,
) -> Result<pb::Interval, WireError> {
    Ok(pb::Interval {
        index: snapshot.index,
        start_unix_ns: unix_at(origin_unix_ns, snapshot.start),
        end_unix_ns: unix_at(origin_unix_ns, snapshot.end),
        series: series_map_to_proto(&snapshot.series)?,
        health: Some(health_to_proto(&snapshot.health)),
    })
}

/// An interval as received, with times made relative to `origin_unix_ns`
/// again. A missing health block decodes as an empty sample.
pub fn interval_from_proto(
    interval: &pb::Interval,
    origin_unix_ns: i64,
) -> Result<IntervalSnapshot, WireError> {
    Ok(IntervalSnapshot {
        index: interval.index,
        start: since_origin("start_unix_ns", interval.start_unix_ns, origin_unix_ns)?,
        end: since_origin("end_unix_ns", interval.end_unix_ns, origin_unix_ns)?,
        series: series_map_from_proto(&interval.series)?,
        health: interval
            .health
            .as_ref()
            .map(health_from_proto)
            .unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------
// Run events.

fn finish_kind_to_proto(kind: FinishKind) -> pb::FinishKind {
    match kind {
        FinishKind::Completed => pb::FinishKind::Completed,
        FinishKind::RequestLimit => pb::FinishKind::RequestLimit,
        FinishKind::Stopped => pb::FinishKind::Stopped,
        FinishKind::Failed => pb::FinishKind::Failed,
    }
}

/// How a share finished; from an agent that predates `kind`, what its
/// `partial` flag and reason said (its only non-partial ends were
/// "completed" and "request limit reached").
fn finish_kind_from_proto(f: &pb::Finished) -> FinishKind {
    match f.kind() {
        pb::FinishKind::Completed => FinishKind::Completed,
        pb::FinishKind::RequestLimit => FinishKind::RequestLimit,
        pb::FinishKind::Stopped => FinishKind::Stopped,
        pb::FinishKind::Failed => FinishKind::Failed,
        pb::FinishKind::Unspecified if f.partial => FinishKind::Stopped,
        pb::FinishKind::Unspecified if f.reason.starts_with("request limit") => {
            FinishKind::RequestLimit
        }
        pb::FinishKind::Unspecified => FinishKind::Completed,
    }
}

/// A decoded event with its sequence number (dense per share, from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct SequencedEvent {
    /// The event's sequence number.
    pub sequence: u64,
    /// The event.
    pub event: ShareEvent,
}

/// An event as sent. `origin_unix_ns` anchors interval times (see
/// [`interval_to_proto`]); other events ignore it.
pub fn event_to_proto(
    sequence: u64,
    event: &ShareEvent,
    origin_unix_ns: i64,
) -> Result<pb::RunEvent, WireError> {
    use pb::run_event::Event;
    let event = match event {
        ShareEvent::Started { started_at_unix_ns } => Event::Started(pb::Started {
            started_at_unix_ns: *started_at_unix_ns,
        }),
        ShareEvent::Interval(snapshot) => {
            Event::Interval(interval_to_proto(snapshot, origin_unix_ns)?)
        }
        ShareEvent::Spans {
            otlp_resource_spans,
            dropped_spans,
        } => Event::Spans(pb::SpanBatch {
            otlp_resource_spans: otlp_resource_spans.clone(),
            dropped_spans: *dropped_spans,
        }),
        ShareEvent::Finished(f) => Event::Finished(pb::Finished {
            series: series_map_to_proto(&f.series)?,
            partial: f.partial(),
            reason: f.reason.clone(),
            requests_sent: f.requests_sent,
            finished_at_unix_ns: f.finished_at_unix_ns,
            kind: finish_kind_to_proto(f.kind).into(),
        }),
    };
    Ok(pb::RunEvent {
        sequence,
        event: Some(event),
    })
}

/// Decodes a share's events in order, checking that sequence numbers are
/// dense: an already-seen sequence (the overlap of a re-attach) is skipped,
/// a gap is an error. Keep one decoder per share across re-attaches, and
/// re-attach with `Results(after_sequence = decoder.last_sequence())`.
#[derive(Debug, Clone, Default)]
pub struct EventDecoder {
    origin_unix_ns: Option<i64>,
    last_sequence: u64,
}

impl EventDecoder {
    /// A decoder expecting sequence 1 (`Started`) next.
    pub fn new() -> Self {
        EventDecoder::default()
    }

    /// The last sequence number decoded (0 before any).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// The share's origin, once `Started` was decoded.
    pub fn origin_unix_ns(&self) -> Option<i64> {
        self.origin_unix_ns
    }

    /// Decodes the next event: `Ok(None)` when its sequence was already
    /// decoded (a duplicate to drop), an error on a gap or a malformed event.
    pub fn decode(&mut self, event: &pb::RunEvent) -> Result<Option<SequencedEvent>, WireError> {
        use pb::run_event::Event;
        if event.sequence <= self.last_sequence {
            return Ok(None);
        }
        let expected = self.last_sequence + 1;
        if event.sequence != expected {
            return Err(WireError::SequenceGap {
                expected,
                got: event.sequence,
            });
        }
        let inner = event
            .event
            .as_ref()
            .ok_or(WireError::MissingField("RunEvent.event"))?;
        let decoded = match inner {
            Event::Started(s) => {
                self.origin_unix_ns = Some(s.started_at_unix_ns);
                ShareEvent::Started {
                    started_at_unix_ns: s.started_at_unix_ns,
                }
            }
            Event::Interval(interval) => {
                let origin = self
                    .origin_unix_ns
                    .ok_or(WireError::IntervalBeforeStarted {
                        sequence: event.sequence,
                    })?;
                ShareEvent::Interval(interval_from_proto(interval, origin)?)
            }
            Event::Spans(batch) => ShareEvent::Spans {
                otlp_resource_spans: batch.otlp_resource_spans.clone(),
                dropped_spans: batch.dropped_spans,
            },
            Event::Finished(f) => ShareEvent::Finished(ShareFinished {
                series: series_map_from_proto(&f.series)?,
                kind: finish_kind_from_proto(f),
                reason: f.reason.clone(),
                requests_sent: f.requests_sent,
                finished_at_unix_ns: f.finished_at_unix_ns,
            }),
        };
        self.last_sequence = event.sequence;
        Ok(Some(SequencedEvent {
            sequence: event.sequence,
            event: decoded,
        }))
    }
}

#[cfg(test)]
mod tests;
