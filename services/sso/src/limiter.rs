//! Failed-login limits per user name and per client address. After too
//! many failures within the window, logins for that name (or from that
//! address) are refused, even with the right password, until the lockout
//! ends. Kept in memory: a restart forgets it (see docs/reference/sso.md).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::config::LoginConfig;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    window_start: i64,
    locked_until: i64,
}

/// Upper bound on tracked keys; beyond it stale entries are dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
struct Table<K> {
    max: u32,
    map: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(max: u32) -> Self {
        Self {
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn locked_for(&self, k: &K, now: i64) -> Option<i64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|e| e.locked_until > now)
            .map(|e| e.locked_until - now)
    }

    /// Records a failure; true when it locked the key.
    fn fail(&self, k: &K, now: i64, window: i64, lockout: i64) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.locked_until > now || e.window_start + window > now);
        }
        let e = map.entry(k.clone()).or_default();
        if e.window_start + window <= now {
            *e = Entry {
                failures: 0,
                window_start: now,
                locked_until: e.locked_until,
            };
        }
        e.failures += 1;
        if e.failures >= self.max {
            e.locked_until = now + lockout;
            e.failures = 0;
            e.window_start = now;
            true
        } else {
            false
        }
    }

    fn clear(&self, k: &K) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(k);
    }
}

/// The limiter shared by the login and device pages.
#[derive(Debug)]
pub struct Limiter {
    cfg: LoginConfig,
    users: Table<String>,
    addrs: Table<IpAddr>,
}

impl Limiter {
    pub fn new(cfg: LoginConfig) -> Self {
        Self {
            users: Table::new(cfg.max_failures_per_user),
            addrs: Table::new(cfg.max_failures_per_address),
            cfg,
        }
    }

    /// Seconds until a login for `user` from `addr` may be tried again,
    /// or `None` when it may be tried now.
    pub fn locked(&self, user: Option<&str>, addr: Option<IpAddr>, now: i64) -> Option<i64> {
        let u = user.and_then(|u| self.users.locked_for(&u.to_owned(), now));
        let a = addr.and_then(|a| self.addrs.locked_for(&a, now));
        u.max(a)
    }

    /// Records a failed attempt. Returns true when it caused a lockout.
    pub fn failure(&self, user: Option<&str>, addr: Option<IpAddr>, now: i64) -> bool {
        let w = self.cfg.window_secs as i64;
        let l = self.cfg.lockout_secs as i64;
        let mut locked = false;
        if let Some(u) = user {
            locked |= self.users.fail(&u.to_owned(), now, w, l);
        }
        if let Some(a) = addr {
            locked |= self.addrs.fail(&a, now, w, l);
        }
        locked
    }

    /// A successful login clears the user's failures.
    pub fn success(&self, user: &str) {
        self.users.clear(&user.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_later() {
        let l = Limiter::new(LoginConfig {
            max_failures_per_user: 3,
            max_failures_per_address: 100,
            window_secs: 60,
            lockout_secs: 30,
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!l.failure(Some("bob"), Some(a), 1000));
        assert!(!l.failure(Some("bob"), Some(a), 1001));
        assert!(l.locked(Some("bob"), Some(a), 1002).is_none());
        assert!(l.failure(Some("bob"), Some(a), 1002));
        assert_eq!(l.locked(Some("bob"), Some(a), 1003), Some(29));
        assert!(l.locked(Some("alice"), Some(a), 1003).is_none());
        assert!(l.locked(Some("bob"), Some(a), 1033).is_none());
    }
}
