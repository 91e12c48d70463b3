//! A NATS server of the test's own (with JetStream, on a free loopback port), which the test
//! can stop and start again on the same port and storage to simulate an outage.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vacancy_events::BusConfig;

/// The shared server the machine runs, for tests that need no outage.
pub fn shared_url() -> String {
    std::env::var("VACANCY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A bus on `url` whose stream and subjects no other test uses.
pub fn private_bus(url: &str) -> BusConfig {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    BusConfig::Nats {
        url: url.to_owned(),
        stream: format!("VACANCY_TEST_{tag}"),
        subject_prefix: format!("vacancy-test.{tag}"),
        publish_timeout: Duration::from_millis(500),
    }
}

pub struct OwnNats {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnNats {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "vacancy-nats-{port}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The port is closed once the process is gone.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same port and storage.
    pub async fn resume(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("nats-server did not come up on port {}", self.port);
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
