//! ApplyCommands: the participant service's and the DfE gateway's commands
//! in batches (issue 18). Each command is decoded as the RPC it names, read
//! by that RPC's own `prepare_*` and run by the same code as the unary RPC
//! (the payee's lock, idempotency, the change, the recomputed outcomes and
//! the DfE declarations enqueued), in one write transaction for the batch,
//! each command's writes kept apart when one is refused (see
//! [`steplab_platform::batch::apply_batch`]).

use super::recompute::Declaring;
use super::{Payments, Prepared, denied};
use crate::domain::policy;
use steplab_platform::Caller;
use steplab_platform::batch::{self, Decoded, EncodedCommand};
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::payments::v1 as pb;

impl Payments {
    pub async fn apply_commands(
        &self,
        caller: Caller,
        req: pb::ApplyCommandsRequest,
    ) -> Result<pb::ApplyCommandsResponse, ServiceError> {
        const RPC: &str = "ApplyCommands";
        // Whoever may send the commands one by one may send them in batches.
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        if req.commands.iter().any(|c| c.rpc == "RecordDeclarationState") {
            policy::may_record_declaration_state(&caller).map_err(|d| denied(&caller, RPC, d))?;
        }
        batch::read_list(req.commands.len())?;
        let decode = || -> Vec<Decoded<Prepared<CommandAck>>> { req.commands.iter().map(|c| self.decode(c)).collect() };
        let declaring = Declaring::new(&self.clock);
        let answer = batch::apply_batch(&self.db, decode, move |conn, command| (command.run)(conn, &declaring))
            .await
            .map(|results| pb::ApplyCommandsResponse { results });
        if answer.is_ok() {
            // Any command may have enqueued DfE declarations.
            self.relay.notify_one();
        }
        answer
    }

    /// Reads one command with its own RPC's converter.
    fn decode(&self, encoded: &EncodedCommand) -> Decoded<Prepared<CommandAck>> {
        steplab_platform::decode_command!(encoded;
            "EnrolPayee" => pb::EnrolPayeeRequest => |r| self.prepare_enrol_payee(r).map(Prepared::into_ack),
            "SuspendAccrual" => pb::SuspendAccrualRequest => |r| self.prepare_suspend_accrual(r).map(Prepared::into_ack),
            "ResumeAccrual" => pb::ResumeAccrualRequest => |r| self.prepare_resume_accrual(r).map(Prepared::into_ack),
            "EndAccrual" => pb::EndAccrualRequest => |r| self.prepare_end_accrual(r).map(Prepared::into_ack),
            "ReopenAccrual" => pb::ReopenAccrualRequest => |r| self.prepare_reopen_accrual(r).map(Prepared::into_ack),
            "SetAreaCovered" => pb::SetAreaCoveredRequest => |r| self.prepare_set_area_covered(r).map(Prepared::into_ack),
            "SetParticipantScope" => pb::SetParticipantScopeRequest
                => |r| self.prepare_set_participant_scope(r).map(Prepared::into_ack),
            "RecordDeclarationState" => pb::RecordDeclarationStateRequest
                => |r| self.prepare_record_declaration_state(r).map(Prepared::into_ack),
        )
    }
}
