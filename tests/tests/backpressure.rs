//! Issue 18, item 3: backpressure bounds the lag. While the participant
//! service's relay is further behind than `STEPLAB_BACKPRESSURE_MAX_LAG_MS`
//! (a flood it cannot keep up with), changes are refused with
//! RESOURCE_EXHAUSTED DELIVERY_BACKLOG and a RetryInfo, and accepted again
//! once it has caught up; dry runs, reads and the operator's
//! RetryParkedCommands are never refused for it. The lag counts commands
//! waiting for the relay and commands on their way to a slow receiver. A
//! few commands on their way (`STEPLAB_BACKPRESSURE_MIN_BACKLOG`, 30) are
//! never refused for, however late: that is the receiver's latency. A
//! target that is down does not count: the outbox absorbs the outage and
//! changes go on. SQLite: the
//! signal is the relay's own and the same on both backends.

// Test helpers fail the test that called them.
#![allow(clippy::panic)]

use std::time::{Duration, Instant};
use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{World, registration, world};
use steplab_tests::slow_target::SlowTarget;
use steplab_tests::{Backend, Stack, TODAY};
use tonic::Code;
use tonic_types::StatusExt;

/// Each delivery to the slow content release takes this long, so a second
/// registration's command waits that long behind the first's.
const SLOW_DELIVERY: Duration = Duration::from_secs(2);
/// Far below [`SLOW_DELIVERY`], far above a healthy relay's lag.
const TINY_BOUND_MS: &str = "100";
/// Generous for a debug build on a shared machine.
const WITHIN: Duration = Duration::from_secs(20);

async fn start(settings: &[(&str, &str)]) -> (Stack, World) {
    let mut settings = settings.to_vec();
    // Only backpressure may refuse here, not the per-caller rate limit.
    settings.push(("STEPLAB_RATE_LIMIT_PER_MINUTE", "0"));
    let stack = Stack::start_with(Backend::Sqlite, TODAY, &settings).await.expect("SQLite stack");
    let w = world(&stack).await;
    (stack, w)
}

fn ect(w: &World, trn: u32) -> pb::RegisterParticipantRequest {
    registration(&w.school_a, ParticipantKind::Ect, &trn.to_string(), None)
}

async fn try_register(stack: &Stack, w: &World, request: pb::RegisterParticipantRequest) -> Result<(), tonic::Status> {
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    stack.participants(Some(&lead)).await.register_participant(request).await.map(|_| ())
}

async fn registered(stack: &Stack, w: &World) -> usize {
    let admin = stack.admin_token();
    let list = pb::ListParticipantsRequest { school_id: w.school_a.clone(), page_size: 500, ..Default::default() };
    stack.participants(Some(&admin)).await.list_participants(list).await.expect("list").into_inner().participants.len()
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn retry_delay(status: &tonic::Status) -> Duration {
    status.get_error_details().retry_info().and_then(|r| r.retry_delay).expect("a RetryInfo")
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_wait_while_the_relay_is_behind_and_are_accepted_once_it_catches_up() {
    let content = SlowTarget::start(SLOW_DELIVERY).await;
    let (stack, w) = start(&[
        ("STEPLAB_CONTENT_URL", &content.url()),
        ("STEPLAB_BACKPRESSURE_MAX_LAG_MS", TINY_BOUND_MS),
        ("STEPLAB_BACKPRESSURE_MIN_BACKLOG", "2"),
    ])
    .await;
    // The first registrations' EnrolLearners are on their way (2 s each):
    // once more than two are and the oldest is older than the bound, the
    // relay is behind. Until then changes are accepted.
    let started = Instant::now();
    let mut trn = 1_000_001;
    let refused = loop {
        match try_register(&stack, &w, ect(&w, trn)).await {
            Ok(()) => trn += 1,
            Err(status) => break status,
        }
        assert!(started.elapsed() < WITHIN, "never refused within {WITHIN:?}: the relay was never seen behind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let accepted = (trn - 1_000_001) as usize;
    assert!(accepted >= 1, "the first change went through while the relay was not behind");
    let refused_one = ect(&w, trn);
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "DELIVERY_BACKLOG", "{refused:?}");
    let delay = retry_delay(&refused);
    assert!(
        (steplab_platform::error::BACKLOG_RETRY_MIN..=steplab_platform::error::BACKLOG_RETRY_MAX).contains(&delay),
        "retry after about the lag, spread at random, 50 ms to 5 s: {delay:?}"
    );
    assert!(refused.message().contains("nothing was changed"), "{}", refused.message());
    assert_eq!(registered(&stack, &w).await, accepted, "the refused registration changed nothing");

    // While it is refused: reads, the operator's recovery RPC and a dry run
    // of the same change all answer.
    let admin = stack.admin_token();
    let mut operator = stack.participants(Some(&admin)).await;
    let status = operator.get_sync_status(pb::GetSyncStatusRequest::default()).await.expect("a read").into_inner();
    assert!(status.pending >= 1, "the backlog is there to see: {status:?}");
    operator
        .retry_parked_commands(pb::RetryParkedCommandsRequest::default())
        .await
        .expect("RetryParkedCommands exists to drain the backlog: never refused for it");
    // Last: it asks the slow content release for its outlook, which takes
    // as long as a delivery.
    let mut dry_run = refused_one.clone();
    dry_run.validate_only = true;
    try_register(&stack, &w, dry_run).await.expect("a dry run is never refused: it sends nothing");

    // Retrying after the delay it was given, the change goes through once
    // the relay has caught up.
    let mut retry_after = delay;
    loop {
        tokio::time::sleep(retry_after).await;
        match try_register(&stack, &w, refused_one.clone()).await {
            Ok(()) => break,
            Err(status) if reason(&status) == "DELIVERY_BACKLOG" => retry_after = retry_delay(&status),
            Err(status) => panic!("unexpected {status:?}"),
        }
        assert!(started.elapsed() < WITHIN, "still refused after {WITHIN:?}: the relay never caught up");
    }
    assert_eq!(registered(&stack, &w).await, accepted + 1);
    // Shed like the other RESOURCE_EXHAUSTED answers: a write per refusal
    // would add to the load that caused it.
    let audit = pb::ListAuditEntriesRequest {
        actor_sub: format!("test-{}", Role::EcfLead.as_str()),
        page_size: 1000,
        ..Default::default()
    };
    let entries = operator.list_audit_entries(audit).await.expect("audit").into_inner().entries;
    assert!(
        entries.iter().all(|e| e.outcome != "RESOURCE_EXHAUSTED"),
        "refusals for the backlog are not audited: {entries:?}"
    );
    assert!(
        entries.iter().filter(|e| e.rpc == "RegisterParticipant" && e.outcome == "OK").count() > accepted,
        "{entries:?}"
    );
    // Changes are admitted again once every late command has arrived (a
    // command on its way counts with its age until it is recorded).
    assert!(content.answered() >= accepted, "the relay caught up by delivering, not by giving up");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_minimum_backlog_one_delivery_slower_than_the_bound_refuses_changes_while_it_is_on_its_way() {
    // One command at a time: nothing ever waits to be claimed (a free claim
    // loop takes each at once), but each takes 2 s to arrive. The lag is
    // the time from acceptance to arrival, so with no backlog spared the
    // second change, made while the first's command is on its way and older
    // than the bound, is refused.
    let content = SlowTarget::start(SLOW_DELIVERY).await;
    let (stack, w) = start(&[
        ("STEPLAB_CONTENT_URL", &content.url()),
        ("STEPLAB_BACKPRESSURE_MAX_LAG_MS", TINY_BOUND_MS),
        ("STEPLAB_BACKPRESSURE_MIN_BACKLOG", "0"),
    ])
    .await;
    try_register(&stack, &w, ect(&w, 1_000_001)).await.expect("nothing is behind yet");
    // Past the bound, well inside the first delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(content.answered(), 0, "the first EnrolLearner is still on its way");
    let refused = try_register(&stack, &w, ect(&w, 1_000_002)).await.expect_err("refused while a command is late");
    assert_eq!((refused.code(), reason(&refused)), (Code::ResourceExhausted, "DELIVERY_BACKLOG".to_owned()));
    assert!(retry_delay(&refused) >= Duration::from_millis(100), "{refused:?}");
    assert_eq!(registered(&stack, &w).await, 1, "the refused registration changed nothing");
    // Once it has arrived and is recorded, changes are accepted again.
    let started = Instant::now();
    while let Err(status) = try_register(&stack, &w, ect(&w, 1_000_002)).await {
        assert_eq!(reason(&status), "DELIVERY_BACKLOG", "{status:?}");
        assert!(started.elapsed() < WITHIN, "still refused after {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(content.answered() >= 1, "accepted again because the first command arrived");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_callers_changes_are_accepted_while_its_few_commands_are_slow_to_arrive() {
    // The runbook on a busy machine (a CI run refused its deferral so): an
    // operator's next change, made while the last ones' commands are still
    // on their way and older than the bound, goes through. Refusing it would
    // not make the receiver faster, and nothing is piling up: by default up
    // to 30 commands on their way are the receiver's latency, not a backlog.
    let content = SlowTarget::start(SLOW_DELIVERY).await;
    let (stack, w) =
        start(&[("STEPLAB_CONTENT_URL", &content.url()), ("STEPLAB_BACKPRESSURE_MAX_LAG_MS", TINY_BOUND_MS)]).await;
    for trn in 1_000_001..1_000_006 {
        try_register(&stack, &w, ect(&w, trn)).await.expect("a few commands on their way: never refused");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(content.answered() < 5, "the later changes were made while earlier commands were late");
    assert_eq!(registered(&stack, &w).await, 5);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_backpressure_off_a_relay_that_falls_behind_refuses_nothing() {
    let content = SlowTarget::start(SLOW_DELIVERY).await;
    let (stack, w) = start(&[("STEPLAB_CONTENT_URL", &content.url()), ("STEPLAB_BACKPRESSURE_MAX_LAG_MS", "0")]).await;
    let started = Instant::now();
    let mut trn = 1_000_001;
    // Past the point where, with a bound, calls were refused.
    while started.elapsed() < SLOW_DELIVERY * 2 {
        try_register(&stack, &w, ect(&w, trn)).await.expect("backpressure is off");
        trn += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = (trn - 1_000_001) as usize;
    assert!(content.answered() + 2 < sent, "the relay did fall behind: {} of {sent} delivered", content.answered());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_is_down_fills_the_outbox_without_refusing_changes() {
    // Nothing listens there: every delivery fails at once and backs off.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{down}");
    // A bound far below what the backlog's age reaches here (3 s) if a
    // target that is down counted, and far above a loaded test machine's
    // scheduling noise: refusals start at half of it.
    let (stack, w) = start(&[("STEPLAB_CONTENT_URL", &url), ("STEPLAB_BACKPRESSURE_MAX_LAG_MS", "1000")]).await;
    let started = Instant::now();
    let mut trn = 1_000_001;
    // Several backoff rounds of the failing heads (the harness caps backoff at 300 ms).
    while started.elapsed() < Duration::from_secs(3) {
        if let Err(status) = try_register(&stack, &w, ect(&w, trn)).await {
            panic!("a registration was refused while content release was down: {status:?}");
        }
        trn += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = (trn - 1_000_001) as i64;
    let admin = stack.admin_token();
    let status = stack
        .participants(Some(&admin))
        .await
        .get_sync_status(pb::GetSyncStatusRequest::default())
        .await
        .expect("sync status")
        .into_inner();
    assert!(status.pending >= sent, "every EnrolLearner waits in the outbox: {} pending of {sent}", status.pending);
    stack.stop().await;
}
