//! cargo-fuzz target `lockout_record`: see `pam_portal_fuzz::lockout_record` (fuzz/src/lib.rs) for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pam_portal_fuzz::lockout_record(data);
});
