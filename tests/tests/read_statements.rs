//! Issue 18, item 4: the hot reads answer in one or two SQL statements on
//! SQLite and on PostgreSQL, so they cannot regress into a query per table
//! or per mentor. Every connection of this test process is instrumented
//! (diesel's default instrumentation, set before the stack opens its pools),
//! and the statements of one unit of work are those one connection runs
//! between two pool check-outs (r2d2 validates each with `SELECT 1`).

// Test code: an unexpected state fails the test that met it.
#![allow(clippy::panic)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Stack, wait_until_delivered};

/// What a connection told its instrumentation, in order.
#[derive(Debug, Clone)]
enum Seen {
    /// A statement started (its SQL, without the binds).
    Statement(String),
    /// A statement was prepared and kept in the connection's cache.
    Cached(String),
}

static SEEN: Mutex<Vec<(u64, Seen)>> = Mutex::new(Vec::new());
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(0);

struct Recorder {
    connection: u64,
}

impl Instrumentation for Recorder {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        let seen = match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                Seen::Statement(text.split(" -- binds:").next().unwrap_or_default().trim().to_owned())
            }
            InstrumentationEvent::CacheQuery { sql, .. } => Seen::Cached(sql.trim().to_owned()),
            _ => return,
        };
        SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((self.connection, seen));
    }
}

fn instrument_every_connection() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        set_default_instrumentation(|| {
            Some(Box::new(Recorder { connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed) }))
        })
        .expect("default instrumentation");
    });
}

fn mark() -> usize {
    SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
}

/// The statements of the unit of work since `from` that ran a statement
/// containing `marker`, and which of them the connection had cached.
fn unit_of_work(from: usize, marker: &str) -> (Vec<String>, Vec<bool>) {
    let seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let cached: HashSet<(u64, String)> = seen
        .iter()
        .filter_map(|(c, s)| match s {
            Seen::Cached(sql) => Some((*c, sql.clone())),
            Seen::Statement(_) => None,
        })
        .collect();
    let connection = seen[from..]
        .iter()
        .find_map(|(c, s)| matches!(s, Seen::Statement(sql) if sql.contains(marker)).then_some(*c))
        .unwrap_or_else(|| panic!("no statement with {marker} ran"));
    let mut units: Vec<Vec<String>> = vec![Vec::new()];
    for (_, s) in seen[from..].iter().filter(|(c, _)| *c == connection) {
        if let Seen::Statement(sql) = s {
            if sql == "SELECT 1" {
                units.push(Vec::new());
            } else if let Some(unit) = units.last_mut() {
                unit.push(sql.clone());
            }
        }
    }
    let unit = units.into_iter().find(|u| u.iter().any(|sql| sql.contains(marker))).expect("the unit of work");
    let was_cached = unit.iter().map(|sql| cached.contains(&(connection, sql.clone()))).collect();
    (unit, was_cached)
}

/// An ECT with a mentor and a deferral (a hold in content release), so both
/// reads have every part to load.
async fn ect_with_mentor_and_deferral(stack: &Stack) -> String {
    let w = world(stack).await;
    let ect = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1000001", date(2026, 9, 1)))
        .await
        .participant_id;
    let mentor =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "1000002", date(2026, 9, 1)))
            .await
            .participant_id;
    let mut lead = stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp1]))).await;
    lead.assign_mentor(pb::AssignMentorRequest {
        ect_id: ect.clone(),
        mentor_id: mentor,
        effective_date: date(2026, 9, 2),
        ..Default::default()
    })
    .await
    .expect("assigned");
    lead.defer_participant(pb::DeferParticipantRequest {
        participant_id: ect.clone(),
        reason: DeferralReason::LongTermSickness as i32,
        deferral_date: date(2026, 12, 1),
        expected_return_date: date(2027, 4, 1),
        ..Default::default()
    })
    .await
    .expect("deferred");
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    ect
}

const MOST_STATEMENTS_PER_READ: usize = 2;

async fn get_participant_and_get_release_state_run_at_most_two_statements(stack: &Stack) {
    let ect = ect_with_mentor_and_deferral(stack).await;
    let admin = stack.admin_token();
    let mut participants = stack.participants(Some(&admin)).await;
    let mut releases = stack.content(Some(&admin)).await;
    // Twice: the second run shows what the connection kept prepared.
    for run in 1..=2 {
        let from = mark();
        let shown = participants
            .get_participant(pb::GetParticipantRequest { participant_id: ect.clone(), as_of: None })
            .await
            .expect("get participant")
            .into_inner()
            .participant
            .expect("participant");
        assert!(!shown.mentor_id.is_empty(), "the ECT's mentor is shown: {shown:?}");
        let (statements, cached) = unit_of_work(from, "participant_events");
        eprintln!("{:?} GetParticipant run {run}: {} statements, cached {cached:?}", stack.backend, statements.len());
        assert!(statements.len() <= MOST_STATEMENTS_PER_READ, "GetParticipant ran {statements:#?}");

        let from = mark();
        let state = releases
            .get_release_state(content::GetReleaseStateRequest { participant_id: ect.clone(), as_of: None })
            .await
            .expect("release state")
            .into_inner();
        assert_eq!(state.participant_id, ect);
        let (statements, cached) = unit_of_work(from, "learners");
        eprintln!("{:?} GetReleaseState run {run}: {} statements, cached {cached:?}", stack.backend, statements.len());
        assert!(statements.len() <= MOST_STATEMENTS_PER_READ, "GetReleaseState ran {statements:#?}");
    }
}

// Not `on_both_backends!`: the instrumentation must be in place before the
// stack opens its pools.
mod get_participant_and_get_release_state_run_at_most_two_statements {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        instrument_every_connection();
        let stack = Stack::start(steplab_tests::Backend::Sqlite).await.expect("sqlite stack");
        super::get_participant_and_get_release_state_run_at_most_two_statements(&stack).await;
        stack.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        instrument_every_connection();
        if let Some(stack) = Stack::start(steplab_tests::Backend::Postgres).await {
            super::get_participant_and_get_release_state_run_at_most_two_statements(&stack).await;
            stack.stop().await;
        }
    }
}
