//! Unusual and hostile input (SPEC §4.1, §4.4, §4.6, §5 "never PAM_SUCCESS for anything but a
//! verified login", §7 storage), question choice (§3), per-service overrides, and the host
//! behaviours of HOSTS.md (no user given to pam_start, NULL answers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pam_testkit::codes::*;
use pam_testkit::fixtures::{msg, prompt, *};
use pam_testkit::{standard, Exhausted, Style};

// ---- the password boundary (§4.4: over 512 bytes is a failure without an API call) -----------

#[test]
fn password_of_exactly_512_bytes_is_sent_to_the_portal() {
    let (sim, env) = standard("");
    let pw = "P".repeat(512);
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[&pw, ALICE_ANSWER])
        .run();
    code(&o, PAM_AUTH_ERR);
    assert_eq!(o.errors(), vec![msg::INVALID]);
    assert_eq!(sim.login_calls("alice"), 1, "512 bytes is not over-long");
}

#[test]
fn password_of_513_bytes_is_not_sent() {
    let (sim, env) = standard("");
    let pw = "P".repeat(513);
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[&pw, ALICE_ANSWER])
        .on_exhausted(Exhausted::Empty)
        .run();
    code(&o, PAM_AUTH_ERR);
    assert_eq!(sim.login_calls("alice"), 0);
}

#[test]
fn multibyte_password_over_512_bytes_is_over_long() {
    // 200 three-byte characters: 200 characters, 600 bytes.
    let (sim, env) = standard("");
    let pw = "€".repeat(200);
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[&pw, ALICE_ANSWER])
        .on_exhausted(Exhausted::Empty)
        .run();
    code(&o, PAM_AUTH_ERR);
    assert_eq!(sim.login_calls("alice"), 0, "the limit is in bytes");
}

// ---- bytes that are not text --------------------------------------------------------------

#[test]
fn invalid_utf8_and_control_bytes_in_password_and_answer_fail_cleanly() {
    let (_sim, env) = standard("");
    let mut bad_pw = ALICE_PW.as_bytes().to_vec();
    bad_pw.push(0xff);
    for (pw, answer) in [
        (bad_pw.clone(), ALICE_ANSWER.as_bytes().to_vec()),
        (ALICE_PW.as_bytes().to_vec(), b"Fluffy\xc3\x28".to_vec()),
        (b"\x1b[2J\x07\x7f".to_vec(), b"\x01\x02".to_vec()),
        (
            format!("{ALICE_PW}\n").into_bytes(),
            ALICE_ANSWER.as_bytes().to_vec(),
        ),
    ] {
        let o = env
            .login()
            .rhost(CLIENT)
            .answer_bytes(&pw)
            .answer_bytes(&answer)
            .run();
        code(&o, PAM_AUTH_ERR);
        assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
    }
    // The right credentials still work afterwards.
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
}

#[test]
fn very_long_answer_fails_cleanly() {
    let (_sim, env) = standard("");
    let answer = "A".repeat(30_000);
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, &answer])
        .run();
    code(&o, PAM_AUTH_ERR);
}

#[test]
fn unusual_usernames_never_succeed_and_never_crash() {
    let (_sim, env) = standard("[lockout]\nip = { max_failures = 100 }\n");
    let long = "u".repeat(10_000);
    for user in [
        &b""[..],
        b" ",
        b"alice ",
        b" alice",
        b"alice\n",
        b"ALICE",
        b"alice\xff",
        b"%s%n%x",
        b"alice' OR '1'='1",
        b"{\"operation\":\"alice\"}",
        long.as_bytes(),
    ] {
        let o = env
            .login()
            .user_bytes(user)
            .rhost(CLIENT)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .on_exhausted(Exhausted::Empty)
            .run();
        assert!(
            matches!(o.auth, Some(PAM_AUTH_ERR) | Some(PAM_USER_UNKNOWN)),
            "user {:?}: {}",
            String::from_utf8_lossy(&user[..user.len().min(40)]),
            o.describe()
        );
    }
}

#[test]
fn user_name_supplied_through_the_conversation() {
    // pam_start with no user (as OpenVPN's plugin without `login USERNAME` would): the module
    // asks for it with pam_get_user.
    let (_sim, env) = standard("");
    let o = env
        .login()
        .no_user()
        .rhost(CLIENT)
        .answers(&["alice", ALICE_PW, ALICE_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
    assert_eq!(o.prompts()[0].style, Style::EchoOn, "{}", o.describe());
    let o = env.login().no_user().rhost(CLIENT).run();
    assert_ne!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- hostile usernames and the lockout store (§7) --------------------------------------------

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

#[test]
fn path_like_usernames_stay_inside_the_lockout_dir() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\nip = { max_failures = 100 }\n",
    );
    let before: BTreeSet<PathBuf> = files_under(env.root())
        .into_iter()
        .filter(|p| !p.starts_with(&env.lockdir))
        .collect();
    let escape = format!("../../../../../../../{}/escaped", env.root().display());
    let users: Vec<String> = vec![
        "..".into(),
        ".".into(),
        "../escaped".into(),
        escape.clone(),
        "a/b".into(),
        "/etc/passwd".into(),
        "x\\y".into(),
    ];
    for u in &users {
        for _ in 0..2 {
            let o = env
                .login()
                .user(u)
                .rhost(CLIENT)
                .answers(&["Wrong-Pass1!", "x"])
                .run();
            assert!(
                matches!(o.auth, Some(PAM_AUTH_ERR) | Some(PAM_MAXTRIES)),
                "{u:?}: {}",
                o.describe()
            );
        }
        // Each hostile name has its own counter: the second failure locked it.
        let o = env
            .login()
            .user(u)
            .rhost(CLIENT)
            .answers(&["Wrong-Pass1!", "x"])
            .run();
        code(&o, PAM_MAXTRIES);
    }
    let after: BTreeSet<PathBuf> = files_under(env.root())
        .into_iter()
        .filter(|p| !p.starts_with(&env.lockdir))
        .collect();
    assert_eq!(before, after, "files appeared outside the lockout dir");
    assert!(!Path::new("/etc/passwd.lock").exists());
    // alice is untouched by all of that.
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
}

#[test]
fn usernames_differing_only_in_hostile_characters_do_not_share_a_counter() {
    // "a/b" and "a_b" (or "a%2Fb") must not collapse to one record by a lossy file name.
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\nip = { max_failures = 100 }\n",
    );
    let wrong = |u: &str| {
        env.login()
            .user(u)
            .rhost(CLIENT)
            .answers(&["Wrong-Pass1!", "x"])
            .run()
    };
    for group in [["a/b", "a_b", "a%2Fb"], ["a.b", "a..b", "a b"]] {
        for u in group {
            code(&wrong(u), PAM_AUTH_ERR);
        }
    }
}

// ---- addresses (§4.1) -----------------------------------------------------------------------

#[test]
fn per_user_ipv6_allow_list() {
    let (sim, env) = standard("[access.users.alice]\nallow = [\"2001:db8::/32\"]\n");
    let run = |rhost: &str| {
        env.login()
            .rhost(rhost)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run()
    };
    code(&run("2001:db8:ffff::1"), PAM_SUCCESS);
    code(&run("[2001:db8::7]"), PAM_SUCCESS);
    code(&run("fe80::1%eth0"), PAM_AUTH_ERR);
    code(&run("2001:db9::1"), PAM_AUTH_ERR);
    code(&run(CLIENT), PAM_AUTH_ERR);
    assert_eq!(sim.login_calls("alice"), 2, "{:?}", sim.calls());
}

#[test]
fn per_user_allow_list_and_no_address_fails_closed() {
    // As with the global list (§4.2), no address cannot be inside a non-empty allow list.
    let (sim, env) = standard("[access.users.alice]\nallow = [\"10.0.0.0/8\"]\n");
    for rhost in [None, Some(""), Some("client.example.com")] {
        let mut b = env.login().answers(&[ALICE_PW, ALICE_ANSWER]);
        if let Some(r) = rhost {
            b = b.rhost(r);
        }
        let o = b.run();
        code(&o, PAM_AUTH_ERR);
    }
    // frank's portal restriction, the same.
    let o = env
        .login()
        .user("frank")
        .answers(&[FRANK_PW, FRANK_ANSWER])
        .run();
    code(&o, PAM_AUTH_ERR);
    assert_eq!(sim.login_calls("alice") + sim.login_calls("frank"), 0);
}

#[test]
fn malformed_addresses_are_no_address() {
    // Not literals: "no address". With a global allow list that means refused at once.
    let (_sim, env) = standard("[access]\nallow = [\"0.0.0.0/0\", \"::/0\"]\n");
    for rhost in [
        "1.2.3.4.5",
        "999.1.1.1",
        "::ffff:999.1.1.1",
        "1.2.3.4/24",
        "[1.2.3.4]x",
    ] {
        let o = env
            .login()
            .rhost(rhost)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run();
        assert_eq!(
            o.auth,
            Some(PAM_PERM_DENIED),
            "rhost {rhost:?}: {}",
            o.describe()
        );
        assert!(o.prompts().is_empty(), "{rhost}: {}", o.describe());
    }
    let o = env
        .login()
        .rhost("::ffff:198.51.100.9")
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
}

// ---- question choice (§3) ---------------------------------------------------------------------

#[test]
fn question_choice_first_asks_the_lowest_display_order() {
    let (_sim, env) = standard("[auth]\nquestion_choice = \"first\"\n");
    for _ in 0..4 {
        let o = env
            .login()
            .user("hank")
            .rhost(CLIENT)
            .answers(&[HANK_PW, HANK_ANSWER])
            .run();
        code(&o, PAM_SUCCESS);
        assert_eq!(
            o.prompts()[1].text,
            format!("{COLOR_QUESTION} "),
            "{}",
            o.describe()
        );
    }
}

#[test]
fn question_choice_random_asks_only_answered_questions() {
    let (_sim, env) = standard("");
    let mut asked = BTreeSet::new();
    for _ in 0..16 {
        let o = env
            .login()
            .user("hank")
            .rhost(CLIENT)
            .answers(&[HANK_PW, HANK_ANSWER])
            .run();
        code(&o, PAM_SUCCESS);
        asked.insert(o.prompts()[1].text.clone());
    }
    let allowed: BTreeSet<String> = [CITY_QUESTION, COLOR_QUESTION]
        .iter()
        .map(|q| format!("{q} "))
        .collect();
    assert!(asked.is_subset(&allowed), "asked {asked:?}");
    assert_eq!(asked.len(), 2, "16 random picks of 2 all alike: {asked:?}");
}

#[test]
fn per_service_auth_override() {
    let (_sim, env) = standard(
        "[services.openvpn]\nauth = { require_second_factor = false, question_choice = \"first\" }\n",
    );
    env.stack("openvpn", "");
    let carol = |service: &str| {
        env.login()
            .service(service)
            .user("carol")
            .rhost(CLIENT)
            .answers(&[CAROL_PW])
            .on_exhausted(Exhausted::Empty)
            .run()
    };
    code(&carol("openvpn"), PAM_SUCCESS);
    code(&carol("test"), PAM_AUTH_ERR);
    let o = env
        .login()
        .service("openvpn")
        .user("hank")
        .rhost(CLIENT)
        .answers(&[HANK_PW, HANK_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
    assert_eq!(o.prompts()[1].text, format!("{COLOR_QUESTION} "));
    assert_eq!(o.prompts()[0].text, prompt::PASSWORD);
}

// ---- locked addresses also stop acct_mgmt (§6) ------------------------------------------------

#[test]
fn acct_maxtries_when_the_address_is_locked() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 100 }\nip = { max_failures = 1, window_s = 600, lock_s = 600 }\n",
    );
    let o = env
        .login()
        .user("zoe")
        .rhost(CLIENT)
        .answers(&["x", "y"])
        .run();
    code(&o, PAM_MAXTRIES);
    let o = env.login().rhost(CLIENT).acct().run();
    assert_eq!(o.acct, Some(PAM_MAXTRIES), "{}", o.describe());
    let o = env.login().rhost("198.51.100.8").acct().run();
    assert_eq!(o.acct, Some(PAM_SUCCESS), "{}", o.describe());
}
