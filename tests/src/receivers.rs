//! Requests and clients for the receivers' command RPCs (content release,
//! payments, the DfE gateway), shared by the tests that send them one by
//! one (tests/dfe_gateway.rs), in batches (tests/batches.rs) and as
//! previews (tests/previews.rs).

use crate::{Content, Payments, Stack};
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{ParticipantKind, Programme};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::payments::v1 as payments;
use tonic::Status;
use tonic_types::StatusExt;

/// `YYYY-MM-DD` as a proto date.
pub fn on(s: &str) -> Option<Date> {
    let mut parts = s.split('-').map(|p| p.parse::<i32>().expect("number"));
    Some(Date {
        year: parts.next().expect("year"),
        month: parts.next().expect("month"),
        day: parts.next().expect("day"),
    })
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The fields a refusal's BadRequest names.
pub fn fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

pub async fn content_client(stack: &Stack, role: Role) -> Content {
    stack.content(Some(&stack.token(role, None, &[]))).await
}

pub fn enrol_learner(participant: &str) -> content::EnrolLearnerRequest {
    content::EnrolLearnerRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        programme: Programme::Ect as i32,
        release_start: on("2026-09-01"),
        school_id: new_id(),
        delivery_partner_id: new_id(),
    }
}

pub fn hold(participant: &str, kind: content::HoldKind, from: &str, until: &str) -> content::PlaceHoldRequest {
    content::PlaceHoldRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        hold_id: new_id(),
        kind: kind as i32,
        start_date: on(from),
        until: on(until),
    }
}

pub async fn release_state(
    client: &mut Content,
    participant: &str,
) -> Result<content::GetReleaseStateResponse, Status> {
    client
        .get_release_state(content::GetReleaseStateRequest { participant_id: participant.into(), as_of: None })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn payments_client(stack: &Stack, role: Role) -> Payments {
    stack.payments(Some(&stack.token(role, None, &[]))).await
}

pub fn enrol_payee(participant: &str) -> payments::EnrolPayeeRequest {
    payments::EnrolPayeeRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        delivery_partner_id: new_id(),
        schedule: "ecf-standard-september".into(),
        cohort: 2025,
        funding_eligible: Some(true),
        participant_kind: ParticipantKind::Ect as i32,
        school_id: new_id(),
    }
}

pub fn suspension(participant: &str, from: &str, until: &str) -> payments::SuspendAccrualRequest {
    payments::SuspendAccrualRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        suspension_id: new_id(),
        start_date: on(from),
        until: on(until),
    }
}

pub async fn accrual(
    client: &mut Payments,
    participant: &str,
    as_of: &str,
) -> Result<payments::GetAccrualResponse, Status> {
    client
        .get_accrual(payments::GetAccrualRequest { participant_id: participant.into(), as_of: on(as_of) })
        .await
        .map(tonic::Response::into_inner)
}

/// TrackParticipant for an ECT or mentor (`course`), with the DfE id
/// `dfe_id` (empty: not known yet).
pub fn track_participant(participant: &str, course: dfe::Course, dfe_id: &str) -> dfe::TrackParticipantRequest {
    dfe::TrackParticipantRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        course: course as i32,
        dfe_participant_id: dfe_id.into(),
        trn: "1234567".into(),
        cohort: 2026,
        schedule_identifier: "ecf-standard-september".into(),
    }
}

/// ReportStatusChange of `kind`, effective 2026-11-02, with the reason (a
/// deferral's or a withdrawal's) or the schedule (a schedule change) it
/// needs.
pub fn status_change(participant: &str, kind: dfe::StatusChangeKind) -> dfe::ReportStatusChangeRequest {
    let reason = match kind {
        dfe::StatusChangeKind::Defer => "parental-leave",
        dfe::StatusChangeKind::Withdraw => "left-role",
        _ => "",
    };
    let schedule = matches!(kind, dfe::StatusChangeKind::ChangeSchedule);
    dfe::ReportStatusChangeRequest {
        idempotency_key: new_id(),
        participant_id: participant.into(),
        kind: kind as i32,
        reason: reason.into(),
        effective_date: on("2026-11-02"),
        schedule_identifier: if schedule { "ecf-standard-january".into() } else { String::new() },
        cohort: if schedule { 2026 } else { 0 },
        event_id: String::new(),
    }
}
