//! Shared helpers for Quarry's end-to-end tests: starting the simulator and the
//! binaries on port 0, and reading their output.
