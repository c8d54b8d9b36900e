//! `AnonEvent` → Kafka record: key `site:visitor_id`, so one visitor's events stay in order
//! on one partition of `exatom.anon`.

use exatom_core::avro::{anon_event_codec, Codec, CodecError};
use exatom_core::model::AnonEvent;

pub struct AnonEncoder {
    codec: Codec<AnonEvent>,
}

impl std::fmt::Debug for AnonEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnonEncoder").finish_non_exhaustive()
    }
}

impl Default for AnonEncoder {
    fn default() -> Self {
        AnonEncoder {
            codec: anon_event_codec(),
        }
    }
}

impl AnonEncoder {
    /// The record's key and its Avro single-object bytes.
    pub fn encode(&self, event: &AnonEvent) -> Result<(String, Vec<u8>), CodecError> {
        let key = format!("{}:{}", event.site, event.visitor_id);
        Ok((key, self.codec.encode(event)?))
    }
}
