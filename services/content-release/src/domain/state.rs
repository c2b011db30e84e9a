//! What a learner has on one date (GetReleaseState): the schedule read at
//! `as_of`, with access, holds in effect, the next module, where to resume
//! and attendance. Any `as_of`, past or future, gives the answer the known
//! facts imply for that day (R2).

use super::progress::{self, Attendance, ModuleAccess};
use super::release::{self, Schedule, ScheduledModule};
use super::term::TermSchedule;
use super::{Hold, Module, ProgrammeCurriculum, Revocation};
use chrono::NaiveDate;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseState<'c> {
    pub as_of: NaiveDate,
    /// W5, W9: access on `as_of`.
    pub access_granted: bool,
    /// Released on or before `as_of`, in release order (kept while revoked).
    pub released: Vec<ScheduledModule<'c>>,
    pub active_holds: Vec<Hold>,
    /// Unset when everything is released or access is revoked on `as_of`.
    pub next: Option<ScheduledModule<'c>>,
    pub resume: Option<&'c Module>,
    pub last_accessed_module_id: Option<String>,
    pub attendances: Vec<Attendance>,
    /// Unset while access is revoked on `as_of`.
    pub planned_end: Option<NaiveDate>,
    /// D5, W9: the schedule on `as_of` and the return that moved them onto it.
    pub schedule: (TermSchedule, Option<NaiveDate>),
}

/// Everything known about one learner, read at `as_of`.
pub struct Known<'a, 'c> {
    pub curriculum: &'c ProgrammeCurriculum,
    pub schedule: &'a Schedule<'c>,
    pub holds: &'a [Hold],
    pub revocations: &'a [Revocation],
    pub accesses: &'a [ModuleAccess],
    pub attendances: &'a [Attendance],
}

pub fn release_state<'c>(known: &Known<'_, 'c>, as_of: NaiveDate) -> ReleaseState<'c> {
    let access_granted = release::has_access_on(known.revocations, as_of);
    ReleaseState {
        as_of,
        access_granted,
        released: known.schedule.released_by(as_of).cloned().collect(),
        active_holds: super::holds::active_holds(known.holds, as_of).into_iter().cloned().collect(),
        next: known.schedule.next_after(as_of).filter(|_| access_granted).cloned(),
        resume: progress::resume_module(known.curriculum, known.schedule, known.accesses, as_of),
        last_accessed_module_id: progress::last_accessed(known.accesses, as_of).map(|a| a.module_id.clone()),
        attendances: known.attendances.iter().filter(|a| a.attended_on <= as_of).cloned().collect(),
        planned_end: known.schedule.planned_end().filter(|_| access_granted),
        schedule: known.schedule.term_schedule_on(as_of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::release::{ReleaseFacts, schedule};
    use crate::domain::{Curriculum, HoldKind, Programme};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    struct Fixture {
        curriculum: Curriculum,
        holds: Vec<Hold>,
        revocations: Vec<Revocation>,
        accesses: Vec<ModuleAccess>,
        attendances: Vec<Attendance>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                curriculum: Curriculum::built_in().expect("curriculum"),
                holds: vec![],
                revocations: vec![],
                accesses: vec![],
                attendances: vec![],
            }
        }

        fn at(&self, as_of: &str) -> ReleaseState<'_> {
            let ect = self.curriculum.programme(Programme::Ect);
            let s = schedule(
                ect,
                ReleaseFacts { release_start: d("2026-09-01"), holds: &self.holds, revocations: &self.revocations },
            );
            let known = Known {
                curriculum: ect,
                schedule: &s,
                holds: &self.holds,
                revocations: &self.revocations,
                accesses: &self.accesses,
                attendances: &self.attendances,
            };
            release_state(&known, d(as_of))
        }
    }

    fn ids(state: &ReleaseState<'_>) -> Vec<String> {
        state.released.iter().map(|m| m.module.module_id.clone()).collect()
    }

    #[test]
    fn r2_the_state_on_a_date_lists_released_modules_and_the_next_one() {
        let f = Fixture::new();
        let state = f.at("2026-09-20");
        assert_eq!(ids(&state), ["ect-01", "ect-02"]);
        let next = state.next.expect("next");
        assert_eq!((next.module.module_id.as_str(), next.release_date), ("ect-03", Some(d("2026-09-29"))));
        assert!(state.access_granted);
        assert_eq!(state.planned_end, Some(d("2028-08-29")));
        assert_eq!(
            state.resume.map(|m| m.module_id.as_str()),
            Some("ect-01"),
            "nothing accessed: start at the first module"
        );
        let done = f.at("2030-01-01");
        assert_eq!(done.released.len(), 42);
        assert_eq!(done.next, None, "complete");
        assert!(f.at("2026-08-31").released.is_empty());
    }

    #[test]
    fn p6_during_a_pause_the_hold_is_active_and_the_next_module_is_optional_at_its_end() {
        let mut f = Fixture::new();
        f.holds.push(Hold {
            hold_id: "pause-1".into(),
            kind: HoldKind::Pause,
            from: d("2026-10-12"),
            until: d("2026-11-02"),
        });
        let state = f.at("2026-10-20");
        assert_eq!(state.active_holds.len(), 1);
        let next = state.next.expect("next");
        assert_eq!(next.module.module_id, "ect-04");
        assert_eq!(next.release_date, Some(d("2026-11-02")));
        assert!(next.optional);
        assert!(f.at("2026-11-02").active_holds.is_empty(), "until is free");
    }

    #[test]
    fn w5_while_revoked_there_is_no_next_module_nor_planned_end_but_history_stays() {
        let mut f = Fixture::new();
        f.revocations.push(Revocation { revoked_from: d("2026-11-10"), restored_on: Some(d("2027-02-09")) });
        let state = f.at("2026-12-01");
        assert!(!state.access_granted);
        assert_eq!(state.released.len(), 5, "released before the withdrawal");
        assert_eq!(state.next, None);
        assert_eq!(state.planned_end, None);
        let back = f.at("2027-02-09");
        assert!(back.access_granted);
        // W9, D5: the term days still to run when access was revoked run
        // from the reinstatement on.
        let end = back.planned_end.expect("planned end");
        let still_to_run = crate::domain::term::term_days_between(d("2026-11-10"), d("2028-08-29"));
        assert_eq!(crate::domain::term::term_days_between(d("2027-02-09"), end), still_to_run);
        assert!(crate::domain::term::is_term_day(end));
    }

    #[test]
    fn r3_the_state_names_the_last_accessed_module_and_attendance_up_to_the_date() {
        let mut f = Fixture::new();
        f.accesses.push(ModuleAccess { module_id: "ect-02".into(), accessed_on: d("2026-09-16"), seq: 1 });
        f.attendances.push(Attendance { event_id: "ect-clinic-1".into(), attended_on: d("2026-10-01") });
        let before = f.at("2026-09-15");
        assert_eq!(before.last_accessed_module_id, None);
        assert!(before.attendances.is_empty());
        let after = f.at("2026-10-01");
        assert_eq!(after.last_accessed_module_id.as_deref(), Some("ect-02"));
        assert_eq!(after.resume.map(|m| m.module_id.as_str()), Some("ect-02"));
        assert_eq!(after.attendances.len(), 1);
    }
}
