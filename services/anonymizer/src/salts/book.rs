//! Which salt belongs to which day, first record wins (see the module above). Pure: the
//! topic is read and written by `keeper`.

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

/// Why a day gets no salt, whatever the topic holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutOfRange {
    #[error("the salt of {0} is no longer held: a salt is deleted two days after its day")]
    Expired(NaiveDate),
    #[error("{0} is more than a day ahead of this replica's clock: no salt exists for it yet")]
    Future(NaiveDate),
}

/// Whether the salt of `day` may be used (and created if missing) when `today` is this
/// replica's UTC day: yesterday's, today's and tomorrow's only.
///
/// An event of an older day goes to the DLQ: its salt is gone, and a fresh one would outlive
/// the promise that a day's ids cannot be recomputed two days later. Tomorrow is allowed
/// because the collector's clock may run a little ahead of this one around midnight.
pub fn in_range(day: NaiveDate, today: NaiveDate) -> Result<(), OutOfRange> {
    if day < today - chrono::Days::new(1) {
        return Err(OutOfRange::Expired(day));
    }
    if day > today + chrono::Days::new(1) {
        return Err(OutOfRange::Future(day));
    }
    Ok(())
}

/// The timestamp a day's salt record carries: the start of its day. Retention counts from
/// a record's timestamp, so the salt is deleted 48 hours after its day began, at the moment
/// replicas stop using it, however late in its day or the next it was written.
pub fn record_timestamp_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis()
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
        assert_eq!(in_range(day(23), day(23)), Ok(()));
        assert_eq!(in_range(day(22), day(23)), Ok(()));
        assert_eq!(in_range(day(24), day(23)), Ok(()));
        assert_eq!(
            in_range(day(21), day(23)),
            Err(OutOfRange::Expired(day(21)))
        );
        assert_eq!(in_range(day(25), day(23)), Err(OutOfRange::Future(day(25))));
    }

    #[test]
    fn a_salt_record_is_stamped_with_the_start_of_its_day() {
        // 2026-11-23T00:00:00Z: retention (48 h) then ends at 2026-11-25T00:00:00Z, when
        // `in_range` stops accepting the 23rd.
        assert_eq!(record_timestamp_ms(day(23)), 1_795_392_000_000);
        assert!(in_range(day(23), day(25)).is_err());
        assert_eq!(
            exatom_core::time::utc_day(record_timestamp_ms(day(23)) + 48 * 3_600_000),
            day(25)
        );
    }

    #[test]
    fn fresh_salts_differ() {
        assert_ne!(fresh_salt(), fresh_salt());
    }
}
