//! Enrolled learners: their row (and its lock), and everything their
//! schedule and their readers depend on, loaded together.

use super::schema::{attendances, holds, learners, module_accesses, revocations, scope_changes};
use crate::domain::progress::{Attendance, ModuleAccess};
use crate::domain::{Hold, HoldKind, Learner, NewLearner, Programme, Revocation, ScopeChange};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use steplab_platform::db::{DbConn, KeepPreparedDsl};
use steplab_platform::error::ServiceError;
use steplab_platform::on_backend;

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
    let updated = on_backend!(conn, |inner| diesel::update(learners::table.find(participant_id))
        .set((learners::version.eq(learners::version + 1), learners::updated_at.eq(now)))
        .keep_prepared()
        .execute(inner))?;
    Ok(updated == 1)
}

/// What a learner did, beside their [`Learner`]: GetReleaseState needs it,
/// a command does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub accesses: Vec<ModuleAccess>,
    pub attendances: Vec<Attendance>,
}

/// A learner with their holds, revocations and scope changes, in one
/// statement (see [`learner_facts`]); `None` when not enrolled.
pub fn load_learner(conn: &mut DbConn, participant_id: &str) -> Result<Option<Learner>, ServiceError> {
    Ok(learner_facts(conn, participant_id, false)?.map(|(learner, _)| learner))
}

/// [`load_learner`] and the learner's [`Progress`], still in one statement.
pub fn load_learner_with_progress(
    conn: &mut DbConn,
    participant_id: &str,
) -> Result<Option<(Learner, Progress)>, ServiceError> {
    learner_facts(conn, participant_id, true)
}

/// One row of a learner's facts, whichever table it comes from: its table
/// (`kind`), then slots each table fills as [`learner_facts`] lists.
type FactRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDate>,
    Option<NaiveDate>,
    Option<NaiveDateTime>,
);

/// The learner's row and every row their reads depend on, as one UNION ALL
/// of fixed text with the learner's id and `with_progress` as bind
/// parameters, so both backends keep it as one prepared statement: each
/// read was one statement per table before (four for a command's load, six
/// for GetReleaseState). Each table maps its columns into [`FactRow`]'s
/// slots (n, t1, t2, t3, d1, d2, at):
/// - learner: programme, school, delivery partner in t1-t3; release start in d1
/// - hold: hold id and kind in t1, t2; from and until in d1, d2
/// - revocation: id in n; revoked from and restored on in d1, d2
/// - scope: id in n; school and delivery partner in t1, t2; from in d1
/// - access (with progress): id in n; module in t1; accessed on in d1
/// - attendance (with progress): event in t1; attended on in d1; recorded at in at
///
/// The order each list needs is restored here, not in SQL, as one ORDER BY
/// cannot serve six tables.
fn learner_facts(
    conn: &mut DbConn,
    participant_id: &str,
    with_progress: bool,
) -> Result<Option<(Learner, Progress)>, ServiceError> {
    use diesel::sql_types::{BigInt, Bool, Date, Nullable, Text, Timestamp};
    let id = participant_id.to_owned();
    let no_number = || None::<i64>.into_sql::<Nullable<BigInt>>();
    let no_text = || None::<String>.into_sql::<Nullable<Text>>();
    let no_date = || None::<NaiveDate>.into_sql::<Nullable<Date>>();
    let no_time = || None::<NaiveDateTime>.into_sql::<Nullable<Timestamp>>();
    let progress = with_progress.into_sql::<Bool>();
    let rows: Vec<FactRow> = on_backend!(conn, |inner| {
        learners::table
            .filter(learners::participant_id.eq(id.clone()))
            .select((
                "learner".into_sql::<Text>(),
                no_number(),
                learners::programme.nullable(),
                learners::school_id.nullable(),
                learners::delivery_partner_id.nullable(),
                learners::release_start.nullable(),
                no_date(),
                no_time(),
            ))
            .union_all(holds::table.filter(holds::participant_id.eq(id.clone())).select((
                "hold".into_sql::<Text>(),
                no_number(),
                holds::hold_id.nullable(),
                holds::kind.nullable(),
                no_text(),
                holds::from_date.nullable(),
                holds::until_date.nullable(),
                no_time(),
            )))
            .union_all(revocations::table.filter(revocations::participant_id.eq(id.clone())).select((
                "revocation".into_sql::<Text>(),
                revocations::id.nullable(),
                no_text(),
                no_text(),
                no_text(),
                revocations::revoked_from.nullable(),
                revocations::restored_on,
                no_time(),
            )))
            .union_all(scope_changes::table.filter(scope_changes::participant_id.eq(id.clone())).select((
                "scope".into_sql::<Text>(),
                scope_changes::id.nullable(),
                scope_changes::school_id.nullable(),
                scope_changes::delivery_partner_id.nullable(),
                no_text(),
                scope_changes::from_date.nullable(),
                no_date(),
                no_time(),
            )))
            .union_all(
                module_accesses::table.filter(module_accesses::participant_id.eq(id.clone()).and(progress)).select((
                    "access".into_sql::<Text>(),
                    module_accesses::id.nullable(),
                    module_accesses::module_id.nullable(),
                    no_text(),
                    no_text(),
                    module_accesses::accessed_on.nullable(),
                    no_date(),
                    no_time(),
                )),
            )
            .union_all(attendances::table.filter(attendances::participant_id.eq(id.clone()).and(progress)).select((
                "attendance".into_sql::<Text>(),
                no_number(),
                attendances::event_id.nullable(),
                no_text(),
                no_text(),
                attendances::attended_on.nullable(),
                no_date(),
                attendances::recorded_at.nullable(),
            )))
            .load::<FactRow>(inner)?
    });
    facts_from_rows(participant_id, rows)
}

fn facts_from_rows(participant_id: &str, rows: Vec<FactRow>) -> Result<Option<(Learner, Progress)>, ServiceError> {
    let missing = |what: &str| corrupt(format!("learner {participant_id}: a {what} row lacks a value"));
    let mut learner: Option<(String, String, String, NaiveDate)> = None;
    let mut holds = Vec::new();
    let mut revocations = Vec::new();
    let mut scope_changes = Vec::new();
    let mut progress = Progress::default();
    let mut attended: Vec<(Attendance, Option<NaiveDateTime>)> = Vec::new();
    for (kind, n, t1, t2, t3, d1, d2, at) in rows {
        match kind.as_str() {
            "learner" => {
                learner = Some((
                    t1.ok_or_else(|| missing(&kind))?,
                    t2.ok_or_else(|| missing(&kind))?,
                    t3.ok_or_else(|| missing(&kind))?,
                    d1.ok_or_else(|| missing(&kind))?,
                ))
            }
            "hold" => {
                let hold_id = t1.ok_or_else(|| missing(&kind))?;
                let hold_kind = t2.ok_or_else(|| missing(&kind))?;
                let hold_kind = HoldKind::parse(&hold_kind)
                    .ok_or_else(|| corrupt(format!("hold {hold_id} has kind {hold_kind}")))?;
                let from = d1.ok_or_else(|| missing(&kind))?;
                let until = d2.ok_or_else(|| missing(&kind))?;
                holds.push(Hold { hold_id, kind: hold_kind, from, until });
            }
            "revocation" => revocations.push((
                n.ok_or_else(|| missing(&kind))?,
                Revocation { revoked_from: d1.ok_or_else(|| missing(&kind))?, restored_on: d2 },
            )),
            "scope" => scope_changes.push(ScopeChange {
                seq: n.ok_or_else(|| missing(&kind))?,
                school_id: t1.ok_or_else(|| missing(&kind))?,
                delivery_partner_id: t2.ok_or_else(|| missing(&kind))?,
                from: d1.ok_or_else(|| missing(&kind))?,
            }),
            "access" => progress.accesses.push(ModuleAccess {
                seq: n.ok_or_else(|| missing(&kind))?,
                module_id: t1.ok_or_else(|| missing(&kind))?,
                accessed_on: d1.ok_or_else(|| missing(&kind))?,
            }),
            "attendance" => attended.push((
                Attendance {
                    event_id: t1.ok_or_else(|| missing(&kind))?,
                    attended_on: d1.ok_or_else(|| missing(&kind))?,
                },
                at,
            )),
            other => return Err(corrupt(format!("learner {participant_id}: unexpected fact {other}"))),
        }
    }
    let Some((programme, school_id, delivery_partner_id, release_start)) = learner else {
        return Ok(None);
    };
    let programme = Programme::parse(&programme)
        .ok_or_else(|| corrupt(format!("learner {participant_id} has programme {programme}")))?;
    // The orders the per-table queries had.
    holds.sort_by(|a, b| (a.from, &a.hold_id).cmp(&(b.from, &b.hold_id)));
    revocations.sort_by_key(|(id, _)| *id);
    scope_changes.sort_by_key(|s| s.seq);
    progress.accesses.sort_by_key(|a| a.seq);
    attended.sort_by(|(a, a_at), (b, b_at)| (a.attended_on, a_at).cmp(&(b.attended_on, b_at)));
    progress.attendances = attended.into_iter().map(|(a, _)| a).collect();
    let learner = Learner {
        participant_id: participant_id.to_owned(),
        programme,
        release_start,
        school_id,
        delivery_partner_id,
        holds,
        revocations: revocations.into_iter().map(|(_, r)| r).collect(),
        scope_changes,
    };
    Ok(Some((learner, progress)))
}

pub fn set_release_start(
    conn: &mut DbConn,
    participant_id: &str,
    release_start: NaiveDate,
) -> Result<(), ServiceError> {
    on_backend!(conn, |inner| diesel::update(learners::table.find(participant_id))
        .set(learners::release_start.eq(release_start))
        .keep_prepared()
        .execute(inner))?;
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
