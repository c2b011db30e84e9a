//! Wire <-> domain. Requests become domain commands that cannot be invalid
//! (every malformed field is reported at once as a field violation); domain
//! answers become response messages. This module holds the single-field
//! readers the commands are built from; `commands` and `approvals` the
//! requests, `answers` the responses.

mod answers;
mod approvals;
mod commands;
mod effects;

pub use answers::*;
pub use approvals::*;
pub use commands::*;
pub use effects::*;

use crate::domain::events::{DeferralReason, WithdrawalReason};
use crate::domain::requests::RequestStatus;
use crate::domain::{ParticipantKind, TrainingStatus};
use steplab_platform::FieldViolation;
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::participant::v1 as pb;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_NOTE_CHARS: usize = 2000;

pub use steplab_platform::ids::{new_id, optional as optional_id, required as id};

/// A person's, school's or delivery partner's name (one rule for all: see
/// [`steplab_platform::text::name`]).
pub fn name(field: &str, value: &str) -> Result<String, FieldViolation> {
    steplab_platform::text::name(field, value, MAX_NAME_CHARS)
}

/// A free-text note: optional, bounded, no control characters but line
/// breaks, no bidirectional controls.
pub fn note(field: &str, value: &str) -> Result<String, FieldViolation> {
    steplab_platform::text::note(field, value, MAX_NOTE_CHARS)
}

fn digits(field: &str, value: &str, count: usize, what: &str) -> Result<String, FieldViolation> {
    let trimmed = value.trim();
    if trimmed.len() == count && trimmed.chars().all(|c| c.is_ascii_digit()) {
        Ok(trimmed.to_owned())
    } else {
        Err(FieldViolation::new(field, format!("must be a {what} of exactly {count} digits")))
    }
}

/// X1: a DfE participant id is a UUID, kept in canonical lower-case form.
pub fn dfe_participant_id(field: &str, value: &str) -> Result<String, FieldViolation> {
    uuid::Uuid::parse_str(value).map(|u| u.hyphenated().to_string()).map_err(|_| {
        FieldViolation::new(
            field,
            "must be the DfE's participant id, a UUID (e.g. 3452b1a6-cbaa-422f-9ca9-40afa28583a2)",
        )
    })
}

/// X1: a DfE participant id a request may leave empty.
pub fn optional_dfe_participant_id(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() { Ok(None) } else { dfe_participant_id(field, value).map(Some) }
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

pub fn request_status(field: &str, value: i32) -> Result<Option<RequestStatus>, FieldViolation> {
    match pb::RequestStatus::try_from(value) {
        Ok(pb::RequestStatus::Unspecified) => Ok(None),
        Ok(pb::RequestStatus::Pending) => Ok(Some(RequestStatus::Pending)),
        Ok(pb::RequestStatus::Approved) => Ok(Some(RequestStatus::Approved)),
        Ok(pb::RequestStatus::Refused) => Ok(Some(RequestStatus::Refused)),
        Err(_) => Err(FieldViolation::new(field, format!("{value} is not a RequestStatus"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_platform::FieldViolations;
    use steplab_proto::google::r#type::Date;

    fn registration() -> pb::RegisterParticipantRequest {
        pb::RegisterParticipantRequest {
            validate_only: false,
            school_id: new_id(),
            kind: common::ParticipantKind::Ect as i32,
            full_name: "  Ada Lovelace ".into(),
            trn: "1234567".into(),
            registered_on: Some(Date { year: 2026, month: 9, day: 1 }),
            previous_pilot_mentor: None,
            idempotency_key: String::new(),
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
        req.previous_pilot_mentor = Some(true);
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
            validate_only: false,
            urn: "12a456".into(),
            name: "Hill School".into(),
            delivery_partner_id: new_id(),
            area_covered: Some(true),
            idempotency_key: String::new(),
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
