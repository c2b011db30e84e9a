//! Our words to the DfE's (X2, X3), and the exact HTTP calls of X4-X6 as the
//! DfE's OpenAPI description (`dfe/lead-provider-api-v3.json`) defines them:
//! JSON:API bodies `{"data":{"type":..,"attributes":{..}}}`.
//!
//! Ids the DfE gives are not known when a call is decided: a participant's
//! DfE id may come later (X1), a declaration's id comes with the answer to
//! its POST. Paths and bodies therefore carry the placeholders
//! [`PARTICIPANT_ID`] and [`DECLARATION_ID`], replaced by [`resolve`] when
//! the ids are known.

use chrono::NaiveDate;
use serde_json::{Value, json};

/// Stands for the participant's DfE id in a path or body until it is known.
pub const PARTICIPANT_ID: &str = "{dfe_participant_id}";
/// Stands for a declaration's DfE id in a void's path until it is known.
pub const DECLARATION_ID: &str = "{dfe_declaration_id}";

/// The DfE course of a participant (X2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Course {
    /// An ECT.
    EcfInduction,
    /// A mentor.
    EcfMentor,
}

impl Course {
    pub fn as_str(self) -> &'static str {
        match self {
            Course::EcfInduction => "ecf-induction",
            Course::EcfMentor => "ecf-mentor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Course::EcfInduction, Course::EcfMentor].into_iter().find(|c| c.as_str() == s)
    }
}

/// The DfE's deferral reasons: ours (D3) are the same words, one to one (X3).
pub const DFE_DEFERRAL_REASONS: [&str; 5] =
    ["bereavement", "long-term-sickness", "parental-leave", "career-break", "other"];

/// The DfE's withdrawal reasons.
pub const DFE_WITHDRAWAL_REASONS: [&str; 5] =
    ["left-teaching-profession", "moved-school", "mentor-no-longer-being-mentor", "switched-to-school-led", "other"];

/// Our withdrawal reasons (W3) that the DfE lacks, sent as `other` (X3).
pub const WITHDRAWAL_REASONS_SENT_AS_OTHER: [&str; 2] = ["not-eligible", "left-role"];

/// The DfE's schedule identifiers (X2).
pub const DFE_SCHEDULES: [&str; 12] = [
    "ecf-standard-september",
    "ecf-standard-january",
    "ecf-standard-april",
    "ecf-reduced-september",
    "ecf-reduced-january",
    "ecf-reduced-april",
    "ecf-extended-september",
    "ecf-extended-january",
    "ecf-extended-april",
    "ecf-replacement-september",
    "ecf-replacement-january",
    "ecf-replacement-april",
];

/// The DfE's declaration types (X5).
pub use steplab_platform::dfe::DECLARATION_TYPES;

/// Every `evidence_held` word any of the spec's declaration variants allows.
pub const EVIDENCE_HELD: [&str; 7] = [
    "training-event-attended",
    "self-study-material-completed",
    "materials-engaged-with-offline",
    "other",
    "75-percent-engagement-met",
    "75-percent-engagement-met-reduced-induction",
    "one-term-induction",
];

/// Our deferral reason (D3) in the DfE's words: the same word (X3).
pub fn deferral_reason(ours: &str) -> Option<&'static str> {
    DFE_DEFERRAL_REASONS.into_iter().find(|r| *r == ours)
}

/// Our withdrawal reason (W3) in the DfE's words: the same word where the
/// DfE has it, `other` for `not-eligible` and `left-role` (X3).
pub fn withdrawal_reason(ours: &str) -> Option<&'static str> {
    if WITHDRAWAL_REASONS_SENT_AS_OTHER.contains(&ours) {
        return Some("other");
    }
    DFE_WITHDRAWAL_REASONS.into_iter().find(|r| *r == ours)
}

/// A status change to report (X4), already in the DfE's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    Defer { reason: &'static str },
    Resume,
    Withdraw { reason: &'static str },
    ChangeSchedule { schedule_identifier: String, cohort: i32 },
}

impl StatusChange {
    /// The training status the DfE holds after this change (its
    /// `training_status` word), or `None` when the change keeps it.
    pub fn training_status_after(&self) -> Option<&'static str> {
        match self {
            StatusChange::Defer { .. } => Some("deferred"),
            StatusChange::Resume => Some("active"),
            StatusChange::Withdraw { .. } => Some("withdrawn"),
            StatusChange::ChangeSchedule { .. } => None,
        }
    }
}

/// One HTTP call to the DfE, with placeholders for ids not yet known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfeRequest {
    pub method: &'static str,
    pub path: String,
    pub body: String,
}

/// The PUT of a status change (X4): `PUT /api/v3/participants/ecf/{id}/<action>`
/// with the spec's ECFParticipant{Defer,Resume,Withdraw,ChangeSchedule}Request.
/// The DfE's action bodies carry no date: it dates the change on receipt.
pub fn status_change_request(course: Course, change: &StatusChange) -> DfeRequest {
    let course_identifier = course.as_str();
    let (action, data) = match change {
        StatusChange::Defer { reason } => (
            "defer",
            json!({"type": "participant-defer", "attributes": {"reason": reason, "course_identifier": course_identifier}}),
        ),
        StatusChange::Resume => {
            ("resume", json!({"type": "participant-resume", "attributes": {"course_identifier": course_identifier}}))
        }
        StatusChange::Withdraw { reason } => (
            "withdraw",
            json!({"type": "participant-withdraw", "attributes": {"reason": reason, "course_identifier": course_identifier}}),
        ),
        StatusChange::ChangeSchedule { schedule_identifier, cohort } => (
            "change-schedule",
            json!({"type": "participant-change-schedule", "attributes": {
                "schedule_identifier": schedule_identifier,
                "course_identifier": course_identifier,
                // A string in the spec ("2021").
                "cohort": cohort.to_string(),
            }}),
        ),
    };
    DfeRequest {
        method: "PUT",
        path: format!("/api/v3/participants/ecf/{PARTICIPANT_ID}/{action}"),
        body: json!({ "data": data }).to_string(),
    }
}

/// `declaration_date` is a date-time in the spec: we send the day of the
/// qualifying engagement at midnight UTC.
pub fn declaration_date_time(date: NaiveDate) -> String {
    format!("{}T00:00:00Z", date.format("%Y-%m-%d"))
}

/// The POST of a declaration (X5), a ParticipantDeclarationRequest:
/// participant, type, date, course, and `evidence_held` when payments gave
/// one (the spec asks for it on every type but `started`).
pub fn declaration_request(
    course: Course,
    declaration_type: &str,
    declaration_date: NaiveDate,
    evidence_held: Option<&str>,
) -> DfeRequest {
    let mut attributes = json!({
        "participant_id": PARTICIPANT_ID,
        "declaration_type": declaration_type,
        "declaration_date": declaration_date_time(declaration_date),
        "course_identifier": course.as_str(),
    });
    if let (Some(evidence), Some(map)) = (evidence_held, attributes.as_object_mut()) {
        map.insert("evidence_held".into(), Value::String(evidence.to_owned()));
    }
    DfeRequest {
        method: "POST",
        path: "/api/v3/participant-declarations".into(),
        body: json!({"data": {"type": "participant-declaration", "attributes": attributes}}).to_string(),
    }
}

/// The void of a declaration (X6): `PUT /api/v3/participant-declarations/{id}/void`,
/// no body in the spec (we send none).
pub fn void_request() -> DfeRequest {
    DfeRequest {
        method: "PUT",
        path: format!("/api/v3/participant-declarations/{DECLARATION_ID}/void"),
        body: String::new(),
    }
}

/// `template` with the ids known so far put in place of their placeholders.
pub fn resolve(template: &str, dfe_participant_id: Option<&str>, dfe_declaration_id: Option<&str>) -> String {
    let mut resolved = template.to_owned();
    if let Some(id) = dfe_participant_id {
        resolved = resolved.replace(PARTICIPANT_ID, id);
    }
    if let Some(id) = dfe_declaration_id {
        resolved = resolved.replace(DECLARATION_ID, id);
    }
    resolved
}

/// Whether a template still waits for an id.
pub fn is_resolved(text: &str) -> bool {
    !text.contains(PARTICIPANT_ID) && !text.contains(DECLARATION_ID)
}

/// The DfE's answer to a declaration POST or void: `data.id` and
/// `data.attributes.state`.
pub fn declaration_answer(body: &str) -> Option<(String, String)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let data = value.get("data")?;
    let id = data.get("id")?.as_str()?.to_owned();
    let state = data.get("attributes")?.get("state")?.as_str()?.to_owned();
    Some((id, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: &DfeRequest) -> Value {
        serde_json::from_str(&request.body).expect("json body")
    }

    #[test]
    fn x2_an_ect_is_ecf_induction_and_a_mentor_ecf_mentor() {
        assert_eq!(Course::EcfInduction.as_str(), "ecf-induction");
        assert_eq!(Course::EcfMentor.as_str(), "ecf-mentor");
        let resume = status_change_request(Course::EcfMentor, &StatusChange::Resume);
        assert_eq!(
            body(&resume),
            json!({"data": {"type": "participant-resume", "attributes": {"course_identifier": "ecf-mentor"}}})
        );
    }

    #[test]
    fn x3_deferral_reasons_map_one_to_one() {
        for reason in ["bereavement", "long-term-sickness", "parental-leave", "career-break", "other"] {
            assert_eq!(deferral_reason(reason), Some(reason));
        }
        assert_eq!(deferral_reason("holiday"), None);
    }

    #[test]
    fn x3_withdrawal_reasons_the_dfe_lacks_are_sent_as_other() {
        assert_eq!(withdrawal_reason("not-eligible"), Some("other"));
        assert_eq!(withdrawal_reason("left-role"), Some("other"));
        for reason in DFE_WITHDRAWAL_REASONS {
            assert_eq!(withdrawal_reason(reason), Some(reason));
        }
        assert_eq!(withdrawal_reason("bored"), None);
    }

    #[test]
    fn x4_each_status_change_is_a_put_to_its_action_with_the_specs_body() {
        let defer = status_change_request(Course::EcfInduction, &StatusChange::Defer { reason: "parental-leave" });
        assert_eq!(defer.method, "PUT");
        assert_eq!(defer.path, "/api/v3/participants/ecf/{dfe_participant_id}/defer");
        assert_eq!(
            body(&defer),
            json!({"data": {"type": "participant-defer", "attributes": {"reason": "parental-leave", "course_identifier": "ecf-induction"}}})
        );
        let withdraw = status_change_request(Course::EcfMentor, &StatusChange::Withdraw { reason: "other" });
        assert!(withdraw.path.ends_with("/withdraw"));
        assert_eq!(
            body(&withdraw),
            json!({"data": {"type": "participant-withdraw", "attributes": {"reason": "other", "course_identifier": "ecf-mentor"}}})
        );
        let change = status_change_request(
            Course::EcfInduction,
            &StatusChange::ChangeSchedule { schedule_identifier: "ecf-standard-january".into(), cohort: 2026 },
        );
        assert!(change.path.ends_with("/change-schedule"));
        assert_eq!(
            body(&change),
            json!({"data": {"type": "participant-change-schedule", "attributes": {
                "schedule_identifier": "ecf-standard-january", "course_identifier": "ecf-induction", "cohort": "2026"}}})
        );
        let resolved = resolve(&defer.path, Some("3452b1a6-cbaa-422f-9ca9-40afa28583a2"), None);
        assert_eq!(resolved, "/api/v3/participants/ecf/3452b1a6-cbaa-422f-9ca9-40afa28583a2/defer");
        assert!(is_resolved(&resolved));
        assert!(!is_resolved(&defer.path));
    }

    #[test]
    fn x5_a_declaration_is_dated_at_midnight_utc_and_carries_evidence_where_given() {
        let date = NaiveDate::from_ymd_opt(2026, 10, 5).expect("date");
        let started = declaration_request(Course::EcfInduction, "started", date, None);
        assert_eq!(started.method, "POST");
        assert_eq!(started.path, "/api/v3/participant-declarations");
        assert_eq!(
            body(&started),
            json!({"data": {"type": "participant-declaration", "attributes": {
                "participant_id": "{dfe_participant_id}", "declaration_type": "started",
                "declaration_date": "2026-10-05T00:00:00Z", "course_identifier": "ecf-induction"}}})
        );
        let retained = declaration_request(Course::EcfMentor, "retained-1", date, Some("training-event-attended"));
        let sent = resolve(&retained.body, Some("p-1"), None);
        let value: Value = serde_json::from_str(&sent).expect("json");
        assert_eq!(value["data"]["attributes"]["evidence_held"], "training-event-attended");
        assert_eq!(value["data"]["attributes"]["participant_id"], "p-1");
    }

    #[test]
    fn x6_a_void_is_a_put_on_the_declarations_id_once_known() {
        let void = void_request();
        assert_eq!(void.method, "PUT");
        assert_eq!(resolve(&void.path, None, Some("d-1")), "/api/v3/participant-declarations/d-1/void");
        assert_eq!(
            declaration_answer(
                r#"{"data":{"id":"d-1","type":"participant-declaration","attributes":{"state":"voided"}}}"#
            ),
            Some(("d-1".into(), "voided".into()))
        );
        assert_eq!(declaration_answer("not json"), None);
    }
}
