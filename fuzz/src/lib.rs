//! The fuzzing harnesses of pam_portal's parsers, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, run by `scripts/fuzz.sh`) and by the regression test
//! `tests/fuzz_regressions.rs`, which runs every saved crash input and a sample of each corpus
//! through the same functions on the stable toolchain.
//!
//! Each harness feeds one input to the module's own parser, exactly as the module does, and then
//! checks properties that must hold for ANY input. A panic (a crash of the parser, an arithmetic
//! overflow in a debug build, or a violated property) is a finding.
//!
//! | target | parser | properties |
//! |---|---|---|
//! | `config` | `Config::parse` (the TOML file) | validated values stay in range for every service profile; a plain `http://` URL reaches loopback only, as the HTTP client parses it; an error names the file and never quotes an inline `api_key` |
//! | `portal_answer` | `wire::decode` + `parse_users` / `parse_questions` / `parse_verdict` / `parse_phones` | only HTTP 200 without an `error` key is an answer; the look-up returns only the exact username; a token verdict needs a 200 with a non-empty `hash` and a numeric `userId` |
//! | `address` | `parse_rhost`, `Cidr::parse`, `user_allows` (portal `ipAddressRestriction`), `address_key`, `audit::escape_bytes` | canonical forms re-parse to the same value; no IPv4-mapped address escapes IPv4 rules; a restriction never admits "no address"; escaped log values are printable, unsplittable ASCII |
//! | `lockout_record` | `lockout::files::parse` / `serialize`, `FileStore` reading the record from disk, the counting rules, file names, the question cache reader | a record that parses re-serializes to itself; counting one failure adds exactly one or starts the lock (never loses one); nothing counted while locked; file names stay one path component |
//!
//! Inputs are byte strings; the first byte(s) of some targets choose a variant (documented at
//! each function) so that one corpus explores every parser of the target.

use pam_portal::access::{self, Cidr, UserIpRefusal};
use pam_portal::audit;
use pam_portal::config::{Config, Policy};
use pam_portal::decision::msg_locked;
use pam_portal::lockout::files::{self, FileStore};
use pam_portal::lockout::{Key, Record, Store, MAX_FAILURES_KEPT};
use pam_portal::portal::wire::{self, WireError};
use pam_portal::portal::{self, Verdict};
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file name every configuration error must start with.
const CONFIG_PATH: &str = "/etc/security/pam_portal.toml";

/// A marker the config corpus uses as an inline API key: when it appears exactly once, as the
/// value of `api_key = "…"`, no error message may contain it.
pub const KEY_MARKER: &str = "K3y-Mark3r-7f3c9a1e";

// ---- config -----------------------------------------------------------------------------------

/// `Config::parse` on the input as the module reads the file (UTF-8; anything else is refused by
/// `read_to_string` before the parser). Inputs naming files under /proc, /dev or /sys (or using
/// TOML unicode escapes that could spell them) are skipped: the parser reads `api_key_file` and
/// checks `ca_file`, and a fuzzer must not read /proc/kcore.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/proc", "/dev", "/sys", "\\u", "\\U", "kcore"]
        .iter()
        .any(|bad| text.contains(bad))
    {
        return;
    }
    match Config::parse(text, Path::new(CONFIG_PATH)) {
        Ok(parsed) => {
            let c = parsed.config;
            let mut names = c.service_names();
            names.extend(["", "sshd", "openvpn", "ocserv", "test"].map(String::from));
            for name in &names {
                check_settings(&c.for_service(name));
            }
        }
        Err(e) => {
            assert!(
                e.0.starts_with(CONFIG_PATH),
                "a configuration error does not name the file: {:?}",
                e.0
            );
            let inline = format!("api_key = \"{KEY_MARKER}\"");
            if text.matches(KEY_MARKER).count() == 1 && text.contains(&inline) {
                assert!(
                    !e.0.contains(KEY_MARKER),
                    "a configuration error quotes the inline api_key: {:?}",
                    e.0
                );
            }
        }
    }
}

fn check_policy(p: &Policy, what: &str) {
    assert!(
        (1..=10_000).contains(&p.max_failures),
        "{what}.max_failures {}",
        p.max_failures
    );
    let month = 31 * 24 * 3600;
    assert!((1..=month).contains(&p.window_s), "{what}.window_s");
    assert!((1..=month).contains(&p.lock_s), "{what}.lock_s");
}

fn check_settings(s: &pam_portal::config::Settings) {
    let url = &s.portal.url;
    assert!(
        url.starts_with("https://") || url.starts_with("http://"),
        "accepted url {url:?}"
    );
    // What the HTTP client will connect to: `{url}/Service/method.json`, parsed as ureq does.
    let call = format!("{url}/SoftLayer_Account/getUsers.json");
    if let Ok(uri) = call.parse::<ureq::http::Uri>() {
        if uri.scheme_str() == Some("http") {
            let host = uri.host().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            assert!(
                loopback,
                "plain http:// accepted for a non-loopback host {host:?} ({url:?})"
            );
        }
    }
    let budget = s.portal.connect_timeout + s.portal.request_timeout;
    assert!(budget.as_millis() >= 2 && budget.as_millis() <= 1_200_000);
    assert!(s.lockout.dir.is_absolute(), "{:?}", s.lockout.dir);
    check_policy(&s.lockout.user, "user");
    check_policy(&s.lockout.ip, "ip");
    check_policy(&s.lockout.phone, "phone");
    assert!((1..=128).contains(&s.lockout.ipv6_prefix));
    let limit = if s.auth.is_vpn { 60 } else { 120 };
    assert!(s.auth.phone_timeout_s >= 1 && s.auth.phone_timeout_s < limit);
    assert!(s.auth.fail_delay_ms <= 60_000);
    for p in [&s.prompts.password, &s.prompts.question, &s.prompts.code] {
        assert!(p.len() <= 512 && !p.contains('\0'), "prompt {p:?}");
    }
    for c in s.access.allow.iter().chain(&s.access.deny) {
        let again = Cidr::parse(&c.to_string());
        assert_eq!(again.as_ref(), Ok(c), "CIDR {c} does not re-parse");
    }
}

// ---- portal answers ---------------------------------------------------------------------------

/// The statuses the first byte chooses from (200 most often).
const STATUSES: [u16; 12] = [200, 200, 200, 200, 500, 401, 404, 503, 429, 302, 201, 204];

/// Byte 0: the HTTP status (`STATUSES`); byte 1: which call's parser reads the answer
/// (0 getUsers, 1 getAllObjects, 2 getPortalLoginToken / performExternalAuthentication,
/// 3 getPhoneData, 4 the tolerant scalars); the rest: the body.
pub fn portal_answer(data: &[u8]) {
    let [s, which, body @ ..] = data else {
        return;
    };
    let status = STATUSES[*s as usize % STATUSES.len()];
    let decoded = wire::decode(status, body);
    if let Ok(v) = &decoded {
        assert_eq!(status, 200, "a non-200 answer was accepted: {v}");
        assert!(
            v.as_object().is_none_or(|o| !o.contains_key("error")),
            "a body with an `error` key was accepted: {v}"
        );
    }
    match which % 5 {
        0 => {
            if let Ok(v) = decoded {
                for name in ["alice", "*= alice", "_= alice", "", "ALICE"] {
                    if let Ok(Some(u)) = portal::parse_users(v.clone(), name) {
                        assert_eq!(u.username, name, "the look-up returned another user");
                    }
                }
            }
        }
        1 => {
            if let Ok(v) = decoded {
                let _ = portal::parse_questions(v);
            }
        }
        2 => {
            let verdict = portal::parse_verdict(decoded.clone());
            if verdict == Ok(Verdict::Token) {
                let v = decoded.as_ref().ok();
                let hash_ok = v
                    .and_then(|v| v.get("hash"))
                    .and_then(Value::as_str)
                    .is_some_and(|h| !h.is_empty());
                let id_ok = v.and_then(|v| v.get("userId")).is_some_and(Value::is_u64);
                assert!(
                    status == 200 && hash_ok && id_ok,
                    "a token verdict without a token (status {status}): {:?}",
                    String::from_utf8_lossy(body)
                );
            }
            if let Err(WireError::Garbled(_)) = decoded {
                assert!(verdict.is_err(), "a garbled answer decided a login");
            }
        }
        3 => {
            if let Ok(v) = decoded {
                if let Ok(phones) = portal::parse_phones(v) {
                    assert!(phones.iter().all(|p| !p.number.is_empty()));
                    // PRIMARY phones first.
                    let first_backup = phones.iter().position(|p| p.backup);
                    if let Some(i) = first_backup {
                        assert!(phones[i..].iter().all(|p| p.backup), "PRIMARY after BACKUP");
                    }
                }
            }
        }
        _ => {
            if let Ok(v) = decoded {
                let _ = wire::as_list(v.clone());
                for k in ["id", "active", "userId", "questionId"] {
                    let _ = wire::flag(v.get(k));
                    let _ = wire::int(v.get(k));
                }
            }
        }
    }
}

// ---- addresses --------------------------------------------------------------------------------

/// The input (lossily decoded, as the module reads `PAM_RHOST`) as a client address, as a CIDR
/// entry, and as a portal `ipAddressRestriction`; the raw bytes through the log escaping.
pub fn address(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let ip = access::parse_rhost(Some(&text));
    if let Some(ip) = ip {
        if let IpAddr::V6(v6) = ip {
            assert!(
                v6.to_ipv4_mapped().is_none(),
                "{ip} is IPv4-mapped: it would escape IPv4 lists"
            );
        }
        assert_eq!(
            access::parse_rhost(Some(&ip.to_string())),
            Some(ip),
            "{ip} does not re-parse"
        );
        for prefix in [1u8, 48, 56, 64, 128, (data.len() % 128) as u8 + 1] {
            let k = access::address_key(ip, prefix);
            assert!(
                k.len() <= 64 && k.bytes().all(|b| b.is_ascii_graphic()),
                "address key {k:?}"
            );
            let name = files::file_name(&Key::Ip(k.clone()));
            assert_eq!(files::key_of_file_name(&name), Some(Key::Ip(k)));
        }
        // The bracketed form is the same address.
        assert_eq!(access::parse_rhost(Some(&format!("[{ip}]"))), Some(ip));
    }
    if let Ok(c) = Cidr::parse(&text) {
        let shown = c.to_string();
        assert_eq!(Cidr::parse(&shown), Ok(c), "{shown} does not re-parse");
        if let Some((net, _)) = shown.split_once('/') {
            let net: IpAddr = net.parse().expect("a CIDR's network is an address");
            assert!(c.contains(net), "{shown} does not contain its network");
        }
        if let Some(ip) = ip {
            // A bare address (no prefix) contains exactly itself.
            if !text.contains('/') {
                assert!(c.contains(ip), "{text:?} as a CIDR does not contain {ip}");
            }
        }
    }
    // The input as the portal's ipAddressRestriction, for the address it names and for none.
    let restricted = !text.trim().is_empty();
    assert_eq!(
        access::user_allows(None, Some(&text), None).is_err(),
        restricted,
        "restriction {text:?} and no address"
    );
    if restricted {
        assert_eq!(
            access::user_allows(None, Some(&text), None),
            Err(UserIpRefusal::NoAddress)
        );
    }
    for probe in ["198.51.100.7", "2001:db8::1", "10.0.0.1"] {
        let p: IpAddr = probe.parse().expect("probe");
        let r = access::user_allows(None, Some(&text), Some(p));
        if !restricted {
            assert_eq!(r, Ok(()));
        }
    }
    check_escape(data);
}

/// `audit::escape_bytes`: printable ASCII only, no blank, `=` or `%`, a `"` only in the empty
/// marker, and every `\` starts a `\xHH` escape, so a value can neither split nor forge a line.
pub fn check_escape(data: &[u8]) {
    let e = audit::escape_bytes(data);
    if e == "\"\"" {
        assert!(data.is_empty());
        return;
    }
    let b = e.as_bytes();
    assert!(
        b.iter()
            .all(|&c| c.is_ascii_graphic() && !matches!(c, b'=' | b'%' | b'"')),
        "escaped value {e:?}"
    );
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            assert!(
                i + 3 < b.len()
                    && b[i + 1] == b'x'
                    && b[i + 2].is_ascii_hexdigit()
                    && b[i + 3].is_ascii_hexdigit(),
                "a backslash that is not a \\xHH escape in {e:?}"
            );
            i += 4;
        } else {
            i += 1;
        }
    }
    assert!(e.len() <= 128 * 4 + 3, "escaped value not bounded");
}

// ---- lockout records --------------------------------------------------------------------------

/// The policies a record is counted under: the defaults, the extremes the configuration allows.
const POLICIES: [Policy; 4] = [
    pam_portal::config::DEFAULT_USER_POLICY,
    pam_portal::config::DEFAULT_PHONE_POLICY,
    Policy {
        max_failures: 1,
        window_s: 1,
        lock_s: 1,
    },
    Policy {
        max_failures: 10_000,
        window_s: 31 * 24 * 3600,
        lock_s: 31 * 24 * 3600,
    },
];

fn fixed_key(sel: u8) -> Key {
    match sel % 3 {
        0 => Key::User(b"alice".to_vec()),
        1 => Key::Ip("198.51.100.7".to_string()),
        _ => Key::Phone(b"bob".to_vec()),
    }
}

/// The key a record's own `key KIND HEX` line names, if any.
fn key_of_text(text: &str) -> Option<Key> {
    let line = text.lines().nth(1)?;
    let mut w = line.split(' ');
    let (_, kind, hex) = (w.next()?, w.next()?, w.next()?);
    let prefix = match kind {
        "user" => "u",
        "ip" => "i",
        "phone" => "p",
        _ => return None,
    };
    files::key_of_file_name(&format!("{prefix}_{hex}"))
}

/// Byte 0 chooses the reader: `% 8` in 0..=5: `lockout::files::parse` with a fixed key (0–2) or
/// the key the record names (3–5); 6: the whole store reading the bytes from disk (`FileStore`,
/// any bytes, UTF-8 or not); 7: the question cache reader (`portal::cache::read`). `byte0 / 8`
/// moves the clock. The rest: the file's content.
pub fn lockout_record(data: &[u8]) {
    let [sel, body @ ..] = data else {
        return;
    };
    let now = 1_700_000_000 + u64::from(*sel / 8) * 97;
    match sel % 8 {
        6 => return from_disk(body, now),
        7 => return question_cache(body, now),
        _ => {}
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let key = if sel % 8 < 3 {
        fixed_key(*sel)
    } else {
        match key_of_text(text) {
            Some(k) => k,
            None => return,
        }
    };
    let name = files::file_name(&key);
    assert!(!name.contains('/') && name.len() < 256 && name != "." && name != "..");
    if let Ok(record) = files::parse(text, &key) {
        check_record(&record, &key, now);
    }
    // Any text as a directory entry name: keys() must not misread it.
    if let Some(k) = files::key_of_file_name(text) {
        let n = files::file_name(&k);
        assert!(!n.contains('/'), "{n:?}");
        if k.value_bytes().len() <= 100 {
            assert_eq!(files::key_of_file_name(&n), Some(k));
        }
    }
}

/// The counting rules on a record read from disk (SPEC §7).
pub fn check_record(record: &Record, key: &Key, now: u64) {
    assert!(record.failures.len() <= MAX_FAILURES_KEPT + 1);
    let text = files::serialize(record, key);
    assert_eq!(
        files::parse(&text, key).as_ref(),
        Ok(record),
        "a record does not survive its own round trip"
    );
    for policy in &POLICIES {
        let before = record.tally(now, policy);
        if let Some(left) = before.locked_for {
            let _ = msg_locked(left);
        }
        let mut r = record.clone();
        let after = r.add_failure(now, policy);
        match before.locked_for {
            Some(left) => {
                assert_eq!(after.locked_for, Some(left), "a lock changed while locked");
                assert!(!after.triggered);
                assert_eq!(&r, record, "a failure was counted while locked");
            }
            None => {
                assert!(
                    after.triggered || after.failures == before.failures + 1,
                    "one failure did not add one: {} then {} ({policy:?})",
                    before.failures,
                    after.failures
                );
                if after.triggered {
                    assert_eq!(after.locked_for, Some(policy.lock_s));
                }
            }
        }
        assert!(r.failures.len() <= policy.max_failures as usize);
        let _ = r.is_stale(now, policy.window_s);
        let again = files::serialize(&r, key);
        assert_eq!(files::parse(&again, key).as_ref(), Ok(&r));
    }
}

thread_local! {
    /// This thread's scratch directory (`$TMPDIR/pam_portal-fuzz.<pid>.<n>`): tests run their
    /// harnesses on parallel threads, and the disk harnesses write fixed file names.
    static SCRATCH: PathBuf = {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "pam_portal-fuzz.{}.{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::create_dir_all(&d);
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        d
    };
}

fn scratch_dir() -> PathBuf {
    SCRATCH.with(|d| d.clone())
}

/// Deletes this thread's scratch directory, if it made one (the regression tests call it when
/// done; scripts/fuzz.sh removes those of finished fuzzing processes).
pub fn remove_scratch_dir() {
    let _ = SCRATCH.try_with(|d| std::fs::remove_dir_all(d));
}

/// The bytes as alice's record on disk, read by the real store; then one failure counted.
fn from_disk(body: &[u8], now: u64) {
    let dir = scratch_dir().join("lock");
    let store = match FileStore::open(&dir, 3600) {
        Ok(s) => s,
        Err(e) => panic!("scratch store: {}", e.0),
    };
    let key = Key::User(b"alice".to_vec());
    let path = dir.join(files::file_name(&key));
    if std::fs::write(&path, body).is_err() {
        return;
    }
    let policy = &POLICIES[0];
    let before = match store.tally(&key, now, policy) {
        Ok(t) => t,
        Err(e) => panic!("reading a record failed: {}", e.0),
    };
    let damaged = !store.take_warnings().is_empty();
    let after = match store.record_failure(&key, now, policy) {
        Ok(t) => t,
        Err(e) => panic!("updating a record failed: {}", e.0),
    };
    if damaged {
        assert_eq!(before.failures, 0, "a damaged record counted");
    }
    if before.locked_for.is_none() {
        assert!(after.triggered || after.failures == before.failures + 1);
    }
    // What is on disk now is a valid record again (or nothing, if it was stale).
    if let Ok(text) = std::fs::read_to_string(&path) {
        assert!(
            files::parse(&text, &key).is_ok(),
            "the store wrote a record it cannot read: {text:?}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// The bytes as the question cache file.
fn question_cache(body: &[u8], now: u64) {
    let path = scratch_dir().join("questions.cache");
    if std::fs::write(&path, body).is_err() {
        return;
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now);
    for url in ["https://api.example.net/rest/v3.1", ""] {
        if let Some(q) = portal::cache::read(&path, url, at) {
            assert!(!q.is_empty(), "an empty question list from the cache");
        }
    }
    let _ = std::fs::remove_file(&path);
}
