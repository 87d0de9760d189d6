//! Shared set-up for Quarry's benches: fixed requests, recorded streams and an
//! in-process simulator, built outside the timed closures.
