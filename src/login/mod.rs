//! SPEC §4, `pam_sm_authenticate`, as straight-line code. Generic over the PAM handle and the
//! portal; the lockout store, the clock and the random choice are passed in.
//!
//! Parity rule: until the portal has verified the password, an unknown user, a wrong
//! password, a wrong answer and a per-user IP refusal see the same prompts, message and code.
//! So a user the module cannot ask a question of (unknown, or no question enrolled) is shown a
//! decoy question like everybody else, and its answer is thrown away.

use crate::access::{self, UserIpRefusal};
use crate::config::{LockoutSettings, Policy, QuestionChoice, SecondFactor, Settings};
use crate::decision::{Decision, Factor, Reason};
use crate::lockout::{Key, Store, Tally};
use crate::pam::{Pam, Priority, RawUser};
use crate::portal::{lock_minutes, PortalApi, PortalUser, Question, Unavailable, Vendor, Verdict};
use crate::secret::Secret;
use std::net::IpAddr;

/// Passwords and answers longer than this are refused without a portal call.
pub const MAX_SECRET_BYTES: usize = 512;

/// The module arguments of SPEC §2 that shape a login.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub use_first_pass: bool,
    pub try_first_pass: bool,
    pub debug: bool,
}

/// Things the login needs from outside that tests replace: time and randomness.
pub trait World {
    /// Unix time in seconds.
    fn now(&self) -> u64;
    /// A monotonic clock in milliseconds (for the phone wait).
    fn millis(&self) -> u64;
    /// Waits (between phone polls).
    fn sleep(&self, millis: u64);
    /// A number in `0..n` (n > 0).
    fn pick(&self, n: usize) -> usize;
}

/// The real clock and the process's random hasher keys.
pub struct RealWorld {
    start: std::time::Instant,
}

impl Default for RealWorld {
    fn default() -> Self {
        RealWorld {
            start: std::time::Instant::now(),
        }
    }
}

impl World for RealWorld {
    fn millis(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn sleep(&self, millis: u64) {
        std::thread::sleep(std::time::Duration::from_millis(millis));
    }
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
    fn pick(&self, n: usize) -> usize {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        (h.finish() % n.max(1) as u64) as usize
    }
}

/// What one authentication came to, with what acct_mgmt may reuse.
pub struct Outcome {
    pub decision: Decision,
    pub user: Option<RawUser>,
    pub found: Option<PortalUser>,
}

/// What the module will ask after the password.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    /// Password only.
    Password,
    /// A security question the user has answered.
    Question(Vec<u64>),
    /// A decoy question (unknown user, or no second factor enrolled): answer discarded.
    Decoy,
    /// No second factor enrolled, in a mode that asks no question: refused once the password
    /// is verified.
    Missing,
    /// The phone binding with this id (login/phone.rs).
    Phone(u64),
    /// A TOTP or VeriSign code.
    Code(Vendor),
}

impl Plan {
    fn factor(&self) -> Factor {
        match self {
            Plan::Password => Factor::None,
            Plan::Question(_) | Plan::Decoy => Factor::Question,
            Plan::Missing | Plan::Phone(_) => Factor::Phone,
            Plan::Code(_) => Factor::Code,
        }
    }
}

/// What was asked after the password.
enum Second {
    Nothing,
    Answer(u64, Secret),
    Code(Secret),
}

impl Second {
    fn secret(&self) -> Option<&Secret> {
        match self {
            Second::Nothing => None,
            Second::Answer(_, s) | Second::Code(s) => Some(s),
        }
    }
}

/// What the front (src/front.rs) did for this login before handing it over.
pub struct FromFront {
    /// The user it was done for: nothing of it counts for another.
    pub user: RawUser,
    /// The front checked this user's locks (SPEC §4 step 3) with the very settings of this
    /// call: they are not checked again.
    pub locks_checked: bool,
    /// The password the front prompted for (step 4), not asked again.
    pub password: Option<Secret>,
}

/// `front`: what the front did before handing this login over, if anything.
pub fn authenticate<P: Pam, A: PortalApi>(
    pam: &mut P,
    s: &Settings,
    opts: Options,
    portal: &mut A,
    store: &dyn Store,
    world: &dyn World,
    front: Option<FromFront>,
) -> Outcome {
    let user = match pam.user() {
        Ok(u) => u,
        Err(_) => {
            return Outcome {
                decision: Decision::conversation(),
                user: None,
                found: None,
            }
        }
    };
    if s.auth.fail_delay_ms > 0 {
        pam.fail_delay(s.auth.fail_delay_ms);
    }
    let front = front.filter(|f| f.user == user);
    let mut login = Login {
        pam,
        s,
        opts,
        portal,
        store,
        now: world.now(),
        locks_checked: front.as_ref().is_some_and(|f| f.locks_checked),
        handed: front.and_then(|f| f.password),
        user: user.clone(),
        found: None,
        prompted: None,
    };
    let decision = login.run(world);
    let found = login.found.take();
    Outcome {
        decision,
        user: Some(user),
        found,
    }
}

struct Login<'a, P: Pam, A: PortalApi> {
    pam: &'a mut P,
    s: &'a Settings,
    opts: Options,
    portal: &'a mut A,
    store: &'a dyn Store,
    now: u64,
    /// The front has checked this user's locks (so has the client address's).
    locks_checked: bool,
    /// The password the front prompted for.
    handed: Option<Secret>,
    user: RawUser,
    found: Option<PortalUser>,
    /// The password, when this module prompted for it (to set PAM_AUTHTOK on success).
    prompted: Option<Secret>,
}

impl<P: Pam, A: PortalApi> Login<'_, P, A> {
    fn debug(&self, what: &str) {
        if self.opts.debug {
            self.pam.log(Priority::Debug, &format!("debug: {what}"));
        }
    }

    fn run(&mut self, world: &dyn World) -> Decision {
        let s = self.s;
        let rhost = self.pam.rhost();
        let addr = access::parse_rhost(rhost.as_deref());
        if addr.is_none() {
            self.debug("no usable client address in PAM_RHOST");
        }

        // 2–3. Global lists and locks: refused at once.
        let keys = match early_refusal(
            &self.user,
            addr,
            &s.access,
            &s.lockout,
            self.store,
            self.now,
            self.locks_checked,
        ) {
            Ok(keys) => keys,
            Err(d) => return d,
        };

        // 4. The password (asked by the front, if it went that far).
        let (password, prompted) = match self.handed.take() {
            Some(p) => (p, true),
            None => match password(self.pam, self.opts, &s.prompts.password) {
                Ok(p) => p,
                Err(d) => return d,
            },
        };
        if prompted {
            self.prompted = Some(password.clone());
        }
        if let Some(d) = unusable_password(&password) {
            return self.fail(d, &keys, false);
        }

        // 5. The look-up (only for names the portal could hold).
        let name = api_username(&self.user);
        if let Some(n) = &name {
            self.debug("looking the user up");
            match self.portal.find_user(n) {
                Ok(u) => self.found = u,
                Err(e) => return outage(s)(e),
            }
        }
        let plan = self.plan();
        let factor = plan.factor();

        // 6. The user's IP policy (the password is not sent if it refuses).
        let config_policy = name.as_ref().and_then(|n| s.access.users.get(n));
        let portal_policy = if s.portal.honor_ip_restriction {
            self.found
                .as_ref()
                .and_then(|u| u.ip_restriction.as_deref())
        } else {
            None
        };
        let ip_refusal = access::user_allows(config_policy, portal_policy, addr).err();

        // 7. What is asked before the portal call: a question (real or decoy) or a code.
        let second = match &plan {
            Plan::Question(ids) => self.ask_question(Some(ids), world),
            Plan::Decoy => self.ask_question(None, world).map(|_| Second::Nothing),
            Plan::Code(_) => self.ask(&s.prompts.code).map(Second::Code),
            _ => Ok(Second::Nothing),
        };
        let second = match second {
            Ok(a) => a,
            Err(d) => return d.factor(factor),
        };
        if let Some(why) = ip_refusal {
            let detail = match why {
                UserIpRefusal::Config => "the address is outside [access.users] for this user",
                UserIpRefusal::Portal => {
                    "the address is outside the user's portal ipAddressRestriction"
                }
                UserIpRefusal::NoAddress => {
                    "the user has an IP policy and the host gave no usable address"
                }
            };
            self.decoy_call(world);
            let d = Decision::refused(Reason::IpNotAllowed, None)
                .factor(factor)
                .detail(detail.into());
            return self.fail(d, &keys, false);
        }
        let Some(name) = name else {
            self.decoy_call(world);
            let d = Decision::refused(Reason::UserUnknown, None)
                .factor(factor)
                .detail("not a name the portal can hold".into());
            return self.fail(d, &keys, false);
        };
        if second.secret().is_some_and(|a| a.len() > MAX_SECRET_BYTES) {
            let reason = if matches!(plan, Plan::Code(_)) {
                Reason::BadCode
            } else {
                Reason::BadAnswer
            };
            return self.fail(Decision::refused(reason, None).factor(factor), &keys, false);
        }

        // 8. The call that checks the password (and the answer or code).
        self.debug("checking the password with the portal");
        let verdict = match (&plan, &second) {
            (Plan::Code(vendor), Second::Code(code)) => {
                self.code_login(vendor, &name, &password, code)
            }
            (_, second) => {
                let answer = match second {
                    Second::Answer(id, a) => Some((*id, a)),
                    _ => None,
                };
                self.portal
                    .login(&name, &password, answer)
                    .map_err(outage(s))
            }
        };
        let verdict = match verdict {
            Ok(v) => v,
            Err(d) => return d.factor(factor),
        };
        let owed = match self.judge(verdict, &plan, &keys) {
            Ok(owed) => owed,
            Err(d) => return d.factor(factor),
        };

        // The password (and any answer or code) is right.
        let Some(user) = self.found.clone() else {
            return Decision::refused(Reason::UserUnknown, None)
                .factor(factor)
                .detail(
                    "the portal accepted the password but the look-up found no such user".into(),
                );
        };
        match (&plan, owed) {
            (Plan::Decoy | Plan::Missing, _) => {
                return Decision::refused(Reason::NoSecondFactor, None).factor(factor)
            }
            (Plan::Phone(binding), _) => {
                if let Err(d) = self.phone(*binding, &keys, world) {
                    return d.factor(factor);
                }
            }
            (_, Some((vendor, m))) => {
                let shown = s.auth.show_reasons.then_some(m);
                return Decision::refused(Reason::BindingRequired, shown)
                    .factor(factor)
                    .detail(format!("the portal requires the user's {vendor:?} binding"));
            }
            _ => {}
        }
        if !state_admitted(&user.status, s.auth.is_vpn) {
            return Decision::refused(Reason::AccountState, None)
                .factor(factor)
                .detail(format!("state {}", user.status));
        }

        // 9. Success, if failures could be recorded (else guesses would go uncounted).
        if let Err(e) = self.store.check_writable() {
            return Decision::store_error(e.0);
        }
        if let Err(e) = self.store.clear(&keys.user) {
            return Decision::store_error(e.0);
        }
        if let Some(p) = self.prompted.take() {
            self.pam.set_authtok(&p);
        }
        Decision::success(factor)
    }

    /// The portal's answer to the password check. `Ok(owed)`: the password (and answer or
    /// code) is proven, with the factor the portal still wants if any; `Err`: the refusal.
    fn judge(
        &mut self,
        verdict: Verdict,
        plan: &Plan,
        keys: &Keys,
    ) -> Result<Option<(Vendor, String)>, Decision> {
        let s = self.s;
        let shown = |m: &String| s.auth.show_reasons.then(|| m.clone());
        match verdict {
            Verdict::Token => Ok(None),
            Verdict::UserStatus { state, .. } if state == "vpn_only" && s.auth.is_vpn => Ok(None),
            Verdict::FactorRequired(v, m) => Ok(Some((v, m))),
            Verdict::LoginFailed(m) => {
                let (reason, text) = match (plan, self.found.is_some()) {
                    (_, false) => (Reason::UserUnknown, None),
                    (Plan::Code(_), true) => (Reason::BadCode, shown(&m)),
                    (_, true) => (Reason::BadPassword, shown(&m)),
                };
                Err(self.fail(Decision::refused(reason, text), keys, false))
            }
            Verdict::BadAnswer(m) => Err(match plan {
                Plan::Question(_) => self.fail(Decision::refused(Reason::BadAnswer, shown(&m)), keys, false),
                Plan::Decoy | Plan::Missing => Decision::refused(Reason::NoSecondFactor, None),
                _ => Decision::refused(Reason::QuestionRequired, shown(&m))
                    .detail("the portal requires a security question for this user".into()),
            }),
            Verdict::Locked(m) => {
                let left = lock_minutes(&m).map_or(s.lockout.user.lock_s, |min| min * 60);
                Err(Decision::locked(Reason::PortalLocked, "portal", left))
            }
            Verdict::IpRefused(m) => Err(Decision::refused(Reason::PortalIpRefused, shown(&m)).detail(
                "the portal refused this concentrator's own address: add it to the user's IP restriction".into(),
            )),
            Verdict::UserStatus { state, message } => {
                Err(Decision::refused(Reason::AccountState, shown(&message)).detail(format!("state {state}")))
            }
            Verdict::SecondCodeRequired(_) => Err(Decision::unavailable(
                s.portal.on_unavailable,
                "the portal asked for a second security code out of turn".into(),
            )),
        }
    }

    /// §2.5: password and code in one call; VeriSign out of sync asks once more.
    fn code_login(
        &mut self,
        vendor: &Vendor,
        name: &str,
        password: &Secret,
        code: &Secret,
    ) -> Result<Verdict, Decision> {
        let s = self.s;
        let first = self
            .portal
            .external_auth(vendor, name, password, code, None)
            .map_err(outage(s))?;
        let Verdict::SecondCodeRequired(_) = first else {
            return Ok(first);
        };
        if s.prompts.info {
            self.pam.info(
                "Your security code is out of synchronization: enter the next code it shows.",
            );
        }
        let next = self.ask(&s.prompts.code)?;
        match self
            .portal
            .external_auth(vendor, name, password, code, Some(&next))
            .map_err(outage(s))?
        {
            // A second "out of sync" is a wrong code.
            Verdict::SecondCodeRequired(m) => Ok(Verdict::LoginFailed(m)),
            v => Ok(v),
        }
    }

    /// SPEC §3 `second_factor` and §4 step 7.
    fn plan(&self) -> Plan {
        let Some(u) = &self.found else {
            return self.decoy_or_password();
        };
        let phone = u.active_binding(&Vendor::Phone).map(|b| b.id);
        let code = [Vendor::Totp, Vendor::Verisign]
            .into_iter()
            .find(|v| u.active_binding(v).is_some());
        let question = !u.answered.is_empty();
        match (self.s.auth.second_factor, phone, code) {
            (SecondFactor::None, _, _) => Plan::Password,
            (SecondFactor::Question, _, _) if question => Plan::Question(u.answered.clone()),
            (SecondFactor::Question, _, _) => Plan::Decoy,
            (SecondFactor::Phone, Some(id), _) | (SecondFactor::Auto, Some(id), _) => {
                Plan::Phone(id)
            }
            (SecondFactor::Phone, None, _) => Plan::Missing,
            (SecondFactor::Auto, None, Some(vendor)) => Plan::Code(vendor),
            (SecondFactor::Auto, None, None) if question => Plan::Question(u.answered.clone()),
            (SecondFactor::Auto, None, None) if self.s.auth.require_second_factor => Plan::Decoy,
            (SecondFactor::Auto, None, None) => Plan::Password,
        }
    }

    /// What an unknown user is shown: what most users see in this mode.
    fn decoy_or_password(&self) -> Plan {
        match self.s.auth.second_factor {
            SecondFactor::None | SecondFactor::Phone => Plan::Password,
            SecondFactor::Auto | SecondFactor::Question => Plan::Decoy,
        }
    }

    /// Prompts for a question the user answered (`Some(ids)`), or a decoy (`None`).
    /// Returns the question id and the answer for a real question; `None` when nothing to ask.
    fn ask_question(
        &mut self,
        answered: Option<&[u64]>,
        world: &dyn World,
    ) -> Result<Second, Decision> {
        let all = self.portal.questions().map_err(outage(self.s))?;
        let mut candidates: Vec<&Question> = match answered {
            Some(ids) => all.iter().filter(|q| ids.contains(&q.id)).collect(),
            None => all.iter().collect(),
        };
        if candidates.is_empty() {
            if answered.is_some() {
                return Err(Decision::unavailable(
                    self.s.portal.on_unavailable,
                    "the portal lists none of the user's answered questions".into(),
                ));
            }
            return Ok(Second::Nothing);
        }
        candidates.sort_by_key(|q| (q.display_order, q.id));
        let q = match self.s.auth.question_choice {
            QuestionChoice::First => candidates[0],
            QuestionChoice::Random => {
                candidates[world.pick(candidates.len()).min(candidates.len() - 1)]
            }
        };
        let id = q.id;
        let text = self.s.prompts.question.replace("{question}", &q.text);
        Ok(Second::Answer(id, self.ask(&text)?))
    }

    /// Keeps a refusal that needs no portal call as slow as one that makes it (SPEC §4: timing
    /// tells nothing before the password is verified): the same call, for a name no portal user
    /// can have, with a random password. The user's password is never sent; the answer is
    /// ignored.
    fn decoy_call(&mut self, world: &dyn World) {
        let name = format!("pam_portal decoy {:x}", world.pick(usize::MAX));
        let password = Secret::new(format!(
            "{:x}{:x}",
            world.pick(usize::MAX),
            world.pick(usize::MAX)
        ));
        let _ = self.portal.login(&name, &password, None);
    }

    /// An echo-off prompt; no answer is a conversation error.
    fn ask(&mut self, text: &str) -> Result<Secret, Decision> {
        self.pam
            .prompt(text, false)
            .map_err(|_| Decision::conversation())
    }

    /// [`record_failure`] with this login's store, settings and time.
    fn fail(&mut self, d: Decision, keys: &Keys, phone: bool) -> Decision {
        record_failure(self.store, &self.s.lockout, keys, self.now, phone, d)
    }
}

/// SPEC §4 step 4: the password, from `PAM_AUTHTOK` under the first-pass options, else asked
/// with `prompt` (echo off); with whether it was asked. No answer is a conversation error.
/// The full login runs this, and so does the front (src/front.rs).
pub(crate) fn password<P: Pam>(
    pam: &mut P,
    opts: Options,
    prompt: &str,
) -> Result<(Secret, bool), Decision> {
    if opts.use_first_pass || opts.try_first_pass {
        if let Some(t) = pam.authtok() {
            return Ok((t, false));
        }
        if opts.use_first_pass {
            return Err(Decision::refused(Reason::NoFirstPass, None)
                .detail("use_first_pass and no PAM_AUTHTOK".into()));
        }
    }
    let p = pam
        .prompt(prompt, false)
        .map_err(|_| Decision::conversation())?;
    Ok((p, true))
}

/// SPEC §4 step 4: a password refused without any portal call (empty, or over
/// [`MAX_SECRET_BYTES`]), to be counted.
pub(crate) fn unusable_password(p: &Secret) -> Option<Decision> {
    if p.is_empty() {
        return Some(Decision::refused(Reason::EmptyPassword, None));
    }
    (p.len() > MAX_SECRET_BYTES).then(|| Decision::refused(Reason::PasswordTooLong, None))
}

/// SPEC §4 step 9: records a counted failure against the username and the address (and the
/// phone factor for phone failures); a failure that starts a lock is answered as a lock.
pub(crate) fn record_failure(
    store: &dyn Store,
    l: &LockoutSettings,
    keys: &Keys,
    now: u64,
    phone: bool,
    d: Decision,
) -> Decision {
    let mut targets: Vec<(&Key, &Policy)> = vec![(&keys.user, &l.user)];
    if let Some(ip) = &keys.ip {
        targets.push((ip, &l.ip));
    }
    if phone {
        targets.push((&keys.phone, &l.phone));
    }
    let mut lock: Option<(&'static str, u64)> = None;
    for (key, policy) in targets {
        match store.record_failure(key, now, policy) {
            Err(e) => return Decision::store_error(e.0).factor(d.factor),
            Ok(t) => {
                if let Some(left) = t.locked_for {
                    if lock.is_none_or(|(_, l)| left > l) {
                        lock = Some((key.kind(), left));
                    }
                }
            }
        }
    }
    let d = d.counted();
    match lock {
        Some((which, left)) => d.lock(which, left),
        None => d,
    }
}

/// The lockout records of one login (SPEC §7): the username, the client address (IPv6 grouped
/// by `ipv6_prefix`) and the user's phone factor. acct_mgmt checks the same keys.
pub(crate) struct Keys {
    pub(crate) user: Key,
    pub(crate) ip: Option<Key>,
    pub(crate) phone: Key,
}

impl Keys {
    pub(crate) fn new(user: &RawUser, addr: Option<IpAddr>, l: &LockoutSettings) -> Keys {
        Keys {
            user: Key::User(user.0.clone()),
            ip: addr.map(|a| Key::Ip(access::address_key(a, l.ipv6_prefix))),
            phone: Key::Phone(user.0.clone()),
        }
    }
}

/// SPEC §4 steps 2 and 3, the refusals before any prompt: a client address the global lists
/// refuse, then a locked address, username or phone factor. The full login runs this, and so
/// does the front (src/front.rs) before the rest of the module is loaded: one rule for both.
/// `Ok` carries the login's record keys. `locks_checked`: the front has just read these
/// records with these settings (src/front.rs), so step 3 is not repeated (the lists, which
/// cost no I/O, are).
pub(crate) fn early_refusal(
    user: &RawUser,
    addr: Option<IpAddr>,
    access: &crate::config::AccessSettings,
    l: &LockoutSettings,
    store: &dyn Store,
    now: u64,
    locks_checked: bool,
) -> Result<Keys, Decision> {
    // 2. Global lists: refused at once.
    if !access::global_allows(access, addr) {
        return Err(Decision::ip_denied());
    }
    // 3. Locks: refused at once, no prompt, no portal call.
    let keys = Keys::new(user, addr, l);
    if locks_checked {
        return Ok(keys);
    }
    first_lock(
        store,
        now,
        [
            (keys.ip.as_ref(), &l.ip, Reason::IpLocked),
            (Some(&keys.user), &l.user, Reason::UserLocked),
            (Some(&keys.phone), &l.phone, Reason::PhoneLocked),
        ],
    )?;
    Ok(keys)
}

/// SPEC §4 step 3 and §6: the first of `checks` (absent keys skipped) that is locked, as a
/// lock refusal; a store that cannot be read, as a store error.
pub(crate) fn first_lock<'k>(
    store: &dyn Store,
    now: u64,
    checks: impl IntoIterator<Item = (Option<&'k Key>, &'k Policy, Reason)>,
) -> Result<(), Decision> {
    for (key, policy, reason) in checks {
        let Some(key) = key else { continue };
        match store.tally(key, now, policy) {
            Err(e) => return Err(Decision::store_error(e.0)),
            Ok(Tally {
                locked_for: Some(left),
                ..
            }) => return Err(Decision::locked(reason, key.kind(), left)),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The refusal for a portal outage, as `on_unavailable` says.
fn outage(s: &Settings) -> impl Fn(Unavailable) -> Decision + Copy + '_ {
    move |Unavailable(why)| Decision::unavailable(s.portal.on_unavailable, why)
}

/// ACTIVE passes; VPN_ONLY only on a VPN service.
pub fn state_admitted(status: &str, is_vpn: bool) -> bool {
    status == "ACTIVE" || (status == "VPN_ONLY" && is_vpn)
}

/// The username as the portal could hold it: UTF-8, 1–255 bytes, no control characters.
/// Anything else is treated as an unknown user without a portal call.
pub fn api_username(user: &RawUser) -> Option<String> {
    let s = std::str::from_utf8(&user.0).ok()?;
    (!s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control)).then(|| s.to_string())
}

mod phone;
#[cfg(test)]
mod tests;
