//! The participant registry over real gRPC, on SQLite and on PostgreSQL:
//! roles and scope, field errors, C1 defaults, M1/M3 mentors, history,
//! paging, idempotency and concurrency.

use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{ParticipantKind, TrainingStatus};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Stack, on_both_backends};
use tonic::Code;
use tonic_types::StatusExt;

async fn count_in(stack: &Stack, school: &str) -> usize {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .list_participants(pb::ListParticipantsRequest {
            school_id: school.into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .participants
        .len()
}

async fn auth_no_token_is_unauthenticated_but_health_and_reflection_are_open(stack: &Stack) {
    let err = stack
        .participants(None)
        .await
        .list_participants(pb::ListParticipantsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = stack
        .participants(Some("not-a-jwt"))
        .await
        .list_participants(pb::ListParticipantsRequest::default())
        .await
        .expect_err("bad token");
    assert_eq!(err.code(), Code::Unauthenticated);
    for addr in [stack.participant_addr, stack.content_addr, stack.payments_addr] {
        let mut health = tonic_health::pb::health_client::HealthClient::new(steplab_tests::channel(addr).await);
        let answer =
            health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health open");
        assert_eq!(answer.into_inner().status, 1, "SERVING");
    }
    let err = stack
        .content(None)
        .await
        .get_curriculum(steplab_proto::steplab::content::v1::GetCurriculumRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = stack
        .payments(None)
        .await
        .list_schedules(steplab_proto::steplab::payments::v1::ListSchedulesRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
}

async fn roles_an_induction_coordinator_of_school_a_cannot_read_school_b(stack: &Stack) {
    let w = world(stack).await;
    let in_b = register(stack, &w.dp2, registration(&w.school_b, ParticipantKind::Ect, "2000001", None)).await;
    let in_a = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1000001", None)).await;
    let ic_a = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let mut client = stack.participants(Some(&ic_a)).await;
    let err = client
        .get_participant(pb::GetParticipantRequest { participant_id: in_b.participant_id.clone(), as_of: None })
        .await
        .expect_err("other school");
    assert_eq!(err.code(), Code::PermissionDenied);
    let own = client
        .get_participant(pb::GetParticipantRequest { participant_id: in_a.participant_id.clone(), as_of: None })
        .await
        .expect("own school");
    assert_eq!(own.into_inner().participant.expect("p").participant_id, in_a.participant_id);
    // The DPL of DP2 reads B, not A; an ECF Lead of DP1 reads A, not B.
    let dpl = stack.token(Role::Dpl, None, &[&w.dp2]);
    let mut dpl_client = stack.participants(Some(&dpl)).await;
    assert!(
        dpl_client
            .get_participant(pb::GetParticipantRequest { participant_id: in_b.participant_id.clone(), as_of: None })
            .await
            .is_ok()
    );
    let err = dpl_client
        .get_participant(pb::GetParticipantRequest { participant_id: in_a.participant_id.clone(), as_of: None })
        .await
        .expect_err("other dp");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn roles_who_may_create_and_register(stack: &Stack) {
    let w = world(stack).await;
    let ic = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let err = stack
        .participants(Some(&ic))
        .await
        .register_participant(registration(&w.school_a, ParticipantKind::Ect, "1000002", None))
        .await
        .expect_err("ic registers");
    assert_eq!(err.code(), Code::PermissionDenied);
    let lead_dp2 = stack.token(Role::EcfLead, None, &[&w.dp2]);
    let err = stack
        .participants(Some(&lead_dp2))
        .await
        .register_participant(registration(&w.school_a, ParticipantKind::Ect, "1000002", None))
        .await
        .expect_err("lead of another dp");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = stack
        .participants(Some(&lead_dp2))
        .await
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: "X".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("lead creates dp");
    assert_eq!(err.code(), Code::PermissionDenied);
    let service = stack.token(Role::Service, None, &[]);
    let err = stack
        .participants(Some(&service))
        .await
        .list_participants(pb::ListParticipantsRequest::default())
        .await
        .expect_err("service token on a public rpc");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(count_in(stack, &w.school_a).await, 0, "nothing was registered by the refused calls");
}

async fn invalid_an_impossible_registration_date_names_the_field_and_changes_nothing(stack: &Stack) {
    let w = world(stack).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let err = stack
        .participants(Some(&lead))
        .await
        .register_participant(registration(&w.school_a, ParticipantKind::Ect, "1000003", date(2026, 2, 30)))
        .await
        .expect_err("30 February");
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let fields: Vec<String> =
        details.bad_request().expect("BadRequest details").field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["registered_on"]);
    assert_eq!(count_in(stack, &w.school_a).await, 0);
}

async fn not_found_for_an_unknown_participant_and_school(stack: &Stack) {
    let w = world(stack).await;
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    let err = client
        .get_participant(pb::GetParticipantRequest { participant_id: uuid::Uuid::now_v7().to_string(), as_of: None })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let err = stack
        .participants(Some(&lead))
        .await
        .register_participant(registration(&uuid::Uuid::now_v7().to_string(), ParticipantKind::Ect, "1000004", None))
        .await
        .expect_err("unknown school");
    // AIP-211: an ECF Lead is not told whether a school outside their scope exists.
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn c1_default_release_start_and_schedule_follow_the_registration_date(stack: &Stack) {
    let w = world(stack).await;
    let october =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1000005", date(2026, 10, 14))).await;
    assert_eq!(october.schedule, "ecf-standard-september");
    assert_eq!(october.cohort, 2026);
    assert_eq!(october.release_start, date(2026, 10, 14), "an October registration starts at once");
    let november =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "1000006", date(2026, 11, 2))).await;
    assert_eq!(november.schedule, "ecf-standard-january");
    assert_eq!(november.release_start, date(2027, 1, 1));
    assert_eq!(november.status, TrainingStatus::Active as i32);
    let err = stack
        .participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp1])))
        .await
        .register_participant(registration(&w.school_a, ParticipantKind::Ect, "1000007", date(2026, 12, 1)))
        .await
        .expect_err("future registration");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_error_details().error_info().expect("ErrorInfo").reason, "REGISTRATION_DATE_IN_FUTURE");
}

async fn m4_a_previous_pilot_mentor_is_kept_and_not_funded(stack: &Stack) {
    let w = world(stack).await;
    let mut request = registration(&w.school_a, ParticipantKind::Mentor, "1000008", None);
    request.previous_pilot_mentor = Some(true);
    let mentor = register(stack, &w.dp1, request).await;
    assert!(mentor.previous_pilot_mentor);
    assert!(!mentor.funding_eligible);
}

async fn duplicates_a_urn_or_a_trn_already_registered_is_already_exists(stack: &Stack) {
    let w = world(stack).await;
    let admin = stack.admin_token();
    let err = stack
        .participants(Some(&admin))
        .await
        .create_school(pb::CreateSchoolRequest {
            validate_only: false,
            urn: "100001".into(),
            name: "Copy".into(),
            delivery_partner_id: w.dp1.clone(),
            area_covered: Some(true),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("same urn");
    assert_eq!(err.code(), Code::AlreadyExists);
    register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1000009", None)).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let err = stack
        .participants(Some(&lead))
        .await
        .register_participant(registration(&w.school_a, ParticipantKind::Ect, "1000009", None))
        .await
        .expect_err("same trn");
    assert_eq!(err.code(), Code::AlreadyExists);
}

async fn idempotency_a_repeated_request_id_returns_the_first_answer(stack: &Stack) {
    let w = world(stack).await;
    let mut request = registration(&w.school_a, ParticipantKind::Ect, "1000010", None);
    request.idempotency_key = "register-1000010".into();
    let first = register(stack, &w.dp1, request.clone()).await;
    let second = register(stack, &w.dp1, request.clone()).await;
    assert_eq!(first.participant_id, second.participant_id);
    assert_eq!(count_in(stack, &w.school_a).await, 1);
    request.full_name = "Someone Else".into();
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let err = stack.participants(Some(&lead)).await.register_participant(request).await.expect_err("reused id");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_error_details().error_info().expect("ErrorInfo").reason, "IDEMPOTENCY_KEY_REUSED");
}

async fn listing_pages_through_everyone_in_scope_once(stack: &Stack) {
    let w = world(stack).await;
    for n in 0..5 {
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, &format!("30000{n:02}"), None)).await;
    }
    register(stack, &w.dp2, registration(&w.school_b, ParticipantKind::Ect, "4000000", None)).await;
    let ic_a = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let mut client = stack.participants(Some(&ic_a)).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_participants(pb::ListParticipantsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        seen.extend(page.participants.into_iter().map(|p| {
            assert_eq!(p.school_id, w.school_a, "an IC sees only their school");
            p.participant_id
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5));
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let err = stack
        .participants(Some(&lead))
        .await
        .list_participants(pb::ListParticipantsRequest { delivery_partner_id: w.dp2.clone(), ..Default::default() })
        .await
        .expect_err("foreign dp filter");
    assert_eq!(err.code(), Code::PermissionDenied);
    let active = stack
        .participants(Some(&lead))
        .await
        .list_participants(pb::ListParticipantsRequest { status: TrainingStatus::Active as i32, ..Default::default() })
        .await
        .expect("status filter")
        .into_inner();
    assert_eq!(active.participants.len(), 5);
    let deferred = stack
        .participants(Some(&lead))
        .await
        .list_participants(pb::ListParticipantsRequest {
            status: TrainingStatus::Deferred as i32,
            ..Default::default()
        })
        .await
        .expect("status filter")
        .into_inner();
    assert!(deferred.participants.is_empty());
}

async fn m1_m3_mentors_are_assigned_replaced_and_kept_in_history(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "5000001", date(2026, 9, 1))).await;
    let m1 =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "5000002", date(2026, 9, 1))).await;
    let m2 =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "5000003", date(2026, 9, 1))).await;
    let ic =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::InductionCoordinator, "", date(2026, 9, 1)))
            .await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    let assign = |mentor: &str, interim: bool, on: Option<Date>| pb::AssignMentorRequest {
        validate_only: false,
        ect_id: ect.participant_id.clone(),
        mentor_id: mentor.into(),
        interim,
        effective_date: on,
        idempotency_key: String::new(),
        until: None,
    };
    client.assign_mentor(assign(&m1.participant_id, false, date(2026, 9, 7))).await.expect("m1");
    let after = client.assign_mentor(assign(&m2.participant_id, false, date(2026, 10, 5))).await.expect("m2");
    assert_eq!(after.into_inner().ect.expect("ect").mentor_id, m2.participant_id);
    // M3: the school's IC steps in as interim mentor, with an IC token.
    let ic_token = stack.token(Role::InductionCoordinator, Some(&w.school_a), &[]);
    let mut ic_client = stack.participants(Some(&ic_token)).await;
    let err = ic_client.assign_mentor(assign(&m1.participant_id, false, None)).await.expect_err("ic replaces mentor");
    assert_eq!(err.code(), Code::PermissionDenied);
    let interim = ic_client.assign_mentor(assign(&ic.participant_id, true, None)).await.expect("interim").into_inner();
    let ect_now = interim.ect.expect("ect");
    assert_eq!((ect_now.mentor_id.as_str(), ect_now.mentor_interim), (ic.participant_id.as_str(), true));
    // M5 (version 2): the covered mentor stays the mentor of record.
    assert_eq!(ect_now.mentor_of_record_id, m2.participant_id);
    // As of a past date the mentor then is answered.
    let then = client
        .get_participant(pb::GetParticipantRequest {
            participant_id: ect.participant_id.clone(),
            as_of: date(2026, 9, 20),
        })
        .await
        .expect("as of")
        .into_inner()
        .participant
        .expect("p");
    assert_eq!(then.mentor_id, m1.participant_id);
    let err = client
        .get_participant(pb::GetParticipantRequest {
            participant_id: ect.participant_id.clone(),
            as_of: date(2026, 8, 1),
        })
        .await
        .expect_err("before registration");
    assert_eq!(err.get_error_details().error_info().expect("ErrorInfo").reason, "BEFORE_REGISTRATION");
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
    let types: Vec<i32> = history.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            pb::EventType::Registered as i32,
            pb::EventType::MentorAssigned as i32,
            pb::EventType::MentorAssigned as i32,
            pb::EventType::MentorAssigned as i32
        ]
    );
    assert!(history.iter().all(|e| !e.actor.is_empty() && e.record_time.is_some() && e.effective_date.is_some()));
    assert_eq!(history[3].actor_role, "induction_coordinator");
    let m1_history = client
        .get_participant_history(pb::GetParticipantHistoryRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: m1.participant_id.clone(),
        })
        .await
        .expect("mentor history")
        .into_inner()
        .events;
    let m1_types: Vec<i32> = m1_history.iter().map(|e| e.event_type).collect();
    // M2 (version 2): the replaced mentor, left with no ECT, is not
    // withdrawn; the ECF Lead is told instead.
    assert_eq!(
        m1_types,
        [
            pb::EventType::Registered as i32,
            pb::EventType::MenteeAssigned as i32,
            pb::EventType::MenteeUnassigned as i32
        ]
    );
    let notes = client
        .list_notifications(pb::ListNotificationsRequest { delivery_partner_id: w.dp1.clone(), ..Default::default() })
        .await
        .expect("notifications")
        .into_inner()
        .notifications;
    assert!(
        notes
            .iter()
            .any(|n| n.kind == pb::NotificationKind::MentorWithoutEct as i32 && n.message.contains(&m1.participant_id)),
        "{notes:?}"
    );
    let err = client
        .assign_mentor(assign(&m1.participant_id, false, date(2026, 9, 1)))
        .await
        .expect_err("before last change");
    assert_eq!(err.get_error_details().error_info().expect("ErrorInfo").reason, "BEFORE_LAST_MENTOR_CHANGE");
}

async fn concurrency_racing_mentor_changes_leave_a_contiguous_history(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "6000001", date(2026, 9, 1))).await;
    let mut mentors = Vec::new();
    for n in 0..8 {
        let m = register(
            stack,
            &w.dp1,
            registration(&w.school_a, ParticipantKind::Mentor, &format!("60001{n:02}"), date(2026, 9, 1)),
        )
        .await;
        mentors.push(m.participant_id);
    }
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let client = stack.participants(Some(&lead)).await;
    let calls = mentors.iter().map(|mentor| {
        let mut client = client.clone();
        let request = pb::AssignMentorRequest {
            validate_only: false,
            ect_id: ect.participant_id.clone(),
            mentor_id: mentor.clone(),
            interim: false,
            effective_date: None,
            idempotency_key: String::new(),
            until: None,
        };
        tokio::spawn(async move { client.assign_mentor(request).await })
    });
    let mut won = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.expect("task") {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::Aborted, "a loser is told ABORTED: {status:?}"),
        }
    }
    assert!(won >= 1);
    let mut client = client.clone();
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
    let sequences: Vec<i64> = history.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=history.len() as i64).collect::<Vec<_>>());
    assert_eq!(history.len(), 1 + won, "one mentor event per winner, nothing half-applied");
    let current = client
        .get_participant(pb::GetParticipantRequest { participant_id: ect.participant_id.clone(), as_of: None })
        .await
        .expect("get")
        .into_inner()
        .participant
        .expect("p");
    assert_eq!(current.version, history.len() as i64);
}

on_both_backends!(
    auth_no_token_is_unauthenticated_but_health_and_reflection_are_open,
    roles_an_induction_coordinator_of_school_a_cannot_read_school_b,
    roles_who_may_create_and_register,
    invalid_an_impossible_registration_date_names_the_field_and_changes_nothing,
    not_found_for_an_unknown_participant_and_school,
    c1_default_release_start_and_schedule_follow_the_registration_date,
    m4_a_previous_pilot_mentor_is_kept_and_not_funded,
    duplicates_a_urn_or_a_trn_already_registered_is_already_exists,
    idempotency_a_repeated_request_id_returns_the_first_answer,
    listing_pages_through_everyone_in_scope_once,
    m1_m3_mentors_are_assigned_replaced_and_kept_in_history,
    concurrency_racing_mentor_changes_leave_a_contiguous_history,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_a_sqlite_stack_keeps_what_it_answered() {
    let stack = Stack::start(steplab_tests::Backend::Sqlite).await.expect("stack");
    let w = world(&stack).await;
    let ect = register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "7000001", None)).await;
    let data_dir = stack.stop().await.expect("data dir");
    let stack = Stack::restart_sqlite_in(data_dir).await;
    let admin = stack.admin_token();
    let again = stack
        .participants(Some(&admin))
        .await
        .get_participant(pb::GetParticipantRequest { participant_id: ect.participant_id.clone(), as_of: None })
        .await
        .expect("still there")
        .into_inner()
        .participant
        .expect("p");
    assert_eq!(again.trn, "7000001");
    stack.stop().await;
}
