//! Fuzz target `converse_stream`: see `quarry_fuzz::converse_stream`.
#![no_main]

quarry_fuzz_libfuzzer::target!(converse_stream);
