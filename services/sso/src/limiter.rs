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
    /// Attempts reserved and not yet finished: they count against the
    /// limit, so parallel attempts cannot exceed it.
    in_flight: u32,
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

    /// Reserves an attempt: `Err(secs)` when the key is locked, or when
    /// the failures and the attempts in flight already reach the limit.
    fn reserve(&self, k: &K, now: i64, window: i64) -> Result<(), i64> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| {
                e.in_flight > 0 || e.locked_until > now || e.window_start + window > now
            });
        }
        let e = map.entry(k.clone()).or_default();
        if e.locked_until > now {
            return Err(e.locked_until - now);
        }
        if e.window_start + window <= now {
            e.failures = 0;
            e.window_start = now;
        }
        if e.failures + e.in_flight >= self.max {
            // Attempts in flight may still succeed; retry shortly.
            return Err(1);
        }
        e.in_flight += 1;
        Ok(())
    }

    /// Ends a reserved attempt without recording a failure.
    fn release(&self, k: &K) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(k) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }

    /// Records a failure; true when it locked the key.
    fn fail(&self, k: &K, now: i64, window: i64, lockout: i64) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| {
                e.in_flight > 0 || e.locked_until > now || e.window_start + window > now
            });
        }
        let e = map.entry(k.clone()).or_default();
        if e.window_start + window <= now {
            e.failures = 0;
            e.window_start = now;
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

    /// Forgets the key's failures (not its attempts in flight).
    fn clear(&self, k: &K) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(k) {
            if e.in_flight == 0 {
                map.remove(k);
            } else {
                e.failures = 0;
                e.locked_until = 0;
            }
        }
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

    /// Reserves an attempt for `user` from `addr` before its (costly)
    /// check, so that parallel attempts count at once: `Err(secs)` when it
    /// may not be tried now. The attempt counts as failed unless
    /// [`Attempt::succeeded`] or [`Attempt::release`] ends it.
    pub fn reserve<'a>(
        &'a self,
        user: Option<&str>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<Attempt<'a>, i64> {
        let w = self.cfg.window_secs as i64;
        let user = user.map(str::to_owned);
        if let Some(u) = &user {
            self.users.reserve(u, now, w)?;
        }
        if let Some(a) = addr {
            if let Err(secs) = self.addrs.reserve(&a, now, w) {
                if let Some(u) = &user {
                    self.users.release(u);
                }
                return Err(secs);
            }
        }
        Ok(Attempt {
            limiter: self,
            user,
            addr,
            done: false,
        })
    }
}

/// A reserved login attempt. Dropped unfinished, it counts as a failure.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    user: Option<String>,
    addr: Option<IpAddr>,
    done: bool,
}

impl Attempt<'_> {
    /// The attempt failed; true when it caused a lockout.
    pub fn failed(mut self, now: i64) -> bool {
        self.done = true;
        self.finish(Some(now))
    }

    /// The attempt succeeded: the user's failures are cleared.
    pub fn succeeded(mut self) {
        self.done = true;
        self.finish(None);
        if let Some(u) = &self.user {
            self.limiter.success(u);
        }
    }

    /// The attempt ends without counting either way.
    pub fn release(mut self) {
        self.done = true;
        self.finish(None);
    }

    fn finish(&self, failed_at: Option<i64>) -> bool {
        let l = self.limiter;
        if let Some(u) = &self.user {
            l.users.release(u);
        }
        if let Some(a) = &self.addr {
            l.addrs.release(a);
        }
        match failed_at {
            Some(t) => l.failure(self.user.as_deref(), self.addr, t),
            None => false,
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Some(crate::now()));
        }
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

    #[test]
    fn reservations_count_before_the_result() {
        let l = Limiter::new(LoginConfig {
            max_failures_per_user: 3,
            max_failures_per_address: 100,
            window_secs: 60,
            lockout_secs: 30,
        });
        let held: Vec<_> = (0..3)
            .map(|_| l.reserve(Some("bob"), None, 1000).unwrap())
            .collect();
        assert_eq!(l.reserve(Some("bob"), None, 1000).unwrap_err(), 1);
        assert!(l.reserve(Some("alice"), None, 1000).is_ok());
        let mut it = held.into_iter();
        it.next().unwrap().succeeded();
        // The success cleared nothing in flight: 2 still held, 1 free.
        let again = l.reserve(Some("bob"), None, 1000).unwrap();
        assert!(l.reserve(Some("bob"), None, 1000).is_err());
        drop(again); // unfinished: a failure
        it.next().unwrap().failed(1000);
        assert!(it.next().unwrap().failed(1000), "third failure locks");
        assert_eq!(l.reserve(Some("bob"), None, 1001).unwrap_err(), 29);
    }
}
