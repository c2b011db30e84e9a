//! Protections of every business service against overload and abuse:
//!
//! * a maximum message size (decoding and encoding), applied on each
//!   generated server (`OUT_OF_RANGE` past it);
//! * HTTP/2 flow control per connection: the server advertises
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`, so a busy client queues its calls
//!   instead of having them refused (see [`crate::server::run`]);
//! * a global (per service) concurrency limit, [`Limited`]: a call past it is
//!   shed at once with `RESOURCE_EXHAUSTED` and a `google.rpc.RetryInfo`;
//! * connection limits, a handshake timeout, HTTP/2 keepalive and an idle
//!   timeout (see [`crate::connections`]);
//! * a per-caller rate limit on mutating calls, [`Limits::rate_limited`]: a
//!   token bucket keyed by the caller's `sub`.
//!
//! Health and reflection are never wrapped, so they answer while the business
//! service sheds. A client's `grpc-timeout` is honoured by tonic itself.

use crate::call::{CallContext, is_read};
use crate::error::{reason, retry_after};
use crate::identity::{Caller, Scope};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Code, Request, Status};
use tower::Service;

/// The settings themselves are a configuration block; their enforcement is here.
pub use crate::config::Limits;

impl Limits {
    /// Wraps the auth interceptor: after it has identified the caller, a
    /// mutating call past the caller's rate is refused with
    /// `RESOURCE_EXHAUSTED` saying when to retry.
    pub fn rate_limited<F>(
        &self,
        mut auth: F,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<F>
    where
        F: FnMut(Request<()>) -> Result<Request<()>, Status> + Clone,
    {
        let limiter = RateLimiter::new(self.rate_limit_per_minute);
        move |request: Request<()>| {
            let request = auth(request)?;
            let mutating = request.extensions().get::<Arc<CallContext>>().is_none_or(|call| !is_read(&call.rpc));
            // The participant service's relay (the `service` scope) delivers
            // every command under one identity: never rate limited.
            if let (true, Some(caller)) = (mutating, request.extensions().get::<Caller>())
                && caller.scope != Scope::Service
                && let Err(wait) = limiter.take(&caller.sub, Instant::now())
            {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                tracing::warn!(sub = %caller.sub, retry_in_secs = secs, "request refused: rate limit");
                return Err(retry_after(
                    Code::ResourceExhausted,
                    reason::RATE_LIMITED,
                    format!(
                        "rate limit of {} mutating calls per minute reached for this caller; retry in {secs} s",
                        limiter.per_minute
                    ),
                    Duration::from_secs(secs),
                ));
            }
            Ok(request)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per caller: `per_minute` tokens, refilled continuously.
#[derive(Debug, Clone)]
struct RateLimiter {
    per_minute: u32,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Takes one token for `sub`, or says how long until one is available.
    fn take(&self, sub: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget callers whose buckets are full again, so the map stays small.
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < capacity);
        }
        let bucket = buckets.entry(sub.to_owned()).or_insert(Bucket { tokens: capacity, at: now });
        let refilled = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_sec).min(capacity);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / per_sec))
        }
    }
}

/// How long a shed call is told to wait before retrying (`google.rpc.RetryInfo`).
pub const SHED_RETRY_DELAY: Duration = Duration::from_millis(250);

/// Caps the calls in progress on one business service; past the cap a call is
/// answered at once with `RESOURCE_EXHAUSTED` (load shedding, no queue) and a
/// `google.rpc.RetryInfo`. Wrapped in [`crate::observability::Observed`], the
/// answer also carries the call's `x-request-id`.
#[derive(Debug, Clone)]
pub struct Limited<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl<S> Limited<S> {
    pub fn new(limits: &Limits, inner: S) -> Self {
        let limit = limits.max_concurrent_requests.max(1);
        Self { inner, permits: Arc::new(Semaphore::new(limit)), limit }
    }
}

impl<S: NamedService> NamedService for Limited<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Limited<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let limit = self.limit;
            // The RPC as `Observed` named it (`unknown` for a made-up path), never the caller's path.
            let rpc =
                request.extensions().get::<Arc<CallContext>>().map_or(crate::audit::UNKNOWN_RPC, |c| c.rpc.as_str());
            tracing::warn!(limit, rpc, "request shed: too many calls in progress");
            let status = retry_after(
                Code::ResourceExhausted,
                reason::OVERLOADED,
                format!("server busy: {limit} calls in progress; retry with backoff"),
                SHED_RETRY_DELAY,
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            response.map(|r| r.map(tonic::body::Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_rate_then_waits_while_others_are_unaffected() {
        let limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("a", t0), Ok(()));
        }
        let wait = limiter.take("a", t0).expect_err("4th call");
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert_eq!(limiter.take("b", t0), Ok(()));
        assert_eq!(limiter.take("a", t0 + Duration::from_secs(21)), Ok(()));
    }

    fn call(rpc: &str, scope: Scope) -> Request<()> {
        let mut request = Request::new(());
        request.extensions_mut().insert(Arc::new(CallContext::new("r".into(), rpc.into())));
        request.extensions_mut().insert(Caller { sub: "someone".into(), scope });
        request
    }

    #[test]
    fn only_mutating_calls_of_non_service_callers_are_rate_limited() {
        let limits = Limits { rate_limit_per_minute: 1, ..Limits::default() };
        let mut check = limits.rate_limited(Ok);
        assert!(check(call("PauseParticipant", Scope::Admin)).is_ok());
        let refused = check(call("PauseParticipant", Scope::Admin)).expect_err("2nd mutating call");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry in"), "{}", refused.message());
        assert!((0..5).all(|_| check(call("ListParticipants", Scope::Admin)).is_ok()), "reads are not limited");
        assert!((0..5).all(|_| check(call("RecordMilestone", Scope::Service)).is_ok()), "the relay is not limited");
        // An auth refusal stays an auth refusal.
        let mut refuse = limits.rate_limited(|_| Err(Status::unauthenticated("no")));
        assert_eq!(
            refuse(call("PauseParticipant", Scope::Admin)).expect_err("auth").code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn zero_disables_the_rate_limit() {
        let limiter = RateLimiter::new(0);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| limiter.take("a", t0).is_ok()));
    }
}
