//! `exatom-sessionizer`: see the crate docs.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_plumbing::telemetry::init_logging();
    let config: exatom_sessionizer::config::SessionizerConfig = exatom_core::config::load()?;
    exatom_sessionizer::run(config).await
}
