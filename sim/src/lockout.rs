//! The portal's own lockout (PROTOCOL 2.3): failures are counted per username (lower-cased)
//! and per calling address. When `max_failures` failures of one key fall within `window_s`
//! seconds, that key is locked for `lock_s` seconds (its failure list is then emptied, so a
//! key starts from zero once its lock has run out). Time is passed in, so tests can move it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fixture::LockoutConf;

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Entry {
    fn prune(&mut self, now: Instant, window: Duration) {
        while let Some(&t) = self.failures.front() {
            if now.saturating_duration_since(t) >= window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        if matches!(self.locked_until, Some(u) if u <= now) {
            self.locked_until = None;
        }
    }

    fn locked(&self, now: Instant) -> bool {
        matches!(self.locked_until, Some(u) if u > now)
    }

    fn fail(&mut self, now: Instant, conf: &LockoutConf) {
        self.prune(now, Duration::from_secs(conf.window_s));
        self.failures.push_back(now);
        if self.failures.len() >= conf.max_failures as usize {
            self.locked_until = Some(now + Duration::from_secs(conf.lock_s));
            self.failures.clear();
        }
    }
}

#[derive(Debug)]
pub struct Lockouts {
    conf: LockoutConf,
    users: HashMap<String, Entry>,
    addrs: HashMap<IpAddr, Entry>,
}

/// A snapshot for the control interface (`GET /lockouts`).
#[derive(Debug, Serialize)]
pub struct KeyState {
    pub key: String,
    pub failures: usize,
    pub locked: bool,
    pub locked_for_s: u64,
}

pub fn user_key(username: &str) -> String {
    username.to_lowercase()
}

impl Lockouts {
    pub fn new(conf: LockoutConf) -> Lockouts {
        Lockouts {
            conf,
            users: HashMap::new(),
            addrs: HashMap::new(),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.conf.window_s)
    }

    /// Is the username or the address locked now?
    pub fn is_locked(&mut self, username: &str, addr: IpAddr, now: Instant) -> bool {
        let w = self.window();
        let u = self.users.get_mut(&user_key(username)).is_some_and(|e| {
            e.prune(now, w);
            e.locked(now)
        });
        let a = self.addrs.get_mut(&addr).is_some_and(|e| {
            e.prune(now, w);
            e.locked(now)
        });
        u || a
    }

    /// One failure for the username and one for the address.
    pub fn record_failure(&mut self, username: &str, addr: IpAddr, now: Instant) {
        let conf = self.conf;
        self.users
            .entry(user_key(username))
            .or_default()
            .fail(now, &conf);
        self.addrs.entry(addr).or_default().fail(now, &conf);
    }

    /// A successful login clears the username's failures (not the address's).
    pub fn clear_user(&mut self, username: &str) {
        self.users.remove(&user_key(username));
    }

    pub fn reset(&mut self) {
        self.users.clear();
        self.addrs.clear();
    }

    pub fn user_failures(&mut self, username: &str, now: Instant) -> usize {
        let w = self.window();
        self.users.get_mut(&user_key(username)).map_or(0, |e| {
            e.prune(now, w);
            e.failures.len()
        })
    }

    pub fn addr_failures(&mut self, addr: IpAddr, now: Instant) -> usize {
        let w = self.window();
        self.addrs.get_mut(&addr).map_or(0, |e| {
            e.prune(now, w);
            e.failures.len()
        })
    }

    pub fn snapshot(&mut self, now: Instant) -> (Vec<KeyState>, Vec<KeyState>) {
        let w = self.window();
        let snap = |k: String, e: &mut Entry| {
            e.prune(now, w);
            KeyState {
                key: k,
                failures: e.failures.len(),
                locked: e.locked(now),
                locked_for_s: e
                    .locked_until
                    .map_or(0, |u| u.saturating_duration_since(now).as_secs()),
            }
        };
        let mut users: Vec<KeyState> = self
            .users
            .iter_mut()
            .map(|(k, e)| snap(k.clone(), e))
            .collect();
        let mut addrs: Vec<KeyState> = self
            .addrs
            .iter_mut()
            .map(|(k, e)| snap(k.to_string(), e))
            .collect();
        users.sort_by(|a, b| a.key.cmp(&b.key));
        addrs.sort_by(|a, b| a.key.cmp(&b.key));
        (users, addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(max: u32) -> LockoutConf {
        LockoutConf {
            max_failures: max,
            window_s: 100,
            lock_s: 50,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_at_max_failures_and_unlocks_after_lock_s() {
        let mut l = Lockouts::new(conf(3));
        let t0 = Instant::now();
        let a = ip("127.0.0.1");
        for i in 0..2 {
            l.record_failure("alice", a, t0 + Duration::from_secs(i));
            assert!(!l.is_locked("alice", a, t0 + Duration::from_secs(i)));
        }
        assert_eq!(l.user_failures("alice", t0), 2);
        l.record_failure("alice", a, t0 + Duration::from_secs(2));
        assert!(l.is_locked("alice", a, t0 + Duration::from_secs(2)));
        assert!(l.is_locked("ALICE", ip("127.0.0.2"), t0 + Duration::from_secs(51)));
        // the address is locked too (3 failures from it)
        assert!(l.is_locked("bob", a, t0 + Duration::from_secs(3)));
        // lock runs out after lock_s; counting starts from zero
        let later = t0 + Duration::from_secs(53);
        assert!(!l.is_locked("alice", a, later));
        assert_eq!(l.user_failures("alice", later), 0);
    }

    #[test]
    fn failures_outside_window_expire() {
        let mut l = Lockouts::new(conf(3));
        let t0 = Instant::now();
        let a = ip("127.0.0.1");
        l.record_failure("alice", a, t0);
        l.record_failure("alice", a, t0 + Duration::from_secs(10));
        // the first failure leaves the 100 s window before the third arrives
        l.record_failure("alice", a, t0 + Duration::from_secs(100));
        assert!(!l.is_locked("alice", a, t0 + Duration::from_secs(100)));
        assert_eq!(l.user_failures("alice", t0 + Duration::from_secs(100)), 2);
    }

    #[test]
    fn per_address_independent_of_username() {
        let mut l = Lockouts::new(conf(3));
        let t0 = Instant::now();
        let a = ip("127.0.0.9");
        for u in ["u1", "u2", "u3"] {
            l.record_failure(u, a, t0);
        }
        assert_eq!(l.addr_failures(a, t0), 0); // locked: list emptied
        assert!(l.is_locked("someone-else", a, t0));
        assert!(!l.is_locked("u1", ip("127.0.0.10"), t0));
    }

    #[test]
    fn success_clears_username_only() {
        let mut l = Lockouts::new(conf(3));
        let t0 = Instant::now();
        let a = ip("127.0.0.1");
        l.record_failure("alice", a, t0);
        l.record_failure("alice", a, t0);
        l.clear_user("Alice");
        assert_eq!(l.user_failures("alice", t0), 0);
        assert_eq!(l.addr_failures(a, t0), 2);
        l.reset();
        assert_eq!(l.addr_failures(a, t0), 0);
    }
}
