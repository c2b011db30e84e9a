//! The content-release domain in plain Rust: the curriculum (R1), the release
//! engine (R2, P5, P6, D5, D8, W5, W9) on its term-time calendar, progress and attendance (R3, D11), the
//! release feed's order (R4) and who may do what. Nothing here touches a
//! database or the network, so every rule is a unit test named after its
//! DOMAIN.md id.

pub mod curriculum;
pub mod feed;
pub mod holds;
pub mod learner;
pub mod period;
pub mod policy;
pub mod progress;
pub mod release;
pub mod state;
pub mod term;

pub use curriculum::{Curriculum, Event, EventKind, Module, ProgrammeCurriculum};
pub use holds::{Hold, HoldKind, Revocation};
pub use learner::{Learner, NewLearner, ScopeChange};

/// Which self-study programme a learner follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Programme {
    Ect,
    Mentor,
}

impl Programme {
    pub const ALL: [Programme; 2] = [Programme::Ect, Programme::Mentor];

    pub fn as_str(self) -> &'static str {
        match self {
            Programme::Ect => "ect",
            Programme::Mentor => "mentor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Programme::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// How the programme reads in a message to a person.
    pub fn describe(self) -> &'static str {
        match self {
            Programme::Ect => "the ECT programme",
            Programme::Mentor => "the mentor programme",
        }
    }
}

/// This service's ErrorInfo domain (its proto package): every rule refusal
/// of its domain is reported in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentReleaseRules {}

impl steplab_platform::rules::ErrorDomain for ContentReleaseRules {
    const DOMAIN: &'static str = "steplab.content.v1";
}

/// A rule that refuses a change: FAILED_PRECONDITION with an ErrorInfo
/// reason in this service's domain, and a message that tells the caller what
/// to do instead.
pub type RuleViolation = steplab_platform::rules::RuleViolation<ContentReleaseRules>;

/// Why a domain decision refuses: something named does not exist, or a rule.
pub type Refusal = steplab_platform::rules::Refusal<ContentReleaseRules>;
