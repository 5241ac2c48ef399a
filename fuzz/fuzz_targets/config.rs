//! cargo-fuzz target `config`: see `pam_portal_fuzz::config` (fuzz/src/lib.rs) for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pam_portal_fuzz::config(data);
});
