//! The admin command `pam-portal` (SPEC §9, man page pam-portal(8)): the same configuration and
//! lockout store as the module.
//!
//! - `status`: failures, locks and time left, as a table or JSON.
//! - `reset`: clears records; each one cleared is written to syslog (AUTHPRIV) and to stdout
//!   with who ran the command.
//! - `check`: validates the file and its permissions, reaches the portal with the service
//!   account, resolves the question texts and prints the effective settings per service
//!   (secrets masked). One line per problem, on stderr.
//! - `test-login`: one PAM transaction through libpam with the real module and a terminal
//!   conversation, as a host runs it.
//!
//! Errors are one line naming the fix, never a backtrace. Exit codes: 0 fine, 1 a problem,
//! 2 usage, and for `check` 3 when the file is valid but the portal cannot be used.

use crate::access;
use crate::audit;
use crate::config::{
    Backend, Config, OnUnavailable, Policy, QuestionChoice, SecondFactor, Settings, DEFAULT_PATH,
};
use crate::lockout::files::FileStore;
use crate::lockout::redis::RedisStore;
use crate::lockout::{Key, Store, Tally};
use crate::login::{RealWorld, World};
use crate::portal::{HttpPortal, PortalApi, Question};
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

/// Exit code: everything fine (for `test-login`: the login was accepted).
pub const EXIT_OK: i32 = 0;
/// Exit code: a problem (bad configuration, unreadable state, refused login), named on stderr.
pub const EXIT_PROBLEM: i32 = 1;
/// Exit code: the command line is wrong.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `check`: the file is valid, but the portal could not be reached or refused the
/// service account.
pub const EXIT_PORTAL: i32 = 3;

const USAGE: &str = "usage: pam-portal [--config PATH] status [--user NAME | --ip ADDR] [--json]
       pam-portal [--config PATH] reset (--user NAME | --ip ADDR | --phone NAME | --all)
       pam-portal [--config PATH] check [--offline]
       pam-portal [--config PATH] test-login --user NAME [--rhost ADDR] [--service NAME]
                  [--module PATH] [--debug] [--no-account]
       pam-portal test-login --system-stack --service NAME --user NAME [--rhost ADDR] [--no-account]
       pam-portal --help | --version
The default configuration is /etc/security/pam_portal.toml; see pam-portal(8).";

/// Writes a line to stdout; a closed pipe (`pam-portal status | head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Writes a line to stderr.
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub fn main(args: Vec<String>) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(Failure::Help) => {
            out!("{USAGE}");
            EXIT_OK
        }
        Err(Failure::Usage(m)) => {
            err!("pam-portal: {m}\n{USAGE}");
            EXIT_USAGE
        }
        Err(Failure::Problem(m)) => {
            err!("pam-portal: {m}");
            EXIT_PROBLEM
        }
    }
}

enum Failure {
    Help,
    Usage(String),
    Problem(String),
}

fn problem(m: impl Into<String>) -> Failure {
    Failure::Problem(m.into())
}

#[derive(Default)]
struct Parsed {
    config: Option<PathBuf>,
    command: String,
    user: Option<String>,
    ip: Option<String>,
    phone: Option<String>,
    rhost: Option<String>,
    service: Option<String>,
    module: Option<PathBuf>,
    all: bool,
    json: bool,
    offline: bool,
    debug: bool,
    no_account: bool,
    system_stack: bool,
    /// The options given, for the per-command check.
    given: Vec<&'static str>,
}

impl Parsed {
    fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }
}

const OPTIONS: &[&str] = &[
    "--config",
    "--user",
    "--ip",
    "--phone",
    "--rhost",
    "--service",
    "--module",
    "--all",
    "--json",
    "--offline",
    "--debug",
    "--no-account",
    "--system-stack",
];

fn parse(args: Vec<String>) -> Result<Parsed, Failure> {
    let mut p = Parsed::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        // `--opt=value` works as well as `--opt value`.
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(Failure::Help);
        }
        if name == "--version" || name == "-V" {
            out!("pam-portal {}", env!("CARGO_PKG_VERSION"));
            return Ok(Parsed {
                command: "version".into(),
                ..Parsed::default()
            });
        }
        let Some(&known) = OPTIONS.iter().find(|o| **o == name) else {
            if !a.starts_with('-') && p.command.is_empty() {
                p.command = a;
                continue;
            }
            return Err(Failure::Usage(format!("unexpected argument {a:?}")));
        };
        if p.given.contains(&known) {
            return Err(Failure::Usage(format!("{known} is given twice")));
        }
        p.given.push(known);
        let mut value = || -> Result<String, Failure> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(Failure::Usage(format!("{known} needs a value"))),
            }
        };
        match known {
            "--config" => p.config = Some(PathBuf::from(value()?)),
            "--user" => p.user = Some(value()?),
            "--ip" => p.ip = Some(value()?),
            "--phone" => p.phone = Some(value()?),
            "--rhost" => p.rhost = Some(value()?),
            "--service" => p.service = Some(value()?),
            "--module" => p.module = Some(PathBuf::from(value()?)),
            flag => {
                if inline.is_some() {
                    return Err(Failure::Usage(format!("{flag} takes no value")));
                }
                match flag {
                    "--all" => p.all = true,
                    "--json" => p.json = true,
                    "--offline" => p.offline = true,
                    "--debug" => p.debug = true,
                    "--no-account" => p.no_account = true,
                    _ => p.system_stack = true,
                }
            }
        }
    }
    Ok(p)
}

/// Refuses options that the command does not take.
fn allow(p: &Parsed, allowed: &[&str]) -> Result<(), Failure> {
    match p
        .given
        .iter()
        .find(|g| **g != "--config" && !allowed.contains(g))
    {
        Some(g) => Err(Failure::Usage(format!(
            "{g} does not go with {}",
            p.command
        ))),
        None => Ok(()),
    }
}

fn run(args: Vec<String>) -> Result<i32, Failure> {
    let p = parse(args)?;
    match p.command.as_str() {
        "version" => Ok(EXIT_OK),
        "status" => {
            allow(&p, &["--user", "--ip", "--json"])?;
            status(&p)
        }
        "reset" => {
            allow(&p, &["--user", "--ip", "--phone", "--all"])?;
            reset(&p)
        }
        "check" => {
            allow(&p, &["--offline"])?;
            check(&p)
        }
        "test-login" => {
            allow(
                &p,
                &[
                    "--user",
                    "--rhost",
                    "--service",
                    "--module",
                    "--debug",
                    "--no-account",
                    "--system-stack",
                ],
            )?;
            test_login(&p)
        }
        "" => Err(Failure::Usage("no command given".into())),
        c => Err(Failure::Usage(format!("unknown command {c:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// status and reset

fn load_config(p: &Parsed) -> Result<Config, Failure> {
    Config::load(&p.config_path()).map_err(|e| {
        if e.0.contains("Permission denied") {
            problem(format!("{e}; run pam-portal as root (sudo)"))
        } else {
            problem(format!("{e} (fix it, then run `pam-portal check`)"))
        }
    })
}

/// The store, or `None` when the lockout directory does not exist yet (nothing recorded).
/// With `backend = "redis"`, the Redis server (no fallback here: the operator is told).
fn open_store(s: &Settings) -> Result<Option<Box<dyn Store>>, Failure> {
    if let (Backend::Redis, Some(r)) = (s.lockout.backend, &s.lockout.redis) {
        let store = RedisStore::new(r.clone(), crate::lockout::longest_window(&s.lockout));
        store.ping().map_err(|e| {
            problem(format!(
                "lockout store {} unreachable ({}); check [lockout] redis_url and the server",
                store.shown(),
                e.0
            ))
        })?;
        return Ok(Some(Box::new(store)));
    }
    local_store(s)
}

/// The local file store (with Redis: the fallback's records), if its directory exists.
fn local_store(s: &Settings) -> Result<Option<Box<dyn Store>>, Failure> {
    if std::fs::symlink_metadata(&s.lockout.dir).is_err() {
        return Ok(None);
    }
    FileStore::open(&s.lockout.dir, crate::lockout::longest_window(&s.lockout))
        .map(|f| Some(Box::new(f) as Box<dyn Store>))
        .map_err(|e| {
            problem(format!(
                "{} (fix the directory's owner and mode: chown root, chmod 700)",
                e.0
            ))
        })
}

fn ip_key(s: &Settings, text: &str) -> Result<Key, Failure> {
    let ip = access::parse_rhost(Some(text)).ok_or_else(|| {
        Failure::Usage(format!(
            "{text:?} is not an IP address (e.g. 198.51.100.7 or 2001:db8::1)"
        ))
    })?;
    Ok(Key::Ip(access::address_key(ip, s.lockout.ipv6_prefix)))
}

fn policy<'a>(s: &'a Settings, key: &Key) -> &'a Policy {
    match key {
        Key::User(_) => &s.lockout.user,
        Key::Ip(_) => &s.lockout.ip,
        Key::Phone(_) => &s.lockout.phone,
    }
}

fn store_problem(e: crate::lockout::StoreError) -> Failure {
    if e.0.starts_with("lockout store ") {
        return problem(format!(
            "{} (check [lockout] redis_url and the server)",
            e.0
        ));
    }
    problem(format!(
        "{} (check the lockout directory's owner and mode)",
        e.0
    ))
}

fn print_warnings(store: &dyn Store) {
    for w in store.take_warnings() {
        err!("pam-portal: warning: {w}");
    }
}

fn status(p: &Parsed) -> Result<i32, Failure> {
    let s = load_config(p)?.for_service("");
    let store = open_store(&s)?;
    let keys = match (&p.user, &p.ip) {
        (Some(u), None) => vec![
            Key::User(u.as_bytes().to_vec()),
            Key::Phone(u.as_bytes().to_vec()),
        ],
        (None, Some(ip)) => vec![ip_key(&s, ip)?],
        (None, None) => match &store {
            Some(st) => st.keys().map_err(store_problem)?,
            None => Vec::new(),
        },
        _ => return Err(Failure::Usage("give --user or --ip, not both".into())),
    };
    let now = RealWorld::default().now();
    let mut rows = Vec::new();
    for key in keys {
        let pol = *policy(&s, &key);
        let t = match &store {
            Some(st) => st.tally(&key, now, &pol).map_err(store_problem)?,
            None => Tally::default(),
        };
        rows.push((key, t, pol));
    }
    if let Some(st) = &store {
        print_warnings(st.as_ref());
    }
    if p.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(k, t, pol)| {
                serde_json::json!({
                    "kind": k.kind(),
                    "key": String::from_utf8_lossy(k.value_bytes()),
                    "failures": t.failures,
                    "max_failures": pol.max_failures,
                    "window_s": pol.window_s,
                    "locked": t.locked_for.is_some(),
                    "lock_left_s": t.locked_for.unwrap_or(0),
                })
            })
            .collect();
        out!("{}", serde_json::Value::Array(list));
    } else {
        out!("{:<6} {:<40} {:>9} LOCK", "KIND", "KEY", "FAILURES");
        for (k, t, pol) in &rows {
            let lock = t.locked_for.map_or_else(
                || "-".to_string(),
                |l| format!("locked, {l} s left ({} min)", l.div_ceil(60).max(1)),
            );
            let fails = format!("{}/{}", t.failures, pol.max_failures);
            out!(
                "{:<6} {:<40} {:>9} {lock}",
                k.kind(),
                audit::escape_bytes(k.value_bytes()),
                fails
            );
        }
    }
    Ok(EXIT_OK)
}

/// Who ran the command, for the audit line: `SUDO_USER` (the person behind sudo), else the
/// login name, with the real uid always.
fn operator() -> (String, u32) {
    let name = ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.is_empty())
        .unwrap_or_else(|| "-".to_string());
    (name, crate::pam::getuid())
}

/// The audit line of one reset: what was cleared, and by whom.
pub fn reset_line(key: &Key, before: &Tally, by: &str, uid: u32) -> String {
    let mut l = audit::Line::new()
        .word("result", "reset")
        .text(key.kind(), key.value_bytes())
        .num("failures", u64::from(before.failures))
        .word(
            "locked",
            if before.locked_for.is_some() {
                "yes"
            } else {
                "no"
            },
        );
    if let Some(left) = before.locked_for {
        l = l.num("lock_left_s", left);
    }
    l.text("by", by.as_bytes())
        .num("uid", u64::from(uid))
        .finish()
}

fn reset(p: &Parsed) -> Result<i32, Failure> {
    let s = load_config(p)?.for_service("");
    let store = open_store(&s)?;
    let keys = match (&p.user, &p.ip, &p.phone, p.all) {
        (Some(u), None, None, false) => vec![Key::User(u.as_bytes().to_vec())],
        (None, Some(ip), None, false) => vec![ip_key(&s, ip)?],
        (None, None, Some(u), false) => vec![Key::Phone(u.as_bytes().to_vec())],
        (None, None, None, true) => match &store {
            Some(st) => st.keys().map_err(store_problem)?,
            None => Vec::new(),
        },
        _ => {
            return Err(Failure::Usage(
                "reset takes exactly one of --user, --ip, --phone, --all".into(),
            ))
        }
    };
    let Some(store) = store else {
        out!(
            "nothing to reset: {} does not exist yet",
            s.lockout.dir.display()
        );
        return Ok(EXIT_OK);
    };
    // With Redis, the same keys are also cleared from the local files (what logins recorded on
    // this machine while Redis was unreachable).
    let local = match s.lockout.backend {
        Backend::Redis => local_store(&s)?,
        Backend::Files => None,
    };
    let mut keys = keys;
    if let (true, Some(l)) = (p.all, &local) {
        keys.extend(l.keys().map_err(store_problem)?);
        keys.sort();
        keys.dedup();
    }
    if keys.is_empty() {
        out!("nothing to reset: no lockout records");
    }
    let (by, uid) = operator();
    let now = RealWorld::default().now();
    for key in keys {
        let before = store
            .tally(&key, now, policy(&s, &key))
            .map_err(store_problem)?;
        store.clear(&key).map_err(store_problem)?;
        if let Some(l) = &local {
            l.clear(&key).map_err(store_problem)?;
        }
        let line = reset_line(&key, &before, &by, uid);
        crate::pam::syslog_authpriv(libc::LOG_NOTICE, &line);
        out!("{line}");
    }
    print_warnings(store.as_ref());
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// check

/// What `check` found, printed as it goes: `ok:` lines on stdout, `warning:` and `problem:`
/// lines on stderr.
#[derive(Default)]
struct Report {
    problems: usize,
    portal_problems: usize,
    warnings: usize,
}

impl Report {
    fn ok(&mut self, m: &str) {
        out!("ok: {m}");
    }
    fn note(&mut self, m: &str) {
        out!("note: {m}");
    }
    fn warning(&mut self, m: &str) {
        self.warnings += 1;
        err!("warning: {m}");
    }
    fn problem(&mut self, m: &str) {
        self.problems += 1;
        err!("problem: {m}");
    }
    fn portal_problem(&mut self, m: &str) {
        self.portal_problems += 1;
        err!("problem: {m}");
    }
    fn finish(&self) -> i32 {
        let total = self.problems + self.portal_problems;
        if total == 0 {
            out!(
                "check: no problems found ({} warning{})",
                self.warnings,
                plural(self.warnings)
            );
            EXIT_OK
        } else {
            err!(
                "check: {total} problem{} found ({} warning{})",
                plural(total),
                self.warnings,
                plural(self.warnings)
            );
            if self.problems > 0 {
                EXIT_PROBLEM
            } else {
                EXIT_PORTAL
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Text from outside (the portal's question texts) made safe for a terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", u32::from(c) & 0xff)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A string as a TOML/JSON quoted string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_string())
}

fn owner_mode(meta: &std::fs::Metadata) -> String {
    format!("owner uid {}, mode {:o}", meta.uid(), meta.mode() & 0o7777)
}

/// Where the module is found, as libpam would look for `pam_portal.so` with no path.
pub fn installed_module() -> Option<PathBuf> {
    module_dirs()
        .into_iter()
        .map(|d| d.join("pam_portal.so"))
        .find(|p| p.is_file())
}

/// The directories libpam looks in for a module named without a path, most likely first.
pub fn module_dirs() -> Vec<PathBuf> {
    let multiarch = if cfg!(target_arch = "x86_64") {
        "x86_64-linux-gnu"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu"
    } else if cfg!(target_arch = "arm") {
        "arm-linux-gnueabihf"
    } else {
        "unknown"
    };
    vec![
        PathBuf::from(format!("/lib/{multiarch}/security")),
        PathBuf::from(format!("/usr/lib/{multiarch}/security")),
        PathBuf::from("/usr/lib64/security"),
        PathBuf::from("/lib64/security"),
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib/security"),
    ]
}

/// The packaged examples: Debian's package, else the RPM's (the Debian path if neither is here).
fn examples_dir() -> PathBuf {
    let candidates = [
        "/usr/share/doc/libpam-portal/examples",
        "/usr/share/doc/pam_portal/examples",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from(candidates[0]))
}

fn check(p: &Parsed) -> Result<i32, Failure> {
    let path = p.config_path();
    let shown = path.display().to_string();
    let mut r = Report::default();

    // 1. The file: permissions, syntax, every key.
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            r.problem(&format!("{shown}: {e}; run pam-portal as root (sudo)"));
            return Ok(r.finish());
        }
        Err(e) => {
            r.problem(&format!(
                "{shown}: cannot read: {e}; create it from {}/pam_portal.toml (mode 600) or give --config PATH",
                examples_dir().display()
            ));
            return Ok(r.finish());
        }
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) if e.0.contains("Permission denied") => {
            r.problem(&format!("{e}; run pam-portal as root (sudo)"));
            return Ok(r.finish());
        }
        Err(e) => {
            r.problem(&format!("{e} (see pam_portal.toml(5))"));
            return Ok(r.finish());
        }
    };
    r.ok(&format!("{shown}: valid ({})", owner_mode(&meta)));
    if meta.uid() != 0 {
        r.warning(&format!(
            "{shown} is owned by uid {}: the module accepts it only when it runs as that user; chown root it",
            meta.uid()
        ));
    }

    // 2. The service account.
    let portal = &config.portal;
    match (&portal.api_user, &portal.api_key) {
        (Some(u), Some(_)) => {
            let from = match &portal.api_key_file {
                Some(f) => {
                    let mode = std::fs::metadata(f)
                        .map(|m| format!(" ({})", owner_mode(&m)))
                        .unwrap_or_default();
                    format!("from {}{mode}", f.display())
                }
                None => "inline in the file".to_string(),
            };
            r.ok(&format!(
                "service account {}: API key set, {from}",
                printable(u)
            ));
        }
        _ => r.problem(&format!(
            "{shown}: no service account: set [portal] api_user and api_key_file (logins need it to look users up)"
        )),
    }
    if let Some(ca) = &portal.ca_file {
        r.ok(&format!("ca_file {}: trusting only its CAs", ca.display()));
    }

    // 3. The lockout directory (created 0700 by the package, or by the module at first use).
    let dir = &config.lockout.dir;
    match std::fs::symlink_metadata(dir) {
        Ok(m) => match FileStore::open(dir, 1) {
            Ok(_) => {
                r.ok(&format!("lockout directory {} ({})", dir.display(), owner_mode(&m)));
                if m.mode() & 0o077 != 0 {
                    r.warning(&format!(
                        "lockout directory {} is readable by group or others (mode {:o}): it names users and addresses; chmod 700 it",
                        dir.display(),
                        m.mode() & 0o777
                    ));
                }
            }
            Err(e) => r.problem(&format!("{}; chown root and chmod 700 it", e.0)),
        },
        Err(_) => r.warning(&format!(
            "lockout directory {} does not exist yet: the module creates it (mode 700) at the first login; mkdir -m 700 it to be sure",
            dir.display()
        )),
    }

    // 3b. The shared store (backend = "redis"): reachable, authenticated, answering.
    if let Some(rs) = &config.lockout.redis {
        let store = RedisStore::new(rs.clone(), 1);
        match store.ping() {
            Ok(()) => r.ok(&format!(
                "lockout store {} (key_prefix {}): reachable",
                store.shown(),
                quoted(&rs.key_prefix)
            )),
            Err(e) => r.problem(&format!(
                "lockout store {} unreachable ({}): logins would use the local files in {}",
                store.shown(),
                e.0,
                config.lockout.dir.display()
            )),
        }
    }

    // 4. The module itself.
    match installed_module() {
        Some(m) => {
            r.ok(&format!("module {}", m.display()));
            // The front hands every login it does not decide to the full module beside it.
            let full = m.with_file_name(crate::front::FULL_FILE_NAME);
            if full.is_file() {
                r.ok(&format!("full module {}", full.display()));
            } else {
                r.problem(&format!(
                    "{} is missing: pam_portal.so refuses locked clients and empty passwords, but every other login fails (PAM_SERVICE_ERR)",
                    full.display()
                ));
            }
        }
        None => r.note(&format!(
            "pam_portal.so is not installed in {}: stacks must name it by path",
            module_dirs()
                .first()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        )),
    }

    // 5. The portal, with the service account, and the question texts.
    let mut questions: Option<Vec<Question>> = None;
    if p.offline {
        r.note("--offline: the portal was not contacted");
    } else {
        let started = Instant::now();
        match HttpPortal::new(portal).questions() {
            Ok(mut qs) => {
                qs.sort_by_key(|q| (q.display_order, q.id));
                r.ok(&format!(
                    "portal {} reached in {} ms: {} security question{}",
                    portal.url,
                    started.elapsed().as_millis(),
                    qs.len(),
                    plural(qs.len())
                ));
                for q in &qs {
                    out!(
                        "    question {} (order {}): {}",
                        q.id,
                        q.display_order,
                        printable(&q.text)
                    );
                }
                if qs.is_empty() {
                    r.warning("the portal lists no security questions: users can only use a phone, TOTP or VeriSign factor");
                }
                questions = Some(qs);
            }
            Err(e) => r.portal_problem(&format!(
                "portal {}: {}; check [portal] url, ca_file, and that this host can reach it",
                portal.url,
                portal_text(&e.0)
            )),
        }
        if let Some(u) = &portal.api_user {
            match HttpPortal::new(portal).find_user(u) {
                Ok(_) => r.ok(&format!(
                    "the portal accepted the service account {} (a user look-up worked)",
                    printable(u)
                )),
                Err(e) => {
                    r.portal_problem(&format!("portal {}: {}", portal.url, portal_text(&e.0)))
                }
            }
        }
    }
    if portal.on_unavailable == OnUnavailable::Ignore {
        r.note(&format!(
            "on_unavailable = \"ignore\": while the portal is down the module returns PAM_IGNORE; the stack must let it through (see {}/pam.d/sshd-fallback)",
            examples_dir().display()
        ));
    }

    // 6. What a login would use, per service.
    out!("");
    print_settings(&config, questions.as_deref());
    Ok(r.finish())
}

/// The portal client's error, worded for `check` (the refused credentials name their fix).
fn portal_text(e: &str) -> String {
    if e.contains("HTTP 401")
        || e.contains("HTTP 403")
        || e.contains("refused the service credentials")
    {
        "the portal refused the service credentials: check api_user and the API key".to_string()
    } else {
        e.to_string()
    }
}

fn factor_name(f: SecondFactor) -> &'static str {
    match f {
        SecondFactor::Auto => "auto",
        SecondFactor::Question => "question",
        SecondFactor::Phone => "phone",
        SecondFactor::None => "none",
    }
}

fn choice_name(c: QuestionChoice) -> &'static str {
    match c {
        QuestionChoice::Random => "random",
        QuestionChoice::First => "first",
    }
}

fn policy_text(p: &Policy) -> String {
    format!(
        "{{ max_failures = {}, window_s = {}, lock_s = {} }}",
        p.max_failures, p.window_s, p.lock_s
    )
}

fn cidrs(list: &[access::Cidr]) -> String {
    let items: Vec<String> = list.iter().map(|c| quoted(&c.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// The effective settings, as TOML a reader can compare with the file; the API key is masked.
fn print_settings(config: &Config, questions: Option<&[Question]>) {
    let p = &config.portal;
    out!(
        "# effective settings of {} (secrets masked)",
        config.path.display()
    );
    out!("[portal]");
    out!("url = {}", quoted(&p.url));
    match &p.api_user {
        Some(u) => out!("api_user = {}", quoted(u)),
        None => out!("# api_user: not set"),
    }
    if p.api_key.is_some() {
        out!("api_key = \"********\"");
    }
    match &p.ca_file {
        Some(c) => out!("ca_file = {}", quoted(&c.to_string_lossy())),
        None => out!("# ca_file: not set (the system's CAs)"),
    }
    out!("connect_timeout_ms = {}", p.connect_timeout.as_millis());
    out!("request_timeout_ms = {}", p.request_timeout.as_millis());
    out!(
        "on_unavailable = \"{}\"",
        match p.on_unavailable {
            OnUnavailable::Deny => "deny",
            OnUnavailable::Ignore => "ignore",
        }
    );
    out!("honor_ip_restriction = {}", p.honor_ip_restriction);
    let l = &config.lockout;
    out!("\n[lockout]");
    out!("dir = {}", quoted(&l.dir.to_string_lossy()));
    if let Some(rs) = &l.redis {
        out!("backend = \"redis\"");
        let auth = match (&rs.username, &rs.password) {
            (Some(u), Some(_)) => format!("{u}:********@"),
            (None, Some(_)) => ":********@".to_string(),
            _ => String::new(),
        };
        let shown = rs.shown();
        let (scheme, rest) = shown.split_once("://").unwrap_or(("redis", &shown));
        out!(
            "redis_url = {}",
            quoted(&format!("{scheme}://{auth}{rest}"))
        );
        out!("key_prefix = {}", quoted(&rs.key_prefix));
        out!("redis_timeout_ms = {}", rs.timeout.as_millis());
        if let Some(ca) = &rs.ca_file {
            out!("redis_ca_file = {}", quoted(&ca.to_string_lossy()));
        }
    }
    out!("user = {}", policy_text(&l.user));
    out!(
        "ip = {{ max_failures = {}, window_s = {}, lock_s = {}, ipv6_prefix = {} }}",
        l.ip.max_failures,
        l.ip.window_s,
        l.ip.lock_s,
        l.ipv6_prefix
    );
    out!("phone = {}", policy_text(&l.phone));
    let a = &config.access;
    out!("\n[access]");
    out!("allow = {}", cidrs(&a.allow));
    out!("deny = {}", cidrs(&a.deny));
    for (name, u) in &a.users {
        out!(
            "users.{} = {{ allow = {}, deny = {} }}",
            quoted(name),
            cidrs(&u.allow),
            cidrs(&u.deny)
        );
    }
    // The services: the defaults, each [services.NAME], each VPN service.
    let mut names = vec![String::new()];
    names.extend(config.service_names());
    for v in ["openvpn", "ocserv", "sshd"] {
        if config.for_service(v).auth.is_vpn && !names.iter().any(|n| n == v) {
            names.push(v.to_string());
        }
    }
    let first = questions.and_then(|q| q.first());
    for name in names {
        let s = config.for_service(&name);
        if name.is_empty() {
            out!("\n# any service without its own profile: [auth] and [prompts]");
            out!("[services.\"*\"]");
        } else {
            let vpn = if s.auth.is_vpn { ", a VPN service" } else { "" };
            out!(
                "\n# PAM service {}{vpn}: [auth] and [prompts] with its profile over them",
                quoted(&name)
            );
            out!("[services.{}]", quoted(&name));
        }
        let au = &s.auth;
        out!("auth.second_factor = \"{}\"", factor_name(au.second_factor));
        out!("auth.require_second_factor = {}", au.require_second_factor);
        out!(
            "auth.question_choice = \"{}\"",
            choice_name(au.question_choice)
        );
        out!("auth.phone_timeout_s = {}", au.phone_timeout_s);
        out!("auth.phone_poll_ms = {}", au.phone_poll_ms);
        out!("auth.fail_delay_ms = {}", au.fail_delay_ms);
        out!("auth.show_reasons = {}", au.show_reasons);
        let pr = &s.prompts;
        out!("prompts.password = {}", quoted(&pr.password));
        out!("prompts.question = {}", quoted(&pr.question));
        if let Some(q) = first.filter(|_| pr.question.contains("{question}")) {
            out!(
                "#   the first question reads {}",
                quoted(&printable(&pr.question.replace("{question}", &q.text)))
            );
        }
        out!("prompts.code = {}", quoted(&pr.code));
        out!("prompts.info = {}", pr.info);
        out!("prompts.phone_confirm = {}", pr.phone_confirm);
    }
}

// ---------------------------------------------------------------------------------------------
// test-login

/// The terminal conversation: prompts on stderr (echo off on a terminal for echo-off prompts),
/// answers from stdin, info messages on stdout, error messages on stderr — as libpam_misc's
/// `misc_conv` does.
struct Terminal;

impl crate::pam::ClientConversation for Terminal {
    fn prompt(&mut self, text: &str, echo: bool) -> Option<Vec<u8>> {
        // Echo goes off before the prompt shows, so nothing typed after it is echoed.
        let tty = crate::pam::isatty(0);
        let guard = if !echo && tty {
            crate::pam::echo_off(0)
        } else {
            None
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "{}", printable(text));
        let _ = e.flush();
        drop(e);
        let mut line = Vec::new();
        let read = std::io::stdin().lock().read_until(b'\n', &mut line);
        drop(guard);
        if !echo && !tty {
            // Not a terminal: nothing was echoed, end the prompt's line.
            err!("");
        }
        match read {
            Ok(0) | Err(_) => {
                crate::secret::wipe(&mut line);
                None
            }
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                Some(line)
            }
        }
    }

    fn message(&mut self, text: &str, error: bool) {
        if error {
            err!("{}", printable(text));
        } else {
            out!("{}", printable(text));
        }
    }
}

/// Linux-PAM's name for a return code.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "PAM_SUCCESS",
        "PAM_OPEN_ERR",
        "PAM_SYMBOL_ERR",
        "PAM_SERVICE_ERR",
        "PAM_SYSTEM_ERR",
        "PAM_BUF_ERR",
        "PAM_PERM_DENIED",
        "PAM_AUTH_ERR",
        "PAM_CRED_INSUFFICIENT",
        "PAM_AUTHINFO_UNAVAIL",
        "PAM_USER_UNKNOWN",
        "PAM_MAXTRIES",
        "PAM_NEW_AUTHTOK_REQD",
        "PAM_ACCT_EXPIRED",
        "PAM_SESSION_ERR",
        "PAM_CRED_UNAVAIL",
        "PAM_CRED_EXPIRED",
        "PAM_CRED_ERR",
        "PAM_NO_MODULE_DATA",
        "PAM_CONV_ERR",
        "PAM_AUTHTOK_ERR",
        "PAM_AUTHTOK_RECOVERY_ERR",
        "PAM_AUTHTOK_LOCK_BUSY",
        "PAM_AUTHTOK_DISABLE_AGING",
        "PAM_TRY_AGAIN",
        "PAM_IGNORE",
        "PAM_ABORT",
        "PAM_AUTHTOK_EXPIRED",
        "PAM_MODULE_UNKNOWN",
        "PAM_BAD_ITEM",
        "PAM_CONV_AGAIN",
        "PAM_INCOMPLETE",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("PAM_(unknown)")
}

/// A private directory holding one stack file, removed on drop.
struct StackDir(PathBuf);

impl StackDir {
    fn create(service: &str, text: &str) -> Result<StackDir, Failure> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "pam-portal-test-login.{}.{nanos:x}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                problem(format!(
                    "cannot create {}: {e} (set TMPDIR to a writable directory)",
                    dir.display()
                ))
            })?;
        let guard = StackDir(dir);
        std::fs::write(guard.0.join(service), text).map_err(|e| {
            problem(format!(
                "cannot write the test stack in {}: {e}",
                guard.0.display()
            ))
        })?;
        Ok(guard)
    }
}

impl Drop for StackDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn test_login(p: &Parsed) -> Result<i32, Failure> {
    let Some(user) = p.user.clone() else {
        return Err(Failure::Usage("test-login needs --user NAME".into()));
    };
    let service = p
        .service
        .clone()
        .unwrap_or_else(|| "pam-portal".to_string());
    if service.contains('/') || service.starts_with('.') {
        return Err(Failure::Usage(format!(
            "{service:?} is not a PAM service name"
        )));
    }
    if let Some(r) = &p.rhost {
        if access::parse_rhost(Some(r)).is_none() {
            err!("pam-portal: warning: {r:?} is not an IP address: the module treats it as no address");
        }
    }
    // The stack: the module alone (the default), or the system's own stack for the service.
    let stack = if p.system_stack {
        if p.config.is_some() || p.module.is_some() || p.debug {
            return Err(Failure::Usage(
                "--system-stack runs /etc/pam.d/SERVICE as it is: --config, --module and --debug do not go with it".into(),
            ));
        }
        if p.service.is_none() {
            return Err(Failure::Usage("--system-stack needs --service NAME".into()));
        }
        None
    } else {
        let config = p.config_path();
        // A broken file would only show as PAM_SERVICE_ERR: name the problem here.
        Config::load(&config)
            .map_err(|e| problem(format!("{e} (fix it, then run `pam-portal check`)")))?;
        let module = match &p.module {
            Some(m) if m.is_file() => m.clone(),
            Some(m) => {
                return Err(problem(format!(
                    "{} does not exist: give --module the path of pam_portal.so (e.g. target/release/libpam_portal.so)",
                    m.display()
                )))
            }
            None => installed_module().ok_or_else(|| {
                problem(format!(
                    "pam_portal.so is not installed in {}: install the package or give --module PATH",
                    module_dirs()
                        .first()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                ))
            })?,
        };
        let module = std::fs::canonicalize(&module).unwrap_or(module);
        let config = std::fs::canonicalize(&config).unwrap_or(config);
        for (what, path) in [("module", &module), ("configuration", &config)] {
            let s = path.to_string_lossy();
            if s.chars().any(|c| c.is_whitespace() || c == '[' || c == ']') {
                return Err(problem(format!(
                    "the {what} path {s:?} contains a blank or a bracket, which a PAM stack line cannot hold: move it"
                )));
            }
        }
        let args = format!(
            "{} config={}{}",
            module.display(),
            config.display(),
            if p.debug { " debug" } else { "" }
        );
        let text = format!(
            "# written by pam-portal test-login\nauth     required  {args}\naccount  required  {args}\n"
        );
        Some(StackDir::create(&service, &text)?)
    };
    let mut client = crate::pam::PamClient::start(
        &service,
        &user,
        stack.as_ref().map(|s| s.0.as_path()),
        Box::new(Terminal),
    )
    .map_err(|(_, m)| problem(format!("{m} (is libpam installed?)")))?;
    if let Some(r) = &p.rhost {
        client.set_rhost(r);
    }
    if crate::pam::isatty(0) {
        client.set_tty("pam-portal");
    }
    let describe = |code: i32, c: &crate::pam::PamClient| {
        format!("{} ({})", code_name(code), c.strerror(code))
    };
    let auth = client.authenticate(0);
    out!("pam_authenticate: {}", describe(auth, &client));
    let mut verdict = auth;
    if auth == 0 && !p.no_account {
        let acct = client.acct_mgmt(0);
        out!("pam_acct_mgmt: {}", describe(acct, &client));
        verdict = acct;
    }
    drop(client);
    drop(stack);
    let from = p
        .rhost
        .as_deref()
        .map(|r| format!(" from {}", printable(r)))
        .unwrap_or_default();
    if verdict == 0 {
        out!(
            "test-login: {} on service {service}{from}: accepted",
            printable(&user)
        );
        Ok(EXIT_OK)
    } else {
        out!(
            "test-login: {} on service {service}{from}: refused ({})",
            printable(&user),
            code_name(verdict)
        );
        Ok(EXIT_PROBLEM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(main(args(&[])), EXIT_USAGE);
        assert_eq!(main(args(&["frobnicate"])), EXIT_USAGE);
        assert_eq!(main(args(&["status", "--json", "--json"])), EXIT_USAGE);
        assert_eq!(main(args(&["reset", "--json"])), EXIT_USAGE);
        assert_eq!(main(args(&["check", "--user", "x"])), EXIT_USAGE);
        assert_eq!(main(args(&["test-login"])), EXIT_USAGE);
        assert_eq!(main(args(&["status", "--config"])), EXIT_USAGE);
        assert_eq!(main(args(&["--help"])), EXIT_OK);
    }

    #[test]
    fn options_take_inline_values() {
        let p = parse(args(&["--config=/x.toml", "status", "--user=al=ice"])).ok();
        let p = p.unwrap();
        assert_eq!(p.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        assert_eq!(p.user.as_deref(), Some("al=ice"));
        assert!(parse(args(&["status", "--json=yes"])).is_err());
    }

    #[test]
    fn reset_line_names_what_and_who() {
        let t = Tally {
            failures: 10,
            locked_for: Some(1700),
            ..Tally::default()
        };
        let l = reset_line(&Key::User(b"a b".to_vec()), &t, "bob", 0);
        assert_eq!(
            l,
            "result=reset user=a\\x20b failures=10 locked=yes lock_left_s=1700 by=bob uid=0"
        );
        let l = reset_line(
            &Key::Ip("10.0.0.1".to_string()),
            &Tally::default(),
            "x\ny",
            7,
        );
        assert_eq!(
            l,
            "result=reset ip=10.0.0.1 failures=0 locked=no by=x\\x0ay uid=7"
        );
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(0), "PAM_SUCCESS");
        assert_eq!(code_name(7), "PAM_AUTH_ERR");
        assert_eq!(code_name(25), "PAM_IGNORE");
        assert_eq!(code_name(-1), "PAM_(unknown)");
    }
}
