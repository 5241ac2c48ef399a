//! Command-line parsing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::server::Options;
use crate::tls::CertMode;

pub const USAGE: &str =
    "usage: portal-sim --fixture PATH [--bind 127.0.0.1:PORT] [--http] [--tls-dir DIR]
                  [--cert-mode good|wrong-host|self-signed|expired]
                  [--control-bind 127.0.0.1:PORT] [--exit-on-stdin-eof]

Prints PORTAL_URL=, CONTROL_URL=, CA_FILE= and READY on stdout, then serves until killed.
Both addresses must be loopback; port 0 picks a free port. See sim/README.md.";

/// `Ok(None)` means `--help` was asked for.
pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut fixture = None;
    let default_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let mut opts = Options {
        fixture: PathBuf::new(),
        bind: default_addr,
        http: false,
        tls_dir: None,
        cert_mode: CertMode::Good,
        control_bind: default_addr,
        exit_on_stdin_eof: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or(format!("{name} needs a value")),
            }
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--fixture" => fixture = Some(PathBuf::from(value(name)?)),
            "--bind" => opts.bind = parse_addr(&value(name)?, name)?,
            "--control-bind" => opts.control_bind = parse_addr(&value(name)?, name)?,
            "--tls-dir" => opts.tls_dir = Some(PathBuf::from(value(name)?)),
            "--cert-mode" => {
                let v = value(name)?;
                opts.cert_mode = CertMode::parse(&v).ok_or(format!(
                    "--cert-mode {v:?}: expected good, wrong-host, self-signed or expired"
                ))?;
            }
            "--http" | "--exit-on-stdin-eof" if inline.is_some() => {
                return Err(format!("{name} takes no value"))
            }
            "--http" => opts.http = true,
            "--exit-on-stdin-eof" => opts.exit_on_stdin_eof = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    opts.fixture = fixture.ok_or("--fixture PATH is required")?;
    Ok(Some(opts))
}

/// `127.0.0.1:PORT`, `[::1]:PORT` or `localhost:PORT`; only loopback addresses.
pub fn parse_addr(s: &str, what: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = match s.strip_prefix("localhost:") {
        Some(port) => SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port.parse()
                .map_err(|_| format!("{what} {s:?}: bad port"))?,
        ),
        None => s
            .parse()
            .map_err(|_| format!("{what} {s:?}: expected IP:PORT, e.g. 127.0.0.1:0"))?,
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{what} {s}: refusing to bind a non-loopback address (use 127.0.0.1 or [::1])"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Options>, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_flags() {
        let o = p(&["--fixture", "f.toml"]).unwrap().unwrap();
        assert_eq!(o.bind.to_string(), "127.0.0.1:0");
        assert_eq!(o.control_bind.to_string(), "127.0.0.1:0");
        assert!(!o.http && !o.exit_on_stdin_eof && o.tls_dir.is_none());
        assert_eq!(o.cert_mode, CertMode::Good);
        let o = p(&[
            "--fixture=f.toml",
            "--bind",
            "127.0.0.1:8443",
            "--http",
            "--tls-dir",
            "/tmp/x",
            "--cert-mode=expired",
            "--control-bind",
            "[::1]:0",
            "--exit-on-stdin-eof",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.bind.port(), 8443);
        assert!(o.http && o.exit_on_stdin_eof);
        assert_eq!(o.cert_mode, CertMode::Expired);
        assert_eq!(o.control_bind.to_string(), "[::1]:0");
        assert!(p(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn errors() {
        assert!(p(&[]).is_err());
        assert!(p(&["--fixture"]).is_err());
        assert!(p(&["--fixture", "f", "--bind", "0.0.0.0:1"]).is_err());
        assert!(p(&["--fixture", "f", "--bind", "10.0.0.1:1"]).is_err());
        assert!(p(&["--fixture", "f", "--cert-mode", "bad"]).is_err());
        assert!(p(&["--fixture", "f", "--what"]).is_err());
        assert!(p(&["--fixture", "f", "--http=1"]).is_err());
        assert_eq!(
            p(&["--fixture", "f", "--bind", "localhost:5"])
                .unwrap()
                .unwrap()
                .bind
                .to_string(),
            "127.0.0.1:5"
        );
    }
}
