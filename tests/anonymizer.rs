//! Cross-service tests of the anonymizer: real processes against the real broker and ClickHouse.
