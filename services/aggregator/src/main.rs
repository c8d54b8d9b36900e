//! `exatom-aggregator`: see the crate docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_plumbing::telemetry::init_logging();
    let config: exatom_aggregator::config::AggregatorConfig = exatom_core::config::load()?;
    exatom_aggregator::run(config).await
}
