//! Failed sign-ins, counted per user name at a client address and per
//! client address. After too many failures in a window, further attempts
//! are refused without checking the password until the window has passed.
//! A name is held off only at the address that failed with it: guesses from
//! elsewhere cannot lock an admin out of the console.
//!
//! An attempt is counted *before* its password is checked ([`LoginThrottle::reserve`]),
//! in the same critical section as the check, so concurrent attempts cannot
//! all pass the check while the slow hashes run; a success gives the
//! reservation back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub window: Duration,
    pub per_user: u32,
    pub per_address: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            window: Duration::from_secs(15 * 60),
            per_user: 5,
            per_address: 20,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A user name (case-folded) tried from one address.
    UserAt(String, IpAddr),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    since: Instant,
    /// The name's `signin_epoch` when counting began: an unlock bumps it.
    epoch: i64,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: Policy,
    failures: Mutex<HashMap<Key, Failures>>,
}

impl LoginThrottle {
    pub fn new(policy: Policy) -> Self {
        LoginThrottle {
            policy,
            failures: Mutex::default(),
        }
    }

    /// `Err(wait)` when this user or address must wait before trying again.
    pub fn check(&self, user: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let failures = self.lock();
        match self.wait(&failures, user, address, now) {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    fn wait(
        &self,
        failures: &HashMap<Key, Failures>,
        user: &str,
        address: IpAddr,
        now: Instant,
    ) -> Option<Duration> {
        let limits = [
            (
                Key::UserAt(user.to_lowercase(), address),
                self.policy.per_user,
            ),
            (Key::Address(address), self.policy.per_address),
        ];
        limits
            .iter()
            .filter_map(|(key, limit)| {
                let f = failures.get(key)?;
                let ends = f.since + self.policy.window;
                (f.count >= *limit && ends > now).then(|| ends - now)
            })
            .max()
    }

    /// Checks and counts an attempt at once: `Err(wait)` when this user or
    /// address must wait; otherwise the attempt counts as a failure until
    /// [`LoginThrottle::record_success`] gives it back. `epoch` is the name's
    /// `signin_epoch`: the name's failures counted before an unlock are
    /// forgotten.
    pub fn reserve(
        &self,
        user: &str,
        address: IpAddr,
        now: Instant,
        epoch: i64,
    ) -> Result<(), Duration> {
        let mut failures = self.lock();
        let key = Key::UserAt(user.to_lowercase(), address);
        if failures.get(&key).is_some_and(|f| f.epoch < epoch) {
            failures.remove(&key);
        }
        if let Some(w) = self.wait(&failures, user, address, now) {
            return Err(w);
        }
        Self::count(&mut failures, self.policy.window, user, address, now, epoch);
        Ok(())
    }

    pub fn record_failure(&self, user: &str, address: IpAddr, now: Instant) {
        let mut failures = self.lock();
        Self::count(&mut failures, self.policy.window, user, address, now, 0);
    }

    fn count(
        failures: &mut HashMap<Key, Failures>,
        window: Duration,
        user: &str,
        address: IpAddr,
        now: Instant,
        epoch: i64,
    ) {
        if failures.len() > 100_000 {
            failures.retain(|_, f| f.since + window > now);
        }
        for key in [
            Key::UserAt(user.to_lowercase(), address),
            Key::Address(address),
        ] {
            let f = failures.entry(key).or_insert(Failures {
                count: 0,
                since: now,
                epoch,
            });
            if f.since + window <= now {
                *f = Failures {
                    count: 0,
                    since: now,
                    epoch,
                };
            }
            f.count += 1;
        }
    }

    /// A successful sign-in clears the user's count and gives back the
    /// address's reservation; the address keeps its earlier failures, so
    /// one good account does not unlock guessing at others.
    pub fn record_success(&self, user: &str, address: IpAddr) {
        let mut failures = self.lock();
        failures.remove(&Key::UserAt(user.to_lowercase(), address));
        if let Some(f) = failures.get_mut(&Key::Address(address)) {
            f.count = f.count.saturating_sub(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Failures>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            window: Duration::from_secs(60),
            per_user: 3,
            per_address: 5,
        }
    }

    #[test]
    fn a_user_is_held_off_after_repeated_failures_until_the_window_ends() {
        let t = LoginThrottle::new(policy());
        let addr: IpAddr = [127, 0, 0, 1].into();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check("ana", addr, now).is_ok());
            t.record_failure("ana", addr, now);
        }
        let wait = t.check("Ana", addr, now + Duration::from_secs(10)).err();
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert!(
            t.check("bob", addr, now).is_ok(),
            "other users are not held off"
        );
        assert!(t.check("ana", addr, now + Duration::from_secs(61)).is_ok());
    }

    /// The lock-out the hostile probe found: five wrong passwords for the
    /// admin from anywhere kept the admin out everywhere for 15 minutes.
    #[test]
    fn failures_from_one_address_do_not_hold_the_user_off_at_another() {
        let t = LoginThrottle::new(policy());
        let attacker: IpAddr = [203, 0, 113, 9].into();
        let admin_desk: IpAddr = [10, 0, 0, 2].into();
        let now = Instant::now();
        for _ in 0..3 {
            t.record_failure("ana", attacker, now);
        }
        assert!(t.check("ana", attacker, now).is_err());
        assert!(t.check("ana", admin_desk, now).is_ok());
    }

    /// `migctl user unlock NAME` bumps the name's epoch: its failures are
    /// forgotten at its next attempt, not the address's.
    #[test]
    fn an_unlock_forgets_the_names_failures() {
        let t = LoginThrottle::new(policy());
        let addr: IpAddr = [127, 0, 0, 1].into();
        let now = Instant::now();
        for _ in 0..3 {
            t.reserve("ana", addr, now, 0).unwrap();
        }
        assert!(t.reserve("ana", addr, now, 0).is_err());
        assert!(t.reserve("ana", addr, now, 1).is_ok(), "unlocked");
        assert!(t.reserve("ana", addr, now, 1).is_ok());
    }

    #[test]
    fn an_address_is_held_off_across_user_names() {
        let t = LoginThrottle::new(policy());
        let addr: IpAddr = [10, 0, 0, 9].into();
        let now = Instant::now();
        for i in 0..5 {
            t.record_failure(&format!("user{i}"), addr, now);
        }
        assert!(t.check("someone-else", addr, now).is_err());
        assert!(t.check("someone-else", [10, 0, 0, 8].into(), now).is_ok());
    }

    #[test]
    fn success_clears_the_users_count() {
        let t = LoginThrottle::new(policy());
        let addr: IpAddr = [127, 0, 0, 1].into();
        let now = Instant::now();
        t.record_failure("ana", addr, now);
        t.record_failure("ana", addr, now);
        t.record_success("ana", addr);
        t.record_failure("ana", addr, now);
        assert!(t.check("ana", addr, now).is_ok());
    }

    /// The race the hostile probe won: many attempts checked before any
    /// was counted. Reserving counts under the same lock as the check, so
    /// of 49 concurrent attempts exactly `per_user` get through.
    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let t = std::sync::Arc::new(LoginThrottle::new(policy()));
        let addr: IpAddr = [127, 0, 0, 1].into();
        let now = Instant::now();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..49)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || t.reserve("ana", addr, now, 0).is_ok())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(passed, 3);
        // A success gives the reservation back to the address but not more.
        let t = LoginThrottle::new(policy());
        t.reserve("bob", addr, now, 0).unwrap();
        t.record_success("bob", addr);
        for _ in 0..5 {
            t.reserve(&format!("u{}", rand::random::<u32>()), addr, now, 0)
                .unwrap();
        }
        assert!(t.reserve("carl", addr, now, 0).is_err());
    }
}
