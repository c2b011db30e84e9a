use super::*;
use crate::domain::events::WithdrawalReason;
use crate::domain::lifecycle::tests::record;
use crate::domain::lifecycle::{self, Deferral, SchoolCircle, Withdrawal};
use crate::domain::registry::{self, Assignment};
use crate::domain::view::tests::d;
use proptest::prelude::*;

const TODAY: &str = "2026-11-28";

fn person(id: &str, kind: ParticipantKind) -> ParticipantRecord {
    lifecycle::tests::person(id, kind, "2026-09-01")
}

/// A mentor, an IC and ECTs, with every decision recorded and the
/// mentor's derived deferral reconciled after each, as the service does.
struct School {
    mentor: ParticipantRecord,
    other_mentor: ParticipantRecord,
    ic: ParticipantRecord,
    ects: Vec<ParticipantRecord>,
    today: NaiveDate,
}

impl School {
    fn new(ects: usize) -> Self {
        School {
            mentor: person("m", ParticipantKind::Mentor),
            other_mentor: person("m2", ParticipantKind::Mentor),
            ic: person("ic", ParticipantKind::InductionCoordinator),
            ects: (0..ects).map(|i| person(&format!("e{i}"), ParticipantKind::Ect)).collect(),
            today: d(TODAY),
        }
    }

    fn everyone(&mut self) -> Vec<&mut ParticipantRecord> {
        let mut all: Vec<&mut ParticipantRecord> = vec![&mut self.mentor, &mut self.other_mentor, &mut self.ic];
        all.extend(self.ects.iter_mut());
        all
    }

    /// Records the events and reconciles the mentor; answers the reconciliation.
    fn record(&mut self, events: &[NewEvent]) -> Decision {
        for p in self.everyone() {
            record(p, events);
        }
        let desired = derived_deferrals(&self.mentor, &self.ects);
        let decision = reconcile(&self.mentor, &desired, None, self.today);
        let mine = decision.events.clone();
        record(&mut self.mentor, &mine);
        decision
    }

    fn assign(&mut self, ect: usize, mentor: &str, how: Assignment, on: &str) -> Decision {
        let who = match mentor {
            "m" => self.mentor.clone(),
            "m2" => self.other_mentor.clone(),
            _ => self.ic.clone(),
        };
        let events = registry::assign_mentor(&self.ects[ect], &who, how, d(on), self.today).expect("assigned");
        self.record(&events)
    }

    fn defer(&mut self, ect: usize, from: &str, until: &str) -> Decision {
        let request = Deferral {
            reason: DeferralReason::ParentalLeave,
            deferral_date: d(from),
            expected_return: d(until),
            note: String::new(),
        };
        let id = format!("def-{ect}-{from}");
        let decision = lifecycle::defer(&self.ects[ect], request, || id, self.today).expect("deferred");
        self.record(&decision.events)
    }

    fn mentor_status(&self, on: &str) -> TrainingStatus {
        self.mentor.as_of(d(on)).expect("registered").status
    }
}

#[test]
fn d9_deferring_the_only_ect_defers_the_mentor_with_the_same_dates() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    let sent = s.defer(0, "2026-12-01", "2027-09-01");
    let span = s.mentor.as_of(d("2027-01-01")).expect("v").deferral.expect("mentor deferred");
    assert_eq!(
        (span.from, span.expected_return, span.cascaded_from.as_deref()),
        (d("2026-12-01"), d("2027-09-01"), Some("e0"))
    );
    let id = derived_id("m", d("2026-12-01"));
    assert!(sent.commands.contains(&Command::PlaceHold {
        participant_id: "m".into(),
        hold_id: id.clone(),
        kind: HoldKind::Deferral,
        from: d("2026-12-01"),
        until: d("2027-09-01"),
    }));
    assert!(sent.commands.contains(&Command::SuspendAccrual {
        participant_id: "m".into(),
        suspension_id: id,
        from: d("2026-12-01"),
        until: d("2027-09-01"),
    }));
}

#[test]
fn d9_a_mentor_with_another_ect_in_training_is_not_deferred() {
    let mut s = School::new(2);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.assign(1, "m", Assignment::OfRecord, "2026-09-02");
    let sent = s.defer(0, "2026-12-01", "2027-09-01");
    assert_eq!(sent, Decision::default(), "nothing to send");
    assert_eq!(s.mentor_status("2027-01-01"), TrainingStatus::Active);
}

#[test]
fn d9_the_mentor_returns_when_the_first_of_two_deferred_ects_returns() {
    // The reproduced case: A deferred first and back on 4 January, B
    // deferred later for longer; the mentor is active again with A.
    let mut s = School::new(2);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.assign(1, "m", Assignment::OfRecord, "2026-09-02");
    s.defer(0, "2026-11-16", "2027-01-04");
    s.defer(1, "2026-12-07", "2027-09-06");
    assert_eq!(s.mentor_status("2026-12-06"), TrainingStatus::Active);
    assert_eq!(s.mentor_status("2026-12-07"), TrainingStatus::Deferred);
    assert_eq!(s.mentor_status("2027-01-04"), TrainingStatus::Active);
    assert_eq!(s.mentor_status("2027-03-01"), TrainingStatus::Active);
}

#[test]
fn d9_a_backdated_deferral_defers_the_mentor_from_when_the_mentoring_began() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-11-02");
    s.defer(0, "2026-10-01", "2027-06-01");
    assert_eq!(s.mentor_status("2026-11-01"), TrainingStatus::Active);
    assert_eq!(s.mentor_status("2026-11-02"), TrainingStatus::Deferred);
    assert_eq!(s.mentor_status("2027-06-01"), TrainingStatus::Active);
}

#[test]
fn d9_a_recomputation_that_finds_the_same_interval_sends_nothing_and_a_changed_one_keeps_its_id() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.defer(0, "2026-12-01", "2027-09-01");
    let again = reconcile(&s.mentor, &derived_deferrals(&s.mentor, &s.ects), None, s.today);
    assert_eq!(again, Decision::default());
    let changed = lifecycle::change_return_date(&s.ects[0], d("2027-04-12"), s.today).expect("changed");
    let sent = s.record(&changed.events);
    let id = derived_id("m", d("2026-12-01"));
    assert!(sent.commands.contains(&Command::PlaceHold {
        participant_id: "m".into(),
        hold_id: id,
        kind: HoldKind::Deferral,
        from: d("2026-12-01"),
        until: d("2027-04-12"),
    }));
    assert_eq!(s.mentor_status("2027-04-12"), TrainingStatus::Active);
}

#[test]
fn d9_a_second_ect_assigned_ends_the_mentors_deferral_and_a_vanished_interval_is_lifted() {
    let mut s = School::new(2);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.defer(0, "2026-10-01", "2027-06-01");
    assert_eq!(s.mentor_status("2026-11-01"), TrainingStatus::Deferred);
    // An ECT in training assigned from the deferral's first day: the
    // mentor was never deferred, and the hold is lifted on its first day.
    let sent = s.assign(1, "m", Assignment::OfRecord, "2026-10-01");
    let id = derived_id("m", d("2026-10-01"));
    assert!(sent.commands.contains(&Command::LiftHold {
        participant_id: "m".into(),
        hold_id: id.clone(),
        on: d("2026-10-01")
    }));
    assert!(sent.commands.contains(&Command::ResumeAccrual {
        participant_id: "m".into(),
        suspension_id: id,
        on: d("2026-10-01")
    }));
    assert_eq!(s.mentor_status("2026-11-01"), TrainingStatus::Active);
}

#[test]
fn m3_an_interim_cover_neither_withdraws_nor_defers_the_mentor_of_record() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    let sent = s.assign(0, "ic", Assignment::InterimCover, "2026-11-02");
    assert_eq!(sent, Decision::default());
    let view = s.ects[0].as_of(d(TODAY)).expect("v");
    assert_eq!(view.mentor, Some(("ic".into(), true)));
    assert_eq!(view.mentor_of_record.as_deref(), Some("m"));
    assert_eq!(s.mentor_status(TODAY), TrainingStatus::Active);
    assert!(
        s.mentor.as_of(d(TODAY)).expect("v").mentees.contains(&"e0".to_string()),
        "the mentor of record keeps the ECT"
    );
    // The cover ends; the mentor of record coaches again.
    let ended = registry::end_mentor_cover(&s.ects[0], d(TODAY), s.today).expect("ended");
    s.record(&ended);
    assert_eq!(s.ects[0].as_of(d(TODAY)).expect("v").mentor, Some(("m".into(), false)));
    let err = registry::end_mentor_cover(&s.ects[0], d(TODAY), s.today).expect_err("no cover");
    assert_eq!(err.reason, "NO_MENTOR_COVER");
}

#[test]
fn m5_a_covered_ect_still_counts_as_the_mentor_of_records_for_d9() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.assign(0, "ic", Assignment::InterimCover, "2026-11-02");
    s.defer(0, "2026-12-01", "2027-03-01");
    assert_eq!(s.mentor_status("2027-01-01"), TrainingStatus::Deferred);
}

#[test]
fn m2_a_temporary_replacement_ends_on_its_date_and_the_ect_goes_back_to_the_mentor_of_record() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.assign(0, "m2", Assignment::TemporaryUntil(d("2027-01-04")), "2026-11-02");
    let during = s.ects[0].as_of(d("2026-12-01")).expect("v");
    assert_eq!(during.mentor, Some(("m2".into(), false)));
    assert_eq!(during.mentor_of_record.as_deref(), Some("m"));
    assert_eq!(s.ects[0].as_of(d("2027-01-04")).expect("v").mentor, Some(("m".into(), false)));
    assert!(!s.other_mentor.as_of(d("2027-01-04")).expect("v").mentees.contains(&"e0".to_string()));
    // M5: deferring the ECT meanwhile defers the mentor of record, not the stand-in.
    s.defer(0, "2026-12-01", "2027-03-01");
    assert_eq!(s.mentor_status("2027-01-01"), TrainingStatus::Deferred);
    assert_eq!(derived_deferrals(&s.other_mentor, &s.ects), vec![]);
}

#[test]
fn w6_a_withdrawn_ect_no_longer_counts_so_the_mentor_is_not_deferred_for_it() {
    let mut s = School::new(2);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.assign(1, "m", Assignment::OfRecord, "2026-09-02");
    s.defer(0, "2026-12-01", "2027-09-01");
    assert_eq!(s.mentor_status("2027-01-01"), TrainingStatus::Active);
    let request = Withdrawal { reason: WithdrawalReason::LeftRole, withdrawal_date: d(TODAY), note: String::new() };
    let withdrawn =
        lifecycle::withdraw(&s.ects[1], request, None, &SchoolCircle::default(), s.today).expect("withdrawn");
    s.record(&withdrawn.events);
    assert_eq!(s.mentor_status("2027-01-01"), TrainingStatus::Deferred, "only the deferred ECT is left");
}

#[test]
fn d9_a_version_1_cascaded_deferral_is_read_as_the_derived_one_and_keeps_its_id() {
    // Version 1 copied the ECT's deferral onto the mentor at the time of
    // the call, under a fresh id, with `cascaded_from` set.
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    let request = Deferral {
        reason: DeferralReason::ParentalLeave,
        deferral_date: d("2026-12-01"),
        expected_return: d("2027-09-01"),
        note: String::new(),
    };
    let ect_deferral = lifecycle::defer(&s.ects[0], request, || "v1-ect".into(), s.today).expect("deferred");
    for e in s.ects.iter_mut() {
        record(e, &ect_deferral.events);
    }
    let v1_cascade = NewEvent {
        participant_id: "m".into(),
        effective_date: d("2026-12-01"),
        kind: EventKind::Deferred {
            deferral_id: "v1-mentor".into(),
            reason: DeferralReason::ParentalLeave,
            deferral_date: d("2026-12-01"),
            expected_return: d("2027-09-01"),
            note: String::new(),
            cascaded_from: Some("e0".into()),
        },
        caused_by: Some("e0".into()),
    };
    record(&mut s.mentor, &[v1_cascade]);
    // Read as the derived deferral: nothing to send, and D6 applies.
    let again = reconcile(&s.mentor, &derived_deferrals(&s.mentor, &s.ects), None, s.today);
    assert_eq!(again, Decision::default());
    let err = lifecycle::change_return_date(&s.mentor, d("2027-02-01"), s.today).expect_err("derived");
    assert_eq!(err.reason, "CASCADED_FROM_ECT");
    assert!(err.message.contains("e0"), "{}", err.message);
    // A change through the ECT moves the version 1 hold under its own id.
    let changed = lifecycle::change_return_date(&s.ects[0], d("2027-02-01"), s.today).expect("changed");
    let sent = s.record(&changed.events);
    assert!(sent.commands.contains(&Command::PlaceHold {
        participant_id: "m".into(),
        hold_id: "v1-mentor".into(),
        kind: HoldKind::Deferral,
        from: d("2026-12-01"),
        until: d("2027-02-01"),
    }));
}

#[test]
fn d7_a_return_that_happens_by_itself_is_recorded_once_dated_its_return_date() {
    let mut s = School::new(1);
    s.assign(0, "m", Assignment::OfRecord, "2026-09-02");
    s.defer(0, "2026-10-01", "2027-01-04");
    assert!(lifecycle::due_returns(&s.ects[0], d("2027-01-03")).is_empty(), "not yet due");
    let due = lifecycle::due_returns(&s.ects[0], d("2027-01-10"));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].effective_date, d("2027-01-04"));
    s.today = d("2027-01-10");
    s.record(&due);
    assert!(lifecycle::due_returns(&s.ects[0], d("2027-01-10")).is_empty(), "recorded once");
    assert_eq!(lifecycle::due_returns(&s.mentor, d("2027-01-10")).len(), 1, "the mentor's return too");
}

#[test]
fn d9_derived_ids_are_stable_uuids() {
    let mentor = "0192f0a4-7b1c-7cc3-9d2e-1234567890ab";
    let id = derived_id(mentor, d("2026-12-01"));
    assert_eq!(id, derived_id(mentor, d("2026-12-01")));
    assert_ne!(id, derived_id(mentor, d("2026-12-02")));
    assert!(uuid::Uuid::parse_str(&id).is_ok());
}

#[derive(Debug, Clone)]
enum Step {
    Assign { ect: usize, mentor: u8, day: i64 },
    EndCover { ect: usize, day: i64 },
    Defer { ect: usize, from: i64, days: i64 },
    ChangeReturn { ect: usize, days: i64 },
    Return { ect: usize, day: i64 },
    Withdraw { ect: usize, day: i64 },
    Wait { days: i64 },
}

impl Step {
    /// The same step on one of the first `ects` ECTs.
    fn for_ects(&self, ects: usize) -> Step {
        match *self {
            Step::Assign { ect, mentor, day } => Step::Assign { ect: ect % ects, mentor, day },
            Step::EndCover { ect, day } => Step::EndCover { ect: ect % ects, day },
            Step::Defer { ect, from, days } => Step::Defer { ect: ect % ects, from, days },
            Step::ChangeReturn { ect, days } => Step::ChangeReturn { ect: ect % ects, days },
            Step::Return { ect, day } => Step::Return { ect: ect % ects, day },
            Step::Withdraw { ect, day } => Step::Withdraw { ect: ect % ects, day },
            Step::Wait { days } => Step::Wait { days },
        }
    }
}

fn step(ects: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..ects, 0..3u8, -60..=0i64).prop_map(|(ect, mentor, day)| Step::Assign { ect, mentor, day }),
        1 => (0..ects, -30..=0i64).prop_map(|(ect, day)| Step::EndCover { ect, day }),
        4 => (0..ects, -90..=90i64, 30..=300i64).prop_map(|(ect, from, days)| Step::Defer { ect, from, days }),
        2 => (0..ects, 1..=300i64).prop_map(|(ect, days)| Step::ChangeReturn { ect, days }),
        2 => (0..ects, -60..=0i64).prop_map(|(ect, day)| Step::Return { ect, day }),
        1 => (0..ects, -30..=0i64).prop_map(|(ect, day)| Step::Withdraw { ect, day }),
        2 => (1..=120i64).prop_map(|days| Step::Wait { days }),
    ]
}

fn shift(day: NaiveDate, days: i64) -> NaiveDate {
    day.checked_add_signed(chrono::Duration::days(days)).unwrap_or(day)
}

/// Applies one step through the domain's own decisions; a refusal changes nothing.
fn apply(s: &mut School, step: &Step, n: usize) {
    let today = s.today;
    let events = match *step {
        Step::Assign { ect, mentor, day } => {
            let (who, how) = match mentor {
                0 => (s.mentor.clone(), Assignment::OfRecord),
                1 => (s.other_mentor.clone(), Assignment::TemporaryUntil(shift(today, 40))),
                _ => (s.ic.clone(), Assignment::InterimCover),
            };
            registry::assign_mentor(&s.ects[ect], &who, how, shift(today, day), today).ok()
        }
        Step::EndCover { ect, day } => registry::end_mentor_cover(&s.ects[ect], shift(today, day), today).ok(),
        Step::Defer { ect, from, days } => {
            let from = shift(today, from);
            let request = Deferral {
                reason: DeferralReason::Other,
                deferral_date: from,
                expected_return: shift(from, days),
                note: String::new(),
            };
            lifecycle::defer(&s.ects[ect], request, || format!("def-{n}"), today).ok().map(|d| d.events)
        }
        Step::ChangeReturn { ect, days } => {
            lifecycle::change_return_date(&s.ects[ect], shift(today, days), today).ok().map(|d| d.events)
        }
        Step::Return { ect, day } => {
            lifecycle::record_return(&s.ects[ect], shift(today, day), today).ok().map(|d| d.events)
        }
        Step::Withdraw { ect, day } => {
            let request =
                Withdrawal { reason: WithdrawalReason::Other, withdrawal_date: shift(today, day), note: String::new() };
            lifecycle::withdraw(&s.ects[ect], request, None, &SchoolCircle::default(), today).ok().map(|d| d.events)
        }
        Step::Wait { days } => {
            s.today = shift(today, days);
            None
        }
    };
    if let Some(events) = events {
        s.record(&events);
    }
}

/// D9 read literally, one day at a time.
fn should_be_deferred(s: &School, day: NaiveDate) -> bool {
    let mentored: Vec<&ParticipantRecord> = s
        .ects
        .iter()
        .filter(|e| {
            e.as_of(day)
                .is_some_and(|v| v.mentor_of_record.as_deref() == Some("m") && v.status != TrainingStatus::Withdrawn)
        })
        .collect();
    !mentored.is_empty() && mentored.iter().all(|e| e.as_of(day).is_some_and(|v| v.status == TrainingStatus::Deferred))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// D9, M2, M3, M5: whatever the sequence of assignments, covers,
    /// deferrals, returns and withdrawals, the mentor's recorded status is
    /// deferred on exactly the days all their current ECTs of record are,
    /// and recomputing once more sends nothing.
    #[test]
    fn d9_the_mentor_is_deferred_exactly_on_the_days_all_their_ects_are(
        ects in 2..=3usize,
        steps in proptest::collection::vec(step(3), 1..30),
    ) {
        let mut s = School::new(ects);
        for (n, st) in steps.iter().enumerate() {
            apply(&mut s, &st.for_ects(ects), n);
        }
        let again = reconcile(&s.mentor, &derived_deferrals(&s.mentor, &s.ects), None, s.today);
        prop_assert_eq!(again, Decision::default(), "a second recomputation sends nothing");
        let mut day = d("2026-09-01");
        let last = shift(s.today, 800);
        while day <= last {
            let deferred = s.mentor.as_of(day).is_some_and(|v| v.status == TrainingStatus::Deferred);
            prop_assert_eq!(deferred, should_be_deferred(&s, day), "on {}", day);
            day = shift(day, 1);
        }
    }
}
