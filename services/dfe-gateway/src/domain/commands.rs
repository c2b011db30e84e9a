//! The rules the gateway's commands and the operator's retry refuse by: a
//! participant's course is fixed (X1), a declaration type is declared once
//! until voided (X5, X6), and only a parked call is sent again.

use super::mapping::Course;
use super::{CallState, RuleViolation};

/// X1: a participant stays on the course they were first tracked on.
pub fn keep_course(participant_id: &str, tracked_on: &str, course: Course) -> Result<(), RuleViolation> {
    if tracked_on == course.as_str() {
        return Ok(());
    }
    Err(RuleViolation::new(
        "COURSE_CHANGED",
        format!("participant {participant_id} is tracked on {tracked_on}: a participant's course cannot change"),
    )
    .with("participant_id", participant_id)
    .with("course", tracked_on)
    .with("requested_course", course.as_str()))
}

/// A declaration's state while it stands: neither voided nor on its way to be.
pub fn stands(declaration_state: &str) -> bool {
    !matches!(declaration_state, "to-void" | "voided")
}

/// X5: a declaration type is declared again only once its declaration is
/// voided (or being voided). `existing` is the stored declaration's state.
pub fn may_declare(participant_id: &str, declaration_type: &str, existing: Option<&str>) -> Result<(), RuleViolation> {
    if existing.is_some_and(stands) {
        return Err(RuleViolation::new(
            "ALREADY_DECLARED",
            format!("{declaration_type} is already declared for {participant_id}: void it first (VoidMilestone)"),
        )
        .with("participant_id", participant_id)
        .with("declaration_type", declaration_type));
    }
    Ok(())
}

/// X6: only a standing declaration (see [`stands`]) is voided; this is the
/// refusal when there is none.
pub fn not_declared(participant_id: &str, declaration_type: &str) -> RuleViolation {
    RuleViolation::new(
        "NOT_DECLARED",
        format!("{declaration_type} is not declared for {participant_id}: there is nothing to void"),
    )
    .with("participant_id", participant_id)
    .with("declaration_type", declaration_type)
}

/// Only a parked call is sent again; `state` is the call's stored state.
pub fn may_retry(call_id: &str, state: &str) -> Result<(), RuleViolation> {
    if state == CallState::Parked.as_str() {
        return Ok(());
    }
    Err(RuleViolation::new(
        "NOT_PARKED",
        format!("call {call_id} is {state}, not parked: only a parked call is retried"),
    )
    .with("call_id", call_id)
    .with("state", state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<(), RuleViolation>) -> Option<&'static str> {
        result.err().map(|r| r.reason)
    }

    #[test]
    fn x1_a_participants_course_cannot_change() {
        assert_eq!(reason(keep_course("p", Course::EcfMentor.as_str(), Course::EcfMentor)), None);
        assert_eq!(reason(keep_course("p", Course::EcfMentor.as_str(), Course::EcfInduction)), Some("COURSE_CHANGED"));
    }

    #[test]
    fn x5_a_type_is_declared_again_only_once_voided() {
        assert_eq!(reason(may_declare("p", "started", None)), None);
        assert_eq!(reason(may_declare("p", "started", Some("to-submit"))), Some("ALREADY_DECLARED"));
        assert_eq!(reason(may_declare("p", "started", Some("voided"))), None);
        assert_eq!(reason(may_declare("p", "started", Some("to-void"))), None);
    }

    #[test]
    fn x6_only_a_standing_declaration_is_voided() {
        assert!(stands("submitted"));
        assert!(!stands("to-void") && !stands("voided"));
        assert_eq!(not_declared("p", "started").reason, "NOT_DECLARED");
    }

    #[test]
    fn only_a_parked_call_is_retried() {
        assert_eq!(reason(may_retry("c", CallState::Parked.as_str())), None);
        assert_eq!(reason(may_retry("c", CallState::Pending.as_str())), Some("NOT_PARKED"));
    }
}
