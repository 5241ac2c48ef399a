//! The phone binding through libpam against portal-sim over HTTPS (SPEC §4.7, PROTOCOL §2.4):
//! the info line of every mode and pin mode (present with `info = true`, absent with
//! `info = false`), one validation request per login whatever the number of polls, the backup
//! phone, the portal's request limit, and the whole wait bounded by `phone_timeout_s`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::{Env, Exhausted, Outcome, Sim};
use std::time::Duration;

const PW: &str = "Mode-Pass1!";

/// Every mode / pin mode pair of PROTOCOL §2.4, with the exact info line expected.
const MODES: &[(&str, &str, &str, &str)] = &[
    ("m1", "VOICE_CALL", "STANDARD", "Calling +1 ***-***-0101: answer and press #."),
    ("m2", "VOICE_CALL", "PIN", "Calling +1 ***-***-0102: answer, enter your PIN and press #."),
    ("m3", "VOICE_CALL", "VOICE_PRINT", "Calling +1 ***-***-0103: answer and say your pass phrase."),
    ("m4", "SMS_TEXT", "OTP", "Reply to the text message sent to +1 ***-***-0104 with the code it contains."),
    (
        "m5",
        "SMS_TEXT",
        "OTP_PIN",
        "Reply to the text message sent to +1 ***-***-0105 with the code it contains followed by your PIN.",
    ),
    ("m6", "PHONE_APP", "STANDARD", "Approve the sign-in in your authenticator app."),
    ("m7", "PHONE_APP", "PIN", "Approve the sign-in in your authenticator app and enter your PIN."),
];

fn fixture() -> String {
    let mut f = String::from(
        "[account]\napi_user = \"SL200002\"\napi_key = \"modes-key-0123\"\n\n[phone]\nmax_requests = 3\n\n",
    );
    for (i, (name, mode, pin, _)) in MODES.iter().enumerate() {
        f.push_str(&format!(
            "[[users]]\nid = {}\nusername = \"{name}\"\npassword = \"{PW}\"\n\
             bindings = [{{ id = {}, vendor = \"PHONE_FACTOR\", mode = \"{mode}\", pin_mode = \"{pin}\", delay_ms = 50, \
             phones = [{{ country_code = 1, phone = \"512555010{}\", type = \"PRIMARY\" }}] }}]\n\n",
            3000 + i,
            8000 + i,
            i + 1
        ));
    }
    f.push_str(&format!(
        "[[users]]\nid = 3100\nusername = \"slow\"\npassword = \"{PW}\"\n\
         bindings = [{{ id = 8100, vendor = \"PHONE_FACTOR\", delay_ms = 1500 }}]\n\n\
         [[users]]\nid = 3101\nusername = \"twophones\"\npassword = \"{PW}\"\n\
         bindings = [{{ id = 8101, vendor = \"PHONE_FACTOR\", primary_fails = true, delay_ms = 50, phones = [\
         {{ country_code = 1, phone = \"5125550111\", type = \"PRIMARY\" }}, \
         {{ country_code = 1, phone = \"5125550199\", type = \"BACKUP\" }}] }}]\n\n\
         [[users]]\nid = 3102\nusername = \"silent\"\npassword = \"{PW}\"\n\
         bindings = [{{ id = 8102, vendor = \"PHONE_FACTOR\", behaviour = \"ignore\" }}]\n"
    ));
    f
}

fn setup(extra: &str) -> (Sim, Env) {
    let sim = Sim::start(&fixture());
    let env = Env::new(
        &sim,
        &format!("[auth]\nphone_poll_ms = 100\nphone_timeout_s = 5\n{extra}"),
    );
    (sim, env)
}

fn login(env: &Env, user: &str) -> Outcome {
    env.login()
        .user(user)
        .rhost("198.51.100.20")
        .answer(PW)
        .on_exhausted(Exhausted::Empty)
        .timeout(Duration::from_secs(30))
        .run()
}

fn requests(sim: &Sim, user: &str) -> usize {
    sim.calls_to("requestPhoneValidation")
        .iter()
        .filter(|c| c.get("username").and_then(|u| u.as_str()) == Some(user))
        .count()
}

#[test]
fn every_mode_has_its_info_line_with_info_true() {
    let (_sim, env) = setup("");
    for (user, mode, pin, text) in MODES {
        let o = login(&env, user);
        assert_eq!(o.auth, Some(PAM_SUCCESS), "{mode}/{pin}: {}", o.describe());
        assert_eq!(o.infos(), vec![*text], "{mode}/{pin}: {}", o.describe());
    }
}

#[test]
fn no_mode_sends_an_info_line_with_info_false() {
    let (_sim, env) = setup("[prompts]\ninfo = false\n");
    for (user, mode, pin, _) in MODES {
        let o = login(&env, user);
        assert_eq!(o.auth, Some(PAM_SUCCESS), "{mode}/{pin}: {}", o.describe());
        assert!(o.infos().is_empty(), "{mode}/{pin}: {}", o.describe());
        assert_eq!(
            o.prompts().len(),
            1,
            "only the password prompt: {}",
            o.describe()
        );
    }
}

#[test]
fn the_phone_is_called_once_per_login_not_once_per_poll() {
    let (sim, env) = setup("");
    // The person answers after 1.5 s; the module polls every 100 ms.
    let o = login(&env, "slow");
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let polls = sim.calls_to("checkPhoneValidationResult").len();
    assert!(polls >= 5, "expected many polls, got {polls}");
    assert_eq!(requests(&sim, "slow"), 1, "one call for {polls} polls");
    // A second login is a second call, not more.
    let o = login(&env, "slow");
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(requests(&sim, "slow"), 2);
}

#[test]
fn the_backup_phone_is_used_when_the_primary_request_fails() {
    let (sim, env) = setup("");
    let o = login(&env, "twophones");
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(
        o.infos(),
        vec!["Calling +1 ***-***-0199: answer and press #."]
    );
    // One request per phone: the primary's failed, then the backup's; none sent again.
    assert_eq!(requests(&sim, "twophones"), 2);
}

#[test]
fn the_portal_request_limit_is_a_lock_not_an_outage() {
    let (_sim, env) = setup("");
    for _ in 0..3 {
        assert_eq!(login(&env, "m1").auth, Some(PAM_SUCCESS));
    }
    let o = login(&env, "m1");
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    assert_eq!(o.errors(), vec!["Account has been locked for 60 minutes."]);
}

#[test]
fn an_unanswered_call_ends_within_phone_timeout_and_is_counted() {
    let (sim, env) = setup("[lockout]\nphone = { max_failures = 2 }\n");
    let o = login(&env, "silent");
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert!(
        (4500..=7000).contains(&o.elapsed_ms),
        "phone_timeout_s = 5 took {} ms",
        o.elapsed_ms
    );
    assert_eq!(requests(&sim, "silent"), 1);
    // The second timeout locks the phone factor; then no prompt and no call at all.
    assert_eq!(login(&env, "silent").auth, Some(PAM_MAXTRIES));
    let before = sim.calls().len();
    let o = login(&env, "silent");
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(sim.calls().len(), before, "no portal call while locked");
}
