//! Fixtures shared by the lifecycle tests, and by the mentoring and
//! handover tests that build on lifecycle decisions.

//! The tests of each use case glob-import this module as their prelude, so
//! it re-exports the domain types they build histories from.

use super::{Deferral, MentorCircle, Withdrawal, has_programme};
use crate::domain::Enrolment;
use crate::domain::events::{Actor, Event};
pub(crate) use crate::domain::events::{DeferralReason, EventKind, NewEvent, WithdrawalReason};
pub(crate) use crate::domain::view::ParticipantRecord;
pub(crate) use crate::domain::view::tests::d;
pub(crate) use crate::domain::{ParticipantKind, TrainingStatus};

pub(crate) const TODAY: &str = "2026-11-28";

pub(crate) fn person(id: &str, kind: ParticipantKind, registered: &str) -> ParticipantRecord {
    person_at_school(id, kind, "s1", registered)
}

/// `id`, registered as a `kind` at `school` (of delivery partner `dp1`) on
/// `registered`.
pub(crate) fn person_at_school(id: &str, kind: ParticipantKind, school: &str, registered: &str) -> ParticipantRecord {
    let mut p = ParticipantRecord {
        id: id.into(),
        kind,
        full_name: id.into(),
        trn: None,
        registered_on: d(registered),
        previous_pilot_mentor: false,
        version: 0,
        created_at: d(registered).and_hms_opt(9, 0, 0).expect("time"),
        events: vec![],
    };
    let registered_event = NewEvent {
        participant_id: id.into(),
        effective_date: d(registered),
        kind: EventKind::Registered {
            kind,
            school_id: school.into(),
            delivery_partner_id: "dp1".into(),
            enrolment: has_programme(kind).then(|| Enrolment::default_for(d(registered))),
            previous_pilot_mentor: false,
            area_covered: true,
        },
        caused_by: None,
    };
    record(&mut p, &[registered_event]);
    p
}

/// Appends the events meant for `p`, as the store would.
pub(crate) fn record(p: &mut ParticipantRecord, events: &[NewEvent]) {
    for e in events.iter().filter(|e| e.participant_id == p.id) {
        p.version += 1;
        p.events.push(Event {
            cursor: p.version,
            participant_id: p.id.clone(),
            sequence: p.version,
            effective_date: e.effective_date,
            recorded_at: d(TODAY).and_hms_opt(12, 0, 0).expect("time"),
            actor: Actor { sub: "t".into(), role: "ecf_lead".into() },
            caused_by: e.caused_by.clone(),
            kind: e.kind.clone(),
        });
    }
}

pub(crate) fn ect() -> ParticipantRecord {
    person("ect", ParticipantKind::Ect, "2026-09-01")
}

pub(crate) fn status(p: &ParticipantRecord, on: &str) -> TrainingStatus {
    p.as_of(d(on)).expect("registered").status
}

pub(crate) fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("id{n}")
    }
}

pub(crate) fn paternity() -> Deferral {
    Deferral {
        reason: DeferralReason::ParentalLeave,
        deferral_date: d("2026-12-01"),
        expected_return: d("2027-09-01"),
        note: String::new(),
    }
}

/// An ECT and their mentor, assigned.
pub(crate) fn pair() -> (ParticipantRecord, ParticipantRecord) {
    let mut e = ect();
    let mut m = person("m", ParticipantKind::Mentor, "2026-09-01");
    let events = vec![
        NewEvent {
            participant_id: "ect".into(),
            effective_date: d("2026-09-02"),
            kind: EventKind::MentorAssigned { mentor_id: "m".into(), interim: false, replaced_mentor_id: None },
            caused_by: None,
        },
        NewEvent {
            participant_id: "m".into(),
            effective_date: d("2026-09-02"),
            kind: EventKind::MenteeAssigned { ect_id: "ect".into() },
            caused_by: None,
        },
    ];
    record(&mut e, &events);
    record(&mut m, &events);
    (e, m)
}

/// An ECT whose mentor of record is `mentor` from 2026-09-02.
pub(crate) fn mentored_by(id: &str, mentor: &str) -> ParticipantRecord {
    let mut e = person(id, ParticipantKind::Ect, "2026-09-01");
    let assigned = NewEvent {
        participant_id: id.into(),
        effective_date: d("2026-09-02"),
        kind: EventKind::MentorAssigned { mentor_id: mentor.into(), interim: false, replaced_mentor_id: None },
        caused_by: None,
    };
    record(&mut e, &[assigned]);
    e
}

pub(crate) fn circle(mentor: &ParticipantRecord, others: Vec<ParticipantRecord>) -> MentorCircle {
    MentorCircle { mentor: mentor.clone(), other_ects: others, keep_approved: false }
}

pub(crate) fn left(reason: WithdrawalReason, on: &str) -> Withdrawal {
    Withdrawal { reason, withdrawal_date: d(on), note: String::new() }
}

pub(crate) fn deferral(from: &str, until: &str) -> Deferral {
    Deferral { deferral_date: d(from), expected_return: d(until), ..paternity() }
}
