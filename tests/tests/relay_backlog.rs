//! Issue 14: the relay's targets and groups are independent. A target that is
//! down, hanging, backing off or parked never delays another target's
//! commands, nor another participant's, however large its backlog; and once
//! it is back, the backlog arrives complete and in order per group.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use diesel::prelude::*;
use prost::Message;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use steplab_platform::auth::Role;
use steplab_platform::config::ServiceName;
use steplab_platform::db::{Database, DbError};
use steplab_platform::outbox::{self, NewCommand, OutboxRow, outbox as outbox_table};
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{World, date, register, registration, world};
use steplab_tests::{Backend, Stack, wait_until_delivered};

/// Participants in the large payments backlog, each with
/// [`COMMANDS_PER_GROUP`] commands: 20,000 commands in all.
const BACKLOG_GROUPS: usize = 5_000;
/// Participants in the backlog that is drained: 2,000 commands. Payments
/// applies about 150-190 commands a second in a debug build (each recomputes
/// the accrual), so draining 20,000 took 108-137 s; order per group does not
/// depend on the backlog's size.
const DRAINED_GROUPS: usize = 500;
const COMMANDS_PER_GROUP: usize = 4;
/// Generous: the relay's target is well under a second; the old relay never
/// got there while the backlog lasted.
const NOT_BLOCKED_WITHIN: Duration = Duration::from_secs(15);
const PAYMENTS_RPC: &str = "/steplab.payments.v1.PaymentsService/";

async fn participant_db(stack: &Stack) -> Database {
    Database::open(&stack.config.participant.database, &steplab_participant::MIGRATIONS).await.expect("participant db")
}

/// Registers an ECT and returns how long content release took to know them.
async fn time_to_reach_content_release(stack: &Stack, w: &World, trn: u32) -> (String, Duration) {
    let started = Instant::now();
    let p =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, &trn.to_string(), date(2026, 9, 1)))
            .await;
    let service = stack.token(Role::Service, None, &[]);
    let mut client = stack.content(Some(&service)).await;
    loop {
        let state = client
            .get_release_state(content::GetReleaseStateRequest {
                participant_id: p.participant_id.clone(),
                as_of: date(2027, 1, 4),
            })
            .await;
        match state {
            Ok(_) => return (p.participant_id, started.elapsed()),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => panic!("GetReleaseState failed: {s:?}"),
        }
        assert!(
            started.elapsed() < NOT_BLOCKED_WITHIN,
            "{} was not enrolled in content release within {NOT_BLOCKED_WITHIN:?}: blocked behind the payments backlog",
            p.participant_id
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The EnrolPayee command the participant service wrote for `participant_id`,
/// as a template for the backlog (a valid schedule, school and partner).
async fn enrol_payee_of(db: &Database, participant_id: &str) -> payments::EnrolPayeeRequest {
    let id = participant_id.to_owned();
    let rows = db.read(move |conn| outbox::for_participant(conn, &id).map_err(DbError::from)).await.expect("outbox");
    let row = rows.iter().find(|r| r.rpc() == "EnrolPayee").expect("an EnrolPayee command");
    payments::EnrolPayeeRequest::decode(row.payload.as_slice()).expect("EnrolPayee payload")
}

/// A participant's payments commands that only work in order: enrolled, then
/// one suspension changed twice; the last `until` is 1 March 2027.
fn backlog_group(template: &payments::EnrolPayeeRequest) -> Vec<NewCommand> {
    let participant_id = uuid::Uuid::now_v7().to_string();
    let command = |rpc: &str, payload: Vec<u8>, command_id: String| NewCommand {
        command_id,
        participant_id: participant_id.clone(),
        target: "payments".into(),
        method: format!("{PAYMENTS_RPC}{rpc}"),
        payload,
        request_id: None,
    };
    let enrol_id = uuid::Uuid::now_v7().to_string();
    let enrol = payments::EnrolPayeeRequest {
        idempotency_key: enrol_id.clone(),
        participant_id: participant_id.clone(),
        ..template.clone()
    };
    let mut commands = vec![command("EnrolPayee", enrol.encode_to_vec(), enrol_id)];
    for until in [date(2027, 1, 4), date(2027, 2, 1), date(2027, 3, 1)] {
        let command_id = uuid::Uuid::now_v7().to_string();
        let suspend = payments::SuspendAccrualRequest {
            idempotency_key: command_id.clone(),
            participant_id: participant_id.clone(),
            suspension_id: "backlog".into(),
            start_date: date(2026, 12, 1),
            until,
        };
        commands.push(command("SuspendAccrual", suspend.encode_to_vec(), command_id));
    }
    commands
}

/// Writes the backlog straight into the outbox in one transaction, as
/// changes would have over a long outage.
async fn enqueue_backlog(db: &Database, template: &payments::EnrolPayeeRequest, groups: usize) -> Vec<String> {
    let groups: Vec<Vec<NewCommand>> = (0..groups).map(|_| backlog_group(template)).collect();
    let commands = groups.len() * COMMANDS_PER_GROUP;
    let participant_ids = groups.iter().map(|g| g[0].participant_id.clone()).collect();
    let started = Instant::now();
    db.write(move |conn| {
        let now = chrono::Utc::now().naive_utc();
        for command in groups.iter().flatten() {
            outbox::enqueue(conn, command, now)?;
        }
        Ok::<_, DbError>(())
    })
    .await
    .expect("backlog enqueued");
    eprintln!("backlog: {commands} commands enqueued in {:?}", started.elapsed());
    participant_ids
}

/// Parks each backlog group's head, as too many failed attempts would: the
/// commands behind it wait in their groups.
async fn park_backlog_heads(db: &Database, backlog: &[String]) -> usize {
    let backlog = backlog.to_vec();
    db.write(move |conn| {
        let now = chrono::Utc::now().naive_utc();
        let mut parked = 0;
        for chunk in backlog.chunks(500) {
            let heads: Vec<i64> = outbox_table::table
                .filter(outbox_table::participant_id.eq_any(chunk))
                .filter(outbox_table::method.eq(format!("{PAYMENTS_RPC}EnrolPayee")))
                .select(outbox_table::id)
                .load(conn)?;
            parked += diesel::update(outbox_table::table.filter(outbox_table::id.eq_any(&heads)))
                .set((
                    outbox_table::parked_at.eq(Some(now)),
                    outbox_table::attempts.eq(50),
                    outbox_table::last_error.eq(Some("payments EnrolPayee: target unavailable (test)")),
                ))
                .execute(conn)?;
        }
        Ok::<_, DbError>(parked)
    })
    .await
    .expect("backlog heads parked")
}

async fn sync_status(stack: &Stack) -> pb::GetSyncStatusResponse {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: String::new(),
            parked_only: false,
        })
        .await
        .expect("sync status")
        .into_inner()
}

async fn accrual(stack: &Stack, participant_id: &str) -> Result<payments::GetAccrualResponse, tonic::Status> {
    let service = stack.token(Role::Service, None, &[]);
    stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: participant_id.into(), as_of: date(2027, 1, 15) })
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts each backlog group was delivered whole and one command after the
/// other: a group's next command is only claimed once the one before it is
/// recorded as delivered, so delivery times strictly increase by id.
async fn assert_delivered_in_order(db: &Database, backlog: &[String]) {
    let rows: Vec<OutboxRow> = db
        .read(|conn| {
            outbox_table::table
                .filter(outbox_table::target.eq("payments"))
                .order(outbox_table::id)
                .select(OutboxRow::as_select())
                .load(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("payments commands");
    let mut groups: HashMap<&str, Vec<&OutboxRow>> = HashMap::new();
    for row in &rows {
        groups.entry(row.participant_id.as_str()).or_default().push(row);
    }
    for participant_id in backlog {
        let group = &groups[participant_id.as_str()];
        assert_eq!(group.len(), COMMANDS_PER_GROUP, "{participant_id}");
        for pair in group.windows(2) {
            let (before, after) = (pair[0].delivered_at, pair[1].delivered_at);
            assert!(
                before.is_some() && after.is_some() && before < after,
                "{participant_id}: command {} delivered at {before:?}, the next one {} at {after:?}",
                pair[0].id,
                pair[1].id
            );
        }
    }
}

/// Payments down, its first registration's EnrolPayee as the backlog's template.
async fn payments_down_with_a_template(stack: &mut Stack) -> (World, Database, payments::EnrolPayeeRequest) {
    let w = world(stack).await;
    stack.stop_service(ServiceName::Payments).await;
    let db = participant_db(stack).await;
    let (first, _) = time_to_reach_content_release(stack, &w, 8_100_000).await;
    let template = enrol_payee_of(&db, &first).await;
    (w, db, template)
}

async fn retry_every_parked_command(stack: &Stack) -> i64 {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .retry_parked_commands(pb::RetryParkedCommandsRequest::default())
        .await
        .expect("retry")
        .into_inner()
        .retried
}

async fn a_large_payments_backlog_delays_no_other_target_or_participant(stack: &mut Stack) {
    let (w, db, template) = payments_down_with_a_template(stack).await;
    let backlog = enqueue_backlog(&db, &template, BACKLOG_GROUPS).await;

    // Payments is down and its 20,000 commands are due or backing off.
    let (_, took) = time_to_reach_content_release(stack, &w, 8_100_001).await;
    eprintln!("{:?}: a registration reached content release in {took:?} behind a payments backlog", stack.backend);

    // The backlog's heads are parked and the rest wait behind them. The relay
    // is stopped meanwhile so no attempt in flight un-parks a head.
    stack.stop_service(ServiceName::Participant).await;
    assert_eq!(park_backlog_heads(&db, &backlog).await, BACKLOG_GROUPS);
    stack.restart_service(ServiceName::Participant).await;
    let (last, took) = time_to_reach_content_release(stack, &w, 8_100_002).await;
    eprintln!(
        "{:?}: a registration reached content release in {took:?} behind a parked payments backlog",
        stack.backend
    );

    // Payments is back: a new participant's payee arrives while the parked
    // backlog still holds back its own groups, and nothing else.
    stack.restart_service(ServiceName::Payments).await;
    let started = Instant::now();
    while accrual(stack, &last).await.is_err() {
        assert!(
            started.elapsed() < NOT_BLOCKED_WITHIN,
            "{last} was not enrolled in payments: blocked by parked groups"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{:?}: a payee reached payments in {:?} beside the parked backlog", stack.backend, started.elapsed());
    let status = sync_status(stack).await;
    assert_eq!(status.parked, BACKLOG_GROUPS as i64, "the parked heads wait for an operator");
    assert!(status.pending >= (BACKLOG_GROUPS * (COMMANDS_PER_GROUP - 1)) as i64, "their groups wait behind them");
}

async fn a_payments_backlog_arrives_whole_and_in_order_once_payments_is_back(stack: &mut Stack) {
    let (_, db, template) = payments_down_with_a_template(stack).await;
    let backing_off = enqueue_backlog(&db, &template, DRAINED_GROUPS / 2).await;
    let parked = enqueue_backlog(&db, &template, DRAINED_GROUPS / 2).await;
    stack.stop_service(ServiceName::Participant).await;
    assert_eq!(park_backlog_heads(&db, &parked).await, DRAINED_GROUPS / 2);
    stack.restart_service(ServiceName::Participant).await;
    stack.restart_service(ServiceName::Payments).await;
    let started = Instant::now();
    // The parked groups wait for an operator; everything else arrives.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sync_status(stack).await;
        if status.pending == ((DRAINED_GROUPS / 2) * (COMMANDS_PER_GROUP - 1)) as i64 {
            assert_eq!(status.parked, (DRAINED_GROUPS / 2) as i64);
            break;
        }
        assert!(Instant::now() < deadline, "the unparked backlog did not drain: {} pending", status.pending);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_delivered_in_order(&db, &backing_off).await;
    assert_eq!(retry_every_parked_command(stack).await, (DRAINED_GROUPS / 2) as i64);
    wait_until_delivered(stack, Duration::from_secs(60)).await;
    let drained = started.elapsed();
    let commands = DRAINED_GROUPS * COMMANDS_PER_GROUP;
    eprintln!(
        "{:?}: {commands} backlog commands delivered in {drained:?} ({:.0}/s)",
        stack.backend,
        commands as f64 / drained.as_secs_f64()
    );
    let backlog: Vec<String> = backing_off.into_iter().chain(parked).collect();
    assert_delivered_in_order(&db, &backlog).await;
    for participant_id in backlog.iter().step_by(DRAINED_GROUPS / 10) {
        let accrual = accrual(stack, participant_id).await.expect("enrolled from the backlog");
        assert_eq!(accrual.state, payments::AccrualState::Suspended as i32, "{participant_id}");
        assert_eq!(
            accrual.suspension.expect("suspension").until,
            date(2027, 3, 1),
            "{participant_id}: the last change won"
        );
    }
}

steplab_tests::on_both_backends_mut!(
    a_large_payments_backlog_delays_no_other_target_or_participant,
    a_payments_backlog_arrives_whole_and_in_order_once_payments_is_back,
);

/// Accepts connections and never answers, as a hung target would.
struct Blackhole {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    async fn start() -> Blackhole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Blackhole { addr, task }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Payments hangs every call until the relay's 5 s deadline: content
/// release's commands do not wait for those calls.
async fn a_hanging_target_never_holds_the_other_targets_deliveries(backend: Backend) {
    let hung = Blackhole::start().await;
    let url = format!("http://{}", hung.addr);
    let Some(stack) = Stack::start_with(backend, steplab_tests::TODAY, &[("STEPLAB_PAYMENTS_URL", url.as_str())]).await
    else {
        return;
    };
    let w = world(&stack).await;
    // The first registration's EnrolPayee is now hanging in the relay.
    time_to_reach_content_release(&stack, &w, 8_200_000).await;
    let mut slowest = Duration::ZERO;
    for trn in 8_200_001..8_200_004 {
        let (_, took) = time_to_reach_content_release(&stack, &w, trn).await;
        slowest = slowest.max(took);
    }
    eprintln!("{backend:?}: registrations reached content release in {slowest:?} at most beside a hanging payments");
    // A cycle held by a hanging call would take the whole 5 s deadline.
    assert!(slowest < Duration::from_secs(3), "content release waited {slowest:?} for payments' deadline");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_never_holds_the_other_targets_deliveries_sqlite() {
    a_hanging_target_never_holds_the_other_targets_deliveries(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_never_holds_the_other_targets_deliveries_postgres() {
    a_hanging_target_never_holds_the_other_targets_deliveries(Backend::Postgres).await;
}

/// A command for a target with no configured address has its own lane: it
/// is parked for an operator, as before, and holds up no configured target.
async fn a_command_for_an_unknown_target_is_parked_and_blocks_no_one(stack: &mut Stack) {
    let w = world(stack).await;
    let db = participant_db(stack).await;
    let stray = NewCommand {
        command_id: uuid::Uuid::now_v7().to_string(),
        participant_id: uuid::Uuid::now_v7().to_string(),
        target: "nowhere".into(),
        method: "/steplab.nowhere.v1.Nowhere/Anything".into(),
        payload: Vec::new(),
        request_id: None,
    };
    let command_id = stray.command_id.clone();
    db.write(move |conn| Ok::<_, DbError>(outbox::enqueue(conn, &stray, chrono::Utc::now().naive_utc())?))
        .await
        .expect("stray command enqueued");
    time_to_reach_content_release(stack, &w, 8_300_000).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let parked = loop {
        let id = command_id.clone();
        let row = db
            .read(move |conn| {
                outbox_table::table
                    .filter(outbox_table::command_id.eq(id))
                    .select(OutboxRow::as_select())
                    .first(conn)
                    .map_err(DbError::from)
            })
            .await
            .expect("stray command");
        if row.parked_at.is_some() {
            break row;
        }
        assert!(Instant::now() < deadline, "the stray command was not parked: {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(parked.attempts, outbox::REFUSED_ATTEMPTS);
    assert!(parked.last_error.as_deref().is_some_and(|e| e.contains("no address configured for target nowhere")));
}

steplab_tests::on_both_backends_mut!(a_command_for_an_unknown_target_is_parked_and_blocks_no_one);
