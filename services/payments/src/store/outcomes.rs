//! Stored window outcomes, the per-window totals kept beside them, and the
//! statement pages read from both (F6).

use crate::domain::accrual::ExclusionReason;
use crate::domain::statement::StatementEntry;
use crate::store::by_participant;
use crate::store::schema::{window_outcomes, window_totals};
use chrono::NaiveDate;
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;

/// What one window pays one payee, as statements read it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = window_outcomes)]
// `None` is NULL (no column has another default), so a payee's outcomes go
// in one multi-row INSERT on SQLite too.
#[diesel(treat_none_as_default_value = false)]
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
            let updated = steplab_platform::on_backend!(conn, |inner| diesel::update(target)
                .set(window_totals::total_pence.eq(window_totals::total_pence + delta))
                .keep_prepared()
                .execute(inner))?;
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

/// Makes one payee's stored outcomes (`stored`) equal `rows` in at most two
/// statements whatever the schedule (issue 18): one DELETE of the windows
/// whose outcome changed or is gone, one multi-row INSERT of the changed
/// and new ones; windows whose outcome is unchanged (most engagement
/// changes nothing) are left alone. Notes what the totals must change by.
pub fn write_outcomes(
    conn: &mut DbConn,
    participant_id: &str,
    stored: Vec<OutcomeRow>,
    rows: Vec<OutcomeRow>,
    totals: &mut TotalsDelta,
) -> Result<(), ServiceError> {
    let mut stored: HashMap<String, OutcomeRow> = stored.into_iter().map(|r| (r.window_id.clone(), r)).collect();
    let mut to_delete = Vec::new();
    let mut to_insert = Vec::new();
    for row in rows {
        match stored.remove(&row.window_id) {
            Some(old) if old == row => {}
            Some(old) => {
                totals.add(&old, -1);
                totals.add(&row, 1);
                to_delete.push(row.window_id.clone());
                to_insert.push(row);
            }
            None => {
                totals.add(&row, 1);
                to_insert.push(row);
            }
        }
    }
    for (window_id, old) in stored {
        totals.add(&old, -1);
        to_delete.push(window_id);
    }
    if !to_delete.is_empty() {
        diesel::delete(
            window_outcomes::table
                .filter(window_outcomes::participant_id.eq(participant_id))
                .filter(window_outcomes::window_id.eq_any(&to_delete)),
        )
        .execute(conn)?;
    }
    if !to_insert.is_empty() {
        steplab_platform::insert_rows!(conn, window_outcomes::table, &to_insert)?;
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
) -> Result<Vec<StatementEntry>, ServiceError> {
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
    query.load::<OutcomeRow>(conn)?.into_iter().map(OutcomeRow::entry).collect()
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

    /// The statement's view of the row. A stored exclusion reason this
    /// build does not know is a bug, reported as internal.
    pub fn entry(self) -> Result<StatementEntry, ServiceError> {
        let unknown = || {
            ServiceError::Internal(format!(
                "a stored outcome of window {} has an unknown exclusion reason",
                self.window_id
            ))
        };
        match (self.milestone.clone(), self.exclusion_reason.as_deref()) {
            (Some(milestone), _) => Ok(StatementEntry::Line {
                participant_id: self.participant_id,
                delivery_partner_id: self.delivery_partner_id,
                milestone,
                amount_pence: self.amount_pence,
            }),
            (None, Some(r)) => {
                let reason = ExclusionReason::parse(r).ok_or_else(unknown)?;
                Ok(StatementEntry::Excluded { participant_id: self.participant_id, reason, detail: self.detail })
            }
            (None, None) => Err(unknown()),
        }
    }
}
