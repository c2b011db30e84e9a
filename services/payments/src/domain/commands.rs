//! How the participant service's commands change a payee's facts (D4, D6,
//! D7, W4, W5, W9, S1, S2). Each answers the change to store, or that
//! nothing changes; storing and idempotency are the service's job.

use crate::domain::RuleViolation;
use crate::domain::accrual::{Closure, Suspension};
use chrono::NaiveDate;

/// What a command does to one stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T> {
    Insert(T),
    /// Replace the record at this position of the list given.
    Update(usize, T),
    Unchanged,
}

/// SuspendAccrual (D4, D8): a new suspension, or new dates for a known
/// `suspension_id` (D6, D9 cascaded dates), which also clears an earlier
/// ResumeAccrual of it.
pub fn suspend(existing: &[Suspension], id: &str, from: NaiveDate, until: NaiveDate) -> Change<Suspension> {
    let new = Suspension { id: id.to_owned(), from, until };
    match existing.iter().enumerate().find(|(_, s)| s.id == id) {
        Some((_, known)) if *known == new => Change::Unchanged,
        Some((i, _)) => Change::Update(i, new),
        None => Change::Insert(new),
    }
}

/// ResumeAccrual (D7, W4): `on` becomes the suspension's `until`; on or
/// before its `from` it is cancelled (an empty interval); on or after its
/// `until` nothing changes.
pub fn resume(suspension: &Suspension, on: NaiveDate) -> Option<Suspension> {
    if on >= suspension.until {
        return None;
    }
    Some(Suspension { until: on.max(suspension.from), ..suspension.clone() })
}

/// EndAccrual (W5, F4): accrual ends from `on`. Already ended: nothing
/// changes. A withdrawal dated before the last reinstatement contradicts
/// it and is refused.
pub fn end(closures: &[Closure], on: NaiveDate) -> Result<Change<Closure>, RuleViolation> {
    match closures.last() {
        Some(c) if c.reopened_on.is_none() => Ok(Change::Unchanged),
        Some(Closure { reopened_on: Some(reopened), .. }) if on < *reopened => Err(RuleViolation::new(
            "END_BEFORE_REOPEN",
            format!(
                "accrual was reopened on {reopened}; an end dated {on}, before that, contradicts the reinstatement: check the participant's history before sending it again"
            ),
        ).with("end_date", on).with("reopened_on", reopened)),
        _ => Ok(Change::Insert(Closure { ended_on: on, reopened_on: None })),
    }
}

/// ReopenAccrual (W9): accrual resumes from `on`, on or after the end date.
/// Not ended: nothing changes.
pub fn reopen(closures: &[Closure], on: NaiveDate) -> Result<Change<Closure>, RuleViolation> {
    match closures.iter().enumerate().next_back() {
        Some((i, c)) if c.reopened_on.is_none() => {
            if on < c.ended_on {
                Err(RuleViolation::new(
                    "REOPEN_BEFORE_END",
                    format!(
                        "accrual ended on {}; it can reopen on that date or later, not on {on}: send the reinstatement's approval date",
                        c.ended_on
                    ),
                ).with("reopen_date", on).with("ended_on", c.ended_on))
            } else {
                Ok(Change::Update(i, Closure { ended_on: c.ended_on, reopened_on: Some(on) }))
            }
        }
        _ => Ok(Change::Unchanged),
    }
}

/// F2: engagement is recorded once it has happened, so nothing is earned
/// ahead of `today` (and what is earned as of today never changes because
/// a day passes, X5).
pub fn engagement_happened(occurred_on: NaiveDate, today: NaiveDate) -> Result<(), RuleViolation> {
    if occurred_on > today {
        return Err(RuleViolation::new(
            "OCCURRED_ON_IN_FUTURE",
            format!("occurred_on {occurred_on} is after today ({today}): record engagement once it has happened"),
        )
        .with("occurred_on", occurred_on)
        .with("today", today));
    }
    Ok(())
}

/// X5: the DfE's answer belongs to a declaration payments made; an answer
/// to one it never made (`made` false) means the gateway and payments
/// disagree, which an operator must look into.
pub fn declaration_made(made: bool, declaration_type: &str, participant_id: &str) -> Result<(), RuleViolation> {
    if made {
        return Ok(());
    }
    Err(RuleViolation::new(
        "DECLARATION_NOT_MADE",
        format!(
            "payments never declared `{declaration_type}` for participant {participant_id}: the DfE gateway and payments disagree; an operator compares the gateway's calls (ListDfeCalls) with GetAccrual"
        ),
    ).with("participant_id", participant_id).with("declaration_type", declaration_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_support::d;

    fn deferral() -> Suspension {
        Suspension { id: "s1".into(), from: d("2025-05-01"), until: d("2026-01-05") }
    }

    #[test]
    fn d4_a_new_suspension_is_inserted_and_the_same_one_again_changes_nothing() {
        assert_eq!(suspend(&[], "s1", d("2025-05-01"), d("2026-01-05")), Change::Insert(deferral()));
        assert_eq!(suspend(&[deferral()], "s1", d("2025-05-01"), d("2026-01-05")), Change::Unchanged);
    }

    #[test]
    fn d6_a_changed_return_date_for_the_same_suspension_id_replaces_its_dates() {
        let resumed = Suspension { until: d("2025-09-01"), ..deferral() };
        assert_eq!(
            suspend(&[resumed], "s1", d("2025-05-01"), d("2026-03-01")),
            Change::Update(0, Suspension { until: d("2026-03-01"), ..deferral() }),
            "and clears the earlier resume"
        );
    }

    #[test]
    fn d7_an_earlier_return_becomes_the_suspensions_until() {
        assert_eq!(resume(&deferral(), d("2025-10-01")), Some(Suspension { until: d("2025-10-01"), ..deferral() }));
        assert_eq!(resume(&deferral(), d("2026-01-05")), None, "on the until");
        assert_eq!(resume(&deferral(), d("2026-02-01")), None, "after the until");
    }

    #[test]
    fn w4_resuming_on_or_before_the_start_cancels_the_suspension() {
        let cancelled = resume(&deferral(), d("2025-04-01")).expect("changed");
        assert!(cancelled.is_empty());
        assert_eq!(cancelled.until, cancelled.from);
    }

    #[test]
    fn w5_end_starts_a_closure_and_an_end_while_ended_changes_nothing() {
        let first = end(&[], d("2026-02-01")).expect("end");
        assert_eq!(first, Change::Insert(Closure { ended_on: d("2026-02-01"), reopened_on: None }));
        let open = [Closure { ended_on: d("2026-02-01"), reopened_on: None }];
        assert_eq!(end(&open, d("2026-03-01")), Ok(Change::Unchanged));
    }

    #[test]
    fn w9_reopen_closes_the_open_closure_on_or_after_its_end() {
        let open = [Closure { ended_on: d("2026-02-01"), reopened_on: None }];
        assert_eq!(
            reopen(&open, d("2026-02-01")),
            Ok(Change::Update(0, Closure { ended_on: d("2026-02-01"), reopened_on: Some(d("2026-02-01")) }))
        );
        let err = reopen(&open, d("2026-01-31")).expect_err("before the end");
        assert_eq!(err.reason, "REOPEN_BEFORE_END");
        assert_eq!(reopen(&[], d("2026-01-31")), Ok(Change::Unchanged), "never ended");
    }

    #[test]
    fn f2_engagement_is_recorded_on_or_before_today_not_ahead_of_it() {
        assert_eq!(engagement_happened(d("2026-03-01"), d("2026-03-01")), Ok(()));
        let err = engagement_happened(d("2026-03-02"), d("2026-03-01")).expect_err("future");
        assert_eq!(err.reason, "OCCURRED_ON_IN_FUTURE");
    }

    #[test]
    fn x5_an_answer_to_a_declaration_never_made_is_refused() {
        assert_eq!(declaration_made(true, "started", "p"), Ok(()));
        assert_eq!(declaration_made(false, "started", "p").expect_err("never made").reason, "DECLARATION_NOT_MADE");
    }

    #[test]
    fn w9_after_a_reinstatement_a_new_withdrawal_ends_again_but_not_before_the_reinstatement() {
        let reopened = [Closure { ended_on: d("2026-02-01"), reopened_on: Some(d("2026-04-01")) }];
        assert_eq!(reopen(&reopened, d("2026-05-01")), Ok(Change::Unchanged), "already reopened");
        assert!(matches!(end(&reopened, d("2026-06-01")), Ok(Change::Insert(_))));
        assert_eq!(end(&reopened, d("2026-03-01")).expect_err("contradiction").reason, "END_BEFORE_REOPEN");
    }
}
