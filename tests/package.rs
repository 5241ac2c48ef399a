//! The Debian package end to end, on this machine: `scripts/build-deb.sh` builds it (from the
//! debug artefacts the tests use, gzip-compressed for speed), `dpkg -i` installs it, a user
//! logs in with `pamtester` through the installed module against portal-sim, `pam-portal check`
//! and `status` run from /usr/sbin, then `dpkg -r` and `dpkg -P` leave nothing behind.
//!
//! It changes the real system, so it runs as root only, takes the lock
//! /tmp/pam_portal-system-install.lock, refuses to start when pam_portal is already installed,
//! and undoes everything from a drop guard even when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::fixtures::*;
use pam_testkit::{bin_dir, run_with_input, run_with_timeout, standard, workspace_root, Finished};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PKG: &str = "libpam-portal";
const STATE: &str = "/var/lib/pam_portal";
const CONFFILE: &str = "/etc/security/pam_portal.toml";

fn run(prog: &str, args: &[&str]) -> Finished {
    let mut cmd = Command::new(prog);
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_with_timeout(cmd, Duration::from_secs(300))
}

fn show(f: &Finished) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        f.status.code(),
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    )
}

fn ok(f: &Finished, what: &str) -> String {
    assert!(f.status.success(), "{what}: {}", show(f));
    String::from_utf8_lossy(&f.stdout).into_owned()
}

fn multiarch() -> String {
    let f = run("dpkg-architecture", &["-qDEB_HOST_MULTIARCH"]);
    if f.status.success() {
        return String::from_utf8_lossy(&f.stdout).trim().to_string();
    }
    let f = run("gcc", &["-print-multiarch"]);
    String::from_utf8_lossy(&f.stdout).trim().to_string()
}

fn installed() -> bool {
    let f = run("dpkg-query", &["-W", "-f=${Status}", PKG]);
    String::from_utf8_lossy(&f.stdout).contains("install ok installed")
}

fn known_to_dpkg() -> bool {
    run("dpkg-query", &["-W", PKG]).status.success()
}

fn pam_d() -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir("/etc/pam.d")
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Undoes the installation and the test stack whatever happens.
struct Cleanup {
    stack: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stack);
        if known_to_dpkg() {
            let f = run("dpkg", &["-P", PKG]);
            if !f.status.success() {
                eprintln!("cleanup: dpkg -P {PKG} failed: {}", show(&f));
            }
        }
    }
}

#[test]
fn deb_installs_logs_in_through_pamtester_checks_and_purges_cleanly() {
    if run("id", &["-u"]).stdout != b"0\n" {
        eprintln!("SKIPPED: the package test installs into the system and needs root");
        return;
    }
    for tool in ["dpkg", "dpkg-deb", "pamtester", "man"] {
        let f = run("sh", &["-c", &format!("command -v {tool}")]);
        assert!(
            f.status.success(),
            "{tool} is missing: run scripts/install-deps.sh"
        );
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/pam_portal-system-install.lock")
        .unwrap();
    lock.lock().unwrap();

    let ma = multiarch();
    let module = format!("/lib/{ma}/security/pam_portal.so");
    let half = format!("/lib/{ma}/security/libpam_portal_http.so");
    let full = format!("/lib/{ma}/security/libpam_portal_full.so");
    let admin = "/usr/sbin/pam-portal";
    assert!(
        !known_to_dpkg(),
        "{PKG} is already known to dpkg on this machine: `dpkg -P {PKG}` first (this test would purge it)"
    );
    for p in [
        module.as_str(),
        full.as_str(),
        half.as_str(),
        admin,
        CONFFILE,
        STATE,
    ] {
        assert!(
            std::fs::symlink_metadata(p).is_err(),
            "{p} exists already: this test would overwrite and then remove it; move it away first"
        );
    }

    // Build.
    let (sim, env) = standard(&format!("[lockout]\ndir = \"{STATE}\"\n"));
    let out = env.root().join("deb");
    let started = std::time::Instant::now();
    let built = run(
        workspace_root()
            .join("scripts/build-deb.sh")
            .to_str()
            .unwrap(),
        &[
            "--bin-dir",
            bin_dir().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--compress",
            "gzip",
        ],
    );
    let deb = ok(&built, "build-deb.sh")
        .lines()
        .last()
        .unwrap()
        .to_string();
    eprintln!("built {deb} in {:?}", started.elapsed());
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "{deb}");

    // Contents: layout and modes.
    let listing = ok(&run("dpkg-deb", &["-c", &deb]), "dpkg-deb -c");
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"))
            .to_string()
    };
    assert!(
        entry(CONFFILE).starts_with("-rw------- root/root"),
        "{}",
        entry(CONFFILE)
    );
    assert!(entry(&module).starts_with("-rw-r--r-- root/root"));
    assert!(entry(&full).starts_with("-rw-r--r-- root/root"));
    assert!(entry(&half).starts_with("-rw-r--r-- root/root"));
    assert!(entry(admin).starts_with("-rwxr-xr-x root/root"));
    for page in [
        "man8/pam_portal.8.gz",
        "man8/pam-portal.8.gz",
        "man5/pam_portal.toml.5.gz",
    ] {
        entry(&format!("/usr/share/man/{page}"));
    }
    for ex in [
        "pam_portal.toml",
        "pam.d/sshd",
        "pam.d/openvpn",
        "pam.d/ocserv",
        "pam.d/sshd-fallback",
    ] {
        entry(&format!("/usr/share/doc/{PKG}/examples/{ex}"));
    }
    entry(&format!("/usr/share/doc/{PKG}/copyright"));
    assert!(
        !listing.contains("./etc/pam.d"),
        "the package must not ship a stack:\n{listing}"
    );
    // lintian, when it is installed (it is not among the test dependencies: it is heavy).
    if run("sh", &["-c", "command -v lintian"]).status.success() {
        let f = run("lintian", &["--fail-on", "error,warning", &deb]);
        assert!(f.status.success(), "lintian: {}", show(&f));
    }
    let conffiles = ok(&run("dpkg-deb", &["-I", &deb, "conffiles"]), "conffiles");
    assert_eq!(conffiles.trim(), CONFFILE);
    let files: Vec<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split(" ./").nth(1))
        .map(|p| format!("/{p}"))
        .collect();

    // Install: no stack changes; the state directory appears, 0700.
    let service = format!("pam-portal-pkgtest-{}", std::process::id());
    let stack = Path::new("/etc/pam.d").join(&service);
    let _cleanup = Cleanup {
        stack: stack.clone(),
    };
    let before = pam_d();
    ok(&run("dpkg", &["-i", &deb]), "dpkg -i");
    assert_eq!(before, pam_d(), "installing changed /etc/pam.d");
    assert!(installed());
    let state = std::fs::metadata(STATE).unwrap();
    assert!(
        state.is_dir() && state.mode() & 0o777 == 0o700 && state.uid() == 0,
        "{state:?}"
    );
    let conf = std::fs::metadata(CONFFILE).unwrap();
    assert_eq!(conf.mode() & 0o777, 0o600);
    assert!(Path::new(&module).is_file() && Path::new(admin).is_file());
    assert!(Path::new(&full).is_file() && Path::new(&half).is_file());

    // The installed man pages render without warnings.
    for page in [
        "man8/pam_portal.8.gz",
        "man8/pam-portal.8.gz",
        "man5/pam_portal.toml.5.gz",
    ] {
        let f = run(
            "man",
            &["--warnings", "-l", &format!("/usr/share/man/{page}")],
        );
        assert!(
            f.status.success() && f.stderr.is_empty(),
            "{page}: {}",
            show(&f)
        );
    }

    // A stack naming the module without a path: libpam finds the installed one.
    let cfg = env.config.to_str().unwrap().to_string();
    std::fs::write(
        &stack,
        format!("auth required pam_portal.so config={cfg}\naccount required pam_portal.so config={cfg}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&stack, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pamtester = |user: &str, input: &str| {
        let mut cmd = Command::new("pamtester");
        cmd.args([
            "-v",
            "-I",
            &format!("rhost={CLIENT}"),
            &service,
            user,
            "authenticate",
            "acct_mgmt",
        ]);
        run_with_input(cmd, input.as_bytes(), Duration::from_secs(60))
    };
    let f = pamtester("alice", &format!("{ALICE_PW}\n{ALICE_ANSWER}\n"));
    assert!(
        f.status.success(),
        "alice through the installed module: {}",
        show(&f)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    );
    assert!(all.contains("successfully authenticated"), "{all}");
    assert!(all.contains(PET_QUESTION), "{all}");
    let f = pamtester("bob", &format!("Wrong-Pass1!\n{BOB_ANSWER}\n"));
    assert!(
        !f.status.success(),
        "bob with a wrong password: {}",
        show(&f)
    );
    assert!(sim.login_calls("alice") >= 1);

    // pam-portal from /usr/sbin: check (on the test configuration and on the shipped example),
    // status, test-login with the installed module.
    let f = run(admin, &["--config", &cfg, "check"]);
    let out = ok(&f, "pam-portal check");
    assert!(out.contains(&format!("ok: module {module}")), "{out}");
    assert!(out.contains(&format!("ok: full module {full}")), "{out}");
    assert!(out.contains("accepted the service account"), "{out}");
    let f = run(admin, &["check", "--offline"]);
    assert_eq!(
        f.status.code(),
        Some(1),
        "the shipped example has no key file: {}",
        show(&f)
    );
    let err = String::from_utf8_lossy(&f.stderr).into_owned();
    assert!(err.contains("/etc/security/pam_portal.key"), "{err}");
    let out = ok(
        &run(admin, &["--config", &cfg, "status"]),
        "pam-portal status",
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("user ") && l.contains("bob") && l.contains("1/10")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ip ") && l.contains(CLIENT)),
        "{out}"
    );
    assert!(
        std::fs::read_dir(STATE).unwrap().count() >= 2,
        "no records in {STATE}"
    );
    let mut cmd = Command::new(admin);
    cmd.args([
        "--config",
        &cfg,
        "test-login",
        "--user",
        "alice",
        "--rhost",
        CLIENT,
        "--service",
        &service,
    ]);
    let f = run_with_input(
        cmd,
        format!("{ALICE_PW}\n{ALICE_ANSWER}\n").as_bytes(),
        Duration::from_secs(60),
    );
    assert!(
        ok(&f, "pam-portal test-login").contains("accepted"),
        "{}",
        show(&f)
    );

    // Remove keeps the conffile and the state; purge removes them; nothing is left behind.
    std::fs::remove_file(&stack).unwrap();
    ok(&run("dpkg", &["-r", PKG]), "dpkg -r");
    assert!(!Path::new(&module).exists() && !Path::new(admin).exists());
    assert!(Path::new(CONFFILE).exists() && Path::new(STATE).exists());
    ok(&run("dpkg", &["-P", PKG]), "dpkg -P");
    assert!(!known_to_dpkg(), "{PKG} still known to dpkg after purge");
    for p in files.iter().map(String::as_str).chain([STATE, CONFFILE]) {
        assert!(
            std::fs::symlink_metadata(p).is_err(),
            "{p} is left behind after purge"
        );
    }
    assert!(!Path::new(&format!("/usr/share/doc/{PKG}")).exists());
    assert_eq!(before, pam_d(), "/etc/pam.d differs after purge");
}
