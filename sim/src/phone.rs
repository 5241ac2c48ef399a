//! The phone binding's validations (PROTOCOL 2.4) as a state machine over a clock passed in
//! (`now`), so tests can move time: requests, the simulated person's answers, one final answer
//! per token, the per-binding request limit and the sim's own phone lockout.
//!
//! A validation's outcome is a pure function of its request time, the behaviour it was made
//! with and an optional answer given through the control interface: `approve`, `deny` and
//! `wrong_pin` decide `delay_ms` after the request, `ignore` and `manual` (and an automatic
//! answer that would come at or after `expire_s`) fail as expired `expire_s` after it. Each
//! call first *settles* the state: every validation decided by `now` is counted (a failure for
//! the binding's lockout, or a success that clears its failures) once, in the order of the
//! decision times, whether or not a client ever polls for it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fixture::{Behaviour, Binding, PhoneConf};
use crate::util;

/// How long a decided validation that nobody polled for is kept (then its token is unknown).
pub const RETAIN: Duration = Duration::from_secs(3600);

/// The run-time settings of one phone binding (fixture values, changeable by the control
/// interface; they apply to validations requested afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub behaviour: Behaviour,
    pub delay_ms: u64,
    pub expire_s: u64,
    pub primary_fails: bool,
}

impl Settings {
    pub fn of(b: &Binding) -> Settings {
        Settings {
            behaviour: b.behaviour,
            delay_ms: b.delay_ms,
            expire_s: b.expire_s,
            primary_fails: b.primary_fails,
        }
    }
}

/// An answer given on the phone, through `POST /phone/answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Approve,
    Deny,
    WrongPin,
}

/// How a validation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Denied,
    WrongPin,
    Expired,
}

impl Outcome {
    fn failed(self) -> bool {
        self != Outcome::Approved
    }
}

impl From<Answer> for Outcome {
    fn from(a: Answer) -> Outcome {
        match a {
            Answer::Approve => Outcome::Approved,
            Answer::Deny => Outcome::Denied,
            Answer::WrongPin => Outcome::WrongPin,
        }
    }
}

/// What checkPhoneValidationResult answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `true`; the token is forgotten.
    Approved,
    /// AwaitingResponse: poll again.
    Awaiting,
    /// PhoneValidationFailed (denied, wrong PIN, expired); the token is forgotten.
    Failed(Outcome),
    /// InvalidAuthenticationToken: unknown, already answered, or for another binding.
    InvalidToken,
}

/// Why requestPhoneValidation refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The binding is blocked, or its request limit is reached: "You have exceeded the
    /// maximum phone validation requests."
    Exceeded,
    /// `primary_fails` and a PRIMARY phone: "Unable to reach the phone number."
    Unreachable,
}

#[derive(Debug, Clone)]
struct Validation {
    token: String,
    binding_id: u64,
    /// The phone number called (only its last four digits are ever shown).
    phone: String,
    created: Instant,
    settings: Settings,
    /// An answer given through the control interface, and when.
    answered: Option<(Instant, Answer)>,
    /// Counted in the lockout already.
    counted: bool,
}

impl Validation {
    /// When and how this validation is (or will be) decided.
    fn decision(&self) -> (Instant, Outcome) {
        if let Some((t, a)) = self.answered {
            return (t, a.into());
        }
        let delay = Duration::from_millis(self.settings.delay_ms);
        let expire = Duration::from_secs(self.settings.expire_s);
        let auto = match self.settings.behaviour {
            Behaviour::Approve => Some(Outcome::Approved),
            Behaviour::Deny => Some(Outcome::Denied),
            Behaviour::WrongPin => Some(Outcome::WrongPin),
            Behaviour::Ignore | Behaviour::Manual => None,
        };
        match auto {
            Some(o) if delay < expire => (self.created + delay, o),
            _ => (self.created + expire, Outcome::Expired),
        }
    }

    fn decided(&self, now: Instant) -> Option<Outcome> {
        let (t, o) = self.decision();
        (t <= now).then_some(o)
    }
}

/// Times within a sliding window.
#[derive(Debug, Default, Clone)]
struct Window(VecDeque<Instant>);

impl Window {
    fn prune(&mut self, now: Instant, window: Duration) {
        while let Some(&t) = self.0.front() {
            if now.saturating_duration_since(t) >= window {
                self.0.pop_front();
            } else {
                break;
            }
        }
    }
}

/// One entry of `GET /phone/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub binding_id: u64,
    pub username: String,
    pub token_age_ms: u64,
    /// The last four digits of the phone called.
    pub phone: String,
}

#[derive(Debug)]
pub struct PhoneState {
    conf: PhoneConf,
    /// Fixture settings (restored by [`PhoneState::reset`]) and the current ones.
    defaults: HashMap<u64, Settings>,
    settings: HashMap<u64, Settings>,
    /// Validations in request order.
    validations: Vec<Validation>,
    requests: HashMap<u64, Window>,
    failures: HashMap<u64, Window>,
    blocked_until: HashMap<u64, Instant>,
}

fn last4(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(4)..].iter().collect()
}

impl PhoneState {
    /// `bindings`: every phone binding of the fixture.
    pub fn new<'a>(conf: PhoneConf, bindings: impl IntoIterator<Item = &'a Binding>) -> Self {
        let defaults: HashMap<u64, Settings> = bindings
            .into_iter()
            .map(|b| (b.id, Settings::of(b)))
            .collect();
        PhoneState {
            conf,
            settings: defaults.clone(),
            defaults,
            validations: Vec::new(),
            requests: HashMap::new(),
            failures: HashMap::new(),
            blocked_until: HashMap::new(),
        }
    }

    pub fn settings(&self, binding_id: u64) -> Option<Settings> {
        self.settings.get(&binding_id).copied()
    }

    /// Change a binding's settings (for validations requested from now on). False if the
    /// binding is not a phone binding of the fixture.
    pub fn set_settings(&mut self, binding_id: u64, s: Settings) -> bool {
        match self.settings.get_mut(&binding_id) {
            Some(cur) => {
                *cur = s;
                true
            }
            None => false,
        }
    }

    /// Forget all validations, request counts, failures and blocks; restore fixture settings.
    pub fn reset(&mut self) {
        self.settings = self.defaults.clone();
        self.validations.clear();
        self.requests.clear();
        self.failures.clear();
        self.blocked_until.clear();
    }

    /// Count every validation decided by `now` (once, in decision order); drop decided ones
    /// nobody polled for after [`RETAIN`].
    fn settle(&mut self, now: Instant) {
        let mut events: Vec<(Instant, u64, Outcome)> = Vec::new();
        for v in self.validations.iter_mut().filter(|v| !v.counted) {
            let (t, o) = v.decision();
            if t <= now {
                v.counted = true;
                events.push((t, v.binding_id, o));
            }
        }
        events.sort_by_key(|e| e.0);
        for (t, id, o) in events {
            self.count(id, o, t);
        }
        self.validations
            .retain(|v| now.saturating_duration_since(v.decision().0) < RETAIN);
    }

    fn count(&mut self, binding_id: u64, outcome: Outcome, t: Instant) {
        if !outcome.failed() {
            // a success clears the binding's failures (not a block already in force)
            self.failures.remove(&binding_id);
            return;
        }
        let window = Duration::from_secs(self.conf.fail_window_s);
        let f = self.failures.entry(binding_id).or_default();
        f.prune(t, window);
        f.0.push_back(t);
        if f.0.len() >= self.conf.max_failures as usize {
            f.0.clear();
            self.blocked_until
                .insert(binding_id, t + Duration::from_secs(self.conf.block_s));
        }
    }

    /// Blocked by the sim's phone lockout now (the fixture's `status = "BLOCKED"` is the
    /// caller's business).
    pub fn is_blocked(&mut self, binding_id: u64, now: Instant) -> bool {
        self.settle(now);
        matches!(self.blocked_until.get(&binding_id), Some(&u) if u > now)
    }

    /// Failed validations of the binding within `fail_window_s` (not yet turned into a block).
    pub fn failures(&mut self, binding_id: u64, now: Instant) -> usize {
        self.settle(now);
        let window = Duration::from_secs(self.conf.fail_window_s);
        self.failures.get_mut(&binding_id).map_or(0, |f| {
            f.prune(now, window);
            f.0.len()
        })
    }

    /// requestPhoneValidation for a phone of the binding (`primary`: its type is PRIMARY;
    /// `fixture_blocked`: the fixture's status is BLOCKED). A new token, or why not.
    pub fn request(
        &mut self,
        binding_id: u64,
        phone: &str,
        primary: bool,
        fixture_blocked: bool,
        now: Instant,
    ) -> Result<String, RequestError> {
        let settings = self.settings(binding_id).ok_or(RequestError::Exceeded)?;
        if fixture_blocked || self.is_blocked(binding_id, now) {
            return Err(RequestError::Exceeded);
        }
        let window = Duration::from_secs(self.conf.window_s);
        let r = self.requests.entry(binding_id).or_default();
        r.prune(now, window);
        if r.0.len() >= self.conf.max_requests as usize {
            return Err(RequestError::Exceeded);
        }
        // the request is counted even when the phone cannot be reached
        r.0.push_back(now);
        if primary && settings.primary_fails {
            return Err(RequestError::Unreachable);
        }
        let token = util::random_hex(16);
        self.validations.push(Validation {
            token: token.clone(),
            binding_id,
            phone: phone.to_string(),
            created: now,
            settings,
            answered: None,
            counted: false,
        });
        self.settle(now); // a zero delay decides at once
        Ok(token)
    }

    /// checkPhoneValidationResult: one final answer per token, then it is forgotten.
    pub fn check(&mut self, binding_id: u64, token: &str, now: Instant) -> Check {
        self.settle(now);
        let Some(i) = self
            .validations
            .iter()
            .position(|v| v.token == token && v.binding_id == binding_id)
        else {
            return Check::InvalidToken;
        };
        match self.validations[i].decided(now) {
            None => Check::Awaiting,
            Some(o) => {
                self.validations.remove(i);
                match o {
                    Outcome::Approved => Check::Approved,
                    _ => Check::Failed(o),
                }
            }
        }
    }

    /// Answer the newest still undecided validation of any of `binding_ids`. The binding id
    /// answered, or `None` if none is pending.
    pub fn answer(&mut self, binding_ids: &[u64], answer: Answer, now: Instant) -> Option<u64> {
        self.settle(now);
        let v = self
            .validations
            .iter_mut()
            .rev()
            .find(|v| binding_ids.contains(&v.binding_id) && v.decided(now).is_none())?;
        v.answered = Some((now, answer));
        let id = v.binding_id;
        self.settle(now);
        Some(id)
    }

    /// Undecided validations, oldest first. `owner` names a binding's user.
    pub fn pending(&mut self, now: Instant, owner: impl Fn(u64) -> String) -> Vec<Pending> {
        self.settle(now);
        self.validations
            .iter()
            .filter(|v| v.decided(now).is_none())
            .map(|v| Pending {
                binding_id: v.binding_id,
                username: owner(v.binding_id),
                token_age_ms: u64::try_from(now.saturating_duration_since(v.created).as_millis())
                    .unwrap_or(u64::MAX),
                phone: last4(&v.phone),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    const FIX: &str = r#"
[account]
api_user = "u"
api_key = "k"

[phone]
max_requests = 5
window_s = 3600
max_failures = 3
fail_window_s = 600
block_s = 1000

[[users]]
id = 1
username = "frank"
password = "p"
bindings = [
  { id = 10, vendor = "PHONE_FACTOR", behaviour = "approve", delay_ms = 300 },
  { id = 11, vendor = "PHONE_FACTOR", behaviour = "deny", delay_ms = 200 },
  { id = 12, vendor = "PHONE_FACTOR", behaviour = "ignore", expire_s = 60 },
  { id = 13, vendor = "PHONE_FACTOR", behaviour = "wrong_pin", delay_ms = 100 },
  { id = 14, vendor = "PHONE_FACTOR", behaviour = "manual", expire_s = 30 },
  { id = 15, vendor = "PHONE_FACTOR", primary_fails = true },
  { id = 16, vendor = "PHONE_FACTOR", behaviour = "approve", delay_ms = 90000, expire_s = 60 },
]
"#;

    fn state() -> PhoneState {
        let f = Fixture::parse(FIX).unwrap();
        PhoneState::new(f.phone, f.users[0].bindings.iter())
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn req(s: &mut PhoneState, id: u64, now: Instant) -> String {
        s.request(id, "5125550100", true, false, now).unwrap()
    }

    #[test]
    fn approve_after_delay_then_token_forgotten() {
        let mut s = state();
        let t0 = Instant::now();
        let tok = req(&mut s, 10, t0);
        assert_eq!(tok.len(), 32);
        assert_eq!(s.check(10, &tok, t0), Check::Awaiting);
        assert_eq!(s.check(10, &tok, t0 + ms(299)), Check::Awaiting);
        assert_eq!(s.check(10, &tok, t0 + ms(300)), Check::Approved);
        // exactly one final answer
        assert_eq!(s.check(10, &tok, t0 + ms(301)), Check::InvalidToken);
        assert_eq!(s.check(10, "nope", t0), Check::InvalidToken);
        // a token is only valid for its own binding
        let tok = req(&mut s, 10, t0);
        assert_eq!(s.check(11, &tok, t0 + secs(1)), Check::InvalidToken);
        assert_eq!(s.check(10, &tok, t0 + secs(1)), Check::Approved);
        assert_eq!(s.failures(10, t0 + secs(1)), 0);
    }

    #[test]
    fn deny_and_wrong_pin_fail_after_delay() {
        let mut s = state();
        let t0 = Instant::now();
        let tok = req(&mut s, 11, t0);
        assert_eq!(s.check(11, &tok, t0 + ms(199)), Check::Awaiting);
        assert_eq!(
            s.check(11, &tok, t0 + ms(200)),
            Check::Failed(Outcome::Denied)
        );
        assert_eq!(s.check(11, &tok, t0 + ms(200)), Check::InvalidToken);
        let tok = req(&mut s, 13, t0);
        assert_eq!(s.check(13, &tok, t0 + ms(50)), Check::Awaiting);
        assert_eq!(
            s.check(13, &tok, t0 + ms(100)),
            Check::Failed(Outcome::WrongPin)
        );
        assert_eq!(s.failures(11, t0 + secs(1)), 1);
        assert_eq!(s.failures(13, t0 + secs(1)), 1);
    }

    #[test]
    fn ignore_and_manual_expire() {
        let mut s = state();
        let t0 = Instant::now();
        let tok = req(&mut s, 12, t0);
        assert_eq!(s.check(12, &tok, t0 + secs(59)), Check::Awaiting);
        assert_eq!(
            s.check(12, &tok, t0 + secs(60)),
            Check::Failed(Outcome::Expired)
        );
        assert_eq!(s.check(12, &tok, t0 + secs(61)), Check::InvalidToken);
        let tok = req(&mut s, 14, t0);
        assert_eq!(s.check(14, &tok, t0 + secs(29)), Check::Awaiting);
        assert_eq!(
            s.check(14, &tok, t0 + secs(30)),
            Check::Failed(Outcome::Expired)
        );
        // an automatic answer that would come after expire_s never comes
        let tok = req(&mut s, 16, t0);
        assert_eq!(s.check(16, &tok, t0 + secs(59)), Check::Awaiting);
        assert_eq!(
            s.check(16, &tok, t0 + secs(60)),
            Check::Failed(Outcome::Expired)
        );
    }

    #[test]
    fn manual_answers_and_pending() {
        let mut s = state();
        let t0 = Instant::now();
        assert_eq!(s.answer(&[14], Answer::Approve, t0), None);
        let old = req(&mut s, 14, t0);
        let new = s
            .request(14, "5125550199", false, false, t0 + secs(1))
            .unwrap();
        let p = s.pending(t0 + secs(2), |_| "frank".into());
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[1],
            Pending {
                binding_id: 14,
                username: "frank".into(),
                token_age_ms: 1000,
                phone: "0199".into()
            }
        );
        // the newest pending one is answered
        assert_eq!(s.answer(&[14], Answer::Approve, t0 + secs(3)), Some(14));
        assert_eq!(s.check(14, &new, t0 + secs(3)), Check::Approved);
        assert_eq!(s.check(14, &old, t0 + secs(3)), Check::Awaiting);
        assert_eq!(s.answer(&[13, 14], Answer::Deny, t0 + secs(4)), Some(14));
        assert_eq!(s.answer(&[14], Answer::Deny, t0 + secs(4)), None);
        assert!(s.pending(t0 + secs(4), |_| String::new()).is_empty());
        assert_eq!(
            s.check(14, &old, t0 + secs(5)),
            Check::Failed(Outcome::Denied)
        );
        // a control answer beats an automatic one that has not come yet
        let tok = req(&mut s, 10, t0 + secs(6));
        assert_eq!(s.answer(&[10], Answer::WrongPin, t0 + secs(6)), Some(10));
        assert_eq!(
            s.check(10, &tok, t0 + secs(7)),
            Check::Failed(Outcome::WrongPin)
        );
        // ...but a decided one is not pending any more
        let _tok = req(&mut s, 10, t0 + secs(8));
        assert_eq!(s.answer(&[10], Answer::Deny, t0 + secs(9)), None);
    }

    #[test]
    fn request_limit_per_binding() {
        let mut s = state();
        let t0 = Instant::now();
        for i in 0..5 {
            req(&mut s, 10, t0 + secs(i));
        }
        assert_eq!(
            s.request(10, "5125550100", true, false, t0 + secs(10)),
            Err(RequestError::Exceeded)
        );
        // other bindings have their own count
        req(&mut s, 11, t0 + secs(10));
        // the window slides: the first request leaves it after window_s
        assert_eq!(
            s.request(10, "5125550100", true, false, t0 + secs(3599)),
            Err(RequestError::Exceeded)
        );
        req(&mut s, 10, t0 + secs(3600));
        // fixture-blocked bindings and unknown ones are refused
        assert_eq!(
            s.request(12, "5125550100", true, true, t0),
            Err(RequestError::Exceeded)
        );
        assert_eq!(
            s.request(99, "5125550100", true, false, t0),
            Err(RequestError::Exceeded)
        );
        s.reset();
        req(&mut s, 10, t0 + secs(3601));
    }

    #[test]
    fn blocked_after_failures_for_block_s() {
        let mut s = state(); // max_failures 3, fail_window 600, block 1000
        let t0 = Instant::now();
        // two failures (denied at +0.2 s and +1.2 s), then one leaves the window: no block
        req(&mut s, 11, t0);
        req(&mut s, 11, t0 + secs(1));
        assert_eq!(s.failures(11, t0 + secs(2)), 2);
        assert_eq!(s.failures(11, t0 + secs(601)), 1);
        // wrong PINs (after 100 ms), counted when they happen, polled or not
        let t1 = t0 + secs(700);
        req(&mut s, 13, t1);
        req(&mut s, 13, t1 + secs(1));
        assert!(!s.is_blocked(13, t1 + secs(1)));
        assert_eq!(s.failures(13, t1 + secs(2)), 2);
        req(&mut s, 13, t1 + secs(3)); // fails at +3.1 s: the third failure in the window
        assert!(!s.is_blocked(13, t1 + secs(3)));
        let blocked_at = t1 + secs(3) + ms(100);
        assert!(s.is_blocked(13, blocked_at));
        assert_eq!(s.failures(13, blocked_at), 0);
        assert_eq!(
            s.request(13, "5125550100", true, false, t1 + secs(500)),
            Err(RequestError::Exceeded)
        );
        assert!(s.is_blocked(13, blocked_at + secs(999)));
        assert!(!s.is_blocked(13, blocked_at + secs(1000)));
        req(&mut s, 13, blocked_at + secs(1000));
        // other bindings are not blocked
        assert!(!s.is_blocked(10, blocked_at));
        assert!(!s.is_blocked(11, blocked_at));
        // expiries count too (ignore: expired after 60 s)
        let t2 = blocked_at + secs(2000);
        for i in 0..3 {
            req(&mut s, 12, t2 + secs(i));
        }
        assert!(!s.is_blocked(12, t2 + secs(61)));
        assert!(s.is_blocked(12, t2 + secs(62)));
        // a success clears the binding's failures (only its own)
        let t3 = t2 + secs(4000);
        req(&mut s, 11, t3);
        req(&mut s, 11, t3 + secs(1));
        assert_eq!(s.failures(11, t3 + secs(2)), 2);
        let tok = req(&mut s, 14, t3 + secs(2));
        s.answer(&[14], Answer::Approve, t3 + secs(2));
        assert_eq!(s.check(14, &tok, t3 + secs(2)), Check::Approved);
        assert_eq!(s.failures(11, t3 + secs(3)), 2);
        s.set_settings(
            11,
            Settings {
                behaviour: Behaviour::Approve,
                delay_ms: 0,
                expire_s: 60,
                primary_fails: false,
            },
        );
        let tok = req(&mut s, 11, t3 + secs(3));
        assert_eq!(s.failures(11, t3 + secs(3)), 0);
        assert_eq!(s.check(11, &tok, t3 + secs(3)), Check::Approved);
        // reset clears blocks and restores the fixture's settings
        s.reset();
        assert!(!s.is_blocked(12, t2 + secs(62)));
        assert_eq!(s.settings(11).unwrap().behaviour, Behaviour::Deny);
    }

    #[test]
    fn primary_fails_backup_works() {
        let mut s = state();
        let t0 = Instant::now();
        assert_eq!(
            s.request(15, "5125550100", true, false, t0),
            Err(RequestError::Unreachable)
        );
        let tok = s.request(15, "5125550199", false, false, t0).unwrap();
        assert_eq!(s.check(15, &tok, t0 + ms(300)), Check::Approved);
        // unreachable requests still count against the limit (2 used of 5)
        for _ in 0..3 {
            s.request(15, "5125550199", false, false, t0).unwrap();
        }
        assert_eq!(
            s.request(15, "5125550199", false, false, t0),
            Err(RequestError::Exceeded)
        );
        assert_eq!(s.failures(15, t0 + secs(1)), 0);
    }

    #[test]
    fn behaviour_changes_apply_to_new_requests() {
        let mut s = state();
        let t0 = Instant::now();
        let before = req(&mut s, 10, t0);
        let mut st = s.settings(10).unwrap();
        st.behaviour = Behaviour::Deny;
        st.delay_ms = 0;
        assert!(s.set_settings(10, st));
        assert!(!s.set_settings(99, st));
        let after = req(&mut s, 10, t0);
        assert_eq!(s.check(10, &after, t0), Check::Failed(Outcome::Denied));
        assert_eq!(s.check(10, &before, t0 + ms(300)), Check::Approved);
    }

    #[test]
    fn unpolled_decisions_are_dropped_after_retain() {
        let mut s = state();
        let t0 = Instant::now();
        let tok = req(&mut s, 10, t0);
        assert_eq!(
            s.check(10, &tok, t0 + ms(300) + RETAIN),
            Check::InvalidToken
        );
        assert!(s.validations.is_empty());
    }

    #[test]
    fn last_four() {
        assert_eq!(last4("5125550100"), "0100");
        assert_eq!(last4("12"), "12");
    }
}
