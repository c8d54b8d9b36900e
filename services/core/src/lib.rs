//! The pure core of the Exatom services: the event model and its Avro codec, the keys every
//! report groups by, time, and configuration. Nothing here talks to a network: the I/O
//! lives in `exatom-plumbing`, so that anything built on this crate alone (the collector's
//! edge checks, the fuzz target) needs no librdkafka, ClickHouse client or HTTP stack.

pub mod avro;
pub mod config;
pub mod keys;
pub mod model;
pub mod time;
