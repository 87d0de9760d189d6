//! What a running share reports, in domain form: the events of its stream
//! (`Started`, one `Interval` per interval, `Spans` batches, `Finished`) and
//! how it finished. The daemon appends them to a run's event log for a
//! remote controller; an in-process run hands them straight to the
//! controller's coordinator. Both get them from one harness
//! ([`PreparedShare::drive`](super::PreparedShare::drive)).

use std::collections::BTreeMap;

use crate::series::{SeriesDelta, SeriesKey};
use crate::snapshot::IntervalSnapshot;

/// How a share finished, for the controller's verdict on the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishKind {
    /// Its last stage ended.
    Completed,
    /// It sent its part of the plan's request count.
    RequestLimit,
    /// It was stopped before its plan ended (by its controller, a lease
    /// that expired, the agent shutting down).
    Stopped,
    /// It could not run to its end (the engine failed, the agent restarted
    /// mid-run).
    Failed,
}

impl FinishKind {
    /// True when the share did less than its plan.
    pub fn is_partial(self) -> bool {
        matches!(self, FinishKind::Stopped | FinishKind::Failed)
    }
}

/// How a share ended: its cumulative series and why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareFinished {
    /// Every interval of the share merged.
    pub series: BTreeMap<SeriesKey, SeriesDelta>,
    /// How it finished.
    pub kind: FinishKind,
    /// Why it ended, for people ("completed", "lease expired", ...).
    pub reason: String,
    /// Requests sent (dropped arrivals excluded).
    pub requests_sent: u64,
    /// When the last request was recorded, Unix ns on the agent's clock.
    pub finished_at_unix_ns: i64,
}

impl ShareFinished {
    /// The share ended early (stopped, lease expired, agent shutting down,
    /// failed).
    pub fn partial(&self) -> bool {
        self.kind.is_partial()
    }
}

/// One event of a share's stream, in domain form.
#[derive(Debug, Clone, PartialEq)]
pub enum ShareEvent {
    /// The share's origin: firing started at this agent wall-clock time.
    Started {
        /// Unix ns on the agent's clock; interval times are relative to it.
        started_at_unix_ns: i64,
    },
    /// One interval's deltas.
    Interval(IntervalSnapshot),
    /// A batch of sampled request spans, OTLP-encoded.
    Spans {
        /// OTLP `ResourceSpans`, protobuf-encoded.
        otlp_resource_spans: Vec<u8>,
        /// Spans the agent dropped before this batch.
        dropped_spans: u64,
    },
    /// The last event of a share.
    Finished(ShareFinished),
}
