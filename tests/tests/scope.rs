//! Issue 14 over real gRPC, on SQLite and on PostgreSQL: a caller learns
//! nothing about another delivery partner by naming its ids (AIP-211), and
//! two callers never share an idempotency key.
//!
//! For every RPC that takes an id, a scoped caller (ECF Lead, induction
//! coordinator, DPL of delivery partner 1) gets word for word the same
//! answer for delivery partner 2's id as for an id that names nothing, and
//! no answer names delivery partner 2's ids. An admin, whose scope covers
//! everything, is still told NOT_FOUND.

use steplab_platform::auth::{self, Role, TokenRequest};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, WithdrawalReason};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{World, date, register, registration, world};
use steplab_tests::{Participants, Stack, on_both_backends};
use tonic::{Code, Status};

/// Delivery partner 1's and 2's participants, as the probes need them.
struct Scene {
    w: World,
    ect_a: String,
    mentor_a: String,
    ect_b: String,
    mentor_b: String,
    /// A pending reinstatement request of delivery partner 2.
    request_b: String,
}

impl Scene {
    /// Delivery partner 2's ids: no answer to delivery partner 1 names one.
    fn foreign_ids(&self) -> [&str; 5] {
        [&self.ect_b, &self.mentor_b, &self.request_b, &self.w.school_b, &self.w.dp2]
    }
}

fn unknown_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn scene(stack: &Stack) -> Scene {
    let w = world(stack).await;
    let ect_a = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1400001", None)).await;
    let mentor_a = register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Mentor, "1400002", None)).await;
    let ect_b = register(stack, &w.dp2, registration(&w.school_b, ParticipantKind::Ect, "2400001", None)).await;
    let mentor_b = register(stack, &w.dp2, registration(&w.school_b, ParticipantKind::Mentor, "2400002", None)).await;
    let leaver = register(stack, &w.dp2, registration(&w.school_b, ParticipantKind::Ect, "2400003", None)).await;
    let mut lead_b = stack.participants(Some(&stack.token(Role::EcfLead, None, &[&w.dp2]))).await;
    lead_b
        .withdraw_participant(pb::WithdrawParticipantRequest {
            validate_only: false,
            replacement_induction_coordinator_id: String::new(),
            participant_id: leaver.participant_id.clone(),
            reason: WithdrawalReason::LeftTeachingProfession as i32,
            withdrawal_date: None,
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .expect("withdraw in dp2");
    let request_b = lead_b
        .request_reinstatement(pb::RequestReinstatementRequest {
            validate_only: false,
            with_mentor: false,
            participant_id: leaver.participant_id,
            note: "back after all".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("request in dp2")
        .into_inner()
        .request
        .expect("request")
        .approval_request_id;
    // Content release and payments enrol delivery partner 2's learners too.
    steplab_tests::wait_until_delivered(stack, std::time::Duration::from_secs(30)).await;
    Scene {
        w,
        ect_a: ect_a.participant_id,
        mentor_a: mentor_a.participant_id,
        ect_b: ect_b.participant_id,
        mentor_b: mentor_b.participant_id,
        request_b,
    }
}

/// The scoped callers of delivery partner 1.
fn scoped_callers(stack: &Stack, w: &World) -> Vec<(&'static str, String)> {
    vec![
        ("ecf_lead", stack.token(Role::EcfLead, None, &[&w.dp1])),
        ("induction_coordinator", stack.token(Role::InductionCoordinator, Some(&w.school_a), &[])),
        ("dpl", stack.token(Role::Dpl, None, &[&w.dp1])),
    ]
}

/// The refusal of an id outside the caller's scope and that of an id that
/// names nothing are one and the same, and name none of `foreign` ids.
fn assert_indistinguishable(what: &str, outside: Result<(), Status>, nothing: Result<(), Status>, foreign: &[&str]) {
    let outside = outside.expect_err(what);
    let nothing = nothing.expect_err(what);
    assert_eq!(outside.code(), Code::PermissionDenied, "{what}: {outside:?}");
    assert_eq!(
        (outside.code(), outside.message(), outside.details()),
        (nothing.code(), nothing.message(), nothing.details()),
        "{what}: another partner's id and an unknown one are told apart"
    );
    for id in foreign {
        assert!(!outside.message().contains(id), "{what} names another partner's id {id}: {}", outside.message());
    }
}

fn on(day: &str) -> Option<Date> {
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date");
    use chrono::Datelike;
    date(d.year(), d.month() as i32, d.day() as i32)
}

/// Every participant RPC that acts on one participant, by id.
#[derive(Debug, Clone, Copy)]
enum OnParticipant {
    Get,
    History,
    SyncStatus,
    Pause,
    ExtendPause,
    EndPause,
    Defer,
    ChangeReturnDate,
    RecordReturn,
    Withdraw,
    MoveSchool,
    AssignMentorToEct,
    EndMentorCover,
    RequestReinstatement,
    RequestReleaseStartChange,
    RequestKeepMentor,
    RequestLongDeferral,
    /// X1: admin only.
    SetDfeParticipantId,
}

const ON_PARTICIPANT: [OnParticipant; 18] = [
    OnParticipant::Get,
    OnParticipant::History,
    OnParticipant::SyncStatus,
    OnParticipant::Pause,
    OnParticipant::ExtendPause,
    OnParticipant::EndPause,
    OnParticipant::Defer,
    OnParticipant::ChangeReturnDate,
    OnParticipant::RecordReturn,
    OnParticipant::Withdraw,
    OnParticipant::MoveSchool,
    OnParticipant::AssignMentorToEct,
    OnParticipant::EndMentorCover,
    OnParticipant::RequestReinstatement,
    OnParticipant::RequestReleaseStartChange,
    OnParticipant::RequestKeepMentor,
    OnParticipant::RequestLongDeferral,
    OnParticipant::SetDfeParticipantId,
];

async fn call(c: &mut Participants, rpc: OnParticipant, id: &str, s: &Scene) -> Result<(), Status> {
    let participant_id = id.to_owned();
    let idempotency_key = String::new();
    match rpc {
        OnParticipant::Get => {
            c.get_participant(pb::GetParticipantRequest { participant_id, as_of: None }).await.map(drop)
        }
        OnParticipant::History => c
            .get_participant_history(pb::GetParticipantHistoryRequest {
                page_size: 0,
                page_token: String::new(),
                participant_id,
            })
            .await
            .map(drop),
        OnParticipant::SyncStatus => c
            .get_sync_status(pb::GetSyncStatusRequest {
                page_size: 0,
                page_token: String::new(),
                participant_id,
                parked_only: false,
            })
            .await
            .map(drop),
        OnParticipant::Pause => c
            .pause_participant(pb::PauseParticipantRequest {
                validate_only: false,
                alongside_ect_id: String::new(),
                participant_id,
                start_date: on("2026-11-28"),
                expected_end_date: on("2026-12-20"),
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::ExtendPause => c
            .extend_pause(pb::ExtendPauseRequest {
                validate_only: false,
                participant_id,
                expected_end_date: on("2026-12-30"),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::EndPause => c
            .end_pause(pb::EndPauseRequest { validate_only: false, participant_id, end_date: None, idempotency_key })
            .await
            .map(drop),
        OnParticipant::Defer => c
            .defer_participant(pb::DeferParticipantRequest {
                validate_only: false,
                participant_id,
                reason: DeferralReason::ParentalLeave as i32,
                deferral_date: on("2026-11-28"),
                expected_return_date: on("2027-04-19"),
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::ChangeReturnDate => c
            .change_return_date(pb::ChangeReturnDateRequest {
                validate_only: false,
                participant_id,
                expected_return_date: on("2027-05-04"),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::RecordReturn => c
            .record_return(pb::RecordReturnRequest {
                validate_only: false,
                participant_id,
                return_date: None,
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::Withdraw => c
            .withdraw_participant(pb::WithdrawParticipantRequest {
                validate_only: false,
                replacement_induction_coordinator_id: String::new(),
                participant_id,
                reason: WithdrawalReason::LeftTeachingProfession as i32,
                withdrawal_date: None,
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::MoveSchool => c
            .move_school(pb::MoveSchoolRequest {
                validate_only: false,
                keep_mentor: false,
                participant_id,
                school_id: s.w.school_a.clone(),
                moved_on: None,
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::AssignMentorToEct => c
            .assign_mentor(pb::AssignMentorRequest {
                validate_only: false,
                ect_id: participant_id,
                mentor_id: s.mentor_a.clone(),
                interim: false,
                effective_date: None,
                until: None,
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::EndMentorCover => c
            .end_mentor_cover(pb::EndMentorCoverRequest {
                validate_only: false,
                ect_id: participant_id,
                end_date: None,
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::RequestReinstatement => c
            .request_reinstatement(pb::RequestReinstatementRequest {
                validate_only: false,
                with_mentor: false,
                participant_id,
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::RequestReleaseStartChange => c
            .request_release_start_change(pb::RequestReleaseStartChangeRequest {
                validate_only: false,
                participant_id,
                release_start: on("2027-01-04"),
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::RequestKeepMentor => c
            .request_keep_mentor(pb::RequestKeepMentorRequest {
                validate_only: false,
                mentor_id: participant_id,
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::RequestLongDeferral => c
            .request_long_deferral(pb::RequestLongDeferralRequest {
                validate_only: false,
                participant_id,
                latest_return_date: on("2028-01-04"),
                note: String::new(),
                idempotency_key,
            })
            .await
            .map(drop),
        OnParticipant::SetDfeParticipantId => c
            .set_dfe_participant_id(pb::SetDfeParticipantIdRequest {
                idempotency_key: String::new(),
                validate_only: false,
                participant_id,
                dfe_participant_id: "3452b1a6-cbaa-422f-9ca9-40afa28583a2".into(),
            })
            .await
            .map(drop),
    }
}

async fn scope_participant_rpcs_answer_another_partners_participant_as_an_unknown_one(stack: &Stack) {
    let s = scene(stack).await;
    let foreign = s.foreign_ids();
    for (who, token) in scoped_callers(stack, &s.w) {
        let mut c = stack.participants(Some(&token)).await;
        for rpc in ON_PARTICIPANT {
            let target = if matches!(rpc, OnParticipant::RequestKeepMentor) { &s.mentor_b } else { &s.ect_b };
            let outside = call(&mut c, rpc, target, &s).await;
            let nothing = call(&mut c, rpc, &unknown_id(), &s).await;
            assert_indistinguishable(&format!("{who} {rpc:?}"), outside, nothing, &foreign);
        }
    }
    // An admin reaches everything, so is told what does not exist.
    let mut admin = stack.participants(Some(&stack.admin_token())).await;
    for rpc in
        [OnParticipant::Get, OnParticipant::Pause, OnParticipant::AssignMentorToEct, OnParticipant::SetDfeParticipantId]
    {
        let err = call(&mut admin, rpc, &unknown_id(), &s).await.expect_err("unknown");
        assert_eq!(err.code(), Code::NotFound, "admin {rpc:?}: {err:?}");
    }
}

async fn scope_a_mentor_school_or_request_of_another_partner_is_answered_as_an_unknown_one(stack: &Stack) {
    let s = scene(stack).await;
    let foreign = s.foreign_ids();
    for (who, token) in scoped_callers(stack, &s.w) {
        let mut c = stack.participants(Some(&token)).await;
        let interim = who == "induction_coordinator";
        // AssignMentor: an ECT, a mentor elsewhere and an unknown id as the mentor.
        let assign = |mentor_id: String| pb::AssignMentorRequest {
            validate_only: false,
            ect_id: s.ect_a.clone(),
            mentor_id,
            interim,
            effective_date: None,
            until: None,
            idempotency_key: String::new(),
        };
        let nothing = c.assign_mentor(assign(unknown_id())).await.map(drop);
        for mentor in [&s.mentor_b, &s.ect_b] {
            let outside = c.assign_mentor(assign(mentor.clone())).await.map(drop);
            assert_indistinguishable(&format!("{who} AssignMentor"), outside, nothing.clone(), &foreign);
        }
        // MoveSchool into another partner's school.
        let to = |school_id: String| pb::MoveSchoolRequest {
            validate_only: false,
            keep_mentor: false,
            participant_id: s.ect_a.clone(),
            school_id,
            moved_on: None,
            idempotency_key: String::new(),
        };
        let outside = c.move_school(to(s.w.school_b.clone())).await.map(drop);
        let nothing = c.move_school(to(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} MoveSchool"), outside, nothing, &foreign);
        // RegisterParticipant at another partner's school.
        let at = |school: String| registration(&school, ParticipantKind::Ect, "1400009", None);
        let outside = c.register_participant(at(s.w.school_b.clone())).await.map(drop);
        let nothing = c.register_participant(at(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} RegisterParticipant"), outside, nothing, &foreign);
        // ListParticipants filtered by another partner's school.
        let filter = |school_id: String| pb::ListParticipantsRequest { school_id, ..Default::default() };
        let outside = c.list_participants(filter(s.w.school_b.clone())).await.map(drop);
        let nothing = c.list_participants(filter(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} ListParticipants"), outside, nothing, &foreign);
        // DecideRequest on another partner's request.
        let decide = |approval_request_id: String| pb::DecideRequestRequest {
            idempotency_key: String::new(),
            validate_only: false,
            approval_request_id,
            approve: Some(true),
            note: String::new(),
        };
        let outside = c.decide_request(decide(s.request_b.clone())).await.map(drop);
        let nothing = c.decide_request(decide(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} DecideRequest"), outside, nothing, &foreign);
        // ListNotifications filtered by another delivery partner.
        let notes =
            |delivery_partner_id: String| pb::ListNotificationsRequest { delivery_partner_id, ..Default::default() };
        let outside = c.list_notifications(notes(s.w.dp2.clone())).await.map(drop);
        let nothing = c.list_notifications(notes(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} ListNotifications"), outside, nothing, &foreign);
    }
    let mut admin = stack.participants(Some(&stack.admin_token())).await;
    let err = admin
        .decide_request(pb::DecideRequestRequest {
            idempotency_key: String::new(),
            validate_only: false,
            approval_request_id: unknown_id(),
            approve: Some(true),
            note: String::new(),
        })
        .await
        .expect_err("unknown request");
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .list_participants(pb::ListParticipantsRequest { school_id: unknown_id(), ..Default::default() })
        .await
        .expect_err("unknown school");
    assert_eq!(err.code(), Code::NotFound);
}

async fn scope_a_trn_held_by_another_partner_is_already_registered_without_naming_the_holder(stack: &Stack) {
    let s = scene(stack).await;
    let taken = |school: &str| registration(school, ParticipantKind::Ect, "2400001", None);
    let mut lead_a = stack.participants(Some(&stack.token(Role::EcfLead, None, &[&s.w.dp1]))).await;
    let err = lead_a.register_participant(taken(&s.w.school_a)).await.expect_err("trn of dp2");
    assert_eq!(err.code(), Code::AlreadyExists);
    for id in s.foreign_ids() {
        assert!(!err.message().contains(id), "names {id}: {}", err.message());
    }
    // Within scope the holder is named, so the caller can go to them.
    let mut lead_b = stack.participants(Some(&stack.token(Role::EcfLead, None, &[&s.w.dp2]))).await;
    let err = lead_b.register_participant(taken(&s.w.school_b)).await.expect_err("own trn");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&s.ect_b), "{}", err.message());
}

async fn scope_release_state_and_attendance_answer_another_partners_learner_as_an_unknown_one(stack: &Stack) {
    let s = scene(stack).await;
    let foreign = s.foreign_ids();
    for (who, token) in scoped_callers(stack, &s.w) {
        let mut c = stack.content(Some(&token)).await;
        let state = |participant_id: String| content::GetReleaseStateRequest { participant_id, as_of: None };
        let outside = c.get_release_state(state(s.ect_b.clone())).await.map(drop);
        let nothing = c.get_release_state(state(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} GetReleaseState"), outside, nothing, &foreign);
        let attend = |participant_id: String| content::RecordAttendanceRequest {
            participant_id,
            event_id: "ect-clinic-1".into(),
            attended_on: on("2026-11-27"),
            idempotency_key: String::new(),
        };
        let outside = c.record_attendance(attend(s.ect_b.clone())).await.map(drop);
        let nothing = c.record_attendance(attend(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} RecordAttendance"), outside, nothing, &foreign);
    }
    let err = stack
        .content(Some(&stack.admin_token()))
        .await
        .get_release_state(content::GetReleaseStateRequest { participant_id: unknown_id(), as_of: None })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
}

async fn scope_accrual_engagement_and_statements_answer_another_partner_as_an_unknown_one(stack: &Stack) {
    let s = scene(stack).await;
    let foreign = s.foreign_ids();
    for (who, token) in scoped_callers(stack, &s.w) {
        let mut c = stack.payments(Some(&token)).await;
        let accrual = |participant_id: String| payments::GetAccrualRequest { participant_id, as_of: None };
        let outside = c.get_accrual(accrual(s.ect_b.clone())).await.map(drop);
        let nothing = c.get_accrual(accrual(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} GetAccrual"), outside, nothing, &foreign);
        let engage = |participant_id: String| payments::RecordEngagementRequest {
            participant_id,
            occurred_on: on("2026-11-27"),
            kind: payments::EngagementKind::ModuleCompleted as i32,
            idempotency_key: "probe-1".into(),
            note: String::new(),
        };
        let outside = c.record_engagement(engage(s.ect_b.clone())).await.map(drop);
        let nothing = c.record_engagement(engage(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} RecordEngagement"), outside, nothing, &foreign);
        let statement = |delivery_partner_id: String| payments::GetStatementRequest {
            window: "ecf-standard-september/2026/started".into(),
            delivery_partner_id,
            page_size: 10,
            page_token: String::new(),
        };
        let outside = c.get_statement(statement(s.w.dp2.clone())).await.map(drop);
        let nothing = c.get_statement(statement(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} GetStatement"), outside, nothing, &foreign);
        // X5: the DfE gateway's answers are the service role's alone.
        let state = |participant_id: String| payments::RecordDeclarationStateRequest {
            idempotency_key: "probe-2".into(),
            participant_id,
            declaration_type: "started".into(),
            dfe_declaration_id: "probe-3".into(),
            state: "submitted".into(),
        };
        let outside = c.record_declaration_state(state(s.ect_b.clone())).await.map(drop);
        let nothing = c.record_declaration_state(state(unknown_id())).await.map(drop);
        assert_indistinguishable(&format!("{who} RecordDeclarationState"), outside, nothing, &foreign);
    }
    let err = stack
        .payments(Some(&stack.admin_token()))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: unknown_id(), as_of: None })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
}

/// An ECF Lead token of `dp` with this `sub`.
fn lead_token(sub: &str, dp: &str) -> String {
    auth::mint_hs256(
        steplab_tests::SECRET.as_bytes(),
        &TokenRequest {
            sub: sub.into(),
            role: Role::EcfLead,
            school_id: None,
            delivery_partner_ids: vec![dp.into()],
            ttl: chrono::Duration::hours(1),
        },
    )
    .expect("mint token")
}

async fn idempotency_callers_whose_sub_and_request_id_run_together_do_not_share_a_key(stack: &Stack) {
    let s = scene(stack).await;
    // "lead/x" + "r1" and "lead" + "x/r1" both read "lead/x/r1" when joined by a slash.
    let first = lead_token("lead/x", &s.w.dp1);
    let second = lead_token("lead", &s.w.dp1);
    let mut one = stack.participants(Some(&first)).await;
    let mut two = stack.participants(Some(&second)).await;
    let mut by_one = registration(&s.w.school_a, ParticipantKind::Ect, "1400101", None);
    by_one.idempotency_key = "r1".into();
    let mut by_two = registration(&s.w.school_a, ParticipantKind::Ect, "1400102", None);
    by_two.idempotency_key = "x/r1".into();
    let registered = |r: tonic::Response<pb::RegisterParticipantResponse>| {
        r.into_inner().participant.expect("participant").participant_id
    };
    let a = registered(one.register_participant(by_one.clone()).await.expect("first caller"));
    let b = registered(two.register_participant(by_two.clone()).await.expect("second caller is not a repeat"));
    assert_ne!(a, b);
    // Each caller's own repeat still returns its own first answer.
    assert_eq!(registered(one.register_participant(by_one).await.expect("repeat")), a);
    assert_eq!(registered(two.register_participant(by_two).await.expect("repeat")), b);

    // Payments keeps its keys the same way.
    let engage = |request_id: &str| payments::RecordEngagementRequest {
        participant_id: s.ect_a.clone(),
        occurred_on: on("2026-11-27"),
        kind: payments::EngagementKind::ModuleCompleted as i32,
        idempotency_key: request_id.into(),
        note: String::new(),
    };
    let mut pay_one = stack.payments(Some(&first)).await;
    let mut pay_two = stack.payments(Some(&second)).await;
    let answer = pay_one.record_engagement(engage("r1")).await.expect("first caller").into_inner();
    assert!(!answer.duplicate);
    let answer = pay_two.record_engagement(engage("x/r1")).await.expect("second caller is not a repeat").into_inner();
    assert!(!answer.duplicate, "the second caller was answered with the first caller's reply");
    assert!(pay_two.record_engagement(engage("x/r1")).await.expect("repeat").into_inner().duplicate);
}

on_both_backends!(
    scope_participant_rpcs_answer_another_partners_participant_as_an_unknown_one,
    scope_a_mentor_school_or_request_of_another_partner_is_answered_as_an_unknown_one,
    scope_a_trn_held_by_another_partner_is_already_registered_without_naming_the_holder,
    scope_release_state_and_attendance_answer_another_partners_learner_as_an_unknown_one,
    scope_accrual_engagement_and_statements_answer_another_partner_as_an_unknown_one,
    idempotency_callers_whose_sub_and_request_id_run_together_do_not_share_a_key,
);
