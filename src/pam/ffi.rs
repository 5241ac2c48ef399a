//! The only `unsafe` of the module: the few libpam calls pam-bindings 0.4 does not wrap.
//!
//! - `pam_set_item(PAM_AUTHTOK)`: pam-bindings can read the token but cannot set it.
//! - `pam_syslog`: log lines through libpam (AUTHPRIV, the host's ident and pid, like every
//!   other module's lines).
//! - `pam_fail_delay`: the delay libpam applies when the stack fails.
#![allow(unsafe_code)]

use libc::{c_char, c_int, c_uint, c_void};
use pam_bindings::module::PamHandle;
use std::ffi::CString;

const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_fail_delay(pamh: *mut PamHandle, usec: c_uint) -> c_int;
}

/// Sets `PAM_AUTHTOK` (libpam copies the string). Returns the PAM status code.
pub fn set_authtok(pamh: &mut PamHandle, token: &[u8]) -> c_int {
    let Ok(c) = CString::new(token) else {
        return pam_bindings::constants::PamResultCode::PAM_BUF_ERR as c_int;
    };
    // SAFETY: pamh is the live handle libpam gave this hook; `c` outlives the call and libpam
    // duplicates the string before returning.
    let rc = unsafe { pam_set_item(pamh, PAM_AUTHTOK, c.as_ptr().cast()) };
    // Wipe our copy of the secret before it is freed.
    let mut bytes = c.into_bytes_with_nul();
    crate::secret::wipe(&mut bytes);
    rc
}

/// Writes one line through `pam_syslog`. The text goes through a `%s` format: a `%` in it is
/// never interpreted. Interior NUL bytes (impossible after escaping) are replaced.
pub fn syslog(pamh: &PamHandle, priority: c_int, line: &str) {
    let c = CString::new(line.replace('\0', "\\x00")).unwrap_or_default();
    // SAFETY: pamh is the live handle; both strings are NUL-terminated and outlive the call.
    unsafe { pam_syslog(pamh, priority, c"%s".as_ptr(), c.as_ptr()) };
}

/// Registers the delay libpam applies if the stack fails (it takes the largest registered).
pub fn fail_delay(pamh: &mut PamHandle, millis: u64) {
    let usec = c_uint::try_from(millis.saturating_mul(1000)).unwrap_or(c_uint::MAX);
    // SAFETY: pamh is the live handle libpam gave this hook.
    unsafe { pam_fail_delay(pamh, usec) };
}

/// The effective user id (config and state ownership checks).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// `pam_get_data` for a value this crate stored with `pam_set_data` under `key`.
pub fn get_data<T: Clone + 'static>(pamh: &PamHandle, key: &str) -> Option<T> {
    // SAFETY: the keys are private to this crate (lib.rs) and each is only ever set with one
    // type, so the stored pointer is a `T`.
    unsafe { pamh.get_data::<T>(key) }.ok().cloned()
}

/// A line to syslog (AUTHPRIV) from the admin command, which has no PAM handle.
pub fn syslog_authpriv(priority: c_int, line: &str) {
    let c = CString::new(line.replace('\0', "\\x00")).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated and outlive the call; openlog keeps the ident
    // pointer, so it is a static string.
    unsafe {
        libc::openlog(c"pam-portal".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV);
        libc::syslog(priority, c"%s".as_ptr(), c.as_ptr());
    }
}
