//! The reads: a learner's release state (GetReleaseState), the release
//! feed (ListReleases) and the curriculum (GetCurriculum).

use super::{ContentRelease, learner_in_reach, permit};
use crate::convert;
use crate::domain::release;
use crate::domain::state::{self, Known};
use crate::domain::{Curriculum, Learner, policy};
use crate::store;
use chrono::NaiveDate;
use std::sync::Arc;
use steplab_platform::Caller;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::content::v1 as pb;

/// A learner's release state on `as_of` (GetReleaseState's answer), read
/// in the caller's transaction.
pub(super) fn release_state_of(
    conn: &mut DbConn,
    curriculum: &Curriculum,
    learner: &Learner,
    as_of: NaiveDate,
) -> Result<pb::GetReleaseStateResponse, ServiceError> {
    let accesses = store::module_accesses(conn, &learner.participant_id)?;
    let attendances = store::attendances(conn, &learner.participant_id)?;
    let programme = curriculum.programme(learner.programme);
    let schedule = release::schedule(programme, learner.facts());
    let known = Known {
        curriculum: programme,
        schedule: &schedule,
        holds: &learner.holds,
        revocations: &learner.revocations,
        accesses: &accesses,
        attendances: &attendances,
    };
    let state = state::release_state(&known, as_of);
    Ok(convert::release_state(learner.participant_id.clone(), learner.programme, learner.release_start, &state))
}

impl ContentRelease {
    pub async fn get_release_state(
        &self,
        caller: Caller,
        req: pb::GetReleaseStateRequest,
    ) -> Result<pb::GetReleaseStateResponse, ServiceError> {
        let query = convert::get_release_state(&req)?;
        let today = self.clock.today();
        let as_of = query.as_of.unwrap_or(today);
        let curriculum = Arc::clone(&self.curriculum);
        self.db
            .read(move |conn| {
                let found = store::load_learner(conn, &query.participant_id)?;
                let learner = learner_in_reach(
                    &caller,
                    "GetReleaseState",
                    found,
                    &query.participant_id,
                    today,
                    policy::may_read,
                )?;
                release_state_of(conn, &curriculum, &learner, as_of)
            })
            .await
    }

    pub async fn list_releases(
        &self,
        caller: Caller,
        req: pb::ListReleasesRequest,
    ) -> Result<pb::ListReleasesResponse, ServiceError> {
        permit(&caller, "ListReleases", policy::may_list_releases(&caller))?;
        let query = convert::list_releases(&req)?;
        self.db
            .read(move |conn| {
                // One row more than asked says whether another page follows.
                let mut rows =
                    store::list_releases(conn, query.from, query.to, query.after.as_ref(), query.page_size + 1)?;
                let more = rows.len() as i64 > query.page_size;
                rows.truncate(usize::try_from(query.page_size).unwrap_or(usize::MAX));
                let next_page_token = match rows.last() {
                    Some(last) if more => convert::feed_token(query.from, query.to, last),
                    _ => String::new(),
                };
                Ok(pb::ListReleasesResponse {
                    releases: rows.into_iter().map(convert::release).collect(),
                    next_page_token,
                })
            })
            .await
    }

    pub fn get_curriculum(&self, req: pb::GetCurriculumRequest) -> Result<pb::GetCurriculumResponse, ServiceError> {
        let programme =
            convert::programme("programme", req.programme).map_err(|v| ServiceError::InvalidArgument(v.into()))?;
        Ok(convert::curriculum(self.curriculum.programme(programme)))
    }
}
