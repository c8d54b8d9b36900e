//! The collector's pure core, apart from its HTTP and Kafka edges: `body` (gzip and size
//! limits), `batch` (the envelope and each event checked, masked and skew-corrected),
//! `client` (the client address behind trusted proxies, per-client rate limits), `sites`
//! (the site registry), `replay` (who is recorded, and replay batches checked) and `limits`. No I/O: the fuzz target and the collector both build on it.

pub mod batch;
pub mod body;
pub mod client;
pub mod limits;
pub mod replay;
pub mod sites;
