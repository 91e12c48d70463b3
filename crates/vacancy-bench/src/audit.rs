//! The overbooking check the contend scenario ends with: [`Store::audit`] recomputes, from the
//! claims alone, what every night of every listing holds, and reports nights where active
//! claims exceed the listing's units (or the ledger counts less than the claims take).
//!
//! It reads the database directly, so it can only run when the harness can reach it: always for
//! an in-process service, with `--audit-database-url` for a running one.

use jiff::Timestamp;
use vacancy_store::{Store, StoreError};

/// Most findings a report lists by name.
const EXAMPLES: usize = 5;

/// What the audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOutcome {
    /// Nights (listing × night) that break the invariant.
    pub overbooked_nights: u64,
    /// The first few of them, readable.
    pub examples: Vec<String>,
}

/// Audits every listing and night at `now`.
pub async fn audit_overbookings(store: &Store, now: Timestamp) -> Result<AuditOutcome, StoreError> {
    let findings = store.audit(now).await?;
    Ok(AuditOutcome {
        overbooked_nights: findings.len() as u64,
        examples: findings
            .iter()
            .take(EXAMPLES)
            .map(|f| {
                if f.claimed > f.units {
                    format!(
                        "listing {} night {}: active claims take {} units of {}",
                        f.listing_id, f.night, f.claimed, f.units
                    )
                } else {
                    format!(
                        "listing {} night {}: the ledger counts less than the {} units claimed",
                        f.listing_id, f.night, f.claimed
                    )
                }
            })
            .collect(),
    })
}
