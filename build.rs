// Link flags for the cdylib:
// - `-z nodelete`: libpam dlclose()s the module at pam_end(); a host that ran PAM on a thread
//   which exits afterwards would then run thread-local destructors that point into unmapped
//   code and segfault. Keeping the object mapped avoids that.
// - libpam itself, for the few functions src/pam/ffi.rs declares.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rustc-link-lib=pam");
    println!("cargo:rerun-if-changed=build.rs");
}
