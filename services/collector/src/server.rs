//! The accept loop: HTTP/1.1 (keep-alive) and HTTP/2 cleartext on one port, with a header
//! timeout, and a bounded drain on shutdown.

use std::time::Duration;

use crate::config::CollectorConfig;

/// Serves HTTP/1.1 (keep-alive) and HTTP/2 cleartext on `listener` until `shutdown`, then
/// stops accepting and gives the connections in flight a bounded time to finish.
///
/// Not `axum::serve`: it sets no timer, so a client trickling its headers would hold a
/// connection (and the drain) forever. Here headers must arrive within the request timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: &CollectorConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let request_timeout = Duration::from_millis(config.request_timeout_ms);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drain = request_timeout + Duration::from_millis(config.delivery_timeout_ms);
    if tokio::time::timeout(drain, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(after = ?drain, "connections still open after the drain; closing them");
    }
}
