//! The reads: a learner's release state (GetReleaseState), the release
//! feed (ListReleases) and the curriculum (GetCurriculum).

use super::{ContentRelease, learner_in_reach, permit};
use crate::convert;
use crate::domain::release;
use crate::domain::state::{self, Known};
use crate::domain::{Curriculum, Learner, policy};
use crate::store::{self, Progress};
use chrono::NaiveDate;
use std::sync::Arc;
use steplab_platform::Caller;
use steplab_platform::error::ServiceError;
use steplab_platform::paging::{self, Pages};
use steplab_proto::steplab::content::v1 as pb;

/// A learner's release state on `as_of` (GetReleaseState's answer), from
/// what [`store::load_learner_with_progress`] read.
pub(super) fn release_state_of(
    curriculum: &Curriculum,
    learner: &Learner,
    progress: &Progress,
    as_of: NaiveDate,
) -> pb::GetReleaseStateResponse {
    let programme = curriculum.programme(learner.programme);
    let schedule = release::schedule(programme, learner.facts());
    let known = Known {
        curriculum: programme,
        schedule: &schedule,
        holds: &learner.holds,
        revocations: &learner.revocations,
        accesses: &progress.accesses,
        attendances: &progress.attendances,
    };
    let state = state::release_state(&known, as_of);
    convert::release_state(learner.participant_id.clone(), learner.programme, learner.release_start, &state)
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
            .read_point(move |conn| {
                // One statement: the learner, their facts and their progress.
                let found = store::load_learner_with_progress(conn, &query.participant_id)?;
                let (learner, progress) = match found {
                    Some((learner, progress)) => (Some(learner), progress),
                    None => (None, Progress::default()),
                };
                let learner = learner_in_reach(
                    &caller,
                    "GetReleaseState",
                    learner,
                    &query.participant_id,
                    today,
                    policy::may_read,
                )?;
                Ok(release_state_of(&curriculum, &learner, &progress, as_of))
            })
            .await
    }

    pub async fn list_releases(
        &self,
        caller: Caller,
        req: pb::ListReleasesRequest,
    ) -> Result<pb::ListReleasesResponse, ServiceError> {
        permit(&caller, "ListReleases", policy::may_list_releases(&caller))?;
        let pages = Pages::of(&caller.sub, &req);
        let query = convert::list_releases(&req, &pages)?;
        self.db
            .read(move |conn| {
                // One row more than asked says whether another page follows.
                let mut rows =
                    store::list_releases(conn, query.from, query.to, query.after.as_ref(), query.page_size + 1)?;
                let next = paging::take_page(&mut rows, query.page_size, convert::feed_key);
                Ok(pb::ListReleasesResponse {
                    releases: rows.into_iter().map(convert::release).collect(),
                    next_page_token: pages.token(next.as_deref()),
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
