//! The login logic over a scripted conversation, a fake portal and an in-memory store.

use super::*;
use crate::config::Config;
use crate::decision::{Code, MSG_INVALID, MSG_UNAUTHORIZED_IP, MSG_UNAVAILABLE};
use crate::lockout::{Record, StoreError};
use crate::pam::ConvError;
use crate::portal::{Binding, Checked, Phone, Question, Requested};
use std::cell::Cell;
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
    /// TOTP / VeriSign: the valid code, and the second code when out of sync.
    code: Option<&'static str>,
    second_code: Option<&'static str>,
}

/// A scripted phone binding.
struct FakePhone {
    status: &'static str,
    mode: (&'static str, &'static str),
    phones: Vec<Phone>,
    primary_refused: bool,
    limit: bool,
    /// Answers to successive checks; once empty, "awaiting".
    checks: VecDeque<Checked>,
    requests: Vec<String>,
    polls: usize,
}

fn phone(number: &str, backup: bool) -> Phone {
    Phone {
        raw: serde_json::json!({"countryCode": 1, "phone": number, "phoneType": if backup { "BACKUP" } else { "PRIMARY" }}),
        country_code: "1".into(),
        number: number.into(),
        backup,
    }
}

impl FakePhone {
    fn answering(checks: Vec<Checked>) -> Self {
        FakePhone {
            status: "ACTIVE",
            mode: ("VOICE_CALL", "STANDARD"),
            phones: vec![phone("5125550100", false), phone("5125550199", true)],
            primary_refused: false,
            limit: false,
            checks: checks.into(),
            requests: Vec::new(),
            polls: 0,
        }
    }
}

#[derive(Default)]
struct FakePortal {
    users: Vec<FakeUser>,
    down: bool,
    locked: bool,
    calls: Vec<String>,
    phone: Option<FakePhone>,
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
    fn externals(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| c.starts_with("external"))
            .count()
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
    fn set_deadline(&mut self, _deadline: std::time::Instant) {}
    fn binding_status(&mut self, _binding: u64) -> Result<String, Unavailable> {
        self.calls.push("status".into());
        Ok(self
            .phone
            .as_ref()
            .map_or("ACTIVE", |p| p.status)
            .to_string())
    }
    fn authentication_mode(&mut self, _binding: u64) -> Result<(String, String), Unavailable> {
        let (m, p) = self
            .phone
            .as_ref()
            .map_or(("VOICE_CALL", "STANDARD"), |p| p.mode);
        Ok((m.into(), p.into()))
    }
    fn phones(&mut self, _binding: u64) -> Result<Vec<Phone>, Unavailable> {
        Ok(self
            .phone
            .as_ref()
            .map(|p| p.phones.clone())
            .unwrap_or_default())
    }
    fn request_validation(
        &mut self,
        _binding: u64,
        phone: &Phone,
    ) -> Result<Requested, Unavailable> {
        self.calls.push(format!("request {}", phone.number));
        let Some(p) = self.phone.as_mut() else {
            return Err(Unavailable("no phone".into()));
        };
        p.requests.push(phone.number.clone());
        if p.limit {
            return Ok(Requested::Limit(
                "You have exceeded the maximum phone validation requests.".into(),
            ));
        }
        if p.primary_refused && !phone.backup {
            return Ok(Requested::Refused(
                "Unable to reach the phone number.".into(),
            ));
        }
        Ok(Requested::Token(Secret::from("tok")))
    }
    fn check_validation(&mut self, _binding: u64, token: &Secret) -> Result<Checked, Unavailable> {
        assert_eq!(token.expose(), "tok");
        let Some(p) = self.phone.as_mut() else {
            return Err(Unavailable("no phone".into()));
        };
        p.polls += 1;
        Ok(p.checks.pop_front().unwrap_or(Checked::Awaiting))
    }
    fn external_auth(
        &mut self,
        _vendor: &Vendor,
        username: &str,
        password: &Secret,
        code: &Secret,
        second: Option<&Secret>,
    ) -> Result<Verdict, Unavailable> {
        self.calls
            .push(format!("external {username} second={}", second.is_some()));
        let Some(u) = self
            .users
            .iter()
            .find(|u| u.user.username == username && u.password == password.expose())
        else {
            return Ok(Verdict::LoginFailed(
                "Invalid login credentials provided.".into(),
            ));
        };
        if u.code != Some(code.expose()) {
            return Ok(Verdict::LoginFailed(
                "Invalid login credentials provided.".into(),
            ));
        }
        match (u.second_code, second) {
            (Some(_), None) => Ok(Verdict::SecondCodeRequired("out of synchronization".into())),
            (Some(want), Some(got)) if want != got.expose() => Ok(Verdict::LoginFailed(
                "Invalid login credentials provided.".into(),
            )),
            _ => Ok(Verdict::Token),
        }
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
        code: None,
        second_code: None,
    }
}

fn bound(name: &'static str, vendor: Vendor, status: &str) -> FakeUser {
    let mut u = user(name, status, &[]);
    u.bindings = vec![Binding {
        id: 9,
        active: true,
        vendor,
    }];
    FakeUser {
        user: u,
        password: "Pw-bound-1",
        answers: vec![],
        code: None,
        second_code: None,
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

/// Fixed wall-clock time; a monotonic clock that only `sleep` moves.
struct FakeWorld {
    ms: Cell<u64>,
}
impl World for FakeWorld {
    fn now(&self) -> u64 {
        10_000 + self.ms.get() / 1000
    }
    fn millis(&self) -> u64 {
        self.ms.get()
    }
    fn sleep(&self, millis: u64) {
        self.ms.set(self.ms.get() + millis.max(1));
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

fn run_with(
    pam: &mut FakePam,
    s: &Settings,
    opts: Options,
    portal: &mut FakePortal,
    store: &MemStore,
) -> Decision {
    authenticate(
        pam,
        s,
        opts,
        portal,
        store,
        &FakeWorld { ms: Cell::new(0) },
        None,
    )
    .decision
}

/// One login with the default module arguments.
fn run(pam: &mut FakePam, s: &Settings, portal: &mut FakePortal, store: &MemStore) -> Decision {
    run_with(pam, s, Options::default(), portal, store)
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
    let d = run(&mut pam, &s, &mut portal, &store);
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
        let d = run(&mut pam, &s, &mut portal, &MemStore::default());
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
    let d = run(&mut pam, &s, &mut portal, &MemStore::default());
    assert_eq!(d.reason, Reason::IpNotAllowed);
    // One call, for timing parity, under another name and without the password.
    assert_eq!(portal.logins(), 1);
    assert!(
        portal.calls.iter().all(|c| !c.starts_with("login alice")),
        "{:?}",
        portal.calls
    );
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
    let d = run(&mut pam, &s, &mut portal, &MemStore::default());
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
        last = Some(run(&mut pam, &s, &mut portal, &store));
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
    let d = run(&mut pam, &s, &mut portal, &store);
    assert_eq!((d.code, d.reason), (Code::PAM_MAXTRIES, Reason::UserLocked));
    assert!(pam.seen.is_empty() && portal.calls.is_empty());
}

/// The user whose locks the front has just checked (src/front.rs): those records are not read
/// again, for that user only; the global lists, which cost no I/O, still are.
#[test]
fn locks_the_front_checked_are_not_read_again_for_that_user_only() {
    let s = settings("[access]\ndeny = [\"198.51.100.0/24\"]\n", "sshd");
    let login = |user: &str, rhost: &str, checked: Option<&str>, store: &MemStore| {
        let mut pam = FakePam::new(user, rhost, &[Some("bad"), Some("x")]);
        let mut portal = FakePortal::with(vec![alice()]);
        let front = checked.map(|u| FromFront {
            user: RawUser(u.as_bytes().to_vec()),
            locks_checked: true,
            password: None,
        });
        let world = FakeWorld { ms: Cell::new(0) };
        let opts = Options::default();
        let d = authenticate(&mut pam, &s, opts, &mut portal, store, &world, front);
        (d.decision, pam.prompts().len())
    };
    // A store whose records cannot be read: a check that reads them refuses.
    let unreadable = MemStore {
        broken: true,
        ..Default::default()
    };
    let (d, prompts) = login("alice", IP, None, &unreadable);
    assert_eq!((d.reason, prompts), (Reason::StoreError, 0));
    let (d, prompts) = login("alice", IP, Some("bob"), &unreadable);
    assert_eq!(
        (d.reason, prompts),
        (Reason::StoreError, 0),
        "another user's check"
    );
    let (d, prompts) = login("alice", IP, Some("alice"), &unreadable);
    assert_eq!(
        (d.reason, prompts),
        (Reason::BadPassword, 2),
        "not read again"
    );
    assert_eq!(
        unreadable.failures(&ukey("alice")),
        1,
        "and the failure counted"
    );
    // The global lists are checked all the same.
    let (d, prompts) = login("alice", "198.51.100.7", Some("alice"), &unreadable);
    assert_eq!((d.reason, prompts), (Reason::IpDenied, 0));
    // A lock that began after the front's check answers as a lock when the failure is counted.
    let store = MemStore::default();
    let until = Record {
        failures: vec![],
        locked_until: 20_000,
    };
    store.records.borrow_mut().insert(ukey("alice"), until);
    let (d, _) = login("alice", IP, Some("alice"), &store);
    assert_eq!((d.code, d.locked), (Code::PAM_MAXTRIES, Some("user")));
    let (d, prompts) = login("alice", IP, None, &store);
    assert_eq!((d.reason, prompts), (Reason::UserLocked, 0));
}

/// The password the front prompted for (src/front.rs) is the one used, not asked again, and
/// set as `PAM_AUTHTOK` on success as if this login had asked; for its own user only. Without
/// the front's lock checks, the locks are still checked first and the password not used.
#[test]
fn the_password_the_front_asked_for_is_not_asked_again() {
    let s = settings("", "sshd");
    let login = |for_user: &str, locks_checked: bool, answers, store: &MemStore| {
        let mut pam = FakePam::new("alice", IP, answers);
        let mut portal = FakePortal::with(vec![alice()]);
        let front = FromFront {
            user: RawUser(for_user.as_bytes().to_vec()),
            locks_checked,
            password: Some(Secret::from("Pw-alice1")),
        };
        let world = FakeWorld { ms: Cell::new(0) };
        let out = authenticate(
            &mut pam,
            &s,
            Options::default(),
            &mut portal,
            store,
            &world,
            Some(front),
        );
        (
            out.decision,
            pam.prompts(),
            pam.set_authtok,
            portal.logins(),
        )
    };
    let store = MemStore::default();
    let (d, prompts, authtok, logins) = login("alice", true, &[Some("Paris")], &store);
    assert_eq!(d.code, Code::PAM_SUCCESS, "{d:?}");
    assert_eq!(prompts, ["Birth town? "], "only the question is asked here");
    assert_eq!(authtok.as_deref(), Some("Pw-alice1"));
    assert_eq!(logins, 1);
    // Handed over for another user: not used; this login asks for its own.
    let (d, prompts, _, _) = login("bob", true, &[Some("asked-here"), Some("Paris")], &store);
    assert_eq!(d.reason, Reason::BadPassword, "{d:?}");
    assert_eq!(prompts, ["Password: ", "Birth town? "]);
    // Without the front's lock checks, a lock refuses before the password is used.
    store.records.borrow_mut().insert(
        ukey("alice"),
        Record {
            failures: vec![],
            locked_until: 20_000,
        },
    );
    let (d, prompts, authtok, logins) = login("alice", false, &[Some("Paris")], &store);
    assert_eq!((d.reason, logins), (Reason::UserLocked, 0), "{d:?}");
    assert!(prompts.is_empty() && authtok.is_none());
}

#[test]
fn address_counter_is_shared_across_usernames() {
    let s = settings("[lockout]\nip = { max_failures = 3 }\n", "sshd");
    let store = MemStore::default();
    for name in ["u1", "u2", "u3"] {
        let mut pam = FakePam::new(name, IP, &[Some("bad"), Some("x")]);
        run(&mut pam, &s, &mut FakePortal::default(), &store);
    }
    let mut pam = FakePam::new("u4", IP, &[Some("bad")]);
    let d = run(&mut pam, &s, &mut FakePortal::default(), &store);
    assert_eq!((d.code, d.reason), (Code::PAM_MAXTRIES, Reason::IpLocked));
}

#[test]
fn null_answer_is_a_conversation_error_not_counted() {
    let s = settings("", "sshd");
    let store = MemStore::default();
    for answers in [vec![None], vec![Some("Pw-alice1"), None]] {
        let mut pam = FakePam::new("alice", IP, &answers);
        let d = run(&mut pam, &s, &mut FakePortal::with(vec![alice()]), &store);
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
        let d = run(&mut pam, &s, &mut portal, &store);
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
    let d = run_with(&mut pam, &s, use_first, &mut portal, &MemStore::default());
    assert_eq!(
        (d.code, d.reason),
        (Code::PAM_AUTH_ERR, Reason::NoFirstPass)
    );
    assert!(pam.seen.is_empty() && portal.calls.is_empty());
    // With a token: no password prompt, and PAM_AUTHTOK is not set again.
    for opts in [use_first, try_first] {
        let mut pam = FakePam::new("alice", IP, &[Some("paris")]);
        pam.authtok = Some(Secret::from("Pw-alice1"));
        let d = run_with(
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
    let d = run_with(
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
        let d = run(&mut pam, &s, &mut portal, &store);
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
            code: None,
            second_code: None,
        };
        let store = MemStore::default();
        let mut pam = FakePam::new("bob", IP, &[Some("Pw-bob-12"), Some("rex")]);
        let d = run(&mut pam, &s, &mut FakePortal::with(vec![u]), &store);
        assert_eq!((d.code, d.reason), (code, reason), "{status} on {service}");
        assert!(!d.counted, "a refused state is not counted");
    }
}

#[test]
fn no_second_factor_gets_a_decoy_and_is_refused_uncounted() {
    let s = settings("", "sshd");
    let dave = || FakeUser {
        user: user("dave", "ACTIVE", &[]),
        password: "Pw-dave-12",
        answers: vec![],
        code: None,
        second_code: None,
    };
    let mut pam = FakePam::new("dave", IP, &[Some("Pw-dave-12"), Some("whatever")]);
    let mut portal = FakePortal::with(vec![dave()]);
    let d = run(&mut pam, &s, &mut portal, &MemStore::default());
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
    let mut pam = FakePam::new("dave", IP, &[Some("Pw-dave-12")]);
    let d = run(
        &mut pam,
        &s,
        &mut FakePortal::with(vec![dave()]),
        &MemStore::default(),
    );
    assert_eq!(d.code, Code::PAM_SUCCESS);
}

#[test]
fn portal_lock_and_portal_ip_refusal() {
    let s = settings("", "sshd");
    let mut portal = FakePortal {
        locked: true,
        ..FakePortal::with(vec![alice()])
    };
    let mut pam = FakePam::new("alice", IP, &[Some("Pw-alice1"), Some("paris")]);
    let d = run(&mut pam, &s, &mut portal, &MemStore::default());
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
    let d = run(&mut pam, &s, &mut FakePortal::with(vec![alice()]), &store);
    assert_eq!(d.code, Code::PAM_SYSTEM_ERR);
}

#[test]
fn hostile_usernames_never_reach_the_portal() {
    let s = settings("", "sshd");
    for name in ["a\nb", "", "x\u{7f}"] {
        let mut pam = FakePam::new(name, IP, &[Some("pw"), Some("a")]);
        let mut portal = FakePortal::with(vec![alice()]);
        let d = run(&mut pam, &s, &mut portal, &MemStore::default());
        assert_eq!(d.code, Code::PAM_AUTH_ERR);
        // No look-up; only the question texts and the timing decoy (another name).
        assert!(
            portal
                .calls
                .iter()
                .all(|c| c == "questions" || c.starts_with("login pam_portal decoy")),
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
        run(&mut pam, &s, &mut FakePortal::default(), &store);
    }
    let mut pam = FakePam::new("zed2", "2001:db8:1:2::77", &[]);
    let d = run(&mut pam, &s, &mut FakePortal::default(), &store);
    assert_eq!(d.reason, Reason::IpLocked);
    let mut pam = FakePam::new("zed2", "2001:db8:1:3::77", &[Some("bad"), Some("x")]);
    let d = run(&mut pam, &s, &mut FakePortal::default(), &store);
    assert_eq!(d.reason, Reason::UserUnknown, "another /64 is not locked");
}

// --- the phone binding and codes ---------------------------------------------------------------

fn phone_run(
    s: &Settings,
    fp: FakePhone,
    store: &MemStore,
    status: &str,
) -> (Decision, FakePam, FakePortal, u64) {
    let mut pam = FakePam::new("frank", IP, &[Some("Pw-bound-1"), Some("")]);
    let mut portal = FakePortal {
        phone: Some(fp),
        ..FakePortal::with(vec![bound("frank", Vendor::Phone, status)])
    };
    let world = FakeWorld { ms: Cell::new(0) };
    let d = authenticate(
        &mut pam,
        s,
        Options::default(),
        &mut portal,
        store,
        &world,
        None,
    )
    .decision;
    (d, pam, portal, world.millis())
}

fn requests(p: &FakePortal) -> usize {
    p.phone.as_ref().map_or(0, |p| p.requests.len())
}

#[test]
fn phone_approval_after_polling_calls_once() {
    let s = settings("[auth]\nphone_poll_ms = 500\n", "sshd");
    let fp = FakePhone::answering(vec![
        Checked::Awaiting,
        Checked::Awaiting,
        Checked::Approved,
    ]);
    let (d, pam, portal, elapsed) = phone_run(&s, fp, &MemStore::default(), "ACTIVE");
    assert_eq!(
        (d.code, d.factor),
        (Code::PAM_SUCCESS, Factor::Phone),
        "{d:?}"
    );
    assert_eq!(requests(&portal), 1, "one call per login, not per poll");
    assert_eq!(portal.phone.as_ref().unwrap().polls, 3);
    assert_eq!(elapsed, 1000);
    assert_eq!(
        pam.prompts(),
        vec!["Password: ".to_string()],
        "no question, no confirm prompt by default"
    );
    assert!(pam.seen.contains(&(
        "info",
        "Calling +1 ***-***-0100: answer and press #.".to_string()
    )));
    assert!(
        !pam.seen.iter().any(|(_, t)| t.contains("5125550100")),
        "the number is masked"
    );
}

#[test]
fn phone_denial_is_a_counted_phone_failure() {
    let s = settings("", "sshd");
    let store = MemStore::default();
    let fp = FakePhone::answering(vec![Checked::Failed("Phone validation failed.".into())]);
    let (d, _, _, _) = phone_run(&s, fp, &store, "ACTIVE");
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_AUTH_ERR, Reason::PhoneDenied, true)
    );
    assert_eq!(store.failures(&Key::Phone(b"frank".to_vec())), 1);
    assert_eq!(store.failures(&ukey("frank")), 1);
    assert_eq!(store.failures(&ipkey()), 1);
}

#[test]
fn ignored_call_times_out_within_phone_timeout() {
    let s = settings(
        "[auth]\nphone_timeout_s = 20\nphone_poll_ms = 3000\n",
        "sshd",
    );
    let (d, _, portal, elapsed) = phone_run(
        &s,
        FakePhone::answering(vec![]),
        &MemStore::default(),
        "ACTIVE",
    );
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_AUTH_ERR, Reason::PhoneTimeout, true)
    );
    assert_eq!(elapsed, 20_000, "the last sleep is cut to the deadline");
    assert_eq!(requests(&portal), 1);
}

#[test]
fn blocked_binding_is_refused_without_a_call() {
    let s = settings("", "sshd");
    let fp = FakePhone {
        status: "BLOCKED",
        ..FakePhone::answering(vec![])
    };
    let (d, _, portal, _) = phone_run(&s, fp, &MemStore::default(), "ACTIVE");
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_AUTH_ERR, Reason::PhoneBlocked, false)
    );
    assert_eq!(requests(&portal), 0);
}

#[test]
fn five_phone_failures_lock_the_phone_factor() {
    let s = settings(
        "[lockout]\nuser = { max_failures = 100 }\nip = { max_failures = 100 }\n",
        "sshd",
    );
    let store = MemStore::default();
    let mut last = None;
    for _ in 0..5 {
        let fp = FakePhone::answering(vec![Checked::Failed("Phone validation failed.".into())]);
        last = Some(phone_run(&s, fp, &store, "ACTIVE").0);
    }
    let d = last.unwrap();
    assert_eq!((d.code, d.locked), (Code::PAM_MAXTRIES, Some("phone")));
    assert_eq!(
        d.message.as_deref(),
        Some("Account has been locked for 60 minutes.")
    );
    let (d, pam, portal, _) = phone_run(
        &s,
        FakePhone::answering(vec![Checked::Approved]),
        &store,
        "ACTIVE",
    );
    assert_eq!(
        (d.code, d.reason),
        (Code::PAM_MAXTRIES, Reason::PhoneLocked)
    );
    assert!(
        portal.calls.is_empty() && pam.seen.is_empty(),
        "no prompt, no call"
    );
}

#[test]
fn backup_phone_when_the_primary_request_fails() {
    let s = settings("", "sshd");
    let fp = FakePhone {
        primary_refused: true,
        ..FakePhone::answering(vec![Checked::Approved])
    };
    let (d, pam, portal, _) = phone_run(&s, fp, &MemStore::default(), "ACTIVE");
    assert_eq!(d.code, Code::PAM_SUCCESS);
    assert_eq!(
        portal.phone.as_ref().unwrap().requests,
        vec!["5125550100".to_string(), "5125550199".into()]
    );
    assert!(pam
        .seen
        .iter()
        .any(|(k, t)| *k == "info" && t.contains("0199")));
}

#[test]
fn request_limit_is_a_lock_not_an_outage() {
    let s = settings("", "sshd");
    let fp = FakePhone {
        limit: true,
        ..FakePhone::answering(vec![])
    };
    let (d, _, _, _) = phone_run(&s, fp, &MemStore::default(), "ACTIVE");
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_MAXTRIES, Reason::PhoneLimit, false)
    );
}

#[test]
fn info_off_and_confirm_prompt() {
    let s = settings("[prompts]\ninfo = false\nphone_confirm = true\n", "sshd");
    let (d, pam, _, _) = phone_run(
        &s,
        FakePhone::answering(vec![Checked::Approved]),
        &MemStore::default(),
        "ACTIVE",
    );
    assert_eq!(d.code, Code::PAM_SUCCESS);
    assert!(!pam.seen.iter().any(|(k, _)| *k == "info"));
    assert_eq!(
        pam.prompts(),
        vec![
            "Password: ".to_string(),
            super::phone::CONFIRM_PROMPT.into()
        ]
    );
}

#[test]
fn vpn_only_phone_user_on_a_vpn_service() {
    let s = settings("", "openvpn");
    let (d, _, portal, _) = phone_run(
        &s,
        FakePhone::answering(vec![Checked::Approved]),
        &MemStore::default(),
        "VPN_ONLY",
    );
    assert_eq!(d.code, Code::PAM_SUCCESS, "{d:?}");
    assert_eq!(requests(&portal), 1);
    let s = settings("", "sshd");
    let (d, _, portal, _) = phone_run(
        &s,
        FakePhone::answering(vec![Checked::Approved]),
        &MemStore::default(),
        "VPN_ONLY",
    );
    assert_eq!(
        (d.code, d.reason),
        (Code::PAM_AUTH_ERR, Reason::AccountState)
    );
    assert_eq!(
        requests(&portal),
        0,
        "no call to the phone of a refused account"
    );
}

#[test]
fn info_text_per_mode() {
    let p = phone("5125550100", false);
    let cases = [
        ("VOICE_CALL", "STANDARD", "Calling +1 ***-***-0100: answer and press #."),
        ("VOICE_CALL", "PIN", "Calling +1 ***-***-0100: answer, enter your PIN and press #."),
        ("VOICE_CALL", "VOICE_PRINT", "Calling +1 ***-***-0100: answer and say your pass phrase."),
        ("SMS_TEXT", "OTP", "Reply to the text message sent to +1 ***-***-0100 with the code it contains."),
        (
            "SMS_TEXT",
            "OTP_PIN",
            "Reply to the text message sent to +1 ***-***-0100 with the code it contains followed by your PIN.",
        ),
        ("PHONE_APP", "STANDARD", "Approve the sign-in in your authenticator app."),
        ("PHONE_APP", "PIN", "Approve the sign-in in your authenticator app and enter your PIN."),
    ];
    for (mode, pin, text) in cases {
        assert_eq!(super::phone::info_text(mode, pin, &p), text);
    }
}

fn code_run(
    user: FakeUser,
    answers: &[Option<&'static str>],
) -> (Decision, FakePam, FakePortal, MemStore) {
    let s = settings("", "sshd");
    let name = user.user.username.clone();
    let mut pam = FakePam::new(Box::leak(name.into_boxed_str()), IP, answers);
    let mut portal = FakePortal::with(vec![user]);
    let store = MemStore::default();
    let d = run(&mut pam, &s, &mut portal, &store);
    (d, pam, portal, store)
}

#[test]
fn totp_right_and_wrong() {
    let mk = || FakeUser {
        code: Some("123456"),
        ..bound("grace", Vendor::Totp, "ACTIVE")
    };
    let (d, pam, portal, _) = code_run(mk(), &[Some("Pw-bound-1"), Some("123456")]);
    assert_eq!((d.code, d.factor), (Code::PAM_SUCCESS, Factor::Code));
    assert_eq!(
        pam.prompts(),
        vec!["Password: ".to_string(), "Verification code: ".into()]
    );
    assert_eq!(portal.externals(), 1);
    assert_eq!(portal.logins(), 0);
    let (d, _, _, store) = code_run(mk(), &[Some("Pw-bound-1"), Some("000000")]);
    assert_eq!(
        (d.code, d.reason, d.counted),
        (Code::PAM_AUTH_ERR, Reason::BadCode, true)
    );
    assert_eq!(
        store.failures(&ukey("grace")),
        1,
        "counted like a password failure"
    );
}

#[test]
fn verisign_out_of_sync_asks_once_more() {
    let mk = || FakeUser {
        code: Some("111111"),
        second_code: Some("222222"),
        ..bound("heidi", Vendor::Verisign, "ACTIVE")
    };
    let (d, pam, portal, _) = code_run(mk(), &[Some("Pw-bound-1"), Some("111111"), Some("222222")]);
    assert_eq!(d.code, Code::PAM_SUCCESS, "{d:?}");
    assert_eq!(pam.prompts().len(), 3);
    assert!(pam
        .seen
        .iter()
        .any(|(k, t)| *k == "info" && t.contains("out of synchronization")));
    assert_eq!(portal.externals(), 2);
    let (d, _, _, _) = code_run(mk(), &[Some("Pw-bound-1"), Some("111111"), Some("999999")]);
    assert_eq!((d.code, d.reason), (Code::PAM_AUTH_ERR, Reason::BadCode));
}
