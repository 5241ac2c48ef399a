//! The PAM handle as the login logic sees it: a small trait, and its implementation over the
//! real libpam handle. Tests implement the trait with a scripted conversation.

mod ffi;

pub use ffi::{geteuid, syslog_authpriv};

/// Whether a file or directory owned by `uid` may hold the module's configuration or state:
/// root's, or the user the module runs as (a host that is not root, the tests). `geteuid` is
/// asked only when root is not the owner, so the usual case makes no system call.
pub fn owned_by_root_or_us(uid: u32) -> bool {
    uid == 0 || uid == geteuid()
}
// The libpam client side and terminal helpers, for `pam-portal test-login` (src/admin.rs).
pub use ffi::{echo_off, getuid, isatty, ClientConversation, EchoOff, PamClient};

use crate::secret::Secret;
use pam_bindings::constants::{
    PamFlag, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PAM_TEXT_INFO,
};
use pam_bindings::conv::Conv;
use pam_bindings::items::{AuthTok, RHost, Service, User};
use pam_bindings::module::PamHandle;

/// syslog priorities (from <syslog.h>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// Why the conversation gave no usable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvError {
    /// The application's conversation failed or returned no answer (NULL, end of input).
    NoAnswer,
}

/// The username as PAM holds it: raw bytes, which need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawUser(pub Vec<u8>);

/// What the login logic needs from PAM.
pub trait Pam {
    /// `pam_get_user`: the username (may prompt through the host).
    fn user(&mut self) -> Result<RawUser, ConvError>;
    /// `PAM_RHOST` as the host set it.
    fn rhost(&self) -> Option<String>;
    /// `PAM_SERVICE`.
    fn service(&self) -> String;
    /// `PAM_AUTHTOK`, if an earlier module set it.
    fn authtok(&self) -> Option<Secret>;
    /// Sets `PAM_AUTHTOK` for later modules.
    fn set_authtok(&mut self, token: &Secret);
    /// Asks the user; `Ok(None)` never happens: a NULL answer is `Err(NoAnswer)`.
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError>;
    /// A `PAM_TEXT_INFO` message.
    fn info(&mut self, text: &str);
    /// A `PAM_ERROR_MSG` message (suppressed under `PAM_SILENT`).
    fn error(&mut self, text: &str);
    /// One log line through `pam_syslog`.
    fn log(&self, priority: Priority, line: &str);
    /// `pam_fail_delay`.
    fn fail_delay(&mut self, millis: u64);
}

/// The real handle libpam passed to a hook.
pub struct LibPam<'a> {
    handle: &'a mut PamHandle,
    silent: bool,
}

impl<'a> LibPam<'a> {
    pub fn new(handle: &'a mut PamHandle, flags: PamFlag) -> Self {
        LibPam {
            handle,
            silent: flags & PAM_SILENT != 0,
        }
    }

    fn converse(
        &self,
        style: i32,
        text: &str,
    ) -> Result<Option<pam_bindings::secret::SecretBytes>, ConvError> {
        let conv = match self.handle.get_item::<Conv>() {
            Ok(Some(c)) => c,
            _ => return Err(ConvError::NoAnswer),
        };
        conv.send(style, text).map_err(|_| ConvError::NoAnswer)
    }

    /// Module data shared between hooks of one PAM transaction.
    pub fn set_data<T: 'static>(&mut self, key: &str, data: T) {
        let _ = self.handle.set_data(key, Box::new(data));
    }

    /// Module data set by `set_data` under `key` (each key holds one type).
    pub fn get_data<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        ffi::get_data::<T>(self.handle, key)
    }
}

impl Pam for LibPam<'_> {
    fn user(&mut self) -> Result<RawUser, ConvError> {
        match self.handle.get_user(None) {
            Ok(u) => Ok(RawUser(u.into_bytes())),
            // pam-bindings refuses a non-UTF-8 name; PAM_USER may still hold it.
            Err(_) => match self.handle.get_item::<User>() {
                Ok(Some(u)) => Ok(RawUser(u.0.to_bytes().to_vec())),
                _ => Err(ConvError::NoAnswer),
            },
        }
    }

    fn rhost(&self) -> Option<String> {
        match self.handle.get_item::<RHost>() {
            Ok(Some(h)) => Some(String::from_utf8_lossy(h.0.to_bytes()).into_owned()),
            _ => None,
        }
    }

    fn service(&self) -> String {
        match self.handle.get_item::<Service>() {
            Ok(Some(s)) => String::from_utf8_lossy(s.0.to_bytes()).into_owned(),
            _ => String::new(),
        }
    }

    fn authtok(&self) -> Option<Secret> {
        match self.handle.get_item::<AuthTok>() {
            Ok(Some(t)) => {
                let bytes = t.to_owned_secret();
                std::str::from_utf8(bytes.as_bytes()).ok().map(Secret::from)
            }
            _ => None,
        }
    }

    fn set_authtok(&mut self, token: &Secret) {
        let rc = ffi::set_authtok(self.handle, token.expose().as_bytes());
        if rc != 0 {
            self.log(
                Priority::Warning,
                &format!("could not set PAM_AUTHTOK (code {rc})"),
            );
        }
    }

    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError> {
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        match self.converse(style, text)? {
            Some(bytes) => Ok(Secret::new(
                String::from_utf8_lossy(bytes.as_bytes()).into_owned(),
            )),
            None => Err(ConvError::NoAnswer),
        }
    }

    fn info(&mut self, text: &str) {
        if !self.silent {
            let _ = self.converse(PAM_TEXT_INFO, text);
        }
    }

    fn error(&mut self, text: &str) {
        if !self.silent {
            let _ = self.converse(PAM_ERROR_MSG, text);
        }
    }

    fn log(&self, priority: Priority, line: &str) {
        ffi::syslog(self.handle, priority as i32, line);
    }

    fn fail_delay(&mut self, millis: u64) {
        ffi::fail_delay(self.handle, millis);
    }
}
