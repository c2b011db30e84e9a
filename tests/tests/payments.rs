//! Payments over real gRPC, on SQLite and PostgreSQL: schedules (F1), the
//! participant service's commands and their idempotency, engagement, the
//! accrual engine read back through GetAccrual and GetStatement (F2-F6, D4,
//! W5, W9, S1, S2, M4, P5), roles, field errors that change nothing, the
//! commands the participant service really sends through its relay, and the
//! declarations and voids payments enqueues for the DfE gateway with the
//! DfE's answers it records (X5, X6).

use prost::Message;
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::db::{Database, DbError};
use steplab_platform::outbox;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::participant::v1 as participant;
use steplab_proto::steplab::payments::v1 as pb;
use steplab_tests::fixtures::{register, registration, world};
use steplab_tests::receivers::{fields, new_id};
use steplab_tests::{Payments, Stack, on_both_backends};
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// Where a test payee belongs.
#[derive(Clone)]
struct Place {
    dp: String,
    school: String,
}

fn place() -> Place {
    Place { dp: new_id(), school: new_id() }
}

async fn service(stack: &Stack) -> Payments {
    stack.payments(Some(&stack.token(Role::Service, None, &[]))).await
}

fn enrolment(id: &str, at: &Place, schedule: &str, cohort: i32, kind: ParticipantKind) -> pb::EnrolPayeeRequest {
    pb::EnrolPayeeRequest {
        idempotency_key: new_id(),
        participant_id: id.into(),
        delivery_partner_id: at.dp.clone(),
        schedule: schedule.into(),
        cohort,
        funding_eligible: Some(true),
        participant_kind: kind as i32,
        school_id: at.school.clone(),
    }
}

/// Enrols an ECT on the standard September schedule of `cohort`.
async fn enrol_ect(client: &mut Payments, at: &Place, cohort: i32) -> String {
    let id = new_id();
    client
        .enrol_payee(enrolment(&id, at, "ecf-standard-september", cohort, ParticipantKind::Ect))
        .await
        .expect("enrol payee");
    id
}

async fn engage(client: &mut Payments, id: &str, on: Option<Date>) -> pb::RecordEngagementResponse {
    client
        .record_engagement(pb::RecordEngagementRequest {
            participant_id: id.into(),
            occurred_on: on,
            kind: pb::EngagementKind::ModuleCompleted as i32,
            idempotency_key: new_id(),
            note: String::new(),
        })
        .await
        .expect("record engagement")
        .into_inner()
}

async fn accrual(client: &mut Payments, id: &str, as_of: Option<Date>) -> pb::GetAccrualResponse {
    client
        .get_accrual(pb::GetAccrualRequest { participant_id: id.into(), as_of })
        .await
        .expect("get accrual")
        .into_inner()
}

fn earned(a: &pb::GetAccrualResponse) -> Vec<(String, String)> {
    a.milestones.iter().map(|m| (m.window.clone(), m.milestone.clone())).collect()
}

fn pair(window: &str, milestone: &str) -> (String, String) {
    (window.into(), milestone.into())
}

/// Every page of a statement, checking on each page that the total is the
/// whole statement's and that payees come in participant id order.
async fn statement(client: &mut Payments, window: &str, dp: &str, page_size: i32) -> pb::GetStatementResponse {
    let mut all = pb::GetStatementResponse::default();
    let mut token = String::new();
    let mut last = String::new();
    loop {
        let page = client
            .get_statement(pb::GetStatementRequest {
                window: window.into(),
                delivery_partner_id: dp.into(),
                page_size,
                page_token: token.clone(),
            })
            .await
            .expect("statement page")
            .into_inner();
        let mut ids: Vec<&str> = page
            .lines
            .iter()
            .map(|l| l.participant_id.as_str())
            .chain(page.exclusions.iter().map(|e| e.participant_id.as_str()))
            .collect();
        ids.sort();
        assert!(ids.first().is_none_or(|first| *first > last.as_str()), "pages are in participant id order");
        last = ids.last().map(|s| s.to_string()).unwrap_or(last);
        if !all.window.is_empty() {
            assert_eq!(page.total_pence, all.total_pence, "the total is the whole statement's on every page");
        }
        all.window = page.window;
        all.delivery_partner_id = page.delivery_partner_id;
        all.total_pence = page.total_pence;
        all.lines.extend(page.lines);
        all.exclusions.extend(page.exclusions);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let sum: i64 = all.lines.iter().map(|l| l.amount_pence).sum();
    assert_eq!(sum, all.total_pence, "F6: a statement's total equals the sum of its lines");
    all
}

fn exclusion_of(s: &pb::GetStatementResponse, id: &str) -> Option<pb::ExclusionReason> {
    s.exclusions.iter().find(|e| e.participant_id == id).and_then(|e| pb::ExclusionReason::try_from(e.reason).ok())
}

fn line_of(s: &pb::GetStatementResponse, id: &str) -> Option<(String, i64)> {
    s.lines.iter().find(|l| l.participant_id == id).map(|l| (l.milestone.clone(), l.amount_pence))
}

async fn f1_list_schedules_serves_each_cohorts_dated_windows_prices_and_shares(stack: &Stack) {
    let ic = stack.token(Role::InductionCoordinator, Some(&new_id()), &[]);
    let mut client = stack.payments(Some(&ic)).await;
    let listed = client
        .list_schedules(pb::ListSchedulesRequest { cohort: 2024, page_size: 0, page_token: String::new() })
        .await
        .expect("anyone authenticated lists schedules")
        .into_inner();
    assert!(listed.next_page_token.is_empty());
    let ids: Vec<&str> = listed.schedules.iter().map(|s| s.schedule_id.as_str()).collect();
    assert_eq!(ids.len(), 12);
    for id in ["ecf-standard-september", "ecf-standard-january", "ecf-extended-april", "ecf-replacement-september"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let standard = listed.schedules.iter().find(|s| s.schedule_id == "ecf-standard-september").expect("standard");
    assert_eq!((standard.cohort, standard.variant.as_str()), (2024, "standard"));
    let windows: Vec<(&str, Option<Date>, Option<Date>, i32)> =
        standard.windows.iter().map(|w| (w.milestone.as_str(), w.start_date, w.end_date, w.share_percent)).collect();
    assert_eq!(
        windows,
        [
            ("started", date(2024, 6, 1), date(2024, 12, 31), 20),
            ("retained-1", date(2025, 1, 1), date(2025, 3, 31), 15),
            ("retained-2", date(2025, 4, 1), date(2025, 7, 31), 15),
            ("retained-3", date(2025, 8, 1), date(2025, 12, 31), 15),
            ("retained-4", date(2026, 1, 1), date(2026, 3, 31), 15),
            ("completed", date(2026, 4, 1), date(2026, 7, 31), 20),
        ]
    );
    assert_eq!(standard.windows[0].window_id, "ecf-standard-september/2024/started");
    assert_eq!((standard.per_participant_price_pence, standard.output_share_percent), (120_000, 60));
    // AIP-158: pages of 50 by default, through all of them once.
    let (mut every, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = client
            .list_schedules(pb::ListSchedulesRequest { cohort: 0, page_size: 0, page_token: token })
            .await
            .expect("a page of every cohort")
            .into_inner();
        assert!(page.schedules.len() <= 50);
        pages += 1;
        every.extend(page.schedules.into_iter().map(|s| (s.schedule_id, s.cohort)));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((every.len(), pages), (120, 3), "cohorts 2021..=2030, twelve schedules each");
    assert_eq!(every.iter().collect::<std::collections::BTreeSet<_>>().len(), 120, "each once");
    let err = client
        .list_schedules(pb::ListSchedulesRequest { cohort: -1, page_size: -1, page_token: String::new() })
        .await
        .expect_err("negative");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["cohort", "page_size"]);
}

async fn roles_receivers_are_service_only_and_a_refused_command_changes_nothing(stack: &Stack) {
    let at = place();
    let id = new_id();
    let admin = stack.admin_token();
    let lead = stack.token(Role::EcfLead, None, &[&at.dp]);
    for token in [&admin, &lead] {
        let mut client = stack.payments(Some(token)).await;
        let denied = [
            client.enrol_payee(enrolment(&id, &at, "ecf-standard-september", 2025, ParticipantKind::Ect)).await.err(),
            client
                .suspend_accrual(pb::SuspendAccrualRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    suspension_id: "s1".into(),
                    start_date: date(2026, 1, 1),
                    until: date(2026, 6, 1),
                })
                .await
                .err(),
            client
                .resume_accrual(pb::ResumeAccrualRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    suspension_id: "s1".into(),
                    on: date(2026, 2, 1),
                })
                .await
                .err(),
            client
                .end_accrual(pb::EndAccrualRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    effective_date: date(2026, 2, 1),
                })
                .await
                .err(),
            client
                .reopen_accrual(pb::ReopenAccrualRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    effective_date: date(2026, 3, 1),
                })
                .await
                .err(),
            client
                .set_area_covered(pb::SetAreaCoveredRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    covered: Some(false),
                    start_date: date(2026, 3, 1),
                })
                .await
                .err(),
            client
                .set_participant_scope(pb::SetParticipantScopeRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    school_id: new_id(),
                    delivery_partner_id: new_id(),
                    start_date: date(2026, 3, 1),
                })
                .await
                .err(),
        ];
        for (rpc, err) in denied.into_iter().enumerate() {
            let err = err.expect("refused");
            assert_eq!(err.code(), Code::PermissionDenied, "receiver #{rpc}: {err:?}");
            assert!(err.message().contains("participant service"), "{}", err.message());
        }
        // X5: the DfE gateway's answers, service only too.
        let err = client
            .record_declaration_state(pb::RecordDeclarationStateRequest {
                idempotency_key: new_id(),
                participant_id: id.clone(),
                declaration_type: "started".into(),
                dfe_declaration_id: new_id(),
                state: "submitted".into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::PermissionDenied, "RecordDeclarationState: {err:?}");
        assert!(err.message().contains("DfE gateway"), "{}", err.message());
    }
    let err = service(stack)
        .await
        .get_accrual(pb::GetAccrualRequest { participant_id: id.clone(), as_of: None })
        .await
        .expect_err("never enrolled");
    assert_eq!(err.code(), Code::NotFound);
}

async fn idempotency_a_repeated_command_returns_the_first_answer_and_changes_nothing(stack: &Stack) {
    let at = place();
    let mut client = service(stack).await;
    let id = new_id();
    let enrol = enrolment(&id, &at, "ecf-standard-september", 2025, ParticipantKind::Ect);
    let first = client.enrol_payee(enrol.clone()).await.expect("enrol").into_inner().ack.expect("ack");
    assert_eq!((first.idempotency_key.as_str(), first.duplicate), (enrol.idempotency_key.as_str(), false));
    let again = client.enrol_payee(enrol.clone()).await.expect("repeat").into_inner().ack.expect("ack");
    assert!(again.duplicate, "a repeat says so");
    let same_values = pb::EnrolPayeeRequest { idempotency_key: new_id(), ..enrol.clone() };
    assert!(
        !client.enrol_payee(same_values).await.expect("identical enrolment").into_inner().ack.expect("ack").duplicate
    );
    let err = client
        .enrol_payee(pb::EnrolPayeeRequest { idempotency_key: new_id(), cohort: 2026, ..enrol.clone() })
        .await
        .expect_err("different values");
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = client
        .enrol_payee(pb::EnrolPayeeRequest { cohort: 2026, ..enrol.clone() })
        .await
        .expect_err("a command id reused for another request");
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED"));

    engage(&mut client, &id, date(2025, 9, 10)).await;
    let suspend = pb::SuspendAccrualRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        suspension_id: "deferral-1".into(),
        start_date: date(2026, 1, 10),
        until: date(2026, 5, 1),
    };
    let resume = pb::ResumeAccrualRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        suspension_id: "deferral-1".into(),
        on: date(2026, 3, 2),
    };
    let end = pb::EndAccrualRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        effective_date: date(2026, 6, 1),
    };
    let reopen = pb::ReopenAccrualRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        effective_date: date(2026, 8, 1),
    };
    let coverage = pb::SetAreaCoveredRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        covered: Some(true),
        start_date: date(2026, 9, 1),
    };
    let scope = pb::SetParticipantScopeRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        school_id: at.school.clone(),
        delivery_partner_id: at.dp.clone(),
        start_date: date(2026, 9, 1),
    };
    for repeat in [false, true] {
        let acks = [
            client.suspend_accrual(suspend.clone()).await.expect("suspend").into_inner().ack,
            client.resume_accrual(resume.clone()).await.expect("resume").into_inner().ack,
            client.end_accrual(end.clone()).await.expect("end").into_inner().ack,
            client.reopen_accrual(reopen.clone()).await.expect("reopen").into_inner().ack,
            client.set_area_covered(coverage.clone()).await.expect("coverage").into_inner().ack,
            client.set_participant_scope(scope.clone()).await.expect("scope").into_inner().ack,
        ];
        for ack in acks {
            assert_eq!(ack.expect("ack").duplicate, repeat);
        }
        // The first delivery resumed the suspension on 2026-03-02; repeating
        // the SuspendAccrual (same command) must not clear that resume.
        let a = accrual(&mut client, &id, date(2026, 4, 1)).await;
        assert_eq!(a.state, pb::AccrualState::Accruing as i32, "repeat = {repeat}");
    }
    // A new SuspendAccrual for the same suspension replaces its dates and
    // clears the resume (D6).
    client
        .suspend_accrual(pb::SuspendAccrualRequest {
            idempotency_key: new_id(),
            until: date(2026, 5, 15),
            ..suspend.clone()
        })
        .await
        .expect("changed return date");
    let a = accrual(&mut client, &id, date(2026, 4, 1)).await;
    assert_eq!(a.state, pb::AccrualState::Suspended as i32);
    let s = a.suspension.expect("suspension");
    assert_eq!((s.suspension_id.as_str(), s.start_date, s.until), ("deferral-1", date(2026, 1, 10), date(2026, 5, 15)));

    let request = pb::RecordEngagementRequest {
        participant_id: id.clone(),
        occurred_on: date(2025, 10, 1),
        kind: pb::EngagementKind::Clinic as i32,
        idempotency_key: new_id(),
        note: "clinic 2".into(),
    };
    let once = client.record_engagement(request.clone()).await.expect("engagement").into_inner();
    let twice = client.record_engagement(request.clone()).await.expect("repeat").into_inner();
    assert!(!once.duplicate && twice.duplicate);
    assert_eq!((twice.window, twice.qualifying), (once.window, once.qualifying));
    let err = client
        .record_engagement(pb::RecordEngagementRequest { occurred_on: date(2025, 10, 2), ..request })
        .await
        .expect_err("request id reused");
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");
}

async fn invalid_argument_lists_every_bad_field_and_changes_nothing(stack: &Stack) {
    let mut client = service(stack).await;
    let err = client
        .enrol_payee(pb::EnrolPayeeRequest {
            idempotency_key: String::new(),
            participant_id: "not-an-id".into(),
            delivery_partner_id: String::new(),
            schedule: String::new(),
            cohort: 0,
            funding_eligible: Some(true),
            participant_kind: 0,
            school_id: new_id(),
        })
        .await
        .expect_err("malformed");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&err),
        ["idempotency_key", "participant_id", "delivery_partner_id", "schedule", "cohort", "participant_kind"]
    );
    let at = place();
    let id = new_id();
    let mut replacement_ect = enrolment(&id, &at, "ecf-replacement-september", 2025, ParticipantKind::Ect);
    let err = client.enrol_payee(replacement_ect.clone()).await.expect_err("replacement is for mentors");
    assert_eq!(fields(&err), ["schedule"]);
    replacement_ect.schedule = "ecf-standard-someday".into();
    let err = client.enrol_payee(replacement_ect).await.expect_err("unknown schedule");
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("ListSchedules"), "{}", err.message());
    let err = client
        .get_accrual(pb::GetAccrualRequest { participant_id: id.clone(), as_of: None })
        .await
        .expect_err("nothing was enrolled");
    assert_eq!(err.code(), Code::NotFound);

    let id = enrol_ect(&mut client, &at, 2025).await;
    let err = client
        .suspend_accrual(pb::SuspendAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            suspension_id: "s1".into(),
            start_date: date(2026, 3, 1),
            until: date(2026, 2, 1),
        })
        .await
        .expect_err("until before from");
    assert_eq!(fields(&err), ["until"]);
    let err = client
        .end_accrual(pb::EndAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 2, 30),
        })
        .await
        .expect_err("30 February");
    assert_eq!(fields(&err), ["effective_date"]);
    let err = client
        .record_engagement(pb::RecordEngagementRequest {
            participant_id: id.clone(),
            occurred_on: None,
            kind: 0,
            idempotency_key: String::new(),
            note: String::new(),
        })
        .await
        .expect_err("no date, kind or request id");
    assert_eq!(fields(&err), ["occurred_on", "kind", "idempotency_key"]);
    let a = accrual(&mut client, &id, None).await;
    assert_eq!(a.state, pb::AccrualState::Accruing as i32, "no suspension and no end were stored");
    assert!(a.suspension.is_none() && a.milestones.is_empty());
    let admin = stack.admin_token();
    let err = stack
        .payments(Some(&admin))
        .await
        .get_statement(pb::GetStatementRequest {
            window: "ecf-standard-september/2025".into(),
            delivery_partner_id: "x".into(),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .expect_err("bad statement request");
    assert_eq!(fields(&err), ["window", "delivery_partner_id", "page_size"]);
}

/// The case: a September 2024 ECT with engagement in every window,
/// deferred from 2025-05-01 (first expected back 2026-04-20, then returning
/// early on 2026-01-05), read back through GetAccrual and GetStatement.
async fn f3_deferral_return_and_engagement_read_back_through_accrual_and_statements(stack: &Stack) {
    let at = place();
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &at, 2024).await;
    let steady = enrol_ect(&mut client, &at, 2024).await;
    client
        .suspend_accrual(pb::SuspendAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            suspension_id: "deferral-1".into(),
            start_date: date(2025, 5, 1),
            until: date(2026, 4, 20),
        })
        .await
        .expect("deferral");
    client
        .resume_accrual(pb::ResumeAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            suspension_id: "deferral-1".into(),
            on: date(2026, 1, 5),
        })
        .await
        .expect("early return");
    let days = [
        date(2024, 9, 15),
        date(2025, 2, 10),
        date(2025, 4, 15),
        date(2025, 9, 15),
        date(2026, 2, 10),
        date(2026, 5, 15),
        date(2026, 9, 15),
    ];
    for day in days {
        let answer = engage(&mut client, &id, day).await;
        engage(&mut client, &steady, day).await;
        if day == date(2025, 9, 15) {
            assert_eq!(answer.window, "ecf-standard-september/2024/retained-3");
            assert!(!answer.qualifying, "engagement while deferred is recorded but does not qualify");
        } else {
            assert!(answer.qualifying, "{day:?}");
        }
    }
    let during = accrual(&mut client, &id, date(2025, 10, 1)).await;
    assert_eq!(during.state, pb::AccrualState::Suspended as i32);
    let s = during.suspension.expect("suspension in effect");
    assert_eq!(
        (s.start_date, s.until),
        (date(2025, 5, 1), date(2026, 1, 5)),
        "the return date is the first day accruing"
    );
    assert_eq!(during.milestones.len(), 3, "started, retained-1 and retained-2 before the deferral");

    let now = accrual(&mut client, &id, None).await;
    assert_eq!(now.as_of, date(2026, 11, 28), "today, pinned");
    assert_eq!(now.state, pb::AccrualState::Accruing as i32);
    assert!(now.suspension.is_none());
    assert_eq!(
        earned(&now),
        [
            pair("ecf-standard-september/2024/started", "started"),
            pair("ecf-standard-september/2024/retained-1", "retained-1"),
            pair("ecf-standard-september/2024/retained-2", "retained-2"),
            pair("ecf-standard-september/2024/retained-4", "retained-3"),
            pair("ecf-standard-september/2024/completed", "retained-4"),
            pair("ecf-extended-september/2024/extended-2", "completed"),
        ]
    );
    let amounts: Vec<i64> = now.milestones.iter().map(|m| m.amount_pence).collect();
    assert_eq!(amounts, [14_400, 10_800, 10_800, 10_800, 10_800, 14_400]);
    assert_eq!(now.total_pence, 72_000, "exactly the schedule's total");
    assert_eq!(now.milestones[5].earned_on, date(2026, 9, 15));
    assert_eq!(now.milestones[5].window_start, date(2026, 8, 1));
    assert_eq!(accrual(&mut client, &steady, None).await.total_pence, 72_000);

    let dpl = stack.token(Role::Dpl, None, &[&at.dp]);
    let mut reader = stack.payments(Some(&dpl)).await;
    let deferred = statement(&mut reader, "ecf-standard-september/2024/retained-3", &at.dp, 0).await;
    assert_eq!(exclusion_of(&deferred, &id), Some(pb::ExclusionReason::Deferred));
    assert_eq!(line_of(&deferred, &steady), Some(("retained-3".into(), 10_800)));
    assert_eq!(deferred.total_pence, 10_800);
    let back = statement(&mut reader, "ecf-standard-september/2024/retained-4", &at.dp, 1).await;
    assert_eq!(line_of(&back, &id), Some(("retained-3".into(), 10_800)), "the next unclaimed milestone");
    assert_eq!(back.total_pence, 21_600);
    let continued = statement(&mut reader, "ecf-extended-september/2024/extended-2", &at.dp, 0).await;
    assert_eq!(line_of(&continued, &id), Some(("completed".into(), 14_400)));
    assert!(line_of(&continued, &steady).is_none(), "a payee who was never deferred has no continuation windows");
    let after = statement(&mut reader, "ecf-extended-september/2024/completed", &at.dp, 0).await;
    assert_eq!(exclusion_of(&after, &id), Some(pb::ExclusionReason::AlreadyPaidAllMilestones));
}

async fn w5_w9_a_withdrawal_pays_the_window_engaged_before_it_and_a_reinstatement_reopens(stack: &Stack) {
    let at = place();
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &at, 2025).await;
    engage(&mut client, &id, date(2025, 10, 1)).await;
    engage(&mut client, &id, date(2026, 2, 1)).await;
    client
        .end_accrual(pb::EndAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 2, 15),
        })
        .await
        .expect("withdrawn");
    let after_end = engage(&mut client, &id, date(2026, 3, 1)).await;
    assert!(!after_end.qualifying);
    engage(&mut client, &id, date(2026, 5, 1)).await;
    let a = accrual(&mut client, &id, date(2026, 7, 1)).await;
    assert_eq!(a.state, pb::AccrualState::Ended as i32);
    assert_eq!(
        earned(&a),
        [
            pair("ecf-standard-september/2025/started", "started"),
            pair("ecf-standard-september/2025/retained-1", "retained-1"),
        ],
        "the window with engagement before the withdrawal is still paid"
    );
    let admin = stack.admin_token();
    let mut reader = stack.payments(Some(&admin)).await;
    let later = statement(&mut reader, "ecf-standard-september/2025/retained-2", &at.dp, 0).await;
    assert_eq!(exclusion_of(&later, &id), Some(pb::ExclusionReason::Withdrawn));
    assert!(later.exclusions[0].detail.contains("2026-02-15"), "{}", later.exclusions[0].detail);

    let err = client
        .reopen_accrual(pb::ReopenAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 2, 1),
        })
        .await
        .expect_err("before the end");
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "REOPEN_BEFORE_END"));
    client
        .reopen_accrual(pb::ReopenAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 9, 1),
        })
        .await
        .expect("reinstated");
    engage(&mut client, &id, date(2026, 10, 1)).await;
    let a = accrual(&mut client, &id, None).await;
    assert_eq!(a.state, pb::AccrualState::Accruing as i32);
    assert_eq!(earned(&a)[2..], [pair("ecf-standard-september/2025/retained-3", "retained-2")]);
}

async fn s1_s2_m4_moves_uncovered_areas_and_pilot_mentors(stack: &Stack) {
    let (a, b) = (place(), place());
    let mut client = service(stack).await;
    let pilot = new_id();
    client
        .enrol_payee(pb::EnrolPayeeRequest {
            funding_eligible: Some(false),
            ..enrolment(&pilot, &a, "ecf-standard-september", 2025, ParticipantKind::Mentor)
        })
        .await
        .expect("a pilot mentor is enrolled");
    let mover = enrol_ect(&mut client, &a, 2025).await;
    for day in [date(2025, 10, 1), date(2026, 2, 1), date(2026, 5, 1), date(2026, 9, 1)] {
        let pilot_answer = engage(&mut client, &pilot, day).await;
        assert!(!pilot_answer.qualifying, "M4: never");
        engage(&mut client, &mover, day).await;
    }
    client
        .set_area_covered(pb::SetAreaCoveredRequest {
            idempotency_key: new_id(),
            participant_id: mover.clone(),
            covered: Some(false),
            start_date: date(2026, 4, 20),
        })
        .await
        .expect("moved out of the covered area");
    client
        .set_participant_scope(pb::SetParticipantScopeRequest {
            idempotency_key: new_id(),
            participant_id: mover.clone(),
            school_id: b.school.clone(),
            delivery_partner_id: b.dp.clone(),
            start_date: date(2026, 4, 20),
        })
        .await
        .expect("moved school");
    let pilot_accrual = accrual(&mut client, &pilot, None).await;
    assert!(pilot_accrual.milestones.is_empty() && !pilot_accrual.funding_eligible);
    let moved = accrual(&mut client, &mover, None).await;
    assert_eq!(moved.milestones.len(), 2, "S2: nothing from the move date");
    assert!(!moved.area_covered);
    assert_eq!(moved.delivery_partner_id, b.dp);
    let admin = stack.admin_token();
    let mut reader = stack.payments(Some(&admin)).await;
    let started = statement(&mut reader, "ecf-standard-september/2025/started", &a.dp, 0).await;
    assert_eq!(exclusion_of(&started, &pilot), Some(pb::ExclusionReason::IneligibleMentor));
    assert_eq!(line_of(&started, &mover), Some(("started".into(), 14_400)));
    let summer = statement(&mut reader, "ecf-standard-september/2025/retained-2", &b.dp, 0).await;
    assert_eq!(exclusion_of(&summer, &mover), Some(pb::ExclusionReason::OutOfArea), "listed under the new DP");
    let whole = statement(&mut reader, "ecf-standard-september/2025/retained-2", "", 0).await;
    assert_eq!(whole.exclusions.len(), 2, "the whole lead provider: both payees");
    // Reads follow the move (S1): the new school's IC, not the old one's.
    let ic_b = stack.token(Role::InductionCoordinator, Some(&b.school), &[]);
    assert!(
        stack
            .payments(Some(&ic_b))
            .await
            .get_accrual(pb::GetAccrualRequest { participant_id: mover.clone(), as_of: None })
            .await
            .is_ok()
    );
    let ic_a = stack.token(Role::InductionCoordinator, Some(&a.school), &[]);
    let err = stack
        .payments(Some(&ic_a))
        .await
        .get_accrual(pb::GetAccrualRequest { participant_id: mover.clone(), as_of: None })
        .await
        .expect_err("old school");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn p5_engagement_during_a_pause_accrues_as_if_never_paused(stack: &Stack) {
    // A pause sends payments nothing: a paused ECT's coaching on coaching
    // and events are engagement like any other, and accrual continues.
    let at = place();
    let mut client = service(stack).await;
    let active = enrol_ect(&mut client, &at, 2026).await;
    let paused = enrol_ect(&mut client, &at, 2026).await;
    engage(&mut client, &active, date(2026, 11, 10)).await;
    for kind in [pb::EngagementKind::CoachingOnCoaching, pb::EngagementKind::Event] {
        let answer = client
            .record_engagement(pb::RecordEngagementRequest {
                participant_id: paused.clone(),
                occurred_on: date(2026, 11, 10),
                kind: kind as i32,
                idempotency_key: new_id(),
                note: "during a three-week pause".into(),
            })
            .await
            .expect("engagement")
            .into_inner();
        assert!(answer.qualifying);
    }
    let (a, p) = (accrual(&mut client, &active, None).await, accrual(&mut client, &paused, None).await);
    assert_eq!(earned(&a), earned(&p));
    assert_eq!((a.state, a.total_pence), (p.state, p.total_pence));
    assert_eq!(p.total_pence, 14_400);
}

async fn roles_reads_and_engagement_in_scope_only(stack: &Stack) {
    let (a, b) = (place(), place());
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &a, 2026).await;
    let lead_a = stack.token(Role::EcfLead, None, &[&a.dp]);
    let answer = stack
        .payments(Some(&lead_a))
        .await
        .record_engagement(pb::RecordEngagementRequest {
            participant_id: id.clone(),
            occurred_on: date(2026, 10, 5),
            kind: pb::EngagementKind::Conference as i32,
            idempotency_key: new_id(),
            note: String::new(),
        })
        .await
        .expect("the DP's ECF Lead records engagement")
        .into_inner();
    assert_eq!(answer.window, "ecf-standard-september/2026/started");
    let refused = [
        stack.token(Role::EcfLead, None, &[&b.dp]),
        stack.token(Role::Dpl, None, &[&a.dp]),
        stack.token(Role::InductionCoordinator, Some(&a.school), &[]),
    ];
    for token in &refused {
        let err = stack
            .payments(Some(token))
            .await
            .record_engagement(pb::RecordEngagementRequest {
                participant_id: id.clone(),
                occurred_on: date(2026, 10, 6),
                kind: pb::EngagementKind::Clinic as i32,
                idempotency_key: new_id(),
                note: String::new(),
            })
            .await
            .expect_err("not theirs to record");
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = client
        .record_engagement(pb::RecordEngagementRequest {
            participant_id: id.clone(),
            occurred_on: date(2026, 11, 29),
            kind: pb::EngagementKind::Clinic as i32,
            idempotency_key: new_id(),
            note: String::new(),
        })
        .await
        .expect_err("tomorrow");
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "OCCURRED_ON_IN_FUTURE"));

    for token in [
        stack.token(Role::InductionCoordinator, Some(&a.school), &[]),
        lead_a.clone(),
        stack.token(Role::Dpl, None, &[&b.dp, &a.dp]),
        stack.admin_token(),
    ] {
        let got = stack
            .payments(Some(&token))
            .await
            .get_accrual(pb::GetAccrualRequest { participant_id: id.clone(), as_of: None })
            .await
            .expect("in scope");
        assert_eq!(got.into_inner().milestones.len(), 1);
    }
    for token in [
        stack.token(Role::InductionCoordinator, Some(&b.school), &[]),
        stack.token(Role::EcfLead, None, &[&b.dp]),
        stack.token(Role::Dpl, None, &[&b.dp]),
    ] {
        let err = stack
            .payments(Some(&token))
            .await
            .get_accrual(pb::GetAccrualRequest { participant_id: id.clone(), as_of: None })
            .await
            .expect_err("out of scope");
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let window = "ecf-standard-september/2026/started";
    for (token, dp) in [
        (stack.token(Role::Dpl, None, &[&b.dp]), a.dp.as_str()),
        (stack.token(Role::Dpl, None, &[&a.dp]), ""),
        (lead_a.clone(), a.dp.as_str()),
        (stack.token(Role::Service, None, &[]), ""),
    ] {
        let err = stack
            .payments(Some(&token))
            .await
            .get_statement(pb::GetStatementRequest {
                window: window.into(),
                delivery_partner_id: dp.into(),
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .expect_err("not their statement");
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = stack
        .payments(None)
        .await
        .get_accrual(pb::GetAccrualRequest { participant_id: id.clone(), as_of: None })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
}

async fn f6_statements_page_by_participant_and_totals_equal_their_lines(stack: &Stack) {
    let (a, b) = (place(), place());
    let mut client = service(stack).await;
    let mut paid = Vec::new();
    for n in 0..7 {
        let at = if n % 3 == 0 { &b } else { &a };
        let id = enrol_ect(&mut client, at, 2026).await;
        if n % 2 == 0 {
            engage(&mut client, &id, date(2026, 9, 1 + n)).await;
            paid.push(id);
        }
    }
    let mentor = new_id();
    client
        .enrol_payee(enrolment(&mentor, &a, "ecf-standard-september", 2026, ParticipantKind::Mentor))
        .await
        .expect("mentor");
    engage(&mut client, &mentor, date(2026, 10, 1)).await;
    let admin = stack.admin_token();
    let mut reader = stack.payments(Some(&admin)).await;
    let window = "ecf-standard-september/2026/started";
    let whole = statement(&mut reader, window, "", 3).await;
    assert_eq!(whole.lines.len() + whole.exclusions.len(), 8, "every payee once, a line or an exclusion");
    assert_eq!(whole.lines.len(), paid.len() + 1);
    assert_eq!(
        whole.total_pence,
        14_400 * paid.len() as i64 + 12_000,
        "ECTs at the ECT price, the mentor at the mentor price"
    );
    assert!(whole.exclusions.iter().all(|e| e.reason == pb::ExclusionReason::NoEngagement as i32));
    let one_dp = statement(&mut reader, window, &b.dp, 1).await;
    assert_eq!(one_dp.lines.len() + one_dp.exclusions.len(), 3);
    assert_eq!(one_dp.delivery_partner_id, b.dp);
    let first = reader
        .get_statement(pb::GetStatementRequest {
            window: window.into(),
            delivery_partner_id: String::new(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("first page")
        .into_inner();
    let err = reader
        .get_statement(pb::GetStatementRequest {
            window: "ecf-standard-september/2026/retained-1".into(),
            delivery_partner_id: String::new(),
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .expect_err("a token from another statement");
    assert_eq!(fields(&err), ["page_token"]);
    let err = reader
        .get_statement(pb::GetStatementRequest {
            window: "ecf-standard-september/2019/started".into(),
            delivery_partner_id: String::new(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect_err("no such window");
    assert_eq!(err.code(), Code::NotFound);
}

/// Polls until `check` holds: the participant service delivers its commands
/// through an outbox relay, shortly after the change commits.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn d4_d7_the_participant_services_commands_reach_payments(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "5300001", date(2026, 9, 1))).await;
    let id = ect.participant_id.clone();
    let service_token = stack.token(Role::Service, None, &[]);
    let client = stack.payments(Some(&service_token)).await;
    eventually("EnrolPayee", || {
        let (mut c, id) = (client.clone(), id.clone());
        async move { c.get_accrual(pb::GetAccrualRequest { participant_id: id, as_of: None }).await.is_ok() }
    })
    .await;
    let mut c = client.clone();
    engage(&mut c, &id, date(2026, 9, 20)).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut participants = stack.participants(Some(&lead)).await;
    participants
        .defer_participant(participant::DeferParticipantRequest {
            validate_only: false,
            participant_id: id.clone(),
            reason: DeferralReason::LongTermSickness as i32,
            deferral_date: date(2026, 10, 1),
            expected_return_date: date(2027, 2, 1),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("deferred");
    eventually("SuspendAccrual", || {
        let (mut c, id) = (client.clone(), id.clone());
        async move {
            let a = accrual(&mut c, &id, None).await;
            a.state == pb::AccrualState::Suspended as i32
        }
    })
    .await;
    participants
        .record_return(participant::RecordReturnRequest {
            validate_only: false,
            participant_id: id.clone(),
            return_date: date(2026, 11, 16),
            idempotency_key: String::new(),
        })
        .await
        .expect("returned early");
    eventually("ResumeAccrual", || {
        let (mut c, id) = (client.clone(), id.clone());
        async move { accrual(&mut c, &id, None).await.state == pb::AccrualState::Accruing as i32 }
    })
    .await;
    let a = accrual(&mut c, &id, date(2026, 10, 15)).await;
    let s = a.suspension.clone().expect("the deferral, as resumed");
    assert_eq!((s.start_date, s.until), (date(2026, 10, 1), date(2026, 11, 16)));
    assert_eq!(earned(&a), [pair("ecf-standard-september/2026/started", "started")]);
    assert_eq!(a.delivery_partner_id, w.dp1);
}

/// A command payments sent the DfE gateway through its outbox (X5, X6).
#[derive(Debug, Clone, PartialEq)]
enum ToDfe {
    Declare(dfe::DeclareMilestoneRequest),
    Void(dfe::VoidMilestoneRequest),
}

/// Every command payments enqueued for the DfE gateway about `id`, oldest
/// first, read from payments' own outbox table (the gateway does not run in
/// these tests, so nothing else sees them).
async fn sent_to_dfe(stack: &Stack, id: &str) -> Vec<ToDfe> {
    let db = Database::open(&stack.config.payments.database, &steplab_payments::MIGRATIONS).await.expect("payments db");
    let id = id.to_owned();
    let rows = db.read(move |conn| Ok::<_, DbError>(outbox::for_participant(conn, &id)?)).await.expect("outbox rows");
    rows.iter()
        .map(|row| {
            assert_eq!(row.target, "dfe-gateway", "{row:?}");
            let rpc = row.rpc();
            assert!(matches!(rpc, "DeclareMilestone" | "VoidMilestone"), "payments sent {rpc} to the DfE gateway");
            if rpc == "DeclareMilestone" {
                ToDfe::Declare(dfe::DeclareMilestoneRequest::decode(row.payload.as_slice()).expect("payload"))
            } else {
                ToDfe::Void(dfe::VoidMilestoneRequest::decode(row.payload.as_slice()).expect("payload"))
            }
        })
        .collect()
}

/// (declaration type, declaration date, evidence held, milestone id) of a
/// declaration, or the type of a void.
fn summary(sent: &[ToDfe]) -> Vec<String> {
    sent.iter()
        .map(|c| match c {
            ToDfe::Declare(d) => {
                let on = d.declaration_date.expect("declaration date");
                format!(
                    "declare {} {:04}-{:02}-{:02} [{}] {}",
                    d.declaration_type, on.year, on.month, on.day, d.evidence_held, d.milestone_id
                )
            }
            ToDfe::Void(v) => format!("void {}", v.declaration_type),
        })
        .collect()
}

async fn engage_as(client: &mut Payments, id: &str, on: Option<Date>, kind: pb::EngagementKind) -> String {
    let request_id = new_id();
    client
        .record_engagement(pb::RecordEngagementRequest {
            participant_id: id.into(),
            occurred_on: on,
            kind: kind as i32,
            idempotency_key: request_id.clone(),
            note: String::new(),
        })
        .await
        .expect("record engagement");
    request_id
}

async fn x5_f2_an_earned_milestone_is_declared_once_with_its_qualifying_day_and_evidence(stack: &Stack) {
    let at = place();
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &at, 2025).await;
    assert!(sent_to_dfe(stack, &id).await.is_empty(), "nothing is earned at enrolment");

    let first = engage_as(&mut client, &id, date(2025, 10, 1), pb::EngagementKind::ModuleCompleted).await;
    let started = "declare started 2025-10-01 [] ecf-standard-september/2025/started";
    assert_eq!(summary(&sent_to_dfe(stack, &id).await), [started], "F2: earned on the qualifying engagement");
    let sent = sent_to_dfe(stack, &id).await;
    let declared = sent
        .first()
        .and_then(|c| match c {
            ToDfe::Declare(d) => Some(d),
            ToDfe::Void(_) => None,
        })
        .expect("a declaration");
    assert_eq!(declared.participant_id, id);
    assert!(!declared.idempotency_key.is_empty());

    // A repeated call, more engagement in the same window, and changes that
    // change nothing earned: the comparison runs again and enqueues nothing.
    let repeat = client
        .record_engagement(pb::RecordEngagementRequest {
            participant_id: id.clone(),
            occurred_on: date(2025, 10, 1),
            kind: pb::EngagementKind::ModuleCompleted as i32,
            idempotency_key: first,
            note: String::new(),
        })
        .await
        .expect("repeat")
        .into_inner();
    assert!(repeat.duplicate);
    engage_as(&mut client, &id, date(2025, 10, 20), pb::EngagementKind::Clinic).await;
    client
        .set_participant_scope(pb::SetParticipantScopeRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            school_id: at.school.clone(),
            delivery_partner_id: at.dp.clone(),
            start_date: date(2026, 6, 1),
        })
        .await
        .expect("scope");
    assert_eq!(summary(&sent_to_dfe(stack, &id).await), [started], "once each");

    // The next window: the engagement's kind is the evidence the DfE asks
    // for; from cohort 2025 retained-2 states the engagement threshold.
    engage_as(&mut client, &id, date(2026, 2, 1), pb::EngagementKind::Clinic).await;
    engage_as(&mut client, &id, date(2026, 5, 4), pb::EngagementKind::ModuleCompleted).await;
    assert_eq!(
        summary(&sent_to_dfe(stack, &id).await),
        [
            started,
            "declare retained-1 2026-02-01 [training-event-attended] ecf-standard-september/2025/retained-1",
            "declare retained-2 2026-05-04 [75-percent-engagement-met] ecf-standard-september/2025/retained-2",
        ]
    );
    let a = accrual(&mut client, &id, None).await;
    assert_eq!(a.milestones.len(), 3, "GetAccrual and the declarations agree");
    assert!(a.milestones.iter().all(|m| m.dfe_declared && m.dfe_state.is_empty() && m.dfe_declaration_id.is_empty()));

    // A mentor from cohort 2025 is declared `started` and `completed` only,
    // as the DfE's API takes; the other milestones are still paid here.
    let mentor = new_id();
    client
        .enrol_payee(enrolment(&mentor, &at, "ecf-standard-september", 2025, ParticipantKind::Mentor))
        .await
        .expect("enrol mentor");
    engage_as(&mut client, &mentor, date(2025, 10, 1), pb::EngagementKind::CoachingSession).await;
    engage_as(&mut client, &mentor, date(2026, 2, 1), pb::EngagementKind::CoachingSession).await;
    assert_eq!(
        summary(&sent_to_dfe(stack, &mentor).await),
        ["declare started 2025-10-01 [] ecf-standard-september/2025/started"]
    );
    let m = accrual(&mut client, &mentor, None).await;
    assert_eq!(m.milestones.iter().map(|m| m.dfe_declared).collect::<Vec<_>>(), [true, false]);
}

async fn x6_f4_a_withdrawal_backdated_before_the_qualifying_engagement_voids_and_a_reinstatement_declares_again(
    stack: &Stack,
) {
    let at = place();
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &at, 2025).await;
    engage_as(&mut client, &id, date(2025, 10, 1), pb::EngagementKind::ModuleCompleted).await;
    engage_as(&mut client, &id, date(2026, 2, 1), pb::EngagementKind::Conference).await;
    client
        .end_accrual(pb::EndAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 1, 15),
        })
        .await
        .expect("withdrawn, backdated");
    let retained = "declare retained-1 2026-02-01 [training-event-attended] ecf-standard-september/2025/retained-1";
    let declared = [
        "declare started 2025-10-01 [] ecf-standard-september/2025/started".to_owned(),
        retained.to_owned(),
        "void retained-1".to_owned(),
    ];
    assert_eq!(summary(&sent_to_dfe(stack, &id).await), declared, "F4: nothing is earned after the withdrawal");
    let a = accrual(&mut client, &id, None).await;
    assert_eq!(earned(&a), [pair("ecf-standard-september/2025/started", "started")]);
    // The same withdrawal again changes nothing.
    client
        .end_accrual(pb::EndAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 1, 15),
        })
        .await
        .expect("again");
    assert_eq!(summary(&sent_to_dfe(stack, &id).await), declared);

    // W9: reinstated from before the engagement: it qualifies again and the
    // milestone is declared again (a new declaration after the void).
    client
        .reopen_accrual(pb::ReopenAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 1, 20),
        })
        .await
        .expect("reinstated");
    let sent = summary(&sent_to_dfe(stack, &id).await);
    assert_eq!(sent[..3], declared);
    assert_eq!(sent[3..], [retained], "declared again once earned again");
    assert!(accrual(&mut client, &id, None).await.milestones.iter().all(|m| m.dfe_declared));
}

async fn x6_f3_a_backdated_deferral_voids_the_milestone_it_unearns_and_keeps_one_still_earned(stack: &Stack) {
    let at = place();
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &at, 2025).await;
    engage_as(&mut client, &id, date(2025, 10, 1), pb::EngagementKind::ModuleCompleted).await;
    engage_as(&mut client, &id, date(2026, 2, 1), pb::EngagementKind::Clinic).await;
    client
        .suspend_accrual(pb::SuspendAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            suspension_id: "deferral-1".into(),
            start_date: date(2025, 9, 20),
            until: date(2026, 1, 5),
        })
        .await
        .expect("deferral, backdated");
    // F3: the October engagement no longer qualifies, so the February one
    // earns `started` (still earned: its declaration stays) and
    // `retained-1` is no longer earned (voided).
    let a = accrual(&mut client, &id, None).await;
    assert_eq!(earned(&a), [pair("ecf-standard-september/2025/retained-1", "started")]);
    assert_eq!(
        summary(&sent_to_dfe(stack, &id).await),
        [
            "declare started 2025-10-01 [] ecf-standard-september/2025/started",
            "declare retained-1 2026-02-01 [training-event-attended] ecf-standard-september/2025/retained-1",
            "void retained-1",
        ]
    );
    assert!(a.milestones[0].dfe_declared, "started is still declared");
}

async fn x5_record_declaration_state_shows_in_get_accrual_and_the_statement(stack: &Stack) {
    let at = place();
    let mut client = service(stack).await;
    let id = enrol_ect(&mut client, &at, 2025).await;
    engage_as(&mut client, &id, date(2025, 10, 1), pb::EngagementKind::ModuleCompleted).await;
    let dfe_id = new_id();
    let submitted = pb::RecordDeclarationStateRequest {
        idempotency_key: new_id(),
        participant_id: id.clone(),
        declaration_type: "started".into(),
        dfe_declaration_id: dfe_id.clone(),
        state: "submitted".into(),
    };
    let ack = client.record_declaration_state(submitted.clone()).await.expect("submitted").into_inner().ack;
    assert!(!ack.expect("ack").duplicate);
    let paid =
        pb::RecordDeclarationStateRequest { idempotency_key: new_id(), state: "paid".into(), ..submitted.clone() };
    client.record_declaration_state(paid).await.expect("paid");
    // A repeat of the first answer changes nothing: the latest stays.
    let again = client.record_declaration_state(submitted.clone()).await.expect("repeat").into_inner().ack;
    assert!(again.expect("ack").duplicate);
    let shown = |a: &pb::GetAccrualResponse| {
        a.milestones
            .iter()
            .map(|m| (m.milestone.clone(), m.dfe_declaration_id.clone(), m.dfe_state.clone()))
            .collect::<Vec<_>>()
    };
    let expected = [("started".to_owned(), dfe_id.clone(), "paid".to_owned())];
    assert_eq!(shown(&accrual(&mut client, &id, None).await), expected);
    let admin = stack.admin_token();
    let mut reader = stack.payments(Some(&admin)).await;
    let s = statement(&mut reader, "ecf-standard-september/2025/started", &at.dp, 0).await;
    let line = s.lines.iter().find(|l| l.participant_id == id).expect("a line");
    assert_eq!((line.dfe_state.as_str(), line.dfe_declaration_id.as_str()), ("paid", dfe_id.as_str()));

    // Refusals change nothing.
    let bad = pb::RecordDeclarationStateRequest {
        idempotency_key: new_id(),
        state: "accepted".into(),
        declaration_type: "term-3".into(),
        dfe_declaration_id: String::new(),
        ..submitted.clone()
    };
    let err = client.record_declaration_state(bad).await.expect_err("bad words");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["declaration_type", "dfe_declaration_id", "state"]);
    let unknown =
        pb::RecordDeclarationStateRequest { idempotency_key: new_id(), participant_id: new_id(), ..submitted.clone() };
    assert_eq!(client.record_declaration_state(unknown).await.expect_err("unknown").code(), Code::NotFound);
    let never = pb::RecordDeclarationStateRequest {
        idempotency_key: new_id(),
        declaration_type: "retained-3".into(),
        state: "eligible".into(),
        ..submitted.clone()
    };
    let err = client.record_declaration_state(never).await.expect_err("never declared");
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DECLARATION_NOT_MADE"));
    assert!(err.message().contains("retained-3"), "{}", err.message());
    assert_eq!(shown(&accrual(&mut client, &id, None).await), expected);
    let refused_as_admin = reader
        .record_declaration_state(pb::RecordDeclarationStateRequest { idempotency_key: new_id(), ..submitted })
        .await
        .expect_err("admin");
    assert_eq!(refused_as_admin.code(), Code::PermissionDenied);
}

on_both_backends!(
    f1_list_schedules_serves_each_cohorts_dated_windows_prices_and_shares,
    roles_receivers_are_service_only_and_a_refused_command_changes_nothing,
    idempotency_a_repeated_command_returns_the_first_answer_and_changes_nothing,
    invalid_argument_lists_every_bad_field_and_changes_nothing,
    f3_deferral_return_and_engagement_read_back_through_accrual_and_statements,
    w5_w9_a_withdrawal_pays_the_window_engaged_before_it_and_a_reinstatement_reopens,
    s1_s2_m4_moves_uncovered_areas_and_pilot_mentors,
    p5_engagement_during_a_pause_accrues_as_if_never_paused,
    roles_reads_and_engagement_in_scope_only,
    f6_statements_page_by_participant_and_totals_equal_their_lines,
    d4_d7_the_participant_services_commands_reach_payments,
    x5_f2_an_earned_milestone_is_declared_once_with_its_qualifying_day_and_evidence,
    x6_f4_a_withdrawal_backdated_before_the_qualifying_engagement_voids_and_a_reinstatement_declares_again,
    x6_f3_a_backdated_deferral_voids_the_milestone_it_unearns_and_keeps_one_still_earned,
    x5_record_declaration_state_shows_in_get_accrual_and_the_statement,
);

/// F1: a deployment's own schedules file is served; a malformed one stops
/// start-up with the file and the place in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_a_deployment_schedules_file_is_served_and_a_malformed_one_fails_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_with = |file: &std::path::Path| {
        let data_dir = dir.path().display().to_string();
        let file = file.display().to_string();
        steplab_platform::config::Config::from_lookup(move |key| match key {
            "STEPLAB_DATA_DIR" => Some(data_dir.clone()),
            "STEPLAB_JWT_SECRET" => Some(steplab_tests::SECRET.into()),
            "STEPLAB_SCHEDULES_FILE" => Some(file.clone()),
            "STEPLAB_TODAY" => Some(steplab_tests::TODAY.into()),
            _ => None,
        })
        .expect("config")
    };
    let bad = dir.path().join("bad-schedules.json");
    std::fs::write(&bad, "{\n  \"output_share_percent\": 60,\n  \"prices_pence\": {\"ect\": 100000, \"mentor\": 90000},\n  \"schedules\": [ { \"schedule_id\": \"x\" ]\n}\n")
        .expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = steplab_payments::run(config_with(&bad).payments_config(), listener, std::future::pending())
        .await
        .expect_err("malformed file");
    let message = err.to_string();
    assert!(message.contains("STEPLAB_SCHEDULES_FILE") && message.contains("bad-schedules.json"), "{message}");
    assert!(message.contains("line 4"), "{message}");

    let good = dir.path().join("schedules.json");
    let file = serde_json::json!({
        "output_share_percent": 60,
        "prices_pence": { "ect": 150000, "mentor": 90000 },
        "schedules": [{
            "schedule_id": "ecf-standard-september",
            "cohort": 2031,
            "variant": "standard",
            "description": "the 2031 contract",
            "windows": [
                { "milestone": "started", "start": "2031-06-01", "end": "2031-12-31" },
                { "milestone": "completed", "start": "2032-01-01", "end": "2032-07-31", "share_percent": 80 }
            ]
        }]
    });
    std::fs::write(&good, file.to_string()).expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(steplab_payments::run(config_with(&good).payments_config(), listener, async move {
        let _ = stopped.await;
    }));
    let token = steplab_tests::token(Role::Admin, None, &[]);
    let mut listed = None;
    for _ in 0..100 {
        if let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await
        {
            let mut client = pb::payments_service_client::PaymentsServiceClient::new(channel);
            let mut request = tonic::Request::new(pb::ListSchedulesRequest::default());
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
            if let Ok(answer) = client.list_schedules(request).await {
                listed = Some(answer.into_inner());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = listed.expect("served");
    assert_eq!(listed.schedules.len(), 1);
    let s = &listed.schedules[0];
    assert_eq!((s.cohort, s.per_participant_price_pence, s.description.as_str()), (2031, 150_000, "the 2031 contract"));
    assert_eq!(s.windows.iter().map(|w| w.share_percent).collect::<Vec<_>>(), [20, 80]);
    let _ = stop.send(());
    server.await.expect("task").expect("clean exit");
}

/// A stand-in for the DfE gateway (task 17g builds the real one): records
/// what payments' relay delivers, and the caller's role.
#[derive(Clone, Default)]
struct FakeGateway {
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

type Answer<T> = Result<tonic::Response<T>, Status>;

impl FakeGateway {
    fn note(&self, request: &tonic::metadata::MetadataMap, what: String) {
        let bearer = request.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let role = bearer
            .strip_prefix("Bearer ")
            .and_then(|t| {
                steplab_platform::auth::JwtVerifier::hs256(steplab_tests::SECRET.as_bytes()).ok()?.verify(t).ok()
            })
            .map(|c| c.role().as_str().to_owned())
            .unwrap_or_default();
        self.received.lock().expect("lock").push((what, role));
    }

    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().expect("lock").clone()
    }
}

fn ack<T>(command_id: &str, wrap: impl FnOnce(steplab_proto::steplab::common::v1::CommandAck) -> T) -> Answer<T> {
    Ok(tonic::Response::new(wrap(steplab_proto::steplab::common::v1::CommandAck {
        idempotency_key: command_id.into(),
        duplicate: false,
    })))
}

#[tonic::async_trait]
impl dfe::dfe_gateway_service_server::DfeGatewayService for FakeGateway {
    async fn track_participant(
        &self,
        _: tonic::Request<dfe::TrackParticipantRequest>,
    ) -> Answer<dfe::TrackParticipantResponse> {
        Err(Status::unimplemented("payments never tracks participants"))
    }
    async fn report_status_change(
        &self,
        _: tonic::Request<dfe::ReportStatusChangeRequest>,
    ) -> Answer<dfe::ReportStatusChangeResponse> {
        Err(Status::unimplemented("payments never reports status changes"))
    }
    async fn declare_milestone(
        &self,
        request: tonic::Request<dfe::DeclareMilestoneRequest>,
    ) -> Answer<dfe::DeclareMilestoneResponse> {
        let r = request.get_ref();
        self.note(request.metadata(), format!("declare {} {}", r.participant_id, r.declaration_type));
        ack(&r.idempotency_key, |ack| dfe::DeclareMilestoneResponse { ack: Some(ack) })
    }
    async fn void_milestone(
        &self,
        request: tonic::Request<dfe::VoidMilestoneRequest>,
    ) -> Answer<dfe::VoidMilestoneResponse> {
        let r = request.get_ref();
        self.note(request.metadata(), format!("void {} {}", r.participant_id, r.declaration_type));
        ack(&r.idempotency_key, |ack| dfe::VoidMilestoneResponse { ack: Some(ack) })
    }
    /// As a gateway from before batches: the relay falls back to one unary
    /// call per command, so that path stays exercised here.
    async fn apply_commands(&self, _: tonic::Request<dfe::ApplyCommandsRequest>) -> Answer<dfe::ApplyCommandsResponse> {
        Err(Status::unimplemented("this gateway takes one command per call"))
    }
    async fn list_dfe_calls(&self, _: tonic::Request<dfe::ListDfeCallsRequest>) -> Answer<dfe::ListDfeCallsResponse> {
        Err(Status::unimplemented("not here"))
    }
    async fn retry_dfe_call(&self, _: tonic::Request<dfe::RetryDfeCallRequest>) -> Answer<dfe::RetryDfeCallResponse> {
        Err(Status::unimplemented("not here"))
    }
    async fn list_unreportable(
        &self,
        _: tonic::Request<dfe::ListUnreportableRequest>,
    ) -> Answer<dfe::ListUnreportableResponse> {
        Err(Status::unimplemented("not here"))
    }
    async fn reconcile(&self, _: tonic::Request<dfe::ReconcileRequest>) -> Answer<dfe::ReconcileResponse> {
        Err(Status::unimplemented("not here"))
    }
}

/// X5, X6: payments' relay delivers its declarations and voids to the
/// gateway at `STEPLAB_DFE_GATEWAY_URL`, in order, with a service token.
async fn x5_x6_payments_relay_delivers_declarations_and_voids_to_the_gateway_in_order(backend: steplab_tests::Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let gateway = FakeGateway::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(dfe::dfe_gateway_service_server::DfeGatewayServiceServer::new(gateway.clone()))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    let Some(stack) =
        Stack::start_with(backend, steplab_tests::TODAY, &[("STEPLAB_DFE_GATEWAY_URL", url.as_str())]).await
    else {
        return;
    };
    let at = place();
    let mut client = service(&stack).await;
    let id = enrol_ect(&mut client, &at, 2025).await;
    engage_as(&mut client, &id, date(2025, 10, 1), pb::EngagementKind::ModuleCompleted).await;
    engage_as(&mut client, &id, date(2026, 2, 1), pb::EngagementKind::Clinic).await;
    client
        .end_accrual(pb::EndAccrualRequest {
            idempotency_key: new_id(),
            participant_id: id.clone(),
            effective_date: date(2026, 1, 15),
        })
        .await
        .expect("withdrawn, backdated");
    let expected: Vec<(String, String)> = ["declare {id} started", "declare {id} retained-1", "void {id} retained-1"]
        .iter()
        .map(|w| (w.replace("{id}", &id), "service".to_owned()))
        .collect();
    eventually("the gateway receives the declarations and the void", || {
        let gateway = gateway.clone();
        let expected = expected.clone();
        async move { gateway.received() == expected }
    })
    .await;
    stack.stop().await;
    let _ = stop.send(());
    served.await.expect("fake gateway task").expect("fake gateway served");
    assert_eq!(gateway.received(), expected, "once each, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x5_x6_payments_relay_delivers_declarations_and_voids_to_the_gateway_in_order_sqlite() {
    x5_x6_payments_relay_delivers_declarations_and_voids_to_the_gateway_in_order(steplab_tests::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x5_x6_payments_relay_delivers_declarations_and_voids_to_the_gateway_in_order_postgres() {
    x5_x6_payments_relay_delivers_declarations_and_voids_to_the_gateway_in_order(steplab_tests::Backend::Postgres)
        .await;
}
