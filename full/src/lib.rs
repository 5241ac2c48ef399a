//! libpam_portal_full.so: the whole login (the `pam_portal` library's [`portal::PamPortal`]
//! hooks), which the front, pam_portal.so (module/, src/front.rs), loads from its own directory
//! and hands every login it does not refuse itself. It is a PAM module in shape (its
//! `pam_sm_*` are what the front calls) but is not meant to be named in a PAM stack.

use portal::PamPortal;
use std::os::raw::c_char;

pam_bindings::pam_hooks!(PamPortal);

/// The version of this build, which the front checks before it hands a login over.
#[no_mangle]
pub extern "C" fn pam_portal_full_version() -> *const c_char {
    portal::front::VERSION.as_ptr().cast()
}
