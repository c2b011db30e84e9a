//! What the receivers record about a payee (suspensions, closures,
//! coverage, moves, engagement), loaded as the accrual engine's facts.

use crate::domain::EngagementKind;
use crate::domain::accrual::{Closure, CoverageChange, Facts, Placement, PlacementChange, Suspension};
use crate::store::PayeeRow;
use crate::store::by_participant;
use crate::store::schema::{accrual_closures, coverage_changes, engagements, placement_changes, suspensions};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = suspensions)]
pub struct SuspensionRow {
    pub id: i64,
    pub suspension_id: String,
    pub from_date: NaiveDate,
    pub until_date: NaiveDate,
}

impl SuspensionRow {
    pub fn domain(&self) -> Suspension {
        Suspension { id: self.suspension_id.clone(), from: self.from_date, until: self.until_date }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accrual_closures)]
pub struct ClosureRow {
    pub id: i64,
    pub ended_on: NaiveDate,
    pub reopened_on: Option<NaiveDate>,
}

impl ClosureRow {
    pub fn domain(&self) -> Closure {
        Closure { ended_on: self.ended_on, reopened_on: self.reopened_on }
    }
}

pub fn suspensions_of(conn: &mut DbConn, id: &str) -> Result<Vec<SuspensionRow>, ServiceError> {
    Ok(suspensions::table
        .filter(suspensions::participant_id.eq(id))
        .order((suspensions::from_date, suspensions::id))
        .select(SuspensionRow::as_select())
        .load(conn)?)
}

pub fn insert_suspension(
    conn: &mut DbConn,
    participant_id: &str,
    s: &Suspension,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    diesel::insert_into(suspensions::table)
        .values((
            suspensions::participant_id.eq(participant_id),
            suspensions::suspension_id.eq(&s.id),
            suspensions::from_date.eq(s.from),
            suspensions::until_date.eq(s.until),
            suspensions::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn update_suspension(
    conn: &mut DbConn,
    row_id: i64,
    s: &Suspension,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    steplab_platform::on_backend!(conn, |inner| diesel::update(suspensions::table.find(row_id))
        .set((suspensions::from_date.eq(s.from), suspensions::until_date.eq(s.until), suspensions::updated_at.eq(now)))
        .keep_prepared()
        .execute(inner))?;
    Ok(())
}

pub fn closures_of(conn: &mut DbConn, id: &str) -> Result<Vec<ClosureRow>, ServiceError> {
    Ok(accrual_closures::table
        .filter(accrual_closures::participant_id.eq(id))
        .order((accrual_closures::ended_on, accrual_closures::id))
        .select(ClosureRow::as_select())
        .load(conn)?)
}

pub fn insert_closure(
    conn: &mut DbConn,
    participant_id: &str,
    c: &Closure,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    steplab_platform::on_backend!(conn, |inner| diesel::insert_into(accrual_closures::table)
        .values((
            accrual_closures::participant_id.eq(participant_id),
            accrual_closures::ended_on.eq(c.ended_on),
            accrual_closures::reopened_on.eq(c.reopened_on),
            accrual_closures::updated_at.eq(now),
        ))
        .keep_prepared()
        .execute(inner))?;
    Ok(())
}

pub fn update_closure(conn: &mut DbConn, row_id: i64, c: &Closure, now: NaiveDateTime) -> Result<(), ServiceError> {
    steplab_platform::on_backend!(conn, |inner| diesel::update(accrual_closures::table.find(row_id))
        .set((
            accrual_closures::ended_on.eq(c.ended_on),
            accrual_closures::reopened_on.eq(c.reopened_on),
            accrual_closures::updated_at.eq(now),
        ))
        .keep_prepared()
        .execute(inner))?;
    Ok(())
}

/// S2: for the same `from` the last change wins (no upsert under
/// MultiConnection: look, then update or insert, in the payee's lock).
pub fn set_coverage(
    conn: &mut DbConn,
    participant_id: &str,
    change: &CoverageChange,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let existing: Option<i64> = coverage_changes::table
        .filter(coverage_changes::participant_id.eq(participant_id))
        .filter(coverage_changes::from_date.eq(change.from))
        .select(coverage_changes::id)
        .first(conn)
        .optional()?;
    match existing {
        Some(id) => {
            steplab_platform::on_backend!(conn, |inner| diesel::update(coverage_changes::table.find(id))
                .set((coverage_changes::covered.eq(change.covered), coverage_changes::updated_at.eq(now)))
                .keep_prepared()
                .execute(inner))?;
        }
        None => {
            diesel::insert_into(coverage_changes::table)
                .values((
                    coverage_changes::participant_id.eq(participant_id),
                    coverage_changes::from_date.eq(change.from),
                    coverage_changes::covered.eq(change.covered),
                    coverage_changes::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// S1: the payee belongs to another school (and perhaps DP) from `from`;
/// for the same `from` the last change wins.
pub fn set_placement(
    conn: &mut DbConn,
    participant_id: &str,
    change: &PlacementChange,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let existing: Option<i64> = placement_changes::table
        .filter(placement_changes::participant_id.eq(participant_id))
        .filter(placement_changes::from_date.eq(change.from))
        .select(placement_changes::id)
        .first(conn)
        .optional()?;
    match existing {
        Some(id) => {
            steplab_platform::on_backend!(conn, |inner| diesel::update(placement_changes::table.find(id))
                .set((
                    placement_changes::school_id.eq(&change.placement.school_id),
                    placement_changes::delivery_partner_id.eq(&change.placement.delivery_partner_id),
                    placement_changes::updated_at.eq(now),
                ))
                .keep_prepared()
                .execute(inner))?;
        }
        None => {
            steplab_platform::on_backend!(conn, |inner| diesel::insert_into(placement_changes::table)
                .values((
                    placement_changes::participant_id.eq(participant_id),
                    placement_changes::from_date.eq(change.from),
                    placement_changes::school_id.eq(&change.placement.school_id),
                    placement_changes::delivery_partner_id.eq(&change.placement.delivery_partner_id),
                    placement_changes::updated_at.eq(now),
                ))
                .keep_prepared()
                .execute(inner))?;
        }
    }
    Ok(())
}

/// One piece of engagement evidence, as recorded.
#[derive(Debug, Clone)]
pub struct NewEngagement<'a> {
    pub participant_id: &'a str,
    pub occurred_on: NaiveDate,
    pub kind: &'a str,
    pub note: &'a str,
    pub recorded_by: &'a str,
}

pub fn insert_engagement(conn: &mut DbConn, e: &NewEngagement<'_>, now: NaiveDateTime) -> Result<(), ServiceError> {
    diesel::insert_into(engagements::table)
        .values((
            engagements::participant_id.eq(e.participant_id),
            engagements::occurred_on.eq(e.occurred_on),
            engagements::kind.eq(e.kind),
            engagements::note.eq(e.note),
            engagements::recorded_by.eq(e.recorded_by),
            engagements::recorded_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Everything the accrual engine needs about one payee.
pub fn load_facts(conn: &mut DbConn, payee: &PayeeRow) -> Result<Facts, ServiceError> {
    load_facts_of(conn, std::slice::from_ref(payee))?
        .pop()
        .ok_or_else(|| ServiceError::Internal(format!("no facts loaded for {}", payee.participant_id)))
}

/// The facts of payees sorted by id, in that order, with one query per
/// table for the whole id range (a range, not `IN`, so no array binds are
/// needed under MultiConnection). Ids in the range but not in `payees`
/// are ignored.
pub fn load_facts_of(conn: &mut DbConn, payees: &[PayeeRow]) -> Result<Vec<Facts>, ServiceError> {
    let (Some(first), Some(last)) = (payees.first(), payees.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (first.participant_id.as_str(), last.participant_id.as_str());
    let mut suspensions = by_participant(
        suspensions::table
            .filter(suspensions::participant_id.between(first, last))
            .order((suspensions::participant_id, suspensions::from_date, suspensions::id))
            .select((suspensions::participant_id, SuspensionRow::as_select()))
            .load::<(String, SuspensionRow)>(conn)?,
    );
    let mut closures = by_participant(
        accrual_closures::table
            .filter(accrual_closures::participant_id.between(first, last))
            .order((accrual_closures::participant_id, accrual_closures::ended_on, accrual_closures::id))
            .select((accrual_closures::participant_id, ClosureRow::as_select()))
            .load::<(String, ClosureRow)>(conn)?,
    );
    let mut coverage = by_participant(
        coverage_changes::table
            .filter(coverage_changes::participant_id.between(first, last))
            .order((coverage_changes::participant_id, coverage_changes::from_date))
            .select((coverage_changes::participant_id, (coverage_changes::from_date, coverage_changes::covered)))
            .load::<(String, (NaiveDate, bool))>(conn)?,
    );
    let mut moves = by_participant(
        placement_changes::table
            .filter(placement_changes::participant_id.between(first, last))
            .order((placement_changes::participant_id, placement_changes::from_date))
            .select((
                placement_changes::participant_id,
                (placement_changes::from_date, placement_changes::school_id, placement_changes::delivery_partner_id),
            ))
            .load::<(String, (NaiveDate, String, String))>(conn)?,
    );
    let mut engagement = by_participant(
        engagements::table
            .filter(engagements::participant_id.between(first, last))
            .select((engagements::participant_id, engagements::occurred_on))
            .distinct()
            .order((engagements::participant_id, engagements::occurred_on))
            .load::<(String, NaiveDate)>(conn)?,
    );
    let mut out = Vec::with_capacity(payees.len());
    for payee in payees {
        let id = payee.participant_id.as_str();
        let mut facts = Facts::enrolled(
            payee.kind()?,
            payee.funding_eligible,
            Placement { school_id: payee.school_id.clone(), delivery_partner_id: payee.delivery_partner_id.clone() },
        );
        facts.suspensions = suspensions.remove(id).unwrap_or_default().iter().map(SuspensionRow::domain).collect();
        facts.closures = closures.remove(id).unwrap_or_default().iter().map(ClosureRow::domain).collect();
        facts.coverage = coverage
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .map(|(from, covered)| CoverageChange { from, covered })
            .collect();
        facts.moves = moves
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .map(|(from, school_id, delivery_partner_id)| PlacementChange {
                from,
                placement: Placement { school_id, delivery_partner_id },
            })
            .collect();
        facts.engagement = engagement.remove(id).unwrap_or_default();
        facts.normalise();
        out.push(facts);
    }
    Ok(out)
}

/// The kind of the engagement recorded first on each of `days` (X5's
/// evidence); a day without a readable kind is left out.
pub fn first_engagement_kinds(
    conn: &mut DbConn,
    participant_id: &str,
    days: &[NaiveDate],
) -> Result<HashMap<NaiveDate, EngagementKind>, ServiceError> {
    let (Some(first), Some(last)) = (days.iter().min(), days.iter().max()) else {
        return Ok(HashMap::new());
    };
    let rows = engagements::table
        .filter(engagements::participant_id.eq(participant_id))
        .filter(engagements::occurred_on.between(first, last))
        .order((engagements::occurred_on, engagements::id))
        .select((engagements::occurred_on, engagements::kind))
        .load::<(NaiveDate, String)>(conn)?;
    let mut kinds = HashMap::new();
    for (day, kind) in rows {
        if days.contains(&day)
            && let Some(kind) = EngagementKind::parse(&kind)
        {
            kinds.entry(day).or_insert(kind);
        }
    }
    Ok(kinds)
}
