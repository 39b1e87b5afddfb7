//! The accept loop: HTTP/1.1 and HTTP/2, cleartext or over TLS, through hyper-util's
//! connection builder, for what `axum::serve` cannot be told: how long a client may take
//! to send its request headers, how large they may be, and how many connections may be
//! open.
//!
//! A silent or trickling client (slowloris) holds a socket and a task while sending
//! nothing useful; the header deadline closes it. Past the connection cap the loop stops
//! accepting, so excess clients wait in the kernel's backlog instead of each costing a
//! task and a buffer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use marketd_api::middleware::security_headers::OverTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::tls::Certificates;

mod deadlines;

/// What a connection may cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time from the connection's (or the previous response's) end to a request's
    /// complete headers; an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger is a 431.
    pub max_header_bytes: usize,
    /// An HTTP/2 connection with nothing sent or received for this long is closed.
    pub http2_idle_timeout: Duration,
}

pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper cannot buffer less than this, so it is the smallest header limit.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// Above the event streams' 15 s heartbeat; raised further when handlers may run longer.
pub const DEFAULT_HTTP2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            http2_idle_timeout: DEFAULT_HTTP2_IDLE_TIMEOUT,
        }
    }
}

/// The first bytes of every cleartext HTTP/2 connection.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `app` until `shutdown` is cancelled, then stops accepting and gives open
/// requests `grace` to finish before closing what is left. With `tls`, every connection
/// is HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Certificates>>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let builders = Arc::new(Builders::new(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        // The permit comes first: at the cap, no connection is accepted, not even to close it.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let connection = Connection {
            builders: Arc::clone(&builders),
            tls: tls.clone(),
            app: app.clone(),
            peer,
            header_read_timeout: limits.header_read_timeout,
            http2_idle_timeout: limits.http2_idle_timeout,
            watcher: graceful.watcher(),
            shutdown: shutdown.clone(),
        };
        connections.spawn(async move {
            connection.run(stream).await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests cut off at the deadline"
        );
    }
    connections.shutdown().await;
}

/// One builder that tells the protocol from the first bytes (cleartext), and one per
/// protocol for TLS, where ALPN has already chosen it.
struct Builders {
    any: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ConnectionLimits) -> Self {
        let any = builder(limits);
        Self {
            http1: any.clone().http1_only(),
            http2: any.clone().http2_only(),
            any,
        }
    }
}

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A head over the limit is answered with a 431 problem by the header-limit
        // layer; one that does not even fit twice the limit, by hyper with a bare 431.
        .max_buf_size(read_buffer_bytes(limits));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(read_buffer_bytes(limits)).unwrap_or(u32::MAX));
    builder
}

fn read_buffer_bytes(limits: &ConnectionLimits) -> usize {
    limits
        .max_header_bytes
        .saturating_mul(2)
        .max(MIN_HEADER_BYTES)
}

/// Errors that concern one connection only; anything else (out of file descriptors)
/// would repeat at once, so the loop pauses before accepting again.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

struct Connection {
    builders: Arc<Builders>,
    tls: Option<Arc<Certificates>>,
    app: Router,
    peer: SocketAddr,
    header_read_timeout: Duration,
    http2_idle_timeout: Duration,
    watcher: Watcher,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        match self.tls.clone() {
            Some(certificates) => self.run_tls(stream, &certificates).await,
            None => self.run_cleartext(stream).await,
        }
    }

    async fn run_cleartext(self, stream: TcpStream) {
        let opened = tokio::select! {
            () = self.shutdown.cancelled() => None,
            opened = opening(&stream, self.header_read_timeout) => opened,
        };
        let Some(protocol) = opened else {
            return;
        };
        let idle_limit = (protocol == Protocol::Http2).then_some(self.http2_idle_timeout);
        let stream = deadlines::Deadlines::new(stream, idle_limit);
        let peer = self.peer;
        let service = TowerToHyperService::new(service(self.app, peer, false));
        let connection = self
            .builders
            .any
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        if let Err(err) = self.watcher.watch(connection).await {
            tracing::debug!(error = %err, peer = %peer, "connection ended with an error");
        }
    }

    async fn run_tls(self, stream: TcpStream, certificates: &Certificates) {
        let peer = self.peer;
        // The handshake is the first thing a TLS client owes, so the header deadline
        // bounds it: a client that connects and stalls is closed like a silent one.
        let handshake = tokio::time::timeout(
            self.header_read_timeout,
            certificates.acceptor().accept(stream),
        );
        let stream = tokio::select! {
            () = self.shutdown.cancelled() => return,
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, peer = %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "TLS handshake not completed in time");
                    return;
                }
            },
        };
        // ALPN has chosen the protocol, so nothing is read ahead to guess it. HTTP/1's
        // header deadline runs from here; HTTP/2 has none, so the client's first bytes
        // (its preface) get the same deadline as a cleartext opening.
        let alpn_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let stream = deadlines::Deadlines::new(stream, alpn_h2.then_some(self.http2_idle_timeout))
            .with_first_read_within(self.header_read_timeout);
        let builder = if alpn_h2 {
            &self.builders.http2
        } else {
            &self.builders.http1
        };
        let service = TowerToHyperService::new(service(self.app, peer, true));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        if let Err(err) = self.watcher.watch(connection).await {
            tracing::debug!(error = %err, peer = %peer, "connection ended with an error");
        }
    }
}

/// `app` with what the middleware learns from the connection: the peer address (the
/// client-ip layer reads it, as with axum::serve) and whether it came over TLS.
fn service(
    app: Router,
    peer: SocketAddr,
    over_tls: bool,
) -> impl tower::Service<
    axum::http::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    app.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if over_tls {
            request.extensions_mut().insert(OverTls);
        }
        request
    })
}

/// Waits, up to `deadline`, until the client has sent enough to tell HTTP/1 from HTTP/2.
///
/// hyper's header deadline starts only once the protocol is known, and the builder waits
/// for that without a limit; a client that connects and says nothing would otherwise be
/// kept forever. False when the client sent nothing in time or hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The protocol a cleartext client opens with, once its first bytes tell; `None` when it
/// sends too little in time or hangs up.
async fn opening(stream: &TcpStream, deadline: Duration) -> Option<Protocol> {
    let deadline = tokio::time::Instant::now() + deadline;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await else {
            return None;
        };
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Protocol::Http1);
        }
        if n == buf.len() {
            return Some(Protocol::Http2);
        }
        // A part of the HTTP/2 preface: peeking again would return at once, so wait a
        // little for the rest. Real clients send the preface in one segment.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(20)))
            .await
            .is_err()
        {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_opening_waits_for_enough_to_pick_a_protocol() {
        let deadline = Duration::from_millis(300);
        let (_silent, server) = pair().await;
        assert_eq!(opening(&server, deadline).await, None, "a silent client");

        let (mut client, server) = pair().await;
        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(
            opening(&server, deadline).await,
            Some(Protocol::Http1),
            "HTTP/1 shows at once"
        );

        let (mut client, server) = pair().await;
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert_eq!(
            opening(&server, deadline).await,
            None,
            "half an HTTP/2 preface"
        );

        let (mut client, server) = pair().await;
        client.write_all(H2_PREFACE).await.unwrap();
        assert_eq!(
            opening(&server, deadline).await,
            Some(Protocol::Http2),
            "a whole HTTP/2 preface"
        );

        let (client, server) = pair().await;
        drop(client);
        assert_eq!(
            opening(&server, deadline).await,
            None,
            "a client that hung up"
        );
    }
}
