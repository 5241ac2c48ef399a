// Link flags for the cdylibs (pam_portal.so, the front; libpam_portal_full.so, full/; and the
// HTTP half, http/; all three use this file):
// - `-z nodelete`: libpam dlclose()s the module at pam_end(); a host that ran PAM on a thread
//   which exits afterwards would then run thread-local destructors that point into unmapped
//   code and segfault. Keeping the object mapped avoids that.
// - libpam itself, for the few functions src/pam/ffi.rs declares (the module only).
// - the unwinder from libgcc_eh.a, linked statically: it comes before rustc's `-lgcc_s` on the
//   link line, and rustc links with `--as-needed`, so the module no longer needs libgcc_s.so
//   at run time. One shared library fewer to map and relocate in every login process (the
//   largest part of the module's fixed cost; see BENCHMARKS.md). The cdylib's version script
//   keeps the unwinder's symbols local, so the host's own unwinder is untouched.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    if package == "pam_portal" {
        // The library (an rlib): its libpam calls reach whatever links it.
        println!("cargo:rustc-link-lib=pam");
        return;
    }
    // The cdylibs: the module (module/) and the HTTP half (http/).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    if package == "pam_portal_module" || package == "pam_portal_full" {
        hot_text();
    }
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
        if let Some(dir) = libgcc_eh_dir() {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=static=gcc_eh");
        }
    }
}

/// The directory of the C compiler's libgcc_eh.a, if it has one (else libgcc_s stays linked).
fn libgcc_eh_dir() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    if !path.is_absolute() || !path.is_file() {
        return None;
    }
    Some(path.parent()?.to_str()?.to_string())
}

/// hot-text.ld (written by benches/hot_text.py): the functions of a refusal and of a counted
/// failure, gathered in one `.text.hot` section ahead of `.text`, so that a login process
/// faults in a few 64 KiB windows of the module's code instead of most of them. The script only
/// adds a section (`INSERT BEFORE .text`); both lld and GNU ld take it with `-T`.
fn hot_text() {
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = std::path::Path::new(&dir).join("hot-text.ld");
    if script.is_file() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
        println!("cargo:rerun-if-changed={}", script.display());
    } else {
        println!("cargo:warning={} is missing: the module links without its hot-text layout (slower logins)", script.display());
    }
}
