//! The module's three objects. `pam_portal.so` is the front (src/front.rs): from the digest the
//! full module wrote, it refuses globally denied and locked clients itself, asks for the
//! password and refuses (counting) an empty or over-long one, and hands every other login, with
//! the password, to `libpam_portal_full.so`, loaded from its own directory. The HTTP half
//! (`libpam_portal_http.so`, src/portal/transport.rs) is loaded, from the same directory, only
//! when a login needs the portal. A refusal before any portal call works without the half;
//! without a usable half, a portal login is refused as the portal being unavailable, with the
//! reason logged; a half writable by others, or of another version, is never loaded. The front
//! refuses without the full module only from a digest that is current and trusted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, msg, *};
use pam_testkit::{Env, Outcome, Sim};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const HALF: &str = "libpam_portal_http.so";
const FULL: &str = "libpam_portal_full.so";

/// An environment whose stack loads a copy of the front from `<root>/lib/`, beside a copy of
/// the full module (when `full`) and of the HTTP half (when `half` is given: the bytes to
/// write there).
fn env_with(sim: &Sim, extra: &str, full: bool, half: Option<Vec<u8>>) -> (Env, PathBuf) {
    let mut env = Env::new(sim, extra);
    let lib = env.root().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let module = lib.join("pam_portal.so");
    std::fs::copy(&env.module, &module).unwrap();
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o755)).unwrap();
    if full {
        install(&lib, FULL, built(FULL));
    }
    if let Some(bytes) = half {
        install(&lib, HALF, bytes);
    }
    env.module = module;
    env.stack("test", "");
    (env, lib)
}

/// The front and the full module, with or without the half.
fn env_with_copies(sim: &Sim, extra: &str, half: Option<Vec<u8>>) -> (Env, PathBuf) {
    env_with(sim, extra, true, half)
}

fn install(lib: &Path, name: &str, bytes: Vec<u8>) {
    let p = lib.join(name);
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn built(name: &str) -> Vec<u8> {
    let p = pam_testkit::bin_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Replaces every `version` in an object's bytes with the same string, its digits made 9s:
/// (that string, how many were replaced).
fn other_version(bytes: &mut [u8], version: &[u8]) -> (Vec<u8>, usize) {
    let other: Vec<u8> = version
        .iter()
        .map(|b| if b.is_ascii_digit() { b'9' } else { *b })
        .collect();
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
    (other, patched)
}

fn built_half() -> Vec<u8> {
    built(HALF)
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
    let (other, patched) = other_version(&mut bytes, version);
    assert_ne!(other, version);
    assert!(patched > 0, "the half's version string was not found");
    let (env, _) = env_with_copies(&sim, "", Some(bytes));
    let o = alice(&env);
    expect_unavailable_because(&o, &format!("version {}", String::from_utf8_lossy(&other)));
}

#[test]
fn a_symlinked_module_finds_the_full_module_and_the_half_beside_its_real_file() {
    let sim = Sim::start(&fixtures::standard());
    let (mut env, lib) = env_with_copies(&sim, "", Some(built_half()));
    let elsewhere = env.root().join("security");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let link = elsewhere.join("pam_portal.so");
    std::os::unix::fs::symlink(lib.join("pam_portal.so"), &link).unwrap();
    assert!(!Path::new(&elsewhere.join(HALF)).exists());
    assert!(!Path::new(&elsewhere.join(FULL)).exists());
    env.module = link;
    env.stack("test", "");
    assert_eq!(alice(&env).auth, Some(PAM_SUCCESS));
}

// ---- the front -------------------------------------------------------------------------------

const LOCKED_30: &str = "Account has been locked for 30 minutes.";

/// The digest file the full module writes for `env`'s configuration (there is one).
fn digest_file(env: &Env) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(&env.lockdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("config."))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one digest in {}: {found:?}",
        env.lockdir.display()
    );
    found[0].clone()
}

/// Two empty passwords lock mallory (`max_failures = 2`): the full module counts the first and
/// writes the digest on the way; the front counts the second.
fn lock_mallory(env: &Env) {
    for want in [PAM_AUTH_ERR, PAM_MAXTRIES] {
        let o = env
            .login()
            .user("mallory")
            .rhost(CLIENT)
            .answers(&[""])
            .run();
        assert_eq!(o.auth, Some(want), "{}", o.describe());
    }
}

fn mallory(env: &Env) -> Outcome {
    env.login()
        .user("mallory")
        .rhost(CLIENT)
        .answers(&["x"])
        .under_pam_wrapper()
        .run()
}

fn expect_full_missing(o: &Outcome, lib: &Path) {
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
    let log = log_text(o);
    let why = format!(
        "cannot load the full module of pam_portal: not found (looked for {})",
        lib.join(FULL).display()
    );
    assert!(log.contains(&why), "expected {why:?} in the log:\n{log}");
}

#[test]
fn the_front_alone_refuses_a_locked_client_and_hands_the_rest_over() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with(&sim, "[lockout]\nuser = { max_failures = 2 }\n", true, None);
    lock_mallory(&env);
    digest_file(&env);
    // Without the full module: the front refuses the locked user as the full module did, with
    // the same message, code and log line, and no prompt.
    std::fs::remove_file(lib.join(FULL)).unwrap();
    let o = mallory(&env);
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    assert!(o.prompts().is_empty(), "{}", o.describe());
    assert_eq!(o.errors(), [LOCKED_30], "{}", o.describe());
    let log = log_text(&o);
    assert!(
        log.contains("result=fail reason=user_locked user=mallory rhost=198.51.100.7"),
        "{log}"
    );
    // Anyone not locked goes on to the full module: without it, a configuration error.
    expect_full_missing(&alice(&env), &lib);
    // acct_mgmt is the full module's too.
    let o = env
        .login()
        .user("mallory")
        .rhost(CLIENT)
        .answers(&["x"])
        .acct()
        .under_pam_wrapper()
        .run();
    assert_eq!(o.acct, Some(PAM_SERVICE_ERR), "{}", o.describe());
    assert!(sim.calls().is_empty(), "{:?}", sim.calls());
}

/// What the front checked before a hand-over serves that one call of the full module. A stack
/// that runs the front, then the full module on its own line: on the first line the front
/// checks mallory, asks for her password and hands it over, and the full module counts the
/// portal's refusal, which locks her; the second line must see the lock in the record (no
/// prompt), not take the front's earlier "not locked", or its password, for its own.
#[test]
fn the_fronts_check_serves_the_one_call_it_was_made_for() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with(
        &sim,
        "[lockout]\nuser = { max_failures = 1 }\n",
        true,
        Some(built_half()),
    );
    // A first login writes the digest, so that the front checks the next ones itself.
    let o = env.login().user("zed").rhost(CLIENT).answers(&[""]).run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    digest_file(&env);
    env.stack_text(
        "test",
        &format!(
            "auth optional {{module}} config={{config}}\nauth required {} config={{config}}\n",
            lib.join(FULL).display()
        ),
    );
    let o = env
        .login()
        .user("mallory")
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", "x", "Wrong-Pass2!", "y"])
        .under_pam_wrapper()
        .run();
    assert_eq!(o.auth, Some(PAM_MAXTRIES), "{}", o.describe());
    // The first line's password and (decoy) question; nothing on the second.
    assert_eq!(o.prompts().len(), 2, "{}", o.describe());
    let reasons: Vec<String> = o
        .decisions()
        .iter()
        .map(|d| d.text.split(" user=").next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "result=fail reason=user_unknown",
            "result=fail reason=user_locked"
        ],
        "{}",
        o.describe()
    );
    assert!(
        o.decisions()[0].text.contains("counted=yes locked=user"),
        "{}",
        o.describe()
    );
    assert_eq!(sim.login_calls("mallory"), 1, "{:?}", sim.calls());
}

#[test]
fn an_edited_configuration_is_not_judged_by_the_old_digest() {
    let sim = Sim::start(&fixtures::standard());
    let (env, _) = env_with_copies(
        &sim,
        "[access]\ndeny = [\"198.51.100.0/24\"]\n",
        Some(built_half()),
    );
    for _ in 0..2 {
        let o = env.login().rhost(CLIENT).answers(&[ALICE_PW]).run();
        assert_eq!(o.auth, Some(PAM_PERM_DENIED), "{}", o.describe());
        assert!(o.prompts().is_empty(), "{}", o.describe());
    }
    let before = std::fs::read_to_string(digest_file(&env)).unwrap();
    // The deny list is gone: the next login is asked for its password (the front's digest
    // still lists the block, but it was made from another text).
    env.write_config(&std::fs::read_to_string(&env.config).unwrap().replace(
        "deny = [\"198.51.100.0/24\"]",
        "deny = [\"203.0.113.0/24\"]",
    ));
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    let after = std::fs::read_to_string(digest_file(&env)).unwrap();
    assert_ne!(before, after, "the full module rewrote the digest");
    assert!(after.contains("deny 203.0.113.0/24"), "{after}");
}

#[test]
fn a_damaged_or_untrusted_digest_is_not_used() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with(&sim, "[lockout]\nuser = { max_failures = 2 }\n", true, None);
    lock_mallory(&env);
    let digest = digest_file(&env);
    let good = std::fs::read(&digest).unwrap();
    std::fs::rename(lib.join(FULL), lib.join("full.away")).unwrap();
    let cases: [(&str, Vec<u8>, u32); 3] = [
        ("cut short", good[..good.len() - 4].to_vec(), 0o600),
        ("garbled", b"\x00\xffnot a digest\n".to_vec(), 0o600),
        ("writable by others", good.clone(), 0o666),
    ];
    for (what, bytes, mode) in cases {
        std::fs::write(&digest, &bytes).unwrap();
        std::fs::set_permissions(&digest, std::fs::Permissions::from_mode(mode)).unwrap();
        // The front does not decide: the login goes to the (missing) full module.
        expect_full_missing(&mallory(&env), &lib);
        // With the full module back, the refusal is the same, and the digest is rewritten.
        std::fs::rename(lib.join("full.away"), lib.join(FULL)).unwrap();
        let o = mallory(&env);
        assert_eq!(o.auth, Some(PAM_MAXTRIES), "{what}: {}", o.describe());
        assert_eq!(o.errors(), [LOCKED_30], "{what}: {}", o.describe());
        assert_eq!(std::fs::read(&digest).unwrap(), good, "{what}: rewritten");
        let mode = std::fs::metadata(&digest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{what}");
        std::fs::rename(lib.join(FULL), lib.join("full.away")).unwrap();
        // And the front decides alone again.
        assert_eq!(mallory(&env).auth, Some(PAM_MAXTRIES), "{what}");
    }
}

#[test]
fn a_full_module_of_another_version_is_not_used() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with_copies(&sim, "", Some(built_half()));
    let version = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();
    let mut bytes = built(FULL);
    let (other, patched) = other_version(&mut bytes, version);
    assert!(
        patched > 0,
        "the full module's version string was not found"
    );
    install(&lib, FULL, bytes);
    let o = alice(&env);
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
    let log = log_text(&o);
    let other = String::from_utf8_lossy(&other[..other.len() - 1]).into_owned();
    assert!(
        log.contains("cannot load the full module of pam_portal")
            && log.contains(&format!("version {other}")),
        "{log}"
    );
}

/// What a client sees and what the log says of one login: code, messages, prompts, and the
/// decision line with the service's name and the lock's seconds left taken out (a second may
/// pass between two logins); those seconds come third.
fn seen(
    env: &Env,
    service: &str,
    user: &str,
    rhost: Option<&str>,
) -> (Option<i32>, String, Vec<u64>) {
    // No answer to a prompt: a conversation error, nothing counted, so each login leaves the
    // records as it found them.
    let mut l = env.login().service(service).user(user).answers(&[]);
    if let Some(r) = rhost {
        l = l.rhost(r);
    }
    let o = l.under_pam_wrapper().run();
    let decision: Vec<String> = o
        .log_lines()
        .iter()
        .filter(|l| l.text.contains("result="))
        .map(|l| {
            l.text
                .replace(&format!("({service}:"), "(")
                .replace(&format!("service={service}"), "service=")
        })
        .collect();
    let mut left = Vec::new();
    let decision: Vec<String> = decision
        .iter()
        .map(|line| {
            line.split(' ')
                .map(|w| match w.strip_prefix("lock_left_s=") {
                    Some(n) => {
                        left.push(n.parse::<u64>().unwrap());
                        "lock_left_s=…"
                    }
                    None => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let shown = format!(
        "prompts={:?} errors={:?} log={decision:?}",
        o.prompts().len(),
        o.errors()
    );
    (o.auth, shown, left)
}

#[test]
fn the_front_and_the_full_module_refuse_alike() {
    // The same logins decided by the front (stack "test") and by the full module ("debug"
    // makes the front hand every login over): the same code, messages and decision line.
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with_copies(
        &sim,
        "[access]\ndeny = [\"203.0.113.0/24\", \"2001:db8:bad::/48\"]\n\
         [lockout]\nuser = { max_failures = 2 }\nip = { max_failures = 2, ipv6_prefix = 56 }\n",
        Some(built_half()),
    );
    env.stack("full", "debug");
    // Lock an IPv6 /56 and a username (empty passwords: counted, no portal call).
    for rhost in ["2001:db8:1:100::1", "2001:db8:1:1ff::2"] {
        env.login().user("carol").rhost(rhost).answers(&[""]).run();
    }
    for _ in 0..2 {
        env.login()
            .user("mallory")
            .rhost("192.0.2.9")
            .answers(&[""])
            .run();
    }
    digest_file(&env);
    let cases: [(&str, Option<&str>); 9] = [
        ("alice", Some("203.0.113.5")),            // denied
        ("alice", Some("[2001:db8:bad::1%eth0]")), // denied, bracketed with a zone
        ("alice", Some("::ffff:203.0.113.9")),     // denied, mapped IPv4
        ("alice", Some("2001:db8:1:1ab::7")),      // the locked /56
        ("mallory", Some("198.51.100.7")),         // the locked username
        ("mallory", None),                         // locked, no address
        ("mallory", Some("host.example")),         // locked, a host name
        ("alice", Some("2001:db8:1:200::1")),      // next /56: not locked
        ("bob", Some("198.51.100.8")),             // nothing: the password prompt
    ];
    // The full module's answers first; then, with the full module gone, the front's: each
    // must be the same. Seven are refused before any prompt; the other two go on to the
    // password prompt, which no answer ends (a conversation error: the front's to decide too).
    let full: Vec<_> = cases
        .iter()
        .map(|(user, rhost)| seen(&env, "full", user, *rhost))
        .collect();
    std::fs::rename(lib.join(FULL), lib.join("full.away")).unwrap();
    let mut refused = 0;
    for ((user, rhost), full) in cases.iter().zip(full) {
        let front = seen(&env, "test", user, *rhost);
        assert_eq!(
            (front.0, &front.1),
            (full.0, &full.1),
            "{user} from {rhost:?}"
        );
        // The front ran later: as many seconds left, or a few fewer.
        assert_eq!(front.2.len(), full.2.len(), "{user} from {rhost:?}");
        for (f, l) in front.2.iter().zip(&full.2) {
            assert!(
                f <= l && l - f <= 5,
                "{user} from {rhost:?}: {f} s left, then {l}"
            );
        }
        if matches!(full.0, Some(PAM_PERM_DENIED | PAM_MAXTRIES)) {
            refused += 1;
        } else {
            assert_eq!(full.0, Some(PAM_CONV_ERR), "{user} from {rhost:?}");
            assert!(full.1.starts_with("prompts=1 "), "{user}: {}", full.1);
        }
    }
    assert_eq!(
        refused, 7,
        "seven of the nine are refused before any prompt"
    );
}

/// Removes every lockout record (keeping the digest and the question cache).
fn clear_records(env: &Env) {
    let Ok(entries) = std::fs::read_dir(&env.lockdir) else {
        return; // no login has made it yet
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("config.") && !name.starts_with("questions") && !name.starts_with('.')
        {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

/// One login's code, prompts, messages and decision lines, with the time left of a lock
/// rounded to the minute (the two runs are seconds apart).
fn shown(o: &Outcome) -> String {
    let lines: Vec<String> = o
        .decisions()
        .iter()
        .map(|d| {
            d.text
                .split(' ')
                .map(|w| match w.strip_prefix("lock_left_s=") {
                    Some(n) => format!("lock_left_m={}", n.parse::<u64>().unwrap().div_ceil(60)),
                    None => w.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    format!(
        "code={:?} prompts={:?} errors={:?} log={lines:?}",
        o.auth,
        o.prompt_list(),
        o.errors()
    )
}

/// SPEC §4 step 4 before the portal: the password prompt (the service's own text), no answer,
/// `use_first_pass` without a password, and an empty or over-long password (counted, and
/// locking on the last allowed failure). The front decides these itself, without the full
/// module, exactly as the full module does.
#[test]
fn the_front_asks_for_the_password_and_counts_what_needs_no_portal_as_the_full_module_does() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with_copies(
        &sim,
        "[lockout]
user = { max_failures = 2 }
ip = { max_failures = 100 }
         [services.vpn]
prompts = { password = \"VPN password: \" }
",
        Some(built_half()),
    );
    env.stack("vpn", "");
    env.stack("first", "use_first_pass");
    let long = "x".repeat(513);
    // (service, answers, logins in a row: the last one is compared; its code and reason)
    let cases: [(&str, Vec<&str>, usize, i32, &str); 6] = [
        ("test", vec![""], 1, PAM_AUTH_ERR, "empty_password"),
        ("test", vec![&long], 1, PAM_AUTH_ERR, "password_too_long"),
        ("test", vec![], 1, PAM_CONV_ERR, "conversation"),
        ("vpn", vec![""], 1, PAM_AUTH_ERR, "empty_password"),
        ("first", vec![], 1, PAM_AUTH_ERR, "no_first_pass"),
        // The second counted failure locks carol: answered as the lock.
        ("test", vec![""], 2, PAM_MAXTRIES, "empty_password"),
    ];
    let run = |service: &str, answers: &[&str], times: usize| {
        let mut last = None;
        for _ in 0..times {
            let o = env
                .login()
                .service(service)
                .user("carol")
                .rhost(CLIENT)
                .answers(answers)
                .under_pam_wrapper()
                .run();
            last = Some(o);
        }
        last.unwrap()
    };
    for (service, answers, times, code, reason) in &cases {
        // The full module: no digest, so the front hands the login over (and the full module
        // writes the digest again).
        clear_records(&env);
        if std::fs::metadata(&env.lockdir).is_ok() {
            std::fs::remove_file(digest_file(&env)).unwrap();
        }
        let full = run(service, answers, *times);
        digest_file(&env);
        // The front, with the full module gone.
        clear_records(&env);
        std::fs::rename(lib.join(FULL), lib.join("full.away")).unwrap();
        let front = run(service, answers, *times);
        std::fs::rename(lib.join("full.away"), lib.join(FULL)).unwrap();
        assert_eq!(full.auth, Some(*code), "{}", full.describe());
        let line = format!("reason={reason} user=carol");
        assert!(log_text(&full).contains(&line), "{}", full.describe());
        assert_eq!(
            shown(&front),
            shown(&full),
            "{service} {answers:?} x{times}"
        );
        assert!(
            !log_text(&front).contains("cannot load the full module"),
            "{}",
            front.describe()
        );
    }
    // The service's own prompt was the one shown.
    clear_records(&env);
    let o = run("vpn", &[""], 1);
    assert_eq!(o.prompt_list()[0].1, "VPN password: ", "{}", o.describe());
    assert!(sim.calls().is_empty(), "{:?}", sim.calls());
}

/// A password the front asked for goes to the full module, which does not ask again: a login
/// that succeeds sees one password prompt, and with `try_first_pass` the password is left in
/// `PAM_AUTHTOK` for the next module, as when the full module asks.
#[test]
fn a_password_the_front_asked_for_is_handed_over_and_not_asked_again() {
    let sim = Sim::start(&fixtures::standard());
    let (env, lib) = env_with_copies(&sim, "", Some(built_half()));
    let saved = env.stack_capture_authtok("capture", "try_first_pass", false);
    for round in 0..2 {
        // The first round is the full module's (no digest yet); the second, the front's.
        let o = env
            .login()
            .service("capture")
            .rhost(CLIENT)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .under_pam_wrapper()
            .run();
        assert_eq!(o.auth, Some(PAM_SUCCESS), "round {round}: {}", o.describe());
        assert_eq!(
            o.prompt_list(),
            prompt::password_and_pet(),
            "round {round}: {}",
            o.describe()
        );
        assert_eq!(std::fs::read_to_string(&saved).unwrap(), ALICE_PW);
        std::fs::remove_file(&saved).unwrap();
        digest_file(&env);
    }
    // A wrong password asked by the front: the portal says so, and it is counted.
    let o = env
        .login()
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", ALICE_ANSWER])
        .under_pam_wrapper()
        .run();
    assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    assert_eq!(o.prompts().len(), 2, "{}", o.describe());
    assert!(
        log_text(&o).contains("reason=bad_password user=alice"),
        "{}",
        o.describe()
    );
    assert!(log_text(&o).contains("counted=yes"), "{}", o.describe());
    // The front asked in the second round: without the full module, the password prompt is
    // still shown (then the hand-over fails).
    std::fs::rename(lib.join(FULL), lib.join("full.away")).unwrap();
    let o = alice(&env);
    assert_eq!(o.prompts().len(), 1, "{}", o.describe());
    expect_full_missing(&o, &lib);
}
