//! Issue 8, SPEC §7 "Fleets": `[lockout] backend = "redis"`. A real `redis-server` on loopback,
//! started by each test on a free port (no persistence, its own temp dir) and killed by pid on
//! drop. Two configurations with the same `redis_url` and different lockout directories stand
//! for two concentrators of a pool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use pam_testkit::codes::*;
use pam_testkit::fixtures::*;
use pam_testkit::{hex_encode, standard, Env, LoginBuilder, Outcome};
use serde_json::Value;

/// A redis-server of the test's own.
struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    /// TLS only (`rediss://`): the CA that signed the server's certificate.
    ca: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let d = std::env::temp_dir().join(format!(
                    "pam-portal-redis.{}.{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&d).unwrap();
                d
            },
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            ca: None,
        };
        r.resume();
        r
    }

    /// A TLS-only server (certificate for localhost and 127.0.0.1, from a CA made here).
    fn start_tls() -> Redis {
        let mut r = Redis::start_with(&[]);
        r.stop();
        let d = r.dir.clone();
        let sh = format!(
            "set -e; cd '{}'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca
            openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext
            openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext",
            d.display()
        );
        let out = Command::new("sh").arg("-c").arg(&sh).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = r.port.to_string();
        r.args = [
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (k, f) in [
            ("--tls-cert-file", "srv.pem"),
            ("--tls-key-file", "srv.key"),
            ("--tls-ca-cert-file", "ca.pem"),
        ] {
            r.args.push(k.into());
            r.args.push(d.join(f).to_string_lossy().into_owned());
        }
        r.ca = Some(d.join("ca.pem"));
        r.resume();
        r
    }

    /// Starts the server (again) on the same port.
    fn resume(&mut self) {
        assert!(self.child.is_none());
        let mut cmd = Command::new("redis-server");
        if self.ca.is_none() {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/deps/redis.txt)");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (an outage).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        match self.ca {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://localhost:{}", self.port),
        }
    }

    /// `redis-cli` (`-a` first if the server has a password).
    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = &self.ca {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        if let Some(i) = self.args.iter().position(|a| a == "--requirepass") {
            cmd.args(["--no-auth-warning", "-a", &self.args[i + 1]]);
        }
        let out = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lockout_toml(url: &str, extra: &str) -> String {
    format!(
        "[lockout]\nbackend = \"redis\"\nredis_url = \"{url}\"\nredis_timeout_ms = 300\n{extra}\n"
    )
}

const POLICY: &str =
    "user = { max_failures = 10, window_s = 600, lock_s = 600 }\nip = { max_failures = 1000 }\n";

/// `user` from [`CLIENT`] with a wrong password and a wrong answer.
fn wrong_attempt<'e>(env: &'e Env, user: &str) -> LoginBuilder<'e> {
    env.login()
        .user(user)
        .rhost(CLIENT)
        .answers(&["Wrong-Pass1!", "Nope"])
}

fn wrong(env: &Env, user: &str) -> Outcome {
    wrong_attempt(env, user).run()
}

/// zoe from [`CLIENT`] with an empty password: a counted failure with no portal call.
fn zoe_empty(env: &Env) -> LoginBuilder<'_> {
    env.login().user("zoe").rhost(CLIENT).answers(&[""])
}

/// `pam-portal status --user USER --json`: the username row.
fn status_user(env: &Env, user: &str) -> Value {
    let f = env
        .admin(&["status", "--user", user, "--json"])
        .expect("pam-portal built");
    assert!(
        f.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&f.stderr)
    );
    let rows: Value = serde_json::from_slice(&f.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "user")
        .cloned()
        .unwrap()
}

fn user_key(prefix: &str, user: &str) -> String {
    format!("{prefix}u_{}", hex_encode(user.as_bytes()))
}

fn local_record(env: &Env, user: &str) -> PathBuf {
    env.lockdir
        .join(format!("u_{}", hex_encode(user.as_bytes())))
}

#[test]
fn two_concentrators_share_one_counter() {
    let redis = Redis::start();
    let toml = lockout_toml(&redis.url(), POLICY);
    let (sim, a) = standard(&toml);
    let b = Env::new(&sim, &toml);
    assert_ne!(a.lockdir, b.lockdir);
    for _ in 0..5 {
        code(&wrong(&a, "zoe"), PAM_AUTH_ERR);
    }
    for _ in 0..4 {
        code(&wrong(&b, "zoe"), PAM_AUTH_ERR);
    }
    assert_eq!(status_user(&a, "zoe")["failures"], 9);
    // The tenth failure, on the second concentrator, locks the username on both.
    let o = wrong(&b, "zoe");
    code(&o, PAM_MAXTRIES);
    assert_eq!(o.errors(), vec![msg::locked(10)], "{}", o.describe());
    for env in [&a, &b] {
        let o = wrong(env, "zoe");
        code(&o, PAM_MAXTRIES);
        assert!(
            o.prompts().is_empty(),
            "prompted while locked: {}",
            o.describe()
        );
        let st = status_user(env, "zoe");
        assert_eq!(st["locked"], true, "{st}");
        assert_eq!(st["failures"], 0, "{st}");
    }
    // Nothing went to the local files, and another user is unaffected.
    assert!(!local_record(&a, "zoe").exists() && !local_record(&b, "zoe").exists());
    code(
        &a.login()
            .rhost(CLIENT)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run(),
        PAM_SUCCESS,
    );
    // A reset on one machine unlocks the user on the pool.
    let f = a.admin(&["reset", "--user", "zoe"]).unwrap();
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
    assert_eq!(redis.cli(&["EXISTS", &user_key("pam_portal:", "zoe")]), "0");
    code(&wrong(&b, "zoe"), PAM_AUTH_ERR);
    assert_eq!(status_user(&a, "zoe")["failures"], 1);
}

#[test]
fn sixty_four_concurrent_processes_count_exactly() {
    let redis = Redis::start();
    let toml = lockout_toml(
        &redis.url(),
        "user = { max_failures = 1000, window_s = 600 }\nip = { max_failures = 1000, window_s = 600 }\n",
    );
    let (sim, a) = standard(&toml);
    let b = Env::new(&sim, &toml);
    let t0 = Instant::now();
    // Empty passwords: a counted failure with no portal call. Half on each concentrator.
    let running: Vec<_> = (0..64)
        .map(|i| {
            let env = if i % 2 == 0 { &a } else { &b };
            env.login()
                .user("zoe")
                .rhost("198.51.100.99")
                .answers(&[""])
                .spawn()
        })
        .collect();
    for r in running {
        code(&r.wait(), PAM_AUTH_ERR);
    }
    eprintln!("64 concurrent logins: {:?}", t0.elapsed());
    assert_eq!(status_user(&a, "zoe")["failures"], 64);
    let f = b
        .admin(&["status", "--ip", "198.51.100.99", "--json"])
        .unwrap();
    let rows: Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(rows[0]["failures"], 64, "{rows}");
    assert!(
        !a.lockdir.exists() && !b.lockdir.exists(),
        "no fallback expected"
    );
}

#[test]
fn redis_down_falls_back_to_local_files_then_recovers() {
    let mut redis = Redis::start();
    let (_sim, env) = standard(&lockout_toml(
        &redis.url(),
        "user = { max_failures = 3, window_s = 600, lock_s = 600 }\nip = { max_failures = 1000 }\n",
    ));
    code(&wrong(&env, "zoe"), PAM_AUTH_ERR);
    assert_eq!(status_user(&env, "zoe")["failures"], 1);

    redis.stop();
    // Still refused, promptly, counted in the local files, and said in the log.
    let o = wrong_attempt(&env, "zoe").under_pam_wrapper().run();
    code(&o, PAM_AUTH_ERR);
    let lines: Vec<String> = o.log_lines().into_iter().map(|l| l.text).collect();
    let want = format!("lockout store redis://127.0.0.1:{} unreachable", redis.port);
    let warn: Vec<&String> = lines.iter().filter(|l| l.contains(&want)).collect();
    assert_eq!(warn.len(), 1, "one warning line: {lines:#?}");
    assert!(
        warn[0].ends_with("using local files for this login"),
        "{lines:#?}"
    );
    assert!(local_record(&env, "zoe").exists());
    // The status command says the store is unreachable (exit 1), naming it.
    let f = env.admin(&["status", "--json"]).unwrap();
    assert_eq!(f.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&f.stderr).contains("unreachable"));
    // Logins keep being enforced from the local files: the right password still gets in,
    // and the local count locks on its own.
    code(
        &env.login()
            .rhost(CLIENT)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .run(),
        PAM_SUCCESS,
    );
    code(&wrong(&env, "zoe"), PAM_AUTH_ERR);
    code(&wrong(&env, "zoe"), PAM_MAXTRIES);
    let o = wrong(&env, "zoe");
    code(&o, PAM_MAXTRIES);
    assert!(o.prompts().is_empty(), "{}", o.describe());

    // Redis back: the next login uses it again (its own count: 1, not the local lock).
    redis.resume();
    let o = wrong_attempt(&env, "zoe").under_pam_wrapper().run();
    code(&o, PAM_AUTH_ERR);
    assert!(
        o.log_lines()
            .iter()
            .all(|l| !l.text.contains("unreachable")),
        "{}",
        o.describe()
    );
    // The server lost its data (no persistence): the count starts again in Redis.
    assert_eq!(status_user(&env, "zoe")["failures"], 1);
    // A reset clears the local fallback record too.
    let f = env.admin(&["reset", "--user", "zoe"]).unwrap();
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
    assert!(!local_record(&env, "zoe").exists());
}

#[test]
fn a_server_that_does_not_answer_costs_at_most_the_timeout() {
    // Accepts connections (the kernel's backlog) but never answers: a hung Redis.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}", hung.local_addr().unwrap().port());
    let (_sim, env) = standard(&lockout_toml(&url, POLICY));
    // Empty password: no portal call, so the time is the store's.
    let o = zoe_empty(&env).under_pam_wrapper().run();
    code(&o, PAM_AUTH_ERR);
    assert!(
        o.log_lines()
            .iter()
            .any(|l| l.text.contains("unreachable (reply: timed out)")),
        "{}",
        o.describe()
    );
    // One timeout (300 ms) for the whole login, not one per command.
    assert!(o.elapsed_ms < 300 + 700, "took {} ms", o.elapsed_ms);
    eprintln!("hung redis: login took {} ms", o.elapsed_ms);
    assert!(local_record(&env, "zoe").exists());
}

#[test]
fn keys_expire_on_their_own() {
    let redis = Redis::start();
    let (_sim, env) = standard(&lockout_toml(
        &redis.url(),
        "key_prefix = \"pool-a:\"\nuser = { max_failures = 2, window_s = 2, lock_s = 3 }\nip = { max_failures = 1000, window_s = 2, lock_s = 2 }\nphone = { window_s = 2, lock_s = 2 }\n",
    ));
    let key = user_key("pool-a:", "zoe");
    let login = || zoe_empty(&env).run();
    code(&login(), PAM_AUTH_ERR);
    // A failure matters for the longest window of the configuration (here user lock_s = 3,
    // as the file store's pruning counts it).
    let ttl: i64 = redis.cli(&["TTL", &key]).parse().unwrap();
    assert!((1..=3).contains(&ttl), "ttl {ttl}");
    // The lock: kept for lock_s.
    code(&login(), PAM_MAXTRIES);
    let ttl: i64 = redis.cli(&["TTL", &key]).parse().unwrap();
    assert!((2..=3).contains(&ttl), "ttl {ttl}");
    // Every key of the prefix has an expiry, and all are gone once stale.
    let keys = redis.cli(&["--scan", "--pattern", "pool-a:*"]);
    assert!(keys.lines().count() >= 2, "{keys}");
    for k in keys.lines() {
        let t: i64 = redis.cli(&["TTL", k]).parse().unwrap();
        assert!(t > 0, "{k} has no expiry ({t})");
    }
    sleep(Duration::from_millis(3500));
    assert_eq!(redis.cli(&["--scan", "--pattern", "pool-a:*"]), "");
    code(&login(), PAM_AUTH_ERR);
}

#[test]
fn password_in_the_url_needs_a_private_file_and_never_reaches_a_log() {
    let redis = Redis::start_with(&["--requirepass", "Pool-S3cret"]);
    let url = format!("redis://:Pool-S3cret@127.0.0.1:{}/3", redis.port);
    let (_sim, env) = standard(&lockout_toml(&url, POLICY));
    env.chmod_config(0o644);
    let o = zoe_empty(&env).under_pam_wrapper().run();
    code(&o, PAM_SERVICE_ERR);
    assert!(
        o.stderr.contains("redis_url holds a password"),
        "{}",
        o.describe()
    );
    env.chmod_config(0o600);
    code(&zoe_empty(&env).run(), PAM_AUTH_ERR);
    assert_eq!(status_user(&env, "zoe")["failures"], 1);
    assert_eq!(
        redis.cli(&["-n", "3", "EXISTS", &user_key("pam_portal:", "zoe")]),
        "1"
    );
    // A wrong password: fallback, and the log names neither password.
    env.merge_config(&lockout_toml(
        &format!("redis://:Wrong-S3cret@127.0.0.1:{}", redis.port),
        "",
    ));
    let o = zoe_empty(&env).under_pam_wrapper().run();
    code(&o, PAM_AUTH_ERR);
    assert!(
        o.stderr.contains("AUTH refused: WRONGPASS"),
        "{}",
        o.describe()
    );
    assert!(!o.stderr.contains("S3cret"), "{}", o.describe());
    let f = env.admin(&["check"]).unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    );
    assert!(!all.contains("S3cret"), "{all}");
    assert!(
        all.contains("redis_url = \"redis://:********@127.0.0.1:"),
        "{all}"
    );
    assert!(
        all.contains("unreachable (AUTH refused: WRONGPASS)"),
        "{all}"
    );
}

#[test]
fn rediss_with_its_own_ca() {
    let redis = Redis::start_tls();
    let ca = redis.ca.clone().unwrap();
    let extra = format!("redis_ca_file = \"{}\"\n{POLICY}", ca.display());
    let (sim, env) = standard(&lockout_toml(&redis.url(), &extra));
    code(&wrong(&env, "zoe"), PAM_AUTH_ERR);
    assert_eq!(status_user(&env, "zoe")["failures"], 1);
    assert_eq!(redis.cli(&["EXISTS", &user_key("pam_portal:", "zoe")]), "1");
    let f = env.admin(&["check"]).unwrap();
    assert!(
        String::from_utf8_lossy(&f.stdout).contains("reachable"),
        "{}",
        String::from_utf8_lossy(&f.stdout)
    );
    // Without its CA the certificate is not trusted: fallback, named as a TLS failure.
    let other = Env::new(&sim, &lockout_toml(&redis.url(), POLICY));
    let o = zoe_empty(&other).under_pam_wrapper().run();
    code(&o, PAM_AUTH_ERR);
    assert!(
        o.log_lines()
            .iter()
            .any(|l| l.text.contains("unreachable (TLS handshake")),
        "{}",
        o.describe()
    );
    assert_eq!(status_user(&env, "zoe")["failures"], 1);
}
