//! Transaction ids are order numbers, sometimes e-mails. The pipeline needs only to know
//! whether two conversions of a site carry the same one (across days: a thank-you page
//! reloaded tomorrow is the same order), so it keeps a keyed hash, and the key lives outside
//! the pipeline's topics and tables: a leaked table cannot be joined to a list of order
//! numbers without it.
//!
//! `key = "v2-" + hex(HMAC-SHA256(site_key, legacy)[..16])` where
//! `legacy = SHA-256(len‖site ‖ transaction id)[..16]` (the v1 value, 4-byte big-endian
//! length) and `site_key = HMAC-SHA256(master, "exatom-transaction-site-v2" ‖ site)`. The
//! master key is a file of 32 random bytes (64 hex digits) named by
//! `EXATOM_TRANSACTION_KEY_FILE`. The v2 value is computed from the v1 one (not from the id)
//! so that rows written before the key existed can be upgraded in place, should that be
//! needed: their v1 value is all that is left of the id, and it is all v2 needs. Today the
//! upgrade is a cut-over (README, "Transaction ids").

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Prefix of a keyed transaction id; a value without it is a v1 (unkeyed) one.
pub const V2: &str = "v2-";
const SITE_DOMAIN: &[u8] = b"exatom-transaction-site-v2";

/// The master key, held in memory only.
#[derive(Clone)]
pub struct TransactionKeys {
    master: [u8; 32],
}

impl std::fmt::Debug for TransactionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransactionKeys(<hidden>)")
    }
}

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "EXATOM_TRANSACTION_KEY_FILE is not set: transaction ids are hashed under a key held \
         outside the pipeline. Create one (`od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > FILE`, \
         readable by the anonymizer only) and name it"
    )]
    Missing,
    #[error("cannot read the transaction key file {0} (EXATOM_TRANSACTION_KEY_FILE): {1}")]
    Read(String, std::io::Error),
    #[error("the transaction key file {0} (EXATOM_TRANSACTION_KEY_FILE) must hold 64 hex digits (32 random bytes)")]
    Shape(String),
}

impl TransactionKeys {
    pub const fn new(master: [u8; 32]) -> Self {
        TransactionKeys { master }
    }

    /// Reads the master key: 64 hex digits, surrounding whitespace ignored.
    pub fn load(path: Option<&Path>) -> Result<Self, KeyError> {
        let path = path
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or(KeyError::Missing)?;
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read(shown.clone(), e))?;
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Shape(shown.clone()))?;
        let master: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Shape(shown))?;
        Ok(TransactionKeys { master })
    }

    /// The keyed id of `transaction_id` for `site`.
    pub fn key(&self, site: &str, transaction_id: &str) -> String {
        self.keyed(site, &legacy(site, transaction_id))
    }

    fn keyed(&self, site: &str, v1: &[u8; 16]) -> String {
        let mut site_key =
            Hmac::<Sha256>::new_from_slice(&self.master).expect("HMAC takes any key length");
        site_key.update(SITE_DOMAIN);
        site_key.update(site.as_bytes());
        let site_key = site_key.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&site_key).expect("HMAC takes any key length");
        mac.update(v1);
        format!("{V2}{}", hex::encode(&mac.finalize().into_bytes()[..16]))
    }
}

/// The v1 value: what was stored before there was a key.
pub fn legacy(site: &str, transaction_id: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update((site.len() as u32).to_be_bytes());
    h.update(site.as_bytes());
    h.update(transaction_id.as_bytes());
    h.finalize()[..16].try_into().expect("16 of 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> TransactionKeys {
        TransactionKeys::new([byte; 32])
    }

    #[test]
    fn the_same_order_matches_across_days_and_not_across_sites() {
        let k = keys(7);
        assert_eq!(k.key("SHOP", "T-1001"), k.key("SHOP", "T-1001"));
        assert_ne!(k.key("SHOP", "T-1001"), k.key("SHOP", "T-1002"));
        assert_ne!(k.key("SHOP", "T-1001"), k.key("OTHER", "T-1001"));
        assert!(k.key("SHOP", "T-1001").starts_with(V2));
        assert_eq!(k.key("SHOP", "T-1001").len(), 3 + 32);
    }

    #[test]
    fn a_dump_with_a_known_order_number_cannot_be_matched_without_the_key() {
        let stored = keys(7).key("SHOP", "T-1001");
        // Someone holding the table and a list of order numbers: the unkeyed hash (what v1
        // stored), any other key, none of it finds the row.
        let guesses = [
            hex::encode(legacy("SHOP", "T-1001")),
            format!("{V2}{}", hex::encode(legacy("SHOP", "T-1001"))),
            keys(0).key("SHOP", "T-1001"),
            keys(8).key("SHOP", "T-1001"),
        ];
        assert!(guesses.iter().all(|g| *g != stored));
        // With the key, it does.
        assert_eq!(keys(7).key("SHOP", "T-1001"), stored);
    }

    #[test]
    fn the_key_file_must_hold_32_bytes_in_hex() {
        let dir = std::env::temp_dir().join(format!("exatom-tx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        let k = TransactionKeys::load(Some(&good)).unwrap();
        assert_eq!(
            k.key("S", "1"),
            TransactionKeys::new([0xab; 32]).key("S", "1")
        );
        let short = dir.join("short");
        std::fs::write(&short, "abcd").unwrap();
        assert!(matches!(
            TransactionKeys::load(Some(&short)),
            Err(KeyError::Shape(_))
        ));
        assert!(matches!(
            TransactionKeys::load(None),
            Err(KeyError::Missing)
        ));
        assert!(format!("{k:?}").contains("hidden"));
    }
}
