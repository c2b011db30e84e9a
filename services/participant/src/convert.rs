//! Wire <-> domain. Requests become domain commands that cannot be invalid
//! (every malformed field is reported at once as a field violation); domain
//! answers become response messages.

use crate::domain::events::{DeferralReason, Event, EventKind, WithdrawalReason};
use crate::domain::lifecycle::Deferral;
use crate::domain::registry::Registration;
use crate::domain::requests::{RequestKind, RequestStatus};
use crate::domain::{ParticipantKind, ParticipantView, TrainingStatus};
use crate::store::{DeliveryPartnerRow, SchoolRow};
use crate::store::{NotificationRow, RequestRow};
use chrono::NaiveDate;
use chrono::NaiveDateTime;
use steplab_platform::date;
use steplab_platform::outbox::OutboxRow;
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::participant::v1 as pb;

pub const MAX_NAME_CHARS: usize = 200;

pub use steplab_platform::ids::{new_id, optional as optional_id, required as id};

/// A person's, school's or delivery partner's name (one rule for all: see
/// [`steplab_platform::text::name`]).
pub fn name(field: &str, value: &str) -> Result<String, FieldViolation> {
    steplab_platform::text::name(field, value, MAX_NAME_CHARS)
}

fn digits(field: &str, value: &str, count: usize, what: &str) -> Result<String, FieldViolation> {
    let trimmed = value.trim();
    if trimmed.len() == count && trimmed.chars().all(|c| c.is_ascii_digit()) {
        Ok(trimmed.to_owned())
    } else {
        Err(FieldViolation::new(field, format!("must be a {what} of exactly {count} digits")))
    }
}

pub fn kind(field: &str, value: i32) -> Result<ParticipantKind, FieldViolation> {
    match common::ParticipantKind::try_from(value) {
        Ok(common::ParticipantKind::Ect) => Ok(ParticipantKind::Ect),
        Ok(common::ParticipantKind::Mentor) => Ok(ParticipantKind::Mentor),
        Ok(common::ParticipantKind::InductionCoordinator) => Ok(ParticipantKind::InductionCoordinator),
        Ok(common::ParticipantKind::Unspecified) | Err(_) => Err(FieldViolation::new(
            field,
            "must be PARTICIPANT_KIND_ECT, PARTICIPANT_KIND_MENTOR or PARTICIPANT_KIND_INDUCTION_COORDINATOR",
        )),
    }
}

fn optional_kind(field: &str, value: i32) -> Result<Option<ParticipantKind>, FieldViolation> {
    if value == 0 { Ok(None) } else { kind(field, value).map(Some) }
}

fn optional_status(field: &str, value: i32) -> Result<Option<TrainingStatus>, FieldViolation> {
    match common::TrainingStatus::try_from(value) {
        Ok(common::TrainingStatus::Unspecified) => Ok(None),
        Ok(common::TrainingStatus::Active) => Ok(Some(TrainingStatus::Active)),
        Ok(common::TrainingStatus::Paused) => Ok(Some(TrainingStatus::Paused)),
        Ok(common::TrainingStatus::Deferred) => Ok(Some(TrainingStatus::Deferred)),
        Ok(common::TrainingStatus::Withdrawn) => Ok(Some(TrainingStatus::Withdrawn)),
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not a TrainingStatus"))),
    }
}

/// A validated CreateSchool.
#[derive(Debug, Clone)]
pub struct NewSchool {
    pub urn: String,
    pub name: String,
    pub delivery_partner_id: String,
    pub area_covered: bool,
}

pub fn create_school(req: &pb::CreateSchoolRequest) -> Result<NewSchool, FieldViolations> {
    let mut v = FieldViolations::default();
    let urn = v.check(digits("urn", &req.urn, 6, "URN"));
    let name = v.check(name("name", &req.name));
    let dp = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    v.finish(|| Some(NewSchool { urn: urn?, name: name?, delivery_partner_id: dp?, area_covered: req.area_covered }))
}

pub fn register(req: &pb::RegisterParticipantRequest) -> Result<Registration, FieldViolations> {
    let mut v = FieldViolations::default();
    let school_id = v.check(id("school_id", &req.school_id));
    let kind = v.check(kind("kind", req.kind));
    let full_name = v.check(name("full_name", &req.full_name));
    let trn = match kind {
        Some(ParticipantKind::InductionCoordinator) if req.trn.trim().is_empty() => Some(None),
        _ => v.check(digits("trn", &req.trn, 7, "teacher reference number").map(Some)),
    };
    let registered_on = v.check(date::REGISTRATION_DATES.optional("registered_on", req.registered_on.as_ref()));
    if req.previous_pilot_mentor && kind.is_some_and(|k| k != ParticipantKind::Mentor) {
        v.push(FieldViolation::new("previous_pilot_mentor", "applies to mentors only (M4)"));
    }
    v.finish(|| {
        Some(Registration {
            school_id: school_id?,
            kind: kind?,
            full_name: full_name?,
            trn: trn?,
            registered_on: registered_on?,
            previous_pilot_mentor: req.previous_pilot_mentor,
        })
    })
}

/// A validated AssignMentor.
#[derive(Debug, Clone)]
pub struct MentorChange {
    pub ect_id: String,
    pub mentor_id: String,
    pub interim: bool,
    /// M2, M3: for good, an interim cover, or a temporary replacement.
    pub assignment: crate::domain::registry::Assignment,
    pub effective_date: Option<chrono::NaiveDate>,
}

pub fn assign_mentor(req: &pb::AssignMentorRequest) -> Result<MentorChange, FieldViolations> {
    let mut v = FieldViolations::default();
    let ect_id = v.check(id("ect_id", &req.ect_id));
    let mentor_id = v.check(id("mentor_id", &req.mentor_id));
    let effective_date = v.check(date::PROGRAMME_DATES.optional("effective_date", req.effective_date.as_ref()));
    let until = v.check(date::PROGRAMME_DATES.optional("until", req.until.as_ref()));
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
        use crate::domain::registry::Assignment;
        let assignment = match (req.interim, until?) {
            (true, _) => Assignment::InterimCover,
            (false, Some(until)) => Assignment::TemporaryUntil(until),
            (false, None) => Assignment::OfRecord,
        };
        Some(MentorChange {
            ect_id: ect_id?,
            mentor_id: mentor_id?,
            interim: req.interim,
            assignment,
            effective_date: effective_date?,
        })
    })
}

/// A validated ListParticipants.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub school_id: Option<String>,
    pub delivery_partner_id: Option<String>,
    pub status: Option<TrainingStatus>,
    pub kind: Option<ParticipantKind>,
    pub page_size: i64,
    pub after: Option<String>,
}

pub fn list(req: &pb::ListParticipantsRequest) -> Result<ListQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let school_id = v.check(optional_id("school_id", &req.school_id));
    let delivery_partner_id = v.check(optional_id("delivery_partner_id", &req.delivery_partner_id));
    let status = v.check(optional_status("status", req.status));
    let kind = v.check(optional_kind("kind", req.kind));
    let page_size = v.check(steplab_platform::paging::page_size(req.page_size));
    let after = v.check(steplab_platform::paging::decode_token(&req.page_token));
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

pub fn timestamp(t: NaiveDateTime) -> prost_types::Timestamp {
    let utc = t.and_utc();
    prost_types::Timestamp { seconds: utc.timestamp(), nanos: utc.timestamp_subsec_nanos() as i32 }
}

pub fn delivery_partner(row: DeliveryPartnerRow) -> pb::DeliveryPartner {
    pb::DeliveryPartner { delivery_partner_id: row.id, name: row.name, create_time: Some(timestamp(row.created_at)) }
}

pub fn school(row: SchoolRow) -> pb::School {
    pb::School {
        school_id: row.id,
        urn: row.urn,
        name: row.name,
        delivery_partner_id: row.delivery_partner_id,
        area_covered: row.area_covered,
        create_time: Some(timestamp(row.created_at)),
    }
}

fn kind_to_proto(kind: ParticipantKind) -> common::ParticipantKind {
    match kind {
        ParticipantKind::Ect => common::ParticipantKind::Ect,
        ParticipantKind::Mentor => common::ParticipantKind::Mentor,
        ParticipantKind::InductionCoordinator => common::ParticipantKind::InductionCoordinator,
    }
}

fn status_to_proto(status: TrainingStatus) -> common::TrainingStatus {
    match status {
        TrainingStatus::Active => common::TrainingStatus::Active,
        TrainingStatus::Paused => common::TrainingStatus::Paused,
        TrainingStatus::Deferred => common::TrainingStatus::Deferred,
        TrainingStatus::Withdrawn => common::TrainingStatus::Withdrawn,
    }
}

pub fn participant(view: ParticipantView) -> pb::Participant {
    let funding_eligible = view.funding_eligible();
    let (mentor_id, mentor_interim) = view.mentor.clone().unwrap_or_default();
    pb::Participant {
        // Filled from the participants table by the service (X1).
        dfe_participant_id: String::new(),
        participant_id: view.id,
        kind: kind_to_proto(view.kind) as i32,
        status: status_to_proto(view.status) as i32,
        school_id: view.school_id,
        delivery_partner_id: view.delivery_partner_id,
        full_name: view.full_name,
        trn: view.trn.unwrap_or_default(),
        registered_on: Some(date::to_proto(view.registered_on)),
        release_start: view.enrolment.map(|e| date::to_proto(e.release_start)),
        schedule: view.schedule.map(|(s, _)| s.schedule_id().to_owned()).unwrap_or_default(),
        schedule_since: date::to_proto_opt(view.schedule.and_then(|(_, since)| since)),
        cohort: view.enrolment.map(|e| e.cohort).unwrap_or_default(),
        previous_pilot_mentor: view.previous_pilot_mentor,
        funding_eligible,
        mentor_id,
        mentor_interim,
        mentor_of_record_id: view.mentor_of_record.unwrap_or_default(),
        pause: view.pause.map(|p| pb::Pause {
            start_date: Some(date::to_proto(p.start)),
            expected_end_date: Some(date::to_proto(p.expected_end)),
            end_date: date::to_proto_opt(p.ended_on),
            note: p.note,
            alongside_ect_id: p.alongside.unwrap_or_default(),
        }),
        deferral: view.deferral.map(|d| pb::Deferral {
            reason: deferral_reason_to_proto(d.reason) as i32,
            deferral_date: Some(date::to_proto(d.from)),
            expected_return_date: Some(date::to_proto(d.returned_on.unwrap_or(d.expected_return))),
            cascaded_from_participant_id: d.cascaded_from.unwrap_or_default(),
        }),
        withdrawal: view.withdrawal.map(|w| pb::Withdrawal {
            reason: withdrawal_reason_to_proto(w.reason) as i32,
            withdrawal_date: Some(date::to_proto(w.date)),
            cascaded_from_participant_id: w.cascaded_from.unwrap_or_default(),
        }),
        as_of: Some(date::to_proto(view.as_of)),
        version: view.version,
        create_time: Some(timestamp(view.created_at)),
    }
}

fn deferral_reason_to_proto(reason: DeferralReason) -> common::DeferralReason {
    match reason {
        DeferralReason::Bereavement => common::DeferralReason::Bereavement,
        DeferralReason::LongTermSickness => common::DeferralReason::LongTermSickness,
        DeferralReason::ParentalLeave => common::DeferralReason::ParentalLeave,
        DeferralReason::CareerBreak => common::DeferralReason::CareerBreak,
        DeferralReason::Other => common::DeferralReason::Other,
    }
}

fn withdrawal_reason_to_proto(reason: WithdrawalReason) -> common::WithdrawalReason {
    match reason {
        WithdrawalReason::LeftTeachingProfession => common::WithdrawalReason::LeftTeachingProfession,
        WithdrawalReason::MovedSchool => common::WithdrawalReason::MovedSchool,
        WithdrawalReason::MentorNoLongerBeingMentor => common::WithdrawalReason::MentorNoLongerBeingMentor,
        WithdrawalReason::SwitchedToSchoolLed => common::WithdrawalReason::SwitchedToSchoolLed,
        WithdrawalReason::NotEligible => common::WithdrawalReason::NotEligible,
        WithdrawalReason::LeftRole => common::WithdrawalReason::LeftRole,
        WithdrawalReason::Other => common::WithdrawalReason::Other,
    }
}

pub fn deferral_reason(field: &str, value: i32) -> Result<DeferralReason, FieldViolation> {
    match common::DeferralReason::try_from(value) {
        Ok(common::DeferralReason::Bereavement) => Ok(DeferralReason::Bereavement),
        Ok(common::DeferralReason::LongTermSickness) => Ok(DeferralReason::LongTermSickness),
        Ok(common::DeferralReason::ParentalLeave) => Ok(DeferralReason::ParentalLeave),
        Ok(common::DeferralReason::CareerBreak) => Ok(DeferralReason::CareerBreak),
        Ok(common::DeferralReason::Other) => Ok(DeferralReason::Other),
        Ok(common::DeferralReason::Unspecified) | Err(_) => Err(FieldViolation::new(
            field,
            "is required (D3): DEFERRAL_REASON_BEREAVEMENT, _LONG_TERM_SICKNESS, _PARENTAL_LEAVE, _CAREER_BREAK or _OTHER",
        )),
    }
}

pub fn withdrawal_reason(field: &str, value: i32) -> Result<WithdrawalReason, FieldViolation> {
    match common::WithdrawalReason::try_from(value) {
        Ok(common::WithdrawalReason::LeftTeachingProfession) => Ok(WithdrawalReason::LeftTeachingProfession),
        Ok(common::WithdrawalReason::MovedSchool) => Ok(WithdrawalReason::MovedSchool),
        Ok(common::WithdrawalReason::MentorNoLongerBeingMentor) => Ok(WithdrawalReason::MentorNoLongerBeingMentor),
        Ok(common::WithdrawalReason::SwitchedToSchoolLed) => Ok(WithdrawalReason::SwitchedToSchoolLed),
        Ok(common::WithdrawalReason::NotEligible) => Ok(WithdrawalReason::NotEligible),
        Ok(common::WithdrawalReason::LeftRole) => Ok(WithdrawalReason::LeftRole),
        Ok(common::WithdrawalReason::Other) => Ok(WithdrawalReason::Other),
        Ok(common::WithdrawalReason::Unspecified) | Err(_) => Err(FieldViolation::new(
            field,
            "is required (W3): WITHDRAWAL_REASON_LEFT_TEACHING_PROFESSION, _MOVED_SCHOOL, _MENTOR_NO_LONGER_BEING_MENTOR, _SWITCHED_TO_SCHOOL_LED, _NOT_ELIGIBLE, _LEFT_ROLE or _OTHER",
        )),
    }
}

pub const MAX_NOTE_CHARS: usize = 2000;

/// A free-text note: optional, bounded, no control characters but line
/// breaks, no bidirectional controls.
pub fn note(field: &str, value: &str) -> Result<String, FieldViolation> {
    steplab_platform::text::note(field, value, MAX_NOTE_CHARS)
}

/// The validated fields of a lifecycle request.
#[derive(Debug, Clone)]
pub struct PauseRequest {
    pub participant_id: String,
    pub start: NaiveDate,
    pub expected_end: NaiveDate,
    pub note: String,
    /// P1: the ECT a mentor is paused alongside.
    pub alongside_ect_id: Option<String>,
}

pub fn pause(req: &pb::PauseParticipantRequest) -> Result<PauseRequest, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let start = v.check(date::PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
    let end = v.check(date::PROGRAMME_DATES.required("expected_end_date", req.expected_end_date.as_ref()));
    let note = v.check(note("note", &req.note));
    let alongside = v.check(optional_id("alongside_ect_id", &req.alongside_ect_id));
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        v.push(FieldViolation::new("expected_end_date", "must be after start_date"));
    }
    if !req.alongside_ect_id.is_empty() && req.alongside_ect_id == req.participant_id {
        v.push(FieldViolation::new("alongside_ect_id", "must name the mentor's ECT, not the participant paused"));
    }
    v.finish(|| {
        Some(PauseRequest {
            participant_id: participant_id?,
            start: start?,
            expected_end: end?,
            note: note?,
            alongside_ect_id: alongside?,
        })
    })
}

/// A participant id and one date.
pub fn id_and_date(
    id_field: &str,
    id_value: &str,
    date_field: &str,
    date_value: Option<&steplab_proto::google::r#type::Date>,
    required: bool,
) -> Result<(String, Option<NaiveDate>), FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id(id_field, id_value));
    let when = if required {
        v.check(date::PROGRAMME_DATES.required(date_field, date_value).map(Some))
    } else {
        v.check(date::PROGRAMME_DATES.optional(date_field, date_value))
    };
    v.finish(|| Some((participant_id?, when?)))
}

pub fn defer(req: &pb::DeferParticipantRequest) -> Result<(String, Deferral), FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let reason = v.check(deferral_reason("reason", req.reason));
    let deferral_date = v.check(date::PROGRAMME_DATES.required("deferral_date", req.deferral_date.as_ref()));
    let expected_return =
        v.check(date::PROGRAMME_DATES.required("expected_return_date", req.expected_return_date.as_ref()));
    let note = v.check(note("note", &req.note));
    if let (Some(from), Some(until)) = (deferral_date, expected_return)
        && until <= from
    {
        v.push(FieldViolation::new("expected_return_date", "must be after deferral_date (D3)"));
    }
    v.finish(|| {
        Some((
            participant_id?,
            Deferral { reason: reason?, deferral_date: deferral_date?, expected_return: expected_return?, note: note? },
        ))
    })
}

pub fn withdraw(
    req: &pb::WithdrawParticipantRequest,
) -> Result<(String, WithdrawalReason, Option<NaiveDate>, String), FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let reason = v.check(withdrawal_reason("reason", req.reason));
    let date = v.check(date::PROGRAMME_DATES.optional("withdrawal_date", req.withdrawal_date.as_ref()));
    let note = v.check(note("note", &req.note));
    // W8: checked here with the other fields, so a bad one is reported with them.
    let _ = v.check(replacement_induction_coordinator(req));
    v.finish(|| Some((participant_id?, reason?, date?, note?)))
}

/// W8: the replacement induction coordinator a withdrawal names, if any;
/// never the participant withdrawn.
pub fn replacement_induction_coordinator(
    req: &pb::WithdrawParticipantRequest,
) -> Result<Option<String>, FieldViolation> {
    let field = "replacement_induction_coordinator_id";
    let replacement = optional_id(field, &req.replacement_induction_coordinator_id)?;
    if replacement.as_deref().is_some_and(|r| r == req.participant_id) {
        return Err(FieldViolation::new(field, "must name another induction coordinator, not the one withdrawn"));
    }
    Ok(replacement)
}

pub fn id_and_note(id_field: &str, id_value: &str, note_value: &str) -> Result<(String, String), FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id(id_field, id_value));
    let note = v.check(note("note", note_value));
    v.finish(|| Some((participant_id?, note?)))
}

pub fn request_status(field: &str, value: i32) -> Result<Option<RequestStatus>, FieldViolation> {
    match pb::RequestStatus::try_from(value) {
        Ok(pb::RequestStatus::Unspecified) => Ok(None),
        Ok(pb::RequestStatus::Pending) => Ok(Some(RequestStatus::Pending)),
        Ok(pb::RequestStatus::Approved) => Ok(Some(RequestStatus::Approved)),
        Ok(pb::RequestStatus::Refused) => Ok(Some(RequestStatus::Refused)),
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not a RequestStatus"))),
    }
}

pub fn approval_request(row: RequestRow) -> pb::ApprovalRequest {
    let kind = match RequestKind::parse(&row.kind) {
        Some(RequestKind::Reinstatement) => pb::RequestKind::Reinstatement,
        Some(RequestKind::ReleaseStartChange) => pb::RequestKind::ReleaseStartChange,
        Some(RequestKind::KeepMentor) => pb::RequestKind::KeepMentor,
        Some(RequestKind::LongDeferral) => pb::RequestKind::LongDeferral,
        None => pb::RequestKind::Unspecified,
    };
    let status = match RequestStatus::parse(&row.status) {
        Some(RequestStatus::Pending) => pb::RequestStatus::Pending,
        Some(RequestStatus::Approved) => pb::RequestStatus::Approved,
        Some(RequestStatus::Refused) => pb::RequestStatus::Refused,
        None => pb::RequestStatus::Unspecified,
    };
    pb::ApprovalRequest {
        request_id: row.id,
        kind: kind as i32,
        status: status as i32,
        participant_id: row.participant_id,
        delivery_partner_id: row.delivery_partner_id,
        release_start: date::to_proto_opt(row.release_start),
        note: row.note,
        requested_by: row.requested_by,
        create_time: Some(timestamp(row.created_at)),
        decided_by: row.decided_by.unwrap_or_default(),
        decision_note: row.decision_note.unwrap_or_default(),
        decide_time: row.decided_at.map(timestamp),
        latest_return_date: date::to_proto_opt(row.latest_return_date),
        with_mentor: row.with_mentor,
    }
}

pub fn notification(row: NotificationRow) -> pb::Notification {
    let kind = match row.kind.as_str() {
        "school_without_participants" => pb::NotificationKind::SchoolWithoutParticipants,
        "induction_coordinator_needed" => pb::NotificationKind::InductionCoordinatorNeeded,
        "mentor_without_ect" => pb::NotificationKind::MentorWithoutEct,
        "ect_without_mentor" => pb::NotificationKind::EctWithoutMentor,
        _ => pb::NotificationKind::Unspecified,
    };
    pb::Notification {
        notification_id: row.id,
        kind: kind as i32,
        delivery_partner_id: row.delivery_partner_id,
        school_id: row.school_id,
        message: row.message,
        create_time: Some(timestamp(row.created_at)),
    }
}

pub fn outbox_command(row: OutboxRow) -> pb::OutboxCommand {
    let state = if row.delivered_at.is_some() {
        pb::CommandState::Delivered
    } else if row.parked_at.is_some() {
        pb::CommandState::Parked
    } else {
        pb::CommandState::Pending
    };
    pb::OutboxCommand {
        rpc: row.rpc().to_owned(),
        command_id: row.command_id,
        participant_id: row.participant_id,
        target: row.target,
        state: state as i32,
        attempts: row.attempts,
        last_error: row.last_error.unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        deliver_time: row.delivered_at.map(timestamp),
    }
}

pub fn event(event: Event) -> pb::ParticipantEvent {
    let summary = event.kind.summary();
    let mut out = pb::ParticipantEvent {
        event_id: format!("{}-{}", event.participant_id, event.sequence),
        participant_id: event.participant_id,
        sequence: event.sequence,
        effective_date: Some(date::to_proto(event.effective_date)),
        record_time: Some(timestamp(event.recorded_at)),
        actor: event.actor.sub,
        actor_role: event.actor.role,
        summary,
        caused_by_participant_id: event.caused_by.unwrap_or_default(),
        cursor: event.cursor,
        ..Default::default()
    };
    let (event_type, school, related) = match event.kind {
        EventKind::Registered { school_id, .. } => (pb::EventType::Registered, school_id, String::new()),
        EventKind::MentorAssigned { mentor_id, .. } => (pb::EventType::MentorAssigned, String::new(), mentor_id),
        EventKind::TemporaryMentorAssigned { mentor_id, until, .. } => {
            out.end_date = Some(date::to_proto(until));
            (pb::EventType::TemporaryMentorAssigned, String::new(), mentor_id)
        }
        EventKind::MentorCoverEnded { mentor_id } => (pb::EventType::MentorCoverEnded, String::new(), mentor_id),
        EventKind::MenteeAssigned { ect_id } => (pb::EventType::MenteeAssigned, String::new(), ect_id),
        EventKind::MenteeUnassigned { ect_id } => (pb::EventType::MenteeUnassigned, String::new(), ect_id),
        EventKind::SchoolMoved { school_id, .. } => (pb::EventType::SchoolMoved, school_id, String::new()),
        EventKind::Paused { start, expected_end, note, .. } => {
            out.start_date = Some(date::to_proto(start));
            out.end_date = Some(date::to_proto(expected_end));
            out.note = note;
            (pb::EventType::Paused, String::new(), String::new())
        }
        EventKind::PausedAlongside { start, expected_end, note, ect_id, .. } => {
            out.start_date = Some(date::to_proto(start));
            out.end_date = Some(date::to_proto(expected_end));
            out.note = note;
            (pb::EventType::PausedAlongside, String::new(), ect_id)
        }
        EventKind::MentoringEnded { mentor_id } => {
            (pb::EventType::MentoringEnded, String::new(), mentor_id.unwrap_or_default())
        }
        EventKind::PauseExtended { expected_end, .. } => {
            out.end_date = Some(date::to_proto(expected_end));
            (pb::EventType::PauseExtended, String::new(), String::new())
        }
        EventKind::PauseEnded { end, .. } => {
            out.end_date = Some(date::to_proto(end));
            (pb::EventType::PauseEnded, String::new(), String::new())
        }
        EventKind::Deferred { reason, deferral_date, expected_return, note, .. } => {
            out.deferral_reason = deferral_reason_to_proto(reason) as i32;
            out.start_date = Some(date::to_proto(deferral_date));
            out.end_date = Some(date::to_proto(expected_return));
            out.note = note;
            (pb::EventType::Deferred, String::new(), String::new())
        }
        EventKind::ReturnDateChanged { expected_return, .. } => {
            out.end_date = Some(date::to_proto(expected_return));
            (pb::EventType::ReturnDateChanged, String::new(), String::new())
        }
        EventKind::Returned { return_date, .. } => {
            out.end_date = Some(date::to_proto(return_date));
            (pb::EventType::Returned, String::new(), String::new())
        }
        EventKind::Withdrawn { reason, withdrawal_date, note, .. } => {
            out.withdrawal_reason = withdrawal_reason_to_proto(reason) as i32;
            out.start_date = Some(date::to_proto(withdrawal_date));
            out.note = note;
            (pb::EventType::Withdrawn, String::new(), String::new())
        }
        EventKind::Reinstated { reinstated_on, .. } => {
            out.start_date = Some(date::to_proto(reinstated_on));
            (pb::EventType::Reinstated, String::new(), String::new())
        }
        EventKind::ReleaseStartChanged { release_start, .. } => {
            out.start_date = Some(date::to_proto(release_start));
            (pb::EventType::ReleaseStartChanged, String::new(), String::new())
        }
    };
    out.r#type = event_type as i32;
    out.school_id = school;
    out.related_participant_id = related;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_proto::google::r#type::Date;

    fn registration() -> pb::RegisterParticipantRequest {
        pb::RegisterParticipantRequest {
            school_id: new_id(),
            kind: common::ParticipantKind::Ect as i32,
            full_name: "  Ada Lovelace ".into(),
            trn: "1234567".into(),
            registered_on: Some(Date { year: 2026, month: 9, day: 1 }),
            previous_pilot_mentor: false,
            request_id: String::new(),
            dfe_participant_id: String::new(),
        }
    }

    fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_valid_registration_converts_with_a_trimmed_name() {
        let r = register(&registration()).expect("valid");
        assert_eq!(r.full_name, "Ada Lovelace");
        assert_eq!(r.trn.as_deref(), Some("1234567"));
    }

    #[test]
    fn every_malformed_field_is_reported_at_once() {
        let mut req = registration();
        req.school_id = "nope".into();
        req.kind = 99;
        req.full_name = " ".into();
        req.registered_on = Some(Date { year: 2026, month: 2, day: 30 });
        let err = register(&req).expect_err("invalid");
        assert_eq!(fields(err), ["school_id", "kind", "full_name", "registered_on"]);
    }

    #[test]
    fn a_trn_is_seven_digits_and_optional_only_for_induction_coordinators() {
        let mut req = registration();
        req.trn = "12345".into();
        assert_eq!(fields(register(&req).expect_err("short trn")), ["trn"]);
        req.trn = String::new();
        assert_eq!(fields(register(&req).expect_err("missing trn")), ["trn"]);
        req.kind = common::ParticipantKind::InductionCoordinator as i32;
        assert_eq!(register(&req).expect("ic without trn").trn, None);
    }

    #[test]
    fn m4_previous_pilot_mentor_is_refused_on_an_ect() {
        let mut req = registration();
        req.previous_pilot_mentor = true;
        assert_eq!(fields(register(&req).expect_err("ect pilot")), ["previous_pilot_mentor"]);
    }

    #[test]
    fn huge_and_control_character_names_are_refused() {
        assert!(name("n", &"x".repeat(201)).is_err());
        assert!(name("n", "a\u{0}b").is_err());
        assert!(name("n", &"é".repeat(200)).is_ok());
    }

    #[test]
    fn a_school_needs_a_six_digit_urn() {
        let req = pb::CreateSchoolRequest {
            urn: "12a456".into(),
            name: "Hill School".into(),
            delivery_partner_id: new_id(),
            area_covered: true,
            request_id: String::new(),
        };
        assert_eq!(fields(create_school(&req).expect_err("bad urn")), ["urn"]);
    }

    #[test]
    fn list_filters_and_paging_are_validated() {
        let req =
            pb::ListParticipantsRequest { status: 42, page_size: -3, page_token: "x".into(), ..Default::default() };
        assert_eq!(fields(list(&req).expect_err("bad list")), ["status", "page_size", "page_token"]);
    }
}
