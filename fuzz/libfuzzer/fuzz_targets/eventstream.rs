//! Fuzz target `eventstream`: see `quarry_fuzz::eventstream`.
#![no_main]

quarry_fuzz_libfuzzer::target!(eventstream);
