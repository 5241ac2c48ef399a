//! End-to-end tests: the real `portal-sim` binary on port 0, over HTTPS (ureq + rustls,
//! trusting the written ca.pem) and plain HTTP (raw sockets, for the faults).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const FIXTURE: &str = r#"
[account]
api_user = "SL100001"
api_key = "0123456789abcdef"

[lockout]
max_failures = 3

[[questions]]
id = 122
question = "What was the name of your first pet?"
display_order = 1

[[users]]
id = 5001
username = "alice"
password = "Correct-Horse1"
secondary_login_required = true
answers = [ { question_id = 122, answer = "Rex" } ]

[[users]]
id = 5006
username = "frank"
password = "Frank-Phone8"
bindings = [ { id = 9001, active = true, vendor = "PHONE_FACTOR" } ]
"#;

const AUTH: &str = "Basic U0wxMDAwMDE6MDEyMzQ1Njc4OWFiY2RlZg==";

struct Sim {
    child: Child,
    portal: String,
    control: String,
    ca: String,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "portal-sim-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        Sim::start_with(FIXTURE, extra).unwrap()
    }

    fn start_with(fixture: &str, extra: &[&str]) -> Result<Sim, String> {
        let dir = temp_dir();
        let fx = dir.0.join("fixture.toml");
        std::fs::write(&fx, fixture).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portal-sim"))
            .arg("--fixture")
            .arg(&fx)
            .arg("--exit-on-stdin-eof")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..4 {
            let mut l = String::new();
            if out.read_line(&mut l).unwrap() == 0 {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                let status = child.wait().unwrap();
                return Err(format!("{status}: {err}"));
            }
            lines.push(l.trim_end().to_string());
        }
        // stderr is drained in the background so the sim never blocks on it
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink);
        });
        assert_eq!(lines[3], "READY");
        let get = |i: usize, k: &str| {
            lines[i]
                .strip_prefix(k)
                .unwrap_or_else(|| panic!("{k} in {:?}", lines))
                .to_string()
        };
        Ok(Sim {
            portal: get(0, "PORTAL_URL="),
            control: get(1, "CONTROL_URL="),
            ca: get(2, "CA_FILE="),
            child,
            _dir: dir,
        })
    }

    fn portal_addr(&self) -> String {
        let rest = self.portal.split("://").nth(1).unwrap();
        rest.split('/').next().unwrap().to_string()
    }

    /// A control call over a tiny HTTP/1.1 client with `Connection: close`.
    fn control(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let addr = self.control.strip_prefix("http://").unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let raw = raw(addr, req.as_bytes()).unwrap();
        let (status, _, body) = split(&raw);
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn fault(&self, spec: Value) {
        let (s, v) = self.control("POST", "/faults", &spec.to_string());
        assert_eq!((s, v), (200, json!({"ok": true})));
    }

    fn calls(&self) -> Vec<Value> {
        let (s, v) = self.control("GET", "/calls", "");
        assert_eq!(s, 200);
        v.as_array().unwrap().clone()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Closing stdin lets the sim exit by itself and remove its temp dir; kill if it hangs.
        drop(self.child.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `req`, read until EOF (or a 10 s timeout).
fn raw(addr: &str, req: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// (status, head, body) of a raw response.
fn split(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let pos = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..pos]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.get(pos + 4..).unwrap_or(&[]).to_vec();
    (status, head, body)
}

fn agent(ca_file: &str) -> ureq::Agent {
    let pem = std::fs::read(ca_file).unwrap();
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(certs.len(), 1);
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str, auth: Option<&str>) -> Result<(u16, Value), ureq::Error> {
    let mut req = agent.get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let mut resp = req.call()?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn login(agent: &ureq::Agent, base: &str, params: Value) -> (u16, Value) {
    let path = "SoftLayer_User_Customer/getPortalLoginToken.json";
    post(agent, base, path, params, false)
}

#[test]
fn https_end_to_end_with_ca_file() {
    let sim = Sim::start(&[]);
    assert!(sim.portal.starts_with("https://127.0.0.1:"));
    assert!(sim.portal.ends_with("/rest/v3.1"));
    assert!(sim.control.starts_with("http://127.0.0.1:"));
    assert!(std::fs::read_to_string(&sim.ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let a = agent(&sim.ca);
    let base = &sim.portal;

    let (s, q) = get(
        &a,
        &format!("{base}/SoftLayer_User_Security_Question/getAllObjects.json"),
        None,
    )
    .unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        q,
        json!([{"id": 122, "question": "What was the name of your first pet?", "displayOrder": 1, "viewable": 1}])
    );

    let filter = "%7B%22users%22%3A%7B%22username%22%3A%7B%22operation%22%3A%22alice%22%7D%7D%7D";
    let mask = "mask%5Bid%2Cusername%2CuserStatus%5BkeyName%2Cname%5D%2CsecurityAnswers%5BquestionId%5D%2CexternalBindings%5Bid%2Cactive%2Cvendor%5BkeyName%5D%5D%5D";
    let url =
        format!("{base}/SoftLayer_Account/getUsers.json?objectFilter={filter}&objectMask={mask}");
    let (s, v) = get(&a, &url, None).unwrap();
    assert_eq!(
        (s, v),
        (
            401,
            json!({"error": "Access Denied. ", "code": "SoftLayer_Exception_Public"})
        )
    );
    let (s, v) = get(&a, &url, Some(AUTH)).unwrap();
    assert_eq!(s, 200);
    assert_eq!(v[0]["username"], "alice");
    assert_eq!(v[0]["userStatus"]["keyName"], "ACTIVE");
    assert_eq!(v[0]["securityAnswers"][0]["questionId"], 122);
    assert_eq!(v[0]["externalBindings"], json!([]));

    // v3 and no .json suffix work too
    let (s, _) = get(
        &a,
        &format!(
            "{}/SoftLayer_User_Security_Question/getAllObjects",
            base.replace("v3.1", "v3")
        ),
        None,
    )
    .unwrap();
    assert_eq!(s, 200);

    let (s, v) = login(&a, base, json!(["alice", "Correct-Horse1", 122, " rex "]));
    assert_eq!(s, 200);
    assert_eq!(v["userId"], 5001);
    let hash = v["hash"].as_str().unwrap().to_string();
    let (s, v) = login(&a, base, json!(["frank", "Frank-Phone8"]));
    assert_eq!(s, 500);
    assert_eq!(
        v["code"],
        "SoftLayer_Exception_User_Customer_External_Binding_PhoneAuthenticationRequired"
    );
    let (s, v) = login(&a, base, json!(["alice", "nope", null, null]));
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (500, "SoftLayer_Exception_User_Customer_LoginFailed")
    );

    let calls = sim.calls();
    assert_eq!(calls.len(), 7);
    let text = serde_json::to_string(&calls).unwrap();
    assert!(!text.contains("Correct-Horse1") && !text.contains("rex") && !text.contains(&hash));
    let c = &calls[4];
    assert_eq!(c["service"], "SoftLayer_User_Customer");
    assert_eq!(c["method"], "getPortalLoginToken");
    assert_eq!(c["http_method"], "POST");
    assert_eq!(c["username"], "alice");
    assert_eq!(c["question_id"], 122);
    assert_eq!(c["password_sent"], true);
    assert_eq!(c["auth"], false);
    assert_eq!(c["result"], "ok");
    assert_eq!(calls[1]["username"], "alice");
    assert_eq!(calls[1]["result"], "SoftLayer_Exception_Public");
    assert_eq!(calls[2]["auth"], true);
    // ureq keeps the connection alive: all calls on one connection
    assert!(
        calls.iter().all(|c| c["conn"] == calls[0]["conn"]),
        "{text}"
    );

    let (s, _) = sim.control("POST", "/reset", "");
    assert_eq!(s, 200);
    assert!(sim.calls().is_empty());
}

#[test]
fn cert_modes_fail_verification() {
    for mode in ["wrong-host", "self-signed", "expired"] {
        let sim = Sim::start(&["--cert-mode", mode]);
        let a = agent(&sim.ca);
        let url = format!(
            "{}/SoftLayer_User_Security_Question/getAllObjects.json",
            sim.portal
        );
        let e = get(&a, &url, None).expect_err(mode);
        let msg = e.to_string().to_lowercase();
        assert!(
            msg.contains("certificate") || msg.contains("tls") || msg.contains("name"),
            "{mode}: {msg}"
        );
    }
}

#[test]
fn tls_dir_and_stdin_eof() {
    let dir = temp_dir();
    let d = dir.0.join("tls");
    let mut sim = Sim::start(&["--tls-dir", d.to_str().unwrap()]);
    assert_eq!(PathBuf::from(&sim.ca), d.join("ca.pem"));
    // closing stdin ends the process
    drop(sim.child.stdin.take());
    let t0 = Instant::now();
    loop {
        if let Some(st) = sim.child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sim did not exit on stdin EOF"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn default_tls_dir_removed_on_exit_and_http_mode() {
    let mut sim = Sim::start(&[]);
    let ca = PathBuf::from(&sim.ca);
    assert!(ca.exists());
    drop(sim.child.stdin.take());
    sim.child.wait().unwrap();
    assert!(!ca.exists());
    assert!(!ca.parent().unwrap().exists());

    let sim = Sim::start(&["--http"]);
    assert!(sim.portal.starts_with("http://127.0.0.1:"));
    assert_eq!(sim.ca, "");
}

#[test]
fn refuses_bad_startup() {
    let e = Sim::start_with(FIXTURE, &["--bind", "0.0.0.0:0"])
        .err()
        .unwrap();
    assert!(e.contains("loopback"), "{e}");
    let e = Sim::start_with(&format!("{FIXTURE}\nextra_key = 1\n"), &[])
        .err()
        .unwrap();
    assert!(e.contains("extra_key"), "{e}");
    let bad_mode = SECOND_FACTOR_FIXTURE.replace("pin_mode = \"STANDARD\"", "pin_mode = \"OTP\"");
    let e = Sim::start_with(&bad_mode, &[]).err().unwrap();
    assert!(e.contains("pin_mode") && e.contains("9001"), "{e}");
}

fn http_call(sim: &Sim, method: &str) -> std::io::Result<Vec<u8>> {
    let (verb, path, body) = match method {
        "getUsers" => (
            "GET",
            "/rest/v3.1/SoftLayer_Account/getUsers.json",
            String::new(),
        ),
        "getAllObjects" => (
            "GET",
            "/rest/v3.1/SoftLayer_User_Security_Question/getAllObjects.json",
            String::new(),
        ),
        _ => (
            "POST",
            "/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken.json",
            json!({"parameters": ["alice", "Correct-Horse1", 122, "Rex"]}).to_string(),
        ),
    };
    let req = format!(
        "{verb} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(&sim.portal_addr(), req.as_bytes())
}

#[test]
fn every_fault_kind() {
    let sim = Sim::start(&["--http"]);
    let one = |kind: &str, extra: Value| {
        let mut spec = json!({"fault": kind, "times": 1});
        if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        sim.fault(spec);
    };

    one("delay", json!({"ms": 300}));
    let t0 = Instant::now();
    let r = http_call(&sim, "getPortalLoginToken").unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(split(&r).0, 200);

    one("status500", json!({}));
    let (s, h, b) = split(&http_call(&sim, "x").unwrap());
    assert_eq!((s, b.as_slice()), (500, &b"Internal Server Error"[..]));
    assert!(h.contains("text/plain"));

    one("garbage", json!({}));
    let (s, _, b) = split(&http_call(&sim, "x").unwrap());
    assert_eq!(s, 200);
    assert!(serde_json::from_slice::<Value>(&b).is_err());

    one("empty", json!({}));
    let (s, h, b) = split(&http_call(&sim, "x").unwrap());
    assert_eq!(s, 200);
    assert!(b.is_empty() && h.contains("Content-Length: 0"));

    one("ratelimit", json!({}));
    let (s, _, b) = split(&http_call(&sim, "x").unwrap());
    assert_eq!(s, 500);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v["code"],
        "SoftLayer_Exception_WebService_RateLimitExceeded"
    );
    assert_eq!(
        v["error"],
        "Rate limit of 50 requests for every 1 second(s) exceeded."
    );

    for (kind, status) in [
        ("status503", 503),
        ("status429", 429),
        ("unauthorized", 401),
        ("error200", 200),
        ("redirect", 302),
    ] {
        one(kind, json!({}));
        let (s, h, b) = split(&http_call(&sim, "x").unwrap());
        assert_eq!(s, status, "{kind}");
        match kind {
            "unauthorized" => assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["error"], "Access Denied. "),
            "error200" => assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["error"], "Internal Error"),
            "redirect" => assert!(h.contains("Location: https://example.net/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken.json"), "{h}"),
            _ => {}
        }
    }

    for (m, want) in [
        ("getPortalLoginToken", json!({"userId": "x", "hash": 5})),
        ("getUsers", json!([{"id": "x", "username": 7}])),
        ("getAllObjects", json!("str")),
    ] {
        one("wrong_types", json!({"method": m}));
        let (s, _, b) = split(&http_call(&sim, m).unwrap());
        assert_eq!(
            (s, serde_json::from_slice::<Value>(&b).unwrap()),
            (200, want)
        );
    }

    one("reset", json!({}));
    let e = http_call(&sim, "x").expect_err("reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);

    one("hang", json!({"ms": 400}));
    let t0 = Instant::now();
    let r = http_call(&sim, "x").unwrap();
    assert!(r.is_empty() && t0.elapsed() >= Duration::from_millis(400));

    one("stall_body", json!({"ms": 400}));
    let r = http_call(&sim, "x").unwrap();
    let (s, h, b) = split(&r);
    assert_eq!((s, b.len()), (200, 10));
    assert!(h.contains("Content-Length: 1000"));

    one("huge", json!({}));
    let (s, h, b) = split(&http_call(&sim, "x").unwrap());
    assert_eq!((s, b.len()), (200, 30 * 1024 * 1024));
    assert!(h.contains("Content-Length: 31457280"));

    one("http10", json!({}));
    let (s, h, b) = split(&http_call(&sim, "getPortalLoginToken").unwrap());
    assert!(h.starts_with("HTTP/1.0 200"));
    assert!(!h.contains("Content-Length") && h.contains("Connection: close"));
    assert_eq!(
        (
            s,
            serde_json::from_slice::<Value>(&b).unwrap()["userId"].clone()
        ),
        (200, json!(5001))
    );

    one("chunked_garbage", json!({}));
    let (s, h, _) = split(&http_call(&sim, "x").unwrap());
    assert_eq!(s, 200);
    assert!(h.contains("Transfer-Encoding: chunked"));

    // method filter: a getUsers-only fault leaves other calls alone; faults are listed
    sim.fault(json!({"fault": "status500", "method": "getUsers"}));
    assert_eq!(split(&http_call(&sim, "getAllObjects").unwrap()).0, 200);
    assert_eq!(split(&http_call(&sim, "getUsers").unwrap()).0, 500);
    assert_eq!(split(&http_call(&sim, "getUsers").unwrap()).0, 500);
    let (_, f) = sim.control("GET", "/faults", "");
    assert_eq!(f.as_array().unwrap().len(), 1);
    assert_eq!(sim.control("DELETE", "/faults", "").0, 200);
    assert_eq!(split(&http_call(&sim, "getUsers").unwrap()).0, 200);

    let calls = sim.calls();
    let faults: Vec<&str> = calls.iter().filter_map(|c| c["fault"].as_str()).collect();
    for k in [
        "delay",
        "status500",
        "garbage",
        "empty",
        "ratelimit",
        "status503",
        "status429",
        "unauthorized",
        "error200",
        "redirect",
        "wrong_types",
        "reset",
        "hang",
        "stall_body",
        "huge",
        "http10",
        "chunked_garbage",
    ] {
        assert!(faults.contains(&k), "{k} missing from {faults:?}");
    }
    assert_eq!(calls[0]["fault"], "delay");
    assert_eq!(calls[0]["result"], "ok");
    let seqs: Vec<u64> = calls.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(sim.control("GET", "/health", "").1, json!({"ok": true}));
}

#[test]
fn lockout_over_the_wire_and_reset() {
    let sim = Sim::start(&[]);
    let a = agent(&sim.ca);
    for _ in 0..3 {
        let (_, v) = login(&a, &sim.portal, json!(["alice", "bad"]));
        assert_eq!(v["code"], "SoftLayer_Exception_User_Customer_LoginFailed");
    }
    let (_, v) = login(
        &a,
        &sim.portal,
        json!(["alice", "Correct-Horse1", 122, "Rex"]),
    );
    assert_eq!(v["code"], "SoftLayer_Exception_User_Customer_AccountLocked");
    assert_eq!(v["error"], "Account has been locked for 30 minutes.");
    let (_, l) = sim.control("GET", "/lockouts", "");
    assert_eq!(l["users"][0]["key"], "alice");
    assert_eq!(l["users"][0]["locked"], true);
    sim.control("POST", "/reset", "");
    let (s, _) = login(
        &a,
        &sim.portal,
        json!(["alice", "Correct-Horse1", 122, "Rex"]),
    );
    assert_eq!(s, 200);
}

#[test]
fn broken_clients_do_not_hurt_the_server() {
    let sim = Sim::start(&[]);
    let addr = sim.portal_addr();
    // plain HTTP on the TLS port, garbage bytes, half-open connections
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"\x00\x01\x02\x03",
        b"\x16\x03\x01\x00\x05hello",
    ] {
        let _ = raw(&addr, junk);
    }
    let _half = TcpStream::connect(&addr).unwrap();
    let a = agent(&sim.ca);
    let (s, _) = get(
        &a,
        &format!(
            "{}/SoftLayer_User_Security_Question/getAllObjects.json",
            sim.portal
        ),
        None,
    )
    .unwrap();
    assert_eq!(s, 200);
    // malformed requests over TLS get a 400/500, not a crash
    let (s, v) = {
        let mut resp = a
            .post(format!(
                "{}/SoftLayer_User_Customer/getPortalLoginToken.json",
                sim.portal
            ))
            .header("Content-Type", "application/json")
            .send("{not json")
            .unwrap();
        let st = resp.status().as_u16();
        (
            st,
            serde_json::from_str::<Value>(&resp.body_mut().read_to_string().unwrap()).unwrap(),
        )
    };
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (500, "SoftLayer_Exception_Public")
    );
    assert_eq!(sim.control("GET", "/health", "").0, 200);
}

#[test]
fn undrained_or_closed_stderr_never_blocks_the_server() {
    for close_stderr in [false, true] {
        let dir = temp_dir();
        let fx = dir.0.join("fixture.toml");
        std::fs::write(&fx, FIXTURE).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portal-sim"))
            .arg("--fixture")
            .arg(&fx)
            .args(["--http", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        out.read_line(&mut url).unwrap();
        let base = url
            .trim_end()
            .strip_prefix("PORTAL_URL=")
            .unwrap()
            .to_string();
        // stderr is never read (the pipe fills up) or closed (writes fail)
        let err = child.stderr.take();
        if close_stderr {
            drop(err);
        }
        let a: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let t0 = Instant::now();
        for _ in 0..1500 {
            let (s, _) = get(
                &a,
                &format!("{base}/SoftLayer_Nope/getAllObjects.json"),
                None,
            )
            .unwrap();
            assert_eq!(s, 404);
        }
        assert!(t0.elapsed() < Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Second factors: the phone binding service (PROTOCOL 2.4), TOTP and VeriSign (2.5)

const SECOND_FACTOR_FIXTURE: &str = r#"
[account]
api_user = "SL100001"
api_key = "0123456789abcdef"

[[users]]
id = 5006
username = "frank"
password = "Frank-Phone8"

[[users.bindings]]
id = 9001
vendor = "PHONE_FACTOR"
mode = "VOICE_CALL"
pin_mode = "STANDARD"
behaviour = "approve"
delay_ms = 300
primary_fails = true
phones = [
  { country_code = 1, phone = "5125550100", extension = "", type = "PRIMARY" },
  { country_code = 1, phone = "5125550199", type = "BACKUP" },
]

[[users]]
id = 5010
username = "mallory"
password = "Mallory-Call3"
bindings = [{ id = 9010, vendor = "PHONE_FACTOR", behaviour = "manual", expire_s = 60 }]

[[users]]
id = 5007
username = "grace"
password = "Grace-Totp42"
bindings = [{ id = 9002, vendor = "TOTP", code = "123456" }]

[[users]]
id = 5008
username = "heidi"
password = "Heidi-Vip77"
bindings = [{ id = 9003, vendor = "VERISIGN", code = "111111", second_code = "222222", out_of_sync = true }]
"#;

const PHONE_SVC: &str = "SoftLayer_User_Customer_External_Binding_Phone";

/// POST `{"parameters": params}` to `{base}/{path}`, with service credentials if `auth`.
fn post(agent: &ureq::Agent, base: &str, path: &str, params: Value, auth: bool) -> (u16, Value) {
    let mut req = agent
        .post(format!("{base}/{path}"))
        .header("Content-Type", "application/json");
    if auth {
        req = req.header("Authorization", AUTH);
    }
    let mut resp = req
        .send(json!({ "parameters": params }).to_string())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// Poll checkPhoneValidationResult until it stops answering AwaitingResponse (10 s at most).
fn poll(agent: &ureq::Agent, base: &str, binding: u64, token: &str) -> (u16, Value, usize) {
    let path = format!("{PHONE_SVC}/{binding}/checkPhoneValidationResult.json");
    let t0 = Instant::now();
    let mut awaiting = 0;
    loop {
        let (s, v) = post(agent, base, &path, json!([token]), true);
        if v["code"] != "SoftLayer_Exception_User_Customer_External_Binding_AwaitingResponse" {
            return (s, v, awaiting);
        }
        assert_eq!(
            v["error"],
            "Waiting on the external authentication response"
        );
        awaiting += 1;
        assert!(t0.elapsed() < Duration::from_secs(10), "still awaiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn phone_approve_flow_over_https() {
    let sim = Sim::start_with(SECOND_FACTOR_FIXTURE, &[]).unwrap();
    let a = agent(&sim.ca);
    let base = &sim.portal;
    let url = |m: &str| format!("{base}/{PHONE_SVC}/9001/{m}.json");
    assert_eq!(
        get(&a, &url("getBindingStatus"), Some(AUTH)).unwrap(),
        (200, json!("ACTIVE"))
    );
    assert_eq!(get(&a, &url("getBindingStatus"), None).unwrap().0, 401);
    assert_eq!(
        get(&a, &url("getAuthenticationMode"), Some(AUTH)).unwrap(),
        (200, json!({"mode": "VOICE_CALL", "pinMode": "STANDARD"}))
    );
    let (s, phones) = get(&a, &url("getPhoneData"), Some(AUTH)).unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        phones,
        json!([
            {"countryCode": 1, "phone": "5125550100", "extension": "", "phoneType": "PRIMARY"},
            {"countryCode": 1, "phone": "5125550199", "extension": "", "phoneType": "BACKUP"}
        ])
    );
    let (s, v) = get(
        &a,
        &format!("{base}/{PHONE_SVC}/9002/getBindingStatus.json"),
        Some(AUTH),
    )
    .unwrap();
    assert_eq!(
        (s, v["code"].as_str()),
        (404, Some("SoftLayer_Exception_ObjectNotFound"))
    );

    // the PRIMARY phone cannot be reached: fall back to BACKUP, sent back as getPhoneData gave it
    let req_path = format!("{PHONE_SVC}/9001/requestPhoneValidation.json");
    let (s, v) = post(&a, base, &req_path, json!([phones[0]]), true);
    assert_eq!(
        (s, v),
        (
            500,
            json!({"error": "Unable to reach the phone number.", "code": "SoftLayer_Exception"})
        )
    );
    let (s, token) = post(&a, base, &req_path, json!([phones[1]]), true);
    assert_eq!(s, 200);
    let token = token.as_str().unwrap().to_string();
    let t0 = Instant::now();
    let (s, v, awaiting) = poll(&a, base, 9001, &token);
    assert_eq!((s, v), (200, json!(true)));
    assert!(awaiting >= 1 && t0.elapsed() >= Duration::from_millis(250));
    // one final answer per token
    let (s, v) = post(
        &a,
        base,
        &format!("{PHONE_SVC}/9001/checkPhoneValidationResult.json"),
        json!([token]),
        true,
    );
    assert_eq!(
        (s, v),
        (
            500,
            json!({"error": "Failed to find an valid authentication request.",
                   "code": "SoftLayer_Exception_User_Customer_External_Binding_InvalidAuthenticationToken"})
        )
    );

    let calls = sim.calls();
    let text = serde_json::to_string(&calls).unwrap();
    assert!(!text.contains(&token), "{text}");
    let req = calls
        .iter()
        .find(|c| c["method"] == "requestPhoneValidation" && c["result"] == "ok")
        .unwrap();
    assert_eq!(req["service"], PHONE_SVC);
    assert_eq!(req["object_id"], "9001");
    assert_eq!(req["username"], "frank");
    assert_eq!(req["auth"], true);
    assert!(calls
        .iter()
        .any(|c| c["method"] == "checkPhoneValidationResult" && c["result"] == "ok"));
}

#[test]
fn phone_manual_flow_answered_by_control() {
    let sim = Sim::start_with(SECOND_FACTOR_FIXTURE, &[]).unwrap();
    let a = agent(&sim.ca);
    let base = &sim.portal;
    let (s, token) = post(
        &a,
        base,
        &format!("{PHONE_SVC}/9010/requestPhoneValidation.json"),
        json!([{"countryCode": 1, "phone": "5125550100", "extension": "", "phoneType": "PRIMARY"}]),
        true,
    );
    assert_eq!(s, 200);
    let token = token.as_str().unwrap().to_string();
    let check = format!("{PHONE_SVC}/9010/checkPhoneValidationResult.json");
    let (_, v) = post(&a, base, &check, json!([token]), true);
    assert_eq!(
        v["code"],
        "SoftLayer_Exception_User_Customer_External_Binding_AwaitingResponse"
    );
    let (s, p) = sim.control("GET", "/phone/pending", "");
    assert_eq!(s, 200);
    assert_eq!(p.as_array().unwrap().len(), 1);
    assert_eq!(
        (&p[0]["binding_id"], &p[0]["username"], &p[0]["phone"]),
        (&json!(9010), &json!("mallory"), &json!("0100"))
    );
    // nobody pending for frank
    let (s, _) = sim.control(
        "POST",
        "/phone/answer",
        r#"{"username":"frank","result":"approve"}"#,
    );
    assert_eq!(s, 404);
    let (s, v) = sim.control(
        "POST",
        "/phone/answer",
        r#"{"username":"mallory","result":"approve"}"#,
    );
    assert_eq!((s, v), (200, json!({"ok": true})));
    assert_eq!(
        post(&a, base, &check, json!([token]), true),
        (200, json!(true))
    );
    assert_eq!(sim.control("GET", "/phone/pending", "").1, json!([]));

    // deny through the control interface; then change the behaviour at run time
    let (_, token) = post(
        &a,
        base,
        &format!("{PHONE_SVC}/9010/requestPhoneValidation.json"),
        json!([{"countryCode": 1, "phone": "5125550100"}]),
        true,
    );
    sim.control(
        "POST",
        "/phone/answer",
        r#"{"binding_id":9010,"result":"deny"}"#,
    );
    let (s, v) = post(&a, base, &check, json!([token]), true);
    assert_eq!(
        (s, v["code"].as_str(), v["error"].as_str()),
        (
            500,
            Some("SoftLayer_Exception_User_Customer_External_Binding_PhoneValidationFailed"),
            Some("Phone validation failed.")
        )
    );
    let (s, _) = sim.control(
        "POST",
        "/phone/behaviour",
        r#"{"binding_id":9010,"behaviour":"approve","delay_ms":0}"#,
    );
    assert_eq!(s, 200);
    let (_, token) = post(
        &a,
        base,
        &format!("{PHONE_SVC}/9010/requestPhoneValidation.json"),
        json!([{"countryCode": 1, "phone": "5125550100"}]),
        true,
    );
    assert_eq!(
        post(&a, base, &check, json!([token]), true),
        (200, json!(true))
    );
}

#[test]
fn totp_and_verisign_over_https() {
    let sim = Sim::start_with(SECOND_FACTOR_FIXTURE, &[]).unwrap();
    let a = agent(&sim.ca);
    let base = &sim.portal;
    let path = "SoftLayer_User_Customer/performExternalAuthentication.json";
    let totp = |code: &str| {
        json!([{"complexType": "SoftLayer_Container_User_Customer_External_Binding_Totp",
                "username": "grace", "password": "Grace-Totp42", "securityCode": code,
                "vendor": "TOTP"}])
    };
    let (s, v) = post(&a, base, path, totp("123456"), false);
    assert_eq!(s, 200);
    assert_eq!(v["userId"], 5007);
    let hash = v["hash"].as_str().unwrap().to_string();
    assert!(hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit()));
    let (s, v) = post(&a, base, path, totp("654321"), false);
    assert_eq!(
        (s, v),
        (
            500,
            json!({"error": "Invalid login credentials provided.",
                   "code": "SoftLayer_Exception_User_Customer_LoginFailed"})
        )
    );
    let (_, l) = sim.control("GET", "/lockouts", "");
    assert_eq!(l["users"][0]["key"], "grace");
    assert_eq!(l["users"][0]["failures"], 1);

    let vs = |second: Option<&str>| {
        let mut c = json!({"complexType": "SoftLayer_Container_User_Customer_External_Binding_Verisign",
                           "username": "heidi", "password": "Heidi-Vip77", "securityCode": "111111",
                           "vendor": "VERISIGN"});
        if let Some(s) = second {
            c["secondSecurityCode"] = json!(s);
        }
        json!([c])
    };
    let (s, v) = post(&a, base, path, vs(None), false);
    assert_eq!(
        (s, v),
        (
            500,
            json!({"error": "Your credential has become out of synchronization.  Please supply a second security code.",
                   "code": "SoftLayer_Exception_User_Customer_External_Binding_Verisign_SecondSecurityCodeRequired"})
        )
    );
    let (s, v) = post(&a, base, path, vs(Some("222222")), false);
    assert_eq!((s, v["userId"].clone()), (200, json!(5008)));
    let (_, v) = post(&a, base, path, vs(Some("333333")), false);
    assert_eq!(v["code"], "SoftLayer_Exception_User_Customer_LoginFailed");

    // the calls log has the username, never a code, password or hash
    let calls = sim.calls();
    let text = serde_json::to_string(&calls).unwrap();
    for secret in [
        "123456",
        "654321",
        "111111",
        "222222",
        "Grace-Totp42",
        "Heidi-Vip77",
        &hash,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(calls[0]["method"], "performExternalAuthentication");
    assert_eq!(calls[0]["username"], "grace");
    assert_eq!(calls[0]["password_sent"], true);
    assert_eq!(calls[0]["result"], "ok");
}
