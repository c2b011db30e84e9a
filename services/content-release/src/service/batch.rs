//! ApplyCommands: the participant service's commands in batches (issue 18).
//! Each command is decoded as the RPC it names, read by that RPC's own
//! `prepare_*` and run by the same [`run_command`] as the unary RPC, in one
//! write transaction for the batch, each command's writes kept apart when
//! one is refused (see [`steplab_platform::batch::apply_batch`]).

use super::{ContentRelease, Prepared, permit, run_command};
use crate::domain::policy;
use std::sync::Arc;
use steplab_platform::Caller;
use steplab_platform::batch::{self, Decoded, EncodedCommand};
use steplab_platform::error::ServiceError;
use steplab_proto::steplab::content::v1 as pb;

impl ContentRelease {
    pub async fn apply_commands(
        &self,
        caller: Caller,
        req: pb::ApplyCommandsRequest,
    ) -> Result<pb::ApplyCommandsResponse, ServiceError> {
        // Whoever may send the commands one by one may send them in batches.
        permit(&caller, "ApplyCommands", policy::may_send_commands(&caller))?;
        batch::read_list(req.commands.len())?;
        let now = self.clock.now();
        let curriculum = Arc::clone(&self.curriculum);
        let decode = || -> Vec<Decoded<Prepared>> { req.commands.iter().map(|c| self.decode(c)).collect() };
        let results =
            batch::apply_batch(&self.db, decode, move |conn, command| run_command(conn, &curriculum, now, command))
                .await?;
        Ok(pb::ApplyCommandsResponse { results })
    }

    /// Reads one command with its own RPC's converter.
    fn decode(&self, encoded: &EncodedCommand) -> Decoded<Prepared> {
        steplab_platform::decode_command!(encoded;
            "EnrolLearner" => pb::EnrolLearnerRequest => |r| self.prepare_enrol_learner(r),
            "PlaceHold" => pb::PlaceHoldRequest => |r| self.prepare_place_hold(r),
            "LiftHold" => pb::LiftHoldRequest => |r| self.prepare_lift_hold(r),
            "RevokeAccess" => pb::RevokeAccessRequest => |r| self.prepare_revoke_access(r),
            "RestoreAccess" => pb::RestoreAccessRequest => |r| self.prepare_restore_access(r),
            "SetReleaseStart" => pb::SetReleaseStartRequest => |r| self.prepare_set_release_start(r),
            "SetParticipantScope" => pb::SetParticipantScopeRequest => |r| self.prepare_set_participant_scope(r),
        )
    }
}
