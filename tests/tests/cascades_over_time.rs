//! Issue 13, "cascades over time" (DOMAIN.md version 2), over real gRPC on
//! SQLite and PostgreSQL: the five participant-side sequences that version 1
//! got wrong, each checked against content release and payments (no drift).

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::config::ServiceName;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{World, assert_agree, date, register, registration, status_on, world};
use steplab_tests::{Stack, on_both_backends, on_both_backends_mut, wait_until_delivered};
use tonic::Code;
use tonic_types::StatusExt;

const DELIVERY: Duration = Duration::from_secs(30);

async fn ect_and_mentor(
    stack: &Stack,
    w: &World,
    trn: u32,
    ect_on: Option<Date>,
    assigned_on: Option<Date>,
) -> (String, String) {
    let ect = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, &format!("{trn}"), ect_on)).await;
    let mentor = register(
        stack,
        &w.dp1,
        registration(&w.school_a, ParticipantKind::Mentor, &format!("{}", trn + 1), date(2026, 9, 1)),
    )
    .await;
    assign(stack, w, &ect.participant_id, &mentor.participant_id, assigned_on).await;
    (ect.participant_id, mentor.participant_id)
}

async fn assign(stack: &Stack, w: &World, ect: &str, mentor: &str, on: Option<Date>) {
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    stack
        .participants(Some(&lead))
        .await
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.into(),
            mentor_id: mentor.into(),
            interim: false,
            effective_date: on,
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("assign mentor");
}

async fn lead(stack: &Stack, w: &World) -> steplab_tests::Participants {
    let token = stack.token(Role::EcfLead, None, &[&w.dp1]);
    stack.participants(Some(&token)).await
}

fn defer(id: &str, from: Option<Date>, until: Option<Date>) -> pb::DeferParticipantRequest {
    pb::DeferParticipantRequest {
        validate_only: false,
        participant_id: id.into(),
        reason: DeferralReason::ParentalLeave as i32,
        deferral_date: from,
        expected_return_date: until,
        note: String::new(),
        idempotency_key: String::new(),
    }
}

fn status(p: &pb::Participant) -> TrainingStatus {
    TrainingStatus::try_from(p.status).unwrap_or(TrainingStatus::Unspecified)
}

/// M3, W6: an IC's interim cover of an ECT whose mentor has no other ECT
/// leaves the mentor of record active, enrolled and accruing; ending the
/// cover brings them back as the ECT's mentor.
async fn m3_an_interim_cover_never_withdraws_the_absent_mentor(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_and_mentor(stack, &w, 3100001, date(2026, 9, 1), date(2026, 9, 2)).await;
    let ic =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::InductionCoordinator, "", date(2026, 9, 1)))
            .await
            .participant_id;
    let ic_token = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let mut as_ic = stack.participants(Some(&ic_token)).await;
    let covered = as_ic
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.clone(),
            mentor_id: ic.clone(),
            interim: true,
            effective_date: None,
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("interim cover")
        .into_inner()
        .ect
        .expect("ect");
    assert_eq!((covered.mentor_id.as_str(), covered.mentor_of_record_id.as_str()), (ic.as_str(), mentor.as_str()));
    assert_eq!(status(&status_on(stack, &mentor, None).await), TrainingStatus::Active);
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[None, date(2027, 3, 1)]).await;
    let back = as_ic
        .end_mentor_cover(pb::EndMentorCoverRequest {
            validate_only: false,
            ect_id: ect.clone(),
            end_date: None,
            idempotency_key: String::new(),
        })
        .await
        .expect("cover ended")
        .into_inner()
        .ect
        .expect("ect");
    assert_eq!((back.mentor_id.as_str(), back.mentor_interim), (mentor.as_str(), false));
}

/// D9: M mentors A and B; A is deferred first and back in January, B later
/// for longer. M is deferred only while both are, and active again with A.
async fn d9_a_mentor_is_active_again_when_the_first_of_two_deferred_ects_returns(stack: &Stack) {
    let w = world(stack).await;
    let (a, mentor) = ect_and_mentor(stack, &w, 3200001, date(2026, 9, 1), date(2026, 9, 2)).await;
    let b = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "3200003", date(2026, 9, 1)))
        .await
        .participant_id;
    assign(stack, &w, &b, &mentor, date(2026, 9, 2)).await;
    let mut client = lead(stack, &w).await;
    let first =
        client.defer_participant(defer(&a, date(2026, 11, 30), date(2027, 1, 18))).await.expect("A").into_inner();
    assert!(first.cascaded_participant_ids.is_empty(), "B is in training: no cascade");
    let second =
        client.defer_participant(defer(&b, date(2026, 12, 7), date(2027, 9, 6))).await.expect("B").into_inner();
    assert_eq!(second.cascaded_participant_ids, std::slice::from_ref(&mentor));
    assert_eq!(status(&status_on(stack, &mentor, date(2026, 12, 6)).await), TrainingStatus::Active);
    let during = status_on(stack, &mentor, date(2026, 12, 10)).await;
    assert_eq!(status(&during), TrainingStatus::Deferred);
    let span = during.deferral.expect("deferral");
    assert_eq!((span.deferral_date, span.expected_return_date), (date(2026, 12, 7), date(2027, 1, 18)));
    assert_eq!(status(&status_on(stack, &a, date(2027, 3, 1)).await), TrainingStatus::Active);
    assert_eq!(status(&status_on(stack, &mentor, date(2027, 3, 1)).await), TrainingStatus::Active);
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&a, &b, &mentor], &[date(2026, 12, 10), date(2027, 3, 1)]).await;
}

/// D9: a deferral backdated to before the current mentor's assignment
/// defers that mentor from the day the mentoring began.
async fn d9_a_backdated_deferral_defers_the_current_mentor_from_when_the_mentoring_began(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_and_mentor(stack, &w, 3300001, date(2026, 9, 1), date(2026, 11, 2)).await;
    let mut client = lead(stack, &w).await;
    let answer = client
        .defer_participant(defer(&ect, date(2026, 10, 1), date(2027, 6, 1)))
        .await
        .expect("backdated")
        .into_inner();
    assert_eq!(answer.cascaded_participant_ids, std::slice::from_ref(&mentor));
    assert_eq!(status(&status_on(stack, &mentor, date(2026, 11, 1)).await), TrainingStatus::Active);
    let now = status_on(stack, &mentor, None).await;
    assert_eq!(status(&now), TrainingStatus::Deferred);
    let span = now.deferral.expect("deferral");
    assert_eq!((span.deferral_date, span.expected_return_date), (date(2026, 11, 2), date(2027, 6, 1)));
    assert_eq!(span.cascaded_from_participant_id, ect);
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[date(2026, 11, 1), None, date(2027, 6, 1)]).await;
}

/// D6: the cascaded mentor's return follows the ECT's; acting on the mentor
/// alone is refused, naming the ECT.
async fn d6_a_cascaded_mentors_return_is_changed_only_through_the_ect(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_and_mentor(stack, &w, 3400001, date(2026, 9, 1), date(2026, 9, 2)).await;
    let mut client = lead(stack, &w).await;
    client.defer_participant(defer(&ect, date(2026, 11, 2), date(2027, 6, 1))).await.expect("deferred");
    let err = client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: mentor.clone(),
            expected_return_date: date(2027, 2, 1),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("mentor alone");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default(), "CASCADED_FROM_ECT");
    assert!(err.message().contains(&ect), "{}", err.message());
    let err = client
        .record_return(pb::RecordReturnRequest {
            validate_only: false,
            participant_id: mentor.clone(),
            return_date: None,
            idempotency_key: String::new(),
        })
        .await
        .expect_err("mentor alone");
    assert_eq!(err.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default(), "CASCADED_FROM_ECT");
    let changed = client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: ect.clone(),
            expected_return_date: date(2027, 2, 1),
            idempotency_key: String::new(),
        })
        .await
        .expect("through the ECT")
        .into_inner();
    assert_eq!(changed.cascaded_participant_ids, std::slice::from_ref(&mentor));
    let span = status_on(stack, &mentor, None).await.deferral.expect("deferral");
    assert_eq!(span.expected_return_date, date(2027, 2, 1), "the same return date for both");
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[None, date(2027, 1, 31), date(2027, 2, 1)]).await;
}

/// D7, D12: a return that happens by itself is an event dated its return
/// date, in the history and the reporting feed, without any RPC: today moves
/// past the return date by restarting the participant service.
async fn d7_a_return_that_happens_by_itself_is_in_the_history_and_the_feed(stack: &mut Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_and_mentor(stack, &w, 3500001, date(2026, 9, 1), date(2026, 9, 2)).await;
    let mut client = lead(stack, &w).await;
    client.defer_participant(defer(&ect, date(2026, 10, 1), date(2027, 1, 4))).await.expect("deferred");
    wait_until_delivered(stack, DELIVERY).await;
    stack.stop_service(ServiceName::Participant).await;
    stack.config.clock.today = chrono::NaiveDate::from_ymd_opt(2027, 1, 10);
    stack.restart_service(ServiceName::Participant).await;
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    for id in [&ect, &mentor] {
        let deadline = tokio::time::Instant::now() + DELIVERY;
        let returned = loop {
            let history = client
                .get_participant_history(pb::GetParticipantHistoryRequest {
                    page_size: 0,
                    page_token: String::new(),
                    participant_id: id.clone(),
                })
                .await
                .expect("history")
                .into_inner()
                .events;
            if let Some(e) = history.into_iter().find(|e| e.event_type == pb::EventType::Returned as i32) {
                break e;
            }
            assert!(tokio::time::Instant::now() < deadline, "no return recorded for {id}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(returned.effective_date, date(2027, 1, 4));
        assert_eq!(returned.actor_role, "service");
    }
    let mut feed = client.watch_events(pb::WatchEventsRequest { after_cursor: 0 }).await.expect("watch").into_inner();
    let mut returns = Vec::new();
    while returns.len() < 2 {
        let event = tokio::time::timeout(DELIVERY, feed.message())
            .await
            .expect("the feed carries the returns")
            .expect("stream")
            .expect("event")
            .participant_event
            .expect("event");
        if event.event_type == pb::EventType::Returned as i32 {
            returns.push((event.participant_id, event.effective_date));
        }
    }
    returns.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![(ect.clone(), date(2027, 1, 4)), (mentor.clone(), date(2027, 1, 4))];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(returns, expected);
    // Another restart records nothing twice.
    stack.stop_service(ServiceName::Participant).await;
    stack.restart_service(ServiceName::Participant).await;
    let mut client = stack.participants(Some(&admin)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = client
        .get_participant_history(pb::GetParticipantHistoryRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: ect.clone(),
        })
        .await
        .expect("history")
        .into_inner()
        .events;
    assert_eq!(history.iter().filter(|e| e.event_type == pb::EventType::Returned as i32).count(), 1);
    assert_eq!(status(&status_on(stack, &mentor, None).await), TrainingStatus::Active);
    // Content release and payments still run on the old pinned day: ask for the date itself.
    assert_agree(stack, &[&ect, &mentor], &[date(2027, 1, 4), date(2027, 1, 10)]).await;
}

/// W6 with M5: withdrawing an ECT under interim cover still withdraws the
/// mentor of record when they have no other ECT.
async fn w6_withdrawing_a_covered_ect_withdraws_the_mentor_of_record(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_and_mentor(stack, &w, 3600001, date(2026, 9, 1), date(2026, 9, 2)).await;
    let ic =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::InductionCoordinator, "", date(2026, 9, 1)))
            .await
            .participant_id;
    let mut client = lead(stack, &w).await;
    client
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.clone(),
            mentor_id: ic,
            interim: true,
            effective_date: None,
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("cover");
    let answer = client
        .withdraw_participant(pb::WithdrawParticipantRequest {
            validate_only: false,
            replacement_induction_coordinator_id: String::new(),
            participant_id: ect.clone(),
            reason: WithdrawalReason::LeftTeachingProfession as i32,
            withdrawal_date: None,
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("withdrawn")
        .into_inner();
    assert_eq!(answer.cascaded_participant_ids, std::slice::from_ref(&mentor));
    assert_eq!(status(&status_on(stack, &mentor, None).await), TrainingStatus::Withdrawn);
}

on_both_backends!(
    m3_an_interim_cover_never_withdraws_the_absent_mentor,
    d9_a_mentor_is_active_again_when_the_first_of_two_deferred_ects_returns,
    d9_a_backdated_deferral_defers_the_current_mentor_from_when_the_mentoring_began,
    d6_a_cascaded_mentors_return_is_changed_only_through_the_ect,
    w6_withdrawing_a_covered_ect_withdraws_the_mentor_of_record,
);

on_both_backends_mut!(d7_a_return_that_happens_by_itself_is_in_the_history_and_the_feed);
