//! Registering participants (C1, M4) and assigning mentors (M1-M3): the
//! decisions, as new events, with every refusal a [`RuleViolation`].

use super::events::{EventKind, NewEvent};
use super::view::{ParticipantRecord, TrainingStatus};
use super::{Enrolment, ParticipantKind, RuleViolation};
use chrono::NaiveDate;

/// A registration request that has passed field validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub school_id: String,
    pub kind: ParticipantKind,
    pub full_name: String,
    pub trn: Option<String>,
    /// `None`: today.
    pub registered_on: Option<NaiveDate>,
    pub previous_pilot_mentor: bool,
}

/// The school a registration names, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolRef {
    pub id: String,
    pub delivery_partner_id: String,
    pub area_covered: bool,
}

/// The participant row to store, with its first event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewParticipant {
    pub id: String,
    pub kind: ParticipantKind,
    pub full_name: String,
    pub trn: Option<String>,
    pub registered_on: NaiveDate,
    pub previous_pilot_mentor: bool,
    pub registered: NewEvent,
}

/// C1 and M4: a registration is dated today or earlier (it records a fact);
/// ECTs and mentors get the default release start and schedule, induction
/// coordinators receive no programme.
pub fn register(
    id: String,
    registration: Registration,
    school: &SchoolRef,
    today: NaiveDate,
) -> Result<NewParticipant, RuleViolation> {
    let registered_on = registration.registered_on.unwrap_or(today);
    if registered_on > today {
        return Err(RuleViolation::new(
            "REGISTRATION_DATE_IN_FUTURE",
            format!(
                "registered_on {registered_on} is after today ({today}): register on the day the participant joins, and use a deferral (D8) for someone whose programme starts later"
            ),
        ).with("participant_id", &id).with("registered_on", registered_on).with("today", today));
    }
    // A date sent is checked as a field; today is checked here, so a
    // deployment whose clock has passed the last cohort the schedules cover
    // refuses instead of enrolling into a cohort payments does not know.
    let window = steplab_platform::date::REGISTRATION_DATES;
    if !window.contains(registered_on) {
        return Err(RuleViolation::new(
            "NO_COHORT_FOR_REGISTRATION_DATE",
            format!(
                "registered_on {registered_on} is outside the registration periods of the cohorts the payment schedules cover ({} to {}): the programme's cohorts need extending first",
                window.first, window.last
            ),
        ).with("participant_id", &id).with("registered_on", registered_on).with("earliest_registration_date", window.first).with("latest_registration_date", window.last));
    }
    let enrolment = match registration.kind {
        ParticipantKind::Ect | ParticipantKind::Mentor => Some(Enrolment::default_for(registered_on)),
        ParticipantKind::InductionCoordinator => None,
    };
    let registered = NewEvent {
        participant_id: id.clone(),
        effective_date: registered_on,
        kind: EventKind::Registered {
            kind: registration.kind,
            school_id: school.id.clone(),
            delivery_partner_id: school.delivery_partner_id.clone(),
            enrolment,
            previous_pilot_mentor: registration.previous_pilot_mentor,
            area_covered: school.area_covered,
        },
        caused_by: None,
    };
    Ok(NewParticipant {
        id,
        kind: registration.kind,
        full_name: registration.full_name,
        trn: registration.trn,
        registered_on,
        previous_pilot_mentor: registration.previous_pilot_mentor,
        registered,
    })
}

/// How a mentor is assigned (M2, M3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// The mentor of record from the effective date (M1, M2).
    OfRecord,
    /// M3: an induction coordinator covers; the mentor of record stays.
    InterimCover,
    /// M2: a replacement for a mentor's sustained leave, until the ECT goes
    /// back to the mentor of record on this date.
    TemporaryUntil(NaiveDate),
}

/// M1-M3: makes `mentor` the ECT's mentor from `effective_date`. The ECT
/// keeps one mentor at a time; whoever stops coaching them (if anyone) is
/// recorded as no longer mentoring them, and the history keeps both. A cover
/// (M3, or a temporary M2) leaves the mentor of record as they were (M5).
pub fn assign_mentor(
    ect: &ParticipantRecord,
    mentor: &ParticipantRecord,
    assignment: Assignment,
    effective_date: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<NewEvent>, RuleViolation> {
    if ect.kind != ParticipantKind::Ect {
        return Err(RuleViolation::new(
            "NOT_AN_ECT",
            format!("participant {} is {}: only ECTs are given a mentor", ect.id, ect.kind.describe()),
        )
        .with("participant_id", &ect.id)
        .with("kind", ect.kind.as_str().to_uppercase()));
    }
    let interim = assignment == Assignment::InterimCover;
    match (interim, mentor.kind) {
        (false, ParticipantKind::Mentor) | (true, ParticipantKind::InductionCoordinator) => {}
        (false, ParticipantKind::InductionCoordinator) => {
            return Err(RuleViolation::new(
                "NOT_A_MENTOR",
                format!(
                    "participant {} is an induction coordinator: set interim = true to make them the interim mentor (M3)",
                    mentor.id
                ),
            ).with("participant_id", &ect.id).with("mentor_id", &mentor.id).with("mentor_kind", mentor.kind.as_str().to_uppercase()));
        }
        (true, ParticipantKind::Mentor) => {
            return Err(RuleViolation::new(
                "INTERIM_MENTOR_NOT_INDUCTION_COORDINATOR",
                format!(
                    "participant {} is a registered mentor: assign them with interim = false; interim is for an induction coordinator standing in (M3)",
                    mentor.id
                ),
            ).with("participant_id", &ect.id).with("mentor_id", &mentor.id).with("mentor_kind", mentor.kind.as_str().to_uppercase()));
        }
        (_, kind) => {
            return Err(RuleViolation::new(
                "NOT_A_MENTOR",
                format!(
                    "participant {} is {}: register a mentor first, or make an induction coordinator the interim mentor",
                    mentor.id,
                    kind.describe()
                ),
            ).with("participant_id", &ect.id).with("mentor_id", &mentor.id).with("mentor_kind", mentor.kind.as_str().to_uppercase()));
        }
    }
    if effective_date > today {
        return Err(RuleViolation::new(
            "DATE_IN_FUTURE",
            format!(
                "effective_date {effective_date} is after today ({today}): assign the mentor on the day it happens"
            ),
        )
        .with("participant_id", &ect.id)
        .with("mentor_id", &mentor.id)
        .with("effective_date", effective_date)
        .with("today", today));
    }
    let ect_then = ect.as_of(effective_date).ok_or_else(|| before_registration(&ect.id, effective_date))?;
    let mentor_then = mentor.as_of(effective_date).ok_or_else(|| before_registration(&mentor.id, effective_date))?;
    for (who, status) in [(&ect.id, ect_then.status), (&mentor.id, mentor_then.status)] {
        if status == TrainingStatus::Withdrawn {
            return Err(RuleViolation::new(
                "PARTICIPANT_WITHDRAWN",
                format!(
                    "participant {who} is withdrawn on {effective_date}: a withdrawn participant neither has nor is a mentor"
                ),
            ).with("participant_id", &ect.id).with("mentor_id", &mentor.id).with("withdrawn_participant_id", who).with("status", TrainingStatus::Withdrawn.name()).with("effective_date", effective_date));
        }
    }
    if mentor_then.school_id != ect_then.school_id {
        return Err(RuleViolation::new(
            "MENTOR_AT_ANOTHER_SCHOOL",
            format!(
                "mentor {} is not at the ECT's school on {effective_date}: choose a mentor at school {}",
                mentor.id, ect_then.school_id
            ),
        )
        .with("participant_id", &ect.id)
        .with("mentor_id", &mentor.id)
        .with("school_id", &ect_then.school_id)
        .with("effective_date", effective_date));
    }
    let last_change = last_mentor_change(ect);
    if let Some(last) = last_change.filter(|last| effective_date < *last) {
        return Err(RuleViolation::new(
            "BEFORE_LAST_MENTOR_CHANGE",
            format!(
                "the ECT's mentor last changed on {last}: a new assignment must be effective on or after that date"
            ),
        )
        .with("participant_id", &ect.id)
        .with("mentor_id", &mentor.id)
        .with("effective_date", effective_date)
        .with("last_mentor_change", last));
    }
    let now = ect.as_of(today).unwrap_or(ect_then);
    let acting = now.mentor.map(|(id, _)| id);
    let of_record = now.mentor_of_record;
    if acting.as_deref() == Some(mentor.id.as_str()) {
        return Err(RuleViolation::new(
            "MENTOR_ALREADY_ASSIGNED",
            format!("{} already mentors this ECT: nothing to change", mentor.id),
        )
        .with("participant_id", &ect.id)
        .with("mentor_id", &mentor.id));
    }
    let event = |participant_id: &str, kind: EventKind| NewEvent {
        participant_id: participant_id.to_owned(),
        effective_date,
        kind,
        caused_by: None,
    };
    let assigned = match assignment {
        Assignment::OfRecord => EventKind::MentorAssigned {
            mentor_id: mentor.id.clone(),
            interim: false,
            replaced_mentor_id: of_record.clone(),
        },
        Assignment::InterimCover => EventKind::MentorAssigned {
            mentor_id: mentor.id.clone(),
            interim: true,
            replaced_mentor_id: acting.clone(),
        },
        Assignment::TemporaryUntil(until) => {
            if until <= effective_date {
                return Err(RuleViolation::new(
                    "COVER_END_NOT_AFTER_START",
                    format!("a temporary replacement from {effective_date} must end after it, not on {until}"),
                )
                .with("participant_id", &ect.id)
                .with("mentor_id", &mentor.id)
                .with("effective_date", effective_date)
                .with("until", until));
            }
            if of_record.is_none() {
                return Err(RuleViolation::new(
                    "NO_MENTOR_OF_RECORD",
                    "the ECT has no mentor of record to go back to: assign the mentor without an end date",
                )
                .with("participant_id", &ect.id)
                .with("mentor_id", &mentor.id));
            }
            EventKind::TemporaryMentorAssigned {
                mentor_id: mentor.id.clone(),
                mentor_of_record_id: of_record.clone(),
                until,
            }
        }
    };
    let mut events =
        vec![event(&ect.id, assigned), event(&mentor.id, EventKind::MenteeAssigned { ect_id: ect.id.clone() })];
    if let Assignment::TemporaryUntil(until) = assignment {
        events.push(NewEvent {
            effective_date: until,
            ..event(&mentor.id, EventKind::MenteeUnassigned { ect_id: ect.id.clone() })
        });
    }
    // Whoever coached until now stops; a mentor of record covered (M5) stays
    // theirs unless replaced for good.
    let mut stopping: Vec<String> = Vec::new();
    if acting != of_record {
        stopping.extend(acting.clone());
    }
    if assignment == Assignment::OfRecord {
        stopping.extend(of_record.clone());
    }
    for previous in stopping.into_iter().filter(|p| p != &mentor.id) {
        events.push(event(&previous, EventKind::MenteeUnassigned { ect_id: ect.id.clone() }));
    }
    Ok(events)
}

fn last_mentor_change(ect: &ParticipantRecord) -> Option<NaiveDate> {
    ect.events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::MentorAssigned { .. }
                    | EventKind::TemporaryMentorAssigned { .. }
                    | EventKind::MentorCoverEnded { .. }
            )
        })
        .map(|e| e.effective_date)
        .max()
}

/// M2, M3: the cover (an interim IC or a temporary replacement) ends on
/// `end_date` and the mentor of record coaches again.
pub fn end_mentor_cover(
    ect: &ParticipantRecord,
    end_date: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<NewEvent>, RuleViolation> {
    if end_date > today {
        return Err(RuleViolation::new(
            "DATE_IN_FUTURE",
            format!("end_date {end_date} is after today ({today}): end the cover on the day it ends"),
        )
        .with("participant_id", &ect.id)
        .with("end_date", end_date)
        .with("today", today));
    }
    let now = ect.as_of(today).ok_or_else(|| before_registration(&ect.id, today))?;
    let Some((cover, _)) = now.mentor.filter(|(acting, _)| Some(acting) != now.mentor_of_record.as_ref()) else {
        return Err(RuleViolation::new(
            "NO_MENTOR_COVER",
            format!(
                "ECT {} is coached by their mentor of record: there is no interim or temporary cover to end",
                ect.id
            ),
        )
        .with("participant_id", &ect.id));
    };
    if let Some(last) = last_mentor_change(ect).filter(|last| end_date < *last) {
        return Err(RuleViolation::new(
            "BEFORE_LAST_MENTOR_CHANGE",
            format!("the ECT's mentor last changed on {last}: the cover ends on or after that date"),
        )
        .with("participant_id", &ect.id)
        .with("end_date", end_date)
        .with("last_mentor_change", last));
    }
    let event = |participant_id: &str, kind: EventKind| NewEvent {
        participant_id: participant_id.to_owned(),
        effective_date: end_date,
        kind,
        caused_by: None,
    };
    Ok(vec![
        event(&ect.id, EventKind::MentorCoverEnded { mentor_id: cover.clone() }),
        event(&cover, EventKind::MenteeUnassigned { ect_id: ect.id.clone() }),
    ])
}

fn before_registration(id: &str, date: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "BEFORE_REGISTRATION",
        format!("participant {id} was not yet registered on {date}: use a date on or after their registration"),
    )
    .with("participant_id", id)
    .with("date", date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::view::tests::{d, ect, event};

    fn school() -> SchoolRef {
        SchoolRef { id: "s1".into(), delivery_partner_id: "dp1".into(), area_covered: true }
    }

    fn registration(kind: ParticipantKind, on: Option<&str>) -> Registration {
        Registration {
            school_id: "s1".into(),
            kind,
            full_name: "Ada Lovelace".into(),
            trn: Some("1234567".into()),
            registered_on: on.map(d),
            previous_pilot_mentor: false,
        }
    }

    fn person(id: &str, kind: ParticipantKind, school: &str) -> ParticipantRecord {
        let mut p = ect("2026-09-01");
        p.id = id.into();
        p.kind = kind;
        p.events[0].kind = EventKind::Registered {
            kind,
            school_id: school.into(),
            delivery_partner_id: "dp1".into(),
            enrolment: None,
            previous_pilot_mentor: false,
            area_covered: true,
        };
        p
    }

    #[test]
    fn c1_registration_without_a_date_is_today_with_the_default_schedule() {
        let p = register("p".into(), registration(ParticipantKind::Ect, None), &school(), d("2026-11-28"))
            .expect("registered");
        assert_eq!(p.registered_on, d("2026-11-28"));
        let EventKind::Registered { enrolment: Some(e), .. } = p.registered.kind else { panic!("enrolment") };
        assert_eq!(e.release_start, d("2027-01-01"));
        assert_eq!(e.schedule.schedule_id(), "ecf-standard-january");
    }

    #[test]
    fn c1_a_registration_dated_after_today_is_refused() {
        let err =
            register("p".into(), registration(ParticipantKind::Ect, Some("2026-11-29")), &school(), d("2026-11-28"))
                .expect_err("future");
        assert_eq!(err.reason, "REGISTRATION_DATE_IN_FUTURE");
    }

    #[test]
    fn c1_a_registration_on_a_day_no_cohort_covers_is_refused_even_when_it_is_today() {
        for today in ["2031-06-01", "2045-01-01"] {
            let err = register("p".into(), registration(ParticipantKind::Ect, None), &school(), d(today))
                .expect_err("no cohort");
            assert_eq!(err.reason, "NO_COHORT_FOR_REGISTRATION_DATE");
            assert!(err.message.contains("2031-05-31"), "{}", err.message);
        }
        let last = register("p".into(), registration(ParticipantKind::Ect, None), &school(), d("2031-05-31"))
            .expect("the last day of cohort 2030");
        let EventKind::Registered { enrolment: Some(e), .. } = last.registered.kind else { panic!("enrolment") };
        assert_eq!(e.cohort, 2030);
    }

    #[test]
    fn c1_an_induction_coordinator_gets_no_programme() {
        let p =
            register("p".into(), registration(ParticipantKind::InductionCoordinator, None), &school(), d("2026-11-28"))
                .expect("registered");
        assert!(matches!(p.registered.kind, EventKind::Registered { enrolment: None, .. }));
    }

    #[test]
    fn m4_previous_pilot_mentor_is_kept_on_registration() {
        let mut r = registration(ParticipantKind::Mentor, None);
        r.previous_pilot_mentor = true;
        let p = register("p".into(), r, &school(), d("2026-11-28")).expect("registered");
        assert!(p.previous_pilot_mentor);
        assert!(matches!(p.registered.kind, EventKind::Registered { previous_pilot_mentor: true, .. }));
    }

    #[test]
    fn m1_assigning_a_mentor_records_it_on_both_participants() {
        let e = person("e", ParticipantKind::Ect, "s1");
        let m = person("m", ParticipantKind::Mentor, "s1");
        let events = assign_mentor(&e, &m, Assignment::OfRecord, d("2026-09-10"), d("2026-11-28")).expect("assigned");
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].kind,
            EventKind::MentorAssigned { mentor_id: "m".into(), interim: false, replaced_mentor_id: None }
        );
        assert_eq!(events[1].participant_id, "m");
    }

    #[test]
    fn m1_a_second_mentor_replaces_the_first_and_history_keeps_both() {
        let mut e = person("e", ParticipantKind::Ect, "s1");
        e.events.push(event(
            2,
            "2026-09-05",
            EventKind::MentorAssigned { mentor_id: "m1".into(), interim: false, replaced_mentor_id: None },
        ));
        let m2 = person("m2", ParticipantKind::Mentor, "s1");
        let events = assign_mentor(&e, &m2, Assignment::OfRecord, d("2026-10-01"), d("2026-11-28")).expect("replaced");
        assert_eq!(
            events[0].kind,
            EventKind::MentorAssigned { mentor_id: "m2".into(), interim: false, replaced_mentor_id: Some("m1".into()) }
        );
        assert_eq!(events[2].participant_id, "m1");
        assert_eq!(events[2].kind, EventKind::MenteeUnassigned { ect_id: "e".into() });
        let err = assign_mentor(&e, &m2, Assignment::OfRecord, d("2026-09-01"), d("2026-11-28"))
            .expect_err("before last change");
        assert_eq!(err.reason, "BEFORE_LAST_MENTOR_CHANGE");
    }

    #[test]
    fn m1_only_an_ect_is_given_a_mentor_and_only_a_mentor_mentors() {
        let m = person("m", ParticipantKind::Mentor, "s1");
        let m2 = person("m2", ParticipantKind::Mentor, "s1");
        let e = person("e", ParticipantKind::Ect, "s1");
        let e2 = person("e2", ParticipantKind::Ect, "s1");
        assert_eq!(
            assign_mentor(&m, &m2, Assignment::OfRecord, d("2026-09-10"), d("2026-11-28")).expect_err("x").reason,
            "NOT_AN_ECT"
        );
        assert_eq!(
            assign_mentor(&e, &e2, Assignment::OfRecord, d("2026-09-10"), d("2026-11-28")).expect_err("x").reason,
            "NOT_A_MENTOR"
        );
    }

    #[test]
    fn m1_the_mentor_must_be_at_the_ects_school() {
        let e = person("e", ParticipantKind::Ect, "s1");
        let m = person("m", ParticipantKind::Mentor, "s2");
        let err =
            assign_mentor(&e, &m, Assignment::OfRecord, d("2026-09-10"), d("2026-11-28")).expect_err("other school");
        assert_eq!(err.reason, "MENTOR_AT_ANOTHER_SCHOOL");
    }

    #[test]
    fn m1_assigning_the_current_mentor_again_is_refused_as_a_no_op() {
        let mut e = person("e", ParticipantKind::Ect, "s1");
        e.events.push(event(
            2,
            "2026-09-05",
            EventKind::MentorAssigned { mentor_id: "m".into(), interim: false, replaced_mentor_id: None },
        ));
        let m = person("m", ParticipantKind::Mentor, "s1");
        let err =
            assign_mentor(&e, &m, Assignment::OfRecord, d("2026-10-01"), d("2026-11-28")).expect_err("same mentor");
        assert_eq!(err.reason, "MENTOR_ALREADY_ASSIGNED");
    }

    #[test]
    fn m3_an_induction_coordinator_becomes_interim_mentor_without_registering_as_mentor() {
        let e = person("e", ParticipantKind::Ect, "s1");
        let ic = person("ic", ParticipantKind::InductionCoordinator, "s1");
        let events =
            assign_mentor(&e, &ic, Assignment::InterimCover, d("2026-09-10"), d("2026-11-28")).expect("interim");
        assert!(matches!(events[0].kind, EventKind::MentorAssigned { interim: true, .. }));
        let err =
            assign_mentor(&e, &ic, Assignment::OfRecord, d("2026-09-10"), d("2026-11-28")).expect_err("not interim");
        assert_eq!(err.reason, "NOT_A_MENTOR");
        let m = person("m", ParticipantKind::Mentor, "s1");
        let err = assign_mentor(&e, &m, Assignment::InterimCover, d("2026-09-10"), d("2026-11-28"))
            .expect_err("mentor as interim");
        assert_eq!(err.reason, "INTERIM_MENTOR_NOT_INDUCTION_COORDINATOR");
    }

    #[test]
    fn m1_assignment_dates_are_not_in_the_future_nor_before_registration() {
        let e = person("e", ParticipantKind::Ect, "s1");
        let m = person("m", ParticipantKind::Mentor, "s1");
        assert_eq!(
            assign_mentor(&e, &m, Assignment::OfRecord, d("2026-11-29"), d("2026-11-28")).expect_err("x").reason,
            "DATE_IN_FUTURE"
        );
        assert_eq!(
            assign_mentor(&e, &m, Assignment::OfRecord, d("2026-08-01"), d("2026-11-28")).expect_err("x").reason,
            "BEFORE_REGISTRATION"
        );
    }
}
