//! Consuming the event stream on every replica.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{Bus, Delivery};

/// Feeds every delivery to `apply` until `stop` is cancelled, recording the freshness lag in
/// `vacancy_freshness_lag_seconds`: from the event's `at_ms` to the moment `apply` returned, so
/// the lag counts the work of applying it (once `apply` returns, this replica's cache no longer
/// serves a copy older than the event).
pub async fn run<F, Fut>(bus: Bus, stop: CancellationToken, mut apply: F)
where
    F: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut deliveries = bus.subscribe();
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => return,
            next = deliveries.next() => match next { Some(d) => d, None => return },
        };
        let at_ms = match &delivery {
            Delivery::Event(event) => Some(event.at_ms),
            Delivery::Gap => None,
        };
        apply(delivery).await;
        if let Some(at_ms) = at_ms {
            let lag_ms = jiff::Timestamp::now().as_millisecond() - at_ms;
            metrics::histogram!("vacancy_freshness_lag_seconds")
                .record(lag_ms.max(0) as f64 / 1000.0);
            metrics::counter!("vacancy_events_consumed_total").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics_exporter_prometheus::PrometheusBuilder;
    use vacancy_store::{Event, OutboxRow};

    use super::*;
    use crate::BusConfig;

    /// The value of an unlabelled sample in a Prometheus scrape.
    fn sample(scrape: &str, name: &str) -> Option<f64> {
        scrape.lines().find_map(|line| {
            let (n, v) = line.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
    }

    #[test]
    fn the_lag_is_recorded_once_the_event_was_applied() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let bus = Bus::connect(&BusConfig::Local).await.expect("bus");
                let stop = CancellationToken::new();
                let (applied_tx, mut applied_rx) = tokio::sync::mpsc::unbounded_channel();
                let consumer = tokio::spawn(run(bus.clone(), stop.clone(), move |delivery| {
                    let applied_tx = applied_tx.clone();
                    async move {
                        // Applying takes a while: the lag must include it.
                        tokio::time::sleep(Duration::from_millis(60)).await;
                        let _ = applied_tx.send(matches!(delivery, Delivery::Event(_)));
                    }
                }));
                // The subscription is made when the consumer first runs.
                tokio::task::yield_now().await;
                let event = Event {
                    kind: "booking.created".into(),
                    listing_id: "l1".into(),
                    version: 2,
                    claim_id: None,
                    nights: None,
                    expired_holds: Vec::new(),
                    at_ms: jiff::Timestamp::now().as_millisecond(),
                };
                let (published, error) = bus.publish(&[OutboxRow { id: 1, event }]).await;
                assert_eq!((published, error.is_none()), (vec![1], true));
                assert_eq!(applied_rx.recv().await, Some(true));
                // Let the consumer record what it measured after `apply` returned.
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                stop.cancel();
                consumer.await.expect("consumer");
            });
        });
        let scrape = handle.render();
        assert_eq!(
            sample(&scrape, "vacancy_freshness_lag_seconds_count"),
            Some(1.0),
            "{scrape}"
        );
        let lag = sample(&scrape, "vacancy_freshness_lag_seconds_sum").expect("a sum");
        assert!(
            lag >= 0.055,
            "the 60 ms of applying are in the lag: {lag} s"
        );
        assert_eq!(sample(&scrape, "vacancy_events_consumed_total"), Some(1.0));
    }
}
