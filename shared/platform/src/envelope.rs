//! The envelope every service-to-service command opens with: its
//! `command_id` (the key that applies it once) and the participant it
//! concerns. Each service read these two fields the same way; reading them
//! here keeps the field names, the order violations are reported in and the
//! key's namespace the same for every command of every service.

use crate::date;
use crate::error::{FieldViolation, FieldViolations};
use crate::idempotency::IdempotencyKey;
use crate::ids::ParticipantId;
use chrono::NaiveDate;
use steplab_proto::google::r#type::Date;

/// A command's idempotency key and the participant it concerns, read from a
/// request. `P` is how the service names a participant: a [`ParticipantId`]
/// unless the service accepts ids of another form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnvelope<P = ParticipantId> {
    pub key: IdempotencyKey,
    pub participant_id: P,
}

impl CommandEnvelope<ParticipantId> {
    /// Reads `command_id` and a Steplab-issued `participant_id`, recording
    /// every malformed field in `violations`; `None` when either is.
    pub fn parse(violations: &mut FieldViolations, command_id: &str, participant_id: &str) -> Option<Self> {
        Self::parse_with(violations, command_id, participant_id, ParticipantId::parse)
    }
}

impl<P> CommandEnvelope<P> {
    /// As [`CommandEnvelope::parse`], with the service's own reading of the
    /// participant id (given the field name and the value).
    pub fn parse_with(
        violations: &mut FieldViolations,
        command_id: &str,
        participant_id: &str,
        parse_participant: impl FnOnce(&str, &str) -> Result<P, FieldViolation>,
    ) -> Option<Self> {
        let key = violations.check(IdempotencyKey::command("idempotency_key", command_id));
        let participant_id = violations.check(parse_participant("participant_id", participant_id));
        Some(CommandEnvelope { key: key?, participant_id: participant_id? })
    }
}

/// A command that only says from when something holds for a participant
/// (`command_id`, `participant_id`, `effective_date`), such as revoking or
/// restoring access, or ending or reopening accrual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedCommand<P = ParticipantId> {
    pub envelope: CommandEnvelope<P>,
    pub effective_date: NaiveDate,
}

impl DatedCommand<ParticipantId> {
    pub fn parse(
        command_id: &str,
        participant_id: &str,
        effective_date: Option<&Date>,
    ) -> Result<Self, FieldViolations> {
        Self::parse_with(command_id, participant_id, effective_date, ParticipantId::parse)
    }
}

impl<P> DatedCommand<P> {
    /// `effective_date` is a programme date: within the years a programme
    /// can run.
    pub fn parse_with(
        command_id: &str,
        participant_id: &str,
        effective_date: Option<&Date>,
        parse_participant: impl FnOnce(&str, &str) -> Result<P, FieldViolation>,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::default();
        let envelope = CommandEnvelope::parse_with(&mut violations, command_id, participant_id, parse_participant);
        let effective_date = violations.check(date::PROGRAMME_DATES.required("effective_date", effective_date));
        violations.finish(|| Some(DatedCommand { envelope: envelope?, effective_date: effective_date? }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(violations: &FieldViolations) -> Vec<&str> {
        violations.0.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn an_envelope_reports_both_malformed_fields_in_request_order() {
        let mut violations = FieldViolations::default();
        assert_eq!(CommandEnvelope::parse(&mut violations, "", "not-an-id"), None);
        assert_eq!(fields(&violations), ["idempotency_key", "participant_id"]);
    }

    #[test]
    fn an_envelope_keys_the_command_by_its_command_id_alone() {
        let participant = ParticipantId::generate();
        let mut violations = FieldViolations::default();
        let envelope = CommandEnvelope::parse(&mut violations, "c-1", &participant.as_str().to_uppercase())
            .expect("a valid envelope");
        assert!(violations.is_empty());
        assert_eq!(envelope.key, IdempotencyKey::command("idempotency_key", "c-1").expect("key"));
        assert_eq!(envelope.participant_id, participant);
    }

    #[test]
    fn a_service_may_read_participant_ids_its_own_way() {
        let mut violations = FieldViolations::default();
        let envelope = CommandEnvelope::parse_with(&mut violations, "c-1", "p1", |_, value| Ok(value.to_owned()));
        assert_eq!(envelope.map(|e| e.participant_id), Some("p1".to_owned()));
    }

    #[test]
    fn a_dated_command_needs_a_programme_date() {
        let err = DatedCommand::parse("c-1", &ParticipantId::generate(), None).expect_err("no date");
        assert_eq!(fields(&err), ["effective_date"]);
        let err = DatedCommand::parse("", "x", Some(&Date { year: 2026, month: 2, day: 30 })).expect_err("all bad");
        assert_eq!(fields(&err), ["idempotency_key", "participant_id", "effective_date"]);
    }
}
