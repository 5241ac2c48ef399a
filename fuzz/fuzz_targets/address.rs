//! cargo-fuzz target `address`: see `pam_portal_fuzz::address` (fuzz/src/lib.rs) for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pam_portal_fuzz::address(data);
});
