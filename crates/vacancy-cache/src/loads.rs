//! Coalesced loads: concurrent misses on one key share one load.
//!
//! The first miss spawns the load as its own task, so it finishes (and releases its database
//! connection) even if every request waiting on it goes away; later misses on the same key wait
//! for that task instead of starting another. The task forgets the key when it ends, so a
//! failure is not remembered: the next miss tries again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;

/// A load's outcome, shared by everyone who waited for it.
pub(crate) type Outcome<T, E> = Result<Arc<T>, Arc<E>>;

type Running<T, E> = Arc<Mutex<HashMap<String, Shared<BoxFuture<'static, Outcome<T, E>>>>>>;

pub(crate) struct Loads<T, E> {
    running: Running<T, E>,
}

/// Forgets a key when its load's task ends, however it ends (a panic included).
struct Forget<T, E> {
    running: Running<T, E>,
    key: String,
}

impl<T, E> Drop for Forget<T, E> {
    fn drop(&mut self) {
        self.running.lock().remove(&self.key);
    }
}

impl<T, E> Loads<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The outcome of the load of `key` under way, or of `load()` started now. `panicked` is
    /// the error waiters get should the load's task die.
    pub(crate) async fn get_or_load<F>(
        &self,
        key: &str,
        load: impl FnOnce() -> F,
        panicked: impl FnOnce() -> E + Send + 'static,
    ) -> Outcome<T, E>
    where
        F: Future<Output = Result<Arc<T>, E>> + Send + 'static,
    {
        let shared = {
            let mut running = self.running.lock();
            match running.get(key) {
                Some(shared) => shared.clone(),
                None => {
                    let forget = Forget {
                        running: self.running.clone(),
                        key: key.to_owned(),
                    };
                    let load = load();
                    // The task cannot forget the key before it is recorded below: that needs
                    // the lock held here.
                    let task = tokio::spawn(async move {
                        let _forget = forget;
                        load.await.map_err(Arc::new)
                    });
                    let shared =
                        async move { task.await.unwrap_or_else(|_| Err(Arc::new(panicked()))) }
                            .boxed()
                            .shared();
                    running.insert(key.to_owned(), shared.clone());
                    shared
                }
            }
        };
        shared.await
    }

    /// Loads under way (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_load_and_failures_are_not_kept() {
        let loads: Arc<Loads<u32, String>> = Arc::new(Loads::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let (loads, calls) = (loads.clone(), calls.clone());
                tokio::spawn(async move {
                    loads
                        .get_or_load(
                            "k",
                            || async move {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                Err::<Arc<u32>, _>("down".to_owned())
                            },
                            || "panicked".to_owned(),
                        )
                        .await
                })
            })
            .collect();
        for waiter in waiters {
            let outcome = waiter.await.expect("waiter");
            assert_eq!(outcome.err().as_deref().map(String::as_str), Some("down"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(loads.running(), 0);
        let again = loads
            .get_or_load("k", || async { Ok(Arc::new(7)) }, || "panicked".to_owned())
            .await;
        assert_eq!(again.ok().as_deref(), Some(&7));
    }

    #[tokio::test]
    async fn a_load_finishes_when_its_waiter_goes_away() {
        let loads: Arc<Loads<u32, String>> = Arc::new(Loads::new());
        let done = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (loads, done) = (loads.clone(), done.clone());
            tokio::spawn(async move {
                loads
                    .get_or_load(
                        "k",
                        || async move {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            done.fetch_add(1, Ordering::SeqCst);
                            Ok(Arc::new(1))
                        },
                        || "panicked".to_owned(),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        waiter.abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(loads.running(), 0);
    }

    #[tokio::test]
    async fn a_panicking_load_answers_with_the_given_error() {
        let loads: Loads<u32, String> = Loads::new();
        let outcome = loads
            .get_or_load(
                "k",
                || async { panic!("load failed") },
                || "panicked".to_owned(),
            )
            .await;
        assert_eq!(
            outcome.err().as_deref().map(String::as_str),
            Some("panicked")
        );
    }
}
