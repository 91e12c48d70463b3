//! The interface of a shared (L2) cache: versioned byte values under string keys. The read
//! path only needs these three operations; the Redis adapter implements them.

use std::time::Duration;

use futures::future::BoxFuture;

/// A stored value with the version it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: i64,
    pub value: Vec<u8>,
}

/// A cache shared by every replica. Every method answers within its own timeout and treats any
/// failure as a miss: the read path must keep working when the shared cache is down.
pub trait SharedCache: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Versioned>>;
    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Vec<Option<Versioned>>>;
    /// Writes unless a value of the same or a newer version is stored.
    fn put<'a>(
        &'a self,
        key: &'a str,
        version: i64,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, ()>;
}
