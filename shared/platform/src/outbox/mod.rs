//! The transactional outbox and its relay: nothing a service decides is lost
//! between services.
//!
//! A change writes its commands to the `outbox` table in the same transaction
//! as the change itself. The relay delivers them over gRPC with a service
//! token and a deadline, in order per (participant, target): a group's next
//! command waits until the one before it is delivered. Commands of many
//! groups travel together in one `ApplyCommands` call (one result each),
//! several calls in flight per target; a target without `ApplyCommands`
//! gets one call per command. Failures are retried
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

mod codec;
mod pressure;
mod relay;

pub use codec::{RawCodec, RawDecoder, RawEncoder};
pub use pressure::{Admission, OnItsWay, Pressure};
pub use relay::{REFUSED_ATTEMPTS, Relay, RelaySettings, TokenSource, backoff};

use crate::db::{DbConn, KeepPreparedDsl};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::time::Duration;

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
    enqueue_all(conn, std::slice::from_ref(command), now).map(|_| ())
}

/// Adds several commands to the outbox in one statement, in their order;
/// call inside the change's transaction. Answers the rows as stored, oldest
/// first, so the change can describe what it enqueued without reading the
/// outbox back.
pub fn enqueue_all(conn: &mut DbConn, commands: &[NewCommand], now: NaiveDateTime) -> QueryResult<Vec<OutboxRow>> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<_> = commands
        .iter()
        .map(|command| {
            (
                outbox::command_id.eq(&command.command_id),
                outbox::participant_id.eq(&command.participant_id),
                outbox::target.eq(&command.target),
                outbox::method.eq(&command.method),
                outbox::payload.eq(&command.payload),
                outbox::created_at.eq(now),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
                outbox::request_id.eq(&command.request_id),
            )
        })
        .collect();
    let insert = diesel::insert_into(outbox::table).values(&rows);
    // On the backend's own connection: diesel's MultiConnection builds
    // neither a multi-row INSERT nor its RETURNING clause.
    let mut stored: Vec<OutboxRow> = match conn {
        DbConn::Pg(pg) => insert.returning(OutboxRow::as_returning()).get_results(pg)?,
        DbConn::Sqlite(sqlite) => insert.returning(OutboxRow::as_returning()).get_results(sqlite)?,
    };
    // Ids follow the order of the rows; RETURNING's own order is unspecified.
    stored.sort_by_key(|row| row.id);
    Ok(stored)
}

/// Every command sent for one participant, oldest first.
pub fn for_participant(conn: &mut DbConn, participant_id: &str) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::participant_id.eq(participant_id))
        .order(outbox::id)
        .select(OutboxRow::as_select())
        .load(conn)
}

/// Which commands a page of [`page`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed<'a> {
    /// Every command not yet delivered.
    Undelivered,
    /// Parked commands only.
    Parked,
    /// One participant's commands, delivered ones included.
    Participant(&'a str),
    /// One participant's parked commands.
    ParticipantParked(&'a str),
}

/// A page of commands in id order after the command `after`, with at most
/// `limit` rows (callers read one more to learn whether a page follows).
pub fn page(conn: &mut DbConn, listed: Listed<'_>, after: Option<i64>, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    let mut query = outbox::table.filter(outbox::id.gt(after.unwrap_or(i64::MIN))).into_boxed();
    query = match listed {
        Listed::Undelivered => query.filter(outbox::delivered_at.is_null()),
        Listed::Parked => query.filter(outbox::delivered_at.is_null()).filter(outbox::parked_at.is_not_null()),
        Listed::Participant(id) => query.filter(outbox::participant_id.eq(id.to_owned())),
        Listed::ParticipantParked(id) => query
            .filter(outbox::participant_id.eq(id.to_owned()))
            .filter(outbox::delivered_at.is_null())
            .filter(outbox::parked_at.is_not_null()),
    };
    query.order(outbox::id).limit(limit).select(OutboxRow::as_select()).load(conn)
}

/// One participant's commands not yet delivered: (waiting or being retried, parked).
pub fn participant_counts(conn: &mut DbConn, participant_id: &str) -> QueryResult<(i64, i64)> {
    let pending = outbox::table
        .filter(outbox::participant_id.eq(participant_id))
        .filter(outbox::delivered_at.is_null())
        .filter(outbox::parked_at.is_null())
        .count()
        .get_result(conn)?;
    let parked = outbox::table
        .filter(outbox::participant_id.eq(participant_id))
        .filter(outbox::parked_at.is_not_null())
        .filter(outbox::delivered_at.is_null())
        .count()
        .get_result(conn)?;
    Ok((pending, parked))
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

/// A command's due time while it has not been tried yet (see [`due_heads`]).
fn first_attempt_due() -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamp>> {
    diesel::dsl::sql("CASE WHEN outbox.attempts = 0 THEN outbox.next_attempt_at END")
}

/// At most `limit` commands of `lane` that may be sent at `now`,
/// most overdue first: each is the head of its group, not parked, and due.
/// With each id, its due time if this is its first attempt, the lag
/// backpressure reads ([`Pressure`]); `None` for a retry: a head whose
/// backoff has passed waits for the relay's next wake-up or poll (up to a
/// second), which says nothing about delivery capacity, and counting it
/// would let a target that is down refuse changes.
///
/// The scan walks the `outbox_due` index (target, due time) over commands
/// that are neither delivered nor parked, from the most overdue, and stops
/// at `limit` heads or at the first command not yet due: commands backing
/// off or parked are never read, so their number does not slow the claim,
/// and one target's backlog is outside another target's range. Commands
/// waiting behind their group's head are due, so they are read, one index
/// probe each: 15,000 of them cost 48 ms a claim on PostgreSQL.
///
/// The whole rows come back, so a claim needs no second read once its lease
/// has taken them (on PostgreSQL one round trip for the lease, issue 18).
pub fn due_heads(
    conn: &mut DbConn,
    lane: &Lane,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(OutboxRow, Option<NaiveDateTime>)>> {
    // Kept prepared: the relay runs this on every wake-up, and diesel would
    // parse it again each time for its raw group-head condition. Its text is
    // one per lane (a lane's known targets do not change while it runs).
    crate::on_backend!(conn, |inner| {
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
            .select((OutboxRow::as_select(), first_attempt_due()))
            .keep_prepared()
            .load(inner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
