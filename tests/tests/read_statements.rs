//! Issue 18, item 4: the hot reads answer in one or two SQL statements on
//! SQLite and on PostgreSQL, so they cannot regress into a query per table
//! or per mentor. Every connection of this test process is instrumented
//! (diesel's default instrumentation, set before the stack opens its pools),
//! and a call's statements are those run while serving its `x-request-id`
//! (see `steplab_tests::statements`).

// Test code: an unexpected state fails the test that met it.
#![allow(clippy::panic)]

use std::time::Duration;

use steplab_platform::auth::Role;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Stack, statements, wait_until_delivered};

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
    // Twice: the second run reads through what the connection kept prepared.
    for run in 1..=2 {
        let id = format!("get-participant-{run}-{}", uuid::Uuid::now_v7().simple());
        statements::watch(&id);
        let shown = participants
            .get_participant(statements::with_request_id(
                pb::GetParticipantRequest { participant_id: ect.clone(), as_of: None },
                &id,
            ))
            .await
            .expect("get participant")
            .into_inner()
            .participant
            .expect("participant");
        assert!(!shown.mentor_id.is_empty(), "the ECT's mentor is shown: {shown:?}");
        let ran = statements::taken_and_printed(&format!("{:?} GetParticipant run {run}", stack.backend), &id);
        assert!(ran.iter().any(|sql| sql.contains("participant_events")), "{ran:#?}");
        assert!(ran.len() <= MOST_STATEMENTS_PER_READ, "GetParticipant ran {ran:#?}");

        let id = format!("get-release-state-{run}-{}", uuid::Uuid::now_v7().simple());
        statements::watch(&id);
        let state = releases
            .get_release_state(statements::with_request_id(
                content::GetReleaseStateRequest { participant_id: ect.clone(), as_of: None },
                &id,
            ))
            .await
            .expect("release state")
            .into_inner();
        assert_eq!(state.participant_id, ect);
        let ran = statements::taken_and_printed(&format!("{:?} GetReleaseState run {run}", stack.backend), &id);
        assert!(ran.iter().any(|sql| sql.contains("learners")), "{ran:#?}");
        assert!(ran.len() <= MOST_STATEMENTS_PER_READ, "GetReleaseState ran {ran:#?}");
    }
}

// Not `on_both_backends!`: the instrumentation must be in place before the
// stack opens its pools.
mod get_participant_and_get_release_state_run_at_most_two_statements {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        statements::install();
        let stack = Stack::start(steplab_tests::Backend::Sqlite).await.expect("sqlite stack");
        super::get_participant_and_get_release_state_run_at_most_two_statements(&stack).await;
        stack.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        statements::install();
        if let Some(stack) = Stack::start(steplab_tests::Backend::Postgres).await {
            super::get_participant_and_get_release_state_run_at_most_two_statements(&stack).await;
            stack.stop().await;
        }
    }
}
