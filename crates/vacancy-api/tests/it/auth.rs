//! Authentication and authorization: which tokens are accepted, and the matrix of every
//! endpoint × every role (and no token) × own / foreign resource.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vacancy_api::Role;
use vacancy_api::auth::dev::{DevKeys, MintClaims};
use vacancy_store::Backend;

use crate::helpers::{TestApp, claims, keys, spawn, token};

/// Who calls: no token, or a role with a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    As(Role),
}

const CALLERS: [Who; 5] = [
    Who::Nobody,
    Who::As(Role::Guest),
    Who::As(Role::Host),
    Who::As(Role::Service),
    Who::As(Role::Admin),
];

/// The subject each role calls as. "Own" resources belong to these; "foreign" ones to others.
fn subject(role: Role) -> &'static str {
    match role {
        Role::Guest => "guest-a",
        Role::Host => "host-a",
        Role::Service => "search-1",
        Role::Admin => "root",
    }
}

fn token_of(who: Who) -> Option<String> {
    match who {
        Who::Nobody => None,
        Who::As(role) => Some(token(role, subject(role))),
    }
}

/// The world the matrix runs in: listing A belongs to host-a, listing B to host-b; the
/// guest-a stays are on A, the guest-b stays on B.
struct World {
    own_listing: String,
    foreign_listing: String,
}

async fn world(app: &TestApp) -> World {
    let mut ids = Vec::new();
    for host in ["host-a", "host-b"] {
        ids.push(app.listing(100, json!({ "host_id": host })).await);
    }
    World {
        own_listing: ids[0].clone(),
        foreign_listing: ids[1].clone(),
    }
}

/// Places a hold (or booking) as admin for `guest` on `listing`; returns its id.
async fn stay(app: &TestApp, path: &str, listing: &str, guest: &str, n: u32) -> String {
    let (check_in, check_out) = nights(n);
    let reply = app
        .post(
            path,
            &json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out, "guest_id": guest }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_str().expect("id").to_owned()
}

/// A distinct one-night stay per `n`, so no call of the matrix conflicts with another.
fn nights(n: u32) -> (String, String) {
    let start: jiff::civil::Date = "2030-03-01".parse().expect("date");
    let check_in = start + jiff::Span::new().days(i64::from(n));
    let check_out = check_in + jiff::Span::new().days(1);
    (check_in.to_string(), check_out.to_string())
}

/// One row of the matrix: the expected status for each caller, for the caller's own resource
/// and for someone else's.
struct Row {
    name: &'static str,
    /// Statuses for Nobody, Guest, Host, Service, Admin — own resource.
    own: [u16; 5],
    /// The same for a foreign resource.
    foreign: [u16; 5],
}

const MATRIX: &[Row] = &[
    Row {
        name: "create listing",
        own: [401, 403, 201, 403, 201],
        foreign: [401, 403, 403, 403, 201],
    },
    Row {
        name: "read listing",
        own: [401, 200, 200, 200, 200],
        foreign: [401, 200, 200, 200, 200],
    },
    Row {
        name: "update listing",
        own: [401, 403, 200, 403, 200],
        foreign: [401, 403, 403, 403, 200],
    },
    Row {
        name: "add block",
        own: [401, 403, 201, 403, 201],
        foreign: [401, 403, 403, 403, 201],
    },
    Row {
        name: "list blocks",
        own: [401, 403, 200, 403, 200],
        foreign: [401, 403, 403, 403, 200],
    },
    Row {
        name: "remove blocks",
        own: [401, 403, 200, 403, 200],
        foreign: [401, 403, 403, 403, 200],
    },
    Row {
        name: "calendar",
        own: [401, 200, 200, 200, 200],
        foreign: [401, 200, 200, 200, 200],
    },
    Row {
        name: "availability",
        own: [401, 200, 200, 200, 200],
        foreign: [401, 200, 200, 200, 200],
    },
    Row {
        name: "batch",
        own: [401, 200, 200, 200, 200],
        foreign: [401, 200, 200, 200, 200],
    },
    Row {
        name: "place hold",
        own: [401, 201, 403, 403, 201],
        foreign: [401, 403, 403, 403, 201],
    },
    Row {
        name: "read hold",
        own: [401, 200, 200, 403, 200],
        foreign: [401, 404, 404, 403, 200],
    },
    Row {
        name: "confirm hold",
        own: [401, 201, 403, 403, 201],
        foreign: [401, 404, 403, 403, 201],
    },
    Row {
        name: "release hold",
        own: [401, 200, 403, 403, 200],
        foreign: [401, 404, 403, 403, 200],
    },
    Row {
        name: "book",
        own: [401, 201, 403, 403, 201],
        foreign: [401, 403, 403, 403, 201],
    },
    Row {
        name: "read booking",
        own: [401, 200, 200, 403, 200],
        foreign: [401, 404, 404, 403, 200],
    },
    Row {
        name: "cancel booking",
        own: [401, 200, 403, 403, 200],
        foreign: [401, 404, 403, 403, 200],
    },
    Row {
        name: "audit",
        own: [401, 403, 403, 403, 200],
        foreign: [401, 403, 403, 403, 200],
    },
];

/// The request a row makes for `who`, on own or foreign resources. Holds and bookings a
/// request changes are made fresh for it (by the admin) so every call starts from the same
/// state.
async fn request(
    app: &TestApp,
    world: &World,
    row: &str,
    who: Who,
    own: bool,
    n: u32,
) -> (Method, String, Option<Value>) {
    let listing = if own {
        &world.own_listing
    } else {
        &world.foreign_listing
    };
    // Whose stays: the own guest's on the own listing, another guest's on the other one.
    let (guest, stay_listing) = if own {
        ("guest-a", &world.own_listing)
    } else {
        ("guest-b", &world.foreign_listing)
    };
    let party = match who {
        Who::As(role) if own => Value::from(subject(role)),
        _ => Value::from(if row == "create listing" {
            "host-b"
        } else {
            "guest-b"
        }),
    };
    let (check_in, check_out) = nights(n);
    match row {
        "create listing" => {
            let mut body = json!({ "time_zone": "Europe/Lisbon", "units": 1 });
            if !own {
                body["host_id"] = party;
            }
            (Method::POST, "/v1/listings".into(), Some(body))
        }
        "read listing" => (Method::GET, format!("/v1/listings/{listing}"), None),
        "update listing" => (
            Method::PATCH,
            format!("/v1/listings/{listing}"),
            Some(json!({ "min_nights": 1 })),
        ),
        "add block" => (
            Method::POST,
            format!("/v1/listings/{listing}/blocks"),
            Some(json!({ "start": check_in, "end": check_out, "units": 1 })),
        ),
        "list blocks" => (
            Method::GET,
            format!("/v1/listings/{listing}/blocks?start=2030-03-01&end=2030-04-01"),
            None,
        ),
        "remove blocks" => (
            Method::DELETE,
            format!("/v1/listings/{listing}/blocks?start=2031-01-01&end=2031-01-02"),
            None,
        ),
        "calendar" => (
            Method::GET,
            format!("/v1/listings/{listing}/calendar?start=2030-03-01&end=2030-04-01"),
            None,
        ),
        "availability" => (
            Method::GET,
            format!(
                "/v1/listings/{listing}/availability?check_in={check_in}&check_out={check_out}"
            ),
            None,
        ),
        "batch" => (
            Method::POST,
            "/v1/availability/batch".into(),
            Some(json!({ "listing_ids": [listing], "check_in": check_in, "check_out": check_out })),
        ),
        "place hold" | "book" => {
            let mut body = json!({ "listing_id": world.own_listing, "check_in": check_in, "check_out": check_out });
            if !own {
                body["guest_id"] = party;
            }
            let path = if row == "book" {
                "/v1/bookings"
            } else {
                "/v1/holds"
            };
            (Method::POST, path.into(), Some(body))
        }
        "read hold" | "confirm hold" | "release hold" => {
            let id = stay(app, "/v1/holds", stay_listing, guest, n).await;
            let path = match row {
                "read hold" => format!("/v1/holds/{id}"),
                "confirm hold" => format!("/v1/holds/{id}/confirm"),
                _ => format!("/v1/holds/{id}/release"),
            };
            let method = if row == "read hold" {
                Method::GET
            } else {
                Method::POST
            };
            (method, path, None)
        }
        "read booking" | "cancel booking" => {
            let id = stay(app, "/v1/bookings", stay_listing, guest, n).await;
            if row == "read booking" {
                (Method::GET, format!("/v1/bookings/{id}"), None)
            } else {
                (Method::POST, format!("/v1/bookings/{id}/cancel"), None)
            }
        }
        "audit" => (
            Method::GET,
            format!("/v1/audit?listing_id={listing}&limit=10"),
            None,
        ),
        other => panic!("no request for {other}"),
    }
}

async fn the_authorization_matrix_holds(backend: Backend) {
    let app = spawn(backend).await;
    let world = world(&app).await;
    let mut n = 0;
    let mut failures = Vec::new();
    for row in MATRIX {
        for own in [true, false] {
            for (i, who) in CALLERS.into_iter().enumerate() {
                n += 1;
                let (method, path, body) = request(&app, &world, row.name, who, own, n).await;
                let events_before = app.events().await;
                let reply = app
                    .send_as(
                        token_of(who).as_deref(),
                        method.clone(),
                        &path,
                        body.as_ref(),
                    )
                    .await;
                let expected = if own { row.own[i] } else { row.foreign[i] };
                if reply.status.as_u16() != expected {
                    failures.push(format!(
                        "{} ({}) as {who:?}: {method} {path} → {} (expected {expected}) {}",
                        row.name,
                        if own { "own" } else { "foreign" },
                        reply.status,
                        reply.body
                    ));
                }
                if reply.status.is_client_error() {
                    assert_eq!(
                        app.events().await,
                        events_before,
                        "a refused {} wrote something",
                        row.name
                    );
                    let slug = match reply.status.as_u16() {
                        401 => "unauthenticated",
                        403 => "forbidden",
                        _ => reply.problem(),
                    };
                    assert_eq!(reply.problem(), slug, "{}: {}", row.name, reply.body);
                }
                if reply.status == StatusCode::UNAUTHORIZED {
                    let challenge = reply
                        .headers
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok());
                    assert_eq!(challenge, Some("Bearer"), "{}", row.name);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix broken:\n{}",
        failures.join("\n")
    );
    app.assert_no_overbooking().await;
}

/// A foreign hold or booking and a missing one answer the same to a guest or host.
async fn foreign_stays_are_indistinguishable_from_missing_ones(backend: Backend) {
    let app = spawn(backend).await;
    let world = world(&app).await;
    let hold = stay(&app, "/v1/holds", &world.foreign_listing, "guest-b", 1).await;
    let booking = stay(&app, "/v1/bookings", &world.foreign_listing, "guest-b", 2).await;
    for role in [Role::Guest, Role::Host] {
        let t = token(role, subject(role));
        for (kind, id) in [("holds", &hold), ("bookings", &booking)] {
            for suffix in [
                "",
                if kind == "holds" {
                    "/release"
                } else {
                    "/cancel"
                },
            ] {
                if role == Role::Host && !suffix.is_empty() {
                    continue; // hosts may not change stays at all: a 403 by role, tested above
                }
                let method = if suffix.is_empty() {
                    Method::GET
                } else {
                    Method::POST
                };
                let foreign = app
                    .send_as(
                        Some(&t),
                        method.clone(),
                        &format!("/v1/{kind}/{id}{suffix}"),
                        None,
                    )
                    .await;
                let missing = app
                    .send_as(
                        Some(&t),
                        method,
                        &format!("/v1/{kind}/no-such-id{suffix}"),
                        None,
                    )
                    .await;
                assert_eq!(
                    foreign.status,
                    StatusCode::NOT_FOUND,
                    "{kind}{suffix} as {role:?}"
                );
                assert_eq!(foreign.status, missing.status);
                assert_eq!(foreign.body, missing.body, "{kind}{suffix} as {role:?}");
            }
        }
    }
    // Nothing was released or cancelled by those attempts.
    let admin_view = app.get(&format!("/v1/bookings/{booking}")).await;
    assert_eq!(admin_view.body["state"], "active", "{}", admin_view.body);
}

/// A guest's stay is theirs even when the body names no guest; naming another is refused.
async fn guests_act_only_for_themselves(backend: Backend) {
    let app = spawn(backend).await;
    let world = world(&app).await;
    let guest = token(Role::Guest, "guest-a");
    let (check_in, check_out) = nights(5);
    let body =
        json!({ "listing_id": world.own_listing, "check_in": check_in, "check_out": check_out });
    let reply = app
        .send_as(Some(&guest), Method::POST, "/v1/bookings", Some(&body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["guest_id"], "guest-a");
    let mut named = body.clone();
    named["guest_id"] = "guest-a".into();
    let (check_in, check_out) = nights(6);
    named["check_in"] = check_in.into();
    named["check_out"] = check_out.into();
    let reply = app
        .send_as(Some(&guest), Method::POST, "/v1/bookings", Some(&named))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    named["guest_id"] = "guest-b".into();
    let reply = app
        .send_as(Some(&guest), Method::POST, "/v1/bookings", Some(&named))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    // Hosts own what they create.
    let host = token(Role::Host, "host-z");
    let reply = app
        .send_as(
            Some(&host),
            Method::POST,
            "/v1/listings",
            Some(&json!({ "time_zone": "UTC", "units": 1 })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["host_id"], "host-z");
}

/// The same Idempotency-Key from two subjects is two different requests.
async fn idempotency_keys_are_scoped_per_subject(backend: Backend) {
    let app = spawn(backend).await;
    let world = world(&app).await;
    let mut ids = Vec::new();
    for (guest, n) in [("guest-a", 1), ("guest-b", 2)] {
        let (check_in, check_out) = nights(n);
        let body = json!({ "listing_id": world.own_listing, "check_in": check_in, "check_out": check_out });
        for _ in 0..2 {
            let reply = app
                .http_as(&token(Role::Guest, guest))
                .post(format!("{}/v1/bookings", app.base))
                .header("Idempotency-Key", "same-key")
                .json(&body)
                .send()
                .await
                .expect("request");
            assert_eq!(reply.status(), StatusCode::CREATED);
            let body: Value = reply.json().await.expect("json");
            assert_eq!(body["guest_id"], guest);
            ids.push(body["id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(ids[0], ids[1], "a replay for the same subject");
    assert_eq!(ids[2], ids[3], "a replay for the same subject");
    assert_ne!(ids[0], ids[2], "different subjects never share a key");
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Every kind of bad token is a 401 problem with a Bearer challenge, and writes nothing.
async fn bad_tokens_are_rejected(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let now = app.now().as_second();
    let good = token(Role::Admin, "root");
    let mut cases: Vec<(&str, String)> = Vec::new();
    let with = |edit: &dyn Fn(&mut MintClaims)| {
        let mut c = claims(Role::Admin, "root");
        edit(&mut c);
        keys().mint(&c).expect("mint")
    };
    cases.push(("expired", with(&|c| c.exp = now - 31)));
    cases.push(("not yet valid", with(&|c| c.nbf = Some(now + 31))));
    cases.push(("wrong issuer", with(&|c| c.iss = "someone-else".into())));
    cases.push(("wrong audience", with(&|c| c.aud = "another-api".into())));
    cases.push(("unknown role", with(&|c| c.role = "superuser".into())));
    cases.push(("unusable subject", with(&|c| c.sub = "not an id!".into())));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("payload")).expect("json");
    payload["role"] = "admin".into();
    payload["sub"] = "mallory".into();
    parts[1] = b64(&payload);
    cases.push(("tampered payload", parts.join(".")));
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({ "alg": "none", "typ": "JWT" })),
            b64(&payload)
        ),
    ));
    cases.push((
        "alg none, no dot",
        format!("{}.{}", b64(&json!({ "alg": "none" })), b64(&payload)),
    ));
    // An HMAC token whose "secret" is the public key: the classic algorithm confusion.
    let public = keys().jwks();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(Role::Admin, "root"),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("hs256");
    cases.push(("HS256 with the public key", hs));
    let stranger = DevKeys::generate().expect("keys");
    cases.push((
        "someone else's key",
        stranger.mint(&claims(Role::Admin, "root")).expect("mint"),
    ));
    cases.push(("garbage", "abc.def.ghi".into()));
    cases.push(("empty", String::new()));
    let events = app.events().await;
    for (name, bad) in &cases {
        for (method, path, body) in [
            (Method::GET, format!("/v1/listings/{listing}"), None),
            (
                Method::POST,
                "/v1/bookings".to_owned(),
                Some(
                    json!({ "listing_id": listing, "check_in": "2030-02-01", "check_out": "2030-02-02", "guest_id": "g" }),
                ),
            ),
        ] {
            let reply = app.send_as(Some(bad), method, &path, body.as_ref()).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {}",
                reply.body
            );
            assert_eq!(reply.problem(), "unauthenticated", "{name}");
            assert!(reply.content_type().starts_with("application/problem+json"));
            let challenge = reply
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
        }
    }
    // Not a bearer scheme at all.
    let reply = app
        .http_as("ignored")
        .get(format!("{}/v1/listings/{listing}", app.base))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.events().await,
        events,
        "a rejected token wrote something"
    );
    // Within the 30 s skew is fine, on the service's clock.
    let lenient = with(&|c| {
        c.exp = now - 10;
        c.nbf = Some(now + 10);
    });
    let reply = app
        .send_as(
            Some(&lenient),
            Method::GET,
            &format!("/v1/listings/{listing}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // A token valid now stops working when the service's clock passes its expiry.
    let short = with(&|c| c.exp = now + 60);
    let path = format!("/v1/listings/{listing}");
    assert_eq!(
        app.send_as(Some(&short), Method::GET, &path, None)
            .await
            .status,
        StatusCode::OK
    );
    app.clock.advance(jiff::SignedDuration::from_secs(91));
    assert_eq!(
        app.send_as(Some(&short), Method::GET, &path, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// Operations endpoints need no token; unknown routes are 404 with or without one.
async fn operations_endpoints_stay_open(backend: Backend) {
    let app = spawn(backend).await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let reply = app.send_as(None, Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let reply = app.send_as(None, Method::GET, "/v1/nowhere", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let spec = app.get("/openapi.json").await.body;
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
    assert!(spec["paths"]["/v1/audit"]["get"].is_object());
    assert_eq!(spec["paths"]["/healthz"]["get"]["security"], json!([{}]));
}

crate::backend_tests!(
    the_authorization_matrix_holds,
    foreign_stays_are_indistinguishable_from_missing_ones,
    guests_act_only_for_themselves,
    idempotency_keys_are_scoped_per_subject,
    bad_tokens_are_rejected,
    operations_endpoints_stay_open,
);

/// EdDSA (Ed25519) keys work next to ES256 ones, each picked by its `kid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_are_accepted_from_the_jwks() {
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
    let ed_jwk = json!({ "kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(ed.public_key_raw()) });
    let mut jwks: Value = serde_json::from_str(&keys().jwks()).expect("jwks");
    jwks["keys"].as_array_mut().expect("keys").push(ed_jwk);
    let url = vacancy_store::testing::fresh_database_url(Backend::Sqlite)
        .await
        .expect("db");
    let mut config = crate::helpers::test_config(&url);
    config.auth.jwks_inline = Some(jwks.to_string());
    let clock = std::sync::Arc::new(vacancy_api::ManualClock::new(
        crate::helpers::START.parse().expect("start"),
    ));
    let app = crate::helpers::spawn_config(config, clock).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("ed-1".into());
    let key = jsonwebtoken::EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).expect("pem");
    let ed_token =
        jsonwebtoken::encode(&header, &claims(Role::Admin, "ed-admin"), &key).expect("sign");
    let reply = app
        .send_as(Some(&ed_token), Method::GET, "/v1/audit", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // The ES256 key still works, and an EdDSA token naming the ES256 key's kid does not.
    let reply = app
        .send_as(
            Some(&token(Role::Admin, "root")),
            Method::GET,
            "/v1/audit",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    header.kid = Some(keys().kid().to_owned());
    let confused =
        jsonwebtoken::encode(&header, &claims(Role::Admin, "ed-admin"), &key).expect("sign");
    let reply = app
        .send_as(Some(&confused), Method::GET, "/v1/audit", None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}
