//! A per-test environment (configuration, PAM stacks, lockout directory) and the login driver.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::codes;
use crate::logs::{parse_wrapper_stderr, LogLine};
use crate::paths::{drive_path, module_path, pam_wrapper_lib, system_module};
use crate::proc::{Finished, Watched};
use crate::sim::Sim;
use crate::{hex_encode, merge_toml, parse_toml};

/// The service whose stack [`Env::new`] writes.
pub const DEFAULT_SERVICE: &str = "test";

/// A temporary directory holding one test's module configuration, PAM stack directory
/// (`confdir`, also pam_wrapper's service directory) and lockout directory. Removed on drop.
pub struct Env {
    dir: TempDir,
    /// The module configuration file (mode 0600).
    pub config: PathBuf,
    /// The PAM stack directory: one file per service.
    pub confdir: PathBuf,
    /// `[lockout] dir` of the base configuration (not created: the module creates it).
    pub lockdir: PathBuf,
    /// The API key file of the base configuration (mode 0600, with a trailing newline).
    pub key_file: PathBuf,
    /// The module under test (`target/debug/libpam_portal.so`).
    pub module: PathBuf,
}

impl Env {
    /// An environment with no configuration and no stack, which does not require the module to
    /// be built (for stacks of stock modules only).
    pub fn bare() -> Env {
        let module = crate::paths::bin_dir().join("libpam_portal.so");
        let dir = match tempfile::Builder::new()
            .prefix("pam-portal-test.")
            .tempdir()
        {
            Ok(d) => d,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let root = dir.path().to_path_buf();
        let confdir = root.join("pam.d");
        mkdir(&confdir);
        // pam_wrapper wants an `other` stack; with pam_start_confdir it catches unknown services.
        let deny = system_module("pam_deny.so");
        write_file(
            &confdir.join("other"),
            format!(
                "auth required {d}\naccount required {d}\npassword required {d}\nsession required {d}\n",
                d = deny.display()
            )
            .as_bytes(),
            0o644,
        );
        Env {
            config: root.join("pam_portal.toml"),
            lockdir: root.join("lock"),
            key_file: root.join("api.key"),
            confdir,
            module,
            dir,
        }
    }

    /// The base configuration for `sim` as a TOML table: `[portal]` url, api_user,
    /// api_key_file, ca_file (HTTPS only), connect_timeout_ms = 1000, request_timeout_ms = 2000;
    /// `[auth] fail_delay_ms = 0`; `[lockout] dir`.
    pub fn base_config(&self, sim: &Sim) -> toml::Table {
        let mut t = String::new();
        let _ = writeln!(t, "[portal]");
        let _ = writeln!(t, "url = {}", toml_str(&sim.url));
        let _ = writeln!(t, "api_user = {}", toml_str(&sim.api_user));
        let _ = writeln!(
            t,
            "api_key_file = {}",
            toml_str(&self.key_file.to_string_lossy())
        );
        if let Some(ca) = &sim.ca_file {
            let _ = writeln!(t, "ca_file = {}", toml_str(&ca.to_string_lossy()));
        }
        let _ = writeln!(t, "connect_timeout_ms = 1000");
        let _ = writeln!(t, "request_timeout_ms = 2000");
        let _ = writeln!(t, "[auth]");
        let _ = writeln!(t, "fail_delay_ms = 0");
        let _ = writeln!(t, "[lockout]");
        let _ = writeln!(t, "dir = {}", toml_str(&self.lockdir.to_string_lossy()));
        parse_toml(&t)
    }

    /// An environment for `sim`: the base configuration with `extra_toml` deep-merged over it
    /// (tables merge key by key), the API key file, and the default stack for service `test`.
    pub fn new(sim: &Sim, extra_toml: &str) -> Env {
        module_path();
        let env = Env::bare();
        write_file(
            &env.key_file,
            format!("{}\n", sim.api_key).as_bytes(),
            0o600,
        );
        let mut cfg = env.base_config(sim);
        merge_toml(&mut cfg, parse_toml(extra_toml));
        env.write_config_table(&cfg);
        env.stack(DEFAULT_SERVICE, "");
        env
    }

    /// An environment whose configuration file is exactly `text` (for configuration-error
    /// tests), with the default stack for service `test`. [`Env::key_file`] is not written.
    pub fn with_raw_config(text: &str) -> Env {
        module_path();
        let env = Env::bare();
        env.write_config(text);
        env.stack(DEFAULT_SERVICE, "");
        env
    }

    /// The temporary directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the configuration file with `text` (mode 0600).
    pub fn write_config(&self, text: &str) {
        write_file(&self.config, text.as_bytes(), 0o600);
    }

    /// Replaces the configuration file with a serialized table (mode 0600).
    pub fn write_config_table(&self, t: &toml::Table) {
        match toml::to_string(t) {
            Ok(s) => self.write_config(&s),
            Err(e) => panic!("cannot serialize the test configuration: {e}"),
        }
    }

    /// Deep-merges `extra_toml` over the current configuration file and rewrites it.
    pub fn merge_config(&self, extra_toml: &str) {
        let mut cfg = parse_toml(&self.config_text());
        merge_toml(&mut cfg, parse_toml(extra_toml));
        self.write_config_table(&cfg);
    }

    /// Removes `key` from `[table]` of the configuration file and rewrites it.
    pub fn remove_config_key(&self, table: &str, key: &str) {
        let mut cfg = parse_toml(&self.config_text());
        if let Some(t) = cfg.get_mut(table).and_then(toml::Value::as_table_mut) {
            t.remove(key);
        }
        self.write_config_table(&cfg);
    }

    /// The configuration file's text.
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.config).unwrap_or_default()
    }

    /// Sets the configuration file's mode.
    pub fn chmod_config(&self, mode: u32) {
        chmod(&self.config, mode);
    }

    /// Writes `confdir/<service>` with an `auth` and an `account` line for the module:
    /// `auth required <module> config=<config> <args>` (and the same for `account`).
    pub fn stack(&self, service: &str, module_args: &str) {
        let line = self.module_args(module_args);
        self.stack_text(
            service,
            &format!("auth required {line}\naccount required {line}\n"),
        );
    }

    /// Like [`Env::stack`], preceded by `auth optional pam_set_items.so` (pam_wrapper's module
    /// that sets `PAM_AUTHTOK` from the environment variable `pam-drive --authtok` exports:
    /// Linux-PAM refuses `pam_set_item(PAM_AUTHTOK)` from an application).
    pub fn stack_first_pass(&self, service: &str, module_args: &str) {
        let line = self.module_args(module_args);
        self.stack_text(
            service,
            &format!(
                "auth optional {}\nauth required {line}\naccount required {line}\n",
                system_module("pam_set_items.so").display()
            ),
        );
    }

    /// Writes a stack whose `auth` runs the module, then `pam_exec.so expose_authtok` with a
    /// script that saves what it reads (the `PAM_AUTHTOK` the module left, or whatever pam_exec
    /// had to prompt for) to the returned file. With `first_pass`, `pam_set_items.so` comes first
    /// (see [`Env::stack_first_pass`]).
    pub fn stack_capture_authtok(
        &self,
        service: &str,
        module_args: &str,
        first_pass: bool,
    ) -> PathBuf {
        let out = self.root().join(format!("authtok.{service}"));
        let script = self.root().join(format!("save-authtok.{service}.sh"));
        write_file(
            &script,
            format!("#!/bin/sh\ncat > '{}'\n", out.display()).as_bytes(),
            0o755,
        );
        let line = self.module_args(module_args);
        let mut text = String::new();
        if first_pass {
            let _ = writeln!(
                text,
                "auth optional {}",
                system_module("pam_set_items.so").display()
            );
        }
        let _ = writeln!(text, "auth required {line}");
        let _ = writeln!(
            text,
            "auth required {} expose_authtok quiet {}",
            system_module("pam_exec.so").display(),
            script.display()
        );
        let _ = writeln!(text, "account required {line}");
        self.stack_text(service, &text);
        out
    }

    /// `<module> config=<config> <args>`: the part of a stack line after the control field.
    pub fn module_args(&self, module_args: &str) -> String {
        format!(
            "{} config={} {}",
            self.module.display(),
            self.config.display(),
            module_args
        )
        .trim_end()
        .to_string()
    }

    /// Writes `confdir/<service>` verbatim, after replacing `{module}` with the module path,
    /// `{config}` with the configuration path and `{sys:NAME}` with a stock module's path.
    pub fn stack_text(&self, service: &str, text: &str) {
        let mut s = text
            .replace("{module}", &self.module.to_string_lossy())
            .replace("{config}", &self.config.to_string_lossy());
        while let Some(i) = s.find("{sys:") {
            let Some(j) = s[i..].find('}') else { break };
            let name = s[i + 5..i + j].to_string();
            s.replace_range(i..i + j + 1, &system_module(&name).to_string_lossy());
        }
        write_file(&self.confdir.join(service), s.as_bytes(), 0o644);
    }

    /// A login for the default service `test` (user `alice` unless changed).
    pub fn login(&self) -> LoginBuilder<'_> {
        LoginBuilder {
            env: self,
            service: DEFAULT_SERVICE.to_string(),
            user: Some(b"alice".to_vec()),
            rhost: None,
            authtok: None,
            answers: Vec::new(),
            on_exhausted: Exhausted::Null,
            silent: false,
            auth: false,
            acct: false,
            setcred: false,
            wrapper: false,
            capture_fail_delay: false,
            vars: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Runs the admin command `pam-portal ARGS --config <config>`; `None` if it is not built.
    pub fn admin(&self, args: &[&str]) -> Option<Finished> {
        let bin = crate::paths::admin_path()?;
        let mut cmd = Command::new(bin);
        cmd.args(args).arg("--config").arg(&self.config);
        Some(crate::proc::run_with_timeout(cmd, Duration::from_secs(60)))
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn mkdir(p: &Path) {
    if let Err(e) = fs::create_dir_all(p) {
        panic!("cannot create {}: {e}", p.display());
    }
}

fn chmod(p: &Path, mode: u32) {
    if let Err(e) = fs::set_permissions(p, fs::Permissions::from_mode(mode)) {
        panic!("cannot chmod {}: {e}", p.display());
    }
}

/// Writes a file and sets its mode (also when it already existed).
pub(crate) fn write_file(p: &Path, data: &[u8], mode: u32) {
    if let Err(e) = fs::write(p, data) {
        panic!("cannot write {}: {e}", p.display());
    }
    chmod(p, mode);
}

/// What the conversation does once the scripted answers run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// A NULL response with PAM_SUCCESS (like pamtester at end of input).
    Null,
    /// The conversation returns PAM_CONV_ERR.
    ConvErr,
    /// An empty string.
    Empty,
}

/// Builds one PAM transaction, run by `pam-drive` in a fresh process.
#[must_use]
pub struct LoginBuilder<'e> {
    env: &'e Env,
    service: String,
    user: Option<Vec<u8>>,
    rhost: Option<Vec<u8>>,
    authtok: Option<Vec<u8>>,
    answers: Vec<Vec<u8>>,
    on_exhausted: Exhausted,
    silent: bool,
    auth: bool,
    acct: bool,
    setcred: bool,
    wrapper: bool,
    capture_fail_delay: bool,
    timeout: Duration,
    vars: Vec<(String, String)>,
}

impl<'e> LoginBuilder<'e> {
    /// An environment variable for the pam-drive process (and so for the module).
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    /// The PAM service name (the stack file in `confdir`).
    pub fn service(mut self, s: &str) -> Self {
        self.service = s.to_string();
        self
    }
    /// The username given to `pam_start`.
    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.as_bytes().to_vec());
        self
    }
    /// The username as arbitrary bytes (no NUL).
    pub fn user_bytes(mut self, u: &[u8]) -> Self {
        self.user = Some(u.to_vec());
        self
    }
    /// `pam_start` with a NULL user (the module has to ask for it).
    pub fn no_user(mut self) -> Self {
        self.user = None;
        self
    }
    /// Sets `PAM_RHOST` (an empty string sets it to "").
    pub fn rhost(mut self, r: &str) -> Self {
        self.rhost = Some(r.as_bytes().to_vec());
        self
    }
    /// Sets `PAM_RHOST` to arbitrary bytes.
    pub fn rhost_bytes(mut self, r: &[u8]) -> Self {
        self.rhost = Some(r.to_vec());
        self
    }
    /// Pre-sets `PAM_AUTHTOK` (needs a stack from [`Env::stack_first_pass`]).
    pub fn authtok(mut self, pw: &str) -> Self {
        self.authtok = Some(pw.as_bytes().to_vec());
        self
    }
    /// Appends one answer for the next prompt.
    pub fn answer(mut self, a: &str) -> Self {
        self.answers.push(a.as_bytes().to_vec());
        self
    }
    /// Appends one answer given as bytes (sent as `--answer-hex`).
    pub fn answer_bytes(mut self, a: &[u8]) -> Self {
        self.answers.push(a.to_vec());
        self
    }
    /// Appends several answers.
    pub fn answers(mut self, a: &[&str]) -> Self {
        self.answers.extend(a.iter().map(|s| s.as_bytes().to_vec()));
        self
    }
    /// What happens once the answers run out (default: NULL responses).
    pub fn on_exhausted(mut self, e: Exhausted) -> Self {
        self.on_exhausted = e;
        self
    }
    /// Passes `PAM_SILENT`.
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }
    /// Calls `pam_authenticate` (the default when no call is chosen).
    pub fn auth(mut self) -> Self {
        self.auth = true;
        self
    }
    /// Calls `pam_acct_mgmt` (after authenticate if that is chosen too and succeeded).
    pub fn acct(mut self) -> Self {
        self.acct = true;
        self
    }
    /// Calls `pam_setcred(PAM_ESTABLISH_CRED)` last.
    pub fn setcred(mut self) -> Self {
        self.setcred = true;
        self
    }
    /// Runs under pam_wrapper (LD_PRELOAD, `PAM_WRAPPER_SERVICE_DIR=confdir`,
    /// `PAM_WRAPPER_DEBUGLEVEL=2`, plain `pam_start`) so [`Outcome::log_lines`] has the module's
    /// `pam_syslog` lines.
    pub fn under_pam_wrapper(mut self) -> Self {
        self.wrapper = true;
        self
    }
    /// Installs a `PAM_FAIL_DELAY` callback: the delays libpam asks for are recorded in
    /// [`Outcome::fail_delays_us`] instead of being slept.
    pub fn capture_fail_delay(mut self) -> Self {
        self.capture_fail_delay = true;
        self
    }
    /// How long the process may run before it is killed and the test fails (default 60 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(drive_path());
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd.arg("--service").arg(&self.service);
        match &self.user {
            Some(u) => match std::str::from_utf8(u) {
                Ok(s) if !s.starts_with('-') => {
                    cmd.arg("--user").arg(s);
                }
                _ => {
                    cmd.arg("--user-hex").arg(hex_encode(u));
                }
            },
            None => {
                cmd.arg("--no-user");
            }
        }
        if let Some(r) = &self.rhost {
            cmd.arg("--rhost-hex").arg(hex_encode(r));
        }
        if let Some(a) = &self.authtok {
            cmd.arg("--authtok")
                .arg(String::from_utf8_lossy(a).as_ref());
        }
        for a in &self.answers {
            cmd.arg("--answer-hex").arg(hex_encode(a));
        }
        cmd.arg("--on-exhausted").arg(match self.on_exhausted {
            Exhausted::Null => "null",
            Exhausted::ConvErr => "conv-err",
            Exhausted::Empty => "empty",
        });
        if self.silent {
            cmd.arg("--silent");
        }
        if self.capture_fail_delay {
            cmd.arg("--capture-fail-delay");
        }
        if self.auth {
            cmd.arg("--auth");
        }
        if self.acct {
            cmd.arg("--acct");
        }
        if self.setcred {
            cmd.arg("--setcred");
        }
        cmd.env_remove("LD_PRELOAD");
        // pam_set_items.so (used by `stack_first_pass`) sets any item named in the environment.
        for item in [
            "PAM_SERVICE",
            "PAM_USER",
            "PAM_USER_PROMPT",
            "PAM_TTY",
            "PAM_RUSER",
            "PAM_RHOST",
            "PAM_AUTHTOK",
            "PAM_OLDAUTHTOK",
            "PAM_XDISPLAY",
            "PAM_AUTHTOK_TYPE",
        ] {
            cmd.env_remove(item);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PAM_WRAPPER") {
                cmd.env_remove(k);
            }
        }
        if self.wrapper {
            cmd.env("LD_PRELOAD", pam_wrapper_lib())
                .env("PAM_WRAPPER", "1")
                .env("PAM_WRAPPER_SERVICE_DIR", &self.env.confdir)
                .env("PAM_WRAPPER_DEBUGLEVEL", "2");
        } else {
            cmd.arg("--confdir").arg(&self.env.confdir);
        }
        cmd
    }

    /// Starts the login and returns at once (for concurrent logins).
    pub fn spawn(self) -> RunningLogin {
        let cmd = self.command();
        let what = format!("pam-drive ({cmd:?})");
        let transcript = crate::transcript::pending(|| self.transcript_inputs());
        RunningLogin {
            watched: Watched::spawn(cmd, what),
            wrapped: self.wrapper,
            timeout: self.timeout,
            transcript,
        }
    }

    /// What a transcript records of this login's inputs (see [`crate::transcript`]).
    fn transcript_inputs(&self) -> Value {
        let mut keys: Vec<String> = fs::read_to_string(&self.env.key_file)
            .map(|k| k.trim().to_string())
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect();
        keys.extend(crate::transcript::inline_api_keys(
            &fs::read_to_string(&self.env.config).unwrap_or_default(),
        ));
        crate::transcript::inputs(
            &self.service,
            self.user.as_deref(),
            self.rhost.as_deref(),
            &self.answers,
            self.authtok.as_deref(),
            keys,
            &self.env.config,
        )
    }

    /// Runs the login to completion. Runs under pam_wrapper take turns, across threads and
    /// processes: pam_wrapper copies the stack into `/tmp/pam.X` with one character of
    /// uniqueness and, when two processes pick the same one, both use it, so parallel runs
    /// could load each other's stacks (its `PAM_WRAPPER_RUNTIME_DIR` does not move that copy).
    ///
    /// With `PAM_PORTAL_TEST_WRAP_ALL=1` in the environment every login runs under pam_wrapper
    /// (see [`crate::transcript`]); without it nothing changes.
    pub fn run(mut self) -> Outcome {
        if !self.wrapper && crate::transcript::wrap_all() {
            self.wrapper = true;
        }
        if !self.wrapper {
            return self.spawn().wait();
        }
        static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("pam_portal-tests-pam_wrapper.lock"))
            .expect("pam_wrapper lock file");
        lock.lock().expect("pam_wrapper lock");
        self.spawn().wait()
    }
}

/// A login started with [`LoginBuilder::spawn`].
pub struct RunningLogin {
    watched: Watched,
    wrapped: bool,
    timeout: Duration,
    transcript: Option<crate::transcript::Pending>,
}

impl RunningLogin {
    /// Waits for the process and parses its report.
    pub fn wait(self) -> Outcome {
        let f = self.watched.wait(self.timeout);
        if let Some(t) = self.transcript {
            crate::transcript::write(t, &f, self.wrapped);
        }
        Outcome::from_finished(f, self.wrapped)
    }
}

/// A conversation message's style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    EchoOff,
    EchoOn,
    Error,
    Info,
    Other,
}

/// One conversation message the module sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub style: Style,
    pub text: String,
    /// For a prompt: whether a (non-NULL) answer was given.
    pub answered: bool,
    /// The call it came from: `auth`, `acct`, `setcred`.
    pub phase: String,
}

impl Msg {
    pub fn is_prompt(&self) -> bool {
        matches!(self.style, Style::EchoOff | Style::EchoOn)
    }
}

/// What one `pam-drive` run reported.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `pam_start`'s code.
    pub start: i32,
    pub auth: Option<i32>,
    pub acct: Option<i32>,
    pub setcred: Option<i32>,
    pub messages: Vec<Msg>,
    /// From before `pam_start` to after `pam_end`, measured inside pam-drive.
    pub elapsed_ms: u64,
    /// Wall time of the whole pam-drive process.
    pub wall_ms: u64,
    /// `PAM_USER` after the calls.
    pub user: Option<String>,
    /// Delays requested through `pam_fail_delay` (with [`LoginBuilder::capture_fail_delay`]).
    pub fail_delays_us: Vec<u64>,
    pub stderr: String,
    pub json: Value,
    wrapped: bool,
}

impl Outcome {
    fn from_finished(f: Finished, wrapped: bool) -> Outcome {
        let stdout = String::from_utf8_lossy(&f.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&f.stderr).into_owned();
        let json_line = stdout.lines().rev().find(|l| l.starts_with('{'));
        let json: Value = match json_line.map(serde_json::from_str) {
            Some(Ok(v)) => v,
            _ => panic!(
                "pam-drive gave no JSON report (status {}). stdout:\n{stdout}\nstderr:\n{stderr}",
                f.status
            ),
        };
        let code = |k: &str| json.get(k).and_then(Value::as_i64).map(|c| c as i32);
        let messages = json
            .get("messages")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| Msg {
                        style: match m.get("style").and_then(Value::as_str) {
                            Some("echo_off") => Style::EchoOff,
                            Some("echo_on") => Style::EchoOn,
                            Some("error") => Style::Error,
                            Some("info") => Style::Info,
                            _ => Style::Other,
                        },
                        text: m
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        answered: m.get("answered").and_then(Value::as_bool).unwrap_or(false),
                        phase: m
                            .get("phase")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Outcome {
            start: code("start").unwrap_or(-1),
            auth: code("auth"),
            acct: code("acct"),
            setcred: code("setcred"),
            messages,
            elapsed_ms: json.get("elapsed_ms").and_then(Value::as_u64).unwrap_or(0),
            wall_ms: f.wall.as_millis() as u64,
            user: json.get("user").and_then(Value::as_str).map(str::to_string),
            fail_delays_us: json
                .get("fail_delays_us")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
            stderr,
            json,
            wrapped,
        }
    }

    /// The prompts (echo off and echo on), in order.
    pub fn prompts(&self) -> Vec<&Msg> {
        self.messages.iter().filter(|m| m.is_prompt()).collect()
    }

    /// The prompts as (style, text) pairs.
    pub fn prompt_list(&self) -> Vec<(Style, String)> {
        self.prompts()
            .into_iter()
            .map(|m| (m.style, m.text.clone()))
            .collect()
    }

    /// The PAM_ERROR_MSG texts, in order.
    pub fn errors(&self) -> Vec<&str> {
        self.of_style(Style::Error)
    }

    /// The PAM_TEXT_INFO texts, in order.
    pub fn infos(&self) -> Vec<&str> {
        self.of_style(Style::Info)
    }

    fn of_style(&self, s: Style) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| m.style == s)
            .map(|m| m.text.as_str())
            .collect()
    }

    /// The module's `pam_syslog` lines. Only for logins run
    /// [`under_pam_wrapper`](LoginBuilder::under_pam_wrapper) (panics otherwise).
    pub fn log_lines(&self) -> Vec<LogLine> {
        assert!(
            self.wrapped,
            "log_lines() needs a login run with .under_pam_wrapper()"
        );
        parse_wrapper_stderr(&self.stderr)
    }

    /// The decision lines (`result=... reason=...`).
    pub fn decisions(&self) -> Vec<LogLine> {
        self.log_lines()
            .into_iter()
            .filter(LogLine::is_decision)
            .collect()
    }

    /// A summary for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "auth={} acct={} setcred={} elapsed={}ms\nmessages:",
            codes::name_opt(self.auth),
            codes::name_opt(self.acct),
            codes::name_opt(self.setcred),
            self.elapsed_ms
        );
        for m in &self.messages {
            let _ = write!(
                s,
                "\n  [{}] {:?} {:?}{}",
                m.phase,
                m.style,
                m.text,
                if m.is_prompt() && !m.answered {
                    " (no answer)"
                } else {
                    ""
                }
            );
        }
        if !self.stderr.is_empty() {
            let _ = write!(s, "\nstderr:\n{}", self.stderr);
        }
        s
    }
}
