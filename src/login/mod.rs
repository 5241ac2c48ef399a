//! SPEC §4, `pam_sm_authenticate`, as straight-line code. Generic over the PAM handle and the
//! portal; the lockout store, the clock and the random choice are passed in.
//!
//! Parity rule: until the portal has verified the password, an unknown user, a wrong
//! password, a wrong answer and a per-user IP refusal see the same prompts, message and code.
//! So a user the module cannot ask a question of (unknown, or no question enrolled) is shown a
//! decoy question like everybody else, and its answer is thrown away.

use crate::access::{self, UserIpRefusal};
use crate::config::{QuestionChoice, SecondFactor, Settings};
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
    /// A number in `0..n` (n > 0).
    fn pick(&self, n: usize) -> usize;
}

/// The real clock and the process's random hasher keys.
pub struct RealWorld;

impl World for RealWorld {
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
    /// A factor this build cannot run yet (phone, codes): the password is checked, then refused.
    Unsupported(Factor),
}

pub fn authenticate<P: Pam, A: PortalApi>(
    pam: &mut P,
    s: &Settings,
    opts: Options,
    portal: &mut A,
    store: &dyn Store,
    world: &dyn World,
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
    let mut login = Login {
        pam,
        s,
        opts,
        portal,
        store,
        now: world.now(),
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

        // 2. Global lists: refused at once.
        if !access::global_allows(&s.access, addr) {
            return Decision::ip_denied();
        }

        // 3. Locks: refused at once, no prompt, no portal call.
        let keys = self.keys(addr);
        for (key, policy, reason) in [
            (keys.ip.as_ref(), &s.lockout.ip, Reason::IpLocked),
            (Some(&keys.user), &s.lockout.user, Reason::UserLocked),
            (Some(&keys.phone), &s.lockout.phone, Reason::PhoneLocked),
        ] {
            let Some(key) = key else { continue };
            match self.store.tally(key, self.now, policy) {
                Err(e) => return Decision::store_error(e.0),
                Ok(Tally {
                    locked_for: Some(left),
                    ..
                }) => return Decision::locked(reason, key.kind(), left),
                Ok(_) => {}
            }
        }

        // 4. The password.
        let password = match self.password() {
            Ok(p) => p,
            Err(d) => return d,
        };
        if password.is_empty() {
            return self.fail(Decision::refused(Reason::EmptyPassword, None), &keys, false);
        }
        if password.len() > MAX_SECRET_BYTES {
            return self.fail(
                Decision::refused(Reason::PasswordTooLong, None),
                &keys,
                false,
            );
        }

        // 5. The look-up (only for names the portal could hold).
        let name = api_username(&self.user);
        if let Some(n) = &name {
            self.debug("looking the user up");
            match self.portal.find_user(n) {
                Ok(u) => self.found = u,
                Err(Unavailable(why)) => {
                    return Decision::unavailable(s.portal.on_unavailable, why)
                }
            }
        }
        let plan = self.plan();
        let factor = match &plan {
            Plan::Password => Factor::None,
            Plan::Question(_) | Plan::Decoy => Factor::Question,
            Plan::Missing => Factor::Phone,
            Plan::Unsupported(f) => *f,
        };

        // 6. The user's IP policy (password not sent if it refuses).
        let config_policy = name.as_ref().and_then(|n| s.access.users.get(n));
        let portal_policy = if s.portal.honor_ip_restriction {
            self.found
                .as_ref()
                .and_then(|u| u.ip_restriction.as_deref())
        } else {
            None
        };
        let ip_refusal = access::user_allows(config_policy, portal_policy, addr).err();

        // 7. The question (real or decoy).
        let answer = match &plan {
            Plan::Question(ids) => match self.ask_question(Some(ids), world) {
                Ok(a) => a,
                Err(d) => return d.factor(factor),
            },
            Plan::Decoy => match self.ask_question(None, world) {
                Ok(_) => None, // the decoy's answer is thrown away
                Err(d) => return d.factor(factor),
            },
            _ => None,
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
            return self.fail(
                Decision::refused(Reason::IpNotAllowed, None)
                    .factor(factor)
                    .detail(detail.into()),
                &keys,
                false,
            );
        }
        let Some(name) = name else {
            let d = Decision::refused(Reason::UserUnknown, None)
                .factor(factor)
                .detail("not a name the portal can hold".into());
            return self.fail(d, &keys, false);
        };
        if let Some((_, a)) = &answer {
            if a.len() > MAX_SECRET_BYTES {
                return self.fail(
                    Decision::refused(Reason::BadAnswer, None).factor(factor),
                    &keys,
                    false,
                );
            }
        }

        // The one call that checks the password (and the answer).
        self.debug("checking the password with the portal");
        let verdict =
            match self
                .portal
                .login(&name, &password, answer.as_ref().map(|(id, a)| (*id, a)))
            {
                Ok(v) => v,
                Err(Unavailable(why)) => {
                    return Decision::unavailable(s.portal.on_unavailable, why).factor(factor)
                }
            };
        let shown = |m: &String| s.auth.show_reasons.then(|| m.clone());
        let proven = match verdict {
            Verdict::Token => None,
            Verdict::UserStatus { state, .. } if state == "vpn_only" && s.auth.is_vpn => None,
            Verdict::LoginFailed(m) => {
                let reason = if self.found.is_some() {
                    Reason::BadPassword
                } else {
                    Reason::UserUnknown
                };
                let text = if reason == Reason::BadPassword {
                    shown(&m)
                } else {
                    None
                };
                return self.fail(Decision::refused(reason, text).factor(factor), &keys, false);
            }
            Verdict::BadAnswer(m) => {
                return match plan {
                    Plan::Question(_) => self.fail(
                        Decision::refused(Reason::BadAnswer, shown(&m)).factor(factor),
                        &keys,
                        false,
                    ),
                    Plan::Decoy | Plan::Missing => {
                        Decision::refused(Reason::NoSecondFactor, None).factor(factor)
                    }
                    _ => Decision::refused(Reason::QuestionRequired, shown(&m))
                        .factor(factor)
                        .detail("the portal requires a security question for this user".into()),
                };
            }
            Verdict::Locked(m) => {
                let left = lock_minutes(&m).map_or(s.lockout.user.lock_s, |min| min * 60);
                return Decision::locked(Reason::PortalLocked, "portal", left).factor(factor);
            }
            Verdict::IpRefused(m) => {
                return Decision::refused(Reason::PortalIpRefused, shown(&m)).factor(factor).detail(
                    "the portal refused this concentrator's own address: add it to the user's IP restriction".into(),
                );
            }
            Verdict::UserStatus { state, message } => {
                return Decision::refused(Reason::AccountState, shown(&message))
                    .factor(factor)
                    .detail(format!("state {state}"));
            }
            Verdict::FactorRequired(v, m) => Some((v, m)),
        };

        // The password (and any answer) is right.
        let Some(user) = self.found.clone() else {
            return Decision::refused(Reason::UserUnknown, None)
                .factor(factor)
                .detail(
                    "the portal accepted the password but the look-up found no such user".into(),
                );
        };
        match (&plan, proven) {
            (Plan::Decoy | Plan::Missing, _) => {
                return Decision::refused(Reason::NoSecondFactor, None).factor(factor)
            }
            (Plan::Unsupported(f), _) => {
                return Decision::refused(Reason::FactorUnsupported, None)
                    .factor(*f)
                    .detail("this build cannot run the user's second factor yet".into())
            }
            (_, Some((vendor, m))) => {
                return Decision::refused(Reason::BindingRequired, shown(&m))
                    .factor(factor)
                    .detail(format!("the portal requires the user's {vendor:?} binding"))
            }
            _ => {}
        }
        if !state_admitted(&user.status, s.auth.is_vpn) {
            return Decision::refused(Reason::AccountState, None)
                .factor(factor)
                .detail(format!("state {}", user.status));
        }

        // 9. Success.
        if let Err(e) = self.store.clear(&keys.user) {
            return Decision::store_error(e.0);
        }
        if let Some(p) = self.prompted.take() {
            self.pam.set_authtok(&p);
        }
        Decision::success(factor)
    }

    fn keys(&self, addr: Option<IpAddr>) -> Keys {
        Keys {
            user: Key::User(self.user.0.clone()),
            ip: addr.map(|a| Key::Ip(access::address_key(a, self.s.lockout.ipv6_prefix))),
            phone: Key::Phone(self.user.0.clone()),
        }
    }

    fn password(&mut self) -> Result<Secret, Decision> {
        if self.opts.use_first_pass || self.opts.try_first_pass {
            if let Some(t) = self.pam.authtok() {
                return Ok(t);
            }
            if self.opts.use_first_pass {
                return Err(Decision::refused(Reason::NoFirstPass, None)
                    .detail("use_first_pass and no PAM_AUTHTOK".into()));
            }
        }
        let p = self
            .pam
            .prompt(&self.s.prompts.password, false)
            .map_err(|_| Decision::conversation())?;
        self.prompted = Some(p.clone());
        Ok(p)
    }

    /// SPEC §3 `second_factor` and §4 step 7.
    fn plan(&self) -> Plan {
        let Some(u) = &self.found else {
            return self.decoy_or_password();
        };
        let phone = u.active_binding(&Vendor::Phone).is_some();
        let code = u.active_binding(&Vendor::Totp).is_some()
            || u.active_binding(&Vendor::Verisign).is_some();
        let question = !u.answered.is_empty();
        match self.s.auth.second_factor {
            SecondFactor::None => Plan::Password,
            SecondFactor::Question if question => Plan::Question(u.answered.clone()),
            SecondFactor::Question => Plan::Decoy,
            SecondFactor::Phone if phone => Plan::Unsupported(Factor::Phone),
            SecondFactor::Phone => Plan::Missing,
            SecondFactor::Auto if phone => Plan::Unsupported(Factor::Phone),
            SecondFactor::Auto if code => Plan::Unsupported(Factor::Code),
            SecondFactor::Auto if question => Plan::Question(u.answered.clone()),
            SecondFactor::Auto if self.s.auth.require_second_factor => Plan::Decoy,
            SecondFactor::Auto => Plan::Password,
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
    ) -> Result<Option<(u64, Secret)>, Decision> {
        let all = self
            .portal
            .questions()
            .map_err(|Unavailable(why)| Decision::unavailable(self.s.portal.on_unavailable, why))?;
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
            return Ok(None);
        }
        candidates.sort_by_key(|q| (q.display_order, q.id));
        let q = match self.s.auth.question_choice {
            QuestionChoice::First => candidates[0],
            QuestionChoice::Random => {
                candidates[world.pick(candidates.len()).min(candidates.len() - 1)]
            }
        };
        let text = self.s.prompts.question.replace("{question}", &q.text);
        let answer = self
            .pam
            .prompt(&text, false)
            .map_err(|_| Decision::conversation())?;
        Ok(Some((q.id, answer)))
    }

    /// Records a counted failure against the username and the address (and the phone factor
    /// for phone failures); a failure that starts a lock is answered as a lock.
    fn fail(&mut self, d: Decision, keys: &Keys, phone: bool) -> Decision {
        let s = self.s;
        let mut targets: Vec<(&Key, &crate::config::Policy)> = vec![(&keys.user, &s.lockout.user)];
        if let Some(ip) = &keys.ip {
            targets.push((ip, &s.lockout.ip));
        }
        if phone {
            targets.push((&keys.phone, &s.lockout.phone));
        }
        let mut lock: Option<(&'static str, u64)> = None;
        for (key, policy) in targets {
            match self.store.record_failure(key, self.now, policy) {
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
        let mut d = d.counted();
        if let Some((which, left)) = lock {
            d.code = crate::decision::Code::PAM_MAXTRIES;
            d.message = Some(crate::decision::msg_locked(left));
            d.lock_left = Some(left);
            d.locked = Some(which);
        }
        d
    }
}

struct Keys {
    user: Key,
    ip: Option<Key>,
    phone: Key,
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

#[cfg(test)]
mod tests;
