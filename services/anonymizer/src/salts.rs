//! The daily salts every replica agrees on: which salt belongs to which day (`book`, pure),
//! the reader and writer of `exatom.salts` that keeps them in memory (`keeper`), and what
//! operators see of them (`watch`).
//!
//! All replicas write candidate salts to the single-partition topic `exatom.salts` (key =
//! the UTC date) and read it from the start. **The salt of a day is the first record for
//! that date in the topic's order.** A replica that wrote a candidate uses no salt for that
//! day until it has read past its own record, so it sees any earlier one. The log's order is
//! the same for every reader, so every replica ends up with the same salt.

pub mod book;
pub mod keeper;
pub mod watch;

pub use book::{fresh_salt, in_range, record_timestamp_ms, BadSalt, OutOfRange, SaltBook};
pub use keeper::{verify_salts_topic, SaltError, SaltKeeper, StartError, MAX_SALT_RETENTION_MS};
