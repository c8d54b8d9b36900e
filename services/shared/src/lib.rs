//! What the four Exatom services share: the event model and its Avro codec, configuration,
//! and the Kafka, ClickHouse and metrics plumbing at their edges.
//!
//! The model and codec are pure; `kafka`, `warehouse` and `telemetry` do I/O.

pub mod avro;
pub mod config;
pub mod kafka;
pub mod keys;
pub mod model;
pub mod retention;
pub mod retry;
pub mod telemetry;
pub mod time;
pub mod warehouse;
