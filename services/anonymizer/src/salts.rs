//! Which salt belongs to which day, agreed by every replica without talking to each other.
//!
//! All replicas write candidate salts to the single-partition topic `exatom.salts` (key =
//! the UTC date) and read it from the start. **The salt of a day is the first record for
//! that date in the topic's order.** A replica that wrote a candidate uses no salt for that
//! day until it has read past its own record, so it sees any earlier one. The log's order is
//! the same for every reader, so every replica ends up with the same salt.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::visitor::Salt;

/// The salts read so far from `exatom.salts`, first-wins per day.
#[derive(Debug, Default)]
pub struct SaltBook {
    salts: BTreeMap<NaiveDate, Salt>,
    /// The next offset to read: every record below it has been seen.
    pub read_up_to: i64,
}

/// Why a record of the salts topic was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSalt {
    #[error("salt key is not a date YYYY-MM-DD")]
    Key,
    #[error("salt value is not 32 bytes")]
    Value,
}

impl SaltBook {
    /// Records one message of the topic; a later salt for a day already known is ignored.
    pub fn observe(&mut self, offset: i64, key: &[u8], value: &[u8]) -> Result<(), BadSalt> {
        self.read_up_to = self.read_up_to.max(offset + 1);
        let day = std::str::from_utf8(key)
            .ok()
            .and_then(|k| NaiveDate::parse_from_str(k, "%Y-%m-%d").ok())
            .ok_or(BadSalt::Key)?;
        let salt: Salt = value.try_into().map_err(|_| BadSalt::Value)?;
        self.salts.entry(day).or_insert(salt);
        Ok(())
    }

    pub fn get(&self, day: NaiveDate) -> Option<&Salt> {
        self.salts.get(&day)
    }

    /// Forgets salts of days before `oldest`: once the topic has deleted them, no process
    /// should hold them either.
    pub fn forget_before(&mut self, oldest: NaiveDate) -> usize {
        let keep = self.salts.split_off(&oldest);
        let forgotten = self.salts.len();
        self.salts = keep;
        forgotten
    }

    pub fn days(&self) -> impl Iterator<Item = &NaiveDate> {
        self.salts.keys()
    }
}

/// Whether a salt may still be created for `day` when `today` is the current UTC day.
///
/// Only today's and yesterday's: an event from an older day whose salt is gone must go to
/// the DLQ, never get a fresh salt that would outlive the promise of 48 hours.
pub fn may_create(day: NaiveDate, today: NaiveDate) -> bool {
    day <= today && day >= today - chrono::Days::new(1)
}

/// A fresh random salt from the operating system's CSPRNG.
pub fn fresh_salt() -> Salt {
    use rand::RngCore;
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn first_salt_of_a_day_wins() {
        let mut book = SaltBook::default();
        book.observe(0, b"2026-11-23", &[1; 32]).unwrap();
        book.observe(1, b"2026-11-23", &[2; 32]).unwrap();
        book.observe(2, b"2026-11-24", &[3; 32]).unwrap();
        assert_eq!(book.get(day(23)), Some(&[1; 32]));
        assert_eq!(book.get(day(24)), Some(&[3; 32]));
        assert_eq!(book.read_up_to, 3);
    }

    #[test]
    fn two_replicas_reading_the_same_log_agree() {
        // Whatever interleaving wrote the log, readers see one order and pick one salt.
        let log: Vec<(i64, &[u8], [u8; 32])> = vec![
            (0, b"2026-11-23", [9; 32]),
            (1, b"2026-11-23", [4; 32]),
            (2, b"2026-11-23", [5; 32]),
        ];
        let mut a = SaltBook::default();
        let mut b = SaltBook::default();
        for (o, k, v) in &log {
            a.observe(*o, k, v).unwrap();
        }
        for (o, k, v) in &log {
            b.observe(*o, k, v).unwrap();
        }
        assert_eq!(a.get(day(23)), b.get(day(23)));
    }

    #[test]
    fn malformed_records_are_refused() {
        let mut book = SaltBook::default();
        assert_eq!(book.observe(0, b"yesterday", &[1; 32]), Err(BadSalt::Key));
        assert_eq!(
            book.observe(1, b"2026-11-23", &[1; 31]),
            Err(BadSalt::Value)
        );
        assert_eq!(book.get(day(23)), None);
        assert_eq!(book.read_up_to, 2);
    }

    #[test]
    fn old_salts_are_forgotten_and_never_recreated() {
        let mut book = SaltBook::default();
        for d in 20..=23 {
            book.observe(
                i64::from(d),
                format!("2026-11-{d}").as_bytes(),
                &[d as u8; 32],
            )
            .unwrap();
        }
        assert_eq!(book.forget_before(day(22)), 2);
        assert_eq!(
            book.days().copied().collect::<Vec<_>>(),
            vec![day(22), day(23)]
        );
        assert!(may_create(day(23), day(23)));
        assert!(may_create(day(22), day(23)));
        assert!(!may_create(day(21), day(23)));
        assert!(!may_create(day(24), day(23)));
    }

    #[test]
    fn fresh_salts_differ() {
        assert_ne!(fresh_salt(), fresh_salt());
    }
}
