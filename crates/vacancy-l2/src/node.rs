//! One place keys live — a standalone Redis server or a whole Redis Cluster — with its
//! connection and its circuit breaker, and the few Redis commands the cache needs.
//!
//! Connections are lazy and self-healing: a standalone server is reached through a
//! `ConnectionManager` (reconnects in the background after a drop), a cluster through the
//! cluster client (re-discovers its topology). This module must never wait without bound, never
//! retry for long (the caller's timeout is 25 ms) and never print an address with credentials.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, RedisResult, Script};

use crate::L2Error;
use crate::entry;
use vacancy_resilience::{Breaker, BreakerConfig};

pub(crate) struct Node {
    pub(crate) breaker: Breaker,
    conn: Conn,
}

#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Patience of the connection layer. Short: a failed reconnection is retried on the next call
/// (or the next breaker probe), never by holding a call.
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) op: Duration,
}

impl Node {
    /// A standalone server; `index` is its position in the configuration (for errors).
    pub(crate) fn standalone(
        index: usize,
        url: &str,
        timeouts: &Timeouts,
        breaker: BreakerConfig,
    ) -> Result<Self, L2Error> {
        let invalid = |source| L2Error::InvalidAddress {
            node: index,
            source,
        };
        let info = url.into_connection_info().map_err(invalid)?;
        let identity = format!("{}/{}", info.addr(), info.redis_settings().db());
        let client = redis::Client::open(info).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.connect.max(timeouts.op)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(5))
            .set_max_delay(Duration::from_millis(50));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?;
        Ok(Self {
            breaker: Breaker::new("redis", identity, breaker),
            conn: Conn::Standalone(manager),
        })
    }

    /// A Redis Cluster reached through `seeds`.
    pub(crate) fn cluster(
        seeds: &[String],
        timeouts: &Timeouts,
        breaker: BreakerConfig,
    ) -> Result<Self, L2Error> {
        let infos = seeds
            .iter()
            .enumerate()
            .map(|(node, url)| {
                url.as_str()
                    .into_connection_info()
                    .map_err(|source| L2Error::InvalidAddress { node, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = redis::cluster::ClusterClientBuilder::new(infos)
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.connect.max(timeouts.op))
            // Enough to follow a MOVED/ASK redirection; never a long retry loop.
            .retries(2)
            .min_retry_wait(5)
            .max_retry_wait(50)
            .build()
            .map_err(|source| L2Error::InvalidAddress { node: 0, source })?;
        let conn = client
            .get_pending_async_connection_with_config(redis::cluster::ClusterConfig::default());
        Ok(Self {
            breaker: Breaker::new("redis", "cluster".to_owned(), breaker),
            conn: Conn::Cluster(conn),
        })
    }

    /// The node's address (`host:port/db`, or `cluster`), without credentials.
    pub(crate) fn identity(&self) -> &str {
        self.breaker.instance()
    }

    /// Checks that Redis answers and loads the write script (on every node of a cluster), so
    /// the first write does not pay for a `NOSCRIPT` round trip.
    pub(crate) async fn prepare(&self, script: &Script) -> RedisResult<()> {
        match self.conn.clone() {
            Conn::Standalone(mut c) => script.load_async(&mut c).await.map(drop),
            Conn::Cluster(mut c) => script.load_async(&mut c).await.map(drop),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> RedisResult<Option<Bytes>> {
        let cmd = redis::cmd("GET").arg(key).to_owned();
        match self.conn.clone() {
            Conn::Standalone(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// One `MGET`; on a cluster the client splits it by slot and reassembles it in order.
    pub(crate) async fn mget(&self, keys: &[&str]) -> RedisResult<Vec<Option<Bytes>>> {
        let cmd = redis::cmd("MGET").arg(keys).to_owned();
        match self.conn.clone() {
            Conn::Standalone(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// Runs the versioned write; `true` if written, `false` if a newer or equal version is
    /// stored.
    pub(crate) async fn put(
        &self,
        script: &Script,
        key: &str,
        version: i64,
        value: &[u8],
        ttl_ms: u64,
    ) -> RedisResult<bool> {
        match self.conn.clone() {
            Conn::Standalone(mut c) => put_on(&mut c, script, key, version, value, ttl_ms).await,
            Conn::Cluster(mut c) => put_on(&mut c, script, key, version, value, ttl_ms).await,
        }
    }
}

async fn put_on<C: ConnectionLike>(
    conn: &mut C,
    script: &Script,
    key: &str,
    version: i64,
    value: &[u8],
    ttl_ms: u64,
) -> RedisResult<bool> {
    // EVALSHA first; the `Script` loads it and retries on NOSCRIPT (e.g. after a restart).
    let written: i64 = script
        .key(key)
        .arg(entry::header(version))
        .arg(entry::encode(version, value))
        .arg(ttl_ms)
        .invoke_async(conn)
        .await?;
    Ok(written == 1)
}
