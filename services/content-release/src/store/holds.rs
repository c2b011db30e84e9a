//! Holds and access revocations of a learner.

use super::schema::{holds, revocations};
use crate::domain::Hold;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = revocations)]
pub(super) struct RevocationRow {
    id: i64,
    pub(super) revoked_from: NaiveDate,
    pub(super) restored_on: Option<NaiveDate>,
}

pub fn insert_hold(
    conn: &mut DbConn,
    participant_id: &str,
    hold: &Hold,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    diesel::insert_into(holds::table)
        .values((
            holds::participant_id.eq(participant_id),
            holds::hold_id.eq(&hold.hold_id),
            holds::kind.eq(hold.kind.as_str()),
            holds::from_date.eq(hold.from),
            holds::until_date.eq(hold.until),
            holds::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets a stored hold's dates (a PlaceHold again, or a LiftHold).
pub fn update_hold_dates(
    conn: &mut DbConn,
    participant_id: &str,
    hold: &Hold,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    steplab_platform::on_backend!(conn, |inner| diesel::update(holds::table.find((participant_id, &hold.hold_id)))
        .set((holds::from_date.eq(hold.from), holds::until_date.eq(hold.until), holds::updated_at.eq(now)))
        .keep_prepared()
        .execute(inner))?;
    Ok(())
}

pub(super) fn revocation_rows(conn: &mut DbConn, participant_id: &str) -> Result<Vec<RevocationRow>, ServiceError> {
    Ok(revocations::table
        .filter(revocations::participant_id.eq(participant_id))
        .order(revocations::id)
        .select(RevocationRow::as_select())
        .load(conn)?)
}

/// The revocation still in force (no restore yet): its id and start.
pub fn open_revocation(conn: &mut DbConn, participant_id: &str) -> Result<Option<(i64, NaiveDate)>, ServiceError> {
    Ok(revocation_rows(conn, participant_id)?
        .into_iter()
        .filter(|r| r.restored_on.is_none())
        .map(|r| (r.id, r.revoked_from))
        .next_back())
}

pub fn insert_revocation(
    conn: &mut DbConn,
    participant_id: &str,
    revoked_from: NaiveDate,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    diesel::insert_into(revocations::table)
        .values((
            revocations::participant_id.eq(participant_id),
            revocations::revoked_from.eq(revoked_from),
            revocations::recorded_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn restore(conn: &mut DbConn, revocation_id: i64, on: NaiveDate) -> Result<(), ServiceError> {
    steplab_platform::on_backend!(conn, |inner| diesel::update(revocations::table.find(revocation_id))
        .set(revocations::restored_on.eq(Some(on)))
        .keep_prepared()
        .execute(inner))?;
    Ok(())
}
