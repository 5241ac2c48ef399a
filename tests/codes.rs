//! SPEC §5, row by row: the PAM code and the exact client message (PAM_ERROR_MSG) of every
//! situation, plus the prompts of §3 `[prompts]` and the account hook of §6.
//!
//! Each test starts its own portal-sim (HTTPS) and environment and runs every login through the
//! real libpam in a fresh `pam-drive` process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, msg, prompt, *};
use pam_testkit::{closed_port_url, standard, Env, Exhausted, Outcome, Sim, Style};
use serde_json::json;

/// Asserts the authenticate code and the exact list of error messages.
fn expect(o: &Outcome, code: i32, errors: &[&str]) {
    assert_eq!(
        o.auth,
        Some(code),
        "expected {}, got: {}",
        name(code),
        o.describe()
    );
    assert_eq!(o.errors(), errors, "{}", o.describe());
}

fn alice_ok(env: &Env) -> Outcome {
    env.login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run()
}

/// alice with a wrong password (and her right answer).
fn alice_wrong(env: &Env) -> Outcome {
    env.login()
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .run()
}

/// `user` from [`CLIENT`], answering the prompts with `answers`.
fn login_as(env: &Env, user: &str, answers: &[&str]) -> Outcome {
    env.login().user(user).rhost(CLIENT).answers(answers).run()
}

/// authenticate, then acct_mgmt in the same transaction, both PAM_SUCCESS.
fn expect_auth_and_acct_ok(o: &Outcome) {
    assert_eq!(
        (o.auth, o.acct),
        (Some(PAM_SUCCESS), Some(PAM_SUCCESS)),
        "{}",
        o.describe()
    );
}

/// Two failures lock a username or an address for 10 minutes.
const LOCK_AFTER_2: &str = "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\nip = { max_failures = 2, window_s = 600, lock_s = 600 }\n";

/// A portal-sim, and an environment whose portal URL is a closed port; `portal_extra` goes into
/// `[portal]` too.
fn portal_down(portal_extra: &str) -> (Sim, Env) {
    standard(&format!(
        "[portal]\nurl = \"{}\"\n{portal_extra}",
        closed_port_url()
    ))
}

/// The usual two prompts: password then the question, both echo off.
fn expect_two_prompts(o: &Outcome) {
    assert_eq!(
        o.prompt_list(),
        prompt::password_and_pet(),
        "{}",
        o.describe()
    );
}

// ---- success ----------------------------------------------------------------------------

#[test]
fn success_is_pam_success_with_password_then_question_prompts() {
    let (_sim, env) = standard("");
    let o = alice_ok(&env);
    expect(&o, PAM_SUCCESS, &[]);
    expect_two_prompts(&o);
}

#[test]
fn success_then_acct_mgmt_and_setcred_succeed() {
    let (_sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .auth()
        .acct()
        .setcred()
        .run();
    assert_eq!(
        (o.auth, o.acct, o.setcred),
        (Some(PAM_SUCCESS), Some(PAM_SUCCESS), Some(PAM_SUCCESS)),
        "{}",
        o.describe()
    );
}

#[test]
fn success_answer_is_compared_case_insensitively_by_the_portal() {
    let (_sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, "  fLUFFY "])
        .run();
    expect(&o, PAM_SUCCESS, &[]);
}

#[test]
fn success_without_rhost() {
    let (_sim, env) = standard("");
    let o = env.login().answers(&[ALICE_PW, ALICE_ANSWER]).run();
    expect(&o, PAM_SUCCESS, &[]);
}

#[test]
fn success_custom_prompts_and_per_service_override() {
    let (_sim, env) = standard(
        r#"
[prompts]
password = "Portal password: "
question = "Q: {question} > "
[services.openvpn]
prompts = { question = "Answer: ", info = false }
"#,
    );
    let o = alice_ok(&env);
    expect(&o, PAM_SUCCESS, &[]);
    assert_eq!(
        o.prompt_list(),
        vec![
            (Style::EchoOff, "Portal password: ".to_string()),
            (Style::EchoOff, format!("Q: {PET_QUESTION} > "))
        ],
        "{}",
        o.describe()
    );
    env.stack("openvpn", "");
    let o = env
        .login()
        .service("openvpn")
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    expect(&o, PAM_SUCCESS, &[]);
    assert_eq!(
        o.prompt_list(),
        vec![
            (Style::EchoOff, "Portal password: ".to_string()),
            (Style::EchoOff, "Answer: ".to_string())
        ],
        "{}",
        o.describe()
    );
    assert!(o.infos().is_empty(), "info = false: {}", o.describe());
}

#[test]
fn success_no_second_factor_enrolled_without_requirement_is_password_only() {
    let (_sim, env) = standard("[auth]\nrequire_second_factor = false\n");
    let o = login_as(&env, "carol", &[CAROL_PW]);
    expect(&o, PAM_SUCCESS, &[]);
    assert_eq!(
        o.prompt_list(),
        vec![(Style::EchoOff, prompt::PASSWORD.to_string())],
        "{}",
        o.describe()
    );
}

#[test]
fn success_second_factor_none_is_password_only() {
    // `none`: password only; alice's portal account still requires her question
    // (secondaryLoginRequiredFlag), so the portal refuses a login without the answer...
    let (_sim, env) = standard("[auth]\nsecond_factor = \"none\"\n");
    let o = login_as(&env, "carol", &[CAROL_PW]);
    expect(&o, PAM_SUCCESS, &[]);
    assert_eq!(o.prompts().len(), 1, "{}", o.describe());
    // ...and that is a refusal, never a success.
    let o = alice_ok(&env);
    assert_ne!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- wrong password or answer, unknown user, per-user IP refusal: PAM_AUTH_ERR ----------

#[test]
fn auth_err_wrong_password() {
    let (_sim, env) = standard("");
    let o = alice_wrong(&env);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    expect_two_prompts(&o);
}

#[test]
fn auth_err_wrong_answer() {
    let (_sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, "Garfield"])
        .run();
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    expect_two_prompts(&o);
}

#[test]
fn auth_err_unknown_user() {
    let (_sim, env) = standard("");
    let o = login_as(&env, "nosuchuser", &["Some-Pass1!", "Fluffy"]);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    assert_eq!(o.prompts().len(), 2, "{}", o.describe());
    assert_eq!(o.prompts()[0].text, prompt::PASSWORD);
    assert!(o.prompts().iter().all(|p| p.style == Style::EchoOff));
}

#[test]
fn auth_err_per_user_ip_refusal_from_config() {
    let (sim, env) = standard("[access.users.alice]\nallow = [\"10.0.0.0/8\"]\n");
    let o = alice_ok(&env);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    expect_two_prompts(&o);
    assert_eq!(
        sim.login_calls("alice"),
        0,
        "password sent: {:?}",
        sim.calls()
    );
    // From inside the allowed range the same login works.
    let o = env
        .login()
        .rhost("10.1.2.3")
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    expect(&o, PAM_SUCCESS, &[]);
}

#[test]
fn auth_err_per_user_ip_refusal_from_portal_restriction() {
    // frank's portal ipAddressRestriction is 10.0.0.0/8; honor_ip_restriction defaults to true.
    let (sim, env) = standard("");
    let o = login_as(&env, "frank", &[FRANK_PW, FRANK_ANSWER]);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    assert_eq!(
        sim.login_calls("frank"),
        0,
        "password sent: {:?}",
        sim.calls()
    );
}

#[test]
fn auth_err_per_user_deny_list() {
    let (sim, env) = standard("[access.users.alice]\ndeny = [\"198.51.100.0/24\"]\n");
    let o = alice_ok(&env);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    assert_eq!(sim.login_calls("alice"), 0);
}

// ---- refused account state ----------------------------------------------------------------

#[test]
fn auth_err_refused_account_state_disabled() {
    let (_sim, env) = standard("");
    let o = login_as(&env, "dave", &[DAVE_PW, DAVE_ANSWER]);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
}

#[test]
fn auth_err_refused_account_state_vpn_only_on_non_vpn_service() {
    let (_sim, env) = standard("");
    let o = login_as(&env, "erin", &[ERIN_PW, ERIN_ANSWER]);
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
}

#[test]
fn success_vpn_only_on_vpn_service() {
    let (_sim, env) = standard("[auth]\nvpn_services = [\"openvpn\"]\n");
    env.stack("openvpn", "");
    let o = env
        .login()
        .service("openvpn")
        .user("erin")
        .rhost(CLIENT)
        .answers(&[ERIN_PW, ERIN_ANSWER])
        .auth()
        .acct()
        .run();
    expect_auth_and_acct_ok(&o);
}

#[test]
fn success_vpn_only_on_default_vpn_service_ocserv() {
    // vpn_services defaults to ["openvpn", "ocserv"].
    let (_sim, env) = standard("");
    env.stack("ocserv", "");
    let o = env
        .login()
        .service("ocserv")
        .user("erin")
        .rhost(CLIENT)
        .answers(&[ERIN_PW, ERIN_ANSWER])
        .run();
    expect(&o, PAM_SUCCESS, &[]);
}

#[test]
fn auth_err_vpn_only_wrong_password_on_vpn_service() {
    let (_sim, env) = standard("");
    env.stack("openvpn", "");
    let o = env
        .login()
        .service("openvpn")
        .user("erin")
        .rhost(CLIENT)
        .answers(&["Wrong-Pass5!", ERIN_ANSWER])
        .run();
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
}

#[test]
fn auth_err_refused_account_state_is_not_counted() {
    let (_sim, env) = standard(LOCK_AFTER_2);
    for _ in 0..3 {
        let o = login_as(&env, "dave", &[DAVE_PW, DAVE_ANSWER]);
        expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    }
    expect(&alice_ok(&env), PAM_SUCCESS, &[]);
}

// ---- second factor -------------------------------------------------------------------------

#[test]
fn auth_err_no_second_factor_enrolled_with_require_second_factor() {
    let (_sim, env) = standard(LOCK_AFTER_2);
    // require_second_factor defaults to true; carol has no factor enrolled. Not counted.
    for _ in 0..3 {
        let o = env
            .login()
            .user("carol")
            .rhost(CLIENT)
            .answers(&[CAROL_PW])
            .on_exhausted(Exhausted::Empty)
            .run();
        expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    }
    expect(&alice_ok(&env), PAM_SUCCESS, &[]);
}

#[test]
fn auth_err_second_factor_question_required_but_not_enrolled() {
    let (_sim, env) = standard("[auth]\nsecond_factor = \"question\"\n");
    let o = env
        .login()
        .user("pat")
        .rhost(CLIENT)
        .answers(&[PAT_PW])
        .on_exhausted(Exhausted::Empty)
        .run();
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
}

// ---- global IP deny: PAM_PERM_DENIED, no prompt ---------------------------------------------

#[test]
fn perm_denied_global_deny_list_without_prompt() {
    let (sim, env) = standard("[access]\ndeny = [\"203.0.113.0/24\", \"2001:db8:bad::/48\"]\n");
    for addr in [
        "203.0.113.9",
        "2001:db8:bad::1",
        "[2001:db8:bad::2]",
        "::ffff:203.0.113.10",
    ] {
        let o = env
            .login()
            .rhost(addr)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run();
        expect(&o, PAM_PERM_DENIED, &[msg::IP_DENIED]);
        assert!(o.prompts().is_empty(), "{addr}: {}", o.describe());
    }
    assert_eq!(sim.login_calls("alice"), 0);
    // Another address passes.
    expect(&alice_ok(&env), PAM_SUCCESS, &[]);
}

#[test]
fn perm_denied_outside_global_allow_list() {
    let (sim, env) = standard("[access]\nallow = [\"10.0.0.0/8\"]\n");
    let o = alice_ok(&env);
    expect(&o, PAM_PERM_DENIED, &[msg::IP_DENIED]);
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(sim.login_calls("alice"), 0);
    let o = env
        .login()
        .rhost("10.9.8.7")
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    expect(&o, PAM_SUCCESS, &[]);
}

#[test]
fn perm_denied_no_address_while_allow_list_is_set() {
    let (_sim, env) = standard("[access]\nallow = [\"10.0.0.0/8\"]\n");
    for o in [
        env.login().answers(&[ALICE_PW, ALICE_ANSWER]).run(),
        env.login()
            .rhost("vpn-client.example.com")
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run(),
        env.login()
            .rhost("")
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run(),
    ] {
        expect(&o, PAM_PERM_DENIED, &[msg::IP_DENIED]);
        assert!(o.prompts().is_empty(), "{}", o.describe());
    }
}

#[test]
fn perm_denied_deny_wins_over_allow() {
    let (_sim, env) =
        standard("[access]\nallow = [\"198.51.100.0/24\"]\ndeny = [\"198.51.100.7/32\"]\n");
    expect(&alice_ok(&env), PAM_PERM_DENIED, &[msg::IP_DENIED]);
}

// ---- locks: PAM_MAXTRIES ------------------------------------------------------------------

#[test]
fn maxtries_lock_triggered_by_this_failure_and_refused_while_locked() {
    let (sim, env) = standard(
        "[lockout]\nuser = { max_failures = 3, window_s = 60, lock_s = 2 }\nip = { max_failures = 100 }\n",
    );
    for _ in 0..2 {
        expect(&alice_wrong(&env), PAM_AUTH_ERR, &[msg::INVALID]);
    }
    expect(&alice_wrong(&env), PAM_MAXTRIES, &[&msg::locked(1)]);
    let calls = sim.login_calls("alice");
    let o = alice_ok(&env);
    expect(&o, PAM_MAXTRIES, &[&msg::locked(1)]);
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(sim.login_calls("alice"), calls, "API called while locked");
}

#[test]
fn maxtries_default_lock_reads_30_minutes() {
    let (_sim, env) = standard("[lockout]\nuser = { max_failures = 2 }\n");
    expect(&alice_wrong(&env), PAM_AUTH_ERR, &[msg::INVALID]);
    expect(&alice_wrong(&env), PAM_MAXTRIES, &[&msg::locked(30)]);
    let o = alice_ok(&env);
    expect(&o, PAM_MAXTRIES, &[&msg::locked(30)]);
}

#[test]
fn maxtries_portal_account_locked() {
    // The portal locks after 2 failures (for the username and for the calling address);
    // the module's own lockouts are out of the way.
    let sim = Sim::start(&fixtures::standard_with_portal_lockout(2));
    let env = Env::new(
        &sim,
        "[lockout]\nuser = { max_failures = 100 }\nip = { max_failures = 100 }\n",
    );
    for _ in 0..2 {
        expect(&alice_wrong(&env), PAM_AUTH_ERR, &[msg::INVALID]);
    }
    let o = alice_ok(&env);
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    let errs = o.errors();
    assert_eq!(errs.len(), 1, "{}", o.describe());
    assert!(
        errs[0].starts_with("Account has been locked for ") && errs[0].ends_with(" minutes."),
        "{}",
        o.describe()
    );
}

// ---- portal refuses the concentrator's address -------------------------------------------

#[test]
fn auth_err_portal_unauthorized_ip_address() {
    // frank's portal restriction (10.0.0.0/8) excludes the sim's caller 127.0.0.1; with
    // honor_ip_restriction = false the module sends the password and the portal refuses.
    // Not counted.
    let (sim, env) = standard(&format!(
        "[portal]\nhonor_ip_restriction = false\n{LOCK_AFTER_2}"
    ));
    for _ in 0..3 {
        let o = login_as(&env, "frank", &[FRANK_PW, FRANK_ANSWER]);
        expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    }
    assert!(sim.login_calls("frank") >= 1, "{:?}", sim.calls());
    expect(&alice_ok(&env), PAM_SUCCESS, &[]);
}

// ---- outages: PAM_AUTHINFO_UNAVAIL ----------------------------------------------------------

#[test]
fn authinfo_unavail_portal_unreachable() {
    let (_sim, env) = portal_down("");
    let o = alice_ok(&env);
    expect(&o, PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_portal_stopped_mid_life() {
    let (mut sim, env) = standard("");
    expect(&alice_ok(&env), PAM_SUCCESS, &[]);
    sim.stop();
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_tls_failure_untrusted_certificate() {
    // Trust the CA of another sim: the certificate presented is not trusted.
    let other = Sim::start(&fixtures::standard());
    let (_sim, env) = standard(&format!(
        "[portal]\nca_file = \"{}\"\n",
        other.ca_file.as_ref().unwrap().display()
    ));
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_tls_failure_without_ca_file() {
    // The sim's own CA is in no system store.
    let (_sim, env) = standard("");
    env.remove_config_key("portal", "ca_file");
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_server_error() {
    let (sim, env) = standard("");
    sim.fault(json!({"fault": "status500"}));
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_timeout() {
    let (sim, env) = standard("");
    sim.fault(json!({"fault": "hang"}));
    let o = alice_ok(&env);
    expect(&o, PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
    assert!(o.elapsed_ms < 4000, "{}", o.describe());
}

#[test]
fn authinfo_unavail_rate_limited() {
    let (sim, env) = standard("");
    sim.fault(json!({"fault": "ratelimit"}));
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_service_credentials_rejected() {
    let (_sim, env) = standard("");
    std::fs::write(&env.key_file, "not-the-key\n").unwrap();
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

#[test]
fn authinfo_unavail_garbled_answer() {
    let (sim, env) = standard("");
    sim.fault(json!({"fault": "garbage"}));
    expect(&alice_ok(&env), PAM_AUTHINFO_UNAVAIL, &[msg::UNAVAILABLE]);
}

// ---- on_unavailable = "ignore": PAM_IGNORE ------------------------------------------------

/// `auth [success=done ignore=ignore default=die] <module>` then `fallback`: with the module
/// answering PAM_IGNORE the fallback decides; with any other failure the stack dies with the
/// module's code.
fn ignore_stack(env: &Env, service: &str, fallback: &str) {
    env.stack_text(
        service,
        &format!(
            "auth [success=done ignore=ignore default=die] {{module}} config={{config}}\nauth required {{sys:{fallback}}}\naccount required {{module}} config={{config}}\n"
        ),
    );
}

#[test]
fn ignore_on_unavailable_lets_the_rest_of_the_stack_decide() {
    let (_sim, env) = portal_down("on_unavailable = \"ignore\"\n");
    ignore_stack(&env, "permit", "pam_permit.so");
    ignore_stack(&env, "deny", "pam_deny.so");
    let o = env
        .login()
        .service("permit")
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    // PAM_IGNORE: pam_permit decides; no client message from the module.
    expect(&o, PAM_SUCCESS, &[]);
    let o = env
        .login()
        .service("deny")
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    // PAM_IGNORE: pam_deny decides (PAM_AUTH_ERR), not the module (PAM_AUTHINFO_UNAVAIL).
    expect(&o, PAM_AUTH_ERR, &[]);
}

#[test]
fn ignore_on_unavailable_does_not_let_a_wrong_password_through() {
    let (_sim, env) = standard("[portal]\non_unavailable = \"ignore\"\n");
    ignore_stack(&env, "permit", "pam_permit.so");
    let o = env
        .login()
        .service("permit")
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .run();
    expect(&o, PAM_AUTH_ERR, &[msg::INVALID]);
    let o = env
        .login()
        .service("permit")
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    expect(&o, PAM_SUCCESS, &[]);
}

#[test]
fn ignore_on_unavailable_plain_required_line_is_a_refusal() {
    // SPEC §5: with a plain `auth required` line libpam turns PAM_IGNORE into a refusal.
    let (_sim, env) = portal_down("on_unavailable = \"ignore\"\n");
    let o = alice_ok(&env);
    assert_ne!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert!(o.errors().is_empty(), "{}", o.describe());
}

// ---- bad configuration: PAM_SERVICE_ERR ---------------------------------------------------

#[test]
fn service_err_bad_configuration() {
    let env = Env::with_raw_config("[portal\nurl = 'https://127.0.0.1:1/rest/v3.1'\n");
    let o = alice_ok(&env);
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
    assert!(o.prompts().is_empty(), "{}", o.describe());
}

#[test]
fn service_err_unknown_module_argument() {
    let (_sim, env) = standard("");
    env.stack("test", "no_such_option");
    let o = alice_ok(&env);
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
}

// ---- conversation failure: PAM_CONV_ERR ---------------------------------------------------

#[test]
fn conv_err_null_answer_to_password() {
    let (_sim, env) = standard("");
    let o = env.login().rhost(CLIENT).run();
    assert_eq!(o.auth, Some(PAM_CONV_ERR), "{}", o.describe());
}

#[test]
fn conv_err_null_answer_to_question() {
    let (sim, env) = standard("");
    let o = env.login().rhost(CLIENT).answer(ALICE_PW).run();
    assert_eq!(o.auth, Some(PAM_CONV_ERR), "{}", o.describe());
    assert_eq!(sim.login_calls("alice"), 0);
}

#[test]
fn conv_err_conversation_failure() {
    let (_sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .on_exhausted(Exhausted::ConvErr)
        .run();
    assert_eq!(o.auth, Some(PAM_CONV_ERR), "{}", o.describe());
    let o = env
        .login()
        .rhost(CLIENT)
        .answer(ALICE_PW)
        .on_exhausted(Exhausted::ConvErr)
        .run();
    assert_eq!(o.auth, Some(PAM_CONV_ERR), "{}", o.describe());
}

#[test]
fn conv_err_is_not_counted() {
    let (_sim, env) = standard(LOCK_AFTER_2);
    for _ in 0..3 {
        let o = env.login().rhost(CLIENT).answer(ALICE_PW).run();
        assert_eq!(o.auth, Some(PAM_CONV_ERR), "{}", o.describe());
    }
    expect(&alice_ok(&env), PAM_SUCCESS, &[]);
}

// ---- empty and over-long passwords: PAM_AUTH_ERR, counted, no API call -----------------------

/// `password` (with alice's right answer) is refused and counted without an API call: the
/// second attempt locks her.
fn refused_and_counted_without_api_call(password: &str) {
    let (sim, env) =
        standard("[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\n");
    let attempt = || {
        env.login()
            .rhost(CLIENT)
            .answers(&[password, ALICE_ANSWER])
            .on_exhausted(Exhausted::Empty)
            .run()
    };
    expect(&attempt(), PAM_AUTH_ERR, &[msg::INVALID]);
    assert_eq!(sim.login_calls("alice"), 0);
    expect(&attempt(), PAM_MAXTRIES, &[&msg::locked(10)]);
}

#[test]
fn auth_err_empty_password_counted_without_api_call() {
    refused_and_counted_without_api_call("");
}

#[test]
fn auth_err_overlong_password_counted_without_api_call() {
    refused_and_counted_without_api_call(&"A".repeat(513));
}

// ---- PAM_SILENT: no client message ----------------------------------------------------------

#[test]
fn silent_suppresses_every_error_message() {
    let (sim, env) = standard(
        "[access]\ndeny = [\"203.0.113.0/24\"]\n[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\n",
    );
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .silent()
        .run();
    expect(&o, PAM_AUTH_ERR, &[]);
    let o = env
        .login()
        .rhost("203.0.113.5")
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .silent()
        .run();
    expect(&o, PAM_PERM_DENIED, &[]);
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .silent()
        .run();
    expect(&o, PAM_MAXTRIES, &[]);
    let o = env
        .login()
        .user("bob")
        .rhost(CLIENT)
        .answers(&[BOB_PW, BOB_ANSWER])
        .silent()
        .run();
    expect(&o, PAM_SUCCESS, &[]);
    sim.fault(json!({"fault": "status500"}));
    let o = env
        .login()
        .user("bob")
        .rhost(CLIENT)
        .answers(&[BOB_PW, BOB_ANSWER])
        .silent()
        .run();
    expect(&o, PAM_AUTHINFO_UNAVAIL, &[]);
    assert!(o.messages.iter().all(|m| m.is_prompt()), "{}", o.describe());
}

// ---- lockout state unusable: PAM_SYSTEM_ERR -------------------------------------------------

#[test]
fn system_err_lockout_state_cannot_be_written() {
    let (_sim, env) = standard("");
    // The lockout directory's path is taken by a regular file.
    std::fs::write(&env.lockdir, "not a directory").unwrap();
    let o = alice_wrong(&env);
    assert_eq!(o.auth, Some(PAM_SYSTEM_ERR), "{}", o.describe());
    let o = alice_ok(&env);
    assert_ne!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- show_reasons ---------------------------------------------------------------------------

#[test]
fn auth_err_show_reasons_gives_the_portal_text() {
    let (_sim, env) = standard("[auth]\nshow_reasons = true\n");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, "Garfield"])
        .run();
    expect(
        &o,
        PAM_AUTH_ERR,
        &["Invalid answer provided for security question."],
    );
}

// ---- pam_sm_acct_mgmt (§6) and pam_sm_setcred ----------------------------------------------

fn acct(env: &Env, service: &str, user: &str, rhost: &str) -> Outcome {
    env.login()
        .service(service)
        .user(user)
        .rhost(rhost)
        .acct()
        .run()
}

#[test]
fn acct_success_on_its_own() {
    let (_sim, env) = standard("");
    let o = acct(&env, "test", "alice", CLIENT);
    assert_eq!(
        (o.auth, o.acct),
        (None, Some(PAM_SUCCESS)),
        "{}",
        o.describe()
    );
    assert!(o.prompts().is_empty(), "{}", o.describe());
}

#[test]
fn acct_user_unknown() {
    let (_sim, env) = standard("");
    let o = acct(&env, "test", "nosuchuser", CLIENT);
    assert_eq!(o.acct, Some(PAM_USER_UNKNOWN), "{}", o.describe());
}

#[test]
fn acct_expired_for_disabled_state() {
    let (_sim, env) = standard("");
    let o = acct(&env, "test", "dave", CLIENT);
    assert_eq!(o.acct, Some(PAM_ACCT_EXPIRED), "{}", o.describe());
}

#[test]
fn acct_perm_denied_vpn_only_on_non_vpn_service() {
    let (_sim, env) = standard("");
    let o = acct(&env, "test", "erin", CLIENT);
    assert_eq!(o.acct, Some(PAM_PERM_DENIED), "{}", o.describe());
    env.stack("openvpn", "");
    let o = acct(&env, "openvpn", "erin", CLIENT);
    assert_eq!(o.acct, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn acct_perm_denied_without_ssl_vpn_flag_on_vpn_service() {
    let (_sim, env) = standard("");
    env.stack("openvpn", "");
    let o = acct(&env, "openvpn", "gina", CLIENT);
    assert_eq!(o.acct, Some(PAM_PERM_DENIED), "{}", o.describe());
    let o = acct(&env, "test", "gina", CLIENT);
    assert_eq!(o.acct, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn acct_perm_denied_address_refused() {
    let (_sim, env) = standard(
        "[access]\ndeny = [\"203.0.113.0/24\"]\n[access.users.alice]\nallow = [\"10.0.0.0/8\"]\n",
    );
    let o = acct(&env, "test", "bob", "203.0.113.9");
    assert_eq!(o.acct, Some(PAM_PERM_DENIED), "{}", o.describe());
    let o = acct(&env, "test", "alice", CLIENT);
    assert_eq!(o.acct, Some(PAM_PERM_DENIED), "{}", o.describe());
    let o = acct(&env, "test", "frank", CLIENT);
    assert_eq!(
        o.acct,
        Some(PAM_PERM_DENIED),
        "portal restriction: {}",
        o.describe()
    );
    let o = acct(&env, "test", "alice", "10.1.1.1");
    assert_eq!(o.acct, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn acct_maxtries_when_locked() {
    let (_sim, env) =
        standard("[lockout]\nuser = { max_failures = 1, window_s = 600, lock_s = 600 }\n");
    let o = alice_wrong(&env);
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    let o = acct(&env, "test", "alice", CLIENT);
    assert_eq!(o.acct, Some(PAM_MAXTRIES), "{}", o.describe());
}

#[test]
fn acct_authinfo_unavail_when_portal_down() {
    let (_sim, env) = portal_down("");
    let o = acct(&env, "test", "alice", CLIENT);
    assert_eq!(o.acct, Some(PAM_AUTHINFO_UNAVAIL), "{}", o.describe());
}

#[test]
fn acct_ignore_when_portal_down_and_on_unavailable_ignore() {
    let (_sim, env) = portal_down("on_unavailable = \"ignore\"\n");
    env.stack_text(
        "permit",
        "account [success=done ignore=ignore default=die] {module} config={config}\naccount required {sys:pam_permit.so}\n",
    );
    env.stack_text(
        "deny",
        "account [success=done ignore=ignore default=die] {module} config={config}\naccount required {sys:pam_deny.so}\n",
    );
    let o = acct(&env, "permit", "alice", CLIENT);
    assert_eq!(o.acct, Some(PAM_SUCCESS), "{}", o.describe());
    let o = acct(&env, "deny", "alice", CLIENT);
    assert_eq!(o.acct, Some(PAM_AUTH_ERR), "{}", o.describe());
}

#[test]
fn acct_after_successful_authenticate_in_the_same_transaction() {
    let (_sim, env) = standard("");
    let o = env
        .login()
        .user("bob")
        .rhost(CLIENT)
        .answers(&[BOB_PW, BOB_ANSWER])
        .auth()
        .acct()
        .run();
    expect_auth_and_acct_ok(&o);
}

#[test]
fn acct_reuses_the_lookup_authenticate_made() {
    // SPEC §6: acct_mgmt reuses what authenticate learned in the same transaction: one user
    // look-up for both calls.
    let (sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .auth()
        .acct()
        .run();
    expect_auth_and_acct_ok(&o);
    let lookups = sim.calls_to("getUsers");
    assert_eq!(lookups.len(), 1, "{lookups:?}");
}

#[test]
fn setcred_is_success() {
    let (_sim, env) = standard("");
    let o = env.login().setcred().run();
    assert_eq!(o.setcred, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- internal fault: PAM_ABORT ------------------------------------------------------------

#[test]
fn abort_internal_fault_panic_is_pam_abort_and_the_host_survives() {
    // The debug build's test hook (src/lib.rs) panics inside pam_sm_authenticate.
    let (sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .var("PAM_PORTAL_TEST_PANIC", "1")
        .auth()
        .acct()
        .run();
    // pam-drive itself reports: the host process survived the panic and went on.
    assert_eq!(o.auth, Some(PAM_ABORT), "{}", o.describe());
    assert!(o.messages.is_empty(), "{}", o.describe());
    assert!(sim.calls().is_empty(), "no portal call before the fault");
    // The same host, without the fault, logs in.
    let o = alice_ok(&env);
    expect(&o, PAM_SUCCESS, &[]);
}
