//! SPEC §8: one `pam_syslog` line per decision, key=value, with the real reason; never a
//! password, answer or API key; user-supplied strings escaped. Captured under pam_wrapper,
//! which prints the module's `pam_syslog` calls on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, *};
use pam_testkit::{closed_port_url, standard, Env, LogLine, LoginBuilder, Outcome, Sim};
use serde_json::json;

const SERVICE: &str = "sshd";

fn sshd(extra: &str) -> (Sim, Env) {
    let (sim, env) = standard(extra);
    env.stack(SERVICE, "");
    (sim, env)
}

fn login(env: &Env) -> LoginBuilder<'_> {
    env.login()
        .service(SERVICE)
        .rhost(CLIENT)
        .under_pam_wrapper()
}

/// The one decision line of an authenticate call.
fn decision(o: &Outcome) -> LogLine {
    let d = o.decisions();
    assert_eq!(
        d.len(),
        1,
        "expected one decision line; log lines: {:#?}\n{}",
        o.log_lines(),
        o.describe()
    );
    d.into_iter().next().unwrap()
}

/// Asserts the decision's `result` and `reason`, and `user`, `rhost`, `service` as given.
fn expect_decision(o: &Outcome, result: &str, reason: &str, user: &str) -> LogLine {
    let l = decision(o);
    let f = l.fields();
    assert_eq!(
        f.get("result").map(String::as_str),
        Some(result),
        "{}",
        l.text
    );
    assert_eq!(
        f.get("reason").map(String::as_str),
        Some(reason),
        "{}",
        l.text
    );
    assert_eq!(f.get("user").map(String::as_str), Some(user), "{}", l.text);
    assert_eq!(
        f.get("service").map(String::as_str),
        Some(SERVICE),
        "{}",
        l.text
    );
    assert!(l.continuation.is_empty(), "{:?}", l);
    l
}

/// Asserts the authenticate code and the decision's `reason` (whatever its `result`).
fn expect_reason(o: &Outcome, code: i32, reason: &str) -> LogLine {
    assert_eq!(o.auth, Some(code), "{}", o.describe());
    let l = decision(o);
    assert_eq!(l.field("reason").as_deref(), Some(reason), "{}", l.text);
    l
}

fn expect_rhost(l: &LogLine, rhost: &str) {
    assert_eq!(l.field("rhost").as_deref(), Some(rhost), "{}", l.text);
}

// ---- the line shape ---------------------------------------------------------------------------

#[test]
fn log_failure_line_bad_password() {
    let (_sim, env) = sshd("");
    let o = login(&env).answers(&["Wrong-Pass1!", ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    let l = expect_decision(&o, "fail", "bad_password", "alice");
    expect_rhost(&l, CLIENT);
    assert_eq!(l.field("factor").as_deref(), Some("question"), "{}", l.text);
    // The fields come in the documented order.
    let keys: Vec<String> = l.pairs().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        &keys[..6],
        &["result", "reason", "user", "rhost", "service", "factor"],
        "{}",
        l.text
    );
}

#[test]
fn log_success_line() {
    let (_sim, env) = sshd("");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let l = expect_decision(&o, "success", "ok", "alice");
    expect_rhost(&l, CLIENT);
    assert_eq!(l.field("factor").as_deref(), Some("question"), "{}", l.text);
}

#[test]
fn log_ipv6_rhost_is_logged() {
    let (_sim, env) = sshd("");
    let o = login(&env)
        .rhost("2001:db8::42")
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .run();
    let l = expect_decision(&o, "fail", "bad_password", "alice");
    assert!(
        l.field("rhost")
            .unwrap_or_default()
            .contains("2001:db8::42"),
        "{}",
        l.text
    );
}

// ---- one reason per cause ------------------------------------------------------------------------

#[test]
fn log_reason_bad_answer() {
    let (_sim, env) = sshd("");
    let o = login(&env).answers(&[ALICE_PW, "Garfield"]).run();
    let l = expect_decision(&o, "fail", "bad_answer", "alice");
    assert_eq!(l.field("factor").as_deref(), Some("question"));
}

#[test]
fn log_reason_user_unknown() {
    let (_sim, env) = sshd("");
    let o = login(&env).user("zoe").answers(&["Zoe-Pass1!", "x"]).run();
    expect_decision(&o, "fail", "user_unknown", "zoe");
}

#[test]
fn log_reason_ip_not_allowed() {
    let (_sim, env) = sshd("[access.users.alice]\nallow = [\"10.0.0.0/8\"]\n");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    expect_decision(&o, "fail", "ip_not_allowed", "alice");
    let o = login(&env)
        .user("frank")
        .answers(&[FRANK_PW, FRANK_ANSWER])
        .run();
    expect_decision(&o, "fail", "ip_not_allowed", "frank");
}

#[test]
fn log_reason_ip_denied() {
    let (_sim, env) = sshd("[access]\ndeny = [\"198.51.100.0/24\"]\n");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_PERM_DENIED));
    expect_decision(&o, "fail", "ip_denied", "alice");
}

#[test]
fn log_reason_user_locked_and_ip_locked() {
    let (_sim, env) = sshd(
        "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\nip = { max_failures = 3, window_s = 600, lock_s = 600 }\n",
    );
    for _ in 0..2 {
        login(&env).answers(&["Wrong-Pass1!", ALICE_ANSWER]).run();
    }
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    expect_decision(&o, "fail", "user_locked", "alice");
    // The address has 2 failures; one more (another user) locks it.
    login(&env).user("zoe").answers(&["x", "y"]).run();
    let o = login(&env).user("bob").answers(&[BOB_PW, BOB_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    expect_decision(&o, "fail", "ip_locked", "bob");
}

#[test]
fn log_reason_portal_locked() {
    let sim = Sim::start(&fixtures::standard_with_portal_lockout(1));
    let env = Env::new(&sim, "");
    env.stack(SERVICE, "");
    login(&env).answers(&["Wrong-Pass1!", ALICE_ANSWER]).run();
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    expect_decision(&o, "fail", "portal_locked", "alice");
}

#[test]
fn log_reason_portal_ip_refused() {
    let (_sim, env) = sshd("[portal]\nhonor_ip_restriction = false\n");
    let o = login(&env)
        .user("frank")
        .answers(&[FRANK_PW, FRANK_ANSWER])
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    expect_decision(&o, "fail", "portal_ip_refused", "frank");
}

#[test]
fn log_reason_account_state() {
    let (_sim, env) = sshd("");
    let o = login(&env)
        .user("dave")
        .answers(&[DAVE_PW, DAVE_ANSWER])
        .run();
    expect_decision(&o, "fail", "account_state", "dave");
}

#[test]
fn log_reason_no_second_factor() {
    let (_sim, env) = sshd("");
    let o = login(&env)
        .user("carol")
        .answers(&[CAROL_PW])
        .on_exhausted(pam_testkit::Exhausted::Empty)
        .run();
    expect_decision(&o, "fail", "no_second_factor", "carol");
}

#[test]
fn log_phone_success_and_reason_phone_locked() {
    let (_sim, env) = sshd(
        "[auth]\nphone_poll_ms = 100\n[lockout]\nphone = { max_failures = 1, window_s = 600, lock_s = 600 }\n",
    );
    let o = login(&env)
        .user("pat")
        .answers(&[PAT_PW])
        .on_exhausted(pam_testkit::Exhausted::Empty)
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let l = expect_decision(&o, "success", "ok", "pat");
    assert_eq!(l.field("factor").as_deref(), Some("phone"), "{}", l.text);
    // penny denies: one phone failure locks her phone factor.
    let o = login(&env)
        .user("penny")
        .answers(&[PHONE_PW])
        .on_exhausted(pam_testkit::Exhausted::Empty)
        .run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    let l = decision(&o);
    assert_eq!(l.field("factor").as_deref(), Some("phone"), "{}", l.text);
    let o = login(&env)
        .user("penny")
        .answers(&[PHONE_PW])
        .on_exhausted(pam_testkit::Exhausted::Empty)
        .run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    expect_decision(&o, "fail", "phone_locked", "penny");
}

#[test]
fn log_reason_binding_required_under_second_factor_none() {
    let (_sim, env) = sshd("[auth]\nsecond_factor = \"none\"\n");
    let o = login(&env).user("pat").answers(&[PAT_PW]).run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    expect_decision(&o, "fail", "binding_required", "pat");
}

#[test]
fn log_reason_empty_password_and_password_too_long() {
    let (_sim, env) = sshd("");
    let o = login(&env)
        .answers(&["", ALICE_ANSWER])
        .on_exhausted(pam_testkit::Exhausted::Empty)
        .run();
    expect_decision(&o, "fail", "empty_password", "alice");
    let long = "B".repeat(600);
    let o = login(&env)
        .answers(&[&long, ALICE_ANSWER])
        .on_exhausted(pam_testkit::Exhausted::Empty)
        .run();
    expect_decision(&o, "fail", "password_too_long", "alice");
}

#[test]
fn log_reason_portal_unavailable() {
    let (sim, env) = sshd("");
    sim.fault(json!({"fault": "status500"}));
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    let l = expect_reason(&o, PAM_AUTHINFO_UNAVAIL, "portal_unavailable");
    assert!(
        matches!(l.field("result").as_deref(), Some("error") | Some("fail")),
        "{}",
        l.text
    );
}

#[test]
fn log_reason_conversation() {
    let (_sim, env) = sshd("");
    let o = login(&env).answer(ALICE_PW).run();
    expect_reason(&o, PAM_CONV_ERR, "conversation");
}

#[test]
fn log_reason_no_first_pass() {
    let (_sim, env) = sshd("");
    env.stack(SERVICE, "use_first_pass");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    expect_reason(&o, PAM_AUTH_ERR, "no_first_pass");
}

#[test]
fn log_reason_store_error() {
    let (_sim, env) = sshd("");
    std::fs::write(&env.lockdir, "not a directory").unwrap();
    let o = login(&env).answers(&["Wrong-Pass1!", ALICE_ANSWER]).run();
    expect_reason(&o, PAM_SYSTEM_ERR, "store_error");
}

#[test]
fn log_bad_config_names_the_key_and_line() {
    let (sim, env) = sshd("");
    let text = format!(
        "[portal]\nurl = \"{}\"\napi_user = \"{API_USER}\"\napi_key_file = \"{}\"\n\n[auth]\nfail_delay_ms = 0\nfavourite_colour = \"blue\"\n",
        sim.url,
        env.key_file.display()
    );
    env.write_config(&text);
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    expect_reason(&o, PAM_SERVICE_ERR, "bad_config");
    let lines = o.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.text.contains("favourite_colour") && l.text.contains("line 8")),
        "no line names the key and `line 8`: {lines:#?}"
    );
}

#[test]
fn log_unknown_argument_is_named() {
    let (_sim, env) = sshd("");
    env.stack(SERVICE, "frobnicate");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
    let lines = o.log_lines();
    assert!(
        lines.iter().any(|l| l.text.contains("frobnicate")),
        "the unknown argument is not logged: {lines:#?}"
    );
}

// ---- no secrets ------------------------------------------------------------------------------------

/// Asserts none of `secrets` appears anywhere in pam_wrapper's stderr (log lines included).
fn no_secrets(o: &Outcome, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !o.stderr.contains(s),
            "secret {s:?} in the captured output:\n{}",
            o.stderr
        );
        for l in o.log_lines() {
            assert!(
                !l.full_text().contains(s),
                "secret {s:?} in {:?}",
                l.full_text()
            );
        }
    }
}

#[test]
fn log_never_contains_password_answer_or_api_key() {
    let (sim, env) = sshd("");
    env.stack(SERVICE, "debug");
    let secrets = [
        ALICE_PW,
        ALICE_ANSWER,
        API_KEY,
        "Wrong-Pass1!",
        "Garfield",
        "Zoe-Secret9!",
    ];
    let runs = vec![
        login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run(),
        login(&env).answers(&["Wrong-Pass1!", ALICE_ANSWER]).run(),
        login(&env).answers(&[ALICE_PW, "Garfield"]).run(),
        login(&env)
            .user("zoe")
            .answers(&["Zoe-Secret9!", "Garfield"])
            .run(),
        login(&env)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .auth()
            .acct()
            .run(),
    ];
    assert_eq!(runs[0].auth, Some(PAM_SUCCESS), "{}", runs[0].describe());
    for o in &runs {
        assert!(
            !o.log_lines().is_empty(),
            "nothing logged: {}",
            o.describe()
        );
        no_secrets(o, &secrets);
    }
    sim.fault(json!({"fault": "garbage"}));
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    no_secrets(&o, &secrets);
    sim.clear_faults();
    sim.fault(json!({"fault": "error200"}));
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    no_secrets(&o, &secrets);
}

#[test]
fn log_config_errors_never_quote_an_inline_api_key() {
    let (sim, env) = standard("");
    env.stack(SERVICE, "debug");
    let head = format!(
        "[portal]\nurl = \"{}\"\napi_user = \"{API_USER}\"\n",
        sim.url
    );
    for text in [
        // An unknown key next to the key.
        format!("{head}api_key = \"{API_KEY}\"\napi_kee = \"{API_KEY}\"\n"),
        // A syntax error on the key's own line (unterminated string).
        format!("{head}api_key = \"{API_KEY}\n[auth]\nfail_delay_ms = 0\n"),
        // A wrong type for the key.
        format!("{head}api_key = [\"{API_KEY}\"]\n"),
    ] {
        env.write_config(&text);
        let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
        assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
        no_secrets(&o, &[API_KEY]);
    }
}

#[test]
fn log_portal_unreachable_never_contains_the_key() {
    let (_sim, env) = standard(&format!("[portal]\nurl = \"{}\"\n", closed_port_url()));
    env.stack(SERVICE, "debug");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_AUTHINFO_UNAVAIL), "{}", o.describe());
    no_secrets(&o, &[API_KEY, ALICE_PW, ALICE_ANSWER]);
}

// ---- escaping ---------------------------------------------------------------------------------------

/// The decision line of a login by `user` (bytes) from `rhost`: one physical line, exactly one
/// `result=`, the real service.
fn escaped_decision(env: &Env, user: &[u8], rhost: &[u8]) -> LogLine {
    let o = login(env)
        .user_bytes(user)
        .rhost_bytes(rhost)
        .answers(&["Wrong-Pass1!", "x"])
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    for l in o.log_lines() {
        assert!(
            l.continuation.is_empty(),
            "a raw newline split a log line: {:?}",
            l.full_text()
        );
    }
    let l = decision(&o);
    let results: Vec<_> = l
        .pairs()
        .into_iter()
        .filter(|(k, _)| k == "result")
        .collect();
    assert_eq!(results.len(), 1, "injected field in {:?}", l.text);
    assert_eq!(l.field("result").as_deref(), Some("fail"), "{}", l.text);
    assert_eq!(l.field("service").as_deref(), Some(SERVICE), "{}", l.text);
    assert!(
        !l.text.contains('\n') && !l.text.contains('\r'),
        "{:?}",
        l.text
    );
    l
}

#[test]
fn log_username_with_space_newline_and_percent_n_is_escaped() {
    let (_sim, env) = sshd("");
    let l = escaped_decision(
        &env,
        b"evil user\nresult=success reason=ok %n%s%x",
        CLIENT.as_bytes(),
    );
    assert_eq!(l.field("rhost").as_deref(), Some(CLIENT), "{}", l.text);
    assert_eq!(
        l.field("reason").as_deref(),
        Some("user_unknown"),
        "{}",
        l.text
    );
    let user = l.field("user").unwrap_or_default();
    assert!(user.contains("evil"), "user field {user:?}");
    assert!(!user.contains('\n'), "raw newline in {user:?}");
}

#[test]
fn log_username_with_control_and_non_utf8_bytes_is_escaped() {
    let (_sim, env) = sshd("");
    let l = escaped_decision(&env, b"bad\x1b[31m\x07\r\xff\xfeuser", CLIENT.as_bytes());
    assert!(
        !l.text.chars().any(|c| c.is_control()),
        "control character in {:?}",
        l.text
    );
}

#[test]
fn log_hostname_rhost_is_escaped() {
    let (_sim, env) = sshd("");
    let l = escaped_decision(&env, b"zoe", b"host name\nresult=success %n");
    assert_eq!(l.field("user").as_deref(), Some("zoe"), "{}", l.text);
}

#[test]
fn log_debug_argument_adds_debug_lines_only_when_given() {
    // SPEC §2: `debug` logs each step at LOG_DEBUG (7); without it nothing is logged at that
    // level. (pam_wrapper prints the priority the module passed; the facility may be or-ed in.)
    let is_debug = |l: &LogLine| l.priority.is_some_and(|p| p & 7 == 7);
    let (_sim, env) = sshd("");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let plain: Vec<LogLine> = o.log_lines().into_iter().filter(is_debug).collect();
    assert!(plain.is_empty(), "debug lines without `debug`: {plain:#?}");
    env.stack(SERVICE, "debug");
    let o = login(&env).answers(&[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let debug: Vec<LogLine> = o.log_lines().into_iter().filter(is_debug).collect();
    assert!(
        !debug.is_empty(),
        "no LOG_DEBUG line with `debug`: {:#?}",
        o.log_lines()
    );
    assert_eq!(o.decisions().len(), 1, "{:#?}", o.log_lines());
}
