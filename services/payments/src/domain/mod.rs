//! The payments domain in plain Rust: schedules and their milestone windows
//! (F1), money (F5), the accrual engine (F2-F4, S2, M4, P5, W5, W9), how the
//! receivers change a payee's facts, and who may do what. Nothing here
//! touches a database or the network, so every rule is a unit test named
//! after its DOMAIN.md id.

pub mod accrual;
pub mod commands;
pub mod declarations;
pub mod money;
pub mod policy;
pub mod schedule;
pub mod statement;

/// What kind of programme a payee follows; it picks the per-participant
/// price (F5). Induction coordinators follow no programme and are not payees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayeeKind {
    Ect,
    Mentor,
}

impl PayeeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PayeeKind::Ect => "ect",
            PayeeKind::Mentor => "mentor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [PayeeKind::Ect, PayeeKind::Mentor].into_iter().find(|k| k.as_str() == s)
    }
}

/// This service's ErrorInfo domain (its proto package): every rule refusal
/// of its domain is reported in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentsRules {}

impl steplab_platform::rules::ErrorDomain for PaymentsRules {
    const DOMAIN: &'static str = "steplab.payments.v1";
}

/// A rule that refuses a change: FAILED_PRECONDITION with an ErrorInfo
/// reason in this service's domain, and a message that tells the caller what
/// to do instead.
pub type RuleViolation = steplab_platform::rules::RuleViolation<PaymentsRules>;

#[cfg(test)]
pub(crate) mod test_support {
    use chrono::NaiveDate;

    /// `d("2025-05-01")`.
    pub fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }
}

/// What a recorded piece of engagement was. In v1 every kind counts for F2;
/// the kind is kept as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngagementKind {
    ModuleCompleted,
    CoachingSession,
    Clinic,
    Conference,
    Event,
    CoachingOnCoaching,
    Other,
}

impl EngagementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngagementKind::ModuleCompleted => "module_completed",
            EngagementKind::CoachingSession => "coaching_session",
            EngagementKind::Clinic => "clinic",
            EngagementKind::Conference => "conference",
            EngagementKind::Event => "event",
            EngagementKind::CoachingOnCoaching => "coaching_on_coaching",
            EngagementKind::Other => "other",
        }
    }

    pub const ALL: [EngagementKind; 7] = [
        EngagementKind::ModuleCompleted,
        EngagementKind::CoachingSession,
        EngagementKind::Clinic,
        EngagementKind::Conference,
        EngagementKind::Event,
        EngagementKind::CoachingOnCoaching,
        EngagementKind::Other,
    ];

    /// The kind as stored by [`EngagementKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
