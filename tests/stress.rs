//! The lockout store under stress (issue 6 §5), with the module's own store code:
//! - 64 processes × 50 failures on shared keys, counted exactly (the store linked from the
//!   pam_portal rlib, in 64 processes of this test binary), and 64 concurrent failing logins
//!   through libpam (pam-drive), counted exactly by `pam-portal status --json`;
//! - writers killed with SIGKILL at random points, over and over, while a reader reads: no
//!   record is ever torn or unreadable, no acknowledged failure is lost, counts never go down;
//! - a full disk (a 64 KiB tmpfs) and a read-only lockout directory (a read-only bind mount):
//!   PAM_SYSTEM_ERR, logged as `store_error`, nobody let in;
//! - a record with a failure time near the end of time (found by fuzzing): no crash.
//!
//! The child processes are this test binary again (`child_process_entry_point`, which does
//! nothing unless `PAM_PORTAL_STRESS_ROLE` is set). Mounts need root (as CI runs); they are
//! undone by guards, also when a test fails. Figures are printed (`FIGURES …`) for SECURITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pam_portal::config::Policy;
use pam_portal::lockout::files::{self, FileStore};
use pam_portal::lockout::{Key, Store};
use pam_testkit::codes::*;
use pam_testkit::fixtures::*;
use pam_testkit::{standard, Env, Outcome};
use serde_json::Value;

const ROLE_VAR: &str = "PAM_PORTAL_STRESS_ROLE";
const DIR_VAR: &str = "PAM_PORTAL_STRESS_DIR";
const ARG_VAR: &str = "PAM_PORTAL_STRESS_ARG";

/// A policy that never locks within these tests and keeps every failure for an hour.
const BIG: Policy = Policy {
    max_failures: 10_000,
    window_s: 3600,
    lock_s: 60,
};

const PROCESSES: usize = 64;
const FAILURES_EACH: usize = 50;
const GROUPS: usize = 8;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn alice() -> Key {
    Key::User(b"alice".to_vec())
}
fn addr() -> Key {
    Key::Ip("198.51.100.7".to_string())
}
fn phone() -> Key {
    Key::Phone(b"bob".to_vec())
}
fn group(i: usize) -> Key {
    Key::User(format!("group{}", i % GROUPS).into_bytes())
}

/// The keys writer `i` counts a failure against, each round.
fn keys_of(i: usize) -> Vec<Key> {
    vec![alice(), addr(), phone(), group(i)]
}

/// The child processes' code; a no-op in an ordinary test run.
#[test]
fn child_process_entry_point() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR_VAR).unwrap());
    let arg: usize = std::env::var(ARG_VAR)
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let store = FileStore::open(&dir, 3600).unwrap();
    let mut out = std::io::stdout().lock();
    match role.as_str() {
        // FAILURES_EACH rounds of one failure on each of keys_of(arg).
        "writer" => {
            for _ in 0..FAILURES_EACH {
                for k in keys_of(arg) {
                    store.record_failure(&k, now(), &BIG).unwrap();
                }
            }
            writeln!(out, "WRITER-DONE").unwrap();
        }
        // Up to `arg` failures on alice and the address, each acknowledged once stored.
        "killable" => {
            for _ in 0..arg {
                store.record_failure(&alice(), now(), &BIG).unwrap();
                store.record_failure(&addr(), now(), &BIG).unwrap();
                writeln!(out, "COMMITTED").unwrap();
                out.flush().unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn child(role: &str, dir: &Path, arg: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry_point",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_VAR, role)
        .env(DIR_VAR, dir)
        .env(ARG_VAR, arg.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lock_dir(tmp: &tempfile_dir::Dir) -> PathBuf {
    let d = tmp.0.join("lock");
    FileStore::open(&d, 3600).unwrap();
    d
}

/// A temporary directory removed on drop (the testkit's Env is for PAM; here only a store).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "pam_portal-stress-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The configuration the admin command needs to read this store.
fn admin_env(dir: &Path) -> Env {
    Env::with_raw_config(&format!(
        "[portal]\nurl = \"https://127.0.0.1:9/rest/v3.1\"\n[lockout]\ndir = \"{}\"\nuser = {{ max_failures = 10000, window_s = 3600, lock_s = 60 }}\nip = {{ max_failures = 10000, window_s = 3600, lock_s = 60 }}\nphone = {{ max_failures = 10000, window_s = 3600, lock_s = 60 }}\n",
        dir.display()
    ))
}

/// `pam-portal status --json` as (kind, key) → failures.
fn admin_counts(env: &Env, args: &[&str]) -> Vec<(String, String, u64)> {
    let mut a = vec!["status", "--json"];
    a.extend_from_slice(args);
    let f = env.admin(&a).expect("pam-portal is built");
    assert!(
        f.status.success(),
        "pam-portal status: {}",
        String::from_utf8_lossy(&f.stderr)
    );
    let v: Value = serde_json::from_slice(&f.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["key"].as_str().unwrap().to_string(),
                r["failures"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn count_of(rows: &[(String, String, u64)], kind: &str, key: &str) -> u64 {
    rows.iter()
        .find(|r| r.0 == kind && r.1 == key)
        .map_or(0, |r| r.2)
}

#[test]
fn sixty_four_processes_fifty_failures_each_on_shared_keys_are_counted_exactly() {
    let tmp = tempfile_dir::Dir::new("exact");
    let dir = lock_dir(&tmp);
    let started = Instant::now();
    let children: Vec<Child> = (0..PROCESSES).map(|i| child("writer", &dir, i)).collect();
    for mut c in children {
        let status = c.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = c.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(status.success(), "a writer failed: {status:?}\n{err}");
    }
    let elapsed = started.elapsed();
    let store = FileStore::open(&dir, 3600).unwrap();
    let t = now();
    let all = (PROCESSES * FAILURES_EACH) as u32;
    for k in [alice(), addr(), phone()] {
        assert_eq!(store.tally(&k, t, &BIG).unwrap().failures, all, "{k}");
    }
    for g in 0..GROUPS {
        assert_eq!(
            store.tally(&group(g), t, &BIG).unwrap().failures,
            all / GROUPS as u32,
            "{}",
            group(g)
        );
    }
    assert!(store.take_warnings().is_empty(), "a damaged record");
    // The admin command, a separate reader, agrees.
    let env = admin_env(&dir);
    let rows = admin_counts(&env, &[]);
    assert_eq!(count_of(&rows, "user", "alice"), u64::from(all), "{rows:?}");
    assert_eq!(count_of(&rows, "ip", "198.51.100.7"), u64::from(all));
    assert_eq!(count_of(&rows, "phone", "bob"), u64::from(all));
    for g in 0..GROUPS {
        assert_eq!(
            count_of(&rows, "user", &format!("group{g}")),
            u64::from(all) / GROUPS as u64
        );
    }
    let updates = PROCESSES * FAILURES_EACH * 4;
    eprintln!(
        "FIGURES stress exact: {PROCESSES} processes x {FAILURES_EACH} failures x 4 keys = {updates} updates in {} ms; alice, address, phone {all} each, {GROUPS} groups {} each: exact, 0 lost",
        elapsed.as_millis(),
        all / GROUPS as u32
    );
}

#[test]
fn sixty_four_concurrent_failing_logins_through_libpam_are_counted_exactly() {
    let (_sim, env) = standard(
        "[lockout]\nuser = { max_failures = 1000, window_s = 600, lock_s = 600 }\nip = { max_failures = 1000, window_s = 600, lock_s = 600 }\n",
    );
    let rhost = "198.51.100.77";
    let started = Instant::now();
    let running: Vec<_> = (0..PROCESSES)
        .map(|i| {
            env.login()
                .user(if i % 2 == 0 { "mallory" } else { "alice" })
                .rhost(rhost)
                .answers(&["Wrong-Pass1!", "Nope"])
                .timeout(Duration::from_secs(240))
                .spawn()
        })
        .collect();
    for r in running {
        let o = r.wait();
        assert_eq!(o.auth, Some(PAM_AUTH_ERR), "{}", o.describe());
    }
    let elapsed = started.elapsed();
    let rows = admin_counts(&env, &[]);
    assert_eq!(count_of(&rows, "ip", rhost), PROCESSES as u64, "{rows:?}");
    assert_eq!(count_of(&rows, "user", "mallory"), PROCESSES as u64 / 2);
    assert_eq!(count_of(&rows, "user", "alice"), PROCESSES as u64 / 2);
    eprintln!(
        "FIGURES stress libpam: {PROCESSES} concurrent failing logins (pam-drive processes) in {} ms: address {PROCESSES}, mallory {}, alice {}: exact, 0 lost",
        elapsed.as_millis(),
        PROCESSES / 2,
        PROCESSES / 2
    );
}

/// A small deterministic generator for the kill points.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Starts a killable writer and a thread counting its acknowledged writes.
fn killable(dir: &Path) -> (Child, std::thread::JoinHandle<u64>, Arc<AtomicU64>) {
    let mut c = child("killable", dir, 400);
    let out = c.stdout.take().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    let h = std::thread::spawn(move || {
        let mut n = 0;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line == "COMMITTED" {
                n += 1;
                s.store(n, Ordering::SeqCst);
            }
        }
        n
    });
    (c, h, seen)
}

#[test]
fn writers_killed_at_random_points_never_tear_a_record_or_lose_a_failure() {
    const ROUNDS: usize = 120;
    let tmp = tempfile_dir::Dir::new("kill");
    let dir = lock_dir(&tmp);
    // A reader, all along: every read parses, and counts never go down.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, stop) = (dir.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let store = FileStore::open(&dir, 3600).unwrap();
            let (mut reads, mut last_a, mut last_i) = (0u64, 0, 0);
            while !stop.load(Ordering::SeqCst) {
                let t = now();
                let a = store.tally(&alice(), t, &BIG).unwrap().failures;
                let i = store.tally(&addr(), t, &BIG).unwrap().failures;
                let warnings = store.take_warnings();
                assert!(
                    warnings.is_empty(),
                    "a reader saw a damaged record: {warnings:?}"
                );
                assert!(a >= last_a && i >= last_i, "a count went down");
                (last_a, last_i) = (a, i);
                reads += 2;
            }
            reads
        })
    };
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let (mut acknowledged, mut killed, mut finished) = (0u64, 0u64, 0u64);
    for _ in 0..ROUNDS {
        // Two writers contend for the same records; each is killed at its own random point,
        // once it has started writing.
        let mut writers: Vec<_> = (0..2).map(|_| killable(&dir)).collect();
        for (c, _, seen) in &mut writers {
            let deadline = Instant::now() + Duration::from_secs(20);
            while seen.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_micros(xorshift(&mut rng) % 4000));
            match c.try_wait().unwrap() {
                Some(_) => finished += 1,
                None => {
                    c.kill().unwrap(); // SIGKILL, by pid
                    killed += 1;
                }
            }
        }
        for (mut c, h, _) in writers {
            let _ = c.wait();
            acknowledged += h.join().unwrap();
        }
        // Between rounds: nothing acknowledged is missing.
        let store = FileStore::open(&dir, 3600).unwrap();
        let a = u64::from(store.tally(&alice(), now(), &BIG).unwrap().failures);
        assert!(
            a >= acknowledged,
            "failures lost: {a} stored, {acknowledged} acknowledged"
        );
        assert!(store.take_warnings().is_empty());
    }
    stop.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("the reader crashed");
    let store = FileStore::open(&dir, 3600).unwrap();
    let t = now();
    let a = u64::from(store.tally(&alice(), t, &BIG).unwrap().failures);
    let i = u64::from(store.tally(&addr(), t, &BIG).unwrap().failures);
    assert!(
        store.take_warnings().is_empty(),
        "a damaged record at the end"
    );
    // Each killed writer may have stored one failure it had no time to acknowledge.
    assert!(
        a >= acknowledged && a <= acknowledged + killed,
        "alice: {a} stored, {acknowledged} acknowledged, {killed} kills"
    );
    assert!(
        i >= acknowledged && i <= acknowledged + killed,
        "address: {i} stored, {acknowledged} acknowledged, {killed} kills"
    );
    // Every record file in the directory parses; temporary files are leftovers only.
    let mut records = 0;
    let mut leftovers = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match files::key_of_file_name(&name) {
            Some(k) => {
                let text = std::fs::read_to_string(e.path()).unwrap();
                files::parse(&text, &k).unwrap_or_else(|why| panic!("{name}: {why}: {text:?}"));
                records += 1;
            }
            None if name.ends_with(".tmp") => leftovers += 1,
            None => assert_eq!(name, ".pruned", "unexpected file {name}"),
        }
    }
    assert_eq!(records, 2);
    // The admin command reads the same.
    let env = admin_env(&dir);
    let rows = admin_counts(&env, &[]);
    assert_eq!(count_of(&rows, "user", "alice"), a);
    eprintln!(
        "FIGURES stress kill -9: {ROUNDS} rounds x 2 writers, {killed} SIGKILLs mid-run ({finished} finished first), {acknowledged} acknowledged failures, {a} stored (alice) and {i} (address): 0 lost, 0 torn records in {reads} concurrent reads, {leftovers} leftover temporary files"
    );
}

// ---- the store unusable: PAM_SYSTEM_ERR, nobody let in -----------------------------------------

/// A mount undone on drop (lazily, so a test failing mid-way cannot leave it busy).
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str]) {
        let st = Command::new("mount").args(args).status().unwrap();
        assert!(
            st.success(),
            "mount {args:?} failed (these tests need root): {st:?}"
        );
    }
    /// A tmpfs of `size` at `at`.
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        Mount::run(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
            &at.to_string_lossy(),
        ]);
        Mount(at.to_path_buf())
    }
    /// `at` bound onto itself, read-only.
    fn read_only(at: &Path) -> Mount {
        let p = at.to_string_lossy().into_owned();
        Mount::run(&["--bind", &p, &p]);
        let m = Mount(at.to_path_buf());
        Mount::run(&["-o", "remount,bind,ro", &p]);
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn login(env: &Env, user: &str, pw: &str, answer: &str) -> Outcome {
    env.login()
        .user(user)
        .rhost(CLIENT)
        .answers(&[pw, answer])
        .under_pam_wrapper()
        .run()
}

/// PAM_SYSTEM_ERR with a `store_error` decision line, and no admission.
fn store_refusal(o: &Outcome, what: &str) {
    assert_ne!(
        o.auth,
        Some(PAM_SUCCESS),
        "{what}: let in: {}",
        o.describe()
    );
    assert_eq!(o.auth, Some(PAM_SYSTEM_ERR), "{what}: {}", o.describe());
    let d = o
        .decisions()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{what}: not logged: {}", o.describe()));
    assert_eq!(
        d.field("reason").as_deref(),
        Some("store_error"),
        "{what}: {}",
        d.text
    );
    assert_eq!(
        d.field("result").as_deref(),
        Some("error"),
        "{what}: {}",
        d.text
    );
}

/// Every record in `dir` parses.
fn records_intact(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(k) = files::key_of_file_name(&name) {
            let text = std::fs::read_to_string(e.path()).unwrap();
            files::parse(&text, &k).unwrap_or_else(|why| panic!("{name}: {why}"));
            n += 1;
        }
    }
    n
}

/// (alice's, the address's) failures as a reader sees them; no record may be damaged.
fn counts(lockdir: &Path) -> (u32, u32) {
    let store = FileStore::open(lockdir, 3600).unwrap();
    let t = now();
    let a = store.tally(&alice(), t, &BIG).unwrap().failures;
    let i = store.tally(&addr(), t, &BIG).unwrap().failures;
    let w = store.take_warnings();
    if !w.is_empty() {
        let text = std::fs::read(lockdir.join(files::file_name(&alice()))).unwrap_or_default();
        let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(40)..]).into_owned();
        panic!(
            "a damaged record, its failures lost: {w:?} (alice's record: {} bytes, ending {tail:?})",
            text.len()
        );
    }
    (a, i)
}

/// A configuration whose lockout directory is on a 64 KiB tmpfs, with records for alice and
/// the address; alice's holds 311 failures, just under 4 KiB, so that one more line cannot fit
/// in its first block and needs one the full disk does not have. Returns the mount guard, the
/// lockout directory and the filler file (the disk is full on return).
fn full_disk(env: &Env) -> (Mount, PathBuf, PathBuf) {
    let small = env.root().join("small");
    let mount = Mount::tmpfs(&small, "64k");
    let lockdir = small.join("lock");
    env.merge_config(&format!("[lockout]\ndir = \"{}\"\n", lockdir.display()));
    assert_eq!(
        login(env, "alice", "Wrong-Pass1!", "Nope").auth,
        Some(PAM_AUTH_ERR)
    );
    let t = now();
    let big = pam_portal::lockout::Record {
        failures: (0..311).map(|i| t - 311 + i).collect(),
        locked_until: 0,
    };
    let text = files::serialize(&big, &alice());
    assert!(
        text.len() <= 4096 && text.len() + 13 > 4096,
        "{}",
        text.len()
    );
    std::fs::write(lockdir.join(files::file_name(&alice())), &text).unwrap();
    let filler = small.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = [0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    (mount, lockdir, filler)
}

const FULL_DISK_LIMITS: &str = "[lockout]\nuser = { max_failures = 1000, window_s = 3600, lock_s = 600 }\nip = { max_failures = 1000, window_s = 3600, lock_s = 600 }\n";

#[test]
fn full_disk_is_pam_system_err_logged_and_nobody_let_in() {
    let (_sim, env) = standard(FULL_DISK_LIMITS);
    let (_mount, lockdir, filler) = full_disk(&env);
    let (a, i) = counts(&lockdir);
    assert_eq!(a, 311);
    let mut tried = 0;
    // While a failure could not be recorded, a right password must not be accepted either:
    // else every wrong guess answers PAM_SYSTEM_ERR, uncounted, and the right one PAM_SUCCESS,
    // an unlimited guessing oracle for as long as the disk stays full.
    for (user, pw, answer, what) in [
        (
            "alice",
            ALICE_PW,
            ALICE_ANSWER,
            "right password, with a record",
        ),
        ("bob", BOB_PW, BOB_ANSWER, "right password, no record yet"),
        (
            "mallory",
            "Wrong-Pass1!",
            "Nope",
            "unknown user, no record yet",
        ),
    ] {
        let o = login(&env, user, pw, answer);
        tried += 1;
        store_refusal(&o, &format!("full disk, {what}"));
    }
    assert_eq!(
        counts(&lockdir),
        (a, i),
        "a failure was lost or half-counted"
    );
    // Space again: counting resumes where it was, the right password works.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        login(&env, "alice", "Wrong-Pass1!", "Nope").auth,
        Some(PAM_AUTH_ERR)
    );
    assert_eq!(counts(&lockdir).0, a + 1, "counting did not resume");
    assert_eq!(
        login(&env, "alice", ALICE_PW, ALICE_ANSWER).auth,
        Some(PAM_SUCCESS)
    );
    eprintln!("FIGURES stress full disk: {tried} logins on a full 64 KiB tmpfs (2 right passwords, 1 wrong): {tried} PAM_SYSTEM_ERR logged store_error, 0 admitted");
}

#[test]
fn full_disk_never_tears_a_record_or_loses_a_failure() {
    let (_sim, env) = standard(FULL_DISK_LIMITS);
    let (_mount, lockdir, filler) = full_disk(&env);
    let (mut a, mut i) = counts(&lockdir);
    let mut system_err = 0;
    for n in 0..3 {
        let o = login(&env, "alice", "Wrong-Pass1!", "Nope");
        let what = format!("full disk, wrong password #{}", n + 1);
        // A failure the store could still record is a plain, counted refusal; one it could
        // not record is PAM_SYSTEM_ERR. Either way nothing already counted may be lost.
        let (a2, i2) = counts(&lockdir);
        if o.auth == Some(PAM_AUTH_ERR) {
            assert_eq!(
                (a2, i2),
                (a + 1, i + 1),
                "{what}: refused as counted, not counted"
            );
        } else {
            store_refusal(&o, &what);
            system_err += 1;
            assert!(
                a2 >= a && i2 >= i,
                "{what}: failures lost ({a} -> {a2}, {i} -> {i2})"
            );
        }
        (a, i) = (a2, i2);
    }
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        login(&env, "alice", "Wrong-Pass1!", "Nope").auth,
        Some(PAM_AUTH_ERR)
    );
    assert_eq!(counts(&lockdir).0, a + 1, "counting did not resume");
    eprintln!("FIGURES stress full disk records: 3 failures on a full disk against a 311-failure record: {system_err} PAM_SYSTEM_ERR, {} counted, 0 lost, 0 torn", 3 - system_err);
}

#[test]
fn read_only_lockout_directory_is_pam_system_err_logged_and_nobody_let_in() {
    let (_sim, env) = standard("");
    // The directory and a record exist; then it becomes read-only (a read-only bind mount:
    // root ignores mode bits).
    assert_eq!(
        login(&env, "alice", "Wrong-Pass1!", "Nope").auth,
        Some(PAM_AUTH_ERR)
    );
    let ro = Mount::read_only(&env.lockdir);
    let before = records_intact(&env.lockdir);
    let mut tried = 0;
    for (user, pw, answer, what) in [
        ("alice", "Wrong-Pass1!", "Nope", "wrong password"),
        ("mallory", "Wrong-Pass1!", "Nope", "unknown user"),
        ("alice", ALICE_PW, ALICE_ANSWER, "right password"),
        ("bob", BOB_PW, BOB_ANSWER, "right password, no record"),
    ] {
        let o = login(&env, user, pw, answer);
        tried += 1;
        store_refusal(&o, &format!("read-only directory, {what}"));
    }
    assert_eq!(records_intact(&env.lockdir), before);
    drop(ro);
    assert_eq!(
        login(&env, "alice", ALICE_PW, ALICE_ANSWER).auth,
        Some(PAM_SUCCESS)
    );
    eprintln!("FIGURES stress read-only: {tried} logins on a read-only lockout directory, {tried} PAM_SYSTEM_ERR logged store_error, 0 admitted");
}

#[test]
fn a_record_with_a_failure_time_near_the_end_of_time_is_no_crash() {
    // Found by the lockout_record fuzz target (fuzz/regressions/lockout_record/): a record whose
    // failure time is near u64::MAX makes `t + window_s` overflow. SPEC §7: "a damaged record
    // is logged and replaced, never a crash".
    let (_sim, env) = standard("");
    assert_eq!(
        login(&env, "alice", "Wrong-Pass1!", "Nope").auth,
        Some(PAM_AUTH_ERR)
    );
    let record = env.lockdir.join(files::file_name(&alice()));
    assert!(record.exists());
    std::fs::write(
        &record,
        "pam_portal-lockout 1\nkey user 616c696365\nuntil 0\nf 18446744073709551615\n",
    )
    .unwrap();
    let o = login(&env, "alice", ALICE_PW, ALICE_ANSWER);
    assert!(!o.stderr.contains("panicked"), "{}", o.describe());
    assert_ne!(o.auth, Some(PAM_ABORT), "a crash: {}", o.describe());
    let o = login(&env, "alice", "Wrong-Pass1!", "Nope");
    assert_ne!(o.auth, Some(PAM_ABORT), "a crash: {}", o.describe());
}
