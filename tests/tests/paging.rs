//! One pagination convention (AIP-158, docs/api.md "Pagination") over real
//! gRPC, on SQLite and PostgreSQL: page_size 0 is 50 and above 1000 is 1000
//! on a list of every service; a page token is refused with another filter,
//! by another caller, on another RPC, edited or forged; history and sync
//! status page through everything once.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use chrono::NaiveDateTime;
use std::collections::BTreeSet;
use steplab_platform::audit::{self, NewEntry};
use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_platform::config::ServiceSettings;
use steplab_platform::db::{Database, Migrations};
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{SECRET, Stack, on_both_backends};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// More rows than the largest page, by one.
const ROWS: usize = 1001;

fn at() -> NaiveDateTime {
    chrono::DateTime::UNIX_EPOCH.naive_utc()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An admin token with its own `sub`.
fn admin_as(sub: &str) -> String {
    auth::mint_hs256(
        SECRET.as_bytes(),
        &TokenRequest {
            sub: sub.into(),
            role: Role::Admin,
            school_id: None,
            delivery_partner_ids: vec![],
            ttl: chrono::Duration::hours(1),
        },
    )
    .expect("mint token")
}

/// The fields a refusal names, after checking it is INVALID_ARGUMENT.
fn refused_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// `ROWS` audit entries about `participant_id`, written straight into a
/// service's database (a thousand calls would only be slower).
async fn seed_audit(settings: &ServiceSettings, migrations: &'static Migrations, participant_id: &str) {
    let db = Database::open(&settings.database, migrations).await.expect("open the database");
    let entries: Vec<NewEntry> = (0..ROWS)
        .map(|n| NewEntry {
            recorded_at: at(),
            request_id: format!("seed-{n}"),
            actor_sub: Some("seed".into()),
            actor_role: Some("admin".into()),
            rpc: "Seed".into(),
            participant_id: Some(participant_id.into()),
            outcome: "OK".into(),
            reason: None,
            calls: 1,
        })
        .collect();
    db.write(move |conn| audit::record_all(conn, &entries)).await.expect("seed the audit log");
}

/// One `(entries, next_page_token)` page of a service's ListAuditEntries.
async fn audit_page(stack: &Stack, service: &str, participant_id: &str, size: i32, token: &str) -> (usize, String) {
    let admin = stack.admin_token();
    let (participant_id, page_token) = (participant_id.to_owned(), token.to_owned());
    match service {
        "participant" => {
            let r =
                pb::ListAuditEntriesRequest { participant_id, actor_sub: String::new(), page_size: size, page_token };
            let page = stack.participants(Some(&admin)).await.list_audit_entries(r).await.expect("page").into_inner();
            (page.entries.len(), page.next_page_token)
        }
        "content" => {
            let r = content::ListAuditEntriesRequest {
                participant_id,
                actor_sub: String::new(),
                page_size: size,
                page_token,
            };
            let page = stack.content(Some(&admin)).await.list_audit_entries(r).await.expect("page").into_inner();
            (page.entries.len(), page.next_page_token)
        }
        "payments" => {
            let r = payments::ListAuditEntriesRequest {
                participant_id,
                actor_sub: String::new(),
                page_size: size,
                page_token,
            };
            let page = stack.payments(Some(&admin)).await.list_audit_entries(r).await.expect("page").into_inner();
            (page.entries.len(), page.next_page_token)
        }
        other => panic!("no service {other}"),
    }
}

async fn unreportable_page(stack: &Stack, size: i32, token: &str) -> Result<(usize, String), Status> {
    let page = stack
        .dfe_gateway(Some(&stack.admin_token()))
        .await
        .list_unreportable(dfe::ListUnreportableRequest { page_size: size, page_token: token.into() })
        .await?
        .into_inner();
    Ok((page.participants.len(), page.next_page_token))
}

async fn aip158_page_size_0_is_50_and_above_1000_is_1000_on_every_service(stack: &Stack) {
    let participant_id = new_id();
    seed_audit(&stack.config.participant, &steplab_participant::MIGRATIONS, &participant_id).await;
    seed_audit(&stack.config.content, &steplab_content_release::MIGRATIONS, &participant_id).await;
    seed_audit(&stack.config.payments, &steplab_payments::MIGRATIONS, &participant_id).await;
    for service in ["participant", "content", "payments"] {
        let (n, token) = audit_page(stack, service, &participant_id, 0, "").await;
        assert_eq!(n, 50, "{service}: page_size 0 is 50");
        assert!(!token.is_empty());
        let (n, token) = audit_page(stack, service, &participant_id, 5000, "").await;
        assert_eq!(n, 1000, "{service}: page_size 5000 is lowered to 1000, not refused");
        let (n, last) = audit_page(stack, service, &participant_id, i32::MAX, &token).await;
        assert_eq!((n, last.as_str()), (1, ""), "{service}: the last page has no token");
    }
    // DfE gateway: ListUnreportable over ROWS tracked participants without a DfE id.
    let db = Database::open(&stack.config.dfe_gateway.database, &steplab_dfe_gateway::MIGRATIONS)
        .await
        .expect("open the gateway database");
    let before = unreportable_page(stack, 1000, "").await.expect("list").0;
    db.write(|conn| {
        (0..ROWS).try_for_each(|_| {
            steplab_dfe_gateway::store::insert_tracked(
                conn,
                &steplab_dfe_gateway::store::TrackedRow {
                    participant_id: new_id(),
                    course: "ect".into(),
                    trn: "1234567".into(),
                    cohort: 2026,
                    dfe_participant_id: None,
                    training_status: "active".into(),
                    schedule_identifier: String::new(),
                    created_at: at(),
                    updated_at: at(),
                },
            )
        })
    })
    .await
    .expect("seed tracked participants");
    assert_eq!(unreportable_page(stack, 0, "").await.expect("default").0, 50);
    let (n, token) = unreportable_page(stack, 1001, "").await.expect("clamped");
    assert_eq!(n, 1000);
    let (n, last) = unreportable_page(stack, 1000, &token).await.expect("rest");
    assert_eq!((n, last.as_str()), (before + 1, ""));
    let err = unreportable_page(stack, -1, "").await.expect_err("negative");
    assert_eq!(refused_fields(&err), ["page_size"]);
}

async fn aip158_a_page_token_is_bound_to_its_filter_caller_and_rpc_and_cannot_be_forged(stack: &Stack) {
    let w = world(stack).await;
    for n in 0..3 {
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, &format!("61000{n:02}"), None)).await;
    }
    let ada = admin_as("ada");
    let mut client = stack.participants(Some(&ada)).await;
    let list = |school: &str, status: i32, size: i32, token: &str| pb::ListParticipantsRequest {
        school_id: school.into(),
        status,
        page_size: size,
        page_token: token.into(),
        ..Default::default()
    };
    let first = client.list_participants(list(&w.school_a, 0, 1, "")).await.expect("first").into_inner();
    let token = first.next_page_token;
    assert!(!token.is_empty());
    assert!(!token.contains(&first.participants[0].participant_id), "the token does not show the key");
    // The same filter, with another page size (AIP-158 allows it), goes on.
    let rest = client.list_participants(list(&w.school_a, 0, 5, &token)).await.expect("same filter").into_inner();
    assert_eq!(rest.participants.len(), 2);
    assert!(rest.next_page_token.is_empty(), "a full last page gets no token");
    let refused = |status: Status| {
        assert_eq!(refused_fields(&status), ["page_token"]);
        let description =
            status.get_error_details().bad_request().expect("bad request").field_violations[0].description.clone();
        assert!(description.contains("start again without page_token"), "{description}");
    };
    // Another filter.
    refused(client.list_participants(list(&w.school_b, 0, 1, &token)).await.expect_err("another school"));
    refused(client.list_participants(list(&w.school_a, 1, 1, &token)).await.expect_err("another status"));
    // Another caller.
    let mut bob = stack.participants(Some(&admin_as("bob"))).await;
    refused(bob.list_participants(list(&w.school_a, 0, 1, &token)).await.expect_err("another caller"));
    // Another RPC.
    let other_rpc = pb::ListRequestsRequest { page_token: token.clone(), ..Default::default() };
    refused(client.list_requests(other_rpc).await.expect_err("another rpc"));
    // Edited: one character changed.
    let mut edited: Vec<char> = token.chars().collect();
    let middle = edited.len() / 2;
    edited[middle] = if edited[middle] == 'A' { 'B' } else { 'A' };
    let edited: String = edited.into_iter().collect();
    refused(client.list_participants(list(&w.school_a, 0, 1, &edited)).await.expect_err("edited"));
    // Forged: the old readable format, and garbage.
    let forged = format!("after:{}", "0".repeat(36));
    refused(client.list_participants(list(&w.school_a, 0, 1, &forged)).await.expect_err("forged"));
    let forged = format!("after:{}", first.participants[0].participant_id);
    refused(client.list_participants(list(&w.school_a, 0, 1, &forged)).await.expect_err("forged after"));
    // Negative sizes are refused with the size named.
    let err = client.list_participants(list(&w.school_a, 0, -1, "")).await.expect_err("negative");
    assert_eq!(refused_fields(&err), ["page_size"]);
}

/// Every page of `read` at `size`, concatenated, and how many pages it took.
async fn all_pages<F, Fut>(size: i32, mut read: F) -> (Vec<String>, usize)
where
    F: FnMut(i32, String) -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, String)>,
{
    let (mut all, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let (items, next) = read(size, token).await;
        assert!(items.len() <= size as usize, "a page holds at most page_size");
        pages += 1;
        all.extend(items);
        if next.is_empty() {
            return (all, pages);
        }
        token = next;
    }
}

fn assert_once_each(paged: &[String], whole: &[String], size: i32, pages: usize) {
    assert_eq!(paged, whole, "page size {size}: the same items in the same order, no gaps");
    assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), paged.len(), "page size {size}: no duplicates");
    assert_eq!(pages, whole.len().div_ceil(size as usize).max(1), "page size {size}: no extra empty page");
}

async fn aip158_history_and_sync_status_page_through_everything_once(stack: &Stack) {
    let w = world(stack).await;
    let on = date(2026, 9, 1);
    let ect = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "6200001", on)).await;
    let m1 = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "6200002", on)).await;
    let m2 = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "6200003", on)).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for (n, day) in [7, 21, 35, 49, 63].into_iter().enumerate() {
        let effective = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("date") + chrono::Days::new(day);
        client
            .assign_mentor(pb::AssignMentorRequest {
                validate_only: false,
                ect_id: ect.participant_id.clone(),
                mentor_id: if n % 2 == 0 { m1.participant_id.clone() } else { m2.participant_id.clone() },
                interim: false,
                effective_date: Some(steplab_platform::date::to_proto(effective)),
                idempotency_key: String::new(),
                until: None,
            })
            .await
            .expect("assign a mentor");
    }
    let admin = stack.participants(Some(&stack.admin_token())).await;
    let id = ect.participant_id.clone();
    let history = |size: i32, token: String| {
        let (mut admin, id) = (admin.clone(), id.clone());
        async move {
            let page = admin
                .get_participant_history(pb::GetParticipantHistoryRequest {
                    participant_id: id,
                    page_size: size,
                    page_token: token,
                })
                .await
                .expect("history page")
                .into_inner();
            let events = page.events.iter().map(|e| format!("{e:?}")).collect();
            (events, page.next_page_token)
        }
    };
    let (whole, pages) = all_pages(1000, history).await;
    assert_eq!(pages, 1);
    assert!(whole.len() >= 6, "registration and five mentor changes: {}", whole.len());
    for size in [1, 2, 4] {
        let (paged, pages) = all_pages(size, history).await;
        assert_once_each(&paged, &whole, size, pages);
    }
    let sync = |size: i32, token: String| {
        let (mut admin, id) = (admin.clone(), id.clone());
        async move {
            let page = admin
                .get_sync_status(pb::GetSyncStatusRequest {
                    participant_id: id,
                    parked_only: false,
                    page_size: size,
                    page_token: token,
                })
                .await
                .expect("sync status page")
                .into_inner();
            (page.commands.into_iter().map(|c| c.command_id).collect(), page.next_page_token)
        }
    };
    let (whole, pages) = all_pages(1000, sync).await;
    assert_eq!(pages, 1);
    assert!(whole.len() >= 2, "the ECT's commands to content release and payments: {}", whole.len());
    for size in [1, 2, 3] {
        let (paged, pages) = all_pages(size, sync).await;
        assert_once_each(&paged, &whole, size, pages);
    }
    // The history's token is bound to its participant.
    let (_, token) = history(1, String::new()).await;
    let err = admin
        .clone()
        .get_participant_history(pb::GetParticipantHistoryRequest {
            participant_id: m1.participant_id.clone(),
            page_size: 1,
            page_token: token,
        })
        .await
        .expect_err("another participant");
    assert_eq!(refused_fields(&err), ["page_token"]);
}

on_both_backends!(
    aip158_page_size_0_is_50_and_above_1000_is_1000_on_every_service,
    aip158_a_page_token_is_bound_to_its_filter_caller_and_rpc_and_cannot_be_forged,
    aip158_history_and_sync_status_page_through_everything_once,
);
