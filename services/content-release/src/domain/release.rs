//! The release engine (R2): which modules a learner has on any date, as a
//! pure function of the release start, the curriculum, the holds and the
//! access revocations. It never looks at "today": the same facts give the
//! same schedule whatever date is asked about, past or future.
//!
//! The schedule runs on a programme clock that starts on the release start
//! and counts one day per calendar day, except that it stands still on days
//! of a deferral (D4, D5, D8) or of revoked access (W5, W9) on or after the
//! release start. Module `n` falls due when the clock reaches its offset, so
//! everything not yet released moves later by the length of the stop and so
//! does the planned end: the learner keeps the full entitlement. A deferral
//! that starts before the release start thus starts the programme on its
//! return date (D8); access revoked for good stops the clock for good.
//!
//! Pauses (P5, P6) do not stop the clock. A module that falls due on a held
//! or revoked day is released on the first day that is neither, marked
//! optional when it fell due during a pause (no catch-up required); the
//! modules due after the pause keep their dates and the planned end does not
//! move.

use super::period::{self, Period};
use super::{Hold, HoldKind, Module, ProgrammeCurriculum, Revocation};
use chrono::{Days, NaiveDate};

/// What the schedule of one learner depends on.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseFacts<'a> {
    pub release_start: NaiveDate,
    pub holds: &'a [Hold],
    pub revocations: &'a [Revocation],
}

/// One module of a learner's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledModule<'c> {
    pub module: &'c Module,
    /// Its place in the curriculum, from 0.
    pub position: usize,
    /// The day it becomes available; `None` when access is revoked for good
    /// before then.
    pub release_date: Option<NaiveDate>,
    /// It fell due during a pause and came at the pause end (P6).
    pub optional: bool,
}

/// A learner's whole schedule, in release order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule<'c> {
    modules: Vec<ScheduledModule<'c>>,
    planned_end: Option<NaiveDate>,
}

/// Computes a learner's schedule (R2).
pub fn schedule<'c>(curriculum: &'c ProgrammeCurriculum, facts: ReleaseFacts<'_>) -> Schedule<'c> {
    let start = facts.release_start;
    let revoked = facts.revocations.iter().map(|r| Period::new(r.revoked_from, r.restored_on));
    let deferred = facts.holds.iter().filter(|h| h.kind == HoldKind::Deferral).map(hold_period);
    let paused: Vec<Period> =
        facts.holds.iter().filter(|h| h.kind == HoldKind::Pause).map(hold_period).filter(|p| !p.is_empty()).collect();
    // Days the programme clock stands still: only those on or after the
    // release start matter, a stop before it moves nothing.
    let stopped = period::union(revoked.clone().chain(deferred.clone()).filter_map(|p| p.clipped_to_start_at(start)));
    // Days on which nothing is released at all.
    let closed = period::union(revoked.chain(deferred).chain(paused.iter().copied()));

    let mut modules: Vec<ScheduledModule<'c>> = curriculum
        .modules
        .iter()
        .enumerate()
        .map(|(position, module)| {
            let due = clock_date(start, module.release_offset_days, &stopped);
            let optional = due.is_some_and(|day| paused.iter().any(|p| p.contains(day)));
            let release_date = due.and_then(|day| period::first_open_day(day, &closed));
            ScheduledModule { module, position, release_date, optional }
        })
        .collect();
    // Release order: by date, curriculum order among modules released the
    // same day (the catch-up at a pause end); never-released ones last.
    modules.sort_by_key(|m| (m.release_date.is_none(), m.release_date, m.position));
    Schedule { modules, planned_end: clock_date(start, curriculum.length_days, &stopped) }
}

fn hold_period(hold: &Hold) -> Period {
    Period::new(hold.from, Some(hold.until))
}

/// The day the programme clock, started on `start`, reaches `offset` days,
/// standing still on the `stopped` days (a [`period::union`] of days on or
/// after `start`); `None` if it never does.
fn clock_date(start: NaiveDate, offset: i64, stopped: &[Period]) -> Option<NaiveDate> {
    let mut day = start.checked_add_days(Days::new(u64::try_from(offset).ok()?))?;
    for stop in stopped {
        if stop.from > day {
            break;
        }
        // The clock reached `day` only after standing still through `stop`.
        let until = stop.until?;
        let length = u64::try_from((until - stop.from).num_days()).ok()?;
        day = day.checked_add_days(Days::new(length))?;
    }
    Some(day)
}

impl<'c> Schedule<'c> {
    /// Every module in release order; those never released come last.
    pub fn modules(&self) -> &[ScheduledModule<'c>] {
        &self.modules
    }

    /// The modules released on or before `as_of`, in release order.
    pub fn released_by(&self, as_of: NaiveDate) -> impl Iterator<Item = &ScheduledModule<'c>> {
        self.modules.iter().filter(move |m| m.release_date.is_some_and(|d| d <= as_of))
    }

    /// The next module released after `as_of`, if any is still to come.
    pub fn next_after(&self, as_of: NaiveDate) -> Option<&ScheduledModule<'c>> {
        self.modules.iter().find(|m| m.release_date.is_some_and(|d| d > as_of))
    }

    pub fn find(&self, module_id: &str) -> Option<&ScheduledModule<'c>> {
        self.modules.iter().find(|m| m.module.module_id == module_id)
    }

    /// The release start plus the programme's length, moved later by
    /// deferrals and revoked periods (never by pauses); `None` while access
    /// is revoked for good before then.
    pub fn planned_end(&self) -> Option<NaiveDate> {
        self.planned_end
    }
}

/// W5, W9: whether the learner may use content on `day`.
pub fn has_access_on(revocations: &[Revocation], day: NaiveDate) -> bool {
    !revocations.iter().any(|r| Period::new(r.revoked_from, r.restored_on).contains(day))
}

/// The holds in effect on `as_of`, ordered by `from`.
pub fn active_holds(holds: &[Hold], as_of: NaiveDate) -> Vec<&Hold> {
    let mut active: Vec<&Hold> = holds.iter().filter(|h| h.is_active_on(as_of)).collect();
    active.sort_by(|a, b| (a.from, &a.hold_id).cmp(&(b.from, &b.hold_id)));
    active
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Curriculum, Programme};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn curriculum() -> Curriculum {
        Curriculum::built_in().expect("built-in curriculum")
    }

    fn hold(id: &str, kind: HoldKind, from: &str, until: &str) -> Hold {
        Hold { hold_id: id.into(), kind, from: d(from), until: d(until) }
    }

    fn revoked(from: &str, restored: Option<&str>) -> Revocation {
        Revocation { revoked_from: d(from), restored_on: restored.map(d) }
    }

    /// (module_id, release_date, optional) in release order.
    fn plan(
        c: &Curriculum,
        start: &str,
        holds: &[Hold],
        revocations: &[Revocation],
    ) -> Vec<(String, Option<NaiveDate>, bool)> {
        schedule(c.programme(Programme::Ect), ReleaseFacts { release_start: d(start), holds, revocations })
            .modules()
            .iter()
            .map(|m| (m.module.module_id.clone(), m.release_date, m.optional))
            .collect()
    }

    fn date_of(plan: &[(String, Option<NaiveDate>, bool)], id: &str) -> Option<NaiveDate> {
        plan.iter().find(|(m, _, _)| m == id).and_then(|(_, d, _)| *d)
    }

    fn add(day: NaiveDate, days: i64) -> NaiveDate {
        day + chrono::Duration::days(days)
    }

    #[test]
    fn r2_without_holds_each_module_is_due_its_offset_after_the_release_start() {
        let c = curriculum();
        let ect = c.programme(Programme::Ect);
        let p = plan(&c, "2026-09-01", &[], &[]);
        for (module, (id, date, optional)) in ect.modules.iter().zip(&p) {
            assert_eq!(id, &module.module_id);
            assert_eq!(*date, Some(add(d("2026-09-01"), module.release_offset_days)));
            assert!(!optional);
        }
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &[], revocations: &[] });
        assert_eq!(s.planned_end(), Some(add(d("2026-09-01"), ect.length_days)));
    }

    #[test]
    fn r2_the_answer_does_not_depend_on_the_date_asked_about() {
        let c = curriculum();
        let holds = [
            hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02"),
            hold("d", HoldKind::Deferral, "2027-02-01", "2027-06-01"),
        ];
        let revocations = [revoked("2027-09-10", Some("2027-10-01"))];
        let facts = ReleaseFacts { release_start: d("2026-09-01"), holds: &holds, revocations: &revocations };
        let ect = c.programme(Programme::Ect);
        let once = schedule(ect, facts);
        assert_eq!(once, schedule(ect, facts), "same facts, same schedule");
        // Released-by is a growing prefix of one schedule, for any as_of.
        let mut previous = 0;
        let mut day = d("2026-08-01");
        while day < d("2029-12-31") {
            let released: Vec<_> = once.released_by(day).cloned().collect();
            assert!(released.len() >= previous);
            assert_eq!(released.as_slice(), &once.modules()[..released.len()]);
            previous = released.len();
            day = add(day, 5);
        }
        assert_eq!(previous, ect.modules.len());
    }

    #[test]
    fn p5_nothing_new_is_released_during_a_pause() {
        let c = curriculum();
        // A 3-week pause from 12 October 2026 (ect-04 was due 13 Oct, ect-05 27 Oct).
        let holds = [hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02")];
        let p = plan(&c, "2026-09-01", &holds, &[]);
        for (_, date, _) in &p {
            let date = date.expect("released");
            assert!(!(d("2026-10-12") <= date && date < d("2026-11-02")), "{date}");
        }
    }

    #[test]
    fn p6_modules_due_during_a_pause_are_released_at_its_end_marked_optional() {
        let c = curriculum();
        let holds = [hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02")];
        let p = plan(&c, "2026-09-01", &holds, &[]);
        assert_eq!(
            p[3..5],
            [("ect-04".to_string(), Some(d("2026-11-02")), true), ("ect-05".to_string(), Some(d("2026-11-02")), true),]
        );
        assert_eq!(p[5], ("ect-06".to_string(), Some(d("2026-11-10")), false));
    }

    #[test]
    fn p6_a_pause_moves_neither_later_modules_nor_the_planned_end() {
        let c = curriculum();
        let holds = [hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02")];
        let paused = plan(&c, "2026-09-01", &holds, &[]);
        let plain = plan(&c, "2026-09-01", &[], &[]);
        assert_eq!(date_of(&paused, "ect-42"), date_of(&plain, "ect-42"));
        assert_eq!(paused[5..], plain[5..]);
        let ect = c.programme(Programme::Ect);
        let facts = |holds| ReleaseFacts { release_start: d("2026-09-01"), holds, revocations: &[] };
        assert_eq!(schedule(ect, facts(&holds)).planned_end(), schedule(ect, facts(&[])).planned_end());
    }

    #[test]
    fn p6_a_pause_ended_early_releases_its_modules_on_the_new_end() {
        let c = curriculum();
        let mut pause = hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02");
        pause.until = pause.until_after_lift(d("2026-10-20"));
        let p = plan(&c, "2026-09-01", &[pause], &[]);
        assert_eq!(p[3], ("ect-04".to_string(), Some(d("2026-10-20")), true));
        assert_eq!(p[4], ("ect-05".to_string(), Some(d("2026-10-27")), false));
    }

    #[test]
    fn d5_nothing_is_released_during_a_deferral_and_the_rest_moves_later_by_its_length() {
        let c = curriculum();
        // A September starter deferred for 9 months of parental leave after
        // 10 modules: deferred on the day module 11 was due (2 February 2027)
        // until 2 November 2027.
        let plain = plan(&c, "2026-09-01", &[], &[]);
        assert_eq!(date_of(&plain, "ect-11"), Some(d("2027-02-02")));
        let holds = [hold("d", HoldKind::Deferral, "2027-02-02", "2027-11-02")];
        let deferred = plan(&c, "2026-09-01", &holds, &[]);
        assert_eq!(deferred[..10], plain[..10], "the first 10 are kept");
        for (_, date, _) in &deferred {
            let date = date.expect("released");
            assert!(!(d("2027-02-02") <= date && date < d("2027-11-02")), "{date}");
        }
        assert_eq!(date_of(&deferred, "ect-11"), Some(d("2027-11-02")), "on the return date");
        let length = (d("2027-11-02") - d("2027-02-02")).num_days();
        assert_eq!(length, 273, "9 months");
        for ((id, late, optional), (_, planned, _)) in deferred[10..].iter().zip(&plain[10..]) {
            assert_eq!(*late, planned.map(|p| add(p, length)), "{id}");
            assert!(!optional);
        }
        let final_planned = date_of(&plain, "ect-42").expect("planned");
        let final_deferred = date_of(&deferred, "ect-42").expect("deferred");
        assert_eq!(final_deferred, add(final_planned, length), "9 months later");
    }

    #[test]
    fn d5_a_deferral_between_modules_resumes_where_the_schedule_stopped() {
        let c = curriculum();
        // Deferred 5 days before ect-11 was due: it comes 5 days after the return.
        let holds = [hold("d", HoldKind::Deferral, "2027-01-28", "2027-03-01")];
        let p = plan(&c, "2026-09-01", &holds, &[]);
        assert_eq!(date_of(&p, "ect-10"), Some(d("2027-01-19")));
        assert_eq!(date_of(&p, "ect-11"), Some(d("2027-03-06")));
    }

    #[test]
    fn d5_the_planned_end_moves_later_by_the_deferral() {
        let c = curriculum();
        let ect = c.programme(Programme::Ect);
        let holds = [hold("d", HoldKind::Deferral, "2027-02-02", "2027-11-02")];
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &holds, revocations: &[] });
        assert_eq!(s.planned_end(), Some(add(d("2026-09-01"), ect.length_days + 273)));
    }

    #[test]
    fn d5_a_return_recorded_early_brings_the_schedule_forward() {
        let c = curriculum();
        let mut deferral = hold("d", HoldKind::Deferral, "2027-02-02", "2027-11-02");
        deferral.until = deferral.until_after_lift(d("2027-05-04"));
        let p = plan(&c, "2026-09-01", &[deferral], &[]);
        assert_eq!(date_of(&p, "ect-11"), Some(d("2027-05-04")));
    }

    #[test]
    fn d8_a_participant_deferred_before_their_start_gets_nothing_until_the_restart_date() {
        let c = curriculum();
        // Registered too early: deferred from registration to 1 January 2027.
        let holds = [hold("d", HoldKind::Deferral, "2026-08-01", "2027-01-01")];
        let p = plan(&c, "2026-09-01", &holds, &[]);
        let plain = plan(&c, "2027-01-01", &[], &[]);
        assert_eq!(p, plain, "the programme starts on the restart date");
        assert_eq!(p[0].1, Some(d("2027-01-01")));
    }

    #[test]
    fn d8_a_deferral_that_ends_before_the_release_start_moves_nothing() {
        let c = curriculum();
        let holds = [hold("d", HoldKind::Deferral, "2026-06-01", "2026-08-15")];
        assert_eq!(plan(&c, "2026-09-01", &holds, &[]), plan(&c, "2026-09-01", &[], &[]));
    }

    #[test]
    fn p8_a_pause_turned_into_a_deferral_releases_the_paused_modules_after_the_return() {
        let c = curriculum();
        // Paused 12 Oct; the pause ends on the deferral date 19 Oct; back 1 Feb.
        let holds = [
            hold("p", HoldKind::Pause, "2026-10-12", "2026-10-19"),
            hold("d", HoldKind::Deferral, "2026-10-19", "2027-02-01"),
        ];
        let p = plan(&c, "2026-09-01", &holds, &[]);
        assert_eq!(p[3], ("ect-04".to_string(), Some(d("2027-02-01")), true));
        // ect-05 was due 27 Oct, 8 days into the deferral: 8 days after the return.
        assert_eq!(p[4], ("ect-05".to_string(), Some(d("2027-02-09")), false));
    }

    #[test]
    fn w5_nothing_is_released_from_the_withdrawal_date() {
        let c = curriculum();
        let revocations = [revoked("2026-11-10", None)];
        let p = plan(&c, "2026-09-01", &[], &revocations);
        let released: Vec<_> = p.iter().filter(|(_, date, _)| date.is_some()).collect();
        assert_eq!(released.len(), 5, "ect-01..05 before 10 November");
        assert!(released.iter().all(|(_, date, _)| date.is_some_and(|d0| d0 < d("2026-11-10"))));
        assert!(!has_access_on(&revocations, d("2026-11-10")));
        assert!(has_access_on(&revocations, d("2026-11-09")));
        let ect = c.programme(Programme::Ect);
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &[], revocations: &revocations });
        assert_eq!(s.planned_end(), None);
        assert_eq!(s.next_after(d("2026-11-01")), None);
    }

    #[test]
    fn w9_after_reinstatement_the_schedule_resumes_where_it_stopped() {
        let c = curriculum();
        let revocations = [revoked("2026-11-10", Some("2027-02-09"))];
        let p = plan(&c, "2026-09-01", &[], &revocations);
        let plain = plan(&c, "2026-09-01", &[], &[]);
        let gap = (d("2027-02-09") - d("2026-11-10")).num_days();
        assert_eq!(p[..5], plain[..5]);
        // ect-06 was due on the withdrawal date: it comes on the restore date.
        assert_eq!(date_of(&p, "ect-06"), Some(d("2027-02-09")));
        for ((id, late, _), (_, planned, _)) in p[5..].iter().zip(&plain[5..]) {
            assert_eq!(*late, planned.map(|x| add(x, gap)), "{id}");
        }
        assert!(has_access_on(&revocations, d("2027-02-09")));
        assert!(!has_access_on(&revocations, d("2027-02-08")));
    }

    #[test]
    fn w5_a_withdrawal_during_a_pause_withholds_the_paused_modules() {
        let c = curriculum();
        let holds = [hold("p", HoldKind::Pause, "2026-10-12", "2026-10-27")];
        let revocations = [revoked("2026-10-27", None)];
        let p = plan(&c, "2026-09-01", &holds, &revocations);
        assert_eq!(date_of(&p, "ect-04"), None, "due in the pause, withdrawn at its end");
        assert_eq!(date_of(&p, "ect-03"), Some(d("2026-09-29")));
    }

    #[test]
    fn d4_a_released_module_is_never_dated_inside_a_deferral_or_revoked_period() {
        // The invariant, over many shapes of holds and revocations.
        let c = curriculum();
        let start = d("2026-09-01");
        let mut checked = 0;
        for a in (0..700).step_by(37) {
            for len in [1, 6, 20, 42, 90, 273] {
                for kind in [HoldKind::Pause, HoldKind::Deferral] {
                    let from = add(start, a - 60);
                    let second_from = add(from, len / 2);
                    let holds = [
                        Hold { hold_id: "a".into(), kind, from, until: add(from, len) },
                        Hold {
                            hold_id: "b".into(),
                            kind: HoldKind::Deferral,
                            from: second_from,
                            until: add(second_from, 30),
                        },
                    ];
                    let revocations = [revoked("2027-06-01", Some("2027-06-20"))];
                    for (id, date, _) in plan(&c, "2026-09-01", &holds, &revocations) {
                        let date = date.expect("released eventually");
                        for h in holds.iter().filter(|h| h.kind == HoldKind::Deferral) {
                            assert!(!h.is_active_on(date), "{id} on {date} inside {h:?}");
                        }
                        for h in holds.iter().filter(|h| h.kind == HoldKind::Pause) {
                            assert!(!h.is_active_on(date), "{id} on {date} inside {h:?}");
                        }
                        assert!(has_access_on(&revocations, date), "{id} on {date} revoked");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 9_000, "{checked} releases checked");
    }

    #[test]
    fn d5_holds_on_the_same_days_count_once() {
        let c = curriculum();
        let once = [hold("a", HoldKind::Deferral, "2027-01-19", "2027-03-19")];
        let overlapping = [
            hold("a", HoldKind::Deferral, "2027-01-19", "2027-03-19"),
            hold("b", HoldKind::Deferral, "2027-02-01", "2027-03-01"),
        ];
        assert_eq!(plan(&c, "2026-09-01", &once, &[]), plan(&c, "2026-09-01", &overlapping, &[]));
    }

    #[test]
    fn p4_a_cancelled_hold_holds_nothing() {
        let c = curriculum();
        let mut pause = hold("p", HoldKind::Pause, "2026-10-12", "2026-11-02");
        pause.until = pause.until_after_lift(d("2026-10-01"));
        assert_eq!(plan(&c, "2026-09-01", &[pause.clone()], &[]), plan(&c, "2026-09-01", &[], &[]));
        assert!(active_holds(&[pause], d("2026-10-10")).is_empty());
    }

    #[test]
    fn r2_active_holds_are_those_in_effect_on_the_day_ordered_by_start() {
        let holds = [
            hold("late", HoldKind::Deferral, "2026-10-10", "2026-12-01"),
            hold("early", HoldKind::Pause, "2026-10-01", "2026-10-20"),
            hold("done", HoldKind::Pause, "2026-09-01", "2026-09-10"),
        ];
        let ids: Vec<&str> = active_holds(&holds, d("2026-10-15")).into_iter().map(|h| h.hold_id.as_str()).collect();
        assert_eq!(ids, ["early", "late"]);
        assert!(active_holds(&holds, d("2026-12-01")).is_empty(), "until is not held");
    }
}
