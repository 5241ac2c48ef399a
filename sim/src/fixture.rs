//! The fixture file (TOML): the service account, the portal's own lockout settings, the
//! security questions and the users. Unknown keys are refused (`deny_unknown_fields`) so a
//! typo in a test fixture fails loudly instead of silently changing behaviour.
//!
//! Structs are plain and open: the phone (PROTOCOL 2.4) and TOTP (2.5) settings of a binding
//! will be added as further optional fields of [`Binding`].

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

/// An external (2FA) binding. Later: phone/TOTP settings (mode, pin_mode, phones, behaviour).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub id: u64,
    #[serde(default = "default_true")]
    pub active: bool,
    /// `vendor.keyName`: `PHONE_FACTOR`, `TOTP`, `VERISIGN` (compared case-insensitively).
    pub vendor: String,
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
                if b.vendor.trim().is_empty() {
                    return Err(format!(
                        "user {:?}: binding {} has no vendor",
                        u.username, b.id
                    ));
                }
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

    #[test]
    fn demo_fixture_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/demo-fixture.toml");
        let f = Fixture::load(&path).unwrap();
        for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
            assert!(f.users.iter().any(|u| u.username == name), "{name}");
        }
    }
}
