//! `pam-drive`: runs ONE PAM transaction in its own process, the way a real host does, and prints
//! what happened as one JSON object on stdout.
//!
//! ```text
//! pam-drive --service SVC (--user USER | --user-hex HEX | --no-user) [--confdir DIR] [--rhost STR]
//!           [--authtok PW] [--answer TEXT]... [--answer-hex HEX]...
//!           [--on-exhausted null|conv-err|empty] [--silent] [--capture-fail-delay]
//!           [--auth] [--acct] [--setcred]
//! ```
//!
//! Without `--confdir` plain `pam_start` is used, so pam_wrapper's LD_PRELOAD redirection works.
//! Exit status 0 whenever the transaction ran (the PAM codes are in the JSON), 2 on a usage error.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::Instant;

use pam_testkit::codes;
use pam_testkit::hex_decode;
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

type DelayFn = unsafe extern "C" fn(retval: c_int, usec_delay: c_uint, appdata_ptr: *mut c_void);

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
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

const PAM_USER: c_int = 2;
const PAM_RHOST: c_int = 4;
const PAM_AUTHTOK: c_int = 6;
const PAM_FAIL_DELAY: c_int = 10;
const PAM_SILENT: c_int = 0x8000;
const PAM_ESTABLISH_CRED: c_int = 0x0002;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Exhausted {
    Null,
    ConvErr,
    Empty,
}

struct Record {
    style: String,
    text: String,
    answered: bool,
    phase: &'static str,
}

struct Conversation {
    answers: VecDeque<Vec<u8>>,
    on_exhausted: Exhausted,
    records: Vec<Record>,
    phase: &'static str,
    fail_delays: Vec<(c_int, c_uint)>,
    conv_calls: usize,
}

struct Options {
    service: String,
    user: Option<Vec<u8>>,
    confdir: Option<String>,
    rhost: Option<Vec<u8>>,
    authtok: Option<Vec<u8>>,
    answers: Vec<Vec<u8>>,
    on_exhausted: Exhausted,
    silent: bool,
    capture_fail_delay: bool,
    do_auth: bool,
    do_acct: bool,
    do_setcred: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("pam-drive: {msg}");
    eprintln!(
        "usage: pam-drive --service SVC (--user USER | --user-hex HEX | --no-user) [--confdir DIR] \
         [--rhost STR] [--authtok PW] [--answer TEXT]... [--answer-hex HEX]... \
         [--on-exhausted null|conv-err|empty] [--silent] [--capture-fail-delay] \
         [--auth] [--acct] [--setcred]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut args = std::env::args_os().skip(1);
    let mut service = None;
    let mut user: Option<Vec<u8>> = None;
    let mut no_user = false;
    let mut o = Options {
        service: String::new(),
        user: None,
        confdir: None,
        rhost: None,
        authtok: None,
        answers: Vec::new(),
        on_exhausted: Exhausted::Null,
        silent: false,
        capture_fail_delay: false,
        do_auth: false,
        do_acct: false,
        do_setcred: false,
    };
    use std::os::unix::ffi::OsStringExt;
    let value = |args: &mut dyn Iterator<Item = std::ffi::OsString>, name: &str| -> Vec<u8> {
        match args.next() {
            Some(v) => v.into_vec(),
            None => usage(&format!("{name} needs a value")),
        }
    };
    let hex = |v: Vec<u8>, name: &str| -> Vec<u8> {
        match hex_decode(&String::from_utf8_lossy(&v)) {
            Some(b) => b,
            None => usage(&format!("{name}: not a hex string")),
        }
    };
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        match arg.as_str() {
            "--service" => {
                service = Some(String::from_utf8_lossy(&value(&mut args, &arg)).into_owned())
            }
            "--user" => user = Some(value(&mut args, &arg)),
            "--user-hex" => user = Some(hex(value(&mut args, &arg), &arg)),
            "--no-user" => no_user = true,
            "--confdir" => {
                o.confdir = Some(String::from_utf8_lossy(&value(&mut args, &arg)).into_owned())
            }
            "--rhost" => o.rhost = Some(value(&mut args, &arg)),
            "--rhost-hex" => o.rhost = Some(hex(value(&mut args, &arg), &arg)),
            "--authtok" => o.authtok = Some(value(&mut args, &arg)),
            "--answer" => o.answers.push(value(&mut args, &arg)),
            "--answer-hex" => {
                let v = value(&mut args, &arg);
                o.answers.push(hex(v, &arg))
            }
            "--on-exhausted" => {
                o.on_exhausted = match value(&mut args, &arg).as_slice() {
                    b"null" => Exhausted::Null,
                    b"conv-err" => Exhausted::ConvErr,
                    b"empty" => Exhausted::Empty,
                    _ => usage("--on-exhausted takes null, conv-err or empty"),
                }
            }
            "--silent" => o.silent = true,
            "--capture-fail-delay" => o.capture_fail_delay = true,
            "--auth" => o.do_auth = true,
            "--acct" => o.do_acct = true,
            "--setcred" => o.do_setcred = true,
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    o.service = service.unwrap_or_else(|| usage("--service is required"));
    match (user, no_user) {
        (Some(_), true) => usage("--no-user conflicts with --user"),
        (None, false) => usage("one of --user, --user-hex, --no-user is required"),
        (u, _) => o.user = u,
    }
    if !(o.do_auth || o.do_acct || o.do_setcred) {
        o.do_auth = true;
    }
    o
}

fn cstring(bytes: &[u8], what: &str) -> CString {
    match CString::new(bytes.to_vec()) {
        Ok(c) => c,
        Err(_) => usage(&format!("{what} contains a NUL byte")),
    }
}

/// Duplicates `bytes` (up to a NUL) with the C allocator: libpam frees responses with free().
unsafe fn c_strdup(bytes: &[u8]) -> *mut c_char {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let p = libc::calloc(len + 1, 1) as *mut c_char;
    if !p.is_null() {
        ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, p, len);
    }
    p
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
    let state = &*(appdata_ptr as *const RefCell<Conversation>);
    let Ok(mut st) = state.try_borrow_mut() else {
        return PAM_CONV_ERR;
    };
    st.conv_calls += 1;
    let n = num_msg as usize;
    let replies = libc::calloc(n, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    let free_all = |replies: *mut PamResponse, upto: usize| {
        for j in 0..upto {
            let r = (*replies.add(j)).resp;
            if !r.is_null() {
                libc::free(r as *mut c_void);
            }
        }
        libc::free(replies as *mut c_void);
    };
    for i in 0..n {
        // Linux-PAM: `msg` points to an array of `n` pointers to messages.
        let m = *msg.add(i);
        if m.is_null() {
            free_all(replies, i);
            return PAM_CONV_ERR;
        }
        let style = (*m).msg_style;
        let text = if (*m).msg.is_null() {
            String::new()
        } else {
            String::from_utf8_lossy(CStr::from_ptr((*m).msg).to_bytes()).into_owned()
        };
        let phase = st.phase;
        let (style_name, is_prompt) = match style {
            PAM_PROMPT_ECHO_OFF => ("echo_off", true),
            PAM_PROMPT_ECHO_ON => ("echo_on", true),
            PAM_ERROR_MSG => ("error", false),
            PAM_TEXT_INFO => ("info", false),
            _ => ("other", false),
        };
        let mut answered = false;
        if is_prompt {
            match st.answers.pop_front() {
                Some(a) => {
                    let p = c_strdup(&a);
                    if p.is_null() {
                        free_all(replies, i);
                        return PAM_BUF_ERR;
                    }
                    (*replies.add(i)).resp = p;
                    answered = true;
                }
                None => match st.on_exhausted {
                    Exhausted::Null => {}
                    Exhausted::Empty => {
                        (*replies.add(i)).resp = c_strdup(b"");
                        answered = true;
                    }
                    Exhausted::ConvErr => {
                        st.records.push(Record {
                            style: style_name.into(),
                            text,
                            answered: false,
                            phase,
                        });
                        free_all(replies, i);
                        return PAM_CONV_ERR;
                    }
                },
            }
        } else if style_name == "other" {
            st.records.push(Record {
                style: format!("style_{style}"),
                text,
                answered: false,
                phase,
            });
            free_all(replies, i);
            return PAM_CONV_ERR;
        }
        st.records.push(Record {
            style: style_name.into(),
            text,
            answered,
            phase,
        });
    }
    *resp = replies;
    PAM_SUCCESS
}

unsafe extern "C" fn record_fail_delay(
    retval: c_int,
    usec_delay: c_uint,
    appdata_ptr: *mut c_void,
) {
    if appdata_ptr.is_null() {
        return;
    }
    let state = &*(appdata_ptr as *const RefCell<Conversation>);
    if let Ok(mut st) = state.try_borrow_mut() {
        st.fail_delays.push((retval, usec_delay));
    }
}

fn code_json(code: Option<c_int>) -> (Value, Value) {
    match code {
        Some(c) => (json!(c), json!(codes::name(c))),
        None => (Value::Null, Value::Null),
    }
}

fn main() {
    let o = parse_args();
    let state = Box::new(RefCell::new(Conversation {
        answers: o.answers.iter().cloned().collect(),
        on_exhausted: o.on_exhausted,
        records: Vec::new(),
        phase: "start",
        fail_delays: Vec::new(),
        conv_calls: 0,
    }));
    let appdata = &*state as *const RefCell<Conversation> as *mut c_void;
    let conv = PamConv {
        conv: Some(conversation),
        appdata_ptr: appdata,
    };
    let service = cstring(o.service.as_bytes(), "--service");
    let user = o.user.as_deref().map(|u| cstring(u, "--user"));
    let confdir = o
        .confdir
        .as_deref()
        .map(|d| cstring(d.as_bytes(), "--confdir"));
    let rhost = o.rhost.as_deref().map(|r| cstring(r, "--rhost"));
    let authtok = o.authtok.as_deref().map(|a| cstring(a, "--authtok"));
    let flags = if o.silent { PAM_SILENT } else { 0 };

    let started = Instant::now();
    let mut pamh: *mut PamHandle = ptr::null_mut();
    let user_ptr = user.as_ref().map_or(ptr::null(), |u| u.as_ptr());
    // SAFETY: every pointer is a valid NUL-terminated string or NULL where libpam allows it;
    // `conv` and `state` outlive the transaction (pam_end is called before they drop).
    let start = unsafe {
        match &confdir {
            Some(dir) => {
                pam_start_confdir(service.as_ptr(), user_ptr, &conv, dir.as_ptr(), &mut pamh)
            }
            None => pam_start(service.as_ptr(), user_ptr, &conv, &mut pamh),
        }
    };
    let mut out = serde_json::Map::new();
    out.insert("start".into(), json!(start));
    out.insert("start_name".into(), json!(codes::name(start)));
    let mut auth = None;
    let mut acct = None;
    let mut setcred = None;
    let mut notes: Vec<String> = Vec::new();
    let mut final_user = Value::Null;
    if start == 0 && !pamh.is_null() {
        unsafe {
            if let Some(r) = &rhost {
                let rc = pam_set_item(pamh, PAM_RHOST, r.as_ptr() as *const c_void);
                if rc != 0 {
                    notes.push(format!("pam_set_item(PAM_RHOST) = {rc}"));
                }
            }
            if let Some(tok) = &authtok {
                // Linux-PAM only lets modules set PAM_AUTHTOK; an application gets PAM_BAD_ITEM.
                // In that case export it for pam_wrapper's pam_set_items.so, which sets the items
                // named by environment variables (put it first in the stack).
                let rc = pam_set_item(pamh, PAM_AUTHTOK, tok.as_ptr() as *const c_void);
                if rc != 0 {
                    notes.push(format!(
                        "pam_set_item(PAM_AUTHTOK) = {rc}: exported PAM_AUTHTOK for pam_set_items.so"
                    ));
                    std::env::set_var("PAM_AUTHTOK", std::ffi::OsStr::from_bytes(tok.as_bytes()));
                }
            }
            if o.capture_fail_delay {
                let f: DelayFn = record_fail_delay;
                let rc = pam_set_item(pamh, PAM_FAIL_DELAY, f as *const c_void);
                if rc != 0 {
                    notes.push(format!("pam_set_item(PAM_FAIL_DELAY) = {rc}"));
                }
            }
            let mut last = 0;
            let mut go = true;
            if o.do_auth {
                state.borrow_mut().phase = "auth";
                let rc = pam_authenticate(pamh, flags);
                auth = Some(rc);
                last = rc;
                go = rc == 0;
            }
            if go && o.do_acct {
                state.borrow_mut().phase = "acct";
                let rc = pam_acct_mgmt(pamh, flags);
                acct = Some(rc);
                last = rc;
                go = rc == 0;
            }
            if go && o.do_setcred {
                state.borrow_mut().phase = "setcred";
                let rc = pam_setcred(pamh, flags | PAM_ESTABLISH_CRED);
                setcred = Some(rc);
                last = rc;
            }
            for (name, code) in [("auth", auth), ("acct", acct), ("setcred", setcred)] {
                if let Some(c) = code {
                    let s = pam_strerror(pamh, c);
                    if !s.is_null() {
                        out.insert(
                            format!("{name}_text"),
                            json!(String::from_utf8_lossy(CStr::from_ptr(s).to_bytes())),
                        );
                    }
                }
            }
            let mut item: *const c_void = ptr::null();
            if pam_get_item(pamh, PAM_USER, &mut item) == 0 && !item.is_null() {
                final_user = json!(String::from_utf8_lossy(
                    CStr::from_ptr(item as *const c_char).to_bytes()
                ));
            }
            state.borrow_mut().phase = "end";
            let rc = pam_end(pamh, last);
            out.insert("end".into(), json!(rc));
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let st = state.borrow();
    let (a, an) = code_json(auth);
    let (c, cn) = code_json(acct);
    let (s, sn) = code_json(setcred);
    out.insert("auth".into(), a);
    out.insert("auth_name".into(), an);
    out.insert("acct".into(), c);
    out.insert("acct_name".into(), cn);
    out.insert("setcred".into(), s);
    out.insert("setcred_name".into(), sn);
    out.insert(
        "messages".into(),
        Value::Array(
            st.records
                .iter()
                .map(|r| {
                    json!({"style": r.style, "text": r.text, "answered": r.answered, "phase": r.phase})
                })
                .collect(),
        ),
    );
    out.insert("conv_calls".into(), json!(st.conv_calls));
    out.insert("answers_left".into(), json!(st.answers.len()));
    out.insert("user".into(), final_user);
    out.insert(
        "fail_delays_us".into(),
        Value::Array(st.fail_delays.iter().map(|(_, d)| json!(d)).collect()),
    );
    out.insert("notes".into(), json!(notes));
    out.insert("elapsed_ms".into(), json!(elapsed_ms));
    println!("{}", Value::Object(out));
}
