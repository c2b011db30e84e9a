//! What is known about a payee that accrual depends on, and what it
//! means on a given day.

use crate::domain::PayeeKind;
use crate::domain::schedule::Window;
use chrono::NaiveDate;

/// A suspension of accrual, `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    pub id: String,
    pub from: NaiveDate,
    pub until: NaiveDate,
}

impl Suspension {
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.from <= date && date < self.until
    }

    /// A cancelled suspension (resumed on or before its start) suspends nothing.
    pub fn is_empty(&self) -> bool {
        self.until <= self.from
    }

    pub(super) fn overlaps(&self, start: NaiveDate, end: NaiveDate) -> bool {
        !self.is_empty() && self.from <= end && self.until > start
    }
}

/// Accrual ended on `ended_on` (a withdrawal) until `reopened_on` (a
/// reinstatement), if any: `[ended_on, reopened_on)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub ended_on: NaiveDate,
    pub reopened_on: Option<NaiveDate>,
}

impl Closure {
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.ended_on <= date && self.reopened_on.is_none_or(|r| date < r)
    }

    pub(super) fn overlaps(&self, start: NaiveDate, end: NaiveDate) -> bool {
        self.ended_on <= end && self.reopened_on.is_none_or(|r| r > start && r > self.ended_on)
    }
}

/// From `from` the school is (or is not) in a covered area (S2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageChange {
    pub from: NaiveDate,
    pub covered: bool,
}

/// Where a payee belongs: reads are scoped by it, statements grouped by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub school_id: String,
    pub delivery_partner_id: String,
}

/// From `from` the payee belongs to `placement` (S1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementChange {
    pub from: NaiveDate,
    pub placement: Placement,
}

/// Everything known about one payee that accrual depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kind: PayeeKind,
    pub funding_eligible: bool,
    /// As enrolled; applies until the first move.
    pub enrolled: Placement,
    pub moves: Vec<PlacementChange>,
    pub suspensions: Vec<Suspension>,
    pub closures: Vec<Closure>,
    pub coverage: Vec<CoverageChange>,
    /// Days with recorded engagement (any kind counts in v1, F2).
    pub engagement: Vec<NaiveDate>,
}

/// Accrual on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccrualState {
    Accruing,
    Suspended,
    Ended,
}

impl Facts {
    /// A payee as enrolled, with nothing else known yet.
    pub fn enrolled(kind: PayeeKind, funding_eligible: bool, placement: Placement) -> Self {
        Facts {
            kind,
            funding_eligible,
            enrolled: placement,
            moves: Vec::new(),
            suspensions: Vec::new(),
            closures: Vec::new(),
            coverage: Vec::new(),
            engagement: Vec::new(),
        }
    }

    /// Puts every list in date order, so answers do not depend on the order
    /// facts were loaded or recorded in. Stable sorts keep the later of two
    /// same-dated changes last, where the lookups below find it.
    pub fn normalise(&mut self) {
        self.moves.sort_by_key(|m| m.from);
        self.suspensions.sort_by(|a, b| (a.from, &a.id).cmp(&(b.from, &b.id)));
        self.closures.sort_by_key(|c| c.ended_on);
        self.coverage.sort_by_key(|c| c.from);
        self.engagement.sort_unstable();
        self.engagement.dedup();
    }

    /// The closure (withdrawal) in effect on `date`.
    pub fn closure_on(&self, date: NaiveDate) -> Option<&Closure> {
        self.closures.iter().find(|c| c.covers(date))
    }

    /// The suspension in effect on `date` (the earliest, if they overlap).
    pub fn suspension_on(&self, date: NaiveDate) -> Option<&Suspension> {
        self.suspensions.iter().find(|s| s.covers(date))
    }

    /// The coverage change in effect on `date`, if any (covered before any).
    pub(super) fn coverage_change_on(&self, date: NaiveDate) -> Option<&CoverageChange> {
        self.coverage.iter().rev().find(|c| c.from <= date)
    }

    pub fn covered_on(&self, date: NaiveDate) -> bool {
        self.coverage_change_on(date).is_none_or(|c| c.covered)
    }

    pub fn placement_on(&self, date: NaiveDate) -> &Placement {
        self.moves.iter().rev().find(|m| m.from <= date).map_or(&self.enrolled, |m| &m.placement)
    }

    /// Ended wins over suspended: a withdrawal ends any deferral (W4).
    pub fn state_on(&self, date: NaiveDate) -> AccrualState {
        if self.closure_on(date).is_some() {
            AccrualState::Ended
        } else if self.suspension_on(date).is_some() {
            AccrualState::Suspended
        } else {
            AccrualState::Accruing
        }
    }

    /// F2: engagement on `date` counts towards a milestone.
    pub fn qualifies_on(&self, date: NaiveDate) -> bool {
        self.funding_eligible && self.state_on(date) == AccrualState::Accruing && self.covered_on(date)
    }

    /// F3: training took longer than the schedule because of a suspension
    /// or a reinstatement, so the continuation windows apply.
    pub fn stretched(&self) -> bool {
        self.suspensions.iter().any(|s| !s.is_empty())
            || self.closures.iter().any(|c| c.reopened_on.is_some_and(|r| r > c.ended_on))
    }

    /// F3: how many days training was stretched from `since` on: the days
    /// of every suspension and of every closure that was reopened, each day
    /// counted once.
    pub fn stretch_days(&self, since: NaiveDate) -> i64 {
        let mut stops: Vec<(NaiveDate, NaiveDate)> = self
            .suspensions
            .iter()
            .map(|s| (s.from, s.until))
            .chain(self.closures.iter().filter_map(|c| c.reopened_on.map(|r| (c.ended_on, r))))
            .map(|(from, until)| (from.max(since), until))
            .filter(|(from, until)| from < until)
            .collect();
        stops.sort_unstable();
        let mut days = 0;
        let mut counted_to: Option<NaiveDate> = None;
        for (from, until) in stops {
            let from = counted_to.map_or(from, |c| from.max(c));
            if from < until {
                days += (until - from).num_days();
            }
            counted_to = Some(counted_to.map_or(until, |c| c.max(until)));
        }
        days
    }

    /// W4: the day accrual ended with no reinstatement since, if any.
    pub fn withdrawn_for_good_from(&self) -> Option<NaiveDate> {
        self.closures.iter().filter(|c| c.reopened_on.is_none()).map(|c| c.ended_on).min()
    }

    /// F3: some day of `window` accrues (neither suspended nor ended).
    pub fn accrues_in(&self, window: &Window) -> bool {
        window.start.iter_days().take_while(|d| *d <= window.end).any(|d| self.state_on(d) == AccrualState::Accruing)
    }

    /// D5, W9: the return dates (end of a suspension, reopening of a
    /// closure) on or before `as_of` on which the payee accrues again, in
    /// date order.
    pub fn returns_by(&self, as_of: NaiveDate) -> Vec<NaiveDate> {
        let mut returns: Vec<NaiveDate> = self
            .suspensions
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.until)
            .chain(self.closures.iter().filter_map(|c| c.reopened_on.filter(|r| *r > c.ended_on)))
            .filter(|r| *r <= as_of && self.state_on(*r) == AccrualState::Accruing)
            .collect();
        returns.sort_unstable();
        returns
    }

    pub(super) fn engagement_between(&self, start: NaiveDate, end: NaiveDate) -> &[NaiveDate] {
        let lo = self.engagement.partition_point(|d| *d < start);
        let hi = self.engagement.partition_point(|d| *d <= end);
        self.engagement.get(lo..hi).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::accrual::fixtures::*;
    use crate::domain::test_support::d;

    #[test]
    fn f3_stretch_counts_each_suspended_or_reopened_day_once() {
        let mut f = ect();
        f.suspensions.push(Suspension { id: "a".into(), from: d("2025-05-01"), until: d("2025-06-01") });
        f.suspensions.push(Suspension { id: "b".into(), from: d("2025-05-15"), until: d("2025-06-10") });
        f.suspensions.push(Suspension { id: "cancelled".into(), from: d("2025-09-01"), until: d("2025-09-01") });
        f.closures.push(Closure { ended_on: d("2025-06-05"), reopened_on: Some(d("2025-06-20")) });
        f.closures.push(Closure { ended_on: d("2026-01-01"), reopened_on: None });
        assert_eq!(f.stretch_days(d("2024-06-01")), 50, "1 May - 20 June");
        assert_eq!(f.stretch_days(d("2025-06-01")), 19, "from 1 June");
    }

    #[test]
    fn w9_the_returns_are_the_days_accrual_starts_again() {
        let mut f = ect();
        f.suspensions.push(Suspension { id: "a".into(), from: d("2025-05-01"), until: d("2025-09-01") });
        f.closures.push(Closure { ended_on: d("2026-03-01"), reopened_on: Some(d("2026-11-28")) });
        assert_eq!(f.returns_by(d("2026-11-27")), [d("2025-09-01")]);
        assert_eq!(f.returns_by(d("2026-11-28")), [d("2025-09-01"), d("2026-11-28")]);
    }

    #[test]
    fn d4_state_is_suspended_inside_the_half_open_suspension_and_accruing_on_the_return_date() {
        let mut f = ect();
        f.suspensions.push(Suspension { id: "s1".into(), from: d("2025-05-01"), until: d("2026-01-05") });
        assert_eq!(f.state_on(d("2025-04-30")), AccrualState::Accruing);
        assert_eq!(f.state_on(d("2025-05-01")), AccrualState::Suspended);
        assert_eq!(f.state_on(d("2026-01-04")), AccrualState::Suspended);
        assert_eq!(f.state_on(d("2026-01-05")), AccrualState::Accruing);
        assert!(!f.qualifies_on(d("2025-05-01")));
        assert!(f.qualifies_on(d("2026-01-05")));
    }
}
