//! The work behind the interface, in safe Rust: ureq agents and exchanges for the portal,
//! rustls sessions for Redis. Moved here from the module so that a login refused before any
//! portal call never loads (or relocates) TLS code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

/// Where distributions keep the system CA bundle, most common first.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// One agent per login: built for its first call, reused for the others.
pub fn agent(
    ca_file: Option<&Path>,
    connect_timeout: Duration,
    user_agent: &str,
) -> Result<Agent, String> {
    let roots = match ca_file {
        Some(path) => RootCerts::new_with_certs(&read_pem(path, "ca_file")?),
        None => system_roots(),
    };
    Ok(Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(connect_timeout))
        .user_agent(user_agent)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .into())
}

/// One HTTP exchange: the request, then the body up to `limit` bytes.
pub fn exchange(
    agent: &Agent,
    url: &str,
    authorization: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
    limit: u64,
) -> Result<(u16, Vec<u8>), String> {
    let sent = match body {
        Some(body) => {
            let mut req = agent
                .post(url)
                .config()
                .timeout_global(Some(timeout))
                .build();
            req = req
                .header("Content-Type", "application/json")
                .header("Accept", "application/json");
            if let Some(a) = authorization {
                req = req.header("Authorization", a);
            }
            req.send(body)
        }
        None => {
            let mut req = agent
                .get(url)
                .config()
                .timeout_global(Some(timeout))
                .build();
            req = req.header("Accept", "application/json");
            if let Some(a) = authorization {
                req = req.header("Authorization", a);
            }
            req.call()
        }
    };
    let mut resp = sent.map_err(|e| transport_error(&e))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| transport_error(&e))?;
    Ok((status, bytes))
}

fn transport_error(e: &ureq::Error) -> String {
    let mut s = match e {
        ureq::Error::Timeout(_) => "the portal did not answer within the time allowed".to_string(),
        ureq::Error::BodyExceedsLimit(n) => format!("the portal's answer is over {n} bytes"),
        other => format!("cannot reach the portal: {other}"),
    };
    s.truncate(300);
    s
}

/// The certificates of a PEM file; `what` names the setting in the error.
fn read_pem(path: &Path, what: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{what} {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The system's CA bundle (the first of `SYSTEM_BUNDLES` holding certificates), parsed once
/// per process (plain data, safe across fork).
fn system_certs() -> Option<&'static [Certificate<'static>]> {
    static CERTS: OnceLock<Option<Vec<Certificate<'static>>>> = OnceLock::new();
    CERTS
        .get_or_init(|| {
            SYSTEM_BUNDLES
                .iter()
                .find_map(|p| read_pem(Path::new(p), "CA bundle").ok())
        })
        .as_deref()
}

/// The portal's roots without a `ca_file`: the system bundle, else the Mozilla roots compiled
/// into this library.
fn system_roots() -> RootCerts {
    match system_certs() {
        Some(certs) => RootCerts::new_with_certs(certs),
        None => RootCerts::WebPki,
    }
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS session to `host` over `tcp` (whose timeouts the caller has set), handshake done, so
/// that a certificate problem is reported as such.
pub fn tls_open(tcp: TcpStream, host: &str, ca_file: Option<&Path>) -> Result<TlsStream, String> {
    use rustls::pki_types::{CertificateDer, ServerName};
    let from_file;
    let certs: &[Certificate<'static>] = match ca_file {
        Some(p) => {
            from_file = read_pem(p, "redis_ca_file")?;
            &from_file
        }
        None => system_certs().unwrap_or(&[]),
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        let _ = roots.add(CertificateDer::from(c.der().to_vec()));
    }
    if roots.is_empty() {
        return Err("TLS: no CA certificate (set [lockout] redis_ca_file)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("TLS: server name {host}: {e}"))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "TLS handshake: timed out".to_string()
                }
                _ => format!("TLS handshake: {e}"),
            })?;
    }
    Ok(s)
}

/// `read`/`write` results as the interface carries them: a count, or minus an errno value.
pub fn io_result(r: std::io::Result<usize>) -> isize {
    match r {
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(match e.kind() {
                std::io::ErrorKind::WouldBlock => libc::EAGAIN,
                std::io::ErrorKind::TimedOut => libc::ETIMEDOUT,
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionAborted => {
                    libc::ECONNRESET
                }
                _ => libc::EPROTO,
            });
            -(errno as isize)
        }
    }
}

pub fn tls_read(s: &mut TlsStream, buf: &mut [u8]) -> isize {
    io_result(s.read(buf))
}

pub fn tls_write(s: &mut TlsStream, buf: &[u8]) -> isize {
    io_result(s.write(buf).and_then(|n| s.flush().map(|()| n)))
}
