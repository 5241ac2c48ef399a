//! The HTTP half (`libpam_portal_http.so`, src/portal/transport.rs): loaded from the module's
//! directory only when a login needs the portal. A refusal before any portal call works with
//! the module alone; without a usable half, a portal login is refused as the portal being
//! unavailable, with the reason logged; a half writable by others, or of another version, is
//! never loaded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, msg, *};
use pam_testkit::{Env, Outcome, Sim};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const HALF: &str = "libpam_portal_http.so";

/// An environment whose stack loads a copy of the module from `<root>/lib/`, beside a copy of
/// the half (when `half` is given: the bytes to write there).
fn env_with_copies(sim: &Sim, extra: &str, half: Option<Vec<u8>>) -> (Env, PathBuf) {
    let mut env = Env::new(sim, extra);
    let lib = env.root().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let module = lib.join("pam_portal.so");
    std::fs::copy(&env.module, &module).unwrap();
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(bytes) = half {
        let h = lib.join(HALF);
        std::fs::write(&h, bytes).unwrap();
        std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.module = module;
    env.stack("test", "");
    (env, lib)
}

fn built_half() -> Vec<u8> {
    let p = pam_testkit::bin_dir().join(HALF);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn alice(env: &Env) -> Outcome {
    env.login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .under_pam_wrapper()
        .run()
}

/// The text of every log line of a login.
fn log_text(o: &Outcome) -> String {
    o.log_lines()
        .iter()
        .map(|l| l.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn expect_unavailable_because(o: &Outcome, why: &str) {
    assert_eq!(o.auth, Some(PAM_AUTHINFO_UNAVAIL), "{}", o.describe());
    assert_eq!(o.errors(), [msg::UNAVAILABLE], "{}", o.describe());
    let log = log_text(o);
    assert!(
        log.contains("cannot load the HTTP half of pam_portal") && log.contains(why),
        "expected the reason {why:?} in the log:\n{log}"
    );
}

#[test]
fn the_module_alone_refuses_and_locks_without_loading_the_half() {
    let sim = Sim::start(&fixtures::standard());
    let (env, _) = env_with_copies(&sim, "[lockout]\nuser = { max_failures = 2 }\n", None);
    // Empty passwords: counted without a portal call; the second one locks.
    let o = env.login().rhost(CLIENT).answers(&[""]).run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(o.errors(), [msg::INVALID], "{}", o.describe());
    let o = env.login().rhost(CLIENT).answers(&[""]).run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    // Locked: refused before any prompt or portal call, so the missing half does not matter.
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(
        o.errors(),
        ["Account has been locked for 30 minutes."],
        "{}",
        o.describe()
    );
    assert!(
        sim.calls().is_empty(),
        "no call reached the portal: {:?}",
        sim.calls()
    );
}

#[test]
fn without_the_half_a_portal_login_is_unavailable_and_the_log_says_why() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with_copies(&sim, "", None);
    let o = alice(&env);
    expect_unavailable_because(
        &o,
        &format!("not found (looked for {})", lib.join(HALF).display()),
    );
    // Once the half is installed, the next login (a new process) uses it.
    std::fs::write(lib.join(HALF), built_half()).unwrap();
    std::fs::set_permissions(lib.join(HALF), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

#[test]
fn a_half_writable_by_others_is_not_loaded() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with_copies(&sim, "", Some(built_half()));
    assert_eq!(alice(&env).auth, Some(PAM_SUCCESS));
    std::fs::set_permissions(lib.join(HALF), std::fs::Permissions::from_mode(0o757)).unwrap();
    let o = alice(&env);
    expect_unavailable_because(&o, "writable by group or others");
}

#[test]
fn a_half_of_another_version_is_not_used() {
    let sim = Sim::start(&fixtures::standard());
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    let mut bytes = built_half();
    let other: Vec<u8> = version
        .iter()
        .map(|b| if b.is_ascii_digit() { b'9' } else { *b })
        .collect();
    assert_ne!(other, version);
    let mut patched = 0;
    let mut i = 0;
    while i + version.len() <= bytes.len() {
        if &bytes[i..i + version.len()] == version {
            bytes[i..i + version.len()].copy_from_slice(&other);
            patched += 1;
            i += version.len();
        } else {
            i += 1;
        }
    }
    assert!(patched > 0, "the half's version string was not found");
    let (env, _) = env_with_copies(&sim, "", Some(bytes));
    let o = alice(&env);
    expect_unavailable_because(&o, &format!("version {}", String::from_utf8_lossy(&other)));
}

#[test]
fn a_symlinked_module_finds_the_half_beside_its_real_file() {
    let sim = Sim::start(&fixtures::standard());
    let (mut env, lib) = env_with_copies(&sim, "", Some(built_half()));
    let elsewhere = env.root().join("security");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let link = elsewhere.join("pam_portal.so");
    std::os::unix::fs::symlink(lib.join("pam_portal.so"), &link).unwrap();
    assert!(!Path::new(&elsewhere.join(HALF)).exists());
    env.module = link;
    env.stack("test", "");
    assert_eq!(alice(&env).auth, Some(PAM_SUCCESS));
}
