use super::*;
use crate::domain::events::WithdrawalReason;
use crate::domain::lifecycle::tests::person_at_school as person;
use crate::domain::lifecycle::tests::record;
use crate::domain::lifecycle::{Command, HoldKind, SchoolCircle, Withdrawal};
use crate::domain::view::tests::d;

const TODAY: &str = "2026-11-28";

/// Records `events` on everyone they concern.
fn note(people: &mut [&mut ParticipantRecord], events: &[NewEvent]) {
    for p in people.iter_mut() {
        record(p, events);
    }
}

/// ECTs `e0`, `e1` mentored of record by `m` from 2026-09-02.
fn mentored() -> (ParticipantRecord, ParticipantRecord, ParticipantRecord) {
    let (mut e0, mut e1) = (
        person("e0", ParticipantKind::Ect, "s1", "2026-09-01"),
        person("e1", ParticipantKind::Ect, "s1", "2026-09-01"),
    );
    let mut m = person("m", ParticipantKind::Mentor, "s1", "2026-09-01");
    let mentor = m.clone();
    for ect in [&mut e0, &mut e1] {
        let events =
            registry::assign_mentor(ect, &mentor, Assignment::OfRecord, d("2026-09-02"), d(TODAY)).expect("assigned");
        note(&mut [ect, &mut m], &events);
    }
    (e0, e1, m)
}

fn pause_ect(ect: &mut ParticipantRecord, from: &str, until: &str) {
    let decided =
        lifecycle::pause(ect, format!("p-{}", ect.id), d(from), d(until), String::new(), d(TODAY)).expect("paused");
    record(ect, &decided.events);
}

fn mentor_pause(from: &str, until: &str) -> MentorPause {
    MentorPause { pause_id: "mp".into(), start: d(from), expected_end: d(until), note: String::new() }
}

fn withdraw(p: &mut ParticipantRecord, on: &str) {
    let request = Withdrawal { reason: WithdrawalReason::LeftRole, withdrawal_date: d(on), note: String::new() };
    let decided = lifecycle::withdraw(p, request, None, &SchoolCircle::default(), d(TODAY)).expect("withdrawn");
    record(p, &decided.events);
}

#[test]
fn p1_a_mentor_is_paused_alongside_their_paused_ect_and_only_their_release_is_held() {
    let (mut e0, mut e1, mut m) = mentored();
    withdraw(&mut e1, "2026-11-01");
    pause_ect(&mut e0, "2026-12-01", "2026-12-29");
    let decided =
        pause_alongside(&m, &e0, std::slice::from_ref(&e1), mentor_pause("2026-12-01", "2026-12-15"), d(TODAY))
            .expect("paused alongside");
    assert_eq!(
        decided.commands,
        [Command::PlaceHold {
            participant_id: "m".into(),
            hold_id: "mp".into(),
            kind: HoldKind::Pause,
            from: d("2026-12-01"),
            until: d("2026-12-15"),
        }],
        "P5: accrual continues, so no suspension"
    );
    record(&mut m, &decided.events);
    let view = m.as_of(d("2026-12-02")).expect("v");
    assert_eq!(view.status, TrainingStatus::Paused);
    assert_eq!(view.pause.and_then(|p| p.alongside).as_deref(), Some("e0"));
    assert_eq!(m.as_of(d("2026-12-15")).expect("v").status, TrainingStatus::Active);
}

#[test]
fn p1_a_mentor_with_another_ect_in_training_is_not_paused() {
    let (mut e0, mut e1, m) = mentored();
    pause_ect(&mut e0, "2026-12-01", "2026-12-29");
    let err = pause_alongside(&m, &e0, std::slice::from_ref(&e1), mentor_pause("2026-12-01", "2026-12-15"), d(TODAY))
        .expect_err("e1 in training");
    assert_eq!(err.reason, "MENTOR_HAS_OTHER_ECT_IN_TRAINING");
    assert!(err.message.contains("e1"), "{}", err.message);
    // A deferred ECT is still in training.
    let deferral = lifecycle::Deferral {
        reason: crate::domain::events::DeferralReason::Other,
        deferral_date: d("2026-11-01"),
        expected_return: d("2027-06-01"),
        note: String::new(),
    };
    let decided = lifecycle::defer(&e1, deferral, || "def".into(), d(TODAY)).expect("deferred");
    record(&mut e1, &decided.events);
    let err = pause_alongside(&m, &e0, std::slice::from_ref(&e1), mentor_pause("2026-12-01", "2026-12-15"), d(TODAY))
        .expect_err("e1 deferred");
    assert_eq!(err.reason, "MENTOR_HAS_OTHER_ECT_IN_TRAINING");
}

#[test]
fn p1_a_mentors_pause_lies_within_their_own_ects_pause() {
    let (mut e0, mut e1, m) = mentored();
    withdraw(&mut e1, "2026-11-01");
    let others = std::slice::from_ref(&e1);
    let err = pause_alongside(&m, &e0, others, mentor_pause("2026-12-01", "2026-12-15"), d(TODAY))
        .expect_err("ECT not paused");
    assert_eq!(err.reason, "OUTSIDE_ECT_PAUSE");
    pause_ect(&mut e0, "2026-12-01", "2026-12-15");
    let err =
        pause_alongside(&m, &e0, others, mentor_pause("2026-12-01", "2026-12-22"), d(TODAY)).expect_err("outlasts");
    assert_eq!(err.reason, "OUTSIDE_ECT_PAUSE");
    assert!(err.message.contains("2026-12-15"), "{}", err.message);
    let stranger = person("m2", ParticipantKind::Mentor, "s1", "2026-09-01");
    let err = pause_alongside(&stranger, &e0, &[], mentor_pause("2026-12-01", "2026-12-15"), d(TODAY))
        .expect_err("not theirs");
    assert_eq!(err.reason, "NOT_THEIR_ECT");
}

#[test]
fn p1_induction_coordinators_and_ects_are_not_paused_alongside() {
    let (mut e0, e1, _) = mentored();
    pause_ect(&mut e0, "2026-12-01", "2026-12-15");
    let ic = person("ic", ParticipantKind::InductionCoordinator, "s1", "2026-09-01");
    let err = pause_alongside(&ic, &e0, &[], mentor_pause("2026-12-01", "2026-12-15"), d(TODAY)).expect_err("ic");
    assert_eq!(err.reason, "PAUSE_ONLY_FOR_ECTS");
    let err = lifecycle::pause(&ic, "p".into(), d("2026-12-01"), d("2026-12-15"), String::new(), d(TODAY))
        .expect_err("ic alone");
    assert_eq!(err.reason, "PAUSE_ONLY_FOR_ECTS");
    let err = pause_alongside(&e1, &e0, &[], mentor_pause("2026-12-01", "2026-12-15"), d(TODAY)).expect_err("ect");
    assert_eq!(err.reason, "ALONGSIDE_ONLY_FOR_MENTORS");
}

#[test]
fn p1_p4_a_mentors_pause_ends_with_the_ects_and_extends_only_within_it() {
    let (mut e0, mut e1, mut m) = mentored();
    withdraw(&mut e1, "2026-11-01");
    pause_ect(&mut e0, "2026-12-01", "2026-12-29");
    let others = vec![e1.clone()];
    let decided =
        pause_alongside(&m, &e0, &others, mentor_pause("2026-12-01", "2026-12-15"), d(TODAY)).expect("paused");
    record(&mut m, &decided.events);
    let err = extend_pause_alongside(&m, &e0, &others, d("2027-01-05"), d(TODAY)).expect_err("beyond");
    assert_eq!(err.reason, "OUTSIDE_ECT_PAUSE");
    let extended = extend_pause_alongside(&m, &e0, &others, d("2026-12-22"), d(TODAY)).expect("within");
    record(&mut m, &extended.events);
    assert_eq!(end_pauses_beyond_ect(&m, &e0), Decision::default(), "within the ECT's: nothing to end");
    // The ECT is back early on 10 December: the mentor too, the same day.
    let ended = lifecycle::end_pause(&e0, d("2026-12-10"), d("2026-12-09")).expect("ended");
    record(&mut e0, &ended.events);
    let follow = end_pauses_beyond_ect(&m, &e0);
    assert!(follow.commands.contains(&Command::LiftHold {
        participant_id: "m".into(),
        hold_id: "mp".into(),
        on: d("2026-12-10")
    }));
    assert_eq!(follow.events[0].caused_by.as_deref(), Some("e0"));
    record(&mut m, &follow.events);
    assert_eq!(m.as_of(d("2026-12-10")).expect("v").status, TrainingStatus::Active);
    assert_eq!(end_pauses_beyond_ect(&m, &e0), Decision::default(), "once");
}

#[test]
fn p1_p8_a_deferral_ending_the_ects_pause_ends_the_mentors_and_cancels_one_not_begun() {
    let (mut e0, mut e1, mut m) = mentored();
    withdraw(&mut e1, "2026-11-01");
    pause_ect(&mut e0, "2026-12-01", "2026-12-29");
    let others = vec![e1];
    let first = pause_alongside(&m, &e0, &others, mentor_pause("2026-12-01", "2026-12-08"), d(TODAY)).expect("first");
    record(&mut m, &first.events);
    let second = MentorPause { pause_id: "mp2".into(), ..mentor_pause("2026-12-14", "2026-12-21") };
    let second = pause_alongside(&m, &e0, &others, second, d(TODAY)).expect("second");
    record(&mut m, &second.events);
    // P8: deferred from 5 December, the ECT's pause ends that day.
    let deferral = lifecycle::Deferral {
        reason: crate::domain::events::DeferralReason::Other,
        deferral_date: d("2026-12-05"),
        expected_return: d("2027-06-01"),
        note: String::new(),
    };
    let decided = lifecycle::defer(&e0, deferral, || "def".into(), d(TODAY)).expect("deferred");
    record(&mut e0, &decided.events);
    let follow = end_pauses_beyond_ect(&m, &e0);
    assert_eq!(
        follow.commands,
        [
            Command::LiftHold { participant_id: "m".into(), hold_id: "mp".into(), on: d("2026-12-05") },
            Command::LiftHold { participant_id: "m".into(), hold_id: "mp2".into(), on: d("2026-12-14") },
        ]
    );
    record(&mut m, &follow.events);
    assert_eq!(m.as_of(d("2026-12-15")).expect("v").status, TrainingStatus::Active, "cancelled");
}

/// An IC `ic` covering `e0` (mentor of record `m`), and a second IC `ic2`.
fn covered() -> (ParticipantRecord, ParticipantRecord, ParticipantRecord, ParticipantRecord) {
    let (mut e0, _, mut m) = mentored();
    let mut ic = person("ic", ParticipantKind::InductionCoordinator, "s1", "2026-09-01");
    let ic2 = person("ic2", ParticipantKind::InductionCoordinator, "s1", "2026-09-01");
    let events = registry::assign_mentor(&e0, &ic, Assignment::InterimCover, d("2026-11-02"), d(TODAY)).expect("cover");
    note(&mut [&mut e0, &mut m, &mut ic], &events);
    (e0, m, ic, ic2)
}

#[test]
fn w8_a_named_replacement_takes_over_the_interim_cover_at_once() {
    let (mut e0, _, mut ic, mut ic2) = covered();
    check_replacement_induction_coordinator(&ic, &ic2, d(TODAY), d(TODAY)).expect("a good replacement");
    let events =
        covers_after_withdrawal(&ic, Some(&ic2), std::slice::from_ref(&e0), d(TODAY), d(TODAY)).expect("handed");
    note(&mut [&mut e0, &mut ic, &mut ic2], &events);
    let view = e0.as_of(d(TODAY)).expect("v");
    assert_eq!(view.mentor, Some(("ic2".into(), true)));
    assert_eq!(view.mentor_of_record.as_deref(), Some("m"));
    assert!(ic2.as_of(d(TODAY)).expect("v").mentees.contains(&"e0".to_string()));
    assert!(ic.as_of(d(TODAY)).expect("v").mentees.is_empty());
}

#[test]
fn w8_without_a_replacement_the_leavers_cover_ends_and_the_mentor_of_record_coaches() {
    let (mut e0, _, mut ic, _) = covered();
    let events = covers_after_withdrawal(&ic, None, std::slice::from_ref(&e0), d(TODAY), d(TODAY)).expect("ended");
    note(&mut [&mut e0, &mut ic], &events);
    assert_eq!(e0.as_of(d(TODAY)).expect("v").mentor, Some(("m".into(), false)));
}

#[test]
fn w8_a_bad_replacement_is_refused_with_its_reason() {
    let (_, m, ic, ic2) = covered();
    let check = |replacement: &ParticipantRecord| {
        check_replacement_induction_coordinator(&ic, replacement, d(TODAY), d(TODAY)).expect_err("refused").reason
    };
    assert_eq!(check(&m), "REPLACEMENT_NOT_AN_INDUCTION_COORDINATOR");
    assert_eq!(check(&ic), "REPLACEMENT_IS_THE_SAME_PERSON");
    let elsewhere = person("ic3", ParticipantKind::InductionCoordinator, "s2", "2026-09-01");
    assert_eq!(check(&elsewhere), "REPLACEMENT_AT_ANOTHER_SCHOOL");
    let late = person("ic4", ParticipantKind::InductionCoordinator, "s1", TODAY);
    assert_eq!(
        check_replacement_induction_coordinator(&ic, &late, d("2026-11-27"), d(TODAY)).expect_err("late").reason,
        "REPLACEMENT_NOT_YET_REGISTERED"
    );
    let mut gone = ic2.clone();
    withdraw(&mut gone, "2026-11-01");
    assert_eq!(check(&gone), "REPLACEMENT_WITHDRAWN");
    assert_eq!(
        check_replacement_induction_coordinator(&m, &ic2, d(TODAY), d(TODAY)).expect_err("mentor").reason,
        "REPLACEMENT_ONLY_FOR_INDUCTION_COORDINATORS"
    );
}

/// `e0` and its only-ECT mentor `m`, both withdrawn on 1 November by W6.
fn withdrawn_pair() -> (ParticipantRecord, ParticipantRecord) {
    let (mut e0, _, mut m) = mentored();
    let circle = lifecycle::MentorCircle { mentor: m.clone(), other_ects: vec![], keep_approved: false };
    let request =
        Withdrawal { reason: WithdrawalReason::LeftRole, withdrawal_date: d("2026-11-01"), note: String::new() };
    let decided =
        lifecycle::withdraw(&e0, request, Some(&circle), &SchoolCircle::default(), d(TODAY)).expect("withdrawn");
    note(&mut [&mut e0, &mut m], &decided.events);
    assert_eq!(m.as_of(d(TODAY)).expect("v").status, TrainingStatus::Withdrawn, "W6");
    (e0, m)
}

#[test]
fn w9_a_reinstatement_with_mentor_brings_the_mentor_back_as_the_ects_mentor() {
    let (mut e0, mut m) = withdrawn_pair();
    check_reinstate_with_mentor(&e0, Some(&m), d(TODAY)).expect("m was withdrawn with e0");
    let mut decided = lifecycle::reinstate(&e0, "r1", d(TODAY), None).expect("ect");
    let after = after_reinstatement(&e0, Some(&m), true, "r1", d(TODAY)).expect("mentor");
    assert!(after.notifications.is_empty());
    assert!(after.commands.contains(&Command::RestoreAccess { participant_id: "m".into(), on: d(TODAY) }));
    decided.events.extend(after.events);
    note(&mut [&mut e0, &mut m], &decided.events);
    assert_eq!(m.as_of(d(TODAY)).expect("v").status, TrainingStatus::Active);
    let mut view = e0.as_of(d(TODAY)).expect("v");
    hide_withdrawn_mentors(&mut view, |id| {
        m.as_of(d(TODAY)).is_some_and(|v| v.id == id && v.status == TrainingStatus::Withdrawn)
    });
    assert_eq!(view.mentor, Some(("m".into(), false)));
}

#[test]
fn w9_otherwise_the_ect_comes_back_without_a_mentor_and_the_ecf_lead_is_told() {
    let (mut e0, m) = withdrawn_pair();
    let decided = lifecycle::reinstate(&e0, "r1", d(TODAY), None).expect("ect");
    let after = after_reinstatement(&e0, Some(&m), false, "r1", d(TODAY)).expect("alone");
    assert!(after.events.is_empty(), "the mentor stays withdrawn");
    assert_eq!(after.notifications.iter().map(|n| n.kind).collect::<Vec<_>>(), [NotificationKind::EctWithoutMentor]);
    record(&mut e0, &decided.events);
    let mut view = e0.as_of(d(TODAY)).expect("v");
    let withdrawn = |id: &str| id == "m" && m.timeline().status_on(d(TODAY)) == TrainingStatus::Withdrawn;
    hide_withdrawn_mentors(&mut view, withdrawn);
    assert_eq!((view.mentor, view.mentor_of_record), (None, None), "a withdrawn mentor is never shown");
    // Asking for a mentor who was not withdrawn with the ECT is refused.
    let (e1, _, other) = mentored();
    assert_eq!(
        check_reinstate_with_mentor(&e1, Some(&other), d(TODAY)).expect_err("none").reason,
        "NO_MENTOR_WITHDRAWN_WITH_ECT"
    );
}

#[test]
fn s1_a_moved_ects_mentoring_ends_on_the_move_date_unless_kept() {
    let (mut e0, _, mut m) = mentored();
    let (kept, left) = mentoring_after_move(&e0, d("2026-11-20"), true, d(TODAY)).expect("kept");
    assert_eq!((kept, left), (vec![], None));
    let (ended, left) = mentoring_after_move(&e0, d("2026-11-20"), false, d(TODAY)).expect("ended");
    assert_eq!(left.as_deref(), Some("m"));
    note(&mut [&mut e0, &mut m], &ended);
    let view = e0.as_of(d("2026-11-20")).expect("v");
    assert_eq!((view.mentor, view.mentor_of_record), (None, None));
    assert_eq!(e0.as_of(d("2026-11-19")).expect("v").mentor_of_record.as_deref(), Some("m"), "history kept");
    assert!(!m.as_of(d("2026-11-20")).expect("v").mentees.contains(&"e0".to_string()));
    let mentor = person("m2", ParticipantKind::Mentor, "s1", "2026-09-01");
    assert_eq!(
        mentoring_after_move(&mentor, d("2026-11-20"), true, d(TODAY)).expect_err("not an ECT").reason,
        "KEEP_MENTOR_ONLY_FOR_ECTS"
    );
}

#[test]
fn s1_d9_a_move_ends_the_mentors_derived_deferral_on_the_move_date() {
    let (mut e0, mut e1, mut m) = mentored();
    withdraw(&mut e1, "2026-09-10");
    let deferral = lifecycle::Deferral {
        reason: crate::domain::events::DeferralReason::Other,
        deferral_date: d("2026-10-01"),
        expected_return: d("2027-06-01"),
        note: String::new(),
    };
    let decided = lifecycle::defer(&e0, deferral, || "def".into(), d(TODAY)).expect("deferred");
    record(&mut e0, &decided.events);
    let ects = vec![e0.clone(), e1.clone()];
    let before = crate::domain::mentoring::derived_deferrals(&m, &ects);
    assert_eq!(before.last().map(|s| s.until), Some(d("2027-06-01")));
    let (ended, _) = mentoring_after_move(&e0, d("2026-11-20"), false, d(TODAY)).expect("ended");
    note(&mut [&mut e0, &mut m], &ended);
    let after = crate::domain::mentoring::derived_deferrals(&m, &[e0, e1]);
    assert_eq!(after.last().map(|s| (s.from, s.until)), Some((d("2026-10-01"), d("2026-11-20"))));
}
