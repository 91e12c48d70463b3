//! One HTTP/1.1 keep-alive connection over plain TCP, straight on hyper's client connection:
//! no pool, no retries, no redirects. It is the cheapest honest client, so what a benchmark
//! measures is the server, not client machinery.
//!
//! Load only ever targets loopback: [`Target`] refuses any other address.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: a loopback socket address and the `Host` header that names it.
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    /// `Bearer <token>` sent with every request, if any.
    authorization: Option<HeaderValue>,
}

impl Target {
    /// A loopback address, e.g. the one an in-process service bound.
    pub fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "refusing to send load to {addr}: only loopback targets are allowed"
        );
        let host = HeaderValue::from_str(&addr.to_string())?;
        Ok(Self {
            addr,
            host,
            authorization: None,
        })
    }

    /// The same target, sending `token` as a bearer token with every request.
    pub fn with_bearer(mut self, token: &str) -> anyhow::Result<Self> {
        self.authorization = Some(HeaderValue::from_str(&format!("Bearer {token}"))?);
        Ok(self)
    }

    /// A running service named by an `http://host:port` URL whose host resolves to loopback.
    pub async fn from_url(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("only plain http:// URLs are supported, got {url:?}"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        anyhow::ensure!(!authority.is_empty(), "no host in {url:?}");
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&with_port).await?.collect();
        let addr = addrs
            .iter()
            .copied()
            .find(|a| a.ip().is_loopback())
            .ok_or_else(|| {
                anyhow::anyhow!("{authority} does not resolve to a loopback address: {addrs:?}")
            })?;
        Ok(Self {
            addr,
            host: HeaderValue::from_str(authority)?,
            authorization: None,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, for reports.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A request to send: method, path with query, optional JSON body and extra headers.
#[derive(Debug, Clone)]
pub struct Planned {
    pub method: Method,
    pub path_and_query: String,
    pub body: Option<Bytes>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Planned {
    pub fn get(path_and_query: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path_and_query: path_and_query.into(),
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn post_json(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path_and_query: path.into(),
            body: Some(body.into()),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Why an exchange produced no HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("request could not be built: {0}")]
    Build(#[source] hyper::http::Error),
    #[error("send: {0}")]
    Send(#[source] hyper::Error),
    #[error("reading the body: {0}")]
    Body(#[source] hyper::Error),
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

impl TransportError {
    /// A short stable name, used as the key of error counts.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Connect(_) => "connect",
            TransportError::Handshake(_) => "handshake",
            TransportError::Build(_) => "build",
            TransportError::Send(_) => "send",
            TransportError::Body(_) => "body",
            TransportError::Timeout(_) => "timeout",
        }
    }
}

/// An open keep-alive connection. Dropping it closes the socket.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(target: &Target) -> Result<Self, TransportError> {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(TransportError::Connect)?;
        stream.set_nodelay(true).map_err(TransportError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(TransportError::Handshake)?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    /// Whether the connection can take another request (the peer has not closed it).
    pub async fn is_ready(&mut self) -> bool {
        !self.sender.is_closed() && self.sender.ready().await.is_ok()
    }

    /// Sends one request and reads the whole response body.
    pub async fn exchange(
        &mut self,
        target: &Target,
        planned: &Planned,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let mut builder = Request::builder()
            .method(planned.method.clone())
            .uri(planned.path_and_query.as_str())
            .header(HOST, target.host.clone());
        if let Some(authorization) = &target.authorization {
            builder = builder.header(hyper::header::AUTHORIZATION, authorization.clone());
        }
        for (name, value) in &planned.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(planned.body.clone().unwrap_or_default()))
            .map_err(TransportError::Build)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(TransportError::Send)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(TransportError::Body)?
            .to_bytes();
        Ok((status, body))
    }
}

/// A connection that reopens itself when the peer closed it or an exchange failed.
pub struct Reconnecting {
    target: Target,
    conn: Option<Conn>,
}

impl Reconnecting {
    pub fn new(target: Target) -> Self {
        Self { target, conn: None }
    }

    /// Opens the connection now rather than on the first request.
    pub async fn connect(&mut self) -> Result<(), TransportError> {
        self.conn = Some(Conn::open(&self.target).await?);
        Ok(())
    }

    /// One exchange within `timeout`. After any failure the connection is dropped, so the next
    /// exchange starts on a fresh one.
    pub async fn exchange(
        &mut self,
        planned: &Planned,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let attempt = async {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => Conn::open(&self.target).await?,
            };
            if !conn.is_ready().await {
                // The peer closed an idle connection: not a failed request, just reopen.
                conn = Conn::open(&self.target).await?;
            }
            self.conn.insert(conn).exchange(&self.target, planned).await
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(timeout)),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}
