//! The outcome of a hook: SPEC §5 (PAM code and client message) and §8 (log reason) in one
//! place. The login logic returns a `Decision`; lib.rs turns it into a message, a log line and
//! a return code.

use crate::config::OnUnavailable;

/// The PAM return codes this module uses (values of Linux-PAM's `_pam_types.h`).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    PAM_SUCCESS = 0,
    PAM_SERVICE_ERR = 3,
    PAM_SYSTEM_ERR = 4,
    PAM_PERM_DENIED = 6,
    PAM_AUTH_ERR = 7,
    PAM_AUTHINFO_UNAVAIL = 9,
    PAM_USER_UNKNOWN = 10,
    PAM_MAXTRIES = 11,
    PAM_ACCT_EXPIRED = 13,
    PAM_CONV_ERR = 19,
    PAM_IGNORE = 25,
    PAM_ABORT = 26,
}

pub const MSG_INVALID: &str = "Invalid login credentials provided.";
pub const MSG_UNAUTHORIZED_IP: &str = "Unauthorized IP Address!";
pub const MSG_UNAVAILABLE: &str = "The login service is unavailable; try again later.";

pub fn msg_locked(seconds_left: u64) -> String {
    format!(
        "Account has been locked for {} minutes.",
        seconds_left.div_ceil(60).max(1)
    )
}

/// The real cause, as logged (`reason=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Ok,
    BadPassword,
    BadAnswer,
    UserUnknown,
    IpNotAllowed,
    IpDenied,
    UserLocked,
    IpLocked,
    PhoneLocked,
    PortalLocked,
    PortalIpRefused,
    AccountState,
    VpnNotAllowed,
    NoSecondFactor,
    BadCode,
    PhoneDenied,
    PhoneTimeout,
    PhoneBlocked,
    PhoneLimit,
    BindingRequired,
    QuestionRequired,
    EmptyPassword,
    PasswordTooLong,
    PortalUnavailable,
    Conversation,
    NoFirstPass,
    BadConfig,
    StoreError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::BadPassword => "bad_password",
            Reason::BadAnswer => "bad_answer",
            Reason::UserUnknown => "user_unknown",
            Reason::IpNotAllowed => "ip_not_allowed",
            Reason::IpDenied => "ip_denied",
            Reason::UserLocked => "user_locked",
            Reason::IpLocked => "ip_locked",
            Reason::PhoneLocked => "phone_locked",
            Reason::PortalLocked => "portal_locked",
            Reason::PortalIpRefused => "portal_ip_refused",
            Reason::AccountState => "account_state",
            Reason::VpnNotAllowed => "vpn_not_allowed",
            Reason::NoSecondFactor => "no_second_factor",
            Reason::BadCode => "bad_code",
            Reason::PhoneDenied => "phone_denied",
            Reason::PhoneTimeout => "phone_timeout",
            Reason::PhoneBlocked => "phone_blocked",
            Reason::PhoneLimit => "phone_limit",
            Reason::BindingRequired => "binding_required",
            Reason::QuestionRequired => "question_required",
            Reason::EmptyPassword => "empty_password",
            Reason::PasswordTooLong => "password_too_long",
            Reason::PortalUnavailable => "portal_unavailable",
            Reason::Conversation => "conversation",
            Reason::NoFirstPass => "no_first_pass",
            Reason::BadConfig => "bad_config",
            Reason::StoreError => "store_error",
        }
    }
}

/// The second factor a login used or would have used (`factor=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    None,
    Question,
    Phone,
    Code,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::None => "none",
            Factor::Question => "question",
            Factor::Phone => "phone",
            Factor::Code => "code",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub code: Code,
    pub reason: Reason,
    /// What the client is shown (PAM_ERROR_MSG).
    pub message: Option<String>,
    pub factor: Factor,
    /// Whether the failure was counted against the lockout keys.
    pub counted: bool,
    /// Seconds of lock left, for lock refusals.
    pub lock_left: Option<u64>,
    /// Which key is locked (`user`, `ip`, `phone`, `portal`).
    pub locked: Option<&'static str>,
    /// Extra words for the log only (escaped when written).
    pub detail: Option<String>,
}

impl Decision {
    fn new(code: Code, reason: Reason, message: Option<String>) -> Self {
        Decision {
            code,
            reason,
            message,
            factor: Factor::None,
            counted: false,
            lock_left: None,
            locked: None,
            detail: None,
        }
    }
    pub fn success(factor: Factor) -> Self {
        Decision::new(Code::PAM_SUCCESS, Reason::Ok, None).factor(factor)
    }
    /// `PAM_AUTH_ERR` with the generic message (or `shown` when `show_reasons` allows it).
    pub fn refused(reason: Reason, shown: Option<String>) -> Self {
        Decision::new(
            Code::PAM_AUTH_ERR,
            reason,
            Some(shown.unwrap_or_else(|| MSG_INVALID.to_string())),
        )
    }
    pub fn ip_denied() -> Self {
        Decision::new(
            Code::PAM_PERM_DENIED,
            Reason::IpDenied,
            Some(MSG_UNAUTHORIZED_IP.to_string()),
        )
    }
    pub fn locked(reason: Reason, which: &'static str, seconds_left: u64) -> Self {
        Decision::new(Code::PAM_MAXTRIES, reason, None).lock(which, seconds_left)
    }
    /// Answers as a lock of `which` (`PAM_MAXTRIES`, the lock message), keeping the reason: a
    /// refusal, or the failure that just started the lock.
    pub fn lock(mut self, which: &'static str, seconds_left: u64) -> Self {
        self.code = Code::PAM_MAXTRIES;
        self.message = Some(msg_locked(seconds_left));
        self.lock_left = Some(seconds_left);
        self.locked = Some(which);
        self
    }
    pub fn unavailable(on: OnUnavailable, detail: String) -> Self {
        let d = match on {
            OnUnavailable::Deny => Decision::new(
                Code::PAM_AUTHINFO_UNAVAIL,
                Reason::PortalUnavailable,
                Some(MSG_UNAVAILABLE.to_string()),
            ),
            OnUnavailable::Ignore => {
                Decision::new(Code::PAM_IGNORE, Reason::PortalUnavailable, None)
            }
        };
        d.detail(detail)
    }
    pub fn conversation() -> Self {
        Decision::new(Code::PAM_CONV_ERR, Reason::Conversation, None)
    }
    pub fn bad_config(detail: String) -> Self {
        Decision::new(Code::PAM_SERVICE_ERR, Reason::BadConfig, None).detail(detail)
    }
    pub fn store_error(detail: String) -> Self {
        Decision::new(Code::PAM_SYSTEM_ERR, Reason::StoreError, None).detail(detail)
    }
    /// An acct_mgmt refusal with its own code and no message.
    pub fn account(code: Code, reason: Reason) -> Self {
        Decision::new(code, reason, None)
    }

    pub fn factor(mut self, f: Factor) -> Self {
        self.factor = f;
        self
    }
    pub fn detail(mut self, d: String) -> Self {
        self.detail = Some(d);
        self
    }
    pub fn counted(mut self) -> Self {
        self.counted = true;
        self
    }

    /// `result=` word of the log line.
    pub fn result(&self) -> &'static str {
        match self.code {
            Code::PAM_SUCCESS => "success",
            Code::PAM_AUTHINFO_UNAVAIL
            | Code::PAM_IGNORE
            | Code::PAM_SERVICE_ERR
            | Code::PAM_SYSTEM_ERR
            | Code::PAM_CONV_ERR
            | Code::PAM_ABORT => "error",
            _ => "fail",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_minutes_round_up_at_least_one() {
        assert_eq!(msg_locked(1800), "Account has been locked for 30 minutes.");
        assert_eq!(msg_locked(1799), "Account has been locked for 30 minutes.");
        assert_eq!(msg_locked(61), "Account has been locked for 2 minutes.");
        assert_eq!(msg_locked(1), "Account has been locked for 1 minutes.");
        assert_eq!(msg_locked(0), "Account has been locked for 1 minutes.");
    }

    #[test]
    fn codes_of_section_5() {
        assert_eq!(
            Decision::refused(Reason::BadPassword, None).code,
            Code::PAM_AUTH_ERR
        );
        assert_eq!(
            Decision::refused(Reason::BadPassword, None)
                .message
                .as_deref(),
            Some(MSG_INVALID)
        );
        assert_eq!(Decision::ip_denied().code, Code::PAM_PERM_DENIED);
        assert_eq!(
            Decision::locked(Reason::UserLocked, "user", 5).code,
            Code::PAM_MAXTRIES
        );
        let u = Decision::unavailable(OnUnavailable::Deny, "x".into());
        assert_eq!(
            (u.code, u.message.as_deref()),
            (Code::PAM_AUTHINFO_UNAVAIL, Some(MSG_UNAVAILABLE))
        );
        let i = Decision::unavailable(OnUnavailable::Ignore, "x".into());
        assert_eq!((i.code, i.message), (Code::PAM_IGNORE, None));
    }
}
