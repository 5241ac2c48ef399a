//! SPEC §5 row "portal unreachable, timed out, TLS failure, garbled or unexpected answer,
//! rate-limited, service credentials rejected (401)" → PAM_AUTHINFO_UNAVAIL and
//! `The login service is unavailable; try again later.`, for every fault portal-sim can inject:
//! within connect_timeout_ms + request_timeout_ms + 1 s, never PAM_SUCCESS (an HTTP/1.0 answer
//! may legitimately work), and never counted as a failure (§4.9, §7).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, msg, *};
use pam_testkit::{closed_port_url, standard, Env, Outcome, Sim};
use serde_json::{json, Value};

/// connect_timeout_ms (1000) + request_timeout_ms (2000) of the base configuration + 1 s.
const BUDGET_MS: u64 = 1000 + 2000 + 1000;

/// Two failures lock both the username and the address: a counted outage would show.
const LIMITS: &str = r#"
[lockout]
user = { max_failures = 2, window_s = 600, lock_s = 600 }
ip = { max_failures = 2, window_s = 600, lock_s = 600 }
"#;

fn attempt(env: &Env, password: &str) -> Outcome {
    env.login()
        .rhost(CLIENT)
        .answers(&[password, ALICE_ANSWER])
        .run()
}

/// One faulted attempt: PAM_AUTHINFO_UNAVAIL with the message, within the budget. With
/// `may_work`, the login may instead come out as if there were no fault.
fn faulted(o: &Outcome, right_password: bool, may_work: bool, what: &str) {
    assert!(
        o.elapsed_ms <= BUDGET_MS,
        "{what}: took {} ms (budget {BUDGET_MS}): {}",
        o.elapsed_ms,
        o.describe()
    );
    match o.auth {
        Some(PAM_AUTHINFO_UNAVAIL) => {
            assert_eq!(
                o.errors(),
                vec![msg::UNAVAILABLE],
                "{what}: {}",
                o.describe()
            )
        }
        Some(PAM_SUCCESS) if may_work && right_password => {}
        Some(PAM_AUTH_ERR) if may_work && !right_password => {}
        _ => panic!(
            "{what}: expected PAM_AUTHINFO_UNAVAIL, got: {}",
            o.describe()
        ),
    }
    assert!(
        o.auth != Some(PAM_SUCCESS) || right_password,
        "{what}: a wrong password succeeded"
    );
}

/// Injects `fault` (on every call, or only on API method `method`), makes a wrong-password
/// attempt and two right-password attempts (all must be outages: had the first two been counted,
/// the limit of 2 would refuse the third as locked), then clears the fault: a correct login must
/// succeed (nothing was counted) and a wrong one must be a plain failure.
fn check(fault: Value, method: Option<&str>, may_work: bool) {
    let (sim, env) = standard(LIMITS);
    let mut f = fault;
    if let Some(m) = method {
        f["method"] = json!(m);
    }
    let what = f.to_string();
    sim.fault(f);
    faulted(&attempt(&env, "Wrong-Pass1!"), false, may_work, &what);
    faulted(&attempt(&env, ALICE_PW), true, may_work, &what);
    faulted(&attempt(&env, ALICE_PW), true, may_work, &what);
    sim.clear_faults();
    let o = attempt(&env, ALICE_PW);
    assert_eq!(
        o.auth,
        Some(PAM_SUCCESS),
        "{what}: after the fault was cleared (were outages counted?): {}",
        o.describe()
    );
    // From another address (a working http10 login legitimately counted the first attempt
    // against CLIENT).
    let o = env
        .login()
        .rhost("198.51.100.200")
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{what}: {}", o.describe());
    assert_eq!(o.errors(), vec![msg::INVALID], "{what}: {}", o.describe());
}

macro_rules! fault_tests {
    ($($name:ident => $fault:expr, $may_work:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn authinfo_unavail_on_every_call() {
                check($fault, None, $may_work);
            }

            #[test]
            fn authinfo_unavail_on_the_user_lookup() {
                check($fault, Some("getUsers"), $may_work);
            }

            #[test]
            fn authinfo_unavail_on_the_login_call() {
                check($fault, Some("getPortalLoginToken"), $may_work);
            }
        }
    )*};
}

fault_tests! {
    reset => json!({"fault": "reset"}), false;
    hang => json!({"fault": "hang"}), false;
    delay_beyond_request_timeout => json!({"fault": "delay", "ms": 3500}), false;
    status500 => json!({"fault": "status500"}), false;
    garbage => json!({"fault": "garbage"}), false;
    empty => json!({"fault": "empty"}), false;
    ratelimit => json!({"fault": "ratelimit"}), false;
    status503 => json!({"fault": "status503"}), false;
    status429 => json!({"fault": "status429"}), false;
    unauthorized => json!({"fault": "unauthorized"}), false;
    error200 => json!({"fault": "error200"}), false;
    redirect => json!({"fault": "redirect"}), false;
    huge => json!({"fault": "huge"}), false;
    stall_body => json!({"fault": "stall_body"}), false;
    wrong_types => json!({"fault": "wrong_types"}), false;
    chunked_garbage => json!({"fault": "chunked_garbage"}), false;
    http10 => json!({"fault": "http10"}), true;
}

mod down {
    use super::*;

    #[test]
    fn authinfo_unavail_no_listener() {
        let sim = Sim::start(&fixtures::standard());
        let env = Env::new(
            &sim,
            &format!("{LIMITS}\n[portal]\nurl = \"{}\"\n", closed_port_url()),
        );
        faulted(&attempt(&env, "Wrong-Pass1!"), false, false, "down");
        faulted(&attempt(&env, ALICE_PW), true, false, "down");
        faulted(&attempt(&env, ALICE_PW), true, false, "down");
        // Point the module at the live sim: nothing was counted.
        env.merge_config(&format!("[portal]\nurl = \"{}\"\n", sim.url));
        let o = attempt(&env, ALICE_PW);
        assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    }

    #[test]
    fn authinfo_unavail_connect_timeout_to_a_silent_address() {
        // A listener that never accepts (backlog full is not reliable); instead a TCP port
        // that accepts but never speaks TLS: the handshake must time out within the budget.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sim = Sim::start(&fixtures::standard());
        let env = Env::new(
            &sim,
            &format!("[portal]\nurl = \"https://127.0.0.1:{port}/rest/v3.1\"\n"),
        );
        faulted(&attempt(&env, ALICE_PW), true, false, "silent listener");
        drop(listener);
    }
}

#[test]
fn authinfo_unavail_once_then_the_next_login_works() {
    let (sim, env) = standard("");
    sim.fault(json!({"fault": "status500", "method": "getPortalLoginToken", "times": 1}));
    faulted(&attempt(&env, ALICE_PW), true, false, "status500 once");
    let o = attempt(&env, ALICE_PW);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn authinfo_unavail_wrong_api_key_is_an_outage_not_a_user_failure() {
    let (_sim, env) = standard(LIMITS);
    std::fs::write(&env.key_file, "wrong-key\n").unwrap();
    for pw in ["Wrong-Pass1!", ALICE_PW, "Wrong-Pass2!"] {
        faulted(&attempt(&env, pw), pw == ALICE_PW, false, "401");
    }
    std::fs::write(&env.key_file, format!("{API_KEY}\n")).unwrap();
    let o = attempt(&env, ALICE_PW);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn authinfo_unavail_plain_http_portal_over_https_config() {
    // An HTTP server where TLS is expected is a TLS failure.
    let sim = Sim::start_with(&fixtures::standard(), &["--http"]);
    let https_url = sim.url.replacen("http://", "https://", 1);
    let env = Env::new(&sim, &format!("[portal]\nurl = \"{https_url}\"\n"));
    faulted(
        &attempt(&env, ALICE_PW),
        true,
        false,
        "TLS to a plain HTTP port",
    );
}

/// TLS failures: a certificate for another host, an expired one, a self-signed one (the CA file
/// the sim writes does not vouch for it).
fn tls_failure(mode: &str) {
    let sim = Sim::start_with(&fixtures::standard(), &["--cert-mode", mode]);
    let env = Env::new(&sim, LIMITS);
    for pw in ["Wrong-Pass1!", ALICE_PW, ALICE_PW] {
        faulted(
            &attempt(&env, pw),
            false,
            false,
            &format!("--cert-mode {mode}"),
        );
    }
}

#[test]
fn authinfo_unavail_tls_certificate_for_another_host() {
    tls_failure("wrong-host");
}

#[test]
fn authinfo_unavail_tls_certificate_expired() {
    tls_failure("expired");
}

#[test]
fn authinfo_unavail_tls_certificate_self_signed() {
    tls_failure("self-signed");
}
