//! SPEC §3 `second_factor`, §4.7 and §5: the phone binding (info line naming the channel with
//! only the last four digits, optional confirm prompt, polling, denial and timeout as failures,
//! the phone factor's own lockout), and TOTP / VeriSign codes ("Verification code: " then
//! performExternalAuthentication).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use pam_testkit::codes::*;
use pam_testkit::fixtures::{msg, prompt, *};
use pam_testkit::{standard, Env, Exhausted, Outcome, Sim, Style};

/// Fast polling and a short timeout.
const FAST: &str = "[auth]\nphone_poll_ms = 100\nphone_timeout_s = 2\n";

fn phone_login(env: &Env, user: &str, pw: &str) -> Outcome {
    env.login()
        .user(user)
        .rhost(CLIENT)
        .answer(pw)
        .on_exhausted(Exhausted::Empty)
        .timeout(Duration::from_secs(60))
        .run()
}

fn phone_setup(extra: &str) -> (Sim, Env) {
    let (sim, env) = standard(FAST);
    env.merge_config(extra);
    (sim, env)
}

/// The one info line, checked to show no more than the last four digits of `number`.
fn info_line(o: &Outcome, number: &str) -> String {
    let infos = o.infos();
    assert_eq!(infos.len(), 1, "one info line expected: {}", o.describe());
    let text = infos[0].to_string();
    let head = &number[..number.len() - 4];
    assert!(
        !text.contains(number) && !text.contains(head),
        "the info line shows more than the last four digits: {text:?}"
    );
    text
}

// ---- phone: success ---------------------------------------------------------------------------

#[test]
fn success_phone_voice_call_approved() {
    let (sim, env) = phone_setup("");
    let o = phone_login(&env, "pat", PAT_PW);
    code(&o, PAM_SUCCESS);
    assert_eq!(
        o.prompt_list(),
        vec![(Style::EchoOff, prompt::PASSWORD.to_string())],
        "phone_confirm defaults to false: {}",
        o.describe()
    );
    let text = info_line(&o, PAT_PHONE);
    assert!(text.contains("0100"), "the last four digits: {text:?}");
    assert!(
        text.to_lowercase().contains("call"),
        "names the channel: {text:?}"
    );
    assert!(o.errors().is_empty(), "{}", o.describe());
    assert_eq!(sim.calls_to("requestPhoneValidation").len(), 1);
    assert!(!sim.calls_to("checkPhoneValidationResult").is_empty());
}

#[test]
fn success_phone_sms_text_names_the_channel() {
    let (_sim, env) = phone_setup("");
    let o = phone_login(&env, "sam", PHONE_PW);
    code(&o, PAM_SUCCESS);
    let text = info_line(&o, SAM_PHONE);
    assert!(text.contains("0177"), "{text:?}");
    assert!(
        text.to_lowercase().contains("text"),
        "names the channel: {text:?}"
    );
}

#[test]
fn success_phone_app_names_the_channel() {
    let (_sim, env) = phone_setup("");
    let o = phone_login(&env, "appy", PHONE_PW);
    code(&o, PAM_SUCCESS);
    let text = info_line(&o, PAT_PHONE);
    assert!(
        text.to_lowercase().contains("app"),
        "names the channel: {text:?}"
    );
}

#[test]
fn success_phone_with_confirm_prompt() {
    let (_sim, env) = phone_setup("[prompts]\nphone_confirm = true\n");
    let o = phone_login(&env, "pat", PAT_PW);
    code(&o, PAM_SUCCESS);
    let prompts = o.prompts();
    assert_eq!(
        prompts.len(),
        2,
        "password, then the confirm prompt: {}",
        o.describe()
    );
    assert_eq!(prompts[0].text, prompt::PASSWORD);
}

#[test]
fn success_phone_without_info_messages() {
    // [prompts] info = false (OpenVPN's plugin fails on any unmatched message).
    let (_sim, env) = phone_setup("[prompts]\ninfo = false\n");
    let o = phone_login(&env, "pat", PAT_PW);
    code(&o, PAM_SUCCESS);
    assert!(o.infos().is_empty(), "{}", o.describe());
}

#[test]
fn success_phone_under_second_factor_phone() {
    let (_sim, env) = phone_setup("[auth]\nsecond_factor = \"phone\"\n");
    code(&phone_login(&env, "pat", PAT_PW), PAM_SUCCESS);
    // alice has no phone binding: refused.
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .on_exhausted(Exhausted::Empty)
        .run();
    code(&o, PAM_AUTH_ERR);
}

// ---- phone: failures --------------------------------------------------------------------------

#[test]
fn auth_err_phone_denied() {
    let (_sim, env) = phone_setup("");
    let o = phone_login(&env, "penny", PHONE_PW);
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
}

#[test]
fn auth_err_phone_timed_out() {
    let (_sim, env) = phone_setup("");
    let o = phone_login(&env, "paul", PHONE_PW);
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
    assert!(
        (1500..=4500).contains(&o.elapsed_ms),
        "phone_timeout_s = 2: took {} ms",
        o.elapsed_ms
    );
}

#[test]
fn auth_err_phone_binding_blocked() {
    let (sim, env) = phone_setup("");
    let o = phone_login(&env, "bea", PHONE_PW);
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
    assert!(
        sim.calls_to("requestPhoneValidation").is_empty(),
        "{:?}",
        sim.calls()
    );
}

#[test]
fn auth_err_phone_user_wrong_password_rings_no_phone() {
    let (sim, env) = phone_setup("");
    let o = phone_login(&env, "pat", "Wrong-Pass1!");
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
    assert!(
        sim.calls_to("requestPhoneValidation").is_empty(),
        "{:?}",
        sim.calls()
    );
    assert!(o.infos().is_empty(), "{}", o.describe());
}

// ---- phone factor lockout (§4.3, §7) ------------------------------------------------------------

#[test]
fn maxtries_phone_factor_locked_after_denials() {
    let (sim, env) = phone_setup(
        "[lockout]\nphone = { max_failures = 2, window_s = 600, lock_s = 600 }\nuser = { max_failures = 100 }\nip = { max_failures = 100 }\n",
    );
    code(&phone_login(&env, "penny", PHONE_PW), PAM_AUTH_ERR);
    let o = phone_login(&env, "penny", PHONE_PW);
    code(&o, PAM_MAXTRIES);
    assert_eq!(o.errors(), vec![msg::locked(10)], "{}", o.describe());
    let calls = sim.login_calls("penny");
    let o = phone_login(&env, "penny", PHONE_PW);
    code(&o, PAM_MAXTRIES);
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(o.errors(), vec![msg::locked(10)], "{}", o.describe());
    assert_eq!(sim.login_calls("penny"), calls, "API called while locked");
}

#[test]
fn maxtries_after_five_phone_failures_with_the_default_policy_and_no_new_call() {
    // The default [lockout] phone policy: 5 failures in an hour lock the phone factor for an hour.
    let (sim, env) = phone_setup("");
    for i in 1..=4 {
        code(&phone_login(&env, "penny", PHONE_PW), PAM_AUTH_ERR);
        assert_eq!(sim.calls_to("requestPhoneValidation").len(), i);
    }
    let o = phone_login(&env, "penny", PHONE_PW);
    code(&o, PAM_MAXTRIES);
    assert_eq!(o.errors(), vec![msg::locked(60)], "{}", o.describe());
    assert_eq!(sim.calls_to("requestPhoneValidation").len(), 5);
    // Locked: no prompt, no portal call at all, no phone call.
    let before = sim.calls().len();
    let o = phone_login(&env, "penny", PHONE_PW);
    code(&o, PAM_MAXTRIES);
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(
        sim.calls().len(),
        before,
        "a portal call while the phone factor is locked"
    );
}

#[test]
fn phone_failures_count_for_the_user_and_the_address() {
    let (_sim, env) = phone_setup(
        "[lockout]\nphone = { max_failures = 100 }\nuser = { max_failures = 100 }\nip = { max_failures = 2, window_s = 600, lock_s = 600 }\n",
    );
    code(&phone_login(&env, "penny", PHONE_PW), PAM_AUTH_ERR);
    code(&phone_login(&env, "penny", PHONE_PW), PAM_MAXTRIES);
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    code(&o, PAM_MAXTRIES);
}

// ---- TOTP and VeriSign codes -------------------------------------------------------------------

fn code_login(env: &Env, user: &str, answers: &[&str]) -> Outcome {
    env.login()
        .user(user)
        .rhost(CLIENT)
        .answers(answers)
        .on_exhausted(Exhausted::Empty)
        .run()
}

#[test]
fn success_totp_code() {
    let (sim, env) = standard("");
    let o = code_login(&env, "tina", &[PHONE_PW, CODE]);
    code(&o, PAM_SUCCESS);
    let prompts = o.prompts();
    assert_eq!(prompts.len(), 2, "{}", o.describe());
    assert_eq!(prompts[0].text, prompt::PASSWORD);
    assert_eq!(prompts[1].text, "Verification code: ", "{}", o.describe());
    assert_eq!(sim.calls_to("performExternalAuthentication").len(), 1);
}

#[test]
fn auth_err_totp_wrong_code_is_counted() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\nip = { max_failures = 100 }\n",
    );
    let o = code_login(&env, "tina", &[PHONE_PW, "000000"]);
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
    let o = code_login(&env, "tina", &[PHONE_PW, "000001"]);
    code(&o, PAM_MAXTRIES);
}

#[test]
fn auth_err_totp_wrong_password_right_code() {
    let (_sim, env) = standard("");
    let o = code_login(&env, "tina", &["Wrong-Pass1!", CODE]);
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
}

#[test]
fn success_verisign_out_of_sync_asks_for_a_second_code() {
    let (sim, env) = standard("");
    let o = code_login(&env, "vic", &[PHONE_PW, CODE, SECOND_CODE]);
    code(&o, PAM_SUCCESS);
    let prompts = o.prompts();
    assert_eq!(prompts.len(), 3, "{}", o.describe());
    assert_eq!(prompts[1].text, "Verification code: ", "{}", o.describe());
    let calls = sim.calls_to("performExternalAuthentication");
    assert_eq!(
        calls.len(),
        2,
        "the call is repeated with the second code: {calls:?}"
    );
}
