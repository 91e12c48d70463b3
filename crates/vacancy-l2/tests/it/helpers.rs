//! Real Redis for the tests: the shared server on 127.0.0.1:6379, or `redis-server` processes
//! of a test's own on free loopback ports, killed (and their files removed) on drop. Plus a
//! metrics recorder the tests can read without disturbing each other.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use redis::aio::MultiplexedConnection;

pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// `op_timeout` for tests of correctness rather than of latency: tests share two cores with
/// the redis-servers (and a cluster) other tests are starting, and a write there is no outage.
pub const CORRECTNESS_OP_TIMEOUT: Duration = Duration::from_millis(250);

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("vacancy-l2-test:{test}:{}:{nanos}:{n}:", std::process::id())
}

/// A direct connection, bypassing the client under test.
pub async fn direct(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid Redis URL");
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("direct connection within 5 s")
    .expect("direct connection")
}

/// A port that was free a moment ago (and whose cluster bus port, +10000, too).
fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair found in 100 tries");
}

/// A `redis-server` child process of the test's own. Killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// A plain standalone server without persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments; retried on another port if the chosen one
    /// was taken in the meantime.
    pub fn start_with(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("vacancy-l2-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the server's directory");
            let mut server = Self {
                port,
                child: None,
                dir,
                extra: extra.clone(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to the clients) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let mut last_error = String::new();
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}: {last_error}",
            self.port
        );
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let logfile = self.dir.join("redis.log").to_string_lossy().into_owned();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir", &dir, "--logfile", &logfile])
            .args(&self.extra)
            .args(self.cluster_config_file(&port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server on {port} exited with {status}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on {port} not listening after 5 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl RedisServer {
    /// A cluster node's state file, `<dir>/nodes-<port>.conf`.
    fn cluster_config_file(&self, port: &str) -> Vec<String> {
        if !self.extra.iter().any(|a| a == "--cluster-enabled") {
            return Vec::new();
        }
        let file = self.dir.join(format!("nodes-{port}.conf"));
        vec![
            "--cluster-config-file".to_owned(),
            file.to_string_lossy().into_owned(),
        ]
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three cluster-enabled servers joined into one Redis Cluster (no replicas), state `ok`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                // The config file name must be unique per node; the directory already is.
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok().await;
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    async fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in &self.nodes {
            let mut conn = direct(&node.url()).await;
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER INFO");
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster not ok within 10 s: {info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The process-wide metrics recorder of the test binary; gauges and counters read by name and
/// labels, never reset, so parallel tests do not disturb each other.
#[derive(Default)]
pub struct TestMetrics {
    values: Mutex<HashMap<Key, Arc<AtomicU64>>>,
}

impl TestMetrics {
    pub fn get() -> &'static TestMetrics {
        static METRICS: OnceLock<&'static TestMetrics> = OnceLock::new();
        METRICS.get_or_init(|| {
            let metrics: &'static TestMetrics = Box::leak(Box::default());
            metrics::set_global_recorder(metrics).expect("the only recorder of this test binary");
            metrics
        })
    }

    fn handle(&self, key: &Key) -> Arc<AtomicU64> {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.entry(key.clone()).or_default().clone()
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values
            .get(&Self::key(name, labels))
            .map(|v| f64::from_bits(v.load(Ordering::SeqCst)))
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values
            .get(&Self::key(name, labels))
            .map_or(0, |v| v.load(Ordering::SeqCst))
    }
}

impl Recorder for TestMetrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
