//! A run's event log and the lease its streams hold.
//!
//! The log is the truth: events get dense sequence numbers from 1 as they are
//! appended, are written to the results store at once, and every stream (the
//! `Run` that started the share, any number of `Results` re-attaches) is a
//! view reading the log from some sequence on. A stream that reads slowly
//! only falls behind on its own; the engine appends without waiting for
//! anyone, so exactly-once delivery is a matter of where a reader resumes.
//!
//! Memory: once an event is on disk, the log keeps only the newest
//! [`MEMORY_EVENTS`] in memory and reads older ones back from the event
//! file (by their recorded offsets) when a stream asks for them, so a long
//! run costs the agent a bounded tail, not its whole history (a one-hour
//! soak at one interval a second grew each agent by ~20 MiB before).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::Stream;
use quarry_proto::v1 as pb;
use tokio::sync::watch;
use tonic::Status;

use super::store::{EventFile, read_records};

/// Events a stream takes from the log per lock.
const READ_BATCH: usize = 64;

/// Events kept in memory once they are on disk (a few minutes of intervals:
/// what a live stream or a quick re-attach reads).
pub(crate) const MEMORY_EVENTS: usize = 256;

/// A server-streaming response of run events.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;

#[derive(Debug)]
struct LogState {
    /// The newest events, in order, ending at sequence `count`.
    tail: VecDeque<pb::RunEvent>,
    /// The last sequence appended.
    count: u64,
    /// Where each event on disk starts in the file, by sequence − 1; `None`
    /// when the log cannot read back (no store, or a log loaded whole
    /// after a restart): it then keeps every event in memory.
    offsets: Option<Vec<u64>>,
    /// The event file, for reading back.
    path: Option<PathBuf>,
    finished: bool,
    file: Option<EventFile>,
}

impl LogState {
    /// The sequence of the oldest event in memory.
    fn first_in_memory(&self) -> u64 {
        self.count + 1 - self.tail.len() as u64
    }

    /// Drops the oldest events beyond [`MEMORY_EVENTS`] that are on disk.
    fn evict(&mut self) {
        let Some(on_disk) = self.offsets.as_ref().map(|o| o.len() as u64) else {
            return;
        };
        while self.tail.len() > MEMORY_EVENTS
            && self.tail.front().is_some_and(|e| e.sequence <= on_disk)
        {
            self.tail.pop_front();
        }
    }
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
        // Offsets are known only for what this log writes itself.
        let readable = events.is_empty() && file.is_some();
        RunLog {
            run_id: run_id.to_owned(),
            state: Mutex::new(LogState {
                tail: events.into(),
                count: last,
                offsets: readable.then(Vec::new),
                path: file
                    .as_ref()
                    .filter(|_| readable)
                    .map(|f| f.path().to_owned()),
                finished,
                file,
            }),
            appended: watch::Sender::new(last),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding this lock leaves a consistent log (push and
        // evict keep `tail`, `count` and `offsets` in step), so a poisoned
        // lock is still usable.
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
        let sequence = state.count + 1;
        state.finished = matches!(event, pb::run_event::Event::Finished(_));
        let event = pb::RunEvent {
            sequence,
            event: Some(event),
        };
        if let Some(file) = state.file.as_mut() {
            let offset = file.len();
            match file.append(&event) {
                Ok(()) => {
                    if let Some(offsets) = state.offsets.as_mut() {
                        offsets.push(offset);
                    }
                }
                Err(e) => {
                    tracing::error!(run_id = %self.run_id, error = %e, "results store failed; this run will not be replayable after a restart, and its later events stay in memory");
                    state.file = None;
                }
            }
        }
        state.tail.push_back(event);
        state.count = sequence;
        state.evict();
        drop(state);
        self.appended.send_replace(sequence);
        Some(sequence)
    }

    /// Up to [`READ_BATCH`] events after `after`, and whether the log is
    /// finished; events no longer in memory are read back from the file
    /// (outside the lock: what is on disk before the tail never changes).
    fn read_after(&self, after: u64) -> Result<(Vec<pb::RunEvent>, bool), Status> {
        let (offset, count, path) = {
            let state = self.lock();
            let first = state.first_in_memory();
            if after + 1 >= first {
                let from = usize::try_from(after + 1 - first)
                    .unwrap_or(usize::MAX)
                    .min(state.tail.len());
                let to = (from + READ_BATCH).min(state.tail.len());
                let events = state.tail.range(from..to).cloned().collect();
                return Ok((events, state.finished));
            }
            let offsets = state.offsets.as_ref();
            let (Some(offset), Some(path)) = (
                offsets.and_then(|o| o.get(usize::try_from(after).ok()?).copied()),
                state.path.clone(),
            ) else {
                return Err(Status::internal(
                    "an event of this run is neither in memory nor on disk",
                ));
            };
            let count = usize::try_from(first - 1 - after).unwrap_or(READ_BATCH);
            (offset, count.min(READ_BATCH), path)
        };
        let events = read_records(&path, offset, count).map_err(|e| {
            tracing::error!(run_id = %self.run_id, error = %e, "cannot read back stored events");
            Status::internal(format!("reading back stored events of run {}", self.run_id))
        })?;
        if events.first().map(|e| e.sequence) != Some(after + 1) {
            return Err(Status::internal("the stored events do not follow on"));
        }
        Ok((events, false))
    }

    /// The last sequence number appended (0 when empty).
    pub(crate) fn last_sequence(&self) -> u64 {
        self.lock().count
    }

    /// True once `Finished` is appended.
    pub(crate) fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Every event (for a restart's recovery), read back from the file
    /// where no longer in memory; stops at the first that cannot be read.
    pub(crate) fn events(&self) -> Vec<pb::RunEvent> {
        let mut all = Vec::new();
        loop {
            match self.read_after(all.len() as u64) {
                Ok((events, _)) if !events.is_empty() => all.extend(events),
                _ => return all,
            }
        }
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
            failed: bool,
            _hold: Option<LeaseHold>,
        }
        let reader = Reader {
            log: Arc::clone(self),
            next_after: after,
            rx: self.appended.subscribe(),
            buffer: VecDeque::new(),
            failed: false,
            _hold: hold,
        };
        Box::pin(futures_util::stream::unfold(reader, |mut r| async move {
            loop {
                if let Some(event) = r.buffer.pop_front() {
                    return Some((Ok(event), r));
                }
                if r.failed {
                    return None;
                }
                // Mark the current value seen before reading, so an append
                // racing with this read still wakes `changed` below.
                r.rx.borrow_and_update();
                let (events, finished) = match r.log.read_after(r.next_after) {
                    Ok(read) => read,
                    Err(status) => {
                        r.failed = true;
                        return Some((Err(status), r));
                    }
                };
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

    /// A long run keeps only its newest events in memory; a stream from the
    /// start still gets every event, in order, read back from the file.
    #[tokio::test]
    async fn a_long_log_keeps_a_bounded_tail_and_replays_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::ResultsStore::open(dir.path()).unwrap();
        let log = Arc::new(RunLog::new("r", Some(store.create("r").unwrap())));
        let total = MEMORY_EVENTS as u64 * 4 + 7;
        let mut live = log.stream(0, None);
        for _ in 0..total - 1 {
            log.append(started());
        }
        assert_eq!(log.lock().tail.len(), MEMORY_EVENTS, "a bounded tail");
        // A re-attach from the very start, and one from the middle.
        let mut replay = log.stream(0, None);
        let middle = log.stream(300, None);
        log.append(finished());
        let all: Vec<u64> = replay.by_ref().map(|e| e.unwrap().sequence).collect().await;
        assert_eq!(all, (1..=total).collect::<Vec<_>>());
        let rest: Vec<u64> = middle.map(|e| e.unwrap().sequence).collect().await;
        assert_eq!(rest, (301..=total).collect::<Vec<_>>());
        let followed: Vec<u64> = live.by_ref().map(|e| e.unwrap().sequence).collect().await;
        assert_eq!(followed.len() as u64, total);
        let events = log.events();
        assert_eq!(events.len() as u64, total);
        assert!(matches!(
            events.last().and_then(|e| e.event.as_ref()),
            Some(pb::run_event::Event::Finished(_))
        ));
        // The file holds exactly what was streamed.
        assert_eq!(store.load("r").unwrap().unwrap(), events);
    }

    /// Without a store nothing can be read back: every event stays.
    #[test]
    fn a_log_without_a_store_keeps_every_event() {
        let log = RunLog::new("r", None);
        for _ in 0..MEMORY_EVENTS * 2 {
            log.append(started());
        }
        assert_eq!(log.lock().tail.len(), MEMORY_EVENTS * 2);
        assert_eq!(log.events().len(), MEMORY_EVENTS * 2);
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
