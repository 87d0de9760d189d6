//! Multi-turn sessions: a simulated user holding a conversation.
//!
//! A session run ([`crate::SessionPlan`]) replaces single requests with
//! conversations. Each session picks one mix entry (model, operation,
//! system prompt, shared prefix) and draws its number of turns; turn *k*
//! sends every earlier question and answer, verbatim and in order, then a
//! new question drawn from the entry's `input_tokens` — so the context
//! grows by the last answer plus the new question each turn. Between
//! turns the user thinks (a drawn pause) with nothing in flight.
//!
//! Arrivals: in the open loop each arrival starts a session (the load's
//! rate is sessions per second, and `max_in_flight` caps concurrent
//! sessions); in the closed loop each virtual user holds one session after
//! another (concurrency is users, not requests in flight).
//!
//! Figures: each turn is a request like any other, recorded in the series
//! of its turn index ([`crate::SeriesKey::turn`]), so TTFT and tokens can
//! be read against the turn number. Each session is recorded once, in its
//! first turn's series: how it ended ([`crate::Count::SessionsCompleted`],
//! `SessionsFailed`, `SessionsUnfinished`) and, when completed, its
//! duration, tokens and cost ([`crate::Metric::SessionDuration`] …).
//!
//! A failed turn (its final outcome not ok, after any retries the plan
//! allows) ends the session: the conversation cannot go on without the
//! answer, as a user who got an error leaves.
//!
//! The run's end: no turn after the first starts once the last stage is
//! over (thinking never outlasts the run), so a session still going is
//! `SessionsUnfinished`. An open-loop arrival that waited for the
//! `max_in_flight` cap past the end (send-late) still sends its first turn,
//! late, like any arrival; its session is then unfinished.

use quarry_bedrock::Exchange;

/// The conversation so far: what a session's next turn sends before its
/// new question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    exchanges: Vec<Exchange>,
}

impl Conversation {
    /// The earlier turns, oldest first.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// Adds a finished turn: the question sent and the answer received.
    pub fn push(&mut self, exchange: Exchange) {
        self.exchanges.push(exchange);
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Every turn succeeded.
    Completed,
    /// A turn failed.
    Failed,
    /// The run ended (or stopped) before the last turn.
    Unfinished,
}

/// What a finished session adds up to, over all its turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionTotals {
    /// The first turn's send, ns on the run clock.
    pub started_at: u64,
    /// The last turn's close, ns on the run clock.
    pub ended_at: u64,
    /// Tokens reported: input, cache read, cache write and output.
    pub tokens: u64,
    /// Cost, pico-dollars.
    pub cost_pico_usd: u64,
}
