//! Enrolled learners: their row (and its lock), and everything their
//! schedule and their readers depend on, loaded together.

use super::holds::revocation_rows;
use super::schema::{holds, learners, scope_changes};
use crate::domain::{Hold, HoldKind, Learner, NewLearner, Programme, Revocation, ScopeChange};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = learners)]
struct LearnerRow {
    participant_id: String,
    programme: String,
    release_start: NaiveDate,
    school_id: String,
    delivery_partner_id: String,
    version: i64,
    enrolled_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = holds)]
struct HoldRow {
    hold_id: String,
    kind: String,
    from_date: NaiveDate,
    until_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = scope_changes)]
struct ScopeRow {
    id: i64,
    school_id: String,
    delivery_partner_id: String,
    from_date: NaiveDate,
}

fn corrupt(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("stored data is unreadable: {what}"))
}

pub fn insert_learner(conn: &mut DbConn, new: &NewLearner, now: NaiveDateTime) -> Result<(), ServiceError> {
    diesel::insert_into(learners::table)
        .values(&LearnerRow {
            participant_id: new.participant_id.clone(),
            programme: new.programme.as_str().to_owned(),
            release_start: new.release_start,
            school_id: new.school_id.clone(),
            delivery_partner_id: new.delivery_partner_id.clone(),
            version: 0,
            enrolled_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    Ok(())
}

/// Takes the learner's row lock for the rest of the transaction (an UPDATE
/// locks on PostgreSQL; SQLite's IMMEDIATE transaction already serialises),
/// so commands on one learner never interleave. False when not enrolled.
pub fn lock_learner(conn: &mut DbConn, participant_id: &str, now: NaiveDateTime) -> Result<bool, ServiceError> {
    let updated = diesel::update(learners::table.find(participant_id))
        .set((learners::version.eq(learners::version + 1), learners::updated_at.eq(now)))
        .execute(conn)?;
    Ok(updated == 1)
}

pub fn load_learner(conn: &mut DbConn, participant_id: &str) -> Result<Option<Learner>, ServiceError> {
    let Some(row) = learners::table.find(participant_id).select(LearnerRow::as_select()).first(conn).optional()? else {
        return Ok(None);
    };
    let programme = Programme::parse(&row.programme)
        .ok_or_else(|| corrupt(format!("learner {participant_id} has programme {}", row.programme)))?;
    let holds = holds::table
        .filter(holds::participant_id.eq(participant_id))
        .order((holds::from_date, holds::hold_id))
        .select(HoldRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|h| {
            let kind =
                HoldKind::parse(&h.kind).ok_or_else(|| corrupt(format!("hold {} has kind {}", h.hold_id, h.kind)))?;
            Ok(Hold { hold_id: h.hold_id, kind, from: h.from_date, until: h.until_date })
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let revocations = revocation_rows(conn, participant_id)?
        .into_iter()
        .map(|r| Revocation { revoked_from: r.revoked_from, restored_on: r.restored_on })
        .collect();
    let scope_changes = scope_changes::table
        .filter(scope_changes::participant_id.eq(participant_id))
        .order(scope_changes::id)
        .select(ScopeRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|s| ScopeChange {
            school_id: s.school_id,
            delivery_partner_id: s.delivery_partner_id,
            from: s.from_date,
            seq: s.id,
        })
        .collect();
    Ok(Some(Learner {
        participant_id: row.participant_id,
        programme,
        release_start: row.release_start,
        school_id: row.school_id,
        delivery_partner_id: row.delivery_partner_id,
        holds,
        revocations,
        scope_changes,
    }))
}

pub fn set_release_start(
    conn: &mut DbConn,
    participant_id: &str,
    release_start: NaiveDate,
) -> Result<(), ServiceError> {
    diesel::update(learners::table.find(participant_id))
        .set(learners::release_start.eq(release_start))
        .execute(conn)?;
    Ok(())
}

pub fn insert_scope_change(
    conn: &mut DbConn,
    participant_id: &str,
    school_id: &str,
    delivery_partner_id: &str,
    from: NaiveDate,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    diesel::insert_into(scope_changes::table)
        .values((
            scope_changes::participant_id.eq(participant_id),
            scope_changes::school_id.eq(school_id),
            scope_changes::delivery_partner_id.eq(delivery_partner_id),
            scope_changes::from_date.eq(from),
            scope_changes::recorded_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Up to `limit` enrolled learners' ids after `after`, in id order.
pub fn learner_ids_after(conn: &mut DbConn, after: Option<&str>, limit: i64) -> Result<Vec<String>, ServiceError> {
    let mut query =
        learners::table.select(learners::participant_id).order(learners::participant_id).limit(limit).into_boxed();
    if let Some(after) = after {
        query = query.filter(learners::participant_id.gt(after.to_owned()));
    }
    Ok(query.load(conn)?)
}
