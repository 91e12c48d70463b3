//! The shared L2 cache (Redis) under a replica's feet: it serves a replica whose L1 is cold,
//! and when it dies under load no request fails; when it returns, it is used again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use vacancy_events::BusConfig;
use vacancy_l2::{L2Config, L2Mode};
use vacancy_store::Backend;

use crate::helpers::{START, TestApp, spawn_with};

/// A redis-server of the test's own on a free port, killed on drop.
pub(crate) struct OwnRedis {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub(crate) async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.resume().await;
        redis
    }

    async fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config(&self) -> L2Config {
        L2Config {
            op_timeout: Duration::from_millis(250),
            ..L2Config::new(L2Mode::Standalone(format!(
                "redis://127.0.0.1:{}",
                self.port
            )))
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn replicas(backend: Backend, redis: &OwnRedis) -> (TestApp, TestApp) {
    let url = vacancy_store::testing::fresh_database_url(backend)
        .await
        .expect("database");
    let clock = Arc::new(vacancy_api::ManualClock::new(START.parse().expect("start")));
    let a = spawn_with(&url, clock.clone(), BusConfig::Local, Some(redis.config())).await;
    let b = spawn_with(&url, clock, BusConfig::Local, Some(redis.config())).await;
    (a, b)
}

fn source(reply: &crate::helpers::Reply) -> String {
    reply
        .headers
        .get("x-vacancy-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Reads `path` on `app` until it is served from L2, at most ~5 s.
async fn served_from_l2(app: &TestApp, path: &str) -> bool {
    for _ in 0..100 {
        if source(&app.get(path).await) == "l2" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn a_cold_replica_is_served_from_l2(backend: Backend) {
    let redis = OwnRedis::start().await;
    let (a, b) = replicas(backend, &redis).await;
    let listing = a.listing(1, json!({})).await;
    let path =
        format!("/v1/listings/{listing}/availability?check_in=2030-02-10&check_out=2030-02-12");
    assert_eq!(source(&a.get(&path).await), "database");
    // A wrote the calendar to L2 in the background; B has never seen the listing.
    assert!(
        served_from_l2(&b, &path).await,
        "B's first read comes from Redis"
    );
    assert_eq!(source(&b.get(&path).await), "l1");
}

async fn redis_dying_under_load_fails_no_request(backend: Backend) {
    let mut redis = OwnRedis::start().await;
    let (a, b) = replicas(backend, &redis).await;
    let a = Arc::new(a);
    let mut listings = Vec::new();
    for _ in 0..10 {
        listings.push(a.listing(2, json!({})).await);
    }
    redis.stop();
    let mut clients = Vec::new();
    for i in 0..40 {
        let (app, listing) = (a.clone(), listings[i % listings.len()].clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..5 {
                let day = 1 + (i + round) % 20;
                let (check_in, check_out) = (format!("2030-04-{day:02}"), format!("2030-04-{:02}", day + 1));
                let read = app.get(&format!("/v1/listings/{listing}/availability?check_in={check_in}&check_out={check_out}")).await;
                statuses.push(read.status);
                if round % 2 == 0 {
                    statuses.push(app.book(&listing, &check_in, &check_out, 1).await.status);
                }
            }
            statuses
        }));
    }
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.expect("client"));
    }
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|s| {
            !matches!(
                **s,
                StatusCode::OK | StatusCode::CREATED | StatusCode::CONFLICT
            )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "requests failed because Redis was down: {unexpected:?}"
    );
    assert_eq!(seen.len(), 40 * 8);
    a.assert_no_overbooking().await;

    redis.resume().await;
    // After the breaker's cool-down, L2 is written and read again. Each probe uses a listing
    // neither replica has cached, so B's first read can only come from L2 or the database.
    let mut back = false;
    for _ in 0..50 {
        let probe = a.listing(1, json!({})).await;
        let path = format!("/v1/listings/{probe}/calendar?start=2030-05-01&end=2030-05-08");
        a.get(&path).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if source(&b.get(&path).await) == "l2" {
            back = true;
            break;
        }
    }
    assert!(back, "L2 is used again once Redis is back");
}

crate::backend_tests!(
    a_cold_replica_is_served_from_l2,
    redis_dying_under_load_fails_no_request
);
