//! The relay: delivers the outbox's commands to their targets, one lane per
//! target, with backoff, leases and parking (see the [`super`] module).

use super::*;
use crate::db::{Database, DbError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// How the relay behaves.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Fallback poll when nothing wakes the relay.
    pub poll_interval: Duration,
    /// Deadline of one delivery.
    pub call_timeout: Duration,
    /// How long a claim lasts before another replica may take the command.
    pub lease: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts before a command is parked for an operator.
    pub max_attempts: i32,
    /// Commands in flight at once per target (each from a different group).
    pub batch: usize,
    /// How `https://` targets are reached (roots, client certificate).
    pub tls: crate::tls::ClientTls,
    /// The service whose outbox this is, the `service` label of the outbox
    /// gauges: `steplab up` runs several relays in one process, whose gauges
    /// would otherwise overwrite each other. Empty: no label.
    pub service: &'static str,
    /// Where each claim reports how overdue its lane is (backpressure): the
    /// service's admission check reads it. Cloning shares it.
    pub pressure: super::Pressure,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_attempts: 50,
            batch: 64,
            tls: crate::tls::ClientTls::default(),
            service: "",
            pressure: super::Pressure::new(),
        }
    }
}

impl RelaySettings {
    /// The defaults with a deployment's retry limits and its client `tls`,
    /// as every service's own relay runs.
    pub fn from_retry(retry: &crate::config::RelayRetry, tls: crate::tls::ClientTls) -> Self {
        Self { max_attempts: retry.max_attempts, max_backoff: retry.max_backoff, tls, ..Self::default() }
    }
}

/// The exponential backoff before attempt `attempts + 1`, with jitter of up
/// to half the delay so retries of many commands do not arrive together.
pub fn backoff(settings: &RelaySettings, attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    let base = settings.initial_backoff.saturating_mul(2u32.saturating_pow(exponent)).min(settings.max_backoff);
    let jitter = rand::random_range(0.0..0.5);
    base.mul_f64(1.0 - jitter)
}

/// Supplies the `authorization` value for deliveries.
pub trait TokenSource: Send + Sync + 'static {
    fn bearer(&self) -> Result<String, String>;
}

/// Sends outbox commands to their targets until shut down.
pub struct Relay {
    db: Database,
    targets: HashMap<String, Channel>,
    tokens: Arc<dyn TokenSource>,
    wake: Arc<Notify>,
    settings: RelaySettings,
}

impl Relay {
    /// `targets` maps a target name to its base URL (`http://host:port`, or
    /// `https://` for TLS with `settings.tls`); channels connect lazily, so a
    /// target that is down is simply retried.
    pub fn new(
        db: Database,
        targets: &[(&str, &str)],
        tokens: Arc<dyn TokenSource>,
        wake: Arc<Notify>,
        settings: RelaySettings,
    ) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        for (name, url) in targets {
            let endpoint =
                settings.tls.endpoint(url, None)?.connect_timeout(settings.call_timeout).timeout(settings.call_timeout);
            channels.insert(name.to_string(), endpoint.connect_lazy());
        }
        Ok(Self { db, targets: channels, tokens, wake, settings })
    }

    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let instance = uuid::Uuid::now_v7().to_string();
        tracing::info!(relay = %instance, "outbox relay started");
        let mut known: Vec<String> = self.targets.keys().cloned().collect();
        known.sort();
        // One lane per target, so a target's timeouts and backlog stay its
        // own; each has its own wake-up so one commit wakes every target's
        // lane. The lane for unknown targets only polls: its scan cannot use
        // the per-target index, and commands for it are a configuration
        // mistake that waiting a poll interval does not make worse.
        let lanes: Vec<(Lane, Notify)> = known
            .iter()
            .map(|target| (Lane::Target(target.clone()), Notify::new()))
            .chain(std::iter::once((Lane::Unroutable(known.clone()), Notify::new())))
            .collect();
        let wake_target_lanes = async {
            let mut shutdown = shutdown.clone();
            while !stopping(&shutdown) {
                tokio::select! {
                    () = self.wake.notified() => {
                        for (lane, wake) in &lanes {
                            if matches!(lane, Lane::Target(_)) {
                                wake.notify_one();
                            }
                        }
                    }
                    _ = shutdown.changed() => {}
                }
            }
        };
        let gauges = async {
            let mut shutdown = shutdown.clone();
            while !stopping(&shutdown) {
                self.update_gauges().await;
                tokio::select! {
                    () = tokio::time::sleep(GAUGE_INTERVAL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        };
        let deliveries =
            futures::future::join_all(lanes.iter().map(|(lane, wake)| self.run_lane(lane, wake, shutdown.clone())));
        tokio::join!(wake_target_lanes, gauges, deliveries);
        tracing::info!(relay = %instance, "outbox relay stopped");
    }

    /// Claims, delivers and records one lane's commands until shut down.
    async fn run_lane(&self, lane: &Lane, wake: &Notify, mut shutdown: watch::Receiver<bool>) {
        while !stopping(&shutdown) {
            let claimed = match self.claim(lane).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, ?lane, "outbox relay cannot claim commands; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let deliveries = claimed.into_iter().map(|row| async move {
                let outcome = self.deliver(&row).await;
                (row, outcome)
            });
            let results = futures::future::join_all(deliveries).await;
            if let Err(e) = self.record(results).await {
                tracing::warn!(error = %e, ?lane, "outbox relay cannot record deliveries; they will be retried");
            }
        }
    }

    async fn update_gauges(&self) {
        use crate::observability::{OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PARKED, OUTBOX_PENDING};
        let backlog = self.db.read(|conn| Ok::<_, DbError>(backlog(conn, chrono::Utc::now().naive_utc())?)).await;
        match backlog {
            Ok((pending, age, parked)) => {
                let service = self.settings.service;
                if service.is_empty() {
                    metrics::gauge!(OUTBOX_PENDING).set(pending as f64);
                    metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE).set(age.as_secs_f64());
                    metrics::gauge!(OUTBOX_PARKED).set(parked as f64);
                } else {
                    metrics::gauge!(OUTBOX_PENDING, "service" => service).set(pending as f64);
                    metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE, "service" => service).set(age.as_secs_f64());
                    metrics::gauge!(OUTBOX_PARKED, "service" => service).set(parked as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "outbox relay cannot count its backlog"),
        }
        self.settings.pressure.record_gauge(self.settings.service);
    }

    /// Takes the due group heads of one lane, leasing them.
    async fn claim(&self, lane: &Lane) -> Result<Vec<OutboxRow>, DbError> {
        let now = chrono::Utc::now().naive_utc();
        let (scanned, limit) = (lane.clone(), i64::try_from(self.settings.batch).unwrap_or(i64::MAX));
        // Found outside the write transaction, so SQLite's single writer is
        // held only for the leases. A head found stays a head (earlier
        // commands only ever become delivered), and the lease below takes a
        // command only if it is still undelivered, unparked and due, so a
        // replica that took it meanwhile wins.
        let heads = self.db.read(move |conn| Ok::<_, DbError>(due_heads(conn, &scanned, now, limit)?)).await?;
        if let Lane::Target(target) = lane {
            // The most overdue first attempt says how far behind this lane is (retries do not count).
            let overdue = heads
                .iter()
                .filter_map(|(_, due)| due.and_then(|due| (now - due).to_std().ok()))
                .max()
                .unwrap_or_default();
            self.settings.pressure.observe(target, overdue);
        }
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let heads: Vec<i64> = heads.into_iter().map(|(id, _)| id).collect();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::seconds(30));
        self.db
            .write(move |conn| {
                let lease_until = chrono::Utc::now().naive_utc() + lease;
                let mut taken_ids = Vec::with_capacity(heads.len());
                for id in heads {
                    let taken = diesel::update(
                        outbox::table
                            .filter(outbox::id.eq(id))
                            .filter(outbox::delivered_at.is_null())
                            .filter(outbox::parked_at.is_null())
                            .filter(outbox::next_attempt_at.le(now)),
                    )
                    .set(outbox::next_attempt_at.eq(lease_until))
                    .execute(conn)?;
                    if taken == 1 {
                        taken_ids.push(id);
                    }
                }
                let claimed: Vec<OutboxRow> = outbox::table
                    .filter(outbox::id.eq_any(&taken_ids))
                    .order(outbox::id)
                    .select(OutboxRow::as_select())
                    .load(conn)?;
                Ok::<_, DbError>(claimed)
            })
            .await
    }

    async fn deliver(&self, row: &OutboxRow) -> Result<(), Failure> {
        let channel = self
            .targets
            .get(&row.target)
            .ok_or_else(|| Failure::refused(format!("no address configured for target {}", row.target)))?;
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(row.method.as_str())
            .map_err(|e| Failure::refused(format!("bad method path {}: {e}", row.method)))?;
        let bearer = self.tokens.bearer().map_err(Failure::transient)?;
        let mut request = Request::new(row.payload.clone());
        request.set_timeout(self.settings.call_timeout);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().map_err(|_| Failure::refused("service token is not ASCII".into()))?,
        );
        if let Some(value) = row.request_id.as_deref().and_then(|id| id.parse().ok()) {
            request.metadata_mut().insert(crate::observability::REQUEST_ID_HEADER, value);
        }
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.map_err(|e| Failure::transient(format!("{} unreachable: {e}", row.target)))?;
        grpc.unary::<Vec<u8>, Vec<u8>, RawCodec>(request, path, RawCodec)
            .await
            .map(|_| ())
            .map_err(|status| Failure { message: describe(row, &status), refused: is_refusal(status.code()) })
    }

    async fn record(&self, results: Vec<(OutboxRow, Result<(), Failure>)>) -> Result<(), DbError> {
        let settings = self.settings.clone();
        self.db
            .write(move |conn| {
                let now = chrono::Utc::now().naive_utc();
                for (row, outcome) in &results {
                    let attempt = |outcome: &'static str| {
                        metrics::counter!(crate::observability::RELAY_ATTEMPTS_TOTAL, "target" => row.target.clone(), "outcome" => outcome)
                            .increment(1);
                    };
                    match outcome {
                        Ok(()) => {
                            attempt("delivered");
                            diesel::update(outbox::table.find(row.id))
                                .set((outbox::delivered_at.eq(now), outbox::attempts.eq(row.attempts + 1)))
                                .execute(conn)?;
                        }
                        Err(Failure { message: error, refused }) => {
                            let attempts = row.attempts + 1;
                            // A refusal will not pass by waiting: park it soon for an operator.
                            let limit = if *refused { settings.max_attempts.min(REFUSED_ATTEMPTS) } else { settings.max_attempts };
                            let parked = (attempts >= limit).then_some(now);
                            let wait = chrono::Duration::from_std(backoff(&settings, attempts)).unwrap_or(chrono::Duration::seconds(1));
                            attempt(match (parked.is_some(), *refused) {
                                (true, _) => "parked",
                                (false, true) => "refused",
                                (false, false) => "failed",
                            });
                            if parked.is_some() {
                                tracing::error!(command_id = %row.command_id, rpc = row.rpc(), request_id = row.request_id.as_deref(), %error, attempts, "command parked after too many attempts");
                            } else {
                                tracing::warn!(command_id = %row.command_id, rpc = row.rpc(), request_id = row.request_id.as_deref(), %error, attempts, "command delivery failed; will retry");
                            }
                            diesel::update(outbox::table.find(row.id))
                                .set((
                                    outbox::attempts.eq(attempts),
                                    outbox::next_attempt_at.eq(now + wait),
                                    outbox::last_error.eq(Some(error.as_str())),
                                    outbox::parked_at.eq(parked),
                                ))
                                .execute(conn)?;
                        }
                    }
                }
                Ok::<_, DbError>(())
            })
            .await
    }
}

/// Attempts before a command its target refuses is parked.
pub const REFUSED_ATTEMPTS: i32 = 5;

/// How often the relay refreshes the outbox gauges.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// True once shutdown is asked for, or its sender is gone.
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Why one delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    message: String,
    /// The target (or our own set-up) said no, as opposed to being unreachable.
    refused: bool,
}

impl Failure {
    fn refused(message: String) -> Self {
        Self { message, refused: true }
    }

    fn transient(message: String) -> Self {
        Self { message, refused: false }
    }
}

/// Codes that mean the target understood and said no; retrying unchanged
/// will not help until someone fixes the cause.
fn is_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::OutOfRange
    )
}

fn describe(row: &OutboxRow, status: &Status) -> String {
    let kind = match status.code() {
        Code::Unimplemented => "not implemented by the target yet",
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => "target unavailable",
        _ => "refused by the target",
    };
    format!("{} {}: {kind}: {:?}: {}", row.target, row.rpc(), status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_to_its_cap_with_jitter_below_it() {
        let settings = RelaySettings::default();
        for attempts in 0..40 {
            let wait = backoff(&settings, attempts);
            assert!(wait <= settings.max_backoff, "{attempts}: {wait:?}");
            let full = settings
                .initial_backoff
                .saturating_mul(2u32.saturating_pow(attempts.clamp(0, 20) as u32))
                .min(settings.max_backoff);
            assert!(wait >= full / 2, "{attempts}: {wait:?} is more than half off {full:?}");
        }
    }

    #[test]
    fn refusals_are_told_apart_from_unavailability() {
        assert!(is_refusal(Code::NotFound));
        assert!(is_refusal(Code::InvalidArgument));
        for transient in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Aborted,
            Code::ResourceExhausted,
            Code::Internal,
        ] {
            assert!(!is_refusal(transient), "{transient:?}");
        }
    }
}
