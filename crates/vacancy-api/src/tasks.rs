//! Background work every replica runs: releasing expired holds (reads already ignore them;
//! this frees the ledger and announces the change), purging old idempotency records, relaying
//! the outbox (only the lease holder publishes), consuming events into the caches, and keeping
//! the hottest listings fresh. All stop when the shutdown token is cancelled.

use std::time::Duration;

use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::AppState;
use crate::{ServeConfig, TaskConfig};
use vacancy_events::{Bus, Delivery};

/// Most listings one sweep touches, so one sweep never holds the database for long.
const SWEEP_BATCH: u32 = 500;
/// How often old idempotency records are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(10 * 60);

pub(crate) fn spawn(
    state: AppState,
    bus: Bus,
    serve: &ServeConfig,
    token: CancellationToken,
) -> TaskTracker {
    let config: &TaskConfig = &serve.tasks;
    let tracker = TaskTracker::new();
    tracker.spawn(sweep_holds(
        state.clone(),
        config.sweep_interval,
        token.clone(),
    ));
    tracker.spawn(purge_idempotency(
        state.clone(),
        config.idempotency_retention,
        token.clone(),
    ));
    tracker.spawn(vacancy_events::relay::run(
        state.store.clone(),
        bus.clone(),
        serve.relay.clone(),
        state.events_wake.clone(),
        token.clone(),
    ));
    let reads = state.reads.clone();
    tracker.spawn(vacancy_events::consume::run(
        bus,
        token.clone(),
        move |delivery| {
            let reads = reads.clone();
            async move {
                match delivery {
                    Delivery::Event(event) => reads.apply(&event.listing_id, event.version).await,
                    Delivery::Gap => {
                        tracing::warn!("missed events; dropping every cached calendar");
                        reads.invalidate_all();
                    }
                }
            }
        },
    ));
    let reads = state.reads.clone();
    let stop = token.clone();
    tracker.spawn(async move { reads.keep_hot(stop.cancelled()).await });
    tracker.close();
    tracker
}

async fn sweep_holds(state: AppState, every: Duration, token: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state
            .store
            .expire_holds(state.clock.now(), SWEEP_BATCH)
            .await
        {
            Ok(0) => {}
            Ok(released) => {
                metrics::counter!("vacancy_holds_expired_total").increment(released as u64);
                tracing::debug!(released, "released expired holds");
            }
            Err(error) => tracing::warn!(%error, "hold sweep failed; retrying next tick"),
        }
    }
}

async fn purge_idempotency(state: AppState, retention: Duration, token: CancellationToken) {
    let retention = SignedDuration::try_from(retention.max(Duration::from_secs(24 * 60 * 60)))
        .unwrap_or(SignedDuration::from_hours(48));
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = state
            .clock
            .now()
            .checked_sub(retention)
            .unwrap_or(jiff::Timestamp::MIN);
        match state.store.purge_idempotency(before).await {
            Ok(purged) if purged > 0 => tracing::info!(purged, "purged old idempotency records"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "idempotency purge failed; retrying later"),
        }
    }
}
