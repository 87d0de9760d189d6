//! Fuzz target `invoke_stream`: see `quarry_fuzz::invoke_stream`.
#![no_main]

quarry_fuzz_libfuzzer::target!(invoke_stream);
