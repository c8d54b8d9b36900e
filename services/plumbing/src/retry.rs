//! The one retry of the services: a write or read that failed for a reason that passes is
//! tried again with backoff; one that cannot pass is returned at once.

use std::future::Future;
use std::time::Duration;

use crate::fault::Fault;
use crate::telemetry::Shutdown;

/// Waits between tries: 100 ms, doubling, at most 10 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7))).min(Duration::from_secs(10))
}

/// Runs `attempt` until it succeeds or fails with a [`Fault::Deployment`], waiting
/// [`backoff`] between tries and calling `on_retry` for each (the caller's counter).
/// Consumption waits meanwhile (the caller awaits), so memory stays bounded and the offsets
/// of what was not written are not committed. Gives up on shutdown with the last fault.
pub async fn until_ok<T, F, Fut>(
    what: &str,
    shutdown: &Shutdown,
    mut on_retry: impl FnMut(&Fault),
    mut attempt: F,
) -> Result<T, Fault>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fault>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(fault @ Fault::Deployment { .. }) => return Err(fault),
            Err(fault) if shutdown.is_triggered() => return Err(fault),
            Err(fault) => {
                on_retry(&fault);
                let wait = backoff(tries);
                tracing::warn!(target_name = what, error = %fault, retry_in_ms = wait.as_millis() as u64, "failed; retrying");
                tries += 1;
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.wait() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Cause;

    #[test]
    fn backoff_doubles_from_100_ms_to_at_most_10_s() {
        let waits: Vec<u64> = (0..10).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retriable_faults_are_retried_and_a_deployment_fault_is_returned_at_once() {
        let shutdown = Shutdown::default();
        let mut calls = 0;
        let mut retries = 0;
        let value = until_ok(
            "test",
            &shutdown,
            |_: &Fault| retries += 1,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Fault::retriable(Cause::Unreachable, "away"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(value, Ok(3));
        assert_eq!(retries, 2);

        let mut calls = 0;
        let fault = until_ok(
            "test",
            &shutdown,
            |_: &Fault| {},
            || {
                calls += 1;
                async {
                    Err::<(), _>(Fault::Deployment {
                        what: "no column".into(),
                        fix: "migrate".into(),
                    })
                }
            },
        )
        .await;
        assert!(matches!(fault, Err(Fault::Deployment { .. })));
        assert_eq!(calls, 1);
    }
}
