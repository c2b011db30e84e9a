//! The one way a service says no, shared by every service and free of gRPC:
//! a rule refusal (FAILED_PRECONDITION with an ErrorInfo reason, in the
//! service's ErrorInfo domain), a permission refusal, and a decision that
//! refuses because something named does not exist.
//!
//! The ErrorInfo domain is a type parameter, not a field, so a service's
//! domain code writes `RuleViolation::new(reason, message)` through its own
//! alias (`type RuleViolation = rules::RuleViolation<Participant>`) and can
//! never put a refusal in another service's domain.

use std::fmt;
use std::marker::PhantomData;

/// A service's ErrorInfo domain: its proto package (CONTRACT.md).
pub trait ErrorDomain: std::fmt::Debug + Clone + PartialEq + 'static {
    const DOMAIN: &'static str;
}

/// A rule that refuses a change: FAILED_PRECONDITION with an ErrorInfo
/// reason, and a message that tells the caller what to do instead.
pub struct RuleViolation<D: ErrorDomain> {
    /// UPPER_SNAKE id, e.g. `PAUSE_TOO_LONG`.
    pub reason: &'static str,
    pub message: String,
    domain: PhantomData<fn() -> D>,
}

impl<D: ErrorDomain> RuleViolation<D> {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), domain: PhantomData }
    }

    /// The ErrorInfo domain the refusal is reported in.
    pub fn domain(&self) -> &'static str {
        D::DOMAIN
    }
}

// Written out rather than derived: a derive would ask the marker type `D`
// (an empty enum) for Clone, Debug and PartialEq too.
impl<D: ErrorDomain> Clone for RuleViolation<D> {
    fn clone(&self) -> Self {
        Self::new(self.reason, self.message.clone())
    }
}

impl<D: ErrorDomain> PartialEq for RuleViolation<D> {
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason && self.message == other.message
    }
}

impl<D: ErrorDomain> Eq for RuleViolation<D> {}

impl<D: ErrorDomain> fmt::Debug for RuleViolation<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleViolation")
            .field("domain", &D::DOMAIN)
            .field("reason", &self.reason)
            .field("message", &self.message)
            .finish()
    }
}

impl<D: ErrorDomain> fmt::Display for RuleViolation<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<D: ErrorDomain> std::error::Error for RuleViolation<D> {}

/// The caller's role or scope does not allow what it asked: PERMISSION_DENIED
/// with a message that says who may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Why a domain decision refuses: something named does not exist, or a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal<D: ErrorDomain> {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Rule(#[from] RuleViolation<D>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Example {}
    impl ErrorDomain for Example {
        const DOMAIN: &'static str = "steplab.example.v1";
    }

    #[test]
    fn a_refusal_carries_its_services_domain_and_shows_its_message() {
        let rule = RuleViolation::<Example>::new("PAUSE_TOO_LONG", "defer instead");
        assert_eq!(rule.domain(), "steplab.example.v1");
        assert_eq!(rule.to_string(), "defer instead");
        assert_eq!(rule.clone(), rule);
    }
}
