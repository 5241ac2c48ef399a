//! End to end with the real OpenSSH server (Debian's openssh-server) and a real SSH client
//! (paramiko, `tests/hosts/ssh_login.py`), deployed as `docs/DEPLOY.md` says:
//!
//! * sshd runs with the machine's stock `/etc/ssh/sshd_config` plus `conf/sshd/pam_portal.conf`
//!   unchanged as `/etc/ssh/sshd_config.d/pam_portal.conf`; only the port, the listen address
//!   and the host key come from the command line (`-o`);
//! * `/etc/pam.d/sshd` is `conf/pam.d/sshd` unchanged, `pam_portal.so` is the module under test,
//!   `/etc/security/pam_portal.toml` is `conf/pam_portal.toml` (its `[services.sshd]` profile
//!   included) pointed at portal-sim;
//! * everything runs in a network namespace of the test's own (loopback only), sshd in a private
//!   mount namespace whose `/etc`, PAM module directory and `/dev` are overlays written by the
//!   test (`tests/hosts/mod.rs`): no file is put in the real `/etc`, and the module's syslog
//!   lines come back through `/dev/log` of that namespace only.
//!
//! The users exist only in that namespace's `/etc/passwd` (sshd needs local accounts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hosts;

use std::fs;
use std::process::Command;
use std::time::Duration;

use hosts::*;
use pam_testkit::fixtures::{self, *};
use pam_testkit::{run_with_timeout, workspace_root, Sim};
use serde_json::Value;

const PORT: u16 = 2222;
const SERVICE: &str = "sshd";
const CONFIRM: &str = "Press Enter once you have answered on your phone: ";
const USERS: &[&str] = &["alice", "bob", "hank", "pat", "paul", "dave", "erin"];

fn preconditions() {
    require_root();
    require_file("/usr/sbin/sshd", "openssh-server");
    require_file("/usr/bin/ssh-keygen", "openssh-client");
    require_file("/usr/bin/unshare", "util-linux");
    require_file("/usr/bin/ip", "iproute2");
    require_paramiko();
}

/// sshd, portal-sim and the sandbox of one test. Dropped in reverse order of declaration below:
/// the host first.
struct Sshd {
    host: HostProc,
    sb: Sandbox,
    sim: Sim,
    /// Client key pair (OpenSSH format), authorized for the users given to `authorize`.
    client_key: std::path::PathBuf,
}

impl Sshd {
    fn start() -> Sshd {
        preconditions();
        let sim = Sim::start(&fixtures::standard());
        let mut sb = Sandbox::new("sshd");
        sb.add_users(USERS);
        sb.install_conf_stack(SERVICE);
        sb.install_module_config(&sim);
        let dropin = conf_text("sshd/pam_portal.conf");
        sb.etc("ssh/sshd_config.d/pam_portal.conf", &dropin, 0o644);
        let stock = fs::read_to_string("/etc/ssh/sshd_config")
            .expect("/etc/ssh/sshd_config (openssh-server)");
        assert!(
            stock
                .lines()
                .any(|l| l.trim() == "Include /etc/ssh/sshd_config.d/*.conf"),
            "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf: the drop-in \
             conf/sshd/pam_portal.conf would not be read"
        );

        let hostkey = sb.root().join("ssh_host_ed25519_key");
        let client_key = sb.root().join("client_ed25519");
        for k in [&hostkey, &client_key] {
            run_ok(
                Command::new("ssh-keygen")
                    .args([
                        "-q",
                        "-t",
                        "ed25519",
                        "-N",
                        "",
                        "-C",
                        "pam_portal-test",
                        "-f",
                    ])
                    .arg(k),
            );
        }
        // sshd's privilege-separation directory (made by the package's init script on a booted
        // system; nothing here boots it).
        fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");

        let args: Vec<String> = vec![
            "-D".into(),
            "-e".into(),
            "-f".into(),
            "/etc/ssh/sshd_config".into(),
            "-o".into(),
            format!("Port={PORT}"),
            "-o".into(),
            "ListenAddress=127.0.0.1".into(),
            "-o".into(),
            format!("HostKey={}", hostkey.display()),
            "-o".into(),
            "PidFile=none".into(),
        ];

        // The effective settings, as sshd computes them from the stock file and the drop-in.
        let mut t_args = args.clone();
        t_args[0] = "-T".into();
        let mut probe = sb.spawn("sshd-T", "/usr/sbin/sshd", &t_args);
        probe.wait_output("usepam", Duration::from_secs(10));
        thread_sleep_until_exit(&mut probe);
        let eff = probe.output();
        for want in [
            "usepam yes",
            "kbdinteractiveauthentication yes",
            "passwordauthentication no",
            "pubkeyauthentication yes",
            "usedns no",
            "logingracetime 120",
            "authenticationmethods publickey keyboard-interactive",
        ] {
            assert!(
                eff.lines().any(|l| l.trim() == want),
                "sshd -T with conf/sshd/pam_portal.conf does not give {want:?}:\n{eff}"
            );
        }
        drop(probe);

        let mut host = sb.spawn("sshd", "/usr/sbin/sshd", &args);
        host.wait_output(
            &format!("Server listening on 127.0.0.1 port {PORT}"),
            Duration::from_secs(15),
        );
        Sshd {
            host,
            sb,
            sim,
            client_key,
        }
    }

    fn authorize(&self, user: &str) {
        let pubkey =
            fs::read_to_string(self.client_key.with_extension("pub")).expect("client public key");
        self.sb.authorize_key(user, &pubkey);
    }

    fn diag(&self) -> String {
        diagnostics(&self.sb, &self.host)
    }

    /// One keyboard-interactive login from `from`, answering the prompts in order.
    fn kbd(&self, user: &str, from: &str, answers: &[&str], command: Option<&str>) -> Login {
        let mut args = vec![
            "--port".to_string(),
            PORT.to_string(),
            "--user".into(),
            user.into(),
            "--bind".into(),
            from.into(),
        ];
        for a in answers {
            args.push("--answer".into());
            args.push((*a).into());
        }
        if let Some(c) = command {
            args.push("--command".into());
            args.push(c.into());
        }
        self.client(args)
    }

    /// One public-key login from `from`.
    fn with_key(&self, user: &str, from: &str, command: Option<&str>) -> Login {
        let mut args = vec![
            "--port".to_string(),
            PORT.to_string(),
            "--user".into(),
            user.into(),
            "--bind".into(),
            from.into(),
            "--key".into(),
            self.client_key.to_string_lossy().into_owned(),
        ];
        if let Some(c) = command {
            args.push("--command".into());
            args.push(c.into());
        }
        self.client(args)
    }

    fn client(&self, args: Vec<String>) -> Login {
        let script = workspace_root().join("tests/hosts/ssh_login.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).args(&args);
        let f = run_with_timeout(cmd, Duration::from_secs(200));
        let stdout = String::from_utf8_lossy(&f.stdout).into_owned();
        let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "ssh_login.py printed no JSON ({e}): {stdout}\n{}\n{}",
                String::from_utf8_lossy(&f.stderr),
                self.diag()
            )
        });
        assert_ne!(
            v["auth"],
            "error",
            "the SSH client failed outside authentication: {v}\n{}",
            self.diag()
        );
        Login(v)
    }
}

fn thread_sleep_until_exit(p: &mut HostProc) {
    for _ in 0..500 {
        if !p.running() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the SSH client saw.
struct Login(Value);

impl Login {
    fn ok(&self) -> bool {
        self.0["auth"] == "ok"
    }
    /// Every prompt shown, in order: (text, echo).
    fn prompts(&self) -> Vec<(String, bool)> {
        let mut v = Vec::new();
        for r in self.0["rounds"].as_array().cloned().unwrap_or_default() {
            for p in r["prompts"].as_array().cloned().unwrap_or_default() {
                v.push((
                    p["text"].as_str().unwrap_or_default().to_string(),
                    p["echo"].as_bool().unwrap_or(true),
                ));
            }
        }
        v
    }
    /// The instruction texts of the keyboard-interactive rounds.
    fn instructions(&self) -> Vec<String> {
        self.0["rounds"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| r["instructions"].as_str().unwrap_or_default().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
    fn elapsed_ms(&self) -> u64 {
        self.0["elapsed_ms"].as_u64().unwrap_or(0)
    }
    fn command_stdout(&self) -> String {
        self.0["command"]["stdout"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn pet() -> String {
    format!("{PET_QUESTION} ")
}

/// The module's decision line for `user` and `hook` number `n` (0-based), waited for.
fn decision(s: &Sshd, user: &str, hook: &str, n: usize) -> ModLine {
    user_decision(&s.sb, &s.host, user, hook, n)
}

fn assert_line(l: &ModLine, want: &[(&str, &str)], s: &Sshd) {
    check_fields(l, want, SERVICE, &s.sb, &s.host);
}

#[test]
fn question_login_then_wrong_answer() {
    in_netns(&[], || {
        let s = Sshd::start();
        let ok = s.kbd(
            "alice",
            "127.0.0.7",
            &[ALICE_PW, ALICE_ANSWER],
            Some("id -un"),
        );
        assert!(ok.ok(), "alice was refused: {}\n{}", ok.0, s.diag());
        assert_eq!(
            ok.prompts(),
            vec![("Password: ".to_string(), false), (pet(), false)],
            "what alice saw"
        );
        assert_eq!(ok.command_stdout(), "alice\n", "a real login: {}", ok.0);
        let l = decision(&s, "alice", "auth", 0);
        assert_line(
            &l,
            &[
                ("result", "success"),
                ("reason", "ok"),
                ("rhost", "127.0.0.7"),
                ("factor", "question"),
            ],
            &s,
        );
        let a = decision(&s, "alice", "account", 0);
        assert_line(
            &a,
            &[
                ("result", "success"),
                ("hook", "account"),
                ("rhost", "127.0.0.7"),
            ],
            &s,
        );
        // The address the module logged is the one sshd itself reports for the connection.
        assert!(
            s.host
                .output()
                .contains("Accepted keyboard-interactive/pam for alice from 127.0.0.7 port"),
            "{}",
            s.diag()
        );

        let bad = s.kbd("alice", "127.0.0.7", &[ALICE_PW, "Not-Fluffy"], None);
        assert!(!bad.ok(), "a wrong answer was let in: {}", bad.0);
        assert_eq!(
            bad.prompts(),
            vec![("Password: ".to_string(), false), (pet(), false)]
        );
        // sshd hands the module's PAM_ERROR_MSG to the client as the text of a last round.
        assert_eq!(
            bad.instructions(),
            vec![format!("{}\n", fixtures::msg::INVALID)],
            "{}",
            bad.0
        );
        let l = decision(&s, "alice", "auth", 1);
        assert_line(
            &l,
            &[
                ("result", "fail"),
                ("reason", "bad_answer"),
                ("rhost", "127.0.0.7"),
                ("counted", "yes"),
            ],
            &s,
        );
        assert!(
            s.host
                .output()
                .contains("Connection closed by authenticating user alice 127.0.0.7 port"),
            "{}",
            s.diag()
        );
    });
}

#[test]
fn phone_approved() {
    in_netns(&[], || {
        let s = Sshd::start();
        let r = s.kbd("pat", "127.0.0.7", &[PAT_PW, ""], Some("id -un"));
        assert!(r.ok(), "pat was refused: {}\n{}", r.0, s.diag());
        let p = r.prompts();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0], ("Password: ".to_string(), false));
        // OpenSSH 9.2 glues the info line to the next prompt: the user reads both together.
        assert_eq!(
            p[1],
            (
                format!("Calling +1 ***-***-0100: answer and press #.\n{CONFIRM}"),
                false
            ),
            "the confirm prompt as shown"
        );
        assert_eq!(r.command_stdout(), "pat\n");
        let l = decision(&s, "pat", "auth", 0);
        assert_line(
            &l,
            &[
                ("result", "success"),
                ("factor", "phone"),
                ("rhost", "127.0.0.7"),
            ],
            &s,
        );
    });
}

#[test]
fn phone_ignored_is_refused_within_login_grace_time() {
    in_netns(&[], || {
        let s = Sshd::start();
        let timeout_s = conf_phone_timeout_s(SERVICE);
        let grace_s: u64 = conf_text("sshd/pam_portal.conf")
            .lines()
            .find_map(|l| l.trim().strip_prefix("LoginGraceTime "))
            .and_then(|v| v.trim().parse().ok())
            .expect("LoginGraceTime in conf/sshd/pam_portal.conf");
        assert!(
            timeout_s < grace_s,
            "phone_timeout_s {timeout_s} >= LoginGraceTime {grace_s}"
        );
        let r = s.kbd("paul", "127.0.0.7", &[PHONE_PW, ""], None);
        assert!(!r.ok(), "an unanswered call let paul in: {}", r.0);
        assert_eq!(r.prompts().len(), 2, "{:?}", r.prompts());
        let ms = r.elapsed_ms();
        assert!(
            ms >= timeout_s * 1000 && ms < grace_s * 1000,
            "refused after {ms} ms: expected phone_timeout_s ({timeout_s} s) <= t < LoginGraceTime ({grace_s} s)"
        );
        let l = decision(&s, "paul", "auth", 0);
        assert_line(
            &l,
            &[
                ("result", "fail"),
                ("reason", "phone_timeout"),
                ("factor", "phone"),
                ("rhost", "127.0.0.7"),
                ("counted", "yes"),
            ],
            &s,
        );
        // sshd got the module's answer, not its own grace-time expiry.
        let out = s.host.output();
        assert!(
            out.contains("Connection closed by authenticating user paul 127.0.0.7 port")
                && !out.contains("Timeout before authentication"),
            "{}",
            s.diag()
        );
    });
}

#[test]
fn failures_from_one_address_lock_it() {
    in_netns(&[], || {
        let s = Sshd::start();
        let from = "127.0.0.8";
        let max = conf_ip_max_failures();
        // Spread over three users so that only the address reaches the limit.
        let tries: Vec<(&str, [&str; 2])> = (0..max)
            .map(|i| match i % 3 {
                0 => ("alice", ["wrong-password", ALICE_ANSWER]),
                1 => ("bob", [BOB_PW, "wrong-answer"]),
                _ => ("hank", ["wrong-password", HANK_ANSWER]),
            })
            .collect();
        for (i, (user, answers)) in tries.iter().enumerate() {
            let r = s.kbd(user, from, answers, None);
            assert!(!r.ok(), "failure {i} let {user} in");
            assert_eq!(r.prompts().len(), 2, "failure {i}: {:?}", r.prompts());
        }
        let last =
            s.sb.log
                .wait_decision(max - 1, Duration::from_secs(10), |l| l.hook == "auth")
                .unwrap_or_else(|| panic!("{max} auth decisions expected\n{}", s.diag()));
        assert_eq!(last.get("locked").as_deref(), Some("ip"), "{}", last.text);

        let before = portal_calls(&s.sim);
        let r = s.kbd("alice", from, &[ALICE_PW, ALICE_ANSWER], None);
        assert!(!r.ok(), "a locked address let alice in: {}", r.0);
        assert!(
            r.prompts().is_empty(),
            "a locked address must be refused before any prompt: {:?}",
            r.prompts()
        );
        assert!(r.elapsed_ms() < 5000, "refused after {} ms", r.elapsed_ms());
        let l =
            s.sb.log
                .wait_decision(max, Duration::from_secs(10), |l| l.hook == "auth")
                .unwrap_or_else(|| panic!("no decision for the locked attempt\n{}", s.diag()));
        assert_line(
            &l,
            &[
                ("user", "alice"),
                ("result", "fail"),
                ("reason", "ip_locked"),
                ("rhost", from),
            ],
            &s,
        );
        assert_eq!(
            portal_calls(&s.sim),
            before,
            "the portal was called for a locked address: {:?}",
            s.sim.calls().get(before..)
        );

        // The lock is the address's: alice still gets in from elsewhere.
        let r = s.kbd("alice", "127.0.0.9", &[ALICE_PW, ALICE_ANSWER], None);
        assert!(r.ok(), "alice from another address: {}\n{}", r.0, s.diag());
    });
}

#[test]
fn account_checks_apply_to_public_keys_and_vpn_only_users() {
    in_netns(&[], || {
        let s = Sshd::start();
        for u in ["alice", "dave", "erin"] {
            s.authorize(u);
        }
        // The key works: alice logs in with it, and the module's account hook passed her.
        let r = s.with_key("alice", "127.0.0.7", Some("id -un"));
        assert!(r.ok(), "alice's key: {}\n{}", r.0, s.diag());
        assert_eq!(r.command_stdout(), "alice\n");
        let a = decision(&s, "alice", "account", 0);
        assert_line(&a, &[("result", "success"), ("rhost", "127.0.0.7")], &s);
        assert!(
            s.sb.log.decisions().iter().all(|l| l.hook != "auth"),
            "a public-key login runs no PAM auth"
        );

        // dave is DISABLED in the portal: the same valid key is refused by acct_mgmt.
        let r = s.with_key("dave", "127.0.0.7", None);
        assert!(!r.ok(), "a DISABLED user got in with a key: {}", r.0);
        let d = decision(&s, "dave", "account", 0);
        assert_line(
            &d,
            &[
                ("result", "fail"),
                ("reason", "account_state"),
                ("rhost", "127.0.0.7"),
            ],
            &s,
        );

        // erin is VPN_ONLY: not over sshd, neither with a key nor with her password and answer.
        let r = s.with_key("erin", "127.0.0.7", None);
        assert!(
            !r.ok(),
            "a VPN_ONLY user got in over sshd with a key: {}",
            r.0
        );
        let e = decision(&s, "erin", "account", 0);
        assert_line(&e, &[("result", "fail"), ("reason", "account_state")], &s);
        let r = s.kbd("erin", "127.0.0.7", &[ERIN_PW, ERIN_ANSWER], None);
        assert!(!r.ok(), "a VPN_ONLY user got in over sshd: {}", r.0);
        let e = decision(&s, "erin", "auth", 0);
        assert_line(
            &e,
            &[
                ("result", "fail"),
                ("reason", "account_state"),
                ("rhost", "127.0.0.7"),
            ],
            &s,
        );
    });
}

#[test]
fn deploy_guide_quotes_these_settings() {
    check_guide_quotes(
        &["sshd/pam_portal.conf", "pam.d/sshd", "pam_portal.toml"],
        SERVICE,
    );
}
