//! Self-checks of pam-drive and the harness against stock Linux-PAM modules (no pam_portal).

use pam_testkit::codes::*;
use pam_testkit::{Env, Exhausted, Style};

fn env_with(service: &str, stack: &str) -> Env {
    let env = Env::bare();
    env.stack_text(service, stack);
    env
}

#[test]
fn permit_stack_succeeds_for_every_call() {
    let env = env_with(
        "p",
        "auth required {sys:pam_permit.so}\naccount required {sys:pam_permit.so}\n",
    );
    let o = env.login().service("p").auth().acct().setcred().run();
    assert_eq!(
        (o.auth, o.acct, o.setcred),
        (Some(0), Some(0), Some(0)),
        "{}",
        o.describe()
    );
    assert_eq!(o.user.as_deref(), Some("alice"));
    assert!(o.messages.is_empty());
}

#[test]
fn deny_stack_stops_after_the_first_failure() {
    let env = env_with(
        "d",
        "auth required {sys:pam_deny.so}\naccount required {sys:pam_permit.so}\n",
    );
    let o = env.login().service("d").auth().acct().run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(o.acct, None);
    let o = env.login().service("d").acct().run();
    assert_eq!((o.auth, o.acct), (None, Some(0)), "{}", o.describe());
}

#[test]
fn unknown_service_falls_back_to_other() {
    let env = Env::bare();
    let o = env.login().service("nosuch").run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
}

#[test]
fn answers_null_conv_err_and_no_user() {
    let env = env_with("u", "auth required {sys:pam_unix.so}\n");
    // pam_unix: a NULL answer or a conversation error is PAM_AUTHTOK_ERR / PAM_CONV_ERR.
    let o = env.login().service("u").user("nobody").run();
    assert_eq!(o.prompts().len(), 1, "{}", o.describe());
    assert_eq!(o.prompts()[0].style, Style::EchoOff);
    assert!(!o.prompts()[0].answered);
    assert_ne!(o.auth, Some(PAM_SUCCESS));
    let o = env
        .login()
        .service("u")
        .user("nobody")
        .on_exhausted(Exhausted::ConvErr)
        .run();
    assert_ne!(o.auth, Some(PAM_SUCCESS));
    let env = env_with("n", "auth required {sys:pam_permit.so}\n");
    let o = env.login().service("n").no_user().answer("bob").run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert_eq!(o.prompts()[0].style, Style::EchoOn);
    assert_eq!(o.user.as_deref(), Some("bob"));
}

#[test]
fn byte_usernames_and_answers_pass_through() {
    let env = env_with("n", "auth required {sys:pam_permit.so}\n");
    let o = env.login().service("n").user_bytes(b"a b\n%n\xff").run();
    assert_eq!(o.auth, Some(PAM_SUCCESS));
    assert_eq!(o.user.as_deref(), Some("a b\n%n\u{fffd}"));
}

#[test]
fn first_pass_stack_sets_authtok_from_drive() {
    let env = Env::bare();
    let file = env.root().join("tok");
    let script = env.root().join("save.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat > '{}'\n", file.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.stack_text(
        "f",
        &format!(
            "auth optional {{sys:pam_set_items.so}}\nauth required {{sys:pam_exec.so}} expose_authtok quiet {}\n",
            script.display()
        ),
    );
    let o = env.login().service("f").authtok("S3cret!").run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "S3cret!");
}

#[test]
fn fail_delay_is_captured() {
    let env = env_with("u", "auth required {sys:pam_unix.so}\n");
    let o = env
        .login()
        .service("u")
        .user("nobody")
        .answer("wrong")
        .capture_fail_delay()
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(o.fail_delays_us.len(), 1, "{}", o.json);
    assert!(o.elapsed_ms < 1000, "the delay was slept: {}", o.describe());
}

#[test]
fn pam_wrapper_shows_syslog_lines() {
    let env = env_with("u", "auth required {sys:pam_unix.so}\n");
    let o = env
        .login()
        .service("u")
        .user("nobody")
        .rhost("10.1.2.3")
        .answer("wrong")
        .under_pam_wrapper()
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    let lines = o.log_lines();
    let l = lines
        .iter()
        .find(|l| l.text.starts_with("authentication failure"))
        .unwrap_or_else(|| panic!("no pam_unix line in {lines:?}"));
    assert_eq!(l.field("rhost").as_deref(), Some("10.1.2.3"));
    assert_eq!(l.field("user").as_deref(), Some("nobody"));
    assert!(l.continuation.is_empty());
}
