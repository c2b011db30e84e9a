//! The participants table: who is registered, read back as records with
//! their histories, listed, locked before a change, and their DfE ids.

use super::events::{EventRow, append_events, event_from_row};
use super::schema::{participant_events, participants};
use crate::domain::events::{Actor, Event, EventKind};
use crate::domain::policy::ListScope;
use crate::domain::registry::NewParticipant;
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, TrainingStatus};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;
use steplab_platform::on_backend;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = participants)]
pub(super) struct ParticipantRow {
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

/// The participant of this kind who holds a TRN (unique per kind).
pub fn trn_holder(conn: &mut DbConn, trn: &str, kind: ParticipantKind) -> Result<Option<String>, ServiceError> {
    Ok(participants::table
        .filter(participants::trn.eq(trn))
        .filter(participants::kind.eq(kind.as_str()))
        .select(participants::id)
        .first(conn)
        .optional()?)
}

/// Stores a new participant with its registration event. The caller has
/// checked the TRN is free (it names the holder when its caller may see them).
pub fn insert_participant(
    conn: &mut DbConn,
    new: &NewParticipant,
    actor: &Actor,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<ParticipantRecord, ServiceError> {
    let EventKind::Registered { school_id, delivery_partner_id, .. } = &new.registered.kind else {
        return Err(ServiceError::Internal("a new participant's first event must be its registration".into()));
    };
    let insert = diesel::insert_into(participants::table).values(ParticipantRow {
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
    });
    // As stored (the timestamps at the database's precision), so the record
    // is what a read would give. On the backend's own connection: diesel's
    // MultiConnection builds no RETURNING clause.
    let row: ParticipantRow = match conn {
        DbConn::Pg(pg) => insert.returning(ParticipantRow::as_returning()).get_result(pg)?,
        DbConn::Sqlite(sqlite) => insert.returning(ParticipantRow::as_returning()).get_result(sqlite)?,
    };
    let record = record_from_row(row, Vec::new())?;
    append_events(conn, &[&record], std::slice::from_ref(&new.registered), actor, now, today)?
        .pop()
        .ok_or_else(|| ServiceError::Internal("a new participant's registration was not stored".into()))
}

/// Participants matching `$filter`, each row joined to its events (the
/// row repeats on each) with the DfE id (X1): one statement instead of one
/// for the rows, one for the events and one for the DfE ids.
macro_rules! joined_query {
    ($filter:expr) => {
        participants::table
            .left_join(participant_events::table.on(participant_events::participant_id.eq(participants::id)))
            .filter($filter)
            .order((participants::id, participant_events::sequence))
            .select((ParticipantRow::as_select(), participants::dfe_participant_id, Option::<EventRow>::as_select()))
    };
}

/// A participant and their history. One this unit of work wrote comes from
/// its journal: the same record, without reading back what it just wrote.
pub fn load_participant(conn: &mut DbConn, id: &str) -> Result<Option<ParticipantRecord>, ServiceError> {
    if let Some(record) = super::journal::written(id) {
        return Ok(Some(record));
    }
    Ok(load_participant_with_dfe_id(conn, id)?.map(|(record, _)| record))
}

/// X1: the DfE participant id of one participant: as this unit of work read
/// or set it, else read.
pub fn dfe_participant_id(conn: &mut DbConn, id: &str) -> Result<Option<String>, ServiceError> {
    if let Some(known) = super::journal::dfe_id(id) {
        return Ok(known);
    }
    Ok(dfe_participant_ids(conn, &[id.to_owned()])?.remove(id))
}

/// A participant with their history and DfE id (X1), in one statement.
pub fn load_participant_with_dfe_id(
    conn: &mut DbConn,
    id: &str,
) -> Result<Option<(ParticipantRecord, Option<String>)>, ServiceError> {
    // `eq`, not `eq_any` of one: SQLite keeps only statements of fixed text
    // prepared, and a list is bound there as `IN (?, ?, ...)`.
    let joined = on_backend!(conn, |inner| joined_query!(participants::id.eq(id)).load(inner))?;
    let found = records_from_joined(joined)?.pop();
    if let Some((record, dfe_participant_id)) = &found {
        super::journal::note_dfe_id(&record.id, dfe_participant_id.as_deref());
    }
    Ok(found)
}

/// Participants with their histories and DfE ids, in one statement, in id
/// order; those of `ids` not registered are left out.
pub fn load_participants_joined(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<Vec<(ParticipantRecord, Option<String>)>, ServiceError> {
    let joined = match ids {
        // The usual case (an ECT's one mentor), kept prepared as above.
        [id] => on_backend!(conn, |inner| joined_query!(participants::id.eq(id)).load(inner))?,
        _ => on_backend!(conn, |inner| joined_query!(participants::id.eq_any(ids)).load(inner))?,
    };
    records_from_joined(joined)
}

type JoinedRow = (ParticipantRow, Option<String>, Option<EventRow>);

fn records_from_joined(joined: Vec<JoinedRow>) -> Result<Vec<(ParticipantRecord, Option<String>)>, ServiceError> {
    let mut rows: Vec<(ParticipantRow, Option<String>)> = Vec::new();
    let mut events: Vec<EventRow> = Vec::new();
    for (row, dfe_id, event) in joined {
        if rows.last().is_none_or(|(last, _)| last.id != row.id) {
            rows.push((row, dfe_id));
        }
        events.extend(event);
    }
    let dfe_ids: Vec<Option<String>> = rows.iter().map(|(_, dfe)| dfe.clone()).collect();
    let records = records_with_events(rows.into_iter().map(|(row, _)| row).collect(), events)?;
    Ok(records.into_iter().zip(dfe_ids).collect())
}

pub(super) fn records_from_rows(
    conn: &mut DbConn,
    rows: Vec<ParticipantRow>,
) -> Result<Vec<ParticipantRecord>, ServiceError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let event_rows: Vec<EventRow> = participant_events::table
        .filter(participant_events::participant_id.eq_any(&ids))
        .order((participant_events::participant_id, participant_events::sequence))
        .select(EventRow::as_select())
        .load(conn)?;
    records_with_events(rows, event_rows)
}

/// Records from participant rows and their events (in sequence order per participant).
fn records_with_events(
    rows: Vec<ParticipantRow>,
    event_rows: Vec<EventRow>,
) -> Result<Vec<ParticipantRecord>, ServiceError> {
    let mut by_participant: HashMap<String, Vec<Event>> = HashMap::new();
    for row in event_rows {
        let event = event_from_row(row)?;
        by_participant.entry(event.participant_id.clone()).or_default().push(event);
    }
    rows.into_iter()
        .map(|row| {
            let events = by_participant.remove(&row.id).unwrap_or_default();
            record_from_row(row, events)
        })
        .collect()
}

fn record_from_row(row: ParticipantRow, events: Vec<Event>) -> Result<ParticipantRecord, ServiceError> {
    let kind = ParticipantKind::parse(&row.kind)
        .ok_or_else(|| ServiceError::Internal(format!("participant {} has unknown kind {}", row.id, row.kind)))?;
    Ok(ParticipantRecord {
        events,
        id: row.id,
        kind,
        full_name: row.full_name,
        trn: row.trn,
        registered_on: row.registered_on,
        previous_pilot_mentor: row.previous_pilot_mentor,
        version: row.version,
        created_at: row.created_at,
    })
}

/// Locks the participants' rows in one order (PostgreSQL; SQLite has a single
/// writer), before a unit of work writes any of them. The D9 re-derivation
/// writes mentors after the ECT's own rows, while a mentor's own change locks
/// the mentor's row first: without this, two such changes deadlocked
/// (PostgreSQL aborted one as INTERNAL "deadlock detected").
pub fn lock_participants(conn: &mut DbConn, ids: &[String]) -> Result<(), ServiceError> {
    let DbConn::Pg(pg) = conn else {
        return Ok(());
    };
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    if ids.len() < 2 {
        // One row cannot be locked out of order: the UPDATE that writes it
        // takes the same lock, and nothing is locked before it (a change's
        // outbox rows are written at its end).
        return Ok(());
    }
    participants::table
        .filter(participants::id.eq_any(&ids))
        .order(participants::id)
        .select(participants::id)
        .for_update()
        .load::<String>(pg)?;
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
    super::journal::note_dfe_id(id, Some(dfe_participant_id));
    Ok(())
}

/// Moves a participant from `version_before` to `after`'s version, writing
/// the columns lists filter on (school, delivery partner, mentor) from
/// `after`'s fold, `after` holding its new events: one statement. False when
/// another change moved the participant first.
pub(super) fn advance(
    conn: &mut DbConn,
    version_before: i64,
    after: &ParticipantRecord,
    now: NaiveDateTime,
    today: NaiveDate,
) -> Result<bool, ServiceError> {
    let id = &after.id;
    // "Current" is today, or the registration date for a participant
    // registered today with a future-dated nothing: as_of never precedes it.
    let view = after
        .as_of(today.max(after.registered_on))
        .ok_or_else(|| ServiceError::Internal(format!("participant {id} has no view")))?;
    let updated = on_backend!(conn, |inner| diesel::update(
        participants::table.filter(participants::id.eq(id)).filter(participants::version.eq(version_before)),
    )
    .set((
        participants::version.eq(after.version),
        participants::updated_at.eq(now),
        participants::school_id.eq(&view.school_id),
        participants::delivery_partner_id.eq(&view.delivery_partner_id),
        participants::mentor_id.eq(view.mentor.as_ref().map(|(m, _)| m.as_str())),
    ))
    .keep_prepared()
    .execute(inner))?;
    Ok(updated == 1)
}
