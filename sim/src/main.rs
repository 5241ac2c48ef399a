//! portal-sim binary: parse the command line, start the listeners, print the URLs, serve
//! until killed (or until stdin closes, with --exit-on-stdin-eof).

use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use portal_sim::{cli, server};

/// Paths removed when a signal ends the process (only a temp dir this process made).
static CLEAN_FILE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
static CLEAN_DIR: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: unlink, rmdir, signal, raise.
    unsafe {
        let f = CLEAN_FILE.load(Ordering::SeqCst);
        if !f.is_null() {
            libc::unlink(f);
        }
        let d = CLEAN_DIR.load(Ordering::SeqCst);
        if !d.is_null() {
            libc::rmdir(d);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install_cleanup(dir: &Path, file: &Path) {
    let (Ok(d), Ok(f)) = (
        CString::new(dir.as_os_str().as_encoded_bytes()),
        CString::new(file.as_os_str().as_encoded_bytes()),
    ) else {
        return;
    };
    CLEAN_DIR.store(d.into_raw(), Ordering::SeqCst);
    CLEAN_FILE.store(f.into_raw(), Ordering::SeqCst);
    let handler = on_signal as extern "C" fn(libc::c_int);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

fn cleanup(dir: Option<&PathBuf>) {
    if let Some(d) = dir {
        let _ = std::fs::remove_file(d.join("ca.pem"));
        let _ = std::fs::remove_dir(d);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match cli::parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", cli::USAGE);
            return;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "portal-sim: {e}\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    let running = match server::start(&opts) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "portal-sim: {e}");
            std::process::exit(1);
        }
    };
    if let Some(d) = &running.created_dir {
        install_cleanup(d, &d.join("ca.pem"));
    }
    let ca = running
        .ca_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let printed = writeln!(
        out,
        "PORTAL_URL={}\nCONTROL_URL={}\nCA_FILE={}\nREADY",
        running.portal_url, running.control_url, ca
    )
    .and_then(|_| out.flush());
    drop(out);
    if let Err(e) = printed {
        portal_sim::log!("cannot write to stdout: {e}");
    }
    portal_sim::log!(
        "serving {} (control {}), {} users",
        running.portal_url,
        running.control_url,
        running.sim.portal.fixture().users.len()
    );
    if opts.exit_on_stdin_eof {
        let mut buf = [0u8; 1024];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = writeln!(std::io::stderr(), "portal-sim: stdin closed, exiting");
        cleanup(running.created_dir.as_ref());
        std::process::exit(0);
    }
    loop {
        std::thread::park();
    }
}
