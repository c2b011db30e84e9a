//! A stand-in for content release that answers every call OK, but only after
//! a fixed delay: a real tonic server the relay delivers to, which it cannot
//! keep up with when changes come faster than one per delay (backpressure
//! tests). It counts the calls it has answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use steplab_platform::outbox::RawCodec;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{NamedService, UnaryService};

pub struct SlowTarget {
    pub addr: SocketAddr,
    answered: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Slow {
    delay: Duration,
    answered: Arc<AtomicUsize>,
}

impl NamedService for Slow {
    const NAME: &'static str = "steplab.content.v1.ContentReleaseService";
}

impl UnaryService<Vec<u8>> for Slow {
    type Response = Vec<u8>;
    type Future = BoxFuture<tonic::Response<Vec<u8>>, tonic::Status>;

    fn call(&mut self, _request: tonic::Request<Vec<u8>>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            tokio::time::sleep(this.delay).await;
            this.answered.fetch_add(1, Ordering::SeqCst);
            // An empty message decodes as every response's default.
            Ok(tonic::Response::new(Vec::new()))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for Slow {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // A receiver without batches (as a release before issue 18): the
        // relay falls back to one call per command, each answered slowly.
        if request.uri().path().ends_with("/ApplyCommands") {
            let status = tonic::Status::unimplemented("no batches here");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let this = self.clone();
        Box::pin(async move { Ok(tonic::server::Grpc::new(RawCodec).unary(this, request).await) })
    }
}

impl SlowTarget {
    /// Serves on 127.0.0.1, answering each call after `delay`.
    pub async fn start(delay: Duration) -> SlowTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind slow target");
        let addr = listener.local_addr().expect("addr");
        let answered = Arc::new(AtomicUsize::new(0));
        let service = Slow { delay, answered: answered.clone() };
        let task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        SlowTarget { addr, answered, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for SlowTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}
