//! pam_portal: a PAM module that checks logins against a customer portal's REST API, with a
//! second factor, lockouts and IP lists enforced per client address (see SPEC.md).
//!
//! A login, from the PAM entry point to the portal and back:
//! `lib.rs` (this file: arguments, configuration, store) → `login.rs` (SPEC §4, straight-line)
//! → `access.rs` / `lockout/` (early refusals) → `pam/` (prompts) → `portal/` (typed calls;
//! the HTTP itself in the HTTP half, `http/`, loaded by `portal/transport.rs` on first use) →
//! `decision.rs` (code, message, reason) → `audit.rs` (message and log line) → back here.
#![deny(unsafe_code)]
// Library code never unwraps or panics: a panic in sshd's monitor would cost the host a login
// (pam-bindings turns it into PAM_ABORT). Tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access;
pub mod account;
pub mod admin;
pub mod audit;
pub mod config;
pub mod decision;
pub mod front;
pub mod lockout;
pub mod login;
pub mod pam;
pub mod portal;
pub mod secret;
pub mod smallfile;

use crate::audit::Who;
use crate::config::{Config, Settings};
use crate::decision::Decision;
use crate::lockout::Store;
use crate::login::{FromFront, Options, RealWorld, World};
use crate::pam::{LibPam, Pam, Priority};
use crate::portal::{HttpPortal, PortalUser};
use pam_bindings::constants::{PamFlag, PamResultCode};
use pam_bindings::module::{PamHandle, PamHooks};
use std::ffi::CStr;
use std::path::PathBuf;

/// `pam_set_data` key: the portal look-up of this transaction's user (`(username, user)`).
const DATA_USER: &str = "pam_portal.user";

/// Module arguments (SPEC §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub options: Options,
}

impl Args {
    pub fn parse(args: &[&CStr]) -> Result<Args, String> {
        let mut out = Args {
            config: PathBuf::from(config::DEFAULT_PATH),
            options: Options::default(),
        };
        for a in args {
            let a = a.to_string_lossy();
            match a.as_ref() {
                "debug" => out.options.debug = true,
                "use_first_pass" => out.options.use_first_pass = true,
                "try_first_pass" => out.options.try_first_pass = true,
                _ => match a.strip_prefix("config=") {
                    Some(p) if !p.is_empty() => out.config = PathBuf::from(p),
                    _ => return Err(format!("unknown module argument {}", audit::escape(&a))),
                },
            }
        }
        if out.options.use_first_pass && out.options.try_first_pass {
            return Err("use_first_pass and try_first_pass exclude each other".into());
        }
        Ok(out)
    }
}

/// What one hook call works with ([`prepare`]).
struct Prepared {
    args: Args,
    settings: Settings,
    store: Box<dyn Store>,
    /// What the front did for this call before handing it over.
    front: Option<FromFront>,
}

/// Arguments, configuration and store for one hook call; a refusal already logged otherwise.
/// `checked`: what the front found and asked before handing authenticate over (src/front.rs),
/// for the same configuration file: its text is parsed instead of the file; the password it
/// asked for is taken; and its lock checks are not repeated if the parse gives the very
/// settings the front checked with.
fn prepare(
    pam: &LibPam<'_>,
    args: &[&CStr],
    service: &str,
    rhost: Option<&str>,
    write_digest: bool,
    checked: Option<front::Checked>,
) -> Result<Prepared, Decision> {
    let parsed = Args::parse(args).map_err(Decision::bad_config)?;
    let checked = checked.filter(|c| c.config == parsed.config);
    let config = match &checked {
        Some(c) => Config::from_file_text(&c.config, c.mode, &c.text),
        None => Config::load(&parsed.config),
    }
    .map_err(|e| Decision::bad_config(e.0))?;
    let covered = checked.as_ref().is_some_and(|c| c.covers(&config, rhost));
    let settings = config.for_service(service);
    // Files: the directory is checked (and created) now. Redis: connected at the first use.
    let store = lockout::open(&settings.lockout).map_err(|e| Decision::store_error(e.0))?;
    // What the front needs to refuse early without parsing the file (src/front.rs): written
    // for authenticate (`write_digest`), the only hook the front decides itself, unless the
    // front has just used a digest of exactly this.
    if write_digest && !covered {
        if let Err(e) = front::save_digest(&parsed.config, &config) {
            if parsed.options.debug {
                pam.log(Priority::Debug, &format!("debug: {e}"));
            }
        }
    }
    if parsed.options.debug {
        pam.log(
            Priority::Debug,
            &format!("debug: configuration {} loaded", parsed.config.display()),
        );
    }
    Ok(Prepared {
        args: parsed,
        settings,
        store,
        front: checked.map(|c| FromFront {
            user: c.user,
            locks_checked: covered,
            password: c.password,
        }),
    })
}

fn log_store_warnings(pam: &LibPam<'_>, store: &dyn Store) {
    for w in store.take_warnings() {
        pam.log(Priority::Warning, &w);
    }
}

pub(crate) fn pam_code(d: &Decision) -> PamResultCode {
    PamResultCode::try_from(d.code as std::os::raw::c_int).unwrap_or(PamResultCode::PAM_ABORT)
}

/// Debug builds only (never a release build): `PAM_PORTAL_TEST_PANIC=1` in the host's
/// environment makes authenticate panic, so a test can show that pam-bindings' guard turns a
/// panic into PAM_ABORT and the host survives (SPEC §5, last row).
#[cfg(debug_assertions)]
#[allow(clippy::panic)]
fn test_panic_hook() {
    if std::env::var_os("PAM_PORTAL_TEST_PANIC").is_some_and(|v| v == "1") {
        panic!("PAM_PORTAL_TEST_PANIC: a panic injected by a test");
    }
}

#[cfg(not(debug_assertions))]
fn test_panic_hook() {}

/// The hooks of the full module, `libpam_portal_full.so` (full/ invokes `pam_hooks!` with
/// this), which the front (`pam_portal.so`, src/front.rs) hands every login it does not refuse.
pub struct PamPortal;

impl PamHooks for PamPortal {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        test_panic_hook();
        let mut pam = LibPam::new(pamh, flags);
        let service = pam.service();
        let rhost = pam.rhost();
        // What the front checked for this call, taken so that nothing else ever uses it.
        let mark = pam.get_data::<front::Mark>(front::DATA_CHECKED);
        let checked = mark
            .as_ref()
            .and_then(front::Mark::bytes)
            .map(front::Checked::decode);
        if checked.is_some() {
            pam.set_data::<front::Mark>(front::DATA_CHECKED, front::Mark::new(Vec::new()));
        }
        let checked = checked.flatten();
        let (decision, user, found) =
            match prepare(&pam, &args, &service, rhost.as_deref(), true, checked) {
                Err(d) => (d, None, None),
                Ok(p) => {
                    let mut portal = HttpPortal::new(&p.settings.portal)
                        .with_question_cache(p.settings.lockout.dir.join("questions.cache"));
                    let out = login::authenticate(
                        &mut pam,
                        &p.settings,
                        p.args.options,
                        &mut portal,
                        p.store.as_ref(),
                        &RealWorld::default(),
                        p.front,
                    );
                    log_store_warnings(&pam, p.store.as_ref());
                    (out.decision, out.user, out.found)
                }
            };
        let who = Who {
            hook: "auth",
            user: user.as_ref().map(|u| u.0.as_slice()),
            rhost: rhost.as_deref(),
            service: &service,
        };
        audit::report(&mut pam, &decision, &who);
        if let (Some(u), Some(f)) = (user, found) {
            pam.set_data::<(Vec<u8>, PortalUser)>(DATA_USER, (u.0, f));
        }
        pam_code(&decision)
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let mut pam = LibPam::new(pamh, flags);
        let service = pam.service();
        let rhost = pam.rhost();
        let user = pam.user().ok();
        let decision = match (
            prepare(&pam, &args, &service, rhost.as_deref(), false, None),
            &user,
        ) {
            (Err(d), _) => d,
            (Ok(_), None) => Decision::conversation(),
            (
                Ok(Prepared {
                    settings, store, ..
                }),
                Some(u),
            ) => {
                let known = pam
                    .get_data::<(Vec<u8>, PortalUser)>(DATA_USER)
                    .filter(|(name, _)| *name == u.0)
                    .map(|(_, found)| found);
                let mut portal = HttpPortal::new(&settings.portal);
                let d = account::account(
                    u,
                    rhost.as_deref(),
                    &settings,
                    known,
                    &mut portal,
                    store.as_ref(),
                    RealWorld::default().now(),
                );
                log_store_warnings(&pam, store.as_ref());
                d
            }
        };
        let who = Who {
            hook: "account",
            user: user.as_ref().map(|u| u.0.as_slice()),
            rhost: rhost.as_deref(),
            service: &service,
        };
        audit::report(&mut pam, &decision, &who);
        pam_code(&decision)
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}
