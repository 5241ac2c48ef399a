//! A small HTTP/1.1 server side: request parsing (Content-Length and chunked bodies,
//! `Expect: 100-continue`, keep-alive) and response writing, over plain TCP or rustls.
//! Every malformed input is an error value, never a panic.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};

use rustls::{ServerConnection, StreamOwned};
use serde_json::Value;

pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// A connection: plain TCP or TLS over TCP.
pub trait Stream: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
    /// Orderly close: TLS close_notify, then FIN.
    fn close_gracefully(&mut self);
}

impl Stream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn close_gracefully(&mut self) {
        let _ = self.flush();
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Stream for StreamOwned<ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
    fn close_gracefully(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

pub type Conn = BufReader<Box<dyn Stream>>;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    pub path: String,
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Keep the connection open after answering? HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 connections are always closed.
    pub fn keep_alive(&self) -> bool {
        self.minor >= 1 && !self.header_has_token("connection", "close")
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (or went idle) before sending a byte of a new request.
    Closed,
    Io(io::Error),
    /// Malformed request: answer with this status and message, then close.
    Bad(u16, String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn bad(status: u16, msg: impl Into<String>) -> ReadError {
    ReadError::Bad(status, msg.into())
}

/// Read one line (up to `\n`) within `budget` bytes; `None` at EOF before any byte.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(bad(431, "request head too large"));
    }
    *budget -= n;
    if line.last() != Some(&b'\n') {
        return Err(bad(400, "connection closed in the middle of a line"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| bad(400, "request head is not UTF-8"))
}

/// Read the next request from `conn`. Answers `Expect: 100-continue` itself.
pub fn read_request(conn: &mut Conn) -> Result<Request, ReadError> {
    let mut budget = MAX_HEAD;
    // request line (blank lines before it are tolerated)
    let line = loop {
        match read_line(conn, &mut budget) {
            Ok(None) => return Err(ReadError::Closed),
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(l)) => break l,
            Err(ReadError::Io(e))
                if budget == MAX_HEAD
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::UnexpectedEof
                    ) =>
            {
                return Err(ReadError::Closed)
            }
            Err(e) => return Err(e),
        }
    };
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(400, "malformed request line"));
    };
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(bad(505, "only HTTP/1.0 and HTTP/1.1 are served")),
    };
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad(400, "malformed method"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    if !path.starts_with('/') {
        return Err(bad(400, "request target must be an absolute path"));
    }
    let mut headers = Vec::new();
    loop {
        let Some(l) = read_line(conn, &mut budget)? else {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the request head",
            )));
        };
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(bad(400, "malformed header line"));
        };
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad(400, "malformed header name"));
        }
        headers.push((k.to_string(), v.trim().to_string()));
        if headers.len() > 200 {
            return Err(bad(431, "too many headers"));
        }
    }
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        path,
        query,
        minor,
        headers,
        body: Vec::new(),
    };
    let chunked = req.header_has_token("transfer-encoding", "chunked");
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    if chunked && !lengths.is_empty() {
        return Err(bad(400, "both Transfer-Encoding and Content-Length"));
    }
    if !chunked && req.header("transfer-encoding").is_some() {
        return Err(bad(501, "unsupported Transfer-Encoding"));
    }
    let length = match lengths.as_slice() {
        [] => None,
        [first, rest @ ..] => {
            let n: usize = first
                .parse()
                .map_err(|_| bad(400, "malformed Content-Length"))?;
            if rest.iter().any(|r| *r != *first) {
                return Err(bad(400, "conflicting Content-Length headers"));
            }
            Some(n)
        }
    };
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(bad(413, "request body too large"));
    }
    let has_body = chunked || length.is_some_and(|n| n > 0);
    if has_body && minor == 1 && req.header_has_token("expect", "100-continue") {
        let w = conn.get_mut();
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    if chunked {
        req.body = read_chunked(conn)?;
    } else if let Some(n) = length {
        let mut body = vec![0u8; n];
        conn.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(req)
}

fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let Some(line) = read_line(conn, &mut budget)? else {
            return Err(bad(400, "connection closed in a chunked body"));
        };
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_str, 16).map_err(|_| bad(400, "malformed chunk size"))?;
        if size == 0 {
            // trailers up to the blank line
            loop {
                match read_line(conn, &mut budget)? {
                    None => return Ok(body),
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => {}
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad(413, "request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad(400, "chunk not followed by CRLF"));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: v.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, s: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: s.as_bytes().to_vec(),
        }
    }

    pub fn raw(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Serialize a response. `http10`: status line `HTTP/1.0`, no Content-Length (the caller
/// closes the connection to end the body).
pub fn encode_response(resp: &Response, close: bool, http10: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(resp.body.len() + 256);
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    out.extend_from_slice(
        format!("{version} {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    out.extend_from_slice(b"Server: portal-sim\r\n");
    out.extend_from_slice(format!("Content-Type: {}\r\n", resp.content_type).as_bytes());
    if !http10 {
        out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    }
    if close || http10 {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    for (k, v) in &resp.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&resp.body);
    out
}

pub fn write_response(
    w: &mut dyn Write,
    resp: &Response,
    close: bool,
    http10: bool,
) -> io::Result<()> {
    w.write_all(&encode_response(resp, close, http10))?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// Feed `input` through a real socket pair and parse requests from it.
    fn parse_all(input: &'static [u8]) -> Vec<Result<Request, String>> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(input).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink);
            sink
        });
        let (s, _) = l.accept().unwrap();
        let mut conn: Conn = BufReader::new(Box::new(s));
        let mut out = Vec::new();
        loop {
            match read_request(&mut conn) {
                Ok(r) => out.push(Ok(r)),
                Err(ReadError::Closed) => break,
                Err(ReadError::Bad(s, m)) => {
                    out.push(Err(format!("{s} {m}")));
                    break;
                }
                Err(ReadError::Io(e)) => {
                    out.push(Err(format!("io {e}")));
                    break;
                }
            }
        }
        drop(conn);
        t.join().unwrap();
        out
    }

    #[test]
    fn keep_alive_pipeline_and_bodies() {
        let r = parse_all(
            b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n\
POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(r.len(), 3);
        let a = r[0].as_ref().unwrap();
        assert_eq!(
            (a.method.as_str(), a.path.as_str(), a.query.as_str()),
            ("GET", "/a", "x=1")
        );
        assert!(a.keep_alive());
        assert_eq!(r[1].as_ref().unwrap().body, b"hello");
        let c = r[2].as_ref().unwrap();
        assert_eq!(c.body, b"abcde");
        assert!(!c.keep_alive());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for input in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET / HTTP/1.1\r\nHost: x",
        ] {
            let r = parse_all(input);
            assert!(matches!(r.last(), Some(Err(_))), "{input:?}: {r:?}");
        }
        assert!(parse_all(b"").is_empty());
    }

    #[test]
    fn http10_closes() {
        let r = parse_all(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!r[0].as_ref().unwrap().keep_alive());
    }

    #[test]
    fn encoding() {
        let r = Response::json(200, &serde_json::json!({"ok": true}));
        let b = String::from_utf8(encode_response(&r, false, false)).unwrap();
        assert!(b.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(b.contains("Content-Length: 11\r\n"));
        assert!(b.ends_with("\r\n\r\n{\"ok\":true}"));
        let b = String::from_utf8(encode_response(&r, false, true)).unwrap();
        assert!(b.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(!b.contains("Content-Length"));
        assert!(b.contains("Connection: close"));
    }
}
