//! The configuration file (SPEC §3): schema, validation (errors name the key and the line),
//! file permissions, and the per-service settings a login uses.

use crate::access::Cidr;
use crate::secret::Secret;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/security/pam_portal.toml";
/// `[lockout] dir` when the file names none.
pub const DEFAULT_LOCKOUT_DIR: &str = "/var/lib/pam_portal";

/// A configuration problem, worded for the log: `<file> line N: <what>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written (every key optional but [portal] url; unknown keys refused).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    portal: RawPortal,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    lockout: RawLockout,
    #[serde(default)]
    access: RawAccess,
    #[serde(default)]
    prompts: RawPrompts,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortal {
    url: PortalUrl,
    api_user: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "millis")]
    connect_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    request_timeout_ms: Option<u64>,
    on_unavailable: Option<OnUnavailable>,
    honor_ip_restriction: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    second_factor: Option<SecondFactor>,
    require_second_factor: Option<bool>,
    vpn_services: Option<Vec<String>>,
    question_choice: Option<QuestionChoice>,
    #[serde(default, deserialize_with = "phone_timeout")]
    phone_timeout_s: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    phone_poll_ms: Option<u64>,
    #[serde(default, deserialize_with = "delay_ms")]
    fail_delay_ms: Option<u64>,
    show_reasons: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct RawPrompts {
    password: Option<PromptText>,
    question: Option<PromptText>,
    code: Option<PromptText>,
    info: Option<bool>,
    phone_confirm: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    prompts: RawPrompts,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    dir: Option<PathBuf>,
    backend: Option<Backend>,
    // Checked after parsing (`RedisSettings::parse`): a toml error would quote the value, and
    // the URL may hold a password.
    redis_url: Option<String>,
    key_prefix: Option<String>,
    #[serde(default, deserialize_with = "redis_timeout")]
    redis_timeout_ms: Option<u64>,
    redis_ca_file: Option<PathBuf>,
    user: Option<RawPolicy>,
    ip: Option<RawIpPolicy>,
    phone: Option<RawPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default, deserialize_with = "max_failures")]
    max_failures: Option<u32>,
    #[serde(default, deserialize_with = "seconds")]
    window_s: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    lock_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIpPolicy {
    #[serde(default, deserialize_with = "max_failures")]
    max_failures: Option<u32>,
    #[serde(default, deserialize_with = "seconds")]
    window_s: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    lock_s: Option<u64>,
    #[serde(default, deserialize_with = "v6_prefix")]
    ipv6_prefix: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    allow: Vec<Cidr>,
    #[serde(default)]
    deny: Vec<Cidr>,
    #[serde(default)]
    users: BTreeMap<String, RawUserAccess>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUserAccess {
    #[serde(default)]
    allow: Vec<Cidr>,
    #[serde(default)]
    deny: Vec<Cidr>,
}

// ---------------------------------------------------------------------------------------------
// Values checked while parsing, so that toml reports the offending value's line.

fn ranged<'de, D: Deserializer<'de>>(
    d: D,
    min: u64,
    max: u64,
    what: &str,
) -> Result<Option<u64>, D::Error> {
    let v = u64::deserialize(d)?;
    if v < min || v > max {
        return Err(serde::de::Error::custom(format!(
            "{what} must be between {min} and {max}, not {v}"
        )));
    }
    Ok(Some(v))
}
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, 1, 600_000, "a time in milliseconds")
}
fn delay_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, 0, 60_000, "fail_delay_ms")
}
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, 1, 31 * 24 * 3600, "a time in seconds")
}
fn phone_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, 1, 119, "phone_timeout_s")
}
fn max_failures<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(ranged(d, 1, 10_000, "max_failures")?.map(|v| v as u32))
}
fn redis_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    ranged(d, 1, 10_000, "redis_timeout_ms")
}
fn v6_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    Ok(ranged(d, 1, 128, "ipv6_prefix")?.map(|v| v as u8))
}

/// The portal's base URL: https, or http for a loopback host only.
#[derive(Clone, Debug)]
struct PortalUrl(String);

impl<'de> Deserialize<'de> for PortalUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_url(&s)
            .map(PortalUrl)
            .map_err(serde::de::Error::custom)
    }
}

fn check_url(s: &str) -> Result<String, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("url {s:?} has no scheme"))?;
    let host_port = rest.split('/').next().unwrap_or("");
    if host_port.is_empty() || rest.contains(['?', '#', ' ']) || host_port.contains('@') {
        return Err(format!(
            "url {s:?} is not a plain https://host[:port]/path URL"
        ));
    }
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    match scheme {
        "https" => {}
        "http" => {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "url {s:?}: http:// is accepted only for loopback hosts; use https://"
                ));
            }
        }
        _ => return Err(format!("url {s:?}: the scheme must be https")),
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[derive(Clone, Debug)]
pub struct PromptText(pub String);

impl<'de> Deserialize<'de> for PromptText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > 512 || s.contains('\0') {
            return Err(serde::de::Error::custom(
                "a prompt must be at most 512 bytes, without NUL",
            ));
        }
        Ok(PromptText(s))
    }
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    Deny,
    Ignore,
}

/// Where lockout records live (`[lockout] backend`).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One file per record under `[lockout] dir` (this machine only).
    #[default]
    Files,
    /// A Redis server shared by a pool of machines; the files are the fallback.
    Redis,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactor {
    Auto,
    Question,
    Phone,
    None,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QuestionChoice {
    Random,
    First,
}

// ---------------------------------------------------------------------------------------------
// The configuration as the module uses it.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window_s: u64,
    pub lock_s: u64,
}

#[derive(Clone, Debug)]
pub struct PortalSettings {
    pub url: String,
    pub api_user: Option<String>,
    pub api_key: Option<Secret>,
    /// `api_key_file` as written, when the key comes from one (for `pam-portal check`).
    pub api_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub on_unavailable: OnUnavailable,
    pub honor_ip_restriction: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockoutSettings {
    pub dir: PathBuf,
    pub backend: Backend,
    /// `backend = "redis"`: the server (always set then, never otherwise).
    pub redis: Option<RedisSettings>,
    pub user: Policy,
    pub ip: Policy,
    pub ipv6_prefix: u8,
    pub phone: Policy,
}

/// `[lockout] redis_url`, `key_prefix`, `redis_timeout_ms`, `redis_ca_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// `rediss://` (TLS).
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `AUTH` user (Redis 6 ACLs), if the URL names one.
    pub username: Option<String>,
    /// `AUTH` password: a secret, never logged.
    pub password: Option<Secret>,
    /// `SELECT` database.
    pub db: u32,
    pub key_prefix: String,
    /// Bounds the connection and each command.
    pub timeout: Duration,
    /// PEM file: trust only these CAs (`rediss://`); else the system bundle.
    pub ca_file: Option<PathBuf>,
}

pub const DEFAULT_KEY_PREFIX: &str = "pam_portal:";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 500;

impl RedisSettings {
    /// `scheme://host:port/db`: the server as logs and messages name it (never the password).
    pub fn shown(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let db = if self.db == 0 {
            String::new()
        } else {
            format!("/{}", self.db)
        };
        format!("{scheme}://{host}:{}{db}", self.port)
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` (or `rediss://`). The error never
    /// repeats the URL: it may hold a password.
    pub fn parse_url(url: &str) -> Result<RedisSettings, String> {
        const FORM: &str = "must be redis://[[user]:password@]host[:port][/db] or rediss://...";
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{FORM}: no scheme"))?;
        let tls = match scheme {
            "redis" => false,
            "rediss" => true,
            _ => return Err(format!("{FORM}: the scheme must be redis or rediss")),
        };
        if rest.contains(['?', '#', ' ', '\t', '\n', '\r', '\0']) {
            return Err(format!(
                "{FORM}: no query, fragment, blanks or control characters"
            ));
        }
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (host_port, db) = match hostpart.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (
                h,
                d.parse::<u32>()
                    .ok()
                    .filter(|&n| n <= 1_000_000)
                    .ok_or_else(|| format!("{FORM}: the database must be a number"))?,
            ),
            None => (hostpart, 0),
        };
        let (host, port) = if let Some(h) = host_port.strip_prefix('[') {
            let (h, after) = h
                .split_once(']')
                .ok_or_else(|| format!("{FORM}: unclosed [ in the host"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{FORM}: [{h}] is not an IPv6 address"));
            }
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("{FORM}: junk after ]"))?,
                    ),
                ),
            }
        } else {
            match host_port.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && (host.contains(':')
                || host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
        if !host_ok {
            return Err(format!("{FORM}: no valid host"));
        }
        let port = match port {
            None => 6379,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{FORM}: the port must be 1-65535"))?,
        };
        let (username, password) = match auth {
            None => (None, None),
            Some(a) => {
                let (u, p) = a.split_once(':').ok_or_else(|| {
                    format!("{FORM}: the part before @ must be :password or user:password")
                })?;
                let u = percent_decode(u).ok_or_else(|| format!("{FORM}: bad %-escape"))?;
                let p = percent_decode(p).ok_or_else(|| format!("{FORM}: bad %-escape"))?;
                if p.is_empty() {
                    return Err(format!("{FORM}: empty password"));
                }
                ((!u.is_empty()).then_some(u), Some(Secret::new(p)))
            }
        };
        Ok(RedisSettings {
            tls,
            host: host.to_string(),
            port,
            username,
            password,
            db,
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            timeout: Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
            ca_file: None,
        })
    }
}

/// `%XX` escapes (for `@`, `:` or `/` in a password); `None` if one is malformed.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserAccess {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessSettings {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub users: BTreeMap<String, UserAccess>,
}

/// `[auth]` after the service's overrides.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub second_factor: SecondFactor,
    pub require_second_factor: bool,
    /// Whether this login's service is one of `vpn_services`.
    pub is_vpn: bool,
    pub question_choice: QuestionChoice,
    pub phone_timeout_s: u64,
    pub phone_poll_ms: u64,
    pub fail_delay_ms: u64,
    pub show_reasons: bool,
}

/// `[prompts]` after the service's overrides.
#[derive(Clone, Debug)]
pub struct PromptSettings {
    pub password: String,
    pub question: String,
    pub code: String,
    pub info: bool,
    pub phone_confirm: bool,
}

/// The whole file, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub portal: PortalSettings,
    pub lockout: LockoutSettings,
    pub access: AccessSettings,
    auth: RawAuth,
    prompts: RawPrompts,
    services: BTreeMap<String, (RawAuth, RawPrompts)>,
    /// The text this was parsed from, when it was read from a file (`load`): what the front's
    /// digest of this configuration is checked against (src/front.rs).
    pub source: Option<Source>,
}

/// SipHash-1-3 with fixed keys (`DefaultHasher::new`), the same in every process of one build.
pub fn hash64(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// What identifies a configuration file's text without keeping it (it may hold a secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub len: u64,
    /// [`hash64`] of the text: the front and the full module are one build, and only root can
    /// write the file, so no one chooses its collisions.
    pub hash: u64,
    /// The file holds a secret inline (`api_key`, a password in `redis_url`), so it must not
    /// be readable by group or others.
    pub secret_inline: bool,
}

impl Source {
    pub fn of(text: &str, secret_inline: bool) -> Source {
        Source {
            len: text.len() as u64,
            hash: hash64(text.as_bytes()),
            secret_inline,
        }
    }
}

/// What one login uses: the file resolved for one PAM service.
#[derive(Clone, Debug)]
pub struct Settings {
    pub service: String,
    pub portal: PortalSettings,
    pub auth: AuthSettings,
    pub lockout: LockoutSettings,
    pub access: AccessSettings,
    pub prompts: PromptSettings,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Config {
    /// Reads, checks the permissions of, and validates the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (meta, text) = read_checked(path, false, "cannot read: ")?;
        Self::from_file_text(path, meta.mode(), &text)
    }

    /// [`Config::load`] of a file already read by [`read_checked`]: its mode and text.
    pub fn from_file_text(path: &Path, mode: u32, text: &str) -> Result<Config, ConfigError> {
        let shown = path.display();
        let cfg = Self::parse(text, path)?;
        if cfg.inline_key && mode & 0o044 != 0 {
            return Err(ConfigError(format!(
                "{shown}: holds api_key inline but is readable by group or others (mode {:o}); chmod 600 it or use api_key_file",
                mode & 0o777
            )));
        }
        if cfg.redis_password && mode & 0o044 != 0 {
            return Err(ConfigError(format!(
                "{shown}: redis_url holds a password but the file is readable by group or others (mode {:o}); chmod 600 it",
                mode & 0o777
            )));
        }
        let mut config = cfg.config;
        config.source = Some(Source::of(text, cfg.inline_key || cfg.redis_password));
        Ok(config)
    }

    /// Parses and validates text (no file-system checks but the key file's).
    pub fn parse(text: &str, path: &Path) -> Result<Parsed, ConfigError> {
        let shown = path.display();
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let mut msg = e.message().trim().to_string();
            // "duplicate key" does not name the key: quote it. Only a key name, never a value
            // (a value may be a secret such as an inline api_key).
            let at = e
                .span()
                .and_then(|s| text.get(s))
                .map(str::trim)
                .unwrap_or("");
            let is_key_name = !at.is_empty()
                && at.len() <= 60
                && at
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if msg.contains("duplicate key") && is_key_name {
                msg = format!("{msg} `{at}`");
            }
            match line {
                Some(n) => ConfigError(format!("{shown} line {n}: {msg}")),
                None => ConfigError(format!("{shown}: {msg}")),
            }
        })?;
        let key_err = |key: &str, msg: String| {
            let line = find_key_line(text, key)
                .map(|n| format!(" line {n}"))
                .unwrap_or_default();
            ConfigError(format!("{shown}{line}: {key}: {msg}"))
        };

        let p = raw.portal;
        let inline_key = p.api_key.is_some();
        if p.api_key.is_some() && p.api_key_file.is_some() {
            return Err(key_err(
                "api_key",
                "set api_key or api_key_file, not both".into(),
            ));
        }
        let api_key = match (&p.api_key, &p.api_key_file) {
            (Some(k), None) => Some(Secret::new(k.trim().to_string())),
            (None, Some(f)) => Some(read_key_file(f).map_err(|m| key_err("api_key_file", m))?),
            _ => None,
        };
        if api_key.is_some() != p.api_user.is_some() {
            return Err(key_err(
                "api_user",
                "api_user and an API key go together".into(),
            ));
        }
        if let Some(ca) = &p.ca_file {
            if !ca.is_file() {
                return Err(key_err(
                    "ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        let portal = PortalSettings {
            url: p.url.0,
            api_user: p.api_user,
            api_key,
            api_key_file: p.api_key_file,
            ca_file: p.ca_file,
            connect_timeout: Duration::from_millis(p.connect_timeout_ms.unwrap_or(3000)),
            request_timeout: Duration::from_millis(p.request_timeout_ms.unwrap_or(5000)),
            on_unavailable: p.on_unavailable.unwrap_or(OnUnavailable::Deny),
            honor_ip_restriction: p.honor_ip_restriction.unwrap_or(true),
        };

        let l = raw.lockout;
        let policy = |r: Option<RawPolicy>, d: Policy| {
            let r = r.unwrap_or_default();
            Policy {
                max_failures: r.max_failures.unwrap_or(d.max_failures),
                window_s: r.window_s.unwrap_or(d.window_s),
                lock_s: r.lock_s.unwrap_or(d.lock_s),
            }
        };
        let ip_raw = l.ip.unwrap_or_default();
        let backend = l.backend.unwrap_or_default();
        let redis = match (backend, &l.redis_url) {
            (Backend::Redis, None) => {
                return Err(key_err(
                    "backend",
                    "backend = \"redis\" needs redis_url".into(),
                ))
            }
            (Backend::Files, Some(_)) => {
                return Err(key_err(
                    "redis_url",
                    "set backend = \"redis\" to use it (the lockouts would stay per machine)"
                        .into(),
                ))
            }
            (Backend::Files, None) => {
                for (k, set) in [
                    ("key_prefix", l.key_prefix.is_some()),
                    ("redis_timeout_ms", l.redis_timeout_ms.is_some()),
                    ("redis_ca_file", l.redis_ca_file.is_some()),
                ] {
                    if set {
                        return Err(key_err(k, "only with backend = \"redis\"".into()));
                    }
                }
                None
            }
            (Backend::Redis, Some(url)) => {
                let mut r = RedisSettings::parse_url(url).map_err(|m| key_err("redis_url", m))?;
                if let Some(p) = &l.key_prefix {
                    if p.is_empty()
                        || p.len() > 64
                        || !p.bytes().all(|b| b.is_ascii_graphic())
                        || p.contains(['*', '?', '[', ']', '\\'])
                    {
                        return Err(key_err(
                            "key_prefix",
                            "1-64 printable ASCII characters, without * ? [ ] \\".into(),
                        ));
                    }
                    r.key_prefix = p.clone();
                }
                if let Some(ms) = l.redis_timeout_ms {
                    r.timeout = Duration::from_millis(ms);
                }
                if let Some(ca) = &l.redis_ca_file {
                    if !r.tls {
                        return Err(key_err(
                            "redis_ca_file",
                            "only with a rediss:// (TLS) redis_url".into(),
                        ));
                    }
                    if !ca.is_file() {
                        return Err(key_err(
                            "redis_ca_file",
                            format!("{} is not a readable file", ca.display()),
                        ));
                    }
                    r.ca_file = Some(ca.clone());
                }
                Some(r)
            }
        };
        let redis_password = redis.as_ref().is_some_and(|r| r.password.is_some());
        let lockout = LockoutSettings {
            backend,
            redis,
            dir: l.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_LOCKOUT_DIR)),
            user: policy(l.user, DEFAULT_USER_POLICY),
            ip: policy(
                Some(RawPolicy {
                    max_failures: ip_raw.max_failures,
                    window_s: ip_raw.window_s,
                    lock_s: ip_raw.lock_s,
                }),
                DEFAULT_USER_POLICY,
            ),
            ipv6_prefix: ip_raw.ipv6_prefix.unwrap_or(64),
            phone: policy(l.phone, DEFAULT_PHONE_POLICY),
        };
        if !lockout.dir.is_absolute() {
            return Err(key_err(
                "dir",
                "the lockout directory must be an absolute path".into(),
            ));
        }

        let access = AccessSettings {
            allow: raw.access.allow,
            deny: raw.access.deny,
            users: raw
                .access
                .users
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        UserAccess {
                            allow: v.allow,
                            deny: v.deny,
                        },
                    )
                })
                .collect(),
        };

        let services: BTreeMap<String, (RawAuth, RawPrompts)> = raw
            .services
            .into_iter()
            .map(|(k, v)| (k, (v.auth, v.prompts)))
            .collect();
        let config = Config {
            path: path.to_path_buf(),
            portal,
            lockout,
            access,
            auth: raw.auth,
            prompts: raw.prompts,
            services,
            source: None,
        };

        // Cross-key checks, per service profile: the phone wait must end before the host gives up.
        let mut names: Vec<String> = config.services.keys().cloned().collect();
        names.extend(
            config
                .auth
                .vpn_services
                .clone()
                .unwrap_or_else(default_vpn_services),
        );
        names.push(String::new());
        for name in names {
            let auth = config.auth_for(&name);
            let limit = if auth.is_vpn { 60 } else { 120 };
            if auth.phone_timeout_s >= limit {
                let whose = if name.is_empty() {
                    String::new()
                } else {
                    format!(" (service {name})")
                };
                return Err(key_err(
                    "phone_timeout_s",
                    format!(
                        "{}{whose} must be below {limit} s for this service's host",
                        auth.phone_timeout_s
                    ),
                ));
            }
        }
        Ok(Parsed {
            config,
            inline_key,
            redis_password,
        })
    }

    /// The settings for one PAM service: `[auth]` and `[prompts]` with `[services.NAME]` over them.
    pub fn for_service(&self, service: &str) -> Settings {
        Settings {
            service: service.to_string(),
            portal: self.portal.clone(),
            auth: self.auth_for(service),
            lockout: self.lockout.clone(),
            access: self.access.clone(),
            prompts: self.prompts_for(service),
        }
    }

    /// `[auth]` for one PAM service: its `[services.NAME] auth` over `[auth]` over the defaults.
    pub fn auth_for(&self, service: &str) -> AuthSettings {
        let none = RawAuth::default();
        let sa = self.services.get(service).map_or(&none, |(a, _)| a);
        self.auth_over(sa, service)
    }

    /// `[auth]` for a service without a `[services.NAME]` table of its own.
    pub fn auth_without_override(&self, service: &str) -> AuthSettings {
        self.auth_over(&RawAuth::default(), service)
    }

    fn auth_over(&self, sa: &RawAuth, service: &str) -> AuthSettings {
        let a = &self.auth;
        let vpn = sa
            .vpn_services
            .clone()
            .or_else(|| a.vpn_services.clone())
            .unwrap_or_else(default_vpn_services);
        AuthSettings {
            second_factor: sa
                .second_factor
                .or(a.second_factor)
                .unwrap_or(SecondFactor::Auto),
            require_second_factor: sa
                .require_second_factor
                .or(a.require_second_factor)
                .unwrap_or(true),
            is_vpn: vpn.iter().any(|v| v == service),
            question_choice: sa
                .question_choice
                .or(a.question_choice)
                .unwrap_or(QuestionChoice::Random),
            phone_timeout_s: sa.phone_timeout_s.or(a.phone_timeout_s).unwrap_or(45),
            phone_poll_ms: sa.phone_poll_ms.or(a.phone_poll_ms).unwrap_or(1000),
            fail_delay_ms: sa.fail_delay_ms.or(a.fail_delay_ms).unwrap_or(2000),
            show_reasons: sa.show_reasons.or(a.show_reasons).unwrap_or(false),
        }
    }

    /// `[prompts]` for one PAM service: its `[services.NAME] prompts` over `[prompts]` over the
    /// defaults.
    pub fn prompts_for(&self, service: &str) -> PromptSettings {
        let none = RawPrompts::default();
        self.prompts_over(self.services.get(service).map_or(&none, |(_, p)| p))
    }

    /// `[prompts]` for a service without a `[services.NAME]` table of its own.
    pub fn prompts_without_override(&self) -> PromptSettings {
        self.prompts_over(&RawPrompts::default())
    }

    fn prompts_over(&self, sp: &RawPrompts) -> PromptSettings {
        let p = &self.prompts;
        let text = |s: &Option<PromptText>, g: &Option<PromptText>, d: &str| {
            s.as_ref()
                .or(g.as_ref())
                .map_or_else(|| d.to_string(), |t| t.0.clone())
        };
        PromptSettings {
            password: text(&sp.password, &p.password, "Password: "),
            question: text(&sp.question, &p.question, "{question} "),
            code: text(&sp.code, &p.code, "Verification code: "),
            info: sp.info.or(p.info).unwrap_or(true),
            phone_confirm: sp.phone_confirm.or(p.phone_confirm).unwrap_or(false),
        }
    }

    /// The service names that have a `[services.NAME]` profile.
    pub fn service_names(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }
}

/// The result of parsing: the configuration, and whether it holds the API key inline.
pub struct Parsed {
    pub config: Config,
    pub inline_key: bool,
    /// `redis_url` holds a password.
    pub redis_password: bool,
}

fn default_vpn_services() -> Vec<String> {
    vec!["openvpn".to_string(), "ocserv".to_string()]
}

pub const DEFAULT_USER_POLICY: Policy = Policy {
    max_failures: 10,
    window_s: 1800,
    lock_s: 1800,
};
pub const DEFAULT_PHONE_POLICY: Policy = Policy {
    max_failures: 5,
    window_s: 3600,
    lock_s: 3600,
};

/// The line where `key = ` first appears (for errors found after parsing).
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Owned by root or by the effective user; not writable by group or others.
fn check_owner_and_mode(
    path: &Path,
    meta: &std::fs::Metadata,
    secret: bool,
) -> Result<(), ConfigError> {
    let shown = path.display();
    if !crate::pam::owned_by_root_or_us(meta.uid()) {
        return Err(ConfigError(format!(
            "{shown}: owned by uid {}, must be owned by root",
            meta.uid()
        )));
    }
    let forbidden = if secret { 0o066 } else { 0o022 };
    if meta.mode() & forbidden != 0 {
        let what = if secret {
            "readable or writable"
        } else {
            "writable"
        };
        return Err(ConfigError(format!(
            "{shown}: {what} by group or others (mode {:o}); chmod {} it",
            meta.mode() & 0o777,
            if secret { "600" } else { "644" }
        )));
    }
    Ok(())
}

/// Opens `path` once: checks the owner and mode of the file opened (`check_owner_and_mode`),
/// then reads it. I/O errors read `<path>: <what><error>`.
pub(crate) fn read_checked(
    path: &Path,
    secret: bool,
    what: &str,
) -> Result<(std::fs::Metadata, String), ConfigError> {
    let io = |e: std::io::Error| ConfigError(format!("{}: {what}{e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    check_owner_and_mode(path, &meta, secret)?;
    // Room for one byte more than `meta` says: one read(2) takes the file. (File's own
    // read_to_string would ask the kernel for the size again, then read twice.)
    let size = usize::try_from(meta.len()).unwrap_or(0);
    let text = crate::smallfile::read(&mut f, size.saturating_add(1), u64::MAX).map_err(io)?;
    Ok((meta, text))
}

fn read_key_file(path: &Path) -> Result<Secret, String> {
    let (_, text) = read_checked(path, true, "").map_err(|e| e.0)?;
    let key = Secret::new(text.trim().to_string());
    let mut raw = text.into_bytes();
    crate::secret::wipe(&mut raw); // the file's text, with the key in it
    if key.expose().is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("t.toml")).map(|p| p.config)
    }

    #[test]
    fn minimal_file_takes_the_defaults() {
        let c = parse("[portal]\nurl = \"https://api.example.net/rest/v3.1/\"\n").unwrap();
        assert_eq!(c.portal.url, "https://api.example.net/rest/v3.1");
        assert_eq!(c.lockout.user, DEFAULT_USER_POLICY);
        assert_eq!(c.lockout.phone, DEFAULT_PHONE_POLICY);
        assert_eq!(c.lockout.ipv6_prefix, 64);
        let s = c.for_service("sshd");
        assert_eq!(s.auth.second_factor, SecondFactor::Auto);
        assert!(s.auth.require_second_factor);
        assert_eq!(s.auth.fail_delay_ms, 2000);
        assert_eq!(s.prompts.password, "Password: ");
        assert!(!s.auth.is_vpn);
        assert!(c.for_service("openvpn").auth.is_vpn);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[portal]\nurl = \"https://a.example\"\n\n[auth]\nsecond_factr = \"none\"\n")
            .unwrap_err();
        assert!(e.0.contains("line 5"), "{e}");
        assert!(e.0.contains("second_factr"), "{e}");
    }

    #[test]
    fn bad_cidr_names_line() {
        let e =
            parse("[portal]\nurl = \"https://a.example\"\n[access]\ndeny = [\"10.0.0.0/33\"]\n")
                .unwrap_err();
        assert!(e.0.contains("line 4"), "{e}");
        assert!(e.0.contains("10.0.0.0/33"), "{e}");
    }

    #[test]
    fn errors_never_quote_a_value() {
        let e = parse("[portal]\nurl = \"https://a.example\"\napi_key = [\"s3cret-value\"]\n")
            .unwrap_err();
        assert!(e.0.contains("line 3") && !e.0.contains("s3cret"), "{e}");
    }

    #[test]
    fn duplicate_key_is_named() {
        let e = parse("[portal]\nurl = \"https://a.example\"\nurl = \"https://b.example\"\n")
            .unwrap_err();
        assert!(e.0.contains("line 3") && e.0.contains("url"), "{e}");
    }

    #[test]
    fn partial_table_keeps_other_defaults() {
        let c =
            parse("[portal]\nurl = \"https://a.example\"\n[lockout]\nip = { max_failures = 3 }\n")
                .unwrap();
        assert_eq!(
            c.lockout.ip,
            Policy {
                max_failures: 3,
                window_s: 1800,
                lock_s: 1800
            }
        );
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(parse("[portal]\nurl = \"http://127.0.0.1:8080/rest/v3.1\"\n").is_ok());
        assert!(parse("[portal]\nurl = \"http://[::1]:8080/rest\"\n").is_ok());
        let e = parse("[portal]\nurl = \"http://api.example.net/rest\"\n").unwrap_err();
        assert!(e.0.contains("line 2") && e.0.contains("loopback"), "{e}");
        assert!(parse("[portal]\nurl = \"ftp://x/\"\n").is_err());
    }

    #[test]
    fn missing_url_is_refused() {
        let e = parse("[portal]\napi_user = \"x\"\n").unwrap_err();
        assert!(e.0.contains("url"), "{e}");
    }

    #[test]
    fn services_override_auth_and_prompts() {
        let c = parse(
            "[portal]\nurl = \"https://a.example\"\n[prompts]\nquestion = \"Q: \"\n[services.openvpn]\nprompts = { question = \"Answer: \", info = false }\nauth = { question_choice = \"first\" }\n",
        )
        .unwrap();
        let o = c.for_service("openvpn");
        assert_eq!(o.prompts.question, "Answer: ");
        assert!(!o.prompts.info);
        assert_eq!(o.auth.question_choice, QuestionChoice::First);
        let s = c.for_service("sshd");
        assert_eq!(s.prompts.question, "Q: ");
        assert!(s.prompts.info);
        assert_eq!(s.auth.question_choice, QuestionChoice::Random);
    }

    #[test]
    fn phone_timeout_bounded_by_host() {
        assert!(parse("[portal]\nurl = \"https://a.example\"\n[auth]\nphone_timeout_s = 90\nvpn_services = []\n").is_ok());
        let e = parse("[portal]\nurl = \"https://a.example\"\n[auth]\nphone_timeout_s = 90\n")
            .unwrap_err();
        assert!(
            e.0.contains("phone_timeout_s") && e.0.contains("openvpn"),
            "{e}"
        );
    }

    #[test]
    fn bad_enum_value_names_line() {
        let e = parse("[portal]\nurl = \"https://a.example\"\non_unavailable = \"maybe\"\n")
            .unwrap_err();
        assert!(e.0.contains("line 3"), "{e}");
    }

    #[test]
    fn redis_backend_settings() {
        let base = "[portal]\nurl = \"https://a.example\"\n[lockout]\n";
        let c = parse(&format!(
            "{base}backend = \"redis\"\nredis_url = \"redis://127.0.0.1:6380/2\"\n"
        ))
        .unwrap();
        let r = c.lockout.redis.unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.db, r.tls),
            ("127.0.0.1", 6380, 2, false)
        );
        assert_eq!(r.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(r.timeout, Duration::from_millis(500));
        assert!(r.password.is_none());
        let c = parse(&format!(
            "{base}backend = \"redis\"\nredis_url = \"rediss://ops:p%40ss:w@[::1]\"\nkey_prefix = \"vpn:\"\nredis_timeout_ms = 200\n"
        ))
        .unwrap();
        let r = c.lockout.redis.unwrap();
        assert_eq!((r.host.as_str(), r.port, r.tls), ("::1", 6379, true));
        assert_eq!(r.username.as_deref(), Some("ops"));
        assert_eq!(r.password.as_ref().map(|p| p.expose()), Some("p@ss:w"));
        assert_eq!(r.shown(), "rediss://[::1]:6379");
        assert!(!format!("{r:?}").contains("p@ss"));
        assert_eq!(c.lockout.backend, Backend::Redis);
    }

    #[test]
    fn redis_errors_name_key_and_line_never_the_password() {
        let base = "[portal]\nurl = \"https://a.example\"\n[lockout]\nbackend = \"redis\"\n";
        for url in [
            "http://h:1",
            "redis://:s3cret@:6379",
            "redis://:s3cret@h:0",
            "redis://:s3cret@h:99999",
            "redis://:s3cret@h:1/x",
            "redis://s3cret@h:1",
            "redis://:s3cret@h x:1",
        ] {
            let e = parse(&format!("{base}redis_url = \"{url}\"\n")).unwrap_err();
            assert!(
                e.0.contains("line 5") && e.0.contains("redis_url"),
                "{url}: {e}"
            );
            assert!(!e.0.contains("s3cret"), "{url}: {e}");
        }
        let e = parse(base).unwrap_err();
        assert!(e.0.contains("line 4") && e.0.contains("redis_url"), "{e}");
        let e =
            parse("[portal]\nurl = \"https://a.example\"\n[lockout]\nredis_url = \"redis://h\"\n")
                .unwrap_err();
        assert!(e.0.contains("line 4") && e.0.contains("backend"), "{e}");
        let e = parse(&format!(
            "{base}redis_url = \"redis://h\"\nredis_timeout_ms = 0\n"
        ))
        .unwrap_err();
        assert!(e.0.contains("line 6"), "{e}");
        let e = parse(&format!(
            "{base}redis_url = \"redis://h\"\nkey_prefix = \"a*\"\n"
        ))
        .unwrap_err();
        assert!(e.0.contains("line 6") && e.0.contains("key_prefix"), "{e}");
        let e = parse(&format!(
            "{base}redis_url = \"redis://h\"\nredis_ca_file = \"/etc/hostname\"\n"
        ))
        .unwrap_err();
        assert!(e.0.contains("rediss"), "{e}");
        let e = parse(&format!("{base}redis_url = \"redis://h\"\nbackend2 = 1\n")).unwrap_err();
        assert!(e.0.contains("backend2"), "{e}");
    }
}
