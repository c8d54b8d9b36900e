//! `RawEvent` → Kafka record: the partition key and the Avro bytes.

use exatom_core::avro::{raw_event_codec, Codec, CodecError};
use exatom_core::model::RawEvent;
use sha2::{Digest, Sha256};

/// Encodes raw events for `exatom.raw`.
pub struct RawEncoder {
    codec: Codec<RawEvent>,
}

impl std::fmt::Debug for RawEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEncoder").finish_non_exhaustive()
    }
}

impl Default for RawEncoder {
    fn default() -> Self {
        RawEncoder {
            codec: raw_event_codec(),
        }
    }
}

impl RawEncoder {
    pub fn encode(&self, event: &RawEvent) -> Result<Vec<u8>, CodecError> {
        self.codec.encode(event)
    }

    /// Encodes into `out` (cleared first): one buffer serves a whole batch.
    pub fn encode_into(&self, event: &RawEvent, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        self.codec.encode_into(event, out)
    }
}

/// `site:` + 16 hex digits of SHA-256(ip, user agent): one visitor's events land on one
/// partition, in order. The hash only groups; the raw topic holds the ip in clear anyway.
pub fn partition_key(site: &str, ip: &str, user_agent: &str) -> String {
    let mut h = Sha256::new();
    h.update((ip.len() as u32).to_be_bytes());
    h.update(ip.as_bytes());
    h.update(user_agent.as_bytes());
    let digest = h.finalize();
    format!("{site}:{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_a_visitor_and_separates_sites_and_visitors() {
        let a = partition_key("DEMO", "203.0.113.1", "UA");
        assert_eq!(a, partition_key("DEMO", "203.0.113.1", "UA"));
        assert_ne!(a, partition_key("SHOP", "203.0.113.1", "UA"));
        assert_ne!(a, partition_key("DEMO", "203.0.113.2", "UA"));
        // Length-prefixed: moving a character across the boundary changes the key.
        assert_ne!(
            partition_key("DEMO", "1.2.3.4", "5UA"),
            partition_key("DEMO", "1.2.3.45", "UA")
        );
        assert!(a.starts_with("DEMO:") && a.len() == 5 + 16);
        assert!(!a.contains("203.0.113.1"));
    }
}
