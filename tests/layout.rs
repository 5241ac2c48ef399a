//! The module's shape as shared objects (issue 7). The front, pam_portal.so (module/), exports
//! the PAM entry points and nothing else, and holds no TOML or serde code; the full module,
//! libpam_portal_full.so (full/), exports them and its version function. Each has the functions
//! of a refusal and a counted failure gathered in one `.text.hot` section (`<crate>/hot-text.ld`,
//! passed to the linker by build.rs) so that a login process faults in few pages of its code.
//! Read with binutils from the built objects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_testkit::run_with_timeout;
use std::process::Command;
use std::time::Duration;

/// The standard output of a binutils command, which must succeed.
fn tool(args: &[&str]) -> String {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{args:?} (binutils is installed by scripts/install-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The objects: (crate directory, built file).
const FRONT: (&str, &str) = ("module", "libpam_portal.so");
const FULL: (&str, &str) = ("full", "libpam_portal_full.so");

fn path(obj: (&str, &str)) -> String {
    pam_testkit::bin_dir().join(obj.1).display().to_string()
}

/// (address, size) of a section, from `readelf -SW`.
fn section(obj: (&str, &str), name: &str) -> Option<(u64, u64)> {
    tool(&["readelf", "-SW", &path(obj)]).lines().find_map(|l| {
        let rest = l.split_once(']')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        (f.first() == Some(&name)).then(|| {
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
            (hex(f[2]), hex(f[4]))
        })
    })
}

/// (address, mangled name) of every function the object defines.
fn functions(obj: (&str, &str)) -> Vec<(u64, String)> {
    tool(&["nm", "--defined-only", &path(obj)])
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            matches!(kind, "t" | "T")
                .then(|| (u64::from_str_radix(addr, 16).unwrap(), name.to_string()))
        })
        .collect()
}

/// A linker-script name pattern (`*` wildcards only) against a name.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| {
                    name.is_char_boundary(head.len() + i) && glob(rest, &name[head.len() + i..])
                })
        }
    }
}

/// The function-name patterns of `<crate>/hot-text.ld` (`*(.text.<pattern> ...)`).
fn hot_patterns(obj: (&str, &str)) -> Vec<String> {
    let file = format!("{}/{}/hot-text.ld", env!("CARGO_MANIFEST_DIR"), obj.0);
    let script = std::fs::read_to_string(&file).expect(&file);
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("*(.text."))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

const PAM_HOOKS: [&str; 6] = [
    "pam_sm_acct_mgmt",
    "pam_sm_authenticate",
    "pam_sm_chauthtok",
    "pam_sm_close_session",
    "pam_sm_open_session",
    "pam_sm_setcred",
];

fn exports(obj: (&str, &str)) -> Vec<String> {
    let dynamic = tool(&["nm", "-D", "--defined-only", &path(obj)]);
    let mut exported: Vec<String> = dynamic
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(str::to_string)
        .collect();
    exported.sort_unstable();
    exported
}

#[test]
fn the_front_exports_the_pam_entry_points_and_nothing_else() {
    assert_eq!(exports(FRONT), PAM_HOOKS);
    let mut full = PAM_HOOKS.to_vec();
    full.insert(0, "pam_portal_full_version");
    assert_eq!(exports(FULL), full);
}

#[test]
fn the_front_holds_no_configuration_parser_login_or_redis_client() {
    let names = functions(FRONT);
    assert!(
        names.iter().any(|(_, n)| n.contains("5front5early")),
        "pam_portal::front::early is not in the front"
    );
    for absent in [
        "toml",
        "serde",
        "5login5phone",
        // The login from the portal on (the front shares only the steps before it).
        "5login12authenticate",
        "6portal4wire",
        "5redis",
        "6config6Config5parse",
    ] {
        let found: Vec<&String> = names
            .iter()
            .map(|(_, n)| n)
            .filter(|n| n.contains(absent))
            .collect();
        assert!(
            found.is_empty(),
            "the front links {absent}: {:?}",
            &found[..found.len().min(5)]
        );
    }
}

/// Every function of `obj` that its hot-text.ld names lies in `.text.hot`, which comes before
/// `.text`; the script names each of `needed`; functions named with `cold` stay out.
fn check_hot_text(obj: (&str, &str), needed: &[&str], cold: &str) {
    let (start, size) = section(obj, ".text.hot").unwrap_or_else(|| {
        panic!(
            "no .text.hot section in {}: build.rs did not pass {}/hot-text.ld",
            obj.1, obj.0
        )
    });
    let (text, _) = section(obj, ".text").expect(".text");
    assert!(start + size <= text, ".text.hot should come before .text");
    let hot = |a: &u64| (start..start + size).contains(a);

    // The script names the paths of a refusal (benches/hot_text.py found them)...
    let patterns = hot_patterns(obj);
    for needed in needed {
        assert!(
            patterns.iter().any(|p| p.contains(needed)),
            "{}/hot-text.ld does not name {needed}: rerun benches/hot_text.py",
            obj.0
        );
    }
    // ...and every function of this build that a pattern names was placed in .text.hot.
    let functions = functions(obj);
    let mut placed = 0;
    for (addr, name) in &functions {
        if patterns.iter().any(|p| glob(p, name)) {
            assert!(
                hot(addr),
                "{name} at {addr:#x} is outside .text.hot ({start:#x}+{size:#x}) in {}",
                obj.1
            );
            placed += 1;
        }
    }
    assert!(
        placed >= 50,
        "only {placed} functions matched {}/hot-text.ld",
        obj.0
    );
    // Code a refusal never runs stays in .text.
    let cold: Vec<_> = functions.iter().filter(|(_, n)| n.contains(cold)).collect();
    assert!(!cold.is_empty(), "{cold:?} is not in {}", obj.1);
    assert!(
        cold.iter().all(|(a, _)| !hot(a)),
        "{cold:?} (not on a refusal's path) should stay out of .text.hot in {}",
        obj.1
    );
}

#[test]
fn the_refusal_path_lies_in_the_hot_text_section_of_the_front() {
    // A refusal, and a counted failure's way through the front to the full module; the panic
    // machinery's symbol demangler is never on those paths.
    check_hot_text(
        FRONT,
        &[
            "pam_sm_authenticate",
            "5front5early",
            "9smallfile4read",
            "5front7forward",
        ],
        "rustc_demangle12try_demangle",
    );
}

#[test]
fn the_counted_failure_path_lies_in_the_hot_text_section_of_the_full_module() {
    check_hot_text(
        FULL,
        &[
            "pam_sm_authenticate",
            "6config6Config5parse",
            "9FileStore4open",
            "5audit6report",
        ],
        "5login5phone6masked",
    );
}
