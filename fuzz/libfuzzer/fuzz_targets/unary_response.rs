//! Fuzz target `unary_response`: see `quarry_fuzz::unary_response`.
#![no_main]

quarry_fuzz_libfuzzer::target!(unary_response);
