//! The admin command `pam-portal` (SPEC §9): the same configuration and lockout store as the
//! module. Errors are one line naming the fix; exit codes: 0 fine, 1 a problem found, 2 usage.

use crate::access;
use crate::audit;
use crate::config::{Config, Policy, Settings};
use crate::lockout::files::FileStore;
use crate::lockout::{Key, Store};
use crate::login::{RealWorld, World};
use std::path::PathBuf;

const USAGE: &str = "usage: pam-portal [--config PATH] status [--user NAME | --ip ADDR] [--json]
       pam-portal [--config PATH] reset (--user NAME | --ip ADDR | --phone NAME | --all)
       pam-portal [--config PATH] check";

pub fn main(args: Vec<String>) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(Failure::Usage(m)) => {
            eprintln!("pam-portal: {m}\n{USAGE}");
            2
        }
        Err(Failure::Problem(m)) => {
            eprintln!("pam-portal: {m}");
            1
        }
    }
}

enum Failure {
    Usage(String),
    Problem(String),
}

struct Parsed {
    config: PathBuf,
    command: String,
    user: Option<String>,
    ip: Option<String>,
    phone: Option<String>,
    all: bool,
    json: bool,
}

fn parse(args: Vec<String>) -> Result<Parsed, Failure> {
    let mut p = Parsed {
        config: PathBuf::from(crate::config::DEFAULT_PATH),
        command: String::new(),
        user: None,
        ip: None,
        phone: None,
        all: false,
        json: false,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| Failure::Usage(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--config" => p.config = PathBuf::from(value("--config")?),
            "--user" => p.user = Some(value("--user")?),
            "--ip" => p.ip = Some(value("--ip")?),
            "--phone" => p.phone = Some(value("--phone")?),
            "--all" => p.all = true,
            "--json" => p.json = true,
            "-h" | "--help" => return Err(Failure::Usage("help".into())),
            c if !c.starts_with('-') && p.command.is_empty() => p.command = c.to_string(),
            other => return Err(Failure::Usage(format!("unexpected argument {other:?}"))),
        }
    }
    Ok(p)
}

fn load(p: &Parsed) -> Result<(Settings, FileStore), Failure> {
    let config = Config::load(&p.config).map_err(|e| {
        Failure::Problem(format!("{e} (fix the file, then run `pam-portal check`)"))
    })?;
    let s = config.for_service("");
    let longest = [
        s.lockout.user.window_s,
        s.lockout.ip.window_s,
        s.lockout.phone.window_s,
        s.lockout.user.lock_s,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let store = FileStore::open(&s.lockout.dir, longest).map_err(|e| Failure::Problem(e.0))?;
    Ok((s, store))
}

fn ip_key(s: &Settings, text: &str) -> Result<Key, Failure> {
    let ip = access::parse_rhost(Some(text))
        .ok_or_else(|| Failure::Usage(format!("{text:?} is not an IP address")))?;
    Ok(Key::Ip(access::address_key(ip, s.lockout.ipv6_prefix)))
}

fn policy<'a>(s: &'a Settings, key: &Key) -> &'a Policy {
    match key {
        Key::User(_) => &s.lockout.user,
        Key::Ip(_) => &s.lockout.ip,
        Key::Phone(_) => &s.lockout.phone,
    }
}

fn run(args: Vec<String>) -> Result<i32, Failure> {
    let p = parse(args)?;
    match p.command.as_str() {
        "status" => status(&p),
        "reset" => reset(&p),
        "check" => check(&p),
        "" => Err(Failure::Usage("no command given".into())),
        c => Err(Failure::Usage(format!("unknown command {c:?}"))),
    }
}

fn status(p: &Parsed) -> Result<i32, Failure> {
    let (s, store) = load(p)?;
    let keys = match (&p.user, &p.ip) {
        (Some(u), None) => vec![
            Key::User(u.as_bytes().to_vec()),
            Key::Phone(u.as_bytes().to_vec()),
        ],
        (None, Some(ip)) => vec![ip_key(&s, ip)?],
        (None, None) => store.keys().map_err(|e| Failure::Problem(e.0))?,
        _ => return Err(Failure::Usage("give --user or --ip, not both".into())),
    };
    let now = RealWorld::default().now();
    let mut rows = Vec::new();
    for key in keys {
        let pol = policy(&s, &key);
        let t = store
            .tally(&key, now, pol)
            .map_err(|e| Failure::Problem(e.0))?;
        rows.push((key, t, *pol));
    }
    for w in store.take_warnings() {
        eprintln!("pam-portal: warning: {w}");
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
                    "locked": t.locked_for.is_some(),
                    "lock_left_s": t.locked_for.unwrap_or(0),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!("{:<6} {:<40} {:>9} LOCK", "KIND", "KEY", "FAILURES");
        for (k, t, pol) in &rows {
            let lock = t
                .locked_for
                .map_or_else(|| "-".to_string(), |l| format!("locked, {l} s left"));
            let fails = format!("{}/{}", t.failures, pol.max_failures);
            println!(
                "{:<6} {:<40} {:>9} {lock}",
                k.kind(),
                audit::escape_bytes(k.value_bytes()),
                fails
            );
        }
    }
    Ok(0)
}

fn reset(p: &Parsed) -> Result<i32, Failure> {
    let (s, store) = load(p)?;
    let keys = match (&p.user, &p.ip, &p.phone, p.all) {
        (Some(u), None, None, false) => vec![Key::User(u.as_bytes().to_vec())],
        (None, Some(ip), None, false) => vec![ip_key(&s, ip)?],
        (None, None, Some(u), false) => vec![Key::Phone(u.as_bytes().to_vec())],
        (None, None, None, true) => store.keys().map_err(|e| Failure::Problem(e.0))?,
        _ => {
            return Err(Failure::Usage(
                "reset takes exactly one of --user, --ip, --phone, --all".into(),
            ))
        }
    };
    let by = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid {}", crate::pam::geteuid()));
    for key in keys {
        store.clear(&key).map_err(|e| Failure::Problem(e.0))?;
        let line = format!(
            "result=reset {}={} by={}",
            key.kind(),
            audit::escape_bytes(key.value_bytes()),
            audit::escape(&by)
        );
        crate::pam::syslog_authpriv(libc::LOG_NOTICE, &line);
        println!("{line}");
    }
    Ok(0)
}

fn check(p: &Parsed) -> Result<i32, Failure> {
    let config = Config::load(&p.config).map_err(|e| Failure::Problem(e.0))?;
    FileStore::open(&config.lockout.dir, 1).map_err(|e| Failure::Problem(e.0))?;
    println!("{}: configuration valid", p.config.display());
    Ok(0)
}
