//! `exatom-collector`: see the crate docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_shared::telemetry::init_logging();
    let config: exatom_collector::config::CollectorConfig = exatom_shared::config::load()?;
    exatom_collector::run(config).await
}
