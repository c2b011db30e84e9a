//! ApplyCommands on content release, payments and the DfE gateway over real
//! gRPC, on SQLite
//! and on PostgreSQL (issue 18, item 1, the receivers' side): a batch
//! applies its commands in order in one transaction and answers one result
//! per command, each as its unary RPC would have answered; a refused or
//! undecodable command changes nothing and does not stop the others; a
//! repeated idempotency_key is a duplicate; each command is audited as a
//! call of its own RPC. "Today" is pinned to 2026-11-28.

use prost::Message;
use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::{AuditEntry, CommandResult, EncodedCommand};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::receivers::{
    accrual, content_client, enrol_learner, enrol_payee, fields, hold, new_id, on, payments_client, release_state,
    status_change, suspension, track_participant,
};
use steplab_tests::{Stack, on_both_backends};
use tonic::Code;

fn encoded(rpc: &str, request: &impl Message, request_id: &str) -> EncodedCommand {
    EncodedCommand { rpc: rpc.into(), request: request.encode_to_vec(), request_id: request_id.into() }
}

/// (code, reason, duplicate) of each result, for compact assertions.
fn outcomes(results: &[CommandResult]) -> Vec<(i32, &str, Option<bool>)> {
    results.iter().map(|r| (r.code, r.reason.as_str(), r.ack.as_ref().map(|a| a.duplicate))).collect()
}

const OK: i32 = Code::Ok as i32;
const APPLIED: (i32, &str, Option<bool>) = (OK, "", Some(false));
const DUPLICATE: (i32, &str, Option<bool>) = (OK, "", Some(true));

// ---- content release ----

fn batch(commands: Vec<EncodedCommand>) -> content::ApplyCommandsRequest {
    content::ApplyCommandsRequest { commands }
}

async fn content_a_batch_applies_in_order_with_a_result_per_command(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let (ada, bob) = (new_id(), new_id());
    let enrol_ada = enrol_learner(&ada);
    let defer_ada = hold(&ada, content::HoldKind::Deferral, "2026-11-28", "2027-04-12");
    let enrol_bob = enrol_learner(&bob);
    let answer = client
        .apply_commands(batch(vec![
            encoded("EnrolLearner", &enrol_ada, "r-1"),
            // In order: Ada is enrolled by the command before.
            encoded("PlaceHold", &defer_ada, "r-2"),
            encoded("EnrolLearner", &enrol_bob, ""),
        ]))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(outcomes(&answer.results), [APPLIED, APPLIED, APPLIED]);
    let keys: Vec<&str> = answer.results.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys, [&enrol_ada.idempotency_key, &defer_ada.idempotency_key, &enrol_bob.idempotency_key]);
    let state = release_state(&mut client, &ada).await.expect("ada enrolled");
    assert_eq!(state.active_holds.len(), 1, "{state:?}");
    release_state(&mut client, &bob).await.expect("bob enrolled");

    // The same commands in a later batch are duplicates and change nothing.
    let again = client
        .apply_commands(batch(vec![
            encoded("EnrolLearner", &enrol_ada, "r-3"),
            encoded("PlaceHold", &defer_ada, "r-4"),
        ]))
        .await
        .expect("repeat")
        .into_inner();
    assert_eq!(outcomes(&again.results), [DUPLICATE, DUPLICATE]);
    assert_eq!(release_state(&mut client, &ada).await.expect("ada"), state);
}

async fn content_a_refused_command_changes_nothing_and_does_not_stop_the_others(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let (ada, stranger, bob) = (new_id(), new_id(), new_id());
    client.enrol_learner(enrol_learner(&ada)).await.expect("enrol ada");
    let pause = hold(&ada, content::HoldKind::Pause, "2026-11-28", "2027-01-10");
    client.place_hold(pause.clone()).await.expect("pause");
    let before = release_state(&mut client, &ada).await.expect("before");
    // The same hold turned into a deferral: refused by rule.
    let turned = content::PlaceHoldRequest {
        idempotency_key: new_id(),
        kind: content::HoldKind::Deferral as i32,
        until: on("2027-04-12"),
        ..pause.clone()
    };
    let mut no_until = hold(&ada, content::HoldKind::Pause, "2026-12-01", "2027-01-04");
    no_until.until = None;
    let enrol_bob = enrol_learner(&bob);
    let answer = client
        .apply_commands(batch(vec![
            encoded("PlaceHold", &hold(&stranger, content::HoldKind::Pause, "2026-11-28", "2027-01-04"), ""),
            encoded("PlaceHold", &turned, ""),
            encoded("PlaceHold", &no_until, ""),
            EncodedCommand { rpc: "PlaceHold".into(), request: vec![0xff, 0xff, 0xff], request_id: String::new() },
            encoded("DropLearner", &enrol_bob, ""),
            encoded("EnrolLearner", &enrol_bob, ""),
        ]))
        .await
        .expect("batch")
        .into_inner();
    let codes: Vec<(i32, &str)> = answer.results.iter().map(|r| (r.code, r.reason.as_str())).collect();
    assert_eq!(
        codes,
        [
            (Code::NotFound as i32, "RESOURCE_NOT_FOUND"),
            (Code::FailedPrecondition as i32, "HOLD_KIND_MISMATCH"),
            (Code::InvalidArgument as i32, "INVALID_ARGUMENT"),
            (Code::InvalidArgument as i32, "INVALID_ARGUMENT"),
            (Code::InvalidArgument as i32, "INVALID_ARGUMENT"),
            (OK, ""),
        ]
    );
    // The refusals say what the unary RPC would have said.
    let unary = client.place_hold(turned.clone()).await.expect_err("unary refusal");
    assert_eq!(answer.results[1].message, unary.message());
    assert!(answer.results[0].message.contains(&stranger), "{}", answer.results[0].message);
    assert!(answer.results[2].message.contains("until"), "{}", answer.results[2].message);
    assert!(answer.results[4].message.contains("DropLearner"), "{}", answer.results[4].message);
    assert_eq!(answer.results[3].idempotency_key, "", "undecodable: no key");
    assert_eq!(answer.results[1].idempotency_key, turned.idempotency_key);
    assert!(answer.results[..5].iter().all(|r| r.ack.is_none()));
    assert_eq!(release_state(&mut client, &ada).await.expect("ada after"), before, "refusals changed nothing");
    release_state(&mut client, &bob).await.expect("the last command still ran");
}

async fn content_a_batch_holds_one_to_a_thousand_commands_from_a_service(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let status = client.apply_commands(batch(vec![])).await.expect_err("empty");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));

    let learners: Vec<String> = (0..1001).map(|_| new_id()).collect();
    let too_many = learners.iter().map(|p| encoded("EnrolLearner", &enrol_learner(p), "")).collect();
    let status = client.apply_commands(batch(too_many)).await.expect_err("too many");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));
    let status = release_state(&mut client, &learners[0]).await.expect_err("nothing applied");
    assert_eq!(status.code(), Code::NotFound);

    // A thousand is one batch.
    let most = learners[..1000].iter().map(|p| encoded("EnrolLearner", &enrol_learner(p), "")).collect();
    let answer = client.apply_commands(batch(most)).await.expect("a thousand").into_inner();
    assert_eq!(answer.results.len(), 1000);
    assert!(answer.results.iter().all(|r| r.code == OK), "{:?}", &answer.results[..3]);
    release_state(&mut client, &learners[999]).await.expect("the last one enrolled");

    let dp = new_id();
    let mut lead = stack.content(Some(&stack.token(Role::EcfLead, None, &[&dp]))).await;
    let someone = new_id();
    let status = lead
        .apply_commands(batch(vec![encoded("EnrolLearner", &enrol_learner(&someone), "")]))
        .await
        .expect_err("lead");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(release_state(&mut client, &someone).await.expect_err("not enrolled").code(), Code::NotFound);
}

async fn audit_of(stack: &Stack, participant: &str, service: &str) -> Vec<AuditEntry> {
    let admin = stack.admin_token();
    match service {
        "content" => {
            let mut c = stack.content(Some(&admin)).await;
            c.list_audit_entries(content::ListAuditEntriesRequest {
                participant_id: participant.into(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("content audit")
            .into_inner()
            .entries
        }
        _ => {
            let mut p = stack.payments(Some(&admin)).await;
            p.list_audit_entries(payments::ListAuditEntriesRequest {
                participant_id: participant.into(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("payments audit")
            .into_inner()
            .entries
        }
    }
}

/// (request_id, rpc, outcome, actor_role, reason) of each entry.
fn audited(entries: &[AuditEntry]) -> Vec<(&str, &str, &str, &str, &str)> {
    entries
        .iter()
        .map(|e| (e.request_id.as_str(), e.rpc.as_str(), e.outcome.as_str(), e.actor_role.as_str(), e.reason.as_str()))
        .collect()
}

async fn content_each_command_of_a_batch_is_audited_as_its_own_rpc(stack: &Stack) {
    let mut client = content_client(stack, Role::Service).await;
    let ada = new_id();
    let pause = hold(&ada, content::HoldKind::Pause, "2026-11-28", "2027-01-10");
    let turned = content::PlaceHoldRequest {
        idempotency_key: new_id(),
        kind: content::HoldKind::Deferral as i32,
        ..pause.clone()
    };
    let answer = client
        .apply_commands(batch(vec![
            encoded("EnrolLearner", &enrol_learner(&ada), "rid-enrol"),
            encoded("PlaceHold", &pause, "rid-pause"),
            encoded("PlaceHold", &turned, "rid-turned"),
        ]))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(answer.results.iter().map(|r| r.code).collect::<Vec<_>>(), [OK, OK, Code::FailedPrecondition as i32]);
    let entries = audit_of(stack, &ada, "content").await;
    assert_eq!(
        audited(&entries),
        [
            ("rid-enrol", "EnrolLearner", "OK", "service", ""),
            ("rid-pause", "PlaceHold", "OK", "service", ""),
            ("rid-turned", "PlaceHold", "FAILED_PRECONDITION", "service", "HOLD_KIND_MISMATCH"),
        ]
    );
    assert!(entries.iter().all(|e| e.participant_id == ada));
}

// ---- payments ----

fn payments_batch(commands: Vec<EncodedCommand>) -> payments::ApplyCommandsRequest {
    payments::ApplyCommandsRequest { commands }
}

async fn payments_a_batch_applies_in_order_and_refusals_stay_with_their_command(stack: &Stack) {
    let mut client = payments_client(stack, Role::Service).await;
    let (ada, stranger) = (new_id(), new_id());
    let enrol = enrol_payee(&ada);
    let suspend = suspension(&ada, "2026-10-01", "2026-12-01");
    let resume_unknown = payments::ResumeAccrualRequest {
        idempotency_key: new_id(),
        participant_id: ada.clone(),
        suspension_id: new_id(),
        on: on("2026-11-01"),
    };
    let mut unknown_schedule = enrol_payee(&stranger);
    unknown_schedule.schedule = "ecf-nonesuch".into();
    let answer = client
        .apply_commands(payments_batch(vec![
            encoded("EnrolPayee", &enrol, "rid-enrol"),
            encoded("SuspendAccrual", &suspend, "rid-suspend"),
            encoded("ResumeAccrual", &resume_unknown, "rid-resume"),
            encoded("EnrolPayee", &unknown_schedule, ""),
            encoded("SuspendAccrual", &suspension(&stranger, "2026-10-01", "2026-12-01"), ""),
            encoded("PlaceHold", &suspend, ""),
        ]))
        .await
        .expect("batch")
        .into_inner();
    let codes: Vec<i32> = answer.results.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        [OK, OK, Code::NotFound as i32, Code::NotFound as i32, Code::NotFound as i32, Code::InvalidArgument as i32]
    );
    let state = accrual(&mut client, &ada, "2026-11-28").await.expect("enrolled");
    assert_eq!(state.state, payments::AccrualState::Suspended as i32, "{state:?}");
    assert_eq!(accrual(&mut client, &stranger, "2026-11-28").await.expect_err("not enrolled").code(), Code::NotFound);

    let again = client
        .apply_commands(payments_batch(vec![
            encoded("EnrolPayee", &enrol, ""),
            encoded("SuspendAccrual", &suspend, ""),
        ]))
        .await
        .expect("repeat")
        .into_inner();
    assert_eq!(outcomes(&again.results), [DUPLICATE, DUPLICATE]);
    assert_eq!(accrual(&mut client, &ada, "2026-11-28").await.expect("same"), state);

    let entries = audit_of(stack, &ada, "payments").await;
    let rpcs: Vec<(&str, &str, &str)> =
        entries.iter().map(|e| (e.request_id.as_str(), e.rpc.as_str(), e.outcome.as_str())).collect();
    assert_eq!(
        rpcs[..3],
        [
            ("rid-enrol", "EnrolPayee", "OK"),
            ("rid-suspend", "SuspendAccrual", "OK"),
            ("rid-resume", "ResumeAccrual", "NOT_FOUND")
        ]
    );
    assert!(entries.iter().all(|e| e.rpc != "ApplyCommands"), "{entries:?}");
}

async fn payments_a_batch_holds_one_to_a_thousand_commands_from_a_service(stack: &Stack) {
    let mut client = payments_client(stack, Role::Service).await;
    let status = client.apply_commands(payments_batch(vec![])).await.expect_err("empty");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));
    let payees: Vec<String> = (0..1001).map(|_| new_id()).collect();
    let too_many = payees.iter().map(|p| encoded("EnrolPayee", &enrol_payee(p), "")).collect();
    let status = client.apply_commands(payments_batch(too_many)).await.expect_err("too many");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));
    assert_eq!(
        accrual(&mut client, &payees[0], "2026-11-28").await.expect_err("nothing applied").code(),
        Code::NotFound
    );

    let dp = new_id();
    let mut lead = stack.payments(Some(&stack.token(Role::EcfLead, None, &[&dp]))).await;
    let status = lead
        .apply_commands(payments_batch(vec![encoded("EnrolPayee", &enrol_payee(&payees[0]), "")]))
        .await
        .expect_err("lead");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(accrual(&mut client, &payees[0], "2026-11-28").await.expect_err("not enrolled").code(), Code::NotFound);
}

// ---- the DfE gateway ----

fn dfe_batch(commands: Vec<EncodedCommand>) -> dfe::ApplyCommandsRequest {
    dfe::ApplyCommandsRequest { commands }
}

fn track(participant: &str, dfe_id: &str) -> dfe::TrackParticipantRequest {
    track_participant(participant, dfe::Course::EcfInduction, dfe_id)
}

fn defer(participant: &str) -> dfe::ReportStatusChangeRequest {
    status_change(participant, dfe::StatusChangeKind::Defer)
}

/// (method, path) of the participant's DfE calls, oldest first.
async fn dfe_calls(stack: &Stack, participant: &str) -> Vec<(String, String)> {
    let mut admin = stack.dfe_gateway(Some(&stack.admin_token())).await;
    let calls = admin
        .list_dfe_calls(dfe::ListDfeCallsRequest {
            participant_id: participant.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list calls")
        .into_inner()
        .calls;
    calls.into_iter().map(|c| (c.http_method, c.path)).collect()
}

async fn dfe_gateway_a_batch_applies_in_order_and_refusals_stay_with_their_command(stack: &Stack) {
    let mut gateway = stack.dfe_gateway(Some(&stack.token(Role::Service, None, &[]))).await;
    let (ada, stranger) = (new_id(), new_id());
    let dfe_id = new_id();
    let track_ada = track(&ada, &dfe_id);
    let defer_ada = defer(&ada);
    let declare_ada = dfe::DeclareMilestoneRequest {
        idempotency_key: new_id(),
        participant_id: ada.clone(),
        declaration_type: "started".into(),
        declaration_date: on("2026-10-01"),
        evidence_held: String::new(),
        milestone_id: String::new(),
    };
    let answer = gateway
        .apply_commands(dfe_batch(vec![
            encoded("TrackParticipant", &track_ada, "r-1"),
            // In order: Ada is tracked by the command before.
            encoded("ReportStatusChange", &defer_ada, "r-2"),
            // X1: nobody tracked Stranger.
            encoded("ReportStatusChange", &defer(&stranger), "r-3"),
            encoded("DeclareMilestone", &declare_ada, "r-4"),
            // X5: declared already, in this batch.
            encoded(
                "DeclareMilestone",
                &dfe::DeclareMilestoneRequest { idempotency_key: new_id(), ..declare_ada.clone() },
                "",
            ),
            // Not a gateway command.
            encoded("PlaceHold", &defer_ada, ""),
        ]))
        .await
        .expect("batch")
        .into_inner();
    let failed = Code::FailedPrecondition as i32;
    assert_eq!(
        outcomes(&answer.results),
        [
            APPLIED,
            APPLIED,
            (failed, "PARTICIPANT_NOT_TRACKED", None),
            APPLIED,
            (failed, "ALREADY_DECLARED", None),
            (Code::InvalidArgument as i32, "INVALID_ARGUMENT", None)
        ]
    );
    let defer_path = format!("/api/v3/participants/ecf/{dfe_id}/defer");
    let expected =
        vec![("PUT".to_string(), defer_path), ("POST".to_string(), "/api/v3/participant-declarations".to_string())];
    assert_eq!(dfe_calls(stack, &ada).await, expected);
    assert_eq!(dfe_calls(stack, &stranger).await, []);

    // Sent again (a lost acknowledgement): duplicates, nothing decided twice.
    let again = gateway
        .apply_commands(dfe_batch(vec![
            encoded("TrackParticipant", &track_ada, ""),
            encoded("ReportStatusChange", &defer_ada, ""),
            encoded("DeclareMilestone", &declare_ada, ""),
        ]))
        .await
        .expect("repeat")
        .into_inner();
    assert_eq!(outcomes(&again.results), [DUPLICATE, DUPLICATE, DUPLICATE]);
    assert_eq!(dfe_calls(stack, &ada).await, expected);
}

async fn dfe_gateway_a_batch_holds_one_to_a_thousand_commands_from_a_service(stack: &Stack) {
    let mut gateway = stack.dfe_gateway(Some(&stack.token(Role::Service, None, &[]))).await;
    let status = gateway.apply_commands(dfe_batch(vec![])).await.expect_err("empty");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));
    let people: Vec<String> = (0..1001).map(|_| new_id()).collect();
    let too_many = people.iter().map(|p| encoded("TrackParticipant", &track(p, ""), "")).collect();
    let status = gateway.apply_commands(dfe_batch(too_many)).await.expect_err("too many");
    assert_eq!((status.code(), fields(&status)), (Code::InvalidArgument, vec!["commands".to_string()]));

    // Only the services send commands, batched or not.
    let mut admin = stack.dfe_gateway(Some(&stack.admin_token())).await;
    let status = admin
        .apply_commands(dfe_batch(vec![encoded("TrackParticipant", &track(&people[0], ""), "")]))
        .await
        .expect_err("admin");
    assert_eq!(status.code(), Code::PermissionDenied);
    // Nothing was tracked by the refused batches: a report is refused.
    let answer = gateway
        .apply_commands(dfe_batch(vec![encoded("ReportStatusChange", &defer(&people[0]), "")]))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(outcomes(&answer.results), [(Code::FailedPrecondition as i32, "PARTICIPANT_NOT_TRACKED", None)]);
}

on_both_backends!(
    content_a_batch_applies_in_order_with_a_result_per_command,
    content_a_refused_command_changes_nothing_and_does_not_stop_the_others,
    content_a_batch_holds_one_to_a_thousand_commands_from_a_service,
    content_each_command_of_a_batch_is_audited_as_its_own_rpc,
    payments_a_batch_applies_in_order_and_refusals_stay_with_their_command,
    payments_a_batch_holds_one_to_a_thousand_commands_from_a_service,
    dfe_gateway_a_batch_applies_in_order_and_refusals_stay_with_their_command,
    dfe_gateway_a_batch_holds_one_to_a_thousand_commands_from_a_service,
);
