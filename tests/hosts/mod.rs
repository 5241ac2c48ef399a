//! Shared by `tests/hosts_sshd.rs`, `tests/hosts_openvpn.rs` and `tests/hosts_ocserv.rs`: the
//! real hosts, deployed as `docs/DEPLOY.md` says, each in throwaway namespaces.
//!
//! * [`in_netns`] runs a test body on a thread in a new network namespace (loopback up, extra
//!   loopback addresses as asked): portal-sim, the host and the client all start from that
//!   thread, so they share the namespace, any port is free and client addresses are ours to
//!   pick. The namespace ends with the last process in it.
//! * [`Sandbox`] starts the host in a private mount namespace where `/etc`, the PAM module
//!   directory and `/dev` are overlays on the real ones. The test writes the upper layers
//!   before the host starts: `/etc/pam.d/<service>` (from `conf/pam.d/` unchanged),
//!   `/etc/security/pam_portal.toml`, the host's configuration, throwaway users in
//!   `/etc/passwd`, `pam_portal.so` (a link to the module under test) and `/dev/log` (a link to
//!   a datagram socket this process reads). So the host finds everything where an operator
//!   installs it, the module's `pam_syslog` lines reach the test through the real syslog(3)
//!   path, and nothing outside the test's own directory is written: no file in the real
//!   `/etc/pam.d`, no `/dev/log` for anyone else. The directory is removed afterwards.
//! * [`HostProc`] stops a host by its pid: SIGTERM then SIGKILL to its process group, then
//!   SIGKILL to any process left in its private mount namespace (children that left the
//!   group), also when the test fails.
//!
//! Set `PAM_PORTAL_KEEP_HOST_TMP=1` to keep the directories (`/tmp/pp-host.*`) for a post mortem,
//! `PAM_PORTAL_HOST_MODULE=PATH` to run the hosts with another build of the module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pam_testkit::toml;
use pam_testkit::{module_path, parse_kv, system_module, workspace_root, Sim};

/// The Debian packages the host tests need (`scripts/deps/hosts.txt`).
pub const DEPS: &str = "scripts/deps/hosts.txt (bash scripts/install-deps.sh)";

// ---------------------------------------------------------------------------------------------
// Preconditions

/// Fails the test with a clear message when `path` is missing.
pub fn require_file(path: &str, package: &str) {
    if !Path::new(path).exists() {
        panic!("{path} is missing: install the Debian package {package} ({DEPS})");
    }
}

/// Fails the test unless we are root (namespaces, overlay mounts, hosts that drop privileges).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the host tests start sshd, OpenVPN and ocserv in namespaces: they must run as root"
        );
    }
}

/// `/usr/bin/python3` with paramiko (Debian's python3-paramiko).
pub fn require_paramiko() {
    require_file("/usr/bin/python3", "python3");
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import paramiko"])
        .output()
        .expect("run /usr/bin/python3");
    if !out.status.success() {
        panic!(
            "/usr/bin/python3 cannot import paramiko: install python3-paramiko ({DEPS})\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// conf/

/// `conf/<rel>` of the workspace.
pub fn conf_path(rel: &str) -> PathBuf {
    workspace_root().join("conf").join(rel)
}

/// The text of `conf/<rel>`.
pub fn conf_text(rel: &str) -> String {
    let p = conf_path(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// `conf/pam_portal.toml`, parsed.
pub fn conf_toml() -> toml::Table {
    let text = conf_text("pam_portal.toml");
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("conf/pam_portal.toml does not parse: {e}"))
}

/// A key of the example configuration as a PAM service sees it: `[services.SERVICE] TABLE.KEY`,
/// else `[TABLE] KEY`.
pub fn conf_setting(service: &str, table: &str, key: &str) -> Option<toml::Value> {
    let c = conf_toml();
    c.get("services")
        .and_then(|s| s.get(service))
        .and_then(|s| s.get(table))
        .and_then(|t| t.get(key))
        .or_else(|| c.get(table).and_then(|t| t.get(key)))
        .cloned()
}

/// The effective `phone_timeout_s` of SERVICE in the example configuration (module default 45).
pub fn conf_phone_timeout_s(service: &str) -> u64 {
    conf_setting(service, "auth", "phone_timeout_s")
        .and_then(|v| v.as_integer())
        .map_or(45, |v| v as u64)
}

/// `[lockout] ip.max_failures` of the example configuration (module default 10).
pub fn conf_ip_max_failures() -> usize {
    conf_toml()
        .get("lockout")
        .and_then(|l| l.get("ip"))
        .and_then(|i| i.get("max_failures"))
        .and_then(|v| v.as_integer())
        .map_or(10, |v| v as usize)
}

/// The module configuration a test host runs with: `conf/pam_portal.toml` with its `[portal]`
/// pointed at `sim` (API key file `/etc/security/pam_portal.key`, as in the example), its
/// `[lockout] dir` at `lockdir`, `fail_delay_ms = 0` and no `[access]` lists; `[auth]`,
/// `[prompts]`, the lockout policies and every `[services.NAME]` profile as they are in conf/.
pub fn module_config(sim: &Sim, lockdir: &Path) -> String {
    let mut c = conf_toml();
    let mut portal = toml::Table::new();
    portal.insert("url".into(), sim.url.clone().into());
    portal.insert("api_user".into(), sim.api_user.clone().into());
    portal.insert(
        "api_key_file".into(),
        "/etc/security/pam_portal.key".to_string().into(),
    );
    if let Some(ca) = &sim.ca_file {
        portal.insert("ca_file".into(), ca.to_string_lossy().into_owned().into());
    }
    c.insert("portal".into(), toml::Value::Table(portal));
    c.remove("access");
    let lockout = c
        .entry("lockout")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = lockout.as_table_mut() {
        t.insert("dir".into(), lockdir.to_string_lossy().into_owned().into());
    }
    let auth = c
        .entry("auth")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = auth.as_table_mut() {
        t.insert("fail_delay_ms".into(), 0.into());
    }
    if !c.contains_key("services") {
        panic!("conf/pam_portal.toml has no [services.NAME] profiles");
    }
    toml::to_string(&c).expect("serialize the module configuration")
}

/// How a host's configuration file writes a directive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `name value...` (OpenVPN).
    Space,
    /// `name = value` (ocserv).
    Equals,
}

fn directive_name(line: &str, syntax: Syntax) -> Option<String> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
        return None;
    }
    let name = match syntax {
        Syntax::Space => t.split_whitespace().next()?,
        Syntax::Equals => t.split('=').next()?.trim(),
    };
    Some(name.to_string())
}

/// The values of directive `name` in a configuration text (everything after the name).
pub fn directive_values(text: &str, syntax: Syntax, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| directive_name(l, syntax).as_deref() == Some(name))
        .map(|l| {
            let t = l.trim_start();
            match syntax {
                Syntax::Space => t[name.len()..].trim().to_string(),
                Syntax::Equals => t.split_once('=').map_or("", |x| x.1).trim().to_string(),
            }
        })
        .collect()
}

/// Rewrites a host configuration: each directive named in `set` loses its lines, and the given
/// value (if any) takes the place of its first occurrence (or is appended). Every other line
/// is kept as it is.
pub fn override_directives(text: &str, syntax: Syntax, set: &[(&str, Option<String>)]) -> String {
    let mut out = String::new();
    let mut done: Vec<&str> = Vec::new();
    let render = |name: &str, v: &str| match syntax {
        Syntax::Space => format!("{name} {v}"),
        Syntax::Equals => format!("{name} = {v}"),
    };
    for line in text.lines() {
        let name = directive_name(line, syntax);
        if let Some((n, v)) = set.iter().find(|(n, _)| Some(*n) == name.as_deref()) {
            if !done.contains(n) {
                done.push(n);
                if let Some(v) = v {
                    out.push_str(&render(n, v));
                    out.push('\n');
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for (n, v) in set {
        if !done.contains(n) {
            if let Some(v) = v {
                out.push_str(&render(n, v));
                out.push('\n');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Network namespace

/// Runs `body` on a new thread in a new network namespace with `lo` up and each of `addrs`
/// (e.g. `127.0.0.9`) added to it as a /32. Every process `body` starts (portal-sim, the host,
/// the client) is in that namespace. A panic in `body` is the caller's panic.
pub fn in_netns<F>(addrs: &[&str], body: F)
where
    F: FnOnce() + Send + 'static,
{
    require_root();
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let name = thread::current()
        .name()
        .unwrap_or("host-test")
        .chars()
        .take(60)
        .collect::<String>();
    let h = thread::Builder::new()
        .name(format!("{name}/netns"))
        .spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) only moves this thread into a new namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                panic!(
                    "unshare(CLONE_NEWNET): {} (root and a kernel with network namespaces needed)",
                    std::io::Error::last_os_error()
                );
            }
            run_ok(Command::new("ip").args(["link", "set", "lo", "up"]));
            for a in &addrs {
                run_ok(Command::new("ip").args(["addr", "add", &format!("{a}/32"), "dev", "lo"]));
            }
            body();
        })
        .expect("spawn the namespace thread");
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}

/// Runs a command to completion and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Scratch directory

/// A fresh directory `/tmp/pp-host.<name>.<pid>.<n>` (mode 0755), removed on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = PathBuf::from(format!(
            "/tmp/pp-host.{name}.{}.{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("PAM_PORTAL_KEEP_HOST_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `data` to `path` (parents created) with `mode`.
pub fn write(path: &Path, data: &str, mode: u32) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// Syslog receiver

/// One line the module logged through `pam_syslog`: `pam_portal(SERVICE:HOOK): TEXT`.
#[derive(Debug, Clone)]
pub struct ModLine {
    pub service: String,
    pub hook: String,
    pub text: String,
    /// The whole datagram (`<PRI>timestamp ident[pid]: pam_portal(...): ...`).
    pub raw: String,
}

impl ModLine {
    pub fn fields(&self) -> BTreeMap<String, String> {
        parse_kv(&self.text)
    }
    pub fn get(&self, k: &str) -> Option<String> {
        self.fields().remove(k)
    }
    pub fn is(&self, k: &str, v: &str) -> bool {
        self.get(k).as_deref() == Some(v)
    }
    /// A decision line (`result=... reason=...`).
    pub fn is_decision(&self) -> bool {
        let f = self.fields();
        f.contains_key("result") && f.contains_key("reason")
    }
}

fn parse_mod_line(raw: &str) -> Option<ModLine> {
    let i = raw.find("pam_portal(")?;
    let rest = &raw[i + "pam_portal(".len()..];
    let close = rest.find("): ")?;
    let (service, hook) = rest[..close].split_once(':')?;
    Some(ModLine {
        service: service.to_string(),
        hook: hook.to_string(),
        text: rest[close + 3..].trim_end().to_string(),
        raw: raw.to_string(),
    })
}

/// A unix datagram socket that receives syslog(3) lines (the host's `/dev/log` links to it).
pub struct SysLog {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl SysLog {
    pub fn bind(path: &Path) -> SysLog {
        let _ = fs::remove_file(path);
        let sock = UnixDatagram::bind(path)
            .unwrap_or_else(|e| panic!("bind the syslog socket {}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let lines = Arc::clone(&lines);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            let s = String::from_utf8_lossy(&buf[..n])
                                .trim_end_matches(['\n', '\0'])
                                .to_string();
                            lines.lock().unwrap().push(s);
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            })
        };
        SysLog {
            lines,
            stop,
            reader: Some(reader),
        }
    }

    /// Every datagram received so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The module's lines so far.
    pub fn module_lines(&self) -> Vec<ModLine> {
        self.all()
            .iter()
            .filter_map(|l| parse_mod_line(l))
            .collect()
    }

    /// The module's decision lines so far.
    pub fn decisions(&self) -> Vec<ModLine> {
        self.module_lines()
            .into_iter()
            .filter(ModLine::is_decision)
            .collect()
    }

    /// Waits up to `timeout` for the `n`-th (0-based) decision line matching `pred`.
    pub fn wait_decision(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&ModLine) -> bool,
    ) -> Option<ModLine> {
        let end = Instant::now() + timeout;
        loop {
            let m: Vec<ModLine> = self.decisions().into_iter().filter(|l| pred(l)).collect();
            if m.len() > n {
                return Some(m[n].clone());
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SysLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sandbox and host processes

/// The module the hosts load: the one the test suite built (`target/<profile>/libpam_portal.so`),
/// or `$PAM_PORTAL_HOST_MODULE` to try another build (e.g. the release one) by hand.
pub fn host_module() -> PathBuf {
    match std::env::var_os("PAM_PORTAL_HOST_MODULE") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            let p = if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            };
            assert!(
                p.exists(),
                "PAM_PORTAL_HOST_MODULE={} does not exist",
                p.display()
            );
            p
        }
        _ => module_path(),
    }
}

/// The directory holding the stock PAM modules (the real path: it gets an overlay).
pub fn pam_module_dir() -> PathBuf {
    let unix = system_module("pam_unix.so");
    let dir = unix.parent().expect("pam_unix.so has a directory");
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The mount script: three overlays, then the host. `$1` = sandbox root, `$2` = the PAM module
/// directory, the rest = the host's command line.
const MOUNT_SCRIPT: &str = r#"set -e
root=$1; sec=$2; shift 2
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$root/etc,workdir=$root/work/etc" /etc
mount -t overlay overlay -o "lowerdir=$sec,upperdir=$root/security,workdir=$root/work/security" "$sec"
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$root/dev,workdir=$root/work/dev" /dev
exec "$@"
"#;

/// A user of the sandbox's `/etc/passwd`.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
}

/// One host's private view of the system (see the module documentation).
pub struct Sandbox {
    pub log: SysLog,
    dir: Scratch,
    users: Vec<User>,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        require_root();
        let dir = Scratch::new(name);
        let root = dir.path().to_path_buf();
        for d in [
            "etc/pam.d",
            "etc/security",
            "security",
            "dev",
            "work/etc",
            "work/security",
            "work/dev",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let sock = root.join("log.sock");
        let log = SysLog::bind(&sock);
        symlink(&sock, root.join("dev/log")).unwrap();
        // The module under test, where `pam_portal.so` in a stack line finds it.
        symlink(host_module(), root.join("security/pam_portal.so")).unwrap();
        Sandbox {
            log,
            dir,
            users: Vec::new(),
        }
    }

    /// The sandbox's own directory (real path, visible to the test and the host).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `/etc/<rel>` as the host will see it.
    pub fn etc(&self, rel: &str, text: &str, mode: u32) {
        write(&self.root().join("etc").join(rel), text, mode);
    }

    /// Installs `conf/pam.d/<service>` unchanged as `/etc/pam.d/<service>`; returns its text.
    pub fn install_conf_stack(&self, service: &str) -> String {
        let text = conf_text(&format!("pam.d/{service}"));
        if !text.lines().any(|l| {
            let l = l.trim();
            !l.starts_with('#') && l.contains("pam_portal.so")
        }) {
            panic!("conf/pam.d/{service} has no pam_portal.so line");
        }
        self.etc(&format!("pam.d/{service}"), &text, 0o644);
        text
    }

    /// Writes `/etc/security/pam_portal.toml` ([`module_config`]) and the API key file; returns
    /// the configuration text.
    pub fn install_module_config(&self, sim: &Sim) -> String {
        let text = module_config(sim, &self.lockdir());
        self.etc("security/pam_portal.toml", &text, 0o600);
        self.etc(
            "security/pam_portal.key",
            &format!("{}\n", sim.api_key),
            0o600,
        );
        text
    }

    /// The module's lockout directory (real path).
    pub fn lockdir(&self) -> PathBuf {
        self.root().join("lockout")
    }

    /// Adds local users (uid 64001, 64002, ...) to the sandbox's passwd, shadow and group (copies
    /// of the real files), with a home directory in the sandbox each. Their password field
    /// is `*`: only PAM (or a key) can log them in.
    pub fn add_users(&mut self, names: &[&str]) {
        let mut passwd = fs::read_to_string("/etc/passwd").unwrap();
        let mut shadow = fs::read_to_string("/etc/shadow").unwrap_or_default();
        let mut group = fs::read_to_string("/etc/group").unwrap();
        for s in [&mut passwd, &mut shadow, &mut group] {
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
        }
        for n in names {
            if self.users.iter().any(|u| u.name == *n) {
                continue;
            }
            let uid = 64001 + self.users.len() as u32;
            let home = self.root().join("home").join(n);
            fs::create_dir_all(&home).unwrap();
            fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
            chown(&home, uid, uid);
            self.users.push(User {
                name: n.to_string(),
                uid,
                home: home.clone(),
            });
        }
        for u in &self.users {
            passwd.push_str(&format!(
                "{n}:x:{uid}:{uid}:pam_portal test user:{h}:/bin/sh\n",
                n = u.name,
                uid = u.uid,
                h = u.home.display()
            ));
            shadow.push_str(&format!("{}:*:19000:0:99999:7:::\n", u.name));
            group.push_str(&format!("{n}:x:{uid}:\n", n = u.name, uid = u.uid));
        }
        self.etc("passwd", &passwd, 0o644);
        self.etc("shadow", &shadow, 0o640);
        self.etc("group", &group, 0o644);
    }

    pub fn user(&self, name: &str) -> User {
        self.users
            .iter()
            .find(|u| u.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no sandbox user {name}"))
    }

    /// Installs `~NAME/.ssh/authorized_keys` with `pubkey` (owned by the user, as sshd's
    /// StrictModes wants).
    pub fn authorize_key(&self, name: &str, pubkey: &str) {
        let u = self.user(name);
        let ssh = u.home.join(".ssh");
        fs::create_dir_all(&ssh).unwrap();
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).unwrap();
        chown(&ssh, u.uid, u.uid);
        let f = ssh.join("authorized_keys");
        write(&f, pubkey, 0o600);
        chown(&f, u.uid, u.uid);
    }

    /// Starts `program args` in the sandbox (a private mount namespace with the overlays), in
    /// its own process group, stdout and stderr to `<root>/<name>.log`.
    pub fn spawn(&self, name: &str, program: &str, args: &[String]) -> HostProc {
        let log = self.root().join(format!("{name}.log"));
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            MOUNT_SCRIPT,
            "sh",
        ])
        .arg(self.root())
        .arg(pam_module_dir())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
        // SAFETY: prctl in the child between fork and exec: async-signal-safe, no allocation.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} in the sandbox: {e}"));
        HostProc {
            name: name.to_string(),
            child,
            log,
            mntns: None,
            stopped: false,
        }
    }
}

/// A host process started by [`Sandbox::spawn`]; stopped (by pid) on drop.
pub struct HostProc {
    pub name: String,
    child: Child,
    log: PathBuf,
    /// The host's private mount namespace: its (device, inode) and an open handle on it. The
    /// handle pins the namespace, so its inode number cannot be given to another test's new
    /// namespace (the kernel reuses the lowest free one) while `stop` kills what is left in it.
    mntns: Option<((u64, u64), File)>,
    stopped: bool,
}

fn ns_id(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

fn mnt_ns(pid: &str) -> Option<(u64, u64)> {
    fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|m| ns_id(&m))
}

impl HostProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the host printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the host's output contains `needle`; panics (with the output) if the host
    /// exits or `timeout` passes first. Records the host's mount namespace.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                self.note_ns();
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "{} exited ({st}) before printing {needle:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            if Instant::now() >= end {
                panic!(
                    "{} did not print {needle:?} within {timeout:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the host's main process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn note_ns(&mut self) {
        if self.mntns.is_none() {
            let own = mnt_ns("self");
            // Opened first, identified through the open handle: the namespace it names is
            // pinned from here on, whatever the host does next.
            let Ok(handle) = File::open(format!("/proc/{}/ns/mnt", self.child.id())) else {
                return;
            };
            let Ok(meta) = handle.metadata() else {
                return;
            };
            let ns = ns_id(&meta);
            if Some(ns) != own {
                self.mntns = Some((ns, handle));
            }
        }
    }

    /// SIGTERM to the process group, SIGKILL after 3 s, then SIGKILL to whatever is left in the
    /// host's private mount namespace.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.note_ns();
        let pgid = self.child.id() as i32;
        // SAFETY: signals to the process group this test created (pgid = the child's pid).
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; harmless if the group is gone.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((ns, _pinned)) = self.mntns.take() {
            for _ in 0..100 {
                let left = pids_in_mnt_ns(ns);
                if left.is_empty() {
                    break;
                }
                for pid in left {
                    // SAFETY: a process in this test's own private mount namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn pids_in_mnt_ns(ns: (u64, u64)) -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| mnt_ns(&pid.to_string()) == Some(ns))
        .collect()
}

impl Drop for HostProc {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A throwaway CA and a server certificate (EC P-256) made with the openssl command.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `pin-sha256:BASE64` of the server's public key (openconnect `--servercert`).
    pub pin: String,
}

pub fn make_pki(dir: &Path) -> Pki {
    require_file("/usr/bin/openssl", "openssl");
    fs::create_dir_all(dir).unwrap();
    let p = |n: &str| dir.join(n);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.crt"))
            .args(["-days", "2", "-subj", "/CN=pam_portal host test CA"]),
    );
    run_ok(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr"))
            .args(["-subj", "/CN=vpn.test"]),
    );
    write(
        &p("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:vpn.test,IP:127.0.0.1\n",
        0o644,
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.crt"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .args(["-CAcreateserial", "-days", "2", "-out"])
            .arg(p("server.crt"))
            .arg("-extfile")
            .arg(p("ext.cnf")),
    );
    // Readable by hosts that drop privileges before reading them again.
    for f in ["ca.crt", "server.crt", "server.key"] {
        fs::set_permissions(p(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let pin = run_ok(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl base64 -A",
        p("server.crt").display()
    )));
    Pki {
        ca: p("ca.crt"),
        cert: p("server.crt"),
        key: p("server.key"),
        pin: format!("pin-sha256:{}", pin.trim()),
    }
}

// ---------------------------------------------------------------------------------------------
// Misc

/// Base64 (standard alphabet, padded).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How many API calls portal-sim has received so far.
pub fn portal_calls(sim: &Sim) -> usize {
    sim.calls().len()
}

/// The module's decision number `n` (0-based) for `user` and `hook`, waited for (10 s); fails
/// the test with [`diagnostics`] when it does not come.
pub fn user_decision(sb: &Sandbox, host: &HostProc, user: &str, hook: &str, n: usize) -> ModLine {
    sb.log
        .wait_decision(n, Duration::from_secs(10), |l| {
            l.is("user", user) && l.hook == hook
        })
        .unwrap_or_else(|| {
            panic!(
                "no decision #{n} for {user} ({hook}):\n{}",
                diagnostics(sb, host)
            )
        })
}

/// Asserts each `key=value` of `want` in `l`, and that `l` came from PAM service `service`.
pub fn check_fields(
    l: &ModLine,
    want: &[(&str, &str)],
    service: &str,
    sb: &Sandbox,
    host: &HostProc,
) {
    for (k, v) in want {
        assert_eq!(
            l.get(k).as_deref(),
            Some(*v),
            "{k} in {:?}\n{}",
            l.text,
            diagnostics(sb, host)
        );
    }
    assert_eq!(l.service, service, "{}", l.raw);
}

/// A summary for failure messages: the module's lines and the host's output.
pub fn diagnostics(sb: &Sandbox, host: &HostProc) -> String {
    let mut s = String::from("--- syslog lines ---\n");
    for l in sb.log.all() {
        s.push_str(&l);
        s.push('\n');
    }
    let out = host.output();
    let tail: Vec<&str> = out.lines().rev().take(80).collect();
    s.push_str(&format!(
        "--- {} output (last {} lines) ---\n",
        host.name,
        tail.len()
    ));
    for l in tail.into_iter().rev() {
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[test]
fn base64_known_values() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"Alice-Pass1!"), "QWxpY2UtUGFzczEh");
}

#[test]
fn overrides_keep_other_lines() {
    let t = "# c\nport 1194\nca a.crt\nplugin x \"y z\"\n";
    let o = override_directives(
        t,
        Syntax::Space,
        &[
            ("port", Some("5000".into())),
            ("ca", None),
            ("local", Some("127.0.0.1".into())),
        ],
    );
    assert_eq!(o, "# c\nport 5000\nplugin x \"y z\"\nlocal 127.0.0.1\n");
    let e = "auth = \"pam\"\ntcp-port = 443\n";
    assert_eq!(
        directive_values(e, Syntax::Equals, "auth"),
        vec!["\"pam\"".to_string()]
    );
}

// ---------------------------------------------------------------------------------------------
// docs/DEPLOY.md

/// The code blocks of `docs/DEPLOY.md` whose first line is `# conf/<file>`, as (file, lines).
fn guide_quotes() -> Vec<(String, Vec<String>)> {
    let p = workspace_root().join("docs/DEPLOY.md");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            match block.take() {
                Some(b) => {
                    if let Some(file) = b.first().and_then(|f| f.strip_prefix("# conf/")) {
                        let body = b[1..]
                            .iter()
                            .map(|l| l.trim().to_string())
                            .filter(|l| !l.is_empty())
                            .collect();
                        out.push((file.to_string(), body));
                    }
                }
                None => block = Some(Vec::new()),
            }
        } else if let Some(b) = block.as_mut() {
            b.push(line.to_string());
        }
    }
    out
}

/// Checks that every line `docs/DEPLOY.md` quotes from `conf/<file>` (for the given files) is a
/// line of that file, and that the guide quotes the whole `[services.SERVICE]` profile.
pub fn check_guide_quotes(files: &[&str], service: &str) {
    let quotes = guide_quotes();
    for f in files {
        let blocks: Vec<&Vec<String>> = quotes
            .iter()
            .filter(|(file, _)| file == f)
            .map(|(_, b)| b)
            .collect();
        assert!(
            !blocks.is_empty(),
            "docs/DEPLOY.md quotes nothing from conf/{f}"
        );
        let conf: Vec<String> = conf_text(f).lines().map(|l| l.trim().to_string()).collect();
        for b in &blocks {
            for l in b.iter() {
                assert!(
                    conf.contains(l),
                    "docs/DEPLOY.md quotes {l:?} from conf/{f}, which has no such line"
                );
            }
        }
    }
    // The profile, complete: every setting line of [services.SERVICE] is in the guide.
    let header = format!("[services.{service}]");
    let profile: Vec<String> = conf_text("pam_portal.toml")
        .lines()
        .map(|l| l.trim().to_string())
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        !profile.is_empty(),
        "conf/pam_portal.toml has no {header} settings"
    );
    let quoted: Vec<&String> = quotes
        .iter()
        .filter(|(f, b)| f == "pam_portal.toml" && b.contains(&header))
        .flat_map(|(_, b)| b.iter())
        .collect();
    for l in &profile {
        assert!(
            quoted.contains(&l),
            "docs/DEPLOY.md does not quote {l:?} of {header} (conf/pam_portal.toml)"
        );
    }
}
