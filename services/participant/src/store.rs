//! The participant service's tables and queries. Every function takes a
//! connection and runs inside the caller's unit of work, so one RPC's changes
//! commit together or not at all.

use crate::domain::events::{Actor, Event, EventKind, NewEvent};
use crate::domain::policy::ListScope;
use crate::domain::registry::NewParticipant;
use crate::domain::requests::{RequestKind, RequestStatus};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, TrainingStatus};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

pub mod schema {
    diesel::table! {
        delivery_partners (id) {
            id -> Text,
            name -> Text,
            created_at -> Timestamp,
        }
    }

    diesel::table! {
        schools (id) {
            id -> Text,
            urn -> Text,
            name -> Text,
            delivery_partner_id -> Text,
            area_covered -> Bool,
            created_at -> Timestamp,
        }
    }

    diesel::table! {
        participants (id) {
            id -> Text,
            kind -> Text,
            full_name -> Text,
            trn -> Nullable<Text>,
            school_id -> Text,
            delivery_partner_id -> Text,
            mentor_id -> Nullable<Text>,
            registered_on -> Date,
            previous_pilot_mentor -> Bool,
            version -> BigInt,
            created_at -> Timestamp,
            updated_at -> Timestamp,
            dfe_participant_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        participant_events (id) {
            id -> BigInt,
            participant_id -> Text,
            sequence -> BigInt,
            event_type -> Text,
            effective_date -> Date,
            recorded_at -> Timestamp,
            actor -> Text,
            actor_role -> Text,
            payload -> Text,
            caused_by_participant_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        approval_requests (id) {
            id -> Text,
            kind -> Text,
            status -> Text,
            participant_id -> Text,
            delivery_partner_id -> Text,
            release_start -> Nullable<Date>,
            note -> Text,
            requested_by -> Text,
            created_at -> Timestamp,
            decided_by -> Nullable<Text>,
            decision_note -> Nullable<Text>,
            decided_at -> Nullable<Timestamp>,
            latest_return_date -> Nullable<Date>,
            with_mentor -> Bool,
        }
    }

    diesel::table! {
        notifications (id) {
            id -> Text,
            kind -> Text,
            delivery_partner_id -> Text,
            school_id -> Text,
            message -> Text,
            created_at -> Timestamp,
        }
    }

    diesel::joinable!(schools -> delivery_partners (delivery_partner_id));
    diesel::allow_tables_to_appear_in_same_query!(
        delivery_partners,
        schools,
        participants,
        participant_events,
        approval_requests,
        notifications
    );
}

use schema::{approval_requests, delivery_partners, notifications, participant_events, participants, schools};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_partners)]
pub struct DeliveryPartnerRow {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = schools)]
pub struct SchoolRow {
    pub id: String,
    pub urn: String,
    pub name: String,
    pub delivery_partner_id: String,
    pub area_covered: bool,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = participants)]
struct ParticipantRow {
    id: String,
    kind: String,
    full_name: String,
    trn: Option<String>,
    school_id: String,
    delivery_partner_id: String,
    mentor_id: Option<String>,
    registered_on: NaiveDate,
    previous_pilot_mentor: bool,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = participant_events)]
struct EventRow {
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
}

#[derive(Insertable)]
#[diesel(table_name = participant_events)]
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

pub fn insert_delivery_partner(conn: &mut DbConn, row: &DeliveryPartnerRow) -> Result<(), ServiceError> {
    diesel::insert_into(delivery_partners::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_delivery_partner(conn: &mut DbConn, id: &str) -> Result<Option<DeliveryPartnerRow>, ServiceError> {
    Ok(delivery_partners::table.find(id).select(DeliveryPartnerRow::as_select()).first(conn).optional()?)
}

pub fn insert_school(conn: &mut DbConn, row: &SchoolRow) -> Result<(), ServiceError> {
    let existing: Option<String> =
        schools::table.filter(schools::urn.eq(&row.urn)).select(schools::id).first(conn).optional()?;
    if let Some(id) = existing {
        return Err(ServiceError::AlreadyExists(format!("a school with URN {} already exists: {id}", row.urn)));
    }
    diesel::insert_into(schools::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_school(conn: &mut DbConn, id: &str) -> Result<Option<SchoolRow>, ServiceError> {
    Ok(schools::table.find(id).select(SchoolRow::as_select()).first(conn).optional()?)
}

/// The participant of this kind who holds a TRN (unique per kind).
pub fn trn_holder(conn: &mut DbConn, trn: &str, kind: ParticipantKind) -> Result<Option<String>, ServiceError> {
    Ok(participants::table
        .filter(participants::trn.eq(trn))
        .filter(participants::kind.eq(kind.as_str()))
        .select(participants::id)
        .first(conn)
        .optional()?)
}

/// Stores a new participant with its registration event.
pub fn insert_participant(
    conn: &mut DbConn,
    new: &NewParticipant,
    actor: &Actor,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<ParticipantRecord, ServiceError> {
    if let Some(trn) = &new.trn
        && trn_holder(conn, trn, new.kind)?.is_some()
    {
        // The holder may be another delivery partner's: never named here.
        return Err(ServiceError::AlreadyExists(format!(
            "{} with TRN {trn} is already registered",
            new.kind.describe()
        )));
    }
    let EventKind::Registered { school_id, delivery_partner_id, .. } = &new.registered.kind else {
        return Err(ServiceError::Internal("a new participant's first event must be its registration".into()));
    };
    diesel::insert_into(participants::table)
        .values(&ParticipantRow {
            id: new.id.clone(),
            kind: new.kind.as_str().to_owned(),
            full_name: new.full_name.clone(),
            trn: new.trn.clone(),
            school_id: school_id.clone(),
            delivery_partner_id: delivery_partner_id.clone(),
            mentor_id: None,
            registered_on: new.registered_on,
            previous_pilot_mentor: new.previous_pilot_mentor,
            version: 0,
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    let record = load_participant(conn, &new.id)?
        .ok_or_else(|| ServiceError::Internal("participant vanished inside its own transaction".into()))?;
    append_events(conn, &[&record], std::slice::from_ref(&new.registered), actor, now, today)?;
    load_participant(conn, &new.id)?
        .ok_or_else(|| ServiceError::Internal("participant vanished inside its own transaction".into()))
}

pub fn load_participant(conn: &mut DbConn, id: &str) -> Result<Option<ParticipantRecord>, ServiceError> {
    let row: Option<ParticipantRow> =
        participants::table.find(id).select(ParticipantRow::as_select()).first(conn).optional()?;
    match row {
        None => Ok(None),
        Some(row) => Ok(records_from_rows(conn, vec![row])?.pop()),
    }
}

fn records_from_rows(conn: &mut DbConn, rows: Vec<ParticipantRow>) -> Result<Vec<ParticipantRecord>, ServiceError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let event_rows: Vec<EventRow> = participant_events::table
        .filter(participant_events::participant_id.eq_any(&ids))
        .order((participant_events::participant_id, participant_events::sequence))
        .select(EventRow::as_select())
        .load(conn)?;
    let mut by_participant: HashMap<String, Vec<Event>> = HashMap::new();
    for row in event_rows {
        let event = event_from_row(row)?;
        by_participant.entry(event.participant_id.clone()).or_default().push(event);
    }
    rows.into_iter()
        .map(|row| {
            let kind = ParticipantKind::parse(&row.kind).ok_or_else(|| {
                ServiceError::Internal(format!("participant {} has unknown kind {}", row.id, row.kind))
            })?;
            Ok(ParticipantRecord {
                events: by_participant.remove(&row.id).unwrap_or_default(),
                id: row.id,
                kind,
                full_name: row.full_name,
                trn: row.trn,
                registered_on: row.registered_on,
                previous_pilot_mentor: row.previous_pilot_mentor,
                version: row.version,
                created_at: row.created_at,
            })
        })
        .collect()
}

fn event_from_row(row: EventRow) -> Result<Event, ServiceError> {
    let kind: EventKind = serde_json::from_str(&row.payload).map_err(|e| {
        ServiceError::Internal(format!("event {} ({}) has an unreadable payload: {e}", row.id, row.event_type))
    })?;
    Ok(Event {
        cursor: row.id,
        participant_id: row.participant_id,
        sequence: row.sequence,
        effective_date: row.effective_date,
        recorded_at: row.recorded_at,
        actor: Actor { sub: row.actor, role: row.actor_role },
        caused_by: row.caused_by_participant_id,
        kind,
    })
}

/// Locks the participants' rows in one order (PostgreSQL; SQLite has a single
/// writer), before a unit of work writes any of them. The D9 re-derivation
/// writes mentors after the first `append_events` has taken the event-order
/// lock, while a mentor's own change locks the mentor's row first: without
/// this, two such changes deadlocked (PostgreSQL aborted one as INTERNAL
/// "deadlock detected").
pub fn lock_participants(conn: &mut DbConn, ids: &[String]) -> Result<(), ServiceError> {
    let DbConn::Pg(pg) = conn else {
        return Ok(());
    };
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    participants::table
        .filter(participants::id.eq_any(&ids))
        .order(participants::id)
        .select(participants::id)
        .for_update()
        .load::<String>(pg)?;
    Ok(())
}

/// Appends `events` to the participants they name, each of whom must be in
/// `records` as read in this unit of work. The version check makes a
/// concurrent change to any of them lose with ABORTED instead of
/// interleaving. The current-value columns are refreshed from the fold.
pub fn append_events(
    conn: &mut DbConn,
    records: &[&ParticipantRecord],
    events: &[NewEvent],
    actor: &Actor,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<(), ServiceError> {
    if let Some(stray) = events.iter().find(|e| !records.iter().any(|r| r.id == e.participant_id)) {
        return Err(ServiceError::Internal(format!(
            "event for participant {} that was not read first",
            stray.participant_id
        )));
    }
    let mut rows: Vec<NewEventRow<'_>> = Vec::with_capacity(events.len());
    for record in records {
        let mine: Vec<&NewEvent> = events.iter().filter(|e| e.participant_id == record.id).collect();
        if mine.is_empty() {
            continue;
        }
        // X4, D12: what the DfE is to hear of these events, derived from
        // them as the reporting feed is, in the same transaction.
        enqueue_for_dfe(conn, crate::domain::dfe::commands_for(record, &mine), now)?;
        let new_version = record.version + mine.len() as i64;
        let updated = diesel::update(
            participants::table
                .filter(participants::id.eq(&record.id))
                .filter(participants::version.eq(record.version)),
        )
        .set((participants::version.eq(new_version), participants::updated_at.eq(now)))
        .execute(conn)?;
        if updated == 0 {
            return Err(ServiceError::Aborted(format!(
                "participant {} was changed by another request at the same time: read it again and retry",
                record.id
            )));
        }
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
                // Not known until inserted; the fold does not read it.
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
        refresh_current_values(conn, &after, today)?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    if matches!(conn, DbConn::Pg(_)) {
        // Event ids are the WatchEvents cursor: taking this lock before
        // inserting (held to commit) makes ids visible in increasing order,
        // so a reader resuming after a cursor never skips a late commit.
        // It is taken as late as possible, after the version checks and
        // row updates, because it serialises every writer until commit.
        diesel::sql_query("SELECT pg_advisory_xact_lock(7355608)").execute(conn)?;
    }
    for row in &rows {
        diesel::insert_into(participant_events::table).values(row).execute(conn)?;
    }
    Ok(())
}

/// Writes the columns that lists filter on (school, delivery partner,
/// mentor) from `record`'s fold, `record` holding its new events.
fn refresh_current_values(conn: &mut DbConn, record: &ParticipantRecord, today: NaiveDate) -> Result<(), ServiceError> {
    let id = &record.id;
    // "Current" is today, or the registration date for a participant
    // registered today with a future-dated nothing: as_of never precedes it.
    let view = record
        .as_of(today.max(record.registered_on))
        .ok_or_else(|| ServiceError::Internal(format!("participant {id} has no view")))?;
    diesel::update(participants::table.find(id))
        .set((
            participants::school_id.eq(&view.school_id),
            participants::delivery_partner_id.eq(&view.delivery_partner_id),
            participants::mentor_id.eq(view.mentor.as_ref().map(|(m, _)| m.as_str())),
        ))
        .execute(conn)?;
    Ok(())
}

/// Filters of a participant list, after the caller's scope.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub scope: ListScope,
    pub school_id: Option<String>,
    pub delivery_partner_id: Option<String>,
    pub kind: Option<ParticipantKind>,
    pub status: Option<TrainingStatus>,
    pub as_of: NaiveDate,
}

/// One page of participants in registration (id) order, and the id to
/// continue after if more may follow. Status is derived from history, so it
/// is filtered after the fold; the scan continues until the page is full.
pub fn list_participants(
    conn: &mut DbConn,
    filter: &ListFilter,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<ParticipantRecord>, Option<String>), ServiceError> {
    const BATCH: i64 = 200;
    let mut cursor = after;
    let mut page = Vec::new();
    loop {
        let mut query = participants::table.select(ParticipantRow::as_select()).order(participants::id).into_boxed();
        match &filter.scope {
            ListScope::Everything => {}
            ListScope::School(school) => query = query.filter(participants::school_id.eq(school.clone())),
            ListScope::DeliveryPartners(dps) => {
                query = query.filter(participants::delivery_partner_id.eq_any(dps.clone()))
            }
        }
        if let Some(school) = &filter.school_id {
            query = query.filter(participants::school_id.eq(school.clone()));
        }
        if let Some(dp) = &filter.delivery_partner_id {
            query = query.filter(participants::delivery_partner_id.eq(dp.clone()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(participants::kind.eq(kind.as_str()));
        }
        if let Some(after) = &cursor {
            query = query.filter(participants::id.gt(after.clone()));
        }
        let batch_size = if filter.status.is_some() { BATCH } else { limit - page.len() as i64 + 1 };
        let rows = query.limit(batch_size).load(conn)?;
        let exhausted = (rows.len() as i64) < batch_size;
        for record in records_from_rows(conn, rows)? {
            if page.len() as i64 == limit {
                // A further match may exist: hand out a token to continue from the last one shown.
                let next = page.last().map(|r: &ParticipantRecord| r.id.clone());
                return Ok((page, next));
            }
            cursor = Some(record.id.clone());
            let status_matches = match filter.status {
                None => true,
                Some(status) => record.as_of(filter.as_of).is_some_and(|v| v.status == status),
            };
            if status_matches {
                page.push(record);
            }
        }
        if exhausted {
            return Ok((page, None));
        }
    }
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

pub fn history(conn: &mut DbConn, id: &str) -> Result<Vec<Event>, ServiceError> {
    participant_events::table
        .filter(participant_events::participant_id.eq(id))
        .order(participant_events::sequence)
        .select(EventRow::as_select())
        .load(conn)?
        .into_iter()
        .map(event_from_row)
        .collect()
}

/// Participants whose current mentor is `mentor_id` (D9, W6).
pub fn ects_mentored_by(conn: &mut DbConn, mentor_id: &str) -> Result<Vec<ParticipantRecord>, ServiceError> {
    let rows = participants::table
        .filter(participants::mentor_id.eq(mentor_id))
        .order(participants::id)
        .select(ParticipantRow::as_select())
        .load(conn)?;
    records_from_rows(conn, rows)
}

/// Everyone currently registered at a school (W7, W8).
pub fn school_members(conn: &mut DbConn, school_id: &str) -> Result<Vec<ParticipantRecord>, ServiceError> {
    let rows = participants::table
        .filter(participants::school_id.eq(school_id))
        .order(participants::id)
        .select(ParticipantRow::as_select())
        .load(conn)?;
    records_from_rows(conn, rows)
}

/// Reportable events (D12, W10) after `cursor`, in cursor order.
pub fn reportable_events_after(conn: &mut DbConn, cursor: i64, limit: i64) -> Result<Vec<Event>, ServiceError> {
    participant_events::table
        .filter(participant_events::id.gt(cursor))
        .filter(participant_events::event_type.eq_any([
            "deferred",
            "return_date_changed",
            "returned",
            "withdrawn",
            "reinstated",
        ]))
        .order(participant_events::id)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?
        .into_iter()
        .map(event_from_row)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = approval_requests)]
pub struct RequestRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub participant_id: String,
    pub delivery_partner_id: String,
    pub release_start: Option<NaiveDate>,
    pub note: String,
    pub requested_by: String,
    pub created_at: NaiveDateTime,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    /// D3: a `long_deferral` request's latest return date.
    pub latest_return_date: Option<NaiveDate>,
    /// W9: the approval reinstates the mentor withdrawn with the ECT too.
    pub with_mentor: bool,
}

pub fn insert_request(conn: &mut DbConn, row: &RequestRow) -> Result<(), ServiceError> {
    diesel::insert_into(approval_requests::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_request(conn: &mut DbConn, id: &str) -> Result<Option<RequestRow>, ServiceError> {
    Ok(approval_requests::table.find(id).select(RequestRow::as_select()).first(conn).optional()?)
}

/// The requests of one participant and kind with a status.
pub fn requests_for(
    conn: &mut DbConn,
    participant_id: &str,
    kind: &str,
    status: &str,
) -> Result<Vec<RequestRow>, ServiceError> {
    Ok(approval_requests::table
        .filter(approval_requests::participant_id.eq(participant_id))
        .filter(approval_requests::kind.eq(kind))
        .filter(approval_requests::status.eq(status))
        .select(RequestRow::as_select())
        .load(conn)?)
}

/// D3: the latest return date a DPL approved for the participant's
/// deferrals (`long_deferral` requests), the latest if several.
pub fn approved_latest_return(conn: &mut DbConn, participant_id: &str) -> Result<Option<NaiveDate>, ServiceError> {
    let approved =
        requests_for(conn, participant_id, RequestKind::LongDeferral.as_str(), RequestStatus::Approved.as_str())?;
    Ok(approved.into_iter().filter_map(|r| r.latest_return_date).max())
}

pub fn decide_request(
    conn: &mut DbConn,
    id: &str,
    status: &str,
    decided_by: &str,
    note: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let updated = diesel::update(approval_requests::table.find(id).filter(approval_requests::status.eq("pending")))
        .set((
            approval_requests::status.eq(status),
            approval_requests::decided_by.eq(decided_by),
            approval_requests::decision_note.eq(note),
            approval_requests::decided_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Err(ServiceError::Aborted(format!(
            "request {id} was decided by someone else at the same time: read it again"
        )));
    }
    Ok(())
}

pub fn list_requests(
    conn: &mut DbConn,
    scope: &ListScope,
    status: Option<&str>,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<RequestRow>, Option<String>), ServiceError> {
    let mut query = approval_requests::table.select(RequestRow::as_select()).order(approval_requests::id).into_boxed();
    match scope {
        ListScope::Everything => {}
        ListScope::School(_) => return Ok((Vec::new(), None)),
        ListScope::DeliveryPartners(dps) => {
            query = query.filter(approval_requests::delivery_partner_id.eq_any(dps.clone()))
        }
    }
    if let Some(status) = status {
        query = query.filter(approval_requests::status.eq(status.to_owned()));
    }
    if let Some(after) = after {
        query = query.filter(approval_requests::id.gt(after));
    }
    let mut rows = query.limit(limit + 1).load(conn)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok((rows, next))
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: String,
    pub kind: String,
    pub delivery_partner_id: String,
    pub school_id: String,
    pub message: String,
    pub created_at: NaiveDateTime,
}

pub fn insert_notification(conn: &mut DbConn, row: &NotificationRow) -> Result<(), ServiceError> {
    diesel::insert_into(notifications::table).values(row).execute(conn)?;
    Ok(())
}

pub fn list_notifications(
    conn: &mut DbConn,
    scope: &ListScope,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<NotificationRow>, Option<String>), ServiceError> {
    let mut query = notifications::table.select(NotificationRow::as_select()).order(notifications::id).into_boxed();
    match scope {
        ListScope::Everything => {}
        ListScope::School(_) => return Ok((Vec::new(), None)),
        ListScope::DeliveryPartners(dps) => {
            query = query.filter(notifications::delivery_partner_id.eq_any(dps.clone()))
        }
    }
    if let Some(after) = after {
        query = query.filter(notifications::id.gt(after));
    }
    let mut rows = query.limit(limit + 1).load(conn)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok((rows, next))
}

/// Writes DfE gateway commands to the outbox, each with a fresh id and the
/// request id of the call that caused it.
pub fn enqueue_for_dfe(
    conn: &mut DbConn,
    commands: Vec<crate::domain::dfe::GatewayCommand>,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let request_id = steplab_platform::observability::current_request_id();
    for command in commands {
        let mut row = crate::commands::gateway_to_outbox(command, steplab_platform::ids::new_id());
        row.request_id.clone_from(&request_id);
        steplab_platform::outbox::enqueue(conn, &row, now)?;
    }
    Ok(())
}

/// X1: the DfE participant id of each of `ids` that has one.
pub fn dfe_participant_ids(conn: &mut DbConn, ids: &[String]) -> Result<HashMap<String, String>, ServiceError> {
    let rows: Vec<(String, Option<String>)> = participants::table
        .filter(participants::id.eq_any(ids))
        .filter(participants::dfe_participant_id.is_not_null())
        .select((participants::id, participants::dfe_participant_id))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(id, dfe)| dfe.map(|d| (id, d))).collect())
}

pub fn set_dfe_participant_id(conn: &mut DbConn, id: &str, dfe_participant_id: &str) -> Result<(), ServiceError> {
    diesel::update(participants::table.find(id))
        .set(participants::dfe_participant_id.eq(Some(dfe_participant_id)))
        .execute(conn)?;
    Ok(())
}
