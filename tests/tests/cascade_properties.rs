//! Issue 13, item 6: random sequences of mentor assignments, temporary
//! replacements, interim covers, deferrals, return-date changes, returns and
//! withdrawals for one mentor with two or three ECTs, sent through gRPC on
//! SQLite and PostgreSQL; then, day by day, the D9 invariant (the mentor is
//! deferred exactly on the days all their current ECTs of record are, M5) in
//! the participant service, and the same days held in content release and
//! suspended in payments (D4).
//!
//! Each case prints its seed; `STEPLAB_CASCADE_SEED=<seed>` replays one case,
//! `STEPLAB_CASCADE_CASES=<n>` runs more (the soak command runs 60).

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use chrono::{Duration as Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::content::v1::{GetReleaseStateRequest, HoldKind};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1::{AccrualState, GetAccrualRequest};
use steplab_tests::fixtures::{World, date, register, registration, status_on, world};
use steplab_tests::{Stack, TODAY, on_both_backends, wait_until_delivered};
use tonic::Code;

const DEFAULT_CASES: u64 = 6;
const DELIVERY: Duration = Duration::from_secs(60);

fn today() -> NaiveDate {
    NaiveDate::parse_from_str(TODAY, "%Y-%m-%d").expect("TODAY is a date")
}

fn wire(day: NaiveDate) -> Option<Date> {
    use chrono::Datelike;
    date(day.year(), day.month() as i32, day.day() as i32)
}

fn shift(day: NaiveDate, days: i64) -> NaiveDate {
    day + Days::days(days)
}

/// Who an assignment gives the ECT.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// The mentor of record (M1).
    Mentor,
    /// Another mentor, temporarily, until a date (M2).
    Replacement { until: i64 },
    /// The school's IC as interim mentor (M3).
    Cover,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Assign { ect: usize, who: Who, day: i64 },
    EndCover { ect: usize, day: i64 },
    Defer { ect: usize, from: i64, days: i64 },
    ChangeReturn { ect: usize, days: i64 },
    Return { ect: usize, day: i64 },
    Withdraw { ect: usize, day: i64 },
}

fn random_step(rng: &mut StdRng, ects: usize) -> Step {
    let ect = rng.random_range(0..ects);
    match rng.random_range(0..14) {
        0..=1 => Step::Assign { ect, who: Who::Mentor, day: rng.random_range(-60..=0) },
        2 => Step::Assign {
            ect,
            who: Who::Replacement { until: rng.random_range(1..=120) },
            day: rng.random_range(-30..=0),
        },
        3 => Step::Assign { ect, who: Who::Cover, day: rng.random_range(-30..=0) },
        4 => Step::EndCover { ect, day: rng.random_range(-20..=0) },
        // Longer than 42 days (D13), backdated or planned.
        5..=8 => Step::Defer { ect, from: rng.random_range(-90..=90), days: rng.random_range(43..=300) },
        9..=10 => Step::ChangeReturn { ect, days: rng.random_range(1..=300) },
        11..=12 => Step::Return { ect, day: rng.random_range(-60..=0) },
        _ => Step::Withdraw { ect, day: rng.random_range(-30..=0) },
    }
}

struct Cast {
    ects: Vec<String>,
    mentor: String,
    other_mentor: String,
    ic: String,
}

async fn cast(stack: &Stack, w: &World, case: u32, ects: usize) -> Cast {
    let on = date(2026, 9, 1);
    // TRNs are unique per kind: each case has its own ten.
    let mut trn = 4_100_000u32 + case * 10;
    let mut next = |kind: ParticipantKind| {
        trn += 1;
        registration(
            &w.school_a,
            kind,
            &if kind == ParticipantKind::InductionCoordinator { String::new() } else { trn.to_string() },
            on,
        )
    };
    let mentor = register(stack, &w.dp1, next(ParticipantKind::Mentor)).await.participant_id;
    let other_mentor = register(stack, &w.dp1, next(ParticipantKind::Mentor)).await.participant_id;
    let ic = register(stack, &w.dp1, next(ParticipantKind::InductionCoordinator)).await.participant_id;
    let mut ids = Vec::new();
    for _ in 0..ects {
        let ect = register(stack, &w.dp1, next(ParticipantKind::Ect)).await.participant_id;
        ids.push(ect);
    }
    let c = Cast { ects: ids, mentor, other_mentor, ic };
    for ect in &c.ects {
        let request = assignment(ect, &c.mentor, false, date(2026, 9, 2), None);
        lead(stack, w).await.assign_mentor(request).await.expect("first assignment");
    }
    c
}

fn assignment(
    ect: &str,
    mentor: &str,
    interim: bool,
    on: Option<Date>,
    until: Option<Date>,
) -> pb::AssignMentorRequest {
    pb::AssignMentorRequest {
        validate_only: false,
        ect_id: ect.into(),
        mentor_id: mentor.into(),
        interim,
        effective_date: on,
        idempotency_key: String::new(),
        until,
    }
}

async fn lead(stack: &Stack, w: &World) -> steplab_tests::Participants {
    let token = stack.token(Role::EcfLead, None, &[&w.dp1]);
    stack.participants(Some(&token)).await
}

/// Sends one step. A refusal by the rules (the random step did not fit the
/// history) is fine and must change nothing; any other failure fails the test.
async fn send(stack: &Stack, w: &World, c: &Cast, step: Step) -> Result<(), tonic::Status> {
    let t = today();
    let mut lead = lead(stack, w).await;
    let result = match step {
        Step::Assign { ect, who, day } => {
            let on = wire(shift(t, day));
            match who {
                Who::Mentor => {
                    lead.assign_mentor(assignment(&c.ects[ect], &c.mentor, false, on, None)).await.map(|_| ())
                }
                Who::Replacement { until } => lead
                    .assign_mentor(assignment(&c.ects[ect], &c.other_mentor, false, on, wire(shift(t, until))))
                    .await
                    .map(|_| ()),
                Who::Cover => {
                    let token = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
                    let mut ic = stack.participants(Some(&token)).await;
                    ic.assign_mentor(assignment(&c.ects[ect], &c.ic, true, on, None)).await.map(|_| ())
                }
            }
        }
        Step::EndCover { ect, day } => lead
            .end_mentor_cover(pb::EndMentorCoverRequest {
                validate_only: false,
                ect_id: c.ects[ect].clone(),
                end_date: wire(shift(t, day)),
                idempotency_key: String::new(),
            })
            .await
            .map(|_| ()),
        Step::Defer { ect, from, days } => {
            let from = shift(t, from);
            lead.defer_participant(pb::DeferParticipantRequest {
                validate_only: false,
                participant_id: c.ects[ect].clone(),
                reason: DeferralReason::LongTermSickness as i32,
                deferral_date: wire(from),
                expected_return_date: wire(shift(from, days)),
                note: String::new(),
                idempotency_key: String::new(),
            })
            .await
            .map(|_| ())
        }
        Step::ChangeReturn { ect, days } => lead
            .change_return_date(pb::ChangeReturnDateRequest {
                validate_only: false,
                participant_id: c.ects[ect].clone(),
                expected_return_date: wire(shift(t, days)),
                idempotency_key: String::new(),
            })
            .await
            .map(|_| ()),
        Step::Return { ect, day } => lead
            .record_return(pb::RecordReturnRequest {
                validate_only: false,
                participant_id: c.ects[ect].clone(),
                return_date: wire(shift(t, day)),
                idempotency_key: String::new(),
            })
            .await
            .map(|_| ()),
        Step::Withdraw { ect, day } => lead
            .withdraw_participant(pb::WithdrawParticipantRequest {
                participant_id: c.ects[ect].clone(),
                reason: WithdrawalReason::LeftTeachingProfession as i32,
                withdrawal_date: wire(shift(t, day)),
                note: String::new(),
                idempotency_key: String::new(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    };
    match result {
        Err(status) if matches!(status.code(), Code::FailedPrecondition | Code::InvalidArgument) => Err(status),
        Err(status) => panic!("{step:?} failed unexpectedly: {status:?}"),
        Ok(()) => Ok(()),
    }
}

fn status(p: &pb::Participant) -> TrainingStatus {
    TrainingStatus::try_from(p.status).unwrap_or(TrainingStatus::Unspecified)
}

/// The days worth checking: weekly over the programme, and each date a step
/// named with the day before it.
fn days_to_check(steps: &[Step]) -> Vec<NaiveDate> {
    let t = today();
    let mut days: Vec<NaiveDate> = Vec::new();
    // Everyone is registered on 1 September 2026: no view exists before it.
    let first = NaiveDate::from_ymd_opt(2026, 9, 1).expect("date");
    let mut day = first;
    while day <= shift(t, 420) {
        days.push(day);
        day = shift(day, 7);
    }
    for step in steps {
        let named = match *step {
            Step::Assign { day, .. }
            | Step::EndCover { day, .. }
            | Step::Return { day, .. }
            | Step::Withdraw { day, .. } => {
                vec![shift(t, day)]
            }
            Step::Defer { from, days, .. } => vec![shift(t, from), shift(t, from + days)],
            Step::ChangeReturn { days, .. } => vec![shift(t, days)],
        };
        for d in named {
            days.push(d);
            days.push(shift(d, -1));
        }
    }
    days.retain(|d| *d >= first);
    days.sort();
    days.dedup();
    days
}

async fn one_case(stack: &Stack, w: &World, case: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let ects = rng.random_range(2..=3);
    let c = cast(stack, w, case, ects).await;
    let steps: Vec<Step> = (0..rng.random_range(4..=12)).map(|_| random_step(&mut rng, ects)).collect();
    let mut log = Vec::new();
    for step in &steps {
        let outcome = send(stack, w, &c, *step).await;
        log.push(format!("{step:?} -> {}", outcome.map_or_else(|s| s.message().to_owned(), |()| "ok".into())));
    }
    let context = || format!("seed {seed}, {ects} ECTs, steps:\n  {}", log.join("\n  "));
    wait_until_delivered(stack, DELIVERY).await;
    let service = stack.token(Role::Service, None, &[]);
    let mut content = stack.content(Some(&service)).await;
    let mut payments = stack.payments(Some(&service)).await;
    for day in days_to_check(&steps) {
        let on = wire(day);
        let mut mentored = Vec::new();
        for ect in &c.ects {
            let view = status_on(stack, ect, on).await;
            if view.mentor_of_record_id == c.mentor && status(&view) != TrainingStatus::Withdrawn {
                mentored.push(status(&view));
            }
        }
        let expected = !mentored.is_empty() && mentored.iter().all(|s| *s == TrainingStatus::Deferred);
        let mentor = status(&status_on(stack, &c.mentor, on).await);
        assert_eq!(
            mentor == TrainingStatus::Deferred,
            expected,
            "D9 on {day}: the mentor is {mentor:?}; {}",
            context()
        );
        let release = content
            .get_release_state(GetReleaseStateRequest { participant_id: c.mentor.clone(), as_of: on })
            .await
            .expect("release state")
            .into_inner();
        let held = release.active_holds.iter().any(|h| h.kind == HoldKind::Deferral as i32);
        assert_eq!(held, expected, "D4 content release on {day}: deferral hold {held}; {}", context());
        let accrual = payments
            .get_accrual(GetAccrualRequest { participant_id: c.mentor.clone(), as_of: on })
            .await
            .expect("accrual")
            .into_inner();
        let suspended = accrual.state == AccrualState::Suspended as i32;
        assert_eq!(suspended, expected, "D4 payments on {day}: suspended {suspended}; {}", context());
    }
}

fn cases() -> Vec<u64> {
    if let Some(seed) = std::env::var("STEPLAB_CASCADE_SEED").ok().and_then(|s| s.trim().parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("STEPLAB_CASCADE_CASES").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(DEFAULT_CASES);
    let base: u64 = rand::rng().random();
    (0..n).map(|i| base.wrapping_add(i)).collect()
}

/// D9, M2, M3, M5, D4: the mentor's derived deferral, day by day, in all three services.
async fn d9_random_sequences_keep_the_mentor_deferred_exactly_when_all_their_ects_are(stack: &Stack) {
    let w = world(stack).await;
    for (case, seed) in (0u32..).zip(cases()) {
        println!("cascade case seed {seed} (replay with STEPLAB_CASCADE_SEED={seed})");
        one_case(stack, &w, case, seed).await;
    }
}

on_both_backends!(d9_random_sequences_keep_the_mentor_deferred_exactly_when_all_their_ects_are);
