//! Serving connections: accepting TCP (optionally TLS), HTTP/1.1 with hostile-client limits,
//! and graceful shutdown.
//!
//! Limits per connection: the request head must arrive within `header_read_timeout` (slow
//! clients are dropped), may be at most `max_header_bytes` with at most `max_headers` fields
//! (431 otherwise), and a TLS handshake must finish within `handshake_timeout`. Body size is
//! limited by the router. On shutdown the listener stops accepting, idle keep-alive connections
//! close, and in-flight requests finish (the caller bounds how long that may take).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Connection limits against slow or oversized clients.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest wait for a request's head (request line and headers).
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then waits for open connections
/// to finish their requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Arc<ConnectionLimits>,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // The peer address reaches handlers and middleware (the rate limiter keys anonymous
        // clients on it) as axum's `ConnectInfo`.
        let router = router
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let limits = limits.clone();
        let watcher = graceful.watcher();
        match tls.clone() {
            None => {
                let conn = connection(stream, router, &limits);
                tokio::spawn(watcher.watch(conn));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let _ = watcher.watch(connection(stream, router, &limits)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

fn connection<I>(
    io: I,
    router: Router,
    limits: &ConnectionLimits,
) -> http1::Connection<TokioIo<I>, TowerToHyperService<Router>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router))
}
