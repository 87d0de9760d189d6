//! The closed loop: one task per virtual user, each refilling its own slot
//! the moment its previous request is recorded, so slots never move in
//! lockstep. Stages change how many slots are active; a slot whose index
//! is at or above the current level finishes its request and then waits.
//! After a throttled request a user pauses when the plan paces throttles
//! ([`crate::ThrottlePacing`]); by default it sends again at once. In a
//! session run each user holds one conversation after another
//! ([`crate::session`]); a session that ended on a throttled turn counts as
//! a throttled request for the pause.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;

use quarry_bedrock::Outcome;

use super::session::SessionStart;
use super::{EndReason, Executor, Shared, Workload, drain};
use crate::clock::duration_ns;
use crate::health::InFlightUnit;
use crate::timeline::RequestTicket;

/// Runs every slot until the stages end, the request limit is reached or a
/// stop is requested, then drains in-flight requests.
pub(super) async fn drive<W, E>(shared: &Arc<Shared<W, E>>) -> EndReason
where
    W: Workload,
    E: Executor<W::Item>,
{
    // Peak levels are whole numbers (validated), at most MAX_CONCURRENCY.
    let slots = shared.plan.peak_level().ceil() as u32;
    let mut tasks = JoinSet::new();
    for slot in 0..slots {
        let shared = Arc::clone(shared);
        tasks.spawn(async move { run_slot(&shared, slot).await });
    }
    let mut stop = shared.stop.clone();
    let end = shared.plan.end_ns();
    let ended = loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break EndReason::Stopped,
            () = shared.clock.sleep_coarse_until(end), if end != u64::MAX => break EndReason::Completed,
            joined = tasks.join_next() => if joined.is_none() {
                break if shared.limit_reached() { EndReason::RequestLimit } else { EndReason::Completed };
            },
        }
    };
    drain(&mut tasks, shared.config.grace).await;
    ended
}

/// One virtual user.
async fn run_slot<W, E>(shared: &Shared<W, E>, slot: u32)
where
    W: Workload,
    E: Executor<W::Item>,
{
    let mut stop = shared.stop.clone();
    // Held while the slot goes straight from one request to the next, so the
    // gauge never dips between them; released while the slot is idle.
    let mut unit: Option<InFlightUnit> = None;
    // Throttles in a row, for the pacing back-off.
    let mut throttled_in_a_row = 0u32;
    loop {
        if shared.stopped() {
            return;
        }
        let now = shared.clock.now_ns();
        let Some(active_at) = shared.plan.next_active_at(slot, now) else {
            return;
        };
        if active_at > now {
            unit = None;
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                () = shared.clock.sleep_coarse_until(active_at) => continue,
            }
        }
        let stage = shared.plan.stage_at(now).unwrap_or(0);
        let (outcome, seq) = match &shared.sessions {
            Some(draws) => {
                // A session holds its in-flight unit turn by turn.
                unit = None;
                let start = SessionStart {
                    intended_at: None,
                    stage,
                    slot: Some(slot),
                };
                let Some(outcome) = shared.run_session(draws, start).await else {
                    return;
                };
                (outcome, shared.next_seq.load(Ordering::Acquire))
            }
            None => {
                let Some(seq) = shared.claim_seq() else {
                    return;
                };
                let ticket = RequestTicket {
                    seq,
                    intended_at: None,
                    stage,
                    slot: Some(slot),
                    replay: None,
                    turn: None,
                };
                if unit.is_none() {
                    unit = Some(shared.gauge.hold());
                }
                (shared.send(ticket).await, seq)
            }
        };
        if !matches!(outcome, Outcome::Throttled | Outcome::DailyQuota) {
            throttled_in_a_row = 0;
            continue;
        }
        throttled_in_a_row = throttled_in_a_row.saturating_add(1);
        let seed = shared.config.seed ^ u64::from(slot).rotate_left(32) ^ seq;
        let Some(pause) = shared.config.on_throttle.pause(throttled_in_a_row, seed) else {
            continue;
        };
        // A pausing user has nothing in flight.
        unit = None;
        // A pause never outlasts the run: the user is done at its end.
        let until = shared
            .clock
            .now_ns()
            .saturating_add(duration_ns(pause))
            .min(shared.plan.end_ns());
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            () = shared.clock.sleep_coarse_until(until) => {}
        }
    }
}
