//! Issue 13, DOMAIN.md version 2, over real gRPC on SQLite and PostgreSQL:
//! the length of a deferral (D13, D3 with a DPL-approved LONG_DEFERRAL), the
//! schedule after a return as the participant service shows it next to
//! content release and payments (D5), and the reporting feed carrying every
//! withdrawal and reinstatement (W10). "Today" is 2026-11-28.

use std::collections::BTreeSet;
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{World, assert_agree, date, register, registration, status_on, world};
use steplab_tests::{Participants, Stack, on_both_backends, wait_until_delivered};
use tonic::Code;
use tonic_types::StatusExt;

const DELIVERY: Duration = Duration::from_secs(30);

async fn lead(stack: &Stack, w: &World) -> Participants {
    stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp1]))).await
}

async fn dpl(stack: &Stack, w: &World) -> Participants {
    stack.participants(Some(&stack.token(Role::Dpl, None, &[&w.dp1]))).await
}

async fn ect(stack: &Stack, w: &World, trn: &str, on: Option<Date>) -> String {
    register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, trn, on)).await.participant_id
}

async fn mentor_of(stack: &Stack, w: &World, ect: &str, trn: &str) -> String {
    let mentor = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, trn, date(2026, 9, 1)))
        .await
        .participant_id;
    lead(stack, w)
        .await
        .assign_mentor(pb::AssignMentorRequest {
            ect_id: ect.into(),
            mentor_id: mentor.clone(),
            effective_date: date(2026, 9, 2),
            ..Default::default()
        })
        .await
        .expect("assigned");
    mentor
}

fn defer(id: &str, from: Option<Date>, until: Option<Date>) -> pb::DeferParticipantRequest {
    pb::DeferParticipantRequest {
        participant_id: id.into(),
        reason: DeferralReason::LongTermSickness as i32,
        deferral_date: from,
        expected_return_date: until,
        ..Default::default()
    }
}

fn change(id: &str, until: Option<Date>) -> pb::ChangeReturnDateRequest {
    pb::ChangeReturnDateRequest { participant_id: id.into(), expected_return_date: until, ..Default::default() }
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn refused(answer: Result<impl std::fmt::Debug, tonic::Status>, expected: &str) -> tonic::Status {
    let status = answer.expect_err(expected);
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, expected), "{status:?}");
    status
}

async fn history_len(stack: &Stack, id: &str) -> usize {
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
        .len()
}

/// D13: 42 days is a pause, refused with a pointer to PauseParticipant and
/// nothing changed; 43 days is a deferral. D8: before the programme starts
/// any length is a restart date. D6, D7: a later change may shorten it.
async fn d13_a_deferral_of_42_days_or_less_is_refused_pointing_to_a_pause(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "1313001", date(2026, 9, 1)).await;
    let mentor = mentor_of(stack, &w, &id, "1313002").await;
    let mut client = lead(stack, &w).await;
    let before = (history_len(stack, &id).await, history_len(stack, &mentor).await);
    let status =
        refused(client.defer_participant(defer(&id, date(2026, 12, 1), date(2027, 1, 12))).await, "DEFERRAL_TOO_SHORT");
    assert!(status.message().contains("PauseParticipant"), "{}", status.message());
    assert_eq!((history_len(stack, &id).await, history_len(stack, &mentor).await), before, "nothing changed");
    assert_eq!(status_on(stack, &id, date(2026, 12, 10)).await.status(), TrainingStatus::Active);
    assert_eq!(status_on(stack, &mentor, date(2026, 12, 10)).await.status(), TrainingStatus::Active);

    let deferred = client
        .defer_participant(defer(&id, date(2026, 12, 1), date(2027, 1, 13)))
        .await
        .expect("43 days is a deferral")
        .into_inner();
    assert_eq!(deferred.cascaded_participant_ids, std::slice::from_ref(&mentor));
    // A later change may shorten it (D6).
    client.change_return_date(change(&id, date(2026, 12, 20))).await.expect("a shorter deferral after all");
    let shortened = status_on(stack, &id, date(2026, 12, 10)).await;
    assert_eq!(shortened.deferral.and_then(|d| d.expected_return_date), date(2026, 12, 20));

    // D8: registered today, the release starts on 1 January 2027.
    let early = ect(stack, &w, "1313003", date(2026, 11, 28)).await;
    client
        .defer_participant(defer(&early, date(2026, 11, 28), date(2026, 12, 20)))
        .await
        .expect("a programme not started yet may be deferred to any restart date");
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&id, &mentor, &early], &[date(2026, 12, 10), date(2026, 12, 20)]).await;
}

/// D3: past 12 months needs a DPL-approved LONG_DEFERRAL; the approval's
/// date bounds both DeferParticipant and ChangeReturnDate.
async fn d3_a_long_deferral_approved_by_a_dpl_allows_a_return_past_12_months(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "1303001", date(2026, 9, 1)).await;
    let mut client = lead(stack, &w).await;
    let status = refused(
        client.defer_participant(defer(&id, date(2026, 12, 1), date(2028, 1, 10))).await,
        "RETURN_DATE_TOO_FAR",
    );
    assert!(status.message().contains("RequestLongDeferral"), "names the exception route: {}", status.message());

    let ask = |latest: Option<Date>| pb::RequestLongDeferralRequest {
        participant_id: id.clone(),
        latest_return_date: latest,
        note: "a second child".into(),
        ..Default::default()
    };
    let missing = client.request_long_deferral(ask(None)).await.expect_err("no date");
    assert_eq!(missing.code(), Code::InvalidArgument);
    let request = client
        .request_long_deferral(ask(date(2028, 2, 1)))
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    assert_eq!(
        (request.kind(), request.status(), request.latest_return_date),
        (pb::RequestKind::LongDeferral, pb::RequestStatus::Pending, date(2028, 2, 1))
    );
    refused(client.request_long_deferral(ask(date(2028, 3, 1))).await, "REQUEST_ALREADY_PENDING");
    // Pending is not approved.
    refused(client.defer_participant(defer(&id, date(2026, 12, 1), date(2028, 1, 10))).await, "RETURN_DATE_TOO_FAR");
    // An ECF Lead cannot approve it.
    let decide = pb::DecideRequestRequest {
        idempotency_key: String::new(),
        validate_only: false,
        approval_request_id: request.approval_request_id.clone(),
        approve: Some(true),
        note: String::new(),
    };
    assert_eq!(client.decide_request(decide.clone()).await.expect_err("ECF Lead").code(), Code::PermissionDenied);
    let decided = dpl(stack, &w).await.decide_request(decide).await.expect("approved").into_inner();
    let approved = decided.request.expect("request");
    assert_eq!((approved.status(), approved.latest_return_date), (pb::RequestStatus::Approved, date(2028, 2, 1)));
    assert_eq!(decided.participant.expect("participant").status(), TrainingStatus::Active, "nothing else changes");

    client.defer_participant(defer(&id, date(2026, 12, 1), date(2028, 1, 10))).await.expect("approved: 13 months");
    assert_eq!(status_on(stack, &id, date(2028, 1, 9)).await.status(), TrainingStatus::Deferred);
    client.change_return_date(change(&id, date(2028, 2, 1))).await.expect("up to the approved date");
    let status = refused(client.change_return_date(change(&id, date(2028, 2, 2))).await, "RETURN_DATE_TOO_FAR");
    assert!(status.message().contains("2028-02-01"), "{}", status.message());
    // Asking for no more than 12 months after the deferral in force is pointless.
    refused(client.request_long_deferral(ask(date(2027, 11, 1))).await, "LONG_DEFERRAL_NOT_NEEDED");

    let mentor =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "1303002", date(2026, 9, 1)))
            .await
            .participant_id;
    let for_mentor = pb::RequestLongDeferralRequest {
        participant_id: mentor,
        latest_return_date: date(2028, 2, 1),
        ..Default::default()
    };
    refused(client.request_long_deferral(for_mentor).await, "DEFERRAL_ONLY_FOR_ECTS");
    wait_until_delivered(stack, DELIVERY).await;
    assert_agree(stack, &[&id], &[date(2027, 6, 1), date(2028, 2, 1)]).await;
}

async fn schedules(stack: &Stack, id: &str, on: Option<Date>) -> [(String, Option<Date>); 3] {
    let service = stack.token(Role::Service, None, &[]);
    let participant = status_on(stack, id, on).await;
    let release = stack
        .content(Some(&service))
        .await
        .get_release_state(content::GetReleaseStateRequest { participant_id: id.into(), as_of: on })
        .await
        .expect("release state")
        .into_inner();
    let accrual = stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: id.into(), as_of: on })
        .await
        .expect("accrual")
        .into_inner();
    [
        (participant.schedule, participant.schedule_since),
        (release.schedule, release.schedule_since),
        (accrual.current_schedule, accrual.current_schedule_since),
    ]
}

async fn assert_schedule(stack: &Stack, id: &str, on: Option<Date>, schedule: &str, since: Option<Date>) {
    let expected = (schedule.to_owned(), since);
    let [participant, release, accrual] = schedules(stack, id, on).await;
    assert_eq!(participant, expected, "GetParticipant of {id} on {on:?}");
    assert_eq!(release, expected, "GetReleaseState of {id} on {on:?}");
    assert_eq!(accrual, expected, "GetAccrual of {id} on {on:?}");
}

/// D5: after a deferral the participant service shows the schedule of the
/// term of the return from the return date, as content release and payments
/// do, for every `as_of`; the mentor deferred with the ECT (D9) too. An
/// earlier recorded return (D7) moves it.
async fn d5_the_three_services_show_the_schedule_of_the_term_of_the_return(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "1305001", date(2026, 9, 1)).await;
    let mentor = mentor_of(stack, &w, &id, "1305002").await;
    let early = ect(stack, &w, "1305003", date(2026, 9, 1)).await;
    let mut client = lead(stack, &w).await;
    client.defer_participant(defer(&id, date(2026, 12, 7), date(2027, 4, 12))).await.expect("deferred");
    client.defer_participant(defer(&early, date(2026, 10, 1), date(2027, 4, 12))).await.expect("deferred");
    client
        .record_return(pb::RecordReturnRequest {
            participant_id: early.clone(),
            return_date: date(2026, 11, 20),
            ..Default::default()
        })
        .await
        .expect("back early");
    wait_until_delivered(stack, DELIVERY).await;

    let september = "ecf-standard-september";
    for who in [&id, &mentor] {
        assert_schedule(stack, who, date(2027, 4, 11), september, None).await;
        assert_schedule(stack, who, date(2027, 4, 12), "ecf-standard-april", date(2027, 4, 12)).await;
        assert_schedule(stack, who, date(2027, 9, 1), "ecf-standard-april", date(2027, 4, 12)).await;
    }
    assert_schedule(stack, &id, None, september, None).await;
    assert_schedule(stack, &early, date(2026, 11, 19), september, None).await;
    assert_schedule(stack, &early, None, "ecf-standard-january", date(2026, 11, 20)).await;
    assert_agree(stack, &[&id, &mentor, &early], &[None, date(2027, 4, 12)]).await;
}

/// What the feed must carry of an event: the same event, participant, type
/// and effective date as the history.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reported {
    event_id: String,
    participant_id: String,
    r#type: i32,
    effective_date: Option<(i32, i32, i32)>,
}

impl Reported {
    fn of(e: &pb::ParticipantEvent) -> Self {
        Reported {
            event_id: e.event_id.clone(),
            participant_id: e.participant_id.clone(),
            r#type: e.event_type,
            effective_date: e.effective_date.map(|d| (d.year, d.month, d.day)),
        }
    }
}

/// W10: every withdrawal and reinstatement in the histories, the W6
/// cascaded mentor's among them, is in the reporting feed (WatchEvents).
async fn w10_every_withdrawal_and_reinstatement_is_in_the_reporting_feed(stack: &Stack) {
    let w = world(stack).await;
    let id = ect(stack, &w, "1310001", date(2026, 9, 1)).await;
    let mentor = mentor_of(stack, &w, &id, "1310002").await;
    let other_mentor =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "1310003", date(2026, 9, 1)))
            .await
            .participant_id;
    let mut client = lead(stack, &w).await;
    let withdrawn = client
        .withdraw_participant(pb::WithdrawParticipantRequest {
            participant_id: id.clone(),
            reason: WithdrawalReason::LeftRole as i32,
            withdrawal_date: date(2026, 11, 2),
            ..Default::default()
        })
        .await
        .expect("withdrawn")
        .into_inner();
    assert_eq!(withdrawn.cascaded_participant_ids, std::slice::from_ref(&mentor), "W6");
    client
        .withdraw_participant(pb::WithdrawParticipantRequest {
            participant_id: other_mentor.clone(),
            reason: WithdrawalReason::MentorNoLongerBeingMentor as i32,
            withdrawal_date: date(2026, 11, 20),
            ..Default::default()
        })
        .await
        .expect("a mentor who stepped down");
    let reinstatement = client
        .request_reinstatement(pb::RequestReinstatementRequest { participant_id: id.clone(), ..Default::default() })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    let keep = client
        .request_keep_mentor(pb::RequestKeepMentorRequest { mentor_id: mentor.clone(), ..Default::default() })
        .await
        .expect("requested")
        .into_inner()
        .request
        .expect("request");
    let mut deciding = dpl(stack, &w).await;
    for request in [reinstatement, keep] {
        deciding
            .decide_request(pb::DecideRequestRequest {
                idempotency_key: String::new(),
                validate_only: false,
                approval_request_id: request.approval_request_id,
                approve: Some(true),
                note: String::new(),
            })
            .await
            .expect("approved");
    }
    // D5 and W9: the reinstated ECT is on the schedule of the term of the reinstatement.
    wait_until_delivered(stack, DELIVERY).await;
    assert_schedule(stack, &id, None, "ecf-standard-january", date(2026, 11, 28)).await;

    let admin = stack.admin_token();
    let mut reader = stack.participants(Some(&admin)).await;
    let reported = |t: i32| t == pb::EventType::Withdrawn as i32 || t == pb::EventType::Reinstated as i32;
    let mut expected: BTreeSet<Reported> = BTreeSet::new();
    for who in [&id, &mentor, &other_mentor] {
        let events = reader
            .get_participant_history(pb::GetParticipantHistoryRequest {
                page_size: 0,
                page_token: String::new(),
                participant_id: who.to_string(),
            })
            .await
            .expect("history")
            .into_inner()
            .events;
        expected.extend(events.iter().filter(|e| reported(e.event_type)).map(Reported::of));
    }
    assert_eq!(expected.len(), 5, "three withdrawals, two reinstatements: {expected:?}");
    let mut feed = reader.watch_events(pb::WatchEventsRequest { after_cursor: 0 }).await.expect("watch").into_inner();
    let mut seen: BTreeSet<Reported> = BTreeSet::new();
    while !expected.is_subset(&seen) {
        let event = tokio::time::timeout(DELIVERY, feed.message())
            .await
            .expect("the feed carries every withdrawal and reinstatement")
            .expect("stream")
            .expect("an event")
            .participant_event
            .expect("event");
        if reported(event.event_type) {
            seen.insert(Reported::of(&event));
        }
    }
    assert_eq!(seen, expected, "each once, nothing else");
}

on_both_backends!(
    d13_a_deferral_of_42_days_or_less_is_refused_pointing_to_a_pause,
    d3_a_long_deferral_approved_by_a_dpl_allows_a_return_past_12_months,
    d5_the_three_services_show_the_schedule_of_the_term_of_the_return,
    w10_every_withdrawal_and_reinstatement_is_in_the_reporting_feed,
);
