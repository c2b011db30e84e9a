//! Issue 18: a change is accepted in a few SQL statements. One deferral of an
//! ECT without a mentor and one registration are counted statement by
//! statement (diesel's instrumentation, over real gRPC) on SQLite and
//! PostgreSQL, and must stay within their budgets, so the cost of accepting
//! a change cannot creep back up unnoticed.

use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, registration, world};
use steplab_tests::{Backend, Stack, statements};

/// The statements of a deferral: BEGIN; the participant, their history and
/// DfE id; approved long deferrals; the version-checked update; the events;
/// the outbox; the audit entry; COMMIT. (Before issue 18's work: 25 on
/// SQLite, 27 on PostgreSQL, with the pool's check-out `SELECT 1`, which is
/// no longer run; 9 while the DfE id shown was read again.)
const DEFERRAL_SQLITE: usize = 8;
/// The same on PostgreSQL: the event order no longer takes a lock.
const DEFERRAL_POSTGRES: usize = 8;
/// A registration: BEGIN; the school; the TRN; the participant row; the
/// version-checked update; the event; the outbox; the audit entry; COMMIT.
/// (Before: 24 on SQLite, 25 on PostgreSQL.)
const REGISTRATION_SQLITE: usize = 9;
/// The same on PostgreSQL.
const REGISTRATION_POSTGRES: usize = 9;

/// Registers an ECT and defers them, counting both calls' statements.
async fn registration_and_deferral(stack: &Stack) -> (Vec<String>, Vec<String>) {
    let w = world(stack).await;
    let mut lead = stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp1]))).await;
    let run = uuid::Uuid::now_v7().simple().to_string();

    let register_id = format!("register-{run}");
    statements::watch(&register_id);
    let ect = lead
        .register_participant(statements::with_request_id(
            registration(&w.school_a, ParticipantKind::Ect, "1234567", date(2026, 9, 1)),
            &register_id,
        ))
        .await
        .expect("register")
        .into_inner()
        .participant
        .expect("participant")
        .participant_id;
    let registered = statements::taken_and_printed("RegisterParticipant", &register_id);

    let defer_id = format!("defer-{run}");
    statements::watch(&defer_id);
    let deferred = lead
        .defer_participant(statements::with_request_id(
            pb::DeferParticipantRequest {
                participant_id: ect,
                reason: DeferralReason::LongTermSickness as i32,
                deferral_date: date(2026, 12, 1),
                expected_return_date: date(2027, 3, 1),
                ..Default::default()
            },
            &defer_id,
        ))
        .await
        .expect("defer")
        .into_inner();
    assert!(deferred.effects.is_some_and(|e| !e.events.is_empty() && !e.commands.is_empty()));
    (registered, statements::taken_and_printed("DeferParticipant", &defer_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferral_and_a_registration_stay_within_their_statement_budgets_on_sqlite() {
    statements::install();
    let stack = Stack::start(Backend::Sqlite).await.expect("sqlite stack");
    let (registered, deferred) = registration_and_deferral(&stack).await;
    stack.stop().await;
    assert!(deferred.len() <= DEFERRAL_SQLITE, "DeferParticipant ran {} statements", deferred.len());
    assert!(registered.len() <= REGISTRATION_SQLITE, "RegisterParticipant ran {} statements", registered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferral_and_a_registration_stay_within_their_statement_budgets_on_postgres() {
    statements::install();
    let Some(stack) = Stack::start(Backend::Postgres).await else { return };
    let (registered, deferred) = registration_and_deferral(&stack).await;
    stack.stop().await;
    assert!(deferred.len() <= DEFERRAL_POSTGRES, "DeferParticipant ran {} statements", deferred.len());
    assert!(registered.len() <= REGISTRATION_POSTGRES, "RegisterParticipant ran {} statements", registered.len());
}
