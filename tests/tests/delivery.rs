//! Nothing lost between services: commands written with a change reach
//! content release and payments even when a target is down, the participant
//! service crashes with commands pending, an acknowledgement is lost, or two
//! replicas relay from one database, and each has its effect once.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::config::ServiceName;
use steplab_platform::db::{Database, DbError};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{World, date, register, registration, world};
use steplab_tests::{Backend, Stack, wait_until_delivered};

async fn ects(stack: &Stack, w: &World, count: u32, first_trn: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let p = register(
            stack,
            &w.dp1,
            registration(&w.school_a, ParticipantKind::Ect, &format!("{}", first_trn + n), date(2026, 9, 1)),
        )
        .await;
        ids.push(p.participant_id);
    }
    ids
}

async fn defer(client: &mut steplab_tests::Participants, id: &str, until: Option<Date>) {
    client
        .defer_participant(pb::DeferParticipantRequest {
            validate_only: false,
            participant_id: id.into(),
            reason: DeferralReason::LongTermSickness as i32,
            deferral_date: date(2026, 12, 1),
            expected_return_date: until,
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("deferred");
}

/// Asserts content release holds the participant's release, and payments
/// suspends their accrual, on 1 February 2027, with exactly one hold.
async fn assert_deferred_everywhere(stack: &Stack, id: &str, until: Option<Date>) {
    let service = stack.token(Role::Service, None, &[]);
    let state = stack
        .content(Some(&service))
        .await
        .get_release_state(content::GetReleaseStateRequest { participant_id: id.into(), as_of: date(2027, 2, 1) })
        .await
        .expect("release state")
        .into_inner();
    assert_eq!(state.active_holds.len(), 1, "one hold for {id}: {:?}", state.active_holds);
    assert_eq!(state.active_holds[0].kind, content::HoldKind::Deferral as i32);
    assert_eq!(state.active_holds[0].until, until, "the latest return date reached content release");
    let accrual = stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: id.into(), as_of: date(2027, 2, 1) })
        .await
        .expect("accrual")
        .into_inner();
    assert_eq!(accrual.state, payments::AccrualState::Suspended as i32, "{id}");
    assert_eq!(accrual.suspension.expect("suspension").until, until);
}

async fn d4_content_release_down_during_100_deferrals_gets_every_command_once_back_up(stack: &mut Stack) {
    let w = world(stack).await;
    let ids = ects(stack, &w, 100, 3_000_000).await;
    stack.stop_service(ServiceName::ContentRelease).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for id in &ids {
        defer(&mut client, id, date(2027, 6, 1)).await;
    }
    let admin = stack.admin_token();
    let waiting = stack
        .participants(Some(&admin))
        .await
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: String::new(),
            parked_only: false,
        })
        .await
        .expect("sync")
        .into_inner();
    assert!(waiting.pending >= 100, "the content commands wait: {}", waiting.pending);
    stack.restart_service(ServiceName::ContentRelease).await;
    wait_until_delivered(stack, Duration::from_secs(90)).await;
    for id in &ids {
        assert_deferred_everywhere(stack, id, date(2027, 6, 1)).await;
    }
}

async fn d4_a_lost_acknowledgement_redelivers_without_a_second_effect(stack: &mut Stack) {
    let w = world(stack).await;
    let ids = ects(stack, &w, 3, 3_100_000).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for id in &ids {
        defer(&mut client, id, date(2027, 6, 1)).await;
    }
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    // As if every acknowledgement had been lost on the way back.
    let db = Database::open(&stack.config.participant.database, &steplab_participant::MIGRATIONS).await.expect("db");
    let forgotten = db
        .write(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query(
                "UPDATE outbox SET delivered_at = NULL, attempts = 0, next_attempt_at = '2000-01-01 00:00:00'",
            )
            .execute(conn)
            .map_err(DbError::from)
        })
        .await
        .expect("forget deliveries");
    assert!(forgotten >= 12, "{forgotten}");
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    for id in &ids {
        assert_deferred_everywhere(stack, id, date(2027, 6, 1)).await;
    }
}

async fn d4_a_crash_with_commands_pending_loses_nothing(stack: &mut Stack) {
    let w = world(stack).await;
    let ids = ects(stack, &w, 10, 3_200_000).await;
    stack.stop_service(ServiceName::Payments).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for id in &ids {
        defer(&mut client, id, date(2027, 5, 1)).await;
    }
    stack.kill_service(ServiceName::Participant).await;
    stack.restart_service(ServiceName::Payments).await;
    stack.restart_service(ServiceName::Participant).await;
    wait_until_delivered(stack, Duration::from_secs(60)).await;
    for id in &ids {
        assert_deferred_everywhere(stack, id, date(2027, 5, 1)).await;
    }
}

async fn d6_changes_in_quick_succession_arrive_in_order(stack: &mut Stack) {
    let w = world(stack).await;
    let ids = ects(stack, &w, 5, 3_300_000).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for id in &ids {
        defer(&mut client, id, date(2027, 3, 1)).await;
        for month in [4, 5, 6, 7] {
            client
                .change_return_date(pb::ChangeReturnDateRequest {
                    validate_only: false,
                    participant_id: id.clone(),
                    expected_return_date: date(2027, month, 1),
                    idempotency_key: String::new(),
                })
                .await
                .expect("changed");
        }
    }
    wait_until_delivered(stack, Duration::from_secs(60)).await;
    for id in &ids {
        assert_deferred_everywhere(stack, id, date(2027, 7, 1)).await;
    }
}

async fn check(stack: &Stack) -> pb::CheckConsistencyResponse {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .check_consistency(pb::CheckConsistencyRequest::default())
        .await
        .expect("check")
        .into_inner()
}

async fn ops_the_consistency_check_tells_drift_from_delivery_lag(stack: &mut Stack) {
    let w = world(stack).await;
    let ids = ects(stack, &w, 3, 3_600_000).await;
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    let clean = check(stack).await;
    assert_eq!(clean.checked_count, 3);
    assert!(clean.drifted.is_empty() && clean.in_flight.is_empty(), "{clean:?}");

    // A deferral while content release is down: lag, not drift.
    stack.stop_service(ServiceName::ContentRelease).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    defer(&mut stack.participants(Some(&lead)).await, &ids[0], date(2027, 6, 1)).await;
    stack.restart_service(ServiceName::ContentRelease).await;
    // Payments has the suspension at once; content release may still be
    // catching up, which the check must not call drift.
    let lagging = check(stack).await;
    assert!(lagging.drifted.is_empty(), "{lagging:?}");
    wait_until_delivered(stack, Duration::from_secs(30)).await;

    // Someone revokes access behind the participant service's back: drift.
    let service = stack.token(Role::Service, None, &[]);
    stack
        .content(Some(&service))
        .await
        .revoke_access(content::RevokeAccessRequest {
            idempotency_key: "rogue-1".into(),
            participant_id: ids[1].clone(),
            effective_date: date(2026, 11, 1),
        })
        .await
        .expect("rogue revoke");
    let drifted = check(stack).await;
    assert_eq!(drifted.drifted.len(), 1, "{drifted:?}");
    assert_eq!(drifted.drifted[0].participant_id, ids[1]);
    assert!(drifted.drifted[0].differences[0].contains("revoked"), "{:?}", drifted.drifted[0].differences);
    let lead_err = stack
        .participants(Some(&lead))
        .await
        .check_consistency(pb::CheckConsistencyRequest::default())
        .await
        .expect_err("admin only");
    assert_eq!(lead_err.code(), tonic::Code::PermissionDenied);
}

steplab_tests::on_both_backends_mut!(
    ops_the_consistency_check_tells_drift_from_delivery_lag,
    d4_content_release_down_during_100_deferrals_gets_every_command_once_back_up,
    d4_a_lost_acknowledgement_redelivers_without_a_second_effect,
    d4_a_crash_with_commands_pending_loses_nothing,
    d6_changes_in_quick_succession_arrive_in_order,
);

async fn parked_commands_wait_for_an_admin_and_then_arrive(backend: Backend) {
    let Some(mut stack) = Stack::start_with(
        backend,
        steplab_tests::TODAY,
        &[("STEPLAB_RELAY_MAX_ATTEMPTS", "3"), ("STEPLAB_RELAY_MAX_BACKOFF_MS", "50")],
    )
    .await
    else {
        return;
    };
    let w = world(&stack).await;
    stack.stop_service(ServiceName::ContentRelease).await;
    let ids = ects(&stack, &w, 1, 3_400_000).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    defer(&mut stack.participants(Some(&lead)).await, &ids[0], date(2027, 6, 1)).await;
    let admin = stack.admin_token();
    let mut ops = stack.participants(Some(&admin)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let parked = loop {
        let status = ops
            .get_sync_status(pb::GetSyncStatusRequest {
                page_size: 0,
                page_token: String::new(),
                participant_id: String::new(),
                parked_only: true,
            })
            .await
            .expect("sync")
            .into_inner();
        if status.parked > 0 {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing was parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first = &parked.commands[0];
    assert_eq!((first.target.as_str(), first.rpc.as_str(), first.attempts), ("content-release", "EnrolLearner", 3));
    assert!(first.last_error.contains("content-release"), "{}", first.last_error);
    stack.restart_service(ServiceName::ContentRelease).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = ops
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: String::new(),
            parked_only: true,
        })
        .await
        .expect("sync")
        .into_inner();
    assert!(still.parked > 0, "a parked command waits for an operator");
    let lead_err = stack
        .participants(Some(&lead))
        .await
        .retry_parked_commands(pb::RetryParkedCommandsRequest::default())
        .await
        .expect_err("only admins retry");
    assert_eq!(lead_err.code(), tonic::Code::PermissionDenied);
    let retried =
        ops.retry_parked_commands(pb::RetryParkedCommandsRequest::default()).await.expect("retry").into_inner();
    assert!(retried.retried >= 1);
    wait_until_delivered(&stack, Duration::from_secs(30)).await;
    assert_deferred_everywhere(&stack, &ids[0], date(2027, 6, 1)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_commands_wait_for_an_admin_and_then_arrive_sqlite() {
    parked_commands_wait_for_an_admin_and_then_arrive(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_commands_wait_for_an_admin_and_then_arrive_postgres() {
    parked_commands_wait_for_an_admin_and_then_arrive(Backend::Postgres).await;
}

/// Two participant replicas on one PostgreSQL database relay at once: every
/// command is delivered, in order per participant, with one effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_two_relays_on_one_postgres_database_deliver_everything_once_in_order() {
    let Some(mut stack) = Stack::start(Backend::Postgres).await else { return };
    let w = world(&stack).await;
    let ids = ects(&stack, &w, 20, 3_500_000).await;
    let replica = stack.start_participant_replica().await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut first = stack.participants(Some(&lead)).await;
    let mut second = stack.participants_at(replica, Some(&lead)).await;
    for (n, id) in ids.iter().enumerate() {
        let client = if n % 2 == 0 { &mut first } else { &mut second };
        defer(client, id, date(2027, 3, 1)).await;
        let other = if n % 2 == 0 { &mut second } else { &mut first };
        other
            .change_return_date(pb::ChangeReturnDateRequest {
                validate_only: false,
                participant_id: id.clone(),
                expected_return_date: date(2027, 8, 2),
                idempotency_key: String::new(),
            })
            .await
            .expect("changed on the other replica");
    }
    wait_until_delivered(&stack, Duration::from_secs(60)).await;
    for id in &ids {
        assert_deferred_everywhere(&stack, id, date(2027, 8, 2)).await;
    }
    stack.stop().await;
}

/// Content release behind a proxy that refuses one connection in three and
/// cuts the rest within 150 ms: every command still arrives, once.
async fn d4_a_target_failing_a_share_of_calls_still_gets_everything_once(backend: Backend) {
    let proxy = steplab_tests::chaos::ChaosProxy::start(3, Duration::from_millis(150)).await;
    let url = format!("http://{}", proxy.addr);
    let Some(stack) = Stack::start_with(
        backend,
        steplab_tests::TODAY,
        &[("STEPLAB_CONTENT_URL", url.as_str()), ("STEPLAB_RELAY_MAX_BACKOFF_MS", "100")],
    )
    .await
    else {
        return;
    };
    proxy.point_at(stack.content_addr);
    let w = world(&stack).await;
    let ids = ects(&stack, &w, 20, 3_700_000).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for id in &ids {
        defer(&mut client, id, date(2027, 3, 1)).await;
        client
            .change_return_date(pb::ChangeReturnDateRequest {
                validate_only: false,
                participant_id: id.clone(),
                expected_return_date: date(2027, 5, 3),
                idempotency_key: String::new(),
            })
            .await
            .expect("changed");
    }
    wait_until_delivered(&stack, Duration::from_secs(120)).await;
    let admin = stack.admin_token();
    let status = stack
        .participants(Some(&admin))
        .await
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: ids[0].clone(),
            parked_only: false,
        })
        .await
        .expect("sync")
        .into_inner();
    let retried: i32 = status.commands.iter().map(|c| c.attempts - 1).sum();
    eprintln!("chaos: {retried} extra attempts for the first participant's commands");
    for id in &ids {
        assert_deferred_everywhere(&stack, id, date(2027, 5, 3)).await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_a_target_failing_a_share_of_calls_still_gets_everything_once_sqlite() {
    d4_a_target_failing_a_share_of_calls_still_gets_everything_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_a_target_failing_a_share_of_calls_still_gets_everything_once_postgres() {
    d4_a_target_failing_a_share_of_calls_still_gets_everything_once(Backend::Postgres).await;
}
