//! The edge itself: TLS and mTLS with certificates made here (rcgen), keys from a JWKS URL
//! that rotates, hostile clients (slow or oversized heads), and metrics on their own listener.
//! These exercise the listener, not the database, so they run on SQLite only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vacancy_api::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevKeys};
use vacancy_api::{Application, AuthConfig, ManualClock, Role, TlsConfig};
use vacancy_store::Backend;
use vacancy_store::testing::fresh_database_url;

use crate::helpers::{START, claims, spawn_config, test_config, token};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START.parse().expect("start")))
}

/// A CA and what it signed, written as PEM files into a fresh folder.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

struct Issued {
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new(name: &str) -> (Self, rcgen::Certificate, KeyPair) {
        let dir = std::env::temp_dir()
            .join("vacancy-tests")
            .join(format!("pki-{name}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = params.self_signed(&key).expect("ca cert");
        let pki = Self {
            dir,
            ca_pem: ca.pem(),
        };
        (pki, ca, key)
    }

    fn issue(
        ca: &rcgen::Certificate,
        ca_key: &KeyPair,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Issued {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, ca, ca_key).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).expect("write pem");
        path
    }
}

fn https_client(ca_pem: &str, identity: Option<&Issued>) -> reqwest::Client {
    vacancy_api::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"));
    if let Some(id) = identity {
        let pem = format!("{}{}", id.cert_pem, id.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

async fn tls_app(client_ca: Option<&Path>) -> (crate::helpers::TestApp, Pki, Issued, Issued) {
    let (pki, ca, ca_key) = Pki::new("server");
    let server = Pki::issue(
        &ca,
        &ca_key,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = Pki::issue(
        &ca,
        &ca_key,
        &["search-backend"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let url = fresh_database_url(Backend::Sqlite).await.expect("db");
    let mut config = test_config(&url);
    config.tls = Some(TlsConfig {
        cert: pki.write("server.pem", &server.cert_pem),
        key: pki.write("server.key", &server.key_pem),
        client_ca: client_ca.map(|_| pki.write("ca.pem", &pki.ca_pem)),
    });
    let app = spawn_config(config, clock()).await;
    (app, pki, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls() {
    let (app, pki, _server, _client) = tls_app(None).await;
    assert!(app.base.starts_with("https://"));
    let client = https_client(&pki.ca_pem, None);
    let reply = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("https request");
    assert_eq!(reply.status(), StatusCode::OK);
    let reply = client
        .get(format!("{}/v1/audit", app.base))
        .bearer_auth(token(Role::Admin, "root"))
        .send()
        .await
        .expect("https request");
    assert_eq!(reply.status(), StatusCode::OK);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(app.base.replacen("https://", "http://", 1) + "/healthz")
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
    // A client that does not trust the server's CA refuses it.
    let (other, _, _) = Pki::new("stranger");
    assert!(
        https_client(&other.ca_pem, None)
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    let (app, pki, _server, client) = tls_app(Some(Path::new("ca"))).await;
    let with_cert = https_client(&pki.ca_pem, Some(&client));
    let reply = with_cert
        .get(format!("{}/v1/audit", app.base))
        .bearer_auth(token(Role::Admin, "root"))
        .send()
        .await
        .expect("mTLS request");
    assert_eq!(reply.status(), StatusCode::OK);
    // mTLS authenticates the connection, not the caller: a token is still required.
    let reply = with_cert
        .get(format!("{}/v1/audit", app.base))
        .send()
        .await
        .expect("mTLS request");
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let without = https_client(&pki.ca_pem, None);
    assert!(
        without
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err(),
        "no client certificate"
    );
    // A certificate from another CA is refused too.
    let (_other, other_ca, other_key) = Pki::new("rogue");
    let rogue = Pki::issue(
        &other_ca,
        &other_key,
        &["rogue"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let rogue_client = https_client(&pki.ca_pem, Some(&rogue));
    assert!(
        rogue_client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err(),
        "foreign client CA"
    );
}

/// Serves a JWKS document the test can change.
async fn jwks_server(document: Arc<Mutex<String>>) -> String {
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let document = document.clone();
            async move { document.lock().unwrap_or_else(|p| p.into_inner()).clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_url_are_refreshed() {
    let first = DevKeys::generate().expect("keys");
    let second = DevKeys::generate().expect("keys");
    let document = Arc::new(Mutex::new(first.jwks()));
    let url = jwks_server(document.clone()).await;
    let db = fresh_database_url(Backend::Sqlite).await.expect("db");
    let mut config = test_config(&db);
    config.auth = AuthConfig {
        jwks_url: Some(url),
        jwks_inline: None,
        jwks_refresh: Duration::from_secs(1),
        ..AuthConfig::inline(String::new(), DEV_ISSUER, DEV_AUDIENCE)
    };
    let app = spawn_config(config, clock()).await;
    let old = first.mint(&claims(Role::Admin, "root")).expect("mint");
    let new = second.mint(&claims(Role::Admin, "root")).expect("mint");
    let status = |t: String| {
        let app = &app;
        async move {
            app.send_as(Some(&t), Method::GET, "/v1/audit", None)
                .await
                .status
        }
    };
    assert_eq!(status(old.clone()).await, StatusCode::OK);
    assert_eq!(status(new.clone()).await, StatusCode::UNAUTHORIZED);
    *document.lock().unwrap_or_else(|p| p.into_inner()) = second.jwks();
    let mut rotated = false;
    for _ in 0..50 {
        if status(new.clone()).await == StatusCode::OK {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the new key was never fetched");
    assert_eq!(
        status(old).await,
        StatusCode::UNAUTHORIZED,
        "the retired key still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_no_usable_key_does_not_start() {
    let db = fresh_database_url(Backend::Sqlite).await.expect("db");
    let mut config = test_config(&db);
    config.auth = AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/jwks.json".into()),
        jwks_inline: None,
        ..AuthConfig::inline(String::new(), DEV_ISSUER, DEV_AUDIENCE)
    };
    assert!(Application::build(config.clone(), clock()).await.is_err());
    config.auth = AuthConfig::inline(r#"{"keys":[]}"#.into(), DEV_ISSUER, DEV_AUDIENCE);
    assert!(Application::build(config, clock()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_request_heads_are_cut_off() {
    let db = fresh_database_url(Backend::Sqlite).await.expect("db");
    let mut config = test_config(&db);
    config.limits.header_read_timeout = Duration::from_millis(300);
    let app = spawn_config(config, clock()).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // A client that never finishes its head is dropped.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a slow client kept its connection");
    // A head over the limit is a 431, and the service keeps serving.
    let reply = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-padding", "a".repeat(100 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_their_own_listener() {
    let db = fresh_database_url(Backend::Sqlite).await.expect("db");
    let mut config = test_config(&db);
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let app = spawn_config(config, clock()).await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/metrics").await.status, StatusCode::NOT_FOUND);
    let metrics = app.metrics_base.clone().expect("metrics address");
    let reply = reqwest::get(format!("{metrics}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(reply.status(), StatusCode::OK);
    let text = reply.text().await.expect("text");
    assert!(text.contains("http_requests_total"), "{text}");
}
