//! Metrics, request ids and the one log line of every mutating call.
//!
//! * Prometheus metrics on a side port (`STEPLAB_METRICS_LISTEN`): one
//!   exporter per process, since the `metrics` recorder is global and
//!   `steplab up` runs three services in one process; every service metric
//!   carries a `service` label.
//! * [`Observed`] wraps a business service (never health or reflection): it
//!   counts calls by RPC and status code, times them, reads the incoming
//!   `x-request-id` (or makes one), puts it in the call's tracing span and in
//!   a [`CallContext`] the rest of the call can reach, echoes it on the
//!   response, and logs each mutating call once with its actor and outcome.
//! * The context reaches diesel closures on the blocking pool too (see
//!   [`crate::db::Database::read`]), so a service can stamp the request id on
//!   the outbox commands a request causes.
//! * It also records the call in the service's audit log (see
//!   [`crate::audit`]) when no write transaction of the call already did.
//! * A call is named by its RPC only when the path is one of the service's
//!   own RPCs (read from the generated descriptor set); any other path is
//!   [`audit::UNKNOWN_RPC`] in the audit log, the log fields and the metric
//!   labels, so a caller cannot make the service store or label arbitrary
//!   text. Codes come from the fixed gRPC set: every label is from a closed
//!   set, and `/metrics` stays the same size whatever callers send.
//! * [`Observing`] runs a service's background audit work: the summaries of
//!   unauthenticated refusals (see [`crate::audit`]) and the retention of
//!   `STEPLAB_AUDIT_RETENTION_DAYS`.

use crate::audit;
pub use crate::call::{
    CallContext, REQUEST_ID_HEADER, Refusal, code_name, current, current_request_id, in_call, is_read, note_participant,
};
use crate::config::{AuditSettings, MetricsSettings, ServiceName};
use crate::db::Database;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codegen::http;
use tonic::server::NamedService;
use tower::Service;
use tracing::Instrument;

pub const REQUESTS_TOTAL: &str = "steplab_grpc_requests_total";
pub const REQUEST_DURATION: &str = "steplab_grpc_request_duration_seconds";
pub const OUTBOX_PENDING: &str = "steplab_outbox_pending";
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "steplab_outbox_oldest_pending_age_seconds";
pub const OUTBOX_PARKED: &str = "steplab_outbox_parked";
pub const RELAY_ATTEMPTS_TOTAL: &str = "steplab_relay_attempts_total";
pub const RELAY_BATCH_COMMANDS: &str = "steplab_relay_batch_commands";
pub const DB_POOL_CONNECTIONS: &str = "steplab_db_pool_connections";
pub const AUDIT_SUMMARISED_CALLS_TOTAL: &str = "steplab_audit_summarised_calls_total";
pub const RELAY_LAG: &str = "steplab_relay_lag_seconds";
pub const BACKPRESSURE_REFUSALS_TOTAL: &str = "steplab_backpressure_refusals_total";

/// Latency buckets in seconds: 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Commands per relay delivery call: powers of two up to the batch limit, so
/// the histogram shows whether delivery is batching (1 is a unary call).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0];

static EXPORTER: Mutex<Option<SocketAddr>> = Mutex::new(None);

/// Serves `/metrics` on `addr`, once per process: later calls (the other
/// services of `steplab up`, or tests) are no-ops. Must run inside a tokio
/// runtime, which then serves the scrapes.
pub fn install_exporter(addr: SocketAddr) -> anyhow::Result<()> {
    let mut installed = EXPORTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(existing) = *installed {
        if existing != addr {
            tracing::warn!(%existing, requested = %addr, "metrics are already served on another address");
        }
        return Ok(());
    }
    let builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Full(RELAY_BATCH_COMMANDS.to_owned()), BATCH_BUCKETS)
        })
        .map_err(|e| anyhow::anyhow!("STEPLAB_METRICS_LISTEN: {e}"))?;
    match builder.install() {
        Ok(()) => tracing::info!(%addr, "serving Prometheus metrics on http://{addr}/metrics"),
        // Someone else's recorder: ours would count nothing; carry on.
        Err(BuildError::FailedToSetGlobalRecorder(_)) => {
            tracing::warn!("a metrics recorder was already installed in this process");
        }
        Err(e) => anyhow::bail!("STEPLAB_METRICS_LISTEN: cannot serve metrics on {addr}: {e}"),
    }
    describe();
    *installed = Some(addr);
    Ok(())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS_TOTAL, "gRPC calls to the business services by RPC and status code");
    describe_histogram!(REQUEST_DURATION, Unit::Seconds, "gRPC call latency until the response headers");
    describe_gauge!(OUTBOX_PENDING, "Outbox commands waiting for delivery or being retried (not parked)");
    describe_gauge!(OUTBOX_OLDEST_PENDING_AGE, Unit::Seconds, "Age of the oldest pending outbox command");
    describe_gauge!(OUTBOX_PARKED, "Outbox commands parked for an operator");
    describe_counter!(RELAY_ATTEMPTS_TOTAL, "Outbox delivery attempts by target and outcome");
    describe_histogram!(RELAY_BATCH_COMMANDS, "Outbox commands per delivery call by target (1: a unary call)");
    describe_gauge!(
        RELAY_LAG,
        Unit::Seconds,
        "How long the relay's most overdue command had been due at its last claim (backpressure's signal)"
    );
    describe_counter!(
        BACKPRESSURE_REFUSALS_TOTAL,
        "Mutating calls refused with RESOURCE_EXHAUSTED DELIVERY_BACKLOG because the relay was too far behind, by RPC"
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections by state (idle, in_use)");
    describe_counter!(
        AUDIT_SUMMARISED_CALLS_TOTAL,
        "Unauthenticated refusals past the per-minute budget of audit rows, recorded only in a summary row"
    );
}

/// What a service's observability needs for as long as it runs: the pool
/// sampler, the audit summaries of unauthenticated refusals and the audit
/// retention. [`Observing::stop`] writes the open window's summaries;
/// dropping it stops the sampler and the pruner and leaves the summaries to
/// be written in the background.
pub struct Observing {
    service: ServiceName,
    db: Database,
    unauthenticated: Arc<audit::Unauthenticated>,
    sampler: tokio::task::JoinHandle<()>,
    pruner: tokio::task::JoinHandle<()>,
    summaries: Option<tokio::task::JoinHandle<()>>,
    stop_summaries: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Observing {
    /// Writes the summaries of the window still open, then returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop_summaries.take() {
            let _ = stop.send(());
        }
        if let Some(summaries) = self.summaries.take()
            && summaries.await.is_err()
        {
            tracing::error!("the audit summary task failed");
        }
    }
}

impl Drop for Observing {
    fn drop(&mut self) {
        self.sampler.abort();
        self.pruner.abort();
    }
}

/// How often the audit retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Installs the exporter when `STEPLAB_METRICS_LISTEN` is set, samples the
/// database pool of `service` every second, writes the summaries of its
/// unauthenticated refusals every [`audit::SUMMARY_WINDOW`] and prunes its
/// audit log past `STEPLAB_AUDIT_RETENTION_DAYS` (at start, then hourly).
pub fn start(
    metrics: &MetricsSettings,
    retention: &AuditSettings,
    service: ServiceName,
    db: &Database,
) -> anyhow::Result<Observing> {
    if let Some(addr) = metrics.listen {
        install_exporter(addr)?;
    }
    let pool = db.clone();
    let sampler = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let (connections, idle) = pool.pool_state();
            let label = service.as_str();
            metrics::gauge!(DB_POOL_CONNECTIONS, "service" => label, "state" => "idle").set(f64::from(idle));
            metrics::gauge!(DB_POOL_CONNECTIONS, "service" => label, "state" => "in_use")
                .set(f64::from(connections.saturating_sub(idle)));
        }
    });
    let pruner = tokio::spawn(audit::keep_pruned(db.clone(), retention.retention_days, PRUNE_EVERY));
    let unauthenticated = Arc::new(audit::Unauthenticated::default());
    let (stop_summaries, stopped) = tokio::sync::oneshot::channel();
    let summaries = tokio::spawn(write_summaries(db.clone(), Arc::clone(&unauthenticated), stopped));
    Ok(Observing {
        service,
        db: db.clone(),
        unauthenticated,
        sampler,
        pruner,
        summaries: Some(summaries),
        stop_summaries: Some(stop_summaries),
    })
}

/// Writes the summary rows of each closed window, and of the open one once
/// `stopped` fires (or its sender is dropped).
async fn write_summaries(
    db: Database,
    unauthenticated: Arc<audit::Unauthenticated>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let start = tokio::time::Instant::now() + audit::SUMMARY_WINDOW;
    let mut tick = tokio::time::interval_at(start, audit::SUMMARY_WINDOW);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut stopped => true,
        };
        let entries = unauthenticated.close_window(chrono::Utc::now().naive_utc());
        if !entries.is_empty()
            && let Err(e) = db.write(move |conn| audit::record_all(conn, &entries)).await
        {
            tracing::error!(error = %e, "could not record the summaries of unauthenticated calls");
        }
        if last {
            return;
        }
    }
}

/// The methods of every gRPC service in the generated descriptor set, by
/// the service's full name: decoded once, and kept for the life of the
/// process (a few hundred short names), however many times services are
/// served in it (a test process serves hundreds).
fn rpc_names() -> &'static HashMap<String, BTreeSet<&'static str>> {
    static NAMES: std::sync::OnceLock<HashMap<String, BTreeSet<&'static str>>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let Ok(set) = prost_types::FileDescriptorSet::decode(steplab_proto::FILE_DESCRIPTOR_SET) else {
            return HashMap::new();
        };
        set.file
            .iter()
            .flat_map(|file| file.service.iter().map(move |s| (file.package(), s)))
            .map(|(package, s)| {
                let names = s.method.iter().map(|m| &*Box::leak(m.name().into())).collect();
                (format!("{package}.{}", s.name()), names)
            })
            .collect()
    })
}

/// The RPCs a service hosts, to name its calls from a closed set.
#[derive(Debug)]
struct Rpcs {
    /// `/package.Service/`.
    prefix: String,
    /// Borrowed from [`rpc_names`], so that every call's metric labels
    /// borrow them instead of allocating.
    names: BTreeSet<&'static str>,
}

impl Rpcs {
    /// The methods of the gRPC service `service` (its full name).
    fn of(service: &str) -> Rpcs {
        let names = rpc_names().get(service).cloned().unwrap_or_default();
        Rpcs { prefix: format!("/{service}/"), names }
    }

    /// The RPC a request path names, or [`audit::UNKNOWN_RPC`].
    fn name(&self, path: &str) -> &'static str {
        path.strip_prefix(&self.prefix).and_then(|method| self.names.get(method)).copied().unwrap_or(audit::UNKNOWN_RPC)
    }
}

/// A usable incoming request id: short, printable ASCII.
fn incoming_request_id(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?.trim();
    let usable = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| value.to_owned())
}

/// The status of a unary response: the `grpc-status` header of a
/// trailers-only answer (errors), else OK. A streaming call's final status is
/// in its trailers; it counts as OK once its headers are out.
fn response_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

/// Why a trailers-only answer refuses the call, read from its status details.
fn refused_with(code: tonic::Code, headers: &http::HeaderMap) -> Option<Refusal> {
    if !matches!(code, tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument) {
        return None;
    }
    crate::call::refusal_of(&tonic::Status::from_header_map(headers)?)
}

/// The ErrorInfo domain of a gRPC service: its proto package, e.g.
/// `steplab.participant.v1` for `steplab.participant.v1.ParticipantService`.
pub fn error_domain(service_name: &'static str) -> &'static str {
    service_name.rsplit_once('.').map_or(service_name, |(package, _)| package)
}

/// How much earlier than the caller's deadline a call is cut here. tonic's
/// own `grpc-timeout` handling, outside this layer, answers a deadline it
/// cuts with CANCELLED (tonic maps its `TimeoutExpired` so); cutting first,
/// by more than the timer's 1 ms resolution, makes the answer
/// DEADLINE_EXCEEDED every time (issue 16).
const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// The caller's `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit
/// H, M, S, m, u or n); `None` when absent or unreadable, as tonic reads it.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The caller's deadline, and when this layer cuts the call to answer first.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    cut_at: Instant,
    passes_at: Instant,
}

/// `answer`, or `past_deadline()` once the deadline has passed without it.
/// The clock is read on every poll rather than only when the timer fires:
/// tonic's timer for the same deadline may fire in the same wake-up (a timer
/// wheel fires late, a thread may be busy), and tonic polls it only after
/// this future, so this one answers first. An answer ready only after the
/// deadline passed is not given either: the caller has stopped waiting, and
/// every late call gets the one answer (a change it asked for may have been
/// made; the idempotency key makes the retry safe).
async fn within<T>(deadline: Deadline, answer: impl Future<Output = T>, past_deadline: impl FnOnce() -> T) -> T {
    let mut answer = std::pin::pin!(answer);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline.cut_at.into()));
    let mut past_deadline = Some(past_deadline);
    std::future::poll_fn(move |cx| {
        let answered = answer.as_mut().poll(cx);
        let now = Instant::now();
        let late = match answered {
            Poll::Ready(_) => now >= deadline.passes_at,
            Poll::Pending => now >= deadline.cut_at || timer.as_mut().poll(cx).is_ready(),
        };
        match (answered, late.then(|| past_deadline.take()).flatten()) {
            (_, Some(past_deadline)) => Poll::Ready(past_deadline()),
            (Poll::Ready(answered), None) => Poll::Ready(answered),
            (Poll::Pending, None) => Poll::Pending,
        }
    })
    .await
}

/// The answer to a call whose deadline passed before it was answered.
fn deadline_exceeded<B: Default>(domain: &str) -> http::Response<B> {
    crate::error::status_with_info(
        tonic::Code::DeadlineExceeded,
        "the call's deadline (grpc-timeout) passed before it was answered; a change it asked for may still be made: retry with the same idempotency_key",
        domain,
        crate::error::reason::DEADLINE_EXCEEDED,
        [],
        |_| {},
    )
    .into_http()
}

/// Makes every error answer (trailers-only) carry what docs/api.md promises
/// whichever layer refused: an ErrorInfo in the service's domain (reason
/// the code's name when the refusing layer named none, e.g. UNIMPLEMENTED),
/// and a RetryInfo on RESOURCE_EXHAUSTED, UNAVAILABLE and ABORTED; with
/// what the call knows: the RPC a `ROLE_NOT_ALLOWED` refuses, the
/// participant a rule refusal that names none is about (a date or length
/// check). The request id is in the `x-request-id` header, not in the
/// details: AIP-211 answers must be the same byte for byte whatever the call.
fn complete_details(headers: &mut http::HeaderMap, domain: &str, call: &CallContext) {
    use tonic_types::{ErrorDetail, ErrorInfo, RetryInfo, StatusExt};
    let code = response_code(headers);
    if code == tonic::Code::Ok {
        return;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else { return };
    // Details we cannot read are left as they are rather than replaced.
    let Ok(mut details) = status.check_error_details_vec() else { return };
    let info = details.iter_mut().find_map(|d| match d {
        ErrorDetail::ErrorInfo(info) => Some(info),
        _ => None,
    });
    match info {
        Some(info) => {
            if info.domain.is_empty() {
                info.domain = domain.to_owned();
            }
            let known = |value: Option<&str>| value.map(str::to_owned);
            let from_call = match (code, info.reason.as_str()) {
                (tonic::Code::PermissionDenied, crate::error::reason::ROLE_NOT_ALLOWED) => {
                    Some(("rpc", known(Some(call.rpc.as_str()))))
                }
                (tonic::Code::FailedPrecondition, _) => Some(("participant_id", known(call.participant_id()))),
                _ => None,
            };
            if let Some((key, Some(value))) = from_call {
                info.metadata.entry(key.to_owned()).or_insert(value);
            }
        }
        None => details.push(ErrorInfo::new(code_name(code), domain, HashMap::new()).into()),
    }
    let retryable = matches!(code, tonic::Code::ResourceExhausted | tonic::Code::Unavailable | tonic::Code::Aborted);
    if retryable && !details.iter().any(|d| matches!(d, ErrorDetail::RetryInfo(_))) {
        details.push(RetryInfo::new(Some(crate::error::DEFAULT_RETRY_DELAY)).into());
    }
    let completed =
        crate::error::in_stable_order(tonic::Status::with_error_details_vec(code, status.message(), details));
    let mut encoded = http::HeaderMap::new();
    if completed.add_header(&mut encoded).is_ok()
        && let Some(value) = encoded.remove(tonic::Status::GRPC_STATUS_DETAILS)
    {
        headers.insert(tonic::Status::GRPC_STATUS_DETAILS, value);
    }
}

/// Wraps one business service: metrics, request id, span, call log and
/// audit entry.
#[derive(Debug, Clone)]
pub struct Observed<S> {
    inner: S,
    service: &'static str,
    /// The ErrorInfo domain of every refusal: the service's proto package.
    domain: &'static str,
    rpcs: Arc<Rpcs>,
    /// Decides which unauthenticated refusals get a row of their own.
    unauthenticated: Arc<audit::Unauthenticated>,
    /// The service's own database, where its audit log lives.
    db: Database,
    /// Bounds the audit writes of refused calls in flight: those are made
    /// after the concurrency limit's permit is returned, and a flood of
    /// calls without a token (never rate limited) must not take every
    /// database connection from the calls being served. A flood waits here
    /// instead, which slows the flood.
    audit_writers: Arc<tokio::sync::Semaphore>,
}

/// Audit writes of refused calls in flight per service (see [`Observed`]).
const AUDIT_WRITERS: usize = 2;

impl<S: NamedService> Observed<S> {
    /// Wraps `inner` for the service `observing` runs for; its audit log is
    /// in that service's own database.
    pub fn new(observing: &Observing, inner: S) -> Self {
        let audit_writers = Arc::new(tokio::sync::Semaphore::new(AUDIT_WRITERS));
        Self {
            inner,
            service: observing.service.as_str(),
            domain: error_domain(S::NAME),
            rpcs: Arc::new(Rpcs::of(S::NAME)),
            unauthenticated: Arc::clone(&observing.unauthenticated),
            db: observing.db.clone(),
            audit_writers,
        }
    }
}

impl<S: NamedService> NamedService for Observed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observed<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    // Held across the audit write.
    S::Error: Send,
    ReqBody: Send + 'static,
    // A deadline cut here answers with an empty (trailers-only) body.
    ResBody: Send + Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone is the one that is ready (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service;
        let domain = self.domain;
        let db = self.db.clone();
        let audit_writers = Arc::clone(&self.audit_writers);
        let unauthenticated = Arc::clone(&self.unauthenticated);
        let rpc = self.rpcs.name(request.uri().path());
        let request_id = incoming_request_id(request.headers()).unwrap_or_else(crate::ids::request_id);
        let header = http::HeaderValue::from_str(&request_id).ok();
        if let Some(value) = &header {
            request.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
        }
        let call = Arc::new(CallContext::new(request_id.clone(), rpc.to_owned()));
        request.extensions_mut().insert(Arc::clone(&call));
        let span = tracing::info_span!("grpc", service, rpc = %rpc, request_id = %request_id);
        let started = Instant::now();
        let deadline = grpc_timeout(request.headers()).map(|timeout| Deadline {
            cut_at: started + timeout.saturating_sub(DEADLINE_MARGIN),
            passes_at: started + timeout,
        });
        Box::pin(crate::call::scope(Arc::clone(&call), async move {
            let answer = inner.call(request).instrument(span.clone());
            let mut result = match deadline {
                None => answer.await,
                Some(deadline) => within(deadline, answer, || Ok(deadline_exceeded(domain))).await,
            };
            if let Ok(response) = &mut result {
                complete_details(response.headers_mut(), domain, &call);
            }
            let status = match &result {
                Ok(response) => response_code(response.headers()),
                Err(_) => tonic::Code::Unknown,
            };
            // The refusal the caller is answered with is the one its audit entry names.
            if let Ok(response) = &result
                && let Some(refusal) = refused_with(status, response.headers())
            {
                call.set_refusal(refusal);
            }
            let code = code_name(status);
            let elapsed = started.elapsed();
            metrics::counter!(REQUESTS_TOTAL, "service" => service, "rpc" => rpc, "code" => code).increment(1);
            metrics::histogram!(REQUEST_DURATION, "service" => service, "rpc" => rpc).record(elapsed.as_secs_f64());
            let _entered = span.enter();
            let actor = call.actor();
            let sub = actor.map(|(sub, _)| sub);
            let role = actor.map(|(_, role)| role.as_str());
            let participant_id = call.participant_id();
            let millis = elapsed.as_millis() as u64;
            if is_read(rpc) {
                tracing::debug!(request_id = %request_id, rpc = %rpc, participant_id, sub, role, outcome = %code, millis, "call");
            } else {
                tracing::info!(request_id = %request_id, rpc = %rpc, participant_id, sub, role, outcome = %code, millis, "call");
            }
            drop(_entered);
            // Before the answer leaves, so a caller that has its answer finds
            // the entry. A failed audit write does not change the answer.
            // Unauthenticated refusals past the window's budget are only counted.
            let own_row = status != tonic::Code::Unauthenticated || unauthenticated.admit(rpc);
            if !own_row {
                metrics::counter!(AUDIT_SUMMARISED_CALLS_TOTAL, "service" => service).increment(1);
            }
            if crate::audit::is_audited(rpc, status) && !call.is_audited() && own_row {
                let entry = crate::audit::NewEntry::for_call(&call, status, chrono::Utc::now().naive_utc());
                let record = async move {
                    // The semaphore is never closed; without a permit the write goes ahead.
                    let _permit = audit_writers.acquire().await.ok();
                    if let Err(e) = db.read(move |conn| crate::audit::record(conn, &entry)).await {
                        tracing::error!(parent: &span, error = %e, rpc = %rpc, outcome = %code, "could not record the audit entry");
                    }
                };
                // Past the caller's deadline the answer cannot wait for the
                // write: tonic would drop it and answer CANCELLED.
                if deadline.is_some_and(|d| Instant::now() >= d.cut_at) {
                    tokio::spawn(record);
                } else {
                    record.await;
                }
            }
            result.map(|mut response| {
                if let Some(value) = header {
                    response.headers_mut().insert(REQUEST_ID_HEADER, value);
                }
                response
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(tonic::Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
        // Every code, as gRPC spells it: its Rust name in upper snake case.
        for number in 0..=16 {
            let code = tonic::Code::from_i32(number);
            let debug = format!("{code:?}");
            let mut expected = String::new();
            for (i, c) in debug.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    expected.push('_');
                }
                expected.push(c.to_ascii_uppercase());
            }
            assert_eq!(code_name(code), expected);
        }
    }

    #[test]
    fn the_refusal_is_read_from_the_answer_the_caller_gets() {
        let answer = crate::error::failed_precondition("steplab.participant.v1", "PAUSE_TOO_LONG", "too long");
        let response: http::Response<()> = answer.into_http();
        let code = response_code(response.headers());
        assert_eq!(refused_with(code, response.headers()), Some(Refusal::Rule("PAUSE_TOO_LONG".into())));
        let shed: http::Response<()> = tonic::Status::resource_exhausted("busy").into_http();
        assert_eq!(refused_with(response_code(shed.headers()), shed.headers()), None);
    }

    #[test]
    fn the_status_comes_from_a_trailers_only_response_else_ok() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(response_code(&headers), tonic::Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("9"));
        assert_eq!(response_code(&headers), tonic::Code::FailedPrecondition);
    }

    #[test]
    fn grpc_timeout_is_read_as_grpc_over_http2_writes_it() {
        let timeout = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", http::HeaderValue::from_str(value).expect("ascii"));
            grpc_timeout(&headers)
        };
        assert_eq!(timeout("20m"), Some(Duration::from_millis(20)));
        assert_eq!(timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(timeout("123456789m"), None, "at most 8 digits");
        assert_eq!(timeout("m"), None);
        assert_eq!(timeout("10x"), None);
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_cut_even_before_the_timer_fires() {
        let now = Instant::now();
        let deadline = Deadline { cut_at: now, passes_at: now + Duration::from_millis(5) };
        let never = std::future::pending::<&str>();
        assert_eq!(within(deadline, never, || "cut").await, "cut");
        let far = Deadline { cut_at: now + Duration::from_secs(60), passes_at: now + Duration::from_secs(61) };
        assert_eq!(within(far, async { "answered" }, || "cut").await, "answered");
        // Ready only after the deadline passed: the caller stopped waiting.
        let past = Deadline { cut_at: now, passes_at: now };
        assert_eq!(within(past, async { "late" }, || "cut").await, "cut");
    }

    #[test]
    fn an_error_answer_gets_error_info_in_the_services_domain_and_retry_info() {
        use tonic_types::StatusExt;
        let mut headers = tonic::Status::resource_exhausted("busy").into_http::<()>().into_parts().0.headers;
        let call = CallContext::new("r-1".into(), "PauseParticipant".into());
        complete_details(&mut headers, "steplab.example.v1", &call);
        let status = tonic::Status::from_header_map(&headers).expect("status");
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!((info.domain.as_str(), info.reason.as_str()), ("steplab.example.v1", "RESOURCE_EXHAUSTED"));
        assert!(details.retry_info().is_some());
        // A reason the refusing layer named is kept; only its empty domain is filled.
        let mut headers =
            crate::error::unauthenticated("TOKEN_EXPIRED", "expired").into_http::<()>().into_parts().0.headers;
        complete_details(&mut headers, "steplab.example.v1", &call);
        let info = tonic::Status::from_header_map(&headers).expect("status").get_error_details();
        let info = info.error_info().expect("ErrorInfo");
        assert_eq!((info.domain.as_str(), info.reason.as_str()), ("steplab.example.v1", "TOKEN_EXPIRED"));
        assert_eq!(error_domain("steplab.participant.v1.ParticipantService"), "steplab.participant.v1");
    }

    #[test]
    fn an_incoming_request_id_is_kept_only_when_usable() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(incoming_request_id(&headers), None);
        headers.insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("abc-123"));
        assert_eq!(incoming_request_id(&headers).as_deref(), Some("abc-123"));
        headers.insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("has space"));
        assert_eq!(incoming_request_id(&headers), None);
    }

    #[test]
    fn only_the_services_own_rpcs_are_named_and_every_other_path_is_unknown() {
        let rpcs = Rpcs::of("steplab.participant.v1.ParticipantService");
        for rpc in ["RegisterParticipant", "PauseParticipant", "GetParticipant", "ListAuditEntries"] {
            assert_eq!(rpcs.name(&format!("/steplab.participant.v1.ParticipantService/{rpc}")), rpc);
        }
        for path in [
            "/steplab.participant.v1.ParticipantService/NoSuchMethod",
            "/steplab.participant.v1.ParticipantService/",
            "/steplab.participant.v1.ParticipantService/junk/GetParticipant",
            "/steplab.payments.v1.PaymentsService/EnrolPayee",
            "/GetParticipant",
            "",
        ] {
            assert_eq!(rpcs.name(path), crate::audit::UNKNOWN_RPC, "{path}");
        }
        let long = format!("/steplab.participant.v1.ParticipantService/{}", "x".repeat(15_000));
        assert_eq!(rpcs.name(&long), crate::audit::UNKNOWN_RPC);
        assert!(
            Rpcs::of("steplab.payments.v1.PaymentsService").name("/steplab.payments.v1.PaymentsService/EnrolPayee")
                == "EnrolPayee"
        );
    }
}
