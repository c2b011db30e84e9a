//! The content-release service's errors: the platform's one error type, with this
//! service's rule refusals (ErrorInfo domain `steplab.content.v1`) and permission
//! refusals converted into it.

use crate::domain::policy::Denied;
use crate::domain::{Refusal, RuleViolation};
pub use steplab_platform::error::ServiceError;

/// ErrorInfo domain of this service's rule refusals.
pub const ERROR_DOMAIN: &str = "steplab.content.v1";

impl From<RuleViolation> for ServiceError {
    fn from(rule: RuleViolation) -> Self {
        ServiceError::Rule { domain: ERROR_DOMAIN, reason: rule.reason, message: rule.message }
    }
}

impl From<Denied> for ServiceError {
    fn from(denied: Denied) -> Self {
        ServiceError::PermissionDenied(denied.0)
    }
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(msg) => ServiceError::NotFound(msg),
            Refusal::Rule(rule) => rule.into(),
        }
    }
}
