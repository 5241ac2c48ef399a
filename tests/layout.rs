//! The module's shape as a shared object (issue 7): built on its own from module/, exporting
//! the PAM entry points and nothing else, with the functions of a refusal gathered in one
//! `.text.hot` section (module/hot-text.ld, passed to the linker by build.rs) so that a login
//! process faults in few pages of its code. Read with binutils from the built module.
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

fn module() -> String {
    pam_testkit::module_path().display().to_string()
}

/// (address, size) of a section, from `readelf -SW`.
fn section(name: &str) -> Option<(u64, u64)> {
    tool(&["readelf", "-SW", &module()]).lines().find_map(|l| {
        let rest = l.split_once(']')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        (f.first() == Some(&name)).then(|| {
            let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
            (hex(f[2]), hex(f[4]))
        })
    })
}

/// (address, mangled name) of every function the module defines.
fn functions() -> Vec<(u64, String)> {
    tool(&["nm", "--defined-only", &module()])
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

/// The function-name patterns of module/hot-text.ld (`*(.text.<pattern> ...)`).
fn hot_patterns() -> Vec<String> {
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/module/hot-text.ld"))
            .expect("module/hot-text.ld");
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("*(.text."))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_module_exports_the_pam_entry_points_and_nothing_else() {
    let dynamic = tool(&["nm", "-D", "--defined-only", &module()]);
    let mut exported: Vec<&str> = dynamic
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    exported.sort_unstable();
    assert_eq!(
        exported,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred"
        ]
    );
}

#[test]
fn the_refusal_path_lies_in_the_hot_text_section() {
    let (start, size) = section(".text.hot")
        .expect("no .text.hot section: build.rs did not pass module/hot-text.ld to the linker");
    let (text, _) = section(".text").expect(".text");
    assert!(start + size <= text, ".text.hot should come before .text");
    let hot = |a: &u64| (start..start + size).contains(a);

    // The script names the paths of a refusal (benches/hot_text.py found them)...
    let patterns = hot_patterns();
    for needed in [
        "pam_sm_authenticate",
        "6config6Config5parse",
        "9FileStore4open",
        "5audit6report",
    ] {
        assert!(
            patterns.iter().any(|p| p.contains(needed)),
            "module/hot-text.ld does not name {needed}: rerun benches/hot_text.py"
        );
    }
    // ...and every function of this build that a pattern names was placed in .text.hot.
    let functions = functions();
    let mut placed = 0;
    for (addr, name) in &functions {
        if patterns.iter().any(|p| glob(p, name)) {
            assert!(
                hot(addr),
                "{name} at {addr:#x} is outside .text.hot ({start:#x}+{size:#x})"
            );
            placed += 1;
        }
    }
    assert!(
        placed >= 50,
        "only {placed} functions matched module/hot-text.ld"
    );
    // Code a refusal never runs stays in .text.
    let masked: Vec<_> = functions
        .iter()
        .filter(|(_, n)| n.contains("5login5phone6masked"))
        .collect();
    assert!(
        !masked.is_empty(),
        "pam_portal::login::phone::masked is not in the module"
    );
    assert!(
        masked.iter().all(|(a, _)| !hot(a)),
        "the phone-number masking (phone logins only) should stay out of .text.hot"
    );
}
