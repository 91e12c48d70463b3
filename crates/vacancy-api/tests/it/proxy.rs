//! A TCP proxy the chaos tests put between the service and one dependency (PostgreSQL, Redis,
//! NATS) to delay, blackhole, cut and restore its connections while the service runs.
//!
//! - `delay(d)`: every chunk of bytes, either way, waits `d` before it is forwarded;
//! - `blackhole()`: bytes stop moving and new connections hang (a network partition: nothing
//!   is refused, nothing answers); `restore()` lets the held bytes through again;
//! - `cut()`: every open connection is closed at once and new ones are closed on accept (the
//!   dependency crashed or a firewall resets); `restore()` accepts again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Cut,
}

pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Every connection's pumps; aborting them closes both sockets.
    connections: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Pass);
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            connections.clone(),
        ));
        Self {
            addr,
            mode,
            connections,
            accept,
        }
    }

    /// `host:port` of the proxy, to put in the service's URL instead of the dependency's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn delay(&self, by: Duration) {
        self.mode.send_replace(Mode::Delay(by));
    }

    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
        lock(&self.connections).abort_all();
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        lock(&self.connections).abort_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    connections: Arc<Mutex<JoinSet<()>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *mode.borrow() == Mode::Cut {
            drop(client);
            continue;
        }
        let watch = mode.subscribe();
        let mut set = lock(&connections);
        // Reap finished connections so the set does not grow without bound.
        while set.try_join_next().is_some() {}
        set.spawn(connection(client, upstream, watch));
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    // A blackholed proxy does not even reach the dependency until it is restored.
    if !pass_gate(&mut mode.clone()).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode) => {}
    }
}

/// Waits while the proxy is blackholed; `false` when it is cut meanwhile.
async fn pass_gate(mode: &mut watch::Receiver<Mode>) -> bool {
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Pass | Mode::Delay(_) => return true,
            Mode::Cut => return false,
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !pass_gate(&mut mode).await {
            return;
        }
        let current = *mode.borrow();
        if let Mode::Delay(by) = current {
            tokio::time::sleep(by).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `127.0.0.1:port` from a `scheme://[user@]host:port[/...]` URL.
pub fn upstream_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("a host:port upstream")
}

/// `url` with its `host:port` replaced by the proxy's.
pub fn through(url: &str, proxy: &Proxy) -> String {
    let original = url
        .split_once("://")
        .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, r)| r))
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or_default()
        .to_owned();
    url.replacen(&original, &proxy.addr().to_string(), 1)
}

#[tokio::test]
async fn the_proxy_forwards_delays_blackholes_cuts_and_restores() {
    use tokio::time::{Instant, timeout};
    // An echo server upstream.
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let upstream = echo.local_addr().expect("echo address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(upstream).await;
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    let roundtrip = async |conn: &mut TcpStream| -> std::io::Result<()> {
        conn.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        Ok(())
    };
    roundtrip(&mut conn).await.expect("pass");

    proxy.delay(Duration::from_millis(150));
    let started = Instant::now();
    roundtrip(&mut conn).await.expect("delayed");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "both ways delayed"
    );

    proxy.blackhole();
    assert!(
        timeout(Duration::from_millis(300), roundtrip(&mut conn))
            .await
            .is_err(),
        "nothing moves while blackholed"
    );
    proxy.restore();
    // The held "ping" arrives, then the echo of the retried one.
    let mut buf = [0u8; 8];
    timeout(Duration::from_secs(5), conn.read_exact(&mut buf[..4]))
        .await
        .expect("restored")
        .expect("read");

    proxy.cut();
    let mut one = [0u8; 1];
    let read = timeout(Duration::from_secs(5), conn.read(&mut one))
        .await
        .expect("a cut connection ends at once");
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    let mut fresh = TcpStream::connect(proxy.addr()).await.expect("accepts");
    let read = timeout(Duration::from_secs(5), fresh.read(&mut one))
        .await
        .expect("closed on accept");
    assert!(matches!(read, Ok(0) | Err(_)));

    proxy.restore();
    let mut conn = TcpStream::connect(proxy.addr()).await.expect("connect");
    roundtrip(&mut conn).await.expect("restored");

    assert_eq!(
        through("postgres://u@127.0.0.1:5432/db?x=1", &proxy),
        format!("postgres://u@{}/db?x=1", proxy.addr())
    );
    assert_eq!(
        upstream_of("redis://127.0.0.1:6379"),
        "127.0.0.1:6379".parse().expect("addr")
    );
}
