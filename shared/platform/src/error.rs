//! The one place gRPC statuses with rich details are made: INVALID_ARGUMENT
//! carries `google.rpc.BadRequest` field violations, FAILED_PRECONDITION
//! carries `google.rpc.ErrorInfo` with an UPPER_SNAKE reason. Each service
//! maps its own error enum to these with one exhaustive `match`.

use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One malformed field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Every malformed field of one request, so the caller can fix all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldViolations(pub Vec<FieldViolation>);

impl FieldViolations {
    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    /// Keeps the value when valid, records the violation otherwise.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no violation was recorded.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, FieldViolations> {
        if !self.0.is_empty() {
            return Err(self);
        }
        // An `Option` still `None` here means a converter dropped a violation: say so
        // rather than panic.
        value().ok_or_else(|| FieldViolations(vec![FieldViolation::new("request", "could not be read")]))
    }
}

impl From<FieldViolation> for FieldViolations {
    fn from(v: FieldViolation) -> Self {
        FieldViolations(vec![v])
    }
}

impl std::fmt::Display for FieldViolations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` listing each field. The
/// call's audit entry names the fields (never the descriptions, which quote
/// the caller's values): see [`crate::call::refusal_of`].
pub fn invalid_argument(violations: &FieldViolations) -> Status {
    let mut details = ErrorDetails::new();
    for v in &violations.0 {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, format!("invalid request: {violations}"), details)
}

/// FAILED_PRECONDITION for a rule that refuses, with `google.rpc.ErrorInfo`
/// (`domain` = the proto package, `reason` = an UPPER_SNAKE id).
/// The call's audit entry keeps the reason (never the message).
pub fn failed_precondition(domain: &str, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::<String, String>::new());
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// The one error type every service's use cases return, and its one
/// exhaustive mapping to gRPC status codes (CONTRACT.md, Errors). Each
/// service converts its own rule and permission refusals into it, naming its
/// ErrorInfo domain.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request: {0}")]
    InvalidArgument(FieldViolations),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// FAILED_PRECONDITION with `google.rpc.ErrorInfo` (`domain`, `reason`).
    #[error("refused by rule {reason}: {message}")]
    Rule { domain: &'static str, reason: &'static str, message: String },
    /// A concurrent change to the same record won: retry.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The database could not be reached in time; worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database has no room to write (disk full): the change was not
    /// made; worth retrying once the operator has made room.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// A fault on our side: logged in full, reported without detail.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<FieldViolations> for ServiceError {
    fn from(v: FieldViolations) -> Self {
        ServiceError::InvalidArgument(v)
    }
}

impl From<FieldViolation> for ServiceError {
    fn from(v: FieldViolation) -> Self {
        ServiceError::InvalidArgument(v.into())
    }
}

impl<D: crate::rules::ErrorDomain> From<crate::rules::RuleViolation<D>> for ServiceError {
    fn from(rule: crate::rules::RuleViolation<D>) -> Self {
        ServiceError::Rule { domain: D::DOMAIN, reason: rule.reason, message: rule.message }
    }
}

impl From<crate::rules::Denied> for ServiceError {
    fn from(denied: crate::rules::Denied) -> Self {
        ServiceError::PermissionDenied(denied.0)
    }
}

impl<D: crate::rules::ErrorDomain> From<crate::rules::Refusal<D>> for ServiceError {
    fn from(refusal: crate::rules::Refusal<D>) -> Self {
        match refusal {
            crate::rules::Refusal::NotFound(message) => ServiceError::NotFound(message),
            crate::rules::Refusal::Rule(rule) => rule.into(),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::InvalidArgument(v) => invalid_argument(&v),
            ServiceError::PermissionDenied(msg) => Status::permission_denied(msg),
            ServiceError::NotFound(msg) => Status::not_found(msg),
            ServiceError::AlreadyExists(msg) => Status::already_exists(msg),
            ServiceError::Rule { domain, reason, message } => failed_precondition(domain, reason, message),
            ServiceError::Aborted(msg) => Status::aborted(msg),
            ServiceError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                retry_later("the service's database is unavailable: retry shortly", Duration::from_secs(1))
            }
            // UNAVAILABLE, not RESOURCE_EXHAUSTED: nothing the caller sent was
            // too much (RESOURCE_EXHAUSTED here means "slow down": rate,
            // size, concurrency), nothing changed, and standard gRPC retry
            // policies retry UNAVAILABLE, which readiness (NOT_SERVING) sends
            // to a replica that can write. Logged as an error: an operator
            // must make room.
            ServiceError::StorageFull(msg) => {
                tracing::error!(error = %msg, "the database's storage is full");
                retry_later("the service's storage is full: nothing was changed; retry later", Duration::from_secs(30))
            }
            ServiceError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                Status::internal("internal error: the service logged the details")
            }
        }
    }
}

/// UNAVAILABLE with `google.rpc.RetryInfo` saying when to try again.
fn retry_later(message: &str, delay: Duration) -> Status {
    Status::with_error_details(Code::Unavailable, message, ErrorDetails::with_retry_info(Some(delay)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_each_field_violation() {
        let mut v = FieldViolations::default();
        v.push(FieldViolation::new("name", "is required"));
        v.push(FieldViolation::new("urn", "must be 6 digits"));
        let status = invalid_argument(&v);
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .expect("bad request details")
            .field_violations
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(fields, ["name", "urn"]);
    }

    #[test]
    fn failed_precondition_carries_reason_and_domain() {
        let status = failed_precondition("steplab.participant.v1", "PAUSE_TOO_LONG", "defer instead");
        let info = status.get_error_details().error_info().cloned().expect("error info");
        assert_eq!(info.reason, "PAUSE_TOO_LONG");
        assert_eq!(info.domain, "steplab.participant.v1");
    }
}
