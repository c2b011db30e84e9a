//! The relay: delivers the outbox's commands to their targets, one lane per
//! target, with backoff, leases and parking (see the [`super`] module).

use super::*;
use crate::db::{Database, DbError, KeepPreparedDsl};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steplab_proto::steplab::common::v1::{CommandResult, EncodedCommand};
use tokio::sync::{Notify, watch};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

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
    /// Commands a lane claims at once (each from a different group), sent
    /// in one `ApplyCommands` call per target service (at most 1,000).
    pub batch: usize,
    /// Claims a lane has in flight at once: while one batch is delivered,
    /// the next is claimed and another recorded.
    pub in_flight: usize,
    /// After a commit wakes the relay, how long it lets more commits gather
    /// before its lanes claim (zero: claim at once).
    pub linger: Duration,
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
            batch: crate::config::DEFAULT_RELAY_BATCH_SIZE as usize,
            in_flight: crate::config::DEFAULT_RELAY_IN_FLIGHT as usize,
            linger: Duration::from_millis(crate::config::DEFAULT_RELAY_LINGER_MS),
            tls: crate::tls::ClientTls::default(),
            service: "",
            pressure: super::Pressure::new(),
        }
    }
}

impl RelaySettings {
    /// The defaults with a deployment's retry limits, batch size, batches in
    /// flight and its client `tls`, as every service's own relay runs.
    pub fn from_retry(retry: &crate::config::RelayRetry, tls: crate::tls::ClientTls) -> Self {
        Self {
            max_attempts: retry.max_attempts,
            max_backoff: retry.max_backoff,
            batch: retry.batch_size,
            in_flight: retry.in_flight,
            linger: retry.linger,
            tls,
            ..Self::default()
        }
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
    /// Targets that answered UNIMPLEMENTED to `ApplyCommands` (an older
    /// release mid-upgrade), and when: they get one
    /// unary call per command until [`UNBATCHED_RECHECK`] has passed, then
    /// `ApplyCommands` is tried again, so a rolling upgrade ends batched
    /// without a restart.
    unbatched: Mutex<HashMap<String, Instant>>,
}

/// One delivery's outcome for one claimed command.
type Outcome = (OutboxRow, Result<(), Failure>);

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
        Ok(Self { db, targets: channels, tokens, wake, settings, unbatched: Mutex::default() })
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
        // mistake that waiting a poll interval does not make worse; one loop
        // is enough for it.
        let in_flight = self.settings.in_flight.max(1);
        // Each lane: its wake-up, its turn to claim (one claim at a time,
        // see `run_lane`) and its loops.
        let lanes: Vec<(Lane, Notify, tokio::sync::Mutex<()>, usize)> = known
            .iter()
            .map(|target| (Lane::Target(target.clone()), Notify::new(), tokio::sync::Mutex::new(()), in_flight))
            .chain(std::iter::once((Lane::Unroutable(known.clone()), Notify::new(), tokio::sync::Mutex::new(()), 1)))
            .collect();
        let wake_target_lanes = async {
            let mut shutdown = shutdown.clone();
            while !stopping(&shutdown) {
                tokio::select! {
                    () = self.wake.notified() => {
                        // Commits during the pause leave one permit, so they
                        // share the claims this wake-up makes.
                        if !self.settings.linger.is_zero() {
                            tokio::time::sleep(self.settings.linger).await;
                        }
                        for (lane, wake, _, _) in &lanes {
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
        let deliveries = futures::future::join_all(lanes.iter().flat_map(|(lane, wake, claiming, loops)| {
            (0..*loops).map(|_| self.run_lane(lane, wake, claiming, shutdown.clone()))
        }));
        tokio::join!(wake_target_lanes, gauges, deliveries);
        tracing::info!(relay = %instance, "outbox relay stopped");
    }

    /// One of a lane's `in_flight` loops: claims, delivers and records the
    /// lane's commands until shut down.
    ///
    /// The loops share the lane's wake-up. A commit wakes one idle loop
    /// (`notify_one`), or, when all are busy, leaves a permit the next loop
    /// to finish takes, so a commit is never missed and an idle lane runs
    /// one claim per commit, not one per loop. A loop that claimed a full
    /// batch wakes the next, since more is likely due: under a flood every
    /// loop is busy, at rest one claim answers one commit. Two loops never
    /// take one command (the lease is a compare-and-set), and only group
    /// heads are claimed, so a group's next command waits until this one is
    /// recorded delivered whichever loop carries it.
    async fn run_lane(
        &self,
        lane: &Lane,
        wake: &Notify,
        claiming: &tokio::sync::Mutex<()>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        while !stopping(&shutdown) {
            // The lane's loops claim one at a time, each after the last one's
            // lease: loops that scanned together found the same heads, and
            // all but one then leased only part of them or nothing, on
            // PostgreSQL after waiting for the winner's commit (offered
            // 1,000/s on PostgreSQL: of 2,886 claims that found heads, 477
            // took none and 640 only some). Delivery still overlaps.
            let claim = {
                let _turn = claiming.lock().await;
                self.claim(lane).await
            };
            let (claimed, _on_its_way) = match claim {
                Ok(claim) => claim,
                Err(e) => {
                    tracing::warn!(error = %e, ?lane, "outbox relay cannot claim commands; retrying");
                    (Vec::new(), None)
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
            if claimed.len() >= self.settings.batch {
                wake.notify_one();
            }
            let results = self.deliver_claimed(claimed).await;
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

    /// Takes the due group heads of one lane, leasing them: one read to find
    /// them (whole rows), then one UPDATE and its RETURNING, however many
    /// there are. With them, for a target's lane, the batch's
    /// place in the backpressure lag from the moment they are found until
    /// they are delivered and recorded (held by the caller until then).
    async fn claim(&self, lane: &Lane) -> Result<(Vec<OutboxRow>, Option<OnItsWay>), DbError> {
        let now = chrono::Utc::now().naive_utc();
        let (scanned, limit) = (lane.clone(), i64::try_from(self.settings.batch).unwrap_or(i64::MAX));
        // Found outside the write transaction, so SQLite's single writer is
        // held only for the leases. A head found stays a head (earlier
        // commands only ever become delivered), and the lease below takes a
        // command only if it is still undelivered, unparked and due, so a
        // replica (or another loop of this lane) that took it meanwhile wins.
        let heads = self.db.read(move |conn| Ok::<_, DbError>(due_heads(conn, &scanned, now, limit)?)).await?;
        // The most overdue first attempt says how far behind this lane is
        // (retries do not count).
        let overdue = heads.iter().filter_map(|(_, due)| due.and_then(|due| (now - due).to_std().ok())).max();
        let target = match lane {
            Lane::Target(target) => Some(target),
            Lane::Unroutable(_) => None,
        };
        if let Some(target) = target {
            self.settings.pressure.observe(target, overdue.unwrap_or_default());
        }
        if heads.is_empty() {
            return Ok((Vec::new(), None));
        }
        // The claimed batch counts from now, not from the lease: the lease
        // waits for this process's turn to write, behind every change being
        // accepted, and a signal that stood still meanwhile let ever more
        // changes in ahead of the relay (offered 1,000/s on SQLite: 1,900
        // commands due for 3.5 s with 14 leased, and nothing refused).
        let first_attempts = heads.iter().filter(|(_, due)| due.is_some()).count();
        let on_its_way = target.and(overdue).map(|overdue| self.settings.pressure.on_its_way(overdue, first_attempts));
        let ids: Vec<i64> = heads.iter().map(|(row, _)| row.id).collect();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::seconds(30));
        // One statement, so it needs no transaction around it (see
        // `Database::write_statement`). RETURNING names exactly the rows
        // this update changed: on PostgreSQL a racing replica's update waits
        // for this one to commit, then finds them no longer due and changes
        // nothing.
        let taken: HashSet<i64> = self
            .db
            .write_statement(move |conn| {
                let lease_until = chrono::Utc::now().naive_utc() + lease;
                Ok::<_, DbError>(take_leases(conn, &ids, now, lease_until)?)
            })
            .await?
            .into_iter()
            .collect();
        // The rows as found: the lease changed only their due time, which
        // delivery does not read.
        let mut claimed: Vec<OutboxRow> =
            heads.into_iter().map(|(row, _)| row).filter(|row| taken.contains(&row.id)).collect();
        claimed.sort_by_key(|row| row.id);
        Ok((claimed, on_its_way))
    }

    /// Sends claimed commands: one `ApplyCommands` call per target service
    /// and `batch` commands, all at once; one unary call per command to a
    /// target without `ApplyCommands`.
    async fn deliver_claimed(&self, rows: Vec<OutboxRow>) -> Vec<Outcome> {
        let mut calls: Vec<Vec<OutboxRow>> = Vec::new();
        let mut call_of: HashMap<(String, String), usize> = HashMap::new();
        for row in rows {
            let key = (row.target.clone(), row.method.rsplit_once('/').map_or("", |(service, _)| service).to_owned());
            let call = *call_of.entry(key).or_insert_with(|| {
                calls.push(Vec::new());
                calls.len() - 1
            });
            calls[call].push(row);
        }
        let batch = self.settings.batch.clamp(1, MAX_APPLY_COMMANDS);
        let mut batches = Vec::new();
        for mut call in calls {
            while call.len() > batch {
                let rest = call.split_off(batch);
                batches.push(std::mem::replace(&mut call, rest));
            }
            batches.push(call);
        }
        futures::future::join_all(batches.into_iter().map(|rows| self.deliver_batch(rows))).await.concat()
    }

    /// Sends commands of one target service (at most `batch`) as one
    /// `ApplyCommands` call, falling back to unary calls when the target has
    /// no `ApplyCommands`.
    async fn deliver_batch(&self, rows: Vec<OutboxRow>) -> Vec<Outcome> {
        let Some(first) = rows.first() else { return Vec::new() };
        let target = first.target.clone();
        let Some(channel) = self.targets.get(&target) else {
            let failure = Failure::refused(format!("no address configured for target {target}"));
            return rows.into_iter().map(|row| (row, Err(failure.clone()))).collect();
        };
        // A method path without a service cannot be batched; its unary call
        // refuses it with the reason.
        let Some(service) = first.method.rsplit_once('/').map(|(service, _)| service).filter(|s| s.len() > 1) else {
            return self.deliver_each(rows).await;
        };
        if self.is_unbatched(&target) {
            return self.deliver_each(rows).await;
        }
        let path = format!("{service}/ApplyCommands");
        match self.apply_commands(channel, &path, &rows).await {
            Ok(results) => {
                self.forget_unbatched(&target);
                let answered = results.len();
                let count = rows.len();
                let mut results = results.into_iter();
                rows.into_iter()
                    .map(|row| {
                        let outcome = if answered == count {
                            outcome_of(&row, results.next().unwrap_or_default())
                        } else {
                            Err(Failure::transient(format!(
                                "{target} ApplyCommands answered {answered} results for {count} commands"
                            )))
                        };
                        (row, outcome)
                    })
                    .collect()
            }
            Err(CallError::Status(status)) if status.code() == Code::Unimplemented => {
                // Not a failed attempt: the target is older or never batches.
                self.remember_unbatched(&target, &status);
                self.deliver_each(rows).await
            }
            Err(CallError::Setup(failure)) => rows.into_iter().map(|row| (row, Err(failure.clone()))).collect(),
            Err(CallError::Status(status)) => {
                // The call failed as a whole: every command fails alike,
                // transient unless the target refused. One applied before an
                // acknowledgement was lost is de-duplicated when sent again.
                let count = rows.len();
                let failure = Failure {
                    message: format!("{} (a batch of {count})", describe(&target, "ApplyCommands", &status, "")),
                    refused: is_refusal(status.code()),
                };
                rows.into_iter().map(|row| (row, Err(failure.clone()))).collect()
            }
        }
    }

    /// One `ApplyCommands` call carrying `rows`, in their order.
    async fn apply_commands(
        &self,
        channel: &Channel,
        path: &str,
        rows: &[OutboxRow],
    ) -> Result<Vec<CommandResult>, CallError> {
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(path)
            .map_err(|e| CallError::Setup(Failure::refused(format!("bad method path {path}: {e}"))))?;
        let commands = rows
            .iter()
            .map(|row| EncodedCommand {
                rpc: row.rpc().to_owned(),
                request: row.payload.clone(),
                request_id: row.request_id.clone().unwrap_or_default(),
            })
            .collect();
        let mut request =
            self.authorised(ApplyCommandsRequest { commands }.encode_to_vec()).map_err(CallError::Setup)?;
        // The batch is its own call, with its own x-request-id made by the
        // receiver; each command carries the id of the call that caused it.
        request.set_timeout(self.settings.call_timeout);
        let target = &rows[0].target;
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.map_err(|e| CallError::Setup(Failure::transient(format!("{target} unreachable: {e}"))))?;
        metrics::histogram!(crate::observability::RELAY_BATCH_COMMANDS, "target" => target.clone())
            .record(rows.len() as f64);
        let response =
            grpc.unary::<Vec<u8>, Vec<u8>, RawCodec>(request, path, RawCodec).await.map_err(CallError::Status)?;
        ApplyCommandsResponse::decode(response.into_inner().as_slice())
            .map(|decoded| decoded.results)
            .map_err(|e| CallError::Setup(Failure::transient(format!("{target} ApplyCommands answered garbage: {e}"))))
    }

    /// One unary call per command, all at once.
    async fn deliver_each(&self, rows: Vec<OutboxRow>) -> Vec<Outcome> {
        futures::future::join_all(rows.into_iter().map(|row| async move {
            let outcome = self.deliver(&row).await;
            (row, outcome)
        }))
        .await
    }

    async fn deliver(&self, row: &OutboxRow) -> Result<(), Failure> {
        let channel = self
            .targets
            .get(&row.target)
            .ok_or_else(|| Failure::refused(format!("no address configured for target {}", row.target)))?;
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(row.method.as_str())
            .map_err(|e| Failure::refused(format!("bad method path {}: {e}", row.method)))?;
        let mut request = self.authorised(row.payload.clone())?;
        request.set_timeout(self.settings.call_timeout);
        if let Some(value) = row.request_id.as_deref().and_then(|id| id.parse().ok()) {
            request.metadata_mut().insert(crate::observability::REQUEST_ID_HEADER, value);
        }
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.map_err(|e| Failure::transient(format!("{} unreachable: {e}", row.target)))?;
        metrics::histogram!(crate::observability::RELAY_BATCH_COMMANDS, "target" => row.target.clone()).record(1.0);
        grpc.unary::<Vec<u8>, Vec<u8>, RawCodec>(request, path, RawCodec).await.map(|_| ()).map_err(|status| {
            let reason = status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default();
            Failure { message: describe(&row.target, row.rpc(), &status, &reason), refused: is_refusal(status.code()) }
        })
    }

    /// A request carrying the service token.
    fn authorised(&self, body: Vec<u8>) -> Result<Request<Vec<u8>>, Failure> {
        let bearer = self.tokens.bearer().map_err(Failure::transient)?;
        let mut request = Request::new(body);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().map_err(|_| Failure::refused("service token is not ASCII".into()))?,
        );
        Ok(request)
    }

    fn is_unbatched(&self, target: &str) -> bool {
        let unbatched = self.unbatched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        unbatched.get(target).is_some_and(|since| since.elapsed() < UNBATCHED_RECHECK)
    }

    fn remember_unbatched(&self, target: &str, status: &Status) {
        let mut unbatched = self.unbatched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Logged once per target; a recheck that still finds no
        // ApplyCommands only renews the date.
        if unbatched.insert(target.to_owned(), Instant::now()).is_none() {
            tracing::info!(
                target,
                message = status.message(),
                "target has no ApplyCommands; sending it one call per command"
            );
        }
    }

    fn forget_unbatched(&self, target: &str) {
        let mut unbatched = self.unbatched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if unbatched.remove(target).is_some() {
            tracing::info!(target, "target now takes ApplyCommands; sending it batches");
        }
    }

    /// Records the outcomes in one write transaction: the delivered commands
    /// with one UPDATE, each failure (rare) with its own. When every command
    /// was delivered that UPDATE is the only statement, run without a
    /// transaction around it (see `Database::write_statement`).
    async fn record(&self, results: Vec<Outcome>) -> Result<(), DbError> {
        let settings = self.settings.clone();
        let all_delivered = results.iter().all(|(_, outcome)| outcome.is_ok());
        let work = move |conn: &mut DbConn| {
            let now = chrono::Utc::now().naive_utc();
            let mut delivered: Vec<i64> = Vec::new();
            let mut delivered_per_target: HashMap<&str, u64> = HashMap::new();
            for (row, outcome) in &results {
                let attempt = |outcome: &'static str| {
                    metrics::counter!(crate::observability::RELAY_ATTEMPTS_TOTAL, "target" => row.target.clone(), "outcome" => outcome)
                            .increment(1);
                };
                match outcome {
                    Ok(()) => {
                        delivered.push(row.id);
                        *delivered_per_target.entry(row.target.as_str()).or_default() += 1;
                    }
                    Err(Failure { message: error, refused }) => {
                        let attempts = row.attempts + 1;
                        // A refusal will not pass by waiting: park it soon for an operator.
                        let limit =
                            if *refused { settings.max_attempts.min(REFUSED_ATTEMPTS) } else { settings.max_attempts };
                        let parked = (attempts >= limit).then_some(now);
                        let wait = chrono::Duration::from_std(backoff(&settings, attempts))
                            .unwrap_or(chrono::Duration::seconds(1));
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
                        crate::on_backend!(conn, |inner| diesel::update(outbox::table.find(row.id))
                            .set((
                                outbox::attempts.eq(attempts),
                                outbox::next_attempt_at.eq(now + wait),
                                outbox::last_error.eq(Some(error.as_str())),
                                outbox::parked_at.eq(parked),
                            ))
                            .keep_prepared()
                            .execute(inner))?;
                    }
                }
            }
            if !delivered.is_empty() {
                mark_delivered(conn, &delivered, now)?;
            }
            for (target, count) in delivered_per_target {
                metrics::counter!(crate::observability::RELAY_ATTEMPTS_TOTAL, "target" => target.to_owned(), "outcome" => "delivered")
                        .increment(count);
            }
            Ok::<_, DbError>(())
        };
        if all_delivered { self.db.write_statement(work).await } else { self.db.write(work).await }
    }
}

/// The ids as one JSON array, for SQLite's `json_each`. The relay's two
/// statements on a list of ids (a claim's leases, a batch recorded as
/// delivered) are kept prepared, so their text must not vary with the
/// list's length: PostgreSQL takes the ids as one array (`= ANY($1)`,
/// diesel's own), SQLite as this one text (diesel would bind one `?` per id
/// there: a new statement to parse for every batch size).
fn ids_json(ids: &[i64]) -> String {
    let listed: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", listed.join(","))
}

/// `outbox.id` among the JSON array bound, for SQLite (see [`ids_json`]).
macro_rules! among_sqlite {
    ($ids:expr) => {
        diesel::dsl::sql::<diesel::sql_types::Bool>("outbox.id IN (SELECT value FROM json_each(")
            .bind::<diesel::sql_types::Text, _>(ids_json($ids))
            .sql("))")
    };
}

/// Leases the commands of `ids` still undelivered, unparked and due at
/// `now` until `lease_until`, answering the ids it took: one statement.
fn take_leases(
    conn: &mut DbConn,
    ids: &[i64],
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<i64>> {
    macro_rules! take {
        ($among:expr, $inner:expr) => {
            diesel::update(
                outbox::table
                    .filter($among)
                    .filter(outbox::delivered_at.is_null())
                    .filter(outbox::parked_at.is_null())
                    .filter(outbox::next_attempt_at.le(now)),
            )
            .set(outbox::next_attempt_at.eq(lease_until))
            .returning(outbox::id)
            .keep_prepared()
            .get_results($inner)
        };
    }
    match conn {
        DbConn::Pg(pg) => take!(outbox::id.eq_any(ids), pg),
        DbConn::Sqlite(sqlite) => take!(among_sqlite!(ids), sqlite),
    }
}

/// Records the commands of `ids` delivered at `now`: one statement.
fn mark_delivered(conn: &mut DbConn, ids: &[i64], now: NaiveDateTime) -> QueryResult<usize> {
    macro_rules! mark {
        ($among:expr, $inner:expr) => {
            diesel::update(outbox::table.filter($among))
                .set((outbox::delivered_at.eq(now), outbox::attempts.eq(outbox::attempts + 1)))
                .keep_prepared()
                .execute($inner)
        };
    }
    match conn {
        DbConn::Pg(pg) => mark!(outbox::id.eq_any(ids), pg),
        DbConn::Sqlite(sqlite) => mark!(among_sqlite!(ids), sqlite),
    }
}

/// Attempts before a command its target refuses is parked.
pub const REFUSED_ATTEMPTS: i32 = 5;

/// The most commands `ApplyCommands` takes in one call (the receivers
/// refuse a larger batch whole).
const MAX_APPLY_COMMANDS: usize = 1_000;

/// How long a target that answered UNIMPLEMENTED to `ApplyCommands` gets
/// unary calls before `ApplyCommands` is tried again: a rolling upgrade ends
/// batched within a minute, at the cost of one extra call a minute to a
/// target that never batches (the DfE gateway).
const UNBATCHED_RECHECK: Duration = Duration::from_secs(60);

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

/// What a failed call of `rpc` on `target` said, with the ErrorInfo reason
/// when there is one.
fn describe(target: &str, rpc: &str, status: &Status, reason: &str) -> String {
    let kind = match status.code() {
        Code::Unimplemented => "not implemented by the target yet",
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => "target unavailable",
        _ => "refused by the target",
    };
    let reason = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
    format!("{target} {rpc}: {kind}: {:?}: {}{reason}", status.code(), status.message())
}

/// A command's outcome from its result in an `ApplyCommands` answer.
fn outcome_of(row: &OutboxRow, result: CommandResult) -> Result<(), Failure> {
    // Results answer by index; one naming another command means the answer
    // is not in the request's order, and nothing in it can be trusted.
    if !result.idempotency_key.is_empty() && result.idempotency_key != row.command_id {
        return Err(Failure::transient(format!(
            "{} ApplyCommands answered for {} in the place of {}",
            row.target, result.idempotency_key, row.command_id
        )));
    }
    if result.code == 0 {
        return Ok(());
    }
    let status = Status::new(Code::from_i32(result.code), result.message);
    Err(Failure {
        message: describe(&row.target, row.rpc(), &status, &result.reason),
        refused: is_refusal(status.code()),
    })
}

/// Why an `ApplyCommands` call failed as a whole.
#[derive(Debug)]
enum CallError {
    /// The call could not be made or its answer not read.
    Setup(Failure),
    /// The target answered with this status.
    Status(Status),
}

/// `ApplyCommands`' request on every target service that has it (content
/// release, payments): one repeated field, the same wire form on each.
#[derive(Clone, PartialEq, Message)]
struct ApplyCommandsRequest {
    #[prost(message, repeated, tag = "1")]
    commands: Vec<EncodedCommand>,
}

/// `ApplyCommands`' response on every target service that has it.
#[derive(Clone, PartialEq, Message)]
struct ApplyCommandsResponse {
    #[prost(message, repeated, tag = "1")]
    results: Vec<CommandResult>,
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
