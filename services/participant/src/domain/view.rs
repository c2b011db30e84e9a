//! What a participant is on a given date: a pure fold over their dated events.

use super::events::{Event, EventKind};
use super::{Enrolment, ParticipantKind};
use chrono::{NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingStatus {
    Active,
    Paused,
    Deferred,
    Withdrawn,
}

/// The stored participant: who they are and their whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub id: String,
    pub kind: ParticipantKind,
    pub full_name: String,
    pub trn: Option<String>,
    pub registered_on: NaiveDate,
    pub previous_pilot_mentor: bool,
    /// The number of events: the optimistic-concurrency version.
    pub version: i64,
    pub created_at: NaiveDateTime,
    /// In sequence order.
    pub events: Vec<Event>,
}

/// A participant as of one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantView {
    pub id: String,
    pub kind: ParticipantKind,
    pub status: TrainingStatus,
    pub school_id: String,
    pub delivery_partner_id: String,
    pub full_name: String,
    pub trn: Option<String>,
    pub registered_on: NaiveDate,
    pub enrolment: Option<Enrolment>,
    pub previous_pilot_mentor: bool,
    /// The ECT's mentor and whether they are an interim IC (M1, M3).
    pub mentor: Option<(String, bool)>,
    /// The ECTs a mentor (or interim IC) mentors on this date.
    pub mentees: Vec<String>,
    pub as_of: NaiveDate,
    pub version: i64,
    pub created_at: NaiveDateTime,
}

impl ParticipantView {
    /// M4: a previous pilot mentor is never funded; induction coordinators
    /// are not paid participants.
    pub fn funding_eligible(&self) -> bool {
        match self.kind {
            ParticipantKind::Ect => true,
            ParticipantKind::Mentor => !self.previous_pilot_mentor,
            ParticipantKind::InductionCoordinator => false,
        }
    }
}

impl ParticipantRecord {
    /// The participant as of `as_of`; `None` before they were registered.
    /// Facts apply in effective-date order (recorded order breaks ties), so a
    /// backdated fact recorded later still lands where it belongs.
    pub fn as_of(&self, as_of: NaiveDate) -> Option<ParticipantView> {
        if as_of < self.registered_on {
            return None;
        }
        let mut applicable: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.effective_date <= as_of)
            .collect();
        applicable.sort_by_key(|e| (e.effective_date, e.sequence));

        let mut view = ParticipantView {
            id: self.id.clone(),
            kind: self.kind,
            status: TrainingStatus::Active,
            school_id: String::new(),
            delivery_partner_id: String::new(),
            full_name: self.full_name.clone(),
            trn: self.trn.clone(),
            registered_on: self.registered_on,
            enrolment: None,
            previous_pilot_mentor: self.previous_pilot_mentor,
            mentor: None,
            mentees: Vec::new(),
            as_of,
            version: self.version,
            created_at: self.created_at,
        };
        for event in applicable {
            match &event.kind {
                EventKind::Registered {
                    school_id,
                    delivery_partner_id,
                    enrolment,
                    ..
                } => {
                    view.school_id.clone_from(school_id);
                    view.delivery_partner_id.clone_from(delivery_partner_id);
                    view.enrolment = *enrolment;
                }
                EventKind::MentorAssigned {
                    mentor_id, interim, ..
                } => {
                    view.mentor = Some((mentor_id.clone(), *interim));
                }
                EventKind::MenteeAssigned { ect_id } => {
                    if !view.mentees.contains(ect_id) {
                        view.mentees.push(ect_id.clone());
                    }
                }
                EventKind::MenteeUnassigned { ect_id } => view.mentees.retain(|m| m != ect_id),
            }
        }
        Some(view)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::events::Actor;

    pub fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    pub fn event(sequence: i64, effective: &str, kind: EventKind) -> Event {
        Event {
            cursor: sequence,
            participant_id: "p1".into(),
            sequence,
            effective_date: d(effective),
            recorded_at: d("2026-11-28").and_hms_opt(12, 0, 0).expect("time"),
            actor: Actor {
                sub: "t".into(),
                role: "admin".into(),
            },
            caused_by: None,
            kind,
        }
    }

    pub fn ect(registered: &str) -> ParticipantRecord {
        ParticipantRecord {
            id: "p1".into(),
            kind: ParticipantKind::Ect,
            full_name: "Ada".into(),
            trn: Some("1234567".into()),
            registered_on: d(registered),
            previous_pilot_mentor: false,
            version: 1,
            created_at: d(registered).and_hms_opt(9, 0, 0).expect("time"),
            events: vec![event(
                1,
                registered,
                EventKind::Registered {
                    kind: ParticipantKind::Ect,
                    school_id: "s1".into(),
                    delivery_partner_id: "dp1".into(),
                    enrolment: Some(Enrolment::default_for(d(registered))),
                    previous_pilot_mentor: false,
                },
            )],
        }
    }

    #[test]
    fn a_participant_is_active_from_registration_and_unknown_before_it() {
        let p = ect("2026-09-10");
        assert_eq!(p.as_of(d("2026-09-09")), None);
        let v = p.as_of(d("2026-09-10")).expect("registered");
        assert_eq!(v.status, TrainingStatus::Active);
        assert_eq!(v.school_id, "s1");
    }

    #[test]
    fn m1_history_keeps_each_mentor_and_the_view_shows_the_one_on_the_date() {
        let mut p = ect("2026-09-01");
        p.events.push(event(
            2,
            "2026-09-05",
            EventKind::MentorAssigned {
                mentor_id: "m1".into(),
                interim: false,
                replaced_mentor_id: None,
            },
        ));
        p.events.push(event(
            3,
            "2026-10-01",
            EventKind::MentorAssigned {
                mentor_id: "m2".into(),
                interim: false,
                replaced_mentor_id: Some("m1".into()),
            },
        ));
        assert_eq!(p.as_of(d("2026-09-04")).expect("v").mentor, None);
        assert_eq!(
            p.as_of(d("2026-09-20")).expect("v").mentor,
            Some(("m1".into(), false))
        );
        assert_eq!(
            p.as_of(d("2026-10-01")).expect("v").mentor,
            Some(("m2".into(), false))
        );
    }

    #[test]
    fn a_backdated_fact_recorded_later_applies_from_its_effective_date() {
        let mut p = ect("2026-09-01");
        p.events.push(event(
            2,
            "2026-10-01",
            EventKind::MentorAssigned {
                mentor_id: "m2".into(),
                interim: false,
                replaced_mentor_id: None,
            },
        ));
        // Recorded after, effective before: m1 first, then m2 from October.
        p.events.push(event(
            3,
            "2026-09-02",
            EventKind::MentorAssigned {
                mentor_id: "m1".into(),
                interim: false,
                replaced_mentor_id: None,
            },
        ));
        assert_eq!(
            p.as_of(d("2026-09-15")).expect("v").mentor,
            Some(("m1".into(), false))
        );
        assert_eq!(
            p.as_of(d("2026-10-15")).expect("v").mentor,
            Some(("m2".into(), false))
        );
    }

    #[test]
    fn m4_a_previous_pilot_mentor_is_not_funding_eligible() {
        let mut p = ect("2026-09-01");
        p.kind = ParticipantKind::Mentor;
        p.previous_pilot_mentor = true;
        assert!(!p.as_of(d("2026-09-01")).expect("v").funding_eligible());
        p.previous_pilot_mentor = false;
        assert!(p.as_of(d("2026-09-01")).expect("v").funding_eligible());
    }
}
