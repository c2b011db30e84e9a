//! The accrual engine (F2-F4, S2, M4, P5, D4, D8, W5, W9): a pure function
//! from a payee's facts and their schedule to what each milestone window
//! pays, or why it pays nothing.
//!
//! A payee earns their next unclaimed milestone in a window in which they
//! had qualifying engagement: engagement on a day when accrual was neither
//! ended (withdrawal) nor suspended (deferral, early registration), the
//! payee funding eligible (M4) and their school in a covered area (S2). One
//! milestone per window, earned on the first qualifying day, never more than
//! the schedule has. Pauses are unknown here: they change nothing (P5).
//!
//! Intervals: a suspension is `[from, until)` (until = the return date, the
//! first day accruing again); a closure is `[ended_on, reopened_on)` (the
//! withdrawal date is the first day without accrual, W5); windows are closed
//! `[start, end]`.
//!
//! F3: when training was stretched by a suspension or a reinstatement and the
//! schedule's own windows run out, the windows of the cohort's continuation
//! schedule (`ecf-extended-<start>`) that start after the schedule's last
//! window follow, term by term, and after those one window per term
//! ([`Schedule::later_terms`]) for as long as the payee's programme runs.
//! Payments does not see content release's planned end, so it bounds the
//! programme by the same facts: the schedule's last day moved later by
//! every day accrual was suspended or closed and reopened (the days content
//! release stood still too), plus one term, because the restart is aligned
//! to the term of the return (D5, W9) and can end up to a term later than
//! the calendar alone says; and in any case, while the payee is in training
//! (not withdrawn for good), until there are as many windows with days of
//! accrual as the schedule has milestones, so every milestone, `completed`
//! included, stays reachable. The milestones earned there are still the
//! payee's own schedule's, so accrual never exceeds its total. A payee who
//! simply did not engage in some windows gets no extra windows: their
//! training did not take longer.

mod affected;
mod facts;
mod outcomes;
mod plan;

pub use affected::affected_windows;
pub use facts::{AccrualState, Closure, CoverageChange, Facts, Placement, PlacementChange, Suspension};
pub use outcomes::{ExclusionReason, Outcome, WindowOutcome, earned_by, outcomes};
pub use plan::Plan;

/// Payees and runs the tests of the engine's parts share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::domain::PayeeKind;
    use crate::domain::schedule::ScheduleBook;
    use crate::domain::test_support::d;
    use chrono::NaiveDate;

    pub fn book() -> ScheduleBook {
        ScheduleBook::generated().expect("built-in book")
    }

    /// (window milestone, Ok((milestone earned, amount)) or Err(reason)).
    pub type Row = (String, Result<(String, i64), ExclusionReason>);

    pub fn ect() -> Facts {
        Facts::enrolled(
            PayeeKind::Ect,
            true,
            Placement { school_id: "school-a".into(), delivery_partner_id: "dp-1".into() },
        )
    }

    /// One engagement in the middle of every 2024 September term from the
    /// started window to the end of the extended schedule.
    pub fn every_term() -> Vec<NaiveDate> {
        [
            "2024-09-15",
            "2025-02-10",
            "2025-04-15",
            "2025-09-15",
            "2026-02-10",
            "2026-05-15",
            "2026-09-15",
            "2027-02-10",
            "2027-05-15",
        ]
        .into_iter()
        .map(d)
        .collect()
    }

    pub fn run(book: &ScheduleBook, schedule: &str, facts: &mut Facts) -> Vec<Row> {
        facts.normalise();
        let s = book.schedule(schedule, 2024).expect("schedule");
        let plan = Plan::new(book, s, facts).expect("plan");
        outcomes(&plan, facts, None)
            .into_iter()
            .map(|o| {
                let result = match o.outcome {
                    Outcome::Earned { milestone, amount_pence, .. } => Ok((milestone, amount_pence)),
                    Outcome::Excluded { reason, .. } => Err(reason),
                };
                (o.window.milestone.clone(), result)
            })
            .collect()
    }

    pub fn earned(rows: &[Row]) -> Vec<(&str, &str)> {
        rows.iter().filter_map(|(w, r)| r.as_ref().ok().map(|(m, _)| (w.as_str(), m.as_str()))).collect()
    }

    pub fn total(rows: &[Row]) -> i64 {
        rows.iter().filter_map(|(_, r)| r.as_ref().ok().map(|(_, a)| *a)).sum()
    }
}
