//! The interface of a shared (L2) cache: versioned byte values under string keys. The read
//! path needs only these three operations; Redis (`vacancy_l2::L2`) implements them, and a
//! test may bring its own.

use std::time::Duration;

use futures::future::BoxFuture;
pub use vacancy_l2::Versioned;

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

impl SharedCache for vacancy_l2::L2 {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Versioned>> {
        Box::pin(vacancy_l2::L2::get(self, key))
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Vec<Option<Versioned>>> {
        Box::pin(vacancy_l2::L2::get_many(self, keys))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        version: i64,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            vacancy_l2::L2::put(self, key, version, value, ttl).await;
        })
    }
}
