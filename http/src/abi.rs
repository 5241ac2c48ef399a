//! The C interface between `pam_portal.so` and its HTTP half, `libpam_portal_http.so`.
//!
//! Both crates compile this one file (the module through `#[path]`), so the two sides cannot
//! disagree on a layout. `ABI_VERSION` changes whenever anything here changes; the module also
//! refuses a half whose package version differs from its own.
//!
//! Rules of the interface: every pointer handed over is valid for the duration of the call only;
//! bytes travel back through a `Sink` the caller provides (the callee never hands out memory the
//! caller must free, so the two allocators never meet); handles are freed by the side that made
//! them; no panic crosses it.

use std::ffi::{c_int, c_void, CStr};

pub const ABI_VERSION: u32 = 1;

/// The file the module loads, from its own directory.
pub const FILE_NAME: &str = "libpam_portal_http.so";

/// The one symbol the HTTP half exports: a function returning its `Api` table.
pub const ENTRY_SYMBOL: &CStr = c"pam_portal_http_v1";

/// A byte string lent for one call. `ptr` null means absent (distinct from empty).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    pub const ABSENT: Bytes = Bytes {
        ptr: std::ptr::null(),
        len: 0,
    };

    pub fn of(s: &[u8]) -> Bytes {
        Bytes {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    pub fn opt(s: Option<&[u8]>) -> Bytes {
        s.map_or(Bytes::ABSENT, Bytes::of)
    }
}

/// Receives bytes during a call; the receiver copies them.
pub type Sink = extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize);

/// How to build one agent (one per login: one connection, one TLS handshake).
#[repr(C)]
pub struct AgentConfig {
    /// PEM file of the CA certificates to trust; absent: the system bundle.
    pub ca_file: Bytes,
    pub connect_timeout_ms: u64,
    pub user_agent: Bytes,
}

/// One HTTP exchange: GET when `body` is absent, else a JSON POST.
#[repr(C)]
pub struct Request {
    pub url: Bytes,
    /// The `Authorization` header's value; absent: none.
    pub authorization: Bytes,
    pub body: Bytes,
    /// For the whole exchange, connection included.
    pub timeout_ms: u64,
    /// Longest answer body accepted.
    pub limit: u64,
}

/// A TLS client session over a connected socket (Redis over TLS).
#[repr(C)]
pub struct TlsConfig {
    /// The server name the certificate must carry.
    pub host: Bytes,
    /// PEM file of the CA certificates to trust; absent: the system bundle.
    pub ca_file: Bytes,
}

/// What the HTTP half offers. Error texts never contain a secret.
#[repr(C)]
pub struct Api {
    pub abi_version: u32,
    /// The half's package version (`CARGO_PKG_VERSION`).
    pub version: Bytes,
    /// A new agent, or null with the reason written to `sink`.
    pub agent_new:
        unsafe extern "C" fn(cfg: *const AgentConfig, sink: Sink, ctx: *mut c_void) -> *mut c_void,
    pub agent_free: unsafe extern "C" fn(agent: *mut c_void),
    /// 0: `status` is set and the body went to `sink`. Else the reason went to `sink`.
    pub exchange: unsafe extern "C" fn(
        agent: *mut c_void,
        req: *const Request,
        status: *mut u16,
        sink: Sink,
        ctx: *mut c_void,
    ) -> c_int,
    /// Handshakes over a duplicate of `fd` (the caller keeps its own). Null: the reason went
    /// to `sink`.
    pub tls_open: unsafe extern "C" fn(
        fd: c_int,
        cfg: *const TlsConfig,
        sink: Sink,
        ctx: *mut c_void,
    ) -> *mut c_void,
    /// Bytes read or written (≥ 0), or minus an errno value.
    pub tls_read: unsafe extern "C" fn(tls: *mut c_void, buf: *mut u8, len: usize) -> isize,
    pub tls_write: unsafe extern "C" fn(tls: *mut c_void, buf: *const u8, len: usize) -> isize,
    pub tls_close: unsafe extern "C" fn(tls: *mut c_void),
}

// SAFETY: the table is immutable; its only pointers are to static strings and functions.
unsafe impl Sync for Api {}
