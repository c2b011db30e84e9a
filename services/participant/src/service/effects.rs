//! ChangeEffects (AIP-163): what a change records, built inside its unit of
//! work from its journal (the rows it wrote, as stored), so a dry run
//! (validate_only, rolled back) and the real call describe the same change
//! by construction. A dry run
//! also asks content release and payments what the commands would do.

use super::Registry;
use crate::commands::{CONTENT, PAYMENTS};
use crate::convert::{self, StatusOnDate};
use crate::domain::events::Event;
use crate::peers::CheckError;
use crate::store::journal::{Journal, Written};
use chrono::NaiveDate;
use steplab_proto::steplab::participant::v1 as pb;

/// A response that carries ChangeEffects.
pub(super) trait Effected {
    fn effects_mut(&mut self) -> &mut Option<pb::ChangeEffects>;
}

macro_rules! effected {
    ($($response:ident),* $(,)?) => {
        $(impl Effected for pb::$response {
            fn effects_mut(&mut self) -> &mut Option<pb::ChangeEffects> {
                &mut self.effects
            }
        })*
    };
}

effected!(
    CreateDeliveryPartnerResponse,
    CreateSchoolResponse,
    RegisterParticipantResponse,
    AssignMentorResponse,
    EndMentorCoverResponse,
    MoveSchoolResponse,
    PauseParticipantResponse,
    ExtendPauseResponse,
    EndPauseResponse,
    DeferParticipantResponse,
    ChangeReturnDateResponse,
    RecordReturnResponse,
    WithdrawParticipantResponse,
    RequestReinstatementResponse,
    RequestReleaseStartChangeResponse,
    RequestKeepMentorResponse,
    RequestLongDeferralResponse,
    DecideRequestResponse,
    SetDfeParticipantIdResponse,
);

/// What a unit of work wrote, from its journal: its events (cascades
/// included), its commands, and the status changes they make.
pub(super) fn described(journal: &Journal, validate_only: bool) -> pb::ChangeEffects {
    let mut events = journal.events.clone();
    events.sort_by_key(|e| e.cursor);
    let commands = journal
        .commands
        .iter()
        .map(|row| {
            convert::downstream_command(row).unwrap_or_else(|problem| {
                // Never fails the change it describes: the relay sends the row as stored.
                tracing::error!(error = %problem, command_id = %row.command_id, "a command cannot be shown in the change's effects");
                pb::DownstreamCommand {
                    target: row.target.clone(),
                    rpc: row.rpc().to_owned(),
                    participant_id: row.participant_id.clone(),
                    command: None,
                }
            })
        })
        .collect();
    let status_changes = status_changes(journal, &events);
    pb::ChangeEffects {
        validate_only,
        events: events.into_iter().map(convert::event).collect(),
        status_changes,
        commands,
        ..pb::ChangeEffects::default()
    }
}

/// One StatusChange per participant and event date whose status on that
/// date differs before (their history before the change) and after.
fn status_changes(journal: &Journal, events: &[Event]) -> Vec<pb::StatusChange> {
    let mut participant_ids: Vec<&str> = Vec::new();
    for event in events {
        if !participant_ids.contains(&event.participant_id.as_str()) {
            participant_ids.push(&event.participant_id);
        }
    }
    let mut changes = Vec::new();
    for id in participant_ids {
        let Some(Written { version_before, after }) = journal.written.iter().find(|w| w.after.id == id) else {
            // Every event is appended to a participant written with it.
            tracing::error!(participant_id = id, "an event of the change has no participant in its journal");
            continue;
        };
        let mut before = after.clone();
        before.events.retain(|e| e.sequence <= *version_before);
        let mut dates: Vec<(NaiveDate, Option<&str>)> = Vec::new();
        for event in events.iter().filter(|e| e.participant_id == id) {
            if !dates.iter().any(|(date, _)| *date == event.effective_date) {
                dates.push((event.effective_date, event.caused_by.as_deref()));
            }
        }
        dates.sort_by_key(|(date, _)| *date);
        for (effective_date, caused_by) in dates {
            // No history before the change: the change registered them.
            let previous = if before.events.is_empty() { None } else { before.as_of(effective_date).map(|v| v.status) };
            let Some(new) = after.as_of(effective_date).map(|v| v.status) else { continue };
            if previous != Some(new) {
                changes.push(convert::status_change(StatusOnDate {
                    participant_id: id,
                    kind: after.kind,
                    effective_date,
                    previous,
                    new,
                    caused_by,
                }));
            }
        }
    }
    changes
}

impl Registry {
    /// Dry runs only: content release's and payments' outlook after the
    /// commands a change would send them. A peer that cannot answer is named
    /// in `unavailable_services` and the rest still answered: the
    /// participant service's own rules have already passed.
    pub(super) async fn add_outlooks(&self, effects: &mut pb::ChangeEffects) {
        use pb::downstream_command::Command;
        let mut releases = Vec::new();
        let mut accruals = Vec::new();
        for command in &effects.commands {
            match &command.command {
                Some(Command::Release(release)) => releases.push(release.clone()),
                Some(Command::Accrual(accrual)) => accruals.push(accrual.clone()),
                Some(Command::Dfe(_)) | None => {}
            }
        }
        let Some(peers) = &self.peers else {
            for (target, wanted) in [(CONTENT, !releases.is_empty()), (PAYMENTS, !accruals.is_empty())] {
                if wanted {
                    tracing::warn!(peer = target, "dry run: no peers configured to ask for an outlook");
                    effects.unavailable_services.push(target.to_owned());
                }
            }
            return;
        };
        let release = async { if releases.is_empty() { None } else { Some(peers.preview_release(releases).await) } };
        let accrual = async { if accruals.is_empty() { None } else { Some(peers.preview_accrual(accruals).await) } };
        let (release, accrual) = tokio::join!(release, accrual);
        match release {
            None => {}
            Some(Ok(answer)) => effects.release_outlooks = answer.outlooks,
            Some(Err(problem)) => unavailable(effects, CONTENT, &problem),
        }
        match accrual {
            None => {}
            Some(Ok(answer)) => effects.accrual_outlooks = answer.outlooks,
            Some(Err(problem)) => unavailable(effects, PAYMENTS, &problem),
        }
    }
}

fn unavailable(effects: &mut pb::ChangeEffects, peer: &str, problem: &CheckError) {
    match problem {
        CheckError::Peer { status, .. } if status.code() == tonic::Code::FailedPrecondition => {
            tracing::warn!(peer, reason = status.message(), "dry run: a peer refused the previewed commands");
        }
        _ => tracing::warn!(peer, error = %problem, "dry run: a peer could not give its outlook"),
    }
    effects.unavailable_services.push(peer.to_owned());
}
