//! The outbox relay: the lease holder moves unpublished rows to the bus in commit order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vacancy_store::Store;

use crate::Bus;

/// The lease that elects the one relaying replica (its holder is [`RelayConfig::holder`]).
pub const LEASE: &str = "outbox-relay";

/// Relay tunables.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This replica's name in the lease table.
    pub holder: String,
    /// How long a lease lasts without renewal (a dead leader is replaced after this).
    pub lease_ttl: Duration,
    /// How often the outbox is polled when nothing woke the relay.
    pub poll_interval: Duration,
    /// Most rows published per round.
    pub batch: u32,
    /// Published rows older than this are deleted.
    pub retention: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            holder: format!("replica-{}", std::process::id()),
            lease_ttl: Duration::from_secs(5),
            poll_interval: Duration::from_millis(10),
            batch: 256,
            retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// Relays until `stop` is cancelled. `wake` is notified after local commits so they leave at
/// once; commits on other replicas are found by polling.
pub async fn run(
    store: Store,
    bus: Bus,
    config: RelayConfig,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut leader = false;
    let mut lease_checked = tokio::time::Instant::now() - config.lease_ttl;
    let mut purged = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        let now = jiff::Timestamp::now();
        if lease_checked.elapsed() >= config.lease_ttl / 3 {
            lease_checked = tokio::time::Instant::now();
            let was = leader;
            leader = store
                .try_lease(LEASE, &config.holder, now, config.lease_ttl)
                .await
                .unwrap_or(false);
            if leader != was {
                tracing::info!(holder = %config.holder, leader, "outbox relay leadership changed");
            }
        }
        let mut more = false;
        if leader {
            match store.unpublished(config.batch).await {
                Ok(rows) if !rows.is_empty() => {
                    let (published, error) = bus.publish(&rows).await;
                    if !published.is_empty() {
                        if let Err(error) = store.mark_published(&published, now).await {
                            // They will be published again; JetStream deduplicates by row id.
                            tracing::warn!(%error, "could not mark events published");
                        }
                        metrics::counter!("vacancy_events_published_total")
                            .increment(published.len() as u64);
                    }
                    match error {
                        Some(error) => {
                            failures += 1;
                            if failures == 1 || failures.is_multiple_of(100) {
                                tracing::warn!(%error, failures, "event stream unavailable; events wait in the outbox");
                            }
                        }
                        None => {
                            if failures > 0 {
                                tracing::info!("event stream back; outbox draining");
                            }
                            failures = 0;
                            more = rows.len() as u32 == config.batch;
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot read the outbox"),
            }
            if purged.elapsed() > Duration::from_secs(600) {
                purged = tokio::time::Instant::now();
                let before = now.checked_sub(
                    jiff::SignedDuration::try_from(config.retention).unwrap_or_default(),
                );
                if let Ok(before) = before {
                    let _ = store.purge_published(before).await;
                }
            }
        }
        if more {
            continue;
        }
        let backoff = if failures > 0 {
            Duration::from_millis(250 * u64::from(failures.min(8)))
        } else {
            config.poll_interval
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(backoff) => {}
        }
    }
    if leader {
        let _ = store.release_lease(LEASE, &config.holder).await;
    }
}
