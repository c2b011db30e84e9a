//! The participant domain in plain Rust: who people are, the dated events of
//! their history, what they are on any date, and who may do what. Nothing here
//! touches a database or the network, so every rule is a unit test named
//! after its DOMAIN.md id.

pub mod dfe;
pub mod enrolment;
pub mod events;
pub mod handover;
pub mod lifecycle;
pub mod mentoring;
pub mod policy;
pub mod preconditions;
pub mod records;
pub mod registry;
pub mod requests;
pub mod restart;
pub mod view;

pub use enrolment::{Enrolment, ScheduleStart};
pub use events::{Event, EventKind};
pub use view::{ParticipantView, TrainingStatus};

/// What kind of person a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantKind {
    Ect,
    Mentor,
    InductionCoordinator,
}

impl ParticipantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantKind::Ect => "ect",
            ParticipantKind::Mentor => "mentor",
            ParticipantKind::InductionCoordinator => "induction_coordinator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ParticipantKind::Ect, ParticipantKind::Mentor, ParticipantKind::InductionCoordinator]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// How the kind reads in a message to a person.
    pub fn describe(self) -> &'static str {
        match self {
            ParticipantKind::Ect => "an ECT",
            ParticipantKind::Mentor => "a mentor",
            ParticipantKind::InductionCoordinator => "an induction coordinator",
        }
    }
}

/// This service's ErrorInfo domain (its proto package): every rule refusal
/// of its domain is reported in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantRules {}

impl steplab_platform::rules::ErrorDomain for ParticipantRules {
    const DOMAIN: &'static str = "steplab.participant.v1";
}

/// A rule that refuses a change: FAILED_PRECONDITION with an ErrorInfo
/// reason in this service's domain, and a message that tells the caller what
/// to do instead.
pub type RuleViolation = steplab_platform::rules::RuleViolation<ParticipantRules>;
