//! Fuzz target `sim_request`: see `quarry_fuzz::sim_request`.
#![no_main]

quarry_fuzz_libfuzzer::target!(sim_request);
