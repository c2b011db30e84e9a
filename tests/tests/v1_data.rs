//! Existing data keeps working (issue 13): the SQLite files in
//! `tests/fixtures/v1/` were written by the release before issue 13 began
//! (commit 6f851af, today pinned to 2026-11-28) by `history.sh` beside them:
//!
//! * "Deferred Ect", mentored by "Deferred Mentor", deferred 2026-12-07 to
//!   2027-09-06 and then to 2027-10-04: version 1 copied the deferral and the
//!   change of return date into the mentor's history (D9 as a copy);
//! * "Leaver Ect" withdrawn today, and "Leaver Mentor" withdrawn with them (W6);
//! * "Sick Ect" deferred from 2026-10-01 to 2027-01-04, with no mentor.
//!
//! The current code opens the files (its migrations run at start) and,
//! through gRPC, reads the histories as version 1 wrote them, treats the
//! copied mentor deferral as derived (D6), and all three services agree.
//! SQLite only: the files are what a version-1 deployment holds; the read
//! path (the event fold and the D9 derivation) is the same on PostgreSQL.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::TrainingStatus;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_tests::fixtures::{assert_agree, date, status_on};
use steplab_tests::{Stack, wait_until_delivered};
use tonic::Code;
use tonic_types::StatusExt;

const DELIVERY: Duration = Duration::from_secs(30);

/// A stack on copies of the version-1 files (the fixtures stay untouched).
async fn stack_on_v1_files() -> Stack {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1");
    let data = tempfile::tempdir().expect("temp dir");
    for file in ["participant.sqlite3", "content-release.sqlite3", "payments.sqlite3"] {
        std::fs::copy(fixtures.join(file), data.path().join(file)).expect("copy a version-1 file");
    }
    Stack::restart_sqlite_in(data).await
}

/// Participant ids by full name, read by an admin.
async fn by_name(stack: &Stack) -> HashMap<String, String> {
    let admin = stack.admin_token();
    let listed = stack
        .participants(Some(&admin))
        .await
        .list_participants(pb::ListParticipantsRequest { page_size: 100, ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .participants;
    listed.into_iter().map(|p| (p.full_name, p.participant_id)).collect()
}

async fn history(stack: &Stack, id: &str) -> Vec<pb::ParticipantEvent> {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .get_participant_history(pb::GetParticipantHistoryRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: id.into(),
        })
        .await
        .expect("history")
        .into_inner()
        .events
}

fn types(events: &[pb::ParticipantEvent]) -> Vec<pb::EventType> {
    events.iter().map(|e| e.event_type()).collect()
}

fn expected_return(p: &pb::Participant) -> Option<Date> {
    p.deferral.as_ref().and_then(|d| d.expected_return_date)
}

async fn assert_no_drift(stack: &Stack) {
    let admin = stack.admin_token();
    let check = stack
        .participants(Some(&admin))
        .await
        .check_consistency(pb::CheckConsistencyRequest::default())
        .await
        .expect("check")
        .into_inner();
    assert_eq!(check.checked_count, 5, "{check:?}");
    assert!(check.drifted.is_empty() && check.in_flight.is_empty(), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d6_d9_w6_version_1_histories_read_as_before_and_the_copied_mentor_deferral_is_derived() {
    let stack = stack_on_v1_files().await;
    let ids = by_name(&stack).await;
    let id = |name: &str| ids.get(name).cloned().expect("a participant of the version-1 data");
    let (ect, mentor) = (id("Deferred Ect"), id("Deferred Mentor"));
    let (leaver, leaver_mentor, sick) = (id("Leaver Ect"), id("Leaver Mentor"), id("Sick Ect"));
    assert_no_drift(&stack).await;

    // The histories as version 1 wrote them.
    use pb::EventType as T;
    assert_eq!(
        types(&history(&stack, &mentor).await),
        [T::Registered, T::MenteeAssigned, T::Deferred, T::ReturnDateChanged]
    );
    let deferred = status_on(&stack, &mentor, date(2027, 1, 4)).await;
    assert_eq!(deferred.status(), TrainingStatus::Deferred);
    let deferral = deferred.deferral.clone().expect("the copied deferral");
    assert_eq!((deferral.deferral_date, deferral.expected_return_date), (date(2026, 12, 7), date(2027, 10, 4)));
    assert_eq!(deferral.cascaded_from_participant_id, ect);
    assert_eq!(status_on(&stack, &mentor, date(2027, 10, 4)).await.status(), TrainingStatus::Active);
    let withdrawn = status_on(&stack, &leaver_mentor, None).await;
    assert_eq!(withdrawn.status(), TrainingStatus::Withdrawn);
    assert_eq!(withdrawn.withdrawal.expect("withdrawal").cascaded_from_participant_id, leaver);
    assert_eq!(status_on(&stack, &leaver, None).await.status(), TrainingStatus::Withdrawn);
    let sick_on = status_on(&stack, &sick, date(2026, 12, 1)).await;
    assert_eq!((sick_on.status(), expected_return(&sick_on)), (TrainingStatus::Deferred, date(2027, 1, 4)));
    assert_eq!(status_on(&stack, &sick, date(2027, 1, 4)).await.status(), TrainingStatus::Active);

    // D6: the copied deferral follows the ECT; changed on its own it is refused.
    let lead = stack.token(steplab_platform::auth::Role::EcfLead, None, &[&deferred.delivery_partner_id]);
    let mut client = stack.participants(Some(&lead)).await;
    let err = client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: mentor.clone(),
            expected_return_date: date(2027, 11, 1),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("the mentor's deferral follows the ECT's");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default(), "CASCADED_FROM_ECT");
    assert!(err.message().contains(&ect), "{}", err.message());

    // A change on the ECT moves the mentor's copied deferral, under its own id.
    let changed = client
        .change_return_date(pb::ChangeReturnDateRequest {
            validate_only: false,
            participant_id: ect.clone(),
            expected_return_date: date(2027, 11, 1),
            idempotency_key: String::new(),
        })
        .await
        .expect("the ECT's return date changes")
        .into_inner();
    assert_eq!(changed.cascaded_participant_ids, std::slice::from_ref(&mentor));
    let moved = status_on(&stack, &mentor, date(2027, 10, 15)).await;
    assert_eq!((moved.status(), expected_return(&moved)), (TrainingStatus::Deferred, date(2027, 11, 1)));
    assert_eq!(status_on(&stack, &mentor, date(2027, 11, 1)).await.status(), TrainingStatus::Active);
    let events = history(&stack, &mentor).await;
    assert_eq!(types(&events).iter().filter(|t| **t == T::Deferred).count(), 1, "no second deferral: {events:?}");
    let last = events.last().expect("events");
    assert_eq!((last.event_type(), last.caused_by_participant_id.as_str()), (T::ReturnDateChanged, ect.as_str()));

    wait_until_delivered(&stack, DELIVERY).await;
    assert_agree(&stack, &[&ect, &mentor], &[date(2027, 10, 15), date(2027, 11, 1)]).await;
    assert_no_drift(&stack).await;
    stack.stop().await;
}
