//! What one login costs the portal (issue 7): one connection per login, and the question
//! texts cached between logins so a question login makes two calls, not three.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::*;
use pam_testkit::standard;
use serde_json::Value;

fn methods(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c["method"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_question_login_makes_three_calls_cold_then_two_on_one_connection() {
    let (sim, env) = standard("");
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let cold = sim.calls();
    assert_eq!(
        methods(&cold),
        ["getUsers", "getAllObjects", "getPortalLoginToken"]
    );

    sim.reset();
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let warm = sim.calls();
    assert_eq!(
        methods(&warm),
        ["getUsers", "getPortalLoginToken"],
        "question texts from the cache"
    );
    // One connection (so one TLS handshake) per login.
    assert_eq!(warm[0]["conn"], warm[1]["conn"], "{warm:?}");
    assert_ne!(
        cold[0]["conn"], warm[0]["conn"],
        "a new process, a new connection"
    );
    for c in &cold {
        assert_eq!(c["conn"], cold[0]["conn"], "{cold:?}");
    }
}

#[test]
fn a_cache_from_another_portal_is_not_used() {
    let (sim, env) = standard("");
    let cache = env.lockdir.join("questions.cache");
    std::fs::create_dir_all(&env.lockdir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = serde_json::json!({
        "url": "https://elsewhere.example/rest/v3.1",
        "fetched": now,
        "questions": [{"id": 101, "question": "Forged?", "displayOrder": 1}],
    });
    std::fs::write(&cache, forged.to_string()).unwrap();
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    assert!(methods(&sim.calls()).contains(&"getAllObjects".to_string()));
    assert!(
        o.prompts().iter().all(|p| p.text != "Forged? "),
        "{}",
        o.describe()
    );
}
