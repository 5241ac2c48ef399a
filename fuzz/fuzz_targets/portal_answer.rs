//! cargo-fuzz target `portal_answer`: see `pam_portal_fuzz::portal_answer` (fuzz/src/lib.rs) for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pam_portal_fuzz::portal_answer(data);
});
