//! PreviewCommands: what a list of the participant service's commands would
//! do to each learner they name, without doing it. The commands are read by
//! their own RPCs' converters and run by their own apply code, in order,
//! inside one transaction that is always rolled back
//! ([`steplab_platform::db::Database::dry_run`]), so a preview and the real
//! commands cannot disagree. A command whose idempotency_key was already
//! applied is answered as the real RPC would (a duplicate) and changes
//! nothing.

use super::reads::release_state_of;
use super::{ContentRelease, Prepared, permit, run_command};
use crate::convert;
use crate::domain::{Curriculum, policy};
use crate::store;
use chrono::NaiveDate;
use std::sync::Arc;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::preview::at_command;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::content::v1 as pb;
use steplab_proto::steplab::content::v1::release_command::Command;

impl ContentRelease {
    pub async fn preview_commands(
        &self,
        caller: Caller,
        req: pb::PreviewCommandsRequest,
    ) -> Result<pb::PreviewCommandsResponse, ServiceError> {
        // Whoever may send the commands may preview them (same policy).
        permit(&caller, "PreviewCommands", policy::may_send_commands(&caller))?;
        let query = convert::preview_commands(&req)?;
        let commands = self.prepare_all(&req.commands)?;
        let as_of = query.as_of.unwrap_or_else(|| self.clock.today());
        let now = self.clock.now();
        let curriculum = Arc::clone(&self.curriculum);
        let mut named: Vec<String> = Vec::new();
        for command in &commands {
            if !named.contains(&command.received.participant_id) {
                named.push(command.received.participant_id.clone());
            }
        }
        self.db
            .dry_run(move |conn| {
                let before = outlooks_on(conn, &curriculum, &named, as_of)?;
                for (index, command) in commands.into_iter().enumerate() {
                    let rpc = command.received.rpc;
                    run_command(conn, &curriculum, now, command).map_err(|e| at_command(index, rpc, e))?;
                }
                let after = outlooks_on(conn, &curriculum, &named, as_of)?;
                let outlooks = named
                    .into_iter()
                    .zip(before.into_iter().zip(after))
                    .map(|(participant_id, (before, after))| outlook(participant_id, before, after))
                    .collect();
                Ok(pb::PreviewCommandsResponse { outlooks })
            })
            .await
    }

    /// Reads every command with its own RPC's converter, reporting the
    /// malformed fields of all of them at once.
    fn prepare_all(&self, commands: &[pb::ReleaseCommand]) -> Result<Vec<Prepared>, FieldViolations> {
        let mut violations = FieldViolations::default();
        let mut prepared = Vec::with_capacity(commands.len());
        for (index, command) in commands.iter().enumerate() {
            let (oneof_field, read) = match &command.command {
                None => {
                    violations.push(convert::missing_command(index));
                    continue;
                }
                Some(Command::EnrolLearner(req)) => ("enrol_learner", self.prepare_enrol_learner(req)),
                Some(Command::PlaceHold(req)) => ("place_hold", self.prepare_place_hold(req)),
                Some(Command::LiftHold(req)) => ("lift_hold", self.prepare_lift_hold(req)),
                Some(Command::RevokeAccess(req)) => ("revoke_access", self.prepare_revoke_access(req)),
                Some(Command::RestoreAccess(req)) => ("restore_access", self.prepare_restore_access(req)),
                Some(Command::SetReleaseStart(req)) => ("set_release_start", self.prepare_set_release_start(req)),
                Some(Command::SetParticipantScope(req)) => {
                    ("set_participant_scope", self.prepare_set_participant_scope(req))
                }
            };
            match read {
                Ok(command) => prepared.push(command),
                Err(v) => violations.0.extend(convert::within_command(index, oneof_field, v).0),
            }
        }
        violations.finish(|| Some(prepared))
    }
}

/// Each named learner's release state on `as_of`; `None` when not enrolled.
fn outlooks_on(
    conn: &mut DbConn,
    curriculum: &Curriculum,
    participant_ids: &[String],
    as_of: NaiveDate,
) -> Result<Vec<Option<pb::GetReleaseStateResponse>>, ServiceError> {
    participant_ids
        .iter()
        .map(|id| {
            Ok(store::load_learner_with_progress(conn, id)?
                .map(|(learner, progress)| release_state_of(curriculum, &learner, &progress, as_of)))
        })
        .collect()
}

fn outlook(
    participant_id: String,
    before: Option<pb::GetReleaseStateResponse>,
    after: Option<pb::GetReleaseStateResponse>,
) -> pb::LearnerOutlook {
    let before = before.unwrap_or_default();
    let enrolled_before = !before.participant_id.is_empty();
    let after = after.unwrap_or_default();
    pb::LearnerOutlook {
        participant_id,
        enrolled_before,
        next_module_before: before.next_module,
        next_module_after: after.next_module,
        planned_end_date_before: before.planned_end_date,
        planned_end_date_after: after.planned_end_date,
        access_before: before.access,
        access_after: after.access,
        active_holds_after: after.active_holds,
        schedule_after: after.schedule,
    }
}
