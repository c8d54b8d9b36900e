//! `exatom-anonymizer`: see the crate docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_shared::telemetry::init_logging();
    let config: exatom_anonymizer::config::AnonymizerConfig = exatom_shared::config::load()?;
    exatom_anonymizer::run(config).await
}
