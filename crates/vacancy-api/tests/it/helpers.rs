//! Starting the real service for a test, and small HTTP helpers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use vacancy_api::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevKeys, MintClaims};
use vacancy_api::{Application, AuthConfig, Clock, ManualClock, Role, ServeConfig, TaskConfig};
use vacancy_events::BusConfig;
use vacancy_store::testing::fresh_database_url;
use vacancy_store::{Backend, Store, StoreOptions};

/// The instant every test starts at (tests move it with `app.clock`).
pub const START: &str = "2030-01-01T12:00:00Z";

/// The subject of the admin token every request carries unless a test says otherwise.
pub const ADMIN: &str = "admin-1";

/// The key pair the test services trust (one per test binary).
pub fn keys() -> &'static DevKeys {
    static KEYS: OnceLock<DevKeys> = OnceLock::new();
    KEYS.get_or_init(|| DevKeys::generate().expect("test key pair"))
}

/// Claims for `sub` as `role`, valid from 2020 to 2100 so tests can move the clock freely.
pub fn claims(role: Role, sub: &str) -> MintClaims {
    let from: Timestamp = "2020-01-01T00:00:00Z".parse().expect("instant");
    let to: Timestamp = "2100-01-01T00:00:00Z".parse().expect("instant");
    MintClaims::new(
        sub,
        role,
        from.as_second(),
        to.as_second() - from.as_second(),
    )
}

/// A token the test services accept, for `sub` as `role`.
pub fn token(role: Role, sub: &str) -> String {
    keys().mint(&claims(role, sub)).expect("mint")
}

/// How the test services authenticate: the test key pair, the dev issuer and audience.
pub fn test_auth() -> AuthConfig {
    AuthConfig::inline(keys().jwks(), DEV_ISSUER, DEV_AUDIENCE)
}

/// The serve configuration tests start with (port 0, fast sweeps, the test keys).
pub fn test_config(database_url: &str) -> ServeConfig {
    let mut store_options = StoreOptions::new(database_url);
    store_options.max_connections = 8;
    let listen = "127.0.0.1:0".parse().expect("address");
    let mut config = ServeConfig::new(listen, store_options, test_auth());
    config.tasks = TaskConfig {
        sweep_interval: Duration::from_millis(50),
        ..TaskConfig::default()
    };
    config.drain_timeout = Duration::from_secs(5);
    // No shedding by scheduling lag: the other tests of the run share the CPU, and a test that
    // expects a 200 must not see a 503 because a neighbour is busy. The overload tests turn it
    // on where they make the lag themselves.
    config.api.concurrency.lag_target = None;
    config
}

/// A client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

pub struct TestApp {
    pub base: String,
    /// Sends the admin token ([`ADMIN`]) with every request.
    pub http: reqwest::Client,
    /// The admin token `http` sends.
    pub token: String,
    /// `http://addr` of the separate metrics listener, when configured.
    pub metrics_base: Option<String>,
    pub clock: Arc<ManualClock>,
    /// A separate handle on the same database, for checking what was written.
    pub store: Store,
    pub database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the service on a fresh database of `backend`.
pub async fn spawn(backend: Backend) -> TestApp {
    let url = fresh_database_url(backend)
        .await
        .expect("fresh test database");
    let clock = Arc::new(ManualClock::new(START.parse().expect("start instant")));
    spawn_on(&url, clock).await
}

/// Starts one more replica of the service on an existing database, sharing `clock`.
pub async fn spawn_on(database_url: &str, clock: Arc<ManualClock>) -> TestApp {
    spawn_custom(database_url, clock, |_| {}).await
}

/// Starts the service on a fresh database of `backend`, with `tune` applied to its config.
pub async fn spawn_tuned(backend: Backend, tune: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let url = fresh_database_url(backend)
        .await
        .expect("fresh test database");
    let clock = Arc::new(ManualClock::new(START.parse().expect("start instant")));
    spawn_custom(&url, clock, tune).await
}

/// Starts a replica on an existing database with the given event bus and L2.
pub async fn spawn_with(
    database_url: &str,
    clock: Arc<ManualClock>,
    bus: BusConfig,
    l2: Option<vacancy_l2::L2Config>,
) -> TestApp {
    spawn_custom(database_url, clock, |config| {
        config.bus = bus;
        config.l2 = l2;
    })
    .await
}

/// Starts a replica on an existing database; `tune` adjusts the test defaults.
pub async fn spawn_custom(
    database_url: &str,
    clock: Arc<ManualClock>,
    tune: impl FnOnce(&mut ServeConfig),
) -> TestApp {
    let mut config = test_config(database_url);
    tune(&mut config);
    spawn_config(config, clock).await
}

/// Starts the service with `config`.
pub async fn spawn_config(config: ServeConfig, clock: Arc<ManualClock>) -> TestApp {
    let database_url = config.store.url.clone();
    let mut store_options = config.store.clone();
    let config_tls = config.tls.is_some();
    let app = Application::build(config, clock.clone())
        .await
        .expect("service starts");
    let scheme = if config_tls { "https" } else { "http" };
    let base = format!("{scheme}://{}", app.local_addr().expect("bound address"));
    let admin = token(Role::Admin, ADMIN);
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    store_options.max_connections = 2;
    let store = Store::connect(&store_options)
        .await
        .expect("checking connection");
    TestApp {
        base,
        http: client_with(&admin),
        token: admin,
        metrics_base,
        clock,
        store,
        database_url,
        shutdown: Some(tx),
    }
}

/// A status and a JSON body (Null when the body is not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
        }
    }

    /// The problem `type` slug, e.g. `nights-unavailable`.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("urn:vacancy:problem:")
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl TestApp {
    /// Sends `method path` with `body` (JSON) and `token` (none: no Authorization header).
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let client = match token {
            Some(token) => client_with(token),
            None => reqwest::Client::new(),
        };
        let mut request = client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    /// A client that sends `token` with every request.
    pub fn http_as(&self, token: &str) -> reqwest::Client {
        client_with(token)
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with_key(path, body, None).await
    }

    pub async fn post_with_key(&self, path: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        Reply::from(
            self.http
                .patch(format!("{}{path}", self.base))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Reply::from(
            self.http
                .delete(format!("{}{path}", self.base))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Sends raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        Reply::from(request.send().await.expect("request")).await
    }

    /// Creates a listing with the given extra fields over sane defaults; returns its id.
    pub async fn listing(&self, units: u32, extra: Value) -> String {
        let mut body = json!({ "host_id": "host-1", "time_zone": "Europe/Lisbon", "units": units });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let reply = self.post("/v1/listings", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().expect("listing id").to_owned()
    }

    pub async fn book(&self, listing: &str, check_in: &str, check_out: &str, units: u32) -> Reply {
        let body = json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out,
            "units": units, "guest_id": "guest-1" });
        self.post("/v1/bookings", &body).await
    }

    pub async fn hold(
        &self,
        listing: &str,
        check_in: &str,
        check_out: &str,
        ttl_seconds: u32,
    ) -> Reply {
        let body = json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out,
            "guest_id": "guest-1", "ttl_seconds": ttl_seconds });
        self.post("/v1/holds", &body).await
    }

    /// Remaining units per night over `[start, end)`.
    pub async fn remaining(&self, listing: &str, start: &str, end: &str) -> Vec<u64> {
        let reply = self
            .get(&format!(
                "/v1/listings/{listing}/calendar?start={start}&end={end}"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["nights"]
            .as_array()
            .expect("nights")
            .iter()
            .map(|n| n["remaining"].as_u64().expect("remaining"))
            .collect()
    }

    /// How many outbox events exist: a proxy for "something was written".
    pub async fn events(&self) -> usize {
        self.store
            .outbox_after(0, 100_000)
            .await
            .expect("outbox")
            .len()
    }

    /// Asserts the invariant from scratch over the whole database.
    pub async fn assert_no_overbooking(&self) {
        let findings = self.store.audit(self.now()).await.expect("audit");
        assert!(
            findings.is_empty(),
            "overbooked or inconsistent nights: {findings:?}"
        );
    }
}

impl TestApp {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Generates one `#[tokio::test]` per backend for each `async fn name(backend: Backend)` named.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(vacancy_store::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(vacancy_store::Backend::Postgres).await })*
        }
    };
}

/// The service's default body limit (`ApiConfig::default().max_body_bytes`).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Sends a request built on a test client and reads its reply.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("response body");
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// POSTs `body` (longer than the limit) declaring its full length but sending only one byte
/// more than the limit, then reads the answer. The server answers 413 once it has read that
/// byte; a client that kept sending would race the server closing the connection on it (the
/// unread rest turns the close into a reset that can swallow the 413), which is what makes
/// reqwest flaky here. With nothing unread the close is clean and the 413 always arrives.
pub async fn post_oversized(app: &TestApp, path: &str, body: &[u8]) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert!(
        body.len() > MAX_BODY_BYTES,
        "the body must be over the limit"
    );
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream
        .write_all(&body[..=MAX_BODY_BYTES])
        .await
        .expect("send body");
    let mut raw = Vec::new();
    let read = async {
        let mut chunk = [0_u8; 8192];
        loop {
            if let Some(reply) = parse_response(&raw) {
                return reply;
            }
            let n = stream.read(&mut chunk).await.expect("read response");
            assert!(
                n > 0,
                "connection closed before a full response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("a response in time")
}

/// A complete HTTP/1.1 response with a Content-Length, if `raw` holds one.
fn parse_response(raw: &[u8]) -> Option<Reply> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..head_end]).expect("response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .split(' ')
        .nth(1)?
        .parse::<u16>()
        .expect("status code");
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line");
        let name =
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name");
        let value = reqwest::header::HeaderValue::from_str(value.trim()).expect("header value");
        headers.append(name, value);
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = raw.get(head_end..head_end + length)?;
    Some(Reply {
        status: StatusCode::from_u16(status).expect("status"),
        headers,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    })
}
