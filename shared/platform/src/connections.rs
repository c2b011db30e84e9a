//! The connections a listener accepts, each held to the transport limits of
//! [`Limits`]:
//!
//! * at most `max_connections` open at once; past it a new connection is
//!   closed as soon as it is accepted (the client sees the connection end at
//!   once and can try another replica, instead of hanging in the kernel's
//!   accept queue until its own connect timeout), and counted in
//!   `steplab_connections_refused_total`;
//! * a handshake timeout: a plaintext connection that has not sent the
//!   24-byte HTTP/2 preface within `handshake_timeout` is closed. Over TLS the
//!   same bound applies to the TLS handshake (tonic's acceptor, configured in
//!   [`crate::server::run`]); what follows the TLS handshake is encrypted, so
//!   from there the idle timeout bounds a client that never speaks HTTP/2;
//! * an idle timeout (gRPC's MAX_CONNECTION_IDLE idea): a connection with no
//!   call in progress for `idle_timeout` is closed. Calls are counted by
//!   [`TrackCalls`], from the request until the end of the response body, so
//!   a long `WatchEvents` stream keeps its connection.
//!
//! HTTP/2 keepalive pings are tonic's own (see [`crate::server::run`]).
//!
//! A connection is closed from inside its socket's read: once a deadline has
//! passed, the read fails with `TimedOut` and hyper ends the connection,
//! which drops the socket and returns its slot.

use crate::limits::Limits;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::codegen::http;
use tonic::transport::server::Connected;
use tower::{Layer, Service};

/// Connections open on a listener (gauge, label `service`).
pub const CONNECTIONS_OPEN: &str = "steplab_connections_open";
/// Connections closed at once because the listener was full (counter).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "steplab_connections_refused_total";
/// Connections closed by a timeout (counter, label `reason`: `handshake` or `idle`).
pub const CONNECTIONS_TIMED_OUT_TOTAL: &str = "steplab_connections_timed_out_total";

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, the first bytes of every HTTP/2 connection.
const HTTP2_PREFACE_LEN: usize = 24;

/// How often at most the listener logs that it is full.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// What a connection's socket and the calls on it share.
#[derive(Debug)]
pub struct Activity {
    handshaken: AtomicBool,
    calls: Mutex<Calls>,
}

#[derive(Debug, Clone, Copy)]
struct Calls {
    in_progress: usize,
    /// When the last call ended (or the handshake, before any call).
    idle_since: Instant,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self { handshaken: AtomicBool::new(false), calls: Mutex::new(Calls { in_progress: 0, idle_since: now }) }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finish_handshake(&self) {
        if !self.handshaken.swap(true, Ordering::Relaxed) {
            self.calls().idle_since = Instant::now();
        }
    }

    fn is_handshaken(&self) -> bool {
        self.handshaken.load(Ordering::Relaxed)
    }
}

/// What every call learns about its connection (a request extension).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote_addr: Option<SocketAddr>,
    activity: Arc<Activity>,
}

/// One accepted connection, holding its slot in the listener's cap.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    remote_addr: Option<SocketAddr>,
    activity: Arc<Activity>,
    /// Over TLS the preface cannot be seen here; the handshake counts as
    /// done when tonic has finished the TLS handshake.
    tls: bool,
    preface_bytes: usize,
    opened: Instant,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    /// Wakes the connection's read when the next deadline is due.
    check: Pin<Box<Sleep>>,
    /// Whether `check` has been moved from the handshake deadline to the idle one.
    watching_idle: bool,
    service: &'static str,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Whether a deadline has passed: the error that ends the connection.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if !self.watching_idle && self.activity.is_handshaken() {
            self.watching_idle = true;
            let idle_since = self.activity.calls().idle_since;
            self.check.as_mut().reset(idle_since + self.idle_timeout);
        }
        while self.check.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let next = if !self.activity.is_handshaken() {
                let deadline = self.opened + self.handshake_timeout;
                if deadline <= now {
                    return Some(self.expire("handshake", "no HTTP/2 preface within the handshake timeout"));
                }
                deadline
            } else {
                let calls = *self.activity.calls();
                if calls.in_progress > 0 {
                    now + self.idle_timeout
                } else if calls.idle_since + self.idle_timeout <= now {
                    return Some(self.expire("idle", "no call in progress within the idle timeout"));
                } else {
                    calls.idle_since + self.idle_timeout
                }
            };
            self.check.as_mut().reset(next);
        }
        None
    }

    fn expire(&self, reason: &'static str, why: &str) -> io::Error {
        tracing::debug!(service = self.service, remote = ?self.remote_addr, reason, "closing a connection: {why}");
        metrics::counter!(CONNECTIONS_TIMED_OUT_TOTAL, "service" => self.service, "reason" => reason).increment(1);
        io::Error::new(io::ErrorKind::TimedOut, why.to_owned())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN, "service" => self.service).decrement(1.0);
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !this.tls && !this.activity.is_handshaken() {
                    this.preface_bytes += buf.filled().len() - before;
                    if this.preface_bytes >= HTTP2_PREFACE_LEN {
                        this.activity.finish_handshake();
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_expired(cx) {
                Some(expired) => Poll::Ready(Err(expired)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    /// tonic asks once the connection is ready to serve, which over TLS is
    /// when the TLS handshake has completed.
    fn connect_info(&self) -> ConnectionInfo {
        if self.tls {
            self.activity.finish_handshake();
        }
        ConnectionInfo { remote_addr: self.remote_addr, activity: Arc::clone(&self.activity) }
    }
}

/// The connections accepted on `listener`, each with Nagle's algorithm off
/// and held to `limits`; those past `max_connections` are closed at once.
pub fn accept(
    listener: TcpListener,
    limits: &Limits,
    tls: bool,
    service: &'static str,
) -> impl tokio_stream::Stream<Item = io::Result<Connection>> {
    use tokio_stream::StreamExt;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let max_connections = limits.max_connections.max(1);
    let (handshake_timeout, idle_timeout) = (limits.handshake_timeout, limits.idle_timeout);
    let mut last_full_warning: Option<Instant> = None;
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        let remote_addr = stream.peer_addr().ok();
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "service" => service).increment(1);
            let now = Instant::now();
            if last_full_warning.is_none_or(|at| now.duration_since(at) >= FULL_WARNING_EVERY) {
                last_full_warning = Some(now);
                tracing::warn!(service, max_connections, remote = ?remote_addr, "connection refused: listener full");
            }
            // Dropping the stream closes it.
            return None;
        };
        // tonic sets TCP_NODELAY only on listeners it binds itself; without
        // it an answer larger than one segment waits for the client's
        // delayed ACK, about 40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        metrics::gauge!(CONNECTIONS_OPEN, "service" => service).increment(1.0);
        let opened = Instant::now();
        Some(Ok(Connection {
            stream,
            remote_addr,
            activity: Arc::new(Activity::new(opened)),
            tls,
            preface_bytes: 0,
            opened,
            handshake_timeout,
            idle_timeout,
            check: Box::pin(tokio::time::sleep_until(opened + handshake_timeout)),
            watching_idle: false,
            service,
            _slot: slot,
        }))
    })
}

/// Counts the calls in progress on each connection, for the idle timeout:
/// from the request until its response body has been sent or dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackCalls;

impl<S> Layer<S> for TrackCalls {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
}

/// One call in progress on a connection.
#[derive(Debug)]
struct CallInProgress(Arc<Activity>);

impl CallInProgress {
    fn start(activity: Arc<Activity>) -> Self {
        activity.calls().in_progress += 1;
        Self(activity)
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        let mut calls = self.0.calls();
        calls.in_progress = calls.in_progress.saturating_sub(1);
        if calls.in_progress == 0 {
            calls.idle_since = Instant::now();
        }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Tracked<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CallBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call =
            request.extensions().get::<ConnectionInfo>().map(|info| CallInProgress::start(Arc::clone(&info.activity)));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| CallBody { body, _call: call }))
        })
    }
}

/// A response body that keeps its call counted until it is done.
#[derive(Debug)]
pub struct CallBody<B> {
    body: B,
    _call: Option<CallInProgress>,
}

impl<B> http_body::Body for CallBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
