//! Many clients racing for the same nights through several replicas (separate servers and
//! connection pools on one database): never more winners than units.

use std::collections::HashMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::json;
use vacancy_store::Backend;

use crate::helpers::{TestApp, spawn, spawn_on};

/// The first app plus two more replicas on its database.
async fn three_replicas(backend: Backend) -> Vec<Arc<TestApp>> {
    let first = spawn(backend).await;
    let second = spawn_on(&first.database_url, first.clock.clone()).await;
    let third = spawn_on(&first.database_url, first.clock.clone()).await;
    vec![Arc::new(first), Arc::new(second), Arc::new(third)]
}

/// 64 clients, spread over the replicas, each booking `[check_in, check_out)` once.
async fn race(
    replicas: &[Arc<TestApp>],
    stays: Vec<(String, String)>,
    listing: &str,
) -> Vec<(StatusCode, serde_json::Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(stays.len()));
    let mut clients = Vec::new();
    for (i, (check_in, check_out)) in stays.into_iter().enumerate() {
        let app = replicas[i % replicas.len()].clone();
        let (barrier, listing) = (barrier.clone(), listing.to_owned());
        clients.push(tokio::spawn(async move {
            let body = json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out, "guest_id": format!("guest-{i}") });
            barrier.wait().await;
            let reply = app.post("/v1/bookings", &body).await;
            (reply.status, reply.body)
        }));
    }
    let mut results = Vec::new();
    for client in clients {
        results.push(client.await.expect("client"));
    }
    results
}

fn count(results: &[(StatusCode, serde_json::Value)], status: StatusCode) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

async fn sixty_four_clients_one_night_one_winner(backend: Backend) {
    let replicas = three_replicas(backend).await;
    let listing = replicas[0].listing(1, json!({})).await;
    let stays = vec![("2030-02-10".to_owned(), "2030-02-12".to_owned()); 64];
    let results = race(&replicas, stays, &listing).await;
    assert_eq!(count(&results, StatusCode::CREATED), 1, "{results:?}");
    assert_eq!(count(&results, StatusCode::CONFLICT), 63);
    for (status, body) in &results {
        if *status == StatusCode::CONFLICT {
            assert_eq!(body["nights"], json!(["2030-02-10", "2030-02-11"]));
        }
    }
    replicas[0].assert_no_overbooking().await;
}

async fn sixty_four_clients_three_units_three_winners(backend: Backend) {
    let replicas = three_replicas(backend).await;
    let listing = replicas[0].listing(3, json!({})).await;
    let stays = vec![("2030-02-10".to_owned(), "2030-02-13".to_owned()); 64];
    let results = race(&replicas, stays, &listing).await;
    assert_eq!(count(&results, StatusCode::CREATED), 3, "{results:?}");
    assert_eq!(count(&results, StatusCode::CONFLICT), 61);
    assert_eq!(
        replicas[1]
            .remaining(&listing, "2030-02-10", "2030-02-13")
            .await,
        vec![0, 0, 0]
    );
    replicas[0].assert_no_overbooking().await;
}

/// Overlapping but different stays: the winners never exceed the units on any night, and every
/// loser was refused for nights that really are full.
async fn overlapping_ranges_never_exceed_units(backend: Backend) {
    let replicas = three_replicas(backend).await;
    for units in [1u32, 2] {
        let listing = replicas[0].listing(units, json!({})).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(units));
        let stays: Vec<(String, String)> = (0..64)
            .map(|_| {
                let start = rng.random_range(1..=20);
                let end = (start + rng.random_range(1..=5)).min(21);
                (format!("2030-03-{start:02}"), format!("2030-03-{end:02}"))
            })
            .collect();
        let results = race(&replicas, stays.clone(), &listing).await;
        assert_eq!(
            count(&results, StatusCode::CREATED) + count(&results, StatusCode::CONFLICT),
            64,
            "{results:?}"
        );
        let mut per_night: HashMap<String, u32> = HashMap::new();
        for ((status, _), (check_in, check_out)) in results.iter().zip(&stays) {
            if *status == StatusCode::CREATED {
                let (a, b): (u32, u32) = (
                    check_in[8..].parse().expect("day"),
                    check_out[8..].parse().expect("day"),
                );
                for day in a..b {
                    *per_night.entry(format!("2030-03-{day:02}")).or_default() += 1;
                }
            }
        }
        assert!(
            per_night.values().all(|&n| n <= units),
            "overbooked: {per_night:?}"
        );
        let remaining = replicas[2]
            .remaining(&listing, "2030-03-01", "2030-03-21")
            .await;
        for (status, body) in &results {
            if *status == StatusCode::CONFLICT {
                for night in body["nights"].as_array().expect("nights") {
                    let day: usize = night.as_str().expect("date")[8..].parse().expect("day");
                    assert_eq!(
                        remaining[day - 1],
                        0,
                        "refused for {night}, which still has room"
                    );
                }
            }
        }
        for (day, left) in remaining.iter().enumerate() {
            let booked = per_night
                .get(&format!("2030-03-{:02}", day + 1))
                .copied()
                .unwrap_or(0);
            assert_eq!(u64::from(units - booked), *left, "night {}", day + 1);
        }
    }
    replicas[0].assert_no_overbooking().await;
}

crate::backend_tests!(
    sixty_four_clients_one_night_one_winner,
    sixty_four_clients_three_units_three_winners,
    overlapping_ranges_never_exceed_units,
);
