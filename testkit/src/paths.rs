//! Where the built artefacts are. Tests never build anything themselves.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// `CARGO_TARGET_DIR` (relative to the workspace root if relative) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The directory holding the workspace's binaries for the profile the tests were built with:
/// the parent of `deps/` when the current executable is a test binary there, else
/// `<target>/debug`.
pub fn bin_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            if dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(p) = dir.parent() {
                    if p.join("pam-drive").exists() {
                        return p.to_path_buf();
                    }
                }
            }
            if dir.join("pam-drive").exists() {
                return dir.to_path_buf();
            }
        }
    }
    target_dir().join("debug")
}

fn built(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    if !p.exists() {
        panic!(
            "{} is missing: run `cargo build --workspace` first",
            p.display()
        );
    }
    p
}

/// `target/debug/libpam_portal.so`.
pub fn module_path() -> PathBuf {
    built("libpam_portal.so")
}

/// `target/debug/pam-drive`.
pub fn drive_path() -> PathBuf {
    built("pam-drive")
}

/// `target/debug/pam-hazard` (the process-hazard host, tests/hazards.rs).
pub fn hazard_path() -> PathBuf {
    built("pam-hazard")
}

/// `target/debug/portal-sim`.
pub fn sim_path() -> PathBuf {
    built("portal-sim")
}

/// `target/debug/pam-portal`, the admin command, if it has been built.
pub fn admin_path() -> Option<PathBuf> {
    let p = bin_dir().join("pam-portal");
    p.exists().then_some(p)
}

/// pam_wrapper's preload library.
pub fn pam_wrapper_lib() -> PathBuf {
    for c in [
        "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so",
        "/usr/lib/aarch64-linux-gnu/libpam_wrapper.so",
        "/usr/lib64/libpam_wrapper.so",
        "/usr/lib/libpam_wrapper.so",
    ] {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!("libpam_wrapper.so not found: install the libpam-wrapper package")
}

/// A stock Linux-PAM module (`pam_permit.so`, `pam_deny.so`, ...) by absolute path.
pub fn system_module(name: &str) -> PathBuf {
    for dir in [
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
        "/lib/aarch64-linux-gnu/security",
        "/usr/lib64/security",
        "/lib/security",
        "/usr/lib/x86_64-linux-gnu/pam_wrapper",
    ] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("PAM module {name} not found")
}
