//! The read path: listing calendars served from an in-process L1, backed by an optional
//! shared L2 (Redis), backed by the store.
//!
//! An entry holds one listing, its calendar over a horizon of about 18 months and the live
//! holds counted in it, all of one `version`. Reads slice the calendar to the asked range and
//! stop counting holds that have expired since the entry was loaded, so an entry never needs
//! reloading just because time passed.
//!
//! Freshness: every replica applies the event stream ([`ReadPath::apply`]); an entry older than
//! the newest version seen for its listing is reloaded before it is served, and a read may ask
//! for a minimum version (read-your-writes). Concurrent misses on one listing are coalesced into
//! one load; an entry past its soft age is served while one background refresh runs.
//!
//! This crate never writes to the database and never decides availability: it only keeps
//! copies of what the store says, and the core decides.

mod entry;
mod hot;
mod l1;
mod loads;
mod read_path;
mod shared;

pub use entry::Entry;
pub use read_path::{CacheConfig, CacheStats, ReadOptions, ReadPath, Source, View};
pub use shared::{SharedCache, Versioned};
