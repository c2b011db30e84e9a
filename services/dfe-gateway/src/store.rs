//! The gateway's tables: tracked participants, its outbox of DfE calls and
//! the declarations. Plain functions over one connection, called inside the
//! service's units of work.

use crate::domain::CallState;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::{DbConn, DbError};

diesel::table! {
    tracked_participants (participant_id) {
        participant_id -> Text,
        course -> Text,
        trn -> Text,
        cohort -> Integer,
        dfe_participant_id -> Nullable<Text>,
        training_status -> Text,
        schedule_identifier -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    dfe_calls (id) {
        id -> BigInt,
        call_id -> Text,
        command_id -> Text,
        participant_id -> Text,
        declaration_type -> Nullable<Text>,
        http_method -> Text,
        path -> Text,
        body -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_http_status -> Integer,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    declarations (participant_id, declaration_type) {
        participant_id -> Text,
        declaration_type -> Text,
        declaration_date -> Date,
        dfe_declaration_id -> Nullable<Text>,
        state -> Text,
        updated_at -> Timestamp,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tracked_participants)]
#[diesel(treat_none_as_null = true)]
pub struct TrackedRow {
    pub participant_id: String,
    pub course: String,
    pub trn: String,
    pub cohort: i32,
    pub dfe_participant_id: Option<String>,
    /// The DfE's training status word we decided last (`active`,
    /// `deferred`, `withdrawn`).
    pub training_status: String,
    /// The DfE schedule we decided last, or empty when unknown.
    pub schedule_identifier: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = dfe_calls)]
pub struct CallRow {
    pub id: i64,
    pub call_id: String,
    pub command_id: String,
    pub participant_id: String,
    pub declaration_type: Option<String>,
    pub http_method: String,
    pub path: String,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_http_status: i32,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
    pub request_id: Option<String>,
}

/// A call decided by a command, stored in the command's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = dfe_calls)]
pub struct NewCall {
    pub call_id: String,
    pub command_id: String,
    pub participant_id: String,
    pub declaration_type: Option<String>,
    pub http_method: String,
    pub path: String,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_http_status: i32,
    pub created_at: NaiveDateTime,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = declarations)]
#[diesel(treat_none_as_null = true)]
pub struct DeclarationRow {
    pub participant_id: String,
    pub declaration_type: String,
    pub declaration_date: NaiveDate,
    pub dfe_declaration_id: Option<String>,
    pub state: String,
    pub updated_at: NaiveDateTime,
}

pub fn tracked(conn: &mut DbConn, participant_id: &str) -> Result<Option<TrackedRow>, DbError> {
    Ok(tracked_participants::table.find(participant_id).select(TrackedRow::as_select()).first(conn).optional()?)
}

pub fn all_tracked(conn: &mut DbConn) -> Result<Vec<TrackedRow>, DbError> {
    Ok(tracked_participants::table
        .order(tracked_participants::participant_id)
        .select(TrackedRow::as_select())
        .load(conn)?)
}

pub fn insert_tracked(conn: &mut DbConn, row: &TrackedRow) -> Result<(), DbError> {
    diesel::insert_into(tracked_participants::table).values(row).execute(conn)?;
    Ok(())
}

pub fn update_tracked(conn: &mut DbConn, row: &TrackedRow) -> Result<(), DbError> {
    diesel::update(tracked_participants::table.find(&row.participant_id)).set(row).execute(conn)?;
    Ok(())
}

pub fn insert_call(conn: &mut DbConn, call: &NewCall) -> Result<(), DbError> {
    diesel::insert_into(dfe_calls::table).values(call).execute(conn)?;
    Ok(())
}

/// X1: the participant's calls that waited for their DfE id become pending,
/// in their order, with the id in their path and body.
pub fn release_waiting(
    conn: &mut DbConn,
    participant_id: &str,
    dfe_participant_id: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let waiting: Vec<CallRow> = dfe_calls::table
        .filter(dfe_calls::participant_id.eq(participant_id))
        .filter(dfe_calls::state.eq(CallState::WaitingForDfeId.as_str()))
        .order(dfe_calls::id)
        .select(CallRow::as_select())
        .load(conn)?;
    for call in &waiting {
        let path = crate::domain::mapping::resolve(&call.path, Some(dfe_participant_id), None);
        let body = crate::domain::mapping::resolve(&call.body, Some(dfe_participant_id), None);
        diesel::update(dfe_calls::table.find(call.id))
            .set((
                dfe_calls::state.eq(CallState::Pending.as_str()),
                dfe_calls::next_attempt_at.eq(now),
                dfe_calls::path.eq(path),
                dfe_calls::body.eq(body),
            ))
            .execute(conn)?;
    }
    Ok(waiting.len())
}

pub fn declaration(
    conn: &mut DbConn,
    participant_id: &str,
    declaration_type: &str,
) -> Result<Option<DeclarationRow>, DbError> {
    Ok(declarations::table
        .find((participant_id, declaration_type))
        .select(DeclarationRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn all_declarations(conn: &mut DbConn) -> Result<Vec<DeclarationRow>, DbError> {
    Ok(declarations::table
        .order((declarations::participant_id, declarations::declaration_type))
        .select(DeclarationRow::as_select())
        .load(conn)?)
}

pub fn save_declaration(conn: &mut DbConn, row: &DeclarationRow) -> Result<(), DbError> {
    let updated = diesel::update(declarations::table.find((&row.participant_id, &row.declaration_type)))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(declarations::table).values(row).execute(conn)?;
    }
    Ok(())
}

/// True when the call is its participant's oldest call not yet delivered.
/// A parked or waiting call is undelivered, so it holds its participant's
/// later calls back and no one else's. No binds; the same SQL on both
/// backends (as the platform outbox's group head).
const IS_PARTICIPANT_HEAD: &str = "dfe_calls.id = (SELECT MIN(earlier.id) FROM dfe_calls AS earlier \
     WHERE earlier.participant_id = dfe_calls.participant_id \
     AND earlier.state <> 'delivered')";

/// The ids of at most `limit` calls that may be sent at `now`: pending,
/// due, and their participant's head; most overdue first.
pub fn due_heads(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<Vec<i64>, DbError> {
    Ok(dfe_calls::table
        .filter(dfe_calls::state.eq(CallState::Pending.as_str()))
        .filter(dfe_calls::next_attempt_at.le(now))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(IS_PARTICIPANT_HEAD))
        .order((dfe_calls::next_attempt_at, dfe_calls::id))
        .limit(limit)
        .select(dfe_calls::id)
        .load(conn)?)
}

/// Leases the calls still pending and due (compare-and-set on
/// `next_attempt_at`), so another replica does not send them meanwhile.
pub fn lease(
    conn: &mut DbConn,
    ids: &[i64],
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<Vec<CallRow>, DbError> {
    let mut taken = Vec::new();
    for id in ids {
        let n = diesel::update(
            dfe_calls::table
                .filter(dfe_calls::id.eq(id))
                .filter(dfe_calls::state.eq(CallState::Pending.as_str()))
                .filter(dfe_calls::next_attempt_at.le(now)),
        )
        .set(dfe_calls::next_attempt_at.eq(until))
        .execute(conn)?;
        if n == 1 {
            taken.push(*id);
        }
    }
    Ok(dfe_calls::table
        .filter(dfe_calls::id.eq_any(&taken))
        .order(dfe_calls::id)
        .select(CallRow::as_select())
        .load(conn)?)
}

/// Records one attempt's outcome.
#[allow(clippy::too_many_arguments)]
pub fn record_attempt(
    conn: &mut DbConn,
    id: i64,
    state: CallState,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    http_status: i32,
    error: Option<&str>,
    sent: Option<(&str, &str)>,
    delivered_at: Option<NaiveDateTime>,
) -> Result<(), DbError> {
    diesel::update(dfe_calls::table.find(id))
        .set((
            dfe_calls::state.eq(state.as_str()),
            dfe_calls::attempts.eq(attempts),
            dfe_calls::next_attempt_at.eq(next_attempt_at),
            dfe_calls::last_http_status.eq(http_status),
            dfe_calls::last_error.eq(error),
            dfe_calls::delivered_at.eq(delivered_at),
        ))
        .execute(conn)?;
    if let Some((path, body)) = sent {
        diesel::update(dfe_calls::table.find(id))
            .set((dfe_calls::path.eq(path), dfe_calls::body.eq(body)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn call(conn: &mut DbConn, call_id: &str) -> Result<Option<CallRow>, DbError> {
    Ok(dfe_calls::table.filter(dfe_calls::call_id.eq(call_id)).select(CallRow::as_select()).first(conn).optional()?)
}

/// Calls oldest first, after the call with id `after` (paging).
pub fn list_calls(
    conn: &mut DbConn,
    participant_id: Option<&str>,
    state: Option<CallState>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<CallRow>, DbError> {
    let mut query = dfe_calls::table.into_boxed();
    if let Some(p) = participant_id {
        query = query.filter(dfe_calls::participant_id.eq(p.to_owned()));
    }
    if let Some(s) = state {
        query = query.filter(dfe_calls::state.eq(s.as_str()));
    }
    if let Some(a) = after {
        query = query.filter(dfe_calls::id.gt(a));
    }
    Ok(query.order(dfe_calls::id).limit(limit).select(CallRow::as_select()).load(conn)?)
}

/// A parked call is pending again, due now, with a fresh attempt count.
pub fn unpark(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(dfe_calls::table.find(id))
        .set((
            dfe_calls::state.eq(CallState::Pending.as_str()),
            dfe_calls::attempts.eq(0),
            dfe_calls::next_attempt_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Tracked participants without a DfE id, after `after`, with how many
/// calls wait for each.
pub fn unreportable(conn: &mut DbConn, after: Option<&str>, limit: i64) -> Result<Vec<(TrackedRow, i64)>, DbError> {
    let mut query = tracked_participants::table.filter(tracked_participants::dfe_participant_id.is_null()).into_boxed();
    if let Some(a) = after {
        query = query.filter(tracked_participants::participant_id.gt(a.to_owned()));
    }
    let rows: Vec<TrackedRow> =
        query.order(tracked_participants::participant_id).limit(limit).select(TrackedRow::as_select()).load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let waiting: i64 = dfe_calls::table
            .filter(dfe_calls::participant_id.eq(&row.participant_id))
            .filter(dfe_calls::state.eq(CallState::WaitingForDfeId.as_str()))
            .count()
            .get_result(conn)?;
        out.push((row, waiting));
    }
    Ok(out)
}
