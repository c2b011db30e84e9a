//! Payees as enrolled, their row locks, and the state of the schedule book
//! their stored outcomes were computed under.

use crate::domain::PayeeKind;
use crate::store::schema::{payees, schedule_book_state};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = payees)]
pub struct PayeeRow {
    pub participant_id: String,
    pub participant_kind: String,
    pub schedule_id: String,
    pub cohort: i32,
    pub funding_eligible: bool,
    pub school_id: String,
    pub delivery_partner_id: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
}

impl PayeeRow {
    pub fn kind(&self) -> Result<PayeeKind, ServiceError> {
        PayeeKind::parse(&self.participant_kind).ok_or_else(|| {
            ServiceError::Internal(format!(
                "payee {} has an unknown kind `{}`",
                self.participant_id, self.participant_kind
            ))
        })
    }
}

pub fn insert_payee(conn: &mut DbConn, row: &PayeeRow) -> Result<(), ServiceError> {
    diesel::insert_into(payees::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_payee(conn: &mut DbConn, id: &str) -> Result<Option<PayeeRow>, ServiceError> {
    Ok(payees::table.find(id).select(PayeeRow::as_select()).first(conn).optional()?)
}

/// Takes the payee's row lock (an UPDATE locks the row on PostgreSQL; the
/// IMMEDIATE transaction already serialises writers on SQLite), so two
/// changes to one payee never recompute from each other's stale facts.
pub fn lock_payee(conn: &mut DbConn, id: &str) -> Result<Option<PayeeRow>, ServiceError> {
    Ok(lock_payees(conn, id, id)?.into_iter().next())
}

/// Locks and answers every payee with an id in `[first, last]`, in id order.
pub fn lock_payees(conn: &mut DbConn, first: &str, last: &str) -> Result<Vec<PayeeRow>, ServiceError> {
    let touched = steplab_platform::on_backend!(conn, |inner| diesel::update(
        payees::table.filter(payees::participant_id.between(first, last))
    )
    .set(payees::version.eq(payees::version + 1))
    .keep_prepared()
    .execute(inner))?;
    if touched == 0 {
        return Ok(Vec::new());
    }
    Ok(payees::table
        .filter(payees::participant_id.between(first, last))
        .order(payees::participant_id)
        .select(PayeeRow::as_select())
        .load(conn)?)
}

pub fn book_fingerprint(conn: &mut DbConn) -> Result<Option<String>, ServiceError> {
    Ok(schedule_book_state::table.find(1).select(schedule_book_state::fingerprint).first(conn).optional()?)
}

pub fn set_book_fingerprint(conn: &mut DbConn, fingerprint: &str, now: NaiveDateTime) -> Result<(), ServiceError> {
    let updated = steplab_platform::on_backend!(conn, |inner| diesel::update(schedule_book_state::table.find(1))
        .set((schedule_book_state::fingerprint.eq(fingerprint), schedule_book_state::updated_at.eq(now)))
        .keep_prepared()
        .execute(inner))?;
    if updated == 0 {
        diesel::insert_into(schedule_book_state::table)
            .values((
                schedule_book_state::id.eq(1),
                schedule_book_state::fingerprint.eq(fingerprint),
                schedule_book_state::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Payee ids in order, a page at a time (for recomputing every outcome).
pub fn payee_ids_after(conn: &mut DbConn, after: Option<&str>, limit: i64) -> Result<Vec<String>, ServiceError> {
    let mut query =
        payees::table.select(payees::participant_id).order(payees::participant_id).limit(limit).into_boxed();
    if let Some(after) = after {
        query = query.filter(payees::participant_id.gt(after));
    }
    Ok(query.load(conn)?)
}

/// Every (schedule, cohort) some payee is enrolled on.
pub fn schedules_in_use(conn: &mut DbConn) -> Result<Vec<(String, i32)>, ServiceError> {
    Ok(payees::table.select((payees::schedule_id, payees::cohort)).distinct().load(conn)?)
}
