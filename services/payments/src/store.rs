//! The payments service's tables and queries. Every function takes a
//! connection and runs inside the caller's unit of work, so one RPC's
//! changes (the fact, the recomputed window outcomes and the idempotency
//! record) commit together or not at all.

use crate::domain::accrual::{Closure, CoverageChange, Facts, Placement, PlacementChange, Suspension};
use crate::domain::declarations::{Declaration, Declared};
use crate::domain::{EngagementKind, PayeeKind};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

pub mod schema {
    diesel::table! {
        payees (participant_id) {
            participant_id -> Text,
            participant_kind -> Text,
            schedule_id -> Text,
            cohort -> Integer,
            funding_eligible -> Bool,
            school_id -> Text,
            delivery_partner_id -> Text,
            version -> BigInt,
            created_at -> Timestamp,
        }
    }

    diesel::table! {
        suspensions (id) {
            id -> BigInt,
            participant_id -> Text,
            suspension_id -> Text,
            from_date -> Date,
            until_date -> Date,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        accrual_closures (id) {
            id -> BigInt,
            participant_id -> Text,
            ended_on -> Date,
            reopened_on -> Nullable<Date>,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        coverage_changes (id) {
            id -> BigInt,
            participant_id -> Text,
            from_date -> Date,
            covered -> Bool,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        placement_changes (id) {
            id -> BigInt,
            participant_id -> Text,
            from_date -> Date,
            school_id -> Text,
            delivery_partner_id -> Text,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        engagements (id) {
            id -> BigInt,
            participant_id -> Text,
            occurred_on -> Date,
            kind -> Text,
            note -> Text,
            recorded_by -> Text,
            recorded_at -> Timestamp,
        }
    }

    diesel::table! {
        window_outcomes (window_id, participant_id) {
            participant_id -> Text,
            window_id -> Text,
            delivery_partner_id -> Text,
            milestone -> Nullable<Text>,
            amount_pence -> BigInt,
            earned_on -> Nullable<Date>,
            exclusion_reason -> Nullable<Text>,
            detail -> Text,
        }
    }

    diesel::table! {
        window_totals (window_id, delivery_partner_id) {
            window_id -> Text,
            delivery_partner_id -> Text,
            total_pence -> BigInt,
        }
    }

    diesel::table! {
        schedule_book_state (id) {
            id -> Integer,
            fingerprint -> Text,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        declarations (participant_id, declaration_type) {
            participant_id -> Text,
            declaration_type -> Text,
            active -> Bool,
            window_id -> Text,
            declaration_date -> Date,
            evidence_held -> Text,
            dfe_declaration_id -> Nullable<Text>,
            dfe_state -> Nullable<Text>,
            updated_at -> Timestamp,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(
        declarations,
        payees,
        suspensions,
        accrual_closures,
        coverage_changes,
        placement_changes,
        engagements,
        window_outcomes,
        window_totals,
        schedule_book_state
    );
}

use schema::{
    accrual_closures, coverage_changes, declarations, engagements, payees, placement_changes, schedule_book_state,
    suspensions, window_outcomes, window_totals,
};

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

/// What one window pays one payee, as statements read it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = window_outcomes)]
pub struct OutcomeRow {
    pub participant_id: String,
    pub window_id: String,
    pub delivery_partner_id: String,
    pub milestone: Option<String>,
    /// 0 for an exclusion, so a statement's total is one SUM.
    pub amount_pence: i64,
    pub earned_on: Option<NaiveDate>,
    pub exclusion_reason: Option<String>,
    pub detail: String,
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
    let touched = diesel::update(payees::table.filter(payees::participant_id.between(first, last)))
        .set(payees::version.eq(payees::version + 1))
        .execute(conn)?;
    if touched == 0 {
        return Ok(Vec::new());
    }
    Ok(payees::table
        .filter(payees::participant_id.between(first, last))
        .order(payees::participant_id)
        .select(PayeeRow::as_select())
        .load(conn)?)
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
    diesel::update(suspensions::table.find(row_id))
        .set((suspensions::from_date.eq(s.from), suspensions::until_date.eq(s.until), suspensions::updated_at.eq(now)))
        .execute(conn)?;
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
    diesel::insert_into(accrual_closures::table)
        .values((
            accrual_closures::participant_id.eq(participant_id),
            accrual_closures::ended_on.eq(c.ended_on),
            accrual_closures::reopened_on.eq(c.reopened_on),
            accrual_closures::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn update_closure(conn: &mut DbConn, row_id: i64, c: &Closure, now: NaiveDateTime) -> Result<(), ServiceError> {
    diesel::update(accrual_closures::table.find(row_id))
        .set((
            accrual_closures::ended_on.eq(c.ended_on),
            accrual_closures::reopened_on.eq(c.reopened_on),
            accrual_closures::updated_at.eq(now),
        ))
        .execute(conn)?;
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
            diesel::update(coverage_changes::table.find(id))
                .set((coverage_changes::covered.eq(change.covered), coverage_changes::updated_at.eq(now)))
                .execute(conn)?;
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
            diesel::update(placement_changes::table.find(id))
                .set((
                    placement_changes::school_id.eq(&change.placement.school_id),
                    placement_changes::delivery_partner_id.eq(&change.placement.delivery_partner_id),
                    placement_changes::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(placement_changes::table)
                .values((
                    placement_changes::participant_id.eq(participant_id),
                    placement_changes::from_date.eq(change.from),
                    placement_changes::school_id.eq(&change.placement.school_id),
                    placement_changes::delivery_partner_id.eq(&change.placement.delivery_partner_id),
                    placement_changes::updated_at.eq(now),
                ))
                .execute(conn)?;
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

/// Groups rows by participant id.
fn by_participant<T>(rows: Vec<(String, T)>) -> HashMap<String, Vec<T>> {
    let mut grouped: HashMap<String, Vec<T>> = HashMap::new();
    for (id, row) in rows {
        grouped.entry(id).or_default().push(row);
    }
    grouped
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

/// The stored outcomes of the payees with ids in `[first, last]`.
pub fn stored_outcomes(
    conn: &mut DbConn,
    first: &str,
    last: &str,
) -> Result<HashMap<String, Vec<OutcomeRow>>, ServiceError> {
    let rows = window_outcomes::table
        .filter(window_outcomes::participant_id.between(first, last))
        .select(OutcomeRow::as_select())
        .load::<OutcomeRow>(conn)?;
    Ok(by_participant(rows.into_iter().map(|r| (r.participant_id.clone(), r)).collect()))
}

/// Changes to the per-window, per-DP totals, applied once per transaction.
#[derive(Debug, Default)]
pub struct TotalsDelta(HashMap<(String, String), i64>);

impl TotalsDelta {
    fn add(&mut self, row: &OutcomeRow, sign: i64) {
        if row.amount_pence != 0 {
            *self.0.entry((row.window_id.clone(), row.delivery_partner_id.clone())).or_default() +=
                sign * row.amount_pence;
        }
    }

    /// Look, then update or insert (no upsert under MultiConnection); two
    /// racing first inserts lose with a unique violation (ABORTED, retry).
    pub fn apply(self, conn: &mut DbConn) -> Result<(), ServiceError> {
        for ((window_id, dp), delta) in self.0 {
            if delta == 0 {
                continue;
            }
            let target = window_totals::table.find((&window_id, &dp));
            let updated = diesel::update(target)
                .set(window_totals::total_pence.eq(window_totals::total_pence + delta))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(window_totals::table)
                    .values((
                        window_totals::window_id.eq(&window_id),
                        window_totals::delivery_partner_id.eq(&dp),
                        window_totals::total_pence.eq(delta),
                    ))
                    .execute(conn)?;
            }
        }
        Ok(())
    }
}

/// Makes one payee's stored outcomes (`stored`) equal `rows`, touching only
/// the windows whose outcome changed (most engagement changes nothing), and
/// notes what the totals must change by.
pub fn write_outcomes(
    conn: &mut DbConn,
    participant_id: &str,
    stored: Vec<OutcomeRow>,
    rows: Vec<OutcomeRow>,
    totals: &mut TotalsDelta,
) -> Result<(), ServiceError> {
    let mut stored: HashMap<String, OutcomeRow> = stored.into_iter().map(|r| (r.window_id.clone(), r)).collect();
    for row in rows {
        match stored.remove(&row.window_id) {
            Some(old) if old == row => {}
            Some(old) => {
                diesel::update(window_outcomes::table.find((&row.window_id, participant_id)))
                    .set((
                        window_outcomes::delivery_partner_id.eq(&row.delivery_partner_id),
                        window_outcomes::milestone.eq(&row.milestone),
                        window_outcomes::amount_pence.eq(row.amount_pence),
                        window_outcomes::earned_on.eq(row.earned_on),
                        window_outcomes::exclusion_reason.eq(&row.exclusion_reason),
                        window_outcomes::detail.eq(&row.detail),
                    ))
                    .execute(conn)?;
                totals.add(&old, -1);
                totals.add(&row, 1);
            }
            None => {
                diesel::insert_into(window_outcomes::table).values(&row).execute(conn)?;
                totals.add(&row, 1);
            }
        }
    }
    for (window_id, old) in stored {
        diesel::delete(window_outcomes::table.find((&window_id, participant_id))).execute(conn)?;
        totals.add(&old, -1);
    }
    Ok(())
}

/// One page of a window's statement: payees after `after`, by participant id.
pub fn statement_page(
    conn: &mut DbConn,
    window_id: &str,
    delivery_partner_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<OutcomeRow>, ServiceError> {
    let mut query = window_outcomes::table
        .filter(window_outcomes::window_id.eq(window_id))
        .select(OutcomeRow::as_select())
        .order(window_outcomes::participant_id)
        .limit(limit)
        .into_boxed();
    if let Some(dp) = delivery_partner_id {
        query = query.filter(window_outcomes::delivery_partner_id.eq(dp));
    }
    if let Some(after) = after {
        query = query.filter(window_outcomes::participant_id.gt(after));
    }
    Ok(query.load(conn)?)
}

/// The total of the whole statement, from the kept totals. SUM of a BIGINT
/// is NUMERIC on PostgreSQL, which MultiConnection cannot read: cast it back.
pub fn statement_total(
    conn: &mut DbConn,
    window_id: &str,
    delivery_partner_id: Option<&str>,
) -> Result<i64, ServiceError> {
    let total = diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(COALESCE(SUM(total_pence), 0) AS BIGINT)");
    let mut query = window_totals::table.filter(window_totals::window_id.eq(window_id)).select(total).into_boxed();
    if let Some(dp) = delivery_partner_id {
        query = query.filter(window_totals::delivery_partner_id.eq(dp));
    }
    Ok(query.first(conn)?)
}

/// Runs `f` in one read-only snapshot, so a page and the statement's total
/// agree even while engagement is being recorded.
pub fn snapshot<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    conn.transaction(|conn| {
        if let DbConn::Pg(pg) = conn {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(pg)?;
        }
        f(conn)
    })
}

pub fn book_fingerprint(conn: &mut DbConn) -> Result<Option<String>, ServiceError> {
    Ok(schedule_book_state::table.find(1).select(schedule_book_state::fingerprint).first(conn).optional()?)
}

pub fn set_book_fingerprint(conn: &mut DbConn, fingerprint: &str, now: NaiveDateTime) -> Result<(), ServiceError> {
    let updated = diesel::update(schedule_book_state::table.find(1))
        .set((schedule_book_state::fingerprint.eq(fingerprint), schedule_book_state::updated_at.eq(now)))
        .execute(conn)?;
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

impl OutcomeRow {
    pub fn from_outcome(participant_id: &str, o: &crate::domain::accrual::WindowOutcome<'_>) -> OutcomeRow {
        use crate::domain::accrual::Outcome;
        let base = OutcomeRow {
            participant_id: participant_id.to_owned(),
            window_id: o.window.id.clone(),
            delivery_partner_id: o.delivery_partner_id.clone(),
            milestone: None,
            amount_pence: 0,
            earned_on: None,
            exclusion_reason: None,
            detail: String::new(),
        };
        match &o.outcome {
            Outcome::Earned { milestone, amount_pence, earned_on } => OutcomeRow {
                milestone: Some(milestone.clone()),
                amount_pence: *amount_pence,
                earned_on: Some(*earned_on),
                detail: format!("{milestone} earned on {earned_on}"),
                ..base
            },
            Outcome::Excluded { reason, detail } => {
                OutcomeRow { exclusion_reason: Some(reason.as_str().to_owned()), detail: detail.clone(), ..base }
            }
        }
    }
}

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
    pub fn domain(&self) -> Declared {
        Declared { declaration_type: self.declaration_type.clone(), active: self.active }
    }
}

pub fn declarations_of(conn: &mut DbConn, participant_id: &str) -> Result<Vec<DeclarationRow>, ServiceError> {
    Ok(declarations::table
        .filter(declarations::participant_id.eq(participant_id))
        .order((declarations::declaration_date, declarations::declaration_type))
        .select(DeclarationRow::as_select())
        .load(conn)?)
}

/// The declarations of the participants with ids in `[first, last]` (a
/// statement page), by participant and type.
pub fn declarations_between(
    conn: &mut DbConn,
    first: &str,
    last: &str,
) -> Result<HashMap<(String, String), DeclarationRow>, ServiceError> {
    Ok(declarations::table
        .filter(declarations::participant_id.between(first, last))
        .select(DeclarationRow::as_select())
        .load::<DeclarationRow>(conn)?
        .into_iter()
        .map(|r| ((r.participant_id.clone(), r.declaration_type.clone()), r))
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
    let updated = diesel::update(declarations::table.find((participant_id, &d.declaration_type)))
        .set((
            declarations::active.eq(true),
            declarations::window_id.eq(&d.window_id),
            declarations::declaration_date.eq(d.declaration_date),
            declarations::evidence_held.eq(&d.evidence_held),
            declarations::dfe_declaration_id.eq(None::<String>),
            declarations::dfe_state.eq(None::<String>),
            declarations::updated_at.eq(now),
        ))
        .execute(conn)?;
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
    diesel::update(declarations::table.find((participant_id, declaration_type)))
        .set((declarations::active.eq(false), declarations::updated_at.eq(now)))
        .execute(conn)?;
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
    let updated = diesel::update(declarations::table.find((participant_id, declaration_type)))
        .set((
            declarations::dfe_declaration_id.eq(dfe_declaration_id),
            declarations::dfe_state.eq(state),
            declarations::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(updated > 0)
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
