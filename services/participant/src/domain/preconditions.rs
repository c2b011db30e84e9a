//! Rules checked before a use case decides anything: the refusals that do not
//! belong to one participant's lifecycle but to what a caller may ask of a
//! record at all (a DfE id, a date before registration, an approval request
//! already waiting or already decided).

use super::lifecycle;
use super::records::{ApprovalRequest, RequestedChange};
use super::requests::RequestStatus;
use super::view::ParticipantRecord;
use super::{ParticipantKind, ParticipantView, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// X1: only ECTs and mentors are reported to the DfE, so only they have a DfE id.
pub fn reported_to_dfe(record: &ParticipantRecord) -> Result<(), RuleViolation> {
    if record.kind == ParticipantKind::InductionCoordinator {
        return Err(RuleViolation::new(
            "NOT_REPORTED_TO_DFE",
            "induction coordinators are not reported to the DfE: only ECTs and mentors have a DfE id",
        )
        .with("participant_id", &record.id)
        .with("kind", record.kind.as_str().to_uppercase()));
    }
    Ok(())
}

/// The participant as they were on `as_of`, which cannot precede their registration.
pub fn view_on(record: &ParticipantRecord, as_of: NaiveDate) -> Result<ParticipantView, RuleViolation> {
    record.as_of(as_of).ok_or_else(|| {
        RuleViolation::new(
            "BEFORE_REGISTRATION",
            format!(
                "participant {} was registered on {}: ask for a date on or after it",
                record.id, record.registered_on
            ),
        )
        .with("participant_id", &record.id)
        .with("date", as_of)
        .with("registered_on", record.registered_on)
    })
}

/// W9, C2, W6, D3: whether the change can be asked for this participant at
/// all; a DPL decides the rest.
pub fn may_ask_for(
    participant: &ParticipantRecord,
    today_view: &ParticipantView,
    change: RequestedChange,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    match change {
        RequestedChange::Reinstatement { .. } if today_view.status != TrainingStatus::Withdrawn => {
            Err(RuleViolation::new("NOT_WITHDRAWN", "the participant is not withdrawn: nothing to reinstate")
                .with("participant_id", &participant.id)
                .with("status", today_view.status.name()))
        }
        RequestedChange::Reinstatement { .. } => Ok(()),
        RequestedChange::ReleaseStartChange { release_start } => {
            lifecycle::check_release_start_request(participant, release_start, today)
        }
        RequestedChange::LongDeferral { latest_return } => {
            lifecycle::check_long_deferral_request(participant, latest_return, today)
        }
        RequestedChange::KeepMentor if participant.kind != ParticipantKind::Mentor => Err(RuleViolation::new(
            "NOT_A_MENTOR",
            format!(
                "participant {} is {}: only a mentor can be kept (W6)",
                participant.id,
                participant.kind.describe()
            ),
        )
        .with("participant_id", &participant.id)
        .with("kind", participant.kind.as_str().to_uppercase())),
        RequestedChange::KeepMentor => Ok(()),
    }
}

/// One request of a kind waits for a DPL at a time.
pub fn none_pending(already_pending: bool) -> Result<(), RuleViolation> {
    if already_pending {
        return Err(RuleViolation::new(
            "REQUEST_ALREADY_PENDING",
            "the same request for this participant is already waiting for a DPL: see ListRequests",
        )
        .with("status", "PENDING"));
    }
    Ok(())
}

/// A request is decided once.
pub fn still_pending(request: &ApprovalRequest) -> Result<(), RuleViolation> {
    if request.status != RequestStatus::Pending {
        return Err(RuleViolation::new(
            "REQUEST_ALREADY_DECIDED",
            format!("request {} was already {}", request.id, request.status.as_str()),
        )
        .with("participant_id", &request.participant_id)
        .with("approval_request_id", &request.id)
        .with("status", request.status.as_str()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::ApprovalRequest;

    fn request(status: RequestStatus) -> ApprovalRequest {
        ApprovalRequest {
            id: "r1".into(),
            change: RequestedChange::KeepMentor,
            status,
            participant_id: "p1".into(),
            delivery_partner_id: "dp1".into(),
            note: String::new(),
            requested_by: "lead".into(),
            created_at: chrono::NaiveDateTime::default(),
            decision: None,
        }
    }

    #[test]
    fn a_request_is_decided_once() {
        assert!(still_pending(&request(RequestStatus::Pending)).is_ok());
        let refusal = still_pending(&request(RequestStatus::Approved)).expect_err("decided");
        assert_eq!(refusal.reason, "REQUEST_ALREADY_DECIDED");
        assert_eq!(refusal.message, "request r1 was already approved");
    }

    #[test]
    fn one_request_of_a_kind_waits_at_a_time() {
        assert!(none_pending(false).is_ok());
        assert_eq!(none_pending(true).expect_err("pending").reason, "REQUEST_ALREADY_PENDING");
    }
}
