//! Retrying writes to a dependency that is down, without giving up and without spinning.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::telemetry::Shutdown;

/// Runs `attempt` until it succeeds, waiting 100 ms, 200 ms, … up to 10 s between tries.
/// Consumption is paused meanwhile (the caller awaits), so memory stays bounded and the
/// offsets of what was not written are not committed. Gives up only on shutdown.
pub async fn until_ok<T, E, F, Fut>(
    what: &str,
    shutdown: &Shutdown,
    mut on_retry: impl FnMut(),
    mut attempt: F,
) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if shutdown.is_triggered() => return Err(e),
            Err(e) => {
                on_retry();
                tracing::warn!(target_name = what, error = %e, retry_in_ms = wait.as_millis() as u64, "write failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}
