//! The reads: a learner's release state (GetReleaseState), the curriculum
//! (GetCurriculum) and the release feed (ListReleases) with its page tokens.

use super::progress::{attendance, module_ref};
use super::{hold_kind_to_proto, id, programme_to_proto};
use crate::domain::feed::{FeedPosition, Release};
use crate::domain::release::ScheduledModule;
use crate::domain::state::ReleaseState;
use crate::domain::{Event, EventKind, Programme, ProgrammeCurriculum};
use chrono::NaiveDate;
use steplab_platform::date;
use steplab_platform::paging::{self, Pages};
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::content::v1 as pb;

/// A validated GetReleaseState.
#[derive(Debug, Clone)]
pub struct StateQuery {
    pub participant_id: String,
    /// `None`: today.
    pub as_of: Option<NaiveDate>,
}

pub fn get_release_state(req: &pb::GetReleaseStateRequest) -> Result<StateQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
    v.finish(|| Some(StateQuery { participant_id: participant_id?, as_of: as_of? }))
}

/// A validated ListReleases.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub page_size: i64,
    pub after: Option<FeedPosition>,
}

/// The position after `last`, for a page token (which binds it to the range
/// and the caller and hides it: see `steplab_platform::paging`).
pub fn feed_key(last: &Release) -> String {
    let parts = [last.release_date.to_string(), last.participant_id.clone(), last.module_id.clone()];
    // Serialising three strings cannot fail; an empty key is refused when it
    // comes back, never read as another position.
    serde_json::to_string(&parts).unwrap_or_default()
}

fn feed_position(key: &str) -> Result<FeedPosition, FieldViolation> {
    // The token's MAC held: a key this build cannot read is an older build's.
    let older = || FieldViolation::new("page_token", "is from an older version: start again without page_token");
    let parts: Vec<String> = serde_json::from_str(key).map_err(|_| older())?;
    let [release_date, participant_id, module_id] = <[String; 3]>::try_from(parts).map_err(|_| older())?;
    let release_date = NaiveDate::parse_from_str(&release_date, "%Y-%m-%d").map_err(|_| older())?;
    Ok(FeedPosition { release_date, participant_id, module_id })
}

/// `pages` are the request's page tokens (bound to its range and caller).
pub fn list_releases(req: &pb::ListReleasesRequest, pages: &Pages) -> Result<FeedQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let from = v.check(date::required("start_date", req.start_date.as_ref()));
    let to = v.check(date::required("end_date", req.end_date.as_ref()));
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        v.push(FieldViolation::new(
            "end_date",
            format!("{to} is before from ({from}): the range is [from, to], both included"),
        ));
    }
    let page_size = v.check(paging::page_size(req.page_size));
    let after = v.check(pages.after(&req.page_token).and_then(|key| key.as_deref().map(feed_position).transpose()));
    v.finish(|| Some(FeedQuery { from: from?, to: to?, page_size: page_size?, after: after? }))
}

fn event_kind_to_proto(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Clinic => pb::EventKind::Clinic,
        EventKind::Conference => pb::EventKind::Conference,
    }
}

fn released_module(m: &ScheduledModule<'_>) -> pb::ReleasedModule {
    pb::ReleasedModule {
        module_id: m.module.module_id.clone(),
        title: m.module.title.clone(),
        strand: m.module.strand.clone(),
        release_date: date::to_proto_opt(m.release_date),
        optional_module: m.optional,
    }
}

/// The GetReleaseState answer.
pub fn release_state(
    participant_id: String,
    programme: Programme,
    release_start: NaiveDate,
    state: &ReleaseState<'_>,
) -> pb::GetReleaseStateResponse {
    pb::GetReleaseStateResponse {
        participant_id,
        as_of: Some(date::to_proto(state.as_of)),
        programme: programme_to_proto(programme) as i32,
        release_start: Some(date::to_proto(release_start)),
        access: if state.access_granted { pb::Access::Granted } else { pb::Access::Revoked } as i32,
        released_modules: state.released.iter().map(released_module).collect(),
        active_holds: state
            .active_holds
            .iter()
            .map(|h| pb::Hold {
                hold_id: h.hold_id.clone(),
                kind: hold_kind_to_proto(h.kind) as i32,
                start_date: Some(date::to_proto(h.from)),
                until: Some(date::to_proto(h.until)),
            })
            .collect(),
        next_module: state.next.as_ref().map(|m| pb::UpcomingModule {
            module_id: m.module.module_id.clone(),
            title: m.module.title.clone(),
            strand: m.module.strand.clone(),
            release_date: date::to_proto_opt(m.release_date),
            optional_module: m.optional,
        }),
        resume_module: state.resume.map(module_ref),
        last_accessed_module_id: state.last_accessed_module_id.clone().unwrap_or_default(),
        attendances: state.attendances.iter().map(attendance).collect(),
        planned_end_date: date::to_proto_opt(state.planned_end),
        schedule: state.schedule.0.standard_schedule_id().to_owned(),
        schedule_since: date::to_proto_opt(state.schedule.1),
    }
}

fn event(e: &Event) -> pb::Event {
    pb::Event {
        event_id: e.event_id.clone(),
        title: e.title.clone(),
        kind: event_kind_to_proto(e.kind) as i32,
        sequence: i32::try_from(e.sequence).unwrap_or(i32::MAX),
    }
}

/// The GetCurriculum answer.
pub fn curriculum(c: &ProgrammeCurriculum) -> pb::GetCurriculumResponse {
    pb::GetCurriculumResponse {
        programme: programme_to_proto(c.programme) as i32,
        modules: c
            .modules
            .iter()
            .map(|m| pb::Module {
                module_id: m.module_id.clone(),
                title: m.title.clone(),
                strand: m.strand.clone(),
                term: m.term,
                // Offsets are checked to lie within MAX_LENGTH_DAYS at load.
                release_offset_days: i32::try_from(m.release_offset_days).unwrap_or(i32::MAX),
            })
            .collect(),
        clinics: c.clinics.iter().map(event).collect(),
        conferences: c.conferences.iter().map(event).collect(),
        length_days: i32::try_from(c.length_days).unwrap_or(i32::MAX),
    }
}

pub fn release(release: Release) -> pb::Release {
    pb::Release {
        participant_id: release.participant_id,
        module_id: release.module_id,
        release_date: Some(date::to_proto(release.release_date)),
        optional_module: release.optional,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::{date, fields};

    fn row(day: &str, participant: &str, module: &str) -> Release {
        Release {
            participant_id: participant.into(),
            module_id: module.into(),
            release_date: NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date"),
            optional: false,
        }
    }

    #[test]
    fn r4_a_feed_token_round_trips_for_its_own_range_only() {
        let last = row("2026-09-15", "p:1", "ect-02");
        let list = |token: String, to_day: i32| pb::ListReleasesRequest {
            start_date: date(2026, 9, 1),
            end_date: date(2026, 9, to_day),
            page_size: 0,
            page_token: token,
        };
        let read = |req: &pb::ListReleasesRequest| list_releases(req, &Pages::of("svc", req));
        let token = Pages::of("svc", &list(String::new(), 30)).token(Some(&feed_key(&last)));
        let query = read(&list(token.clone(), 30)).expect("same range");
        assert_eq!(
            query.after,
            Some(FeedPosition {
                release_date: last.release_date,
                participant_id: "p:1".into(),
                module_id: "ect-02".into(),
            })
        );
        assert_eq!(query.page_size, paging::DEFAULT_PAGE_SIZE);
        assert_eq!(fields(read(&list(token, 29)).expect_err("other range")), ["page_token"]);
        assert_eq!(fields(read(&list("r1.zz".into(), 30)).expect_err("forged")), ["page_token"]);
    }

    #[test]
    fn r4_page_sizes_default_to_50_clamp_at_1000_and_refuse_negatives() {
        let req = |page_size| pb::ListReleasesRequest {
            start_date: date(2026, 9, 1),
            end_date: date(2026, 9, 1),
            page_size,
            page_token: String::new(),
        };
        let read = |req: &pb::ListReleasesRequest| list_releases(req, &Pages::of("svc", req));
        assert_eq!(read(&req(0)).expect("ok").page_size, 50);
        assert_eq!(read(&req(5000)).expect("ok").page_size, 1000);
        assert_eq!(fields(read(&req(-1)).expect_err("negative")), ["page_size"]);
    }

    #[test]
    fn r4_a_range_ending_before_it_starts_is_refused() {
        let req = pb::ListReleasesRequest {
            start_date: date(2026, 9, 2),
            end_date: date(2026, 9, 1),
            page_size: 0,
            page_token: String::new(),
        };
        assert_eq!(fields(list_releases(&req, &Pages::of("svc", &req)).expect_err("backwards")), ["end_date"]);
    }
}
