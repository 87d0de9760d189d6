//! Fuzz target `agent_run_request`: see `quarry_fuzz::agent_run_request`.
#![no_main]

quarry_fuzz_libfuzzer::target!(agent_run_request);
