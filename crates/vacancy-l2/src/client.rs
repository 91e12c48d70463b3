//! [`L2`]: the cache's public face. Routes each key to its node, wraps every Redis call in the
//! node's circuit breaker and in `op_timeout`, applies TTL jitter, and turns every failure into
//! "not there" plus a metric.
//!
//! It must never return a Redis error to its caller, never wait longer than `op_timeout` for a
//! call, and never touch the network for a node whose breaker is open.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rand::Rng;
use redis::{RedisResult, Script};

use crate::L2Error;
use crate::config::{L2Config, L2Mode};
use crate::entry::{self, Versioned};
use crate::node::{Node, Timeouts};
use crate::ring::Ring;
use vacancy_resilience::{BreakerState, Permit};

/// What a [`L2::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The value is stored with its version.
    Written,
    /// A newer or equal version is stored; nothing changed.
    Stale,
    /// Redis could not be asked (error, timeout or open breaker); nothing is known to have
    /// changed.
    Unavailable,
}

impl PutOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Stale => "stale",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The Redis L2 cache client. Cheap to clone: clones share connections and breakers.
#[derive(Clone)]
pub struct L2 {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for L2 {
    /// Node addresses (never credentials) and breaker states.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("key_prefix", &self.inner.key_prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .field("sharded", &self.inner.ring.is_some())
            .field("nodes", &self.node_breaker_states())
            .finish()
    }
}

struct Inner {
    key_prefix: String,
    op_timeout: Duration,
    /// Nodes in configuration order; one for standalone and cluster modes.
    nodes: Vec<Node>,
    /// Only in sharded mode.
    ring: Option<Ring>,
    put_script: Script,
}

/// Why one Redis call gave no answer.
enum CallError {
    Open,
    Timeout,
    Redis(redis::RedisError),
}

impl CallError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Timeout => "timeout",
            Self::Redis(_) => "redis",
        }
    }
}

impl L2 {
    /// Builds the client. Connections are lazy: this only fails on a bad configuration. If
    /// Redis does not answer (a `SCRIPT LOAD` of the write script) within `connect_timeout`, a
    /// warning is logged and the client starts anyway; it uses Redis as soon as Redis answers.
    pub async fn connect(config: L2Config) -> Result<L2, L2Error> {
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            op: config.op_timeout,
        };
        let (nodes, ring) = match &config.mode {
            L2Mode::Standalone(url) => (
                vec![Node::standalone(0, url, &timeouts, config.breaker)?],
                None,
            ),
            L2Mode::Sharded(urls) => {
                let nodes = urls
                    .iter()
                    .enumerate()
                    .map(|(i, url)| Node::standalone(i, url, &timeouts, config.breaker))
                    .collect::<Result<Vec<_>, _>>()?;
                let identities: Vec<&str> = nodes.iter().map(Node::identity).collect();
                if identities.is_empty() {
                    return Err(L2Error::InvalidConfig(
                        "sharded mode needs at least one node".into(),
                    ));
                }
                if identities.iter().collect::<HashSet<_>>().len() != identities.len() {
                    return Err(L2Error::InvalidConfig(format!(
                        "sharded mode lists a node twice: {identities:?}"
                    )));
                }
                let ring = Ring::new(&identities);
                (nodes, Some(ring))
            }
            L2Mode::Cluster(seeds) => {
                if seeds.is_empty() {
                    return Err(L2Error::InvalidConfig(
                        "cluster mode needs at least one seed node".into(),
                    ));
                }
                (vec![Node::cluster(seeds, &timeouts, config.breaker)?], None)
            }
        };
        let l2 = L2 {
            inner: Arc::new(Inner {
                key_prefix: config.key_prefix,
                op_timeout: config.op_timeout,
                nodes,
                ring,
                put_script: Script::new(entry::PUT_SCRIPT),
            }),
        };
        l2.check_reachable(config.connect_timeout).await;
        Ok(l2)
    }

    /// Logs, per node, whether Redis answers now, and loads the write script where it does.
    /// Never fails: the cache works without Redis.
    async fn check_reachable(&self, within: Duration) {
        let script = &self.inner.put_script;
        let pings = self.inner.nodes.iter().map(|node| async move {
            let outcome = tokio::time::timeout(within, node.prepare(script)).await;
            (node.identity(), outcome)
        });
        for (node, outcome) in join_all(pings).await {
            match outcome {
                Ok(Ok(())) => tracing::info!(node, "L2 Redis reachable"),
                Ok(Err(error)) => tracing::warn!(
                    node,
                    error = %error,
                    "L2 Redis not reachable at start; serving without it until it answers"
                ),
                Err(_) => tracing::warn!(
                    node,
                    timeout_ms = within.as_millis() as u64,
                    "L2 Redis did not answer at start; serving without it until it answers"
                ),
            }
        }
    }

    /// The value stored under `key`, or `None` if there is none — or Redis is slow, down, or
    /// behind an open breaker (then an error is counted, never returned).
    pub async fn get(&self, key: &str) -> Option<Versioned> {
        let key = self.full_key(key);
        let node = self.node_for(&key);
        match self.call(node, || node.get(&key)).await {
            Ok(Some(raw)) => self.decoded(raw, "get"),
            Ok(None) => {
                metrics::counter!("vacancy_l2_misses_total").increment(1);
                None
            }
            Err(error) => {
                count_error("get", &error);
                None
            }
        }
    }

    /// Stores `value` with `version` for about `ttl` (±10 % random jitter, so entries written
    /// together do not expire together) unless a newer or equal version is stored.
    pub async fn put(&self, key: &str, version: i64, value: &[u8], ttl: Duration) -> PutOutcome {
        let key = self.full_key(key);
        let node = self.node_for(&key);
        let script = &self.inner.put_script;
        let ttl_ms = jittered_ms(ttl);
        let outcome = match self
            .call(node, || node.put(script, &key, version, value, ttl_ms))
            .await
        {
            Ok(true) => PutOutcome::Written,
            Ok(false) => PutOutcome::Stale,
            Err(error) => {
                count_error("put", &error);
                PutOutcome::Unavailable
            }
        };
        metrics::counter!("vacancy_l2_writes_total", "outcome" => outcome.label()).increment(1);
        outcome
    }

    /// The values of `keys`, in the same order; `None` where a key is absent or its node could
    /// not be asked. One `MGET` per node, the nodes in parallel (a cluster splits it by slot).
    /// Meant for batches of up to about a thousand keys.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Option<Versioned>> {
        let mut results = vec![None; keys.len()];
        if keys.is_empty() {
            return results;
        }
        let full_keys: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); self.inner.nodes.len()];
        for (i, key) in full_keys.iter().enumerate() {
            by_node[self.node_index(key)].push(i);
        }
        let batches = by_node
            .into_iter()
            .enumerate()
            .filter(|(_, indexes)| !indexes.is_empty())
            .map(|(n, indexes)| {
                let node = &self.inner.nodes[n];
                let batch: Vec<&str> = indexes.iter().map(|&i| full_keys[i].as_str()).collect();
                async move {
                    let values = self.call(node, || node.mget(&batch)).await;
                    (indexes, values)
                }
            });
        for (indexes, values) in join_all(batches).await {
            match values {
                Ok(values) if values.len() == indexes.len() => {
                    for (i, raw) in indexes.into_iter().zip(values) {
                        results[i] = match raw {
                            Some(raw) => self.decoded(raw, "get_many"),
                            None => {
                                metrics::counter!("vacancy_l2_misses_total").increment(1);
                                None
                            }
                        };
                    }
                }
                Ok(values) => {
                    tracing::warn!(
                        asked = indexes.len(),
                        answered = values.len(),
                        "L2 MGET answered the wrong number of values"
                    );
                    metrics::counter!("vacancy_l2_errors_total", "op" => "get_many", "kind" => "redis")
                        .increment(1);
                }
                Err(error) => count_error("get_many", &error),
            }
        }
        results
    }

    /// The breaker state; in sharded mode the least healthy of the nodes' breakers (open if
    /// any is open, else half-open if any is, else closed).
    pub fn breaker_state(&self) -> BreakerState {
        self.inner
            .nodes
            .iter()
            .map(|node| node.breaker.state())
            .max_by_key(|state| state.severity())
            .unwrap_or(BreakerState::Closed)
    }

    /// Each node's address (without credentials, `cluster` for a cluster) and breaker state,
    /// in configuration order.
    pub fn node_breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.inner
            .nodes
            .iter()
            .map(|node| (node.identity().to_owned(), node.breaker.state()))
            .collect()
    }

    /// In sharded mode, the position in the configured node list of the node that holds
    /// `key`; `None` in standalone and cluster modes.
    pub fn shard_for(&self, key: &str) -> Option<usize> {
        let ring = self.inner.ring.as_ref()?;
        ring.node_for(self.full_key(key).as_bytes())
    }

    fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.inner.key_prefix.len() + key.len());
        full.push_str(&self.inner.key_prefix);
        full.push_str(key);
        full
    }

    fn node_index(&self, full_key: &str) -> usize {
        match &self.inner.ring {
            Some(ring) => ring.node_for(full_key.as_bytes()).unwrap_or(0),
            None => 0,
        }
    }

    fn node_for(&self, full_key: &str) -> &Node {
        &self.inner.nodes[self.node_index(full_key)]
    }

    /// One Redis call through the node's breaker, bounded by `op_timeout`.
    ///
    /// A connection-level error (a connection that died while idle, a reconnection that had
    /// failed earlier) is retried once within the same deadline: the first attempt is what
    /// makes the connection manager reconnect, so the retry usually finds Redis again. Both
    /// requests are idempotent (a repeated versioned write answers `Stale`).
    async fn call<T, F, Fut>(&self, node: &Node, request: F) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(permit) = node.breaker.try_acquire() else {
            return Err(CallError::Open);
        };
        let attempts = async {
            match request().await {
                Err(error) if is_connection_error(&error) => request().await,
                other => other,
            }
        };
        let result = match tokio::time::timeout(self.inner.op_timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Redis(error)),
            Err(_) => Err(CallError::Timeout),
        };
        report(permit, &result, node);
        result
    }

    fn decoded(&self, raw: bytes::Bytes, op: &'static str) -> Option<Versioned> {
        match entry::decode(raw) {
            Ok(versioned) => {
                metrics::counter!("vacancy_l2_hits_total").increment(1);
                Some(versioned)
            }
            Err(entry::NotAnEntry) => {
                tracing::warn!(op, "L2 key holds a value that is not a versioned entry");
                metrics::counter!("vacancy_l2_errors_total", "op" => op, "kind" => "decode")
                    .increment(1);
                None
            }
        }
    }
}

fn report<T>(permit: Permit<'_>, result: &Result<T, CallError>, node: &Node) {
    if let Err(CallError::Redis(error)) = result {
        tracing::debug!(node = node.identity(), error = %error, "L2 Redis call failed");
    }
    permit.report(result);
}

fn is_connection_error(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

fn count_error(op: &'static str, error: &CallError) {
    metrics::counter!("vacancy_l2_errors_total", "op" => op, "kind" => error.kind()).increment(1);
}

/// The longest TTL stored: past it Redis would refuse the expiry (and the error would count
/// against the breaker).
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// `ttl` ± up to 10 %, in whole milliseconds, at least 1 and at most ten years.
fn jittered_ms(ttl: Duration) -> u64 {
    let factor: f64 = rand::rng().random_range(0.9..=1.1);
    let ms = (ttl.as_secs_f64() * 1000.0 * factor).round();
    // `as` saturates (never wraps) and the clamp keeps the result meaningful to Redis.
    (ms as u64).clamp(1, MAX_TTL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let base = Duration::from_secs(60);
        let samples: Vec<u64> = (0..1000).map(|_| jittered_ms(base)).collect();
        assert!(samples.iter().all(|&ms| (54_000..=66_000).contains(&ms)));
        let distinct: HashSet<u64> = samples.iter().copied().collect();
        assert!(distinct.len() > 100, "jitter should spread expiries");
        assert!(samples.iter().any(|&ms| ms < 57_000) && samples.iter().any(|&ms| ms > 63_000));
    }

    #[test]
    fn extreme_ttls_stay_meaningful() {
        assert_eq!(jittered_ms(Duration::ZERO), 1);
        assert_eq!(jittered_ms(Duration::MAX), MAX_TTL_MS);
    }
}
