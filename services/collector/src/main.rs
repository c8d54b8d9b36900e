//! `exatom-collector`: see the crate docs.

/// mimalloc instead of glibc's malloc: the request path is allocation-heavy (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_plumbing::telemetry::init_logging();
    let config: exatom_collector::config::CollectorConfig = exatom_core::config::load()?;
    exatom_collector::run(config).await
}
