//! The front: what `pam_portal.so` decides on its own, before the rest of the module is loaded.
//!
//! `pam_portal.so` (the `module/` crate) is this file's hooks and the little they reach: what
//! SPEC §4 decides before any portal call, and so needs no TOML parser. Steps 2–3: a client the
//! global lists refuse; a locked address, username or phone factor (no prompt). Step 4: the
//! password prompt (or `PAM_AUTHTOK` under the first-pass options), no answer, and an empty or
//! over-long password, which is counted. Every other login, with the password the front asked
//! for, and `acct_mgmt`, is handed to the full module, `libpam_portal_full.so` (the `full/`
//! crate: [`crate::PamPortal`]), loaded from the front's own directory on first use: its first
//! step from there is the portal, whose round trips dwarf loading it.
//!
//! The front does not parse the configuration. The full module, once it has loaded and
//! validated a file, writes a **digest** of what the front needs into the lockout
//! directory, stamped with the length and hash of the file's text ([`Source`]). The front reads
//! the file (checking owner and mode as the full module does), and uses the digest only if it
//! was made from exactly that text by this version; anything else (no digest, a stale, damaged
//! or untrusted one, an edited file, the Redis backend, `debug`, a bad argument, an unreadable
//! store) hands the login over, and the full module decides and reports as it always did. So
//! the front can refuse only what the full module would refuse, with the same code, message
//! and log line (both call [`crate::login::early_refusal`], [`crate::login::password`],
//! [`crate::login::unusable_password`], [`crate::login::record_failure`] and
//! [`crate::audit::report`]).
//!
//! A login the front checked and handed over carries what it found and asked ([`Checked`],
//! under [`DATA_CHECKED`]): the full module takes the password instead of asking again, parses
//! the text instead of reading the file again, and if its parse gives the very digest the
//! front used, does not read the same lock records a second time (nor compare the digest file
//! again).
//!
//! Decided here (the contract is silent): a digest is trusted for the file's text alone; the
//! files the text names (the API key file, `ca_file`) are checked when a login goes on to the
//! portal, so a locked client is refused as locked even if, say, the key file has since gone.
#![allow(unsafe_code)] // the loader of the full module (`full()`, `forward()`)

use crate::access::{self, Cidr};
use crate::audit::{self, Who};
use crate::config::{self, AccessSettings, Backend, Config, LockoutSettings, Policy, Source};
use crate::decision::{Decision, Reason};
use crate::lockout::files::FileStore;
use crate::lockout::{self, Store};
use crate::login::{self, RealWorld, World};
use crate::pam::{LibPam, Pam, Priority, RawUser};
use crate::secret::Secret;
use crate::Args;
use pam_bindings::constants::{PamFlag, PamResultCode};
use pam_bindings::module::{PamHandle, PamHooks};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The full module's file, beside `pam_portal.so`.
pub const FULL_FILE_NAME: &str = "libpam_portal_full.so";
/// Its function naming the version it belongs to (`extern "C" fn() -> *const c_char`).
const VERSION_SYMBOL: &CStr = c"pam_portal_full_version";
/// The version both halves must share (digest and hand-over are one build's business).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

const MAGIC: &str = "pam_portal-front-digest 2";
const MAX_DIGEST_BYTES: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The digest: what the front needs from one configuration file.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub source: Source,
    pub version: String,
    /// `[lockout]` as the full module resolved it (`redis` is always `None`: no digest is
    /// written for that backend).
    pub lockout: LockoutSettings,
    /// The global lists of `[access]` (`users` is always empty: per-user policies come after
    /// the password, in the full module).
    pub access: AccessSettings,
    /// `[auth] fail_delay_ms` and `[prompts] password` for a service without a profile, and
    /// each `[services.NAME]`'s own.
    pub base: ForService,
    pub services: Vec<(String, ForService)>,
}

/// What the front needs of one service's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForService {
    pub fail_delay_ms: u64,
    pub password_prompt: String,
}

impl ForService {
    fn of(auth: &config::AuthSettings, prompts: &config::PromptSettings) -> ForService {
        ForService {
            fail_delay_ms: auth.fail_delay_ms,
            password_prompt: prompts.password.clone(),
        }
    }
}

impl Digest {
    /// The digest of a configuration read from a file (`Config::load`).
    pub fn of(c: &Config) -> Option<Digest> {
        let services = c
            .service_names()
            .into_iter()
            .map(|n| {
                let s = ForService::of(&c.auth_for(&n), &c.prompts_for(&n));
                (n, s)
            })
            .collect();
        Some(Digest {
            source: c.source?,
            version: env!("CARGO_PKG_VERSION").to_string(),
            lockout: LockoutSettings {
                redis: None,
                ..c.lockout.clone()
            },
            access: AccessSettings {
                allow: c.access.allow.clone(),
                deny: c.access.deny.clone(),
                users: Default::default(),
            },
            base: ForService::of(&c.auth_without_override(""), &c.prompts_without_override()),
            services,
        })
    }

    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let p = |t: &mut String, name: &str, p: &Policy| {
            let _ = writeln!(t, "{name} {} {} {}", p.max_failures, p.window_s, p.lock_s);
        };
        let _ = writeln!(t, "{MAGIC} {}", self.version);
        let s = &self.source;
        let _ = writeln!(
            t,
            "source {} {:016x} {}",
            s.len,
            s.hash,
            u8::from(s.secret_inline)
        );
        let l = &self.lockout;
        let backend = match l.backend {
            Backend::Files => "files",
            Backend::Redis => "redis",
        };
        let _ = writeln!(t, "backend {backend}");
        let _ = writeln!(t, "dir {}", lockout::hex(l.dir.as_os_str().as_bytes()));
        p(&mut t, "user", &l.user);
        p(&mut t, "ip", &l.ip);
        let _ = writeln!(t, "ipv6_prefix {}", l.ipv6_prefix);
        p(&mut t, "phone", &l.phone);
        for c in &self.access.allow {
            let _ = writeln!(t, "allow {c}");
        }
        for c in &self.access.deny {
            let _ = writeln!(t, "deny {c}");
        }
        let _ = writeln!(t, "fail_delay_ms {}", self.base.fail_delay_ms);
        let _ = writeln!(
            t,
            "password_prompt {}",
            lockout::hex(self.base.password_prompt.as_bytes())
        );
        for (name, s) in &self.services {
            let _ = writeln!(
                t,
                "service {} {} {}",
                lockout::hex(name.as_bytes()),
                s.fail_delay_ms,
                lockout::hex(s.password_prompt.as_bytes())
            );
        }
        t.push_str("end\n");
        t
    }

    /// The digest in `text`, or `None` for anything but a complete, well-formed one.
    pub fn parse(text: &str) -> Option<Digest> {
        if !text.ends_with("\nend\n") {
            return None; // cut short
        }
        let mut lines = text.lines();
        let version = lines.next()?.strip_prefix(MAGIC)?.strip_prefix(' ')?;
        let mut d = Digest {
            source: Source {
                len: 0,
                hash: 0,
                secret_inline: false,
            },
            version: version.to_string(),
            lockout: LockoutSettings {
                dir: PathBuf::new(),
                backend: Backend::Files,
                redis: None,
                user: config::DEFAULT_USER_POLICY,
                ip: config::DEFAULT_USER_POLICY,
                ipv6_prefix: 64,
                phone: config::DEFAULT_PHONE_POLICY,
            },
            access: AccessSettings::default(),
            base: ForService {
                fail_delay_ms: 0,
                password_prompt: String::new(),
            },
            services: Vec::new(),
        };
        // Every line but the repeated ones exactly once, in this order.
        let mut seen = String::new();
        for line in lines {
            let mut w = line.split(' ');
            let tag = w.next()?;
            let args: Vec<&str> = w.collect();
            let n = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
            let text = |i: usize| String::from_utf8(lockout::unhex(args.get(i)?)?).ok();
            let policy = || -> Option<Policy> {
                (args.len() == 3).then_some(())?;
                Some(Policy {
                    max_failures: u32::try_from(n(0)?).ok()?,
                    window_s: n(1)?,
                    lock_s: n(2)?,
                })
            };
            match (tag, args.len()) {
                ("source", 3) => {
                    d.source = Source {
                        len: n(0)?,
                        hash: u64::from_str_radix(args[1], 16).ok()?,
                        secret_inline: match args[2] {
                            "0" => false,
                            "1" => true,
                            _ => return None,
                        },
                    }
                }
                ("backend", 1) => {
                    d.lockout.backend = match args[0] {
                        "files" => Backend::Files,
                        "redis" => Backend::Redis,
                        _ => return None,
                    }
                }
                ("dir", 1) => {
                    let bytes = lockout::unhex(args[0])?;
                    d.lockout.dir = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
                }
                ("user", _) => d.lockout.user = policy()?,
                ("ip", _) => d.lockout.ip = policy()?,
                ("phone", _) => d.lockout.phone = policy()?,
                ("ipv6_prefix", 1) => d.lockout.ipv6_prefix = u8::try_from(n(0)?).ok()?,
                ("allow", 1) => d.access.allow.push(Cidr::parse(args[0]).ok()?),
                ("deny", 1) => d.access.deny.push(Cidr::parse(args[0]).ok()?),
                ("fail_delay_ms", 1) => d.base.fail_delay_ms = n(0)?,
                ("password_prompt", 1) => d.base.password_prompt = text(0)?,
                ("service", 3) => d.services.push((
                    text(0)?,
                    ForService {
                        fail_delay_ms: n(1)?,
                        password_prompt: text(2)?,
                    },
                )),
                ("end", 0) => {
                    seen.push('e');
                    continue;
                }
                _ => return None,
            }
            if seen.ends_with('e') {
                return None; // a line after `end`
            }
            if !matches!(tag, "allow" | "deny" | "service") {
                seen.push_str(tag);
                seen.push(',');
            }
        }
        let expected =
            "source,backend,dir,user,ip,ipv6_prefix,phone,fail_delay_ms,password_prompt,e";
        (seen == expected && d.lockout.dir.is_absolute()).then_some(d)
    }

    fn for_service(&self, service: &str) -> &ForService {
        self.services
            .iter()
            .find(|(n, _)| n == service)
            .map_or(&self.base, |(_, s)| s)
    }
}

/// Where the digest of the configuration file `config` lives in lockout directory `dir`.
pub fn digest_path(dir: &Path, config: &Path) -> PathBuf {
    // 16 hex digits, as `{:016x}` would write them.
    let mut name = String::from("config.");
    name.push_str(&lockout::hex(
        &config::hash64(config.as_os_str().as_bytes()).to_be_bytes(),
    ));
    dir.join(name)
}

/// The full module's side: after loading `c` from `config` (and opening its lockout
/// directory), writes its digest unless the one there already says the same. A digest that
/// cannot be written only means the front hands every login over; `Err` says why.
pub fn save_digest(config: &Path, c: &Config) -> Result<(), String> {
    // The front refuses early only with the file backend: no digest for Redis.
    let Some(d) = Digest::of(c).filter(|d| d.lockout.backend == Backend::Files) else {
        return Ok(());
    };
    let path = digest_path(&d.lockout.dir, config);
    let text = d.to_text();
    if read_trusted(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = d.lockout.dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or("config".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// A small file that only root (or the effective user) could have written.
fn read_trusted(path: &Path) -> Result<String, String> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || !crate::pam::owned_by_root_or_us(meta.uid()) || meta.mode() & 0o022 != 0 {
        return Err("not trusted".into());
    }
    crate::smallfile::read(&mut f, 1024, MAX_DIGEST_BYTES).map_err(|e| e.to_string())
}

/// `[lockout] dir` as a plain reading of the text finds it: a `dir = "…"` (no escapes) or
/// `dir = '…'` line under a `[lockout]` header, else the default. A file written otherwise
/// (dotted keys, an inline table, escapes) gets a wrong answer here, which costs nothing but
/// speed: the digest it leads to is not there, or was not made from this text.
pub fn lockout_dir_of(text: &str) -> PathBuf {
    let mut in_lockout = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            let name = h.split(']').next().unwrap_or("").trim();
            in_lockout = name == "lockout" && !h.starts_with('[');
            continue;
        }
        if !in_lockout {
            continue;
        }
        let Some(rest) = t.strip_prefix("dir") else {
            continue;
        };
        let Some(v) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let v = v.trim_start();
        let quoted = |q: char| {
            let inner = v.strip_prefix(q)?;
            let end = inner.find(q)?;
            let value = &inner[..end];
            (q == '\'' || !value.contains('\\')).then(|| PathBuf::from(value))
        };
        if let Some(p) = quoted('"').or_else(|| quoted('\'')) {
            return p;
        }
    }
    PathBuf::from(config::DEFAULT_LOCKOUT_DIR)
}

/// The configuration file at `config` (its mode and text, read with the full module's checks)
/// and its digest (parsed, and the file's text), if that is trusted, current and for the file
/// backend; `None` hands the login over.
fn current_digest(config: &Path) -> Option<(u32, String, Digest, String)> {
    let (meta, text) = config::read_checked(config, false, "").ok()?;
    let dir = lockout_dir_of(&text);
    let written = read_trusted(&digest_path(&dir, config)).ok()?;
    let d = Digest::parse(&written)?;
    let source = Source::of(&text, d.source.secret_inline);
    let current = d.source == source
        && d.version == env!("CARGO_PKG_VERSION")
        && d.lockout.dir == dir
        && d.lockout.backend == Backend::Files
        && !(d.source.secret_inline && meta.mode() & 0o044 != 0);
    current.then_some((meta.mode(), text, d, written))
}

// ---------------------------------------------------------------------------------------------
// The front's decision.

/// `pam_set_data` key of a [`Mark`]: set by the front before every hand-over of authenticate
/// (empty when it checked nothing), taken by the full module (src/lib.rs) at once.
pub const DATA_CHECKED: &str = "pam_portal.front_checked";

/// What the front found before handing a login over: the configuration file's text (read
/// with the full module's checks) and the digest made from it, with which the early
/// refusals were checked for this user and address, and none applied; and the password, if
/// the front asked for it (SPEC §4 step 4) and it was not one refused without the portal.
///
/// The full module parses `text` instead of reading the file again, and does not repeat the
/// lock checks (reading the same records again) if its own parse gives exactly `digest`:
/// then the front checked with the settings the full module would have used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub config: PathBuf,
    /// The file's mode, as the checked read saw it.
    pub mode: u32,
    pub text: String,
    /// The digest file's text: what [`save_digest`] wrote, [`Digest::to_text`].
    pub digest: String,
    pub user: RawUser,
    pub rhost: Option<String>,
    /// The password the front prompted for (not one from `PAM_AUTHTOK`, which the full
    /// module reads itself).
    pub password: Option<Secret>,
}

impl Checked {
    /// Whether the full module, having parsed `self.text` into `c`, may take these lock
    /// checks (of `self.user`) as its own for a login from `rhost`: not if anything differs.
    pub fn covers(&self, c: &Config, rhost: Option<&str>) -> bool {
        self.rhost.as_deref() == rhost && Digest::of(c).is_some_and(|d| d.to_text() == self.digest)
    }

    /// The bytes a [`Mark`] carries: this version, then each field as its length (8 bytes,
    /// little-endian; an absent `rhost` or `password` is `u64::MAX`) and its bytes. Sized
    /// exactly, so that the password is never left behind in a buffer that grew.
    pub fn encode(&self) -> Vec<u8> {
        let password = self.password.as_ref().map(|p| p.expose().as_bytes());
        let fields = [
            Some(VERSION.as_bytes()),
            Some(self.config.as_os_str().as_bytes()),
            Some(&self.mode.to_le_bytes()[..]),
            Some(self.text.as_bytes()),
            Some(self.digest.as_bytes()),
            Some(&self.user.0[..]),
            self.rhost.as_ref().map(|r| r.as_bytes()),
            password,
        ];
        let size = fields.iter().map(|f| 8 + f.map_or(0, <[u8]>::len)).sum();
        let mut out = Vec::with_capacity(size);
        for field in fields {
            match field {
                Some(b) => {
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
                None => out.extend_from_slice(&u64::MAX.to_le_bytes()),
            }
        }
        out
    }

    /// [`Checked::encode`]'s bytes read back: `None` for anything else, or another version's.
    pub fn decode(bytes: &[u8]) -> Option<Checked> {
        let mut rest = bytes;
        let mut take = || -> Option<Option<&[u8]>> {
            let (len, after) = rest.split_first_chunk::<8>()?;
            let len = u64::from_le_bytes(*len);
            if len == u64::MAX {
                rest = after;
                return Some(None);
            }
            let len = usize::try_from(len).ok()?;
            let field = after.get(..len)?;
            rest = &after[len..];
            Some(Some(field))
        };
        let mut field = || take().flatten();
        if field()? != VERSION.as_bytes() {
            return None;
        }
        let config = PathBuf::from(std::ffi::OsStr::from_bytes(field()?));
        let mode = u32::from_le_bytes(field()?.try_into().ok()?);
        let text = String::from_utf8(field()?.to_vec()).ok()?;
        let digest = String::from_utf8(field()?.to_vec()).ok()?;
        let user = RawUser(field()?.to_vec());
        let rhost = match take()? {
            Some(r) => Some(String::from_utf8(r.to_vec()).ok()?),
            None => None,
        };
        let password = match take()? {
            Some(p) => Some(Secret::new(String::from_utf8(p.to_vec()).ok()?)),
            None => None,
        };
        rest.is_empty().then_some(Checked {
            config,
            mode,
            text,
            digest,
            user,
            rhost,
            password,
        })
    }
}

/// What is stored under [`DATA_CHECKED`]: a C layout holding [`Checked::encode`]'s bytes, so
/// that the front and the full module read it alike even if two builds of one version met
/// (as the HTTP half's interface is, src/portal/abi.rs). The mark owns its bytes, which may
/// hold a password, and wipes them when dropped; an empty one says the front checked nothing.
#[repr(C)]
pub struct Mark {
    layout: u64,
    ptr: *mut u8,
    len: usize,
}

/// The first field of every [`Mark`]: this layout.
const MARK_LAYOUT: u64 = u64::from_be_bytes(*b"ppmark01");

impl Mark {
    /// A mark of `bytes` ([`Checked::encode`]'s: sized exactly, so that they are not copied).
    pub fn new(mut bytes: Vec<u8>) -> Mark {
        if bytes.capacity() != bytes.len() {
            // Shrinking would move them and leave a copy behind: copy, and wipe the original.
            let exact = bytes.to_vec();
            crate::secret::wipe(&mut bytes);
            bytes = exact;
        }
        let bytes = bytes.into_boxed_slice();
        let len = bytes.len();
        Mark {
            layout: MARK_LAYOUT,
            ptr: Box::into_raw(bytes).cast::<u8>(),
            len,
        }
    }

    /// The bytes, unless the mark is empty or of another layout.
    pub fn bytes(&self) -> Option<&[u8]> {
        // SAFETY: a mark of this layout holds `len` bytes at `ptr`, from `Mark::new`, until
        // it is dropped.
        (self.layout == MARK_LAYOUT && self.len > 0)
            .then(|| unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }
}

impl Clone for Mark {
    fn clone(&self) -> Mark {
        Mark::new(self.bytes().map(<[u8]>::to_vec).unwrap_or_default())
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        if self.layout == MARK_LAYOUT {
            // SAFETY: `ptr` and `len` are the boxed slice `Mark::new` leaked, freed once here.
            let mut bytes =
                unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) };
            crate::secret::wipe(&mut bytes);
        }
    }
}

/// What the front does with one authenticate call.
pub enum Early {
    /// Decided here, for this user: a denied or locked client (no prompt); or, after the
    /// password prompt, no answer, or a password refused without the portal (counted).
    Decided(Decision, RawUser),
    /// Handed over after the early refusals were checked and none applied, and the password
    /// obtained (the portal decides the rest).
    Checked(Checked),
    /// Handed over unchecked: the full module decides everything.
    HandOver,
}

/// SPEC §4 steps 2–4 for the login from `rhost` (`PAM_RHOST`), as the full login runs them
/// and with its code: a decision, or a hand-over (with what was checked and asked on the way)
/// to the full module, whose first step from there is the portal. Store warnings met on the
/// way are logged either way.
pub fn early<P: Pam>(
    pam: &mut P,
    args: &Args,
    service: &str,
    rhost: Option<&str>,
    now: u64,
) -> Early {
    if args.options.debug {
        return Early::HandOver; // the full module writes the debug lines
    }
    let Some((mode, text, d, written)) = current_digest(&args.config) else {
        return Early::HandOver;
    };
    let Ok(user) = pam.user() else {
        return Early::HandOver;
    };
    let for_service = d.for_service(service);
    if for_service.fail_delay_ms > 0 {
        pam.fail_delay(for_service.fail_delay_ms);
    }
    let addr = access::parse_rhost(rhost);
    let l = &d.lockout;
    let Ok(store) = FileStore::open(&l.dir, lockout::longest_window(l)) else {
        return Early::HandOver;
    };
    let early = match login::early_refusal(&user, addr, &d.access, l, &store, now, false) {
        Ok(keys) => match login::password(pam, args.options, &for_service.password_prompt) {
            Err(no_answer) => Early::Decided(no_answer, user),
            Ok((password, prompted)) => match login::unusable_password(&password) {
                Some(refusal) => {
                    let d = login::record_failure(&store, l, &keys, now, false, refusal);
                    Early::Decided(d, user)
                }
                None => Early::Checked(Checked {
                    config: args.config.clone(),
                    mode,
                    text,
                    digest: written,
                    user,
                    rhost: rhost.map(str::to_string),
                    password: prompted.then_some(password),
                }),
            },
        },
        Err(r)
            if matches!(
                r.reason,
                Reason::IpDenied | Reason::IpLocked | Reason::UserLocked | Reason::PhoneLocked
            ) =>
        {
            Early::Decided(r, user)
        }
        // A record that cannot be read: the full module reports it.
        Err(_) => Early::HandOver,
    };
    for w in store.take_warnings() {
        pam.log(Priority::Warning, &w);
    }
    early
}

// ---------------------------------------------------------------------------------------------
// The hooks of pam_portal.so.

pub struct PamFront;

impl PamHooks for PamFront {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let mut checked = Vec::new(); // the encoded Checked, if any
        if let Ok(parsed) = Args::parse(&args) {
            let mut pam = LibPam::new(pamh, flags);
            let service = pam.service();
            let rhost = pam.rhost();
            let now = RealWorld::default().now();
            match early(&mut pam, &parsed, &service, rhost.as_deref(), now) {
                Early::Decided(d, user) => {
                    let who = Who {
                        hook: "auth",
                        user: Some(&user.0),
                        rhost: rhost.as_deref(),
                        service: &service,
                    };
                    audit::report(&mut pam, &d, &who);
                    return crate::pam_code(&d);
                }
                Early::Checked(c) => checked = c.encode(),
                Early::HandOver => {}
            }
        }
        // Set on every call (empty if nothing was checked), so that what this call checked is
        // all the full module can find, never an earlier call's on the same handle.
        LibPam::new(pamh, flags).set_data::<Mark>(DATA_CHECKED, Mark::new(checked));
        forward(pamh, Hook::Authenticate, &args, flags)
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        forward(pamh, Hook::AcctMgmt, &args, flags)
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}

// ---------------------------------------------------------------------------------------------
// The hand-over to libpam_portal_full.so.

type HookFn = unsafe extern "C" fn(*mut PamHandle, PamFlag, c_int, *const *const c_char) -> c_int;

#[derive(Clone, Copy)]
enum Hook {
    Authenticate,
    AcctMgmt,
}

struct Full {
    authenticate: HookFn,
    acct_mgmt: HookFn,
}

static FULL: OnceLock<Full> = OnceLock::new();

/// Runs `hook` of the full module with the arguments libpam gave the front.
fn forward(pamh: &mut PamHandle, hook: Hook, args: &[&CStr], flags: PamFlag) -> PamResultCode {
    let full = match FULL.get() {
        Some(f) => f,
        None => match load_full() {
            Ok(f) => FULL.get_or_init(|| f),
            Err(why) => {
                let pam = LibPam::new(pamh, flags);
                pam.log(
                    Priority::Err,
                    &format!("result=error reason=bad_config {why}"),
                );
                return PamResultCode::PAM_SERVICE_ERR;
            }
        },
    };
    let f = match hook {
        Hook::Authenticate => full.authenticate,
        Hook::AcctMgmt => full.acct_mgmt,
    };
    // libpam's argv, rebuilt from the strings it points to (alive for this call).
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    let argc = c_int::try_from(argv.len()).unwrap_or(0);
    // SAFETY: `f` is the full module's pam_sm_* hook, called as libpam would call it: the live
    // handle, the flags, and an argv of `argc` NUL-terminated strings.
    let rc = unsafe { f(pamh, flags, argc, argv.as_ptr()) };
    PamResultCode::try_from(rc).unwrap_or(PamResultCode::PAM_ABORT)
}

fn load_full() -> Result<Full, String> {
    crate::portal::transport::load_object(
        FULL_FILE_NAME,
        "the full module of pam_portal",
        open_full,
    )
}

fn open_full(path: &Path) -> Result<Full, String> {
    let handle = crate::portal::transport::dlopen_local(path)?;
    let sym = |name: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: a symbol of the object just opened.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if p.is_null() {
            Err(format!("no symbol {}", name.to_string_lossy()))
        } else {
            Ok(p)
        }
    };
    // SAFETY: the full module's version function (full/src/lib.rs) returns a NUL-terminated
    // static string.
    let version = unsafe {
        let f = std::mem::transmute::<*mut c_void, extern "C" fn() -> *const c_char>(sym(
            VERSION_SYMBOL,
        )?);
        CStr::from_ptr(f())
    };
    if version.to_bytes_with_nul() != VERSION.as_bytes() {
        return Err(format!(
            "version {}, the front is {}",
            version.to_string_lossy(),
            env!("CARGO_PKG_VERSION")
        ));
    }
    // SAFETY: pam_sm_* of a PAM module have the HookFn signature (pam-bindings' pam_hooks!).
    unsafe {
        Ok(Full {
            authenticate: std::mem::transmute::<*mut c_void, HookFn>(sym(c"pam_sm_authenticate")?),
            acct_mgmt: std::mem::transmute::<*mut c_void, HookFn>(sym(c"pam_sm_acct_mgmt")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest {
            source: Source::of("[portal]\nurl = \"x\"\n", true),
            version: "0.1.0".into(),
            lockout: LockoutSettings {
                backend: Backend::Files,
                redis: None,
                dir: PathBuf::from("/var/lib/pam portal/ä"),
                user: Policy {
                    max_failures: 3,
                    window_s: 60,
                    lock_s: 3600,
                },
                ip: config::DEFAULT_USER_POLICY,
                ipv6_prefix: 56,
                phone: config::DEFAULT_PHONE_POLICY,
            },
            access: AccessSettings {
                allow: vec![
                    Cidr::parse("10.0.0.0/8").unwrap(),
                    Cidr::parse("2001:db8::/32").unwrap(),
                ],
                deny: vec![Cidr::parse("10.1.2.3").unwrap()],
                users: Default::default(),
            },
            base: ForService {
                fail_delay_ms: 2000,
                password_prompt: "Password: ".into(),
            },
            services: vec![
                (
                    "open vpn".into(),
                    ForService {
                        fail_delay_ms: 0,
                        password_prompt: "Mot de passe ?\n ".into(),
                    },
                ),
                (
                    "sshd".into(),
                    ForService {
                        fail_delay_ms: 500,
                        password_prompt: String::new(),
                    },
                ),
            ],
        }
    }

    #[test]
    fn the_digest_file_is_named_by_sixteen_hex_digits_of_the_configuration_path() {
        use std::hash::{DefaultHasher, Hasher};
        let mut h = DefaultHasher::new();
        h.write(b"/etc/security/pam_portal.toml");
        let want = format!("/var/lib/pam_portal/config.{:016x}", h.finish());
        let p = digest_path(
            Path::new("/var/lib/pam_portal"),
            Path::new("/etc/security/pam_portal.toml"),
        );
        assert_eq!(p, PathBuf::from(want));
    }

    #[test]
    fn a_digest_reads_back_as_written() {
        let d = digest();
        assert_eq!(Digest::parse(&d.to_text()), Some(d.clone()));
        assert_eq!(d.for_service("sshd").fail_delay_ms, 500);
        assert_eq!(d.for_service("sshd").password_prompt, "");
        assert_eq!(d.for_service("open vpn").fail_delay_ms, 0);
        assert_eq!(
            d.for_service("open vpn").password_prompt,
            "Mot de passe ?\n "
        );
        assert_eq!(d.for_service("login"), &d.base);
    }

    #[test]
    fn a_damaged_digest_is_none() {
        let text = digest().to_text();
        // Every truncation, every dropped or doubled line, a line after `end`.
        for cut in 0..text.len() {
            assert_eq!(Digest::parse(&text[..cut]), None, "cut at {cut}");
        }
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let repeated = matches!(
                lines[i].split(' ').next(),
                Some("allow" | "deny" | "service")
            );
            let mut fewer = lines.clone();
            fewer.remove(i);
            if !repeated {
                assert_eq!(
                    Digest::parse(&(fewer.join("\n") + "\n")),
                    None,
                    "without line {i}"
                );
                let mut more = lines.clone();
                more.insert(i, lines[i]);
                assert_eq!(
                    Digest::parse(&(more.join("\n") + "\n")),
                    None,
                    "line {i} twice"
                );
            }
        }
        for bad in [
            "user 3 60",
            "user -1 60 60",
            "source 1 zz 0",
            "backend ldap",
            "dir 2f2",
            "allow 10.0.0.0/40",
        ] {
            let t = text.replace(
                lines
                    .iter()
                    .find(|l| l.starts_with(bad.split(' ').next().unwrap()))
                    .unwrap(),
                bad,
            );
            assert_eq!(Digest::parse(&t), None, "{bad}");
        }
        assert_eq!(Digest::parse(&format!("{text}user 1 1 1\n")), None);
        let dir_line = format!("dir {}\n", lockout::hex("/var/lib/pam portal/ä".as_bytes()));
        assert!(text.contains(&dir_line), "{text}");
        let relative = text.replace(&dir_line, &format!("dir {}\n", lockout::hex(b"var/lib")));
        assert_eq!(Digest::parse(&relative), None, "a relative directory");
    }

    #[test]
    fn the_lockout_dir_is_read_from_plain_lines_only() {
        let dir = |t: &str| lockout_dir_of(t).display().to_string();
        assert_eq!(dir("[portal]\nurl = \"x\"\n"), config::DEFAULT_LOCKOUT_DIR);
        assert_eq!(dir("[lockout]\ndir = \"/srv/lock\"\n"), "/srv/lock");
        assert_eq!(dir("[ lockout ]  # c\n  dir='/srv/l'  # c\n"), "/srv/l");
        assert_eq!(
            dir("[portal]\ndir = \"/no\"\n[lockout]\nuser = {}\n"),
            config::DEFAULT_LOCKOUT_DIR
        );
        assert_eq!(
            dir("[lockout]\ndir = \"/a\\u0062\"\n"),
            config::DEFAULT_LOCKOUT_DIR
        );
        assert_eq!(
            dir("[[lockout]]\ndir = \"/no\"\n"),
            config::DEFAULT_LOCKOUT_DIR
        );
        assert_eq!(
            dir("[lockout]\ndirectory = \"/no\"\n"),
            config::DEFAULT_LOCKOUT_DIR
        );
    }

    /// The full module takes the front's lock checks as its own only for the address they were
    /// made for, and only if its parse of the text gives the digest the front used: here with
    /// lists, per-service delays and every policy set, as a written and re-read digest.
    #[test]
    fn a_check_covers_only_the_settings_and_address_it_was_made_with() {
        let dir = std::env::temp_dir().join(format!("pam_portal-covers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = |max: u32| {
            format!(
                "[portal]\nurl = \"https://portal.example\"\napi_user = \"u\"\napi_key = \"k\"\n\
                 [auth]\nfail_delay_ms = 1500\n[lockout]\ndir = \"{}\"\nip = {{ ipv6_prefix = 48 }}\n\
                 user = {{ max_failures = {max}, window_s = 60, lock_s = 90 }}\n\
                 [access]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.1.2.3\"]\n\
                 [services.openvpn.auth]\nfail_delay_ms = 0\n",
                dir.join("lock").display()
            )
        };
        let load = |t: &str| {
            let path = dir.join("pam_portal.toml");
            std::fs::write(&path, t).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let (meta, read) = config::read_checked(&path, false, "").unwrap();
            let c = Config::from_file_text(&path, meta.mode(), &read).unwrap();
            (path, meta.mode(), read, c)
        };
        let (path, mode, read, c) = load(&text(4));
        // As the front has it: the digest file's text, read back and written again.
        let written = Digest::of(&c).unwrap().to_text();
        let checked = Checked {
            config: path,
            mode,
            text: read,
            digest: Digest::parse(&written).unwrap().to_text(),
            user: RawUser(b"carol".to_vec()),
            rhost: Some("10.9.8.7".into()),
            password: None,
        };
        assert!(checked.covers(&c, Some("10.9.8.7")));
        assert!(!checked.covers(&c, Some("10.9.8.6")), "another address");
        assert!(!checked.covers(&c, None), "no address");
        let (_, _, _, other) = load(&text(5));
        assert!(!checked.covers(&other, Some("10.9.8.7")), "other settings");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_check_travels_in_a_mark_and_nothing_else_reads_as_one() {
        let mut c = Checked {
            config: PathBuf::from("/etc/pam_portal/ä.toml"),
            mode: 0o100600,
            text: "[portal]\nurl = \"x\"\n".into(),
            digest: digest().to_text(),
            user: RawUser(vec![0xff, b'\n', 0]),
            rhost: Some("2001:db8::1".into()),
            password: Some(Secret::from("pä ss")),
        };
        for rhost in [Some("2001:db8::1".to_string()), Some(String::new()), None] {
            for password in [Some(Secret::from("pä ss")), Some(Secret::from("")), None] {
                c.rhost = rhost.clone();
                c.password = password;
                let bytes = c.encode();
                assert_eq!(bytes.capacity(), bytes.len(), "sized exactly");
                let mark = Mark::new(bytes);
                assert_eq!(mark.bytes().and_then(Checked::decode), Some(c.clone()));
                assert_eq!(mark.clone().bytes(), mark.bytes(), "a clone owns a copy");
            }
        }
        let bytes = c.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Checked::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Checked::decode(&longer), None, "a byte too many");
        let other = c
            .encode()
            .windows(VERSION.len())
            .position(|w| w == VERSION.as_bytes())
            .unwrap();
        let mut other_version = bytes;
        other_version[other] ^= 1;
        assert_eq!(Checked::decode(&other_version), None, "another version");
        assert_eq!(Mark::new(Vec::new()).bytes(), None, "the empty mark");
        // Bytes with room to spare are copied into an exact buffer, the same bytes.
        let exact = c.encode();
        let mut roomy = Vec::with_capacity(exact.len() + 64);
        roomy.extend_from_slice(&exact);
        let mark = Mark::new(roomy);
        assert_eq!(mark.bytes().and_then(Checked::decode), Some(c.clone()));
    }
}
