//! Which listings are read most, over a sliding window: a sample of reads is counted, and each
//! window hands its top listings to the refresher and starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts one read in this many, so tracking costs little on the hot path.
const SAMPLE_EVERY: u32 = 8;
/// Most distinct listings counted per window (the rest of a long tail is not hot anyway).
const MAX_TRACKED: usize = 100_000;

pub(crate) struct HotTracker {
    counts: Mutex<HashMap<String, u32>>,
    tick: AtomicU32,
    top: usize,
}

impl HotTracker {
    pub(crate) fn new(top: usize) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            tick: AtomicU32::new(0),
            top,
        }
    }

    /// Notes a read of `listing_id`.
    pub(crate) fn touch(&self, listing_id: &str) {
        if !self
            .tick
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SAMPLE_EVERY)
        {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(listing_id) {
            *n += 1;
        } else if counts.len() < MAX_TRACKED {
            counts.insert(listing_id.to_owned(), 1);
        }
    }

    /// The most-read listings of the window that just ended, most read first; starts a new one.
    pub(crate) fn take_top(&self) -> Vec<String> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        let mut ranked: Vec<(String, u32)> = counts.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(self.top);
        ranked.into_iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_read_listings_come_first_and_the_window_resets() {
        let hot = HotTracker::new(2);
        for _ in 0..800 {
            hot.touch("a");
        }
        for _ in 0..400 {
            hot.touch("b");
        }
        for _ in 0..80 {
            hot.touch("c");
        }
        assert_eq!(hot.take_top(), vec!["a".to_owned(), "b".to_owned()]);
        assert!(hot.take_top().is_empty());
    }
}
