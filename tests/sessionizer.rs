//! Cross-service tests of the sessionizer: real processes against the real broker and ClickHouse.
