//! Domain commands as the protobuf requests content release and payments
//! receive, ready for the outbox: each gets a fresh `command_id`, its target
//! and the full gRPC method path.

use crate::domain::ParticipantKind;
use crate::domain::lifecycle::{Command, HoldKind, Programme};
use prost::Message;
use steplab_platform::date::to_proto;
use steplab_platform::outbox::NewCommand;
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::payments::v1 as payments;

pub const CONTENT: &str = "content-release";
pub const PAYMENTS: &str = "payments";
/// The DfE gateway (X1-X9).
pub const DFE_GATEWAY: &str = "dfe-gateway";

const CONTENT_SERVICE: &str = "/steplab.content.v1.ContentReleaseService/";
const PAYMENTS_SERVICE: &str = "/steplab.payments.v1.PaymentsService/";

fn kind(kind: ParticipantKind) -> i32 {
    match kind {
        ParticipantKind::Ect => common::ParticipantKind::Ect as i32,
        ParticipantKind::Mentor => common::ParticipantKind::Mentor as i32,
        ParticipantKind::InductionCoordinator => common::ParticipantKind::InductionCoordinator as i32,
    }
}

fn hold_kind(kind: HoldKind) -> i32 {
    match kind {
        HoldKind::Pause => content::HoldKind::Pause as i32,
        HoldKind::Deferral => content::HoldKind::Deferral as i32,
    }
}

/// The outbox row for `command`, with `command_id`.
pub fn to_outbox(command: Command, command_id: String) -> NewCommand {
    let id = command_id.clone();
    let (participant_id, target, rpc, payload) = match command {
        Command::EnrolLearner { participant_id, programme, release_start, school_id, delivery_partner_id } => {
            let programme = match programme {
                Programme::Ect => common::Programme::Ect,
                Programme::Mentor => common::Programme::Mentor,
            } as i32;
            let request = content::EnrolLearnerRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                programme,
                release_start: Some(to_proto(release_start)),
                school_id,
                delivery_partner_id,
            };
            (participant_id, CONTENT, "EnrolLearner", request.encode_to_vec())
        }
        Command::EnrolPayee {
            participant_id,
            kind: k,
            delivery_partner_id,
            school_id,
            schedule,
            cohort,
            funding_eligible,
        } => {
            let request = payments::EnrolPayeeRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                delivery_partner_id,
                schedule,
                cohort,
                funding_eligible: Some(funding_eligible),
                participant_kind: kind(k),
                school_id,
            };
            (participant_id, PAYMENTS, "EnrolPayee", request.encode_to_vec())
        }
        Command::PlaceHold { participant_id, hold_id, kind: k, from, until } => {
            let request = content::PlaceHoldRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                hold_id,
                kind: hold_kind(k),
                start_date: Some(to_proto(from)),
                until: Some(to_proto(until)),
            };
            (participant_id, CONTENT, "PlaceHold", request.encode_to_vec())
        }
        Command::LiftHold { participant_id, hold_id, on } => {
            let request = content::LiftHoldRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                hold_id,
                on: Some(to_proto(on)),
            };
            (participant_id, CONTENT, "LiftHold", request.encode_to_vec())
        }
        Command::SuspendAccrual { participant_id, suspension_id, from, until } => {
            let request = payments::SuspendAccrualRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                suspension_id,
                start_date: Some(to_proto(from)),
                until: Some(to_proto(until)),
            };
            (participant_id, PAYMENTS, "SuspendAccrual", request.encode_to_vec())
        }
        Command::ResumeAccrual { participant_id, suspension_id, on } => {
            let request = payments::ResumeAccrualRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                suspension_id,
                on: Some(to_proto(on)),
            };
            (participant_id, PAYMENTS, "ResumeAccrual", request.encode_to_vec())
        }
        Command::RevokeAccess { participant_id, on } => {
            let request = content::RevokeAccessRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                effective_date: Some(to_proto(on)),
            };
            (participant_id, CONTENT, "RevokeAccess", request.encode_to_vec())
        }
        Command::RestoreAccess { participant_id, on } => {
            let request = content::RestoreAccessRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                effective_date: Some(to_proto(on)),
            };
            (participant_id, CONTENT, "RestoreAccess", request.encode_to_vec())
        }
        Command::EndAccrual { participant_id, on } => {
            let request = payments::EndAccrualRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                effective_date: Some(to_proto(on)),
            };
            (participant_id, PAYMENTS, "EndAccrual", request.encode_to_vec())
        }
        Command::ReopenAccrual { participant_id, on } => {
            let request = payments::ReopenAccrualRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                effective_date: Some(to_proto(on)),
            };
            (participant_id, PAYMENTS, "ReopenAccrual", request.encode_to_vec())
        }
        Command::SetReleaseStart { participant_id, release_start } => {
            let request = content::SetReleaseStartRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                release_start: Some(to_proto(release_start)),
            };
            (participant_id, CONTENT, "SetReleaseStart", request.encode_to_vec())
        }
        Command::SetAreaCovered { participant_id, covered, from } => {
            let request = payments::SetAreaCoveredRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                covered: Some(covered),
                start_date: Some(to_proto(from)),
            };
            (participant_id, PAYMENTS, "SetAreaCovered", request.encode_to_vec())
        }
        Command::ContentScope { participant_id, school_id, delivery_partner_id, from } => {
            let request = content::SetParticipantScopeRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                school_id,
                delivery_partner_id,
                start_date: Some(to_proto(from)),
            };
            (participant_id, CONTENT, "SetParticipantScope", request.encode_to_vec())
        }
        Command::PaymentsScope { participant_id, school_id, delivery_partner_id, from } => {
            let request = payments::SetParticipantScopeRequest {
                idempotency_key: id,
                participant_id: participant_id.clone(),
                school_id,
                delivery_partner_id,
                start_date: Some(to_proto(from)),
            };
            (participant_id, PAYMENTS, "SetParticipantScope", request.encode_to_vec())
        }
    };
    let service = if target == CONTENT { CONTENT_SERVICE } else { PAYMENTS_SERVICE };
    NewCommand {
        command_id,
        participant_id,
        target: target.to_owned(),
        method: format!("{service}{rpc}"),
        payload,
        request_id: None,
    }
}

const DFE_GATEWAY_SERVICE: &str = "/steplab.dfe.v1.DfeGatewayService/";

/// The outbox row of a DfE gateway command (X1, X4), with `command_id`.
pub fn gateway_to_outbox(command: crate::domain::dfe::GatewayCommand, command_id: String) -> NewCommand {
    use crate::domain::dfe::{GatewayCommand, StatusChange};
    use steplab_proto::steplab::dfe::v1 as dfe;
    let (participant_id, rpc, payload) = match command {
        GatewayCommand::Track { participant_id, mentor, trn, cohort, schedule, dfe_participant_id } => {
            let course = if mentor { dfe::Course::EcfMentor } else { dfe::Course::EcfInduction } as i32;
            let request = dfe::TrackParticipantRequest {
                idempotency_key: command_id.clone(),
                participant_id: participant_id.clone(),
                course,
                dfe_participant_id: dfe_participant_id.unwrap_or_default(),
                trn,
                cohort,
                schedule_identifier: schedule,
            };
            (participant_id, "TrackParticipant", request.encode_to_vec())
        }
        GatewayCommand::Report { participant_id, change, reason, effective_date, schedule, cohort } => {
            let kind = match change {
                StatusChange::Defer => dfe::StatusChangeKind::Defer,
                StatusChange::Resume => dfe::StatusChangeKind::Resume,
                StatusChange::Withdraw => dfe::StatusChangeKind::Withdraw,
                StatusChange::ChangeSchedule => dfe::StatusChangeKind::ChangeSchedule,
            } as i32;
            let request = dfe::ReportStatusChangeRequest {
                idempotency_key: command_id.clone(),
                participant_id: participant_id.clone(),
                kind,
                reason,
                effective_date: Some(to_proto(effective_date)),
                schedule_identifier: schedule,
                cohort,
                event_id: String::new(),
            };
            (participant_id, "ReportStatusChange", request.encode_to_vec())
        }
    };
    NewCommand {
        command_id,
        participant_id,
        target: DFE_GATEWAY.to_owned(),
        method: format!("{DFE_GATEWAY_SERVICE}{rpc}"),
        payload,
        request_id: None,
    }
}
