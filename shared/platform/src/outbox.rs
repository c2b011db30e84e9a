//! The transactional outbox and its relay: nothing a service decides is lost
//! between services.
//!
//! A change writes its commands to the `outbox` table in the same transaction
//! as the change itself. The relay delivers them over gRPC with a service
//! token and a deadline, in order per (participant, target): a group's next
//! command waits until the one before it is delivered. Failures are retried
//! with exponential backoff and jitter; after `max_attempts` a command is
//! parked (and its group waits) until an operator retries it. Receivers
//! de-duplicate by `command_id` (see `idempotency`), so a command delivered
//! twice after a lost acknowledgement has one effect.
//!
//! Targets and groups are independent: each target has its own delivery
//! lane, and a lane claims group heads found by index (see [`due_heads`]), so
//! a target that is down, slow, backing off or parked never delays another
//! target's commands, nor another participant's, however large the backlog.
//!
//! Claiming is a compare-and-set lease on `next_attempt_at`, so several
//! replicas relaying from one PostgreSQL database never deliver the same
//! command at the same time, and a replica that dies mid-delivery leaves its
//! claim to expire. The payload is the encoded request and `method` its full
//! gRPC path, so the relay needs no knowledge of the RPCs it carries.

use crate::db::{Database, DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

diesel::table! {
    outbox (id) {
        id -> BigInt,
        command_id -> Text,
        participant_id -> Text,
        target -> Text,
        method -> Text,
        payload -> Binary,
        created_at -> Timestamp,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        parked_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

/// A command to send, decided inside a unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    pub command_id: String,
    pub participant_id: String,
    /// The receiving service, e.g. `content-release`.
    pub target: String,
    /// The full gRPC path, e.g. `/steplab.content.v1.ContentReleaseService/PlaceHold`.
    pub method: String,
    /// The encoded request message.
    pub payload: Vec<u8>,
    /// The `x-request-id` of the call that caused the command; the relay
    /// sends it on as `x-request-id`.
    pub request_id: Option<String>,
}

/// A stored command and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub command_id: String,
    pub participant_id: String,
    pub target: String,
    pub method: String,
    pub payload: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
    pub parked_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub request_id: Option<String>,
}

impl OutboxRow {
    /// The RPC's short name, e.g. `PlaceHold`.
    pub fn rpc(&self) -> &str {
        self.method.rsplit('/').next().unwrap_or(&self.method)
    }
}

/// Adds a command to the outbox; call inside the change's transaction.
pub fn enqueue(conn: &mut DbConn, command: &NewCommand, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::command_id.eq(&command.command_id),
            outbox::participant_id.eq(&command.participant_id),
            outbox::target.eq(&command.target),
            outbox::method.eq(&command.method),
            outbox::payload.eq(&command.payload),
            outbox::created_at.eq(now),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
            outbox::request_id.eq(&command.request_id),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Every command sent for one participant, oldest first.
pub fn for_participant(conn: &mut DbConn, participant_id: &str) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::participant_id.eq(participant_id))
        .order(outbox::id)
        .select(OutboxRow::as_select())
        .load(conn)
}

/// Commands not yet delivered: (waiting or being retried, parked).
pub fn undelivered_counts(conn: &mut DbConn) -> QueryResult<(i64, i64)> {
    let pending = outbox::table
        .filter(outbox::delivered_at.is_null())
        .filter(outbox::parked_at.is_null())
        .count()
        .get_result(conn)?;
    let parked = outbox::table
        .filter(outbox::parked_at.is_not_null())
        .filter(outbox::delivered_at.is_null())
        .count()
        .get_result(conn)?;
    Ok((pending, parked))
}

/// The outbox's gauges: commands pending (not parked), the age of the
/// oldest pending one (0 when none), and parked commands.
pub fn backlog(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<(i64, Duration, i64)> {
    let (pending, parked) = undelivered_counts(conn)?;
    let oldest: Option<NaiveDateTime> = outbox::table
        .filter(outbox::delivered_at.is_null())
        .filter(outbox::parked_at.is_null())
        .select(diesel::dsl::min(outbox::created_at))
        .first(conn)?;
    let age = oldest.and_then(|t| (now - t).to_std().ok()).unwrap_or_default();
    Ok((pending, age, parked))
}

/// Undelivered commands, oldest first, at most `limit`.
pub fn undelivered(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::delivered_at.is_null())
        .order(outbox::id)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
}

/// Parked commands, oldest first, at most `limit`.
pub fn parked(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::delivered_at.is_null())
        .filter(outbox::parked_at.is_not_null())
        .order(outbox::id)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
}

/// Queues parked commands again with a fresh attempt count: one command, a
/// participant's, or all. Returns how many.
pub fn retry_parked(
    conn: &mut DbConn,
    command_id: Option<&str>,
    participant_id: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let mut query = diesel::update(outbox::table)
        .filter(outbox::delivered_at.is_null())
        .filter(outbox::parked_at.is_not_null())
        .into_boxed();
    if let Some(id) = command_id {
        query = query.filter(outbox::command_id.eq(id.to_owned()));
    }
    if let Some(id) = participant_id {
        query = query.filter(outbox::participant_id.eq(id.to_owned()));
    }
    query
        .set((outbox::parked_at.eq(None::<NaiveDateTime>), outbox::attempts.eq(0), outbox::next_attempt_at.eq(now)))
        .execute(conn)
}

/// Which commands one delivery lane of the relay claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lane {
    /// The commands for one configured target.
    Target(String),
    /// The commands for any target not among these (no address configured):
    /// they fail as refusals and are parked for an operator.
    Unroutable(Vec<String>),
}

/// True when the row is its (participant, target) group's head: the oldest
/// command of the group not yet delivered. A parked or leased command is
/// undelivered, so it holds its own group back and no other. Diesel has no
/// correlated subqueries, hence SQL; it binds nothing and is the same on both
/// backends. A scalar subquery rather than NOT EXISTS, because PostgreSQL
/// without statistics (a fresh outbox) planned NOT EXISTS as an anti-join
/// scanning the whole group index per row (49 s on 20,000 rows); this form is
/// always one `outbox_group_heads` probe per row (48 ms on the same rows).
const IS_GROUP_HEAD: &str = "outbox.id = (SELECT MIN(earlier.id) FROM outbox AS earlier \
     WHERE earlier.participant_id = outbox.participant_id \
     AND earlier.target = outbox.target \
     AND earlier.delivered_at IS NULL)";

/// The ids of at most `limit` commands of `lane` that may be sent at `now`,
/// most overdue first: each is the head of its group, not parked, and due.
///
/// The scan walks the `outbox_due` index (target, due time) over commands
/// that are neither delivered nor parked, from the most overdue, and stops
/// at `limit` heads or at the first command not yet due: commands backing
/// off or parked are never read, so their number does not slow the claim,
/// and one target's backlog is outside another target's range. Commands
/// waiting behind their group's head are due, so they are read, one index
/// probe each: 15,000 of them cost 48 ms a claim on PostgreSQL.
pub fn due_heads(conn: &mut DbConn, lane: &Lane, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<i64>> {
    let query = outbox::table.into_boxed();
    let query = match lane {
        Lane::Target(target) => query.filter(outbox::target.eq(target.clone())),
        Lane::Unroutable(known) => query.filter(outbox::target.ne_all(known.clone())),
    };
    query
        .filter(outbox::delivered_at.is_null())
        .filter(outbox::parked_at.is_null())
        .filter(outbox::next_attempt_at.le(now))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(IS_GROUP_HEAD))
        .order((outbox::next_attempt_at, outbox::id))
        .limit(limit)
        .select(outbox::id)
        .load(conn)
}

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
        if heads.is_empty() {
            return Ok(Vec::new());
        }
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

/// Passes already-encoded messages through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let remaining = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, remaining).to_vec()))
    }
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

    #[test]
    fn the_rpc_name_is_the_last_path_segment() {
        let row = OutboxRow {
            id: 1,
            command_id: "c".into(),
            participant_id: "p".into(),
            target: "content-release".into(),
            method: "/steplab.content.v1.ContentReleaseService/PlaceHold".into(),
            payload: vec![],
            created_at: chrono::NaiveDateTime::default(),
            attempts: 0,
            next_attempt_at: chrono::NaiveDateTime::default(),
            delivered_at: None,
            parked_at: None,
            last_error: None,
            request_id: None,
        };
        assert_eq!(row.rpc(), "PlaceHold");
    }
}
