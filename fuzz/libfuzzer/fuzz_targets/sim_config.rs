//! Fuzz target `sim_config`: see `quarry_fuzz::sim_config`.
#![no_main]

quarry_fuzz_libfuzzer::target!(sim_config);
