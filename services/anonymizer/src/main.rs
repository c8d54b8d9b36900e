//! `exatom-anonymizer`: see the crate docs.

/// Every event allocates a few dozen short strings (decode, scrub, encode): mimalloc keeps
/// that cheap and steady (BENCHMARKS.md, Anonymizer).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_plumbing::telemetry::init_logging();
    let config: exatom_anonymizer::config::AnonymizerConfig = exatom_core::config::load()?;
    exatom_anonymizer::run(config).await
}
