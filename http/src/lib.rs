//! `libpam_portal_http.so`: the HTTPS and TLS half of pam_portal.
//!
//! The module (`pam_portal.so`) loads this library from its own directory the first time a
//! login needs the portal or a Redis server over TLS; a login refused before that (locked,
//! denied address, bad configuration) never maps or relocates the TLS stack, which is most of
//! the code. The interface is `abi.rs`; this file holds every `unsafe` of the crate: turning
//! the interface's raw pointers into Rust values and back, and `catch_unwind` around each
//! entry so that no panic crosses into the module.

#[allow(dead_code)] // FILE_NAME and ENTRY_SYMBOL are for the module's side
mod abi;
mod client;

use abi::{AgentConfig, Api, Bytes, Request, Sink, TlsConfig, ABI_VERSION};
use std::ffi::{c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

static API: Api = Api {
    abi_version: ABI_VERSION,
    version: Bytes {
        ptr: env!("CARGO_PKG_VERSION").as_ptr(),
        len: env!("CARGO_PKG_VERSION").len(),
    },
    agent_new,
    agent_free,
    exchange,
    tls_open,
    tls_read,
    tls_write,
    tls_close,
};

/// The entry point the module looks up (`abi::ENTRY_SYMBOL`).
#[no_mangle]
pub extern "C" fn pam_portal_http_v1() -> *const Api {
    &API
}

/// SAFETY (caller): `b` is absent or points to `b.len` readable bytes for the call.
unsafe fn slice<'a>(b: Bytes) -> Option<&'a [u8]> {
    if b.ptr.is_null() {
        None
    } else {
        // SAFETY: per this function's contract.
        Some(unsafe { std::slice::from_raw_parts(b.ptr, b.len) })
    }
}

/// SAFETY (caller): as `slice`. A path is any bytes (as the module's `Path` was).
unsafe fn path<'a>(b: Bytes) -> Option<&'a Path> {
    // SAFETY: per this function's contract.
    unsafe { slice(b) }.map(|s| Path::new(std::ffi::OsStr::from_bytes(s)))
}

/// SAFETY (caller): as `slice`. Text that is not UTF-8 reads as absent.
unsafe fn text<'a>(b: Bytes) -> Option<&'a str> {
    // SAFETY: per this function's contract.
    unsafe { slice(b) }.and_then(|s| std::str::from_utf8(s).ok())
}

fn send(sink: Sink, ctx: *mut c_void, bytes: &[u8]) {
    sink(ctx, bytes.as_ptr(), bytes.len());
}

const PANICKED: &str = "internal error in libpam_portal_http.so";

unsafe extern "C" fn agent_new(
    cfg: *const AgentConfig,
    sink: Sink,
    ctx: *mut c_void,
) -> *mut c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the module passes a valid config for the duration of the call.
        let cfg = unsafe { cfg.as_ref() }.ok_or("no agent configuration")?;
        // SAFETY: the config's byte strings are valid for the call.
        let (ca, ua) = unsafe { (path(cfg.ca_file), text(cfg.user_agent)) };
        client::agent(
            ca,
            Duration::from_millis(cfg.connect_timeout_ms),
            ua.unwrap_or("pam_portal"),
        )
        .map_err(|e| e.to_string())
    }));
    match made {
        Ok(Ok(agent)) => Box::into_raw(Box::new(agent)).cast(),
        Ok(Err(e)) => {
            send(sink, ctx, e.as_bytes());
            std::ptr::null_mut()
        }
        Err(_) => {
            send(sink, ctx, PANICKED.as_bytes());
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn agent_free(agent: *mut c_void) {
    if !agent.is_null() {
        // SAFETY: `agent` came from `agent_new` and is freed once, by the module's `Drop`.
        let _ = catch_unwind(|| drop(unsafe { Box::from_raw(agent.cast::<ureq::Agent>()) }));
    }
}

unsafe extern "C" fn exchange(
    agent: *mut c_void,
    req: *const Request,
    status: *mut u16,
    sink: Sink,
    ctx: *mut c_void,
) -> c_int {
    let done = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `agent` came from `agent_new` and is alive; `req` is valid for the call.
        let (agent, req) = unsafe { (agent.cast::<ureq::Agent>().as_ref(), req.as_ref()) };
        let (Some(agent), Some(req)) = (agent, req) else {
            return Err("no agent or request".to_string());
        };
        // SAFETY: the request's byte strings are valid for the call.
        let (url, auth, body) =
            unsafe { (text(req.url), text(req.authorization), slice(req.body)) };
        client::exchange(
            agent,
            url.ok_or("no URL")?,
            auth,
            body,
            Duration::from_millis(req.timeout_ms),
            req.limit,
        )
    }));
    match done {
        Ok(Ok((code, bytes))) => {
            // SAFETY: `status` points to the module's u16 for the call.
            if let Some(s) = unsafe { status.as_mut() } {
                *s = code;
            }
            send(sink, ctx, &bytes);
            0
        }
        Ok(Err(e)) => {
            send(sink, ctx, e.as_bytes());
            1
        }
        Err(_) => {
            send(sink, ctx, PANICKED.as_bytes());
            1
        }
    }
}

unsafe extern "C" fn tls_open(
    fd: c_int,
    cfg: *const TlsConfig,
    sink: Sink,
    ctx: *mut c_void,
) -> *mut c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        use std::os::fd::BorrowedFd;
        // SAFETY: the module passes a valid config for the duration of the call.
        let cfg = unsafe { cfg.as_ref() }.ok_or("no TLS configuration")?;
        // SAFETY: the config's byte strings are valid for the call.
        let (host, ca) = unsafe { (text(cfg.host), path(cfg.ca_file)) };
        // SAFETY: `fd` is the module's connected socket, open for the call; we take a duplicate.
        let own = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .map_err(|e| format!("socket: {e}"))?;
        client::tls_open(
            std::net::TcpStream::from(own),
            host.ok_or("no server name")?,
            ca,
        )
    }));
    match made {
        Ok(Ok(s)) => Box::into_raw(Box::new(s)).cast(),
        Ok(Err(e)) => {
            send(sink, ctx, e.as_bytes());
            std::ptr::null_mut()
        }
        Err(_) => {
            send(sink, ctx, PANICKED.as_bytes());
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn tls_read(tls: *mut c_void, buf: *mut u8, len: usize) -> isize {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `tls` came from `tls_open` and is alive; `buf` has `len` writable bytes.
        match unsafe { (tls.cast::<client::TlsStream>().as_mut(), buf.is_null()) } {
            (Some(s), false) => {
                client::tls_read(s, unsafe { std::slice::from_raw_parts_mut(buf, len) })
            }
            _ => -(libc::EINVAL as isize),
        }
    }))
    .unwrap_or(-(libc::EPROTO as isize))
}

unsafe extern "C" fn tls_write(tls: *mut c_void, buf: *const u8, len: usize) -> isize {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `tls` came from `tls_open` and is alive; `buf` has `len` readable bytes.
        match unsafe {
            (
                tls.cast::<client::TlsStream>().as_mut(),
                slice(Bytes { ptr: buf, len }),
            )
        } {
            (Some(s), Some(b)) => client::tls_write(s, b),
            _ => -(libc::EINVAL as isize),
        }
    }))
    .unwrap_or(-(libc::EPROTO as isize))
}

unsafe extern "C" fn tls_close(tls: *mut c_void) {
    if !tls.is_null() {
        // SAFETY: `tls` came from `tls_open` and is closed once, by the module's `Drop`.
        let _ = catch_unwind(|| drop(unsafe { Box::from_raw(tls.cast::<client::TlsStream>()) }));
    }
}
