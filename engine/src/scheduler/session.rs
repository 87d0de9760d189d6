//! One session, turn after turn ([`crate::session`]): the closed loop's
//! users and the open loop's arrivals both run [`Shared::run_session`]
//! where they would send one request.

use std::sync::atomic::Ordering;

use quarry_bedrock::Outcome;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Executor, Shared, Workload};
use crate::plan::SessionPlan;
use crate::series::SeriesKey;
use crate::session::{Conversation, SessionEnd, SessionTotals};
use crate::timeline::{RequestTicket, TurnRef};
use crate::workload::{WholeNumbers, mix64};

/// A session plan's distributions, ready to draw from.
pub(super) struct SessionDraws {
    turns: WholeNumbers,
    think_ms: Option<WholeNumbers>,
}

impl SessionDraws {
    pub(super) fn new(plan: &SessionPlan) -> Self {
        SessionDraws {
            turns: WholeNumbers::new(plan.turns()),
            think_ms: plan.think_time_ms().map(WholeNumbers::new),
        }
    }
}

/// Where and when a session starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionStart {
    /// The arrival's deadline (open loop), the origin of the first turn's
    /// from-schedule latencies.
    pub(super) intended_at: Option<u64>,
    /// The stage the session starts in.
    pub(super) stage: usize,
    /// The closed-loop user holding it.
    pub(super) slot: Option<u32>,
}

/// Records the session once, however it ends: a session whose task is
/// dropped (aborted after the grace period) counts as unfinished.
struct SessionGuard<'a, W: Workload, E> {
    shared: &'a Shared<W, E>,
    key: Option<SeriesKey>,
    totals: SessionTotals,
}

impl<W: Workload, E> SessionGuard<'_, W, E> {
    fn finish(mut self, end: SessionEnd) {
        if let Some(key) = self.key.take() {
            self.shared.recorder.record_session(&key, end, &self.totals);
        }
    }
}

impl<W: Workload, E> Drop for SessionGuard<'_, W, E> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared
                .recorder
                .record_session(&key, SessionEnd::Unfinished, &self.totals);
        }
    }
}

impl<W: Workload, E: Executor<W::Item>> Shared<W, E> {
    /// Runs one session to its last turn, a failed turn, or the run's end;
    /// returns the outcome of its last turn sent (`None`: none was). Each
    /// turn holds an in-flight unit while it is sent; the think time
    /// between turns holds none.
    pub(super) async fn run_session(
        &self,
        draws: &SessionDraws,
        start: SessionStart,
    ) -> Option<Outcome> {
        let session = self.next_session.fetch_add(1, Ordering::AcqRel);
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(self.config.seed ^ 0x5e55_1015, session));
        let turns = draws.turns.sample(&mut rng);
        let mut conversation = Conversation::default();
        let mut guard = SessionGuard {
            shared: self,
            key: None,
            totals: SessionTotals::default(),
        };
        let mut stop = self.stop.clone();
        let mut last_outcome = None;
        for index in 1..=turns {
            let mut intended_at = start.intended_at;
            if index > 1 {
                if let Some(think) = &draws.think_ms {
                    let pause_ns = u64::from(think.sample(&mut rng)) * 1_000_000;
                    // Thinking never outlasts the run.
                    let until = self
                        .clock
                        .now_ns()
                        .saturating_add(pause_ns)
                        .min(self.plan.end_ns());
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => break,
                        () = self.clock.sleep_coarse_until(until) => {}
                    }
                }
                // No turn starts once the run is over; the session is cut off.
                if self.stopped() || self.clock.now_ns() >= self.plan.end_ns() {
                    break;
                }
                // An open-loop session's next question is due when the
                // user has thought: its lag from there is the client's.
                intended_at = start.intended_at.map(|_| self.clock.now_ns());
            }
            let Some(seq) = self.claim_seq() else {
                break;
            };
            let now = self.clock.now_ns();
            let ticket = RequestTicket {
                seq,
                intended_at,
                stage: if index == 1 {
                    start.stage
                } else {
                    self.plan.stage_at(now).unwrap_or(start.stage)
                },
                slot: start.slot,
                replay: None,
                turn: Some(TurnRef { session, index }),
            };
            let (planned, record) = self.prepare(ticket);
            if index == 1 {
                guard.key = record.key().cloned();
            }
            let completion = {
                let _unit = self.gauge.hold();
                self.executor
                    .execute_turn(ticket, planned, &mut conversation, self.clock)
                    .await
            };
            self.finish(&ticket, record, &completion);
            let totals = &mut guard.totals;
            if index == 1 {
                totals.started_at = completion.timeline.sent_at;
            }
            totals.ended_at = completion.timeline.closed_at;
            if let Some(usage) = &completion.usage {
                totals.tokens += usage.tokens.total_input_tokens() + usage.tokens.output_tokens;
            }
            totals.cost_pico_usd += completion.cost_pico_usd;
            last_outcome = Some(completion.outcome);
            if completion.outcome != Outcome::Ok {
                guard.finish(SessionEnd::Failed);
                return last_outcome;
            }
            if index == turns {
                guard.finish(SessionEnd::Completed);
                return last_outcome;
            }
        }
        guard.finish(SessionEnd::Unfinished);
        last_outcome
    }
}
