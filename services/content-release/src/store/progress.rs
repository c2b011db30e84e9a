//! What a learner did: the modules they opened (R3) and the clinics and
//! conferences they attended (D11).

use super::schema::{attendances, module_accesses};
use crate::domain::progress::{Attendance, ModuleAccess};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

pub fn module_accesses(conn: &mut DbConn, participant_id: &str) -> Result<Vec<ModuleAccess>, ServiceError> {
    let rows: Vec<(i64, String, NaiveDate)> = module_accesses::table
        .filter(module_accesses::participant_id.eq(participant_id))
        .order(module_accesses::id)
        .select((module_accesses::id, module_accesses::module_id, module_accesses::accessed_on))
        .load(conn)?;
    Ok(rows.into_iter().map(|(seq, module_id, accessed_on)| ModuleAccess { module_id, accessed_on, seq }).collect())
}

pub fn insert_module_access(
    conn: &mut DbConn,
    participant_id: &str,
    module_id: &str,
    accessed_on: NaiveDate,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    diesel::insert_into(module_accesses::table)
        .values((
            module_accesses::participant_id.eq(participant_id),
            module_accesses::module_id.eq(module_id),
            module_accesses::accessed_on.eq(accessed_on),
            module_accesses::recorded_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A learner's attendance, ordered by date.
pub fn attendances(conn: &mut DbConn, participant_id: &str) -> Result<Vec<Attendance>, ServiceError> {
    let rows: Vec<(String, NaiveDate)> = attendances::table
        .filter(attendances::participant_id.eq(participant_id))
        .order((attendances::attended_on, attendances::recorded_at))
        .select((attendances::event_id, attendances::attended_on))
        .load(conn)?;
    Ok(rows.into_iter().map(|(event_id, attended_on)| Attendance { event_id, attended_on }).collect())
}

pub fn insert_attendance(
    conn: &mut DbConn,
    participant_id: &str,
    attendance: &Attendance,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    diesel::insert_into(attendances::table)
        .values((
            attendances::participant_id.eq(participant_id),
            attendances::event_id.eq(&attendance.event_id),
            attendances::attended_on.eq(attendance.attended_on),
            attendances::recorded_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
