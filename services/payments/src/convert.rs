//! Wire <-> domain. Requests become commands that cannot be invalid (every
//! malformed field is reported at once as a field violation); domain answers
//! become response messages.

use crate::domain::accrual::{AccrualState, ExclusionReason, Facts, Plan, WindowOutcome};
use crate::domain::declarations;
use crate::domain::schedule::{self, Schedule, ScheduleBook, Window};
use crate::domain::{EngagementKind, PayeeKind};
use crate::store::{DeclarationRow, OutcomeRow};
use chrono::NaiveDate;
use std::collections::HashMap;
use steplab_platform::idempotency::IdempotencyKey;
use steplab_platform::{FieldViolation, FieldViolations, date, paging};
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::payments::v1 as pb;

/// Statement pages: 0 means this many; more than [`MAX_STATEMENT_PAGE`] is capped.
pub const DEFAULT_STATEMENT_PAGE: i64 = 500;
pub const MAX_STATEMENT_PAGE: i64 = 1000;
pub const MAX_NOTE_CHARS: usize = 2000;

/// A required id: the participant service issues UUIDs, so anything else
/// cannot name a participant, school or delivery partner.
pub use steplab_platform::ids::required as id;
use steplab_platform::ids::{excerpt as truncate, optional as optional_id};

/// An id chosen by the participant service (a suspension per deferral).
fn token(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if value.len() > 100 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(FieldViolation::new(field, "must be at most 100 printable ASCII characters without spaces"));
    }
    Ok(value.to_owned())
}

fn command_key(command_id: &str) -> Result<IdempotencyKey, FieldViolation> {
    IdempotencyKey::command("command_id", command_id)
}

fn kind(value: i32) -> Result<PayeeKind, FieldViolation> {
    match common::ParticipantKind::try_from(value) {
        Ok(common::ParticipantKind::Ect) => Ok(PayeeKind::Ect),
        Ok(common::ParticipantKind::Mentor) => Ok(PayeeKind::Mentor),
        Ok(common::ParticipantKind::InductionCoordinator) => Err(FieldViolation::new(
            "participant_kind",
            "an induction coordinator follows no programme and earns no output payments: enrol ECTs and mentors only",
        )),
        Ok(common::ParticipantKind::Unspecified) | Err(_) => {
            Err(FieldViolation::new("participant_kind", "must be PARTICIPANT_KIND_ECT or PARTICIPANT_KIND_MENTOR"))
        }
    }
}

/// A validated EnrolPayee.
#[derive(Debug, Clone)]
pub struct Enrol {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub delivery_partner_id: String,
    pub school_id: String,
    pub schedule_id: String,
    pub cohort: i32,
    pub kind: PayeeKind,
    pub funding_eligible: bool,
}

pub fn enrol(req: &pb::EnrolPayeeRequest) -> Result<Enrol, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let delivery_partner_id = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    let schedule_id = v.check(if req.schedule.trim().is_empty() {
        Err(FieldViolation::new("schedule", "is required, e.g. ecf-standard-september (see ListSchedules)"))
    } else {
        Ok(req.schedule.trim().to_owned())
    });
    let cohort = v.check(if req.cohort > 0 {
        Ok(req.cohort)
    } else {
        Err(FieldViolation::new("cohort", "must be a positive year, e.g. 2025"))
    });
    let kind = v.check(kind(req.participant_kind));
    // M4: only a mentor from the earlier pilot is enrolled unfunded.
    if kind == Some(PayeeKind::Ect) && !req.funding_eligible {
        v.push(FieldViolation::new(
            "funding_eligible",
            "must be true for an ECT: only a mentor from the earlier pilot is not funding eligible (M4)",
        ));
    }
    let school_id = v.check(id("school_id", &req.school_id));
    v.finish(|| {
        Some(Enrol {
            key: key?,
            participant_id: participant_id?,
            delivery_partner_id: delivery_partner_id?,
            school_id: school_id?,
            schedule_id: schedule_id?,
            cohort: cohort?,
            kind: kind?,
            funding_eligible: req.funding_eligible,
        })
    })
}

/// A validated SuspendAccrual.
#[derive(Debug, Clone)]
pub struct Suspend {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub suspension_id: String,
    pub from: NaiveDate,
    pub until: NaiveDate,
}

pub fn suspend(req: &pb::SuspendAccrualRequest) -> Result<Suspend, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let suspension_id = v.check(token("suspension_id", &req.suspension_id));
    let from = v.check(date::PROGRAMME_DATES.required("from", req.from.as_ref()));
    let until = v.check(date::PROGRAMME_DATES.required("until", req.until.as_ref()));
    if let (Some(f), Some(u)) = (from, until)
        && u <= f
    {
        v.push(FieldViolation::new(
            "until",
            format!("{u} is not after from {f}: until is the first day accruing again"),
        ));
    }
    v.finish(|| {
        Some(Suspend {
            key: key?,
            participant_id: participant_id?,
            suspension_id: suspension_id?,
            from: from?,
            until: until?,
        })
    })
}

/// A validated ResumeAccrual.
#[derive(Debug, Clone)]
pub struct Resume {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub suspension_id: String,
    pub on: NaiveDate,
}

pub fn resume(req: &pb::ResumeAccrualRequest) -> Result<Resume, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let suspension_id = v.check(token("suspension_id", &req.suspension_id));
    let on = v.check(date::PROGRAMME_DATES.required("on", req.on.as_ref()));
    v.finish(|| Some(Resume { key: key?, participant_id: participant_id?, suspension_id: suspension_id?, on: on? }))
}

/// A validated EndAccrual or ReopenAccrual.
#[derive(Debug, Clone)]
pub struct Dated {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub effective_date: NaiveDate,
}

fn dated(
    command_id: &str,
    participant_id: &str,
    effective_date: Option<&steplab_proto::google::r#type::Date>,
) -> Result<Dated, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(command_id));
    let participant_id = v.check(id("participant_id", participant_id));
    let effective_date = v.check(date::PROGRAMME_DATES.required("effective_date", effective_date));
    v.finish(|| Some(Dated { key: key?, participant_id: participant_id?, effective_date: effective_date? }))
}

pub fn end(req: &pb::EndAccrualRequest) -> Result<Dated, FieldViolations> {
    dated(&req.command_id, &req.participant_id, req.effective_date.as_ref())
}

pub fn reopen(req: &pb::ReopenAccrualRequest) -> Result<Dated, FieldViolations> {
    dated(&req.command_id, &req.participant_id, req.effective_date.as_ref())
}

/// A validated SetAreaCovered.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub covered: bool,
    pub from: NaiveDate,
}

pub fn coverage(req: &pb::SetAreaCoveredRequest) -> Result<Coverage, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let from = v.check(date::PROGRAMME_DATES.required("from", req.from.as_ref()));
    v.finish(|| Some(Coverage { key: key?, participant_id: participant_id?, covered: req.covered, from: from? }))
}

/// A validated SetParticipantScope.
#[derive(Debug, Clone)]
pub struct Move {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub school_id: String,
    pub delivery_partner_id: String,
    pub from: NaiveDate,
}

pub fn placement(req: &pb::SetParticipantScopeRequest) -> Result<Move, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let school_id = v.check(id("school_id", &req.school_id));
    let delivery_partner_id = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    let from = v.check(date::PROGRAMME_DATES.required("from", req.from.as_ref()));
    v.finish(|| {
        Some(Move {
            key: key?,
            participant_id: participant_id?,
            school_id: school_id?,
            delivery_partner_id: delivery_partner_id?,
            from: from?,
        })
    })
}

/// A validated RecordEngagement.
#[derive(Debug, Clone)]
pub struct Engagement {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub occurred_on: NaiveDate,
    pub kind: EngagementKind,
    pub note: String,
}

fn engagement_kind(value: i32) -> Result<EngagementKind, FieldViolation> {
    use pb::EngagementKind as K;
    match K::try_from(value) {
        Ok(K::ModuleCompleted) => Ok(EngagementKind::ModuleCompleted),
        Ok(K::CoachingSession) => Ok(EngagementKind::CoachingSession),
        Ok(K::Clinic) => Ok(EngagementKind::Clinic),
        Ok(K::Conference) => Ok(EngagementKind::Conference),
        Ok(K::Event) => Ok(EngagementKind::Event),
        Ok(K::CoachingOnCoaching) => Ok(EngagementKind::CoachingOnCoaching),
        Ok(K::Other) => Ok(EngagementKind::Other),
        Ok(K::Unspecified) | Err(_) => Err(FieldViolation::new(
            "kind",
            "must be an ENGAGEMENT_KIND_* value other than UNSPECIFIED, e.g. ENGAGEMENT_KIND_MODULE_COMPLETED",
        )),
    }
}

fn note(value: &str) -> Result<String, FieldViolation> {
    steplab_platform::text::note("note", value, MAX_NOTE_CHARS)
}

/// `caller_sub` namespaces the request_id, so two callers cannot collide.
pub fn engagement(req: &pb::RecordEngagementRequest, caller_sub: &str) -> Result<Engagement, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let occurred_on = v.check(date::PROGRAMME_DATES.required("occurred_on", req.occurred_on.as_ref()));
    let kind = v.check(engagement_kind(req.kind));
    let key = v.check(IdempotencyKey::parse("request_id", caller_sub, &req.request_id).and_then(|k| {
        k.ok_or_else(|| {
            FieldViolation::new(
                "request_id",
                "is required: engagement earns money, so a retried call must not count twice (use a UUID)",
            )
        })
    }));
    let note = v.check(note(&req.note));
    v.finish(|| {
        Some(Engagement {
            key: key?,
            participant_id: participant_id?,
            occurred_on: occurred_on?,
            kind: kind?,
            note: note?,
        })
    })
}

/// A validated RecordDeclarationState.
#[derive(Debug, Clone)]
pub struct DeclarationState {
    pub key: IdempotencyKey,
    pub participant_id: String,
    pub declaration_type: String,
    pub dfe_declaration_id: String,
    pub state: String,
}

pub fn declaration_state(req: &pb::RecordDeclarationStateRequest) -> Result<DeclarationState, FieldViolations> {
    let mut v = FieldViolations::default();
    let key = v.check(command_key(&req.command_id));
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let declaration_type = v.check(if declarations::is_declaration_type(&req.declaration_type) {
        Ok(req.declaration_type.clone())
    } else {
        Err(FieldViolation::new(
            "declaration_type",
            format!(
                "`{}` is not a DfE declaration type: one of {}",
                truncate(&req.declaration_type),
                declarations::DECLARATION_TYPES.join(", ")
            ),
        ))
    });
    let dfe_declaration_id = v.check(token("dfe_declaration_id", &req.dfe_declaration_id));
    let state = v.check(if declarations::is_dfe_state(&req.state) {
        Ok(req.state.clone())
    } else {
        Err(FieldViolation::new(
            "state",
            format!(
                "`{}` is not a DfE declaration state: one of {}",
                truncate(&req.state),
                declarations::DFE_STATES.join(", ")
            ),
        ))
    });
    v.finish(|| {
        Some(DeclarationState {
            key: key?,
            participant_id: participant_id?,
            declaration_type: declaration_type?,
            dfe_declaration_id: dfe_declaration_id?,
            state: state?,
        })
    })
}

/// A validated GetAccrual.
#[derive(Debug, Clone)]
pub struct AccrualQuery {
    pub participant_id: String,
    pub as_of: Option<NaiveDate>,
}

pub fn accrual_query(req: &pb::GetAccrualRequest) -> Result<AccrualQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let participant_id = v.check(id("participant_id", &req.participant_id));
    let as_of = v.check(date::optional("as_of", req.as_of.as_ref()));
    v.finish(|| Some(AccrualQuery { participant_id: participant_id?, as_of: as_of? }))
}

/// A validated GetStatement.
#[derive(Debug, Clone)]
pub struct StatementQuery {
    pub window_id: String,
    pub delivery_partner_id: Option<String>,
    pub page_size: i64,
    pub after: Option<String>,
}

/// Binds a page token to its window and delivery partner, so a token from
/// another statement is refused rather than silently skipping payees.
fn statement_binding(window_id: &str, delivery_partner_id: Option<&str>) -> String {
    format!("{:016x}", schedule::fnv1a64(&format!("{window_id}|{}", delivery_partner_id.unwrap_or(""))))
}

pub fn statement_token(window_id: &str, delivery_partner_id: Option<&str>, last_participant: &str) -> String {
    paging::encode_token(&format!("{last_participant}.{}", statement_binding(window_id, delivery_partner_id)))
}

pub fn statement_query(req: &pb::GetStatementRequest) -> Result<StatementQuery, FieldViolations> {
    let mut v = FieldViolations::default();
    let window_id = v.check(if schedule::parse_window_id(&req.window).is_some() {
        Ok(req.window.clone())
    } else if req.window.is_empty() {
        Err(FieldViolation::new(
            "window",
            "is required: <schedule>/<cohort>/<milestone>, e.g. ecf-standard-september/2025/started",
        ))
    } else {
        Err(FieldViolation::new(
            "window",
            format!(
                "`{}` is not <schedule>/<cohort>/<milestone>, e.g. ecf-standard-september/2025/started",
                truncate(&req.window)
            ),
        ))
    });
    let delivery_partner_id = v.check(optional_id("delivery_partner_id", &req.delivery_partner_id));
    let page_size = v.check(match i64::from(req.page_size) {
        0 => Ok(DEFAULT_STATEMENT_PAGE),
        n if n < 0 => Err(FieldViolation::new(
            "page_size",
            format!("{n} is negative: use 0 for {DEFAULT_STATEMENT_PAGE}, at most {MAX_STATEMENT_PAGE}"),
        )),
        n => Ok(n.min(MAX_STATEMENT_PAGE)),
    });
    let after = v.check(paging::decode_token(&req.page_token).and_then(|key| match key {
        None => Ok(None),
        Some(key) => {
            let expected = statement_binding(&req.window, delivery_partner_id.clone().flatten().as_deref());
            match key.rsplit_once('.') {
                Some((last, binding)) if binding == expected && !last.is_empty() => Ok(Some(last.to_owned())),
                _ => Err(FieldViolation::new(
                    "page_token",
                    "is not from a previous call with the same window and delivery_partner_id",
                )),
            }
        }
    }));
    v.finish(|| {
        Some(StatementQuery {
            window_id: window_id?,
            delivery_partner_id: delivery_partner_id?,
            page_size: page_size?,
            after: after?,
        })
    })
}

/// A validated ListSchedules: the cohort, or `None` for every cohort.
pub fn schedules_query(req: &pb::ListSchedulesRequest) -> Result<Option<i32>, FieldViolations> {
    let mut v = FieldViolations::default();
    let cohort = v.check(match req.cohort {
        0 => Ok(None),
        c if c > 0 => Ok(Some(c)),
        c => Err(FieldViolation::new(
            "cohort",
            format!("{c} is negative: use a year such as 2025, or 0 for every cohort"),
        )),
    });
    if req.page_size < 0 {
        v.push(FieldViolation::new("page_size", format!("{} is negative: use 0 for all", req.page_size)));
    }
    // Every schedule comes in one page, so no token is ever issued.
    if !req.page_token.is_empty() {
        v.push(FieldViolation::new("page_token", "is not from a previous call with the same cohort: leave it empty"));
    }
    v.finish(|| cohort)
}

pub fn ack(command_id: &str, duplicate: bool) -> common::CommandAck {
    common::CommandAck { command_id: command_id.to_owned(), duplicate }
}

pub fn schedule(book: &ScheduleBook, s: &Schedule) -> pb::Schedule {
    pb::Schedule {
        schedule_id: s.id.clone(),
        cohort: s.cohort,
        variant: s.variant.as_str().to_owned(),
        description: s.description.clone(),
        windows: s.windows.iter().map(milestone_window).collect(),
        per_participant_price_pence: book.listed_price_pence(s),
        output_share_percent: i32::try_from(book.output_share_percent()).unwrap_or_default(),
    }
}

fn milestone_window(w: &Window) -> pb::MilestoneWindow {
    pb::MilestoneWindow {
        window_id: w.id.clone(),
        milestone: w.milestone.clone(),
        start: Some(date::to_proto(w.start)),
        end: Some(date::to_proto(w.end)),
        share_percent: i32::try_from(w.share_percent).unwrap_or_default(),
    }
}

fn state(state: AccrualState) -> pb::AccrualState {
    match state {
        AccrualState::Accruing => pb::AccrualState::Accruing,
        AccrualState::Suspended => pb::AccrualState::Suspended,
        AccrualState::Ended => pb::AccrualState::Ended,
    }
}

pub fn reason(reason: ExclusionReason) -> pb::ExclusionReason {
    match reason {
        ExclusionReason::IneligibleMentor => pb::ExclusionReason::IneligibleMentor,
        ExclusionReason::AlreadyPaidAllMilestones => pb::ExclusionReason::AlreadyPaidAllMilestones,
        ExclusionReason::Withdrawn => pb::ExclusionReason::Withdrawn,
        ExclusionReason::Deferred => pb::ExclusionReason::Deferred,
        ExclusionReason::OutOfArea => pb::ExclusionReason::OutOfArea,
        ExclusionReason::NoEngagement => pb::ExclusionReason::NoEngagement,
    }
}

/// GetAccrual's answer on `as_of` from the payee's facts and earnings.
pub fn accrual(
    participant_id: &str,
    plan: &Plan<'_>,
    facts: &Facts,
    earned: &[WindowOutcome<'_>],
    declared: &[DeclarationRow],
    as_of: NaiveDate,
) -> pb::GetAccrualResponse {
    let schedule = plan.schedule;
    let since = facts.returns_by(as_of).last().copied();
    use crate::domain::accrual::Outcome;
    let milestones: Vec<pb::EarnedMilestone> = earned
        .iter()
        .filter_map(|o| match &o.outcome {
            Outcome::Earned { milestone, amount_pence, earned_on } => {
                let declaration = declared.iter().find(|d| &d.declaration_type == milestone);
                Some(pb::EarnedMilestone {
                    milestone: milestone.clone(),
                    window: o.window.id.clone(),
                    window_start: Some(date::to_proto(o.window.start)),
                    window_end: Some(date::to_proto(o.window.end)),
                    amount_pence: *amount_pence,
                    earned_on: Some(date::to_proto(*earned_on)),
                    dfe_declared: declaration.is_some_and(|d| d.active),
                    dfe_declaration_id: declaration.and_then(|d| d.dfe_declaration_id.clone()).unwrap_or_default(),
                    dfe_state: declaration.and_then(|d| d.dfe_state.clone()).unwrap_or_default(),
                })
            }
            Outcome::Excluded { .. } => None,
        })
        .collect();
    pb::GetAccrualResponse {
        participant_id: participant_id.to_owned(),
        as_of: Some(date::to_proto(as_of)),
        state: state(facts.state_on(as_of)) as i32,
        suspension: facts.suspension_on(as_of).map(|s| pb::Suspension {
            suspension_id: s.id.clone(),
            from: Some(date::to_proto(s.from)),
            until: Some(date::to_proto(s.until)),
        }),
        total_pence: milestones.iter().map(|m| m.amount_pence).sum(),
        milestones,
        schedule: schedule.id.clone(),
        cohort: schedule.cohort,
        delivery_partner_id: facts.placement_on(as_of).delivery_partner_id.clone(),
        funding_eligible: facts.funding_eligible,
        area_covered: facts.covered_on(as_of),
        current_schedule: since.map_or_else(|| schedule.id.clone(), |r| schedule::schedule_for_return(&schedule.id, r)),
        current_schedule_since: since.map(date::to_proto),
        windows: plan.windows.iter().copied().map(milestone_window).collect(),
    }
}

/// One page of a statement from its stored outcomes; `None` if a stored
/// exclusion reason is unknown (a bug, reported as internal).
pub fn statement_page(
    query: &StatementQuery,
    rows: Vec<OutcomeRow>,
    declared: &HashMap<(String, String), DeclarationRow>,
    total_pence: i64,
    next_page_token: String,
) -> Option<pb::GetStatementResponse> {
    let mut lines = Vec::new();
    let mut exclusions = Vec::new();
    for row in rows {
        match (row.milestone, row.exclusion_reason) {
            (Some(milestone), _) => {
                let declaration = declared.get(&(row.participant_id.clone(), milestone.clone()));
                lines.push(pb::StatementLine {
                    dfe_state: declaration.and_then(|d| d.dfe_state.clone()).unwrap_or_default(),
                    dfe_declaration_id: declaration.and_then(|d| d.dfe_declaration_id.clone()).unwrap_or_default(),
                    participant_id: row.participant_id,
                    delivery_partner_id: row.delivery_partner_id,
                    milestone,
                    amount_pence: row.amount_pence,
                })
            }
            (None, Some(r)) => exclusions.push(pb::Exclusion {
                participant_id: row.participant_id,
                reason: reason(ExclusionReason::parse(&r)?) as i32,
                detail: row.detail,
            }),
            (None, None) => return None,
        }
    }
    Some(pb::GetStatementResponse {
        window: query.window_id.clone(),
        delivery_partner_id: query.delivery_partner_id.clone().unwrap_or_default(),
        lines,
        exclusions,
        total_pence,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_proto::google::r#type::Date;

    fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }

    fn uuid() -> String {
        uuid::Uuid::now_v7().to_string()
    }

    fn enrolment() -> pb::EnrolPayeeRequest {
        pb::EnrolPayeeRequest {
            command_id: "c1".into(),
            participant_id: uuid(),
            delivery_partner_id: uuid(),
            schedule: "ecf-standard-september".into(),
            cohort: 2025,
            funding_eligible: true,
            participant_kind: common::ParticipantKind::Ect as i32,
            school_id: uuid(),
        }
    }

    #[test]
    fn every_malformed_enrolment_field_is_reported_at_once() {
        let req = pb::EnrolPayeeRequest {
            command_id: String::new(),
            participant_id: "nope".into(),
            delivery_partner_id: String::new(),
            schedule: " ".into(),
            cohort: 0,
            funding_eligible: true,
            participant_kind: 0,
            school_id: "x".into(),
        };
        assert_eq!(
            fields(enrol(&req).expect_err("invalid")),
            [
                "command_id",
                "participant_id",
                "delivery_partner_id",
                "schedule",
                "cohort",
                "participant_kind",
                "school_id"
            ]
        );
        assert!(enrol(&enrolment()).is_ok());
    }

    #[test]
    fn m4_an_unfunded_ect_and_an_induction_coordinator_are_not_payees() {
        let mut req = enrolment();
        req.funding_eligible = false;
        assert_eq!(fields(enrol(&req).expect_err("ect")), ["funding_eligible"]);
        req.participant_kind = common::ParticipantKind::Mentor as i32;
        assert!(enrol(&req).is_ok(), "a pilot mentor is enrolled unfunded");
        req.participant_kind = common::ParticipantKind::InductionCoordinator as i32;
        assert_eq!(fields(enrol(&req).expect_err("ic")), ["participant_kind"]);
    }

    #[test]
    fn d4_a_suspension_ends_after_it_starts() {
        let req = pb::SuspendAccrualRequest {
            command_id: "c".into(),
            participant_id: uuid(),
            suspension_id: "s1".into(),
            from: Some(Date { year: 2026, month: 3, day: 1 }),
            until: Some(Date { year: 2026, month: 3, day: 1 }),
        };
        assert_eq!(fields(suspend(&req).expect_err("empty")), ["until"]);
        let req = pb::SuspendAccrualRequest {
            from: Some(Date { year: 2026, month: 2, day: 30 }),
            until: None,
            suspension_id: "has space".into(),
            ..req
        };
        assert_eq!(fields(suspend(&req).expect_err("bad")), ["suspension_id", "from", "until"]);
    }

    #[test]
    fn f2_engagement_needs_a_kind_a_date_and_a_request_id() {
        let req = pb::RecordEngagementRequest {
            participant_id: uuid(),
            occurred_on: None,
            kind: 0,
            request_id: String::new(),
            note: "x\u{0}".into(),
        };
        assert_eq!(fields(engagement(&req, "sub").expect_err("bad")), ["occurred_on", "kind", "request_id", "note"]);
    }

    #[test]
    fn f6_statement_windows_page_sizes_and_tokens_are_validated() {
        let req = pb::GetStatementRequest {
            window: "ecf-standard-september/2025".into(),
            delivery_partner_id: "dp".into(),
            page_size: -1,
            page_token: "forged".into(),
        };
        assert_eq!(
            fields(statement_query(&req).expect_err("bad")),
            ["window", "delivery_partner_id", "page_size", "page_token"]
        );
        let good = pb::GetStatementRequest {
            window: "ecf-standard-september/2025/started".into(),
            delivery_partner_id: String::new(),
            page_size: 5000,
            page_token: statement_token("ecf-standard-september/2025/started", None, "p-1"),
        };
        let q = statement_query(&good).expect("valid");
        assert_eq!(q.page_size, MAX_STATEMENT_PAGE);
        assert_eq!(q.after.as_deref(), Some("p-1"));
        let other_window = pb::GetStatementRequest { window: "ecf-standard-september/2025/retained-1".into(), ..good };
        assert_eq!(fields(statement_query(&other_window).expect_err("foreign token")), ["page_token"]);
    }

    #[test]
    fn f1_list_schedules_refuses_negatives_and_tokens_it_never_issued() {
        let req = pb::ListSchedulesRequest { cohort: -1, page_size: -1, page_token: "x".into() };
        assert_eq!(fields(schedules_query(&req).expect_err("bad")), ["cohort", "page_size", "page_token"]);
        assert_eq!(schedules_query(&pb::ListSchedulesRequest::default()), Ok(None));
    }
}
