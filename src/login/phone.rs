//! SPEC §4 step 7, the phone binding (PROTOCOL.md §2.4): once the password is proven, the
//! binding's status, mode and phones; one validation request (the backup phone only if the
//! primary request fails); an info line fit for the mode; the optional confirm prompt; then
//! polling until an answer or `phone_timeout_s`. The whole wait, HTTP calls included, ends by
//! the deadline, and the request is never sent twice in one login.

use super::{Keys, Login};
use crate::decision::{Decision, Reason};
use crate::pam::Pam;
use crate::portal::{Checked, Phone, PortalApi, Requested};
use std::time::{Duration, Instant};

/// The confirm prompt (`[prompts] phone_confirm`): OpenSSH before 10.3 shows info text only
/// together with a prompt.
pub const CONFIRM_PROMPT: &str = "Press Enter once you have answered on your phone: ";

impl<P: Pam, A: PortalApi> Login<'_, P, A> {
    pub(super) fn phone(
        &mut self,
        binding: u64,
        keys: &Keys,
        world: &dyn super::World,
    ) -> Result<(), Decision> {
        let s = self.s;
        let budget_ms = s.auth.phone_timeout_s * 1000;
        let deadline = world.millis() + budget_ms;
        self.portal
            .set_deadline(Instant::now() + Duration::from_millis(budget_ms));
        let unavailable = super::outage(s);

        let status = self.portal.binding_status(binding).map_err(unavailable)?;
        if status == "BLOCKED" {
            return Err(Decision::refused(Reason::PhoneBlocked, None)
                .detail("the portal has blocked the phone binding".into()));
        }
        let (mode, pin_mode) = self
            .portal
            .authentication_mode(binding)
            .map_err(unavailable)?;
        let phones = self.portal.phones(binding).map_err(unavailable)?;
        let primary = phones.iter().find(|p| !p.backup).or(phones.first());
        let backup = phones.iter().find(|p| p.backup && Some(*p) != primary);

        let mut refusal = String::from("the binding has no phone");
        let mut sent = None;
        for phone in [primary, backup].into_iter().flatten() {
            self.debug("requesting phone validation");
            match self
                .portal
                .request_validation(binding, phone)
                .map_err(unavailable)?
            {
                Requested::Token(t) => {
                    sent = Some((t, phone));
                    break;
                }
                Requested::Limit(m) => {
                    return Err(Decision::locked(
                        Reason::PhoneLimit,
                        "portal",
                        s.lockout.phone.lock_s,
                    )
                    .detail(m));
                }
                Requested::Refused(why) => refusal = why,
            }
        }
        let Some((token, phone)) = sent else {
            return Err(Decision::unavailable(
                s.portal.on_unavailable,
                format!("no phone could be reached: {refusal}"),
            ));
        };

        if s.prompts.info {
            self.pam.info(&info_text(&mode, &pin_mode, phone));
        }
        if s.prompts.phone_confirm {
            self.ask(CONFIRM_PROMPT)?;
        }

        loop {
            let now = world.millis();
            if now >= deadline {
                let d = Decision::refused(Reason::PhoneTimeout, None).detail(format!(
                    "no answer within phone_timeout_s = {}",
                    s.auth.phone_timeout_s
                ));
                return Err(self.fail(d, keys, true));
            }
            match self.portal.check_validation(binding, &token) {
                Ok(Checked::Approved) => return Ok(()),
                Ok(Checked::Awaiting) => world.sleep(
                    s.auth
                        .phone_poll_ms
                        .min(deadline.saturating_sub(world.millis())),
                ),
                Ok(Checked::Failed(m)) | Ok(Checked::InvalidToken(m)) => {
                    let d = Decision::refused(Reason::PhoneDenied, None).detail(m);
                    return Err(self.fail(d, keys, true));
                }
                // A call cut short by the phone deadline is the phone timing out.
                Err(_) if world.millis() >= deadline => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
    }
}

/// `+1 ***-***-0100`: only the last four digits shown.
pub fn masked(phone: &Phone) -> String {
    let digits: String = phone.number.chars().filter(char::is_ascii_digit).collect();
    let last = if digits.len() >= 4 {
        &digits[digits.len() - 4..]
    } else {
        "****"
    };
    let cc: String = phone
        .country_code
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if cc.is_empty() {
        format!("***-***-{last}")
    } else {
        format!("+{cc} ***-***-{last}")
    }
}

/// What the phone will do and what the user must do, per mode and pin mode.
pub fn info_text(mode: &str, pin_mode: &str, phone: &Phone) -> String {
    let n = masked(phone);
    match (mode, pin_mode) {
        ("VOICE_CALL", "PIN") => format!("Calling {n}: answer, enter your PIN and press #."),
        ("VOICE_CALL", "VOICE_PRINT") => format!("Calling {n}: answer and say your pass phrase."),
        ("VOICE_CALL", _) => format!("Calling {n}: answer and press #."),
        ("SMS_TEXT", "OTP_PIN") => {
            format!("Reply to the text message sent to {n} with the code it contains followed by your PIN.")
        }
        ("SMS_TEXT", _) => {
            format!("Reply to the text message sent to {n} with the code it contains.")
        }
        ("PHONE_APP", "PIN") => {
            "Approve the sign-in in your authenticator app and enter your PIN.".to_string()
        }
        ("PHONE_APP", _) => "Approve the sign-in in your authenticator app.".to_string(),
        _ => format!("Answer the sign-in request sent to your phone {n}."),
    }
}
