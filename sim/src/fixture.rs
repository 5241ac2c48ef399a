//! The fixture file (TOML): the service account, the portal's own lockout settings, the
//! security questions and the users. Unknown keys are refused (`deny_unknown_fields`) so a
//! typo in a test fixture fails loudly instead of silently changing behaviour.
//!
//! A binding carries, besides `id`, `active` and `vendor`, the optional settings of the phone
//! binding service (PROTOCOL 2.4) and of the TOTP / VeriSign codes (2.5); every one has a
//! default, so `{ id = 9001, vendor = "PHONE_FACTOR" }` is a complete binding.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::ipnet::{self, IpRule};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub account: Account,
    #[serde(default)]
    pub lockout: LockoutConf,
    #[serde(default)]
    pub phone: PhoneConf,
    #[serde(default)]
    pub questions: Vec<Question>,
    #[serde(default)]
    pub users: Vec<User>,
}

/// The service account: HTTP Basic `api_user:api_key` for authenticated calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub api_user: String,
    pub api_key: String,
}

/// The portal's own lockout (PROTOCOL 2.3), per username and per calling address.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConf {
    pub max_failures: u32,
    pub window_s: u64,
    pub lock_s: u64,
}

impl Default for LockoutConf {
    fn default() -> Self {
        LockoutConf {
            max_failures: 10,
            window_s: 1800,
            lock_s: 1800,
        }
    }
}

/// The sim's limits for the phone binding service (PROTOCOL 2.4), per binding.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneConf {
    /// requestPhoneValidation calls accepted per binding within `window_s`.
    pub max_requests: u32,
    pub window_s: u64,
    /// Failed validations (denied, wrong PIN, expired) within `fail_window_s` that block the
    /// binding for `block_s`.
    pub max_failures: u32,
    pub fail_window_s: u64,
    pub block_s: u64,
}

impl Default for PhoneConf {
    fn default() -> Self {
        PhoneConf {
            max_requests: 5,
            window_s: 3600,
            max_failures: 5,
            fail_window_s: 3600,
            block_s: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub id: u64,
    pub question: String,
    #[serde(default)]
    pub display_order: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub password: String,
    /// `userStatus.keyName`, one of [`STATUSES`].
    #[serde(default = "default_status")]
    pub status: String,
    /// `ipAddressRestriction`. Absent: the field is omitted from getUsers; `""`: sent as `""`.
    #[serde(default)]
    pub ip_restriction: Option<String>,
    #[serde(default)]
    pub secondary_login_required: bool,
    #[serde(default = "default_true")]
    pub ssl_vpn_allowed: bool,
    #[serde(default)]
    pub answers: Vec<Answer>,
    #[serde(default)]
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub question_id: u64,
    pub answer: String,
}

/// An external (2FA) binding. The phone fields matter for `PHONE_FACTOR` bindings, the code
/// fields for `TOTP` and `VERISIGN` ones; all have defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub id: u64,
    #[serde(default = "default_true")]
    pub active: bool,
    /// `vendor.keyName`: `PHONE_FACTOR`, `TOTP`, `VERISIGN` (compared case-insensitively).
    pub vendor: String,

    // --- phone binding (PROTOCOL 2.4) ---
    /// getBindingStatus: `ACTIVE` or `BLOCKED` (blocked from the start).
    #[serde(default = "default_status")]
    pub status: String,
    /// getAuthenticationMode `mode`: `VOICE_CALL`, `SMS_TEXT`, `PHONE_APP`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// getAuthenticationMode `pinMode`, valid for `mode` (see [`MODES`]).
    #[serde(default = "default_pin_mode")]
    pub pin_mode: String,
    /// getPhoneData. Default: one PRIMARY phone +1 5125550100.
    #[serde(default = "default_phones")]
    pub phones: Vec<Phone>,
    /// What the simulated person does when the phone rings.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// When `approve`, `deny` and `wrong_pin` answer, after the request.
    #[serde(default = "default_delay_ms")]
    pub delay_ms: u64,
    /// An unanswered validation fails this long after the request.
    #[serde(default = "default_expire_s")]
    pub expire_s: u64,
    /// requestPhoneValidation for a PRIMARY phone fails with "Unable to reach the phone number."
    #[serde(default)]
    pub primary_fails: bool,

    // --- TOTP / VeriSign (PROTOCOL 2.5) ---
    /// The currently valid security code.
    #[serde(default = "default_code")]
    pub code: String,
    /// VeriSign: the second code that resynchronizes an out-of-sync credential.
    #[serde(default = "default_second_code")]
    pub second_code: String,
    /// VeriSign: the right code alone answers SecondSecurityCodeRequired.
    #[serde(default)]
    pub out_of_sync: bool,
    /// The error a wrong code gets.
    #[serde(default)]
    pub wrong_code_answer: WrongCodeAnswer,
}

/// One entry of getPhoneData.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    pub country_code: u32,
    pub phone: String,
    #[serde(default)]
    pub extension: String,
    /// `phoneType`: `PRIMARY` or `BACKUP`.
    #[serde(rename = "type")]
    pub phone_type: String,
}

/// What the simulated person does with a phone validation request.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Approves `delay_ms` after the request.
    #[default]
    Approve,
    /// Denies `delay_ms` after the request.
    Deny,
    /// Never answers: the validation fails `expire_s` after the request.
    Ignore,
    /// Enters a wrong PIN `delay_ms` after the request.
    WrongPin,
    /// Waits for `POST /phone/answer` on the control interface (or `expire_s`).
    Manual,
}

/// The error performExternalAuthentication gives for a wrong code.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WrongCodeAnswer {
    /// `SoftLayer_Exception_User_Customer_LoginFailed` "Invalid login credentials provided."
    #[default]
    LoginFailed,
    /// `SoftLayer_Exception_Public` "Invalid login credentials provided."
    Public,
    /// `SoftLayer_Exception_User_Customer_External_Binding_AuthenticationFailed` "Authentication failed."
    AuthFailed,
}

/// Authentication modes and the pin modes each allows (PROTOCOL 2.4).
pub const MODES: &[(&str, &[&str])] = &[
    ("VOICE_CALL", &["STANDARD", "PIN", "VOICE_PRINT"]),
    ("SMS_TEXT", &["OTP", "OTP_PIN"]),
    ("PHONE_APP", &["STANDARD", "PIN"]),
];

/// Binding states of getBindingStatus.
pub const BINDING_STATUSES: &[&str] = &["ACTIVE", "BLOCKED"];

fn default_mode() -> String {
    "VOICE_CALL".into()
}

fn default_pin_mode() -> String {
    "STANDARD".into()
}

fn default_phones() -> Vec<Phone> {
    vec![Phone {
        country_code: 1,
        phone: "5125550100".into(),
        extension: String::new(),
        phone_type: "PRIMARY".into(),
    }]
}

fn default_delay_ms() -> u64 {
    300
}

fn default_expire_s() -> u64 {
    60
}

fn default_code() -> String {
    "123456".into()
}

fn default_second_code() -> String {
    "654321".into()
}

impl Binding {
    pub fn is_vendor(&self, vendor: &str) -> bool {
        self.vendor.eq_ignore_ascii_case(vendor)
    }

    pub fn is_phone(&self) -> bool {
        self.is_vendor("PHONE_FACTOR")
    }

    fn validate(&self) -> Result<(), String> {
        if self.vendor.trim().is_empty() {
            return Err("has no vendor".into());
        }
        if !BINDING_STATUSES.contains(&self.status.as_str()) {
            return Err(format!(
                "unknown status {:?} (known: {})",
                self.status,
                BINDING_STATUSES.join(", ")
            ));
        }
        let Some((_, pins)) = MODES.iter().find(|(m, _)| *m == self.mode) else {
            let known: Vec<&str> = MODES.iter().map(|m| m.0).collect();
            return Err(format!(
                "unknown mode {:?} (known: {})",
                self.mode,
                known.join(", ")
            ));
        };
        if !pins.contains(&self.pin_mode.as_str()) {
            return Err(format!(
                "pin_mode {:?} does not go with mode {} (allowed: {})",
                self.pin_mode,
                self.mode,
                pins.join(", ")
            ));
        }
        for p in &self.phones {
            if p.phone.is_empty() || !p.phone.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("phone {:?}: digits only, not empty", p.phone));
            }
            if !p.extension.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("phone extension {:?}: digits only", p.extension));
            }
            if p.phone_type != "PRIMARY" && p.phone_type != "BACKUP" {
                return Err(format!(
                    "phone {:?}: type {:?} is not PRIMARY or BACKUP",
                    p.phone, p.phone_type
                ));
            }
        }
        if self.expire_s == 0 {
            return Err("expire_s must be at least 1".into());
        }
        Ok(())
    }
}

fn default_status() -> String {
    "ACTIVE".to_string()
}

fn default_true() -> bool {
    true
}

/// Known user states: (keyName, id, name).
pub const STATUSES: &[(&str, u64, &str)] = &[
    ("ACTIVE", 1001, "Active"),
    ("DISABLED", 1002, "Disabled"),
    ("INACTIVE", 1003, "Inactive"),
    ("PENDING", 1004, "Pending"),
    ("SUSPENDED", 1005, "Suspended"),
    ("IAMID_INVALID", 1006, "IAMid Invalid"),
    ("CANCEL_PENDING", 1021, "Cancel Pending"),
    ("VPN_ONLY", 1022, "VPN Only"),
];

pub fn status_info(key: &str) -> Option<(u64, &'static str)> {
    STATUSES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, id, name)| (*id, *name))
}

impl User {
    /// The parsed `ip_restriction` (validated at load time, so parse errors cannot occur here).
    pub fn ip_rules(&self) -> Vec<IpRule> {
        match &self.ip_restriction {
            Some(s) => ipnet::parse_list(s).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    pub fn active_binding(&self) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.active)
    }
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Fixture, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read fixture {}: {e}", path.display()))?;
        Fixture::parse(&text).map_err(|e| format!("fixture {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Fixture, String> {
        let f: Fixture = toml::from_str(text).map_err(|e| e.to_string())?;
        f.validate()?;
        Ok(f)
    }

    fn validate(&self) -> Result<(), String> {
        if self.lockout.max_failures == 0 {
            return Err("lockout.max_failures must be at least 1".into());
        }
        if self.phone.max_requests == 0 {
            return Err("phone.max_requests must be at least 1".into());
        }
        if self.phone.max_failures == 0 {
            return Err("phone.max_failures must be at least 1".into());
        }
        let mut qids = HashSet::new();
        for q in &self.questions {
            if !qids.insert(q.id) {
                return Err(format!("duplicate question id {}", q.id));
            }
        }
        let mut uids = HashSet::new();
        let mut names = HashSet::new();
        let mut bids = HashSet::new();
        for u in &self.users {
            if !uids.insert(u.id) {
                return Err(format!("duplicate user id {}", u.id));
            }
            if !names.insert(u.username.as_str()) {
                return Err(format!("duplicate username {:?}", u.username));
            }
            if status_info(&u.status).is_none() {
                let known: Vec<&str> = STATUSES.iter().map(|s| s.0).collect();
                return Err(format!(
                    "user {:?}: unknown status {:?} (known: {})",
                    u.username,
                    u.status,
                    known.join(", ")
                ));
            }
            if let Some(r) = &u.ip_restriction {
                ipnet::parse_list(r)
                    .map_err(|e| format!("user {:?}: ip_restriction: {e}", u.username))?;
            }
            let mut answered = HashSet::new();
            for a in &u.answers {
                if !qids.contains(&a.question_id) {
                    return Err(format!(
                        "user {:?}: answer for question {} which is not in [[questions]]",
                        u.username, a.question_id
                    ));
                }
                if !answered.insert(a.question_id) {
                    return Err(format!(
                        "user {:?}: question {} answered twice",
                        u.username, a.question_id
                    ));
                }
            }
            for b in &u.bindings {
                if !bids.insert(b.id) {
                    return Err(format!("duplicate binding id {}", b.id));
                }
                b.validate()
                    .map_err(|e| format!("user {:?}: binding {}: {e}", u.username, b.id))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[account]
api_user = "SL1"
api_key = "k"
"#;

    #[test]
    fn defaults() {
        let f = Fixture::parse(&format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\n"
        ))
        .unwrap();
        assert_eq!(f.lockout, LockoutConf::default());
        let u = &f.users[0];
        assert_eq!(u.status, "ACTIVE");
        assert!(u.ip_restriction.is_none());
        assert!(!u.secondary_login_required);
        assert!(u.ssl_vpn_allowed);
        assert!(u.answers.is_empty() && u.bindings.is_empty());
    }

    #[test]
    fn unknown_keys_refused() {
        let e = Fixture::parse(&format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\nfoo = 1\n"
        ))
        .unwrap_err();
        assert!(e.contains("foo"), "{e}");
        assert!(Fixture::parse(&format!("{MIN}\nbogus = 1\n")).is_err());
        assert!(Fixture::parse(&format!("{MIN}\n[lockout]\nmax = 3\n")).is_err());
    }

    #[test]
    fn validation() {
        let bad_status = format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\nstatus = \"active\"\n"
        );
        assert!(Fixture::parse(&bad_status)
            .unwrap_err()
            .contains("unknown status"));
        let bad_q = format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\nanswers = [{{question_id = 5, answer = \"x\"}}]\n"
        );
        assert!(Fixture::parse(&bad_q).is_err());
        let bad_ip = format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\nip_restriction = \"1.2.3\"\n"
        );
        assert!(Fixture::parse(&bad_ip).is_err());
        let dup = format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\n[[users]]\nid = 2\nusername = \"a\"\npassword = \"p\"\n"
        );
        assert!(Fixture::parse(&dup).is_err());
    }

    fn with_binding(b: &str) -> Result<Fixture, String> {
        Fixture::parse(&format!(
            "{MIN}\n[[users]]\nid = 1\nusername = \"a\"\npassword = \"p\"\nbindings = [{b}]\n"
        ))
    }

    #[test]
    fn binding_defaults_and_fields() {
        let f = with_binding(r#"{ id = 9, vendor = "PHONE_FACTOR" }"#).unwrap();
        assert_eq!(f.phone, PhoneConf::default());
        let b = &f.users[0].bindings[0];
        assert!(b.active && b.is_phone());
        assert_eq!(
            (b.status.as_str(), b.mode.as_str()),
            ("ACTIVE", "VOICE_CALL")
        );
        assert_eq!(b.pin_mode, "STANDARD");
        assert_eq!(b.phones, default_phones());
        assert_eq!(
            (b.behaviour, b.delay_ms, b.expire_s),
            (Behaviour::Approve, 300, 60)
        );
        assert!(!b.primary_fails && !b.out_of_sync);
        assert_eq!(
            (b.code.as_str(), b.second_code.as_str()),
            ("123456", "654321")
        );
        assert_eq!(b.wrong_code_answer, WrongCodeAnswer::LoginFailed);
        let f = with_binding(
            r#"{ id = 9, vendor = "PHONE_FACTOR", status = "BLOCKED", mode = "SMS_TEXT", pin_mode = "OTP_PIN",
                 phones = [{ country_code = 44, phone = "2071234567", extension = "12", type = "PRIMARY" },
                           { country_code = 1, phone = "5125550199", type = "BACKUP" }],
                 behaviour = "wrong_pin", delay_ms = 0, expire_s = 5, primary_fails = true }"#,
        )
        .unwrap();
        let b = &f.users[0].bindings[0];
        assert_eq!(b.phones[1].extension, "");
        assert_eq!(b.behaviour, Behaviour::WrongPin);
        let f = with_binding(
            r#"{ id = 9, vendor = "VERISIGN", code = "111111", second_code = "222222", out_of_sync = true, wrong_code_answer = "auth_failed" }"#,
        )
        .unwrap();
        assert_eq!(
            f.users[0].bindings[0].wrong_code_answer,
            WrongCodeAnswer::AuthFailed
        );
        let f =
            Fixture::parse(&format!("{MIN}\n[phone]\nmax_requests = 2\nblock_s = 10\n")).unwrap();
        assert_eq!(
            (f.phone.max_requests, f.phone.window_s, f.phone.block_s),
            (2, 3600, 10)
        );
    }

    #[test]
    fn binding_validation() {
        for (b, want) in [
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", mode = "VOICE_CALL", pin_mode = "OTP" }"#,
                "pin_mode",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", mode = "SMS_TEXT" }"#,
                "pin_mode",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", mode = "PHONE_APP", pin_mode = "VOICE_PRINT" }"#,
                "pin_mode",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", mode = "FAX" }"#,
                "unknown mode",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", status = "LOCKED" }"#,
                "unknown status",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", phones = [{ country_code = 1, phone = "512-555", type = "PRIMARY" }] }"#,
                "digits",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", phones = [{ country_code = 1, phone = "5125550100", type = "MOBILE" }] }"#,
                "PRIMARY or BACKUP",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", phones = [{ country_code = 1, phone = "5125550100" }] }"#,
                "type",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", behaviour = "hang_up" }"#,
                "behaviour",
            ),
            (
                r#"{ id = 9, vendor = "PHONE_FACTOR", expire_s = 0 }"#,
                "expire_s",
            ),
            (
                r#"{ id = 9, vendor = "TOTP", wrong_code_answer = "nope" }"#,
                "wrong_code_answer",
            ),
            (r#"{ id = 9, vendor = "TOTP", colour = "red" }"#, "colour"),
            (r#"{ id = 9, vendor = " " }"#, "vendor"),
        ] {
            let e = with_binding(b).unwrap_err();
            assert!(e.contains(want), "{b}: {e}");
        }
        for (k, v) in MODES {
            for pm in *v {
                with_binding(&format!(
                    r#"{{ id = 9, vendor = "PHONE_FACTOR", mode = "{k}", pin_mode = "{pm}" }}"#
                ))
                .unwrap();
            }
        }
        assert!(Fixture::parse(&format!("{MIN}\n[phone]\nmax_requests = 0\n")).is_err());
        assert!(Fixture::parse(&format!("{MIN}\n[phone]\nmax_failures = 0\n")).is_err());
        assert!(Fixture::parse(&format!("{MIN}\n[phone]\nmax = 1\n")).is_err());
    }

    #[test]
    fn demo_fixture_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/demo-fixture.toml");
        let f = Fixture::load(&path).unwrap();
        for name in [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
        ] {
            assert!(f.users.iter().any(|u| u.username == name), "{name}");
        }
        let frank = f.users.iter().find(|u| u.username == "frank").unwrap();
        let b = &frank.bindings[0];
        assert!(b.is_phone());
        assert_eq!(b.phones.len(), 2);
        assert_eq!(b.delay_ms, 1500);
        let heidi = f.users.iter().find(|u| u.username == "heidi").unwrap();
        assert!(heidi.bindings[0].out_of_sync);
        // every demo password follows PROTOCOL 3's rules
        for u in &f.users {
            let p = &u.password;
            let special = "_-|@.,?/!~#$%^&*(){}[]\\+=";
            assert!(p.len() > 8 && p.len() < 20, "{}", u.username);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()), "{}", u.username);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()), "{}", u.username);
            assert!(p.chars().any(|c| c.is_ascii_digit()), "{}", u.username);
            assert!(p.chars().any(|c| special.contains(c)), "{}", u.username);
            assert_ne!(p, &u.username);
        }
    }
}
