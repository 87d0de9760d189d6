//! The coordinator: every run's shares, wherever they run, merged into one
//! stream of interval snapshots, and how each share ended.
//!
//! A run is split into shares ([`split`]: one per agent, or exactly one for
//! an in-process run — k6's execution segment `0:1`, the general case with
//! one segment). Each share reports the same [`ShareEvent`]s, from the
//! engine's one harness (`quarry_engine::PreparedShare::drive`): an agent
//! daemon streams them over gRPC and the fleet client follows the stream
//! across broken connections; an in-process share hands them over directly.
//! Both arrive here as [`ShareUpdate`]s tagged with their share's index, and
//! [`Shares::coordinate`] merges the intervals exactly ([`merge`]) and tallies how
//! each share ended ([`SharesOutcome`]). The run's end is decided from that
//! outcome in one place ([`SharesOutcome::run_end`]).

pub mod merge;
pub mod split;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use quarry_engine::{IntervalSnapshot, ShareEvent, ShareFinished};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{ClockEstimate, StartSkew, start_skew};
use merge::{IntervalMerge, ShareCounters, counters_of};

/// What a share's stream said, in order: its events (`Started`,
/// `Interval`s, `Spans`, `Finished`), re-attaches, and the end of the
/// stream (always the last update of a share).
#[derive(Debug)]
pub enum ShareUpdate {
    /// One event of the share, as the engine's harness produced it.
    Event(ShareEvent),
    /// The stream broke and was re-attached after this sequence.
    Reattached {
        /// The last sequence seen before re-attaching.
        after_sequence: u64,
    },
    /// The share's stream ended.
    Ended(ShareEnd),
}

/// How a share's stream ended (its `Finished` event, if any, came before
/// as a [`ShareUpdate::Event`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareEnd {
    /// Why the share was lost (unreachable past the re-attach window, a
    /// sequence gap, a malformed event, a task that died); `None` when its
    /// stream ended normally.
    pub lost: Option<String>,
    /// Re-attaches made.
    pub reattaches: u32,
    /// Resent events dropped as duplicates.
    pub duplicates: u64,
    /// The last sequence received (0 for an in-process share).
    pub last_sequence: u64,
}

/// Where a share runs, as its outcome and the trace name it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareSite {
    /// The agent's id (`in-process` for a share run by the controller).
    pub agent_id: String,
    /// Where it was reached (`local` for an in-process share).
    pub address: String,
    /// The agent group its series report under.
    pub group: String,
    /// Its clock against the controller's.
    pub clock: ClockEstimate,
}

/// What a share did that the run's trace records.
#[derive(Debug)]
pub enum ShareSignal {
    /// Share `share` started firing at `agent_unix_ns` (its agent's clock).
    Started {
        /// The share.
        share: usize,
        /// Unix ns, agent clock.
        agent_unix_ns: i64,
    },
    /// A batch of share `share`'s request spans.
    Spans {
        /// The share.
        share: usize,
        /// OTLP `ResourceSpans` bytes.
        otlp_resource_spans: Vec<u8>,
        /// Spans the agent dropped.
        dropped: u64,
    },
    /// Share `share` ended: at `agent_unix_ns` when its agent said so
    /// (`None`: lost), partial or lost for `problem`.
    Ended {
        /// The share.
        share: usize,
        /// Unix ns, agent clock, when it finished.
        agent_unix_ns: Option<i64>,
        /// Why it is partial or lost.
        problem: Option<String>,
    },
}

/// Stops one share early; its stream then ends with its `Finished`.
pub type StopShare = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Stops every share of a run.
#[derive(Clone)]
pub struct Stopper {
    shares: Vec<StopShare>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("shares", &self.shares.len())
            .finish()
    }
}

impl Stopper {
    /// A stopper of these shares.
    pub fn new(shares: Vec<StopShare>) -> Self {
        Stopper { shares }
    }

    /// Asks every share to stop, all at once, and waits for the asks (not
    /// for the shares to end). A share that cannot be reached is skipped.
    pub async fn stop(&self) {
        let asks: Vec<_> = self.shares.iter().map(|s| tokio::spawn(s())).collect();
        for ask in asks {
            // A share that is gone has nothing left to stop.
            let _ = ask.await;
        }
    }
}

/// A run's shares, under way: their updates, where they run, and how to
/// stop them. Built by the in-process runner or the fleet client; consumed
/// by [`Shares::coordinate`].
#[derive(Debug)]
pub struct Shares {
    /// Every share's updates, tagged with its index.
    pub updates: mpsc::Receiver<(usize, ShareUpdate)>,
    /// Where each share runs, by index.
    pub sites: Vec<ShareSite>,
    /// Stops them all.
    pub stopper: Stopper,
    /// The common start the shares were given, Unix ns on the controller's
    /// clock; `None` when attaching to shares already started.
    pub planned_start_unix_ns: Option<i64>,
}

/// A run being coordinated.
#[derive(Debug)]
pub struct Coordinated {
    /// Merged snapshots, in interval order; closed when every share ended.
    pub snapshots: mpsc::Receiver<IntervalSnapshot>,
    /// The outcome, once every share ended.
    pub outcome: oneshot::Receiver<SharesOutcome>,
    /// Stops every share early.
    pub stopper: Stopper,
}

impl Shares {
    /// Merges the shares' streams on a task of its own; what the trace
    /// records goes to `signals`.
    pub fn coordinate(self, signals: Option<mpsc::UnboundedSender<ShareSignal>>) -> Coordinated {
        let (snapshots_tx, snapshots) = mpsc::channel(256);
        let (outcome_tx, outcome) = oneshot::channel();
        let stopper = self.stopper.clone();
        tokio::spawn(async move {
            let result = coordinate(self, snapshots_tx, signals).await;
            // The caller may have given up waiting; nothing to tell it then.
            let _ = outcome_tx.send(result);
        });
        Coordinated {
            snapshots,
            outcome,
            stopper,
        }
    }
}

/// How one share ended (`fleet.json` holds one per share of a distributed
/// run).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShareOutcome {
    /// The agent that ran it.
    pub agent_id: String,
    /// Where it was reached.
    pub address: String,
    /// The group its series report under.
    pub group: String,
    /// When it started firing, Unix ns on the controller's clock.
    pub started_at_unix_ns: Option<i64>,
    /// When its last request was recorded, ns after it started (on its own
    /// clock); `None` when it never said (lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_after_ns: Option<u64>,
    /// Intervals delivered.
    pub intervals: u64,
    /// Requests sent, as the agent reported at the end; `None` when lost.
    pub requests_sent: Option<u64>,
    /// The share holds less than its plan: the agent stopped early, or was
    /// lost (then its data ends at its last interval).
    pub partial: bool,
    /// Why it ended ("completed", the agent's reason, or why it was lost).
    pub reason: String,
    /// The agent was lost (unreachable, or its stream broke the protocol).
    pub lost: bool,
    /// Stream re-attaches made.
    pub reattaches: u32,
    /// Resent events dropped.
    pub duplicates: u64,
    /// The agent's final counters equal the sum of its intervals' (`None`
    /// when it never sent them).
    pub totals_match: Option<bool>,
    /// How it finished, when it said so (not recorded in `fleet.json`:
    /// `partial` and `reason` say it for people).
    #[serde(skip)]
    pub finish: Option<quarry_engine::FinishKind>,
}

/// How all the shares of a run ended (`fleet.json` of a distributed run).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharesOutcome {
    /// The common start, Unix ns on the controller's clock (for a
    /// re-attached run, the earliest actual start).
    pub planned_start_unix_ns: i64,
    /// How far apart the shares actually started.
    pub start_skew: Option<StartSkew>,
    /// One entry per share, in share order.
    pub shares: Vec<ShareOutcome>,
    /// Problems merging (a share's intervals out of order).
    pub merge_errors: Vec<String>,
}

/// How a run ended, from its shares' ends: the one mapping every run
/// takes, in-process or distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnding {
    /// Every share ran its plan to the last stage.
    Completed,
    /// Every share ran its plan, and some reached their request count.
    RequestLimit,
    /// The user stopped the run (every share then ends early).
    Stopped,
    /// A share was lost, ended early on its own, or a stream broke the
    /// protocol.
    Degraded,
}

impl SharesOutcome {
    /// Some share is partial or lost, or the merge saw a broken stream.
    pub fn degraded(&self) -> bool {
        self.shares.iter().any(|s| s.partial || s.lost) || !self.merge_errors.is_empty()
    }

    /// Requests sent over all shares; `None` when a share's count is
    /// unknown.
    pub fn requests_sent(&self) -> Option<u64> {
        self.shares.iter().map(|s| s.requests_sent).sum()
    }

    /// How the run ended: degraded when a share was lost or the merge saw a
    /// broken stream, whatever else happened; stopped when the user stopped
    /// it (`stopped_by_user`: every share then ends early, which is not a
    /// degradation); degraded when a share ended early on its own; else
    /// request limit or completed.
    pub fn run_end(&self, stopped_by_user: bool) -> RunEnding {
        let lost = self.shares.iter().any(|s| s.lost) || !self.merge_errors.is_empty();
        if lost {
            RunEnding::Degraded
        } else if stopped_by_user {
            RunEnding::Stopped
        } else if self.degraded() {
            RunEnding::Degraded
        } else if self
            .shares
            .iter()
            .any(|s| s.finish == Some(quarry_engine::FinishKind::RequestLimit))
        {
            RunEnding::RequestLimit
        } else {
            RunEnding::Completed
        }
    }
}

/// What one share told the coordinator so far.
#[derive(Debug, Default)]
struct ShareState {
    started: Option<i64>,
    finished: Option<ShareFinished>,
    end: Option<ShareEnd>,
}

/// Merges the shares' updates into one snapshot stream until every share
/// ended, and tallies how each ended.
async fn coordinate(
    shares: Shares,
    snapshots: mpsc::Sender<IntervalSnapshot>,
    signals: Option<mpsc::UnboundedSender<ShareSignal>>,
) -> SharesOutcome {
    let Shares {
        mut updates,
        sites,
        planned_start_unix_ns,
        ..
    } = shares;
    // The trace is a bystander: a receiver that is gone changes nothing.
    let signal = |s: ShareSignal| {
        if let Some(tx) = &signals {
            let _ = tx.send(s);
        }
    };
    let mut merge = IntervalMerge::new(sites.len());
    let mut states: Vec<ShareState> = sites.iter().map(|_| ShareState::default()).collect();
    let mut merge_errors = Vec::new();
    while let Some((share, update)) = updates.recv().await {
        let Some(state) = states.get_mut(share) else {
            merge_errors.push(format!(
                "an update for share {share}, which is not in this run"
            ));
            continue;
        };
        let ready = match update {
            ShareUpdate::Event(ShareEvent::Started { started_at_unix_ns }) => {
                state.started = Some(started_at_unix_ns);
                signal(ShareSignal::Started {
                    share,
                    agent_unix_ns: started_at_unix_ns,
                });
                Vec::new()
            }
            ShareUpdate::Event(ShareEvent::Spans {
                otlp_resource_spans,
                dropped_spans,
            }) => {
                signal(ShareSignal::Spans {
                    share,
                    otlp_resource_spans,
                    dropped: dropped_spans,
                });
                Vec::new()
            }
            ShareUpdate::Event(ShareEvent::Interval(snapshot)) => {
                match merge.push(share, snapshot) {
                    Ok(ready) => ready,
                    Err(e) => {
                        merge_errors.push(e.to_string());
                        Vec::new()
                    }
                }
            }
            ShareUpdate::Event(ShareEvent::Finished(finished)) => {
                state.finished = Some(finished);
                Vec::new()
            }
            ShareUpdate::Reattached { .. } => Vec::new(),
            ShareUpdate::Ended(end) => {
                let problem = match (&state.finished, &end.lost) {
                    (Some(f), _) if f.partial() => Some(format!("partial: {}", f.reason)),
                    (Some(_), _) => None,
                    (None, Some(lost)) => Some(format!("lost: {lost}")),
                    (None, None) => Some("the stream ended without a result".to_owned()),
                };
                signal(ShareSignal::Ended {
                    share,
                    agent_unix_ns: state.finished.as_ref().map(|f| f.finished_at_unix_ns),
                    problem,
                });
                state.end = Some(end);
                merge.end_share(share)
            }
        };
        for snapshot in ready {
            // A consumer that stopped listening (aborted run) still gets
            // the outcome; the snapshots are dropped.
            let _ = snapshots.send(snapshot).await;
        }
    }
    for snapshot in merge.drain() {
        let _ = snapshots.send(snapshot).await;
    }
    let clocks: Vec<(i64, ClockEstimate)> = states
        .iter()
        .zip(&sites)
        .filter_map(|(s, site)| s.started.map(|at| (at, site.clock)))
        .collect();
    let first_start = clocks.iter().map(|(s, c)| c.to_controller(*s)).min();
    let planned = planned_start_unix_ns.or(first_start).unwrap_or(0);
    let shares = sites
        .iter()
        .zip(states)
        .enumerate()
        .map(|(i, (site, state))| {
            share_outcome(
                site,
                state,
                merge.share_counters(i),
                merge.share_last_index(i),
            )
        })
        .collect();
    SharesOutcome {
        planned_start_unix_ns: planned,
        start_skew: start_skew(planned, &clocks),
        shares,
        merge_errors,
    }
}

fn share_outcome(
    site: &ShareSite,
    state: ShareState,
    counters: Option<&ShareCounters>,
    last_index: Option<u64>,
) -> ShareOutcome {
    let intervals = last_index.map_or(0, |i| i + 1);
    let end = state.end.unwrap_or_default();
    let mut outcome = ShareOutcome {
        agent_id: site.agent_id.clone(),
        address: site.address.clone(),
        group: site.group.clone(),
        started_at_unix_ns: state.started.map(|s| site.clock.to_controller(s)),
        finished_after_ns: None,
        intervals,
        requests_sent: None,
        partial: true,
        reason: "the stream ended without a result".to_owned(),
        lost: true,
        reattaches: end.reattaches,
        duplicates: end.duplicates,
        totals_match: None,
        finish: None,
    };
    match (state.finished, end.lost) {
        (Some(finished), _) => {
            outcome.lost = false;
            outcome.partial = finished.partial();
            outcome.finish = Some(finished.kind);
            outcome.finished_after_ns = state.started.map(|start| {
                u64::try_from(finished.finished_at_unix_ns.saturating_sub(start)).unwrap_or(0)
            });
            outcome.requests_sent = Some(finished.requests_sent);
            outcome.totals_match =
                counters.map(|c| nonzero(c) == nonzero(&counters_of(&finished.series)));
            outcome.reason = finished.reason;
        }
        (None, Some(lost)) => {
            outcome.reason = format!("agent lost after interval {intervals}: {lost}");
        }
        (None, None) => {}
    }
    outcome
}

/// `counters` without the zero values and the series left empty by them.
fn nonzero(counters: &ShareCounters) -> ShareCounters {
    counters
        .iter()
        .map(|(k, v)| {
            let kept: BTreeMap<_, _> = v
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(a, b)| (*a, *b))
                .collect();
            (k.clone(), kept)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}
