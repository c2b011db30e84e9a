//! The content-release service over real gRPC, on SQLite and on PostgreSQL:
//! the curriculum (R1), the receivers and their idempotency, roles and scope,
//! field errors, the release engine read back through GetReleaseState (P5,
//! P6, D5, D8, W5, W9), progress (R3), attendance (D11) and the feed (R4).
//! "Today" is pinned to 2026-11-28.

use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{CommandAck, Programme};
use steplab_proto::steplab::content::v1 as pb;
use steplab_tests::{Content, Stack, on_both_backends};
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn d(s: &str) -> Date {
    let mut parts = s.split('-').map(|p| p.parse::<i32>().expect("number"));
    Date { year: parts.next().expect("year"), month: parts.next().expect("month"), day: parts.next().expect("day") }
}

fn on(s: &str) -> Option<Date> {
    Some(d(s))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A learner's place: their school and delivery partner.
#[derive(Clone)]
struct Place {
    school: String,
    dp: String,
}

fn place() -> Place {
    Place { school: new_id(), dp: new_id() }
}

async fn service(stack: &Stack) -> Content {
    stack.content(Some(&stack.token(Role::Service, None, &[]))).await
}

async fn enrol(client: &mut Content, participant: &str, start: &str, at: &Place) -> pb::EnrolLearnerResponse {
    client
        .enrol_learner(pb::EnrolLearnerRequest {
            idempotency_key: new_id(),
            participant_id: participant.into(),
            programme: Programme::Ect as i32,
            release_start: on(start),
            school_id: at.school.clone(),
            delivery_partner_id: at.dp.clone(),
        })
        .await
        .expect("enrol")
        .into_inner()
}

fn hold_request(participant: &str, hold_id: &str, kind: pb::HoldKind, from: &str, until: &str) -> pb::PlaceHoldRequest {
    pb::PlaceHoldRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        hold_id: hold_id.into(),
        kind: kind as i32,
        start_date: on(from),
        until: on(until),
    }
}

async fn place_hold(client: &mut Content, request: pb::PlaceHoldRequest) -> CommandAck {
    client.place_hold(request).await.expect("place hold").into_inner().ack.expect("ack")
}

async fn state(client: &mut Content, participant: &str, as_of: &str) -> pb::GetReleaseStateResponse {
    client
        .get_release_state(pb::GetReleaseStateRequest { participant_id: participant.into(), as_of: on(as_of) })
        .await
        .expect("release state")
        .into_inner()
}

/// (module_id, release_date, optional) of each released module.
fn released(state: &pb::GetReleaseStateResponse) -> Vec<(String, Date, bool)> {
    state
        .released_modules
        .iter()
        .map(|m| (m.module_id.clone(), m.release_date.expect("date"), m.optional_module))
        .collect()
}

fn release_date_of(state: &pb::GetReleaseStateResponse, module: &str) -> Option<Date> {
    state.released_modules.iter().find(|m| m.module_id == module).and_then(|m| m.release_date)
}

async fn revoke(client: &mut Content, participant: &str, from: &str) {
    client
        .revoke_access(pb::RevokeAccessRequest {
            idempotency_key: new_id(),
            participant_id: participant.into(),
            effective_date: on(from),
        })
        .await
        .expect("revoke");
}

async fn restore(client: &mut Content, participant: &str, from: &str) -> Result<(), Status> {
    client
        .restore_access(pb::RestoreAccessRequest {
            idempotency_key: new_id(),
            participant_id: participant.into(),
            effective_date: on(from),
        })
        .await
        .map(|_| ())
}

async fn r1_get_curriculum_serves_both_programmes_to_any_authenticated_role(stack: &Stack) {
    let ic = stack.token(Role::InductionCoordinator, Some("school"), &[]);
    let mut client = stack.content(Some(&ic)).await;
    let ect = client
        .get_curriculum(pb::GetCurriculumRequest { programme: Programme::Ect as i32 })
        .await
        .expect("ect curriculum")
        .into_inner();
    assert_eq!(ect.modules.len(), 42);
    assert_eq!((ect.clinics.len(), ect.conferences.len()), (6, 3));
    assert_eq!(ect.length_days, 728);
    assert!(ect.modules.windows(2).all(|w| w[0].release_offset_days <= w[1].release_offset_days));
    assert_eq!(ect.conferences.iter().map(|c| c.sequence).collect::<Vec<_>>(), [1, 2, 3]);
    let mentor = client
        .get_curriculum(pb::GetCurriculumRequest { programme: Programme::Mentor as i32 })
        .await
        .expect("mentor curriculum")
        .into_inner();
    assert_eq!((mentor.clinics.len(), mentor.conferences.len()), (3, 2));
    let err = client.get_curriculum(pb::GetCurriculumRequest { programme: 0 }).await.expect_err("unspecified");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["programme"]);
}

async fn enrol_learner_is_idempotent_and_a_different_enrolment_is_already_exists(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    let request = pb::EnrolLearnerRequest {
        idempotency_key: new_id(),
        participant_id: participant.clone(),
        programme: Programme::Ect as i32,
        release_start: on("2026-09-01"),
        school_id: at.school.clone(),
        delivery_partner_id: at.dp.clone(),
    };
    let first = client.enrol_learner(request.clone()).await.expect("enrol").into_inner();
    let ack = first.ack.expect("ack");
    assert_eq!((ack.idempotency_key.as_str(), ack.duplicate), (request.idempotency_key.as_str(), false));
    let again = client.enrol_learner(request.clone()).await.expect("repeat").into_inner();
    assert!(again.ack.expect("ack").duplicate, "a repeat is acknowledged as a duplicate");
    // The same enrolment under a new command_id: acknowledged, nothing changes.
    let mut same = request.clone();
    same.idempotency_key = new_id();
    let ack = client.enrol_learner(same).await.expect("identical").into_inner().ack.expect("ack");
    assert!(!ack.duplicate);
    let mut moved = request.clone();
    moved.idempotency_key = new_id();
    moved.release_start = on("2027-01-01");
    let err = client.enrol_learner(moved).await.expect_err("another start");
    assert_eq!(err.code(), Code::AlreadyExists);
    // Reusing a command_id for a different command is refused.
    let mut reused = request.clone();
    reused.programme = Programme::Mentor as i32;
    let err = client.enrol_learner(reused).await.expect_err("command_id reused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");
    let now = state(&mut client, &participant, "2026-11-28").await;
    assert_eq!(now.programme, Programme::Ect as i32);
    assert_eq!(now.release_start, on("2026-09-01"));
    assert_eq!(now.access, pb::Access::Granted as i32);
    assert_eq!(now.released_modules.len(), 7, "ect-01..07 by 28 November");
    assert_eq!(now.planned_end_date, on("2028-08-29"));
}

async fn roles_every_receiver_refuses_a_non_service_token_and_changes_nothing(stack: &Stack) {
    let mut svc = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut svc, &participant, "2026-09-01", &at).await;
    for token in [
        stack.admin_token(),
        stack.token(Role::InductionCoordinator, Some(&at.school), &[]),
        stack.token(Role::EcfLead, None, &[&at.dp]),
        stack.token(Role::Dpl, None, &[&at.dp]),
    ] {
        let mut client = stack.content(Some(&token)).await;
        let p = participant.clone();
        let denied = [
            client
                .enrol_learner(pb::EnrolLearnerRequest {
                    idempotency_key: new_id(),
                    participant_id: new_id(),
                    programme: Programme::Ect as i32,
                    release_start: on("2026-09-01"),
                    school_id: at.school.clone(),
                    delivery_partner_id: at.dp.clone(),
                })
                .await
                .map(|_| ()),
            client
                .place_hold(hold_request(&p, "h1", pb::HoldKind::Pause, "2026-10-12", "2026-11-02"))
                .await
                .map(|_| ()),
            client
                .lift_hold(pb::LiftHoldRequest {
                    idempotency_key: new_id(),
                    participant_id: p.clone(),
                    hold_id: "h1".into(),
                    on: on("2026-10-20"),
                })
                .await
                .map(|_| ()),
            client
                .revoke_access(pb::RevokeAccessRequest {
                    idempotency_key: new_id(),
                    participant_id: p.clone(),
                    effective_date: on("2026-11-01"),
                })
                .await
                .map(|_| ()),
            client
                .restore_access(pb::RestoreAccessRequest {
                    idempotency_key: new_id(),
                    participant_id: p.clone(),
                    effective_date: on("2026-11-01"),
                })
                .await
                .map(|_| ()),
            client
                .set_release_start(pb::SetReleaseStartRequest {
                    idempotency_key: new_id(),
                    participant_id: p.clone(),
                    release_start: on("2026-08-01"),
                })
                .await
                .map(|_| ()),
            client
                .set_participant_scope(pb::SetParticipantScopeRequest {
                    idempotency_key: new_id(),
                    participant_id: p.clone(),
                    school_id: new_id(),
                    delivery_partner_id: new_id(),
                    start_date: on("2026-11-01"),
                })
                .await
                .map(|_| ()),
        ];
        for (i, answer) in denied.into_iter().enumerate() {
            let err = answer.expect_err("non-service command");
            assert_eq!(err.code(), Code::PermissionDenied, "receiver {i}: {err:?}");
        }
    }
    let unchanged = state(&mut svc, &participant, "2026-11-28").await;
    assert!(unchanged.active_holds.is_empty());
    assert_eq!(unchanged.access, pb::Access::Granted as i32);
    assert_eq!(unchanged.release_start, on("2026-09-01"));
    let ic = stack.token(Role::InductionCoordinator, Some(&at.school), &[]);
    assert!(
        stack
            .content(Some(&ic))
            .await
            .get_release_state(pb::GetReleaseStateRequest { participant_id: participant.clone(), as_of: None })
            .await
            .is_ok(),
        "the scope did not move"
    );
}

async fn invalid_commands_name_every_bad_field_and_change_nothing(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2026-09-01", &at).await;
    let mut request = hold_request(&participant, "h1", pb::HoldKind::Unspecified, "2026-10-12", "2026-10-01");
    request.idempotency_key = String::new();
    let err = client.place_hold(request).await.expect_err("invalid hold");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["idempotency_key", "kind", "until"]);
    let err = client
        .enrol_learner(pb::EnrolLearnerRequest {
            idempotency_key: new_id(),
            participant_id: "has spaces in it".into(),
            programme: 0,
            release_start: Some(Date { year: 2026, month: 2, day: 30 }),
            school_id: at.school.clone(),
            delivery_partner_id: String::new(),
        })
        .await
        .expect_err("invalid enrolment");
    assert_eq!(fields(&err), ["participant_id", "programme", "release_start", "delivery_partner_id"]);
    let err = client
        .revoke_access(pb::RevokeAccessRequest {
            idempotency_key: new_id(),
            participant_id: participant.clone(),
            effective_date: None,
        })
        .await
        .expect_err("no date");
    assert_eq!(fields(&err), ["effective_date"]);
    let err = client
        .get_release_state(pb::GetReleaseStateRequest {
            participant_id: String::new(),
            as_of: Some(Date { year: 2026, month: 13, day: 1 }),
        })
        .await
        .expect_err("invalid read");
    assert_eq!(fields(&err), ["participant_id", "as_of"]);
    let now = state(&mut client, &participant, "2026-11-28").await;
    assert!(now.active_holds.is_empty());
    assert_eq!(now.access, pb::Access::Granted as i32);
}

async fn not_found_for_a_learner_never_enrolled_or_a_hold_never_placed(stack: &Stack) {
    let mut client = service(stack).await;
    let stranger = new_id();
    let err = client
        .place_hold(hold_request(&stranger, "h1", pb::HoldKind::Pause, "2026-10-12", "2026-11-02"))
        .await
        .expect_err("not enrolled");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_release_state(pb::GetReleaseStateRequest { participant_id: stranger.clone(), as_of: None })
        .await
        .expect_err("not enrolled");
    assert_eq!(err.code(), Code::NotFound);
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2026-09-01", &at).await;
    let err = client
        .lift_hold(pb::LiftHoldRequest {
            idempotency_key: new_id(),
            participant_id: participant.clone(),
            hold_id: "never-placed".into(),
            on: on("2026-10-01"),
        })
        .await
        .expect_err("no such hold");
    assert_eq!(err.code(), Code::NotFound);
}

async fn p6_a_three_week_pause_releases_its_modules_at_the_end_marked_optional(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2026-09-01", &at).await;
    let plain_end = state(&mut client, &participant, "2030-01-01").await;
    place_hold(&mut client, hold_request(&participant, "pause-1", pb::HoldKind::Pause, "2026-10-12", "2026-11-02"))
        .await;
    // P5: during the pause nothing new; the modules due come at its end.
    let during = state(&mut client, &participant, "2026-10-30").await;
    assert_eq!(released(&during).len(), 3);
    assert_eq!(during.active_holds.len(), 1);
    let hold = &during.active_holds[0];
    assert_eq!((hold.hold_id.as_str(), hold.kind), ("pause-1", pb::HoldKind::Pause as i32));
    let next = during.next_module.expect("next");
    assert_eq!((next.module_id.as_str(), next.release_date, next.optional_module), ("ect-04", on("2026-11-02"), true));
    // P6: at the end, optional catch-up; later modules and the end do not move.
    let after = state(&mut client, &participant, "2026-11-10").await;
    assert_eq!(
        released(&after)[3..],
        [
            ("ect-04".to_string(), d("2026-11-02"), true),
            ("ect-05".to_string(), d("2026-11-02"), true),
            ("ect-06".to_string(), d("2026-11-10"), false),
        ]
    );
    assert!(after.active_holds.is_empty());
    let end = state(&mut client, &participant, "2030-01-01").await;
    assert_eq!(release_date_of(&end, "ect-42"), release_date_of(&plain_end, "ect-42"));
    assert_eq!(end.planned_end_date, plain_end.planned_end_date);
}

async fn p4_a_hold_placed_again_replaces_its_dates_and_a_repeated_command_changes_nothing(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2026-09-01", &at).await;
    let first = hold_request(&participant, "pause-1", pb::HoldKind::Pause, "2026-10-12", "2026-10-26");
    assert!(!place_hold(&mut client, first.clone()).await.duplicate);
    // P4: the pause is extended: same hold_id, new command, new end.
    let extended = hold_request(&participant, "pause-1", pb::HoldKind::Pause, "2026-10-12", "2026-11-02");
    place_hold(&mut client, extended).await;
    // The first command arrives again (an outbox retry): nothing changes.
    assert!(place_hold(&mut client, first).await.duplicate);
    let during = state(&mut client, &participant, "2026-10-20").await;
    assert_eq!(during.active_holds.len(), 1);
    assert_eq!(during.active_holds[0].until, on("2026-11-02"));
    assert_eq!(release_date_of(&state(&mut client, &participant, "2026-11-28").await, "ect-05"), on("2026-11-02"));
    // A hold_id cannot change kind.
    let err = client
        .place_hold(hold_request(&participant, "pause-1", pb::HoldKind::Deferral, "2026-10-12", "2027-01-01"))
        .await
        .expect_err("kind change");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "HOLD_KIND_MISMATCH");
    // LiftHold: ending early moves the catch-up forward; a later date changes nothing.
    let lift = |on_day: &str| pb::LiftHoldRequest {
        idempotency_key: new_id(),
        participant_id: participant.clone(),
        hold_id: "pause-1".into(),
        on: on(on_day),
    };
    client.lift_hold(lift("2026-10-20")).await.expect("end early");
    client.lift_hold(lift("2026-12-01")).await.expect("after the end: acknowledged");
    let after = state(&mut client, &participant, "2026-11-28").await;
    assert_eq!(release_date_of(&after, "ect-04"), on("2026-10-20"));
    assert_eq!(release_date_of(&after, "ect-05"), on("2026-10-27"), "due after the new end");
    let until = state(&mut client, &participant, "2026-10-19").await.active_holds[0].until;
    assert_eq!(until, on("2026-10-20"), "the lift date is the hold's until");
    // Lifted on or before its start: cancelled, never in effect.
    client.lift_hold(lift("2026-10-12")).await.expect("cancel");
    assert!(state(&mut client, &participant, "2026-10-12").await.active_holds.is_empty());
    assert_eq!(release_date_of(&state(&mut client, &participant, "2026-11-28").await, "ect-04"), on("2026-10-13"));
}

async fn d5_a_nine_month_deferral_after_ten_modules_moves_the_rest_later(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2026-09-01", &at).await;
    let plain = state(&mut client, &participant, "2030-01-01").await;
    assert_eq!(release_date_of(&plain, "ect-11"), on("2027-02-02"));
    // Parental leave from the day module 11 was due, back 9 months later.
    place_hold(
        &mut client,
        hold_request(&participant, "deferral-1", pb::HoldKind::Deferral, "2027-02-02", "2027-11-02"),
    )
    .await;
    let during = state(&mut client, &participant, "2027-10-01").await;
    assert_eq!(released(&during).len(), 10, "nothing released during the deferral");
    assert_eq!(during.active_holds[0].kind, pb::HoldKind::Deferral as i32);
    let next = during.next_module.expect("next");
    assert_eq!((next.module_id.as_str(), next.release_date), ("ect-11", on("2027-11-02")));
    let back = state(&mut client, &participant, "2027-11-02").await;
    assert_eq!(released(&back)[10], ("ect-11".to_string(), d("2027-11-02"), false));
    let end = state(&mut client, &participant, "2031-01-01").await;
    // 2028-07-04 planned; D5 (version 2): the rest runs in term time from
    // the return, with the term days it still had to wait.
    assert_eq!(release_date_of(&plain, "ect-42"), on("2028-07-04"));
    assert_eq!(release_date_of(&end, "ect-42"), on("2029-04-18"));
    assert_eq!(end.planned_end_date, on("2029-05-05"), "the planned end moves too (D5)");
    assert_eq!(state(&mut client, &participant, "2027-11-02").await.schedule, "ecf-standard-january");
    for m in &end.released_modules {
        let date = m.release_date.expect("date");
        let inside =
            (date.year, date.month, date.day) >= (2027, 2, 2) && (date.year, date.month, date.day) < (2027, 11, 2);
        assert!(!inside, "{} released during the deferral", m.module_id);
    }
}

async fn d8_a_participant_deferred_before_their_start_gets_nothing_until_the_restart(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2027-01-01", &at).await;
    place_hold(
        &mut client,
        hold_request(&participant, "deferral-1", pb::HoldKind::Deferral, "2026-11-28", "2027-04-01"),
    )
    .await;
    let before = state(&mut client, &participant, "2027-03-31").await;
    assert!(before.released_modules.is_empty());
    assert!(before.resume_module.is_none());
    let next = before.next_module.expect("next");
    assert_eq!((next.module_id.as_str(), next.release_date), ("ect-01", on("2027-04-01")));
    let restart = state(&mut client, &participant, "2027-04-15").await;
    assert_eq!(
        released(&restart),
        [("ect-01".to_string(), d("2027-04-01"), false), ("ect-02".to_string(), d("2027-04-15"), false),]
    );
}

async fn w9_a_pause_withdrawal_reinstatement_and_deferral_read_back_through_release_state(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2026-09-01", &at).await;
    // Paused 12 Oct - 2 Nov; opened ect-03 on 9 Oct.
    place_hold(&mut client, hold_request(&participant, "pause-1", pb::HoldKind::Pause, "2026-10-12", "2026-11-02"))
        .await;
    client
        .record_module_access(pb::RecordModuleAccessRequest {
            participant_id: participant.clone(),
            module_id: "ect-03".into(),
            accessed_on: on("2026-10-09"),
            idempotency_key: String::new(),
        })
        .await
        .expect("access");
    let back = state(&mut client, &participant, "2026-11-02").await;
    assert_eq!(back.resume_module.expect("resume").module_id, "ect-03", "P6: continue from the last module");
    // W5: withdrawn on 20 November.
    revoke(&mut client, &participant, "2026-11-20").await;
    let withdrawn = state(&mut client, &participant, "2026-11-25").await;
    assert_eq!(withdrawn.access, pb::Access::Revoked as i32);
    assert_eq!(released(&withdrawn).len(), 6, "released before the withdrawal stay listed");
    assert!(withdrawn.next_module.is_none());
    assert!(withdrawn.planned_end_date.is_none());
    let err = client
        .record_module_access(pb::RecordModuleAccessRequest {
            participant_id: participant.clone(),
            module_id: "ect-02".into(),
            accessed_on: on("2026-11-25"),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("no access");
    assert_eq!(reason(&err), "ACCESS_REVOKED");
    let err = restore(&mut client, &participant, "2026-11-19").await.expect_err("before the revocation");
    assert_eq!(reason(&err), "RESTORE_BEFORE_REVOCATION");
    // A second revocation while revoked changes nothing.
    revoke(&mut client, &participant, "2026-11-22").await;
    // W9: reinstated on 27 November; ect-07 was due 24 Nov, 4 days after the withdrawal.
    restore(&mut client, &participant, "2026-11-27").await.expect("restore");
    let reinstated = state(&mut client, &participant, "2026-11-28").await;
    assert_eq!(reinstated.access, pb::Access::Granted as i32);
    let next = reinstated.next_module.expect("next");
    assert_eq!((next.module_id.as_str(), next.release_date), ("ect-07", on("2026-12-01")));
    assert_eq!(reinstated.resume_module.expect("resume").module_id, "ect-03");
    assert_eq!(reinstated.planned_end_date, on("2028-09-08"), "the term days left, from the reinstatement (W9, D5)");
    // Restoring again changes nothing.
    restore(&mut client, &participant, "2026-11-28").await.expect("already granted");
    // D5: a deferral planned for next year moves what is left later again.
    place_hold(
        &mut client,
        hold_request(&participant, "deferral-1", pb::HoldKind::Deferral, "2027-03-01", "2027-06-01"),
    )
    .await;
    let later = state(&mut client, &participant, "2031-01-01").await;
    assert_eq!(later.planned_end_date, on("2028-11-24"), "the term days left, from the return (D5)");
    assert_eq!(release_date_of(&later, "ect-42"), on("2028-11-07"));
    // The past is unchanged by facts about the future.
    assert_eq!(released(&state(&mut client, &participant, "2026-11-25").await), released(&withdrawn));
}

async fn c2_set_release_start_moves_the_schedule_but_never_takes_released_modules_away(stack: &Stack) {
    let mut client = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut client, &participant, "2027-01-01", &at).await;
    assert!(state(&mut client, &participant, "2026-11-28").await.released_modules.is_empty());
    let set = |start: &str| pb::SetReleaseStartRequest {
        idempotency_key: new_id(),
        participant_id: participant.clone(),
        release_start: on(start),
    };
    client.set_release_start(set("2026-11-02")).await.expect("earlier start");
    let now = state(&mut client, &participant, "2026-11-28").await;
    assert_eq!(now.release_start, on("2026-11-02"));
    assert_eq!(
        released(&now),
        [("ect-01".to_string(), d("2026-11-02"), false), ("ect-02".to_string(), d("2026-11-16"), false),]
    );
    let err = client.set_release_start(set("2027-01-01")).await.expect_err("later start");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "RELEASE_ALREADY_STARTED");
    assert_eq!(state(&mut client, &participant, "2026-11-28").await.release_start, on("2026-11-02"));
}

async fn roles_release_state_follows_the_learners_school_and_delivery_partner(stack: &Stack) {
    let mut svc = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut svc, &participant, "2026-09-01", &at).await;
    let read = |token: String| {
        let participant = participant.clone();
        async move {
            stack
                .content(Some(&token))
                .await
                .get_release_state(pb::GetReleaseStateRequest { participant_id: participant, as_of: None })
                .await
                .map(|r| r.into_inner())
        }
    };
    let answer = read(stack.token(Role::InductionCoordinator, Some(&at.school), &[])).await.expect("own school");
    assert_eq!(answer.as_of, on("2026-11-28"), "unset as_of means today");
    let other_school = new_id();
    let err = read(stack.token(Role::InductionCoordinator, Some(&other_school), &[])).await.expect_err("other school");
    assert_eq!(err.code(), Code::PermissionDenied);
    read(stack.token(Role::EcfLead, None, &[&at.dp])).await.expect("own dp");
    let err = read(stack.token(Role::EcfLead, None, &["another-dp"])).await.expect_err("other dp");
    assert_eq!(err.code(), Code::PermissionDenied);
    read(stack.token(Role::Dpl, None, &["another-dp", &at.dp])).await.expect("dpl of the dp");
    read(stack.admin_token()).await.expect("admin");
    // S1: moved to another school from 1 November; a move next year is not yet in effect.
    let new_dp = new_id();
    svc.set_participant_scope(pb::SetParticipantScopeRequest {
        idempotency_key: new_id(),
        participant_id: participant.clone(),
        school_id: other_school.clone(),
        delivery_partner_id: new_dp.clone(),
        start_date: on("2026-11-01"),
    })
    .await
    .expect("move");
    svc.set_participant_scope(pb::SetParticipantScopeRequest {
        idempotency_key: new_id(),
        participant_id: participant.clone(),
        school_id: new_id(),
        delivery_partner_id: new_id(),
        start_date: on("2027-01-01"),
    })
    .await
    .expect("future move");
    read(stack.token(Role::InductionCoordinator, Some(&other_school), &[])).await.expect("new school");
    read(stack.token(Role::EcfLead, None, &[&new_dp])).await.expect("new dp");
    let err = read(stack.token(Role::InductionCoordinator, Some(&at.school), &[])).await.expect_err("old school");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = svc
        .set_participant_scope(pb::SetParticipantScopeRequest {
            idempotency_key: new_id(),
            participant_id: new_id(),
            school_id: new_id(),
            delivery_partner_id: new_id(),
            start_date: on("2026-11-01"),
        })
        .await
        .expect_err("never enrolled");
    assert_eq!(err.code(), Code::NotFound);
}

async fn r3_module_access_sets_where_the_learner_resumes(stack: &Stack) {
    let mut svc = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut svc, &participant, "2026-09-01", &at).await;
    let access = |module: &str, day: &str, request_id: &str| pb::RecordModuleAccessRequest {
        participant_id: participant.clone(),
        module_id: module.into(),
        accessed_on: on(day),
        idempotency_key: request_id.into(),
    };
    let answer = svc.record_module_access(access("ect-02", "2026-10-01", "r-1")).await.expect("access").into_inner();
    assert_eq!(answer.last_accessed_module_id, "ect-02");
    assert_eq!(answer.resume_module.expect("resume").module_id, "ect-02");
    let admin = stack.admin_token();
    let mut admin_client = stack.content(Some(&admin)).await;
    admin_client.record_module_access(access("ect-05", "2026-11-01", "")).await.expect("admin correction");
    // The same request_id again: the first answer, nothing recorded.
    let repeat = svc.record_module_access(access("ect-02", "2026-10-01", "r-1")).await.expect("repeat").into_inner();
    assert_eq!(repeat.last_accessed_module_id, "ect-02");
    let now = state(&mut svc, &participant, "2026-11-28").await;
    assert_eq!(now.last_accessed_module_id, "ect-05");
    assert_eq!(now.resume_module.expect("resume").module_id, "ect-05");
    let then = state(&mut svc, &participant, "2026-10-15").await;
    assert_eq!(then.last_accessed_module_id, "ect-02", "as of an earlier date");
    for (request, code, why) in [
        (access("ect-08", "2026-11-28", ""), "MODULE_NOT_RELEASED", "due 8 December"),
        (access("ect-01", "2026-11-29", ""), "ACCESSED_ON_IN_FUTURE", "tomorrow"),
    ] {
        let err = svc.record_module_access(request).await.expect_err(why);
        assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, code));
    }
    let err = svc.record_module_access(access("mentor-01", "2026-10-01", "")).await.expect_err("not in the programme");
    assert_eq!(err.code(), Code::NotFound);
    let lead = stack.token(Role::EcfLead, None, &[&at.dp]);
    let err = stack
        .content(Some(&lead))
        .await
        .record_module_access(access("ect-01", "2026-10-01", ""))
        .await
        .expect_err("ecf lead");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(state(&mut svc, &participant, "2026-11-28").await.last_accessed_module_id, "ect-05");
}

async fn d11_clinics_in_any_order_conferences_in_order_kept_across_a_deferral(stack: &Stack) {
    let mut svc = service(stack).await;
    let (participant, at) = (new_id(), place());
    enrol(&mut svc, &participant, "2026-09-01", &at).await;
    let lead_token = stack.token(Role::EcfLead, None, &[&at.dp]);
    let mut lead = stack.content(Some(&lead_token)).await;
    let attend = |event: &str, day: &str| pb::RecordAttendanceRequest {
        participant_id: participant.clone(),
        event_id: event.into(),
        attended_on: on(day),
        idempotency_key: String::new(),
    };
    lead.record_attendance(attend("ect-clinic-4", "2026-09-10")).await.expect("clinic 4 first");
    lead.record_attendance(attend("ect-clinic-1", "2026-09-12")).await.expect("then clinic 1");
    let err =
        lead.record_attendance(attend("ect-conference-2", "2026-09-15")).await.expect_err("conference 2 before 1");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "CONFERENCE_OUT_OF_ORDER");
    svc.record_attendance(attend("ect-conference-1", "2026-09-20")).await.expect("conference 1");
    // Deferred October; back 1 November: conference 1 still counts.
    place_hold(&mut svc, hold_request(&participant, "deferral-1", pb::HoldKind::Deferral, "2026-10-01", "2026-11-01"))
        .await;
    let recorded = lead
        .record_attendance(attend("ect-conference-2", "2026-11-15"))
        .await
        .expect("conference 2 after the return")
        .into_inner();
    assert_eq!(recorded.attendance.expect("attendance").attended_on, on("2026-11-15"));
    // Recorded again: the first record stands.
    let again = lead.record_attendance(attend("ect-clinic-4", "2026-11-20")).await.expect("repeat").into_inner();
    assert_eq!(again.attendance.expect("attendance").attended_on, on("2026-09-10"));
    let now = state(&mut svc, &participant, "2026-11-28").await;
    let events: Vec<&str> = now.attendances.iter().map(|a| a.event_id.as_str()).collect();
    assert_eq!(events, ["ect-clinic-4", "ect-clinic-1", "ect-conference-1", "ect-conference-2"]);
    let other_lead = stack.token(Role::EcfLead, None, &["another-dp"]);
    let err = stack
        .content(Some(&other_lead))
        .await
        .record_attendance(attend("ect-clinic-2", "2026-11-20"))
        .await
        .expect_err("another dp's lead");
    assert_eq!(err.code(), Code::PermissionDenied);
    let ic = stack.token(Role::InductionCoordinator, Some(&at.school), &[]);
    let err =
        stack.content(Some(&ic)).await.record_attendance(attend("ect-clinic-2", "2026-11-20")).await.expect_err("ic");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = lead.record_attendance(attend("ect-clinic-2", "2026-12-01")).await.expect_err("future");
    assert_eq!(reason(&err), "ATTENDED_ON_IN_FUTURE");
    // No attendance for a withdrawn participant.
    revoke(&mut svc, &participant, "2026-11-21").await;
    let err = lead.record_attendance(attend("ect-clinic-2", "2026-11-22")).await.expect_err("withdrawn");
    assert_eq!(reason(&err), "ACCESS_REVOKED");
    assert_eq!(state(&mut svc, &participant, "2026-11-28").await.attendances.len(), 4);
}

async fn r4_list_releases_pages_the_feed_in_a_stable_order(stack: &Stack) {
    let mut svc = service(stack).await;
    let at = place();
    let mut learners: Vec<String> = (0..3).map(|_| new_id()).collect();
    for learner in &learners {
        enrol(&mut svc, learner, "2026-09-01", &at).await;
    }
    learners.sort();
    // The third learner's second module falls in a pause and comes at its end.
    place_hold(&mut svc, hold_request(&learners[2], "pause-1", pb::HoldKind::Pause, "2026-09-14", "2026-09-21")).await;
    let list = |token: String| pb::ListReleasesRequest {
        start_date: on("2026-09-01"),
        end_date: on("2026-09-15"),
        page_size: 2,
        page_token: token,
    };
    let mut all = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = svc.list_releases(list(token)).await.expect("page").into_inner();
        assert!(page.releases.len() <= 2);
        all.extend(page.releases);
        pages += 1;
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let got: Vec<(String, String, Date, bool)> = all
        .into_iter()
        .map(|r| (r.participant_id, r.module_id, r.release_date.expect("date"), r.optional_module))
        .collect();
    let row = |i: usize, module: &str, day: &str| (learners[i].clone(), module.to_string(), d(day), false);
    assert_eq!(
        got,
        [
            row(0, "ect-01", "2026-09-01"),
            row(1, "ect-01", "2026-09-01"),
            row(2, "ect-01", "2026-09-01"),
            row(0, "ect-02", "2026-09-15"),
            row(1, "ect-02", "2026-09-15"),
        ]
    );
    let later = svc
        .list_releases(pb::ListReleasesRequest {
            start_date: on("2026-09-21"),
            end_date: on("2026-09-21"),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("the pause end")
        .into_inner();
    assert_eq!(later.releases.len(), 1);
    assert!(later.releases[0].optional_module);
    // The feed agrees with GetReleaseState.
    let one = state(&mut svc, &learners[2], "2030-01-01").await;
    let feed = svc
        .list_releases(pb::ListReleasesRequest {
            start_date: on("2026-01-01"),
            end_date: on("2030-01-01"),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("whole feed")
        .into_inner();
    let mine: Vec<(String, Date, bool)> = feed
        .releases
        .iter()
        .filter(|r| r.participant_id == learners[2])
        .map(|r| (r.module_id.clone(), r.release_date.expect("date"), r.optional_module))
        .collect();
    let mut expected = released(&one);
    expected.sort_by_key(|(m, day, _)| ((day.year, day.month, day.day), m.clone()));
    assert_eq!(mine, expected);
    // A token from another range, a backwards range and a negative size are refused.
    let first = svc.list_releases(list(String::new())).await.expect("page").into_inner();
    let err = svc
        .list_releases(pb::ListReleasesRequest {
            start_date: on("2026-09-01"),
            end_date: on("2026-09-30"),
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .expect_err("token of another range");
    assert_eq!(fields(&err), ["page_token"]);
    let err = svc
        .list_releases(pb::ListReleasesRequest {
            start_date: on("2026-09-02"),
            end_date: on("2026-09-01"),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .expect_err("backwards");
    assert_eq!(fields(&err), ["end_date", "page_size"]);
    let lead = stack.token(Role::EcfLead, None, &[&at.dp]);
    let err = stack.content(Some(&lead)).await.list_releases(list(String::new())).await.expect_err("not for leads");
    assert_eq!(err.code(), Code::PermissionDenied);
    stack
        .content(Some(&stack.admin_token()))
        .await
        .list_releases(list(String::new()))
        .await
        .expect("admin reads the feed");
}

on_both_backends!(
    r1_get_curriculum_serves_both_programmes_to_any_authenticated_role,
    enrol_learner_is_idempotent_and_a_different_enrolment_is_already_exists,
    roles_every_receiver_refuses_a_non_service_token_and_changes_nothing,
    invalid_commands_name_every_bad_field_and_change_nothing,
    not_found_for_a_learner_never_enrolled_or_a_hold_never_placed,
    p6_a_three_week_pause_releases_its_modules_at_the_end_marked_optional,
    p4_a_hold_placed_again_replaces_its_dates_and_a_repeated_command_changes_nothing,
    d5_a_nine_month_deferral_after_ten_modules_moves_the_rest_later,
    d8_a_participant_deferred_before_their_start_gets_nothing_until_the_restart,
    w9_a_pause_withdrawal_reinstatement_and_deferral_read_back_through_release_state,
    c2_set_release_start_moves_the_schedule_but_never_takes_released_modules_away,
    roles_release_state_follows_the_learners_school_and_delivery_partner,
    r3_module_access_sets_where_the_learner_resumes,
    d11_clinics_in_any_order_conferences_in_order_kept_across_a_deferral,
    r4_list_releases_pages_the_feed_in_a_stable_order,
);
