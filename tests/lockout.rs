//! SPEC §4.3, §4.9 and §7: local lockouts per username and per client address (IPv6 by
//! prefix), their windows and lock times, what counts, and counting across processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::thread::sleep;
use std::time::Duration;

use pam_testkit::codes::*;
use pam_testkit::fixtures::{msg, *};
use pam_testkit::{standard, Env, Outcome};
use serde_json::json;

fn wrong(env: &Env, user: &str, rhost: &str) -> Outcome {
    env.login()
        .user(user)
        .rhost(rhost)
        .answers(&["Wrong-Pass1!", "Nope"])
        .run()
}

fn alice(env: &Env, rhost: &str) -> Outcome {
    env.login()
        .rhost(rhost)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run()
}

/// A refusal because of a lock: PAM_MAXTRIES, the lock message, no prompt.
fn locked_refusal(o: &Outcome, minutes: u64) {
    code(o, PAM_MAXTRIES);
    assert_eq!(o.errors(), vec![msg::locked(minutes)], "{}", o.describe());
    assert!(
        o.prompts().is_empty(),
        "a prompt while locked: {}",
        o.describe()
    );
}

const USER_SHORT: &str = r#"
[lockout]
user = { max_failures = 3, window_s = 60, lock_s = 2 }
ip = { max_failures = 100, window_s = 60, lock_s = 60 }
"#;

#[test]
fn user_lock_after_n_failures_refused_without_prompt_or_call_then_expires() {
    let (sim, env) = standard(USER_SHORT);
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    code(&wrong(&env, "alice", "198.51.100.8"), PAM_AUTH_ERR);
    // The third failure triggers the lock and is reported as such: 2 s rounds up to 1 minute.
    let o = wrong(&env, "alice", "198.51.100.9");
    code(&o, PAM_MAXTRIES);
    assert_eq!(o.errors(), vec![msg::locked(1)], "{}", o.describe());
    let calls = sim.login_calls("alice");
    // Locked: refused at once for the right password too, from any address, no API call.
    locked_refusal(&alice(&env, CLIENT), 1);
    locked_refusal(&alice(&env, "192.0.2.55"), 1);
    assert_eq!(sim.login_calls("alice"), calls, "API called while locked");
    // Other users are not affected.
    let o = env
        .login()
        .user("bob")
        .rhost(CLIENT)
        .answers(&[BOB_PW, BOB_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
    // The lock ends after lock_s, and the failures that led to it no longer count.
    sleep(Duration::from_millis(2300));
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    code(&alice(&env, CLIENT), PAM_SUCCESS);
}

#[test]
fn user_lock_attempts_while_locked_are_not_counted() {
    let (_sim, env) = standard(USER_SHORT);
    for _ in 0..2 {
        code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    }
    code(&wrong(&env, "alice", CLIENT), PAM_MAXTRIES);
    for _ in 0..5 {
        locked_refusal(&wrong(&env, "alice", CLIENT), 1);
    }
    sleep(Duration::from_millis(2300));
    // Had the refused attempts counted, this would lock again at once.
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
}

#[test]
fn user_failures_older_than_the_window_do_not_count() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 2, window_s = 2, lock_s = 60 }\nip = { max_failures = 100 }\n",
    );
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    sleep(Duration::from_millis(2500));
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    code(&wrong(&env, "alice", CLIENT), PAM_MAXTRIES);
}

#[test]
fn lock_message_rounds_the_time_left_up_to_whole_minutes() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 1, window_s = 600, lock_s = 150 }\nip = { max_failures = 100 }\n",
    );
    let o = wrong(&env, "alice", CLIENT);
    code(&o, PAM_MAXTRIES);
    assert_eq!(
        o.errors(),
        vec![msg::locked(3)],
        "150 s → 3 minutes: {}",
        o.describe()
    );
    locked_refusal(&alice(&env, CLIENT), 3);
}

const IP3: &str = r#"
[lockout]
user = { max_failures = 100, window_s = 600, lock_s = 600 }
ip = { max_failures = 3, window_s = 600, lock_s = 600 }
"#;

#[test]
fn address_counter_is_shared_across_usernames() {
    let (sim, env) = standard(IP3);
    code(&wrong(&env, "zoe", "198.51.100.20"), PAM_AUTH_ERR);
    code(&wrong(&env, "yann", "198.51.100.20"), PAM_AUTH_ERR);
    let o = wrong(&env, "bob", "198.51.100.20");
    code(&o, PAM_MAXTRIES);
    assert_eq!(o.errors(), vec![msg::locked(10)], "{}", o.describe());
    let calls = sim.login_calls("alice");
    locked_refusal(&alice(&env, "198.51.100.20"), 10);
    assert_eq!(sim.login_calls("alice"), calls);
    // Another address and the users themselves are fine.
    code(&alice(&env, "198.51.100.21"), PAM_SUCCESS);
    let o = env
        .login()
        .user("bob")
        .rhost("198.51.100.22")
        .answers(&[BOB_PW, BOB_ANSWER])
        .run();
    code(&o, PAM_SUCCESS);
}

#[test]
fn ipv6_addresses_in_one_prefix_share_a_counter() {
    let (_sim, env) = standard(IP3);
    code(&wrong(&env, "zoe", "2001:db8:1:2::1"), PAM_AUTH_ERR);
    code(&wrong(&env, "yann", "2001:db8:1:2::2"), PAM_AUTH_ERR);
    code(
        &wrong(&env, "xavier", "2001:db8:1:2:ffff:ffff:ffff:fffe"),
        PAM_MAXTRIES,
    );
    locked_refusal(&alice(&env, "2001:db8:1:2::99"), 10);
    // Another /64 is a different counter.
    code(&alice(&env, "2001:db8:1:3::1"), PAM_SUCCESS);
}

#[test]
fn ipv6_addresses_in_different_prefixes_do_not_share() {
    let (_sim, env) = standard(IP3);
    code(&wrong(&env, "zoe", "2001:db8:1:2::1"), PAM_AUTH_ERR);
    code(&wrong(&env, "yann", "2001:db8:1:3::1"), PAM_AUTH_ERR);
    code(&wrong(&env, "xavier", "2001:db8:1:4::1"), PAM_AUTH_ERR);
    code(&wrong(&env, "zoe", "2001:db8:1:2::2"), PAM_AUTH_ERR);
    code(&alice(&env, "2001:db8:1:2::3"), PAM_SUCCESS);
}

#[test]
fn ipv6_prefix_is_configurable() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 100 }\nip = { max_failures = 2, window_s = 600, lock_s = 600, ipv6_prefix = 48 }\n",
    );
    code(&wrong(&env, "zoe", "2001:db8:1:2::1"), PAM_AUTH_ERR);
    code(&wrong(&env, "yann", "2001:db8:1:3::1"), PAM_MAXTRIES);
    locked_refusal(&alice(&env, "2001:db8:1:ffff::1"), 10);
    code(&alice(&env, "2001:db8:2::1"), PAM_SUCCESS);
}

#[test]
fn ipv6_brackets_and_zone_are_the_same_address() {
    let (_sim, env) = standard(IP3);
    code(&wrong(&env, "zoe", "[2001:db8:9::1]"), PAM_AUTH_ERR);
    code(&wrong(&env, "yann", "2001:db8:9::1%eth0"), PAM_AUTH_ERR);
    code(&wrong(&env, "xavier", "2001:db8:9::1"), PAM_MAXTRIES);
}

#[test]
fn ipv4_mapped_ipv6_counts_as_the_ipv4_address() {
    let (_sim, env) = standard(IP3);
    code(&wrong(&env, "zoe", "::ffff:198.51.100.30"), PAM_AUTH_ERR);
    code(&wrong(&env, "yann", "::ffff:198.51.100.30"), PAM_AUTH_ERR);
    code(&wrong(&env, "xavier", "198.51.100.30"), PAM_MAXTRIES);
    locked_refusal(&alice(&env, "::ffff:198.51.100.30"), 10);
    locked_refusal(&alice(&env, "198.51.100.30"), 10);
    // Not the whole ::ffff:0:0/96 as one IPv6 /64.
    code(&alice(&env, "::ffff:198.51.100.31"), PAM_SUCCESS);
}

#[test]
fn success_clears_the_username_failures_but_not_the_address_failures() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 3, window_s = 600, lock_s = 600 }\nip = { max_failures = 3, window_s = 600, lock_s = 600 }\n",
    );
    let a = "198.51.100.40";
    code(&wrong(&env, "alice", a), PAM_AUTH_ERR);
    code(&wrong(&env, "alice", a), PAM_AUTH_ERR);
    code(&alice(&env, a), PAM_SUCCESS);
    // Username: cleared, so two more failures (from elsewhere) do not reach 3.
    code(&wrong(&env, "alice", "198.51.100.41"), PAM_AUTH_ERR);
    code(&wrong(&env, "alice", "198.51.100.42"), PAM_AUTH_ERR);
    // Address: still at 2, so the next failure from it locks it.
    code(&wrong(&env, "zoe", a), PAM_MAXTRIES);
    locked_refusal(
        &env.login()
            .user("bob")
            .rhost(a)
            .answers(&[BOB_PW, BOB_ANSWER])
            .run(),
        10,
    );
}

#[test]
fn no_address_counts_only_for_the_username() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 3, window_s = 600, lock_s = 600 }\nip = { max_failures = 2, window_s = 600, lock_s = 600 }\n",
    );
    for user in ["zoe", "yann", "xavier"] {
        let o = env
            .login()
            .user(user)
            .answers(&["Wrong-Pass1!", "Nope"])
            .run();
        code(&o, PAM_AUTH_ERR);
    }
    code(
        &env.login().answers(&[ALICE_PW, ALICE_ANSWER]).run(),
        PAM_SUCCESS,
    );
}

#[test]
fn outages_are_never_counted() {
    let (sim, env) = standard(
        "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\nip = { max_failures = 2, window_s = 600, lock_s = 600 }\n",
    );
    sim.fault(json!({"fault": "status500"}));
    for _ in 0..3 {
        code(&alice(&env, CLIENT), PAM_AUTHINFO_UNAVAIL);
        code(&wrong(&env, "alice", CLIENT), PAM_AUTHINFO_UNAVAIL);
    }
    sim.clear_faults();
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    code(&alice(&env, CLIENT), PAM_SUCCESS);
}

#[test]
fn lockout_dir_is_created_0700() {
    let (_sim, env) = standard("");
    assert!(!env.lockdir.exists());
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    let meta = std::fs::metadata(&env.lockdir).expect("lockout dir created");
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
}

#[test]
fn damaged_records_are_replaced_not_a_crash() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 3, window_s = 600, lock_s = 600 }\nip = { max_failures = 3, window_s = 600, lock_s = 600 }\n",
    );
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    let mut damaged = 0;
    let mut stack = vec![env.lockdir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                std::fs::write(&p, b"\x00\xffgarbage{{{\n\x7f").unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "no lockout record was written");
    code(&wrong(&env, "alice", CLIENT), PAM_AUTH_ERR);
    code(&alice(&env, CLIENT), PAM_SUCCESS);
}

#[test]
fn concurrent_failures_in_separate_processes_are_all_counted() {
    // 20 failing logins at once (different usernames, one address) with a limit of 21: none
    // is locked, and the 21st failure locks exactly at the threshold.
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 100, window_s = 600, lock_s = 600 }\nip = { max_failures = 21, window_s = 600, lock_s = 600 }\n",
    );
    let addr = "198.51.100.77";
    let running: Vec<_> = (0..20)
        .map(|i| {
            env.login()
                .user(&format!("user{i:02}"))
                .rhost(addr)
                .answers(&["Wrong-Pass1!", "Nope"])
                .timeout(Duration::from_secs(120))
                .spawn()
        })
        .collect();
    for r in running {
        code(&r.wait(), PAM_AUTH_ERR);
    }
    if let Some(f) = env.admin(&["status", "--ip", addr]) {
        let out = String::from_utf8_lossy(&f.stdout);
        eprintln!("pam-portal status --ip {addr}:\n{out}");
    }
    let o = wrong(&env, "user20", addr);
    assert_eq!(
        o.auth,
        Some(PAM_MAXTRIES),
        "the 21st failure must lock: concurrent failures were lost: {}",
        o.describe()
    );
    locked_refusal(&alice(&env, addr), 10);
}

#[test]
fn concurrent_failures_for_one_username_are_all_counted() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 21, window_s = 600, lock_s = 600 }\nip = { max_failures = 100, window_s = 600, lock_s = 600 }\n",
    );
    let running: Vec<_> = (0..20)
        .map(|i| {
            env.login()
                .user("alice")
                .rhost(&format!("198.51.100.{}", 100 + i))
                .answers(&["Wrong-Pass1!", "Nope"])
                .timeout(Duration::from_secs(120))
                .spawn()
        })
        .collect();
    for r in running {
        code(&r.wait(), PAM_AUTH_ERR);
    }
    if let Some(f) = env.admin(&["status", "--user", "alice"]) {
        let out = String::from_utf8_lossy(&f.stdout);
        eprintln!("pam-portal status --user alice:\n{out}");
    }
    let o = wrong(&env, "alice", CLIENT);
    assert_eq!(
        o.auth,
        Some(PAM_MAXTRIES),
        "the 21st failure must lock: concurrent failures were lost: {}",
        o.describe()
    );
}
