//! Issue 13 (DOMAIN.md version 2), who carries on when someone stops, over
//! real gRPC on SQLite and PostgreSQL: a mentor paused alongside their ECT
//! (P1), an induction coordinator's named replacement (W8), the mentor who
//! comes back with a reinstated ECT (W9), and a moved ECT's mentoring (S1),
//! each checked against content release and payments (no drift).

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{World, assert_agree, create_school, date, register, registration, status_on, world};
use steplab_tests::{Stack, on_both_backends, wait_until_delivered};
use tonic::{Code, Status};
use tonic_types::StatusExt;

const DELIVERY: Duration = Duration::from_secs(30);

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn status(p: &pb::Participant) -> TrainingStatus {
    TrainingStatus::try_from(p.status).unwrap_or(TrainingStatus::Unspecified)
}

async fn person(stack: &Stack, w: &World, kind: ParticipantKind, trn: &str) -> String {
    register(stack, &w.dp1, registration(&w.school_a, kind, trn, date(2026, 9, 1))).await.participant_id
}

async fn lead(stack: &Stack, w: &World) -> steplab_tests::Participants {
    let token = stack.token(Role::EcfLead, None, &[&w.dp1]);
    stack.participants(Some(&token)).await
}

/// Another school of the first delivery partner, within the ECF Lead's reach.
async fn second_school(stack: &Stack, w: &World) -> String {
    let admin = stack.admin_token();
    create_school(&mut stack.participants(Some(&admin)).await, "300003", &w.dp1, true).await
}

async fn ic(stack: &Stack, w: &World) -> steplab_tests::Participants {
    let token = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    stack.participants(Some(&token)).await
}

async fn assign(stack: &Stack, w: &World, ect: &str, mentor: &str, interim: bool) -> pb::Participant {
    let mut client = if interim { ic(stack, w).await } else { lead(stack, w).await };
    client
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.into(),
            mentor_id: mentor.into(),
            interim,
            effective_date: if interim { None } else { date(2026, 9, 2) },
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("assigned")
        .into_inner()
        .ect
        .expect("ect")
}

fn pause(id: &str, from: Option<Date>, until: Option<Date>, alongside: &str) -> pb::PauseParticipantRequest {
    pb::PauseParticipantRequest {
        participant_id: id.into(),
        start_date: from,
        expected_end_date: until,
        alongside_ect_id: alongside.into(),
        ..Default::default()
    }
}

fn withdraw(id: &str, replacement: &str) -> pb::WithdrawParticipantRequest {
    pb::WithdrawParticipantRequest {
        participant_id: id.into(),
        reason: WithdrawalReason::LeftRole as i32,
        replacement_induction_coordinator_id: replacement.into(),
        ..Default::default()
    }
}

async fn notification_kinds(stack: &Stack, w: &World) -> Vec<pb::NotificationKind> {
    let dpl = stack.token(Role::Dpl, None, &[&w.dp1]);
    stack
        .participants(Some(&dpl))
        .await
        .list_notifications(pb::ListNotificationsRequest { delivery_partner_id: w.dp1.clone(), ..Default::default() })
        .await
        .expect("notifications")
        .into_inner()
        .notifications
        .iter()
        .map(|n| pb::NotificationKind::try_from(n.kind).unwrap_or(pb::NotificationKind::Unspecified))
        .collect()
}

/// P1: a mentor with no other ECT in training is paused alongside their
/// paused ECT, within that ECT's pause; their release is held (content
/// release agrees); ending the ECT's pause early ends the mentor's the same day.
async fn p1_a_mentor_is_paused_alongside_their_ect_and_never_outlasts_the_ects_pause(stack: &Stack) {
    let w = world(stack).await;
    let ect = person(stack, &w, ParticipantKind::Ect, "4100001").await;
    let mentor = person(stack, &w, ParticipantKind::Mentor, "4100002").await;
    let coordinator = person(stack, &w, ParticipantKind::InductionCoordinator, "").await;
    assign(stack, &w, &ect, &mentor, false).await;
    let mut as_ic = ic(stack, &w).await;
    // Not before the ECT is paused, not an IC, and not without naming the ECT.
    let early = as_ic.pause_participant(pause(&mentor, date(2026, 12, 1), date(2026, 12, 15), &ect)).await;
    assert_eq!(reason(&early.expect_err("ECT not paused")), "OUTSIDE_ECT_PAUSE");
    as_ic.pause_participant(pause(&ect, date(2026, 12, 1), date(2026, 12, 15), "")).await.expect("ECT paused");
    let alone = as_ic.pause_participant(pause(&mentor, date(2026, 12, 1), date(2026, 12, 15), "")).await;
    assert_eq!(reason(&alone.expect_err("no ECT named")), "PAUSE_ONLY_FOR_ECTS");
    let coordinator_paused =
        as_ic.pause_participant(pause(&coordinator, date(2026, 12, 1), date(2026, 12, 15), &ect)).await;
    assert_eq!(reason(&coordinator_paused.expect_err("an IC")), "PAUSE_ONLY_FOR_ECTS");
    let longer = as_ic.pause_participant(pause(&mentor, date(2026, 12, 1), date(2026, 12, 22), &ect)).await;
    assert_eq!(reason(&longer.expect_err("outlasts the ECT's")), "OUTSIDE_ECT_PAUSE");
    let paused = as_ic
        .pause_participant(pause(&mentor, date(2026, 12, 1), date(2026, 12, 15), &ect))
        .await
        .expect("mentor paused alongside");
    assert_eq!(paused.into_inner().participant.map(|p| status(&p)), Some(TrainingStatus::Active), "from 1 December");
    let during = status_on(stack, &mentor, date(2026, 12, 2)).await;
    assert_eq!(status(&during), TrainingStatus::Paused);
    assert_eq!(during.pause.map(|p| p.alongside_ect_id), Some(ect.clone()));
    let beyond = as_ic
        .extend_pause(pb::ExtendPauseRequest {
            validate_only: false,
            participant_id: mentor.clone(),
            expected_end_date: date(2026, 12, 22),
            idempotency_key: String::new(),
        })
        .await;
    assert_eq!(reason(&beyond.expect_err("beyond the ECT's")), "OUTSIDE_ECT_PAUSE");
    // The ECT is back early on 8 December: so is the mentor.
    as_ic
        .end_pause(pb::EndPauseRequest {
            validate_only: false,
            participant_id: ect.clone(),
            end_date: date(2026, 12, 8),
            idempotency_key: String::new(),
        })
        .await
        .expect("ECT back early");
    assert_eq!(status(&status_on(stack, &mentor, date(2026, 12, 8)).await), TrainingStatus::Active);
    assert_eq!(status(&status_on(stack, &mentor, date(2026, 12, 7)).await), TrainingStatus::Paused);
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[date(2026, 12, 2), date(2026, 12, 8), date(2026, 12, 20)]).await;
}

/// P1: a mentor who mentors another ECT in training is not paused.
async fn p1_a_mentor_with_another_ect_in_training_is_not_paused(stack: &Stack) {
    let w = world(stack).await;
    let ect = person(stack, &w, ParticipantKind::Ect, "4200001").await;
    let other = person(stack, &w, ParticipantKind::Ect, "4200002").await;
    let mentor = person(stack, &w, ParticipantKind::Mentor, "4200003").await;
    assign(stack, &w, &ect, &mentor, false).await;
    assign(stack, &w, &other, &mentor, false).await;
    let mut as_ic = ic(stack, &w).await;
    as_ic.pause_participant(pause(&ect, date(2026, 12, 1), date(2026, 12, 15), "")).await.expect("ECT paused");
    let err = as_ic
        .pause_participant(pause(&mentor, date(2026, 12, 1), date(2026, 12, 15), &ect))
        .await
        .expect_err("another ECT in training");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "MENTOR_HAS_OTHER_ECT_IN_TRAINING");
    assert!(err.message().contains(&other), "{}", err.message());
}

/// W8: an IC's withdrawal names the replacement IC, who takes over the
/// interim cover at once; withdrawing the last IC without one ends the
/// cover and tells the DPL a replacement is needed. Bad replacements are refused.
async fn w8_the_named_replacement_ic_takes_over_and_the_last_ic_leaving_raises_a_notification(stack: &Stack) {
    let w = world(stack).await;
    let ect = person(stack, &w, ParticipantKind::Ect, "4300001").await;
    let mentor = person(stack, &w, ParticipantKind::Mentor, "4300002").await;
    let first = person(stack, &w, ParticipantKind::InductionCoordinator, "").await;
    let second = person(stack, &w, ParticipantKind::InductionCoordinator, "").await;
    let school_c = second_school(stack, &w).await;
    let elsewhere =
        register(stack, &w.dp1, registration(&school_c, ParticipantKind::InductionCoordinator, "", date(2026, 9, 1)))
            .await
            .participant_id;
    assign(stack, &w, &ect, &mentor, false).await;
    assign(stack, &w, &ect, &first, true).await;
    let mut client = lead(stack, &w).await;
    let same = client.withdraw_participant(withdraw(&first, &first)).await.expect_err("the same person");
    assert_eq!(same.code(), Code::InvalidArgument);
    let not_ic = client.withdraw_participant(withdraw(&first, &mentor)).await.expect_err("a mentor");
    assert_eq!(reason(&not_ic), "REPLACEMENT_NOT_AN_INDUCTION_COORDINATOR");
    let other_school = client.withdraw_participant(withdraw(&first, &elsewhere)).await.expect_err("another school");
    assert_eq!(reason(&other_school), "REPLACEMENT_AT_ANOTHER_SCHOOL");
    let for_an_ect = client.withdraw_participant(withdraw(&ect, &second)).await.expect_err("an ECT");
    assert_eq!(reason(&for_an_ect), "REPLACEMENT_ONLY_FOR_INDUCTION_COORDINATORS");
    assert_eq!(status(&status_on(stack, &first, None).await), TrainingStatus::Active, "a refusal changes nothing");
    client.withdraw_participant(withdraw(&first, &second)).await.expect("withdrawn with a replacement");
    let covered = status_on(stack, &ect, None).await;
    assert_eq!((covered.mentor_id.as_str(), covered.mentor_interim), (second.as_str(), true));
    assert_eq!(covered.mentor_of_record_id, mentor);
    let gone = client.withdraw_participant(withdraw(&second, &first)).await.expect_err("a withdrawn replacement");
    assert_eq!(reason(&gone), "REPLACEMENT_WITHDRAWN");
    assert!(!notification_kinds(stack, &w).await.contains(&pb::NotificationKind::InductionCoordinatorNeeded));
    client.withdraw_participant(withdraw(&second, "")).await.expect("the last IC withdrawn");
    assert!(notification_kinds(stack, &w).await.contains(&pb::NotificationKind::InductionCoordinatorNeeded));
    let back = status_on(stack, &ect, None).await;
    assert_eq!(
        (back.mentor_id.as_str(), back.mentor_interim),
        (mentor.as_str(), false),
        "the mentor of record coaches"
    );
}

/// An ECT and their only-ECT mentor, both withdrawn today (W6).
async fn withdrawn_pair(stack: &Stack, w: &World, trn: u32) -> (String, String) {
    let ect = person(stack, w, ParticipantKind::Ect, &format!("{trn}")).await;
    let mentor = person(stack, w, ParticipantKind::Mentor, &format!("{}", trn + 1)).await;
    assign(stack, w, &ect, &mentor, false).await;
    let answer = lead(stack, w).await.withdraw_participant(withdraw(&ect, "")).await.expect("withdrawn").into_inner();
    assert_eq!(answer.cascaded_participant_ids, std::slice::from_ref(&mentor), "W6");
    (ect, mentor)
}

async fn reinstate(stack: &Stack, w: &World, ect: &str, with_mentor: bool) -> Result<pb::Participant, Status> {
    let request = lead(stack, w)
        .await
        .request_reinstatement(pb::RequestReinstatementRequest {
            participant_id: ect.into(),
            with_mentor,
            ..Default::default()
        })
        .await?
        .into_inner()
        .request
        .expect("request");
    assert_eq!(request.with_mentor, with_mentor);
    let dpl = stack.token(Role::Dpl, None, &[&w.dp1]);
    let decided = stack
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
        .expect("approved")
        .into_inner();
    Ok(decided.participant.expect("participant"))
}

/// W9: a reinstatement asked `with_mentor` brings back the mentor W6
/// withdrew with the ECT, the ECT's mentor again, on the day of approval.
async fn w9_a_reinstatement_with_mentor_brings_back_the_mentor_withdrawn_with_the_ect(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = withdrawn_pair(stack, &w, 4400001).await;
    let hidden = status_on(stack, &ect, None).await;
    assert_eq!((hidden.mentor_id.as_str(), hidden.mentor_of_record_id.as_str()), ("", ""), "never shown withdrawn");
    let back = reinstate(stack, &w, &ect, true).await.expect("reinstated");
    assert_eq!((status(&back), back.mentor_id.as_str()), (TrainingStatus::Active, mentor.as_str()));
    assert_eq!(status(&status_on(stack, &mentor, None).await), TrainingStatus::Active);
    assert!(!notification_kinds(stack, &w).await.contains(&pb::NotificationKind::EctWithoutMentor));
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[None, date(2027, 3, 1)]).await;
}

/// W9: otherwise the ECT comes back without a mentor (a withdrawn mentor is
/// never shown as current) and the ECF Lead is told to assign one; asking
/// for a mentor not withdrawn with the ECT is refused.
async fn w9_otherwise_the_ect_comes_back_without_a_mentor_and_the_ecf_lead_is_told(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = withdrawn_pair(stack, &w, 4500001).await;
    let back = reinstate(stack, &w, &ect, false).await.expect("reinstated");
    assert_eq!(status(&back), TrainingStatus::Active);
    assert_eq!((back.mentor_id.as_str(), back.mentor_of_record_id.as_str()), ("", ""));
    let listed = lead(stack, &w)
        .await
        .list_participants(pb::ListParticipantsRequest { school_id: w.school_a.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .participants;
    let shown = listed.iter().find(|p| p.participant_id == ect).expect("listed");
    assert_eq!(shown.mentor_id, "");
    assert_eq!(status(&status_on(stack, &mentor, None).await), TrainingStatus::Withdrawn);
    assert!(notification_kinds(stack, &w).await.contains(&pb::NotificationKind::EctWithoutMentor));
    // An ECT whose mentor is still in post has nobody to bring back.
    let (other, other_mentor) = (
        person(stack, &w, ParticipantKind::Ect, "4500003").await,
        person(stack, &w, ParticipantKind::Mentor, "4500004").await,
    );
    assign(stack, &w, &other, &other_mentor, false).await;
    let keep = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&keep)).await;
    let request = client
        .request_keep_mentor(pb::RequestKeepMentorRequest { mentor_id: other_mentor.clone(), ..Default::default() })
        .await
        .expect("keep asked")
        .into_inner()
        .request
        .expect("request");
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
        .expect("kept");
    client.withdraw_participant(withdraw(&other, "")).await.expect("withdrawn alone");
    let err = reinstate(stack, &w, &other, true).await.expect_err("no mentor withdrawn with them");
    assert_eq!(reason(&err), "NO_MENTOR_WITHDRAWN_WITH_ECT");
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[None]).await;
}

/// S1: a moved ECT's mentoring ends on the move date unless the ECF Lead
/// keeps the mentor; the mentor left with no ECT is the ECF Lead's to place
/// (MENTOR_WITHOUT_ECT), and their derived deferral (D9) ends on the move date.
async fn s1_a_moved_ects_mentoring_ends_on_the_move_date_unless_the_ecf_lead_keeps_it(stack: &Stack) {
    let w = world(stack).await;
    let ect = person(stack, &w, ParticipantKind::Ect, "4600001").await;
    let mentor = person(stack, &w, ParticipantKind::Mentor, "4600002").await;
    let kept_ect = person(stack, &w, ParticipantKind::Ect, "4600003").await;
    let kept_mentor = person(stack, &w, ParticipantKind::Mentor, "4600004").await;
    assign(stack, &w, &ect, &mentor, false).await;
    assign(stack, &w, &kept_ect, &kept_mentor, false).await;
    let mut client = lead(stack, &w).await;
    client
        .defer_participant(pb::DeferParticipantRequest {
            validate_only: false,
            participant_id: ect.clone(),
            reason: DeferralReason::ParentalLeave as i32,
            deferral_date: date(2026, 10, 1),
            expected_return_date: date(2027, 6, 1),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("deferred");
    assert_eq!(status(&status_on(stack, &mentor, date(2027, 1, 4)).await), TrainingStatus::Deferred, "D9");
    let school_c = second_school(stack, &w).await;
    let move_to = |id: &str, keep_mentor: bool| pb::MoveSchoolRequest {
        validate_only: false,
        participant_id: id.into(),
        school_id: school_c.clone(),
        moved_on: date(2026, 11, 20),
        idempotency_key: String::new(),
        keep_mentor,
    };
    let mentor_not_ect = client.move_school(move_to(&mentor, true)).await.expect_err("keep_mentor on a mentor");
    assert_eq!(reason(&mentor_not_ect), "KEEP_MENTOR_ONLY_FOR_ECTS", "{mentor_not_ect:?}");
    let moved = client.move_school(move_to(&ect, false)).await.expect("moved").into_inner().participant.expect("p");
    assert_eq!((moved.mentor_id.as_str(), moved.mentor_of_record_id.as_str()), ("", ""));
    assert_eq!(status_on(stack, &ect, date(2026, 11, 19)).await.mentor_id, mentor, "history kept");
    let derived = status_on(stack, &mentor, date(2026, 11, 19)).await;
    assert_eq!(derived.deferral.map(|d| d.expected_return_date), Some(date(2026, 11, 20)));
    assert_eq!(status(&status_on(stack, &mentor, date(2027, 1, 4)).await), TrainingStatus::Active);
    assert!(notification_kinds(stack, &w).await.contains(&pb::NotificationKind::MentorWithoutEct));
    let kept = client.move_school(move_to(&kept_ect, true)).await.expect("moved").into_inner().participant.expect("p");
    assert_eq!(kept.mentor_id, kept_mentor);
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&ect, &mentor], &[date(2026, 11, 19), date(2027, 1, 4)]).await;
}

on_both_backends!(
    p1_a_mentor_is_paused_alongside_their_ect_and_never_outlasts_the_ects_pause,
    p1_a_mentor_with_another_ect_in_training_is_not_paused,
    w8_the_named_replacement_ic_takes_over_and_the_last_ic_leaving_raises_a_notification,
    w9_a_reinstatement_with_mentor_brings_back_the_mentor_withdrawn_with_the_ect,
    w9_otherwise_the_ect_comes_back_without_a_mentor_and_the_ecf_lead_is_told,
    s1_a_moved_ects_mentoring_ends_on_the_move_date_unless_the_ecf_lead_keeps_it,
);
