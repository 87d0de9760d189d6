//! The server's front-door counters: what clients cost it before a request
//! reaches the simulator (connections accepted, refused at the cap, closed
//! for idling or trickling their head; bodies timed out; requests refused
//! from their head alone; body bytes read before the caller was proven), and
//! the event-stream frames it stamped with their write time.
//!
//! They are how a test, or an operator, sees that a hostile client costs
//! nothing: an unsigned 23 MiB upload must leave
//! `unverified_body_bytes` where it was. Counting is relaxed atomics; the
//! snapshot is part of `GET /_quarry/stats` (`server`) and
//! `/_quarry/metrics` (`quarry_sim_server_*`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Why the server closed a connection by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBecause {
    /// No request in flight for the idle timeout.
    Idle,
    /// A request head (or a TLS handshake) that did not arrive within the
    /// header timeout.
    SlowHead,
    /// A request body that did not arrive within the body timeout.
    SlowBody,
}

/// The counters (see the module doc).
#[derive(Debug, Default)]
pub struct ServerCounters {
    accepted: AtomicU64,
    refused_at_capacity: AtomicU64,
    closed: AtomicU64,
    closed_idle: AtomicU64,
    closed_slow_head: AtomicU64,
    closed_slow_body: AtomicU64,
    refused_before_body: AtomicU64,
    unverified_body_bytes: AtomicU64,
    frames_stamped: AtomicU64,
}

impl ServerCounters {
    /// A connection was taken into service.
    pub fn record_accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    /// A connection served earlier has closed (any reason).
    pub fn record_closed(&self) {
        self.closed.fetch_add(1, Relaxed);
    }

    /// A connection past the cap was answered 503 and closed.
    pub fn record_refused_at_capacity(&self) {
        self.refused_at_capacity.fetch_add(1, Relaxed);
    }

    /// The server closed a connection because a limit ran out.
    pub fn record_timed_out(&self, why: ClosedBecause) {
        match why {
            ClosedBecause::Idle => &self.closed_idle,
            ClosedBecause::SlowHead => &self.closed_slow_head,
            ClosedBecause::SlowBody => &self.closed_slow_body,
        }
        .fetch_add(1, Relaxed);
    }

    /// A request was answered from its head, none of its body read.
    pub fn record_refused_before_body(&self) {
        self.refused_before_body.fetch_add(1, Relaxed);
    }

    /// `n` body bytes were read before the caller was proven.
    pub fn record_unverified_body_bytes(&self, n: usize) {
        self.unverified_body_bytes.fetch_add(n as u64, Relaxed);
    }

    /// `n` event-stream frames were handed over stamped with their write
    /// time (`stamp_frames`).
    pub fn record_frames_stamped(&self, n: u64) {
        self.frames_stamped.fetch_add(n, Relaxed);
    }

    /// The counters as plain data.
    pub fn snapshot(&self) -> ServerSnapshot {
        let accepted = self.accepted.load(Relaxed);
        ServerSnapshot {
            connections_accepted: accepted,
            connections_open: accepted.saturating_sub(self.closed.load(Relaxed)),
            connections_refused_at_capacity: self.refused_at_capacity.load(Relaxed),
            connections_closed_idle: self.closed_idle.load(Relaxed),
            connections_closed_slow_head: self.closed_slow_head.load(Relaxed),
            connections_closed_slow_body: self.closed_slow_body.load(Relaxed),
            requests_refused_before_body: self.refused_before_body.load(Relaxed),
            unverified_body_bytes: self.unverified_body_bytes.load(Relaxed),
            frames_stamped: self.frames_stamped.load(Relaxed),
        }
    }
}

/// The front-door counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServerSnapshot {
    /// Connections taken into service since start.
    pub connections_accepted: u64,
    /// Connections in service now.
    pub connections_open: u64,
    /// Connections past `--max-connections`, answered 503 and closed.
    pub connections_refused_at_capacity: u64,
    /// Connections closed after the idle timeout with nothing in flight.
    pub connections_closed_idle: u64,
    /// Connections closed because a request head took longer than the
    /// header timeout.
    pub connections_closed_slow_head: u64,
    /// Connections closed because a request body took longer than the body
    /// timeout.
    pub connections_closed_slow_body: u64,
    /// Requests answered from their head alone (authentication failed, or a
    /// declared body over the limit), none of their body read.
    pub requests_refused_before_body: u64,
    /// Request-body bytes read before the caller was proven (SigV4 without
    /// a declared payload hash, until the signature is checked).
    pub unverified_body_bytes: u64,
    /// Event-stream frames handed over stamped with their write time
    /// (`stamp_frames`; 0 when off): the pairs a client on the same host
    /// can measure its read delay from.
    pub frames_stamped: u64,
}

impl ServerSnapshot {
    /// `(metric name, kind, help, value)` for the Prometheus exposition.
    pub(crate) fn metrics(&self) -> [(&'static str, &'static str, &'static str, u64); 9] {
        [
            (
                "quarry_sim_server_connections_accepted_total",
                "counter",
                "Connections taken into service.",
                self.connections_accepted,
            ),
            (
                "quarry_sim_server_connections_open",
                "gauge",
                "Connections in service.",
                self.connections_open,
            ),
            (
                "quarry_sim_server_connections_refused_total",
                "counter",
                "Connections past the connection cap, answered 503 and closed.",
                self.connections_refused_at_capacity,
            ),
            (
                "quarry_sim_server_connections_closed_idle_total",
                "counter",
                "Connections closed after the idle timeout.",
                self.connections_closed_idle,
            ),
            (
                "quarry_sim_server_connections_closed_slow_head_total",
                "counter",
                "Connections closed because a request head outlasted the header timeout.",
                self.connections_closed_slow_head,
            ),
            (
                "quarry_sim_server_connections_closed_slow_body_total",
                "counter",
                "Connections closed because a request body outlasted the body timeout.",
                self.connections_closed_slow_body,
            ),
            (
                "quarry_sim_server_requests_refused_before_body_total",
                "counter",
                "Requests answered from their head, no body read.",
                self.requests_refused_before_body,
            ),
            (
                "quarry_sim_server_unverified_body_bytes_total",
                "counter",
                "Request-body bytes read before the caller was proven.",
                self.unverified_body_bytes,
            ),
            (
                "quarry_sim_server_frames_stamped_total",
                "counter",
                "Event-stream frames handed over stamped with their write time.",
                self.frames_stamped,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_connections_are_accepted_less_closed() {
        let c = ServerCounters::default();
        c.record_accepted();
        c.record_accepted();
        c.record_closed();
        c.record_timed_out(ClosedBecause::SlowHead);
        c.record_unverified_body_bytes(10);
        let s = c.snapshot();
        assert_eq!(s.connections_open, 1);
        assert_eq!(s.connections_closed_slow_head, 1);
        assert_eq!(s.connections_closed_idle, 0);
        assert_eq!(s.unverified_body_bytes, 10);
    }
}
