//! The open loop: one dispatcher sleeping to each arrival's absolute
//! deadline and spawning the request, never waiting for responses. The
//! `max_in_flight` cap and the catch-up policy decide what happens to an
//! arrival that cannot go on time; either way it is counted. In a session
//! run an arrival starts a session ([`crate::session`]), and the cap holds
//! for the whole session.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::session::SessionStart;
use super::{EndReason, Executor, Shared, Workload, drain};
use crate::arrival::{ArrivalAt, ArrivalSchedule};
use crate::clock::{RunClock, duration_ns};
use crate::deadline::DeadlineTimer;
use crate::load::{Arrival, CatchUp, DEFAULT_MAX_IN_FLIGHT};
use crate::series::{Count, SeriesKey};
use crate::timeline::RequestTicket;

/// Dispatches every arrival until the schedule ends, the request limit is
/// reached or a stop is requested, then drains in-flight requests.
pub(super) async fn drive<W, E>(
    shared: &Arc<Shared<W, E>>,
    arrival: Arrival,
    max_in_flight: Option<u32>,
    catch_up: CatchUp,
) -> EndReason
where
    W: Workload,
    E: Executor<W::Item>,
{
    // Always a cap: without one a rate above what the target serves piles
    // up requests in flight without bound.
    let cap = Some(Arc::new(Semaphore::new(
        max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT) as usize,
    )));
    let config = &shared.config;
    let schedule = match (&config.replay_at, &config.interleave, arrival) {
        (Some(times), ..) => Schedule::Replay(Arc::clone(times), 0),
        (None, Some(slots), Arrival::Constant) => {
            Schedule::Rate(ArrivalSchedule::interleaved(slots))
        }
        _ => Schedule::Rate(ArrivalSchedule::new(
            &shared.plan,
            arrival,
            config.seed,
            config.phase,
        )),
    };
    let mut stop = shared.stop.clone();
    let mut timer = DeadlineTimer::new(config.dispatch_timer);
    let mut tasks = JoinSet::new();
    let ended = 'arrivals: {
        for (next, replay) in schedule {
            // Reap finished tasks so the set stays as small as what is in flight.
            while tasks.try_join_next().is_some() {}
            if shared.limit_reached() {
                break 'arrivals EndReason::RequestLimit;
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break 'arrivals EndReason::Stopped,
                _ = timer.wait(&shared.clock, next.at_ns) => {}
            }
            let permit =
                match admit(cap.as_ref(), catch_up, next.at_ns, &shared.clock, &mut stop).await {
                    Admission::Go(permit) => permit,
                    Admission::Drop => {
                        count_dropped(shared, next.stage);
                        continue;
                    }
                    Admission::Stop => break 'arrivals EndReason::Stopped,
                };
            let lag = shared.clock.now_ns().saturating_sub(next.at_ns);
            if let CatchUp::Drop { after } = catch_up
                && lag > duration_ns(after)
            {
                count_dropped(shared, next.stage);
                continue;
            }
            if shared.sessions.is_some() {
                let start = SessionStart {
                    intended_at: Some(next.at_ns),
                    stage: next.stage,
                    slot: None,
                };
                let shared = Arc::clone(shared);
                tasks.spawn(async move {
                    let _permit = permit;
                    if let Some(draws) = &shared.sessions {
                        shared.run_session(draws, start).await;
                    }
                });
                continue;
            }
            let Some(seq) = shared.claim_seq() else {
                break 'arrivals EndReason::RequestLimit;
            };
            let ticket = RequestTicket {
                seq,
                intended_at: Some(next.at_ns),
                stage: next.stage,
                slot: None,
                replay,
                turn: None,
            };
            let unit = shared.gauge.hold();
            let shared = Arc::clone(shared);
            tasks.spawn(async move {
                let _permit = permit;
                let _unit = unit;
                shared.send(ticket).await;
            });
        }
        EndReason::Completed
    };
    drain(&mut tasks, config.grace).await;
    ended
}

/// Where the dispatcher's deadlines come from: the load's rate, or a
/// replayed trace's recorded times (each with its request's index).
// One per dispatcher, on its stack: boxing the rate schedule would only add
// an indirection to every arrival.
#[allow(clippy::large_enum_variant)]
enum Schedule {
    Rate(ArrivalSchedule),
    Replay(Arc<[u64]>, usize),
}

impl Iterator for Schedule {
    type Item = (ArrivalAt, Option<u64>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Schedule::Rate(schedule) => schedule.next().map(|a| (a, None)),
            Schedule::Replay(times, next) => {
                let at_ns = *times.get(*next)?;
                let index = *next as u64;
                *next += 1;
                // A replay runs as one stage (the spec's `replay`).
                Some((ArrivalAt { at_ns, stage: 0 }, Some(index)))
            }
        }
    }
}

fn count_dropped<W: Workload, E: Executor<W::Item>>(shared: &Shared<W, E>, stage: usize) {
    let key = SeriesKey::schedule(Arc::clone(&shared.config.group), shared.stage_name(stage));
    shared.recorder.count(&key, Count::DroppedSends, 1);
}

enum Admission {
    Go(Option<OwnedSemaphorePermit>),
    Drop,
    Stop,
}

/// Takes an in-flight slot for an arrival due at `at_ns`. With the cap full,
/// `SendLate` waits as long as it takes (the wait shows in the request's
/// from-schedule latency); `Drop { after }` waits until the arrival is
/// `after` late and then drops it.
async fn admit(
    cap: Option<&Arc<Semaphore>>,
    catch_up: CatchUp,
    at_ns: u64,
    clock: &RunClock,
    stop: &mut watch::Receiver<bool>,
) -> Admission {
    let Some(cap) = cap else {
        return Admission::Go(None);
    };
    if let Ok(permit) = Arc::clone(cap).try_acquire_owned() {
        return Admission::Go(Some(permit));
    }
    let give_up = match catch_up {
        CatchUp::SendLate => None,
        CatchUp::Drop { after } => Some(at_ns.saturating_add(duration_ns(after))),
    };
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => Admission::Stop,
        permit = Arc::clone(cap).acquire_owned() => match permit {
            Ok(p) => Admission::Go(Some(p)),
            // The semaphore is never closed; treat it like a stop if it were.
            Err(_) => Admission::Stop,
        },
        () = clock.sleep_coarse_until(give_up.unwrap_or(u64::MAX)), if give_up.is_some() => Admission::Drop,
    }
}
