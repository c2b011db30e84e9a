//! PreviewCommands: what a list of the participant service's commands would
//! do to each payee they name, without doing it. The commands are read by
//! their own RPCs' converters and run by their own code (the outcomes
//! recomputed, the DfE declarations enqueued), in order, inside one
//! transaction that is always rolled back
//! ([`steplab_platform::db::Database::dry_run`]), so a preview and the real
//! commands cannot disagree and nothing reaches the DfE. A command whose
//! idempotency_key was already applied is answered as the real RPC would (a
//! duplicate) and changes nothing.

use super::reads::{Reading, read_accrual};
use super::recompute::Declaring;
use super::{Payments, Prepared, denied};
use crate::convert;
use crate::domain::accrual::affected_windows;
use crate::domain::policy;
use crate::domain::schedule::ScheduleBook;
use crate::store;
use chrono::NaiveDate;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::preview::at_command;
use steplab_platform::{Caller, FieldViolations};
use steplab_proto::steplab::payments::v1 as pb;
use steplab_proto::steplab::payments::v1::accrual_command::Command;

impl Payments {
    pub async fn preview_commands(
        &self,
        caller: Caller,
        req: pb::PreviewCommandsRequest,
    ) -> Result<pb::PreviewCommandsResponse, ServiceError> {
        const RPC: &str = "PreviewCommands";
        // Whoever may send the commands may preview them (same policy).
        policy::may_send_commands(&caller).map_err(|d| denied(&caller, RPC, d))?;
        if req.commands.iter().any(|c| matches!(c.command, Some(Command::RecordDeclarationState(_)))) {
            policy::may_record_declaration_state(&caller).map_err(|d| denied(&caller, RPC, d))?;
        }
        let query = convert::preview_commands(&req)?;
        let commands = self.prepare_all(&req.commands)?;
        let as_of = query.as_of.unwrap_or_else(|| self.clock.today());
        let declaring = Declaring::new(&self.clock);
        let book = self.book.clone();
        let mut named: Vec<String> = Vec::new();
        for command in &commands {
            if !named.contains(&command.participant_id) {
                named.push(command.participant_id.clone());
            }
        }
        self.db
            .dry_run(move |conn| {
                let before = readings_on(conn, &book, &named, as_of)?;
                for (index, command) in commands.into_iter().enumerate() {
                    let rpc = command.rpc;
                    (command.run)(conn, &declaring).map_err(|e| at_command(index, rpc, e))?;
                }
                let after = readings_on(conn, &book, &named, as_of)?;
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
    fn prepare_all(&self, commands: &[pb::AccrualCommand]) -> Result<Vec<Prepared<()>>, ServiceError> {
        let mut violations = FieldViolations::default();
        let mut prepared = Vec::with_capacity(commands.len());
        for (index, command) in commands.iter().enumerate() {
            let (oneof_field, read) = match &command.command {
                None => {
                    violations.push(convert::missing_command(index));
                    continue;
                }
                Some(Command::EnrolPayee(req)) => {
                    ("enrol_payee", self.prepare_enrol_payee(req).map(Prepared::answerless))
                }
                Some(Command::SuspendAccrual(req)) => {
                    ("suspend_accrual", self.prepare_suspend_accrual(req).map(Prepared::answerless).map_err(Into::into))
                }
                Some(Command::ResumeAccrual(req)) => {
                    ("resume_accrual", self.prepare_resume_accrual(req).map(Prepared::answerless).map_err(Into::into))
                }
                Some(Command::EndAccrual(req)) => {
                    ("end_accrual", self.prepare_end_accrual(req).map(Prepared::answerless).map_err(Into::into))
                }
                Some(Command::ReopenAccrual(req)) => {
                    ("reopen_accrual", self.prepare_reopen_accrual(req).map(Prepared::answerless).map_err(Into::into))
                }
                Some(Command::SetAreaCovered(req)) => (
                    "set_area_covered",
                    self.prepare_set_area_covered(req).map(Prepared::answerless).map_err(Into::into),
                ),
                Some(Command::SetParticipantScope(req)) => (
                    "set_participant_scope",
                    self.prepare_set_participant_scope(req).map(Prepared::answerless).map_err(Into::into),
                ),
                Some(Command::RecordDeclarationState(req)) => (
                    "record_declaration_state",
                    self.prepare_record_declaration_state(req).map(Prepared::answerless).map_err(Into::into),
                ),
            };
            match read {
                Ok(command) => prepared.push(command),
                Err(ServiceError::InvalidArgument(v)) => {
                    violations.0.extend(convert::within_command(index, oneof_field, v).0);
                }
                // EnrolPayee's unknown schedule: refused as the command would be.
                Err(other) => return Err(at_command(index, "EnrolPayee", other)),
            }
        }
        Ok(violations.finish(|| Some(prepared))?)
    }
}

/// Each named payee's accrual on `as_of`; `None` when not enrolled.
fn readings_on(
    conn: &mut DbConn,
    book: &ScheduleBook,
    participant_ids: &[String],
    as_of: NaiveDate,
) -> Result<Vec<Option<Reading>>, ServiceError> {
    participant_ids
        .iter()
        .map(|id| match store::find_payee(conn, id)? {
            Some(payee) => read_accrual(conn, book, &payee, as_of).map(Some),
            None => Ok(None),
        })
        .collect()
}

fn outlook(participant_id: String, before: Option<Reading>, after: Option<Reading>) -> pb::PayeeOutlook {
    let affected_window_ids = match &after {
        Some(after) => {
            affected_windows(before.as_ref().map(|b| (&b.windows[..], &b.facts)), (&after.windows[..], &after.facts))
        }
        None => Vec::new(),
    };
    let before = before.map(|b| b.accrual).unwrap_or_default();
    let after = after.map(|a| a.accrual).unwrap_or_default();
    pb::PayeeOutlook {
        participant_id,
        enrolled_before: !before.participant_id.is_empty(),
        state_before: before.state,
        state_after: after.state,
        schedule_after: after.current_schedule,
        windows_after: after.windows,
        affected_window_ids,
        total_pence_before: before.total_pence,
        total_pence_after: after.total_pence,
    }
}
