//! Commands from the participant service, the DfE gateway and providers
//! (RecordEngagement): each request becomes a typed command or every
//! malformed field at once.

use crate::convert::MAX_NOTE_CHARS;
use crate::domain::declarations;
use crate::domain::{EngagementKind, PayeeKind};
use chrono::NaiveDate;
use steplab_platform::envelope::{CommandEnvelope, DatedCommand};
use steplab_platform::idempotency::IdempotencyKey;
use steplab_platform::ids::{DeliveryPartnerId, ParticipantId, SchoolId, excerpt as truncate};
use steplab_platform::{FieldViolation, FieldViolations, date};
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::payments::v1 as pb;

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
    pub participant_id: ParticipantId,
    pub delivery_partner_id: DeliveryPartnerId,
    pub school_id: SchoolId,
    pub schedule_id: String,
    pub cohort: i32,
    pub kind: PayeeKind,
    pub funding_eligible: bool,
}

pub fn enrol(req: &pb::EnrolPayeeRequest) -> Result<Enrol, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
    let delivery_partner_id = v.check(DeliveryPartnerId::parse("delivery_partner_id", &req.delivery_partner_id));
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
    let funding_eligible = v.check(match (req.funding_eligible, kind) {
        (None, _) => Err(FieldViolation::new(
            "funding_eligible",
            "is required: true, or false for a mentor from the earlier pilot (M4)",
        )),
        (Some(false), Some(PayeeKind::Ect)) => Err(FieldViolation::new(
            "funding_eligible",
            "must be true for an ECT: only a mentor from the earlier pilot is not funding eligible (M4)",
        )),
        (Some(eligible), _) => Ok(eligible),
    });
    let school_id = v.check(SchoolId::parse("school_id", &req.school_id));
    v.finish(|| {
        let CommandEnvelope { key, participant_id } = envelope?;
        Some(Enrol {
            key,
            participant_id,
            delivery_partner_id: delivery_partner_id?,
            school_id: school_id?,
            schedule_id: schedule_id?,
            cohort: cohort?,
            kind: kind?,
            funding_eligible: funding_eligible?,
        })
    })
}

/// A validated SuspendAccrual.
#[derive(Debug, Clone)]
pub struct Suspend {
    pub key: IdempotencyKey,
    pub participant_id: ParticipantId,
    pub suspension_id: String,
    pub from: NaiveDate,
    pub until: NaiveDate,
}

pub fn suspend(req: &pb::SuspendAccrualRequest) -> Result<Suspend, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
    let suspension_id = v.check(token("suspension_id", &req.suspension_id));
    let from = v.check(date::PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
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
        let CommandEnvelope { key, participant_id } = envelope?;
        Some(Suspend { key, participant_id, suspension_id: suspension_id?, from: from?, until: until? })
    })
}

/// A validated ResumeAccrual.
#[derive(Debug, Clone)]
pub struct Resume {
    pub key: IdempotencyKey,
    pub participant_id: ParticipantId,
    pub suspension_id: String,
    pub on: NaiveDate,
}

pub fn resume(req: &pb::ResumeAccrualRequest) -> Result<Resume, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
    let suspension_id = v.check(token("suspension_id", &req.suspension_id));
    let on = v.check(date::PROGRAMME_DATES.required("on", req.on.as_ref()));
    v.finish(|| {
        let CommandEnvelope { key, participant_id } = envelope?;
        Some(Resume { key, participant_id, suspension_id: suspension_id?, on: on? })
    })
}

/// A validated EndAccrual or ReopenAccrual.
#[derive(Debug, Clone)]
pub struct Dated {
    pub key: IdempotencyKey,
    pub participant_id: ParticipantId,
    pub effective_date: NaiveDate,
}

fn dated(
    command_id: &str,
    participant_id: &str,
    effective_date: Option<&steplab_proto::google::r#type::Date>,
) -> Result<Dated, FieldViolations> {
    let DatedCommand { envelope: CommandEnvelope { key, participant_id }, effective_date } =
        DatedCommand::parse(command_id, participant_id, effective_date)?;
    Ok(Dated { key, participant_id, effective_date })
}

pub fn end(req: &pb::EndAccrualRequest) -> Result<Dated, FieldViolations> {
    dated(&req.idempotency_key, &req.participant_id, req.effective_date.as_ref())
}

pub fn reopen(req: &pb::ReopenAccrualRequest) -> Result<Dated, FieldViolations> {
    dated(&req.idempotency_key, &req.participant_id, req.effective_date.as_ref())
}

/// A validated SetAreaCovered.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub key: IdempotencyKey,
    pub participant_id: ParticipantId,
    pub covered: bool,
    pub from: NaiveDate,
}

pub fn coverage(req: &pb::SetAreaCoveredRequest) -> Result<Coverage, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
    let covered = v.check(req.covered.ok_or_else(|| {
        FieldViolation::new("covered", "is required: true when the lead provider covers the area, false when not (S2)")
    }));
    let from = v.check(date::PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
    v.finish(|| {
        let CommandEnvelope { key, participant_id } = envelope?;
        Some(Coverage { key, participant_id, covered: covered?, from: from? })
    })
}

/// A validated SetParticipantScope.
#[derive(Debug, Clone)]
pub struct Move {
    pub key: IdempotencyKey,
    pub participant_id: ParticipantId,
    pub school_id: SchoolId,
    pub delivery_partner_id: DeliveryPartnerId,
    pub from: NaiveDate,
}

pub fn placement(req: &pb::SetParticipantScopeRequest) -> Result<Move, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
    let school_id = v.check(SchoolId::parse("school_id", &req.school_id));
    let delivery_partner_id = v.check(DeliveryPartnerId::parse("delivery_partner_id", &req.delivery_partner_id));
    let from = v.check(date::PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
    v.finish(|| {
        let CommandEnvelope { key, participant_id } = envelope?;
        Some(Move {
            key,
            participant_id,
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
    pub participant_id: ParticipantId,
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
    let participant_id = v.check(ParticipantId::parse("participant_id", &req.participant_id));
    let occurred_on = v.check(date::PROGRAMME_DATES.required("occurred_on", req.occurred_on.as_ref()));
    let kind = v.check(engagement_kind(req.kind));
    let key = v.check(IdempotencyKey::parse("idempotency_key", caller_sub, &req.idempotency_key).and_then(|k| {
        k.ok_or_else(|| {
            FieldViolation::new(
                "idempotency_key",
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
    pub participant_id: ParticipantId,
    pub declaration_type: String,
    pub dfe_declaration_id: String,
    pub state: String,
}

pub fn declaration_state(req: &pb::RecordDeclarationStateRequest) -> Result<DeclarationState, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = CommandEnvelope::parse(&mut v, &req.idempotency_key, &req.participant_id);
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
        let CommandEnvelope { key, participant_id } = envelope?;
        Some(DeclarationState {
            key,
            participant_id,
            declaration_type: declaration_type?,
            dfe_declaration_id: dfe_declaration_id?,
            state: state?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fixtures::fields;
    use steplab_proto::google::r#type::Date;

    fn uuid() -> String {
        uuid::Uuid::now_v7().to_string()
    }

    fn enrolment() -> pb::EnrolPayeeRequest {
        pb::EnrolPayeeRequest {
            idempotency_key: "c1".into(),
            participant_id: uuid(),
            delivery_partner_id: uuid(),
            schedule: "ecf-standard-september".into(),
            cohort: 2025,
            funding_eligible: Some(true),
            participant_kind: common::ParticipantKind::Ect as i32,
            school_id: uuid(),
        }
    }

    #[test]
    fn every_malformed_enrolment_field_is_reported_at_once() {
        let req = pb::EnrolPayeeRequest {
            idempotency_key: String::new(),
            participant_id: "nope".into(),
            delivery_partner_id: String::new(),
            schedule: " ".into(),
            cohort: 0,
            funding_eligible: Some(true),
            participant_kind: 0,
            school_id: "x".into(),
        };
        assert_eq!(
            fields(enrol(&req).expect_err("invalid")),
            [
                "idempotency_key",
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
        req.funding_eligible = Some(false);
        assert_eq!(fields(enrol(&req).expect_err("ect")), ["funding_eligible"]);
        req.participant_kind = common::ParticipantKind::Mentor as i32;
        assert!(enrol(&req).is_ok(), "a pilot mentor is enrolled unfunded");
        req.participant_kind = common::ParticipantKind::InductionCoordinator as i32;
        assert_eq!(fields(enrol(&req).expect_err("ic")), ["participant_kind"]);
    }

    #[test]
    fn d4_a_suspension_ends_after_it_starts() {
        let req = pb::SuspendAccrualRequest {
            idempotency_key: "c".into(),
            participant_id: uuid(),
            suspension_id: "s1".into(),
            start_date: Some(Date { year: 2026, month: 3, day: 1 }),
            until: Some(Date { year: 2026, month: 3, day: 1 }),
        };
        assert_eq!(fields(suspend(&req).expect_err("empty")), ["until"]);
        let req = pb::SuspendAccrualRequest {
            start_date: Some(Date { year: 2026, month: 2, day: 30 }),
            until: None,
            suspension_id: "has space".into(),
            ..req
        };
        assert_eq!(fields(suspend(&req).expect_err("bad")), ["suspension_id", "start_date", "until"]);
    }

    #[test]
    fn f2_engagement_needs_a_kind_a_date_and_a_request_id() {
        let req = pb::RecordEngagementRequest {
            participant_id: uuid(),
            occurred_on: None,
            kind: 0,
            idempotency_key: String::new(),
            note: "x\u{0}".into(),
        };
        assert_eq!(
            fields(engagement(&req, "sub").expect_err("bad")),
            ["occurred_on", "kind", "idempotency_key", "note"]
        );
    }
}
