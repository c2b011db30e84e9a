//! Progress (R3) and attendance (D11): where a learner picks up, which module
//! accesses and event attendances are accepted. Attendance is kept whatever
//! holds come and go, so a conference attended before a deferral still counts
//! after the return.

use super::release::{Schedule, has_access_on};
use super::{Event, EventKind, Module, ProgrammeCurriculum, Refusal, Revocation, RuleViolation};
use chrono::NaiveDate;
use steplab_platform::error::Missing;

/// One recorded opening of a module; `seq` orders records made the same day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleAccess {
    pub module_id: String,
    pub accessed_on: NaiveDate,
    pub seq: i64,
}

/// One attended clinic or conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendance {
    pub event_id: String,
    pub attended_on: NaiveDate,
}

/// R3: the module with the latest access on or before `as_of` (ties: the
/// last recorded).
pub fn last_accessed(accesses: &[ModuleAccess], as_of: NaiveDate) -> Option<&ModuleAccess> {
    accesses.iter().filter(|a| a.accessed_on <= as_of).max_by_key(|a| (a.accessed_on, a.seq))
}

/// R3, P6, D5: where the learner picks up on `as_of`: the last accessed
/// module, or the first released one when nothing was accessed yet.
pub fn resume_module<'c>(
    curriculum: &'c ProgrammeCurriculum,
    schedule: &Schedule<'c>,
    accesses: &[ModuleAccess],
    as_of: NaiveDate,
) -> Option<&'c Module> {
    match last_accessed(accesses, as_of) {
        // A module dropped from a later curriculum cannot be resumed: fall
        // back to the first released one.
        Some(access) => {
            curriculum.module(&access.module_id).or_else(|| schedule.released_by(as_of).next().map(|m| m.module))
        }
        None => schedule.released_by(as_of).next().map(|m| m.module),
    }
}

/// R3: a module may be recorded as opened on a day it was released and
/// access was granted, not after today.
pub fn check_module_access<'c>(
    curriculum: &'c ProgrammeCurriculum,
    schedule: &Schedule<'c>,
    revocations: &[Revocation],
    module_id: &str,
    accessed_on: NaiveDate,
    today: NaiveDate,
) -> Result<&'c Module, Refusal> {
    if accessed_on > today {
        return Err(RuleViolation::new(
            "ACCESSED_ON_IN_FUTURE",
            format!("accessed_on {accessed_on} is after today ({today}): record an access once it has happened"),
        )
        .with("module_id", module_id)
        .with("accessed_on", accessed_on)
        .with("today", today)
        .into());
    }
    let module = curriculum.module(module_id).ok_or_else(|| {
        Refusal::NotFound(Missing::new(
            "module",
            module_id,
            format!(
                "module {module_id} is not in {}: use a module_id from GetCurriculum",
                curriculum.programme.describe()
            ),
        ))
    })?;
    if !has_access_on(revocations, accessed_on) {
        return Err(RuleViolation::new(
            "ACCESS_REVOKED",
            format!("the participant had no content access on {accessed_on} (withdrawn): nothing can be recorded for that day"),
        ).with("module_id", module_id).with("accessed_on", accessed_on)
        .into());
    }
    let released = schedule.find(module_id).and_then(|m| m.release_date).filter(|d| *d <= accessed_on);
    if released.is_none() {
        let when = match schedule.find(module_id).and_then(|m| m.release_date) {
            Some(date) => format!("it is released to them on {date}"),
            None => "it is not scheduled for them while access is revoked".to_owned(),
        };
        return Err(RuleViolation::new(
            "MODULE_NOT_RELEASED",
            format!("module {module_id} was not yet released to the participant on {accessed_on}: {when}; check the participant and the date"),
        ).with("module_id", module_id).with("accessed_on", accessed_on).with_some("release_date", schedule.find(module_id).and_then(|m| m.release_date))
        .into());
    }
    Ok(module)
}

/// What to do with an attendance record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttendanceDecision {
    /// The event was already recorded: keep and return the first record.
    AlreadyRecorded(Attendance),
    /// Store this record.
    Record(Attendance),
}

/// D11: clinics in any order, conference `n` only once conference `n - 1`
/// is recorded on or before it; never on a day without access; not after
/// today. Holds do not matter: attendance outlives a deferral.
pub fn check_attendance(
    curriculum: &ProgrammeCurriculum,
    attended: &[Attendance],
    revocations: &[Revocation],
    event_id: &str,
    attended_on: NaiveDate,
    today: NaiveDate,
) -> Result<AttendanceDecision, Refusal> {
    if attended_on > today {
        return Err(RuleViolation::new(
            "ATTENDED_ON_IN_FUTURE",
            format!(
                "attended_on {attended_on} is after today ({today}): record attendance once the event has happened"
            ),
        )
        .with("event_id", event_id)
        .with("attended_on", attended_on)
        .with("today", today)
        .into());
    }
    let event: &Event = curriculum.event(event_id).ok_or_else(|| {
        Refusal::NotFound(Missing::new(
            "event",
            event_id,
            format!(
                "event {event_id} is not a clinic or conference of {}: use an event_id from GetCurriculum",
                curriculum.programme.describe()
            ),
        ))
    })?;
    if let Some(first) = attended.iter().find(|a| a.event_id == event_id) {
        return Ok(AttendanceDecision::AlreadyRecorded(first.clone()));
    }
    if !has_access_on(revocations, attended_on) {
        return Err(RuleViolation::new(
            "ACCESS_REVOKED",
            format!(
                "the participant had no access on {attended_on} (withdrawn): attendance cannot be recorded for that day"
            ),
        )
        .with("event_id", event_id)
        .with("attended_on", attended_on)
        .into());
    }
    if event.kind == EventKind::Conference
        && let Some(before) = curriculum.conference_before(event)
    {
        let in_order = attended.iter().any(|a| a.event_id == before.event_id && a.attended_on <= attended_on);
        if !in_order {
            return Err(RuleViolation::new(
                "CONFERENCE_OUT_OF_ORDER",
                format!(
                    "conference {} ({}) comes after conference {} ({}), which is not recorded on or before {attended_on}: record {} first",
                    event.sequence, event.title, before.sequence, before.title, before.event_id
                ),
            ).with("event_id", &event.event_id).with("attended_on", attended_on).with("sequence", event.sequence).with("missing_event_id", &before.event_id).with("missing_sequence", before.sequence)
            .into());
        }
    }
    Ok(AttendanceDecision::Record(Attendance { event_id: event.event_id.clone(), attended_on }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::release::{ReleaseFacts, schedule};
    use crate::domain::{Curriculum, Hold, HoldKind, Programme};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn access(id: &str, on: &str, seq: i64) -> ModuleAccess {
        ModuleAccess { module_id: id.into(), accessed_on: d(on), seq }
    }

    fn attended(id: &str, on: &str) -> Attendance {
        Attendance { event_id: id.into(), attended_on: d(on) }
    }

    fn reason(refusal: Refusal) -> &'static str {
        match refusal {
            Refusal::Rule(rule) => rule.reason,
            Refusal::NotFound(_) => "NOT_FOUND",
        }
    }

    const TODAY: &str = "2027-06-01";

    #[test]
    fn r3_the_last_accessed_module_is_the_latest_access_ties_going_to_the_last_recorded() {
        let accesses = [
            access("ect-03", "2026-10-01", 1),
            access("ect-01", "2026-10-05", 2),
            access("ect-02", "2026-10-05", 3),
            access("ect-04", "2026-10-02", 4),
        ];
        let last = last_accessed(&accesses, d("2026-12-01")).map(|a| a.module_id.as_str());
        assert_eq!(last, Some("ect-02"));
        let then = last_accessed(&accesses, d("2026-10-03")).map(|a| a.module_id.as_str());
        assert_eq!(then, Some("ect-04"), "as of an earlier date");
        assert_eq!(last_accessed(&accesses, d("2026-09-01")), None);
    }

    #[test]
    fn r3_a_learner_resumes_at_the_last_module_accessed_or_else_the_first_released() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        let holds =
            [Hold { hold_id: "p".into(), kind: HoldKind::Pause, from: d("2026-10-12"), until: d("2026-11-02") }];
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &holds, revocations: &[] });
        assert_eq!(resume_module(ect, &s, &[], d("2026-08-01")), None, "nothing released");
        let first = resume_module(ect, &s, &[], d("2026-09-10")).map(|m| m.module_id.as_str());
        assert_eq!(first, Some("ect-01"));
        // P6: back from the pause, they continue from the last module they opened.
        let accesses = [access("ect-03", "2026-10-09", 1)];
        let resume = resume_module(ect, &s, &accesses, d("2026-11-02")).map(|m| m.module_id.as_str());
        assert_eq!(resume, Some("ect-03"));
    }

    #[test]
    fn r3_a_module_is_recorded_only_once_released_with_access_and_not_in_the_future() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        let revocations = [Revocation { revoked_from: d("2026-11-10"), restored_on: None }];
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &[], revocations: &revocations });
        let check = |id: &str, on: &str| {
            check_module_access(ect, &s, &revocations, id, d(on), d(TODAY)).map(|m| m.module_id.clone())
        };
        assert_eq!(check("ect-02", "2026-09-15").expect("released that day"), "ect-02");
        assert_eq!(reason(check("ect-02", "2026-09-14").expect_err("early")), "MODULE_NOT_RELEASED");
        assert_eq!(reason(check("ect-02", "2026-11-10").expect_err("withdrawn")), "ACCESS_REVOKED");
        assert_eq!(reason(check("ect-02", "2027-07-01").expect_err("future")), "ACCESSED_ON_IN_FUTURE");
        assert_eq!(reason(check("mentor-01", "2026-09-15").expect_err("other programme")), "NOT_FOUND");
    }

    #[test]
    fn d11_clinics_may_be_attended_in_any_order() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        let decision =
            check_attendance(ect, &[], &[], "ect-clinic-5", d("2026-10-01"), d(TODAY)).expect("clinic 5 first");
        assert_eq!(decision, AttendanceDecision::Record(attended("ect-clinic-5", "2026-10-01")));
        check_attendance(
            ect,
            &[attended("ect-clinic-5", "2026-10-01")],
            &[],
            "ect-clinic-2",
            d("2026-09-20"),
            d(TODAY),
        )
        .expect("clinic 2 after clinic 5, dated earlier");
    }

    #[test]
    fn d11_conferences_only_in_order() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        let err = check_attendance(ect, &[], &[], "ect-conference-2", d("2026-10-01"), d(TODAY))
            .expect_err("conference 2 before 1");
        assert_eq!(reason(err), "CONFERENCE_OUT_OF_ORDER");
        let one = [attended("ect-conference-1", "2026-10-01")];
        let err = check_attendance(ect, &one, &[], "ect-conference-2", d("2026-09-30"), d(TODAY))
            .expect_err("conference 2 dated before conference 1");
        assert_eq!(reason(err), "CONFERENCE_OUT_OF_ORDER");
        check_attendance(ect, &one, &[], "ect-conference-2", d("2026-10-01"), d(TODAY)).expect("same day is in order");
        let err = check_attendance(ect, &one, &[], "ect-conference-3", d("2026-12-01"), d(TODAY))
            .expect_err("skipping conference 2");
        assert_eq!(reason(err), "CONFERENCE_OUT_OF_ORDER");
    }

    #[test]
    fn d11_a_conference_attended_before_a_deferral_counts_after_the_return() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        // Conference 1 in October 2026, deferred Feb-Nov 2027, conference 2 in 2028:
        // holds are no input to the decision, so the first attendance stands.
        let before = [attended("ect-conference-1", "2026-10-01")];
        check_attendance(ect, &before, &[], "ect-conference-2", d("2027-12-01"), d("2028-01-10"))
            .expect("in order across the deferral");
    }

    #[test]
    fn d11_an_event_is_recorded_once_and_a_repeat_returns_the_first_record() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        let first = [attended("ect-clinic-1", "2026-10-01")];
        let decision = check_attendance(ect, &first, &[], "ect-clinic-1", d("2026-10-08"), d(TODAY)).expect("repeat");
        assert_eq!(decision, AttendanceDecision::AlreadyRecorded(first[0].clone()));
    }

    #[test]
    fn d11_attendance_is_refused_without_access_in_the_future_or_for_another_programme() {
        let c = Curriculum::built_in().expect("curriculum");
        let ect = c.programme(Programme::Ect);
        let revocations = [Revocation { revoked_from: d("2026-11-01"), restored_on: Some(d("2027-01-01")) }];
        let err =
            check_attendance(ect, &[], &revocations, "ect-clinic-1", d("2026-12-01"), d(TODAY)).expect_err("withdrawn");
        assert_eq!(reason(err), "ACCESS_REVOKED");
        check_attendance(ect, &[], &revocations, "ect-clinic-1", d("2027-01-01"), d(TODAY)).expect("reinstated");
        let err = check_attendance(ect, &[], &[], "ect-clinic-1", d("2027-07-01"), d(TODAY)).expect_err("future");
        assert_eq!(reason(err), "ATTENDED_ON_IN_FUTURE");
        let err =
            check_attendance(ect, &[], &[], "mentor-clinic-1", d("2026-10-01"), d(TODAY)).expect_err("mentor event");
        assert_eq!(reason(err), "NOT_FOUND");
    }
}
