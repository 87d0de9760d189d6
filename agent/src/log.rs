//! A run's event log and the lease its streams hold.
//!
//! The log is the truth: events get dense sequence numbers from 1 as they are
//! appended, are written to the results store at once, and every stream (the
//! `Run` that started the share, any number of `Results` re-attaches) is a
//! view reading the log from some sequence on. A stream that reads slowly
//! only falls behind on its own; the engine appends without waiting for
//! anyone, so exactly-once delivery is a matter of where a reader resumes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::Stream;
use quarry_proto::v1 as pb;
use tokio::sync::watch;
use tonic::Status;

use super::store::EventFile;

/// Events a stream takes from the log per lock.
const READ_BATCH: usize = 64;

/// A server-streaming response of run events.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;

#[derive(Debug)]
struct LogState {
    events: Vec<pb::RunEvent>,
    finished: bool,
    file: Option<EventFile>,
}

/// One run's append-only event log.
#[derive(Debug)]
pub(crate) struct RunLog {
    run_id: String,
    state: Mutex<LogState>,
    /// The last sequence appended; readers wait on its changes.
    appended: watch::Sender<u64>,
}

impl RunLog {
    /// A new, empty log persisted through `file`.
    pub(crate) fn new(run_id: &str, file: Option<EventFile>) -> Self {
        RunLog::with_events(run_id, Vec::new(), file)
    }

    /// A log holding `events` already (loaded from the store).
    pub(crate) fn with_events(
        run_id: &str,
        events: Vec<pb::RunEvent>,
        file: Option<EventFile>,
    ) -> Self {
        let finished = events
            .last()
            .is_some_and(|e| matches!(e.event, Some(pb::run_event::Event::Finished(_))));
        let last = events.len() as u64;
        RunLog {
            run_id: run_id.to_owned(),
            state: Mutex::new(LogState {
                events,
                finished,
                file,
            }),
            appended: watch::Sender::new(last),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding this lock leaves a consistent Vec (push is
        // the only mutation), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The run's id.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Appends `event` with the next sequence number and returns it. Nothing
    /// is appended after `Finished`. A store failure is logged and the store
    /// dropped: live streams still get every event, only the on-disk replay
    /// is lost, which beats stopping a run over a full disk.
    pub(crate) fn append(&self, event: pb::run_event::Event) -> Option<u64> {
        let mut state = self.lock();
        if state.finished {
            return None;
        }
        let sequence = state.events.len() as u64 + 1;
        state.finished = matches!(event, pb::run_event::Event::Finished(_));
        let event = pb::RunEvent {
            sequence,
            event: Some(event),
        };
        if let Some(file) = state.file.as_mut()
            && let Err(e) = file.append(&event)
        {
            tracing::error!(run_id = %self.run_id, error = %e, "results store failed; this run will not be replayable after a restart");
            state.file = None;
        }
        state.events.push(event);
        drop(state);
        self.appended.send_replace(sequence);
        Some(sequence)
    }

    /// Up to [`READ_BATCH`] events after `after`, and whether the log is
    /// finished.
    fn read_after(&self, after: u64) -> (Vec<pb::RunEvent>, bool) {
        let state = self.lock();
        let from = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(state.events.len());
        let to = (from + READ_BATCH).min(state.events.len());
        (state.events[from..to].to_vec(), state.finished)
    }

    /// The last sequence number appended (0 when empty).
    pub(crate) fn last_sequence(&self) -> u64 {
        self.lock().events.len() as u64
    }

    /// True once `Finished` is appended.
    pub(crate) fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Every event (for a restart's recovery).
    pub(crate) fn events(&self) -> Vec<pb::RunEvent> {
        self.lock().events.clone()
    }

    /// Waits until the log is finished.
    pub(crate) async fn finished(&self) {
        let mut rx = self.appended.subscribe();
        loop {
            rx.borrow_and_update();
            if self.is_finished() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The events after `after` as a stream that follows the log until
    /// `Finished`, holding `hold` (a lease) for as long as it is alive.
    pub(crate) fn stream(self: &Arc<Self>, after: u64, hold: Option<LeaseHold>) -> EventStream {
        struct Reader {
            log: Arc<RunLog>,
            next_after: u64,
            rx: watch::Receiver<u64>,
            buffer: VecDeque<pb::RunEvent>,
            _hold: Option<LeaseHold>,
        }
        let reader = Reader {
            log: Arc::clone(self),
            next_after: after,
            rx: self.appended.subscribe(),
            buffer: VecDeque::new(),
            _hold: hold,
        };
        Box::pin(futures_util::stream::unfold(reader, |mut r| async move {
            loop {
                if let Some(event) = r.buffer.pop_front() {
                    return Some((Ok(event), r));
                }
                // Mark the current value seen before reading, so an append
                // racing with this read still wakes `changed` below.
                r.rx.borrow_and_update();
                let (events, finished) = r.log.read_after(r.next_after);
                if let Some(last) = events.last() {
                    r.next_after = last.sequence;
                    r.buffer.extend(events);
                    continue;
                }
                if finished || r.rx.changed().await.is_err() {
                    return None;
                }
            }
        }))
    }
}

/// A run's lease: held by every live stream of the run. When the last holder
/// goes, [`Lease::expired`] starts counting down the TTL.
#[derive(Debug)]
pub(crate) struct Lease {
    holders: watch::Sender<usize>,
}

/// One stream's hold on a [`Lease`]; released on drop (the client went away
/// or the stream ended).
#[derive(Debug)]
pub(crate) struct LeaseHold(Arc<Lease>);

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.0.holders.send_modify(|h| *h = h.saturating_sub(1));
    }
}

impl Lease {
    /// A lease nobody holds yet.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Lease {
            holders: watch::Sender::new(0),
        })
    }

    /// Takes a hold.
    pub(crate) fn hold(self: &Arc<Self>) -> LeaseHold {
        self.holders.send_modify(|h| *h += 1);
        LeaseHold(Arc::clone(self))
    }

    /// Resolves once nobody has held the lease for `ttl` in a row.
    pub(crate) async fn expired(&self, ttl: Duration) {
        let mut rx = self.holders.subscribe();
        loop {
            // The sender lives in `self`, so these waits cannot fail.
            let _ = rx.wait_for(|h| *h == 0).await;
            match tokio::time::timeout(ttl, rx.wait_for(|h| *h > 0)).await {
                Err(_) => return,
                Ok(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn started() -> pb::run_event::Event {
        pb::run_event::Event::Started(pb::Started {
            started_at_unix_ns: 1,
        })
    }

    fn finished() -> pb::run_event::Event {
        pb::run_event::Event::Finished(pb::Finished::default())
    }

    #[tokio::test]
    async fn streams_replay_then_follow_and_end_at_finished() {
        let log = Arc::new(RunLog::new("r", None));
        assert_eq!(log.append(started()), Some(1));
        let mut from_zero = log.stream(0, None);
        let mut from_one = log.stream(1, None);
        assert_eq!(from_zero.next().await.unwrap().unwrap().sequence, 1);
        for _ in 0..3 {
            log.append(started());
        }
        log.append(finished());
        assert_eq!(log.append(started()), None, "nothing after Finished");
        let rest: Vec<u64> = from_zero.map(|e| e.unwrap().sequence).collect().await;
        assert_eq!(rest, [2, 3, 4, 5]);
        let rest: Vec<u64> = from_one
            .by_ref()
            .map(|e| e.unwrap().sequence)
            .collect()
            .await;
        assert_eq!(rest, [2, 3, 4, 5]);
        let none: Vec<_> = log.stream(5, None).collect().await;
        assert!(none.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn lease_expires_only_after_ttl_without_holders() {
        let lease = Lease::new();
        let hold = lease.hold();
        let ttl = Duration::from_secs(10);
        let expiry = tokio::spawn({
            let lease = Arc::clone(&lease);
            async move { lease.expired(ttl).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!expiry.is_finished(), "held: never expires");
        drop(hold);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Re-attached within the TTL: the countdown resets.
        let hold = lease.hold();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!expiry.is_finished());
        drop(hold);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!expiry.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(expiry.is_finished());
    }
}
