//! Fuzz target `spec`: see `quarry_fuzz::spec`.
#![no_main]

quarry_fuzz_libfuzzer::target!(spec);
