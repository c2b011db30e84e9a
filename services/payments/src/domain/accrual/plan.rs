//! The windows a payee can earn in (F3 continuation windows included) and
//! what each milestone pays (F5).

use crate::domain::accrual::Facts;
use crate::domain::schedule::{Schedule, ScheduleBook, Window};
use chrono::NaiveDate;

/// The windows a payee can earn in and what each milestone of their own
/// schedule pays.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub schedule: &'a Schedule,
    /// Own windows, then continuation windows (F3) when they apply.
    pub windows: Vec<&'a Window>,
    /// F5 fee of each of the schedule's milestones, in order.
    pub fees_pence: Vec<i64>,
}

impl<'a> Plan<'a> {
    /// `None` when the book cannot price a milestone (the book's validation
    /// keeps prices and shares far from overflow, so this is a bug).
    pub fn new(book: &'a ScheduleBook, schedule: &'a Schedule, facts: &Facts) -> Option<Self> {
        let fees_pence =
            schedule.milestones().map(|w| book.fee_pence(facts.kind, w.share_percent)).collect::<Option<Vec<i64>>>()?;
        let mut windows: Vec<&Window> = schedule.windows.iter().collect();
        if facts.stretched()
            && let (Some(first_start), Some(last_end)) =
                (schedule.windows.first().map(|w| w.start), schedule.last_end())
        {
            let programme_end = last_end.checked_add_days(chrono::Days::new(
                u64::try_from(facts.stretch_days(first_start)).unwrap_or_default(),
            ))?;
            let in_training = |w: &Window| facts.withdrawn_for_good_from().is_none_or(|from| w.start < from);
            let mut accruing = windows.iter().filter(|w| facts.accrues_in(w)).count();
            // The continuation's later windows, or the schedule's own later
            // terms when nothing continues it; then term by term.
            let next = book.continuation(schedule).unwrap_or(schedule);
            let mut later = next.windows.iter().chain(&next.later_terms).filter(|w| w.start > last_end).peekable();
            while let Some(window) =
                later.next_if(|w| w.start <= programme_end || (accruing < schedule.windows.len() && in_training(w)))
            {
                accruing += usize::from(facts.accrues_in(window));
                windows.push(window);
            }
            // One term more: the restart is aligned to the term of the
            // return (D5, W9), which can end the programme a term later.
            windows.extend(later.next().filter(|w| in_training(w)));
        }
        Some(Plan { schedule, windows, fees_pence })
    }

    /// The schedule's total: what every milestone together pays.
    pub fn total_pence(&self) -> i64 {
        self.fees_pence.iter().sum()
    }

    /// The payee's window containing `date`, if any.
    pub fn window_on(&self, date: NaiveDate) -> Option<&'a Window> {
        self.windows.iter().copied().find(|w| w.contains(date))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::accrual::fixtures::*;
    use crate::domain::accrual::{Closure, ExclusionReason, Suspension};
    use crate::domain::test_support::d;

    #[test]
    fn f3_continuation_windows_are_the_extended_schedules_after_the_last_own_window_then_term_by_term() {
        let b = book();
        let mut f = ect();
        // 249 days deferred: the programme runs to about 6 April 2027, in the
        // extended schedule's last (summer 2027) window; one term more for
        // the term-aligned restart (D5).
        f.suspensions.push(Suspension { id: "s1".into(), from: d("2025-05-01"), until: d("2026-01-05") });
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        let plan = Plan::new(&b, s, &f).expect("plan");
        let ids: Vec<&str> = plan.windows.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(
            ids[6..],
            [
                "ecf-extended-september/2024/extended-2",
                "ecf-extended-september/2024/extended-3",
                "ecf-extended-september/2024/completed",
                "ecf-extended-september/2024/term-10",
            ]
        );
    }

    #[test]
    fn f3_a_late_reinstatement_keeps_completed_reachable_in_windows_term_by_term() {
        // The case: an ECT of cohort 2024 withdrawn on 1 March 2025
        // and reinstated on 28 November 2026, engaging every term. The
        // extended schedule's last window ends on 31 July 2027, before
        // `completed` can be earned; the windows continue term by term.
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        f.engagement.extend([d("2026-12-01"), d("2027-02-10"), d("2027-05-10"), d("2027-10-10"), d("2028-02-10")]);
        f.closures.push(Closure { ended_on: d("2025-03-01"), reopened_on: Some(d("2026-11-28")) });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(
            earned(&rows),
            [
                ("started", "started"),
                ("retained-1", "retained-1"),
                ("extended-2", "retained-2"),
                ("extended-3", "retained-3"),
                ("completed", "retained-4"),
                ("term-10", "completed"),
            ]
        );
        assert_eq!(total(&rows), 72_000, "exactly the schedule's total");
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        let plan = Plan::new(&b, s, &f).expect("plan");
        let last = plan.windows.last().expect("windows");
        // 637 days closed: the programme runs to about 29 April 2028.
        assert_eq!((last.id.as_str(), last.end), ("ecf-extended-september/2024/term-13", d("2028-12-31")));
    }

    #[test]
    fn f3_an_extended_payee_continues_on_their_own_later_terms() {
        let b = book();
        let mut f = ect();
        f.closures.push(Closure { ended_on: d("2025-03-01"), reopened_on: Some(d("2026-11-28")) });
        let s = b.schedule("ecf-extended-september", 2024).expect("schedule");
        let plan = Plan::new(&b, s, &f).expect("plan");
        let after: Vec<&str> = plan.windows[9..].iter().map(|w| w.milestone.as_str()).collect();
        assert_eq!(after, ["term-10", "term-11", "term-12", "term-13", "term-14", "term-15", "term-16"]);
    }

    #[test]
    fn f3_without_a_suspension_or_reinstatement_the_own_windows_are_all_there_is() {
        let b = book();
        let f = ect();
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        assert_eq!(Plan::new(&b, s, &f).expect("plan").windows.len(), 6);
        let mut cancelled = ect();
        cancelled.suspensions.push(Suspension { id: "s".into(), from: d("2025-05-01"), until: d("2025-05-01") });
        assert_eq!(
            Plan::new(&b, s, &cancelled).expect("plan").windows.len(),
            6,
            "a cancelled suspension stretches nothing"
        );
    }

    #[test]
    fn f3_a_later_return_date_moves_where_the_rest_is_earned() {
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        f.suspensions.push(Suspension { id: "s1".into(), from: d("2025-05-01"), until: d("2026-04-20") });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(
            earned(&rows)[3..],
            [("completed", "retained-3"), ("extended-2", "retained-4"), ("extended-3", "completed")]
        );
    }

    #[test]
    fn f3_deferral_suspends_accrual_and_later_windows_pay_the_rest() {
        // The case: a September 2024 ECT with engagement in every
        // window, deferred from 2025-05-01 to 2026-01-05.
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        f.engagement.push(d("2025-09-20")); // while deferred: recorded, not qualifying
        f.suspensions.push(Suspension { id: "s1".into(), from: d("2025-05-01"), until: d("2026-01-05") });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(
            earned(&rows),
            [
                ("started", "started"),
                ("retained-1", "retained-1"),
                ("retained-2", "retained-2"),
                ("retained-4", "retained-3"),
                ("completed", "retained-4"),
                ("extended-2", "completed"),
            ]
        );
        assert_eq!(rows[3], ("retained-3".into(), Err(ExclusionReason::Deferred)));
        assert_eq!(total(&rows), 72_000, "exactly the schedule's total");
        assert!(rows.iter().skip(7).all(|(_, r)| *r == Err(ExclusionReason::AlreadyPaidAllMilestones)));
    }
}
