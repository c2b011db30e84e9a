//! Every request the product sends the DfE validates against the DfE's own
//! OpenAPI description: Prism mocks `dfe/lead-provider-api-v3.json` and
//! answers 422 (which the gateway parks) to a request that does not match.
//! The seed's examples run through gRPC on SQLite and PostgreSQL: a pause
//! (not sent), a nine-month deferral with a mentor, a return date moved, an
//! early return (with its schedule change, D5), a withdrawal with a mentor
//! (W6), a reinstatement, a move out of the covered area (S2), a release
//! start change (C2), a declaration payments makes from recorded engagement,
//! and declarations of each shape sent straight to the gateway.

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::date::to_proto;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, WithdrawalReason};
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::prism::Prism;
use steplab_tests::{Backend, Stack, wait_until_delivered};

async fn ect_and_mentor(stack: &Stack, dp: &str, school: &str, trn: u32) -> (pb::Participant, pb::Participant) {
    let with_id = |mut r: pb::RegisterParticipantRequest| {
        r.dfe_participant_id = uuid::Uuid::now_v7().to_string();
        r
    };
    let ect =
        register(stack, dp, with_id(registration(school, ParticipantKind::Ect, &trn.to_string(), date(2026, 9, 1))))
            .await;
    let mentor = register(
        stack,
        dp,
        with_id(registration(school, ParticipantKind::Mentor, &(trn + 1).to_string(), date(2026, 9, 1))),
    )
    .await;
    let lead = stack.token(Role::EcfLead, None, &[dp]);
    stack
        .participants(Some(&lead))
        .await
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
    (ect, mentor)
}

async fn the_seeds_examples_validate_against_the_dfes_description(backend: Backend) {
    let prism = Prism::start().await;
    let Some((stack, _dir)) = Stack::start_with_dfe(backend, &prism.url, "sandbox-token", &[]).await else {
        return;
    };
    let w = world(&stack).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;

    // A pause (not sent), then a nine-month deferral with the mentor, its
    // return date moved, and an early return.
    let (ect, _mentor) = ect_and_mentor(&stack, &w.dp1, &w.school_a, 4100001).await;
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
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            expected_return_date: date(2027, 9, 1),
            idempotency_key: String::new(),
        })
        .await
        .expect("return date moved");
    client
        .record_return(pb::RecordReturnRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            return_date: date(2026, 11, 23),
            idempotency_key: String::new(),
        })
        .await
        .expect("early return");

    // A withdrawal with the mentor (W6), then the ECT's reinstatement.
    let (ect2, _mentor2) = ect_and_mentor(&stack, &w.dp1, &w.school_a, 4200001).await;
    client
        .withdraw_participant(pb::WithdrawParticipantRequest {
            validate_only: false,
            participant_id: ect2.participant_id.clone(),
            reason: WithdrawalReason::LeftRole as i32,
            withdrawal_date: date(2026, 11, 2),
            note: String::new(),
            idempotency_key: String::new(),
            replacement_induction_coordinator_id: String::new(),
        })
        .await
        .expect("withdrawn");
    let request = client
        .request_reinstatement(pb::RequestReinstatementRequest {
            validate_only: false,
            participant_id: ect2.participant_id.clone(),
            note: "came back".into(),
            idempotency_key: String::new(),
            // W9: the mentor withdrawn with the ECT comes back too (another resume).
            with_mentor: true,
        })
        .await
        .expect("requested")
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
        .expect("reinstated");

    // A move to a school outside the covered area (S1, S2): nothing for the
    // DfE's participant actions, and nothing invalid sent.
    let admin = stack.admin_token();
    let mut as_admin = stack.participants(Some(&admin)).await;
    let uncovered = steplab_tests::fixtures::create_school(&mut as_admin, "300003", &w.dp1, false).await;
    client
        .move_school(pb::MoveSchoolRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            school_id: uncovered,
            moved_on: date(2026, 11, 27),
            idempotency_key: String::new(),
            keep_mentor: false,
        })
        .await
        .expect("moved");

    // Early release (C2): an ECT registered in November asks for an earlier
    // start than January's; a DPL approves.
    let late = register(
        &stack,
        &w.dp1,
        pb::RegisterParticipantRequest {
            dfe_participant_id: uuid::Uuid::now_v7().to_string(),
            ..registration(&w.school_a, ParticipantKind::Ect, "4300001", date(2026, 11, 10))
        },
    )
    .await;
    let early = client
        .request_release_start_change(pb::RequestReleaseStartChangeRequest {
            validate_only: false,
            participant_id: late.participant_id.clone(),
            release_start: date(2026, 11, 16),
            note: "ready now".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("early release requested")
        .into_inner()
        .request
        .expect("request");
    stack
        .participants(Some(&dpl))
        .await
        .decide_request(pb::DecideRequestRequest {
            idempotency_key: String::new(),
            validate_only: false,
            approval_request_id: early.approval_request_id,
            approve: Some(true),
            note: String::new(),
        })
        .await
        .expect("early release approved");

    // A milestone payments counts as earned (X5, F2): engagement recorded in
    // payments leaves through its outbox to the gateway and on to the DfE.
    {
        use steplab_proto::steplab::payments::v1 as payments;
        let service = stack.token(Role::Service, None, &[]);
        stack
            .payments(Some(&service))
            .await
            .record_engagement(payments::RecordEngagementRequest {
                participant_id: ect.participant_id.clone(),
                occurred_on: date(2026, 10, 5),
                kind: payments::EngagementKind::ModuleCompleted as i32,
                idempotency_key: uuid::Uuid::now_v7().to_string(),
                note: String::new(),
            })
            .await
            .expect("engagement");
    }

    // Declarations of every shape the spec has for this cohort (X5), straight
    // to the gateway as payments would send them, for the reinstated ECT.
    let mut gateway = stack.dfe_gateway(Some(&stack.token(Role::Service, None, &[]))).await;
    for (declaration_type, evidence) in [("started", ""), ("retained-1", "training-event-attended")] {
        gateway
            .declare_milestone(dfe::DeclareMilestoneRequest {
                idempotency_key: uuid::Uuid::now_v7().to_string(),
                participant_id: ect2.participant_id.clone(),
                declaration_type: declaration_type.into(),
                declaration_date: Some(to_proto(chrono::NaiveDate::from_ymd_opt(2026, 10, 5).expect("date"))),
                evidence_held: evidence.into(),
                milestone_id: String::new(),
            })
            .await
            .expect("declared");
    }

    wait_until_delivered(&stack, Duration::from_secs(60)).await;
    let mut admin = stack.dfe_gateway(Some(&stack.admin_token())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let calls = loop {
        let calls = admin
            .list_dfe_calls(dfe::ListDfeCallsRequest { page_size: 500, ..Default::default() })
            .await
            .expect("calls")
            .into_inner()
            .calls;
        let refused: Vec<String> = calls
            .iter()
            .filter(|c| c.state == dfe::DfeCallState::Parked as i32)
            .map(|c| format!("{} {} {}: {} {}", c.http_method, c.path, c.body, c.last_http_status, c.last_error))
            .collect();
        assert!(
            refused.is_empty(),
            "Prism refused requests that do not match the DfE's description:\n{}",
            refused.join("\n")
        );
        // Payments' declaration reaches the gateway through its own outbox.
        let from_payments = calls
            .iter()
            .any(|c| c.participant_id == ect.participant_id && c.path.ends_with("/participant-declarations"));
        if from_payments && calls.iter().all(|c| c.state == dfe::DfeCallState::Delivered as i32) {
            break calls;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all delivered: {calls:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let actions: Vec<String> = calls.iter().map(|c| c.path.rsplit('/').next().unwrap_or_default().to_owned()).collect();
    for expected in ["defer", "resume", "change-schedule", "withdraw", "participant-declarations"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} was sent: {actions:?}");
    }
    stack.stop().await;
}

mod the_seeds_examples_validate_against_the_dfes_description {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::the_seeds_examples_validate_against_the_dfes_description(steplab_tests::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::the_seeds_examples_validate_against_the_dfes_description(steplab_tests::Backend::Postgres).await;
    }
}
