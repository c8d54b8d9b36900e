//! Who may read what: passwords (Argon2id), API tokens (SHA-256 of the token in the
//! registry) and the lock on a log-in after too many wrong passwords. Pure: the clock is
//! passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use exatom_edge::sites::{Registry, User};
use sha2::{Digest, Sha256};

/// A PHC string for `password` (Argon2id, the crate's defaults: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with its default parameters hashes any password")
        .to_string()
}

/// Checked against when the user does not exist, so that an unknown name costs the same
/// time as a wrong password and does not tell which names exist.
static DECOY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no user has this password"));

/// The user `name` if `password` is theirs.
pub fn check_password<'r>(registry: &'r Registry, name: &str, password: &str) -> Option<&'r User> {
    let user = registry.users.get(name);
    let hash = user
        .map(|u| u.password_hash.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or(DECOY_HASH.as_str());
    let parsed = PasswordHash::new(hash).ok()?;
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    user.filter(|u| matches && !u.password_hash.is_empty())
}

/// The user holding API token `token`, with their name.
pub fn check_token<'r>(registry: &'r Registry, token: &str) -> Option<(&'r str, &'r User)> {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    registry
        .users
        .iter()
        .find(|(_, u)| {
            u.token_sha256
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&digest))
        })
        .map(|(n, u)| (n.as_str(), u))
}

/// Wrong passwords per user name; a name with `max_failures` in a row is locked for
/// `lockout`. Per name rather than per address: a guesser spreads over addresses, not
/// over the one account they want. Held in memory (bounded): with several replicas behind
/// a balancer a guesser gets `max_failures` per replica per lockout.
#[derive(Debug)]
pub struct LoginGuard {
    max_failures: u32,
    lockout: Duration,
    capacity: usize,
    names: HashMap<String, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl LoginGuard {
    pub fn new(max_failures: u32, lockout: Duration, capacity: usize) -> Self {
        LoginGuard {
            max_failures: max_failures.max(1),
            lockout,
            capacity: capacity.max(1),
            names: HashMap::new(),
        }
    }

    /// `Err(wait)` while `name` is locked.
    pub fn check(&self, name: &str, now: Instant) -> Result<(), Duration> {
        match self.names.get(name) {
            Some(f) if f.count >= self.max_failures => {
                let until = f.last + self.lockout;
                if now < until {
                    Err(until - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Records the outcome of an attempt that [`check`](Self::check) let through.
    pub fn record(&mut self, name: &str, succeeded: bool, now: Instant) {
        if succeeded {
            self.names.remove(name);
            return;
        }
        if !self.names.contains_key(name) && self.names.len() >= self.capacity {
            self.forget_oldest(now);
        }
        let entry = self.names.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        // A lock that has run out starts a fresh count.
        if entry.count >= self.max_failures && now >= entry.last + self.lockout {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    /// Drops expired entries, or the least recent one when none has expired.
    fn forget_oldest(&mut self, now: Instant) {
        let lockout = self.lockout;
        self.names.retain(|_, f| now < f.last + lockout);
        if self.names.len() >= self.capacity {
            if let Some(oldest) = self
                .names
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(n, _)| n.clone())
            {
                self.names.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(hash: &str) -> Registry {
        Registry::parse(&format!(
            "[sites.DEMO]\n[users.ann]\npassword_hash = '{hash}'\nsites = ['DEMO']\ntoken_sha256 = ['{}']\n",
            hex::encode(Sha256::digest(b"tok-123"))
        ))
        .unwrap()
    }

    #[test]
    fn the_right_password_lets_in_and_nothing_else_does() {
        let r = registry(&hash_password("correct horse"));
        assert!(check_password(&r, "ann", "correct horse").is_some());
        assert!(check_password(&r, "ann", "correct horsE").is_none());
        assert!(check_password(&r, "ann", "").is_none());
        assert!(check_password(&r, "bob", "correct horse").is_none());
    }

    #[test]
    fn a_user_without_a_password_cannot_log_in_with_any() {
        let r = registry("");
        assert!(check_password(&r, "ann", "").is_none());
        // The decoy is a valid PHC string: unknown names cost a full verification.
        assert!(PasswordHash::new(&DECOY_HASH).is_ok());
    }

    #[test]
    fn tokens_are_matched_by_their_digest() {
        let r = registry("");
        assert_eq!(check_token(&r, "tok-123").map(|(n, _)| n), Some("ann"));
        assert!(check_token(&r, "tok-124").is_none());
        assert!(check_token(&r, &hex::encode(Sha256::digest(b"tok-123"))).is_none());
    }

    #[test]
    fn ten_wrong_passwords_lock_the_name_until_the_lockout_ends() {
        let start = Instant::now();
        let mut guard = LoginGuard::new(10, Duration::from_secs(900), 100);
        for i in 0..9 {
            assert!(guard.check("ann", start).is_ok(), "attempt {i}");
            guard.record("ann", false, start);
        }
        assert!(guard.check("ann", start).is_ok());
        guard.record("ann", false, start);
        let wait = guard
            .check("ann", start + Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(840));
        assert!(
            guard.check("bob", start).is_ok(),
            "other names are not locked"
        );
        let later = start + Duration::from_secs(900);
        assert!(guard.check("ann", later).is_ok());
        guard.record("ann", false, later);
        assert!(
            guard.check("ann", later).is_ok(),
            "a fresh count after the lock"
        );
    }

    #[test]
    fn a_success_clears_the_count() {
        let now = Instant::now();
        let mut guard = LoginGuard::new(3, Duration::from_secs(60), 100);
        guard.record("ann", false, now);
        guard.record("ann", false, now);
        guard.record("ann", true, now);
        guard.record("ann", false, now);
        guard.record("ann", false, now);
        assert!(guard.check("ann", now).is_ok());
    }

    #[test]
    fn the_guard_holds_at_most_its_capacity() {
        let now = Instant::now();
        let mut guard = LoginGuard::new(3, Duration::from_secs(60), 50);
        for i in 0..1000u32 {
            guard.record(
                &format!("name{i}"),
                false,
                now + Duration::from_millis(i.into()),
            );
        }
        assert!(guard.names.len() <= 50);
        assert!(guard.names.contains_key("name999"));
    }
}
