//! Fuzz target `sigv4_head`: see `quarry_fuzz::sigv4_head`.
#![no_main]

quarry_fuzz_libfuzzer::target!(sigv4_head);
