//! Issue 16 item 5, AIP-163 `validate_only` over real gRPC on SQLite and
//! PostgreSQL: a dry run of a mutating participant call answers what the
//! real call then does (the same events, status changes and commands) and
//! changes nothing in any of the three services; a dry run that breaks a
//! rule is refused as the real call is. "Today" is 2026-11-28.

use std::collections::BTreeSet;
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_platform::config::ServiceName;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, TrainingStatus, WithdrawalReason};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{World, create_school, date, register, registration, world};
use steplab_tests::{Participants, Stack, on_both_backends, on_both_backends_mut, wait_until_delivered};
use tonic::Code;
use tonic_types::StatusExt;

const DELIVERY: Duration = Duration::from_secs(30);

async fn lead(stack: &Stack, w: &World) -> Participants {
    stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp1]))).await
}

async fn dpl(stack: &Stack, w: &World) -> Participants {
    stack.participants(Some(&stack.token(Role::Dpl, None, &[&w.dp1]))).await
}

async fn admin(stack: &Stack) -> Participants {
    stack.participants(Some(&stack.admin_token())).await
}

async fn enrolled(stack: &Stack, w: &World, kind: ParticipantKind, trn: &str) -> String {
    register(stack, &w.dp1, registration(&w.school_a, kind, trn, date(2026, 9, 1))).await.participant_id
}

/// Everything the three services hold about `ids`, and the participant
/// service's outbox as a whole: equal before and after a dry run.
#[derive(Debug, PartialEq)]
struct Snapshot {
    outbox: (i64, i64, usize),
    participants: Vec<String>,
}

async fn snapshot(stack: &Stack, ids: &[&str]) -> Snapshot {
    let mut client = admin(stack).await;
    let sync = client
        .get_sync_status(pb::GetSyncStatusRequest { page_size: 1000, ..Default::default() })
        .await
        .expect("sync status")
        .into_inner();
    let content_token = stack.token(Role::Admin, None, &[]);
    let mut content = stack.content(Some(&content_token)).await;
    let mut payments = stack.payments(Some(&content_token)).await;
    let mut participants = Vec::new();
    for id in ids {
        let participant = client
            .get_participant(pb::GetParticipantRequest { participant_id: (*id).into(), as_of: None })
            .await
            .expect("participant")
            .into_inner();
        let history = client
            .get_participant_history(pb::GetParticipantHistoryRequest {
                participant_id: (*id).into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("history")
            .into_inner();
        let release = content
            .get_release_state(content::GetReleaseStateRequest { participant_id: (*id).into(), as_of: None })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| s.code());
        let accrual = payments
            .get_accrual(payments::GetAccrualRequest { participant_id: (*id).into(), as_of: None })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| s.code());
        participants.push(format!("{participant:?}\n{history:?}\n{release:?}\n{accrual:?}"));
    }
    Snapshot { outbox: (sync.pending, sync.parked, sync.commands.len()), participants }
}

/// How many audit entries name each of `ids`: a dry run adds none.
async fn audited(stack: &Stack, ids: &[&str]) -> Vec<usize> {
    let mut client = admin(stack).await;
    let mut counts = Vec::new();
    for id in ids {
        let entries = client
            .list_audit_entries(pb::ListAuditEntriesRequest {
                participant_id: (*id).into(),
                page_size: 500,
                ..Default::default()
            })
            .await
            .expect("audit entries")
            .into_inner()
            .entries;
        counts.push(entries.len());
    }
    counts
}

/// `text` with every UUID outside `known` replaced by its order of first
/// appearance: the ids a change mints (command ids, hold, suspension and
/// pause ids, a new participant's id) differ between a dry run and the
/// real call, and are compared by where they appear.
fn fresh_ids_numbered(text: &str, known: &BTreeSet<String>) -> String {
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.char_indices()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let candidate = text.get(i..i + 36).filter(|s| is_uuid(s));
        match candidate {
            Some(id) if !known.contains(id) => {
                let n = seen.iter().position(|s| s == id).unwrap_or_else(|| {
                    seen.push(id.to_owned());
                    seen.len() - 1
                });
                out.push_str(&format!("<fresh id {n}>"));
                i += 36;
            }
            _ => {
                let c = text[i..].chars().next().expect("a char");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// `text` without the times of the write (a dry run and the real call run
/// a moment apart).
fn without_times(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("Timestamp {") {
        out.push_str(&rest[..at]);
        out.push_str("Timestamp");
        rest = rest[at..].find('}').map_or("", |end| &rest[at + end + 1..]);
    }
    out.push_str(rest);
    out
}

/// The effects as a dry run and the real call must share: events without
/// their cursor and record time (the log position and clock of the write),
/// fresh ids numbered; the outlooks, asked for on dry runs only, left out.
fn comparable(effects: &pb::ChangeEffects, known: &BTreeSet<String>) -> String {
    let mut effects = effects.clone();
    effects.validate_only = false;
    for event in &mut effects.events {
        event.cursor = 0;
        event.record_time = None;
    }
    effects.release_outlooks.clear();
    effects.accrual_outlooks.clear();
    effects.unavailable_services.clear();
    fresh_ids_numbered(&format!("{effects:#?}"), known)
}

fn known_ids(w: &World, ids: &[&str]) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = [&w.dp1, &w.dp2, &w.school_a, &w.school_b].into_iter().cloned().collect();
    known.extend(ids.iter().map(|id| (*id).to_owned()));
    known
}

/// Runs `$request` as a dry run, checks nothing changed anywhere, runs it for
/// real, and checks both answered the same effects and the same message.
/// Answers the real response.
macro_rules! dry_then_real {
    ($stack:expr, $w:expr, $ids:expr, $client:expr, $method:ident, $request:expr) => {{
        let ids: &[&str] = $ids;
        wait_until_delivered($stack, DELIVERY).await;
        let before = snapshot($stack, ids).await;
        let audited_before = audited($stack, ids).await;
        let mut request = $request;
        request.validate_only = true;
        let mut dry = $client.$method(request.clone()).await.expect("dry run").into_inner();
        assert_eq!(snapshot($stack, ids).await, before, "{}: the dry run changed nothing", stringify!($method));
        assert_eq!(audited($stack, ids).await, audited_before, "{}: a dry run is not audited", stringify!($method));
        request.validate_only = false;
        let real = $client.$method(request).await.expect("real call").into_inner();
        if let (Some(first), Some(before)) = (ids.first(), audited_before.first()) {
            assert!(audited($stack, &[first]).await[0] > *before, "{}: the real call is audited", stringify!($method));
        }
        let dry_effects = dry.effects.take().expect("dry run effects");
        let real_effects = real.effects.clone().expect("real call effects");
        assert!(dry_effects.validate_only && !real_effects.validate_only);
        assert!(
            real_effects.release_outlooks.is_empty()
                && real_effects.accrual_outlooks.is_empty()
                && real_effects.unavailable_services.is_empty(),
            "a real call's commands are delivered later: no outlook"
        );
        let known = known_ids($w, ids);
        assert_eq!(
            comparable(&dry_effects, &known),
            comparable(&real_effects, &known),
            "{}: the dry run's effects are the real call's",
            stringify!($method)
        );
        let mut shown = real.clone();
        shown.effects = None;
        assert_eq!(
            fresh_ids_numbered(&without_times(&format!("{dry:?}")), &known),
            fresh_ids_numbered(&without_times(&format!("{shown:?}")), &known),
            "{}: the dry run answers the participant as the real call leaves them",
            stringify!($method)
        );
        (dry_effects, real)
    }};
}

fn status_changes(effects: &pb::ChangeEffects) -> BTreeSet<(String, String, TrainingStatus, TrainingStatus, String)> {
    effects
        .status_changes
        .iter()
        .map(|c| {
            let on = c.effective_date.map(|d| format!("{}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default();
            (c.participant_id.clone(), on, c.previous_status(), c.new_status(), c.caused_by_participant_id.clone())
        })
        .collect()
}

fn commands(effects: &pb::ChangeEffects) -> BTreeSet<(String, String, String)> {
    effects.commands.iter().map(|c| (c.participant_id.clone(), c.target.clone(), c.rpc.clone())).collect()
}

fn defer(id: &str, from: (i32, i32, i32), until: (i32, i32, i32)) -> pb::DeferParticipantRequest {
    pb::DeferParticipantRequest {
        participant_id: id.into(),
        reason: DeferralReason::LongTermSickness as i32,
        deferral_date: date(from.0, from.1, from.2),
        expected_return_date: date(until.0, until.1, until.2),
        ..Default::default()
    }
}

/// Issue 16, "Done means": a dry-run deferral of an ECT whose mentor has no
/// other ECT lists both participants' status changes (D9 for the mentor)
/// and the holds and suspensions for both, and leaves content release,
/// payments and the participant service as they were.
async fn d9_a_dry_run_deferral_lists_the_ect_and_mentor_and_changes_nothing(stack: &Stack) {
    let w = world(stack).await;
    let ect = enrolled(stack, &w, ParticipantKind::Ect, "1601001").await;
    let mentor = enrolled(stack, &w, ParticipantKind::Mentor, "1601002").await;
    let mut client = lead(stack, &w).await;
    client
        .assign_mentor(pb::AssignMentorRequest {
            ect_id: ect.clone(),
            mentor_id: mentor.clone(),
            effective_date: date(2026, 9, 2),
            ..Default::default()
        })
        .await
        .expect("assigned");
    let (dry, real) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        defer_participant,
        defer(&ect, (2026, 12, 1), (2027, 3, 1))
    );
    assert_eq!(real.cascaded_participant_ids, std::slice::from_ref(&mentor));
    assert_eq!(
        status_changes(&dry),
        BTreeSet::from([
            (ect.clone(), "2026-12-01".into(), TrainingStatus::Active, TrainingStatus::Deferred, String::new()),
            (mentor.clone(), "2026-12-01".into(), TrainingStatus::Active, TrainingStatus::Deferred, ect.clone()),
        ]),
        "{dry:#?}"
    );
    let sent = commands(&dry);
    for id in [&ect, &mentor] {
        for (target, rpc) in [("content-release", "PlaceHold"), ("payments", "SuspendAccrual")] {
            assert!(sent.contains(&(id.clone(), target.into(), rpc.into())), "{rpc} for {id}: {sent:?}");
        }
    }
    assert!(dry.commands.iter().all(|c| c.command.is_some()), "every command decoded: {dry:#?}");
    // The outlook: content release's for both learners, payments' for both payees.
    assert_eq!(dry.unavailable_services, Vec::<String>::new(), "{dry:#?}");
    let learners: BTreeSet<String> = dry.release_outlooks.iter().map(|o| o.participant_id.clone()).collect();
    assert_eq!(learners, BTreeSet::from([ect.clone(), mentor.clone()]), "{dry:#?}");
    assert!(dry.release_outlooks.iter().all(|o| o.enrolled_before), "{dry:#?}");
    let payees: BTreeSet<String> = dry.accrual_outlooks.iter().map(|o| o.participant_id.clone()).collect();
    assert_eq!(payees, BTreeSet::from([ect.clone(), mentor.clone()]), "{dry:#?}");
    assert!(dry.accrual_outlooks.iter().all(|o| o.enrolled_before), "{dry:#?}");
    // The consequences an ECF Lead weighs: the next module comes later for
    // both, and milestone windows are touched by the suspensions.
    let release_date =
        |m: &Option<content::UpcomingModule>| m.as_ref().and_then(|m| m.release_date).map(|d| (d.year, d.month, d.day));
    for outlook in &dry.release_outlooks {
        let (before, after) = (release_date(&outlook.next_module_before), release_date(&outlook.next_module_after));
        assert!(before.is_some() && after > before, "the next module comes later: {outlook:#?}");
    }
    assert!(dry.accrual_outlooks.iter().all(|o| !o.affected_window_ids.is_empty()), "{dry:#?}");
}

/// Each lifecycle RPC: a dry run, then the real call with the same request,
/// answer the same effects, and the dry run changed nothing.
async fn every_lifecycle_dry_run_answers_what_the_real_call_does(stack: &Stack) {
    let w = world(stack).await;
    let mut client = lead(stack, &w).await;

    // RegisterParticipant: the new participant's id is minted per call.
    let (registered, real) = dry_then_real!(
        stack,
        &w,
        &[],
        client,
        register_participant,
        registration(&w.school_a, ParticipantKind::Ect, "1602001", date(2026, 9, 1))
    );
    let ect = real.participant.expect("participant").participant_id;
    assert_eq!(registered.status_changes.len(), 1, "{registered:#?}");
    assert_eq!(registered.status_changes[0].previous_status(), TrainingStatus::Unspecified);
    assert_eq!(registered.status_changes[0].new_status(), TrainingStatus::Active);
    let mentor = enrolled(stack, &w, ParticipantKind::Mentor, "1602002").await;

    let (assigned, _) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        assign_mentor,
        pb::AssignMentorRequest {
            ect_id: ect.clone(),
            mentor_id: mentor.clone(),
            effective_date: date(2026, 9, 2),
            ..Default::default()
        }
    );
    assert!(!assigned.events.is_empty(), "{assigned:#?}");

    // A deferral (the mentor's follows, D9), its return date moved, the return.
    let (deferred, _) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        defer_participant,
        defer(&ect, (2026, 10, 1), (2027, 3, 1))
    );
    assert_eq!(status_changes(&deferred).len(), 2, "ECT and mentor: {deferred:#?}");
    dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        change_return_date,
        pb::ChangeReturnDateRequest {
            participant_id: ect.clone(),
            expected_return_date: date(2027, 4, 1),
            ..Default::default()
        }
    );
    dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        record_return,
        pb::RecordReturnRequest { participant_id: ect.clone(), return_date: date(2026, 11, 16), ..Default::default() }
    );

    // A pause open today: extended, then ended.
    let (paused, _) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        pause_participant,
        pb::PauseParticipantRequest {
            participant_id: ect.clone(),
            start_date: date(2026, 11, 23),
            expected_end_date: date(2026, 12, 14),
            ..Default::default()
        }
    );
    assert!(
        status_changes(&paused).contains(&(
            ect.clone(),
            "2026-11-23".into(),
            TrainingStatus::Active,
            TrainingStatus::Paused,
            String::new()
        )),
        "{paused:#?}"
    );
    dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        extend_pause,
        pb::ExtendPauseRequest {
            participant_id: ect.clone(),
            expected_end_date: date(2026, 12, 21),
            ..Default::default()
        }
    );
    dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        end_pause,
        pb::EndPauseRequest { participant_id: ect.clone(), ..Default::default() }
    );

    // An interim cover by the induction coordinator, and its end.
    let coordinator =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::InductionCoordinator, "", date(2026, 9, 1)))
            .await
            .participant_id;
    let covered = enrolled(stack, &w, ParticipantKind::Ect, "1602003").await;
    dry_then_real!(
        stack,
        &w,
        &[&covered, &coordinator],
        client,
        assign_mentor,
        pb::AssignMentorRequest {
            ect_id: covered.clone(),
            mentor_id: coordinator.clone(),
            interim: true,
            effective_date: date(2026, 10, 1),
            ..Default::default()
        }
    );
    dry_then_real!(
        stack,
        &w,
        &[&covered, &coordinator],
        client,
        end_mentor_cover,
        pb::EndMentorCoverRequest { ect_id: covered.clone(), end_date: date(2026, 11, 2), ..Default::default() }
    );

    // A move to another of the delivery partner's schools.
    let school_c = create_school(&mut admin(stack).await, "300003", &w.dp1, true).await;
    dry_then_real!(
        stack,
        &w,
        &[&covered, &coordinator],
        client,
        move_school,
        pb::MoveSchoolRequest {
            participant_id: covered.clone(),
            school_id: school_c.clone(),
            moved_on: date(2026, 11, 16),
            ..Default::default()
        }
    );

    // A withdrawal (the mentor's follows, W6), and a DPL's approved reinstatement.
    let (withdrawn, real) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        withdraw_participant,
        pb::WithdrawParticipantRequest {
            participant_id: ect.clone(),
            reason: WithdrawalReason::LeftRole as i32,
            withdrawal_date: date(2026, 11, 27),
            ..Default::default()
        }
    );
    assert_eq!(real.cascaded_participant_ids, std::slice::from_ref(&mentor));
    assert_eq!(status_changes(&withdrawn).len(), 2, "ECT and mentor: {withdrawn:#?}");
    let (_, real) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        client,
        request_reinstatement,
        pb::RequestReinstatementRequest { participant_id: ect.clone(), ..Default::default() }
    );
    let request = real.request.expect("request").approval_request_id;
    let mut deciding = dpl(stack, &w).await;
    let (reinstated, _) = dry_then_real!(
        stack,
        &w,
        &[&ect, &mentor],
        deciding,
        decide_request,
        pb::DecideRequestRequest { approval_request_id: request.clone(), approve: Some(true), ..Default::default() }
    );
    assert!(
        status_changes(&reinstated).iter().any(|(id, _, from, to, _)| *id == ect
            && *from == TrainingStatus::Withdrawn
            && *to == TrainingStatus::Active),
        "{reinstated:#?}"
    );
    // X1: an admin records the ECT's DfE id; the gateway hears of it.
    let mut admin_client = admin(stack).await;
    let (tracked, _) = dry_then_real!(
        stack,
        &w,
        &[&ect],
        admin_client,
        set_dfe_participant_id,
        pb::SetDfeParticipantIdRequest {
            participant_id: ect.clone(),
            dfe_participant_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        }
    );
    assert!(
        commands(&tracked).contains(&(ect.clone(), "dfe-gateway".into(), "TrackParticipant".into())),
        "{tracked:#?}"
    );
}

fn refusal(status: &tonic::Status) -> (Code, String, String) {
    let reason = status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default();
    (status.code(), reason, status.message().to_owned())
}

/// AIP-163: a dry run that breaks a rule, or that the caller may not make,
/// is refused as the real call is, and changes nothing.
async fn d13_a_dry_run_breaking_a_rule_is_refused_as_the_real_call(stack: &Stack) {
    let w = world(stack).await;
    let ect = enrolled(stack, &w, ParticipantKind::Ect, "1603001").await;
    let mut client = lead(stack, &w).await;
    wait_until_delivered(stack, DELIVERY).await;
    let before = snapshot(stack, &[&ect]).await;
    // D13: 42 days is a pause.
    let too_short = defer(&ect, (2026, 12, 1), (2027, 1, 12));
    let dry = client
        .defer_participant(pb::DeferParticipantRequest { validate_only: true, ..too_short.clone() })
        .await
        .expect_err("too short");
    let real = client.defer_participant(too_short).await.expect_err("too short");
    assert_eq!(refusal(&dry), refusal(&real));
    assert_eq!(refusal(&dry).0, Code::FailedPrecondition);
    assert_eq!(refusal(&dry).1, "DEFERRAL_TOO_SHORT");
    // Another delivery partner's ECF Lead.
    let mut stranger = stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp2]))).await;
    let long_enough = defer(&ect, (2026, 12, 1), (2027, 3, 1));
    let dry = stranger
        .defer_participant(pb::DeferParticipantRequest { validate_only: true, ..long_enough.clone() })
        .await
        .expect_err("out of scope");
    let real = stranger.defer_participant(long_enough).await.expect_err("out of scope");
    assert_eq!(refusal(&dry), refusal(&real));
    assert_eq!(refusal(&dry).0, Code::PermissionDenied);
    assert_eq!(snapshot(stack, &[&ect]).await, before, "nothing changed");

    // A replayed real call answers its first answer, effects included.
    let keyed = pb::DeferParticipantRequest {
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        ..defer(&ect, (2026, 12, 1), (2027, 3, 1))
    };
    let first = client.defer_participant(keyed.clone()).await.expect("deferred").into_inner();
    let again = client.defer_participant(keyed).await.expect("replayed").into_inner();
    assert!(first.effects.as_ref().is_some_and(|e| !e.events.is_empty()), "{first:#?}");
    assert_eq!(first, again);
    // RetryParkedCommands: nothing is parked, so a dry run would retry none.
    let retried = admin(stack)
        .await
        .retry_parked_commands(pb::RetryParkedCommandsRequest { validate_only: true, ..Default::default() })
        .await
        .expect("dry run")
        .into_inner();
    assert_eq!(retried.retried, 0);
}

/// A peer that cannot be reached is named in `unavailable_services`; the
/// dry run still answers everything else, as the real call would.
async fn a_dry_run_names_a_peer_that_cannot_give_its_outlook(stack: &mut Stack) {
    let w = world(stack).await;
    let ect = enrolled(stack, &w, ParticipantKind::Ect, "1604001").await;
    wait_until_delivered(stack, DELIVERY).await;
    stack.stop_service(ServiceName::ContentRelease).await;
    let mut client = lead(stack, &w).await;
    let request = pb::PauseParticipantRequest {
        participant_id: ect.clone(),
        start_date: date(2026, 11, 23),
        expected_end_date: date(2026, 12, 14),
        validate_only: true,
        ..Default::default()
    };
    let dry = client.pause_participant(request).await.expect("answered without content release").into_inner();
    let effects = dry.effects.expect("effects");
    assert!(effects.validate_only);
    assert!(effects.unavailable_services.iter().any(|s| s == "content-release"), "{effects:#?}");
    assert!(effects.release_outlooks.is_empty());
    assert!(commands(&effects).contains(&(ect.clone(), "content-release".into(), "PlaceHold".into())), "{effects:#?}");
    assert_eq!(dry.participant.expect("participant").status(), TrainingStatus::Paused);
    assert_eq!(
        status_changes(&effects),
        BTreeSet::from([(
            ect.clone(),
            "2026-11-23".into(),
            TrainingStatus::Active,
            TrainingStatus::Paused,
            String::new()
        )])
    );
    stack.restart_service(ServiceName::ContentRelease).await;
}

on_both_backends!(
    d9_a_dry_run_deferral_lists_the_ect_and_mentor_and_changes_nothing,
    every_lifecycle_dry_run_answers_what_the_real_call_does,
    d13_a_dry_run_breaking_a_rule_is_refused_as_the_real_call,
);

on_both_backends_mut!(a_dry_run_names_a_peer_that_cannot_give_its_outlook);
