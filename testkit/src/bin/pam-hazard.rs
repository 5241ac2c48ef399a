//! `pam-hazard`: a PAM host that does what real hosts do and simple test drivers do not, for the
//! process-hazard tests (tests/hazards.rs). Every transaction answers the prompts with the same
//! scripted answers (NULL once they run out) through `pam_start_confdir`.
//!
//! ```text
//! pam-hazard --confdir DIR --service SVC --user USER [--rhost R] [--answer A]... MODE [N]
//! ```
//!
//! Modes (one JSON object on stdout at the end; exit 0 whenever the host itself survived):
//! - `fork`: one login in the parent, `pam_end`, then `fork()`: the child runs its own login
//!   and exits with its PAM code (sshd's pattern: the listener has used PAM before it forks).
//! - `fork-open`: the parent starts a transaction and authenticates, forks with its handle still
//!   open; the child runs a complete login of its own; then the parent ends its transaction.
//! - `thread N`: N times, a new thread runs a whole transaction (`pam_start` … `pam_end`) and
//!   exits; then two threads at once; then the main thread logs in once more (a host such as
//!   OpenVPN's plugin calling PAM from a thread that exits after `pam_end`: the `-z nodelete`
//!   case, where thread-local destructors would otherwise run in an unloaded module).
//! - `loop N`: N sequential `pam_start`/`pam_authenticate`/`pam_end` in this process; every
//!   fourth login with a wrong password (the last answer given is used as the wrong one when
//!   `--wrong` is given). Reports open file descriptors and resident memory at checkpoints.
//! - `panic-loop N`: like `loop`, but every other login runs with `PAM_PORTAL_TEST_PANIC=1` in
//!   the environment (the debug build's injected panic): those must return PAM_ABORT and the
//!   host must go on.
//!
//! Child processes get `WAIT_S` (30) seconds; a child that does not finish is killed and
//! reported as hung (`"child_hung": true`).

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
}

const PAM_RHOST: c_int = 4;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const WAIT_S: u64 = 30;

/// The answers of one transaction, in prompt order.
struct Answers {
    list: Vec<CString>,
    next: usize,
}

unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    const PAM_SUCCESS: c_int = 0;
    const PAM_BUF_ERR: c_int = 5;
    const PAM_CONV_ERR: c_int = 19;
    if num_msg <= 0 || msg.is_null() || resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    let answers = &mut *(appdata_ptr as *mut Answers);
    let n = num_msg as usize;
    let replies = libc::calloc(n, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        let m = *msg.add(i);
        if m.is_null() {
            libc::free(replies as *mut c_void);
            return PAM_CONV_ERR;
        }
        let style = (*m).msg_style;
        if style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON {
            if let Some(a) = answers.list.get(answers.next) {
                answers.next += 1;
                (*replies.add(i)).resp = libc::strdup(a.as_ptr());
            }
        }
    }
    *resp = replies;
    PAM_SUCCESS
}

struct Opts {
    confdir: CString,
    service: CString,
    user: CString,
    rhost: Option<CString>,
    answers: Vec<CString>,
    wrong: bool,
    mode: String,
    n: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!("pam-hazard: {msg}");
    eprintln!(
        "usage: pam-hazard --confdir DIR --service SVC --user USER [--rhost R] [--answer A]... \
         [--wrong] (fork | fork-open | thread N | loop N | panic-loop N)"
    );
    std::process::exit(2)
}

fn cstr(s: String, what: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| usage(&format!("{what} contains a NUL byte")))
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1);
    let mut o = Opts {
        confdir: CString::default(),
        service: CString::default(),
        user: CString::default(),
        rhost: None,
        answers: Vec::new(),
        wrong: false,
        mode: String::new(),
        n: 1,
    };
    let value = |args: &mut dyn Iterator<Item = String>, name: &str| {
        args.next()
            .map(|v| cstr(v, name))
            .unwrap_or_else(|| usage(&format!("{name} needs a value")))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--confdir" => o.confdir = value(&mut args, &a),
            "--service" => o.service = value(&mut args, &a),
            "--user" => o.user = value(&mut args, &a),
            "--rhost" => o.rhost = Some(value(&mut args, &a)),
            "--answer" => o.answers.push(value(&mut args, &a)),
            "--wrong" => o.wrong = true,
            m if o.mode.is_empty() && !m.starts_with('-') => o.mode = m.to_string(),
            n if !o.mode.is_empty() => {
                o.n = n
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("bad count {n:?}")))
            }
            other => usage(&format!("unexpected argument {other:?}")),
        }
    }
    if o.mode.is_empty() || o.service.as_bytes().is_empty() || o.confdir.as_bytes().is_empty() {
        usage("--confdir, --service and a mode are required");
    }
    o
}

/// One open transaction.
struct Tx {
    pamh: *mut PamHandle,
    // Both must outlive the handle.
    _conv: Box<PamConv>,
    _answers: Box<Answers>,
    start: c_int,
}

fn begin(o: &Opts, answers: Vec<CString>) -> Tx {
    let mut answers = Box::new(Answers {
        list: answers,
        next: 0,
    });
    let conv = Box::new(PamConv {
        conv: Some(conversation),
        appdata_ptr: &mut *answers as *mut Answers as *mut c_void,
    });
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: valid NUL-terminated strings; `conv` and `answers` are boxed and kept in the Tx,
    // which ends the transaction before dropping them.
    let start = unsafe {
        pam_start_confdir(
            o.service.as_ptr(),
            o.user.as_ptr(),
            &*conv,
            o.confdir.as_ptr(),
            &mut pamh,
        )
    };
    if start == 0 {
        if let Some(r) = &o.rhost {
            // SAFETY: pamh is a live handle; libpam copies the string.
            unsafe { pam_set_item(pamh, PAM_RHOST, r.as_ptr() as *const c_void) };
        }
    }
    Tx {
        pamh,
        _conv: conv,
        _answers: answers,
        start,
    }
}

impl Tx {
    fn authenticate(&mut self) -> c_int {
        if self.start != 0 || self.pamh.is_null() {
            return -self.start.max(1);
        }
        // SAFETY: a live handle.
        unsafe { pam_authenticate(self.pamh, 0) }
    }

    fn end(mut self, status: c_int) {
        if !self.pamh.is_null() {
            // SAFETY: a live handle, ended once.
            unsafe { pam_end(self.pamh, status) };
            self.pamh = ptr::null_mut();
        }
    }
}

/// A whole transaction: start, authenticate, end. The PAM code of authenticate.
fn login(o: &Opts, answers: &[CString]) -> c_int {
    let mut tx = begin(o, answers.to_vec());
    let rc = tx.authenticate();
    tx.end(rc);
    rc
}

fn wrong_answers(o: &Opts) -> Vec<CString> {
    let mut a = o.answers.clone();
    if let Some(first) = a.first_mut() {
        *first = cstr("Wrong-Pass1!".to_string(), "wrong password");
    }
    a
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// What each open descriptor refers to (`/proc/self/fd/N` → target).
fn fd_targets() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("{}={target}", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    v
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits for a child up to WAIT_S; kills it if it does not finish. (exit code, hung, signal)
fn wait_child(pid: libc::pid_t) -> (Option<i32>, bool, Option<i32>) {
    let deadline = Instant::now() + Duration::from_secs(WAIT_S);
    loop {
        let mut status: c_int = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return (Some(libc::WEXITSTATUS(status)), false, None);
            }
            if libc::WIFSIGNALED(status) {
                return (None, false, Some(libc::WTERMSIG(status)));
            }
        }
        if r < 0 {
            return (None, false, None);
        }
        if Instant::now() >= deadline {
            // SAFETY: our own child, by pid.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return (None, true, None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Forks; the child runs `f` and `_exit`s with its result; the parent waits.
fn in_child(f: impl FnOnce() -> c_int) -> Value {
    // SAFETY: this host is single-threaded here; the child only runs PAM and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let rc = f();
        // SAFETY: leave without running the parent's atexit handlers twice.
        unsafe { libc::_exit(rc.clamp(0, 255)) };
    }
    if pid < 0 {
        return json!({"fork_failed": true});
    }
    let (code, hung, signal) = wait_child(pid);
    json!({"child_auth": code, "child_hung": hung, "child_signal": signal})
}

fn main() {
    let o = parse_args();
    let started = Instant::now();
    let mut out = serde_json::Map::new();
    match o.mode.as_str() {
        "fork" => {
            out.insert("parent_auth".into(), json!(login(&o, &o.answers)));
            let child = in_child(|| login(&o, &o.answers));
            out.insert("child".into(), child);
            // The parent still works after its child.
            out.insert("parent_again".into(), json!(login(&o, &o.answers)));
        }
        "fork-open" => {
            let mut tx = begin(&o, o.answers.clone());
            let rc = tx.authenticate();
            out.insert("parent_auth".into(), json!(rc));
            let child = in_child(|| login(&o, &o.answers));
            out.insert("child".into(), child);
            tx.end(rc);
            out.insert("parent_again".into(), json!(login(&o, &o.answers)));
        }
        "thread" => {
            let mut codes = Vec::new();
            for _ in 0..o.n {
                let answers = o.answers.clone();
                let opts = &o;
                let rc = std::thread::scope(|s| {
                    s.spawn(move || login(opts, &answers)).join().unwrap_or(-1)
                });
                codes.push(rc);
            }
            // Two at once, both exiting after pam_end.
            let pair: Vec<c_int> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..2).map(|_| s.spawn(|| login(&o, &o.answers))).collect();
                hs.into_iter().map(|h| h.join().unwrap_or(-1)).collect()
            });
            codes.extend(pair);
            // Let any late thread-exit work run, then use PAM again from the main thread.
            std::thread::sleep(Duration::from_millis(100));
            out.insert("thread_auth".into(), json!(codes));
            out.insert("main_auth".into(), json!(login(&o, &o.answers)));
        }
        "loop" | "panic-loop" => {
            let panics = o.mode == "panic-loop";
            let wrong = wrong_answers(&o);
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            let mut samples = Vec::new();
            let mut unexpected = Vec::new();
            for i in 1..=o.n {
                let panic_now = panics && i % 2 == 0;
                if panic_now {
                    std::env::set_var("PAM_PORTAL_TEST_PANIC", "1");
                }
                let use_wrong = o.wrong && i % 4 == 3;
                let rc = login(&o, if use_wrong { &wrong } else { &o.answers });
                if panic_now {
                    std::env::remove_var("PAM_PORTAL_TEST_PANIC");
                }
                *counts.entry(rc.to_string()).or_default() += 1;
                let want = if panic_now {
                    26 // PAM_ABORT
                } else if use_wrong {
                    7 // PAM_AUTH_ERR
                } else {
                    0
                };
                if rc != want && unexpected.len() < 20 {
                    unexpected.push(json!({"i": i, "auth": rc, "want": want}));
                }
                if [1, 10, 50, 100, 250, 500, 750, 1000, 2000, 5000].contains(&i) || i == o.n {
                    samples.push(json!({"i": i, "fds": open_fds(), "rss_kb": rss_kb(),
                                        "ms": started.elapsed().as_millis() as u64}));
                }
            }
            out.insert("fds_at_end".into(), json!(fd_targets()));
            out.insert("codes".into(), json!(counts));
            out.insert("unexpected".into(), json!(unexpected));
            out.insert("samples".into(), json!(samples));
        }
        other => usage(&format!("unknown mode {other:?}")),
    }
    out.insert("mode".into(), json!(o.mode));
    out.insert(
        "elapsed_ms".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    println!("{}", Value::Object(out));
}
