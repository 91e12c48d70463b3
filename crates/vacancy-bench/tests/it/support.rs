//! Tiny servers with known behaviour, for checking what the harness counts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use vacancy_bench::http::Target;

/// Answers `GET /status/{code}` with that status, and `GET /slow` after 50 ms; counts every
/// request it answered by status.
pub struct StatusServer {
    pub target: Target,
    counts: Arc<Mutex<BTreeMap<u16, u64>>>,
}

type Counts = Arc<Mutex<BTreeMap<u16, u64>>>;

async fn status(State(counts): State<Counts>, Path(code): Path<u16>) -> StatusCode {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    *counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(status.as_u16())
        .or_default() += 1;
    status
}

async fn slow(State(counts): State<Counts>) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(50)).await;
    *counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(200)
        .or_default() += 1;
    StatusCode::OK
}

impl StatusServer {
    pub async fn start() -> Self {
        let counts = Counts::default();
        let app = Router::new()
            .route("/status/{code}", get(status))
            .route("/slow", get(slow))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            target: Target::new(addr).expect("loopback target"),
            counts,
        }
    }

    pub fn counts(&self) -> BTreeMap<u16, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }
}

/// Accepts connections and closes them at once: every exchange is a transport error.
pub async fn closing_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    addr
}

/// Accepts connections and never answers: every exchange times out.
pub async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}
