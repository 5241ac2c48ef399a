//! Secret hygiene (issue 6 §6, SPEC §8): no password, answer, code, API key or session hash
//! in any log line, client message or panic text.
//!
//! 1. The whole suite: every other integration-test binary of this package that runs logins
//!    through the test kit (`tests/*.rs` using `.login()`) is run again with
//!    `PAM_PORTAL_TEST_WRAP_ALL=1` (each `LoginBuilder::run` under pam_wrapper, so the module's
//!    `pam_syslog` lines are captured) and `PAM_PORTAL_TEST_TRANSCRIPTS=DIR` (every login leaves
//!    a transcript: what was typed, the API keys configured, the messages, the whole stderr).
//!    Every transcript is then searched. The binaries are the ones `cargo test` just built
//!    (`target/debug/deps/<name>-<hash>`, newest of each name); whether their own assertions
//!    hold under pam_wrapper is their business (reported, not judged here).
//! 2. A fixed set of logins through every decision path, with the `debug` argument, checked
//!    the same way, so the check never depends on what the rest of the suite happens to do.
//!
//! What is searched for, in each login's log lines, messages and stderr (panic texts included):
//! every answer given to an echo-off prompt (passwords, security answers, codes; a username
//! asked for with an echo-on prompt is not a secret), the pre-set `PAM_AUTHTOK`, the API keys
//! of the configuration (key file and inline), raw and in the log's escaped form; and any
//! 64-hex-digit token (the portal's session hash; lockout file names, `u_<hex>`, excepted).
//! Values shorter than 6 bytes, or contained in the username, the address, the service, a
//! prompt or the configuration's path, cannot be told apart from legitimate text and are
//! skipped (counted in the figures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, *};
use pam_testkit::transcript::{self, Transcript};
use pam_testkit::{parse_kv, run_with_timeout, Env, LoginBuilder, Outcome, Sim};
use serde_json::json;

// ---- the search ------------------------------------------------------------------------------------

#[derive(Default)]
struct Figures {
    logins: usize,
    wrapped: usize,
    log_lines: usize,
    messages: usize,
    panics: usize,
    secrets_checked: usize,
    secrets_skipped: usize,
}

/// Runs of exactly 64 hex digits not preceded by `_` (a lockout file name).
fn session_hashes(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_hexdigit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            let before = if start > 0 { b[start - 1] } else { b' ' };
            if i - start == 64 && before != b'_' && before != b'~' {
                out.push(text[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The findings in one transcript (empty: clean).
fn findings(t: &Transcript, fig: &mut Figures) -> Vec<String> {
    fig.logins += 1;
    if t.wrapped {
        fig.wrapped += 1;
    }
    let lines = pam_testkit_log_lines(&t.stderr);
    fig.log_lines += lines.len();
    let messages = t.messages();
    fig.messages += messages.len();
    if t.stderr.contains("panicked") {
        fig.panics += 1;
    }
    let mut secrets: Vec<Vec<u8>> = t.secret_answers();
    secrets.extend(t.authtok.clone());
    secrets.extend(t.api_keys.iter().map(|k| k.as_bytes().to_vec()));
    // What the test itself chose to show: the names, and the prompts' own texts.
    let innocent: Vec<Vec<u8>> = [
        t.user.clone().unwrap_or_default(),
        t.rhost.clone().unwrap_or_default(),
        t.service.as_bytes().to_vec(),
    ]
    .into_iter()
    .chain(
        messages
            .iter()
            .filter(|m| m.0 == "echo_off" || m.0 == "echo_on")
            .map(|m| m.1.as_bytes().to_vec()),
    )
    .collect();
    let mut out = Vec::new();
    let here = format!("{} / {}", t.binary, t.test);
    for s in secrets {
        let contained = innocent
            .iter()
            .any(|i| i.windows(s.len().max(1)).any(|w| w == s.as_slice()));
        if s.len() < 6 || contained {
            fig.secrets_skipped += 1;
            continue;
        }
        fig.secrets_checked += 1;
        let raw = String::from_utf8_lossy(&s).into_owned();
        let escaped = pam_portal::audit::escape_bytes(&s);
        let shown = || raw.chars().take(40).collect::<String>();
        if t.stderr.contains(&raw) {
            out.push(format!(
                "{here}: secret {:?} in stderr (log or panic)",
                shown()
            ));
        } else if escaped != raw && t.stderr.contains(&escaped) {
            out.push(format!("{here}: secret {:?} escaped in the log", shown()));
        }
        for (style, text, _) in &messages {
            if text.contains(&raw) {
                out.push(format!("{here}: secret {:?} in a {style} message", shown()));
            }
        }
    }
    for h in session_hashes(&t.stderr) {
        out.push(format!("{here}: a session hash in stderr: {h}"));
    }
    for (style, text, _) in &messages {
        for h in session_hashes(text) {
            out.push(format!("{here}: a session hash in a {style} message: {h}"));
        }
    }
    out
}

/// pam_wrapper's SYSLOG lines in a stderr text.
fn pam_testkit_log_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("PWRAP_") && l.contains("SYSLOG("))
        .map(str::to_string)
        .collect()
}

// ---- 1. the whole suite ------------------------------------------------------------------------

/// `tests/<stem>.rs` files that run logins through the test kit, but this one.
fn login_test_stems() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.extension()? == "rs"
                && stem != "hygiene"
                && std::fs::read_to_string(&p).ok()?.contains(".login()"))
            .then_some(stem)
        })
        .collect();
    v.sort();
    v
}

/// The newest `deps/<stem>-<16 hex>` executable next to this test binary.
fn test_binary(stem: &str) -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(&deps).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(hash) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let meta = e.metadata().ok()?;
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        let m = meta.modified().ok()?;
        if best.as_ref().is_none_or(|(t, _)| m > *t) {
            best = Some((m, e.path()));
        }
    }
    best.map(|(_, p)| p)
}

#[test]
fn no_secret_in_any_log_line_message_or_panic_text_across_the_whole_suite() {
    let dir = tempfile_dir();
    let stems = login_test_stems();
    let mut ran = BTreeMap::new();
    for stem in &stems {
        let Some(bin) = test_binary(stem) else {
            eprintln!("hygiene: no built test binary for tests/{stem}.rs (skipped)");
            continue;
        };
        let mut cmd = Command::new(&bin);
        cmd.args(["--test-threads=2", "-q"])
            .env(transcript::TRANSCRIPTS_VAR, dir.path())
            .env(transcript::WRAP_ALL_VAR, "1");
        let f = run_with_timeout(cmd, Duration::from_secs(1800));
        let out = String::from_utf8_lossy(&f.stdout);
        let summary = out
            .lines()
            .rev()
            .find(|l| l.starts_with("test result:"))
            .unwrap_or("(no summary)")
            .to_string();
        eprintln!("hygiene: tests/{stem}.rs under pam_wrapper: {summary}");
        ran.insert(stem.clone(), summary);
    }
    let all = transcript::read_all(dir.path());
    let mut fig = Figures::default();
    let mut found = Vec::new();
    for t in &all {
        found.extend(findings(t, &mut fig));
    }
    eprintln!(
        "FIGURES hygiene suite: {} test files re-run, {} logins ({} under pam_wrapper), {} log lines, {} client messages, {} panic texts; {} secrets searched, {} too short or innocent; {} findings",
        ran.len(),
        fig.logins,
        fig.wrapped,
        fig.log_lines,
        fig.messages,
        fig.panics,
        fig.secrets_checked,
        fig.secrets_skipped,
        found.len()
    );
    assert!(
        found.is_empty(),
        "{} secret(s) leaked:\n{}",
        found.len(),
        found
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        fig.logins >= 200 && fig.wrapped * 2 >= fig.logins && fig.log_lines >= fig.wrapped,
        "too little was checked ({} logins, {} wrapped, {} log lines): were the test binaries built?",
        fig.logins,
        fig.wrapped,
        fig.log_lines
    );
}

fn tempfile_dir() -> TempDirGuard {
    let p = std::env::temp_dir().join(format!("pam_portal-hygiene-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    TempDirGuard(p)
}

struct TempDirGuard(PathBuf);
impl TempDirGuard {
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- 2. every decision path, with `debug` ---------------------------------------------------------

/// A transcript of one login run here (the same shape the suite's transcripts have).
fn transcript_of(
    env: &Env,
    o: &Outcome,
    user: &str,
    answers: &[&str],
    authtok: Option<&str>,
) -> Transcript {
    let key = std::fs::read_to_string(&env.key_file)
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    let mut api_keys: Vec<String> = vec![key, API_KEY.to_string()];
    for (k, v) in parse_kv(&env.config_text().replace('\n', " ")) {
        if k == "api_key" {
            api_keys.push(v);
        }
    }
    api_keys.retain(|k| !k.is_empty());
    Transcript {
        file: PathBuf::new(),
        test: "every_decision_path".into(),
        binary: "hygiene".into(),
        wrapped: true,
        service: "sshd".into(),
        user: Some(user.as_bytes().to_vec()),
        rhost: Some(CLIENT.as_bytes().to_vec()),
        answers: answers.iter().map(|a| a.as_bytes().to_vec()).collect(),
        authtok: authtok.map(|a| a.as_bytes().to_vec()),
        api_keys,
        report: Some(o.json.clone()),
        stdout: String::new(),
        stderr: o.stderr.clone(),
        status: Some(0),
    }
}

fn path_login<'e>(env: &'e Env, user: &str, answers: &[&str]) -> LoginBuilder<'e> {
    env.login()
        .service("sshd")
        .user(user)
        .rhost(CLIENT)
        .answers(answers)
        .under_pam_wrapper()
}

#[test]
fn no_secret_on_any_decision_path_with_debug_logging() {
    let sim = Sim::start(&fixtures::standard());
    let env = Env::new(
        &sim,
        "[lockout]\nuser = { max_failures = 8, window_s = 600, lock_s = 600 }\nip = { max_failures = 100, window_s = 600, lock_s = 600 }\n[auth]\nphone_poll_ms = 50\n",
    );
    env.stack("sshd", "debug");
    let mut fig = Figures::default();
    let mut found = Vec::new();
    let mut reasons = BTreeMap::<String, usize>::new();
    let mut check = |o: &Outcome, user: &str, answers: &[&str], authtok: Option<&str>| {
        for d in o.decisions() {
            *reasons
                .entry(d.field("reason").unwrap_or_default())
                .or_default() += 1;
        }
        found.extend(findings(
            &transcript_of(&env, o, user, answers, authtok),
            &mut fig,
        ));
    };
    let long = "Long-Secret-".repeat(50);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("alice", vec![ALICE_PW, ALICE_ANSWER]),       // ok
        ("alice", vec!["Wrong-Pass1!", ALICE_ANSWER]), // bad_password
        ("alice", vec![ALICE_PW, "Garfield-Cat"]),     // bad_answer
        ("zoe", vec!["Zoe-Secret9!", "Whiskers"]),     // user_unknown
        ("carol", vec![CAROL_PW, "Decoy-Answer"]),     // no_second_factor
        ("dave", vec![DAVE_PW, DAVE_ANSWER]),          // account_state
        ("frank", vec![FRANK_PW, FRANK_ANSWER]),       // portal restriction
        ("tina", vec![PHONE_PW, CODE]),                // TOTP ok
        ("tina", vec![PHONE_PW, "999999"]),            // bad_code
        ("vic", vec![PHONE_PW, CODE, SECOND_CODE]),    // VeriSign resync
        ("pat", vec![PAT_PW]),                         // phone ok
        ("penny", vec![PHONE_PW]),                     // phone_denied
        ("bea", vec![PHONE_PW]),                       // phone_blocked
        ("alice", vec!["", ALICE_ANSWER]),             // empty_password
        ("alice", vec![long.as_str(), "x"]),           // password_too_long
    ];
    for (user, answers) in &cases {
        let o = path_login(&env, user, answers).run();
        check(&o, user, answers, None);
    }
    // user_locked: bob fails eight times, then is refused at once.
    for _ in 0..9 {
        let a = ["Bob-Wrong-77!", BOB_ANSWER];
        let o = path_login(&env, "bob", &a).run();
        check(&o, "bob", &a, None);
    }
    // Outages whose answers echo what was sent, or carry a token.
    for fault in ["garbage", "error200", "wrong_types", "huge", "redirect"] {
        sim.fault(json!({"fault": fault}));
        let a = [ALICE_PW, ALICE_ANSWER];
        let o = path_login(&env, "alice", &a).run();
        check(&o, "alice", &a, None);
        sim.clear_faults();
    }
    // First pass: the password comes as PAM_AUTHTOK.
    env.stack_first_pass("sshd", "use_first_pass debug");
    let o = path_login(&env, "alice", &[ALICE_ANSWER])
        .authtok(ALICE_PW)
        .run();
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
    check(&o, "alice", &[ALICE_ANSWER], Some(ALICE_PW));
    // A configuration error next to an inline key.
    env.stack("sshd", "debug");
    let saved = env.config_text();
    env.write_config(&format!("{saved}\n[portal.extra]\nx = 1\n"));
    let o = path_login(&env, "alice", &[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
    check(&o, "alice", &[ALICE_PW, ALICE_ANSWER], None);
    env.write_config(&saved.replace(
        &format!("api_key_file = \"{}\"", env.key_file.display()),
        &format!("api_key = \"{API_KEY}\"\napi_kee = \"{API_KEY}\""),
    ));
    let o = path_login(&env, "alice", &[ALICE_PW, ALICE_ANSWER]).run();
    assert_eq!(o.auth, Some(PAM_SERVICE_ERR), "{}", o.describe());
    check(&o, "alice", &[ALICE_PW, ALICE_ANSWER], None);
    env.write_config(&saved);
    // A panic inside the module (debug builds): its text carries no secret either.
    let o = path_login(&env, "alice", &[ALICE_PW, ALICE_ANSWER])
        .var("PAM_PORTAL_TEST_PANIC", "1")
        .run();
    assert_eq!(o.auth, Some(PAM_ABORT), "{}", o.describe());
    check(&o, "alice", &[ALICE_PW, ALICE_ANSWER], None);

    eprintln!(
        "FIGURES hygiene paths: {} logins with `debug`, {} log lines, {} messages, {} panic texts, reasons {reasons:?}; {} secrets searched; {} findings",
        fig.logins, fig.log_lines, fig.messages, fig.panics, fig.secrets_checked, found.len()
    );
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    for r in [
        "ok",
        "bad_password",
        "bad_answer",
        "user_unknown",
        "bad_code",
        "phone_denied",
        "user_locked",
        "portal_unavailable",
        "bad_config",
        "no_second_factor",
    ] {
        assert!(
            reasons.contains_key(r),
            "no `{r}` decision was exercised: {reasons:?}"
        );
    }
}

/// The search itself finds what it looks for (a planted password, escaped or raw, and a hash).
#[test]
fn the_search_finds_planted_secrets() {
    let report = json!({"messages": [
        {"style": "echo_off", "text": "Password: ", "answered": true, "phase": "auth"},
        {"style": "error", "text": "bad Planted-Secret-2", "answered": false, "phase": "auth"},
    ]});
    let t = Transcript {
        file: PathBuf::new(),
        test: "planted".into(),
        binary: "hygiene".into(),
        wrapped: true,
        service: "test".into(),
        user: Some(b"alice".to_vec()),
        rhost: None,
        answers: vec![b"Planted Secret 1".to_vec(), b"Planted-Secret-2".to_vec()],
        authtok: Some(b"Planted-Secret-2".to_vec()),
        api_keys: vec!["Planted-Key-3".into()],
        report: Some(report),
        stdout: String::new(),
        stderr: format!(
            "PWRAP_DEBUG[x (1)] - SYSLOG(5): result=fail detail=Planted\\x20Secret\\x201 hash={}\nthread panicked at Planted-Key-3\n",
            "ab".repeat(32)
        ),
        status: Some(0),
    };
    let mut fig = Figures::default();
    let f = findings(&t, &mut fig);
    assert_eq!(f.len(), 4, "{f:#?}");
    assert!(session_hashes(&format!("u_{}", "ab".repeat(32))).is_empty());
}
