//! An enrolled learner and every fact their schedule and their readers
//! depend on, and the decisions EnrolLearner and SetReleaseStart make on
//! them.

use super::policy::Place;
use super::release::{ReleaseFacts, Schedule};
use super::{Hold, Programme, Revocation, RuleViolation};
use chrono::NaiveDate;

/// A new enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLearner {
    pub participant_id: String,
    pub programme: Programme,
    pub release_start: NaiveDate,
    pub school_id: String,
    pub delivery_partner_id: String,
}

/// A school move (S1) from a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeChange {
    pub school_id: String,
    pub delivery_partner_id: String,
    pub from: NaiveDate,
    /// The order moves were recorded in: of two from the same day, the later wins.
    pub seq: i64,
}

/// An enrolled learner with every fact their schedule depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learner {
    pub participant_id: String,
    pub programme: Programme,
    pub release_start: NaiveDate,
    pub school_id: String,
    pub delivery_partner_id: String,
    pub holds: Vec<Hold>,
    pub revocations: Vec<Revocation>,
    pub scope_changes: Vec<ScopeChange>,
}

impl Learner {
    pub fn facts(&self) -> ReleaseFacts<'_> {
        ReleaseFacts { release_start: self.release_start, holds: &self.holds, revocations: &self.revocations }
    }

    /// The learner as a load gives them after PlaceHold or LiftHold stored
    /// `hold`: a hold of the same id takes its dates (keeping its kind, as
    /// the store does), any other is added; in the order a load gives.
    pub fn with_hold(mut self, hold: Hold) -> Learner {
        match self.holds.iter_mut().find(|h| h.hold_id == hold.hold_id) {
            Some(stored) => {
                stored.from = hold.from;
                stored.until = hold.until;
            }
            None => self.holds.push(hold),
        }
        self.holds.sort_by(|a, b| (a.from, &a.hold_id).cmp(&(b.from, &b.hold_id)));
        self
    }

    /// The school and delivery partner on `day`: the latest move on or
    /// before it, else the enrolment's.
    pub fn place_on(&self, day: NaiveDate) -> Place<'_> {
        let moved = self.scope_changes.iter().filter(|c| c.from <= day).max_by_key(|c| (c.from, c.seq));
        match moved {
            Some(change) => Place { school_id: &change.school_id, delivery_partner_id: &change.delivery_partner_id },
            None => Place { school_id: &self.school_id, delivery_partner_id: &self.delivery_partner_id },
        }
    }
}

/// An EnrolLearner for a participant already enrolled otherwise: it says
/// how to move the start instead (ALREADY_EXISTS).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyEnrolled(pub String);

/// EnrolLearner: `true` to enrol, `false` when the same enrolment is
/// already in place (a repeat changes nothing).
pub fn enrol(existing: Option<&Learner>, new: &NewLearner) -> Result<bool, AlreadyEnrolled> {
    match existing {
        None => Ok(true),
        Some(existing) if existing.programme == new.programme && existing.release_start == new.release_start => {
            Ok(false)
        }
        Some(existing) => Err(AlreadyEnrolled(format!(
            "participant {} is already enrolled on {} from {}: use SetReleaseStart to move the start",
            existing.participant_id,
            existing.programme.describe(),
            existing.release_start
        ))),
    }
}

/// SetReleaseStart (C2): `true` to move the start to `start`, `false` when
/// it is the start already. A later start is refused once a module has been
/// released, since it would take that module away.
pub fn change_release_start(
    learner: &Learner,
    schedule: &Schedule<'_>,
    start: NaiveDate,
    today: NaiveDate,
) -> Result<bool, RuleViolation> {
    if start == learner.release_start {
        return Ok(false);
    }
    if start > learner.release_start && schedule.released_by(today).next().is_some() {
        return Err(RuleViolation::new(
            "RELEASE_ALREADY_STARTED",
            format!(
                "modules have been released to participant {} since {}: a later start ({start}) would take them away; use a deferral to hold release instead",
                learner.participant_id, learner.release_start
            ),
        ).with("participant_id", &learner.participant_id).with("release_start", learner.release_start).with("requested_release_start", start));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Curriculum;
    use crate::domain::release::schedule;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn learner(start: &str) -> Learner {
        Learner {
            participant_id: "p1".into(),
            programme: Programme::Ect,
            release_start: d(start),
            school_id: "s1".into(),
            delivery_partner_id: "dp1".into(),
            holds: vec![],
            revocations: vec![],
            scope_changes: vec![],
        }
    }

    fn move_to(school: &str, from: &str, seq: i64) -> ScopeChange {
        ScopeChange { school_id: school.into(), delivery_partner_id: "dp2".into(), from: d(from), seq }
    }

    #[test]
    fn s1_a_learner_is_read_in_the_place_of_the_latest_move_on_or_before_the_day() {
        let mut l = learner("2026-09-01");
        l.scope_changes = vec![move_to("s2", "2026-10-01", 1), move_to("s3", "2026-10-01", 2)];
        assert_eq!(l.place_on(d("2026-09-30")).school_id, "s1");
        assert_eq!(l.place_on(d("2026-10-01")).school_id, "s3");
    }

    #[test]
    fn an_enrolment_repeated_changes_nothing_and_a_different_one_is_refused() {
        let existing = learner("2026-09-01");
        let new = NewLearner {
            participant_id: "p1".into(),
            programme: Programme::Ect,
            release_start: d("2026-09-01"),
            school_id: "s1".into(),
            delivery_partner_id: "dp1".into(),
        };
        assert_eq!(enrol(None, &new), Ok(true));
        assert_eq!(enrol(Some(&existing), &new), Ok(false));
        let later = NewLearner { release_start: d("2027-01-05"), ..new };
        assert!(enrol(Some(&existing), &later).is_err());
    }

    #[test]
    fn c2_a_later_start_is_refused_once_a_module_is_released() {
        let c = Curriculum::built_in().expect("curriculum");
        let l = learner("2026-09-01");
        let s = schedule(c.programme(Programme::Ect), l.facts());
        assert_eq!(change_release_start(&l, &s, d("2026-09-01"), d("2026-10-01")), Ok(false));
        assert_eq!(change_release_start(&l, &s, d("2026-08-01"), d("2026-10-01")), Ok(true));
        assert_eq!(change_release_start(&l, &s, d("2027-01-05"), d("2026-08-01")), Ok(true));
        let refused = change_release_start(&l, &s, d("2027-01-05"), d("2026-10-01"));
        assert_eq!(refused.map_err(|r| r.reason), Err("RELEASE_ALREADY_STARTED"));
    }
}
