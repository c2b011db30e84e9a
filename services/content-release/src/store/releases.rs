//! The stored release feed (R4), rewritten per learner and read by date,
//! and the curriculum it was computed with.

use super::schema::{curriculum_state, releases};
use crate::domain::feed::{FeedPosition, Release};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use std::collections::HashMap;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;

/// One row of the release feed (R4).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = releases)]
// No DEFAULT in the row, so many rows go in one multi-row INSERT on SQLite
// (diesel otherwise inserts them one statement each there).
#[diesel(treat_none_as_default_value = false)]
struct ReleaseRow {
    participant_id: String,
    module_id: String,
    release_date: NaiveDate,
    is_optional: bool,
}

impl From<&Release> for ReleaseRow {
    fn from(release: &Release) -> Self {
        ReleaseRow {
            participant_id: release.participant_id.clone(),
            module_id: release.module_id.clone(),
            release_date: release.release_date,
            is_optional: release.optional,
        }
    }
}

impl From<ReleaseRow> for Release {
    fn from(row: ReleaseRow) -> Self {
        Release {
            participant_id: row.participant_id,
            module_id: row.module_id,
            release_date: row.release_date,
            optional: row.is_optional,
        }
    }
}

/// What makes a learner's feed rows `stored` into `wanted`.
struct FeedDiff {
    /// Module id to `[date, optional]` of each row that moved, as
    /// [`move_releases`] takes them; `None` when none did.
    moved: Option<String>,
    moved_count: usize,
    /// The modules no longer released.
    gone: Vec<String>,
    /// The modules newly released.
    new: Vec<ReleaseRow>,
}

fn diff(stored: impl IntoIterator<Item = ReleaseRow>, wanted: &[Release]) -> FeedDiff {
    let mut stored: HashMap<String, ReleaseRow> = stored.into_iter().map(|r| (r.module_id.clone(), r)).collect();
    let mut new = Vec::new();
    let mut moved: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for row in wanted.iter().map(ReleaseRow::from) {
        match stored.remove(&row.module_id) {
            Some(existing) if existing == row => {}
            Some(_) => {
                let date = row.release_date.format("%Y-%m-%d").to_string();
                moved.insert(row.module_id, serde_json::json!([date, row.is_optional]));
            }
            None => new.push(row),
        }
    }
    let moved_count = moved.len();
    let moved = (!moved.is_empty()).then(|| serde_json::Value::Object(moved).to_string());
    FeedDiff { moved, moved_count, gone: stored.into_keys().collect(), new }
}

/// Deletes the learner's feed rows of `modules`, answering how many were there.
fn delete_releases(conn: &mut DbConn, participant_id: &str, modules: &[String]) -> Result<usize, ServiceError> {
    Ok(diesel::delete(
        releases::table.filter(releases::participant_id.eq(participant_id)).filter(releases::module_id.eq_any(modules)),
    )
    .execute(conn)?)
}

/// Makes the stored feed rows of one learner equal `wanted` in at most
/// four statements whatever the curriculum's length (issue 18): one SELECT;
/// one UPDATE of the rows whose date or optionality moved (the usual case:
/// a hold or a lift moves the dates of the modules after it); one DELETE of
/// the rows that are gone and one multi-row INSERT of the new ones (an
/// enrolment, a curriculum change). Rows that already match are left alone.
pub fn replace_releases(conn: &mut DbConn, participant_id: &str, wanted: &[Release]) -> Result<(), ServiceError> {
    let stored: Vec<ReleaseRow> = releases::table
        .filter(releases::participant_id.eq(participant_id))
        .select(ReleaseRow::as_select())
        .load(conn)?;
    let FeedDiff { moved, gone, new, .. } = diff(stored, wanted);
    if let Some(moved) = moved {
        move_releases(conn, participant_id, &moved)?;
    }
    if !gone.is_empty() {
        delete_releases(conn, participant_id, &gone)?;
    }
    if !new.is_empty() {
        steplab_platform::insert_rows!(conn, releases::table, &new)?;
    }
    Ok(())
}

/// Makes the learner's feed rows, known to be `stored`, equal `wanted`
/// without reading them: one UPDATE of the rows that moved and, when some
/// are gone, one DELETE. Answers false, having changed at most some of the
/// rows, when a row to move or delete was not there or a row is new (the
/// caller then rewrites the feed from what is stored, with
/// [`replace_releases`]).
pub fn move_releases_from(
    conn: &mut DbConn,
    participant_id: &str,
    stored: &[Release],
    wanted: &[Release],
) -> Result<bool, ServiceError> {
    let FeedDiff { moved, moved_count, gone, new } = diff(stored.iter().map(ReleaseRow::from), wanted);
    if !new.is_empty() {
        return Ok(false);
    }
    if let Some(moved) = moved
        && move_releases(conn, participant_id, &moved)? != moved_count
    {
        return Ok(false);
    }
    Ok(gone.is_empty() || delete_releases(conn, participant_id, &gone)? == gone.len())
}

/// Moves a learner's feed rows to new dates in one UPDATE of fixed text,
/// kept prepared: `moved` is a JSON object of module id to `[date,
/// optional]`. An UPDATE in place changes the row and its date index entry;
/// the DELETE and INSERT it replaces also rewrote the primary key's entry
/// and made SQLite parse a statement as long as the curriculum each time (a
/// third of content release's CPU while deferring). On SQLite the text is
/// turned into JSONB once (`jsonb(?)` is constant, so computed once per
/// run): `json_each` is evaluated again for each of the learner's rows it
/// is joined with, and on text it parsed the whole object every time.
fn move_releases(conn: &mut DbConn, participant_id: &str, moved: &str) -> Result<usize, ServiceError> {
    use diesel::sql_types::Text;
    use steplab_platform::db::KeepPreparedDsl;
    let text = match conn {
        DbConn::Sqlite(_) => {
            "UPDATE releases SET release_date = json_extract(moved.value, '$[0]'), \
             is_optional = json_extract(moved.value, '$[1]') \
             FROM json_each(jsonb(?)) AS moved \
             WHERE releases.participant_id = ? AND releases.module_id = moved.key"
        }
        DbConn::Pg(_) => {
            "UPDATE releases SET release_date = (moved.value ->> 0)::date, \
             is_optional = (moved.value ->> 1)::boolean \
             FROM json_each($1::json) AS moved \
             WHERE releases.participant_id = $2 AND releases.module_id = moved.key"
        }
    };
    Ok(steplab_platform::on_backend!(conn, |inner| diesel::sql_query(text)
        .bind::<Text, _>(moved)
        .bind::<Text, _>(participant_id)
        .keep_prepared()
        .execute(inner))?)
}

/// Up to `limit` feed rows with `from <= release_date <= to` after `after`,
/// in (release_date, participant_id, module_id) order: one seek into the
/// `releases_by_date` index whatever the page.
pub fn list_releases(
    conn: &mut DbConn,
    from: NaiveDate,
    to: NaiveDate,
    after: Option<&FeedPosition>,
    limit: i64,
) -> Result<Vec<Release>, ServiceError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Date, Text};
    let mut query = releases::table
        .filter(releases::release_date.le(to))
        .order((releases::release_date, releases::participant_id, releases::module_id))
        .select(ReleaseRow::as_select())
        .limit(limit)
        .into_boxed();
    // After a position inside the range, the row value alone is the lower
    // bound: given `release_date >= from` as well, SQLite seeks on that and
    // scans from the start of the range on every page, so a day's feed cost
    // grew with the square of its size (22.7 s for 508 pages at 1,000,000
    // learners in the benchmark).
    if after.is_none_or(|a| a.release_date < from) {
        query = query.filter(releases::release_date.ge(from));
    }
    if let Some(after) = after {
        // A row-value comparison: both SQLite and PostgreSQL seek the index
        // straight to it, where the equivalent OR chain scans from `from`.
        query = query.filter(
            sql::<Bool>("(release_date, participant_id, module_id) > (")
                .bind::<Date, _>(after.release_date)
                .sql(", ")
                .bind::<Text, _>(after.participant_id.clone())
                .sql(", ")
                .bind::<Text, _>(after.module_id.clone())
                .sql(")"),
        );
    }
    Ok(query.load::<ReleaseRow>(conn)?.into_iter().map(Release::from).collect())
}

const CURRICULUM_ROW: &str = "curriculum";

/// The curriculum the stored feed was computed with, if recorded.
pub fn stored_curriculum(conn: &mut DbConn) -> Result<Option<String>, ServiceError> {
    Ok(curriculum_state::table.find(CURRICULUM_ROW).select(curriculum_state::canonical).first(conn).optional()?)
}

pub fn save_curriculum(conn: &mut DbConn, canonical: &str, now: NaiveDateTime) -> Result<(), ServiceError> {
    diesel::delete(curriculum_state::table.find(CURRICULUM_ROW)).execute(conn)?;
    diesel::insert_into(curriculum_state::table)
        .values((
            curriculum_state::name.eq(CURRICULUM_ROW),
            curriculum_state::canonical.eq(canonical),
            curriculum_state::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
