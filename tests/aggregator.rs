//! Cross-service tests of the aggregator: real processes against the real broker and ClickHouse.
