//! The release engine (R2): which modules a learner has on any date, as a
//! pure function of the release start, the curriculum, the holds and the
//! access revocations. It never looks at "today": the same facts give the
//! same schedule whatever date is asked about, past or future.
//!
//! The schedule runs on a programme clock that starts on the release start.
//! Until the first deferral (D4) or revoked access (W5) on or after the
//! release start it counts one day per calendar day, and module `n` falls
//! due when the clock reaches its offset (R1). A deferral that starts
//! before the release start (or on it, before anything is released) only
//! starts the programme on its return date (D8).
//!
//! D5, W9: a deferral or a withdrawal stops the clock; on the return (or the
//! reinstatement) the participant restarts on the schedule of the term of
//! the return date ([`TermSchedule`]), and the modules not yet released are
//! laid out again from the return date on the term-time calendar
//! ([`super::term`]): from then on the clock counts term days only, and
//! module `n` falls due once as many term days have passed, outside the
//! stops, as lie between the release start and `release start + offset`.
//! So the remaining modules keep their term-time fortnights, none lands in
//! a school holiday, and the planned end moves so that the full two-year
//! entitlement is kept. What was released before the stop keeps its date.
//! Access revoked for good stops the clock for good.
//!
//! Pauses (P5, P6) do not stop the clock. A module that falls due on a held
//! or revoked day is released on the first day that is neither (and, after
//! a restart, a term day), marked optional when it fell due during a pause
//! (no catch-up required); the modules due after the pause keep their
//! dates and the planned end does not move.

use super::period::{self, Period};
use super::term::{self, TermSchedule};
use super::{Hold, HoldKind, Module, ProgrammeCurriculum, Revocation};
use chrono::{Days, NaiveDate};

/// Names the rules this engine lays schedules out by: the stored release
/// feed is recomputed at start-up when it was computed under other rules.
pub const RULES_VERSION: &str = "release rules 2: term-aligned restart after a deferral or reinstatement (D5, W9)";

/// What the stored release feed was computed from: the curriculum (its
/// canonical form) and the rules.
pub fn feed_basis(curriculum_canonical: &str) -> String {
    format!("{curriculum_canonical}\n{RULES_VERSION}")
}

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
    /// The schedule the programme started on: C1's mapping of the release
    /// start, or of the D8 restart date.
    first_schedule: TermSchedule,
    /// The return dates that restarted the programme (D5, W9), in order.
    restarts: Vec<NaiveDate>,
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
    let clock = Clock::new(start, &stopped);

    let mut modules: Vec<ScheduledModule<'c>> = curriculum
        .modules
        .iter()
        .enumerate()
        .map(|(position, module)| {
            let due = clock.date(module.release_offset_days);
            let optional = due.is_some_and(|day| paused.iter().any(|p| p.contains(day)));
            let release_date = due.and_then(|day| clock.first_release_day(day, &closed));
            ScheduledModule { module, position, release_date, optional }
        })
        .collect();
    // Release order: by date, curriculum order among modules released the
    // same day (the catch-up at a pause end); never-released ones last.
    modules.sort_by_key(|m| (m.release_date.is_none(), m.release_date, m.position));
    Schedule {
        modules,
        planned_end: clock.date(curriculum.length_days),
        first_schedule: TermSchedule::of(clock.start.unwrap_or(start)),
        restarts: clock.stops.iter().map_while(|stop| stop.until).collect(),
    }
}

fn hold_period(hold: &Hold) -> Period {
    Period::new(hold.from, Some(hold.until))
}

/// The programme clock of one learner.
struct Clock<'s> {
    /// The release start, or the D8 restart date; `None` when a stop from
    /// the start never ends.
    start: Option<NaiveDate>,
    /// The stops after the start (a [`period::union`]): the first one
    /// switches the clock to term time (D5, W9).
    stops: &'s [Period],
}

impl<'s> Clock<'s> {
    fn new(release_start: NaiveDate, stopped: &'s [Period]) -> Self {
        match stopped.split_first() {
            // D8: nothing was released yet, so the programme simply starts on
            // the return date, on the calendar like any start.
            Some((first, rest)) if first.from <= release_start => Clock { start: first.until, stops: rest },
            _ => Clock { start: Some(release_start), stops: stopped },
        }
    }

    /// The day the clock reaches `offset`; `None` if it never does.
    fn date(&self, offset: i64) -> Option<NaiveDate> {
        let start = self.start?;
        let due_on_calendar = start.checked_add_days(Days::new(u64::try_from(offset).ok()?))?;
        let Some((first, later)) = self.stops.split_first() else {
            return Some(due_on_calendar);
        };
        if due_on_calendar < first.from {
            return Some(due_on_calendar);
        }
        // The term days the module still had to wait when the clock stopped.
        let mut remaining = term::term_days_between(first.from, due_on_calendar)?;
        let mut day = term::first_term_day(first.until?)?;
        for stop in later {
            if stop.from > day {
                let available = term::term_days_between(day, stop.from)?;
                if remaining < available {
                    break;
                }
                remaining -= available;
            }
            day = term::first_term_day(stop.until?)?;
        }
        term::nth_term_day(day, remaining)
    }

    /// The first day on or after `due` outside `closed` (a [`period::union`])
    /// and, from the first restart on, in term time.
    fn first_release_day(&self, due: NaiveDate, closed: &[Period]) -> Option<NaiveDate> {
        let term_time_from = self.stops.first().map(|stop| stop.from);
        let mut day = due;
        loop {
            day = period::first_open_day(day, closed)?;
            if term_time_from.is_none_or(|from| day < from) {
                return Some(day);
            }
            let in_term = term::first_term_day(day)?;
            if in_term == day {
                return Some(day);
            }
            day = in_term;
        }
    }
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
    /// deferrals and revoked periods (never by pauses) and laid out in term
    /// time after a restart (D5, W9); `None` while access is revoked for
    /// good before then.
    pub fn planned_end(&self) -> Option<NaiveDate> {
        self.planned_end
    }

    /// D5, W9: the schedule the learner is on on `as_of` (C1's mapping of
    /// the latest return on or before it, or of the start), and the return
    /// date that moved them onto it (`None` before any restart).
    pub fn term_schedule_on(&self, as_of: NaiveDate) -> (TermSchedule, Option<NaiveDate>) {
        match self.restarts.iter().rev().find(|r| **r <= as_of) {
            Some(restart) => (TermSchedule::of(*restart), Some(*restart)),
            None => (self.first_schedule, None),
        }
    }
}

/// W5, W9: whether the learner may use content on `day`.
pub fn has_access_on(revocations: &[Revocation], day: NaiveDate) -> bool {
    !revocations.iter().any(|r| Period::new(r.revoked_from, r.restored_on).contains(day))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Curriculum, Programme};
    use chrono::Datelike;

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

    /// D5: the remaining modules run from the return date with the term
    /// days they still had to wait when the clock stopped on `stopped_on`,
    /// and each is released on a term day.
    fn assert_laid_out_in_term_time(
        remaining: &[(String, Option<NaiveDate>, bool)],
        plain: &[(String, Option<NaiveDate>, bool)],
        stopped_on: NaiveDate,
        returned_on: NaiveDate,
    ) {
        for (id, date, _) in remaining {
            let date = date.expect("released");
            let planned = date_of(plain, id).expect("planned");
            assert!(term::is_term_day(date), "{id} on {date} is in a school holiday");
            assert_eq!(
                term::term_days_between(term::first_term_day(returned_on).expect("term"), date),
                term::term_days_between(stopped_on, planned),
                "{id} on {date}"
            );
        }
    }

    #[test]
    fn d5_after_a_deferral_the_remaining_modules_are_laid_out_in_term_time_from_the_return() {
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
        assert!(deferred[10..].iter().all(|(_, _, optional)| !optional));
        assert_laid_out_in_term_time(&deferred[10..], &plain, d("2027-02-02"), d("2027-11-02"));
    }

    #[test]
    fn d5_a_deferral_from_7_december_to_12_april_puts_no_module_in_a_school_holiday() {
        // The case: before version 2 the clock only stood still, so
        // ect-15 (due 13 April 2027 with no deferral) came on 17 August 2027.
        let c = curriculum();
        let holds = [hold("d", HoldKind::Deferral, "2026-12-07", "2027-04-12")];
        let deferred = plan(&c, "2026-09-01", &holds, &[]);
        let plain = plan(&c, "2026-09-01", &[], &[]);
        assert_eq!(deferred[..7], plain[..7], "ect-01..07 were released before the deferral");
        assert_eq!(date_of(&deferred, "ect-08"), Some(d("2027-04-13")), "one term day after the return");
        assert_ne!(date_of(&deferred, "ect-15"), Some(d("2027-08-17")));
        assert_laid_out_in_term_time(&deferred[7..], &plain, d("2026-12-07"), d("2027-04-12"));
        // The summer holiday of 2027 (21 July - 31 August) releases nothing.
        assert!(
            deferred.iter().all(|(_, date, _)| date.is_some_and(term::is_term_day) || date < &Some(d("2026-12-07")))
        );
    }

    #[test]
    fn d5_the_learner_moves_to_the_schedule_of_the_term_of_the_return() {
        let c = curriculum();
        let ect = c.programme(Programme::Ect);
        let holds = [hold("d", HoldKind::Deferral, "2026-12-07", "2027-04-12")];
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &holds, revocations: &[] });
        assert_eq!(s.term_schedule_on(d("2027-04-11")), (TermSchedule::September, None));
        assert_eq!(s.term_schedule_on(d("2027-04-12")), (TermSchedule::April, Some(d("2027-04-12"))));
        let january = schedule(ect, ReleaseFacts { release_start: d("2027-01-01"), holds: &[], revocations: &[] });
        assert_eq!(january.term_schedule_on(d("2027-06-01")), (TermSchedule::January, None));
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
    fn d5_the_planned_end_keeps_the_term_days_still_to_run_so_the_entitlement_is_kept() {
        let c = curriculum();
        let ect = c.programme(Programme::Ect);
        let holds = [hold("d", HoldKind::Deferral, "2027-02-02", "2027-11-02")];
        let s = schedule(ect, ReleaseFacts { release_start: d("2026-09-01"), holds: &holds, revocations: &[] });
        let end = s.planned_end().expect("planned end");
        let plain_end = add(d("2026-09-01"), ect.length_days);
        assert_eq!(term::term_days_between(d("2027-11-02"), end), term::term_days_between(d("2027-02-02"), plain_end));
        assert!(end > plain_end);
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
    fn w9_after_reinstatement_the_schedule_resumes_where_it_stopped_in_term_time() {
        let c = curriculum();
        let revocations = [revoked("2026-11-10", Some("2027-02-09"))];
        let p = plan(&c, "2026-09-01", &[], &revocations);
        let plain = plan(&c, "2026-09-01", &[], &[]);
        assert_eq!(p[..5], plain[..5]);
        // ect-06 was due on the withdrawal date: it comes on the restore date.
        assert_eq!(date_of(&p, "ect-06"), Some(d("2027-02-09")));
        assert_laid_out_in_term_time(&p[5..], &plain, d("2026-11-10"), d("2027-02-09"));
        assert!(has_access_on(&revocations, d("2027-02-09")));
        assert!(!has_access_on(&revocations, d("2027-02-08")));
    }

    #[test]
    fn w9_a_late_reinstatement_of_a_2024_ect_keeps_the_whole_programme_in_term_time() {
        // The case: cohort 2024, withdrawn 1 March 2025, reinstated
        // 28 November 2026, on the January schedule from then on.
        let c = curriculum();
        let ect = c.programme(Programme::Ect);
        let revocations = [revoked("2025-03-01", Some("2026-11-28"))];
        let facts = ReleaseFacts { release_start: d("2024-09-01"), holds: &[], revocations: &revocations };
        let s = schedule(ect, facts);
        let p = plan(&c, "2024-09-01", &[], &revocations);
        let plain = plan(&c, "2024-09-01", &[], &[]);
        let kept = plain.iter().filter(|(_, date, _)| date.is_some_and(|x| x < d("2025-03-01"))).count();
        assert_eq!(p[..kept], plain[..kept]);
        // 28 November 2026 is a Saturday in term time: the first module comes then.
        assert_laid_out_in_term_time(&p[kept..], &plain, d("2025-03-01"), d("2026-11-28"));
        assert_eq!(s.term_schedule_on(d("2026-11-28")), (TermSchedule::January, Some(d("2026-11-28"))));
        let end = s.planned_end().expect("planned end");
        assert!(end.year() == 2028, "{end}");
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
}
