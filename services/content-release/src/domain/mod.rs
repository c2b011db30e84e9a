//! The content-release domain in plain Rust: the curriculum (R1), the release
//! engine (R2, P5, P6, D5, D8, W5, W9) on its term-time calendar, progress and attendance (R3, D11), the
//! release feed's order (R4) and who may do what. Nothing here touches a
//! database or the network, so every rule is a unit test named after its
//! DOMAIN.md id.

pub mod curriculum;
pub mod period;
pub mod policy;
pub mod progress;
pub mod release;
pub mod state;
pub mod term;

use chrono::NaiveDate;

pub use curriculum::{Curriculum, Event, EventKind, Module, ProgrammeCurriculum};

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

/// Why new module release is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKind {
    /// P5, P6: modules due during it come at its end, optional; nothing moves.
    Pause,
    /// D4, D5, D8: the schedule stops during it and moves later by its length.
    Deferral,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Pause => "pause",
            HoldKind::Deferral => "deferral",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [HoldKind::Pause, HoldKind::Deferral].into_iter().find(|k| k.as_str() == s)
    }
}

/// A hold on new module release over the half-open days `[from, until)`.
/// `until` is the first day no longer held (after a LiftHold, the lift date);
/// a hold with `until <= from` was cancelled and holds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub hold_id: String,
    pub kind: HoldKind,
    pub from: NaiveDate,
    pub until: NaiveDate,
}

impl Hold {
    /// In effect on `day` (`from <= day < until`).
    pub fn is_active_on(&self, day: NaiveDate) -> bool {
        self.from <= day && day < self.until
    }

    /// The date a LiftHold on `on` leaves as `until`: an earlier end takes
    /// effect (on or before `from` it cancels the hold); a later one changes
    /// nothing because the hold already ends by then.
    pub fn until_after_lift(&self, on: NaiveDate) -> NaiveDate {
        self.until.min(on)
    }
}

/// Access revoked from `revoked_from` (inclusive, W5) until `restored_on`
/// (the first day with access again, W9), or for good while `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub revoked_from: NaiveDate,
    pub restored_on: Option<NaiveDate>,
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
