//! Consuming the event stream on every replica.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{Bus, Delivery};

/// Feeds every delivery to `apply` until `stop` is cancelled, recording the freshness lag
/// (commit → handed to `apply`) in `vacancy_freshness_lag_seconds`.
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
        if let Delivery::Event(event) = &delivery {
            let lag_ms = jiff::Timestamp::now().as_millisecond() - event.at_ms;
            metrics::histogram!("vacancy_freshness_lag_seconds")
                .record(lag_ms.max(0) as f64 / 1000.0);
            metrics::counter!("vacancy_events_consumed_total").increment(1);
        }
        apply(delivery).await;
    }
}
