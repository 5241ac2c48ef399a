//! End to end with the real OpenVPN 2.6 server and its auth-pam plugin, and the real `openvpn`
//! client, deployed as `docs/DEPLOY.md` says:
//!
//! * the server runs `conf/openvpn/server.conf` with only its site lines replaced (port, listen
//!   address, certificates): the plugin line, deferred auth, `hand-window` and the rest are
//!   used as they are;
//! * `/etc/pam.d/openvpn` is `conf/pam.d/openvpn` unchanged, `pam_portal.so` is the module under
//!   test, `/etc/security/pam_portal.toml` is `conf/pam_portal.toml` (its `[services.openvpn]`
//!   profile included) pointed at portal-sim;
//! * the client runs `conf/openvpn/client.conf` with its site lines replaced; having no terminal
//!   for the static challenge, it gets the `SCRV1:base64(password):base64(reply)` line the
//!   interactive client would send, in its auth-user-pass file;
//! * server, client and portal-sim run in a network namespace of the test's own (the server and
//!   the client each get a tun device there), the server in a private mount namespace whose
//!   `/etc`, PAM module directory and `/dev` are overlays written by the test
//!   (`tests/hosts/mod.rs`): no file is put in the real `/etc`, and the module's syslog lines
//!   come back through `/dev/log` of that namespace only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hosts;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hosts::*;
use pam_testkit::fixtures::{self, *};
use pam_testkit::Sim;

const SERVICE: &str = "openvpn";
const PORT: u16 = 1194;
const PLUGIN: &str = "/usr/lib/openvpn/openvpn-plugin-auth-pam.so";

fn preconditions() {
    require_root();
    require_file("/usr/sbin/openvpn", "openvpn");
    require_file(PLUGIN, "openvpn");
    require_file("/dev/net/tun", "a kernel with tun");
    require_file("/usr/bin/unshare", "util-linux");
    require_file("/usr/bin/ip", "iproute2");
}

/// The server, portal-sim and the sandbox of one test (dropped in this order).
struct Vpn {
    server: HostProc,
    sb: Sandbox,
    sim: Sim,
    pki: Pki,
    hand_window_s: u64,
    clients: std::sync::atomic::AtomicUsize,
}

/// How one client connection ended.
struct Conn {
    connected: bool,
    elapsed: Duration,
    log: String,
}

impl Vpn {
    fn start() -> Vpn {
        preconditions();
        let sim = Sim::start(&fixtures::standard());
        let sb = Sandbox::new("openvpn");
        sb.install_conf_stack(SERVICE);
        sb.install_module_config(&sim);
        let pki = make_pki(&sb.root().join("pki"));

        let conf = conf_text("openvpn/server.conf");
        let plugin = directive_values(&conf, Syntax::Space, "plugin");
        assert!(
            plugin.len() == 1
                && plugin[0].starts_with(PLUGIN)
                && plugin[0].contains(&format!("\"{SERVICE} login USERNAME password PASSWORD")),
            "conf/openvpn/server.conf must load {PLUGIN} for PAM service {SERVICE}: {plugin:?}"
        );
        let hand_window_s: u64 = directive_values(&conf, Syntax::Space, "hand-window")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        let server = override_directives(
            &conf,
            Syntax::Space,
            &[
                ("port", Some(PORT.to_string())),
                ("local", Some("127.0.0.1".into())),
                ("ca", Some(pki.ca.display().to_string())),
                ("cert", Some(pki.cert.display().to_string())),
                ("key", Some(pki.key.display().to_string())),
                ("status", None),
                ("log", None),
                ("log-append", None),
                ("daemon", None),
            ],
        );
        let path = sb.root().join("server.conf");
        write(&path, &server, 0o644);
        let mut host = sb.spawn(
            "openvpn-server",
            "/usr/sbin/openvpn",
            &["--config".into(), path.display().to_string()],
        );
        host.wait_output("Initialization Sequence Completed", Duration::from_secs(20));
        Vpn {
            server: host,
            sb,
            sim,
            pki,
            hand_window_s,
            clients: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn diag(&self) -> String {
        diagnostics(&self.sb, &self.server)
    }

    /// One client connection from `from` (a loopback address) with the password line the
    /// client sends for a static challenge: `SCRV1:base64(password):base64(reply)`.
    fn connect(&self, user: &str, password: &str, reply: &str, from: &str) -> Conn {
        let n = self
            .clients
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = self.sb.root().join(format!("client{n}"));
        fs::create_dir_all(&dir).unwrap();
        let auth = dir.join("auth.txt");
        write(
            &auth,
            &format!(
                "{user}\nSCRV1:{}:{}\n",
                base64(password.as_bytes()),
                base64(reply.as_bytes())
            ),
            0o600,
        );
        let conf = conf_text("openvpn/client.conf");
        assert!(
            !directive_values(&conf, Syntax::Space, "static-challenge").is_empty(),
            "conf/openvpn/client.conf must ask for the static challenge"
        );
        let text = override_directives(
            &conf,
            Syntax::Space,
            &[
                ("remote", Some(format!("127.0.0.1 {PORT}"))),
                ("ca", Some(self.pki.ca.display().to_string())),
                ("auth-user-pass", Some(auth.display().to_string())),
                // No terminal: the SCRV1 line above is what the client would build from it.
                ("static-challenge", None),
                ("nobind", None),
                ("local", Some(from.to_string())),
                ("lport", Some("0".into())),
                ("auth-retry", Some("none".into())),
            ],
        );
        let cfg = dir.join("client.conf");
        write(&cfg, &text, 0o600);
        let log: PathBuf = dir.join("client.log");
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let started = Instant::now();
        let child = Command::new("/usr/sbin/openvpn")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start the openvpn client");
        let mut guard = ClientGuard(child);
        let deadline = started + Duration::from_secs(self.hand_window_s + 30);
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let done = if text.contains("Initialization Sequence Completed") {
                Some(true)
            } else if text.contains("AUTH_FAILED") {
                Some(false)
            } else {
                None
            };
            if let Some(connected) = done {
                let elapsed = started.elapsed();
                drop(guard);
                return Conn {
                    connected,
                    elapsed,
                    log: fs::read_to_string(&log).unwrap_or_default(),
                };
            }
            if let Ok(Some(st)) = guard.0.try_wait() {
                panic!(
                    "the openvpn client exited ({st}) without a result:\n{text}\n{}",
                    self.diag()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "the openvpn client got no result in time:\n{text}\n{}",
                    self.diag()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The module's decision number `n` (0-based) for `user` and `hook`, waited for.
    fn decision(&self, user: &str, hook: &str, n: usize) -> ModLine {
        user_decision(&self.sb, &self.server, user, hook, n)
    }

    fn check(&self, l: &ModLine, want: &[(&str, &str)]) {
        check_fields(l, want, SERVICE, &self.sb, &self.server);
    }

    fn expect(&self, c: &Conn, connected: bool, what: &str) {
        assert_eq!(
            c.connected,
            connected,
            "{what}: client log:\n{}\n{}",
            c.log,
            self.diag()
        );
    }
}

/// Stops a client by its pid (process group) when dropped.
struct ClientGuard(Child);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: the process group this test created for the client.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        for _ in 0..150 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn question_login_then_wrong_answer() {
    in_netns(&[], || {
        let v = Vpn::start();
        let c = v.connect("alice", ALICE_PW, ALICE_ANSWER, "127.0.0.7");
        v.expect(&c, true, "alice with the right answer");
        let l = v.decision("alice", "auth", 0);
        v.check(
            &l,
            &[
                ("result", "success"),
                ("reason", "ok"),
                ("rhost", "127.0.0.7"),
                ("factor", "question"),
            ],
        );
        let a = v.decision("alice", "account", 0);
        v.check(&a, &[("result", "success"), ("rhost", "127.0.0.7")]);
        // The address the module logged is the one OpenVPN reports for that client.
        assert!(
            v.server.output().lines().any(|l| l.contains(" 127.0.0.7:")
                && l.contains("authentication deferred for username 'alice'")),
            "{}",
            v.diag()
        );

        let c = v.connect("alice", ALICE_PW, "Not-Fluffy", "127.0.0.7");
        v.expect(&c, false, "alice with a wrong answer");
        let l = v.decision("alice", "auth", 1);
        v.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "bad_answer"),
                ("rhost", "127.0.0.7"),
                ("counted", "yes"),
            ],
        );
        // The plugin matched every message: no conversation failure.
        assert!(
            v.sb.log
                .decisions()
                .iter()
                .all(|l| !l.is("reason", "conversation")),
            "{}",
            v.diag()
        );
    });
}

#[test]
fn totp_code_in_the_static_challenge() {
    in_netns(&[], || {
        let v = Vpn::start();
        // The plugin answers pam_portal's "Code: " prompt (named "code" in the plugin line) with
        // the static-challenge reply.
        let c = v.connect("tina", PHONE_PW, CODE, "127.0.0.7");
        v.expect(&c, true, "tina with her TOTP code");
        let l = v.decision("tina", "auth", 0);
        v.check(
            &l,
            &[
                ("result", "success"),
                ("factor", "code"),
                ("rhost", "127.0.0.7"),
            ],
        );
        let c = v.connect("tina", PHONE_PW, "000000", "127.0.0.7");
        v.expect(&c, false, "tina with a wrong code");
        let l = v.decision("tina", "auth", 1);
        v.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "bad_code"),
                ("counted", "yes"),
            ],
        );
    });
}

#[test]
fn phone_approved() {
    in_netns(&[], || {
        let v = Vpn::start();
        // A phone user leaves the challenge reply empty and approves the call.
        let c = v.connect("pat", PAT_PW, "", "127.0.0.7");
        v.expect(&c, true, "pat approving the call");
        let l = v.decision("pat", "auth", 0);
        v.check(
            &l,
            &[
                ("result", "success"),
                ("factor", "phone"),
                ("rhost", "127.0.0.7"),
            ],
        );
    });
}

#[test]
fn phone_ignored_is_refused_within_hand_window() {
    in_netns(&[], || {
        let v = Vpn::start();
        let timeout_s = conf_phone_timeout_s(SERVICE);
        assert!(
            timeout_s < v.hand_window_s,
            "phone_timeout_s {timeout_s} >= hand-window {}",
            v.hand_window_s
        );
        let c = v.connect("paul", PHONE_PW, "", "127.0.0.7");
        v.expect(&c, false, "paul ignoring the call");
        let ms = c.elapsed.as_millis() as u64;
        assert!(
            ms >= timeout_s * 1000 && ms < v.hand_window_s * 1000,
            "AUTH_FAILED after {ms} ms: expected phone_timeout_s ({timeout_s} s) <= t < hand-window ({} s)",
            v.hand_window_s
        );
        let l = v.decision("paul", "auth", 0);
        v.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "phone_timeout"),
                ("rhost", "127.0.0.7"),
                ("counted", "yes"),
            ],
        );
    });
}

#[test]
fn failures_from_one_address_lock_it() {
    in_netns(&[], || {
        let v = Vpn::start();
        let from = "127.0.0.8";
        let max = conf_ip_max_failures();
        for i in 0..max {
            // Spread over three users so that only the address reaches the limit.
            let c = match i % 3 {
                0 => v.connect("alice", "wrong-password", ALICE_ANSWER, from),
                1 => v.connect("bob", BOB_PW, "wrong-answer", from),
                _ => v.connect("hank", "wrong-password", HANK_ANSWER, from),
            };
            v.expect(&c, false, &format!("failure {i}"));
        }
        let last =
            v.sb.log
                .wait_decision(max - 1, Duration::from_secs(10), |l| l.hook == "auth")
                .unwrap_or_else(|| panic!("{max} auth decisions expected\n{}", v.diag()));
        assert_eq!(last.get("locked").as_deref(), Some("ip"), "{}", last.text);

        let before = portal_calls(&v.sim);
        let c = v.connect("alice", ALICE_PW, ALICE_ANSWER, from);
        v.expect(&c, false, "alice from a locked address");
        // Deferred auth answers within about a second; a locked address adds nothing to it.
        assert!(
            c.elapsed < Duration::from_secs(5),
            "refused after {:?}",
            c.elapsed
        );
        let l =
            v.sb.log
                .wait_decision(max, Duration::from_secs(10), |l| l.hook == "auth")
                .unwrap_or_else(|| panic!("no decision for the locked attempt\n{}", v.diag()));
        v.check(
            &l,
            &[
                ("user", "alice"),
                ("result", "fail"),
                ("reason", "ip_locked"),
                ("rhost", from),
            ],
        );
        assert_eq!(
            portal_calls(&v.sim),
            before,
            "the portal was called for a locked address: {:?}",
            v.sim.calls().get(before..)
        );

        let c = v.connect("alice", ALICE_PW, ALICE_ANSWER, "127.0.0.9");
        v.expect(&c, true, "alice from another address");
    });
}

#[test]
fn vpn_only_user_gets_in_disabled_user_does_not() {
    in_netns(&[], || {
        let v = Vpn::start();
        let c = v.connect("erin", ERIN_PW, ERIN_ANSWER, "127.0.0.7");
        v.expect(&c, true, "erin (VPN_ONLY) over OpenVPN");
        let l = v.decision("erin", "auth", 0);
        v.check(&l, &[("result", "success"), ("rhost", "127.0.0.7")]);
        let a = v.decision("erin", "account", 0);
        v.check(&a, &[("result", "success"), ("hook", "account")]);

        let c = v.connect("dave", DAVE_PW, DAVE_ANSWER, "127.0.0.7");
        v.expect(&c, false, "dave (DISABLED) over OpenVPN");
        let l = v.decision("dave", "auth", 0);
        v.check(
            &l,
            &[
                ("result", "fail"),
                ("reason", "account_state"),
                ("rhost", "127.0.0.7"),
            ],
        );
    });
}

#[test]
fn deploy_guide_quotes_these_settings() {
    check_guide_quotes(
        &[
            "openvpn/server.conf",
            "openvpn/client.conf",
            "pam.d/openvpn",
            "pam_portal.toml",
        ],
        SERVICE,
    );
}
