//! Fuzzing findings as regression tests (issue 6 §1), on the stable toolchain, in CI.
//!
//! `scripts/fuzz.sh` runs the cargo-fuzz targets of `fuzz/` on demand and saves every crash or
//! violated property under `fuzz/regressions/<target>/`; the corpora it grows are kept in
//! `fuzz/corpus/<target>/`. This test runs the very same harnesses (`fuzz/src/lib.rs`, included
//! below) on every saved crash input, on every corpus file, and on a fixed set of hand-made
//! inputs for the findings, so a fixed bug stays fixed without nightly or libFuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 4] = [
    ("config", harness::config),
    ("portal_answer", harness::portal_answer),
    ("address", harness::address),
    ("lockout_record", harness::lockout_record),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Removes the harnesses' scratch directory of the test's thread when the test ends.
struct Scratch;
impl Drop for Scratch {
    fn drop(&mut self) {
        harness::remove_scratch_dir();
    }
}

/// Runs `f` on every file of `dir`; returns (files run, failures with their panic text).
fn run_dir(f: Harness, dir: &Path) -> (usize, Vec<String>) {
    let files = files_in(dir);
    let mut failures = Vec::new();
    for p in &files {
        let data = std::fs::read(p).unwrap();
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(&data))) {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", p.display()));
        }
    }
    (files.len(), failures)
}

#[test]
fn saved_crash_inputs_no_longer_crash() {
    let _scratch = Scratch;
    let mut total = 0;
    let mut failures = Vec::new();
    for (name, f) in TARGETS {
        let (n, mut fails) = run_dir(f, &fuzz_dir().join("regressions").join(name));
        eprintln!(
            "fuzz regressions {name}: {n} inputs, {} failing",
            fails.len()
        );
        total += n;
        failures.append(&mut fails);
    }
    eprintln!("fuzz regressions: {total} saved inputs");
    assert!(
        failures.is_empty(),
        "{} saved fuzzing finding(s) still fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_inputs_pass_every_property() {
    let _scratch = Scratch;
    let mut total = 0;
    let mut failures = Vec::new();
    for (name, f) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let (n, mut fails) = run_dir(f, &dir);
        assert!(n > 0, "the corpus of {name} is empty ({})", dir.display());
        eprintln!("fuzz corpus {name}: {n} inputs, {} failing", fails.len());
        total += n;
        failures.append(&mut fails);
    }
    eprintln!("fuzz corpus: {total} inputs");
    assert!(
        failures.is_empty(),
        "{} corpus input(s) fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A record byte string for the `lockout_record` harness: selector 0 (alice's user record).
fn alice_record(until: u64, failures: &[u64]) -> Vec<u8> {
    let mut s = format!("\0pam_portal-lockout 1\nkey user 616c696365\nuntil {until}\n");
    for f in failures {
        s.push_str(&format!("f {f}\n"));
    }
    s.into_bytes()
}

// ---- the findings, as readable cases ------------------------------------------------------

#[test]
fn lockout_record_with_a_timestamp_near_the_end_of_time_is_no_crash() {
    // A record on disk is outside input (a damaged disk, a restored backup, a local attacker
    // with access to the state directory): SPEC §7 "a damaged record is logged and replaced,
    // never a crash". Failure times are added to the window (`t + window_s`); a time near
    // u64::MAX overflows: a panic (PAM_ABORT) in a debug build, a wrapped sum in release.
    harness::lockout_record(&alice_record(0, &[u64::MAX]));
    harness::lockout_record(&alice_record(0, &[u64::MAX - 1000, 1_700_000_000]));
}

#[test]
fn lockout_record_locked_until_the_end_of_time_is_no_crash() {
    harness::lockout_record(&alice_record(u64::MAX, &[]));
    harness::lockout_record(&alice_record(u64::MAX, &[1_700_000_000]));
}

#[test]
fn lockout_record_edge_cases_are_read_or_refused_cleanly() {
    let _scratch = Scratch;
    for text in [
        &b"\0"[..],
        b"\0pam_portal-lockout 1\n",
        b"\0pam_portal-lockout 1\nkey user 616c696365\n",
        b"\0pam_portal-lockout 1\nkey user 616c696365\nuntil -1\n",
        b"\0pam_portal-lockout 1\nkey user 616c696365\nuntil 0\nf 1\nf\n",
        b"\0pam_portal-lockout 1\r\nkey user 616c696365\r\nuntil 0\r\n",
        b"\x06\xff\xfe\x00garbage",
        b"\x06",
        b"\x07{\"url\":\"https://api.example.net/rest/v3.1\",\"fetched\":18446744073709551615,\"questions\":[]}",
        b"\x03pam_portal-lockout 1\nkey user 2e2e2f2e2e2f\nuntil 0\nf 1700000000\n",
    ] {
        harness::lockout_record(text);
    }
}

#[test]
fn address_edge_cases() {
    for a in [
        "::ffff:0:0/95",
        "::ffff:1.2.3.4/120",
        "[::ffff:1.2.3.4]",
        "0.0.0.0/0",
        "::/0",
        "fe80::1%",
        "%eth0",
        "[]",
        "[::1%lo]",
        "1.2.3.4%eth0",
        ",,,",
        " ; , ",
        "\u{0}",
        "::ffff:c633:6407",
    ] {
        harness::address(a.as_bytes());
    }
    harness::address(&[0xff; 300]);
}

#[test]
fn config_edge_cases() {
    let url = "[portal]\nurl = ";
    for text in [
        format!("{url}\"http://127.0.0.1.evil.example/rest\"\n"),
        format!("{url}\"http://localhost.evil.example/rest\"\n"),
        format!("{url}\"http://[::1]evil.example/rest\"\n"),
        format!("{url}\"http://127.0.0.1:80.evil.example/rest\"\n"),
        format!("{url}\"http://127.0.0.1\\\\@evil.example/rest\"\n"),
        format!("{url}\"http://evil.example\\\\127.0.0.1:80/rest\"\n"),
        format!("{url}\"HTTP://evil.example/rest\"\n"),
        format!("{url}\"https://a.example\"\napi_key = \"{}\"\napi_key = \"x\"\n", harness::KEY_MARKER),
        format!("{url}\"https://a.example\"\n[lockout]\nuser = {{ max_failures = 0 }}\n"),
        format!("{url}\"https://a.example\"\n[lockout]\nip = {{ ipv6_prefix = 0 }}\n"),
        format!("{url}\"https://a.example\"\n[auth]\nphone_timeout_s = 60\nvpn_services = [\"\"]\n[services.\"\"]\n"),
    ] {
        harness::config(text.as_bytes());
    }
}

#[test]
fn portal_answer_edge_cases() {
    for (status, which, body) in [
        (0u8, 2u8, &br#"{"userId":1,"hash":"h","error":null}"#[..]),
        (0, 2, br#"{"userId":-1,"hash":"h"}"#),
        (0, 2, br#"{"userId":1.0,"hash":"h"}"#),
        (0, 2, br#"[{"userId":1,"hash":"h"}]"#),
        (
            0,
            0,
            br#"[{"id":1,"username":"alice"},{"id":2,"username":"alice"}]"#,
        ),
        (0, 0, br#"{"id":1,"username":"*= alice"}"#),
        (0, 3, br#"[{"phone":"","countryCode":1}]"#),
        (0, 2, b"\xef\xbb\xbf{\"userId\":1,\"hash\":\"h\"}"),
        (5, 2, br#"{"userId":1,"hash":"h"}"#),
    ] {
        let mut d = vec![status, which];
        d.extend_from_slice(body);
        harness::portal_answer(&d);
    }
    // Nesting deeper than serde_json's limit is refused, not a stack overflow.
    let mut deep = vec![0u8, 1];
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    harness::portal_answer(&deep);
}
