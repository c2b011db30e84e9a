//! The declarations payments made to the DfE (X5, X6) and the DfE's answers.

use crate::domain::declarations::{Declaration, DfeRecord};
use crate::store::schema::declarations;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;

/// A declaration payments made to the DfE (X5), with the DfE's answer.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = declarations)]
pub struct DeclarationRow {
    pub participant_id: String,
    pub declaration_type: String,
    /// False once payments voided it (X6).
    pub active: bool,
    pub window_id: String,
    pub declaration_date: NaiveDate,
    pub evidence_held: String,
    pub dfe_declaration_id: Option<String>,
    pub dfe_state: Option<String>,
}

impl DeclarationRow {
    pub fn record(self) -> DfeRecord {
        DfeRecord {
            declaration_type: self.declaration_type,
            active: self.active,
            dfe_declaration_id: self.dfe_declaration_id,
            dfe_state: self.dfe_state,
        }
    }
}

pub fn declarations_of(conn: &mut DbConn, participant_id: &str) -> Result<Vec<DfeRecord>, ServiceError> {
    Ok(declarations::table
        .filter(declarations::participant_id.eq(participant_id))
        .order((declarations::declaration_date, declarations::declaration_type))
        .select(DeclarationRow::as_select())
        .load::<DeclarationRow>(conn)?
        .into_iter()
        .map(DeclarationRow::record)
        .collect())
}

/// The declarations of the participants with ids in `[first, last]` (a
/// statement page), by participant and type.
pub fn declarations_between(
    conn: &mut DbConn,
    first: &str,
    last: &str,
) -> Result<HashMap<(String, String), DfeRecord>, ServiceError> {
    Ok(declarations::table
        .filter(declarations::participant_id.between(first, last))
        .select(DeclarationRow::as_select())
        .load::<DeclarationRow>(conn)?
        .into_iter()
        .map(|r| ((r.participant_id.clone(), r.declaration_type.clone()), r.record()))
        .collect())
}

/// X5: records a declaration as made (again, after a void: the voided
/// one's DfE id and state belong to the old declaration and are cleared).
pub fn declare(
    conn: &mut DbConn,
    participant_id: &str,
    d: &Declaration,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let updated = steplab_platform::on_backend!(conn, |inner| diesel::update(
        declarations::table.find((participant_id, &d.declaration_type))
    )
    .set((
        declarations::active.eq(true),
        declarations::window_id.eq(&d.window_id),
        declarations::declaration_date.eq(d.declaration_date),
        declarations::evidence_held.eq(&d.evidence_held),
        declarations::dfe_declaration_id.eq(None::<String>),
        declarations::dfe_state.eq(None::<String>),
        declarations::updated_at.eq(now),
    ))
    .keep_prepared()
    .execute(inner))?;
    if updated == 0 {
        diesel::insert_into(declarations::table)
            .values((
                declarations::participant_id.eq(participant_id),
                declarations::declaration_type.eq(&d.declaration_type),
                declarations::active.eq(true),
                declarations::window_id.eq(&d.window_id),
                declarations::declaration_date.eq(d.declaration_date),
                declarations::evidence_held.eq(&d.evidence_held),
                declarations::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// X6: marks a declaration voided by payments; the DfE's id and state stay
/// until the gateway reports the void.
pub fn void(
    conn: &mut DbConn,
    participant_id: &str,
    declaration_type: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    steplab_platform::on_backend!(conn, |inner| diesel::update(
        declarations::table.find((participant_id, declaration_type))
    )
    .set((declarations::active.eq(false), declarations::updated_at.eq(now)))
    .keep_prepared()
    .execute(inner))?;
    Ok(())
}

/// The DfE's answer to a declaration; false when payments never declared
/// that type for the participant.
pub fn set_dfe_state(
    conn: &mut DbConn,
    participant_id: &str,
    declaration_type: &str,
    dfe_declaration_id: &str,
    state: &str,
    now: NaiveDateTime,
) -> Result<bool, ServiceError> {
    let updated = steplab_platform::on_backend!(conn, |inner| diesel::update(
        declarations::table.find((participant_id, declaration_type))
    )
    .set((
        declarations::dfe_declaration_id.eq(dfe_declaration_id),
        declarations::dfe_state.eq(state),
        declarations::updated_at.eq(now),
    ))
    .keep_prepared()
    .execute(inner))?;
    Ok(updated > 0)
}
