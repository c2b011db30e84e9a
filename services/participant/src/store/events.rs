//! Participants' histories: events appended under a version check, read
//! back in order, and the reporting feed's cursor over them.

use super::journal::Written;
use super::participants::advance;
use super::schema::participant_events;
use crate::domain::events::{Actor, Event, EventKind, NewEvent};
use crate::domain::view::ParticipantRecord;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = participant_events)]
pub(super) struct EventRow {
    id: i64,
    participant_id: String,
    sequence: i64,
    event_type: String,
    effective_date: NaiveDate,
    recorded_at: NaiveDateTime,
    actor: String,
    actor_role: String,
    payload: String,
    caused_by_participant_id: Option<String>,
    feed_position: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = participant_events)]
// NULL, not DEFAULT, for no cause: SQLite takes no DEFAULT in a multi-row INSERT.
#[diesel(treat_none_as_default_value = false)]
struct NewEventRow<'a> {
    participant_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    effective_date: NaiveDate,
    recorded_at: NaiveDateTime,
    actor: &'a str,
    actor_role: &'a str,
    payload: String,
    caused_by_participant_id: Option<&'a str>,
}

pub(super) fn event_from_row(row: EventRow) -> Result<Event, ServiceError> {
    let kind: EventKind = serde_json::from_str(&row.payload).map_err(|e| {
        ServiceError::Internal(format!("event {} ({}) has an unreadable payload: {e}", row.id, row.event_type))
    })?;
    Ok(Event {
        cursor: row.feed_position.unwrap_or(row.id),
        participant_id: row.participant_id,
        sequence: row.sequence,
        effective_date: row.effective_date,
        recorded_at: row.recorded_at,
        actor: Actor { sub: row.actor, role: row.actor_role },
        caused_by: row.caused_by_participant_id,
        kind,
    })
}

/// Appends `events` to the participants they name, each of whom must be in
/// `records` as read in this unit of work. The version check makes a
/// concurrent change to any of them lose with ABORTED instead of
/// interleaving. The current-value columns are refreshed from the fold in
/// the same statement. Answers the participants written, as they now stand
/// (what reading them back would give), and notes them in the journal.
pub fn append_events(
    conn: &mut DbConn,
    records: &[&ParticipantRecord],
    events: &[NewEvent],
    actor: &Actor,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<Vec<ParticipantRecord>, ServiceError> {
    if let Some(stray) = events.iter().find(|e| !records.iter().any(|r| r.id == e.participant_id)) {
        return Err(ServiceError::Internal(format!(
            "event for participant {} that was not read first",
            stray.participant_id
        )));
    }
    let mut rows: Vec<NewEventRow<'_>> = Vec::with_capacity(events.len());
    let mut written: Vec<(i64, ParticipantRecord)> = Vec::new();
    for record in records {
        let mine: Vec<&NewEvent> = events.iter().filter(|e| e.participant_id == record.id).collect();
        if mine.is_empty() {
            continue;
        }
        // X4, D12: what the DfE is to hear of these events, derived from
        // them as the reporting feed is, in the same transaction.
        enqueue_for_dfe(conn, crate::domain::dfe::commands_for(record, &mine), now)?;
        let new_version = record.version + mine.len() as i64;
        let mut after = (*record).clone();
        for (offset, event) in mine.iter().enumerate() {
            let sequence = record.version + offset as i64 + 1;
            let payload = serde_json::to_string(&event.kind)
                .map_err(|e| ServiceError::Internal(format!("cannot encode event: {e}")))?;
            rows.push(NewEventRow {
                participant_id: &record.id,
                sequence,
                event_type: event.kind.type_name(),
                effective_date: event.effective_date,
                recorded_at: now,
                actor: &actor.sub,
                actor_role: &actor.role,
                payload,
                caused_by_participant_id: event.caused_by.as_deref(),
            });
            after.events.push(Event {
                // Replaced by the stored event once inserted; the fold does not read it.
                cursor: 0,
                participant_id: record.id.clone(),
                sequence,
                effective_date: event.effective_date,
                recorded_at: now,
                actor: actor.clone(),
                caused_by: event.caused_by.clone(),
                kind: event.kind.clone(),
            });
        }
        after.version = new_version;
        if !advance(conn, record.version, &after, now, today)? {
            return Err(ServiceError::Aborted(format!(
                "participant {} was changed by another request at the same time: read it again and retry",
                record.id
            )));
        }
        written.push((record.version, after));
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // No lock: on PostgreSQL the feed orders events by transaction, not by
    // id (see `feed_after`), so writers never wait for each other here.
    let stored = insert_all(conn, &rows)?;
    // The stored events (cursor and stored time included) replace the ones
    // the fold was given, so each record is exactly what a read would give.
    for (_, after) in &mut written {
        for event in after.events.iter_mut().filter(|e| e.cursor == 0) {
            if let Some(s) =
                stored.iter().find(|s| s.participant_id == event.participant_id && s.sequence == event.sequence)
            {
                *event = s.clone();
            }
        }
    }
    super::journal::note_written(
        &stored,
        written
            .iter()
            .map(|(version_before, after)| Written { version_before: *version_before, after: after.clone() })
            .collect(),
    );
    Ok(written.into_iter().map(|(_, after)| after).collect())
}

/// Inserts event rows in one statement and answers them as stored, in
/// cursor order.
fn insert_all(conn: &mut DbConn, rows: &[NewEventRow<'_>]) -> Result<Vec<Event>, ServiceError> {
    let insert = diesel::insert_into(participant_events::table).values(rows);
    // On the backend's own connection: diesel's MultiConnection builds
    // neither a multi-row INSERT nor its RETURNING clause.
    let mut stored: Vec<EventRow> = match conn {
        DbConn::Pg(pg) => insert.returning(EventRow::as_returning()).get_results(pg)?,
        DbConn::Sqlite(sqlite) => insert.returning(EventRow::as_returning()).get_results(sqlite)?,
    };
    // RETURNING's order is unspecified; the cursor is the order.
    stored.sort_by_key(|row| row.id);
    stored.into_iter().map(event_from_row).collect()
}

/// A participant's events in the order they were recorded.
/// Participants who were ever deferred (D7's sweep looks for due returns among them).
pub fn ever_deferred(conn: &mut DbConn) -> Result<Vec<String>, ServiceError> {
    Ok(participant_events::table
        .filter(participant_events::event_type.eq("deferred"))
        .select(participant_events::participant_id)
        .distinct()
        .order(participant_events::participant_id)
        .load(conn)?)
}

pub fn history(
    conn: &mut DbConn,
    id: &str,
    after_sequence: Option<i64>,
    limit: i64,
) -> Result<(Vec<Event>, Option<String>), ServiceError> {
    let mut rows = participant_events::table
        .filter(participant_events::participant_id.eq(id))
        .filter(participant_events::sequence.gt(after_sequence.unwrap_or(i64::MIN)))
        .order(participant_events::sequence)
        .limit(limit + 1)
        .select(EventRow::as_select())
        .load(conn)?;
    let next = steplab_platform::paging::take_page(&mut rows, limit, |r| r.sequence.to_string());
    Ok((rows.into_iter().map(event_from_row).collect::<Result<_, _>>()?, next))
}

diesel::define_sql_function! {
    /// SQL's COALESCE for the feed position: the event's own position, or
    /// its id where it has none (SQLite; rows older than positions).
    fn coalesce(position: diesel::sql_types::Nullable<diesel::sql_types::BigInt>, id: diesel::sql_types::BigInt) -> diesel::sql_types::BigInt;
}

diesel::define_sql_function! {
    /// PostgreSQL only (the feed-position migration): the lowest cursor a
    /// transaction still running, or yet to start, may commit.
    fn steplab_feed_horizon() -> diesel::sql_types::BigInt;
}

/// The WatchEvents feed: every event after `cursor`, in cursor order, at
/// most `limit`. It carries each EventType its enum lists, the DfE's
/// reportable ones (D12, W10) among them; a consumer picks the types it
/// needs (issue 16).
///
/// A reader resuming after a cursor must never skip an event that commits
/// later with a lower cursor. SQLite has one writer at a time, so ids
/// commit in order and the id is the cursor. PostgreSQL's writers commit
/// in any order, and they no longer queue for a lock to keep ids in commit
/// order: an event's cursor there is its transaction id times 2^20 plus its
/// rank in the transaction (set by a trigger, see the feed-position
/// migration), and the feed stops below `steplab_feed_horizon()`, the
/// cursor of the oldest transaction the reader's snapshot sees running.
/// Every transaction below it has ended, and every one still to commit is
/// above it: what the feed hands out is final, in cursor order. The price
/// is latency: an event waits for the transactions that began writing
/// before it to end, those of other databases on the server included
/// (transaction ids are server-wide); here each is one short unit of work.
pub fn feed_after(conn: &mut DbConn, cursor: i64, limit: i64) -> Result<Vec<Event>, ServiceError> {
    let position = coalesce(participant_events::feed_position, participant_events::id);
    let rows = match conn {
        DbConn::Pg(_) => participant_events::table
            .filter(position.gt(cursor))
            .filter(position.lt(steplab_feed_horizon()))
            .order(position)
            .limit(limit)
            .select(EventRow::as_select())
            .load(conn)?,
        DbConn::Sqlite(_) => participant_events::table
            .filter(participant_events::id.gt(cursor))
            .order(participant_events::id)
            .limit(limit)
            .select(EventRow::as_select())
            .load(conn)?,
    };
    rows.into_iter().map(event_from_row).collect()
}

/// Writes DfE gateway commands to the outbox, each with a fresh id and the
/// request id of the call that caused it.
pub fn enqueue_for_dfe(
    conn: &mut DbConn,
    commands: Vec<crate::domain::dfe::GatewayCommand>,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let request_id = steplab_platform::observability::current_request_id();
    let rows = commands
        .into_iter()
        .map(|command| {
            let mut row = crate::commands::gateway_to_outbox(command, steplab_platform::ids::new_id());
            row.request_id.clone_from(&request_id);
            row
        })
        .collect();
    super::journal::enqueue(conn, rows, now)
}
