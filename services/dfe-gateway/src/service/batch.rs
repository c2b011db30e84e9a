//! ApplyCommands: the participant service's and payments' commands in
//! batches (issue 18). Each command is decoded as the RPC it names, read by
//! that RPC's own `prepare_*` and run by the same code as the unary RPC (the
//! tracked participant, idempotency, the DfE calls it decides), in one write
//! transaction for the batch, each command's writes kept apart when one is
//! refused (see [`steplab_platform::batch::apply_batch`]). The delivery
//! worker is woken once, after the commit.

use super::{Gateway, Prepared, denied};
use crate::domain::policy;
use steplab_platform::Caller;
use steplab_platform::batch::{self, Decoded, EncodedCommand};
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::common::v1::CommandAck;
use steplab_proto::steplab::dfe::v1 as pb;

impl Gateway {
    pub async fn apply_commands(
        &self,
        caller: Caller,
        req: pb::ApplyCommandsRequest,
    ) -> Result<pb::ApplyCommandsResponse, ServiceError> {
        // Whoever may send the commands one by one may send them in batches.
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, "ApplyCommands", d))?;
        batch::read_list(req.commands.len())?;
        let decode = || -> Vec<Decoded<Prepared<CommandAck>>> { req.commands.iter().map(decode).collect() };
        let now = self.clock.now();
        let answer = batch::apply_batch(&self.db, decode, move |conn, command| {
            (command.run)(conn, now, command.request_id.as_deref())
        })
        .await
        .map(|results| pb::ApplyCommandsResponse { results });
        if answer.is_ok() {
            self.wake.notify_one();
        }
        answer
    }
}

/// Reads one command with its own RPC's converter; its calls carry the
/// command's own request id (the call that caused it), else the batch's.
fn decode(encoded: &EncodedCommand) -> Decoded<Prepared<CommandAck>> {
    let mut decoded = steplab_platform::decode_command!(encoded;
        "TrackParticipant" => pb::TrackParticipantRequest
            => |r| Gateway::prepare_track_participant(r).map(Prepared::into_ack),
        "ReportStatusChange" => pb::ReportStatusChangeRequest
            => |r| Gateway::prepare_report_status_change(r).map(Prepared::into_ack),
        "DeclareMilestone" => pb::DeclareMilestoneRequest
            => |r| Gateway::prepare_declare_milestone(r).map(Prepared::into_ack),
        "VoidMilestone" => pb::VoidMilestoneRequest
            => |r| Gateway::prepare_void_milestone(r).map(Prepared::into_ack),
    );
    if let (Ok(prepared), Some(request_id)) = (&mut decoded.prepared, &decoded.request_id) {
        prepared.request_id = Some(request_id.clone());
    }
    decoded
}
