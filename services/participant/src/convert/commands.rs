//! Requests -> commands. Each function reads every field of its request,
//! reports every malformed one at once, and otherwise answers a command whose
//! fields are already what the use case needs: typed ids, dates in range,
//! required values present.

use super::{deferral_reason, digits, kind, name, note, optional_kind, optional_status, withdrawal_reason};
use crate::domain::events::WithdrawalReason;
use crate::domain::lifecycle::Deferral;
use crate::domain::registry::{Assignment, Registration};
use crate::domain::{ParticipantKind, TrainingStatus};
use chrono::NaiveDate;
use steplab_platform::date::{self, PROGRAMME_DATES};
use steplab_platform::ids::{DeliveryPartnerId, ParticipantId, SchoolId};
use steplab_platform::paging::Pages;
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::participant::v1 as pb;

/// A CreateSchool.
#[derive(Debug, Clone)]
pub struct NewSchool {
    pub urn: String,
    pub name: String,
    pub delivery_partner_id: DeliveryPartnerId,
    pub area_covered: bool,
}

pub fn create_school(req: &pb::CreateSchoolRequest) -> Result<NewSchool, FieldViolations> {
    let mut v = FieldViolations::default();
    let urn = v.check(digits("urn", &req.urn, 6, "URN"));
    let name = v.check(name("name", &req.name));
    let dp = v.check(DeliveryPartnerId::parse("delivery_partner_id", &req.delivery_partner_id));
    // Explicit presence (S2): an omitted area_covered must not silently make
    // a school uncovered, which stops its output payments.
    let area_covered = v.check(req.area_covered.ok_or_else(|| {
        FieldViolation::new(
            "area_covered",
            "is required: true when the lead provider covers the school's area, false when not (S2)",
        )
    }));
    v.finish(|| Some(NewSchool { urn: urn?, name: name?, delivery_partner_id: dp?, area_covered: area_covered? }))
}

pub fn register(req: &pb::RegisterParticipantRequest) -> Result<Registration, FieldViolations> {
    let mut v = FieldViolations::default();
    let school_id = v.check(SchoolId::parse("school_id", &req.school_id));
    let kind = v.check(kind("kind", req.kind));
    let full_name = v.check(name("full_name", &req.full_name));
    let trn = match kind {
        Some(ParticipantKind::InductionCoordinator) if req.trn.trim().is_empty() => Some(None),
        _ => v.check(digits("trn", &req.trn, 7, "teacher reference number").map(Some)),
    };
    let registered_on = v.check(date::REGISTRATION_DATES.optional("registered_on", req.registered_on.as_ref()));
    // Explicit presence (M4): a mentor's funding depends on it, so a mentor
    // must say; for anyone else it must be unset or false.
    let previous_pilot_mentor = v.check(match (req.previous_pilot_mentor, kind) {
        (None, Some(ParticipantKind::Mentor)) => Err(FieldViolation::new(
            "previous_pilot_mentor",
            "is required for a mentor: true for a mentor from the earlier pilot (never funded, M4), false otherwise",
        )),
        (Some(true), Some(k)) if k != ParticipantKind::Mentor => {
            Err(FieldViolation::new("previous_pilot_mentor", "applies to mentors only (M4)"))
        }
        (flag, _) => Ok(flag.unwrap_or(false)),
    });
    v.finish(|| {
        Some(Registration {
            school_id: school_id?.into_string(),
            kind: kind?,
            full_name: full_name?,
            trn: trn?,
            registered_on: registered_on?,
            previous_pilot_mentor: previous_pilot_mentor?,
        })
    })
}

/// An AssignMentor.
#[derive(Debug, Clone)]
pub struct MentorChange {
    pub ect_id: ParticipantId,
    pub mentor_id: ParticipantId,
    /// M2, M3: for good, an interim cover, or a temporary replacement.
    pub assignment: Assignment,
    /// `None`: today.
    pub effective_date: Option<NaiveDate>,
}

pub fn assign_mentor(req: &pb::AssignMentorRequest) -> Result<MentorChange, FieldViolations> {
    let mut v = FieldViolations::default();
    let ect_id = v.check(ParticipantId::parse("ect_id", &req.ect_id));
    let mentor_id = v.check(ParticipantId::parse("mentor_id", &req.mentor_id));
    let effective_date = v.check(PROGRAMME_DATES.optional("effective_date", req.effective_date.as_ref()));
    let until = v.check(PROGRAMME_DATES.optional("until", req.until.as_ref()));
    if ect_id.is_some() && ect_id == mentor_id {
        v.push(FieldViolation::new("mentor_id", "an ECT cannot mentor themselves"));
    }
    if req.interim && req.until.is_some() {
        v.push(FieldViolation::new(
            "until",
            "an interim cover has no end date: end it with EndMentorCover when the mentor of record is back",
        ));
    }
    v.finish(|| {
        let assignment = match (req.interim, until?) {
            (true, _) => Assignment::InterimCover,
            (false, Some(until)) => Assignment::TemporaryUntil(until),
            (false, None) => Assignment::OfRecord,
        };
        Some(MentorChange { ect_id: ect_id?, mentor_id: mentor_id?, assignment, effective_date: effective_date? })
    })
}

/// A ListParticipants.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub school_id: Option<SchoolId>,
    pub delivery_partner_id: Option<DeliveryPartnerId>,
    pub status: Option<TrainingStatus>,
    pub kind: Option<ParticipantKind>,
    pub page_size: i64,
    pub after: Option<String>,
}

/// `pages` are the request's page tokens (bound to its filter and caller).
pub fn list(req: &pb::ListParticipantsRequest, pages: &Pages) -> Result<ListQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let school_id = v.check(SchoolId::parse_optional("school_id", &req.school_id));
    let delivery_partner_id =
        v.check(DeliveryPartnerId::parse_optional("delivery_partner_id", &req.delivery_partner_id));
    let status = v.check(optional_status("status", req.status));
    let kind = v.check(optional_kind("kind", req.kind));
    let page_size = v.check(steplab_platform::paging::page_size(req.page_size));
    let after = v.check(pages.after(&req.page_token));
    v.finish(|| {
        Some(ListQuery {
            school_id: school_id?,
            delivery_partner_id: delivery_partner_id?,
            status: status?,
            kind: kind?,
            page_size: page_size?,
            after: after?,
        })
    })
}

/// A PauseParticipant.
#[derive(Debug, Clone)]
pub struct PauseCommand {
    pub participant_id: ParticipantId,
    pub start: NaiveDate,
    pub expected_end: NaiveDate,
    pub note: String,
    /// P1: the ECT a mentor is paused alongside.
    pub alongside_ect_id: Option<ParticipantId>,
}

pub fn pause(req: &pb::PauseParticipantRequest) -> Result<PauseCommand, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let start = v.check(PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
    let end = v.check(PROGRAMME_DATES.required("expected_end_date", req.expected_end_date.as_ref()));
    let note = v.check(note("note", &req.note));
    let alongside = v.check(ParticipantId::parse_optional("alongside_ect_id", &req.alongside_ect_id));
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        v.push(FieldViolation::new("expected_end_date", "must be after start_date"));
    }
    if !req.alongside_ect_id.is_empty() && req.alongside_ect_id == req.participant_id {
        v.push(FieldViolation::new("alongside_ect_id", "must name the mentor's ECT, not the participant paused"));
    }
    v.finish(|| {
        Some(PauseCommand {
            participant_id: participant_id?,
            start: start?,
            expected_end: end?,
            note: note?,
            alongside_ect_id: alongside?,
        })
    })
}

/// A participant and a date the request must give.
#[derive(Debug, Clone)]
pub struct DatedChange {
    pub participant_id: ParticipantId,
    pub date: NaiveDate,
}

/// A participant and a date the request may leave out, meaning today.
#[derive(Debug, Clone)]
pub struct DatedOrToday {
    pub participant_id: ParticipantId,
    pub date: Option<NaiveDate>,
}

fn dated_change(
    id_field: &str,
    id: &str,
    date_field: &str,
    date: Option<&Date>,
) -> Result<DatedChange, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse(id_field, id));
    let date = v.check(PROGRAMME_DATES.required(date_field, date));
    v.finish(|| Some(DatedChange { participant_id: participant_id?, date: date? }))
}

fn dated_or_today(
    id_field: &str,
    id: &str,
    date_field: &str,
    date: Option<&Date>,
) -> Result<DatedOrToday, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse(id_field, id));
    let date = v.check(PROGRAMME_DATES.optional(date_field, date));
    v.finish(|| Some(DatedOrToday { participant_id: participant_id?, date: date? }))
}

/// An ExtendPause: the pause's new expected end.
pub fn extend_pause(req: &pb::ExtendPauseRequest) -> Result<DatedChange, FieldViolations> {
    dated_change("participant_id", &req.participant_id, "expected_end_date", req.expected_end_date.as_ref())
}

/// An EndPause: the day the pause ends.
pub fn end_pause(req: &pb::EndPauseRequest) -> Result<DatedOrToday, FieldViolations> {
    dated_or_today("participant_id", &req.participant_id, "end_date", req.end_date.as_ref())
}

/// A ChangeReturnDate: the deferral's new expected return.
pub fn change_return_date(req: &pb::ChangeReturnDateRequest) -> Result<DatedChange, FieldViolations> {
    dated_change("participant_id", &req.participant_id, "expected_return_date", req.expected_return_date.as_ref())
}

/// A RecordReturn: the day the participant came back.
pub fn record_return(req: &pb::RecordReturnRequest) -> Result<DatedOrToday, FieldViolations> {
    dated_or_today("participant_id", &req.participant_id, "return_date", req.return_date.as_ref())
}

/// An EndMentorCover: the ECT and the day the cover ends.
pub fn end_mentor_cover(req: &pb::EndMentorCoverRequest) -> Result<DatedOrToday, FieldViolations> {
    dated_or_today("ect_id", &req.ect_id, "end_date", req.end_date.as_ref())
}

/// A DeferParticipant.
#[derive(Debug, Clone)]
pub struct DeferCommand {
    pub participant_id: ParticipantId,
    pub deferral: Deferral,
}

pub fn defer(req: &pb::DeferParticipantRequest) -> Result<DeferCommand, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let reason = v.check(deferral_reason("reason", req.reason));
    let deferral_date = v.check(PROGRAMME_DATES.required("deferral_date", req.deferral_date.as_ref()));
    let expected_return = v.check(PROGRAMME_DATES.required("expected_return_date", req.expected_return_date.as_ref()));
    let note = v.check(note("note", &req.note));
    if let (Some(from), Some(until)) = (deferral_date, expected_return)
        && until <= from
    {
        v.push(FieldViolation::new("expected_return_date", "must be after deferral_date (D3)"));
    }
    v.finish(|| {
        let deferral =
            Deferral { reason: reason?, deferral_date: deferral_date?, expected_return: expected_return?, note: note? };
        Some(DeferCommand { participant_id: participant_id?, deferral })
    })
}

/// A WithdrawParticipant.
#[derive(Debug, Clone)]
pub struct WithdrawCommand {
    pub participant_id: ParticipantId,
    pub reason: WithdrawalReason,
    /// `None`: today.
    pub withdrawal_date: Option<NaiveDate>,
    pub note: String,
    /// W8: the induction coordinator who takes over, never the one withdrawn.
    pub replacement_induction_coordinator_id: Option<ParticipantId>,
}

pub fn withdraw(req: &pb::WithdrawParticipantRequest) -> Result<WithdrawCommand, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let reason = v.check(withdrawal_reason("reason", req.reason));
    let date = v.check(PROGRAMME_DATES.optional("withdrawal_date", req.withdrawal_date.as_ref()));
    let note = v.check(note("note", &req.note));
    let replacement = v.check(replacement_induction_coordinator(req));
    v.finish(|| {
        Some(WithdrawCommand {
            participant_id: participant_id?,
            reason: reason?,
            withdrawal_date: date?,
            note: note?,
            replacement_induction_coordinator_id: replacement?,
        })
    })
}

fn replacement_induction_coordinator(
    req: &pb::WithdrawParticipantRequest,
) -> Result<Option<ParticipantId>, FieldViolation> {
    let field = "replacement_induction_coordinator_id";
    let replacement = ParticipantId::parse_optional(field, &req.replacement_induction_coordinator_id)?;
    if replacement.as_ref().is_some_and(|r| *r == req.participant_id.as_str()) {
        return Err(FieldViolation::new(field, "must name another induction coordinator, not the one withdrawn"));
    }
    Ok(replacement)
}

/// A MoveSchool.
#[derive(Debug, Clone)]
pub struct MoveCommand {
    pub participant_id: ParticipantId,
    pub school_id: SchoolId,
    /// `None`: today.
    pub moved_on: Option<NaiveDate>,
    /// S1: the ECT keeps their mentor across the move.
    pub keep_mentor: bool,
}

pub fn move_school(req: &pb::MoveSchoolRequest) -> Result<MoveCommand, FieldViolations> {
    let mut v = FieldViolations::default();
    let id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let school_id = v.check(SchoolId::parse("school_id", &req.school_id));
    let moved_on = v.check(PROGRAMME_DATES.optional("moved_on", req.moved_on.as_ref()));
    v.finish(|| {
        Some(MoveCommand {
            participant_id: id?,
            school_id: school_id?,
            moved_on: moved_on?,
            keep_mentor: req.keep_mentor,
        })
    })
}

/// A GetParticipant.
#[derive(Debug, Clone)]
pub struct GetQuery {
    pub participant_id: ParticipantId,
    /// `None`: today.
    pub as_of: Option<NaiveDate>,
}

pub fn get(req: &pb::GetParticipantRequest) -> Result<GetQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
    v.finish(|| Some(GetQuery { participant_id: id?, as_of: as_of? }))
}
