//! Starting the `vacancy` binary on a free port and watching its logs.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Longest wait for anything the process should do promptly (start, log, stop).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `vacancy serve`.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    pub base: String,
    /// An admin token for this server (dev mode, with keys kept per database so a restart on
    /// the same database accepts it).
    pub token: String,
    logs: mpsc::UnboundedReceiver<Value>,
}

/// The dev-mode key folder of servers on `database_url`.
fn keys_dir(database_url: &str) -> std::path::PathBuf {
    let name: String = database_url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join("vacancy-test-keys").join(name)
}

/// Mints an admin token with the dev keys in `dir`, through `vacancy token`.
fn mint(dir: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vacancy"))
        .args([
            "token",
            "--role",
            "admin",
            "--sub",
            "tester",
            "--dev-keys-dir",
        ])
        .arg(dir)
        .output()
        .expect("vacancy token runs");
    assert!(
        out.status.success(),
        "vacancy token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A client that sends `token` with every request.
pub fn client(token: &str, builder: reqwest::ClientBuilder) -> reqwest::Client {
    vacancy_api::tls::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    builder.default_headers(headers).build().expect("client")
}

impl Server {
    /// Starts `vacancy serve` on `database_url`, on a free port, with `extra` flags.
    pub async fn start(database_url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vacancy"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args([
                "--log-format",
                "json",
                "--sweep-interval-ms",
                "200",
                // Other tests of the run share the CPU: no 503 because a neighbour is busy.
                "--shed-lag-ms",
                "0",
                "--dev-keys-dir",
            ])
            .arg(keys_dir(database_url))
            .args(extra)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("vacancy starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut logs) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = serde_json::from_str(&line).unwrap_or(json!({ "message": line }));
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let listening = next_log(&mut logs, "listening").await;
        let address: SocketAddr = listening["address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {listening}"));
        let token = mint(&keys_dir(database_url));
        Self {
            child,
            address,
            token,
            base: format!("http://{address}"),
            logs,
        }
    }

    /// Waits for a log line whose message is `message`.
    pub async fn log(&mut self, message: &str) -> Value {
        next_log(&mut self.logs, message).await
    }

    /// Sends a signal by name (`TERM`, `KILL`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("process still running");
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn exit_status(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("process exits in time")
            .expect("wait for process")
    }
}

async fn next_log(logs: &mut mpsc::UnboundedReceiver<Value>, message: &str) -> Value {
    let wait = async {
        while let Some(line) = logs.recv().await {
            if line["message"] == message {
                return line;
            }
        }
        panic!("the process ended before logging {message:?}");
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {message:?} log in time"))
}

/// A fresh SQLite database file.
pub async fn fresh_sqlite() -> String {
    vacancy_store::testing::fresh_database_url(vacancy_store::Backend::Sqlite)
        .await
        .expect("fresh database")
}

/// Creates a one-unit listing that takes stays of 1–30 nights from today on; returns its id.
pub async fn one_unit_listing(http: &reqwest::Client, base: &str, id: &str) {
    let body = json!({ "id": id, "host_id": "host-1", "time_zone": "UTC", "units": 1,
        "min_nights": 1, "max_nights": 30, "advance_notice_hours": 0, "booking_window_days": 730 });
    let response = http
        .post(format!("{base}/v1/listings"))
        .json(&body)
        .send()
        .await
        .expect("create listing");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
}

/// `days` days after today (UTC), as `YYYY-MM-DD`.
pub fn day(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .expect("date in range")
        .to_string()
}
