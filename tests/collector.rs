//! Cross-service tests of the collector: real processes against the real broker and ClickHouse.
