//! SPEC §2 (module arguments) and §3 (configuration file): every broken configuration is
//! PAM_SERVICE_ERR and never fails open; first-pass options; partial tables keep defaults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, msg, prompt, *};
use pam_testkit::{standard, Env, Outcome, Sim, Style};

fn alice(env: &Env) -> Outcome {
    env.login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run()
}

/// PAM_SERVICE_ERR from authenticate (with the right credentials, before any prompt) and from
/// acct_mgmt.
fn service_err(env: &Env, what: &str) {
    let o = alice(env);
    assert_eq!(
        o.auth,
        Some(PAM_SERVICE_ERR),
        "{what}: expected PAM_SERVICE_ERR: {}",
        o.describe()
    );
    assert!(o.prompts().is_empty(), "{what}: prompted: {}", o.describe());
    let o = env.login().rhost(CLIENT).acct().run();
    assert_eq!(
        o.acct,
        Some(PAM_SERVICE_ERR),
        "{what}: acct_mgmt: {}",
        o.describe()
    );
}

/// A working environment, then `extra` merged over its configuration.
fn broken(extra: &str) -> (Sim, Env) {
    let (sim, env) = standard("");
    assert_eq!(
        alice(&env).auth,
        Some(PAM_SUCCESS),
        "the base config must work"
    );
    env.merge_config(extra);
    (sim, env)
}

/// Each of `extras`, merged over a working configuration, is PAM_SERVICE_ERR (see [`broken`]).
fn each_is_service_err(extras: &[&str]) {
    for extra in extras {
        let (_sim, env) = broken(extra);
        service_err(&env, extra);
    }
}

#[test]
fn service_err_missing_config_file() {
    let (_sim, env) = standard("");
    env.stack_text(
        "test",
        "auth required {module} config=/nonexistent/pam_portal.toml\naccount required {module} config=/nonexistent/pam_portal.toml\n",
    );
    service_err(&env, "missing file");
}

#[test]
fn service_err_default_config_path_missing() {
    // No config= argument: /etc/security/pam_portal.toml (absent on a test machine).
    if std::path::Path::new("/etc/security/pam_portal.toml").exists() {
        eprintln!("skipped: /etc/security/pam_portal.toml exists here");
        return;
    }
    let (_sim, env) = standard("");
    env.stack_text(
        "test",
        "auth required {module}\naccount required {module}\n",
    );
    service_err(&env, "default path");
}

#[test]
fn service_err_toml_syntax_error() {
    let (_sim, env) = standard("");
    let text = env.config_text();
    env.write_config(&format!("{text}\n[auth\nfail_delay_ms = 0\n"));
    service_err(&env, "syntax error");
    env.write_config(&format!("{text}\n[auth]\nfail_delay_ms = \n"));
    service_err(&env, "missing value");
    env.write_config(&format!("{text}\n[portal]\nurl = \"x\"\n"));
    service_err(&env, "duplicate table");
}

#[test]
fn service_err_unknown_key() {
    each_is_service_err(&[
        "[portal]\ncolour = \"blue\"\n",
        "[auth]\nsecond_factr = \"auto\"\n",
        "[lockout]\nuser = { max_failures = 3, windw_s = 60 }\n",
        "[prompts]\npasword = \"Password: \"\n",
        "[access]\nalow = []\n",
        "[portall]\nurl = \"x\"\n",
        "[access.users.alice]\nallow = []\nallw = []\n",
        "[services.openvpn]\nauth = { colour = 1 }\n",
        "[services.openvpn]\nlockout = { dir = \"/tmp\" }\n",
        "top_level = 1\n",
    ]);
}

#[test]
fn service_err_bad_cidr() {
    each_is_service_err(&[
        "[access]\ndeny = [\"10.0.0.0/33\"]\n",
        "[access]\nallow = [\"not-an-address\"]\n",
        "[access]\ndeny = [\"2001:db8::/129\"]\n",
        "[access]\ndeny = [\"10.0.0.256/8\"]\n",
        "[access.users.alice]\nallow = [\"198.51.100.0/24\", \"bogus/8\"]\n",
    ]);
}

#[test]
fn service_err_bad_value_type() {
    each_is_service_err(&[
        "[portal]\nconnect_timeout_ms = \"fast\"\n",
        "[portal]\nhonor_ip_restriction = \"yes\"\n",
        "[auth]\nrequire_second_factor = 1\n",
        "[auth]\nvpn_services = \"openvpn\"\n",
        "[lockout]\nuser = { max_failures = \"ten\" }\n",
        "[lockout]\nip = 5\n",
        "[lockout]\nuser = { max_failures = -1 }\n",
        "[access]\ndeny = \"203.0.113.0/24\"\n",
        "[prompts]\ninfo = \"no\"\n",
    ]);
}

#[test]
fn service_err_bad_enumerated_value() {
    each_is_service_err(&[
        "[portal]\non_unavailable = \"maybe\"\n",
        "[auth]\nsecond_factor = \"sms\"\n",
        "[auth]\nquestion_choice = \"last\"\n",
    ]);
}

#[test]
fn service_err_missing_portal_url() {
    let (_sim, env) = standard("");
    env.remove_config_key("portal", "url");
    service_err(&env, "no url");
}

#[test]
fn service_err_plain_http_to_a_non_loopback_host() {
    let (_sim, env) = broken("[portal]\nurl = \"http://api.example.com/rest/v3.1\"\n");
    service_err(&env, "http:// to a remote host");
}

#[test]
fn success_plain_http_on_loopback() {
    let sim = Sim::start_with(&fixtures::standard(), &["--http"]);
    assert!(sim.url.starts_with("http://"), "{}", sim.url);
    let env = Env::new(&sim, "");
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn service_err_config_writable_by_group_or_others() {
    for mode in [0o620, 0o660, 0o602, 0o666, 0o664] {
        let (_sim, env) = standard("");
        env.chmod_config(mode);
        service_err(&env, &format!("mode {mode:o}"));
    }
}

#[test]
fn service_err_inline_api_key_readable_by_group_or_others() {
    for mode in [0o640, 0o604, 0o644] {
        let (_sim, env) = standard("");
        env.remove_config_key("portal", "api_key_file");
        env.merge_config(&format!("[portal]\napi_key = \"{API_KEY}\"\n"));
        env.chmod_config(0o600);
        assert_eq!(alice(&env).auth, Some(PAM_SUCCESS), "inline key, mode 600");
        env.chmod_config(mode);
        service_err(&env, &format!("inline api_key, mode {mode:o}"));
    }
}

#[test]
fn success_config_without_inline_secret_may_be_world_readable() {
    let (_sim, env) = standard("");
    env.chmod_config(0o644);
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn service_err_config_owned_by_another_user() {
    let (_sim, env) = standard("");
    let me = std::fs::metadata(&env.config).unwrap().uid();
    if me != 0 {
        eprintln!("skipped: needs root to chown");
        return;
    }
    std::os::unix::fs::chown(&env.config, Some(65534), None).unwrap();
    service_err(&env, "owned by nobody");
}

#[test]
fn service_err_api_key_file_missing() {
    let (_sim, env) = standard("");
    std::fs::remove_file(&env.key_file).unwrap();
    let o = alice(&env);
    assert_ne!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
}

#[test]
fn success_api_key_file_surrounding_whitespace_is_ignored() {
    let (_sim, env) = standard("");
    std::fs::write(&env.key_file, format!("\n  {API_KEY} \t\n\n")).unwrap();
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    std::fs::write(&env.key_file, API_KEY).unwrap();
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn service_err_unknown_module_argument() {
    for args in ["no_such_option", "use_first_pass bogus=1", "config2=/tmp/x"] {
        let (_sim, env) = standard("");
        env.stack("test", args);
        service_err(&env, args);
    }
}

#[test]
fn success_debug_argument() {
    let (_sim, env) = standard("");
    env.stack("test", "debug");
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn success_config_with_only_the_keys_a_test_needs() {
    // Every key but [portal] url is optional: no timeouts, no [auth], no [prompts]. (The service
    // account, the CA and the lockout directory are what this test machine needs.)
    let sim = Sim::start(&fixtures::standard());
    let full = Env::new(&sim, "");
    let text = format!(
        "[portal]\nurl = \"{}\"\napi_user = \"{API_USER}\"\napi_key_file = \"{}\"\nca_file = \"{}\"\n[lockout]\ndir = \"{}\"\n",
        sim.url,
        full.key_file.display(),
        sim.ca_file.as_ref().unwrap().display(),
        full.lockdir.display()
    );
    full.write_config(&text);
    let o = full
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .capture_fail_delay()
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- first-pass options (§2) ----------------------------------------------------------------

#[test]
fn auth_err_use_first_pass_without_authtok_no_prompt_no_call() {
    let (sim, env) = standard("");
    env.stack("test", "use_first_pass");
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(sim.login_calls("alice"), 0, "{:?}", sim.calls());
}

#[test]
fn success_use_first_pass_with_authtok_no_password_prompt() {
    let (_sim, env) = standard("");
    env.stack_first_pass("test", "use_first_pass");
    let o = env
        .login()
        .rhost(CLIENT)
        .authtok(ALICE_PW)
        .answer(ALICE_ANSWER)
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(
        o.prompt_list(),
        vec![(Style::EchoOff, prompt::pet())],
        "{}",
        o.describe()
    );
    let o = env
        .login()
        .rhost(CLIENT)
        .authtok("Wrong-Pass1!")
        .answer(ALICE_ANSWER)
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(o.errors(), vec![msg::INVALID]);
}

#[test]
fn success_try_first_pass_with_authtok_no_password_prompt() {
    let (_sim, env) = standard("");
    env.stack_first_pass("test", "try_first_pass");
    let o = env
        .login()
        .rhost(CLIENT)
        .authtok(ALICE_PW)
        .answer(ALICE_ANSWER)
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(
        o.prompt_list(),
        vec![(Style::EchoOff, prompt::pet())],
        "{}",
        o.describe()
    );
}

#[test]
fn success_try_first_pass_without_authtok_prompts() {
    let (_sim, env) = standard("");
    env.stack("test", "try_first_pass");
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(o.prompts().len(), 2, "{}", o.describe());
    assert_eq!(o.prompts()[0].text, prompt::PASSWORD);
}

#[test]
fn success_sets_authtok_after_prompting() {
    let (_sim, env) = standard("");
    let saved = env.stack_capture_authtok("test", "", false);
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    // pam_exec found PAM_AUTHTOK set: it did not prompt again, and read the password.
    assert_eq!(o.prompts().len(), 2, "{}", o.describe());
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), ALICE_PW);
}

// ---- partial tables keep the other defaults (§3) -----------------------------------------

#[test]
fn partial_lockout_table_keeps_the_other_defaults() {
    // ip = { max_failures = 3 }: window and lock time stay 1800 s (the message reads 30).
    let (_sim, env) = standard("[lockout]\nip = { max_failures = 3 }\n");
    for (i, user) in ["zoe", "yann", "xavier"].iter().enumerate() {
        let o = env
            .login()
            .user(user)
            .rhost(CLIENT)
            .answers(&["Wrong-Pass1!", "Nope"])
            .run();
        let want = if i < 2 { PAM_AUTH_ERR } else { PAM_MAXTRIES };
        assert_eq!(o.auth, Some(want), "{}", o.describe());
        if i == 2 {
            assert_eq!(o.errors(), vec![msg::locked(30)], "{}", o.describe());
        }
    }
    // The user table keeps its defaults (10 failures): 9 failures for bob from other
    // addresses do not lock him.
    for i in 0..9 {
        let o = env
            .login()
            .user("bob")
            .rhost(&format!("192.0.2.{}", 10 + i))
            .answers(&["Wrong-Pass1!", "Nope"])
            .run();
        assert_eq!(
            o.auth,
            Some(PAM_AUTH_ERR),
            "failure {}: {}",
            i + 1,
            o.describe()
        );
    }
    let o = env
        .login()
        .user("bob")
        .rhost("192.0.2.99")
        .answers(&["Wrong-Pass1!", "Nope"])
        .run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "10th failure: {}", o.describe());
    assert_eq!(o.errors(), vec![msg::locked(30)], "{}", o.describe());
}

#[test]
fn partial_user_table_keeps_the_other_defaults() {
    let (_sim, env) = standard("[lockout]\nuser = { lock_s = 120 }\n");
    for i in 0..10 {
        let o = env
            .login()
            .rhost(&format!("192.0.2.{}", 10 + i))
            .answers(&["Wrong-Pass1!", ALICE_ANSWER])
            .run();
        let want = if i < 9 { PAM_AUTH_ERR } else { PAM_MAXTRIES };
        assert_eq!(o.auth, Some(want), "failure {}: {}", i + 1, o.describe());
    }
    let o = alice(&env);
    assert_eq!(o.errors(), vec![msg::locked(2)], "{}", o.describe());
}

#[test]
fn fail_delay_ms_is_applied_on_failure() {
    let (_sim, env) = standard("[auth]\nfail_delay_ms = 1500\n");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .capture_fail_delay()
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    // libpam randomizes the requested delay (Linux-PAM's pam_delay.c: up to ±50 %).
    assert!(
        o.fail_delays_us
            .iter()
            .any(|d| (750_000..=2_250_000).contains(d)),
        "fail delays {:?}",
        o.fail_delays_us
    );
}
