//! Issue 18, item 4: PostgreSQL writers no longer queue for one lock to keep
//! event ids in commit order, and WatchEvents still never skips a late
//! commit. Two transactions append events and commit out of order (the
//! first to write commits last); a reader that resumes from the last cursor
//! it saw, once in between and once after, sees both events, each once.

// Test code: an unexpected state fails the test that met it.
#![allow(clippy::panic)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::time::Duration;
use steplab_platform::config::DatabaseUrl;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Backend, Stack};

/// Every event the feed sends after `after`: at least `want` (waiting up to
/// 30 s for them: transaction ids are the whole PostgreSQL server's, so
/// other tests' open transactions hold the feed's horizon back for a while),
/// then until it has been quiet for a moment (it polls twice a second).
async fn feed_after(stack: &Stack, after: i64, want: usize) -> Vec<pb::ParticipantEvent> {
    let admin = stack.admin_token();
    let mut stream = stack
        .participants(Some(&admin))
        .await
        .watch_events(pb::WatchEventsRequest { after_cursor: after })
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let quiet = if seen.len() < want && tokio::time::Instant::now() < deadline {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_millis(1500)
        };
        match tokio::time::timeout(quiet, stream.message()).await {
            Ok(Ok(Some(message))) => seen.push(message.participant_event.expect("event")),
            _ => return seen,
        }
    }
}

/// Appends a copy of the participant's registration event as event `sequence`,
/// as the participant service's own insert does (the feed position is the
/// database's doing).
fn append_copy(conn: &mut PgConnection, participant_id: &str, sequence: i64) {
    diesel::sql_query(
        "INSERT INTO participant_events (participant_id, sequence, event_type, effective_date, recorded_at, \
         actor, actor_role, payload, caused_by_participant_id) \
         SELECT participant_id, $2, event_type, effective_date, recorded_at, actor, actor_role, payload, \
         caused_by_participant_id FROM participant_events WHERE participant_id = $1 AND sequence = 1",
    )
    .bind::<diesel::sql_types::Text, _>(participant_id)
    .bind::<diesel::sql_types::BigInt, _>(sequence)
    .execute(conn)
    .expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_never_skips_a_late_commit_on_postgres() {
    let Some(stack) = Stack::start(Backend::Postgres).await else { return };
    let w = world(&stack).await;
    let ect = register(&stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "2000001", date(2026, 9, 1)))
        .await
        .participant_id;
    let before = feed_after(&stack, 0, 1).await;
    let mut cursor = before.last().expect("the registration is in the feed").cursor;

    let DatabaseUrl::Postgres(url) = &stack.config.participant.database else { panic!("a PostgreSQL stack") };
    let mut early = PgConnection::establish(url).expect("connect");
    let mut late = PgConnection::establish(url).expect("connect");
    // `early` writes first, so takes the lower id and transaction id, but
    // commits after `late`.
    early.batch_execute("BEGIN").expect("begin");
    append_copy(&mut early, &ect, 1001);
    late.batch_execute("BEGIN").expect("begin");
    append_copy(&mut late, &ect, 1002);
    late.batch_execute("COMMIT").expect("commit late");

    let in_between = feed_after(&stack, cursor, 0).await;
    if let Some(last) = in_between.last() {
        cursor = last.cursor;
    }
    early.batch_execute("COMMIT").expect("commit early");
    let after = feed_after(&stack, cursor, 2usize.saturating_sub(in_between.len())).await;

    let sequences: Vec<i64> = in_between.iter().chain(&after).map(|e| e.sequence).collect();
    let mut sorted = sequences.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1001, 1002], "each late event once, none skipped; in between {in_between:?}");
    let cursors: Vec<i64> = in_between.iter().chain(&after).map(|e| e.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "cursors increase along the feed: {cursors:?}");
    assert!(cursors.iter().all(|c| *c > before.last().map_or(0, |e| e.cursor)), "after the resumed cursor");
    stack.stop().await;
}
