//! Fuzz target `results`: see `quarry_fuzz::results`.
#![no_main]

quarry_fuzz_libfuzzer::target!(results);
