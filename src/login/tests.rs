//! The login logic over a scripted conversation, a fake portal and an in-memory store.

use super::*;
use crate::config::Config;
use crate::decision::{Code, MSG_INVALID, MSG_UNAUTHORIZED_IP, MSG_UNAVAILABLE};
use crate::lockout::{Record, StoreError};
use crate::pam::ConvError;
use crate::portal::{Binding, Question};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

// --- a scripted PAM handle -------------------------------------------------------------------

#[derive(Default)]
struct FakePam {
    user: Vec<u8>,
    rhost: Option<String>,
    authtok: Option<Secret>,
    answers: VecDeque<Option<&'static str>>,
    /// (style, text): "off"/"on" prompts, "info", "error".
    seen: Vec<(&'static str, String)>,
    logs: RefCell<Vec<String>>,
    set_authtok: Option<String>,
}

impl FakePam {
    fn new(user: &str, rhost: &str, answers: &[Option<&'static str>]) -> Self {
        FakePam {
            user: user.as_bytes().to_vec(),
            rhost: Some(rhost.into()),
            answers: answers.iter().copied().collect(),
            ..Default::default()
        }
    }
    fn prompts(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(k, _)| *k == "off" || *k == "on")
            .map(|(_, t)| t.clone())
            .collect()
    }
}

impl Pam for FakePam {
    fn user(&mut self) -> Result<RawUser, ConvError> {
        Ok(RawUser(self.user.clone()))
    }
    fn rhost(&self) -> Option<String> {
        self.rhost.clone()
    }
    fn service(&self) -> String {
        "sshd".into()
    }
    fn authtok(&self) -> Option<Secret> {
        self.authtok.clone()
    }
    fn set_authtok(&mut self, token: &Secret) {
        self.set_authtok = Some(token.expose().to_string());
    }
    fn prompt(&mut self, text: &str, echo: bool) -> Result<Secret, ConvError> {
        self.seen
            .push((if echo { "on" } else { "off" }, text.to_string()));
        match self.answers.pop_front() {
            Some(Some(a)) => Ok(Secret::from(a)),
            _ => Err(ConvError::NoAnswer),
        }
    }
    fn info(&mut self, text: &str) {
        self.seen.push(("info", text.to_string()));
    }
    fn error(&mut self, text: &str) {
        self.seen.push(("error", text.to_string()));
    }
    fn log(&self, _p: Priority, line: &str) {
        self.logs.borrow_mut().push(line.to_string());
    }
    fn fail_delay(&mut self, _millis: u64) {}
}

// --- a fake portal, following PROTOCOL.md §2.3's check order ---------------------------------

struct FakeUser {
    user: PortalUser,
    password: &'static str,
    answers: Vec<(u64, &'static str)>,
}

#[derive(Default)]
struct FakePortal {
    users: Vec<FakeUser>,
    down: bool,
    locked: bool,
    calls: Vec<String>,
}

impl FakePortal {
    fn with(users: Vec<FakeUser>) -> Self {
        FakePortal {
            users,
            ..Default::default()
        }
    }
    fn logins(&self) -> usize {
        self.calls.iter().filter(|c| c.starts_with("login")).count()
    }
}

fn questions() -> Vec<Question> {
    vec![
        Question {
            id: 1,
            text: "First pet?".into(),
            display_order: 2,
        },
        Question {
            id: 2,
            text: "Birth town?".into(),
            display_order: 1,
        },
        Question {
            id: 3,
            text: "First car?".into(),
            display_order: 3,
        },
    ]
}

impl PortalApi for FakePortal {
    fn find_user(&mut self, username: &str) -> Result<Option<PortalUser>, Unavailable> {
        self.calls.push(format!("find {username}"));
        if self.down {
            return Err(Unavailable("down".into()));
        }
        Ok(self
            .users
            .iter()
            .find(|u| u.user.username == username)
            .map(|u| u.user.clone()))
    }
    fn questions(&mut self) -> Result<Vec<Question>, Unavailable> {
        self.calls.push("questions".into());
        Ok(questions())
    }
    fn login(
        &mut self,
        username: &str,
        password: &Secret,
        answer: Option<(u64, &Secret)>,
    ) -> Result<Verdict, Unavailable> {
        self.calls
            .push(format!("login {username} q={:?}", answer.map(|(id, _)| id)));
        if self.down {
            return Err(Unavailable("down".into()));
        }
        if self.locked {
            return Ok(Verdict::Locked(
                "Account has been locked for 30 minutes.".into(),
            ));
        }
        let Some(u) = self
            .users
            .iter()
            .find(|u| u.user.username == username && u.password == password.expose())
        else {
            return Ok(Verdict::LoginFailed(
                "Invalid login credentials provided.".into(),
            ));
        };
        let binding = u.user.bindings.iter().find(|b| b.active);
        match answer {
            Some((id, a))
                if !u
                    .answers
                    .iter()
                    .any(|(q, ans)| *q == id && ans.eq_ignore_ascii_case(a.expose().trim())) =>
            {
                return Ok(Verdict::BadAnswer(
                    "Invalid answer provided for security question.".into(),
                ));
            }
            Some(_) => {}
            None if u.user.secondary_login_required && binding.is_none() => {
                return Ok(Verdict::BadAnswer(
                    "Invalid answer provided for security question.".into(),
                ))
            }
            None => {}
        }
        if u.user.status != "ACTIVE" {
            let state = u.user.status.to_ascii_lowercase();
            return Ok(Verdict::UserStatus {
                message: format!("User account is currently {state}."),
                state,
            });
        }
        if let Some(b) = binding {
            return Ok(Verdict::FactorRequired(b.vendor.clone(), "required".into()));
        }
        Ok(Verdict::Token)
    }
}

fn user(name: &str, status: &str, answered: &[u64]) -> PortalUser {
    PortalUser {
        id: 1,
        username: name.into(),
        status: status.into(),
        secondary_login_required: !answered.is_empty(),
        ssl_vpn_allowed: true,
        answered: answered.to_vec(),
        ..Default::default()
    }
}

fn alice() -> FakeUser {
    FakeUser {
        user: user("alice", "ACTIVE", &[1, 2]),
        password: "Pw-alice1",
        answers: vec![(1, "rex"), (2, "paris")],
    }
}

// --- an in-memory store ----------------------------------------------------------------------

#[derive(Default)]
struct MemStore {
    records: RefCell<BTreeMap<Key, Record>>,
    broken: bool,
}

impl Store for MemStore {
    fn tally(
        &self,
        key: &Key,
        now: u64,
        policy: &crate::config::Policy,
    ) -> Result<Tally, StoreError> {
        if self.broken {
            return Err(StoreError("broken".into()));
        }
        Ok(self
            .records
            .borrow()
            .get(key)
            .cloned()
            .unwrap_or_default()
            .tally(now, policy))
    }
    fn record_failure(
        &self,
        key: &Key,
        now: u64,
        policy: &crate::config::Policy,
    ) -> Result<Tally, StoreError> {
        Ok(self
            .records
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .add_failure(now, policy))
    }
    fn clear(&self, key: &Key) -> Result<(), StoreError> {
        self.records.borrow_mut().remove(key);
        Ok(())
    }
    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        Ok(self.records.borrow().keys().cloned().collect())
    }
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

impl MemStore {
    fn failures(&self, key: &Key) -> usize {
        self.records
            .borrow()
            .get(key)
            .map_or(0, |r| r.failures.len())
    }
}

struct FixedWorld(u64);
impl World for FixedWorld {
    fn now(&self) -> u64 {
        self.0
    }
    fn pick(&self, _n: usize) -> usize {
        0
    }
}

fn settings(extra: &str, service: &str) -> Settings {
    let text = format!("[portal]\nurl = \"https://portal.example\"\n{extra}");
    match Config::parse(&text, Path::new("t.toml")) {
        Ok(p) => p.config.for_service(service),
        Err(e) => panic!("{e}"),
    }
}

fn run(
    pam: &mut FakePam,
    s: &Settings,
    opts: Options,
    portal: &mut FakePortal,
    store: &MemStore,
) -> Decision {
    authenticate(pam, s, opts, portal, store, &FixedWorld(10_000)).decision
}

const IP: &str = "203.0.113.9";

fn ipkey() -> Key {
    Key::Ip(IP.into())
}
fn ukey(n: &str) -> Key {
    Key::User(n.as_bytes().to_vec())
}

// --- the tests -------------------------------------------------------------------------------

#[test]
fn password_and_question_success() {
    let s = settings("", "sshd");
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("Paris ")]);
    let mut portal = FakePortal::with(vec![alice()]);
    let store = MemStore::default();
    store
        .record_failure(&ukey("alice"), 9_999, &s.lockout.user)
        .unwrap();
    store
        .record_failure(&ipkey(), 9_999, &s.lockout.ip)
        .unwrap();
    let d = run(&mut pam, &s, Options::default(), &mut portal, &store);
    assert_eq!(d.code, Code::PAM_SUCCESS, "{d:?}");
    // QuestionChoice::Random with pick()=0 takes the lowest displayOrder among answered.
    assert_eq!(
        pam.prompts(),
        vec!["Password: ".to_string(), "Birth town? ".into()]
    );
    assert_eq!(pam.set_authtok.as_deref(), Some("Pw-alice1"));
    assert_eq!(
        store.failures(&ukey("alice")),
        0,
        "success clears the username"
    );
    assert_eq!(store.failures(&ipkey()), 1, "but not the address");
    assert_eq!(portal.logins(), 1);
}

#[test]
fn wrong_password_unknown_user_wrong_answer_and_ip_refusal_look_the_same() {
    let s = settings(
        "[access.users.alice]\nallow = [\"198.51.100.0/24\"]\n",
        "sshd",
    );
    let cases: Vec<(&str, Option<&'static str>, Option<&'static str>, Reason)> = vec![
        ("alice", Some("nope"), Some("paris"), Reason::BadPassword),
        (
            "nobody",
            Some("Pw-alice1"),
            Some("paris"),
            Reason::UserUnknown,
        ),
        ("alice", Some("Pw-alice1"), Some("wrong"), Reason::BadAnswer),
    ];
    let mut seen = Vec::new();
    for (i, (name, pw, ans, reason)) in cases.into_iter().enumerate() {
        // The per-user IP policy applies only in its own case, below.
        let mut s = s.clone();
        s.access.users.clear();
        let mut pam = FakePam::new(name, IP, &[pw, ans]);
        let mut portal = FakePortal::with(vec![alice()]);
        let d = run(
            &mut pam,
            &s,
            Options::default(),
            &mut portal,
            &MemStore::default(),
        );
        assert_eq!(d.reason, reason, "case {i}");
        assert!(d.counted, "case {i}");
        seen.push((
            d.code,
            d.message.clone(),
            pam.prompts().len(),
            pam.seen.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        ));
    }
    // Per-user IP refusal: same prompts, no password sent.
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
    let mut portal = FakePortal::with(vec![alice()]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut portal,
        &MemStore::default(),
    );
    assert_eq!(d.reason, Reason::IpNotAllowed);
    assert_eq!(portal.logins(), 0, "the password is not sent");
    seen.push((
        d.code,
        d.message.clone(),
        pam.prompts().len(),
        pam.seen.iter().map(|(k, _)| *k).collect(),
    ));
    for s in &seen {
        assert_eq!(s, &seen[0]);
    }
    assert_eq!(seen[0].0, Code::PAM_AUTH_ERR);
    assert_eq!(seen[0].1.as_deref(), Some(MSG_INVALID));
    assert_eq!(seen[0].2, 2, "password and question prompts in every case");
}

#[test]
fn global_deny_refuses_before_any_prompt() {
    let s = settings("[access]\ndeny = [\"203.0.113.0/24\"]\n", "sshd");
    let mut pam = FakePam::new("alice", IP, &[]);
    let mut portal = FakePortal::with(vec![alice()]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut portal,
        &MemStore::default(),
    );
    assert_eq!(
        (d.code, d.message.as_deref()),
        (Code::PAM_PERM_DENIED, Some(MSG_UNAUTHORIZED_IP))
    );
    assert!(pam.seen.is_empty());
    assert!(portal.calls.is_empty());
}

#[test]
fn lock_after_threshold_then_refused_without_prompt_or_call() {
    let s = settings(
        "[lockout]\nuser = { max_failures = 3, lock_s = 600 }\n",
        "sshd",
    );
    let store = MemStore::default();
    let mut last = None;
    for _ in 0..3 {
        let mut pam = FakePam::new("alice", IP, &[Some("bad"), Some("x")]);
        let mut portal = FakePortal::with(vec![alice()]);
        last = Some(run(&mut pam, &s, Options::default(), &mut portal, &store));
    }
    let d = last.unwrap();
    assert_eq!(
        d.code,
        Code::PAM_MAXTRIES,
        "the failure that triggers the lock answers as a lock"
    );
    assert_eq!(
        d.message.as_deref(),
        Some("Account has been locked for 10 minutes.")
    );
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
    let mut portal = FakePortal::with(vec![alice()]);
    let d = run(&mut pam, &s, Options::default(), &mut portal, &store);
    assert_eq!((d.code, d.reason), (Code::PAM_MAXTRIES, Reason::UserLocked));
    assert!(pam.seen.is_empty() && portal.calls.is_empty());
}

#[test]
fn address_counter_is_shared_across_usernames() {
    let s = settings("[lockout]\nip = { max_failures = 3 }\n", "sshd");
    let store = MemStore::default();
    for name in ["u1", "u2", "u3"] {
        let mut pam = FakePam::new(name, IP, &[Some("bad"), Some("x")]);
        run(
            &mut pam,
            &s,
            Options::default(),
            &mut FakePortal::default(),
            &store,
        );
    }
    let mut pam = FakePam::new("u4", IP, &[Some("bad")]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut FakePortal::default(),
        &store,
    );
    assert_eq!((d.code, d.reason), (Code::PAM_MAXTRIES, Reason::IpLocked));
}

#[test]
fn null_answer_is_a_conversation_error_not_counted() {
    let s = settings("", "sshd");
    let store = MemStore::default();
    for answers in [vec![None], vec![Some("Pw-alice1"), None]] {
        let mut pam = FakePam::new("alice", IP, &answers);
        let d = run(
            &mut pam,
            &s,
            Options::default(),
            &mut FakePortal::with(vec![alice()]),
            &store,
        );
        assert_eq!(d.code, Code::PAM_CONV_ERR);
        assert!(!d.counted);
    }
    assert!(store.keys().unwrap().is_empty());
}

#[test]
fn empty_and_overlong_passwords_fail_without_a_call() {
    let s = settings("", "sshd");
    let long: &'static str = Box::leak("x".repeat(513).into_boxed_str());
    for pw in ["", long] {
        let store = MemStore::default();
        let mut pam = FakePam::new("alice", IP, &[Some(pw)]);
        let mut portal = FakePortal::with(vec![alice()]);
        let d = run(&mut pam, &s, Options::default(), &mut portal, &store);
        assert_eq!(d.code, Code::PAM_AUTH_ERR);
        assert!(d.counted && portal.calls.is_empty());
        assert_eq!(store.failures(&ukey("alice")), 1);
    }
}

#[test]
fn first_pass_options() {
    let s = settings("", "sshd");
    let use_first = Options {
        use_first_pass: true,
        ..Default::default()
    };
    let try_first = Options {
        try_first_pass: true,
        ..Default::default()
    };
    // use_first_pass without a token: refused, no prompt, no call.
    let mut pam = FakePam::new("alice", IP, &[]);
    let mut portal = FakePortal::with(vec![alice()]);
    let d = run(&mut pam, &s, use_first, &mut portal, &MemStore::default());
    assert_eq!(
        (d.code, d.reason),
        (Code::PAM_AUTH_ERR, Reason::NoFirstPass)
    );
    assert!(pam.seen.is_empty() && portal.calls.is_empty());
    // With a token: no password prompt, and PAM_AUTHTOK is not set again.
    for opts in [use_first, try_first] {
        let mut pam = FakePam::new("alice", IP, &[Some("paris")]);
        pam.authtok = Some(Secret::from("Pw-alice1"));
        let d = run(
            &mut pam,
            &s,
            opts,
            &mut FakePortal::with(vec![alice()]),
            &MemStore::default(),
        );
        assert_eq!(d.code, Code::PAM_SUCCESS);
        assert_eq!(pam.prompts(), vec!["Birth town? ".to_string()]);
        assert_eq!(pam.set_authtok, None);
    }
    // try_first_pass without a token prompts.
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
    let d = run(
        &mut pam,
        &s,
        try_first,
        &mut FakePortal::with(vec![alice()]),
        &MemStore::default(),
    );
    assert_eq!(d.code, Code::PAM_SUCCESS);
    assert_eq!(pam.prompts().len(), 2);
}

#[test]
fn outage_is_not_counted_and_follows_on_unavailable() {
    for (extra, code, msg) in [
        ("", Code::PAM_AUTHINFO_UNAVAIL, Some(MSG_UNAVAILABLE)),
        ("on_unavailable = \"ignore\"\n", Code::PAM_IGNORE, None),
    ] {
        let s = settings(extra, "sshd");
        let store = MemStore::default();
        let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
        let mut portal = FakePortal {
            down: true,
            ..FakePortal::with(vec![alice()])
        };
        let d = run(&mut pam, &s, Options::default(), &mut portal, &store);
        assert_eq!((d.code, d.message.as_deref()), (code, msg));
        assert!(store.keys().unwrap().is_empty());
    }
}

#[test]
fn account_states() {
    for (status, service, code, reason) in [
        ("DISABLED", "sshd", Code::PAM_AUTH_ERR, Reason::AccountState),
        ("VPN_ONLY", "sshd", Code::PAM_AUTH_ERR, Reason::AccountState),
        ("VPN_ONLY", "openvpn", Code::PAM_SUCCESS, Reason::Ok),
        (
            "CANCEL_PENDING",
            "openvpn",
            Code::PAM_AUTH_ERR,
            Reason::AccountState,
        ),
    ] {
        let s = settings("", service);
        let u = FakeUser {
            user: user("bob", status, &[1]),
            password: "Pw-bob-12",
            answers: vec![(1, "rex")],
        };
        let store = MemStore::default();
        let mut pam = FakePam::new("bob", IP, &[Some("Pw-bob-12"), Some("rex")]);
        let d = run(
            &mut pam,
            &s,
            Options::default(),
            &mut FakePortal::with(vec![u]),
            &store,
        );
        assert_eq!((d.code, d.reason), (code, reason), "{status} on {service}");
        assert!(!d.counted, "a refused state is not counted");
    }
}

#[test]
fn no_second_factor_gets_a_decoy_and_is_refused_uncounted() {
    let s = settings("", "sshd");
    let u = FakeUser {
        user: user("dave", "ACTIVE", &[]),
        password: "Pw-dave-12",
        answers: vec![],
    };
    let mut pam = FakePam::new("dave", IP, &[Some("Pw-dave-12"), Some("whatever")]);
    let mut portal = FakePortal::with(vec![u]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut portal,
        &MemStore::default(),
    );
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_AUTH_ERR, Reason::NoSecondFactor, false)
    );
    assert_eq!(
        pam.prompts().len(),
        2,
        "a decoy question, like an unknown user"
    );
    // Password only when not required.
    let s = settings("[auth]\nrequire_second_factor = false\n", "sshd");
    let u = FakeUser {
        user: user("dave", "ACTIVE", &[]),
        password: "Pw-dave-12",
        answers: vec![],
    };
    let mut pam = FakePam::new("dave", IP, &[Some("Pw-dave-12")]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut FakePortal::with(vec![u]),
        &MemStore::default(),
    );
    assert_eq!(d.code, Code::PAM_SUCCESS);
}

#[test]
fn phone_binding_is_refused_for_now_after_the_password() {
    let s = settings("", "sshd");
    let mut u = user("frank", "ACTIVE", &[]);
    u.bindings = vec![Binding {
        id: 9,
        active: true,
        vendor: Vendor::Phone,
    }];
    let fu = FakeUser {
        user: u,
        password: "Pw-frank-1",
        answers: vec![],
    };
    let mut pam = FakePam::new("frank", IP, &[Some("Pw-frank-1")]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut FakePortal::with(vec![fu]),
        &MemStore::default(),
    );
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_AUTH_ERR, Reason::FactorUnsupported, false)
    );
    assert_eq!(d.factor, Factor::Phone);
    assert_eq!(pam.prompts(), vec!["Password: ".to_string()]);
}

#[test]
fn portal_lock_and_portal_ip_refusal() {
    let s = settings("", "sshd");
    let mut portal = FakePortal {
        locked: true,
        ..FakePortal::with(vec![alice()])
    };
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut portal,
        &MemStore::default(),
    );
    assert_eq!(
        (d.code, d.message.as_deref()),
        (
            Code::PAM_MAXTRIES,
            Some("Account has been locked for 30 minutes.")
        )
    );
    assert!(!d.counted);
}

#[test]
fn store_failure_is_a_system_error() {
    let s = settings("", "sshd");
    let store = MemStore {
        broken: true,
        ..Default::default()
    };
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut FakePortal::with(vec![alice()]),
        &store,
    );
    assert_eq!(d.code, Code::PAM_SYSTEM_ERR);
}

#[test]
fn hostile_usernames_never_reach_the_portal() {
    let s = settings("", "sshd");
    for name in ["a\nb", "", "x\u{7f}"] {
        let mut pam = FakePam::new(name, IP, &[Some("pw"), Some("a")]);
        let mut portal = FakePortal::with(vec![alice()]);
        let d = run(
            &mut pam,
            &s,
            Options::default(),
            &mut portal,
            &MemStore::default(),
        );
        assert_eq!(d.code, Code::PAM_AUTH_ERR);
        assert!(
            portal.calls.iter().all(|c| c == "questions"),
            "{:?}",
            portal.calls
        );
        assert_eq!(pam.prompts().len(), 2, "same prompts as anyone");
    }
}

#[test]
fn ipv6_addresses_group_by_prefix() {
    let s = settings(
        "[lockout]\nip = { max_failures = 2, ipv6_prefix = 64 }\n",
        "sshd",
    );
    let store = MemStore::default();
    for rhost in ["2001:db8:1:2::1", "[2001:db8:1:2:ffff::9]"] {
        let mut pam = FakePam::new("zed", rhost, &[Some("bad"), Some("x")]);
        run(
            &mut pam,
            &s,
            Options::default(),
            &mut FakePortal::default(),
            &store,
        );
    }
    let mut pam = FakePam::new("zed2", "2001:db8:1:2::77", &[]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut FakePortal::default(),
        &store,
    );
    assert_eq!(d.reason, Reason::IpLocked);
    let mut pam = FakePam::new("zed2", "2001:db8:1:3::77", &[Some("bad"), Some("x")]);
    let d = run(
        &mut pam,
        &s,
        Options::default(),
        &mut FakePortal::default(),
        &store,
    );
    assert_eq!(d.reason, Reason::UserUnknown, "another /64 is not locked");
}
