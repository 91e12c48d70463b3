//! The bus: an in-process broadcast channel, or NATS JetStream.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use vacancy_store::{Event, OutboxRow};

/// Where events go.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// In this process only (the embedded default: one replica).
    Local,
    /// NATS JetStream.
    Nats {
        url: String,
        /// Stream name (default `VACANCY_EVENTS`).
        stream: String,
        /// Subject prefix (default `vacancy.events`); a listing's events go to `<prefix>.<listing>`.
        subject_prefix: String,
        /// How long one publish may wait for its acknowledgement.
        publish_timeout: Duration,
    },
}

impl BusConfig {
    pub fn nats(url: impl Into<String>) -> Self {
        BusConfig::Nats {
            url: url.into(),
            stream: "VACANCY_EVENTS".into(),
            subject_prefix: "vacancy.events".into(),
            publish_timeout: Duration::from_secs(2),
        }
    }

    /// The same configuration with another publish acknowledgement timeout (NATS only).
    pub fn with_publish_timeout(self, timeout: Duration) -> Self {
        match self {
            BusConfig::Nats {
                url,
                stream,
                subject_prefix,
                ..
            } => BusConfig::Nats {
                url,
                stream,
                subject_prefix,
                publish_timeout: timeout,
            },
            BusConfig::Local => BusConfig::Local,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to the event stream: {0}")]
    Connect(String),
    #[error("publishing failed: {0}")]
    Publish(String),
    #[error("subscribing failed: {0}")]
    Subscribe(String),
}

/// One event as a consumer receives it.
#[derive(Debug, Clone)]
pub enum Delivery {
    Event(Event),
    /// Events were missed (a slow local subscriber): every cached copy may be stale.
    Gap,
}

/// A connected bus. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Local(broadcast::Sender<Event>),
    Nats(Box<NatsBus>),
}

#[derive(Clone)]
struct NatsBus {
    js: jetstream::Context,
    client: async_nats::Client,
    stream: String,
    prefix: String,
    timeout: Duration,
}

/// Room for a burst of events before a slow local subscriber misses some.
const LOCAL_CAPACITY: usize = 16_384;

impl Bus {
    /// Connects. For NATS the connection is retried in the background, so the service starts
    /// (and keeps its outbox) while NATS is down; the stream is created when first reachable.
    pub async fn connect(config: &BusConfig) -> Result<Self, BusError> {
        match config {
            BusConfig::Local => Ok(Self {
                inner: Inner::Local(broadcast::channel(LOCAL_CAPACITY).0),
            }),
            BusConfig::Nats {
                url,
                stream,
                subject_prefix,
                publish_timeout,
            } => {
                let client = async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(url.as_str())
                    .await
                    .map_err(|e| BusError::Connect(e.to_string()))?;
                let js = jetstream::new(client.clone());
                let bus = Self {
                    inner: Inner::Nats(Box::new(NatsBus {
                        js,
                        client,
                        stream: stream.clone(),
                        prefix: subject_prefix.clone(),
                        timeout: *publish_timeout,
                    })),
                };
                if let Err(error) = bus.ensure_stream().await {
                    tracing::warn!(%error, "event stream not reachable yet; events wait in the outbox");
                }
                Ok(bus)
            }
        }
    }

    async fn ensure_stream(&self) -> Result<(), BusError> {
        let Inner::Nats(nats) = &self.inner else {
            return Ok(());
        };
        let NatsBus {
            js,
            stream,
            prefix,
            timeout,
            ..
        } = nats.as_ref();
        let config = jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        tokio::time::timeout(*timeout, js.get_or_create_stream(config))
            .await
            .map_err(|_| BusError::Connect("timed out creating the stream".into()))?
            .map_err(|e| BusError::Connect(e.to_string()))?;
        Ok(())
    }

    /// Publishes rows in order. Returns the ids of the leading rows the bus acknowledged (all of
    /// them, or a prefix when it failed part-way); the error, if any, comes with that prefix.
    pub async fn publish(&self, rows: &[OutboxRow]) -> (Vec<i64>, Option<BusError>) {
        match &self.inner {
            Inner::Local(tx) => {
                for row in rows {
                    // No subscriber is fine: nobody is listening in this process yet.
                    let _ = tx.send(row.event.clone());
                }
                (rows.iter().map(|r| r.id).collect(), None)
            }
            Inner::Nats(nats) => {
                let NatsBus {
                    js,
                    prefix,
                    timeout,
                    ..
                } = nats.as_ref();
                let mut acks = Vec::with_capacity(rows.len());
                for row in rows {
                    let subject = format!("{prefix}.{}", subject_token(&row.event.listing_id));
                    let mut headers = async_nats::HeaderMap::new();
                    // JetStream drops a message whose id it saw within its duplicate window, so
                    // a relay that retries after a lost acknowledgement publishes nothing twice.
                    headers.insert("Nats-Msg-Id", row.id.to_string().as_str());
                    let payload = serde_json::to_vec(&row.event).unwrap_or_default();
                    match tokio::time::timeout(
                        *timeout,
                        js.publish_with_headers(subject, headers, payload.into()),
                    )
                    .await
                    {
                        Ok(Ok(ack)) => acks.push((row.id, ack)),
                        Ok(Err(e)) => {
                            return self
                                .finish(acks, Some(BusError::Publish(e.to_string())), *timeout)
                                .await;
                        }
                        Err(_) => {
                            return self
                                .finish(
                                    acks,
                                    Some(BusError::Publish("publish timed out".into())),
                                    *timeout,
                                )
                                .await;
                        }
                    }
                }
                self.finish(acks, None, *timeout).await
            }
        }
    }

    async fn finish(
        &self,
        acks: Vec<(i64, jetstream::context::PublishAckFuture)>,
        mut error: Option<BusError>,
        timeout: Duration,
    ) -> (Vec<i64>, Option<BusError>) {
        let mut done = Vec::with_capacity(acks.len());
        for (id, ack) in acks {
            match tokio::time::timeout(timeout, ack.into_future()).await {
                Ok(Ok(_)) => done.push(id),
                Ok(Err(e)) => {
                    error.get_or_insert(BusError::Publish(e.to_string()));
                    break;
                }
                Err(_) => {
                    error.get_or_insert(BusError::Publish("acknowledgement timed out".into()));
                    break;
                }
            }
        }
        if error.is_some() {
            let _ = self.ensure_stream().await;
        }
        (done, error)
    }

    /// Events from now on. A NATS subscription resumes after the last event it delivered when
    /// the connection comes back.
    pub fn subscribe(&self) -> BoxStream<'static, Delivery> {
        match &self.inner {
            Inner::Local(tx) => {
                let rx = tx.subscribe();
                futures::stream::unfold(rx, |mut rx| async move {
                    match rx.recv().await {
                        Ok(event) => Some((Delivery::Event(event), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => Some((Delivery::Gap, rx)),
                        Err(broadcast::error::RecvError::Closed) => None,
                    }
                })
                .boxed()
            }
            Inner::Nats(nats) => {
                let NatsBus {
                    js,
                    client,
                    stream,
                    prefix,
                    ..
                } = nats.as_ref();
                let state = NatsSubscription {
                    js: js.clone(),
                    client: client.clone(),
                    stream: stream.clone(),
                    filter: format!("{prefix}.>"),
                    next_sequence: None,
                    messages: None,
                };
                futures::stream::unfold(state, |mut state| async move {
                    let delivery = state.next().await;
                    Some((delivery, state))
                })
                .boxed()
            }
        }
    }
}

/// A JetStream ordered consumer that is recreated after failures, resuming at the next stream
/// sequence it has not delivered.
struct NatsSubscription {
    js: jetstream::Context,
    client: async_nats::Client,
    stream: String,
    filter: String,
    next_sequence: Option<u64>,
    messages: Option<jetstream::consumer::push::Ordered>,
}

impl NatsSubscription {
    async fn next(&mut self) -> Delivery {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.messages.is_none() {
                let opening = open_ordered(
                    self.js.clone(),
                    self.client.clone(),
                    self.stream.clone(),
                    self.filter.clone(),
                    self.next_sequence,
                );
                match opening.await {
                    Ok(messages) => self.messages = Some(messages),
                    Err(error) => {
                        tracing::debug!(%error, "event subscription not ready; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                }
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    if let Ok(info) = message.info() {
                        self.next_sequence = Some(info.stream_sequence + 1);
                    }
                    match serde_json::from_slice::<Event>(&message.payload) {
                        Ok(event) => return Delivery::Event(event),
                        Err(error) => tracing::warn!(%error, "undecodable event skipped"),
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "event subscription interrupted; resubscribing");
                    self.messages = None;
                }
                None => self.messages = None,
            }
        }
    }
}

/// Creates an ordered push consumer starting after `next_sequence` (or at new messages).
async fn open_ordered(
    js: jetstream::Context,
    client: async_nats::Client,
    stream: String,
    filter: String,
    next_sequence: Option<u64>,
) -> Result<jetstream::consumer::push::Ordered, BusError> {
    {
        let stream = js
            .get_stream(&stream)
            .await
            .map_err(|e| BusError::Subscribe(e.to_string()))?;
        let deliver_policy = match next_sequence {
            Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            None => DeliverPolicy::New,
        };
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: filter,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::Subscribe(e.to_string()))?;
        consumer
            .messages()
            .await
            .map_err(|e| BusError::Subscribe(e.to_string()))
    }
}

/// A listing id as one subject token: ids may hold `.` (a token separator) and `:`; both are
/// replaced so every listing has exactly one subject.
fn subject_token(listing_id: &str) -> String {
    listing_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '~'
            }
        })
        .collect()
}
