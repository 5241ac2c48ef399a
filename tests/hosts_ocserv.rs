//! End to end with the real ocserv (1.1) and the real `openconnect --authenticate`, deployed as
//! `docs/DEPLOY.md` says:
//!
//! * ocserv runs `conf/ocserv/ocserv.conf` with only its site lines replaced (ports,
//!   certificates, runtime files): `auth = "pam"`, `auth-timeout`, `max-ban-score` and the rest
//!   are used as they are;
//! * `/etc/pam.d/ocserv` is `conf/pam.d/ocserv` unchanged, `pam_portal.so` is the module under
//!   test, `/etc/security/pam_portal.toml` is `conf/pam_portal.toml` (its `[services.ocserv]`
//!   profile included) pointed at portal-sim;
//! * ocserv, the client and portal-sim run in a network namespace of the test's own, where the
//!   client reaches ocserv at 127.0.0.9 (or 127.0.0.10) and so comes from that address; ocserv
//!   runs in a private mount namespace whose `/etc`, PAM module directory and `/dev` are
//!   overlays written by the test (`tests/hosts/mod.rs`): the real `/etc/pam.d/ocserv` is never
//!   touched, and the module's syslog lines come back through `/dev/log` of that namespace only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hosts;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hosts::*;
use pam_testkit::fixtures::{self, *};
use pam_testkit::Sim;

const SERVICE: &str = "ocserv";
const PORT: u16 = 4443;
const ADDR: &str = "127.0.0.9";
const OTHER_ADDR: &str = "127.0.0.10";

fn preconditions() {
    require_root();
    require_file("/usr/sbin/ocserv", "ocserv");
    require_file("/usr/sbin/openconnect", "openconnect");
    require_file("/usr/bin/unshare", "util-linux");
    require_file("/usr/bin/ip", "iproute2");
}

/// ocserv, portal-sim and the sandbox of one test (dropped in this order).
struct Oc {
    server: HostProc,
    sb: Sandbox,
    sim: Sim,
    pki: Pki,
    auth_timeout_s: u64,
}

/// What `openconnect --authenticate` did.
struct Auth {
    ok: bool,
    elapsed: Duration,
    /// openconnect's stderr: the forms' messages and field labels the user saw.
    shown: String,
    stdout: String,
}

impl Oc {
    fn start() -> Oc {
        preconditions();
        let sim = Sim::start(&fixtures::standard());
        let sb = Sandbox::new("ocserv");
        sb.install_conf_stack(SERVICE);
        sb.install_module_config(&sim);
        let pki = make_pki(&sb.root().join("pki"));

        let conf = conf_text("ocserv/ocserv.conf");
        assert_eq!(
            directive_values(&conf, Syntax::Equals, "auth"),
            vec!["\"pam\"".to_string()],
            "conf/ocserv/ocserv.conf must authenticate through PAM"
        );
        let auth_timeout_s: u64 = directive_values(&conf, Syntax::Equals, "auth-timeout")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(240);
        let root = sb.root().to_path_buf();
        let text = override_directives(
            &conf,
            Syntax::Equals,
            &[
                ("tcp-port", Some(PORT.to_string())),
                ("udp-port", None),
                ("listen-host", None),
                ("server-cert", Some(pki.cert.display().to_string())),
                ("server-key", Some(pki.key.display().to_string())),
                (
                    "socket-file",
                    Some(root.join("ocserv.sock").display().to_string()),
                ),
                (
                    "pid-file",
                    Some(root.join("ocserv.pid").display().to_string()),
                ),
                ("use-occtl", Some("false".into())),
                ("occtl-socket-file", None),
                ("chroot-dir", None),
            ],
        );
        let path = root.join("ocserv.conf");
        write(&path, &text, 0o644);
        let mut server = sb.spawn(
            "ocserv",
            "/usr/sbin/ocserv",
            &[
                "-f".into(),
                "-d".into(),
                "3".into(),
                "-c".into(),
                path.display().to_string(),
            ],
        );
        server.wait_output("initialized ocserv", Duration::from_secs(20));
        Oc {
            server,
            sb,
            sim,
            pki,
            auth_timeout_s,
        }
    }

    fn diag(&self) -> String {
        diagnostics(&self.sb, &self.server)
    }

    /// `openconnect --authenticate` to `addr` (so the connection comes from `addr`), one stdin
    /// line per form.
    fn login(&self, user: &str, lines: &[&str], addr: &str) -> Auth {
        let started = Instant::now();
        let mut child = Command::new("/usr/sbin/openconnect")
            .args(["--protocol=anyconnect", "--authenticate", "--user", user])
            .arg("--servercert")
            .arg(&self.pki.pin)
            .arg(format!("https://{addr}:{PORT}/"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start openconnect");
        {
            let mut stdin = child.stdin.take().unwrap();
            for l in lines {
                writeln!(stdin, "{l}").unwrap();
            }
        }
        let pid = child.id();
        let out = wait_with_timeout(child, Duration::from_secs(self.auth_timeout_s + 30))
            .unwrap_or_else(|| {
                panic!(
                    "openconnect (pid {pid}) got no answer in time\n{}",
                    self.diag()
                )
            });
        let elapsed = started.elapsed();
        let a = Auth {
            ok: out.status.success(),
            elapsed,
            shown: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        if !a.ok {
            // A dying sec-mod is reported a moment after the client's 401.
            for _ in 0..50 {
                if self.secmod_died() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if self.secmod_died() {
            panic!(
                "ocserv's sec-mod process died during {user}'s login. ocserv 1.1 runs PAM on a \
                 96 KiB coroutine stack (src/auth/pam.c, PAM_STACK_SIZE): a module that needs \
                 more overflows it. openconnect saw:\n{}\n{}",
                a.shown,
                self.diag()
            );
        }
        a
    }

    /// Whether ocserv reported the death of a sec-mod process (where PAM runs).
    fn secmod_died(&self) -> bool {
        let out = self.server.output();
        out.contains("command socket for sec-mod closed")
            || out.contains("ocserv-secmod died unexpectedly")
    }

    fn decision(&self, user: &str, hook: &str, n: usize) -> ModLine {
        user_decision(&self.sb, &self.server, user, hook, n)
    }

    fn check(&self, l: &ModLine, want: &[(&str, &str)]) {
        check_fields(l, want, SERVICE, &self.sb, &self.server);
    }

    fn expect(&self, a: &Auth, ok: bool, what: &str) {
        assert_eq!(
            a.ok,
            ok,
            "{what}: openconnect printed:\n{}{}\n{}",
            a.stdout,
            a.shown,
            self.diag()
        );
        if ok {
            assert!(
                a.stdout.contains("COOKIE="),
                "{what}: no cookie: {}",
                a.stdout
            );
        }
    }
}

/// Waits for a child with piped output, killing it (by pid) after `timeout`.
fn wait_with_timeout(
    child: std::process::Child,
    timeout: Duration,
) -> Option<std::process::Output> {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(r) => r.ok(),
        Err(_) => {
            // SAFETY: the client this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv_timeout(Duration::from_secs(5));
            None
        }
    }
}

/// The lines of openconnect's output that show a form: its message, then the field label.
fn forms(shown: &str) -> Vec<String> {
    shown
        .lines()
        .filter(|l| {
            !l.starts_with("POST ")
                && !l.starts_with("Connected to ")
                && !l.starts_with("SSL negotiation")
                && !l.starts_with("Server certificate verify failed")
                && !l.starts_with("Connected to HTTPS")
                && !l.starts_with("XML POST enabled")
                && !l.starts_with("Got HTTP response")
                && !l.starts_with("Server '")
                && !l.starts_with("Failed to complete")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn question_login_then_wrong_answer() {
    in_netns(&[ADDR], || {
        let oc = Oc::start();
        let a = oc.login("alice", &[ALICE_PW, ALICE_ANSWER], ADDR);
        oc.expect(&a, true, "alice with the right answer");
        // What the user sees: ocserv's own password form, then the question as a form of its own.
        assert_eq!(
            forms(&a.shown),
            vec![
                "Please enter your username.".to_string(),
                "Please enter your password.".into(),
                "Password:".into(),
                format!("{PET_QUESTION} "),
                "Password1:".into(),
            ],
            "{}",
            a.shown
        );
        let l = oc.decision("alice", "auth", 0);
        oc.check(
            &l,
            &[
                ("result", "success"),
                ("reason", "ok"),
                ("rhost", ADDR),
                ("factor", "question"),
            ],
        );
        let acct = oc.decision("alice", "account", 0);
        oc.check(&acct, &[("result", "success"), ("rhost", ADDR)]);
        // The address the module logged is the one ocserv reports for that client.
        assert!(
            oc.server
                .output()
                .lines()
                .any(|l| l.contains("worker[alice]: 127.0.0.9 ")),
            "{}",
            oc.diag()
        );

        let a = oc.login("alice", &[ALICE_PW, "Not-Fluffy"], ADDR);
        oc.expect(&a, false, "alice with a wrong answer");
        let l = oc.decision("alice", "auth", 1);
        oc.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "bad_answer"),
                ("rhost", ADDR),
                ("counted", "yes"),
            ],
        );
    });
}

#[test]
fn phone_approved() {
    in_netns(&[ADDR], || {
        let oc = Oc::start();
        let a = oc.login("pat", &[PAT_PW], ADDR);
        oc.expect(&a, true, "pat approving the call");
        // No form after the password: the phone rings, the user approves, the login completes.
        assert_eq!(
            forms(&a.shown),
            vec![
                "Please enter your username.".to_string(),
                "Please enter your password.".into(),
                "Password:".into(),
            ],
            "{}",
            a.shown
        );
        let l = oc.decision("pat", "auth", 0);
        oc.check(
            &l,
            &[("result", "success"), ("factor", "phone"), ("rhost", ADDR)],
        );
    });
}

#[test]
fn phone_ignored_is_refused_within_auth_timeout() {
    in_netns(&[ADDR], || {
        let oc = Oc::start();
        let timeout_s = conf_phone_timeout_s(SERVICE);
        assert!(
            timeout_s < oc.auth_timeout_s,
            "phone_timeout_s {timeout_s} >= auth-timeout {}",
            oc.auth_timeout_s
        );
        let a = oc.login("paul", &[PHONE_PW], ADDR);
        oc.expect(&a, false, "paul ignoring the call");
        let ms = a.elapsed.as_millis() as u64;
        assert!(
            ms >= timeout_s * 1000 && ms < oc.auth_timeout_s * 1000,
            "refused after {ms} ms: expected phone_timeout_s ({timeout_s} s) <= t < auth-timeout ({} s)",
            oc.auth_timeout_s
        );
        assert!(a.shown.contains("401 Authentication failed"), "{}", a.shown);
        let l = oc.decision("paul", "auth", 0);
        oc.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "phone_timeout"),
                ("rhost", ADDR),
                ("counted", "yes"),
            ],
        );
    });
}

#[test]
fn failures_from_one_address_lock_it() {
    in_netns(&[ADDR, OTHER_ADDR], || {
        let oc = Oc::start();
        let max = conf_ip_max_failures();
        for i in 0..max {
            // Spread over three users so that only the address reaches the limit.
            let a = match i % 3 {
                0 => oc.login("alice", &["wrong-password", ALICE_ANSWER], ADDR),
                1 => oc.login("bob", &[BOB_PW, "wrong-answer"], ADDR),
                _ => oc.login("hank", &["wrong-password", HANK_ANSWER], ADDR),
            };
            oc.expect(&a, false, &format!("failure {i}"));
        }
        let last = oc
            .sb
            .log
            .wait_decision(max - 1, Duration::from_secs(10), |l| l.hook == "auth")
            .unwrap_or_else(|| panic!("{max} auth decisions expected\n{}", oc.diag()));
        assert_eq!(last.get("locked").as_deref(), Some("ip"), "{}", last.text);

        let before = portal_calls(&oc.sim);
        let a = oc.login("alice", &[ALICE_PW, ALICE_ANSWER], ADDR);
        oc.expect(&a, false, "alice from a locked address");
        assert!(
            !a.shown.contains("Please enter your password."),
            "a locked address must be refused before any prompt:\n{}",
            a.shown
        );
        assert!(
            a.elapsed < Duration::from_secs(5),
            "refused after {:?}",
            a.elapsed
        );
        let l = oc
            .sb
            .log
            .wait_decision(max, Duration::from_secs(10), |l| l.hook == "auth")
            .unwrap_or_else(|| panic!("no decision for the locked attempt\n{}", oc.diag()));
        oc.check(
            &l,
            &[
                ("user", "alice"),
                ("result", "fail"),
                ("reason", "ip_locked"),
                ("rhost", ADDR),
            ],
        );
        assert_eq!(
            portal_calls(&oc.sim),
            before,
            "the portal was called for a locked address: {:?}",
            oc.sim.calls().get(before..)
        );

        let a = oc.login("alice", &[ALICE_PW, ALICE_ANSWER], OTHER_ADDR);
        oc.expect(&a, true, "alice from another address");
        let l = oc
            .sb
            .log
            .wait_decision(max + 1, Duration::from_secs(10), |l| l.hook == "auth")
            .unwrap();
        oc.check(&l, &[("result", "success"), ("rhost", OTHER_ADDR)]);
    });
}

#[test]
fn vpn_only_user_gets_in_disabled_user_does_not() {
    in_netns(&[ADDR], || {
        let oc = Oc::start();
        let a = oc.login("erin", &[ERIN_PW, ERIN_ANSWER], ADDR);
        oc.expect(&a, true, "erin (VPN_ONLY) over ocserv");
        let l = oc.decision("erin", "auth", 0);
        oc.check(&l, &[("result", "success"), ("rhost", ADDR)]);
        let acct = oc.decision("erin", "account", 0);
        oc.check(&acct, &[("result", "success"), ("hook", "account")]);

        let a = oc.login("dave", &[DAVE_PW, DAVE_ANSWER], ADDR);
        oc.expect(&a, false, "dave (DISABLED) over ocserv");
        let l = oc.decision("dave", "auth", 0);
        oc.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "account_state"),
                ("rhost", ADDR),
            ],
        );
    });
}

#[test]
fn deploy_guide_quotes_these_settings() {
    check_guide_quotes(
        &["ocserv/ocserv.conf", "pam.d/ocserv", "pam_portal.toml"],
        SERVICE,
    );
}
