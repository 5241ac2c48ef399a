//! SPEC §4 (5, 6 and the closing paragraph): before the password is verified, an unknown user,
//! a wrong password, a wrong answer and a per-user IP refusal look the same from outside
//! (prompts, messages, code), and a per-user IP refusal never sends the password to the API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::{msg, prompt, *};
use pam_testkit::{standard, Env, Outcome, Style};

/// What a client can see of a failed login, with the question text left out.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    code: Option<i32>,
    /// (style, text) of every message; the text of a prompt after the first is replaced by
    /// "<question>" when it is a question prompt.
    messages: Vec<(Style, String)>,
}

fn seen(o: &Outcome) -> Seen {
    let mut prompts = 0;
    let messages = o
        .messages
        .iter()
        .map(|m| {
            let text = if m.is_prompt() {
                prompts += 1;
                if prompts == 1 {
                    m.text.clone()
                } else {
                    "<question>".to_string()
                }
            } else {
                m.text.clone()
            };
            (m.style, text)
        })
        .collect();
    Seen {
        code: o.auth,
        messages,
    }
}

const CONFIG: &str = r#"
[access.users.alice]
allow = ["10.0.0.0/8"]
"#;

fn wrong_password(env: &Env) -> Outcome {
    env.login()
        .user("bob")
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", BOB_ANSWER])
        .run()
}

fn wrong_answer(env: &Env) -> Outcome {
    env.login()
        .user("bob")
        .rhost(CLIENT)
        .answers(&[BOB_PW, "Garfield"])
        .run()
}

fn unknown_user(env: &Env) -> Outcome {
    env.login()
        .user("zoe")
        .rhost(CLIENT)
        .answers(&["Zoe-Pass99!", "Whiskers"])
        .run()
}

fn ip_refusal_config(env: &Env) -> Outcome {
    // Correct password and answer, but alice may only log in from 10.0.0.0/8.
    env.login()
        .user("alice")
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run()
}

fn ip_refusal_portal(env: &Env) -> Outcome {
    // Correct password and answer, but frank's portal ipAddressRestriction is 10.0.0.0/8.
    env.login()
        .user("frank")
        .rhost(CLIENT)
        .answers(&[FRANK_PW, FRANK_ANSWER])
        .run()
}

#[test]
fn parity_unknown_user_wrong_password_wrong_answer_ip_refusal_look_identical() {
    let (_sim, env) = standard(CONFIG);
    let cases: Vec<(&str, Outcome)> = vec![
        ("wrong password", wrong_password(&env)),
        ("wrong answer", wrong_answer(&env)),
        ("unknown user", unknown_user(&env)),
        ("per-user IP refusal (config)", ip_refusal_config(&env)),
        (
            "per-user IP refusal (portal restriction)",
            ip_refusal_portal(&env),
        ),
    ];
    let reference = seen(&cases[0].1);
    assert_eq!(
        reference.code,
        Some(PAM_AUTH_ERR),
        "{}",
        cases[0].1.describe()
    );
    assert_eq!(
        reference.messages,
        vec![
            (Style::EchoOff, prompt::PASSWORD.to_string()),
            (Style::EchoOff, "<question>".to_string()),
            (Style::Error, msg::INVALID.to_string()),
        ],
        "{}",
        cases[0].1.describe()
    );
    for (name, o) in &cases[1..] {
        assert_eq!(
            seen(o),
            reference,
            "{name} differs from a wrong password: {}",
            o.describe()
        );
    }
}

#[test]
fn parity_under_pam_silent() {
    let (_sim, env) = standard(CONFIG);
    let run = |user: &str, pw: &str, answer: &str| {
        env.login()
            .user(user)
            .rhost(CLIENT)
            .answers(&[pw, answer])
            .silent()
            .run()
    };
    let reference = seen(&run("bob", "Wrong-Pass1!", BOB_ANSWER));
    assert_eq!(reference.code, Some(PAM_AUTH_ERR));
    for (user, pw, answer) in [
        ("bob", BOB_PW, "Garfield"),
        ("zoe", "Zoe-Pass99!", "Whiskers"),
        ("alice", ALICE_PW, ALICE_ANSWER),
    ] {
        let o = run(user, pw, answer);
        assert_eq!(seen(&o), reference, "{user}: {}", o.describe());
    }
}

#[test]
fn parity_question_prompt_for_unknown_user_is_a_real_question() {
    // The unknown user's question must be one the portal could ask (a text from its list),
    // shaped by the same `{question} ` template.
    let (_sim, env) = standard("");
    let questions = [PET_QUESTION, CITY_QUESTION, COLOR_QUESTION];
    for user in ["zoe", "yann", "xavier"] {
        let o = env
            .login()
            .user(user)
            .rhost(CLIENT)
            .answers(&["Some-Pass1!", "x"])
            .run();
        let p = o.prompts();
        assert_eq!(p.len(), 2, "{}", o.describe());
        assert!(
            questions.iter().any(|q| p[1].text == format!("{q} ")),
            "{user}: question prompt {:?} is not a portal question",
            p[1].text
        );
    }
}

#[test]
fn parity_per_user_ip_refusal_never_sends_the_password() {
    let (sim, env) = standard(CONFIG);
    let o = ip_refusal_config(&env);
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    let o = ip_refusal_portal(&env);
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    let calls = sim.calls();
    assert_eq!(
        sim.login_calls("alice"),
        0,
        "alice's password was sent: {calls:?}"
    );
    assert_eq!(
        sim.login_calls("frank"),
        0,
        "frank's password was sent: {calls:?}"
    );
    // The only login calls are the timing decoys (SPEC §4: a refusal must not be faster than a
    // wrong password): made for a name no user can have, never for the refused user.
    let logins: Vec<_> = calls
        .iter()
        .filter(|c| c.get("method").and_then(|m| m.as_str()) == Some("getPortalLoginToken"))
        .collect();
    assert_eq!(logins.len(), 2, "one decoy per refusal: {calls:?}");
    for c in logins {
        let name = c
            .get("username")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        assert!(
            !["alice", "frank"].contains(&name),
            "a refused user's login went out: {c}"
        );
        assert_eq!(
            c.get("result").and_then(|v| v.as_str()),
            Some("SoftLayer_Exception_User_Customer_LoginFailed")
        );
    }
}

#[test]
fn parity_unknown_user_goes_through_the_same_api_call() {
    let (sim, env) = standard("");
    let o = unknown_user(&env);
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(
        sim.login_calls("zoe"),
        1,
        "SPEC §4.5: the same API call as a wrong password: {:?}",
        sim.calls()
    );
    let o = wrong_password(&env);
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(sim.login_calls("bob"), 1, "{:?}", sim.calls());
}

#[test]
fn parity_all_four_are_counted_alike() {
    // Each of the four counts one failure for the address: three of them reach an address
    // limit of 3 and the fourth is refused as locked.
    let (_sim, env) = standard(
        r#"
[access.users.alice]
allow = ["10.0.0.0/8"]
[lockout]
user = { max_failures = 100 }
ip = { max_failures = 4, window_s = 600, lock_s = 600 }
"#,
    );
    assert_eq!(wrong_password(&env).auth, Some(PAM_AUTH_ERR));
    assert_eq!(wrong_answer(&env).auth, Some(PAM_AUTH_ERR));
    assert_eq!(unknown_user(&env).auth, Some(PAM_AUTH_ERR));
    let o = ip_refusal_config(&env);
    assert_eq!(
        o.auth,
        Some(PAM_MAXTRIES),
        "4th failure locks: {}",
        o.describe()
    );
    assert_eq!(o.errors(), vec![msg::locked(10)], "{}", o.describe());
}

#[test]
fn parity_timing_of_an_ip_refusal_matches_a_wrong_password() {
    // With a slow portal (600 ms per login call), a per-user IP refusal, which sends nothing,
    // must not answer visibly faster than a wrong password (SPEC §4: "timing apart from noise").
    let (sim, env) = standard(CONFIG);
    sim.fault(serde_json::json!({"fault": "delay", "ms": 600, "method": "getPortalLoginToken"}));
    let mut slow = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..3 {
        slow.push(wrong_password(&env).elapsed_ms);
        let o = ip_refusal_config(&env);
        assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
        refused.push(o.elapsed_ms);
    }
    let min_slow = *slow.iter().min().unwrap();
    let max_refused = *refused.iter().max().unwrap();
    assert!(
        min_slow >= 600,
        "the delay fault did not slow the wrong password: {slow:?}"
    );
    assert!(
        max_refused + 300 >= min_slow,
        "IP refusals ({refused:?} ms) answer much faster than wrong passwords ({slow:?} ms): \
         a timing oracle for the per-user IP policy"
    );
}
