//! What a change wrote, as the ChangeEffects a caller reads: the outbox rows
//! decoded back into the commands content release, payments and the DfE
//! gateway receive, and the training statuses that change.

use super::answers::{kind_to_proto, status_to_proto};
use crate::commands::{CONTENT, DFE_GATEWAY, PAYMENTS};
use crate::domain::{ParticipantKind, TrainingStatus};
use chrono::NaiveDate;
use prost::Message;
use steplab_platform::date;
use steplab_platform::outbox::OutboxRow;
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::dfe::v1 as dfe;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;

/// Why an outbox row could not be read back as a command.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableCommand {
    #[error("{target} has no command {rpc} this service sends")]
    Unknown { target: String, rpc: String },
    #[error("{target} {rpc}: the payload does not decode: {error}")]
    Undecodable { target: String, rpc: String, error: prost::DecodeError },
}

/// The command an outbox row carries, decoded by its target and RPC.
pub fn downstream_command(row: &OutboxRow) -> Result<pb::DownstreamCommand, UnreadableCommand> {
    use pb::downstream_command::Command;
    let rpc = row.rpc();
    let payload = row.payload.as_slice();
    let undecodable = |error| UnreadableCommand::Undecodable { target: row.target.clone(), rpc: rpc.to_owned(), error };
    let command = match row.target.as_str() {
        CONTENT => Command::Release(content::ReleaseCommand {
            command: Some(release(rpc, payload).map_err(undecodable)?.ok_or_else(|| unknown(row))?),
        }),
        PAYMENTS => Command::Accrual(payments::AccrualCommand {
            command: Some(accrual(rpc, payload).map_err(undecodable)?.ok_or_else(|| unknown(row))?),
        }),
        DFE_GATEWAY => Command::Dfe(dfe::DfeCommand {
            command: Some(gateway(rpc, payload).map_err(undecodable)?.ok_or_else(|| unknown(row))?),
        }),
        _ => return Err(unknown(row)),
    };
    Ok(pb::DownstreamCommand {
        target: row.target.clone(),
        rpc: rpc.to_owned(),
        participant_id: row.participant_id.clone(),
        command: Some(command),
    })
}

fn unknown(row: &OutboxRow) -> UnreadableCommand {
    UnreadableCommand::Unknown { target: row.target.clone(), rpc: row.rpc().to_owned() }
}

fn release(rpc: &str, payload: &[u8]) -> Result<Option<content::release_command::Command>, prost::DecodeError> {
    use content::release_command::Command as C;
    Ok(Some(match rpc {
        "EnrolLearner" => C::EnrolLearner(Message::decode(payload)?),
        "PlaceHold" => C::PlaceHold(Message::decode(payload)?),
        "LiftHold" => C::LiftHold(Message::decode(payload)?),
        "RevokeAccess" => C::RevokeAccess(Message::decode(payload)?),
        "RestoreAccess" => C::RestoreAccess(Message::decode(payload)?),
        "SetReleaseStart" => C::SetReleaseStart(Message::decode(payload)?),
        "SetParticipantScope" => C::SetParticipantScope(Message::decode(payload)?),
        _ => return Ok(None),
    }))
}

fn accrual(rpc: &str, payload: &[u8]) -> Result<Option<payments::accrual_command::Command>, prost::DecodeError> {
    use payments::accrual_command::Command as C;
    Ok(Some(match rpc {
        "EnrolPayee" => C::EnrolPayee(Message::decode(payload)?),
        "SuspendAccrual" => C::SuspendAccrual(Message::decode(payload)?),
        "ResumeAccrual" => C::ResumeAccrual(Message::decode(payload)?),
        "EndAccrual" => C::EndAccrual(Message::decode(payload)?),
        "ReopenAccrual" => C::ReopenAccrual(Message::decode(payload)?),
        "SetAreaCovered" => C::SetAreaCovered(Message::decode(payload)?),
        "SetParticipantScope" => C::SetParticipantScope(Message::decode(payload)?),
        "RecordDeclarationState" => C::RecordDeclarationState(Message::decode(payload)?),
        _ => return Ok(None),
    }))
}

fn gateway(rpc: &str, payload: &[u8]) -> Result<Option<dfe::dfe_command::Command>, prost::DecodeError> {
    use dfe::dfe_command::Command as C;
    Ok(Some(match rpc {
        "TrackParticipant" => C::TrackParticipant(Message::decode(payload)?),
        "ReportStatusChange" => C::ReportStatusChange(Message::decode(payload)?),
        "DeclareMilestone" => C::DeclareMilestone(Message::decode(payload)?),
        "VoidMilestone" => C::VoidMilestone(Message::decode(payload)?),
        _ => return Ok(None),
    }))
}

/// A participant's training status on `effective_date` before and after a
/// change; `previous` is `None` for one the change registered.
pub struct StatusOnDate<'a> {
    pub participant_id: &'a str,
    pub kind: ParticipantKind,
    pub effective_date: NaiveDate,
    pub previous: Option<TrainingStatus>,
    pub new: TrainingStatus,
    pub caused_by: Option<&'a str>,
}

pub fn status_change(change: StatusOnDate<'_>) -> pb::StatusChange {
    pb::StatusChange {
        participant_id: change.participant_id.to_owned(),
        kind: kind_to_proto(change.kind) as i32,
        effective_date: Some(date::to_proto(change.effective_date)),
        previous_status: change.previous.map_or(common::TrainingStatus::Unspecified, status_to_proto) as i32,
        new_status: status_to_proto(change.new) as i32,
        caused_by_participant_id: change.caused_by.unwrap_or_default().to_owned(),
    }
}
