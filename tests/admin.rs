//! The admin command `pam-portal` (SPEC §9, pam-portal(8)): `check` on the example
//! configurations and on broken ones with the documented exit codes, `status` and `reset` (and
//! the reset's audit line, through a temporary /dev/log), `test-login` through libpam on a pipe
//! and on a pseudo-terminal, the audit trail of the module's decisions (SPEC §8) as pam_wrapper
//! captures `pam_syslog`, and the man pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::codes::*;
use pam_testkit::fixtures::*;
use pam_testkit::{
    admin_path, closed_port_url, module_path, run_with_input, run_with_timeout, standard,
    workspace_root, Env, Finished, Outcome,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const EXIT_OK: i32 = 0;
const EXIT_PROBLEM: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_PORTAL: i32 = 3;

fn admin_bin() -> PathBuf {
    admin_path().expect("pam-portal is not built: run `cargo build --workspace` first")
}

/// `pam-portal ARGS` (no implicit --config).
fn admin(args: &[&str]) -> Finished {
    let mut cmd = Command::new(admin_bin());
    cmd.args(args).env_remove("SUDO_USER");
    run_with_timeout(cmd, Duration::from_secs(60))
}

fn admin_in(args: &[&str], input: &str) -> Finished {
    let mut cmd = Command::new(admin_bin());
    cmd.args(args);
    run_with_input(cmd, input.as_bytes(), Duration::from_secs(60))
}

fn code(f: &Finished) -> i32 {
    f.status.code().unwrap_or(-1)
}

fn stdout(f: &Finished) -> String {
    String::from_utf8_lossy(&f.stdout).into_owned()
}

fn stderr(f: &Finished) -> String {
    String::from_utf8_lossy(&f.stderr).into_owned()
}

fn show(f: &Finished) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        f.status.code(),
        stdout(f),
        stderr(f)
    )
}

fn expect_exit(f: &Finished, want: i32) {
    assert_eq!(code(f), want, "{}", show(f));
    let all = format!("{}{}", stdout(f), stderr(f));
    assert!(
        !all.contains("panicked") && !all.contains("RUST_BACKTRACE"),
        "a panic: {}",
        show(f)
    );
}

fn problem_lines(f: &Finished) -> Vec<String> {
    stderr(f)
        .lines()
        .filter(|l| l.starts_with("problem: "))
        .map(str::to_string)
        .collect()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The module configurations among the examples in conf/ (TOML files with a `[portal]` table).
fn example_configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![workspace_root().join("conf")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml")
                && std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.trim() == "[portal]")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no example configuration in conf/");
    out
}

/// An example configuration made local to `env`: its key file and lockout directory replaced
/// by the test's, and (with a sim) its portal by the sim.
fn localize(example: &Path, env: &Env, sim: Option<&pam_testkit::Sim>) -> PathBuf {
    let mut text = std::fs::read_to_string(example).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let portal = table["portal"].as_table().unwrap().clone();
    if let Some(k) = portal.get("api_key_file").and_then(|v| v.as_str()) {
        text = text.replace(k, &env.key_file.to_string_lossy());
    }
    let lock = table
        .get("lockout")
        .and_then(|l| l.get("dir"))
        .and_then(|d| d.as_str())
        .map(str::to_string);
    if let Some(d) = lock {
        text = text.replace(
            &format!("\"{d}\""),
            &format!("\"{}\"", env.lockdir.display()),
        );
    } else {
        text.push_str(&format!(
            "\n[lockout]\ndir = \"{}\"\n",
            env.lockdir.display()
        ));
    }
    if let Some(sim) = sim {
        let url = portal["url"].as_str().unwrap();
        text = text.replace(url, &sim.url);
        // The example's api_user is a placeholder: the sim's account instead.
        if let Some(u) = portal.get("api_user").and_then(|v| v.as_str()) {
            text = text.replace(&format!("\"{u}\""), &format!("\"{}\"", sim.api_user));
        }
        if let Some(ca) = &sim.ca_file {
            text = text.replacen(
                "[portal]\n",
                &format!("[portal]\nca_file = \"{}\"\n", ca.display()),
                1,
            );
        }
    }
    let out = env.root().join(example.file_name().unwrap());
    write(&out, &text, 0o600);
    out
}

// ---- check ------------------------------------------------------------------------------------

#[test]
fn check_each_example_configuration_offline_and_against_the_portal() {
    let (sim, env) = standard("");
    for example in example_configs() {
        // As shipped, the key file does not exist here: one problem line naming it, exit 1.
        if !Path::new("/etc/security/pam_portal.key").exists()
            && std::fs::read_to_string(&example)
                .unwrap()
                .contains("/etc/security/pam_portal.key")
        {
            let f = admin(&["check", "--config", example.to_str().unwrap(), "--offline"]);
            expect_exit(&f, EXIT_PROBLEM);
            let p = problem_lines(&f);
            assert_eq!(p.len(), 1, "{}", show(&f));
            assert!(p[0].contains("api_key_file"), "{}", show(&f));
            assert!(
                p[0].contains("/etc/security/pam_portal.key"),
                "{}",
                show(&f)
            );
        }

        // With a key file and a lockout directory of its own: valid; offline, exit 0.
        let local = localize(&example, &env, None);
        let f = admin(&["check", "--config", local.to_str().unwrap(), "--offline"]);
        expect_exit(&f, EXIT_OK);
        assert!(stdout(&f).contains("valid"), "{}", show(&f));
        assert!(
            stdout(&f).contains("[services.\"openvpn\"]"),
            "{}",
            show(&f)
        );

        // Against the portal (the sim): reached, questions resolved, service account accepted.
        let online = localize(&example, &env, Some(&sim));
        let f = admin(&["check", "--config", online.to_str().unwrap()]);
        expect_exit(&f, EXIT_OK);
        let out = stdout(&f);
        assert!(
            out.contains(&format!("portal {} reached", sim.url)),
            "{}",
            show(&f)
        );
        assert!(out.contains(PET_QUESTION), "{}", show(&f));
        assert!(out.contains("accepted the service account"), "{}", show(&f));
        // The question prompt as a login would show it.
        assert!(
            out.contains(&format!("\"{PET_QUESTION} \"")) || out.contains("\"Answer: \""),
            "{}",
            show(&f)
        );
        // Secrets masked.
        assert!(
            !out.contains(API_KEY) && !stderr(&f).contains(API_KEY),
            "{}",
            show(&f)
        );
    }
}

#[test]
fn check_prints_effective_settings_with_the_key_masked() {
    let (_sim, env) = standard(
        "[portal]\napi_key = \"inline-secret-key-123\"\n[services.openvpn]\nprompts = { question = \"Answer: \", info = false }\n[services.sshd]\nauth = { fail_delay_ms = 700 }\n",
    );
    env.remove_config_key("portal", "api_key_file");
    let f = env.admin(&["check"]).unwrap();
    // The sim's account has another key: the portal refuses the service account (exit 3).
    expect_exit(&f, EXIT_PORTAL);
    let all = format!("{}{}", stdout(&f), stderr(&f));
    assert!(!all.contains("inline-secret-key-123"), "{}", show(&f));
    assert!(
        stdout(&f).contains("api_key = \"********\""),
        "{}",
        show(&f)
    );
    assert!(stdout(&f).contains("[services.\"sshd\"]"), "{}", show(&f));
    assert!(
        stdout(&f).contains("auth.fail_delay_ms = 700"),
        "{}",
        show(&f)
    );
    assert!(
        stdout(&f).contains("prompts.question = \"Answer: \""),
        "{}",
        show(&f)
    );
    let p = problem_lines(&f);
    assert_eq!(p.len(), 1, "{}", show(&f));
    assert!(
        p[0].contains("the portal refused the service credentials: check api_user and the API key"),
        "{}",
        show(&f)
    );
}

#[test]
fn check_exit_codes_for_broken_configurations() {
    let (_sim, env) = standard("");
    let cfg = env.config.to_str().unwrap().to_string();

    // Fine: 0.
    expect_exit(&env.admin(&["check"]).unwrap(), EXIT_OK);

    // Unknown key: 1, one line with the file, the line and the key.
    let good = env.config_text();
    env.write_config(&format!("{good}\n[prompts]\npasword = \"x\"\n"));
    let f = env.admin(&["check"]).unwrap();
    expect_exit(&f, EXIT_PROBLEM);
    let p = problem_lines(&f);
    assert_eq!(p.len(), 1, "{}", show(&f));
    assert!(
        p[0].contains(&cfg) && p[0].contains("line ") && p[0].contains("pasword"),
        "{}",
        show(&f)
    );

    // Writable by others: 1, naming the chmod.
    env.write_config(&good);
    env.chmod_config(0o666);
    let f = env.admin(&["check"]).unwrap();
    expect_exit(&f, EXIT_PROBLEM);
    assert!(problem_lines(&f)[0].contains("chmod"), "{}", show(&f));
    env.chmod_config(0o600);

    // Missing file: 1.
    let f = admin(&["check", "--config", "/nonexistent/pam_portal.toml"]);
    expect_exit(&f, EXIT_PROBLEM);
    assert_eq!(problem_lines(&f).len(), 1, "{}", show(&f));

    // Portal unreachable: 3.
    env.merge_config(&format!("[portal]\nurl = \"{}\"\n", closed_port_url()));
    let f = env.admin(&["check"]).unwrap();
    expect_exit(&f, EXIT_PORTAL);
    assert!(
        problem_lines(&f)[0].contains("check [portal] url"),
        "{}",
        show(&f)
    );

    // No service account: 1.
    env.write_config(&good);
    env.remove_config_key("portal", "api_user");
    env.remove_config_key("portal", "api_key_file");
    let f = env.admin(&["check", "--offline"]).unwrap();
    expect_exit(&f, EXIT_PROBLEM);
    assert!(problem_lines(&f)[0].contains("api_user"), "{}", show(&f));

    // Usage: 2.
    expect_exit(&admin(&["check", "--user", "x"]), EXIT_USAGE);
    expect_exit(&admin(&["frobnicate"]), EXIT_USAGE);
    expect_exit(&admin(&[]), EXIT_USAGE);
    expect_exit(&admin(&["status", "--config"]), EXIT_USAGE);
    let f = admin(&["--help"]);
    expect_exit(&f, EXIT_OK);
    assert!(stdout(&f).contains("test-login"), "{}", show(&f));
}

// ---- status and reset ------------------------------------------------------------------------

/// Holds /dev/log (a datagram socket bound by the test) while no syslog daemon does, so the
/// admin command's syslog lines can be read. Serialized with other tests that do the same by
/// an flock on /tmp/pam_portal-devlog.lock. `None` when a real /dev/log exists.
struct DevLog {
    sock: std::os::unix::net::UnixDatagram,
    _lock: std::fs::File,
}

impl DevLog {
    fn bind() -> Option<DevLog> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/pam_portal-devlog.lock")
            .unwrap();
        lock.lock().unwrap();
        if std::fs::symlink_metadata("/dev/log").is_ok() {
            return None;
        }
        let sock = std::os::unix::net::UnixDatagram::bind("/dev/log").ok()?;
        let _ = std::fs::set_permissions("/dev/log", std::fs::Permissions::from_mode(0o666));
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Some(DevLog { sock, _lock: lock })
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/dev/log");
    }
}

fn wrong_login(env: &Env, user: &str, rhost: &str) -> Outcome {
    env.login()
        .user(user)
        .rhost(rhost)
        .answers(&["Wrong-Pass1!", "Nope"])
        .run()
}

#[test]
fn status_table_and_json_then_reset_with_an_audit_line() {
    let (_sim, env) =
        standard("[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\n");
    // Nothing recorded yet (the directory does not even exist): an empty table.
    let f = env.admin(&["status"]).unwrap();
    expect_exit(&f, EXIT_OK);
    assert_eq!(stdout(&f).lines().count(), 1, "{}", show(&f));

    for _ in 0..2 {
        assert!(wrong_login(&env, "alice", CLIENT).auth.is_some());
    }
    let f = env.admin(&["status"]).unwrap();
    expect_exit(&f, EXIT_OK);
    let table = stdout(&f);
    assert!(table.starts_with("KIND"), "{}", show(&f));
    let alice = table
        .lines()
        .find(|l| l.starts_with("user ") && l.contains("alice"))
        .unwrap_or_else(|| panic!("{}", show(&f)));
    assert!(
        alice.contains("locked, ") && alice.contains(" s left"),
        "{alice}"
    );
    let ip = table.lines().find(|l| l.starts_with("ip ")).unwrap();
    assert!(ip.contains(CLIENT) && ip.contains("2/10"), "{ip}");

    let f = env.admin(&["status", "--json", "--user", "alice"]).unwrap();
    expect_exit(&f, EXIT_OK);
    let v: serde_json::Value = serde_json::from_str(stdout(&f).trim()).unwrap();
    let user = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "user")
        .unwrap();
    assert_eq!(user["key"], "alice");
    assert_eq!(user["locked"], true);
    let left = user["lock_left_s"].as_u64().unwrap();
    assert!(left > 500 && left <= 600, "{v}");

    // The lock refuses alice; reset it, with the audit line on stdout and in syslog.
    assert_eq!(wrong_login(&env, "alice", CLIENT).auth, Some(PAM_MAXTRIES));
    let devlog = DevLog::bind();
    let mut cmd = Command::new(admin_bin());
    cmd.args(["reset", "--user", "alice", "--config"])
        .arg(&env.config)
        .env("SUDO_USER", "opsperson");
    let f = run_with_timeout(cmd, Duration::from_secs(60));
    expect_exit(&f, EXIT_OK);
    let line = stdout(&f).trim().to_string();
    let fields = pam_testkit::parse_kv(&line);
    assert_eq!(
        fields.get("result").map(String::as_str),
        Some("reset"),
        "{line}"
    );
    assert_eq!(
        fields.get("user").map(String::as_str),
        Some("alice"),
        "{line}"
    );
    assert_eq!(
        fields.get("locked").map(String::as_str),
        Some("yes"),
        "{line}"
    );
    assert!(fields.contains_key("lock_left_s"), "{line}");
    assert_eq!(
        fields.get("by").map(String::as_str),
        Some("opsperson"),
        "{line}"
    );
    assert!(fields.contains_key("uid"), "{line}");
    match devlog {
        Some(d) => {
            let got = d.messages();
            // <85> = AUTHPRIV (10 << 3) | NOTICE (5), ident pam-portal with its pid.
            assert!(
                got.iter().any(|m| m.starts_with("<85>")
                    && m.contains("pam-portal[")
                    && m.ends_with(&line)),
                "syslog got {got:?}, want {line:?}"
            );
        }
        None => eprintln!("a /dev/log exists already: the syslog half of the audit is not checked"),
    }
    let alice_ok = env
        .login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run();
    assert_eq!(alice_ok.auth, Some(PAM_SUCCESS), "{}", alice_ok.describe());

    // --ip, --all, and a usage error.
    let f = env.admin(&["reset", "--ip", CLIENT]).unwrap();
    expect_exit(&f, EXIT_OK);
    assert!(
        stdout(&f).starts_with(&format!("result=reset ip={CLIENT} failures=2 ")),
        "{}",
        show(&f)
    );
    wrong_login(&env, "bob", "2001:db8::7");
    let f = env.admin(&["reset", "--all"]).unwrap();
    expect_exit(&f, EXIT_OK);
    assert!(stdout(&f).contains("ip=2001:db8::/64"), "{}", show(&f));
    let f = env.admin(&["status"]).unwrap();
    assert_eq!(stdout(&f).lines().count(), 1, "{}", show(&f));
    expect_exit(
        &env.admin(&["reset", "--user", "a", "--ip", CLIENT])
            .unwrap(),
        EXIT_USAGE,
    );
    expect_exit(
        &env.admin(&["reset", "--ip", "not-an-address"]).unwrap(),
        EXIT_USAGE,
    );
}

// ---- test-login -------------------------------------------------------------------------------

fn test_login_args<'a>(env: &'a Env, module: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "test-login",
        "--config",
        env.config.to_str().unwrap(),
        "--module",
        module,
        "--user",
        "alice",
        "--rhost",
        CLIENT,
        "--service",
        "sshd",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn test_login_on_a_pipe() {
    let (_sim, env) = standard("");
    let module = module_path().to_string_lossy().into_owned();

    let f = admin_in(
        &test_login_args(&env, &module, &[]),
        &format!("{ALICE_PW}\n{ALICE_ANSWER}\n"),
    );
    expect_exit(&f, EXIT_OK);
    assert!(
        stdout(&f).contains("pam_authenticate: PAM_SUCCESS"),
        "{}",
        show(&f)
    );
    assert!(
        stdout(&f).contains("pam_acct_mgmt: PAM_SUCCESS"),
        "{}",
        show(&f)
    );
    assert!(stdout(&f).contains("accepted"), "{}", show(&f));
    assert!(stderr(&f).contains("Password: "), "{}", show(&f));
    assert!(stderr(&f).contains(PET_QUESTION), "{}", show(&f));

    let f = admin_in(
        &test_login_args(&env, &module, &[]),
        &format!("Wrong-Pass1!\n{ALICE_ANSWER}\n"),
    );
    expect_exit(&f, EXIT_PROBLEM);
    assert!(
        stdout(&f).contains("refused (PAM_AUTH_ERR)"),
        "{}",
        show(&f)
    );
    assert!(
        stderr(&f).contains("Invalid login credentials provided."),
        "{}",
        show(&f)
    );

    // End of input at the password prompt: the conversation fails.
    let f = admin_in(&test_login_args(&env, &module, &["--no-account"]), "");
    expect_exit(&f, EXIT_PROBLEM);
    assert!(stdout(&f).contains("PAM_CONV_ERR"), "{}", show(&f));

    // A globally denied address: refused before any prompt.
    env.merge_config("[access]\ndeny = [\"198.51.100.0/24\"]\n");
    let f = admin_in(&test_login_args(&env, &module, &[]), "");
    expect_exit(&f, EXIT_PROBLEM);
    assert!(stdout(&f).contains("PAM_PERM_DENIED"), "{}", show(&f));
    assert!(!stderr(&f).contains("Password: "), "{}", show(&f));

    // Problems named in one line.
    let f = admin_in(
        &test_login_args(&env, "/nonexistent/pam_portal.so", &[]),
        "",
    );
    expect_exit(&f, EXIT_PROBLEM);
    assert_eq!(stderr(&f).lines().count(), 1, "{}", show(&f));
    assert!(stderr(&f).contains("--module"), "{}", show(&f));
    env.write_config("[portal]\nurl = 5\n");
    let f = admin_in(&test_login_args(&env, &module, &[]), "");
    expect_exit(&f, EXIT_PROBLEM);
    assert_eq!(stderr(&f).lines().count(), 1, "{}", show(&f));
    assert!(stderr(&f).contains("line 2"), "{}", show(&f));
    expect_exit(&admin(&["test-login", "--service", "sshd"]), EXIT_USAGE);
    expect_exit(
        &admin(&[
            "test-login",
            "--system-stack",
            "--service",
            "sshd",
            "--user",
            "a",
            "--module",
            "/x",
        ]),
        EXIT_USAGE,
    );
}

/// Drives a command on a pseudo-terminal like a person: waits for each prompt, then types.
const PTY_DRIVER: &str = r#"
import os, pty, select, sys, time
answers = sys.argv[1].split("\x1f")
expects = sys.argv[2].split("\x1f")
argv = sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
buf = b""
def fill(deadline):
    global buf
    r, _, _ = select.select([fd], [], [], max(0, deadline - time.time()))
    if not r:
        return False
    try:
        d = os.read(fd, 4096)
    except OSError:
        return None
    if not d:
        return None
    buf += d
    return True
for want, answer in zip(expects, answers):
    deadline = time.time() + 30
    while want.encode() not in buf:
        if not fill(deadline):
            sys.stdout.write(buf.decode(errors="replace"))
            sys.stderr.write("pty driver: no %r\n" % want)
            sys.exit(90)
    time.sleep(0.1)
    os.write(fd, answer.encode() + b"\r")
deadline = time.time() + 30
while fill(deadline):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(buf.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn test_login_on_a_terminal_turns_echo_off() {
    let (_sim, env) = standard("");
    let module = module_path().to_string_lossy().into_owned();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PTY_DRIVER)
        .arg(format!("{ALICE_PW}\x1f{ALICE_ANSWER}"))
        .arg(format!("Password: \x1f{PET_QUESTION}"))
        .arg(admin_bin())
        .args(test_login_args(&env, &module, &[]));
    let f = run_with_timeout(cmd, Duration::from_secs(90));
    let transcript = stdout(&f);
    assert_eq!(code(&f), 0, "{}", show(&f));
    assert!(transcript.contains("Password: "), "{transcript}");
    assert!(transcript.contains(PET_QUESTION), "{transcript}");
    assert!(transcript.contains("accepted"), "{transcript}");
    // Neither the password nor the answer was echoed.
    assert!(
        !transcript.contains(ALICE_PW),
        "the password was echoed:\n{transcript}"
    );
    assert!(
        !transcript.contains(ALICE_ANSWER),
        "the answer was echoed:\n{transcript}"
    );
}

// ---- the audit trail of the module (SPEC §8) -------------------------------------------------

#[test]
fn audit_every_decision_line_has_the_fields_and_no_secret() {
    let (sim, env) = standard(
        "[lockout]\nuser = { max_failures = 2, window_s = 600, lock_s = 600 }\n[access]\ndeny = [\"203.0.113.0/24\"]\n",
    );
    env.stack("sshd", "");
    let run = |user: &str, rhost: &str, answers: &[&str], acct: bool| {
        let mut b = env
            .login()
            .service("sshd")
            .user(user)
            .rhost(rhost)
            .answers(answers)
            .under_pam_wrapper();
        if acct {
            b = b.auth().acct();
        }
        b.run()
    };
    let mut outcomes = vec![
        ("ok", run("alice", CLIENT, &[ALICE_PW, ALICE_ANSWER], true)),
        (
            "bad_password",
            run("bob", CLIENT, &["Wrong-Pass1!", BOB_ANSWER], false),
        ),
        (
            "bad_answer",
            run("bob", "198.51.100.8", &[BOB_PW, "Wrong-Answer"], false),
        ),
        (
            "user_unknown",
            run("nobody", CLIENT, &["Whatever-1", "x"], false),
        ),
        ("ip_denied", run("alice", "203.0.113.5", &[], false)),
        ("user_locked", run("bob", CLIENT, &[], false)),
    ];
    sim.fault(serde_json::json!({"fault": "status500"}));
    outcomes.push((
        "portal_unavailable",
        run("alice", CLIENT, &[ALICE_PW, ALICE_ANSWER], false),
    ));
    sim.clear_faults();

    let secrets = [
        ALICE_PW,
        ALICE_ANSWER,
        BOB_PW,
        BOB_ANSWER,
        "Wrong-Pass1!",
        "Wrong-Answer",
        "Whatever-1",
        API_KEY,
    ];
    for (reason, o) in &outcomes {
        for s in secrets {
            assert!(
                !o.stderr.contains(s),
                "{reason}: a secret ({s}) in the log output:\n{}",
                o.stderr
            );
        }
        let lines = o.decisions();
        for l in &lines {
            eprintln!("{reason}: {}", l.text);
        }
        assert!(
            !lines.is_empty(),
            "{reason}: no decision line\n{}",
            o.describe()
        );
        let first = lines[0].fields();
        assert_eq!(
            first.get("reason").map(String::as_str),
            Some(*reason),
            "{}",
            lines[0].text
        );
        for l in &lines {
            let f = l.fields();
            for key in ["result", "reason", "user", "rhost", "service", "factor"] {
                assert!(
                    f.get(key).is_some_and(|v| !v.is_empty()),
                    "{reason}: no {key} in {:?}",
                    l.text
                );
            }
            assert_eq!(f["service"], "sshd", "{}", l.text);
            assert!(l.continuation.is_empty(), "{l:?}");
            if f["reason"].ends_with("_locked") || f.contains_key("locked") {
                assert!(
                    f.contains_key("locked"),
                    "{reason}: no locked= in {:?}",
                    l.text
                );
                let left: u64 = f
                    .get("lock_left_s")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                assert!(
                    left > 0 && left <= 600,
                    "{reason}: lock_left_s in {:?}",
                    l.text
                );
            }
        }
    }
    // The success carries the account hook's line too.
    let success = &outcomes[0].1.decisions();
    assert!(
        success
            .iter()
            .any(|l| l.field("hook").as_deref() == Some("account")),
        "{success:?}"
    );
    // The failure that locked bob says so, with the time left.
    let bad_answer = outcomes[2].1.decisions()[0].fields();
    assert_eq!(
        bad_answer.get("locked").map(String::as_str),
        Some("user"),
        "{bad_answer:?}"
    );
}

// ---- man pages ---------------------------------------------------------------------------------

fn man_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("docs/man"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "5" || x == "8"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn man_pages_render_without_warnings() {
    let pages = man_pages();
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["pam-portal.8", "pam_portal.8", "pam_portal.toml.5"]);
    for page in &pages {
        let mut cmd = Command::new("man");
        cmd.args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80");
        let f = run_with_timeout(cmd, Duration::from_secs(60));
        assert_eq!(code(&f), 0, "{}: {}", page.display(), show(&f));
        assert!(
            f.stderr.is_empty(),
            "{}: warnings:\n{}",
            page.display(),
            stderr(&f)
        );
        let text = stdout(&f);
        if page.to_string_lossy().ends_with(".8") && text.contains("Linux-PAM Manual") {
            for section in [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "OPTIONS",
                "FILES",
                "EXAMPLES",
                "SEE ALSO",
            ] {
                assert!(
                    text.contains(&format!("\n{section}\n")),
                    "{}: no {section}",
                    page.display()
                );
            }
        }
    }
    let module = std::fs::read_to_string(workspace_root().join("docs/man/pam_portal.8")).unwrap();
    for section in ["MODULE TYPES PROVIDED", "RETURN VALUES"] {
        assert!(
            module.contains(&format!(".SH {section}")),
            "pam_portal.8: no {section}"
        );
    }
}

#[test]
fn every_configuration_key_is_documented() {
    // The keys of the `Raw*` structs of src/config.rs (the file's schema).
    let src = std::fs::read_to_string(workspace_root().join("src/config.rs")).unwrap();
    let mut keys = Vec::new();
    let mut in_raw = false;
    for line in src.lines() {
        if line.starts_with("struct Raw") {
            in_raw = true;
        } else if line.starts_with('}') {
            in_raw = false;
        } else if in_raw {
            let t = line.trim();
            if let Some((name, _)) = t.split_once(':') {
                if !t.starts_with('#')
                    && !t.starts_with("//")
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                {
                    keys.push(name.to_string());
                }
            }
        }
    }
    assert!(keys.len() > 20, "{keys:?}");
    let page =
        std::fs::read_to_string(workspace_root().join("docs/man/pam_portal.toml.5")).unwrap();
    let missing: Vec<&String> = keys.iter().filter(|k| !page.contains(k.as_str())).collect();
    assert!(
        missing.is_empty(),
        "keys not in docs/man/pam_portal.toml.5: {missing:?}"
    );
}
