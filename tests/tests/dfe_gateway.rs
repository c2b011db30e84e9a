//! The DfE gateway against a stateful fake DfE (tests/src/fake_dfe.rs), on
//! SQLite and PostgreSQL: order and once-only delivery despite 500s and 429s
//! (X4, X8), parking and an admin's retry (X8), calls waiting for the DfE id
//! (X1), the rate limit (X8), the token read afresh (X9), and who may call
//! what.

use std::path::{Path, PathBuf};
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::date::to_proto;
use steplab_proto::steplab::dfe::v1 as pb;
use steplab_tests::fake_dfe::FakeDfe;
use steplab_tests::receivers::{new_id, status_change, track_participant};
use steplab_tests::{Backend, DfeGateway, Stack};
use tonic::Code;

const TOKEN: &str = "lead-provider-token-1";

/// A stack whose gateway talks to `fake`, with the token in a file; `None`
/// when PostgreSQL is wanted but absent and not required.
async fn stack_for(backend: Backend, fake: &FakeDfe, extra: &[(&str, &str)]) -> Option<(Stack, tempfile::TempDir)> {
    Stack::start_with_dfe(backend, &fake.url, &format!("{TOKEN}\n"), extra).await
}

fn token_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("dfe-token")
}

async fn as_service(stack: &Stack) -> DfeGateway {
    stack.dfe_gateway(Some(&stack.token(Role::Service, None, &[]))).await
}

async fn as_admin(stack: &Stack) -> DfeGateway {
    stack.dfe_gateway(Some(&stack.admin_token())).await
}

async fn track(gateway: &mut DfeGateway, participant_id: &str, course: pb::Course, dfe_id: &str) {
    gateway.track_participant(track_participant(participant_id, course, dfe_id)).await.expect("tracked");
}

async fn report(gateway: &mut DfeGateway, participant_id: &str, kind: pb::StatusChangeKind) {
    gateway.report_status_change(status_change(participant_id, kind)).await.expect("reported");
}

async fn calls(admin: &mut DfeGateway, participant_id: &str, state: pb::DfeCallState) -> Vec<pb::DfeCall> {
    admin
        .list_dfe_calls(pb::ListDfeCallsRequest {
            participant_id: participant_id.to_owned(),
            state: state as i32,
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .expect("list calls")
        .into_inner()
        .calls
}

/// Waits until `count` calls (of anyone) are in `state`.
async fn wait_for(admin: &mut DfeGateway, state: pb::DfeCallState, count: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = calls(admin, "", state).await;
        if now.len() >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} calls in {state:?} after {within:?}, wanted {count}: {:?}",
            now.len(),
            calls(admin, "", pb::DfeCallState::Unspecified).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn action(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
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

/// X4, X8: with the DfE answering 500 to every third write and 429 (with
/// Retry-After) to every fifth, every call arrives once and in order per
/// participant, and each ECT and mentor gets its own course identifier.
async fn x8_every_call_arrives_once_and_in_order_despite_500s_and_429s(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    fake.with(|s| {
        s.fail_every = Some(3);
        s.too_many_every = Some((5, 1));
    });
    let Some((stack, _dir)) = stack_for(backend, &fake, &[]).await else { return };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    use pb::StatusChangeKind::*;
    let sequence = [Defer, Resume, ChangeSchedule, Withdraw];
    let people: Vec<(String, String, pb::Course)> = (0..3)
        .map(|i| (new_id(), new_id(), if i == 0 { pb::Course::EcfMentor } else { pb::Course::EcfInduction }))
        .collect();
    for (ours, dfe, course) in &people {
        track(&mut gateway, ours, *course, dfe).await;
    }
    // Interleaved across participants, as the participant service would send them.
    for kind in sequence {
        for (ours, _, _) in &people {
            report(&mut gateway, ours, kind).await;
        }
    }
    wait_for(&mut admin, pb::DfeCallState::Delivered, 12, Duration::from_secs(60)).await;
    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 12, "each call accepted once: {accepted:#?}");
    for (_, dfe, course) in &people {
        let theirs: Vec<_> = accepted.iter().filter(|r| r.path.contains(dfe.as_str())).collect();
        let actions: Vec<&str> = theirs.iter().map(|r| action(&r.path)).collect();
        assert_eq!(actions, ["defer", "resume", "change-schedule", "withdraw"], "in order for {dfe}");
        let expected = if *course == pb::Course::EcfMentor { "ecf-mentor" } else { "ecf-induction" };
        for r in theirs {
            assert_eq!(r.body["data"]["attributes"]["course_identifier"], expected);
        }
    }
    let (failed, throttled) = fake.with(|s| {
        (s.received.iter().filter(|r| r.status == 500).count(), s.received.iter().filter(|r| r.status == 429).count())
    });
    assert!(failed > 0 && throttled > 0, "the fake did refuse some: {failed} 500s, {throttled} 429s");
    // X3: `left-role` is sent as `other`.
    assert!(
        accepted
            .iter()
            .filter(|r| action(&r.path) == "withdraw")
            .all(|r| r.body["data"]["attributes"]["reason"] == "other")
    );
    assert!(calls(&mut admin, "", pb::DfeCallState::Pending).await.is_empty());
    stack.stop().await;
}

/// X8: a 422 parks the call with the DfE's body and holds that
/// participant's later calls (not anyone else's); an admin's RetryDfeCall
/// after the cause is fixed delivers it, then the rest in order.
async fn x8_a_422_is_parked_with_the_dfes_body_and_an_admin_retry_delivers_it(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake, &[]).await else { return };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    let (a, a_dfe, b, b_dfe) = (new_id(), new_id(), new_id(), new_id());
    fake.with(|s| s.refuse.push(format!("{a_dfe}/withdraw")));
    track(&mut gateway, &a, pb::Course::EcfInduction, &a_dfe).await;
    track(&mut gateway, &b, pb::Course::EcfInduction, &b_dfe).await;
    report(&mut gateway, &a, pb::StatusChangeKind::Withdraw).await;
    report(&mut gateway, &a, pb::StatusChangeKind::Resume).await;
    report(&mut gateway, &b, pb::StatusChangeKind::Defer).await;
    wait_for(&mut admin, pb::DfeCallState::Parked, 1, Duration::from_secs(30)).await;
    wait_for(&mut admin, pb::DfeCallState::Delivered, 1, Duration::from_secs(30)).await;
    let parked = calls(&mut admin, &a, pb::DfeCallState::Parked).await;
    assert_eq!(parked.len(), 1);
    let call = &parked[0];
    assert_eq!(call.last_http_status, 422);
    assert!(call.last_error.contains("must be a valid reason"), "the DfE's body is kept: {}", call.last_error);
    assert_eq!(call.path, format!("/api/v3/participants/ecf/{a_dfe}/withdraw"));
    assert_eq!(call.dfe_participant_id, a_dfe);
    // B's call went; A's resume waits behind the parked withdrawal.
    assert_eq!(calls(&mut admin, &b, pb::DfeCallState::Delivered).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls(&mut admin, &a, pb::DfeCallState::Pending).await.len(), 1);
    assert!(fake.accepted().iter().all(|r| !r.path.contains(a_dfe.as_str())));
    // Retrying before the fix parks it again; a delivered call is not retried.
    let delivered = calls(&mut admin, &b, pb::DfeCallState::Delivered).await;
    let err = admin
        .retry_dfe_call(pb::RetryDfeCallRequest {
            idempotency_key: String::new(),
            call_id: delivered[0].call_id.clone(),
        })
        .await
        .expect_err("not parked");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = admin
        .retry_dfe_call(pb::RetryDfeCallRequest { idempotency_key: String::new(), call_id: new_id() })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    fake.with(|s| s.refuse.clear());
    let retried = admin
        .retry_dfe_call(pb::RetryDfeCallRequest { idempotency_key: String::new(), call_id: call.call_id.clone() })
        .await
        .expect("retried")
        .into_inner()
        .call
        .expect("call");
    assert_eq!(retried.state, pb::DfeCallState::Pending as i32);
    wait_for(&mut admin, pb::DfeCallState::Delivered, 3, Duration::from_secs(30)).await;
    let theirs: Vec<String> = fake
        .accepted()
        .iter()
        .filter(|r| r.path.contains(a_dfe.as_str()))
        .map(|r| action(&r.path).to_owned())
        .collect();
    assert_eq!(theirs, ["withdraw", "resume"]);
    stack.stop().await;
}

/// X1: a participant without a DfE id is listed as unreportable and their
/// calls wait; when TrackParticipant brings the id they leave, in order.
async fn x1_calls_wait_for_the_dfe_id_and_leave_in_order_when_it_arrives(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake, &[]).await else { return };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    let ours = new_id();
    track(&mut gateway, &ours, pb::Course::EcfMentor, "").await;
    report(&mut gateway, &ours, pb::StatusChangeKind::Defer).await;
    report(&mut gateway, &ours, pb::StatusChangeKind::Resume).await;
    let waiting = calls(&mut admin, &ours, pb::DfeCallState::WaitingForDfeId).await;
    assert_eq!(waiting.len(), 2);
    assert!(waiting[0].path.contains("{dfe_participant_id}"), "{}", waiting[0].path);
    let unreportable = admin
        .list_unreportable(pb::ListUnreportableRequest::default())
        .await
        .expect("unreportable")
        .into_inner()
        .participants;
    assert_eq!(unreportable.len(), 1);
    assert_eq!(unreportable[0].participant_id, ours);
    assert_eq!(unreportable[0].course, pb::Course::EcfMentor as i32);
    assert_eq!(unreportable[0].waiting_calls, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.with(|s| s.received.is_empty()), "nothing is sent without a DfE id");

    let dfe = new_id();
    track(&mut gateway, &ours, pb::Course::EcfMentor, &dfe).await;
    wait_for(&mut admin, pb::DfeCallState::Delivered, 2, Duration::from_secs(30)).await;
    let actions: Vec<String> = fake.accepted().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        actions,
        [format!("/api/v3/participants/ecf/{dfe}/defer"), format!("/api/v3/participants/ecf/{dfe}/resume")]
    );
    let unreportable = admin.list_unreportable(pb::ListUnreportableRequest::default()).await.expect("list");
    assert!(unreportable.into_inner().participants.is_empty());
    stack.stop().await;
}

/// X8: never more than the configured requests per rolling 5 minutes, across
/// all participants: with a limit of 3, six due calls make 3 requests and
/// the others wait (for minutes, far beyond this test).
async fn x8_the_rate_limit_holds_across_participants(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake, &[("STEPLAB_DFE_RATE_LIMIT_PER_5_MIN", "3")]).await else {
        return;
    };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    for _ in 0..6 {
        let ours = new_id();
        track(&mut gateway, &ours, pb::Course::EcfInduction, &new_id()).await;
        report(&mut gateway, &ours, pb::StatusChangeKind::Defer).await;
    }
    wait_for(&mut admin, pb::DfeCallState::Delivered, 3, Duration::from_secs(30)).await;
    // Long enough for the worker to send more if it ignored the limit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.with(|s| s.received.len()), 3);
    assert_eq!(calls(&mut admin, "", pb::DfeCallState::Pending).await.len(), 3);
    stack.stop().await;
}

/// X9: the token is read from its file for each call, so rotating it in
/// place takes effect without a restart.
async fn x9_the_token_file_is_read_afresh_on_each_call(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, dir)) = stack_for(backend, &fake, &[]).await else { return };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    let ours = new_id();
    track(&mut gateway, &ours, pb::Course::EcfInduction, &new_id()).await;
    report(&mut gateway, &ours, pb::StatusChangeKind::Defer).await;
    wait_for(&mut admin, pb::DfeCallState::Delivered, 1, Duration::from_secs(30)).await;
    rotate(&token_file(&dir), &fake, "lead-provider-token-2");
    report(&mut gateway, &ours, pb::StatusChangeKind::Resume).await;
    wait_for(&mut admin, pb::DfeCallState::Delivered, 2, Duration::from_secs(30)).await;
    let bearers: Vec<Option<String>> = fake.with(|s| s.received.iter().map(|r| r.bearer.clone()).collect());
    assert_eq!(bearers, [Some(TOKEN.to_owned()), Some("lead-provider-token-2".to_owned())]);
    stack.stop().await;
}

fn rotate(file: &Path, fake: &FakeDfe, token: &str) {
    std::fs::write(file, token).expect("rotate token");
    fake.with(|s| token.clone_into(&mut s.token));
}

fn declare(participant_id: &str, declaration_type: &str, evidence_held: &str) -> pb::DeclareMilestoneRequest {
    pb::DeclareMilestoneRequest {
        idempotency_key: new_id(),
        participant_id: participant_id.to_owned(),
        declaration_type: declaration_type.to_owned(),
        declaration_date: Some(to_proto(chrono::NaiveDate::from_ymd_opt(2026, 10, 5).expect("date"))),
        evidence_held: evidence_held.to_owned(),
        milestone_id: String::new(),
    }
}

/// X5, X6: a milestone earned is one declaration POST (dated at midnight
/// UTC, evidence where given); the DfE's id and state are kept and sent to
/// payments (RecordDeclarationState, through the gateway's outbox); a void
/// is a PUT on the DfE's declaration id, and its state goes to payments too.
async fn x5_x6_declarations_are_posted_voided_and_their_states_sent_to_payments(backend: Backend) {
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake, &[]).await else { return };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    let (ours, dfe) = (new_id(), new_id());
    track(&mut gateway, &ours, pb::Course::EcfInduction, &dfe).await;
    gateway.declare_milestone(declare(&ours, "started", "")).await.expect("started");
    gateway.declare_milestone(declare(&ours, "retained-1", "training-event-attended")).await.expect("retained-1");
    let err = gateway.declare_milestone(declare(&ours, "started", "")).await.expect_err("twice");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = gateway
        .void_milestone(pb::VoidMilestoneRequest {
            idempotency_key: new_id(),
            participant_id: ours.clone(),
            declaration_type: "completed".into(),
        })
        .await
        .expect_err("never declared");
    assert_eq!(err.code(), Code::FailedPrecondition);
    wait_for(&mut admin, pb::DfeCallState::Delivered, 2, Duration::from_secs(30)).await;
    let posted = fake.accepted();
    assert_eq!(posted.len(), 2);
    let started = &posted[0].body["data"]["attributes"];
    assert_eq!(posted[0].path, "/api/v3/participant-declarations");
    assert_eq!(started["participant_id"], dfe.as_str());
    assert_eq!(started["declaration_type"], "started");
    assert_eq!(started["declaration_date"], "2026-10-05T00:00:00Z");
    assert_eq!(started["course_identifier"], "ecf-induction");
    assert!(started.get("evidence_held").is_none());
    assert_eq!(posted[1].body["data"]["attributes"]["evidence_held"], "training-event-attended");
    let started_id = fake
        .with(|s| s.declarations.iter().find(|(_, d)| d.declaration_type == "started").map(|(id, _)| id.clone()))
        .expect("the fake holds it");

    gateway
        .void_milestone(pb::VoidMilestoneRequest {
            idempotency_key: new_id(),
            participant_id: ours.clone(),
            declaration_type: "started".into(),
        })
        .await
        .expect("void");
    wait_for(&mut admin, pb::DfeCallState::Delivered, 3, Duration::from_secs(30)).await;
    let void = fake.accepted().pop().expect("void");
    assert_eq!(
        (void.method.as_str(), void.path.as_str()),
        ("PUT", format!("/api/v3/participant-declarations/{started_id}/void").as_str())
    );
    assert_eq!(fake.with(|s| s.declarations[&started_id].state.clone()), "voided");

    // What payments is told, in order, through the gateway's own outbox.
    let db = steplab_platform::db::Database::open(&stack.config.dfe_gateway.database, &steplab_dfe_gateway::MIGRATIONS)
        .await
        .expect("gateway database");
    let participant = ours.clone();
    let sent = db
        .read(move |conn| {
            steplab_platform::outbox::for_participant(conn, &participant).map_err(steplab_platform::db::DbError::from)
        })
        .await
        .expect("outbox");
    let told: Vec<(String, String, String)> = sent
        .iter()
        .map(|row| {
            assert_eq!((row.target.as_str(), row.rpc()), ("payments", "RecordDeclarationState"));
            let request: steplab_proto::steplab::payments::v1::RecordDeclarationStateRequest =
                prost::Message::decode(row.payload.as_slice()).expect("request");
            (request.declaration_type, request.dfe_declaration_id, request.state)
        })
        .collect();
    assert_eq!(told.len(), 3, "{told:?}");
    assert_eq!(told[0], ("started".to_owned(), started_id.clone(), "submitted".to_owned()));
    assert_eq!(told[1].2, "submitted");
    assert_eq!(told[2], ("started".to_owned(), started_id, "voided".to_owned()));
    stack.stop().await;
}

/// X7: reconciliation reads every page of the DfE's participants and
/// declarations and reports a declaration the DfE holds and we do not, a
/// status that differs, a TRN match for a participant without a DfE id, and
/// counts what agrees; it changes nothing.
async fn x7_reconciliation_reports_every_difference_and_what_matches(backend: Backend) {
    use steplab_tests::fake_dfe::{FakeDeclaration, FakeParticipant};
    let fake = FakeDfe::start(TOKEN).await;
    let Some((stack, _dir)) = stack_for(backend, &fake, &[]).await else { return };
    let mut gateway = as_service(&stack).await;
    let mut admin = as_admin(&stack).await;
    let (p1, d1, p2, d2, p3, d3) = (new_id(), new_id(), new_id(), new_id(), new_id(), new_id());
    let seeded = |status: &str, trn: &str| FakeParticipant {
        trn: trn.into(),
        participant_type: "ect".into(),
        training_status: status.into(),
        schedule_identifier: "ecf-standard-september".into(),
        cohort: "2026".into(),
    };
    fake.with(|s| {
        s.participants.insert(d1.clone(), seeded("active", "1234567"));
        s.participants.insert(d2.clone(), seeded("withdrawn", "1234568"));
        s.participants.insert(d3.clone(), seeded("active", "7654321"));
        // More than a page of others, so reading needs paging.
        for _ in 0..150 {
            s.participants.insert(new_id(), seeded("active", "1111111"));
        }
        s.declarations.insert(
            new_id(),
            FakeDeclaration {
                participant_id: d1.clone(),
                declaration_type: "retained-1".into(),
                course_identifier: "ecf-induction".into(),
                state: "paid".into(),
            },
        );
    });
    track(&mut gateway, &p1, pb::Course::EcfInduction, &d1).await;
    track(&mut gateway, &p2, pb::Course::EcfInduction, &d2).await;
    gateway
        .track_participant(pb::TrackParticipantRequest {
            idempotency_key: new_id(),
            participant_id: p3.clone(),
            course: pb::Course::EcfInduction as i32,
            trn: "7654321".into(),
            cohort: 2026,
            ..Default::default()
        })
        .await
        .expect("tracked without an id");
    report(&mut gateway, &p1, pb::StatusChangeKind::Defer).await;
    gateway.declare_milestone(declare(&p1, "started", "")).await.expect("started");
    wait_for(&mut admin, pb::DfeCallState::Delivered, 2, Duration::from_secs(30)).await;
    let writes_before = fake.accepted().len();

    let answer = admin.reconcile(pb::ReconcileRequest::default()).await.expect("reconcile").into_inner();
    let found: Vec<(i32, String)> = answer.differences.iter().map(|d| (d.kind, d.participant_id.clone())).collect();
    assert!(found.contains(&(pb::DifferenceKind::Status as i32, p2.clone())), "{:#?}", answer.differences);
    assert!(
        found.contains(&(pb::DifferenceKind::DeclarationMissingHere as i32, p1.clone())),
        "{:#?}",
        answer.differences
    );
    let matched =
        answer.differences.iter().find(|d| d.kind == pb::DifferenceKind::MatchAvailable as i32).expect("a TRN match");
    assert_eq!((matched.participant_id.as_str(), matched.dfe_participant_id.as_str()), (p3.as_str(), d3.as_str()));
    let status = answer.differences.iter().find(|d| d.kind == pb::DifferenceKind::Status as i32).expect("status");
    assert_eq!((status.ours.as_str(), status.theirs.as_str()), ("active", "withdrawn"));
    assert_eq!(answer.differences.len(), 3, "{:#?}", answer.differences);
    assert_eq!(answer.matching_participants, 1, "p1 deferred on both sides");
    assert_eq!(answer.matching_declarations, 1, "p1's started");
    assert_eq!(answer.dfe_participants_read, 153);
    assert_eq!(answer.dfe_declarations_read, 2);
    assert!(fake.with(|s| s.received.iter().filter(|r| r.method == "GET").count()) >= 3, "paged");
    assert_eq!(fake.accepted().len(), writes_before, "reconciliation changes nothing at the DfE");
    stack.stop().await;
}

on_both_backends_with_a_fake_dfe!(
    x7_reconciliation_reports_every_difference_and_what_matches,
    x5_x6_declarations_are_posted_voided_and_their_states_sent_to_payments,
    x8_every_call_arrives_once_and_in_order_despite_500s_and_429s,
    x8_a_422_is_parked_with_the_dfes_body_and_an_admin_retry_delivers_it,
    x1_calls_wait_for_the_dfe_id_and_leave_in_order_when_it_arrives,
    x8_the_rate_limit_holds_across_participants,
    x9_the_token_file_is_read_afresh_on_each_call,
);

/// Roles: the commands are for the service role, the operations for
/// admins; a wrong role is PERMISSION_DENIED, no token UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_commands_are_for_services_and_operations_for_admins() {
    let stack = Stack::start(Backend::Sqlite).await.expect("sqlite stack");
    let lead = stack.token(Role::EcfLead, None, &["dp"]);
    let admin_token = stack.admin_token();
    let service_token = stack.token(Role::Service, None, &[]);
    for (token, commands_code, operations_code) in [
        (Some(admin_token.as_str()), Some(Code::PermissionDenied), None),
        (Some(service_token.as_str()), None, Some(Code::PermissionDenied)),
        (Some(lead.as_str()), Some(Code::PermissionDenied), Some(Code::PermissionDenied)),
        (None, Some(Code::Unauthenticated), Some(Code::Unauthenticated)),
    ] {
        let mut g = stack.dfe_gateway(token).await;
        let id = new_id();
        let command_codes = [
            g.track_participant(pb::TrackParticipantRequest {
                idempotency_key: new_id(),
                participant_id: id.clone(),
                course: pb::Course::EcfInduction as i32,
                cohort: 2026,
                ..Default::default()
            })
            .await
            .err()
            .map(|e| e.code()),
            g.report_status_change(status_change(&id, pb::StatusChangeKind::Resume)).await.err().map(|e| e.code()),
            g.declare_milestone(pb::DeclareMilestoneRequest { idempotency_key: new_id(), ..Default::default() })
                .await
                .err()
                .map(|e| e.code()),
            g.void_milestone(pb::VoidMilestoneRequest { idempotency_key: new_id(), ..Default::default() })
                .await
                .err()
                .map(|e| e.code()),
        ];
        let operation_codes = [
            g.list_dfe_calls(pb::ListDfeCallsRequest::default()).await.err().map(|e| e.code()),
            g.retry_dfe_call(pb::RetryDfeCallRequest { idempotency_key: String::new(), call_id: new_id() })
                .await
                .err()
                .map(|e| e.code()),
            g.list_unreportable(pb::ListUnreportableRequest::default()).await.err().map(|e| e.code()),
            g.reconcile(pb::ReconcileRequest::default()).await.err().map(|e| e.code()),
        ];
        match commands_code {
            Some(code) => assert!(command_codes.iter().all(|c| *c == Some(code)), "{token:?}: {command_codes:?}"),
            None => assert!(
                command_codes.iter().all(|c| !matches!(c, Some(Code::PermissionDenied | Code::Unauthenticated))),
                "{command_codes:?}"
            ),
        }
        match operations_code {
            Some(code) => assert!(operation_codes.iter().all(|c| *c == Some(code)), "{token:?}: {operation_codes:?}"),
            None => assert!(
                operation_codes.iter().all(|c| !matches!(c, Some(Code::PermissionDenied | Code::Unauthenticated))),
                "{operation_codes:?}"
            ),
        }
    }
    // Without the DfE configured, reconciliation says so.
    let mut admin = as_admin(&stack).await;
    let err = admin.reconcile(pb::ReconcileRequest::default()).await.expect_err("off");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("STEPLAB_DFE_API_URL"), "{}", err.message());
    stack.stop().await;
}

/// Bad input is INVALID_ARGUMENT naming the field, and a repeated command
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_bad_commands_name_their_field_and_repeats_are_acknowledged_once() {
    let stack = Stack::start(Backend::Sqlite).await.expect("sqlite stack");
    let mut g = as_service(&stack).await;
    let ours = new_id();
    let mut bad = status_change(&ours, pb::StatusChangeKind::Defer);
    bad.reason = "holiday".into();
    let err = g.report_status_change(bad).await.expect_err("bad reason");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = g.report_status_change(status_change(&ours, pb::StatusChangeKind::Defer)).await.expect_err("untracked");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = g
        .track_participant(pb::TrackParticipantRequest {
            idempotency_key: new_id(),
            participant_id: ours.clone(),
            course: pb::Course::EcfInduction as i32,
            dfe_participant_id: "not-a-uuid".into(),
            cohort: 2026,
            ..Default::default()
        })
        .await
        .expect_err("bad dfe id");
    assert_eq!(err.code(), Code::InvalidArgument);
    track(&mut g, &ours, pb::Course::EcfInduction, "").await;
    let request = status_change(&ours, pb::StatusChangeKind::Defer);
    let first = g.report_status_change(request.clone()).await.expect("first").into_inner();
    let again = g.report_status_change(request).await.expect("again").into_inner();
    assert!(!first.ack.expect("ack").duplicate);
    assert!(again.ack.expect("ack").duplicate);
    let mut admin = as_admin(&stack).await;
    assert_eq!(calls(&mut admin, &ours, pb::DfeCallState::Unspecified).await.len(), 1);
    stack.stop().await;
}
