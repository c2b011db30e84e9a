//! Limits of the business services (issue 9, item 2), on SQLite: the maximum
//! message size, the global concurrency cap with load shedding while health
//! still answers, a client's deadline, the per-caller rate limit on mutating
//! calls, and the per-connection stream limit, which makes a client wait
//! rather than refusing it (issue 14; see also transport.rs). Each test fails
//! if its protection is removed.

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{create_dp, create_school, register, registration};
use steplab_tests::{Backend, Stack, TODAY};
use tonic::Code;

async fn start(settings: &[(&str, &str)]) -> Stack {
    Stack::start_with(Backend::Sqlite, TODAY, settings).await.expect("SQLite stack")
}

/// A delivery partner and a school with `participants` ECTs registered.
async fn school_with(stack: &Stack, participants: usize) -> (String, String) {
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    let dp = create_dp(&mut client, "North Region").await;
    let school = create_school(&mut client, "100001", &dp, true).await;
    for i in 0..participants {
        let trn = format!("{}", 1_000_000 + i);
        register(stack, &dp, registration(&school, ParticipantKind::Ect, &trn, None)).await;
    }
    (dp, school)
}

fn list(school: &str) -> pb::ListParticipantsRequest {
    pb::ListParticipantsRequest { school_id: school.into(), page_size: 500, ..Default::default() }
}

async fn count_in(stack: &Stack, school: &str) -> usize {
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    client.list_participants(list(school)).await.expect("list").into_inner().participants.len()
}

async fn health_status(stack: &Stack) -> i32 {
    let channel = steplab_tests::channel(stack.participant_addr).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_maximum_message_size_is_refused_and_changes_nothing() {
    // 2 MB is under tonic's own 4 MiB default: only our setting refuses it.
    let stack = start(&[("STEPLAB_MAX_MESSAGE_BYTES", "1048576")]).await;
    let (dp, school) = school_with(&stack, 0).await;
    let lead = stack.token(Role::EcfLead, None, &[&dp]);
    let mut request = registration(&school, ParticipantKind::Ect, "1000001", None);
    request.full_name = "x".repeat(2_000_000);
    let err = stack.participants(Some(&lead)).await.register_participant(request).await.expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(count_in(&stack, &school).await, 0, "nothing registered");
    // A normal request still goes through.
    register(&stack, &dp, registration(&school, ParticipantKind::Ect, "1000001", None)).await;
    assert_eq!(count_in(&stack, &school).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mutating_calls_past_a_callers_rate_are_refused_while_reads_and_other_callers_go_on() {
    let stack = start(&[("STEPLAB_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    let dp = create_dp(&mut client, "North Region").await;
    let school = create_school(&mut client, "100001", &dp, true).await;
    create_dp(&mut client, "South Region").await;
    let err = client
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: "East".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("4th mutating call in a minute");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("retry in"), "says when to retry: {}", err.message());
    // Reads by the same caller still answer.
    assert_eq!(count_in(&stack, &school).await, 0);
    // Another caller (another sub) has its own allowance.
    register(&stack, &dp, registration(&school, ParticipantKind::Ect, "1000001", None)).await;
    assert_eq!(count_in(&stack, &school).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_past_the_global_concurrency_cap_are_shed_while_health_answers() {
    let stack = start(&[("STEPLAB_MAX_CONCURRENT_REQUESTS", "1"), ("STEPLAB_RATE_LIMIT_PER_MINUTE", "0")]).await;
    let (_, school) = school_with(&stack, 60).await;
    let admin = stack.admin_token();
    let mut calls = Vec::new();
    for _ in 0..40 {
        let mut client = stack.participants(Some(&admin)).await;
        let request = list(&school);
        calls.push(tokio::spawn(async move { client.list_participants(request).await.map(|_| ()) }));
    }
    assert_eq!(health_status(&stack).await, 1, "SERVING during the burst");
    let mut shed = 0;
    let mut served = 0;
    for call in calls {
        match call.await.expect("task") {
            Ok(()) => served += 1,
            Err(status) if status.code() == Code::ResourceExhausted => shed += 1,
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
    assert!(shed > 0, "at least one call shed ({served} served)");
    assert!(served > 0, "at least one call served ({shed} shed)");
    assert_eq!(health_status(&stack).await, 1, "SERVING after the burst");
    // The cap frees up once calls finish.
    assert_eq!(count_in(&stack, &school).await, 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_deadline_ends_the_call_instead_of_hanging() {
    let stack = start(&[("STEPLAB_RATE_LIMIT_PER_MINUTE", "0")]).await;
    let (_, school) = school_with(&stack, 60).await;
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    let mut request = tonic::Request::new(list(&school));
    request.set_timeout(Duration::from_millis(1));
    let answer = tokio::time::timeout(Duration::from_secs(5), client.list_participants(request))
        .await
        .expect("the deadline ends the call, no hang");
    let err = answer.expect_err("past its deadline");
    assert!(matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled), "{err:?}");
}

/// The per-connection setting is the HTTP/2 stream limit the server
/// advertises (issue 14): a client with more calls than that on one
/// connection queues them itself, so none is refused.
#[tokio::test(flavor = "multi_thread")]
async fn calls_past_the_per_connection_stream_limit_wait_instead_of_being_refused() {
    let stack = start(&[("STEPLAB_MAX_CONCURRENT_PER_CONNECTION", "1"), ("STEPLAB_RATE_LIMIT_PER_MINUTE", "0")]).await;
    let (_, school) = school_with(&stack, 60).await;
    let admin = stack.admin_token();
    // One client, so one connection, many calls at once. One call first, so
    // the client has read the server's SETTINGS: streams opened before that
    // may exceed a limit the client does not know yet and be reset with
    // REFUSED_STREAM (HTTP/2 section 5.1.2), which gRPC's C and Go clients
    // retry transparently and tonic does not.
    let client = stack.participants(Some(&admin)).await;
    client.clone().list_participants(list(&school)).await.expect("the first call");
    let mut calls = Vec::new();
    for _ in 0..40 {
        let mut client = client.clone();
        let request = list(&school);
        calls.push(tokio::spawn(async move { client.list_participants(request).await.map(|r| r.into_inner()) }));
    }
    for call in calls {
        let page = call.await.expect("task").expect("every call is served, none shed");
        assert_eq!(page.participants.len(), 60);
    }
    assert_eq!(health_status(&stack).await, 1);
}
