//! The participant lifecycle over real gRPC, on SQLite and PostgreSQL, as the
//! lead provider's guidance describes it: pauses by the induction
//! coordinator, deferrals with the mentor cascade, withdrawals, requests a
//! DPL decides, school moves, the reporting feed, the commands written for
//! content release and payments, and who may do each.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{World, create_school, date, register, registration, status_on, world};
use steplab_tests::{Stack, on_both_backends};
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// An ECT with a mentor at school A, registered in September.
async fn ect_with_mentor(stack: &Stack, w: &World, trn: u32) -> (pb::Participant, pb::Participant) {
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, &format!("{trn}"), date(2026, 9, 1)))
            .await;
    let mentor = register(
        stack,
        &w.dp1,
        registration(&w.school_a, ParticipantKind::Mentor, &format!("{}", trn + 1), date(2026, 9, 1)),
    )
    .await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
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

fn defer_request(id: &str, from: (i32, i32, i32), until: (i32, i32, i32)) -> pb::DeferParticipantRequest {
    pb::DeferParticipantRequest {
        validate_only: false,
        participant_id: id.into(),
        reason: DeferralReason::ParentalLeave as i32,
        deferral_date: date(from.0, from.1, from.2),
        expected_return_date: date(until.0, until.1, until.2),
        note: "parental leave".into(),
        idempotency_key: String::new(),
    }
}

async fn p2_an_ic_pauses_for_three_weeks_but_an_eight_week_pause_points_to_deferral(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1100001", date(2026, 9, 1))).await;
    let ic = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let mut client = stack.participants(Some(&ic)).await;
    let paused = client
        .pause_participant(pb::PauseParticipantRequest {
            validate_only: false,
            alongside_ect_id: String::new(),
            participant_id: ect.participant_id.clone(),
            start_date: date(2026, 11, 30),
            expected_end_date: date(2026, 12, 21),
            note: "short illness".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("three weeks")
        .into_inner()
        .participant
        .expect("p");
    assert_eq!(paused.status, TrainingStatus::Active as i32, "the pause starts on Monday");
    let during = status_on(stack, &ect.participant_id, date(2026, 12, 7)).await;
    assert_eq!(during.status, TrainingStatus::Paused as i32);
    assert_eq!(during.pause.expect("pause").expected_end_date, date(2026, 12, 21));
    assert_eq!(status_on(stack, &ect.participant_id, date(2026, 12, 21)).await.status, TrainingStatus::Active as i32);

    let other =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1100002", date(2026, 9, 1))).await;
    let err = client
        .pause_participant(pb::PauseParticipantRequest {
            validate_only: false,
            alongside_ect_id: String::new(),
            participant_id: other.participant_id.clone(),
            start_date: date(2026, 11, 30),
            expected_end_date: date(2027, 1, 25),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("eight weeks");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "PAUSE_TOO_LONG");
    assert!(err.message().contains("DeferParticipant"), "{}", err.message());
    assert_eq!(status_on(stack, &other.participant_id, date(2026, 12, 7)).await.status, TrainingStatus::Active as i32);
}

async fn d1_an_induction_coordinators_deferral_is_refused_pointing_to_the_ecf_lead(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1200001", date(2026, 9, 1))).await;
    let ic = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let err = stack
        .participants(Some(&ic))
        .await
        .defer_participant(defer_request(&ect.participant_id, (2026, 12, 1), (2027, 9, 1)))
        .await
        .expect_err("ic defers");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("ECF Lead"), "{}", err.message());
}

async fn d9_nine_months_parental_leave_defers_the_ect_and_their_only_ect_mentor(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_with_mentor(stack, &w, 1300001).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    let err = client
        .defer_participant(defer_request(&ect.participant_id, (2026, 12, 1), (2028, 1, 1)))
        .await
        .expect_err("13 months");
    assert_eq!(reason(&err), "RETURN_DATE_TOO_FAR");
    let answer = client
        .defer_participant(defer_request(&ect.participant_id, (2026, 11, 20), (2027, 8, 20)))
        .await
        .expect("nine months")
        .into_inner();
    assert_eq!(answer.participant.expect("p").status, TrainingStatus::Deferred as i32);
    assert_eq!(answer.cascaded_participant_ids, std::slice::from_ref(&mentor.participant_id));
    let mentor_now = status_on(stack, &mentor.participant_id, None).await;
    assert_eq!(mentor_now.status, TrainingStatus::Deferred as i32);
    let mentor_deferral = mentor_now.deferral.expect("mentor deferral");
    assert_eq!(
        (mentor_deferral.deferral_date, mentor_deferral.expected_return_date),
        (date(2026, 11, 20), date(2027, 8, 20))
    );
    assert_eq!(mentor_deferral.cascaded_from_participant_id, ect.participant_id);
    // D7: the day after the return date both are active, with no action taken.
    for id in [&ect.participant_id, &mentor.participant_id] {
        assert_eq!(status_on(stack, id, date(2027, 8, 21)).await.status, TrainingStatus::Active as i32);
    }
    // D10: the mentor cannot be deferred directly.
    let err = client
        .defer_participant(defer_request(&mentor.participant_id, (2026, 12, 1), (2027, 1, 1)))
        .await
        .expect_err("mentor");
    assert_eq!(reason(&err), "MENTOR_CANNOT_BE_DEFERRED");
    // The mentor's history shows the cascade.
    let history = client
        .get_participant_history(pb::GetParticipantHistoryRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: mentor.participant_id.clone(),
        })
        .await
        .expect("history")
        .into_inner()
        .events;
    let deferred = history.iter().find(|e| e.event_type == pb::EventType::Deferred as i32).expect("deferred event");
    assert_eq!(deferred.caused_by_participant_id, ect.participant_id);
}

async fn d6_d7_a_return_date_moved_later_then_an_early_return(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_with_mentor(stack, &w, 1400001).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    client.defer_participant(defer_request(&ect.participant_id, (2026, 10, 1), (2027, 1, 4))).await.expect("deferred");
    let later = client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            expected_return_date: date(2027, 4, 12),
            idempotency_key: String::new(),
        })
        .await
        .expect("later")
        .into_inner();
    assert_eq!(later.cascaded_participant_ids, std::slice::from_ref(&mentor.participant_id));
    assert_eq!(
        status_on(stack, &mentor.participant_id, date(2027, 3, 1)).await.status,
        TrainingStatus::Deferred as i32
    );
    let err = client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            expected_return_date: date(2027, 10, 2),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("more than 12 months after the original deferral date");
    assert_eq!(reason(&err), "RETURN_DATE_TOO_FAR");
    let back = client
        .record_return(pb::RecordReturnRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            return_date: date(2026, 11, 23),
            idempotency_key: String::new(),
        })
        .await
        .expect("early return")
        .into_inner();
    assert_eq!(back.participant.expect("p").status, TrainingStatus::Active as i32);
    assert_eq!(
        status_on(stack, &mentor.participant_id, None).await.status,
        TrainingStatus::Active as i32,
        "the mentor returns too"
    );
}

async fn w2_w6_a_withdrawal_tomorrow_is_refused_and_the_only_ect_mentor_follows(stack: &Stack) {
    let w = world(stack).await;
    let (ect, mentor) = ect_with_mentor(stack, &w, 1500001).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    let withdraw = |on| pb::WithdrawParticipantRequest {
        validate_only: false,
        replacement_induction_coordinator_id: String::new(),
        participant_id: ect.participant_id.clone(),
        reason: WithdrawalReason::MovedSchool as i32,
        withdrawal_date: on,
        note: String::new(),
        idempotency_key: String::new(),
    };
    let err = client.withdraw_participant(withdraw(date(2026, 11, 29))).await.expect_err("tomorrow");
    assert_eq!(reason(&err), "WITHDRAWAL_DATE_IN_FUTURE");
    assert_eq!(
        status_on(stack, &ect.participant_id, None).await.status,
        TrainingStatus::Active as i32,
        "nothing changed"
    );
    let answer = client.withdraw_participant(withdraw(date(2026, 11, 27))).await.expect("withdrawn").into_inner();
    assert_eq!(answer.participant.expect("p").status, TrainingStatus::Withdrawn as i32);
    assert_eq!(answer.cascaded_participant_ids, std::slice::from_ref(&mentor.participant_id));
    let mentor_now = status_on(stack, &mentor.participant_id, None).await;
    assert_eq!(mentor_now.status, TrainingStatus::Withdrawn as i32);
    assert_eq!(mentor_now.withdrawal.expect("w").reason, WithdrawalReason::MentorNoLongerBeingMentor as i32);
    // W7: school A has nobody in training any more; its DPL hears of it.
    let dpl = stack.token(Role::Dpl, None, &[&w.dp1]);
    let notes = stack
        .participants(Some(&dpl))
        .await
        .list_notifications(pb::ListNotificationsRequest { delivery_partner_id: w.dp1.clone(), ..Default::default() })
        .await
        .expect("notifications")
        .into_inner()
        .notifications;
    assert_eq!(
        notes.iter().map(|n| n.kind).collect::<Vec<_>>(),
        [pb::NotificationKind::SchoolWithoutParticipants as i32]
    );
}

async fn w9_a_reinstatement_takes_a_dpls_approval(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1600001", date(2026, 9, 1))).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    client
        .withdraw_participant(pb::WithdrawParticipantRequest {
            validate_only: false,
            replacement_induction_coordinator_id: String::new(),
            participant_id: ect.participant_id.clone(),
            reason: WithdrawalReason::LeftRole as i32,
            withdrawal_date: date(2026, 11, 2),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("withdrawn");
    let request = client
        .request_reinstatement(pb::RequestReinstatementRequest {
            validate_only: false,
            with_mentor: false,
            participant_id: ect.participant_id.clone(),
            note: "came back".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    assert_eq!(request.status, pb::RequestStatus::Pending as i32);
    assert_eq!(
        status_on(stack, &ect.participant_id, None).await.status,
        TrainingStatus::Withdrawn as i32,
        "still withdrawn until approved"
    );
    let decide = |approve| pb::DecideRequestRequest {
        idempotency_key: String::new(),
        validate_only: false,
        approval_request_id: request.approval_request_id.clone(),
        approve: Some(approve),
        note: String::new(),
    };
    let err = client.decide_request(decide(true)).await.expect_err("the ECF Lead cannot approve");
    assert_eq!(err.code(), Code::PermissionDenied);
    let other_dpl = stack.token(Role::Dpl, None, &[&w.dp2]);
    let err =
        stack.participants(Some(&other_dpl)).await.decide_request(decide(true)).await.expect_err("another DP's DPL");
    assert_eq!(err.code(), Code::PermissionDenied);
    let dpl = stack.token(Role::Dpl, None, &[&w.dp1]);
    // DecideRequest takes an idempotency key like every change: a retry of the
    // approval answers the first answer, the key reused for a refusal is refused.
    let keyed = |approve| pb::DecideRequestRequest { idempotency_key: "decide-1".into(), ..decide(approve) };
    let decided =
        stack.participants(Some(&dpl)).await.decide_request(keyed(true)).await.expect("approved").into_inner();
    let retried = stack.participants(Some(&dpl)).await.decide_request(keyed(true)).await.expect("retried").into_inner();
    assert_eq!(retried, decided, "a retry with the same idempotency key answers the first answer");
    let err = stack.participants(Some(&dpl)).await.decide_request(keyed(false)).await.expect_err("key reused");
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(decided.request.expect("r").status, pb::RequestStatus::Approved as i32);
    assert_eq!(decided.participant.expect("p").status, TrainingStatus::Active as i32);
    let err = stack.participants(Some(&dpl)).await.decide_request(decide(false)).await.expect_err("decided twice");
    assert_eq!(reason(&err), "REQUEST_ALREADY_DECIDED");
    // An unset `approve` is refused, not read as a refusal (explicit presence).
    let unset = pb::DecideRequestRequest { approve: None, ..decide(true) };
    let err = stack.participants(Some(&dpl)).await.decide_request(unset).await.expect_err("approve unset");
    assert_eq!(err.code(), Code::InvalidArgument);
    let history = client
        .get_participant_history(pb::GetParticipantHistoryRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: ect.participant_id.clone(),
        })
        .await
        .expect("history")
        .into_inner()
        .events;
    assert_eq!(history.last().expect("event").event_type, pb::EventType::Reinstated as i32);
    let listed = client
        .list_requests(pb::ListRequestsRequest { status: pb::RequestStatus::Approved as i32, ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .requests;
    assert_eq!(listed.len(), 1);
}

async fn c2_an_early_release_for_a_post_november_starter_needs_a_dpl(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1700001", date(2026, 11, 10))).await;
    assert_eq!(ect.release_start, date(2027, 1, 1));
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let request = stack
        .participants(Some(&lead))
        .await
        .request_release_start_change(pb::RequestReleaseStartChangeRequest {
            validate_only: false,
            participant_id: ect.participant_id.clone(),
            release_start: date(2026, 11, 16),
            note: "ready now".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    assert_eq!(
        status_on(stack, &ect.participant_id, None).await.release_start,
        date(2027, 1, 1),
        "no effect before approval"
    );
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
    assert_eq!(status_on(stack, &ect.participant_id, None).await.release_start, date(2026, 11, 16));
}

async fn s1_s2_a_move_into_an_uncovered_area_is_sent_to_payments(stack: &Stack) {
    let w = world(stack).await;
    let admin = stack.admin_token();
    let uncovered = create_school(&mut stack.participants(Some(&admin)).await, "100009", &w.dp1, false).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1800001", date(2026, 9, 1))).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    let moved = client
        .move_school(pb::MoveSchoolRequest {
            validate_only: false,
            keep_mentor: false,
            participant_id: ect.participant_id.clone(),
            school_id: uncovered.clone(),
            moved_on: date(2026, 11, 2),
            idempotency_key: String::new(),
        })
        .await
        .expect("moved")
        .into_inner()
        .participant
        .expect("p");
    assert_eq!(moved.school_id, uncovered);
    assert_eq!(status_on(stack, &ect.participant_id, date(2026, 10, 1)).await.school_id, w.school_a, "history kept");
    let sync = client
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: ect.participant_id.clone(),
            parked_only: false,
        })
        .await
        .expect("sync status")
        .into_inner();
    let rpcs: Vec<&str> = sync.commands.iter().map(|c| c.rpc.as_str()).collect();
    assert!(rpcs.contains(&"SetAreaCovered"), "{rpcs:?}");
    // Moving into another delivery partner's school needs that scope too.
    let err = client
        .move_school(pb::MoveSchoolRequest {
            validate_only: false,
            keep_mentor: false,
            participant_id: ect.participant_id.clone(),
            school_id: w.school_b.clone(),
            moved_on: None,
            idempotency_key: String::new(),
        })
        .await
        .expect_err("other dp");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn d4_every_change_writes_its_commands_for_content_release_and_payments(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1900001", date(2026, 9, 1))).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    client.defer_participant(defer_request(&ect.participant_id, (2026, 12, 1), (2027, 6, 1))).await.expect("deferred");
    let sync = client
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: ect.participant_id.clone(),
            parked_only: false,
        })
        .await
        .expect("sync status")
        .into_inner();
    let sent: Vec<(&str, &str)> = sync.commands.iter().map(|c| (c.target.as_str(), c.rpc.as_str())).collect();
    assert_eq!(
        sent,
        [
            // X1, X4: the DfE gateway hears of the registration and the deferral first.
            ("dfe-gateway", "TrackParticipant"),
            ("content-release", "EnrolLearner"),
            ("payments", "EnrolPayee"),
            ("dfe-gateway", "ReportStatusChange"),
            ("content-release", "PlaceHold"),
            ("payments", "SuspendAccrual")
        ]
    );
    let mut ids: Vec<&str> = sync.commands.iter().map(|c| c.command_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every command has its own id");
    let ic_b = stack.token(Role::InductionCoordinator, Some(&w.school_b), &[]);
    let err = stack
        .participants(Some(&ic_b))
        .await
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: ect.participant_id.clone(),
            parked_only: false,
        })
        .await
        .expect_err("other school");
    assert_eq!(err.code(), Code::PermissionDenied);
}

/// The next event of `wanted` type on the feed, skipping the others.
async fn next_of_type(
    feed: &mut tonic::Streaming<pb::WatchEventsResponse>,
    wanted: pb::EventType,
) -> pb::ParticipantEvent {
    loop {
        let event = feed.message().await.expect("stream").expect("event").participant_event.expect("event");
        if event.event_type == wanted as i32 {
            return event;
        }
    }
}

async fn d12_the_reporting_feed_resumes_from_a_cursor_without_gaps_or_repeats(stack: &Stack) {
    let w = world(stack).await;
    let first =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "2000001", date(2026, 9, 1))).await;
    let second =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "2000002", date(2026, 9, 1))).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    client
        .defer_participant(defer_request(&first.participant_id, (2026, 12, 1), (2027, 6, 1)))
        .await
        .expect("deferred");
    let admin = stack.admin_token();
    let mut feed = stack
        .participants(Some(&admin))
        .await
        .watch_events(pb::WatchEventsRequest { after_cursor: 0 })
        .await
        .expect("watch")
        .into_inner();
    // The feed carries every event type: the registrations come first.
    let seen = next_of_type(&mut feed, pb::EventType::Deferred).await;
    assert_eq!(
        (seen.participant_id.as_str(), seen.event_type),
        (first.participant_id.as_str(), pb::EventType::Deferred as i32)
    );
    drop(feed);
    client
        .defer_participant(defer_request(&second.participant_id, (2026, 12, 1), (2027, 6, 1)))
        .await
        .expect("deferred");
    let mut resumed = stack
        .participants(Some(&admin))
        .await
        .watch_events(pb::WatchEventsRequest { after_cursor: seen.cursor })
        .await
        .expect("watch")
        .into_inner();
    let next = next_of_type(&mut resumed, pb::EventType::Deferred).await;
    assert_eq!(next.participant_id, second.participant_id, "resumes after the cursor: nothing missed, nothing twice");
    assert!(next.cursor > seen.cursor);
    let err = stack
        .participants(Some(&lead))
        .await
        .watch_events(pb::WatchEventsRequest { after_cursor: 0 })
        .await
        .expect_err("lead");
    assert_eq!(err.code(), Code::PermissionDenied);
}

/// For each lifecycle RPC: no token is UNAUTHENTICATED, an out-of-scope or
/// wrong role is PERMISSION_DENIED, and the right role gets past the check.
async fn roles_matrix_for_the_lifecycle_rpcs(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "2100001", date(2026, 9, 1))).await;
    let id = ect.participant_id.clone();
    let ic_a = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let ic_b = stack.token(Role::InductionCoordinator, Some(&w.school_b), &[]);
    let lead_1 = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let lead_2 = stack.token(Role::EcfLead, None, &[&w.dp2]);
    let dpl_1 = stack.token(Role::Dpl, None, &[&w.dp1]);
    let dpl_2 = stack.token(Role::Dpl, None, &[&w.dp2]);
    let service = stack.token(Role::Service, None, &[]);
    // A real pending request of DP 1, for DecideRequest.
    let withdrawn =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "2100002", date(2026, 9, 1))).await;
    let mut as_lead = stack.participants(Some(&lead_1)).await;
    as_lead
        .withdraw_participant(pb::WithdrawParticipantRequest {
            validate_only: false,
            replacement_induction_coordinator_id: String::new(),
            participant_id: withdrawn.participant_id.clone(),
            reason: WithdrawalReason::LeftRole as i32,
            withdrawal_date: None,
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("withdrawn");
    let pending = as_lead
        .request_reinstatement(pb::RequestReinstatementRequest {
            participant_id: withdrawn.participant_id.clone(),
            ..Default::default()
        })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request")
        .approval_request_id;
    let admin = stack.admin_token();

    // (rpc, tokens allowed past the permission check, tokens refused)
    let rows: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("PauseParticipant", vec![&ic_a, &lead_1, &admin], vec![&ic_b, &lead_2, &dpl_1, &service]),
        ("ExtendPause", vec![&ic_a, &lead_1, &admin], vec![&ic_b, &lead_2, &dpl_1, &service]),
        ("EndPause", vec![&ic_a, &lead_1, &admin], vec![&ic_b, &lead_2, &dpl_1, &service]),
        ("DeferParticipant", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("ChangeReturnDate", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("RecordReturn", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("WithdrawParticipant", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("RequestReinstatement", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("MoveSchool", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("GetSyncStatus", vec![&ic_a, &lead_1, &dpl_1, &admin], vec![&ic_b, &lead_2, &service]),
        ("ListNotifications", vec![&lead_1, &dpl_1, &admin], vec![&ic_a, &service]),
        ("ListRequests", vec![&lead_1, &dpl_1, &admin], vec![&ic_a, &service]),
        ("RequestReleaseStartChange", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("RequestKeepMentor", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("RequestLongDeferral", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("DecideRequest", vec![&dpl_1, &admin], vec![&ic_a, &lead_1, &dpl_2, &service]),
        ("AssignMentor", vec![&ic_a, &lead_1, &admin], vec![&ic_b, &lead_2, &dpl_1, &service]),
        ("EndMentorCover", vec![&ic_a, &lead_1, &admin], vec![&ic_b, &lead_2, &dpl_1, &service]),
        ("GetParticipant", vec![&ic_a, &lead_1, &dpl_1, &admin], vec![&ic_b, &lead_2, &dpl_2, &service]),
        ("GetParticipantHistory", vec![&ic_a, &lead_1, &dpl_1, &admin], vec![&ic_b, &lead_2, &dpl_2, &service]),
        ("ListParticipants", vec![&ic_a, &lead_1, &dpl_1, &admin], vec![&service]),
        ("RegisterParticipant", vec![&lead_1, &admin], vec![&ic_a, &lead_2, &dpl_1, &service]),
        ("CreateSchool", vec![&admin], vec![&ic_a, &lead_1, &dpl_1, &service]),
        ("CreateDeliveryPartner", vec![&admin], vec![&ic_a, &lead_1, &dpl_1, &service]),
        ("WatchEvents", vec![&admin, &service], vec![&ic_a, &lead_1, &dpl_1]),
        ("RetryParkedCommands", vec![&admin], vec![&ic_a, &lead_1, &dpl_1, &service]),
        ("CheckConsistency", vec![&admin], vec![&ic_a, &lead_1, &dpl_1, &service]),
    ];
    for (rpc, allowed, refused) in rows {
        let call = |token: Option<String>| {
            let id = id.clone();
            let school_a = w.school_a.clone();
            let pending = pending.clone();
            let other = withdrawn.participant_id.clone();
            async move {
                let mut c = stack.participants(token.as_deref()).await;
                let outcome = match rpc {
                    "PauseParticipant" => c
                        .pause_participant(pb::PauseParticipantRequest {
                            participant_id: id,
                            start_date: date(2027, 1, 4),
                            expected_end_date: date(2027, 1, 5),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "ExtendPause" => c
                        .extend_pause(pb::ExtendPauseRequest {
                            participant_id: id,
                            expected_end_date: date(2027, 1, 6),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "EndPause" => {
                        c.end_pause(pb::EndPauseRequest { participant_id: id, ..Default::default() }).await.map(|_| ())
                    }
                    "DeferParticipant" => {
                        c.defer_participant(defer_request(&id, (2027, 3, 1), (2027, 4, 15))).await.map(|_| ())
                    }
                    "ChangeReturnDate" => c
                        .change_return_date(pb::ChangeReturnDateRequest {
                            participant_id: id,
                            expected_return_date: date(2027, 3, 3),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "RecordReturn" => c
                        .record_return(pb::RecordReturnRequest { participant_id: id, ..Default::default() })
                        .await
                        .map(|_| ()),
                    "WithdrawParticipant" => c
                        .withdraw_participant(pb::WithdrawParticipantRequest {
                            participant_id: id,
                            reason: WithdrawalReason::Other as i32,
                            withdrawal_date: date(2027, 1, 1),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "RequestReinstatement" => c
                        .request_reinstatement(pb::RequestReinstatementRequest {
                            participant_id: id,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "MoveSchool" => c
                        .move_school(pb::MoveSchoolRequest {
                            participant_id: id,
                            school_id: school_a,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "GetSyncStatus" => c
                        .get_sync_status(pb::GetSyncStatusRequest {
                            page_size: 0,
                            page_token: String::new(),
                            participant_id: id,
                            parked_only: false,
                        })
                        .await
                        .map(|_| ()),
                    "ListNotifications" => {
                        c.list_notifications(pb::ListNotificationsRequest::default()).await.map(|_| ())
                    }
                    "ListRequests" => c.list_requests(pb::ListRequestsRequest::default()).await.map(|_| ()),
                    "RequestReleaseStartChange" => c
                        .request_release_start_change(pb::RequestReleaseStartChangeRequest {
                            participant_id: id,
                            release_start: date(2026, 10, 1),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "RequestKeepMentor" => c
                        .request_keep_mentor(pb::RequestKeepMentorRequest { mentor_id: id, ..Default::default() })
                        .await
                        .map(|_| ()),
                    "RequestLongDeferral" => c
                        .request_long_deferral(pb::RequestLongDeferralRequest {
                            participant_id: id,
                            latest_return_date: date(2028, 1, 4),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    // A refusal, so the request stays pending for the next caller.
                    "DecideRequest" => c
                        .decide_request(pb::DecideRequestRequest {
                            idempotency_key: String::new(),
                            validate_only: false,
                            approval_request_id: pending.clone(),
                            approve: Some(false),
                            note: "no".into(),
                        })
                        .await
                        .map(|_| ()),
                    "AssignMentor" => c
                        .assign_mentor(pb::AssignMentorRequest {
                            ect_id: id,
                            mentor_id: other,
                            interim: true,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    "EndMentorCover" => c
                        .end_mentor_cover(pb::EndMentorCoverRequest { ect_id: id, ..Default::default() })
                        .await
                        .map(|_| ()),
                    "GetParticipant" => c
                        .get_participant(pb::GetParticipantRequest { participant_id: id, as_of: None })
                        .await
                        .map(|_| ()),
                    "GetParticipantHistory" => c
                        .get_participant_history(pb::GetParticipantHistoryRequest {
                            page_size: 0,
                            page_token: String::new(),
                            participant_id: id,
                        })
                        .await
                        .map(|_| ()),
                    "ListParticipants" => c.list_participants(pb::ListParticipantsRequest::default()).await.map(|_| ()),
                    "RegisterParticipant" => c
                        .register_participant(registration(
                            &school_a,
                            ParticipantKind::Ect,
                            "2199999",
                            date(2026, 12, 30),
                        ))
                        .await
                        .map(|_| ()),
                    "CreateSchool" => c
                        .create_school(pb::CreateSchoolRequest { urn: "bad".into(), ..Default::default() })
                        .await
                        .map(|_| ()),
                    "CreateDeliveryPartner" => {
                        c.create_delivery_partner(pb::CreateDeliveryPartnerRequest::default()).await.map(|_| ())
                    }
                    "WatchEvents" => {
                        c.watch_events(pb::WatchEventsRequest { after_cursor: i64::MAX }).await.map(|_| ())
                    }
                    "RetryParkedCommands" => {
                        c.retry_parked_commands(pb::RetryParkedCommandsRequest::default()).await.map(|_| ())
                    }
                    "CheckConsistency" => c
                        .check_consistency(pb::CheckConsistencyRequest { page_size: 1, ..Default::default() })
                        .await
                        .map(|_| ()),
                    other => panic!("no call for {other}"),
                };
                outcome.err().map(|s| s.code())
            }
        };
        assert_eq!(call(None).await, Some(Code::Unauthenticated), "{rpc} without a token");
        for token in allowed {
            let code = call(Some(token.to_owned())).await;
            assert!(
                !matches!(code, Some(Code::PermissionDenied | Code::Unauthenticated)),
                "{rpc} allowed role got {code:?}"
            );
        }
        for token in refused {
            assert_eq!(call(Some(token.to_owned())).await, Some(Code::PermissionDenied), "{rpc} refused role");
        }
    }
}

on_both_backends!(
    p2_an_ic_pauses_for_three_weeks_but_an_eight_week_pause_points_to_deferral,
    d1_an_induction_coordinators_deferral_is_refused_pointing_to_the_ecf_lead,
    d9_nine_months_parental_leave_defers_the_ect_and_their_only_ect_mentor,
    d6_d7_a_return_date_moved_later_then_an_early_return,
    w2_w6_a_withdrawal_tomorrow_is_refused_and_the_only_ect_mentor_follows,
    w9_a_reinstatement_takes_a_dpls_approval,
    c2_an_early_release_for_a_post_november_starter_needs_a_dpl,
    s1_s2_a_move_into_an_uncovered_area_is_sent_to_payments,
    d4_every_change_writes_its_commands_for_content_release_and_payments,
    d12_the_reporting_feed_resumes_from_a_cursor_without_gaps_or_repeats,
    roles_matrix_for_the_lifecycle_rpcs,
);
