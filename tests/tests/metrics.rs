//! Observability over real gRPC: Prometheus metrics on the side port set by
//! `STEPLAB_METRICS_LISTEN` (requests by RPC and status code, latency
//! histograms, outbox and relay, database pools), scraped with a hand-written
//! HTTP/1.1 GET; and the `x-request-id` of a call echoed back and stored on
//! the outbox commands it caused.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::time::Duration;
use steplab_platform::db::{Database, DbError};
use steplab_platform::outbox;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{registration, world};
use steplab_tests::{Backend, Stack, TODAY, wait_until_delivered};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `GET /metrics` over plain TCP: the body of the answer.
async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the metrics port");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the scrape answers in time")
        .expect("read");
    let answer = String::from_utf8(answer).expect("text");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample of `metric` carrying every one of `labels`.
fn sample(body: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} "))).find_map(
        |line| {
            let all = labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")));
            all.then(|| line.rsplit(' ').next().and_then(|v| v.parse().ok())).flatten()
        },
    )
}

fn positive(body: &str, metric: &str, labels: &[(&str, &str)]) {
    let value = sample(body, metric, labels);
    assert!(value.is_some_and(|v| v > 0.0), "{metric} {labels:?} is {value:?} in:\n{body}");
}

#[tokio::test]
async fn metrics_count_calls_by_rpc_and_code_and_request_ids_reach_the_outbox() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let stack = Stack::start_with(Backend::Sqlite, TODAY, &[("STEPLAB_METRICS_LISTEN", &listen)])
        .await
        .expect("a SQLite stack always starts");
    let admin = stack.admin_token();
    let world = world(&stack).await;

    // An accepted call with our request id: echoed back, and carried by the
    // commands it causes.
    let lead = stack.token(steplab_platform::Role::EcfLead, None, &[&world.dp1]);
    let mut request = tonic::Request::new(registration(&world.school_a, ParticipantKind::Ect, "1234567", None));
    request.metadata_mut().insert("x-request-id", "metrics-test-42".parse().expect("ascii"));
    let answer = stack.participants(Some(&lead)).await.register_participant(request).await.expect("register");
    assert_eq!(answer.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("metrics-test-42"));
    let participant_id = answer.into_inner().participant.expect("participant").participant_id;

    // A call without one gets a generated id.
    let answer = stack
        .participants(Some(&admin))
        .await
        .get_participant(pb::GetParticipantRequest { participant_id: participant_id.clone(), ..Default::default() })
        .await
        .expect("get");
    assert!(answer.metadata().get("x-request-id").is_some_and(|v| !v.is_empty()));

    // Refusals: a field error and a missing token.
    let refused = stack
        .participants(Some(&admin))
        .await
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("an empty name is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = stack
        .participants(None)
        .await
        .list_participants(pb::ListParticipantsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Health is not a business call: it is not counted.
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(steplab_tests::channel(stack.participant_addr).await);
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health");

    wait_until_delivered(&stack, Duration::from_secs(20)).await;

    let db = Database::open(&stack.config.participant.database, &steplab_participant::MIGRATIONS).await.expect("db");
    let rows = db
        .read(move |conn| Ok::<_, DbError>(outbox::for_participant(conn, &participant_id)?))
        .await
        .expect("outbox rows");
    assert!(!rows.is_empty(), "registration enrols with content release and payments");
    for row in &rows {
        assert_eq!(row.request_id.as_deref(), Some("metrics-test-42"), "{} carries the request id", row.rpc());
    }

    // The relay's gauges are refreshed about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = scrape(port).await;
    let participant = ("service", "participant");
    positive(&body, "steplab_grpc_requests_total", &[participant, ("rpc", "RegisterParticipant"), ("code", "OK")]);
    positive(&body, "steplab_grpc_requests_total", &[participant, ("rpc", "CreateSchool"), ("code", "OK")]);
    positive(
        &body,
        "steplab_grpc_requests_total",
        &[participant, ("rpc", "CreateDeliveryPartner"), ("code", "INVALID_ARGUMENT")],
    );
    positive(
        &body,
        "steplab_grpc_requests_total",
        &[participant, ("rpc", "ListParticipants"), ("code", "UNAUTHENTICATED")],
    );
    // The relay's deliveries are calls to the other two services: batches
    // (issue 18), each command audited as its own RPC there.
    positive(
        &body,
        "steplab_grpc_requests_total",
        &[("service", "content-release"), ("rpc", "ApplyCommands"), ("code", "OK")],
    );
    positive(
        &body,
        "steplab_grpc_requests_total",
        &[("service", "payments"), ("rpc", "ApplyCommands"), ("code", "OK")],
    );
    // The DfE gateway takes batches too: the ECT's TrackParticipant went in
    // one, not as a unary call after an UNIMPLEMENTED probe.
    positive(
        &body,
        "steplab_grpc_requests_total",
        &[("service", "dfe-gateway"), ("rpc", "ApplyCommands"), ("code", "OK")],
    );
    assert_eq!(
        sample(&body, "steplab_grpc_requests_total", &[("service", "dfe-gateway"), ("rpc", "TrackParticipant")]),
        None,
        "{body}"
    );
    assert!(!body.contains("rpc=\"Check\""), "health checks are not counted:\n{body}");

    positive(&body, "steplab_grpc_request_duration_seconds_count", &[participant, ("rpc", "RegisterParticipant")]);
    positive(
        &body,
        "steplab_grpc_request_duration_seconds_bucket",
        &[participant, ("rpc", "RegisterParticipant"), ("le", "+Inf")],
    );
    positive(&body, "steplab_relay_attempts_total", &[("target", "content-release"), ("outcome", "delivered")]);
    positive(&body, "steplab_relay_attempts_total", &[("target", "payments"), ("outcome", "delivered")]);
    // A histogram (buckets, not a summary) of commands per delivery call.
    positive(&body, "steplab_relay_batch_commands_count", &[("target", "content-release")]);
    positive(&body, "steplab_relay_batch_commands_bucket", &[("target", "content-release"), ("le", "+Inf")]);
    assert_eq!(sample(&body, "steplab_outbox_pending", &[]), Some(0.0), "{body}");
    assert_eq!(sample(&body, "steplab_outbox_parked", &[]), Some(0.0), "{body}");
    assert_eq!(sample(&body, "steplab_outbox_oldest_pending_age_seconds", &[]), Some(0.0), "{body}");
    // Each relay's gauges are its own (payments relays declarations to the
    // DfE gateway), even with every service in one process.
    for service in ["participant", "payments"] {
        assert_eq!(sample(&body, "steplab_outbox_pending", &[("service", service)]), Some(0.0), "{body}");
    }
    for service in ["participant", "content-release", "payments"] {
        positive(&body, "steplab_db_pool_connections", &[("service", service), ("state", "idle")]);
    }
    stack.stop().await;
}
