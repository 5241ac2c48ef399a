//! A `portal-sim` child process and its control interface.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::env::write_file;
use crate::http;
use crate::parse_toml;
use crate::paths::sim_path;

/// A running portal-sim. Dropping it kills the process (by its pid).
pub struct Sim {
    /// The portal base URL (`https://127.0.0.1:PORT/rest/v3.1` or `http://...`).
    pub url: String,
    /// The control interface's base URL.
    pub control: String,
    /// The CA certificate to trust (`None` in `--http` mode).
    pub ca_file: Option<PathBuf>,
    /// The service account from the fixture's `[account]`.
    pub api_user: String,
    pub api_key: String,
    /// The fixture file.
    pub fixture: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
    _dir: TempDir,
}

impl Sim {
    /// Starts portal-sim (HTTPS, its own CA) on `fixture_toml`.
    pub fn start(fixture_toml: &str) -> Sim {
        Sim::start_with(fixture_toml, &[])
    }

    /// Starts portal-sim with extra arguments (e.g. `["--http"]`).
    pub fn start_with(fixture_toml: &str, args: &[&str]) -> Sim {
        let fx = parse_toml(fixture_toml);
        let account = fx.get("account").and_then(|a| a.as_table());
        let field = |k: &str| {
            account
                .and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let (api_user, api_key) = (field("api_user"), field("api_key"));
        let dir = match tempfile::Builder::new().prefix("portal-sim.").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let fixture = dir.path().join("fixture.toml");
        write_file(&fixture, fixture_toml.as_bytes(), 0o600);
        let stderr_path = dir.path().join("sim.stderr");
        let stderr = match std::fs::File::create(&stderr_path) {
            Ok(f) => f,
            Err(e) => panic!("cannot create {}: {e}", stderr_path.display()),
        };
        let mut cmd = Command::new(sim_path());
        cmd.arg("--fixture")
            .arg(&fixture)
            .arg("--exit-on-stdin-eof");
        // Keep the CA in this Sim's own directory: it outlives a stopped sim (a test of an
        // unreachable portal still has a valid ca_file) and nothing is left in /tmp after a kill.
        if !args
            .iter()
            .any(|a| *a == "--http" || a.starts_with("--tls-dir"))
        {
            cmd.arg("--tls-dir").arg(dir.path().join("tls"));
        }
        cmd.args(args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start portal-sim: {e}"),
        };
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let lines = Arc::clone(&lines);
            thread::spawn(move || {
                let Some(out) = stdout else { return };
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut l) = lines.lock() {
                        l.push(line.clone());
                    }
                    let _ = tx.send(line);
                }
            });
        }
        let mut url = None;
        let mut control = None;
        let mut ca_file = None;
        let sim_fail = |child: &mut Child, why: &str| -> ! {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("portal-sim {why}. stderr:\n{err}");
        };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let line = line.trim().to_string();
                    if let Some(v) = line.strip_prefix("PORTAL_URL=") {
                        url = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("CONTROL_URL=") {
                        control = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("CA_FILE=") {
                        if v.is_empty() {
                            // Plain HTTP: no CA.
                            continue;
                        }
                        let p = PathBuf::from(v);
                        ca_file = Some(if p.is_absolute() {
                            p
                        } else {
                            dir.path().join(p)
                        });
                    } else if line == "READY" {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    sim_fail(&mut child, "printed no READY line within 30 s")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    sim_fail(&mut child, "exited before READY")
                }
            }
        }
        let (Some(url), Some(control)) = (url, control) else {
            sim_fail(
                &mut child,
                "printed READY without PORTAL_URL= and CONTROL_URL=",
            )
        };
        Sim {
            url,
            control,
            ca_file,
            api_user,
            api_key,
            fixture,
            child,
            stdin,
            stdout_lines: lines,
            stderr_path,
            _dir: dir,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// portal-sim's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// portal-sim's stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    fn control_call(&self, method: &str, path: &str, body: Option<&Value>) -> http::Response {
        let url = http::join(&self.control, path);
        let bytes = body.map(|b| b.to_string().into_bytes());
        match http::request(method, &url, bytes.as_deref()) {
            Ok(r) if (200..300).contains(&r.status) => r,
            Ok(r) => panic!(
                "portal-sim control {method} {path}: status {} {}",
                r.status,
                r.text()
            ),
            Err(e) => panic!(
                "portal-sim control {method} {path}: {e}\nsim stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Injects a fault (`POST /faults`).
    pub fn fault(&self, fault: Value) {
        self.control_call("POST", "/faults", Some(&fault));
    }

    /// Removes every fault (`DELETE /faults`).
    pub fn clear_faults(&self) {
        self.control_call("DELETE", "/faults", None);
    }

    /// Resets the sim's state: its lockouts, call log, faults (`POST /reset`).
    pub fn reset(&self) {
        self.control_call("POST", "/reset", None);
    }

    /// The calls the portal received so far (`GET /calls`).
    pub fn calls(&self) -> Vec<Value> {
        let r = self.control_call("GET", "/calls", None);
        match r.json() {
            Ok(Value::Array(a)) => a,
            Ok(Value::Object(o)) => match o.get("calls") {
                Some(Value::Array(a)) => a.clone(),
                _ => panic!("GET /calls: unexpected body {}", r.text()),
            },
            Ok(other) => panic!("GET /calls: unexpected body {other}"),
            Err(e) => panic!("GET /calls: {e}"),
        }
    }

    /// The logged calls to API method `method` (e.g. `getPortalLoginToken`).
    pub fn calls_to(&self, method: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| call_method_is(c, method))
            .collect()
    }

    /// How many `getPortalLoginToken` calls the portal received for `username`.
    pub fn login_calls(&self, username: &str) -> usize {
        self.calls_to("getPortalLoginToken")
            .iter()
            .filter(|c| call_username(c).as_deref() == Some(username))
            .count()
    }

    /// Any other control request; returns the response (panics on a non-2xx status).
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> http::Response {
        self.control_call(method, path, body.as_ref())
    }

    /// Stops the sim now (the portal becomes unreachable).
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `https://127.0.0.1:PORT/rest/v3.1` URL on which nothing listens (a port bound and
/// released again).
pub fn closed_port_url() -> String {
    let port = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l.local_addr().map(|a| a.port()).unwrap_or(9),
        Err(_) => 9,
    };
    format!("https://127.0.0.1:{port}/rest/v3.1")
}

/// Whether a logged call is to API method `method`: a `method` field equal to it, or a `path`
/// field naming it.
pub fn call_method_is(call: &Value, method: &str) -> bool {
    if call.get("method").and_then(Value::as_str) == Some(method) {
        return true;
    }
    ["path", "route", "url"].iter().any(|k| {
        call.get(*k).and_then(Value::as_str).is_some_and(|p| {
            let p = p.split('?').next().unwrap_or(p);
            let last = p.rsplit('/').next().unwrap_or(p);
            last == method || last.strip_suffix(".json") == Some(method)
        })
    })
}

/// The username a logged call carried (`username`, at the top or one level down).
pub fn call_username(call: &Value) -> Option<String> {
    if let Some(u) = call.get("username").and_then(Value::as_str) {
        return Some(u.to_string());
    }
    call.as_object()?.values().find_map(|v| {
        v.get("username")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}
