//! The bridge to the HTTP half, `libpam_portal_http.so` (the `http/` crate).
//!
//! The TLS stack (ureq, rustls, ring, the Mozilla roots) is most of pam_portal's code and most
//! of the relocations the dynamic loader must apply when a process loads a module. It lives in
//! a second library, loaded here the first time a login needs the portal (or a Redis server
//! over TLS), so a login refused before that — locked, a denied address, a bad configuration —
//! never maps or relocates it (BENCHMARKS.md has the figures).
//!
//! Where it is looked for: by the module, in the directory of its real file (symbolic links
//! resolved) and nowhere else; by a program built on this library (`pam-portal`, tests), in
//! its own directory, then in the directories libpam takes modules from. A candidate must
//! be a regular file owned by root (or by the caller) and writable by nobody else, as the
//! module itself is; its interface and package versions must equal the module's. There is no
//! environment variable or option to name another file: the module runs inside set-uid hosts.
//! A half that failed to load is tried again at the next login.
//!
//! The interface itself (`http/src/abi.rs`) is compiled into both sides. This file and
//! `src/pam/ffi.rs` hold all of the module's `unsafe`.
#![allow(unsafe_code)]

#[path = "../../http/src/abi.rs"]
#[allow(dead_code)]
mod abi;

use abi::{AgentConfig, Api, Bytes, Request, TlsConfig, ABI_VERSION, ENTRY_SYMBOL, FILE_NAME};
use std::ffi::{c_void, CString};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The loaded half. Only a success is kept (the library stays mapped: `RTLD_NODELETE`).
static HALF: OnceLock<&'static Api> = OnceLock::new();

fn half() -> Result<&'static Api, String> {
    if let Some(api) = HALF.get() {
        return Ok(api);
    }
    let api = load()?;
    Ok(HALF.get_or_init(|| api))
}

/// Where the half may be, most specific first.
pub fn candidates() -> Vec<PathBuf> {
    candidates_for(FILE_NAME)
}

/// Where a file of the module's own (`name`: a half) is looked for: beside the module, or,
/// for the admin command and tests, beside the executable and in the module directories.
pub fn candidates_for(name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    match own_object() {
        // The module (or another shared object built from this crate): its own directory only.
        Some(obj) if obj.extension().is_some_and(|e| e == "so") => {
            dirs.extend(obj.parent().map(Path::to_path_buf));
        }
        // A program (`pam-portal`, a test): its directory, the profile directory above Cargo's
        // `deps/`, then where the packages install the half, beside the module.
        _ => {
            if let Some(dir) = std::env::current_exe()
                .ok()
                .and_then(|e| e.canonicalize().ok())
                .and_then(|e| e.parent().map(Path::to_path_buf))
            {
                if dir.file_name().is_some_and(|n| n == "deps") {
                    dirs.extend(dir.parent().map(Path::to_path_buf));
                }
                dirs.insert(0, dir);
            }
            dirs.extend(crate::admin::module_dirs());
        }
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let p = d.join(name);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The real path of the object holding this code.
fn own_object() -> Option<PathBuf> {
    let mut info: libc::Dl_info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let here = candidates as fn() -> Vec<PathBuf> as *const c_void;
    // SAFETY: `here` is an address in this object; `info` is a valid out-parameter.
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set `dli_fname` to a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    if !path.is_absolute() {
        return None;
    }
    path.canonicalize().ok()
}

/// A candidate file may be loaded: regular, owned by root or by us, writable by nobody else.
pub fn trusted(meta: &std::fs::Metadata, euid: u32) -> Result<(), String> {
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn load() -> Result<&'static Api, String> {
    load_object(FILE_NAME, "the HTTP half of pam_portal", open)
}

/// One of the module's own objects (`name`), from the first of [`candidates_for`] that exists,
/// is [`trusted`] and that `open` accepts; else why not, as "cannot load `what`: …".
pub(crate) fn load_object<T>(
    name: &str,
    what: &str,
    open: impl Fn(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let euid = crate::pam::geteuid();
    let mut why = Vec::new();
    let candidates = candidates_for(name);
    for path in &candidates {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                why.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if let Err(e) = trusted(&meta, euid) {
            why.push(format!("{}: {e}", path.display()));
            continue;
        }
        match open(path) {
            Ok(object) => return Ok(object),
            Err(e) => why.push(format!("{}: {e}", path.display())),
        }
    }
    if why.is_empty() {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        why.push(format!("not found (looked for {})", looked.join(", ")));
    }
    Err(format!("cannot load {what}: {}", why.join("; ")))
}

/// `dlopen` of one of the module's own objects (a file [`load_object`] checked): bound now,
/// its symbols kept out of the global scope (the full module's `pam_sm_*` among them), never
/// unmapped.
pub(crate) fn dlopen_local(path: &Path) -> Result<*mut c_void, String> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| "NUL in path".to_string())?;
    // SAFETY: `c` is a valid C string. The objects' constructors are Rust's std only.
    let handle = unsafe {
        libc::dlopen(
            c.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE,
        )
    };
    if handle.is_null() {
        return Err(dlerror());
    }
    Ok(handle)
}

fn open(path: &Path) -> Result<&'static Api, String> {
    let handle = dlopen_local(path)?;
    // SAFETY: `handle` is a live handle, the symbol name a valid C string.
    let sym = unsafe { libc::dlsym(handle, ENTRY_SYMBOL.as_ptr()) };
    if sym.is_null() {
        return Err(format!("no symbol {}", ENTRY_SYMBOL.to_string_lossy()));
    }
    // SAFETY: the symbol is `extern "C" fn() -> *const Api` (abi.rs, compiled into both sides).
    let entry: extern "C" fn() -> *const Api = unsafe { std::mem::transmute(sym) };
    // SAFETY: the table is a static of the library, which is never unloaded (RTLD_NODELETE).
    let api: &'static Api = unsafe { entry().as_ref() }.ok_or("empty interface table")?;
    if api.abi_version != ABI_VERSION {
        return Err(format!(
            "interface version {}, the module needs {ABI_VERSION}",
            api.abi_version
        ));
    }
    // SAFETY: `version` points to a static string of the library.
    let version = unsafe { std::slice::from_raw_parts(api.version.ptr, api.version.len) };
    if version != env!("CARGO_PKG_VERSION").as_bytes() {
        return Err(format!(
            "version {}, the module is {}",
            String::from_utf8_lossy(version),
            env!("CARGO_PKG_VERSION")
        ));
    }
    Ok(api)
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call on
    // this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "dlopen failed".into()
    } else {
        // SAFETY: as above.
        unsafe { std::ffi::CStr::from_ptr(e) }
            .to_string_lossy()
            .into_owned()
    }
}

/// The `Sink` of every call: appends to the `Vec<u8>` behind `ctx`.
extern "C" fn collect(ctx: *mut c_void, ptr: *const u8, len: usize) {
    if ctx.is_null() || ptr.is_null() {
        return;
    }
    // SAFETY: `ctx` is the `&mut Vec<u8>` the caller passed for this call; `ptr`/`len` are
    // valid for the duration of this callback.
    unsafe {
        (*ctx.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(ptr, len));
    }
}

fn path_bytes(p: Option<&Path>) -> Bytes {
    Bytes::opt(p.map(|p| p.as_os_str().as_bytes()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The stack the HTTP and TLS work gets (see `off_host_stack`).
const HELPER_STACK: usize = 1024 * 1024;

/// Runs `work` on a scoped helper thread with its own stack, and waits for it; `Err` only when
/// the thread cannot be started.
///
/// Hosts may run PAM on small stacks: ocserv 1.1 runs each login in a coroutine with 96 KiB
/// and no guard page, where loading the HTTP half or a TLS handshake does not fit (an overflow
/// there corrupts memory instead of faulting). The thread lives only for one call; PAM itself
/// (conversation, items, syslog) stays on the host's thread. A panic in `work` carries on in
/// the caller, so pam-bindings' guard still answers PAM_ABORT.
pub fn off_host_stack<R: Send>(work: impl FnOnce() -> R + Send) -> Result<R, std::io::Error> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("pam_portal-http".into())
            .stack_size(HELPER_STACK)
            .spawn_scoped(scope, work)?;
        match worker.join() {
            Ok(result) => Ok(result),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// One ureq agent in the HTTP half: one connection and one TLS handshake per login.
pub struct Agent {
    api: &'static Api,
    ptr: *mut c_void,
}

// SAFETY: the handle is a `ureq::Agent`, which is Send and Sync; it is freed once (Drop).
unsafe impl Send for Agent {}
// SAFETY: as above.
unsafe impl Sync for Agent {}

impl Agent {
    pub fn new(
        ca_file: Option<&Path>,
        connect_timeout: Duration,
        user_agent: &str,
    ) -> Result<Agent, String> {
        let api = half()?;
        let cfg = AgentConfig {
            ca_file: path_bytes(ca_file),
            connect_timeout_ms: millis(connect_timeout),
            user_agent: Bytes::of(user_agent.as_bytes()),
        };
        let mut err: Vec<u8> = Vec::new();
        // SAFETY: `cfg` and `err` outlive the call; `collect` matches `Sink`.
        let ptr = unsafe { (api.agent_new)(&cfg, collect, (&raw mut err).cast::<c_void>()) };
        if ptr.is_null() {
            return Err(String::from_utf8_lossy(&err).into_owned());
        }
        Ok(Agent { api, ptr })
    }

    /// One exchange: GET, or POST of `body`. The status and up to `limit` bytes of answer.
    pub fn exchange(
        &self,
        url: &str,
        authorization: Option<&str>,
        body: Option<&[u8]>,
        timeout: Duration,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), String> {
        let req = Request {
            url: Bytes::of(url.as_bytes()),
            authorization: Bytes::opt(authorization.map(str::as_bytes)),
            body: Bytes::opt(body),
            timeout_ms: millis(timeout),
            limit,
        };
        let mut out: Vec<u8> = Vec::new();
        let mut status: u16 = 0;
        // SAFETY: `self.ptr` is a live agent; `req`, `status` and `out` outlive the call.
        let rc = unsafe {
            (self.api.exchange)(
                self.ptr,
                &req,
                &mut status,
                collect,
                (&raw mut out).cast::<c_void>(),
            )
        };
        if rc == 0 {
            Ok((status, out))
        } else {
            Err(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `agent_new` and is freed only here.
        unsafe { (self.api.agent_free)(self.ptr) }
    }
}

/// A TLS session in the HTTP half, over a duplicate of a connected socket.
pub struct TlsStream {
    api: &'static Api,
    ptr: *mut c_void,
}

// SAFETY: the handle is a rustls stream owning its socket, which is Send; freed once (Drop).
unsafe impl Send for TlsStream {}

impl TlsStream {
    /// Handshakes with `host` over `tcp` (whose timeouts bound it).
    pub fn open(tcp: &TcpStream, host: &str, ca_file: Option<&Path>) -> Result<TlsStream, String> {
        let api = half()?;
        let cfg = TlsConfig {
            host: Bytes::of(host.as_bytes()),
            ca_file: path_bytes(ca_file),
        };
        let mut err: Vec<u8> = Vec::new();
        // SAFETY: the socket is open for the call; `cfg` and `err` outlive it.
        let ptr = unsafe {
            (api.tls_open)(
                tcp.as_raw_fd(),
                &cfg,
                collect,
                (&raw mut err).cast::<c_void>(),
            )
        };
        if ptr.is_null() {
            return Err(String::from_utf8_lossy(&err).into_owned());
        }
        Ok(TlsStream { api, ptr })
    }
}

fn io_result(n: isize) -> std::io::Result<usize> {
    usize::try_from(n).map_err(|_| {
        std::io::Error::from_raw_os_error(i32::try_from(n.unsigned_abs()).unwrap_or(libc::EPROTO))
    })
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `ptr` is a live session; `buf` is writable for its length.
        io_result(unsafe { (self.api.tls_read)(self.ptr, buf.as_mut_ptr(), buf.len()) })
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: `ptr` is a live session; `buf` is readable for its length.
        io_result(unsafe { (self.api.tls_write)(self.ptr, buf.as_ptr(), buf.len()) })
    }

    /// Each write is flushed by the half.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `tls_open` and is freed only here.
        unsafe { (self.api.tls_close)(self.ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_root_owned_and_not_writable_by_others() {
        let dir = std::env::temp_dir().join(format!("pp-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.so");
        std::fs::write(&f, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let euid = crate::pam::geteuid();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(trusted(&std::fs::metadata(&f).unwrap(), euid), Ok(()));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(trusted(&std::fs::metadata(&f).unwrap(), euid)
            .unwrap_err()
            .contains("writable"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(trusted(&std::fs::metadata(&f).unwrap(), euid).is_err());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Owned by someone else (neither root nor us).
        assert!(trusted(&std::fs::metadata(&f).unwrap(), euid + 1).is_ok() == (euid == 0));
        assert!(trusted(&std::fs::metadata(&dir).unwrap(), euid)
            .unwrap_err()
            .contains("regular"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_test_binary_finds_the_half_of_its_profile() {
        let c = candidates();
        assert!(c.iter().all(|p| p.ends_with(FILE_NAME)), "{c:?}");
        // Test binaries live in target/<profile>/deps: the profile directory is a candidate.
        let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
        let profile = exe.parent().unwrap().parent().unwrap().join(FILE_NAME);
        assert!(c.contains(&profile), "{c:?}");
    }
}
