//! Avro single-object encoding of the topic records.
//!
//! Every message starts with `C3 01` and the 8-byte Rabin fingerprint of its writer
//! schema, so a consumer can tell which schema wrote it without a registry.
//! The schemas are the `.avsc` files in `schemas/avro/`, compiled in.
//!
//! Encoding and decoding are on every service's hot path: they go straight between record
//! and datum with `serde_avro_fast` (apache-avro's decoder builds a generic `Value` tree
//! first, several times slower), and the event records are written by their own writers
//! (`write`), held to the schema-driven encoding. apache-avro stays the schema authority:
//! it parses the schemas, computes their fingerprints, and the tests check all three write
//! the same bytes.

use std::marker::PhantomData;

use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{AnonEvent, RawEvent, ReplayBatch, Session};
use write::WriteDatum;

mod write;

pub const RAW_EVENT_SCHEMA: &str = include_str!("../../../schemas/avro/raw_event.avsc");
pub const ANON_EVENT_SCHEMA: &str = include_str!("../../../schemas/avro/anon_event.avsc");
pub const SESSION_SCHEMA: &str = include_str!("../../../schemas/avro/session.avsc");
pub const REPLAY_BATCH_SCHEMA: &str = include_str!("../../../schemas/avro/replay_batch.avsc");

/// The schemas published before (`schemas/avro/v1/`): records they wrote may still be in the
/// topics when a new release starts, and are read by resolving them against today's.
pub const RAW_EVENT_SCHEMA_V1: &str = include_str!("../../../schemas/avro/v1/raw_event.avsc");
pub const ANON_EVENT_SCHEMA_V1: &str = include_str!("../../../schemas/avro/v1/anon_event.avsc");
pub const SESSION_SCHEMA_V1: &str = include_str!("../../../schemas/avro/v1/session.avsc");

/// Why a message could not be turned into a record (or back).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message too short for the Avro single-object header ({0} bytes)")]
    TooShort(usize),
    #[error("not Avro single-object encoded (magic {0:02x}{1:02x}, expected c301)")]
    NotSingleObject(u8, u8),
    #[error("written with an unknown schema (fingerprint {0}); deploy a reader that knows it")]
    UnknownSchema(String),
    #[error("Avro datum does not match the schema: {0}")]
    Avro(#[from] apache_avro::Error),
    #[error("Avro datum does not match the schema: {0}")]
    Datum(#[from] serde_avro_fast::de::DeError),
    #[error("record does not fit the Avro schema: {0}")]
    Record(#[from] serde_avro_fast::ser::SerError),
}

/// Encodes and decodes one record type against its compiled-in schema.
pub struct Codec<T> {
    schema: Schema,
    /// The same schema, compiled for `serde_avro_fast`'s decoder.
    reader: serde_avro_fast::Schema,
    header: Vec<u8>,
    /// The record's own writer, where it has one: the schema-driven encoding is the fallback.
    direct: Option<fn(&T, &mut Vec<u8>)>,
    /// Earlier writer schemas by fingerprint: read through apache-avro's schema resolution,
    /// slower, but only for the records an earlier release left in the topics.
    earlier: Vec<([u8; 8], Schema)>,
    _record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Codec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("schema", &self.schema.canonical_form())
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> Codec<T> {
    fn from_schema_text(
        text: &str,
        earlier: &[&str],
        direct: Option<fn(&T, &mut Vec<u8>)>,
    ) -> Self {
        let schema = Schema::parse_str(text).expect("compiled-in Avro schema parses");
        let header = RabinFingerprintHeader::from_schema(&schema).build_header();
        let reader = text.parse().expect("compiled-in Avro schema parses");
        let earlier = earlier
            .iter()
            .map(|text| {
                let schema = Schema::parse_str(text).expect("compiled-in Avro schema parses");
                let header = RabinFingerprintHeader::from_schema(&schema).build_header();
                let fingerprint: [u8; 8] = header[2..10].try_into().expect("8-byte fingerprint");
                (fingerprint, schema)
            })
            .filter(|(fingerprint, _)| header[2..10] != fingerprint[..])
            .collect();
        Codec {
            schema,
            reader,
            header,
            direct,
            earlier,
            _record: PhantomData,
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The 10-byte single-object header every message of this type starts with.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Appends the single-object encoding of `record` to `out`.
    pub fn encode_into(&self, record: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self.direct {
            Some(write) => {
                out.extend_from_slice(&self.header);
                write(record, out);
                Ok(())
            }
            None => self.encode_by_schema_into(record, out),
        }
    }

    /// The same encoding, driven by the schema field by field: what a record's own writer
    /// is held to.
    pub fn encode_by_schema_into(&self, record: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.header);
        let mut config = serde_avro_fast::ser::SerializerConfig::new(&self.reader);
        serde_avro_fast::to_datum(record, out, &mut config)?;
        Ok(())
    }

    pub fn encode(&self, record: &T) -> Result<Vec<u8>, CodecError> {
        // Room for a typical event without growing (a form event is 300–400 bytes).
        let mut out = Vec::with_capacity(512);
        self.encode_into(record, &mut out)?;
        Ok(out)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        if bytes.len() < self.header.len() {
            return Err(CodecError::TooShort(bytes.len()));
        }
        if bytes[0..2] != self.header[0..2] {
            return Err(CodecError::NotSingleObject(bytes[0], bytes[1]));
        }
        if bytes[2..10] != self.header[2..10] {
            return self.decode_earlier(bytes);
        }
        Ok(serde_avro_fast::from_datum_slice(
            &bytes[10..],
            &self.reader,
        )?)
    }

    /// A record written with an earlier schema, resolved to today's (new fields get their
    /// defaults).
    fn decode_earlier(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let Some((_, writer)) = self.earlier.iter().find(|(f, _)| f[..] == bytes[2..10]) else {
            return Err(CodecError::UnknownSchema(hex_string(&bytes[2..10])));
        };
        let value = apache_avro::from_avro_datum(writer, &mut &bytes[10..], Some(&self.schema))?;
        Ok(apache_avro::from_value(&value)?)
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn raw_event_codec() -> Codec<RawEvent> {
    Codec::from_schema_text(
        RAW_EVENT_SCHEMA,
        &[RAW_EVENT_SCHEMA_V1],
        Some(RawEvent::write_datum),
    )
}

pub fn anon_event_codec() -> Codec<AnonEvent> {
    Codec::from_schema_text(
        ANON_EVENT_SCHEMA,
        &[ANON_EVENT_SCHEMA_V1],
        Some(AnonEvent::write_datum),
    )
}

/// Sessions are written once per session, not per event: the schema-driven encoding is
/// fast enough there.
pub fn session_codec() -> Codec<Session> {
    Codec::from_schema_text(SESSION_SCHEMA, &[SESSION_SCHEMA_V1], None)
}

/// Replay batches are few and large (the events are one JSON string): the schema-driven
/// encoding is all they need.
pub fn replay_batch_codec() -> Codec<ReplayBatch> {
    Codec::from_schema_text(REPLAY_BATCH_SCHEMA, &[], None)
}

#[cfg(test)]
mod tests;
