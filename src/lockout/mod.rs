//! Lockout state (SPEC §7): keys, the counting rules, and the store interface. The rules are
//! plain functions over a `Record`; `files` keeps one record per key on disk, `redis` in a Redis
//! server shared by a pool of machines (with the files as the fallback).

pub mod files;
pub mod redis;

use crate::config::{Backend, LockoutSettings, Policy};
use std::fmt;

/// Key bytes as lower-case hex: how both stores name records (any username is a safe name).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The inverse of `hex`; `None` for anything else.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a record counts failures of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A username (raw bytes: PAM usernames need not be UTF-8).
    User(Vec<u8>),
    /// A client address, IPv6 already grouped by prefix (`access::address_key`).
    Ip(String),
    /// A user's phone factor.
    Phone(Vec<u8>),
}

impl Key {
    pub fn kind(&self) -> &'static str {
        match self {
            Key::User(_) => "user",
            Key::Ip(_) => "ip",
            Key::Phone(_) => "phone",
        }
    }
    /// The one letter both stores name records by (`u_…`, `i_…`, `p_…`).
    pub fn letter(&self) -> &'static str {
        match self {
            Key::User(_) => "u",
            Key::Ip(_) => "i",
            Key::Phone(_) => "p",
        }
    }
    /// The inverse of `letter` with the key's bytes; `None` for anything else.
    pub fn from_letter(letter: &str, bytes: Vec<u8>) -> Option<Key> {
        match letter {
            "u" => Some(Key::User(bytes)),
            "i" => Some(Key::Ip(String::from_utf8(bytes).ok()?)),
            "p" => Some(Key::Phone(bytes)),
            _ => None,
        }
    }
    pub fn value_bytes(&self) -> &[u8] {
        match self {
            Key::User(b) | Key::Phone(b) => b,
            Key::Ip(s) => s.as_bytes(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.kind(),
            crate::audit::escape_bytes(self.value_bytes())
        )
    }
}

/// The state of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Times (Unix seconds) of the failures that still count, oldest first.
    pub failures: Vec<u64>,
    /// End of the current lock (Unix seconds); 0 = never locked.
    pub locked_until: u64,
}

/// What a key looks like now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Failures inside the window.
    pub failures: u32,
    /// Seconds of lock left, if locked.
    pub locked_for: Option<u64>,
    /// Whether this very update started the lock.
    pub triggered: bool,
}

/// The longest record we keep: a policy never needs more timestamps than its threshold.
pub const MAX_FAILURES_KEPT: usize = 10_000;

impl Record {
    pub fn tally(&self, now: u64, policy: &Policy) -> Tally {
        let locked_for = (self.locked_until > now).then(|| self.locked_until - now);
        let failures = if locked_for.is_some() {
            0
        } else {
            self.failures
                .iter()
                .filter(|&&t| t.saturating_add(policy.window_s) > now)
                .count() as u32
        };
        Tally {
            failures,
            locked_for,
            triggered: false,
        }
    }

    /// Counts one failure at `now`. While locked nothing is counted. Reaching the threshold
    /// starts a lock of `lock_s` and forgets the failures that led to it.
    pub fn add_failure(&mut self, now: u64, policy: &Policy) -> Tally {
        if self.locked_until > now {
            return Tally {
                failures: 0,
                locked_for: Some(self.locked_until - now),
                triggered: false,
            };
        }
        // Keep failures stamped after `now`: another process may have read the clock after this
        // one and written first (each process reads its clock before waiting for the lock).
        self.failures
            .retain(|&t| t.saturating_add(policy.window_s) > now);
        self.failures.push(now);
        self.failures.sort_unstable();
        let keep = (policy.max_failures as usize).min(MAX_FAILURES_KEPT);
        if self.failures.len() > keep {
            let drop = self.failures.len() - keep;
            self.failures.drain(..drop);
        }
        if self.failures.len() >= policy.max_failures as usize {
            self.failures.clear();
            self.locked_until = now.saturating_add(policy.lock_s);
            return Tally {
                failures: 0,
                locked_for: Some(policy.lock_s),
                triggered: true,
            };
        }
        Tally {
            failures: self.failures.len() as u32,
            locked_for: None,
            triggered: false,
        }
    }

    /// Whether nothing in the record can matter any more (it may be deleted).
    pub fn is_stale(&self, now: u64, longest_window: u64) -> bool {
        self.locked_until <= now
            && self
                .failures
                .iter()
                .all(|&t| t.saturating_add(longest_window) <= now)
    }
}

/// A failure of the store: its state cannot be read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where lockout records live. Updates are atomic per key across processes.
pub trait Store {
    /// The key's state now (a missing record is an empty one).
    fn tally(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError>;
    /// Counts one failure.
    fn record_failure(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError>;
    /// Forgets the key (success of a username; an operator's reset).
    fn clear(&self, key: &Key) -> Result<(), StoreError>;
    /// Every key with a record.
    fn keys(&self) -> Result<Vec<Key>, StoreError>;
    /// Problems met while reading (damaged records replaced), for the log.
    fn take_warnings(&self) -> Vec<String>;
    /// Whether a failure could be recorded now. A success checks this first: while failures
    /// cannot be written (a full disk), guesses would go uncounted, so nobody is let in.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The longest time a failure can matter: records older than this are stale.
pub fn longest_window(l: &LockoutSettings) -> u64 {
    [l.user.window_s, l.ip.window_s, l.phone.window_s]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(l.user.lock_s)
}

/// The store a login uses: the files, or Redis with the files as the fallback. Nothing is
/// connected yet (Redis is reached at the first use, and closed when the store is dropped).
pub fn open(l: &LockoutSettings) -> Result<Box<dyn Store>, StoreError> {
    match (l.backend, &l.redis) {
        (Backend::Redis, Some(r)) => Ok(Box::new(redis::FleetStore::new(
            r.clone(),
            l.dir.clone(),
            longest_window(l),
        ))),
        _ => Ok(Box::new(files::FileStore::open(&l.dir, longest_window(l))?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte_and_unhex_inverts_it() {
        assert_eq!(hex(b""), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex("ä/..\n".as_bytes()), "c3a42f2e2e0a");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)), Some(all));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    const P: Policy = Policy {
        max_failures: 3,
        window_s: 100,
        lock_s: 50,
    };

    #[test]
    fn locks_at_threshold_and_forgets_after() {
        let mut r = Record::default();
        assert_eq!(r.add_failure(1000, &P).failures, 1);
        assert_eq!(r.add_failure(1001, &P).failures, 2);
        let t = r.add_failure(1002, &P);
        assert!(t.triggered);
        assert_eq!(t.locked_for, Some(50));
        // Refused while locked: not counted.
        let t = r.add_failure(1010, &P);
        assert!(!t.triggered);
        assert_eq!(t.locked_for, Some(42));
        assert!(r.failures.is_empty());
        // After the lock, the failures that led to it no longer count.
        assert_eq!(r.tally(1052, &P), Tally::default());
        assert_eq!(r.add_failure(1053, &P).failures, 1);
    }

    #[test]
    fn failures_outside_window_do_not_count() {
        let mut r = Record::default();
        r.add_failure(1000, &P);
        r.add_failure(1050, &P);
        assert_eq!(r.add_failure(1101, &P).failures, 2);
        assert_eq!(r.tally(1200, &P).failures, 1);
        assert_eq!(r.tally(1201, &P).failures, 0);
        assert!(r.is_stale(1300, 100));
        assert!(!r.is_stale(1150, 100));
    }

    #[test]
    fn a_later_stamp_written_first_is_kept() {
        let mut r = Record::default();
        r.add_failure(1001, &P);
        assert_eq!(r.add_failure(1000, &P).failures, 2);
        assert_eq!(r.failures, vec![1000, 1001]);
    }

    #[test]
    fn record_is_bounded() {
        let big = Policy {
            max_failures: 10_000,
            window_s: 1_000_000,
            lock_s: 1,
        };
        let mut r = Record::default();
        for i in 0..20_000 {
            r.add_failure(1000 + i, &big);
        }
        assert!(r.failures.len() <= MAX_FAILURES_KEPT);
    }
}
