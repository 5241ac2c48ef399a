//! The Redis store: the lockout records of a pool of machines in one Redis server (issue 8).
//!
//! - One string per record, `<key_prefix><u|i|p>_<hex of the value>`, holding
//!   `<locked_until> <failure> <failure> ...` (Unix seconds). Every update is one `EVAL` of a
//!   Lua script that applies exactly `Record::add_failure` (so Redis runs it atomically: no lost
//!   failures across machines or processes) and sets the key's expiry to the moment the record
//!   becomes stale (`Record::is_stale`), so storage stays bounded without a cleanup job.
//! - The time is the caller's `now` (not Redis `TIME`): the same semantics as the file store.
//! - A small RESP2 client over TCP, or TLS (`rediss://`, rustls): one connection per store,
//!   opened lazily, closed when the store is dropped (one login). Connecting and every command
//!   are bounded by `redis_timeout_ms`.
//! - `FleetStore` is what the module uses: Redis, and when Redis cannot be used (unreachable,
//!   slow, TLS or protocol failure, an error reply), one warning and the local file store for the
//!   rest of that login. Errors of the file store stay errors (PAM_SYSTEM_ERR).

use super::files::FileStore;
use super::{hex, unhex, Key, Record, Store, StoreError, Tally, MAX_FAILURES_KEPT};
use crate::config::{Policy, RedisSettings};
use crate::portal::transport::{self, TlsStream};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `Record::add_failure` and the expiry, in Lua. KEYS[1] the record; ARGV: now, window_s,
/// max_failures, lock_s, longest window (staleness), MAX_FAILURES_KEPT.
/// Returns {failures, locked_for or -1, triggered 0/1, damaged 0/1}.
const ADD_FAILURE: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local lock = tonumber(ARGV[4])
local longest = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
local raw = redis.pcall('GET', KEYS[1])
local untl = 0
local f = {}
local damaged = 0
if type(raw) == 'table' then
  damaged = 1
elseif raw then
  if string.match(raw, '^%d+$') or string.match(raw, '^%d+ [%d ]*%d$') then
    local first = true
    for t in string.gmatch(raw, '%d+') do
      if first then untl = tonumber(t); first = false else f[#f + 1] = tonumber(t) end
    end
  else
    damaged = 1
  end
end
if untl > now and damaged == 0 then
  return {0, untl - now, 0, 0}
end
if damaged == 1 then untl = 0; f = {} end
local kept = {}
for _, t in ipairs(f) do
  if t + window > now then kept[#kept + 1] = t end
end
kept[#kept + 1] = now
table.sort(kept)
local keep = math.min(max, cap)
while #kept > keep do table.remove(kept, 1) end
local out
if #kept >= max then
  kept = {}
  untl = now + lock
  out = {0, lock, 1, damaged}
else
  out = {#kept, -1, 0, damaged}
end
local ttl = untl - now
if #kept > 0 then
  local last = kept[#kept] + longest - now
  if last > ttl then ttl = last end
end
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return out
end
local parts = {string.format('%d', untl)}
for _, t in ipairs(kept) do parts[#parts + 1] = string.format('%d', t) end
redis.call('SET', KEYS[1], table.concat(parts, ' '), 'EX', string.format('%d', ttl))
return out
"#;

/// Bounds on what a reply may hold (a hostile or broken server cannot make us allocate much).
const MAX_BULK: usize = 1 << 20;
const MAX_ARRAY: usize = 100_000;
const MAX_LINE: usize = 4096;

/// Why Redis could not be used. Every one of them sends the login to the local files.
#[derive(Debug)]
pub struct Unreachable(pub String);

/// A reply (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

enum Stream {
    Plain(TcpStream),
    /// The session lives in the HTTP half (portal/transport.rs), over a duplicate of `TcpStream`.
    Tls(TcpStream, crate::portal::transport::TlsStream),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s, _) => s,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(_, t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(_, t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(_, t) => t.flush(),
        }
    }
}

/// One connection to the server, authenticated and on its database.
pub struct Conn {
    io: BufReader<Stream>,
    timeout: Duration,
}

fn io_err(what: &str, e: std::io::Error) -> Unreachable {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Unreachable(format!("{what}: timed out"))
        }
        _ => Unreachable(format!("{what}: {e}")),
    }
}

impl Conn {
    /// Connects (each address tried within what is left of the timeout), then TLS, `AUTH` and
    /// `SELECT`, each bounded by the timeout.
    pub fn open(r: &RedisSettings) -> Result<Conn, Unreachable> {
        let deadline = Instant::now() + r.timeout;
        let addrs: Vec<_> = (r.host.as_str(), r.port)
            .to_socket_addrs()
            .map_err(|e| Unreachable(format!("cannot resolve {}: {e}", r.host)))?
            .collect();
        let mut last = Unreachable(format!("no address for {}", r.host));
        let mut tcp = None;
        for a in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last = Unreachable("connect: timed out".into());
                break;
            }
            match TcpStream::connect_timeout(&a, left) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = io_err("connect", e),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        let stream = if r.tls {
            let t = tls(r, &tcp)?;
            Stream::Tls(tcp, t)
        } else {
            Stream::Plain(tcp)
        };
        let mut c = Conn {
            io: BufReader::new(stream),
            timeout: r.timeout,
        };
        // The handshake (TLS) and the first commands share what is left of the timeout.
        if let Some(pw) = &r.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &r.username {
                args.push(u.as_bytes());
            }
            args.push(pw.expose().as_bytes());
            c.ok(&args, "AUTH")?;
        }
        if r.db != 0 {
            c.ok(&[b"SELECT", r.db.to_string().as_bytes()], "SELECT")?;
        }
        Ok(c)
    }

    fn ok(&mut self, args: &[&[u8]], what: &str) -> Result<(), Unreachable> {
        match self.command(args)? {
            Reply::Error(e) => Err(Unreachable(format!(
                "{what} refused: {}",
                first_word_safe(&e)
            ))),
            _ => Ok(()),
        }
    }

    /// Sends one command and reads its reply, within the timeout.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, Unreachable> {
        let t = Some(self.timeout);
        let tcp = self.io.get_ref().tcp();
        tcp.set_read_timeout(t)
            .and_then(|_| tcp.set_write_timeout(t))
            .map_err(|e| io_err("socket", e))?;
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        let deadline = Instant::now() + self.timeout;
        let w = self.io.get_mut();
        w.write_all(&buf)
            .and_then(|_| w.flush())
            .map_err(|e| io_err("send", e))?;
        read_reply(&mut self.io, deadline, 0)
    }
}

/// Error replies are shown by their code only (`WRONGPASS`, `NOAUTH`, `READONLY`...).
fn first_word_safe(e: &str) -> String {
    crate::audit::escape(e.split_whitespace().next().unwrap_or("ERR"))
}

/// The TLS session, handshake done (so that a certificate problem is reported as such),
/// bounded by the socket timeouts set first. Loading the HTTP half and the handshake run on
/// a helper thread's stack, as the portal's calls do.
fn tls(r: &RedisSettings, tcp: &TcpStream) -> Result<TlsStream, Unreachable> {
    let t = Some(r.timeout);
    tcp.set_read_timeout(t)
        .and_then(|_| tcp.set_write_timeout(t))
        .map_err(|e| io_err("socket", e))?;
    transport::off_host_stack(|| TlsStream::open(tcp, &r.host, r.ca_file.as_deref()))
        .map_err(|e| Unreachable(format!("cannot start the TLS handshake: {e}")))?
        .map_err(Unreachable)
}

fn read_line<R: BufRead>(r: &mut R, deadline: Instant) -> Result<String, Unreachable> {
    let mut line = Vec::new();
    loop {
        if Instant::now() > deadline {
            return Err(Unreachable("reply: timed out".into()));
        }
        let buf = r.fill_buf().map_err(|e| io_err("reply", e))?;
        if buf.is_empty() {
            return Err(Unreachable("connection closed by the server".into()));
        }
        let (used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..used]);
        r.consume(used);
        if line.len() > MAX_LINE {
            return Err(Unreachable("garbled reply: line too long".into()));
        }
        if done {
            break;
        }
    }
    if !line.ends_with(b"\r\n") {
        return Err(Unreachable("garbled reply: bad line end".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| Unreachable("garbled reply: not UTF-8".into()))
}

fn read_reply<R: BufRead>(r: &mut R, deadline: Instant, depth: u32) -> Result<Reply, Unreachable> {
    if depth > 4 {
        return Err(Unreachable("garbled reply: nested too deep".into()));
    }
    let line = read_line(r, deadline)?;
    let garbled = || Unreachable("garbled reply".into());
    let (kind, rest) = line.split_at_checked(1).ok_or_else(garbled)?;
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => rest.parse().map(Reply::Int).map_err(|_| garbled()),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| garbled())?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|_| garbled())?;
            if n > MAX_BULK {
                return Err(Unreachable("garbled reply: too long".into()));
            }
            let mut data = vec![0u8; n + 2];
            r.read_exact(&mut data).map_err(|e| io_err("reply", e))?;
            if !data.ends_with(b"\r\n") {
                return Err(garbled());
            }
            data.truncate(n);
            Ok(Reply::Bulk(Some(data)))
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| garbled())?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let n = usize::try_from(n).map_err(|_| garbled())?;
            if n > MAX_ARRAY {
                return Err(Unreachable("garbled reply: too many items".into()));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(read_reply(r, deadline, depth + 1)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(garbled()),
    }
}

// ---------------------------------------------------------------------------------------------
// Records in Redis.

/// `<prefix>u_<hex>`, `<prefix>i_<hex>`, `<prefix>p_<hex>`.
pub fn redis_key(prefix: &str, key: &Key) -> String {
    format!("{prefix}{}_{}", key.letter(), hex(key.value_bytes()))
}

pub fn key_of_redis_key(prefix: &str, name: &[u8]) -> Option<Key> {
    let name = std::str::from_utf8(name).ok()?.strip_prefix(prefix)?;
    let (kind, rest) = name.split_once('_')?;
    Key::from_letter(kind, unhex(rest)?)
}

/// `<until> <failure>...`
pub fn parse_value(v: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(v).ok()?;
    let mut nums = text.split(' ').map(|n| {
        n.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| n.parse::<u64>().ok())
            .flatten()
    });
    let locked_until = nums.next()??;
    let mut failures = Vec::new();
    for n in nums {
        failures.push(n?);
        if failures.len() > MAX_FAILURES_KEPT {
            return None;
        }
    }
    failures.sort_unstable();
    Some(Record {
        failures,
        locked_until,
    })
}

/// Escapes a `SCAN MATCH` glob's special characters.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The records of one Redis server, over one connection (opened at first use).
pub struct RedisStore {
    settings: RedisSettings,
    longest_window: u64,
    conn: RefCell<Option<Conn>>,
    warnings: RefCell<Vec<String>>,
}

impl RedisStore {
    pub fn new(settings: RedisSettings, longest_window: u64) -> RedisStore {
        RedisStore {
            settings,
            longest_window,
            conn: RefCell::new(None),
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// The server as messages name it (no password).
    pub fn shown(&self) -> String {
        self.settings.shown()
    }

    fn key(&self, key: &Key) -> String {
        redis_key(&self.settings.key_prefix, key)
    }

    /// One command, connecting first if needed; a failed connection is dropped.
    fn command(&self, args: &[&[u8]]) -> Result<Reply, Unreachable> {
        let mut slot = self.conn.borrow_mut();
        if slot.is_none() {
            *slot = Some(Conn::open(&self.settings)?);
        }
        let Some(c) = slot.as_mut() else {
            return Err(Unreachable("no connection".into()));
        };
        match c.command(args) {
            Ok(Reply::Error(e)) => Err(Unreachable(format!("error reply {}", first_word_safe(&e)))),
            Ok(r) => Ok(r),
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    pub fn ping(&self) -> Result<(), Unreachable> {
        self.command(&[b"PING"]).map(|_| ())
    }

    pub fn try_tally(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, Unreachable> {
        let k = self.key(key);
        match self.command(&[b"GET", k.as_bytes()])? {
            Reply::Bulk(None) => Ok(Tally::default()),
            Reply::Bulk(Some(v)) => match parse_value(&v) {
                Some(r) => Ok(r.tally(now, policy)),
                None => {
                    self.warn(format!(
                        "damaged lockout record {k} in redis, read as empty"
                    ));
                    Ok(Tally::default())
                }
            },
            other => Err(Unreachable(format!("unexpected reply to GET: {other:?}"))),
        }
    }

    pub fn try_record_failure(
        &self,
        key: &Key,
        now: u64,
        policy: &Policy,
    ) -> Result<Tally, Unreachable> {
        let k = self.key(key);
        let args: Vec<String> = vec![
            now.to_string(),
            policy.window_s.to_string(),
            policy.max_failures.to_string(),
            policy.lock_s.to_string(),
            self.longest_window.max(policy.window_s).to_string(),
            MAX_FAILURES_KEPT.to_string(),
        ];
        let mut cmd: Vec<&[u8]> = vec![b"EVAL", ADD_FAILURE.as_bytes(), b"1", k.as_bytes()];
        cmd.extend(args.iter().map(|a| a.as_bytes()));
        let reply = self.command(&cmd)?;
        let bad = || Unreachable(format!("unexpected reply to the update script: {reply:?}"));
        let Reply::Array(Some(items)) = &reply else {
            return Err(bad());
        };
        let nums: Vec<i64> = items
            .iter()
            .filter_map(|i| match i {
                Reply::Int(n) => Some(*n),
                _ => None,
            })
            .collect();
        let [failures, locked_for, triggered, damaged] = nums[..] else {
            return Err(bad());
        };
        if damaged == 1 {
            self.warn(format!("damaged lockout record {k} in redis replaced"));
        }
        Ok(Tally {
            failures: u32::try_from(failures).map_err(|_| bad())?,
            locked_for: u64::try_from(locked_for).ok(),
            triggered: triggered == 1,
        })
    }

    pub fn try_clear(&self, key: &Key) -> Result<(), Unreachable> {
        let k = self.key(key);
        self.command(&[b"DEL", k.as_bytes()]).map(|_| ())
    }

    pub fn try_keys(&self) -> Result<Vec<Key>, Unreachable> {
        let pattern = format!("{}*", glob_escape(&self.settings.key_prefix));
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        for _ in 0..1_000_000 {
            let reply = self.command(&[
                b"SCAN",
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"1000",
            ])?;
            let Reply::Array(Some(parts)) = reply else {
                return Err(Unreachable("unexpected reply to SCAN".into()));
            };
            let [Reply::Bulk(Some(next)), Reply::Array(Some(names))] = &parts[..] else {
                return Err(Unreachable("unexpected reply to SCAN".into()));
            };
            for n in names {
                if let Reply::Bulk(Some(n)) = n {
                    if let Some(k) = key_of_redis_key(&self.settings.key_prefix, n) {
                        keys.push(k);
                    }
                }
            }
            if next.as_slice() == b"0" {
                keys.sort();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next.clone();
        }
        Err(Unreachable("SCAN does not end".into()))
    }

    fn warn(&self, msg: String) {
        self.warnings.borrow_mut().push(msg);
    }
}

/// Redis errors as store errors (the admin command: no fallback, the operator is told).
impl Store for RedisStore {
    fn tally(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError> {
        self.try_tally(key, now, policy).map_err(|e| self.error(e))
    }
    fn record_failure(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError> {
        self.try_record_failure(key, now, policy)
            .map_err(|e| self.error(e))
    }
    fn clear(&self, key: &Key) -> Result<(), StoreError> {
        self.try_clear(key).map_err(|e| self.error(e))
    }
    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        self.try_keys().map_err(|e| self.error(e))
    }
    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.warnings.borrow_mut())
    }
}

impl RedisStore {
    fn error(&self, e: Unreachable) -> StoreError {
        StoreError(format!(
            "lockout store {} unreachable ({})",
            self.shown(),
            e.0
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The module's store: Redis, else the local files for the rest of the login.

enum Using {
    Redis,
    Files(FileStore),
}

pub struct FleetStore {
    redis: RedisStore,
    dir: PathBuf,
    longest_window: u64,
    using: RefCell<Using>,
    warnings: RefCell<Vec<String>>,
}

impl FleetStore {
    pub fn new(settings: RedisSettings, dir: PathBuf, longest_window: u64) -> FleetStore {
        FleetStore {
            redis: RedisStore::new(settings, longest_window),
            dir,
            longest_window,
            using: RefCell::new(Using::Redis),
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// Whether this login went to the local files.
    pub fn fell_back(&self) -> bool {
        matches!(*self.using.borrow(), Using::Files(_))
    }

    /// Runs `on_redis`, or `on_files` once Redis has failed in this login (and from then on).
    fn with<T>(
        &self,
        on_redis: impl FnOnce(&RedisStore) -> Result<T, Unreachable>,
        on_files: impl FnOnce(&FileStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if matches!(*self.using.borrow(), Using::Redis) {
            match on_redis(&self.redis) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.warnings.borrow_mut().push(format!(
                        "lockout store {} unreachable ({}): using local files for this login",
                        self.redis.shown(),
                        e.0
                    ));
                    // Opening the files may fail too: that is a store error (PAM_SYSTEM_ERR).
                    let files = FileStore::open(&self.dir, self.longest_window)?;
                    *self.using.borrow_mut() = Using::Files(files);
                }
            }
        }
        match &*self.using.borrow() {
            Using::Files(f) => on_files(f),
            Using::Redis => Err(StoreError("lockout store: no backend".into())),
        }
    }
}

impl Store for FleetStore {
    fn tally(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError> {
        self.with(
            |r| r.try_tally(key, now, policy),
            |f| f.tally(key, now, policy),
        )
    }
    fn record_failure(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError> {
        self.with(
            |r| r.try_record_failure(key, now, policy),
            |f| f.record_failure(key, now, policy),
        )
    }
    fn clear(&self, key: &Key) -> Result<(), StoreError> {
        self.with(|r| r.try_clear(key), |f| f.clear(key))
    }
    fn check_writable(&self) -> Result<(), StoreError> {
        // On Redis a failed write is an error of its own; after a fallback, the local files.
        match &*self.using.borrow() {
            Using::Files(f) => f.check_writable(),
            Using::Redis => Ok(()),
        }
    }
    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        self.with(|r| r.try_keys(), |f| f.keys())
    }
    fn take_warnings(&self) -> Vec<String> {
        let mut w = std::mem::take(&mut *self.warnings.borrow_mut());
        w.extend(self.redis.take_warnings());
        if let Using::Files(f) = &*self.using.borrow() {
            w.extend(f.take_warnings());
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for k in [
            Key::User(b"alice".to_vec()),
            Key::User(vec![0xff, b'\n', b'*']),
            Key::Ip("2001:db8::/64".into()),
            Key::Phone(b"bob".to_vec()),
        ] {
            let name = redis_key("pp:", &k);
            assert_eq!(key_of_redis_key("pp:", name.as_bytes()), Some(k));
        }
        assert_eq!(key_of_redis_key("pp:", b"other:u_61"), None);
        assert_eq!(key_of_redis_key("pp:", b"pp:x_61"), None);
    }

    #[test]
    fn values_parse_strictly() {
        assert_eq!(
            parse_value(b"9 5 3"),
            Some(Record {
                failures: vec![3, 5],
                locked_until: 9
            })
        );
        assert_eq!(parse_value(b"0"), Some(Record::default()));
        for bad in [&b""[..], b"x", b"1  2", b"1 -2", b"1 2 ", b"+1"] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn replies_parse_and_are_bounded() {
        let far = Instant::now() + Duration::from_secs(5);
        let parse = |s: &[u8]| read_reply(&mut &s[..], far, 0);
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Simple("OK".into()));
        assert_eq!(parse(b":-3\r\n").unwrap(), Reply::Int(-3));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n:1\r\n").unwrap(),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(1)]))
        );
        assert!(parse(b"$99999999999\r\n").is_err());
        assert!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").is_err());
        assert!(parse(b"?\r\n").is_err());
        assert!(parse(b"+OK\n").is_err());
        assert!(parse(b"$3\r\nab").is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn glob_is_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
