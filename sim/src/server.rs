//! The two listeners (portal API over HTTPS or HTTP, control over HTTP), one thread per
//! connection, fault application and the calls log.

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{self, Portal, Route};
use crate::faults::{Fault, FaultKind, FaultRequest, Faults};
use crate::fixture::{Behaviour, Fixture};
use crate::http::{self, Conn, ReadError, Request, Response, Stream};
use crate::phone::Answer;
use crate::tls::{self, CertMode};

/// How long a keep-alive connection may sit idle (or a request may stall) before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Size of the `huge` fault's body.
pub const HUGE_LEN: usize = 30 * 1024 * 1024;
/// The calls log keeps at most this many entries (oldest dropped first).
pub const MAX_CALLS: usize = 100_000;

pub const RATE_LIMIT_MSG: &str = "Rate limit of 50 requests for every 1 second(s) exceeded.";
pub const RATE_LIMIT_CODE: &str = "SoftLayer_Exception_WebService_RateLimitExceeded";

/// One entry of `GET /calls`. Never holds a password, an answer or a hash.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub seq: u64,
    pub http_method: String,
    pub service: Option<String>,
    pub method: Option<String>,
    /// The `{id}` path segment, if any (e.g. a binding id).
    pub object_id: Option<String>,
    pub conn: u64,
    pub auth: bool,
    pub username: Option<String>,
    pub question_id: Option<Value>,
    pub password_sent: bool,
    pub fault: Option<String>,
    pub result: Option<String>,
}

#[derive(Debug, Default)]
struct CallLog {
    epoch: u64,
    next: u64,
    list: VecDeque<CallRecord>,
}

impl CallLog {
    fn push(&mut self, mut rec: CallRecord) -> (u64, u64) {
        self.next += 1;
        rec.seq = self.next;
        if self.list.len() >= MAX_CALLS {
            self.list.pop_front();
        }
        self.list.push_back(rec);
        (self.epoch, self.next)
    }

    fn set_result(&mut self, (epoch, seq): (u64, u64), result: &str) {
        if epoch != self.epoch {
            return;
        }
        if let Some(r) = self.list.iter_mut().rev().find(|r| r.seq == seq) {
            r.result = Some(result.to_string());
        }
    }

    fn reset(&mut self) {
        self.epoch += 1;
        self.next = 0;
        self.list.clear();
    }
}

/// What the connection does with a request.
#[derive(Debug)]
pub enum Action {
    Respond { resp: Response, http10: bool },
    Reset,
    Hang(Duration),
    StallBody(Duration),
    Huge,
    ChunkedGarbage,
}

pub struct Sim {
    pub portal: Portal,
    calls: Mutex<CallLog>,
    faults: Mutex<Faults>,
    next_conn: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wrong_types_body(route: Option<&Route>) -> Value {
    match route.map(|r| r.method.as_str()) {
        Some("getPortalLoginToken") => json!({"userId": "x", "hash": 5}),
        Some("getUsers") => json!([{"id": "x", "username": 7}]),
        Some("getAllObjects") => json!("str"),
        _ => json!({"unexpected": [1, 2, 3]}),
    }
}

impl Sim {
    pub fn new(fixture: Fixture) -> Sim {
        Sim {
            portal: Portal::new(fixture),
            calls: Mutex::new(CallLog::default()),
            faults: Mutex::new(Faults::default()),
            next_conn: AtomicU64::new(0),
        }
    }

    fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.calls).list.iter().cloned().collect()
    }

    pub fn reset(&self) {
        lock(&self.calls).reset();
        lock(&self.faults).clear();
        self.portal.reset();
    }

    /// Handle one request on the portal listener: log it, apply a fault or answer it.
    pub fn portal_request(&self, req: &Request, conn: u64, peer: IpAddr) -> Action {
        let route = api::parse_route(&req.path);
        let call = api::Call {
            http_method: &req.method,
            query: &req.query,
            body: &req.body,
            authorization: req.header("authorization"),
            peer,
        };
        let summary = self.portal.summarize(route.as_ref(), &call);
        let fault = lock(&self.faults).take(route.as_ref());
        let handle = lock(&self.calls).push(CallRecord {
            seq: 0,
            http_method: req.method.clone(),
            service: route.as_ref().map(|r| r.service.clone()),
            method: route.as_ref().map(|r| r.method.clone()),
            object_id: route.as_ref().and_then(|r| r.id.clone()),
            conn,
            auth: call.authorization.is_some(),
            username: summary.username.clone(),
            question_id: summary.question_id.clone(),
            password_sent: summary.password_sent,
            fault: fault.map(|(k, _)| k.name()),
            result: None,
        });
        let normal = || {
            let r = self.portal.handle(route.as_ref(), &call, Instant::now());
            (Response::json(r.status, &r.body), r.result)
        };
        let respond = |resp: Response, result: &str| {
            (
                Action::Respond {
                    resp,
                    http10: false,
                },
                result.to_string(),
            )
        };
        let (action, result) = match fault {
            None => {
                let (resp, result) = normal();
                respond(resp, &result)
            }
            Some((kind, ms)) => match kind {
                FaultKind::Delay => {
                    thread::sleep(Duration::from_millis(ms));
                    let (resp, result) = normal();
                    respond(resp, &result)
                }
                FaultKind::Http10 => {
                    let (resp, result) = normal();
                    (Action::Respond { resp, http10: true }, result)
                }
                FaultKind::Status500 => {
                    respond(Response::text(500, "Internal Server Error"), "fault")
                }
                FaultKind::Status503 => {
                    respond(Response::text(503, "Service Unavailable"), "fault")
                }
                FaultKind::Status429 => respond(
                    Response::text(429, "Too Many Requests").with_header("Retry-After", "1"),
                    "fault",
                ),
                FaultKind::Garbage => respond(
                    Response::raw(
                        200,
                        "application/json",
                        b"\x00\xff<html><body>Bad Gateway</body></html>\xfe{{ not json".to_vec(),
                    ),
                    "fault",
                ),
                FaultKind::Empty => {
                    respond(Response::raw(200, "application/json", Vec::new()), "fault")
                }
                FaultKind::Ratelimit => respond(
                    Response::json(
                        500,
                        &json!({"error": RATE_LIMIT_MSG, "code": RATE_LIMIT_CODE}),
                    ),
                    RATE_LIMIT_CODE,
                ),
                FaultKind::Unauthorized => respond(
                    Response::json(
                        401,
                        &json!({"error": api::MSG_ACCESS_DENIED, "code": api::CODE_PUBLIC}),
                    ),
                    api::CODE_PUBLIC,
                ),
                FaultKind::Error200 => respond(
                    Response::json(
                        200,
                        &json!({"error": "Internal Error", "code": api::CODE_PUBLIC}),
                    ),
                    api::CODE_PUBLIC,
                ),
                FaultKind::Redirect => respond(
                    Response::raw(302, "text/plain", Vec::new())
                        .with_header("Location", &format!("https://example.net{}", req.target)),
                    "fault",
                ),
                FaultKind::WrongTypes => respond(
                    Response::json(200, &wrong_types_body(route.as_ref())),
                    "fault",
                ),
                FaultKind::Reset => (Action::Reset, "fault".into()),
                FaultKind::Hang => (Action::Hang(Duration::from_millis(ms)), "fault".into()),
                FaultKind::StallBody => {
                    (Action::StallBody(Duration::from_millis(ms)), "fault".into())
                }
                FaultKind::Huge => (Action::Huge, "fault".into()),
                FaultKind::ChunkedGarbage => (Action::ChunkedGarbage, "fault".into()),
            },
        };
        lock(&self.calls).set_result(handle, &result);
        crate::log!(
            "#{} conn={conn} peer={peer} {} {}/{} user={} qid={} fault={} -> {result}",
            handle.1,
            req.method,
            route.as_ref().map_or("-", |r| r.service.as_str()),
            route
                .as_ref()
                .map_or(req.path.as_str(), |r| r.method.as_str()),
            summary.username.as_deref().unwrap_or("-"),
            summary
                .question_id
                .as_ref()
                .map_or("-".to_string(), |q| q.to_string()),
            fault.map_or("-".to_string(), |(k, _)| k.name()),
        );
        action
    }

    /// Handle one request on the control listener.
    pub fn control_request(&self, req: &Request) -> Response {
        let path = req.path.trim_end_matches('/');
        match (req.method.as_str(), path) {
            ("GET", "/health") => control_ok(),
            ("POST", "/faults") => {
                let parsed: Result<FaultRequest, String> =
                    serde_json::from_slice(&req.body).map_err(|e| e.to_string());
                match parsed.and_then(Fault::from_request) {
                    Ok(f) => {
                        crate::log!("control: fault added: {f:?}");
                        lock(&self.faults).add(f);
                        control_ok()
                    }
                    Err(e) => control_fail(400, &format!("bad fault request: {e}")),
                }
            }
            ("DELETE", "/faults") => {
                lock(&self.faults).clear();
                control_ok()
            }
            ("GET", "/faults") => {
                let q = lock(&self.faults).queue.clone();
                Response::json(200, &json!(q))
            }
            ("GET", "/calls") => Response::json(200, &json!(self.calls())),
            ("POST", "/reset") => {
                self.reset();
                crate::log!("control: reset");
                control_ok()
            }
            ("GET", "/lockouts") => {
                let (users, addrs) = self.portal.lockouts().snapshot(Instant::now());
                Response::json(200, &json!({"users": users, "addresses": addrs}))
            }
            ("POST", "/phone/answer") => self.phone_answer(&req.body),
            ("GET", "/phone/pending") => {
                let portal = &self.portal;
                let owner = |id: u64| {
                    portal
                        .binding(id)
                        .map(|(u, _)| u.username.clone())
                        .unwrap_or_default()
                };
                let list = portal.phone().pending(Instant::now(), owner);
                Response::json(200, &json!(list))
            }
            ("POST", "/phone/behaviour") => self.phone_behaviour(&req.body),
            (
                _,
                "/health" | "/faults" | "/calls" | "/reset" | "/lockouts" | "/phone/answer"
                | "/phone/pending" | "/phone/behaviour",
            ) => control_fail(405, "method not allowed"),
            _ => control_fail(404, "no such control endpoint"),
        }
    }
}

/// Body of `POST /phone/answer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    #[serde(default)]
    binding_id: Option<u64>,
    #[serde(default)]
    username: Option<String>,
    result: Answer,
}

/// Body of `POST /phone/behaviour`: only the fields given change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviourRequest {
    binding_id: u64,
    #[serde(default)]
    behaviour: Option<Behaviour>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    expire_s: Option<u64>,
    #[serde(default)]
    primary_fails: Option<bool>,
}

fn control_ok() -> Response {
    Response::json(200, &json!({"ok": true}))
}

fn control_fail(status: u16, msg: &str) -> Response {
    Response::json(status, &json!({"ok": false, "error": msg}))
}

impl Sim {
    fn phone_answer(&self, body: &[u8]) -> Response {
        let r: AnswerRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return control_fail(400, &format!("bad answer request: {e}")),
        };
        let portal = &self.portal;
        let ids: Vec<u64> = match (&r.binding_id, &r.username) {
            (Some(id), _) => vec![*id],
            (None, Some(name)) => portal
                .fixture()
                .users
                .iter()
                .filter(|u| &u.username == name)
                .flat_map(|u| &u.bindings)
                .filter(|b| b.is_phone())
                .map(|b| b.id)
                .collect(),
            (None, None) => {
                return control_fail(400, "bad answer request: binding_id or username required")
            }
        };
        match portal.phone().answer(&ids, r.result, Instant::now()) {
            Some(id) => {
                crate::log!(
                    "control: phone validation of binding {id} answered {:?}",
                    r.result
                );
                control_ok()
            }
            None => control_fail(404, "no pending phone validation"),
        }
    }

    fn phone_behaviour(&self, body: &[u8]) -> Response {
        let r: BehaviourRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return control_fail(400, &format!("bad behaviour request: {e}")),
        };
        if r.expire_s == Some(0) {
            return control_fail(400, "bad behaviour request: expire_s must be at least 1");
        }
        let mut phone = self.portal.phone();
        let Some(mut s) = phone.settings(r.binding_id) else {
            return control_fail(404, "no such phone binding");
        };
        s.behaviour = r.behaviour.unwrap_or(s.behaviour);
        s.delay_ms = r.delay_ms.unwrap_or(s.delay_ms);
        s.expire_s = r.expire_s.unwrap_or(s.expire_s);
        s.primary_fails = r.primary_fails.unwrap_or(s.primary_fails);
        phone.set_settings(r.binding_id, s);
        crate::log!("control: phone binding {} now {s:?}", r.binding_id);
        control_ok()
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// Keep a doomed connection open for up to `d`, returning early when the peer closes.
fn hold(tcp: &TcpStream, d: Duration) {
    let deadline = Instant::now() + d;
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let step = (deadline - now).min(Duration::from_millis(250));
        if step.is_zero() || tcp.set_read_timeout(Some(step)).is_err() {
            break;
        }
        let mut r = tcp;
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}

fn write_huge(w: &mut dyn Stream, close: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: portal-sim\r\nContent-Type: application/json\r\nContent-Length: {HUGE_LEN}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    w.write_all(head.as_bytes())?;
    w.write_all(b"[\"")?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = HUGE_LEN - 4;
    while left > 0 {
        let n = left.min(chunk.len());
        w.write_all(&chunk[..n])?;
        left -= n;
    }
    w.write_all(b"\"]")?;
    w.flush()
}

const CHUNKED_GARBAGE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: portal-sim\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-a-chunk-size\r\n{\"id\":1}\r\n0\r\n\r\n";
const STALL_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: portal-sim\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"id\":123";

fn peer_ip(tcp: &TcpStream) -> IpAddr {
    tcp.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn wrap(tcp: TcpStream, tls: Option<&Arc<ServerConfig>>) -> Option<Box<dyn Stream>> {
    match tls {
        None => Some(Box::new(tcp)),
        Some(cfg) => match ServerConnection::new(cfg.clone()) {
            Ok(c) => Some(Box::new(StreamOwned::new(c, tcp))),
            Err(e) => {
                crate::log!("TLS session setup failed: {e}");
                None
            }
        },
    }
}

/// Read the next request; `None` ends the connection (after answering a malformed one).
fn next_request(conn: &mut Conn, what: &str, conn_no: u64) -> Option<Request> {
    let _ = conn.get_ref().tcp().set_read_timeout(Some(IDLE_TIMEOUT));
    match http::read_request(conn) {
        Ok(r) => Some(r),
        Err(ReadError::Closed) => None,
        Err(ReadError::Bad(status, msg)) => {
            crate::log!("{what} conn={conn_no}: bad request: {msg}");
            let resp = Response::text(status, &msg);
            let _ = http::write_response(conn.get_mut(), &resp, true, false);
            conn.get_mut().close_gracefully();
            None
        }
        Err(ReadError::Io(e)) => {
            crate::log!("{what} conn={conn_no}: {e}");
            None
        }
    }
}

fn serve_portal(sim: Arc<Sim>, tcp: TcpStream, tls: Option<Arc<ServerConfig>>, conn_no: u64) {
    let peer = peer_ip(&tcp);
    let _ = tcp.set_nodelay(true);
    let Some(stream) = wrap(tcp, tls.as_ref()) else {
        return;
    };
    let mut conn: Conn = BufReader::new(stream);
    while let Some(req) = next_request(&mut conn, "portal", conn_no) {
        let keep = req.keep_alive();
        match sim.portal_request(&req, conn_no, peer) {
            Action::Respond { resp, http10 } => {
                let close = !keep || http10;
                if http::write_response(conn.get_mut(), &resp, close, http10).is_err() {
                    return;
                }
                if close {
                    conn.get_mut().close_gracefully();
                    return;
                }
            }
            Action::Reset => {
                let _ =
                    socket2::SockRef::from(conn.get_ref().tcp()).set_linger(Some(Duration::ZERO));
                return; // dropping the socket with SO_LINGER 0 sends RST
            }
            Action::Hang(d) => {
                hold(conn.get_ref().tcp(), d);
                return;
            }
            Action::StallBody(d) => {
                let w = conn.get_mut();
                if w.write_all(STALL_HEAD).and_then(|_| w.flush()).is_ok() {
                    hold(conn.get_ref().tcp(), d);
                }
                return;
            }
            Action::Huge => {
                if write_huge(conn.get_mut().as_mut(), !keep).is_err() {
                    return;
                }
                if !keep {
                    conn.get_mut().close_gracefully();
                    return;
                }
            }
            Action::ChunkedGarbage => {
                let w = conn.get_mut();
                let _ = w.write_all(CHUNKED_GARBAGE).and_then(|_| w.flush());
                w.close_gracefully();
                return;
            }
        }
    }
}

fn serve_control(sim: Arc<Sim>, tcp: TcpStream, conn_no: u64) {
    let mut conn: Conn = BufReader::new(Box::new(tcp));
    while let Some(req) = next_request(&mut conn, "control", conn_no) {
        let keep = req.keep_alive();
        let resp = sim.control_request(&req);
        if http::write_response(conn.get_mut(), &resp, !keep, false).is_err() {
            return;
        }
        if !keep {
            conn.get_mut().close_gracefully();
            return;
        }
    }
}

fn accept_loop<F>(listener: TcpListener, name: &'static str, mut on_conn: F)
where
    F: FnMut(TcpStream) -> Box<dyn FnOnce() + Send>,
{
    for s in listener.incoming() {
        match s {
            Ok(tcp) => {
                let job = on_conn(tcp);
                if let Err(e) = thread::Builder::new()
                    .name(format!("{name}-conn"))
                    .spawn(job)
                {
                    crate::log!("cannot start a {name} connection thread: {e}");
                }
            }
            Err(e) => {
                crate::log!("{name} accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Startup

#[derive(Debug, Clone)]
pub struct Options {
    pub fixture: PathBuf,
    pub bind: SocketAddr,
    pub http: bool,
    pub tls_dir: Option<PathBuf>,
    pub cert_mode: CertMode,
    pub control_bind: SocketAddr,
    pub exit_on_stdin_eof: bool,
}

pub struct Running {
    pub sim: Arc<Sim>,
    pub portal_url: String,
    pub control_url: String,
    pub ca_file: Option<PathBuf>,
    /// The temporary directory this process created for `ca.pem` (to remove at exit).
    pub created_dir: Option<PathBuf>,
}

fn bind_loopback(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{what} {addr}: refusing to bind a non-loopback address (use 127.0.0.1 or [::1])"
        ));
    }
    TcpListener::bind(addr).map_err(|e| format!("{what} {addr}: cannot bind: {e}"))
}

fn make_temp_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for i in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("portal-sim-{pid}-{nanos:x}-{i}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err("cannot create a temporary directory".into())
}

/// Load the fixture, bind both listeners, write `ca.pem` and start serving in the
/// background. The caller prints the URLs.
pub fn start(opts: &Options) -> Result<Running, String> {
    let fixture = Fixture::load(&opts.fixture)?;
    let portal_l = bind_loopback(opts.bind, "--bind")?;
    let control_l = bind_loopback(opts.control_bind, "--control-bind")?;
    let portal_addr = portal_l.local_addr().map_err(|e| e.to_string())?;
    let control_addr = control_l.local_addr().map_err(|e| e.to_string())?;

    // Certificates: always for HTTPS; for --http only when --tls-dir asks for a ca.pem.
    let mut ca_file = None;
    let mut created_dir = None;
    let mut tls_cfg = None;
    if !opts.http || opts.tls_dir.is_some() {
        let material = tls::generate(opts.cert_mode)?;
        let dir = match &opts.tls_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| format!("--tls-dir {}: {e}", d.display()))?;
                d.clone()
            }
            None => {
                let d = make_temp_dir()?;
                created_dir = Some(d.clone());
                d
            }
        };
        let path = dir.join("ca.pem");
        std::fs::write(&path, &material.ca_pem)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        ca_file = Some(path);
        if !opts.http {
            tls_cfg = Some(tls::server_config(&material)?);
        }
    }

    let sim = Arc::new(Sim::new(fixture));
    {
        let sim = sim.clone();
        thread::Builder::new()
            .name("portal-accept".into())
            .spawn(move || {
                accept_loop(portal_l, "portal", move |tcp| {
                    let sim = sim.clone();
                    let tls = tls_cfg.clone();
                    let n = sim.next_conn();
                    Box::new(move || serve_portal(sim, tcp, tls, n))
                })
            })
            .map_err(|e| e.to_string())?;
    }
    {
        let sim = sim.clone();
        let counter = AtomicU64::new(0);
        thread::Builder::new()
            .name("control-accept".into())
            .spawn(move || {
                accept_loop(control_l, "control", move |tcp| {
                    let sim = sim.clone();
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    Box::new(move || serve_control(sim, tcp, n))
                })
            })
            .map_err(|e| e.to_string())?;
    }
    let scheme = if opts.http { "http" } else { "https" };
    Ok(Running {
        sim,
        portal_url: format!("{scheme}://{portal_addr}/rest/v3.1"),
        control_url: format!("http://{control_addr}"),
        ca_file,
        created_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> Sim {
        Sim::new(
            Fixture::parse(
                r#"
[account]
api_user = "u"
api_key = "k"
[[questions]]
id = 1
question = "q"
[[users]]
id = 7
username = "alice"
password = "Secret-Pass1"
answers = [ { question_id = 1, answer = "Rex" } ]
"#,
            )
            .unwrap(),
        )
    }

    fn req(method: &str, path: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            target: path.into(),
            path: path.into(),
            query: String::new(),
            minor: 1,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    const LOGIN: &str = "/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken.json";

    #[test]
    fn calls_log_has_no_secrets_and_faults_are_recorded() {
        let s = sim();
        let body = r#"{"parameters":["alice","Secret-Pass1",1,"Rex"]}"#;
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let Action::Respond { resp, .. } = s.portal_request(&req("POST", LOGIN, body), 1, ip)
        else {
            panic!("expected a response");
        };
        let text = String::from_utf8(resp.body).unwrap();
        let hash = serde_json::from_str::<Value>(&text).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_string();
        let f = s.control_request(&req(
            "POST",
            "/faults",
            r#"{"fault":"ratelimit","times":1}"#,
        ));
        assert_eq!(f.status, 200);
        s.portal_request(&req("POST", LOGIN, body), 2, ip);
        s.portal_request(&req("POST", LOGIN, body), 2, ip);
        let calls = s.control_request(&req("GET", "/calls", ""));
        let text = String::from_utf8(calls.body).unwrap();
        assert!(!text.contains("Secret-Pass1") && !text.contains("Rex") && !text.contains(&hash));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[0]["seq"], 1);
        assert_eq!(v[0]["username"], "alice");
        assert_eq!(v[0]["question_id"], 1);
        assert_eq!(v[0]["password_sent"], true);
        assert_eq!(v[0]["result"], "ok");
        assert_eq!(v[0]["fault"], Value::Null);
        assert_eq!(v[1]["fault"], "ratelimit");
        assert_eq!(v[1]["result"], RATE_LIMIT_CODE);
        assert_eq!(v[1]["conn"], 2);
        assert_eq!(v[2]["fault"], Value::Null);
        s.control_request(&req("POST", "/reset", ""));
        assert!(s.calls().is_empty());
        s.portal_request(&req("GET", "/rest/v3/SoftLayer_Nope/x", ""), 3, ip);
        assert_eq!(s.calls()[0].seq, 1);
        assert_eq!(s.calls()[0].result.as_deref(), Some(api::CODE_NOT_FOUND));
    }

    #[test]
    fn control_errors() {
        let s = sim();
        assert_eq!(s.control_request(&req("POST", "/faults", "{")).status, 400);
        assert_eq!(
            s.control_request(&req("POST", "/faults", r#"{"fault":"nope"}"#))
                .status,
            400
        );
        assert_eq!(s.control_request(&req("GET", "/nope", "")).status, 404);
        assert_eq!(s.control_request(&req("PUT", "/calls", "")).status, 405);
        assert_eq!(s.control_request(&req("GET", "/health", "")).status, 200);
        assert_eq!(s.control_request(&req("DELETE", "/faults", "")).status, 200);
    }

    fn phone_sim() -> Sim {
        Sim::new(
            Fixture::parse(
                r#"
[account]
api_user = "u"
api_key = "k"
[[users]]
id = 7
username = "frank"
password = "Frank-Phone8"
bindings = [{ id = 9001, vendor = "PHONE_FACTOR", behaviour = "manual",
              phones = [{ country_code = 1, phone = "5125550100", type = "PRIMARY" },
                        { country_code = 1, phone = "5125550199", type = "BACKUP" }] },
            { id = 9002, vendor = "TOTP" }]
"#,
            )
            .unwrap(),
        )
    }

    fn authed(method: &str, path: &str, body: &str) -> Request {
        let mut r = req(method, path, body);
        r.headers
            .push(("Authorization".into(), "Basic dTpr".into())); // u:k
        r
    }

    fn answer(s: &Sim, path: &str, body: &str) -> (u16, Value) {
        let Action::Respond { resp, .. } =
            s.portal_request(&authed("POST", path, body), 1, "127.0.0.1".parse().unwrap())
        else {
            panic!("expected a response");
        };
        (resp.status, serde_json::from_slice(&resp.body).unwrap())
    }

    fn ctl(s: &Sim, method: &str, path: &str, body: &str) -> (u16, Value) {
        let r = s.control_request(&req(method, path, body));
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    const PHONE: &str = "/rest/v3.1/SoftLayer_User_Customer_External_Binding_Phone/9001";

    #[test]
    fn phone_controls() {
        let s = phone_sim();
        let request = format!("{PHONE}/requestPhoneValidation.json");
        let check = format!("{PHONE}/checkPhoneValidationResult.json");
        let backup =
            r#"{"parameters":[{"countryCode":1,"phone":"5125550199","phoneType":"BACKUP"}]}"#;
        assert_eq!(
            ctl(
                &s,
                "POST",
                "/phone/answer",
                r#"{"binding_id":9001,"result":"approve"}"#
            ),
            (
                404,
                json!({"ok": false, "error": "no pending phone validation"})
            )
        );
        let (st, tok) = answer(&s, &request, backup);
        assert_eq!(st, 200);
        let tok = tok.as_str().unwrap().to_string();
        let (st, p) = ctl(&s, "GET", "/phone/pending", "");
        assert_eq!(st, 200);
        assert_eq!(p[0]["binding_id"], 9001);
        assert_eq!(p[0]["username"], "frank");
        assert_eq!(p[0]["phone"], "0199");
        assert!(p[0]["token_age_ms"].is_u64());
        assert_eq!(p[0].as_object().unwrap().len(), 4);
        let body = format!(r#"{{"parameters":["{tok}"]}}"#);
        assert_eq!(
            answer(&s, &check, &body).1["code"],
            "SoftLayer_Exception_User_Customer_External_Binding_AwaitingResponse"
        );
        assert_eq!(
            ctl(
                &s,
                "POST",
                "/phone/answer",
                r#"{"username":"frank","result":"approve"}"#
            ),
            (200, json!({"ok": true}))
        );
        assert_eq!(answer(&s, &check, &body), (200, json!(true)));
        assert_eq!(ctl(&s, "GET", "/phone/pending", "").1, json!([]));
        // by binding id; deny and wrong_pin fail
        for result in ["deny", "wrong_pin"] {
            let tok = answer(&s, &request, backup).1.as_str().unwrap().to_string();
            let a = format!(r#"{{"binding_id":9001,"result":"{result}"}}"#);
            assert_eq!(ctl(&s, "POST", "/phone/answer", &a).0, 200);
            let body = format!(r#"{{"parameters":["{tok}"]}}"#);
            assert_eq!(
                answer(&s, &check, &body).1["code"],
                "SoftLayer_Exception_User_Customer_External_Binding_PhoneValidationFailed"
            );
        }
        // bad bodies, unknown users and bindings
        for (body, status) in [
            ("{", 400),
            (r#"{"binding_id":9001}"#, 400),
            (r#"{"result":"approve"}"#, 400),
            (r#"{"binding_id":9001,"result":"maybe"}"#, 400),
            (r#"{"binding_id":9001,"result":"approve","x":1}"#, 400),
            (r#"{"username":"nobody","result":"approve"}"#, 404),
            (r#"{"binding_id":9002,"result":"approve"}"#, 404),
        ] {
            assert_eq!(ctl(&s, "POST", "/phone/answer", body).0, status, "{body}");
        }
        // behaviour at run time: deny at once
        assert_eq!(
            ctl(
                &s,
                "POST",
                "/phone/behaviour",
                r#"{"binding_id":9001,"behaviour":"deny","delay_ms":0}"#
            ),
            (200, json!({"ok": true}))
        );
        let tok = answer(&s, &request, backup).1.as_str().unwrap().to_string();
        let body = format!(r#"{{"parameters":["{tok}"]}}"#);
        assert_eq!(
            answer(&s, &check, &body).1["error"],
            "Phone validation failed."
        );
        for (body, status) in [
            (r#"{"binding_id":9001,"behaviour":"sing"}"#, 400),
            (r#"{"binding_id":9001,"expire_s":0}"#, 400),
            (r#"{"behaviour":"deny"}"#, 400),
            (r#"{"binding_id":9002,"behaviour":"deny"}"#, 404),
            (r#"{"binding_id":1,"behaviour":"deny"}"#, 404),
        ] {
            assert_eq!(
                ctl(&s, "POST", "/phone/behaviour", body).0,
                status,
                "{body}"
            );
        }
        assert_eq!(ctl(&s, "GET", "/phone/answer", "").0, 405);
        assert_eq!(ctl(&s, "POST", "/phone/pending", "").0, 405);
        assert_eq!(ctl(&s, "GET", "/phone/nope", "").0, 404);
        // 3 failures so far; the calls log names the method and binding, never a token
        let calls = serde_json::to_string(&s.calls()).unwrap();
        assert!(!calls.contains(&tok), "{calls}");
        let c = &s.calls()[0];
        assert_eq!(c.method.as_deref(), Some("requestPhoneValidation"));
        assert_eq!(c.object_id.as_deref(), Some("9001"));
        assert_eq!(c.username.as_deref(), Some("frank"));
        assert_eq!(c.result.as_deref(), Some("ok"));
        assert_eq!(s.portal.phone().failures(9001, Instant::now()), 3);
        // reset: validations, counters, failures gone; the fixture's behaviour is back
        let _pending = answer(&s, &request, backup);
        ctl(&s, "POST", "/reset", "");
        assert_eq!(s.portal.phone().failures(9001, Instant::now()), 0);
        assert_eq!(ctl(&s, "GET", "/phone/pending", "").1, json!([]));
        assert_eq!(
            s.portal.phone().settings(9001).unwrap().behaviour,
            Behaviour::Manual
        );
    }

    #[test]
    fn loopback_only() {
        assert!(bind_loopback("0.0.0.0:0".parse().unwrap(), "x").is_err());
        assert!(bind_loopback("127.0.0.1:0".parse().unwrap(), "x").is_ok());
    }
}
