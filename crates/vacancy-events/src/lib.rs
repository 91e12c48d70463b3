//! The event path: every committed change leaves the outbox table, in commit order, for an
//! event stream that every replica (and any other consumer) subscribes to.
//!
//! - [`Bus`]: where events go — an in-process broadcast channel on the embedded default, NATS
//!   JetStream in production (one stream, one subject per listing).
//! - [`relay::run`]: moves outbox rows to the bus. Only the holder of a database lease relays,
//!   so rows leave in order however many replicas run; a row is marked published only after
//!   the bus acknowledged it, so nothing is lost when the bus is down — rows wait and drain
//!   when it returns. Delivery is at least once: consumers are idempotent by listing version.
//! - [`consume::run`]: hands every event to a callback and measures freshness lag.
//!
//! This crate never changes listings or claims; it only reads and marks the outbox.

mod bus;
pub mod consume;
pub mod relay;

pub use bus::{Bus, BusConfig, BusError, Delivery};
