//! The audit log (issue 9, item 4) over real gRPC, on SQLite and PostgreSQL:
//! a known sequence of allowed and refused calls reads back as exactly that
//! sequence, by participant and by actor; allowed reads are not recorded;
//! the relay's deliveries are recorded where they land; only admins read it;
//! and nothing secret or personal is stored.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::time::Duration;
use steplab_platform::audit::{self, Query, Subject};
use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_platform::db::Database;
use steplab_proto::steplab::common::v1::{AuditEntry, DeferralReason, ParticipantKind};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::participant::v1::{ListAuditEntriesRequest, ListAuditEntriesResponse};
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{date, registration, world};
use steplab_tests::{SECRET, Stack, on_both_backends, wait_until_delivered};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A token with its own `sub`, so each actor's entries can be read apart.
fn token_as(sub: &str, role: Role, school: Option<&str>, delivery_partners: &[&str]) -> String {
    auth::mint_hs256(
        SECRET.as_bytes(),
        &TokenRequest {
            sub: sub.into(),
            role,
            school_id: school.map(str::to_owned),
            delivery_partner_ids: delivery_partners.iter().map(|s| s.to_string()).collect(),
            ttl: chrono::Duration::hours(1),
        },
    )
    .expect("mint token")
}

/// A request carrying a known `x-request-id`, so entries can be matched to calls.
fn with_id<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-request-id", request_id.parse().expect("ascii request id"));
    request
}

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// What an entry says, in the order the columns are named.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    request_id: String,
    rpc: String,
    outcome: String,
    actor_sub: String,
    actor_role: String,
    participant_id: String,
    reason: String,
}

fn seen(e: &AuditEntry) -> Seen {
    Seen {
        request_id: e.request_id.clone(),
        rpc: e.rpc.clone(),
        outcome: e.outcome.clone(),
        actor_sub: e.actor_sub.clone(),
        actor_role: e.actor_role.clone(),
        participant_id: e.participant_id.clone(),
        reason: e.reason.clone(),
    }
}

fn stored(e: &audit::Entry) -> Seen {
    Seen {
        request_id: e.request_id.clone(),
        rpc: e.rpc.clone(),
        outcome: e.outcome.clone(),
        actor_sub: e.actor_sub.clone().unwrap_or_default(),
        actor_role: e.actor_role.clone().unwrap_or_default(),
        participant_id: e.participant_id.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
    }
}

fn expect(request_id: &str, rpc: &str, outcome: &str, actor: (&str, &str), participant: &str, reason: &str) -> Seen {
    Seen {
        request_id: request_id.into(),
        rpc: rpc.into(),
        outcome: outcome.into(),
        actor_sub: actor.0.into(),
        actor_role: actor.1.into(),
        participant_id: participant.into(),
        reason: reason.into(),
    }
}

type Reader = Box<
    dyn Fn(
        ListAuditEntriesRequest,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ListAuditEntriesResponse, Status>> + Send>>,
>;

/// `ListAuditEntries` on one of the three services, as `token`.
async fn reader(stack: &Stack, service: &str, token: &str) -> Reader {
    match service {
        "participant" => {
            let client = stack.participants(Some(token)).await;
            Box::new(move |r| {
                let mut c = client.clone();
                Box::pin(async move { c.list_audit_entries(r).await.map(tonic::Response::into_inner) })
            })
        }
        "content" => {
            let client = stack.content(Some(token)).await;
            Box::new(move |r: ListAuditEntriesRequest| {
                let mut c = client.clone();
                let r = content::ListAuditEntriesRequest {
                    participant_id: r.participant_id,
                    actor_sub: r.actor_sub,
                    page_size: r.page_size,
                    page_token: r.page_token,
                };
                Box::pin(async move {
                    let page = c.list_audit_entries(r).await?.into_inner();
                    Ok(ListAuditEntriesResponse { entries: page.entries, next_page_token: page.next_page_token })
                })
            })
        }
        "payments" => {
            let client = stack.payments(Some(token)).await;
            Box::new(move |r: ListAuditEntriesRequest| {
                let mut c = client.clone();
                let r = payments::ListAuditEntriesRequest {
                    participant_id: r.participant_id,
                    actor_sub: r.actor_sub,
                    page_size: r.page_size,
                    page_token: r.page_token,
                };
                Box::pin(async move {
                    let page = c.list_audit_entries(r).await?.into_inner();
                    Ok(ListAuditEntriesResponse { entries: page.entries, next_page_token: page.next_page_token })
                })
            })
        }
        other => panic!("no service {other}"),
    }
}

/// Every entry for a participant or an actor, page by page.
async fn read_all(read: &Reader, participant_id: &str, actor_sub: &str, page_size: i32) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = read(ListAuditEntriesRequest {
            participant_id: participant_id.into(),
            actor_sub: actor_sub.into(),
            page_size,
            page_token: page_token.clone(),
        })
        .await
        .expect("list audit entries");
        let cap = if page_size == 0 { 50 } else { page_size as usize };
        assert!(page.entries.len() <= cap, "a page holds at most page_size entries");
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
}

/// Every entry in the participant service's database, calls without a
/// valid token included (those name neither a participant nor an actor).
async fn whole_participant_log(stack: &Stack) -> Vec<audit::Entry> {
    let db = Database::open(&stack.config.participant.database, &steplab_participant::MIGRATIONS)
        .await
        .expect("open the participant database");
    db.read(|conn| audit::list(conn, &Query { subject: Subject::Everything, after: None, limit: 10_000 }))
        .await
        .expect("read the audit log")
        .0
}

const ADMIN: (&str, &str) = ("audit-admin", "admin");
const IC_A: (&str, &str) = ("audit-ic-a", "induction_coordinator");
const IC_B: (&str, &str) = ("audit-ic-b", "induction_coordinator");
const LEAD_1: (&str, &str) = ("audit-lead-1", "ecf_lead");
const LEAD_2: (&str, &str) = ("audit-lead-2", "ecf_lead");

/// The known sequence against the participant service, then the log read
/// back by participant, by actor and whole.
async fn a_sequence_of_allowed_and_refused_calls_reads_back_exactly(stack: &Stack) {
    let w = world(stack).await;
    let admin = token_as(ADMIN.0, Role::Admin, None, &[]);
    let ic_a = token_as(IC_A.0, Role::InductionCoordinator, Some(&w.school_a), &[]);
    let ic_b = token_as(IC_B.0, Role::InductionCoordinator, Some(&w.school_b), &[]);
    let lead_1 = token_as(LEAD_1.0, Role::EcfLead, None, &[&w.dp1]);
    let lead_2 = token_as(LEAD_2.0, Role::EcfLead, None, &[&w.dp2]);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let rid = |n: u32| format!("audit-{run}-{n}");

    // 1. An admin registers an ECT: allowed.
    let full_name = "Grace Hopper-Audit";
    let mut register = registration(&w.school_a, ParticipantKind::Ect, "3100001", date(2026, 9, 1));
    register.full_name = full_name.into();
    let p = stack
        .participants(Some(&admin))
        .await
        .register_participant(with_id(register, &rid(1)))
        .await
        .expect("register")
        .into_inner()
        .participant
        .expect("participant")
        .participant_id;
    // 2. Their IC pauses them for two weeks, with an idempotency key: allowed.
    let pause = pb::PauseParticipantRequest {
        validate_only: false,
        alongside_ect_id: String::new(),
        participant_id: p.clone(),
        start_date: date(2026, 12, 1),
        expected_end_date: date(2026, 12, 15),
        note: "Ada's surgery, back mid December".into(),
        idempotency_key: "pause-once".into(),
    };
    let mut as_ic_a = stack.participants(Some(&ic_a)).await;
    as_ic_a.pause_participant(with_id(pause.clone(), &rid(2))).await.expect("pause");
    // 3. Another delivery partner's ECF Lead tries the same: permission.
    let err = stack
        .participants(Some(&lead_2))
        .await
        .pause_participant(with_id(
            pb::PauseParticipantRequest { idempotency_key: String::new(), ..pause.clone() },
            &rid(3),
        ))
        .await
        .expect_err("out of scope");
    assert_eq!(err.code(), Code::PermissionDenied);
    // 4. Their own ECF Lead defers from an impossible date: validation.
    let mut as_lead_1 = stack.participants(Some(&lead_1)).await;
    let defer = |from: (i32, i32, i32), until: (i32, i32, i32)| pb::DeferParticipantRequest {
        participant_id: p.clone(),
        reason: DeferralReason::ParentalLeave as i32,
        deferral_date: date(from.0, from.1, from.2),
        expected_return_date: date(until.0, until.1, until.2),
        ..Default::default()
    };
    let err =
        as_lead_1.defer_participant(with_id(defer((2026, 2, 30), (2027, 3, 1)), &rid(4))).await.expect_err("date");
    assert_eq!(err.code(), Code::InvalidArgument);
    // 5. ... then with a return more than twelve months away: a rule (D3).
    let err = as_lead_1.defer_participant(with_id(defer((2026, 12, 1), (2028, 1, 10)), &rid(5))).await.expect_err("D3");
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "RETURN_DATE_TOO_FAR"));
    // 6. Another school's IC reads them: a read refused for permission.
    let err = stack
        .participants(Some(&ic_b))
        .await
        .get_participant(with_id(pb::GetParticipantRequest { participant_id: p.clone(), as_of: None }, &rid(6)))
        .await
        .expect_err("other school");
    assert_eq!(err.code(), Code::PermissionDenied);
    // 7. Their own IC reads them: an allowed read, not recorded.
    as_ic_a
        .get_participant(with_id(pb::GetParticipantRequest { participant_id: p.clone(), as_of: None }, &rid(7)))
        .await
        .expect("own school");
    // 8. No token at all.
    let err =
        stack.participants(None).await.pause_participant(with_id(pause.clone(), &rid(8))).await.expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    // 9. The IC's pause again with the same key: a replay, answered as before.
    as_ic_a.pause_participant(with_id(pause.clone(), &rid(9))).await.expect("replay");
    // 10. The IC tries to read the participant's audit: admins only.
    let err = as_ic_a
        .list_audit_entries(with_id(
            ListAuditEntriesRequest { participant_id: p.clone(), ..Default::default() },
            &rid(10),
        ))
        .await
        .expect_err("not an admin");
    assert_eq!(err.code(), Code::PermissionDenied);

    let e =
        |n, rpc, outcome, actor, participant: &str, reason| expect(&rid(n), rpc, outcome, actor, participant, reason);
    let register = e(1, "RegisterParticipant", "OK", ADMIN, &p, "");
    let paused = e(2, "PauseParticipant", "OK", IC_A, &p, "");
    let out_of_scope = e(3, "PauseParticipant", "PERMISSION_DENIED", LEAD_2, &p, "");
    let bad_date = e(4, "DeferParticipant", "INVALID_ARGUMENT", LEAD_1, &p, "deferral_date");
    let too_far = e(5, "DeferParticipant", "FAILED_PRECONDITION", LEAD_1, &p, "RETURN_DATE_TOO_FAR");
    let other_school = e(6, "GetParticipant", "PERMISSION_DENIED", IC_B, &p, "");
    let anonymous = e(8, "PauseParticipant", "UNAUTHENTICATED", ("", ""), "", "");
    let replay = e(9, "PauseParticipant", "OK", IC_A, &p, "");
    let audit_refused = e(10, "ListAuditEntries", "PERMISSION_DENIED", IC_A, &p, "");

    let read = reader(stack, "participant", &admin).await;
    // By participant, in pages of three: the calls about them, in order.
    let by_participant = read_all(&read, &p, "", 3).await;
    assert_eq!(
        by_participant.iter().map(seen).collect::<Vec<_>>(),
        [
            register.clone(),
            paused.clone(),
            out_of_scope.clone(),
            bad_date.clone(),
            too_far.clone(),
            other_school.clone(),
            replay.clone(),
            audit_refused.clone()
        ]
    );
    assert!(by_participant.windows(2).all(|pair| pair[0].id < pair[1].id), "oldest first");
    assert!(by_participant.iter().all(|e| e.record_time.is_some()));
    // One page holds the same entries.
    assert_eq!(read_all(&read, &p, "", 0).await, by_participant);
    // By actor.
    let by = |entries: Vec<AuditEntry>| entries.iter().map(seen).collect::<Vec<_>>();
    assert_eq!(by(read_all(&read, "", IC_A.0, 50).await), [paused.clone(), replay.clone(), audit_refused.clone()]);
    assert_eq!(by(read_all(&read, "", LEAD_1.0, 50).await), [bad_date.clone(), too_far.clone()]);
    assert_eq!(by(read_all(&read, "", IC_B.0, 50).await), std::slice::from_ref(&other_school));
    assert_eq!(by(read_all(&read, "", ADMIN.0, 50).await), std::slice::from_ref(&register));

    // The whole log from the registration on: the call without a token too,
    // and nothing else (the allowed read of step 7 is not there).
    let whole = whole_participant_log(stack).await;
    let start = whole.iter().position(|e| e.request_id == rid(1)).expect("the registration's entry");
    assert_eq!(
        whole[start..].iter().map(stored).collect::<Vec<_>>(),
        [register, paused, out_of_scope, bad_date, too_far, other_school, anonymous, replay, audit_refused]
    );
    assert!(!whole.iter().any(|e| e.request_id == rid(7)), "an allowed read is not recorded");

    // Nothing secret or personal: no token, no name, no note, no message.
    for entry in &whole {
        let columns = [
            Some(&entry.request_id),
            entry.actor_sub.as_ref(),
            entry.actor_role.as_ref(),
            Some(&entry.rpc),
            entry.participant_id.as_ref(),
            Some(&entry.outcome),
            entry.reason.as_ref(),
        ];
        for column in columns.into_iter().flatten() {
            for secret in [&admin, &ic_a, &ic_b, &lead_1, &lead_2] {
                assert!(!column.contains(secret.as_str()), "a token in {entry:?}");
                // Any part of a token (header, claims, signature).
                assert!(secret.split('.').all(|part| !column.contains(part)), "part of a token in {entry:?}");
            }
            for personal in [full_name, "surgery", "Bearer", "eyJ", "twelve months", "2026-02-30"] {
                assert!(!column.contains(personal), "`{personal}` in {entry:?}");
            }
        }
    }
}

/// Commands the relay delivers are mutating calls by the `service` role,
/// recorded in content release's and payments' own logs.
async fn the_relays_deliveries_are_recorded_where_they_land(stack: &Stack) {
    let w = world(stack).await;
    let admin = token_as(ADMIN.0, Role::Admin, None, &[]);
    let ic_a = token_as(IC_A.0, Role::InductionCoordinator, Some(&w.school_a), &[]);
    let mut as_admin = stack.participants(Some(&admin)).await;
    let p = as_admin
        .register_participant(with_id(
            registration(&w.school_a, ParticipantKind::Ect, "3200001", date(2026, 9, 1)),
            "relay-register",
        ))
        .await
        .expect("register")
        .into_inner()
        .participant
        .expect("participant")
        .participant_id;
    stack
        .participants(Some(&ic_a))
        .await
        .pause_participant(with_id(
            pb::PauseParticipantRequest {
                participant_id: p.clone(),
                start_date: date(2026, 12, 1),
                expected_end_date: date(2026, 12, 15),
                ..Default::default()
            },
            "relay-pause",
        ))
        .await
        .expect("pause");
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    let commands = as_admin
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: p.clone(),
            parked_only: false,
        })
        .await
        .expect("sync status")
        .into_inner()
        .commands;

    for (service, target) in [("content", "content-release"), ("payments", "payments")] {
        let sent: Vec<&str> = commands.iter().filter(|c| c.target == target).map(|c| c.rpc.as_str()).collect();
        assert!(!sent.is_empty(), "the registration sends {target} a command");
        let recorded = read_all(&reader(stack, service, &admin).await, &p, "", 50).await;
        assert_eq!(recorded.iter().map(|e| e.rpc.as_str()).collect::<Vec<_>>(), sent, "{service}");
        for entry in &recorded {
            assert_eq!((entry.outcome.as_str(), entry.actor_role.as_str()), ("OK", "service"), "{entry:?}");
            assert_eq!(entry.participant_id, p);
            // The relay sends the causing call's request id on.
            assert!(["relay-register", "relay-pause"].contains(&entry.request_id.as_str()), "{entry:?}");
        }
    }
    // Content release holds the pause (P5: payments are not told about it).
    let content = read_all(&reader(stack, "content", &admin).await, &p, "", 50).await;
    assert!(content.iter().any(|e| e.rpc == "PlaceHold" && e.request_id == "relay-pause"), "{content:?}");
}

/// Only admins read any service's log; a refusal and a malformed request
/// are themselves recorded in that service's log.
async fn only_admins_read_the_log_and_refusals_to_read_it_are_recorded(stack: &Stack) {
    let w = world(stack).await;
    let admin = token_as(ADMIN.0, Role::Admin, None, &[]);
    let others = [
        ("audit-probe-ic", Role::InductionCoordinator, Some(w.school_a.as_str()), vec![]),
        ("audit-probe-lead", Role::EcfLead, None, vec![w.dp1.as_str()]),
        ("audit-probe-dpl", Role::Dpl, None, vec![w.dp1.as_str()]),
        ("audit-probe-service", Role::Service, None, vec![]),
    ];
    for service in ["participant", "content", "payments"] {
        for (sub, role, school, dps) in &others {
            let token = token_as(sub, *role, *school, dps);
            let read = reader(stack, service, &token).await;
            let err = read(ListAuditEntriesRequest { actor_sub: (*sub).into(), ..Default::default() })
                .await
                .expect_err("not an admin");
            assert_eq!(err.code(), Code::PermissionDenied, "{service} {sub}");
        }
        let read = reader(stack, service, &admin).await;
        for (sub, role, ..) in &others {
            let entries = read_all(&read, "", sub, 50).await;
            let found: Vec<_> =
                entries.iter().map(|e| (e.rpc.as_str(), e.outcome.as_str(), e.actor_role.as_str())).collect();
            assert_eq!(found, [("ListAuditEntries", "PERMISSION_DENIED", role.as_str())], "{service} {sub}");
        }
        // Neither filter (or both) is a malformed request, recorded with its field.
        let err = read(ListAuditEntriesRequest::default()).await.expect_err("no filter");
        assert_eq!(err.code(), Code::InvalidArgument);
        let err =
            read(ListAuditEntriesRequest { participant_id: "p".into(), actor_sub: "a".into(), ..Default::default() })
                .await
                .expect_err("both filters");
        assert_eq!(err.code(), Code::InvalidArgument);
        let err = read(ListAuditEntriesRequest { actor_sub: "x".repeat(201), ..Default::default() })
            .await
            .expect_err("too long");
        assert_eq!(err.code(), Code::InvalidArgument);
        let mine: Vec<_> = read_all(&read, "", ADMIN.0, 50)
            .await
            .iter()
            .map(|e| (e.rpc.clone(), e.outcome.clone(), e.reason.clone()))
            .collect();
        let invalid = |reason: &str| ("ListAuditEntries".to_owned(), "INVALID_ARGUMENT".to_owned(), reason.to_owned());
        assert_eq!(mine, [invalid("participant_id"), invalid("actor_sub"), invalid("actor_sub")], "{service}");
    }
}

on_both_backends!(
    a_sequence_of_allowed_and_refused_calls_reads_back_exactly,
    the_relays_deliveries_are_recorded_where_they_land,
    only_admins_read_the_log_and_refusals_to_read_it_are_recorded,
);
