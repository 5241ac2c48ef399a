//! Hostile input through libpam (issue 6 §2), and the portal faults tests/faults.rs leaves out
//! (§3): the `on_unavailable = "ignore"` outcome for every fault, and faults on the calls of
//! the second factors (question texts, TOTP codes, the phone binding).
//!
//! Every login here runs in its own `pam-drive` process through the real libpam, under
//! pam_wrapper so that the module's `pam_syslog` lines can be read. Each one must end in a
//! refusal or a correct login, and never in
//! - a crash (pam-drive reports, nothing panicked),
//! - a success it should not get (only alice's exact credentials, or an answer the portal
//!   itself accepts, log in),
//! - a file outside the lockout directory, or a lockout record shared by two different names,
//! - a raw string in the log: every log line is printable ASCII on one line, and the `user=`
//!   and `rhost=` values decode (`\xHH`) to exactly the bytes given (cut at 128),
//! - a password or answer in a log line or a client message.
//!
//! The figures (logins tried, refusals, correct logins, wrong admissions) are printed with
//! `--nocapture` and recorded in SECURITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pam_portal::lockout::files::{file_name, key_of_file_name};
use pam_portal::lockout::Key;
use pam_testkit::codes::*;
use pam_testkit::fixtures::{self, msg, *};
use pam_testkit::{closed_port_url, standard, Env, Exhausted, LogLine, Outcome, Sim};
use serde_json::{json, Value};

/// Limits far out of the way: hostile names fail many times from one address.
const HIGH_LIMITS: &str = r#"
[lockout]
user = { max_failures = 1000, window_s = 600, lock_s = 600 }
ip = { max_failures = 10000, window_s = 600, lock_s = 600 }
"#;

/// alice's right credentials from [`CLIENT`] (not under pam_wrapper).
fn alice_ok(env: &Env) -> Outcome {
    env.login()
        .rhost(CLIENT)
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .run()
}

// ---- the catalogue ------------------------------------------------------------------------------

/// Hostile byte strings by category (no NUL: a C string cannot carry one).
fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut add = |cat: &'static str, items: &[&[u8]]| {
        for i in items {
            v.push((cat, i.to_vec()));
        }
    };
    add(
        "control",
        &[
            b"\x01\x02\x03",
            b"ali\x1bce",
            b"\x1b[2J\x1b[31malice\x07",
            b"alice\x7f",
            b"\x08\x08\x08root",
            b"\t",
        ],
    );
    add(
        "newline",
        &[
            b"alice\nresult=success reason=ok user=alice",
            b"\n",
            b"alice\r\n",
            b"alice\rroot",
            b"a\x0bb\x0cc",
        ],
    );
    add(
        "format",
        &[
            b"%n%n%n%n%n%n",
            b"%s%s%s%s%s%s%s%s",
            b"%x%x%x%p%p",
            b"%1$n%99999999d",
            b"{}{:?}{0}",
        ],
    );
    add(
        "invalid-utf8",
        &[
            b"\xff\xfe\xfd",
            b"alice\xc3\x28",
            b"\xed\xa0\x80",
            b"\xc0\xaf\xc0\xae",
            b"\xf4\x90\x80\x80",
            b"alice\x80",
        ],
    );
    add(
        "path",
        &[
            b"..",
            b".",
            b"../../../../../../etc/passwd",
            b"/etc/shadow",
            b"/",
            b"./alice",
            b"alice/../bob",
            b"....//....//",
            b"..\\..\\windows",
            b"%2e%2e%2f%2e%2e%2f",
            b"u_616c696365",
            b".pruned",
            b"questions.cache",
        ],
    );
    add(
        "json",
        &[
            b"\"",
            b"alice\",\"x\":\"",
            b"{\"operation\":\"alice\"}",
            b"alice\"}},\"id\":{\"operation\":2001}}",
            b"\\u0000alice",
            b"]}",
            b"alice\\",
            b"*= alice",
            b"_= alice",
            b"~ alice",
            b"$ne",
        ],
    );
    add(
        "url",
        &[
            b"alice&objectMask=mask[id]",
            b"alice?x=1#frag",
            b"alice%00",
            b"alice%26objectFilter%3D",
            b"a+b",
            b"alice;bob",
            b"../../SoftLayer_Account/getUsers",
            b"%0d%0aX-Injected:%201",
            b"alice\r\nX-Injected: 1",
        ],
    );
    add(
        "unicode",
        &[
            "ａｌｉｃｅ".as_bytes(),
            "alıce".as_bytes(),
            "alice\u{200b}".as_bytes(),
            "\u{202e}ecila".as_bytes(),
            "al\u{0301}ice".as_bytes(),
            "ALICE".as_bytes(),
        ],
    );
    let binary: Vec<u8> = (1u8..=255).collect();
    let mut pseudo = Vec::new();
    let mut x: u32 = 0x9e37_79b9;
    while pseudo.len() < 300 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = (x & 0xff) as u8;
        if b != 0 {
            pseudo.push(b);
        }
    }
    v.push(("binary", binary));
    v.push(("binary", pseudo));
    v.push(("long", vec![b'a'; 129]));
    v.push(("long", vec![b'a'; 256]));
    v.push(("long", vec![b'%'; 4096]));
    v.push(("long", "€".repeat(10_000).into_bytes()));
    v.push(("long", vec![b'x'; 60_000]));
    v
}

// ---- checks on one login ------------------------------------------------------------------------

/// Decodes a log value: `\xHH` escapes, `""` for the empty value, `...` marking a cut.
fn decode_logged(v: &str) -> (Vec<u8>, bool) {
    if v == "\"\"" {
        return (Vec::new(), false);
    }
    let (body, cut) = match v.strip_suffix("...") {
        Some(b) => (b, true),
        None => (v, false),
    };
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("");
            out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad escape in {v:?}")));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    (out, cut)
}

/// The logged value of `key` is `raw` (cut at 128 bytes), escaped.
fn logged_as(l: &LogLine, key: &str, raw: &[u8]) {
    let v = l
        .field(key)
        .unwrap_or_else(|| panic!("no {key}= in {:?}", l.text));
    let (bytes, cut) = decode_logged(&v);
    let want = &raw[..raw.len().min(128)];
    assert_eq!(
        bytes,
        want,
        "{key}= does not decode to the input: {v:?} for {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(60)])
    );
    assert_eq!(cut, raw.len() > 128, "{key}= cut marker: {v:?}");
}

/// Everything the module logged is one printable-ASCII physical line per call, with at most
/// one decision line, which names `user` and `rhost` as given; no secret anywhere in the log or
/// in the client's messages; nothing panicked.
fn check_clean(o: &Outcome, user: &[u8], rhost: Option<&[u8]>, secrets: &[&[u8]]) -> LogLine {
    assert_eq!(o.start, PAM_SUCCESS, "pam_start: {}", o.describe());
    assert!(
        !o.stderr.contains("panicked"),
        "a panic in the host: {}",
        o.describe()
    );
    let lines = o.log_lines();
    for l in &lines {
        assert!(
            l.continuation.is_empty(),
            "a raw line break in a log line: {:?}",
            l.full_text()
        );
        assert!(
            l.text.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "a raw byte in a log line: {:?}",
            l.text
        );
    }
    let decisions: Vec<&LogLine> = lines.iter().filter(|l| l.is_decision()).collect();
    assert_eq!(decisions.len(), 1, "decision lines: {lines:#?}");
    let d = decisions[0].clone();
    let results = d.pairs().into_iter().filter(|(k, _)| k == "result").count();
    assert_eq!(results, 1, "an injected field in {:?}", d.text);
    logged_as(&d, "user", user);
    if let Some(r) = rhost {
        // The module reads PAM_RHOST as text (invalid UTF-8 becomes U+FFFD) and logs that.
        let text = String::from_utf8_lossy(r).into_owned();
        logged_as(&d, "rhost", text.as_bytes());
    }
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        let raw = String::from_utf8_lossy(s).into_owned();
        let escaped = pam_portal::audit::escape_bytes(s);
        for l in &lines {
            assert!(
                !l.full_text().contains(&raw) && (escaped.len() < 8 || !l.text.contains(&escaped)),
                "a secret in the log: {:?}",
                l.text
            );
        }
        for m in &o.messages {
            assert!(
                !m.text.contains(&raw),
                "a secret in a message: {:?}",
                m.text
            );
        }
    }
    d
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// The lockout directory holds only flat records, the prune stamp, the question cache, the
/// front's configuration digest (src/front.rs) and temporary files; returns the keys of the records.
fn lockdir_keys(env: &Env) -> Vec<(String, Option<Key>)> {
    let mut keys = Vec::new();
    for e in std::fs::read_dir(&env.lockdir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        assert!(
            meta.is_file(),
            "not a plain file in the lockout dir: {name:?}"
        );
        let record = name.len() > 2
            && matches!(&name[..2], "u_" | "i_" | "p_")
            && name[2..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'~');
        let digest = name
            .strip_prefix("config.")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let other = name == ".pruned"
            || name == "questions.cache"
            || digest
            || (name.starts_with('.') && name.ends_with(".tmp"));
        assert!(
            record || other,
            "unexpected file in the lockout dir: {name:?}"
        );
        if record {
            keys.push((name.clone(), key_of_file_name(&name)));
        }
    }
    keys
}

struct Figures {
    logins: usize,
    refused: usize,
    admitted_correctly: usize,
}

impl Figures {
    fn new() -> Self {
        Figures {
            logins: 0,
            refused: 0,
            admitted_correctly: 0,
        }
    }
    fn count(&mut self, o: &Outcome) {
        self.logins += 1;
        if o.auth == Some(PAM_SUCCESS) {
            self.admitted_correctly += 1;
        } else {
            self.refused += 1;
        }
    }
    fn print(&self, what: &str) {
        eprintln!(
            "FIGURES hostile {what}: {} logins, {} refused, {} correct logins, 0 wrong admissions, 0 crashes",
            self.logins, self.refused, self.admitted_correctly
        );
    }
}

// ---- usernames ----------------------------------------------------------------------------------

#[test]
fn hostile_usernames_are_refused_cleanly_with_alice_credentials_and_with_wrong_ones() {
    let (_sim, env) = standard(HIGH_LIMITS);
    let before: BTreeSet<PathBuf> = files_under(env.root())
        .into_iter()
        .filter(|p| !p.starts_with(&env.lockdir))
        .collect();
    let mut fig = Figures::new();
    let mut counted: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let cases = hostile();
    for (cat, user) in &cases {
        for (pw, answer) in [(ALICE_PW, ALICE_ANSWER), ("Wrong-Pass1!", "Nope")] {
            let o = env
                .login()
                .user_bytes(user)
                .rhost(CLIENT)
                .answers(&[pw, answer])
                .on_exhausted(Exhausted::Empty)
                .under_pam_wrapper()
                .run();
            fig.count(&o);
            assert_eq!(
                o.auth,
                Some(PAM_AUTH_ERR),
                "{cat} user {:?}: {}",
                String::from_utf8_lossy(&user[..user.len().min(60)]),
                o.describe()
            );
            assert_eq!(o.errors(), vec![msg::INVALID], "{}", o.describe());
            let d = check_clean(
                &o,
                user,
                Some(CLIENT.as_bytes()),
                &[pw.as_bytes(), answer.as_bytes()],
            );
            assert_eq!(d.field("counted").as_deref(), Some("yes"), "{}", d.text);
            *counted.entry(user.clone()).or_default() += 1;
        }
    }
    // Nothing outside the lockout directory changed.
    let after: BTreeSet<PathBuf> = files_under(env.root())
        .into_iter()
        .filter(|p| !p.starts_with(&env.lockdir))
        .collect();
    assert_eq!(
        before, after,
        "files appeared outside the lockout directory"
    );
    assert!(!Path::new("/etc/passwd.lock").exists());
    // One record per distinct name, each naming exactly its user: no two names share one, and
    // the admin command counts each exactly.
    let keys = lockdir_keys(&env);
    let status = env
        .admin(&["status", "--json"])
        .expect("pam-portal is built");
    let list: Value = serde_json::from_slice(&status.stdout).unwrap();
    let rows = list.as_array().unwrap();
    let mut exact = 0;
    for (user, n) in &counted {
        let name = file_name(&Key::User(user.clone()));
        assert!(
            keys.iter().any(|(f, _)| *f == name),
            "no record {name} for {:?}",
            String::from_utf8_lossy(user)
        );
        if user.len() <= 100 {
            assert_eq!(
                key_of_file_name(&name),
                Some(Key::User(user.clone())),
                "the record name does not give back the user"
            );
            if let Ok(u) = std::str::from_utf8(user) {
                let row = rows
                    .iter()
                    .find(|r| r["kind"] == "user" && r["key"] == u)
                    .unwrap_or_else(|| panic!("pam-portal status lists no {u:?}"));
                assert_eq!(row["failures"].as_u64(), Some(*n as u64), "{u:?}: {row}");
                exact += 1;
            }
        }
    }
    let user_records = keys.iter().filter(|(f, _)| f.starts_with("u_")).count();
    assert_eq!(
        user_records,
        counted.len(),
        "one record per distinct hostile name"
    );
    eprintln!(
        "FIGURES hostile usernames: {} strings in {} categories, {} distinct records, {} counted exactly by pam-portal status",
        cases.len(),
        cases.iter().map(|c| c.0).collect::<BTreeSet<_>>().len(),
        user_records,
        exact
    );
    fig.print("usernames");
    // alice herself is untouched by all of it.
    let o = alice_ok(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- passwords and answers ------------------------------------------------------------------------

#[test]
fn hostile_passwords_and_answers_are_refused_cleanly() {
    let (_sim, env) = standard(HIGH_LIMITS);
    let mut fig = Figures::new();
    let mut cases = hostile();
    // Close misses of the right password.
    for p in [
        format!("{ALICE_PW}\n"),
        format!(" {ALICE_PW}"),
        format!("{ALICE_PW} "),
        ALICE_PW.to_uppercase(),
        ALICE_PW[..ALICE_PW.len() - 1].to_string(),
        format!("{ALICE_PW}\", \"x\": \"y"),
        format!("{ALICE_PW}\",null,null]}}"),
    ] {
        cases.push(("near-miss", p.into_bytes()));
    }
    for (cat, bad) in &cases {
        // As the password (with the right answer), then as the answer (with the right password).
        for as_password in [true, false] {
            let (pw, answer): (&[u8], &[u8]) = if as_password {
                (bad, ALICE_ANSWER.as_bytes())
            } else {
                (ALICE_PW.as_bytes(), bad)
            };
            let o = env
                .login()
                .rhost(CLIENT)
                .answer_bytes(pw)
                .answer_bytes(answer)
                .on_exhausted(Exhausted::Empty)
                .under_pam_wrapper()
                .run();
            fig.count(&o);
            assert_eq!(
                o.auth,
                Some(PAM_AUTH_ERR),
                "{cat} {} {:?}: {}",
                if as_password { "password" } else { "answer" },
                String::from_utf8_lossy(&bad[..bad.len().min(60)]),
                o.describe()
            );
            let secrets: Vec<&[u8]> = vec![bad, ALICE_PW.as_bytes(), ALICE_ANSWER.as_bytes()];
            // A hostile value too short to be told apart from the log's own words is skipped.
            let secrets: Vec<&[u8]> = secrets.into_iter().filter(|s| s.len() >= 6).collect();
            check_clean(&o, b"alice", Some(CLIENT.as_bytes()), &secrets);
        }
    }
    // Answers the portal itself accepts (blanks around, any case: PROTOCOL.md §2.3) are correct
    // logins, not hostile ones.
    for answer in [" Fluffy ", "FLUFFY", "fluffy\t"] {
        let o = env
            .login()
            .rhost(CLIENT)
            .answers(&[ALICE_PW, answer])
            .under_pam_wrapper()
            .run();
        fig.count(&o);
        assert_eq!(o.auth, Some(PAM_SUCCESS), "{answer:?}: {}", o.describe());
        check_clean(
            &o,
            b"alice",
            Some(CLIENT.as_bytes()),
            &[ALICE_PW.as_bytes()],
        );
    }
    fig.print("passwords and answers");
    let o = alice_ok(&env);
    assert_eq!(o.auth, Some(PAM_SUCCESS), "{}", o.describe());
}

// ---- PAM_RHOST ------------------------------------------------------------------------------------

/// rhost oddities without any list: each is a correct login with the right credentials and a
/// counted refusal with wrong ones; logged escaped; records only inside the lockout directory.
#[test]
fn rhost_oddities_without_lists_log_in_and_refuse_correctly() {
    let (_sim, env) = standard(HIGH_LIMITS);
    let mut fig = Figures::new();
    let mut rhosts: Vec<Vec<u8>> = [
        "client.example.com",
        "",
        "[2001:db8::7]",
        "[2001:db8::7",
        "2001:db8::7]",
        "fe80::1%eth0",
        "[fe80::1%25eth0]",
        "fe80::1%",
        "::ffff:198.51.100.9",
        "[::ffff:198.51.100.9]",
        "::ffff:c633:6409",
        "198.51.100.9:22",
        "[2001:db8::7]:22",
        "198.051.100.009",
        "3325256713",
        "0xc6.0x33.0x64.0x09",
        " 198.51.100.9 ",
        "198.51.100.9\n",
        "host name\nresult=success %n",
        "../../etc/passwd",
        "%s%n%x",
        "\"quoted\"",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    rhosts.push(b"\xff\xfe\x1b[31m".to_vec());
    rhosts.push(vec![b'9'; 300]);
    for r in &rhosts {
        for (pw, want) in [(ALICE_PW, PAM_SUCCESS), ("Wrong-Pass1!", PAM_AUTH_ERR)] {
            let o = env
                .login()
                .rhost_bytes(r)
                .answers(&[pw, ALICE_ANSWER])
                .under_pam_wrapper()
                .run();
            fig.count(&o);
            assert_eq!(
                o.auth,
                Some(want),
                "rhost {:?}: {}",
                String::from_utf8_lossy(r),
                o.describe()
            );
            check_clean(
                &o,
                b"alice",
                Some(r),
                &[pw.as_bytes(), ALICE_ANSWER.as_bytes()],
            );
        }
    }
    // Address records are named by the parsed address only: no rhost text reaches a file name.
    for (name, key) in lockdir_keys(&env) {
        if let Some(Key::Ip(a)) = key {
            assert!(
                a.parse::<std::net::IpAddr>().is_ok() || a.contains('/'),
                "address record {name} holds {a:?}"
            );
        }
    }
    fig.print("rhost (no lists)");
}

/// The global lists against every way to write an address: the denied address and network
/// stay denied however they are written, the allowed ones are allowed, and anything that is not
/// an address is "no address" (refused while `allow` is non-empty), before any prompt or call.
#[test]
fn rhost_spellings_never_bypass_the_global_lists() {
    let (sim, env) = standard(&format!(
        "{HIGH_LIMITS}\n[access]\nallow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\ndeny = [\"198.51.100.66\", \"2001:db8:dead::/48\"]\n"
    ));
    let mut fig = Figures::new();
    let allowed = [
        "198.51.100.7",
        "[198.51.100.7]",
        "::ffff:198.51.100.7",
        "[::ffff:198.51.100.7]",
        "::ffff:c633:6407",
        "0:0:0:0:0:ffff:c633:6407",
        " 198.51.100.7\t",
        "2001:db8::5",
        "[2001:db8::5]",
        "2001:db8::5%eth0",
        "[2001:db8::5%25eth0]",
        "2001:DB8::5",
        "2001:0db8:0000:0000:0000:0000:0000:0005",
    ];
    let denied = [
        // The denied address…
        "198.51.100.66",
        "[198.51.100.66]",
        "::ffff:198.51.100.66",
        "[::ffff:198.51.100.66]",
        "::ffff:c633:6442",
        "::FFFF:198.51.100.66",
        " 198.51.100.66 ",
        "198.51.100.66\n",
        // …and network.
        "2001:db8:dead::1",
        "[2001:db8:dead::1]",
        "2001:db8:dead::1%lo",
        "2001:0DB8:DEAD:0000::0001",
        "2001:db8:dead:ffff:ffff:ffff:ffff:ffff",
        // Outside the allow list.
        "203.0.113.5",
        "::1",
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "::",
        "0.0.0.0",
        "::ffff:0:0",
        // Not an address: no address, refused while `allow` is non-empty.
        "",
        "client.example.com",
        "localhost",
        "198.51.100.7.evil.example",
        "198.051.100.007",
        "3325256711",
        "0xc6.0x33.0x64.0x07",
        "198.51.100.7:22",
        "[2001:db8::5]:22",
        "198.51.100.7/24",
        "[198.51.100.7",
        "2001:db8::5]",
        "198.51.100.7 198.51.100.66",
        "198.51.100.7,198.51.100.8",
        "%n%s",
    ];
    let calls_before = sim.calls().len();
    for r in denied {
        let o = env
            .login()
            .rhost(r)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .under_pam_wrapper()
            .run();
        fig.count(&o);
        assert_eq!(
            o.auth,
            Some(PAM_PERM_DENIED),
            "rhost {r:?}: {}",
            o.describe()
        );
        assert_eq!(o.errors(), vec![msg::IP_DENIED], "{}", o.describe());
        assert!(
            o.prompts().is_empty(),
            "a prompt for {r:?}: {}",
            o.describe()
        );
        check_clean(&o, b"alice", Some(r.as_bytes()), &[]);
    }
    // No address: PAM_RHOST never set.
    let o = env
        .login()
        .answers(&[ALICE_PW, ALICE_ANSWER])
        .under_pam_wrapper()
        .run();
    fig.count(&o);
    assert_eq!(
        o.auth,
        Some(PAM_PERM_DENIED),
        "no PAM_RHOST: {}",
        o.describe()
    );
    assert_eq!(
        sim.calls().len(),
        calls_before,
        "a refused address reached the portal"
    );
    for r in allowed {
        let o = env
            .login()
            .rhost(r)
            .answers(&[ALICE_PW, ALICE_ANSWER])
            .under_pam_wrapper()
            .run();
        fig.count(&o);
        assert_eq!(o.auth, Some(PAM_SUCCESS), "rhost {r:?}: {}", o.describe());
        check_clean(&o, b"alice", Some(r.as_bytes()), &[ALICE_PW.as_bytes()]);
    }
    eprintln!(
        "FIGURES hostile rhost lists: {} spellings denied, {} allowed, 0 bypasses",
        denied.len() + 1,
        allowed.len()
    );
    fig.print("rhost (global lists)");
}

// ---- faults with on_unavailable = "ignore" ----------------------------------------------------------

/// Short timeouts so that a stalled portal costs little: the budget is 500 + 1000 ms.
const CONNECT_MS: u64 = 500;
const REQUEST_MS: u64 = 1000;
const BUDGET_MS: u64 = CONNECT_MS + REQUEST_MS + 1000;

fn fault_config(extra: &str) -> String {
    format!(
        "[portal]\nconnect_timeout_ms = {CONNECT_MS}\nrequest_timeout_ms = {REQUEST_MS}\non_unavailable = \"ignore\"\n{extra}\n[lockout]\nuser = {{ max_failures = 2, window_s = 600, lock_s = 600 }}\nip = {{ max_failures = 2, window_s = 600, lock_s = 600 }}\nphone = {{ max_failures = 2, window_s = 600, lock_s = 600 }}\n"
    )
}

/// `auth [success=done ignore=ignore default=die] pam_portal` then `pam_deny`: PAM_IGNORE
/// lets pam_deny refuse (PAM_AUTH_ERR, no message from the module); a module failure would end
/// the stack with the module's own code and message; a module success would be PAM_SUCCESS.
fn ignore_stack(env: &Env) {
    env.stack_text(
        "test",
        "auth [success=done ignore=ignore default=die] {module} config={config}\nauth required {sys:pam_deny.so}\naccount required {module} config={config}\n",
    );
}

/// Failures recorded in the store, from the admin command.
fn recorded_failures(env: &Env) -> u64 {
    let f = env
        .admin(&["status", "--json"])
        .expect("pam-portal is built");
    let list: Value = serde_json::from_slice(&f.stdout).unwrap_or(json!([]));
    list.as_array()
        .map(|a| a.iter().map(|r| r["failures"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// One faulted login: the ignore outcome (pam_deny decides, the module logs
/// `portal_unavailable` and shows nothing) within `budget_ms`. With `may_work`, a fault that
/// leaves the answer intact (HTTP/1.0) may instead give the real verdict.
fn ignored(o: &Outcome, budget_ms: u64, may_work: bool, what: &str) {
    assert!(
        o.elapsed_ms <= budget_ms,
        "{what}: took {} ms (budget {budget_ms} ms): {}",
        o.elapsed_ms,
        o.describe()
    );
    let d = o
        .decisions()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{what}: no decision line: {}", o.describe()));
    let reason = d.field("reason").unwrap_or_default();
    if may_work && reason != "portal_unavailable" {
        assert!(
            matches!(
                o.auth,
                Some(PAM_SUCCESS) | Some(PAM_AUTH_ERR) | Some(PAM_MAXTRIES)
            ),
            "{what}: {}",
            o.describe()
        );
        return;
    }
    assert_eq!(
        reason,
        "portal_unavailable",
        "{what}: {} / {}",
        d.text,
        o.describe()
    );
    assert_eq!(
        o.auth,
        Some(PAM_AUTH_ERR),
        "{what}: PAM_IGNORE must leave the decision to pam_deny: {}",
        o.describe()
    );
    assert!(o.errors().is_empty(), "{what}: {}", o.describe());
    assert_ne!(
        d.field("counted").as_deref(),
        Some("yes"),
        "{what}: {}",
        d.text
    );
}

/// The fault kinds of portal-sim (sim/README.md) and whether the answer may survive them.
const FAULTS: [(&str, bool); 17] = [
    ("reset", false),
    ("hang", false),
    ("stall_body", false),
    ("huge", false),
    ("status500", false),
    ("status503", false),
    ("status429", false),
    ("ratelimit", false),
    ("garbage", false),
    ("empty", false),
    ("unauthorized", false),
    ("error200", false),
    ("redirect", false),
    ("wrong_types", false),
    ("chunked_garbage", false),
    ("http10", true),
    ("delay", false),
];

/// One fault and the attempts made under it.
struct Round<'a> {
    user: &'a str,
    /// The right credentials, in prompt order (password first).
    creds: &'a [&'a str],
    /// Whether a wrong password reaches the faulted call (not for the phone calls, which come
    /// only after the password is proven).
    wrong_too: bool,
    budget_ms: u64,
    may_work: bool,
}

/// alice's round: wrong, right, wrong, within [`BUDGET_MS`].
fn alice_round(may_work: bool) -> Round<'static> {
    Round {
        user: "alice",
        creds: &[ALICE_PW, ALICE_ANSWER],
        wrong_too: true,
        budget_ms: BUDGET_MS,
        may_work,
    }
}

/// Three attempts under `fault` (none: the portal is unreachable anyway): wrong, right, wrong
/// (or three right ones); with limits of 2, counted outages would lock. Then the fault is
/// cleared (and the sim reset: phone request limits) and the store must hold no failure.
fn fault_round(sim: &Sim, env: &Env, fault: Option<Value>, r: &Round<'_>) -> usize {
    let what = format!("{} ({})", fault.clone().unwrap_or(json!("down")), r.user);
    if let Some(f) = fault {
        sim.fault(f);
    }
    let right: Vec<&str> = r.creds.to_vec();
    let mut wrong = right.clone();
    wrong[0] = "Wrong-Pass1!";
    let attempts = if r.wrong_too {
        [&wrong, &right, &wrong]
    } else {
        [&right, &right, &right]
    };
    for answers in attempts {
        let o = env
            .login()
            .user(r.user)
            .rhost(CLIENT)
            .answers(answers)
            .on_exhausted(Exhausted::Empty)
            .under_pam_wrapper()
            .run();
        ignored(&o, r.budget_ms, r.may_work, &what);
        assert!(
            o.auth != Some(PAM_SUCCESS) || answers[0] != "Wrong-Pass1!",
            "{what}: a wrong password got in"
        );
    }
    sim.reset();
    if !r.may_work {
        assert_eq!(recorded_failures(env), 0, "{what}: an outage was counted");
    }
    attempts.len()
}

#[test]
fn every_fault_with_on_unavailable_ignore_is_pam_ignore_in_time_and_never_counted() {
    let sim = Sim::start(&fixtures::standard());
    let mut faulted = 0;
    for (kind, may_work) in FAULTS {
        let env = Env::new(&sim, &fault_config(""));
        ignore_stack(&env);
        let mut f = json!({"fault": kind});
        if kind == "delay" {
            f["ms"] = json!(REQUEST_MS + CONNECT_MS + 500);
        }
        faulted += fault_round(&sim, &env, Some(f), &alice_round(may_work));
        if !may_work {
            // Nothing was counted: the right credentials still log in.
            let o = alice_ok(&env);
            assert_eq!(o.auth, Some(PAM_SUCCESS), "after {kind}: {}", o.describe());
        }
    }
    // Down: nothing listens.
    let env = Env::new(
        &sim,
        &fault_config(&format!("url = \"{}\"", closed_port_url())),
    );
    ignore_stack(&env);
    faulted += fault_round(&sim, &env, None, &alice_round(false));
    eprintln!(
        "FIGURES hostile faults ignore (every call): {} fault kinds + down, {faulted} faulted logins, 0 admissions, 0 counted",
        FAULTS.len()
    );
}

#[test]
fn tls_failures_with_on_unavailable_ignore_are_pam_ignore() {
    let mut faulted = 0;
    for mode in ["wrong-host", "self-signed", "expired"] {
        let sim = Sim::start_with(&fixtures::standard(), &["--cert-mode", mode]);
        let env = Env::new(&sim, &fault_config(""));
        ignore_stack(&env);
        faulted += fault_round(&sim, &env, None, &alice_round(false));
    }
    eprintln!(
        "FIGURES hostile faults ignore (TLS): 3 certificate modes, {faulted} faulted logins, 0 admissions, 0 counted"
    );
}

/// Faults on the calls tests/faults.rs does not target: the question texts, the TOTP code
/// check, and the phone binding's calls (the phone wait has its own budget, `phone_timeout_s`;
/// each of its calls is still bounded by connect + request, so a faulted phone login ends
/// within two budgets).
#[test]
fn faults_on_second_factor_calls_are_outages_in_time_and_never_counted() {
    let sim = Sim::start(&fixtures::standard());
    let quick = [
        "reset",
        "huge",
        "garbage",
        "wrong_types",
        "status500",
        "unauthorized",
        "ratelimit",
        "chunked_garbage",
        "error200",
    ];
    // (API method faulted, the round, whether `hang` is tried on it too)
    let alice = alice_round(false);
    let tina = Round {
        user: "tina",
        creds: &[PHONE_PW, CODE],
        ..alice
    };
    let pat = Round {
        user: "pat",
        creds: &[PAT_PW],
        wrong_too: false,
        budget_ms: 2 * BUDGET_MS,
        may_work: false,
    };
    let targets = [
        ("getAllObjects", &alice, true),
        ("performExternalAuthentication", &tina, true),
        ("getBindingStatus", &pat, false),
        ("getPhoneData", &pat, false),
        ("requestPhoneValidation", &pat, false),
        ("checkPhoneValidationResult", &pat, true),
    ];
    let mut faulted = 0;
    for (method, round, slow) in targets {
        let kinds = quick
            .iter()
            .chain(if slow { &["hang"][..] } else { &[][..] });
        for kind in kinds {
            // A fresh lockout directory: no cached question texts.
            let env = Env::new(&sim, &fault_config(""));
            ignore_stack(&env);
            faulted += fault_round(
                &sim,
                &env,
                Some(json!({"fault": kind, "method": method})),
                round,
            );
        }
        // Without the fault the same login works.
        let env = Env::new(&sim, &fault_config(""));
        let o = env
            .login()
            .user(round.user)
            .rhost(CLIENT)
            .answers(round.creds)
            .run();
        assert_eq!(
            o.auth,
            Some(PAM_SUCCESS),
            "{method} without fault: {}",
            o.describe()
        );
    }
    eprintln!(
        "FIGURES hostile faults on second-factor calls: 6 calls, {faulted} faulted logins, 0 admissions, 0 counted"
    );
}
