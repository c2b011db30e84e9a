//! What each window pays a payee, or why it pays nothing (F2, F4, F6, S2, M4).

use crate::domain::accrual::{Facts, Plan};
use crate::domain::schedule::Window;
use chrono::NaiveDate;

/// F6: why a payee has no line in a window, in the order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExclusionReason {
    IneligibleMentor,
    AlreadyPaidAllMilestones,
    Withdrawn,
    Deferred,
    OutOfArea,
    NoEngagement,
}

impl ExclusionReason {
    pub const ALL: [ExclusionReason; 6] = [
        ExclusionReason::IneligibleMentor,
        ExclusionReason::AlreadyPaidAllMilestones,
        ExclusionReason::Withdrawn,
        ExclusionReason::Deferred,
        ExclusionReason::OutOfArea,
        ExclusionReason::NoEngagement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExclusionReason::IneligibleMentor => "ineligible_mentor",
            ExclusionReason::AlreadyPaidAllMilestones => "already_paid_all_milestones",
            ExclusionReason::Withdrawn => "withdrawn",
            ExclusionReason::Deferred => "deferred",
            ExclusionReason::OutOfArea => "out_of_area",
            ExclusionReason::NoEngagement => "no_engagement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What one window pays a payee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Earned {
        /// The payee's own milestone, which after a deferral can differ from
        /// the one the window is named after (F3).
        milestone: String,
        amount_pence: i64,
        earned_on: NaiveDate,
    },
    Excluded {
        reason: ExclusionReason,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOutcome<'a> {
    pub window: &'a Window,
    /// The delivery partner the payee was paid under: on the day the
    /// milestone was earned, else on the window's last day.
    pub delivery_partner_id: String,
    pub outcome: Outcome,
}

/// F2-F4, S2, M4: what each of the plan's windows pays, knowing only
/// engagement up to `as_of` (everything known when `None`).
pub fn outcomes<'a>(plan: &Plan<'a>, facts: &Facts, as_of: Option<NaiveDate>) -> Vec<WindowOutcome<'a>> {
    let total = plan.fees_pence.len();
    let mut earned = 0usize;
    let mut out = Vec::with_capacity(plan.windows.len());
    for window in plan.windows.iter().copied() {
        let last_day = as_of.map_or(window.end, |a| a.min(window.end));
        let engaged = if last_day < window.start { &[][..] } else { facts.engagement_between(window.start, last_day) };
        let first_qualifying = engaged.iter().copied().find(|d| facts.qualifies_on(*d));
        let outcome = match (first_qualifying, plan.schedule.windows.get(earned), plan.fees_pence.get(earned)) {
            (Some(day), Some(milestone), Some(fee)) => {
                earned += 1;
                Outcome::Earned { milestone: milestone.milestone.clone(), amount_pence: *fee, earned_on: day }
            }
            _ => exclusion(plan, facts, window, engaged, earned >= total),
        };
        let placement_day = match &outcome {
            Outcome::Earned { earned_on, .. } => *earned_on,
            Outcome::Excluded { .. } => window.end,
        };
        out.push(WindowOutcome {
            window,
            delivery_partner_id: facts.placement_on(placement_day).delivery_partner_id.clone(),
            outcome,
        });
    }
    out
}

/// Milestones earned on or before `as_of`, in the order earned.
pub fn earned_by<'a>(plan: &Plan<'a>, facts: &Facts, as_of: NaiveDate) -> Vec<WindowOutcome<'a>> {
    outcomes(plan, facts, Some(as_of))
        .into_iter()
        .filter(|o| matches!(o.outcome, Outcome::Earned { earned_on, .. } if earned_on <= as_of))
        .collect()
}

fn exclusion(plan: &Plan<'_>, facts: &Facts, window: &Window, engaged: &[NaiveDate], all_paid: bool) -> Outcome {
    let (start, end) = (window.start, window.end);
    let (reason, detail) = if !facts.funding_eligible {
        (
            ExclusionReason::IneligibleMentor,
            "enrolled as not funding eligible: a mentor from the earlier pilot is never paid (M4)".to_owned(),
        )
    } else if all_paid {
        (
            ExclusionReason::AlreadyPaidAllMilestones,
            format!(
                "all {} milestones of {}/{} were earned in earlier windows",
                plan.fees_pence.len(),
                plan.schedule.id,
                plan.schedule.cohort
            ),
        )
    } else if let Some(c) = facts.closures.iter().find(|c| c.overlaps(start, end)) {
        (
            ExclusionReason::Withdrawn,
            match c.reopened_on {
                Some(r) => format!(
                    "accrual ended on {} until {} with no qualifying engagement in the window outside that",
                    c.ended_on, r
                ),
                None => format!(
                    "accrual ended on {} (withdrawal) with no qualifying engagement in the window before it",
                    c.ended_on
                ),
            },
        )
    } else if let Some(s) = facts.suspensions.iter().find(|s| s.overlaps(start, end)) {
        (
            ExclusionReason::Deferred,
            format!(
                "accrual suspended from {} to {} with no qualifying engagement in the window outside it",
                s.from, s.until
            ),
        )
    } else if let Some(since) = out_of_area_since(facts, start, end, engaged) {
        (
            ExclusionReason::OutOfArea,
            format!("the school is outside the covered area from {since}: no output payments (S2)"),
        )
    } else {
        (ExclusionReason::NoEngagement, format!("no engagement recorded from {start} to {end}"))
    };
    Outcome::Excluded { reason, detail }
}

/// S2: the payee engaged only while uncovered, or was uncovered throughout
/// the window; answers the date the uncovered spell began.
fn out_of_area_since(facts: &Facts, start: NaiveDate, end: NaiveDate, engaged: &[NaiveDate]) -> Option<NaiveDate> {
    let uncovered_since = |d: NaiveDate| facts.coverage_change_on(d).filter(|c| !c.covered).map(|c| c.from);
    if let Some(since) = engaged.iter().find_map(|d| uncovered_since(*d)) {
        return Some(since);
    }
    let since = uncovered_since(start)?;
    let covered_later = facts.coverage.iter().any(|c| c.covered && c.from > start && c.from <= end);
    (!covered_later).then_some(since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PayeeKind;
    use crate::domain::accrual::fixtures::*;
    use crate::domain::accrual::*;
    use crate::domain::test_support::d;

    #[test]
    fn f2_engagement_in_every_window_earns_each_milestone_in_its_own_window() {
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(
            earned(&rows),
            [
                ("started", "started"),
                ("retained-1", "retained-1"),
                ("retained-2", "retained-2"),
                ("retained-3", "retained-3"),
                ("retained-4", "retained-4"),
                ("completed", "completed"),
            ]
        );
        assert_eq!(total(&rows), 72_000, "F5: 60% of the £1,200.00 ECT price");
    }

    #[test]
    fn f2_a_window_without_engagement_pays_nothing_and_the_next_milestone_waits() {
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        f.engagement.retain(|e| *e != d("2025-02-10"));
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(rows[1], ("retained-1".into(), Err(ExclusionReason::NoEngagement)));
        assert_eq!(
            earned(&rows),
            [
                ("started", "started"),
                ("retained-2", "retained-1"),
                ("retained-3", "retained-2"),
                ("retained-4", "retained-3"),
                ("completed", "retained-4"),
            ],
            "no deferral, so no continuation windows: completed is not reached"
        );
    }

    #[test]
    fn f2_one_milestone_per_window_however_much_engagement_earned_on_the_first_day() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2024-10-01"), d("2024-10-02"), d("2024-11-20")];
        f.normalise();
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        let plan = Plan::new(&b, s, &f).expect("plan");
        let out = outcomes(&plan, &f, None);
        let earned: Vec<_> = out.iter().filter(|o| matches!(o.outcome, Outcome::Earned { .. })).collect();
        assert_eq!(earned.len(), 1);
        assert!(matches!(earned[0].outcome, Outcome::Earned { earned_on, .. } if earned_on == d("2024-10-01")));
    }

    #[test]
    fn d8_an_early_registration_suspended_until_the_restart_earns_nothing_before_it() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2024-07-01"), d("2024-10-01"), d("2025-02-01")];
        f.suspensions.push(Suspension { id: "early".into(), from: d("2024-06-01"), until: d("2024-11-01") });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(earned(&rows), [("retained-1", "started")]);
        assert_eq!(rows[0].1, Err(ExclusionReason::Deferred));
    }

    #[test]
    fn f4_withdrawal_pays_a_window_with_engagement_before_it_and_nothing_after() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2024-09-15"), d("2025-01-10"), d("2025-02-20"), d("2025-04-10")];
        f.closures.push(Closure { ended_on: d("2025-02-01"), reopened_on: None });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(earned(&rows), [("started", "started"), ("retained-1", "retained-1")]);
        assert!(rows[2..].iter().all(|(_, r)| *r == Err(ExclusionReason::Withdrawn)));
    }

    #[test]
    fn w5_engagement_on_or_after_the_withdrawal_date_does_not_qualify() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2024-09-15"), d("2025-02-01"), d("2025-02-02")];
        f.closures.push(Closure { ended_on: d("2025-02-01"), reopened_on: None });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(earned(&rows), [("started", "started")]);
        assert_eq!(rows[1].1, Err(ExclusionReason::Withdrawn));
        assert_eq!(f.state_on(d("2025-01-31")), AccrualState::Accruing);
        assert_eq!(f.state_on(d("2025-02-01")), AccrualState::Ended);
    }

    #[test]
    fn w4_a_withdrawal_during_a_deferral_ends_accrual_and_is_reported_as_withdrawn() {
        let mut f = ect();
        f.suspensions.push(Suspension { id: "s1".into(), from: d("2025-05-01"), until: d("2025-09-01") });
        f.closures.push(Closure { ended_on: d("2025-06-01"), reopened_on: None });
        assert_eq!(f.state_on(d("2025-06-01")), AccrualState::Ended);
        let b = book();
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(rows[2].1, Err(ExclusionReason::Withdrawn), "withdrawn comes before deferred");
    }

    #[test]
    fn w9_a_reinstatement_reopens_accrual_and_the_rest_is_earned_in_later_windows() {
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        f.closures.push(Closure { ended_on: d("2025-03-01"), reopened_on: Some(d("2025-09-01")) });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(
            earned(&rows),
            [
                ("started", "started"),
                ("retained-1", "retained-1"),
                ("retained-3", "retained-2"),
                ("retained-4", "retained-3"),
                ("completed", "retained-4"),
                ("extended-2", "completed"),
            ]
        );
        assert_eq!(rows[2].1, Err(ExclusionReason::Withdrawn));
        assert_eq!(f.state_on(d("2025-08-31")), AccrualState::Ended);
        assert_eq!(f.state_on(d("2025-09-01")), AccrualState::Accruing);
    }

    #[test]
    fn m4_a_pilot_mentor_never_accrues() {
        let b = book();
        let mut f = ect();
        f.kind = PayeeKind::Mentor;
        f.funding_eligible = false;
        f.engagement = every_term();
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert!(earned(&rows).is_empty());
        assert!(rows.iter().all(|(_, r)| *r == Err(ExclusionReason::IneligibleMentor)));
        assert!(!f.qualifies_on(d("2024-09-15")));
    }

    #[test]
    fn f5_a_funded_mentor_is_paid_at_the_mentor_price() {
        let b = book();
        let mut f = ect();
        f.kind = PayeeKind::Mentor;
        f.engagement = every_term();
        let rows = run(&b, "ecf-replacement-september", &mut f);
        assert_eq!(rows[0].1, Ok(("started".into(), 12_000)));
        assert_eq!(total(&rows), 60_000);
    }

    #[test]
    fn s2_a_move_to_an_uncovered_area_stops_output_payments_from_the_move_date() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2024-09-15"), d("2025-02-10"), d("2025-02-20"), d("2025-04-15")];
        f.coverage.push(CoverageChange { from: d("2025-02-15"), covered: false });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(earned(&rows), [("started", "started"), ("retained-1", "retained-1")]);
        assert_eq!(rows[2].1, Err(ExclusionReason::OutOfArea), "engaged only while uncovered");
        assert_eq!(rows[3].1, Err(ExclusionReason::OutOfArea), "uncovered throughout");
    }

    #[test]
    fn s2_engagement_only_after_the_move_in_that_window_is_not_paid_and_a_move_back_pays_again() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2025-02-20"), d("2025-09-10")];
        f.coverage.push(CoverageChange { from: d("2025-02-15"), covered: false });
        f.coverage.push(CoverageChange { from: d("2025-09-01"), covered: true });
        let rows = run(&b, "ecf-standard-september", &mut f);
        assert_eq!(rows[1].1, Err(ExclusionReason::OutOfArea));
        assert_eq!(earned(&rows), [("retained-3", "started")]);
        assert_eq!(rows[0].1, Err(ExclusionReason::NoEngagement));
    }

    #[test]
    fn p5_a_paused_ect_accrues_exactly_as_if_never_paused() {
        // A pause sends nothing to payments (D4 names only deferrals), so the
        // facts of a paused ECT are the facts of an active one: the same
        // engagement, of any kind, earns the same milestones.
        let b = book();
        let mut active = ect();
        active.engagement = every_term();
        let mut paused = active.clone();
        // Coaching on coaching and events recorded during a 4-week pause.
        paused.engagement.extend([d("2025-02-12"), d("2025-02-26")]);
        let a = run(&b, "ecf-standard-september", &mut active);
        let p = run(&b, "ecf-standard-september", &mut paused);
        assert_eq!(a, p);
    }

    #[test]
    fn s1_a_line_carries_the_delivery_partner_of_the_day_it_was_earned() {
        let b = book();
        let mut f = ect();
        f.engagement = vec![d("2024-09-15"), d("2025-02-10")];
        f.moves.push(PlacementChange {
            from: d("2025-01-01"),
            placement: Placement { school_id: "school-b".into(), delivery_partner_id: "dp-2".into() },
        });
        f.normalise();
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        let plan = Plan::new(&b, s, &f).expect("plan");
        let dps: Vec<String> = outcomes(&plan, &f, None).into_iter().map(|o| o.delivery_partner_id).collect();
        assert_eq!(dps[0], "dp-1");
        assert_eq!(dps[1], "dp-2");
    }

    #[test]
    fn f2_accrual_as_of_a_date_counts_only_what_was_earned_by_then() {
        let b = book();
        let mut f = ect();
        f.engagement = every_term();
        f.normalise();
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        let plan = Plan::new(&b, s, &f).expect("plan");
        assert_eq!(earned_by(&plan, &f, d("2025-02-09")).len(), 1);
        assert_eq!(earned_by(&plan, &f, d("2025-02-10")).len(), 2);
        assert_eq!(earned_by(&plan, &f, d("2030-01-01")).len(), 6);
    }

    use steplab_testkit::scratch::XorShift;

    /// A day of the 1,300 from 1 May 2024.
    fn a_day(rng: &mut XorShift) -> NaiveDate {
        d("2024-05-01") + chrono::Days::new(rng.next(1300))
    }

    #[test]
    fn f2_f3_accrual_never_exceeds_the_schedules_total_and_each_milestone_is_earned_once() {
        let b = book();
        let mut rng = XorShift(0x5eed_1234_abcd_0001);
        let schedules =
            ["ecf-standard-september", "ecf-reduced-january", "ecf-extended-april", "ecf-replacement-september"];
        for case in 0..2_000 {
            let mut f = ect();
            if rng.next(2) == 0 {
                f.kind = PayeeKind::Mentor;
            }
            f.engagement = (0..rng.next(40)).map(|_| a_day(&mut rng)).collect();
            for i in 0..rng.next(3) {
                let from = a_day(&mut rng);
                f.suspensions.push(Suspension {
                    id: format!("s{i}"),
                    from,
                    until: from + chrono::Days::new(rng.next(400)),
                });
            }
            if rng.next(3) == 0 {
                let ended_on = a_day(&mut rng);
                let reopened_on = (rng.next(2) == 0).then(|| ended_on + chrono::Days::new(rng.next(300)));
                f.closures.push(Closure { ended_on, reopened_on });
            }
            if rng.next(3) == 0 {
                f.coverage.push(CoverageChange { from: a_day(&mut rng), covered: rng.next(2) == 0 });
            }
            f.normalise();
            let s = b.schedule(schedules[case % schedules.len()], 2024).expect("schedule");
            let plan = Plan::new(&b, s, &f).expect("plan");
            let out = outcomes(&plan, &f, None);
            let milestones: Vec<&str> = out
                .iter()
                .filter_map(|o| match &o.outcome {
                    Outcome::Earned { milestone, .. } => Some(milestone.as_str()),
                    Outcome::Excluded { .. } => None,
                })
                .collect();
            let own: Vec<&str> = s.windows.iter().map(|w| w.milestone.as_str()).collect();
            assert_eq!(milestones, own[..milestones.len()], "in order, each once (case {case})");
            let sum: i64 = out
                .iter()
                .filter_map(|o| match o.outcome {
                    Outcome::Earned { amount_pence, .. } => Some(amount_pence),
                    Outcome::Excluded { .. } => None,
                })
                .sum();
            assert!(sum <= plan.total_pence(), "case {case}");
            for o in &out {
                if let Outcome::Earned { earned_on, .. } = o.outcome {
                    assert!(o.window.contains(earned_on) && f.qualifies_on(earned_on), "case {case}");
                }
            }
        }
    }
}
