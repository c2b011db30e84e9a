//! What the receivers record about a payee (suspensions, closures,
//! coverage, moves, engagement), loaded as the accrual engine's facts.

use crate::domain::EngagementKind;
use crate::domain::accrual::{Closure, CoverageChange, Facts, Placement, PlacementChange, Suspension};
use crate::store::PayeeRow;
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

/// One row of [`load_facts_of`]'s statement, whichever table it comes
/// from: the payee, the table (`kind`), then slots each table fills:
/// - `s` suspension: id in n; suspension id in t1; from and until in d1, d2
/// - `c` closure: id in n; ended on and reopened on in d1, d2
/// - `v` coverage change: id in n; from in d1; covered in b
/// - `m` move: id in n; school and delivery partner in t1, t2; from in d1
/// - `e` a day with engagement: the day in d1
#[derive(Debug, QueryableByName)]
struct FactRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pid: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    n: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    t1: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    t2: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Date>)]
    d1: Option<NaiveDate>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Date>)]
    d2: Option<NaiveDate>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    b: Option<bool>,
}

/// The facts' five tables as one UNION ALL of fixed text over an id range,
/// `{first}` and `{last}` standing for the backend's numbered placeholders
/// (each bound once, used by every branch). The DISTINCT branch casts its
/// NULLs: PostgreSQL types a NULL there as text before the union can type
/// it by the first branch. It was five statements, one per table, on every
/// command's recompute: on PostgreSQL a round trip and a wake-up of a
/// server process each (issue 18).
const FACTS: &str = "\
SELECT participant_id AS pid, 's' AS kind, id AS n, suspension_id AS t1, CAST(NULL AS TEXT) AS t2, \
       from_date AS d1, until_date AS d2, CAST(NULL AS BOOLEAN) AS b \
  FROM suspensions WHERE participant_id BETWEEN {first} AND {last} \
UNION ALL SELECT participant_id, 'c', id, NULL, NULL, ended_on, reopened_on, NULL \
  FROM accrual_closures WHERE participant_id BETWEEN {first} AND {last} \
UNION ALL SELECT participant_id, 'v', id, NULL, NULL, from_date, NULL, covered \
  FROM coverage_changes WHERE participant_id BETWEEN {first} AND {last} \
UNION ALL SELECT participant_id, 'm', id, school_id, delivery_partner_id, from_date, NULL, NULL \
  FROM placement_changes WHERE participant_id BETWEEN {first} AND {last} \
UNION ALL SELECT DISTINCT participant_id, 'e', CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
       occurred_on, CAST(NULL AS DATE), CAST(NULL AS BOOLEAN) \
  FROM engagements WHERE participant_id BETWEEN {first} AND {last}";

/// [`FACTS`] for each backend, made once.
fn facts_text(postgres: bool) -> &'static str {
    static TEXTS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (sqlite, pg) = TEXTS.get_or_init(|| {
        let text = |first: &str, last: &str| FACTS.replace("{first}", first).replace("{last}", last);
        (text("?1", "?2"), text("$1", "$2"))
    });
    if postgres { pg } else { sqlite }
}

/// The facts of payees sorted by id, in that order, in one statement for
/// the whole id range (a range, not `IN`, so the text never varies). Ids in
/// the range but not in `payees` are ignored.
pub fn load_facts_of(conn: &mut DbConn, payees: &[PayeeRow]) -> Result<Vec<Facts>, ServiceError> {
    use diesel::sql_types::Text;
    let (Some(first), Some(last)) = (payees.first(), payees.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (first.participant_id.as_str(), last.participant_id.as_str());
    let text = facts_text(matches!(conn, DbConn::Pg(_)));
    let mut rows: Vec<FactRow> = steplab_platform::on_backend!(conn, |inner| diesel::sql_query(text)
        .bind::<Text, _>(first)
        .bind::<Text, _>(last)
        .keep_prepared()
        .load::<FactRow>(inner))?;
    // The order each list had from its own ORDER BY: by date, then by id.
    rows.sort_by(|a, b| (&a.pid, &a.kind, a.d1, a.n).cmp(&(&b.pid, &b.kind, b.d1, b.n)));
    let mut by_payee: HashMap<String, Vec<FactRow>> = HashMap::new();
    for row in rows {
        by_payee.entry(row.pid.clone()).or_default().push(row);
    }
    let mut out = Vec::with_capacity(payees.len());
    for payee in payees {
        let mut facts = Facts::enrolled(
            payee.kind()?,
            payee.funding_eligible,
            Placement { school_id: payee.school_id.clone(), delivery_partner_id: payee.delivery_partner_id.clone() },
        );
        for row in by_payee.remove(&payee.participant_id).unwrap_or_default() {
            add_fact(&mut facts, row)?;
        }
        facts.normalise();
        out.push(facts);
    }
    Ok(out)
}

/// Adds one row of [`load_facts_of`] to the payee's facts.
fn add_fact(facts: &mut Facts, row: FactRow) -> Result<(), ServiceError> {
    let missing = |slot: &str| ServiceError::Internal(format!("{} fact of {} lacks its {slot}", row.kind, row.pid));
    let from = row.d1.ok_or_else(|| missing("date"))?;
    match row.kind.as_str() {
        "s" => facts.suspensions.push(Suspension {
            id: row.t1.clone().ok_or_else(|| missing("suspension id"))?,
            from,
            until: row.d2.ok_or_else(|| missing("end"))?,
        }),
        "c" => facts.closures.push(Closure { ended_on: from, reopened_on: row.d2 }),
        "v" => facts.coverage.push(CoverageChange { from, covered: row.b.ok_or_else(|| missing("coverage"))? }),
        "m" => facts.moves.push(PlacementChange {
            from,
            placement: Placement {
                school_id: row.t1.clone().ok_or_else(|| missing("school"))?,
                delivery_partner_id: row.t2.clone().ok_or_else(|| missing("delivery partner"))?,
            },
        }),
        "e" => facts.engagement.push(from),
        other => return Err(ServiceError::Internal(format!("unknown fact kind {other}"))),
    }
    Ok(())
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
