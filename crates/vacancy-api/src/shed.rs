//! Bulkheads and load shedding: separate concurrency limits for single reads, batch reads and
//! writes, and a fast 503 instead of a queue when a class is full.
//!
//! Every request under `/v1` belongs to one [`Class`] and must hold one of its class's permits
//! while it runs. A request that finds no permit waits at most [`ConcurrencyLimits::queue_wait`]
//! for one, then is answered `503 urn:vacancy:problem:overloaded` with `Retry-After: 1`: past its
//! capacity the service refuses quickly instead of queueing into a latency collapse, and a flood
//! of one class (say, batch checks from a search page) cannot starve the others (bookings).
//!
//! Past the CPU's capacity the queue forms before any bulkhead sees it; [`crate::pressure`] sheds
//! by the runtime's scheduling lag then, with the same 503 (batch first, then reads,
//! then writes).
//!
//! Invariants: operations endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) are never
//! shed; a shed request never reaches a handler, so it never changes anything; permits are
//! released when the handler's response is produced (drop guard), also on panic or cancellation.
//!
//! Metrics: `vacancy_shed_total{class, reason}` (`reason` is `full` or `lag`) and the gauge
//! `vacancy_in_flight{class}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::pressure::Pressure;

/// The default scheduling lag from which batch checks are shed.
pub const DEFAULT_LAG_TARGET: Duration = Duration::from_millis(5);

/// Concurrency limits per class of request.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimits {
    /// Most single reads (calendar, availability, GETs of listings, holds, bookings) at once.
    pub reads: usize,
    /// Most batch availability checks at once (each may touch up to 1,000 listings).
    pub batch: usize,
    /// Most writes (everything under `/v1` that is not a read) at once.
    pub writes: usize,
    /// Longest a request waits for a permit before it is shed.
    pub queue_wait: Duration,
    /// Scheduling lag from which batch checks are shed (reads from twice it, writes
    /// from four times it; see `pressure`); `None`: never shed by lag.
    pub lag_target: Option<Duration>,
}

impl Default for ConcurrencyLimits {
    /// Sized for a 2-core machine: reads are cheap (mostly L1), a batch is up to 1,000 of them,
    /// writes wait on the database.
    fn default() -> Self {
        Self {
            reads: 512,
            batch: 32,
            writes: 64,
            queue_wait: Duration::from_millis(50),
            lag_target: Some(DEFAULT_LAG_TARGET),
        }
    }
}

/// The bulkhead a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Batch,
    Write,
}

impl Class {
    /// The class of a request, or `None` for requests that are never shed (outside `/v1`).
    pub fn of(method: &Method, path: &str) -> Option<Class> {
        if !(path == "/v1" || path.starts_with("/v1/")) {
            return None;
        }
        if path == "/v1/availability/batch" {
            return Some(Class::Batch);
        }
        if method == Method::GET || method == Method::HEAD {
            Some(Class::Read)
        } else {
            Some(Class::Write)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Batch => "batch",
            Class::Write => "write",
        }
    }
}

/// One semaphore per class; built once per router.
#[derive(Debug, Clone)]
pub struct Bulkheads {
    reads: Arc<Semaphore>,
    batch: Arc<Semaphore>,
    writes: Arc<Semaphore>,
    queue_wait: Duration,
    pressure: Option<Arc<Pressure>>,
}

impl Bulkheads {
    pub fn new(limits: &ConcurrencyLimits) -> Self {
        // A limit of 0 would shed everything of its class; treat it as 1.
        let semaphore = |n: usize| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)));
        Self {
            reads: semaphore(limits.reads),
            batch: semaphore(limits.batch),
            writes: semaphore(limits.writes),
            queue_wait: limits.queue_wait,
            pressure: limits.lag_target.map(Pressure::new),
        }
    }

    fn semaphore(&self, class: Class) -> &Arc<Semaphore> {
        match class {
            Class::Read => &self.reads,
            Class::Batch => &self.batch,
            Class::Write => &self.writes,
        }
    }

    /// A permit of `class`, waiting at most the queue wait; `None` means: shed.
    pub async fn admit(&self, class: Class) -> Option<InFlight> {
        let semaphore = self.semaphore(class).clone();
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(self.queue_wait, semaphore.acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        Some(InFlight::new(class, permit))
    }
}

/// A held permit; counts itself in the in-flight gauge while alive.
pub struct InFlight {
    class: Class,
    _permit: OwnedSemaphorePermit,
}

impl InFlight {
    fn new(class: Class, permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("vacancy_in_flight", "class" => class.as_str()).increment(1.0);
        Self {
            class,
            _permit: permit,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("vacancy_in_flight", "class" => self.class.as_str()).decrement(1.0);
    }
}

/// The middleware: admit the request into its class's bulkhead or shed it.
pub async fn shed(
    State(bulkheads): State<Arc<Bulkheads>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(class) = Class::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    if let Some(pressure) = &bulkheads.pressure {
        pressure.ensure_started();
        if pressure.sheds(class) {
            return refuse(class, "lag");
        }
    }
    match bulkheads.admit(class).await {
        Some(_in_flight) => next.run(request).await,
        None => refuse(class, "full"),
    }
}

fn refuse(class: Class, reason: &'static str) -> Response {
    metrics::counter!("vacancy_shed_total", "class" => class.as_str(), "reason" => reason)
        .increment(1);
    ApiError::Overloaded(class.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let class = |m: Method, p: &str| Class::of(&m, p);
        assert_eq!(class(Method::GET, "/healthz"), None);
        assert_eq!(class(Method::GET, "/readyz"), None);
        assert_eq!(class(Method::GET, "/metrics"), None);
        assert_eq!(class(Method::GET, "/openapi.json"), None);
        assert_eq!(class(Method::POST, "/v1x"), None);
        assert_eq!(
            class(Method::GET, "/v1/listings/a/calendar"),
            Some(Class::Read)
        );
        assert_eq!(class(Method::GET, "/v1/bookings/b"), Some(Class::Read));
        assert_eq!(
            class(Method::POST, "/v1/availability/batch"),
            Some(Class::Batch)
        );
        assert_eq!(class(Method::POST, "/v1/bookings"), Some(Class::Write));
        assert_eq!(
            class(Method::DELETE, "/v1/listings/a/blocks"),
            Some(Class::Write)
        );
        assert_eq!(class(Method::PATCH, "/v1/listings/a"), Some(Class::Write));
    }

    #[tokio::test]
    async fn a_full_class_sheds_after_the_queue_wait_and_others_are_unaffected() {
        let bulkheads = Bulkheads::new(&ConcurrencyLimits {
            reads: 2,
            batch: 1,
            writes: 1,
            queue_wait: Duration::from_millis(10),
            lag_target: None,
        });
        let write = bulkheads.admit(Class::Write).await.expect("first write");
        assert!(bulkheads.admit(Class::Write).await.is_none(), "shed");
        let reads = (
            bulkheads.admit(Class::Read).await,
            bulkheads.admit(Class::Read).await,
        );
        assert!(reads.0.is_some() && reads.1.is_some());
        assert!(bulkheads.admit(Class::Read).await.is_none());
        assert!(bulkheads.admit(Class::Batch).await.is_some());
        drop(write);
        assert!(bulkheads.admit(Class::Write).await.is_some(), "released");
    }

    #[tokio::test]
    async fn a_short_wait_is_admitted_when_a_permit_frees_in_time() {
        let bulkheads = Bulkheads::new(&ConcurrencyLimits {
            writes: 1,
            queue_wait: Duration::from_secs(30),
            ..ConcurrencyLimits::default()
        });
        let first = bulkheads.admit(Class::Write).await.expect("first write");
        let waiter = tokio::spawn({
            let bulkheads = bulkheads.clone();
            async move { bulkheads.admit(Class::Write).await.is_some() }
        });
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiter.await.expect("waiter"));
    }
}
