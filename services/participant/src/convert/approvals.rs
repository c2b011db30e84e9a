//! Approval requests -> commands: the change an ECF Lead asks for, with
//! the date it names, and a DPL's decision on it.

use super::note;
use crate::domain::records::RequestedChange;
use steplab_platform::date::PROGRAMME_DATES;
use steplab_platform::ids::{ApprovalRequestId, ParticipantId};
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::participant::v1 as pb;

/// A participant id and a note, the fields every approval request has.
pub fn id_and_note(
    id_field: &str,
    id_value: &str,
    note_value: &str,
) -> Result<(ParticipantId, String), FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse(id_field, id_value));
    let note = v.check(note("note", note_value));
    v.finish(|| Some((participant_id?, note?)))
}

/// A change an ECF Lead asks a DPL for (W9, C2, W6, D3).
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub participant_id: ParticipantId,
    pub change: RequestedChange,
    pub note: String,
}

pub fn request_reinstatement(req: &pb::RequestReinstatementRequest) -> Result<NewRequest, FieldViolations> {
    let (participant_id, note) = id_and_note("participant_id", &req.participant_id, &req.note)?;
    Ok(NewRequest { participant_id, change: RequestedChange::Reinstatement { with_mentor: req.with_mentor }, note })
}

pub fn request_keep_mentor(req: &pb::RequestKeepMentorRequest) -> Result<NewRequest, FieldViolations> {
    let (participant_id, note) = id_and_note("mentor_id", &req.mentor_id, &req.note)?;
    Ok(NewRequest { participant_id, change: RequestedChange::KeepMentor, note })
}

pub fn request_release_start_change(req: &pb::RequestReleaseStartChangeRequest) -> Result<NewRequest, FieldViolations> {
    let mut v = FieldViolations::default();
    let id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let start = v.check(PROGRAMME_DATES.required("release_start", req.release_start.as_ref()));
    let note = v.check(note("note", &req.note));
    v.finish(|| {
        let change = RequestedChange::ReleaseStartChange { release_start: start? };
        Some(NewRequest { participant_id: id?, change, note: note? })
    })
}

pub fn request_long_deferral(req: &pb::RequestLongDeferralRequest) -> Result<NewRequest, FieldViolations> {
    let mut v = FieldViolations::default();
    let id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let latest = v.check(PROGRAMME_DATES.required("latest_return_date", req.latest_return_date.as_ref()));
    let note = v.check(note("note", &req.note));
    v.finish(|| {
        let change = RequestedChange::LongDeferral { latest_return: latest? };
        Some(NewRequest { participant_id: id?, change, note: note? })
    })
}

/// A DPL's DecideRequest.
#[derive(Debug, Clone)]
pub struct DecideCommand {
    pub request_id: ApprovalRequestId,
    pub approve: bool,
    pub note: String,
}

pub fn decide_request(req: &pb::DecideRequestRequest) -> Result<DecideCommand, FieldViolations> {
    let mut v = FieldViolations::default();
    let id = v.check(ApprovalRequestId::parse("approval_request_id", &req.approval_request_id));
    let note = v.check(note("note", &req.note));
    // Explicit presence: an omitted `approve` must not read as a refusal.
    let approve =
        v.check(req.approve.ok_or_else(|| {
            FieldViolation::new("approve", "is required: true to approve the request, false to refuse it")
        }));
    v.finish(|| Some(DecideCommand { request_id: id?, approve: approve?, note: note? }))
}
