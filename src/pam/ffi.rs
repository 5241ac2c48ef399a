//! The only `unsafe` of the module: the few libpam calls pam-bindings 0.4 does not wrap.
//!
//! - `pam_set_item(PAM_AUTHTOK)`: pam-bindings can read the token but cannot set it.
//! - `pam_syslog`: log lines through libpam (AUTHPRIV, the host's ident and pid, like every
//!   other module's lines).
//! - `pam_fail_delay`: the delay libpam applies when the stack fails.
#![allow(unsafe_code)]

use libc::{c_char, c_int, c_uint, c_void};
use pam_bindings::constants::{
    PamResultCode, PAM_ERROR_MSG as ERROR_MSG, PAM_PROMPT_ECHO_OFF as ECHO_OFF,
    PAM_PROMPT_ECHO_ON as ECHO_ON, PAM_TEXT_INFO as TEXT_INFO,
};
use pam_bindings::items::ItemType;
use pam_bindings::module::PamHandle;
use std::ffi::CString;

const PAM_AUTHTOK: c_int = ItemType::AuthTok as c_int;
const PAM_RHOST: c_int = ItemType::RHost as c_int;
const PAM_TTY: c_int = ItemType::Tty as c_int;
const PAM_SUCCESS: c_int = PamResultCode::PAM_SUCCESS as c_int;
const PAM_BUF_ERR: c_int = PamResultCode::PAM_BUF_ERR as c_int;
const PAM_CONV_ERR: c_int = PamResultCode::PAM_CONV_ERR as c_int;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_fail_delay(pamh: *mut PamHandle, usec: c_uint) -> c_int;
}

/// Sets `PAM_AUTHTOK` (libpam copies the string). Returns the PAM status code.
pub fn set_authtok(pamh: &mut PamHandle, token: &[u8]) -> c_int {
    let Ok(c) = CString::new(token) else {
        return PAM_BUF_ERR;
    };
    // SAFETY: pamh is the live handle libpam gave this hook; `c` outlives the call and libpam
    // duplicates the string before returning.
    let rc = unsafe { pam_set_item(pamh, PAM_AUTHTOK, c.as_ptr().cast()) };
    // Wipe our copy of the secret before it is freed.
    let mut bytes = c.into_bytes_with_nul();
    crate::secret::wipe(&mut bytes);
    rc
}

/// A log line as a C string: interior NUL bytes (impossible after escaping) are replaced.
fn log_line(line: &str) -> CString {
    CString::new(line.replace('\0', "\\x00")).unwrap_or_default()
}

/// Writes one line through `pam_syslog`. The text goes through a `%s` format: a `%` in it is
/// never interpreted.
pub fn syslog(pamh: &PamHandle, priority: c_int, line: &str) {
    let c = log_line(line);
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
    // SAFETY: the keys are private to this crate and each is only ever set with one type, so
    // the stored pointer is a `T`. The one key set by one object and read by another (the
    // front's `front::DATA_CHECKED`, read by the full module) holds a `#[repr(C)]` type
    // (`front::Mark`), laid out alike by any build.
    unsafe { pamh.get_data::<T>(key) }.ok().cloned()
}

/// A line to syslog (AUTHPRIV) from the admin command, which has no PAM handle.
pub fn syslog_authpriv(priority: c_int, line: &str) {
    let c = log_line(line);
    // SAFETY: both strings are NUL-terminated and outlive the call; openlog keeps the ident
    // pointer, so it is a static string.
    unsafe {
        libc::openlog(c"pam-portal".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV);
        libc::syslog(priority, c"%s".as_ptr(), c.as_ptr());
    }
}

// ---------------------------------------------------------------------------------------------
// The libpam *client* side, for `pam-portal test-login`: one PAM transaction run the way a host
// runs it (pam_start, pam_authenticate, pam_acct_mgmt, pam_end) with a terminal conversation.

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// What an application's conversation does with the module's messages (`test-login`'s terminal).
pub trait ClientConversation {
    /// A prompt; `None` = no answer (end of input): the conversation then fails.
    fn prompt(&mut self, text: &str, echo: bool) -> Option<Vec<u8>>;
    /// A `PAM_TEXT_INFO` (`error == false`) or `PAM_ERROR_MSG` message.
    fn message(&mut self, text: &str, error: bool);
}

/// A libpam transaction opened by an application (`pam_start`), ended (`pam_end`) on drop.
pub struct PamClient {
    handle: *mut PamHandle,
    last: c_int,
    // Both must outlive the handle: libpam keeps `conv` and passes `appdata` to every call.
    _conv: Box<PamConv>,
    _appdata: Box<Box<dyn ClientConversation>>,
}

/// malloc'd copy of `bytes` with a NUL (libpam frees conversation answers with `free`).
unsafe fn c_strdup(bytes: &[u8]) -> *mut c_char {
    let len = bytes.len();
    // SAFETY (caller): none; calloc returns zeroed memory of len + 1 bytes or NULL.
    let p = unsafe { libc::calloc(len + 1, 1) }.cast::<c_char>();
    if !p.is_null() {
        // SAFETY: p has room for len + 1 bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), p, len) };
    }
    p
}

/// Frees the first `upto` answers (wiped first) and the array.
unsafe fn free_replies(replies: *mut PamResponse, upto: usize) {
    for j in 0..upto {
        // SAFETY (caller): `replies` holds at least `upto` entries, each NULL or from c_strdup.
        unsafe {
            let r = (*replies.add(j)).resp;
            if !r.is_null() {
                let len = libc::strlen(r);
                std::ptr::write_bytes(r, 0, len);
                libc::free(r.cast());
            }
        }
    }
    // SAFETY: the array came from calloc.
    unsafe { libc::free(replies.cast()) };
}

unsafe extern "C" fn client_conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > 64 || msg.is_null() || resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata_ptr is the `Box<dyn ClientConversation>` PamClient::start registered; it
    // lives as long as the handle, and libpam calls the conversation from one thread at a time.
    let conv = unsafe { &mut *appdata_ptr.cast::<Box<dyn ClientConversation>>() };
    let n = num_msg as usize;
    // SAFETY: calloc of n zeroed responses, or NULL.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of `n` pointers to messages.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: entries 0..i were filled by this loop.
            unsafe { free_replies(replies, i) };
            return PAM_CONV_ERR;
        }
        // SAFETY: m points to a live message; its text is a NUL-terminated string or NULL.
        let (style, text) = unsafe {
            let text = if (*m).msg.is_null() {
                String::new()
            } else {
                String::from_utf8_lossy(std::ffi::CStr::from_ptr((*m).msg).to_bytes()).into_owned()
            };
            ((*m).msg_style, text)
        };
        match style {
            ECHO_OFF | ECHO_ON => match conv.prompt(&text, style == ECHO_ON) {
                Some(mut answer) => {
                    // SAFETY: copies the answer into malloc'd memory libpam will free.
                    let p = unsafe { c_strdup(&answer) };
                    crate::secret::wipe(&mut answer);
                    if p.is_null() {
                        // SAFETY: entries 0..i were filled by this loop.
                        unsafe { free_replies(replies, i) };
                        return PAM_BUF_ERR;
                    }
                    // SAFETY: i < n.
                    unsafe { (*replies.add(i)).resp = p };
                }
                None => {
                    // SAFETY: entries 0..i were filled by this loop.
                    unsafe { free_replies(replies, i) };
                    return PAM_CONV_ERR;
                }
            },
            ERROR_MSG | TEXT_INFO => conv.message(&text, style == ERROR_MSG),
            _ => {
                // SAFETY: entries 0..i were filled by this loop.
                unsafe { free_replies(replies, i) };
                return PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: resp is libpam's out-pointer; it takes ownership of the array.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

impl PamClient {
    /// `pam_start` (or `pam_start_confdir` when `confdir` is given: stacks are read there
    /// instead of /etc/pam.d). Err: the code and libpam's text.
    pub fn start(
        service: &str,
        user: &str,
        confdir: Option<&std::path::Path>,
        conversation: Box<dyn ClientConversation>,
    ) -> Result<PamClient, (c_int, String)> {
        use std::os::unix::ffi::OsStrExt;
        let bad = |what: &str| (PAM_BUF_ERR, format!("{what} contains a NUL byte"));
        let c_service = CString::new(service).map_err(|_| bad("the service name"))?;
        let c_user = CString::new(user).map_err(|_| bad("the user name"))?;
        let c_dir = match confdir {
            Some(d) => Some(
                CString::new(d.as_os_str().as_bytes()).map_err(|_| bad("the stack directory"))?,
            ),
            None => None,
        };
        let mut appdata: Box<Box<dyn ClientConversation>> = Box::new(conversation);
        let conv = Box::new(PamConv {
            conv: Some(client_conversation),
            appdata_ptr: (&mut *appdata as *mut Box<dyn ClientConversation>).cast(),
        });
        let mut handle: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: every string is NUL-terminated and outlives the call; `conv` and `appdata`
        // are kept in the returned PamClient until pam_end.
        let rc = unsafe {
            match &c_dir {
                Some(d) => pam_start_confdir(
                    c_service.as_ptr(),
                    c_user.as_ptr(),
                    &*conv,
                    d.as_ptr(),
                    &mut handle,
                ),
                None => pam_start(c_service.as_ptr(), c_user.as_ptr(), &*conv, &mut handle),
            }
        };
        if rc != PAM_SUCCESS || handle.is_null() {
            return Err((rc, format!("pam_start failed with code {rc}")));
        }
        Ok(PamClient {
            handle,
            last: PAM_SUCCESS,
            _conv: conv,
            _appdata: appdata,
        })
    }

    fn set_string_item(&mut self, item: c_int, value: &str) -> c_int {
        let Ok(c) = CString::new(value) else {
            return PAM_BUF_ERR;
        };
        // SAFETY: the handle is live; libpam copies the string.
        unsafe { pam_set_item(self.handle, item, c.as_ptr().cast()) }
    }

    /// Sets `PAM_RHOST`.
    pub fn set_rhost(&mut self, rhost: &str) -> c_int {
        self.set_string_item(PAM_RHOST, rhost)
    }

    /// Sets `PAM_TTY`.
    pub fn set_tty(&mut self, tty: &str) -> c_int {
        self.set_string_item(PAM_TTY, tty)
    }

    /// `pam_authenticate`.
    pub fn authenticate(&mut self, flags: c_int) -> c_int {
        // SAFETY: the handle is live.
        self.last = unsafe { pam_authenticate(self.handle, flags) };
        self.last
    }

    /// `pam_acct_mgmt`.
    pub fn acct_mgmt(&mut self, flags: c_int) -> c_int {
        // SAFETY: the handle is live.
        self.last = unsafe { pam_acct_mgmt(self.handle, flags) };
        self.last
    }

    /// libpam's text for a code.
    pub fn strerror(&self, code: c_int) -> String {
        // SAFETY: the handle is live; pam_strerror returns a static string or NULL.
        let p = unsafe { pam_strerror(self.handle, code) };
        if p.is_null() {
            return format!("code {code}");
        }
        // SAFETY: p is a NUL-terminated static string.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for PamClient {
    fn drop(&mut self) {
        // SAFETY: the handle is live and ended exactly once.
        unsafe { pam_end(self.handle, self.last) };
    }
}

/// The terminal on `fd` with echo switched off until this is dropped.
pub struct EchoOff {
    fd: c_int,
    saved: libc::termios,
}

/// Switches echo off on `fd` if it is a terminal; `None` if it is not one.
pub fn echo_off(fd: c_int) -> Option<EchoOff> {
    // SAFETY: termios is plain data; tcgetattr fills it or fails on a non-terminal.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: t is a valid termios to fill.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return None;
    }
    let saved = t;
    t.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK);
    t.c_lflag |= libc::ECHONL;
    // SAFETY: t is a valid termios obtained from this fd.
    if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &t) } != 0 {
        return None;
    }
    Some(EchoOff { fd, saved })
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same fd (TCSANOW: keep what the user
        // already typed for the next prompt).
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Whether `fd` is a terminal.
pub fn isatty(fd: c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The real user id (who ran the admin command).
pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    unsafe { libc::getuid() }
}
