//! Configuration of the L2 client: where Redis is and how patient to be with it.
//!
//! Addresses are `redis://` URLs and may hold a password, so nothing here ever prints one:
//! `Debug` shows addresses with their credentials masked.

use std::fmt;
use std::time::Duration;

use vacancy_resilience::BreakerConfig;

/// How to reach Redis and how long to wait for it.
#[derive(Clone, Debug)]
pub struct L2Config {
    /// Which Redis deployment to use.
    pub mode: L2Mode,
    /// The longest any one call (get, put, get_many) may take, connection included; past it the
    /// call answers "unavailable" and counts as a failure for the breaker. Default 25 ms.
    pub op_timeout: Duration,
    /// The longest one connection attempt may take, and how long [`crate::L2::connect`] waits
    /// to find out whether Redis is reachable at start. Default 500 ms.
    pub connect_timeout: Duration,
    /// Prepended to every key, so several services or environments can share a Redis.
    /// Default `"vacancy:"`.
    pub key_prefix: String,
    /// When to stop calling a failing Redis and when to try again.
    pub breaker: BreakerConfig,
}

impl L2Config {
    /// The defaults for everything but the deployment.
    pub fn new(mode: L2Mode) -> Self {
        Self {
            mode,
            op_timeout: Duration::from_millis(25),
            connect_timeout: Duration::from_millis(500),
            key_prefix: "vacancy:".to_owned(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl Default for L2Config {
    /// A standalone Redis on `127.0.0.1:6379`.
    fn default() -> Self {
        Self::new(L2Mode::Standalone("redis://127.0.0.1:6379".to_owned()))
    }
}

/// The Redis deployment behind the cache.
#[derive(Clone)]
pub enum L2Mode {
    /// One Redis server (`redis://[user:password@]host:port[/db]`).
    Standalone(String),
    /// Several independent Redis servers; each key lives on one of them, chosen client-side by
    /// a consistent-hash ring so adding or removing a server moves only its share of keys.
    Sharded(Vec<String>),
    /// A Redis Cluster, reached through these seed nodes; the cluster decides where keys live.
    Cluster(Vec<String>),
}

impl fmt::Debug for L2Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |urls: &[String]| urls.iter().map(|u| mask_credentials(u)).collect::<Vec<_>>();
        match self {
            Self::Standalone(url) => f
                .debug_tuple("Standalone")
                .field(&mask_credentials(url))
                .finish(),
            Self::Sharded(urls) => f.debug_tuple("Sharded").field(&masked(urls)).finish(),
            Self::Cluster(urls) => f.debug_tuple("Cluster").field(&masked(urls)).finish(),
        }
    }
}

/// `redis://user:secret@host:6379/0` → `redis://***@host:6379/0`.
pub(crate) fn mask_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let separator = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{separator}***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug() {
        let mode = L2Mode::Sharded(vec![
            "redis://:hunter2@10.0.0.1:6379/0".to_owned(),
            "redis://app:s3cret@cache:6380".to_owned(),
            "redis://127.0.0.1:6379".to_owned(),
        ]);
        let shown = format!("{:?}", L2Config::new(mode));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://***@10.0.0.1:6379/0"), "{shown}");
        assert!(shown.contains("redis://***@cache:6380"), "{shown}");
        assert!(shown.contains("redis://127.0.0.1:6379"), "{shown}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = L2Config::default();
        assert_eq!(config.op_timeout, Duration::from_millis(25));
        assert_eq!(config.key_prefix, "vacancy:");
        assert_eq!(config.breaker.failure_threshold, 5);
        assert_eq!(config.breaker.cool_down, Duration::from_secs(1));
    }
}
