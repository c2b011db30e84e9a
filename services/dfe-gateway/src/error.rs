//! The gateway's errors: the platform's one error type, with this service's
//! rule refusals (ErrorInfo domain `steplab.dfe.v1`) and permission refusals
//! converted into it.

use crate::domain::RuleViolation;
use crate::domain::policy::Denied;
pub use steplab_platform::error::ServiceError;

/// ErrorInfo domain of this service's rule refusals.
pub const ERROR_DOMAIN: &str = "steplab.dfe.v1";

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
