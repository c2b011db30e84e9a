//! The guidance's examples end to end, across the three real services on
//! SQLite and PostgreSQL: after each story the participant's status,
//! `GetReleaseState` and `GetAccrual` agree on the dates that matter.

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{World, assert_agree, create_school, date, register, registration, status_on, world};
use steplab_tests::{Stack, on_both_backends, wait_until_delivered};

const DELIVERY: Duration = Duration::from_secs(60);

async fn lead(stack: &Stack, w: &World) -> steplab_tests::Participants {
    stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp1]))).await
}

async fn ect(stack: &Stack, w: &World, trn: &str, on: Option<Date>) -> String {
    register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, trn, on)).await.participant_id
}

async fn mentor_for(stack: &Stack, w: &World, ect_id: &str, trn: &str) -> String {
    let mentor = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, trn, date(2026, 9, 1)))
        .await
        .participant_id;
    lead(stack, w)
        .await
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect_id.into(),
            mentor_id: mentor.clone(),
            interim: false,
            effective_date: date(2026, 9, 2),
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("mentor assigned");
    mentor
}

fn deferral(id: &str, reason: DeferralReason, from: Option<Date>, until: Option<Date>) -> pb::DeferParticipantRequest {
    pb::DeferParticipantRequest {
        validate_only: false,
        participant_id: id.into(),
        reason: reason as i32,
        deferral_date: from,
        expected_return_date: until,
        note: String::new(),
        idempotency_key: String::new(),
    }
}

fn withdrawal(id: &str, reason: WithdrawalReason, on: Option<Date>) -> pb::WithdrawParticipantRequest {
    pb::WithdrawParticipantRequest {
        validate_only: false,
        replacement_induction_coordinator_id: String::new(),
        participant_id: id.into(),
        reason: reason as i32,
        withdrawal_date: on,
        note: String::new(),
        idempotency_key: String::new(),
    }
}

async fn status(stack: &Stack, id: &str, on: Option<Date>) -> i32 {
    status_on(stack, id, on).await.status
}

async fn release(stack: &Stack, id: &str, on: Option<Date>) -> content::GetReleaseStateResponse {
    let service = stack.token(Role::Service, None, &[]);
    stack
        .content(Some(&service))
        .await
        .get_release_state(content::GetReleaseStateRequest { participant_id: id.into(), as_of: on })
        .await
        .expect("release state")
        .into_inner()
}

async fn accrual(stack: &Stack, id: &str, on: Option<Date>) -> payments::GetAccrualResponse {
    let service = stack.token(Role::Service, None, &[]);
    stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: id.into(), as_of: on })
        .await
        .expect("accrual")
        .into_inner()
}

async fn p1_a_short_absence_is_paused_by_the_induction_coordinator(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000001", date(2026, 9, 1)).await;
    let ic = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    stack
        .participants(Some(&ic))
        .await
        .pause_participant(pb::PauseParticipantRequest {
            validate_only: false,
            alongside_ect_id: String::new(),
            participant_id: id.clone(),
            start_date: date(2026, 11, 9),
            expected_end_date: date(2026, 12, 7),
            note: "surgery".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("paused");
    wait_until_delivered(stack, DELIVERY).await;
    assert_eq!(status(stack, &id, None).await, TrainingStatus::Paused as i32);
    assert_eq!(accrual(stack, &id, None).await.state, payments::AccrualState::Accruing as i32, "P5");
    assert_agree(stack, &[&id], &[None, date(2026, 11, 1), date(2026, 12, 7)]).await;
}

async fn d9_nine_months_parental_leave_with_the_mentor_cascade(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000011", date(2026, 9, 1)).await;
    let mentor = mentor_for(stack, &w, &id, "4000012").await;
    lead(stack, &w)
        .await
        .defer_participant(deferral(&id, DeferralReason::ParentalLeave, date(2026, 11, 16), date(2027, 8, 16)))
        .await
        .expect("deferred");
    wait_until_delivered(stack, DELIVERY).await;
    assert_eq!(status(stack, &mentor, None).await, TrainingStatus::Deferred as i32);
    assert_agree(stack, &[&id, &mentor], &[None, date(2027, 3, 1), date(2027, 8, 16)]).await;
    let held = release(stack, &id, date(2027, 3, 1)).await;
    let ymd = |d: &Option<Date>| d.as_ref().map(|d| (d.year, d.month, d.day));
    assert!(
        held.released_modules.iter().all(|m| ymd(&m.release_date) < Some((2026, 11, 16))),
        "nothing released during the deferral"
    );
}

async fn d6_d7_a_return_date_moved_later_and_then_an_early_return(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000021", date(2026, 9, 1)).await;
    let mut client = lead(stack, &w).await;
    client
        .defer_participant(deferral(&id, DeferralReason::LongTermSickness, date(2026, 10, 5), date(2027, 1, 4)))
        .await
        .expect("deferred");
    client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: id.clone(),
            expected_return_date: date(2027, 3, 1),
            idempotency_key: String::new(),
        })
        .await
        .expect("later");
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&id], &[None, date(2027, 2, 1)]).await;
    client
        .record_return(pb::RecordReturnRequest {
            validate_only: false,
            participant_id: id.clone(),
            return_date: date(2026, 11, 23),
            idempotency_key: String::new(),
        })
        .await
        .expect("early return");
    wait_until_delivered(stack, DELIVERY).await;
    assert_eq!(status(stack, &id, None).await, TrainingStatus::Active as i32);
    assert_agree(stack, &[&id], &[None, date(2026, 11, 1), date(2027, 2, 1)]).await;
}

async fn d8_registered_too_early_and_deferred_to_the_restart_date(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000031", date(2026, 6, 15)).await;
    lead(stack, &w)
        .await
        .defer_participant(deferral(&id, DeferralReason::Other, date(2026, 6, 15), date(2027, 1, 4)))
        .await
        .expect("deferred");
    wait_until_delivered(stack, DELIVERY).await;
    assert!(release(stack, &id, None).await.released_modules.is_empty(), "nothing before the restart date");
    assert_eq!(accrual(stack, &id, None).await.state, payments::AccrualState::Suspended as i32);
    assert_agree(stack, &[&id], &[None, date(2027, 1, 4)]).await;
    assert!(
        !release(stack, &id, date(2027, 1, 4)).await.released_modules.is_empty(),
        "release starts on the restart date"
    );
}

async fn w6_an_ect_who_left_the_school_is_withdrawn_with_their_mentor(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000041", date(2026, 9, 1)).await;
    let mentor = mentor_for(stack, &w, &id, "4000042").await;
    lead(stack, &w)
        .await
        .withdraw_participant(withdrawal(&id, WithdrawalReason::MovedSchool, date(2026, 11, 20)))
        .await
        .expect("withdrawn");
    wait_until_delivered(stack, DELIVERY).await;
    assert_eq!(status(stack, &mentor, None).await, TrainingStatus::Withdrawn as i32);
    assert_eq!(release(stack, &id, None).await.access, content::Access::Revoked as i32);
    assert_agree(stack, &[&id, &mentor], &[None, date(2026, 11, 19)]).await;
}

async fn w9_a_reinstatement_approved_by_the_dpl(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000051", date(2026, 9, 1)).await;
    let mut client = lead(stack, &w).await;
    client
        .withdraw_participant(withdrawal(&id, WithdrawalReason::LeftRole, date(2026, 11, 2)))
        .await
        .expect("withdrawn");
    let request = client
        .request_reinstatement(pb::RequestReinstatementRequest {
            validate_only: false,
            with_mentor: false,
            participant_id: id.clone(),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&id], &[None]).await;
    let dpl = stack.token(Role::Dpl, None, &[&w.dp1]);
    stack
        .participants(Some(&dpl))
        .await
        .decide_request(pb::DecideRequestRequest {
            idempotency_key: String::new(),
            validate_only: false,
            approval_request_id: request.approval_request_id,
            approve: Some(true),
            note: String::new(),
        })
        .await
        .expect("approved");
    wait_until_delivered(stack, DELIVERY).await;
    assert_eq!(release(stack, &id, None).await.access, content::Access::Granted as i32);
    assert_agree(stack, &[&id], &[None, date(2026, 11, 10), date(2027, 1, 4)]).await;
}

async fn m3_an_induction_coordinator_steps_in_as_interim_mentor(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000061", date(2026, 9, 1)).await;
    let ic =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::InductionCoordinator, "", date(2026, 9, 1)))
            .await
            .participant_id;
    let ic_token = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let answer = stack
        .participants(Some(&ic_token))
        .await
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: id.clone(),
            mentor_id: ic.clone(),
            interim: true,
            effective_date: None,
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("interim")
        .into_inner()
        .ect
        .expect("ect");
    assert!(answer.mentor_interim);
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&id, &ic], &[None]).await;
}

/// M2 (version 2): the replaced mentor is never withdrawn by the replacement.
async fn m2_a_replaced_mentor_stays_in_the_programme(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000071", date(2026, 9, 1)).await;
    let old = mentor_for(stack, &w, &id, "4000072").await;
    let new = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "4000073", date(2026, 9, 1)))
        .await
        .participant_id;
    lead(stack, &w)
        .await
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: id.clone(),
            mentor_id: new.clone(),
            interim: false,
            effective_date: date(2026, 11, 2),
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("replaced");
    wait_until_delivered(stack, DELIVERY).await;
    assert_eq!(status(stack, &old, None).await, TrainingStatus::Active as i32);
    assert_eq!(status(stack, &new, None).await, TrainingStatus::Active as i32);
    assert_agree(stack, &[&id, &old, &new], &[None]).await;
}

async fn s2_a_move_into_an_uncovered_area(stack: &Stack) {
    let w = world(stack).await;
    let admin = stack.admin_token();
    let far = create_school(&mut stack.participants(Some(&admin)).await, "100099", &w.dp1, false).await;
    let id = ect(stack, &w, "4000081", date(2026, 9, 1)).await;
    lead(stack, &w)
        .await
        .move_school(pb::MoveSchoolRequest {
            validate_only: false,
            keep_mentor: false,
            participant_id: id.clone(),
            school_id: far.clone(),
            moved_on: date(2026, 11, 2),
            idempotency_key: String::new(),
        })
        .await
        .expect("moved");
    wait_until_delivered(stack, DELIVERY).await;
    assert!(!accrual(stack, &id, None).await.area_covered, "S2: payments knows the area is not covered");
    assert!(accrual(stack, &id, date(2026, 10, 1)).await.area_covered);
    // The new school's induction coordinator can now read the release state.
    let ic_far = stack.token(Role::InductionCoordinator, Some(&far), &[]);
    stack
        .content(Some(&ic_far))
        .await
        .get_release_state(content::GetReleaseStateRequest { participant_id: id.clone(), as_of: None })
        .await
        .expect("new school reads content");
    assert_agree(stack, &[&id], &[None]).await;
}

async fn c2_an_early_release_for_a_post_november_starter(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "4000091", date(2026, 11, 10)).await;
    let request = lead(stack, &w)
        .await
        .request_release_start_change(pb::RequestReleaseStartChangeRequest {
            validate_only: false,
            participant_id: id.clone(),
            release_start: date(2026, 11, 16),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    wait_until_delivered(stack, DELIVERY).await;
    assert!(release(stack, &id, None).await.released_modules.is_empty(), "January start: nothing yet");
    let dpl = stack.token(Role::Dpl, None, &[&w.dp1]);
    stack
        .participants(Some(&dpl))
        .await
        .decide_request(pb::DecideRequestRequest {
            idempotency_key: String::new(),
            validate_only: false,
            approval_request_id: request.approval_request_id,
            approve: Some(true),
            note: String::new(),
        })
        .await
        .expect("approved");
    wait_until_delivered(stack, DELIVERY).await;
    let state = release(stack, &id, None).await;
    assert_eq!(state.release_start, date(2026, 11, 16));
    assert!(!state.released_modules.is_empty(), "released from the approved start");
    assert_agree(stack, &[&id], &[None]).await;
}

on_both_backends!(
    p1_a_short_absence_is_paused_by_the_induction_coordinator,
    d9_nine_months_parental_leave_with_the_mentor_cascade,
    d6_d7_a_return_date_moved_later_and_then_an_early_return,
    d8_registered_too_early_and_deferred_to_the_restart_date,
    w6_an_ect_who_left_the_school_is_withdrawn_with_their_mentor,
    w9_a_reinstatement_approved_by_the_dpl,
    m3_an_induction_coordinator_steps_in_as_interim_mentor,
    m2_a_replaced_mentor_stays_in_the_programme,
    s2_a_move_into_an_uncovered_area,
    c2_an_early_release_for_a_post_november_starter,
);
