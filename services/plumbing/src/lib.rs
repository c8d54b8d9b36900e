//! The I/O every Exatom service shares: Kafka (topic layout, producers, consumers, the
//! consume → write → commit loop with its lag sampler and dead-letter writer), ClickHouse
//! (connections, migrations, retention), telemetry (logs, metrics, health) and retries. The
//! pure model and codec are in `exatom-core`.

pub mod cluster;
pub mod consume;
pub mod dead_letter;
pub mod deleted_sites;
pub mod fault;
pub mod kafka;
pub mod retention;
pub mod retry;
pub mod site_registry;
pub mod startup;
pub mod telemetry;
pub mod warehouse;
