//! The participant service's commands (EnrolLearner, PlaceHold, LiftHold,
//! RevokeAccess, RestoreAccess, SetReleaseStart, SetParticipantScope): each
//! opens with the platform's command envelope. Participant ids here are any
//! printable id, not only Steplab's UUIDs, so the envelope is read with
//! this service's [`id`].

use super::{hold_kind, id, programme};
use crate::domain::{Hold, NewLearner};
use chrono::NaiveDate;
use steplab_platform::date;
use steplab_platform::envelope::{CommandEnvelope, DatedCommand};
use steplab_platform::idempotency::IdempotencyKey;
use steplab_platform::{FieldViolation, FieldViolations};
use steplab_proto::steplab::content::v1 as pb;

/// A command's key and the participant it concerns.
pub type Envelope = CommandEnvelope<String>;

fn envelope(v: &mut FieldViolations, command_id: &str, participant_id: &str) -> Option<Envelope> {
    CommandEnvelope::parse_with(v, command_id, participant_id, id)
}

/// A validated EnrolLearner.
#[derive(Debug, Clone)]
pub struct Enrol {
    pub key: IdempotencyKey,
    pub learner: NewLearner,
}

pub fn enrol(req: &pb::EnrolLearnerRequest) -> Result<Enrol, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = envelope(&mut v, &req.idempotency_key, &req.participant_id);
    let programme = v.check(programme("programme", req.programme));
    let release_start = v.check(date::PROGRAMME_DATES.required("release_start", req.release_start.as_ref()));
    let school_id = v.check(id("school_id", &req.school_id));
    let delivery_partner_id = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    v.finish(|| {
        let Envelope { key, participant_id } = envelope?;
        Some(Enrol {
            key,
            learner: NewLearner {
                participant_id,
                programme: programme?,
                release_start: release_start?,
                school_id: school_id?,
                delivery_partner_id: delivery_partner_id?,
            },
        })
    })
}

/// A validated PlaceHold.
#[derive(Debug, Clone)]
pub struct PlaceHold {
    pub envelope: Envelope,
    pub hold: Hold,
}

pub fn place_hold(req: &pb::PlaceHoldRequest) -> Result<PlaceHold, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = envelope(&mut v, &req.idempotency_key, &req.participant_id);
    let hold_id = v.check(id("hold_id", &req.hold_id));
    let kind = v.check(hold_kind("kind", req.kind));
    let from = v.check(date::PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
    let until = v.check(date::PROGRAMME_DATES.required("until", req.until.as_ref()));
    if let (Some(from), Some(until)) = (from, until)
        && until <= from
    {
        v.push(FieldViolation::new(
            "until",
            format!("{until} is not after from ({from}): `until` is the first day no longer held"),
        ));
    }
    v.finish(|| {
        Some(PlaceHold {
            envelope: envelope?,
            hold: Hold { hold_id: hold_id?, kind: kind?, from: from?, until: until? },
        })
    })
}

/// A validated LiftHold.
#[derive(Debug, Clone)]
pub struct LiftHold {
    pub envelope: Envelope,
    pub hold_id: String,
    pub on: NaiveDate,
}

pub fn lift_hold(req: &pb::LiftHoldRequest) -> Result<LiftHold, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = envelope(&mut v, &req.idempotency_key, &req.participant_id);
    let hold_id = v.check(id("hold_id", &req.hold_id));
    let on = v.check(date::PROGRAMME_DATES.required("on", req.on.as_ref()));
    v.finish(|| Some(LiftHold { envelope: envelope?, hold_id: hold_id?, on: on? }))
}

/// A validated RevokeAccess or RestoreAccess.
pub type AccessChange = DatedCommand<String>;

pub fn revoke_access(req: &pb::RevokeAccessRequest) -> Result<AccessChange, FieldViolations> {
    DatedCommand::parse_with(&req.idempotency_key, &req.participant_id, req.effective_date.as_ref(), id)
}

pub fn restore_access(req: &pb::RestoreAccessRequest) -> Result<AccessChange, FieldViolations> {
    DatedCommand::parse_with(&req.idempotency_key, &req.participant_id, req.effective_date.as_ref(), id)
}

/// A validated SetReleaseStart.
#[derive(Debug, Clone)]
pub struct ReleaseStartChange {
    pub envelope: Envelope,
    pub release_start: NaiveDate,
}

pub fn set_release_start(req: &pb::SetReleaseStartRequest) -> Result<ReleaseStartChange, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = envelope(&mut v, &req.idempotency_key, &req.participant_id);
    let release_start = v.check(date::PROGRAMME_DATES.required("release_start", req.release_start.as_ref()));
    v.finish(|| Some(ReleaseStartChange { envelope: envelope?, release_start: release_start? }))
}

/// A validated SetParticipantScope.
#[derive(Debug, Clone)]
pub struct ScopeMove {
    pub envelope: Envelope,
    pub school_id: String,
    pub delivery_partner_id: String,
    pub from: NaiveDate,
}

pub fn set_participant_scope(req: &pb::SetParticipantScopeRequest) -> Result<ScopeMove, FieldViolations> {
    let mut v = FieldViolations::default();
    let envelope = envelope(&mut v, &req.idempotency_key, &req.participant_id);
    let school_id = v.check(id("school_id", &req.school_id));
    let delivery_partner_id = v.check(id("delivery_partner_id", &req.delivery_partner_id));
    let from = v.check(date::PROGRAMME_DATES.required("start_date", req.start_date.as_ref()));
    v.finish(|| {
        Some(ScopeMove {
            envelope: envelope?,
            school_id: school_id?,
            delivery_partner_id: delivery_partner_id?,
            from: from?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::{date, fields};

    #[test]
    fn every_malformed_field_of_a_command_is_reported_at_once() {
        let req = pb::PlaceHoldRequest {
            idempotency_key: String::new(),
            participant_id: "has space".into(),
            hold_id: String::new(),
            kind: 0,
            start_date: date(2026, 2, 30),
            until: None,
        };
        assert_eq!(
            fields(place_hold(&req).expect_err("invalid")),
            ["idempotency_key", "participant_id", "hold_id", "kind", "start_date", "until"]
        );
    }

    #[test]
    fn a_hold_ends_after_it_starts() {
        let req = pb::PlaceHoldRequest {
            idempotency_key: "c1".into(),
            participant_id: "p1".into(),
            hold_id: "h1".into(),
            kind: pb::HoldKind::Pause as i32,
            start_date: date(2026, 10, 5),
            until: date(2026, 10, 5),
        };
        assert_eq!(fields(place_hold(&req).expect_err("empty hold")), ["until"]);
    }

    #[test]
    fn an_enrolment_needs_a_programme_and_a_place() {
        let req = pb::EnrolLearnerRequest {
            idempotency_key: "c1".into(),
            participant_id: "p1".into(),
            programme: 0,
            release_start: None,
            school_id: String::new(),
            delivery_partner_id: "dp".into(),
        };
        assert_eq!(fields(enrol(&req).expect_err("invalid")), ["programme", "release_start", "school_id"]);
    }
}
