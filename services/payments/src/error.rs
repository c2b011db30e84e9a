//! The payments service's one error enum and its one exhaustive mapping to
//! gRPC status codes (CONTRACT.md, Errors).

use crate::domain::RuleViolation;
use crate::domain::policy::Denied;
use steplab_platform::FieldViolations;
use steplab_platform::db::DbError;
use tonic::Status;

/// ErrorInfo domain of this service's rule refusals.
pub const ERROR_DOMAIN: &str = "steplab.payments.v1";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request: {0}")]
    InvalidArgument(FieldViolations),
    #[error("permission denied: {0}")]
    PermissionDenied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("refused by rule {}: {}", .0.reason, .0.message)]
    Rule(#[from] RuleViolation),
    /// A concurrent change to the same payee won.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The database could not be reached in time; worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A fault on our side: logged in full, reported without detail.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<FieldViolations> for ServiceError {
    fn from(v: FieldViolations) -> Self {
        ServiceError::InvalidArgument(v)
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            DbError::Unavailable(msg) => ServiceError::Unavailable(msg),
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                ServiceError::Aborted("a concurrent change won: retry the request".into())
            }
            // Two identical commands (or enrolments) raced: the loser retries
            // and then gets the winner's answer.
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                ServiceError::Aborted("a concurrent request made the same change: retry the request".into())
            }
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info)) => {
                ServiceError::Unavailable(info.message().to_owned())
            }
            DbError::Query(other) => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::from(DbError::Query(e))
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::InvalidArgument(v) => steplab_platform::error::invalid_argument(&v),
            ServiceError::PermissionDenied(Denied(msg)) => Status::permission_denied(msg),
            ServiceError::NotFound(msg) => Status::not_found(msg),
            ServiceError::AlreadyExists(msg) => Status::already_exists(msg),
            ServiceError::Rule(rule) => {
                steplab_platform::error::failed_precondition(ERROR_DOMAIN, rule.reason, rule.message)
            }
            ServiceError::Aborted(msg) => Status::aborted(msg),
            ServiceError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                Status::unavailable("the payments database is unavailable: retry shortly")
            }
            ServiceError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                Status::internal("internal error: the payments service logged the details")
            }
        }
    }
}
