//! Wire -> domain: each request becomes a command or query that cannot be
//! invalid, every malformed field reported at once. The commands open with
//! the platform's command envelope, so `command_id` and `participant_id`
//! are read as in every other service.

use crate::domain::CallState;
use crate::domain::mapping::{self, Course, StatusChange};
use chrono::NaiveDate;
use steplab_platform::envelope::CommandEnvelope;
use steplab_platform::ids::{self, ParticipantId};
use steplab_platform::paging::Pages;
use steplab_platform::{FieldViolation, FieldViolations, date, paging};
use steplab_proto::steplab::dfe::v1 as pb;

fn course(field: &str, value: i32) -> Result<Course, FieldViolation> {
    match pb::Course::try_from(value) {
        Ok(pb::Course::EcfInduction) => Ok(Course::EcfInduction),
        Ok(pb::Course::EcfMentor) => Ok(Course::EcfMentor),
        _ => Err(FieldViolation::new(field, "must be COURSE_ECF_INDUCTION (an ECT) or COURSE_ECF_MENTOR (a mentor)")),
    }
}

pub fn course_to_proto(course: &str) -> i32 {
    match Course::parse(course) {
        Some(Course::EcfInduction) => pb::Course::EcfInduction as i32,
        Some(Course::EcfMentor) => pb::Course::EcfMentor as i32,
        None => pb::Course::Unspecified as i32,
    }
}

/// A DfE id: a UUID, kept in canonical lower-case form.
fn dfe_id(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    uuid::Uuid::parse_str(value).map(|u| Some(u.hyphenated().to_string())).map_err(|_| {
        FieldViolation::new(field, format!("`{}` is not a UUID (the DfE's participant id)", ids::excerpt(value)))
    })
}

fn trn(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() || (value.len() == 7 && value.chars().all(|c| c.is_ascii_digit())) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(field, "must be 7 digits (or empty)"))
    }
}

fn cohort(field: &str, value: i32) -> Result<i32, FieldViolation> {
    if (2020..=2100).contains(&value) {
        Ok(value)
    } else {
        Err(FieldViolation::new(field, format!("{value} is not a cohort year (2020 to 2100)")))
    }
}

fn schedule(field: &str, value: &str, required: bool) -> Result<String, FieldViolation> {
    if value.is_empty() && !required {
        return Ok(String::new());
    }
    if mapping::DFE_SCHEDULES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            field,
            format!("`{}` is not a DfE schedule identifier (e.g. ecf-standard-september)", ids::excerpt(value)),
        ))
    }
}

fn declaration_type(field: &str, value: &str) -> Result<String, FieldViolation> {
    if mapping::DECLARATION_TYPES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            field,
            format!(
                "`{}` is not a DfE declaration type (started, retained-1..4, completed, extended-1..3)",
                ids::excerpt(value)
            ),
        ))
    }
}

fn evidence_held(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        Ok(None)
    } else if mapping::EVIDENCE_HELD.contains(&value) {
        Ok(Some(value.to_owned()))
    } else {
        Err(FieldViolation::new(field, "is not one of the DfE's evidence_held words"))
    }
}

/// A validated TrackParticipant.
#[derive(Debug, Clone)]
pub struct Track {
    pub envelope: CommandEnvelope,
    pub course: Course,
    /// `None`: not known yet (an empty id never clears a known one).
    pub dfe_participant_id: Option<String>,
    /// Empty when not known.
    pub trn: String,
    pub cohort: i32,
    /// Empty: keep the schedule already decided.
    pub schedule_identifier: String,
}

impl TryFrom<&pb::TrackParticipantRequest> for Track {
    type Error = FieldViolations;

    fn try_from(req: &pb::TrackParticipantRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::default();
        let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
        let course = v.check(course("course", req.course));
        let dfe_participant_id = v.check(dfe_id("dfe_participant_id", &req.dfe_participant_id));
        let trn = v.check(trn("trn", &req.trn));
        let cohort = v.check(cohort("cohort", req.cohort));
        let schedule_identifier = v.check(schedule("schedule_identifier", &req.schedule_identifier, false));
        v.finish(|| {
            Some(Track {
                envelope: envelope?,
                course: course?,
                dfe_participant_id: dfe_participant_id?,
                trn: trn?,
                cohort: cohort?,
                schedule_identifier: schedule_identifier?,
            })
        })
    }
}

/// A validated ReportStatusChange.
#[derive(Debug, Clone)]
pub struct Report {
    pub envelope: CommandEnvelope,
    pub change: StatusChange,
}

fn status_change(v: &mut FieldViolations, req: &pb::ReportStatusChangeRequest) -> Option<StatusChange> {
    match pb::StatusChangeKind::try_from(req.kind) {
        Ok(pb::StatusChangeKind::Defer) => v.check(
            mapping::deferral_reason(&req.reason).map(|reason| StatusChange::Defer { reason }).ok_or_else(|| {
                FieldViolation::new(
                    "reason",
                    "must be a deferral reason of D3 (bereavement, long-term-sickness, parental-leave, career-break, other)",
                )
            }),
        ),
        Ok(pb::StatusChangeKind::Resume) => Some(StatusChange::Resume),
        Ok(pb::StatusChangeKind::Withdraw) => v.check(
            mapping::withdrawal_reason(&req.reason)
                .map(|reason| StatusChange::Withdraw { reason })
                .ok_or_else(|| FieldViolation::new("reason", "must be a withdrawal reason of W3")),
        ),
        Ok(pb::StatusChangeKind::ChangeSchedule) => {
            let s = v.check(schedule("schedule_identifier", &req.schedule_identifier, true));
            let c = v.check(cohort("cohort", req.cohort));
            s.zip(c).map(|(schedule_identifier, cohort)| StatusChange::ChangeSchedule { schedule_identifier, cohort })
        }
        _ => {
            v.push(FieldViolation::new("kind", "must be DEFER, RESUME, WITHDRAW or CHANGE_SCHEDULE"));
            None
        }
    }
}

impl TryFrom<&pb::ReportStatusChangeRequest> for Report {
    type Error = FieldViolations;

    fn try_from(req: &pb::ReportStatusChangeRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::default();
        let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
        // The DfE's status calls carry no date (`mapping::status_change_request`);
        // a malformed one is still reported rather than silently dropped.
        v.check(date::required("effective_date", req.effective_date.as_ref()));
        let change = status_change(&mut v, req);
        v.finish(|| Some(Report { envelope: envelope?, change: change? }))
    }
}

/// A validated DeclareMilestone.
#[derive(Debug, Clone)]
pub struct Declare {
    pub envelope: CommandEnvelope,
    pub declaration_type: String,
    pub declaration_date: NaiveDate,
    pub evidence_held: Option<String>,
}

impl TryFrom<&pb::DeclareMilestoneRequest> for Declare {
    type Error = FieldViolations;

    fn try_from(req: &pb::DeclareMilestoneRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::default();
        let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
        let declaration_type = v.check(declaration_type("declaration_type", &req.declaration_type));
        let declaration_date = v.check(date::required("declaration_date", req.declaration_date.as_ref()));
        let evidence_held = v.check(evidence_held("evidence_held", &req.evidence_held));
        v.finish(|| {
            Some(Declare {
                envelope: envelope?,
                declaration_type: declaration_type?,
                declaration_date: declaration_date?,
                evidence_held: evidence_held?,
            })
        })
    }
}

/// A validated VoidMilestone.
#[derive(Debug, Clone)]
pub struct Void {
    pub envelope: CommandEnvelope,
    pub declaration_type: String,
}

impl TryFrom<&pb::VoidMilestoneRequest> for Void {
    type Error = FieldViolations;

    fn try_from(req: &pb::VoidMilestoneRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::default();
        let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
        let declaration_type = v.check(declaration_type("declaration_type", &req.declaration_type));
        v.finish(|| Some(Void { envelope: envelope?, declaration_type: declaration_type? }))
    }
}

/// A validated ListDfeCalls.
#[derive(Debug, Clone)]
pub struct CallsQuery {
    pub participant_id: Option<ParticipantId>,
    pub state: Option<CallState>,
    pub limit: i64,
    /// The last call of the previous page.
    pub after: Option<i64>,
}

fn call_state(field: &str, value: i32) -> Result<Option<CallState>, FieldViolation> {
    match pb::DfeCallState::try_from(value) {
        Ok(pb::DfeCallState::Unspecified) => Ok(None),
        Ok(pb::DfeCallState::WaitingForDfeId) => Ok(Some(CallState::WaitingForDfeId)),
        Ok(pb::DfeCallState::Pending) => Ok(Some(CallState::Pending)),
        Ok(pb::DfeCallState::Delivered) => Ok(Some(CallState::Delivered)),
        Ok(pb::DfeCallState::Parked) => Ok(Some(CallState::Parked)),
        Err(_) => Err(FieldViolation::new(field, "is not a DfeCallState")),
    }
}

/// The call id a page token names. The token's MAC held, so a key that is
/// not an id is a token of an older build.
fn call_position(key: Option<String>) -> Result<Option<i64>, FieldViolation> {
    key.map(|key| {
        key.parse::<i64>()
            .map_err(|_| FieldViolation::new("page_token", "is from an older version: start again without page_token"))
    })
    .transpose()
}

impl CallsQuery {
    /// `pages` are the request's page tokens (bound to its filter and caller).
    pub fn read(req: &pb::ListDfeCallsRequest, pages: &Pages) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::default();
        let participant_id = v.check(ParticipantId::parse_optional("participant_id", &req.participant_id));
        let state = v.check(call_state("state", req.state));
        let limit = v.check(paging::page_size(req.page_size));
        let after = v.check(pages.after(&req.page_token).and_then(call_position));
        v.finish(|| Some(CallsQuery { participant_id: participant_id?, state: state?, limit: limit?, after: after? }))
    }
}

/// A validated ListUnreportable.
#[derive(Debug, Clone)]
pub struct UnreportableQuery {
    pub limit: i64,
    /// The last participant of the previous page.
    pub after: Option<String>,
}

impl UnreportableQuery {
    /// `pages` are the request's page tokens (bound to its caller).
    pub fn read(req: &pb::ListUnreportableRequest, pages: &Pages) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::default();
        let limit = v.check(paging::page_size(req.page_size));
        let after = v.check(pages.after(&req.page_token));
        v.finish(|| Some(UnreportableQuery { limit: limit?, after: after? }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn x1_every_malformed_field_of_a_track_is_reported_at_once() {
        let req = pb::TrackParticipantRequest {
            idempotency_key: String::new(),
            participant_id: "p1".into(),
            course: 0,
            dfe_participant_id: "not-a-uuid".into(),
            trn: "12".into(),
            cohort: 1999,
            schedule_identifier: "weekly".into(),
        };
        assert_eq!(
            fields(Track::try_from(&req).expect_err("invalid")),
            [
                "idempotency_key",
                "participant_id",
                "course",
                "dfe_participant_id",
                "trn",
                "cohort",
                "schedule_identifier"
            ]
        );
    }

    #[test]
    fn x4_a_status_change_needs_a_kind_and_a_date() {
        let req = pb::ReportStatusChangeRequest {
            idempotency_key: "c1".into(),
            participant_id: ParticipantId::generate().into_string(),
            kind: 0,
            ..Default::default()
        };
        assert_eq!(fields(Report::try_from(&req).expect_err("invalid")), ["effective_date", "kind"]);
    }

    #[test]
    fn x5_evidence_held_is_optional_but_one_of_the_dfes_words() {
        let req = |evidence_held: &str| pb::DeclareMilestoneRequest {
            idempotency_key: "c1".into(),
            participant_id: ParticipantId::generate().into_string(),
            declaration_type: "started".into(),
            declaration_date: Some(steplab_platform::date::to_proto(NaiveDate::from_ymd_opt(2026, 9, 1).expect("d"))),
            evidence_held: evidence_held.into(),
            ..Default::default()
        };
        assert_eq!(Declare::try_from(&req("")).expect("valid").evidence_held, None);
        assert_eq!(fields(Declare::try_from(&req("a hunch")).expect_err("invalid")), ["evidence_held"]);
    }
}
