//! The participant service's side of the DfE boundary (X1, X4, D5, D9, D12,
//! W6): what it tells the DfE gateway, through its outbox, reaches a fake DfE
//! in order, for the ECT and for the mentor cascaded with them; a DfE id set
//! later by an admin releases what waited for it. SQLite and PostgreSQL.

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, WithdrawalReason};
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fake_dfe::FakeDfe;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Backend, Stack, wait_until_delivered};
use tonic::Code;

const TOKEN: &str = "lead-provider-token";

async fn stack_for(backend: Backend, fake: &FakeDfe) -> Option<(Stack, tempfile::TempDir)> {
    Stack::start_with_dfe(backend, &fake.url, TOKEN, &[]).await
}

/// Waits until the gateway has no call left to send (pending or waiting).
async fn wait_until_sent(stack: &Stack, within: Duration) {
    wait_until_delivered(stack, within).await;
    let mut admin = stack.dfe_gateway(Some(&stack.admin_token())).await;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let calls = admin
            .list_dfe_calls(dfe::ListDfeCallsRequest { page_size: 500, ..Default::default() })
            .await
            .expect("calls")
            .into_inner()
            .calls;
        if calls.iter().all(|c| c.state == dfe::DfeCallState::Delivered as i32) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "calls not all delivered: {calls:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn with_dfe_id(mut request: pb::RegisterParticipantRequest, dfe_id: &str) -> pb::RegisterParticipantRequest {
    dfe_id.clone_into(&mut request.dfe_participant_id);
    request
}

/// The actions the fake DfE accepted for one DfE id, in order.
fn actions(fake: &FakeDfe, dfe_id: &str) -> Vec<String> {
    fake.accepted()
        .iter()
        .filter(|r| r.path.contains(dfe_id))
        .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect()
}

/// X4, D9, D5, W6: a deferral of an ECT with their only mentor, an early
/// return and a withdrawal reach the DfE once each, in order, for both; the
/// return to a later term's schedule is a change-schedule (D5); a pause is
/// not sent; the mentor is reported as `ecf-mentor`.
async fn x4_d9_w6_the_ect_and_their_cascaded_mentor_are_reported_in_order(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake).await else { return };
    let w = world(&stack).await;
    let (ect_dfe, mentor_dfe) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ect = register(
        &stack,
        &w.dp1,
        with_dfe_id(registration(&w.school_a, ParticipantKind::Ect, "3100001", date(2026, 9, 1)), &ect_dfe),
    )
    .await;
    assert_eq!(ect.dfe_participant_id, ect_dfe);
    let mentor = register(
        &stack,
        &w.dp1,
        with_dfe_id(registration(&w.school_a, ParticipantKind::Mentor, "3100002", date(2026, 9, 1)), &mentor_dfe),
    )
    .await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    client
        .assign_mentor(pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.participant_id.clone(),
            mentor_id: mentor.participant_id.clone(),
            interim: false,
            effective_date: date(2026, 9, 2),
            idempotency_key: String::new(),
            until: None,
        })
        .await
        .expect("assign mentor");
    client
        .pause_participant(pb::PauseParticipantRequest {
            participant_id: ect.participant_id.clone(),
            start_date: date(2026, 10, 19),
            expected_end_date: date(2026, 10, 26),
            ..Default::default()
        })
        .await
        .expect("paused");
    client
        .defer_participant(pb::DeferParticipantRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            reason: DeferralReason::ParentalLeave as i32,
            deferral_date: date(2026, 11, 2),
            expected_return_date: date(2027, 8, 2),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("deferred");
    client
        .record_return(pb::RecordReturnRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            return_date: date(2026, 11, 23),
            idempotency_key: String::new(),
        })
        .await
        .expect("early return");
    client
        .withdraw_participant(pb::WithdrawParticipantRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            reason: WithdrawalReason::MovedSchool as i32,
            withdrawal_date: date(2026, 11, 27),
            note: String::new(),
            idempotency_key: String::new(),
            replacement_induction_coordinator_id: String::new(),
        })
        .await
        .expect("withdrawn");
    wait_until_sent(&stack, Duration::from_secs(60)).await;
    // 23 November is in the January term (C1): the return restarts the ECT there (D5).
    assert_eq!(actions(&fake, &ect_dfe), ["defer", "resume", "change-schedule", "withdraw"]);
    let mentor_actions = actions(&fake, &mentor_dfe);
    assert_eq!(mentor_actions.first().map(String::as_str), Some("defer"), "{mentor_actions:?}");
    assert_eq!(mentor_actions.last().map(String::as_str), Some("withdraw"), "{mentor_actions:?}");
    assert!(mentor_actions.contains(&"resume".to_owned()), "the derived deferral ended: {mentor_actions:?}");
    for r in fake.accepted().iter().filter(|r| r.path.contains(mentor_dfe.as_str())) {
        assert_eq!(r.body["data"]["attributes"]["course_identifier"], "ecf-mentor");
    }
    let schedule = fake.accepted().into_iter().find(|r| r.path.ends_with("change-schedule")).expect("change-schedule");
    assert_eq!(schedule.body["data"]["attributes"]["schedule_identifier"], "ecf-standard-january");
    stack.stop().await;
}

/// X1: calls for an ECT registered without a DfE id wait at the gateway;
/// an admin's SetDfeParticipantId releases them. Only admins set it, only
/// for ECTs and mentors, only a UUID.
async fn x1_a_dfe_id_set_later_by_an_admin_releases_the_waiting_calls(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake).await else { return };
    let w = world(&stack).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut as_lead = stack.participants(Some(&lead)).await;
    let err = as_lead
        .register_participant(with_dfe_id(
            registration(&w.school_a, ParticipantKind::Ect, "3200009", date(2026, 9, 1)),
            "not-a-uuid",
        ))
        .await
        .expect_err("bad dfe id");
    assert_eq!(err.code(), Code::InvalidArgument);
    let ect =
        register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "3200001", date(2026, 9, 1))).await;
    assert_eq!(ect.dfe_participant_id, "");
    as_lead
        .defer_participant(pb::DeferParticipantRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            reason: DeferralReason::CareerBreak as i32,
            deferral_date: date(2026, 11, 2),
            expected_return_date: date(2027, 5, 2),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("deferred");
    wait_until_delivered(&stack, Duration::from_secs(30)).await;
    let mut gateway = stack.dfe_gateway(Some(&stack.admin_token())).await;
    let waiting = gateway
        .list_dfe_calls(dfe::ListDfeCallsRequest {
            participant_id: ect.participant_id.clone(),
            state: dfe::DfeCallState::WaitingForDfeId as i32,
            ..Default::default()
        })
        .await
        .expect("calls")
        .into_inner()
        .calls;
    assert_eq!(waiting.len(), 1);
    assert!(fake.with(|s| s.received.is_empty()));

    let dfe_id = uuid::Uuid::now_v7().to_string();
    let set = |participant_id: &str, dfe_participant_id: &str| pb::SetDfeParticipantIdRequest {
        idempotency_key: String::new(),
        validate_only: false,
        participant_id: participant_id.to_owned(),
        dfe_participant_id: dfe_participant_id.to_owned(),
    };
    let err = as_lead.set_dfe_participant_id(set(&ect.participant_id, &dfe_id)).await.expect_err("lead");
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut admin = stack.participants(Some(&stack.admin_token())).await;
    let err = admin.set_dfe_participant_id(set(&ect.participant_id, "x")).await.expect_err("not a uuid");
    assert_eq!(err.code(), Code::InvalidArgument);
    let ic = register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::InductionCoordinator, "", None)).await;
    let err = admin.set_dfe_participant_id(set(&ic.participant_id, &dfe_id)).await.expect_err("ic");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let answer = admin.set_dfe_participant_id(set(&ect.participant_id, &dfe_id)).await.expect("set").into_inner();
    assert_eq!(answer.participant.expect("participant").dfe_participant_id, dfe_id);
    wait_until_sent(&stack, Duration::from_secs(30)).await;
    assert_eq!(actions(&fake, &dfe_id), ["defer"]);
    let read = admin
        .get_participant(pb::GetParticipantRequest { participant_id: ect.participant_id.clone(), as_of: None })
        .await
        .expect("get")
        .into_inner()
        .participant
        .expect("participant");
    assert_eq!(read.dfe_participant_id, dfe_id);
    stack.stop().await;
}

/// X5, F2, end to end: engagement recorded in payments earns `started`;
/// payments' outbox tells the DfE gateway, which posts one declaration to the
/// DfE, and the DfE's declaration id and state come back to payments
/// (RecordDeclarationState) and show in GetAccrual.
async fn x5_an_earned_milestone_reaches_the_dfe_and_its_state_comes_back_to_payments(backend: Backend) {
    use steplab_proto::steplab::payments::v1 as payments;
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake).await else { return };
    let w = world(&stack).await;
    let dfe_id = uuid::Uuid::now_v7().to_string();
    let ect = register(
        &stack,
        &w.dp1,
        with_dfe_id(registration(&w.school_a, ParticipantKind::Ect, "3300001", date(2026, 9, 1)), &dfe_id),
    )
    .await;
    let mut pay = stack.payments(Some(&stack.token(Role::Service, None, &[]))).await;
    wait_until_delivered(&stack, Duration::from_secs(60)).await;
    pay.record_engagement(payments::RecordEngagementRequest {
        participant_id: ect.participant_id.clone(),
        occurred_on: date(2026, 10, 1),
        kind: payments::EngagementKind::ModuleCompleted as i32,
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        note: String::new(),
    })
    .await
    .expect("engagement");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let started = loop {
        let accrual = pay
            .get_accrual(payments::GetAccrualRequest { participant_id: ect.participant_id.clone(), as_of: None })
            .await
            .expect("accrual")
            .into_inner();
        let started = accrual.milestones.iter().find(|m| m.milestone == "started").cloned();
        if let Some(m) = started.filter(|m| !m.dfe_declaration_id.is_empty()) {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no DfE state came back: {accrual:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let posted: Vec<_> =
        fake.accepted().into_iter().filter(|r| r.path.ends_with("/participant-declarations")).collect();
    assert_eq!(posted.len(), 1, "one declaration: {posted:#?}");
    let attributes = &posted[0].body["data"]["attributes"];
    assert_eq!(attributes["participant_id"], dfe_id.as_str());
    assert_eq!(attributes["declaration_type"], "started");
    assert_eq!(attributes["course_identifier"], "ecf-induction");
    let held = fake.with(|s| s.declarations.keys().cloned().collect::<Vec<_>>());
    assert_eq!(held, std::slice::from_ref(&started.dfe_declaration_id), "payments holds the DfE's own id");
    assert_eq!((started.dfe_declared, started.dfe_state.as_str()), (true, "submitted"));
    stack.stop().await;
}

macro_rules! on_both_backends_with_a_fake_dfe {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(steplab_tests::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(steplab_tests::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_backends_with_a_fake_dfe!(
    x4_d9_w6_the_ect_and_their_cascaded_mentor_are_reported_in_order,
    x1_a_dfe_id_set_later_by_an_admin_releases_the_waiting_calls,
    x5_an_earned_milestone_reaches_the_dfe_and_its_state_comes_back_to_payments,
);
