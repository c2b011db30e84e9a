//! The one place gRPC statuses with rich details are made. Every non-OK
//! status carries a `google.rpc.ErrorInfo` (`domain` = the service's proto
//! package, `reason` = an UPPER_SNAKE id a client can switch on), plus:
//! INVALID_ARGUMENT a `google.rpc.BadRequest` with each field,
//! FAILED_PRECONDITION the facts that made the rule refuse as ErrorInfo
//! metadata, NOT_FOUND a `google.rpc.ResourceInfo`, and RESOURCE_EXHAUSTED,
//! UNAVAILABLE and ABORTED a `google.rpc.RetryInfo`. docs/api.md (Errors)
//! lists the reasons. Each service maps its own error enum to these with one
//! exhaustive `match`; statuses built by the layers (auth, limits) leave the
//! domain empty and [`crate::observability::Observed`] names it.

pub use crate::rules::Missing;
use crate::rules::{Denied, Metadata};
use std::collections::HashMap;
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

/// The ErrorInfo domain a layer leaves for [`crate::observability::Observed`]
/// to fill in with the service's proto package: the auth interceptor and the
/// limits serve every service alike and do not know which one they guard.
pub const DOMAIN_OF_THE_SERVICE: &str = "";

/// The ErrorInfo reasons of the statuses the platform builds (rule refusals
/// name their own, e.g. `PAUSE_TOO_LONG`). docs/api.md lists them per code.
pub mod reason {
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    pub const TOKEN_MISSING: &str = "TOKEN_MISSING";
    pub const TOKEN_INVALID: &str = "TOKEN_INVALID";
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    pub const ROLE_NOT_ALLOWED: &str = crate::rules::DeniedReason::RoleNotAllowed.as_str();
    pub const OUTSIDE_SCOPE: &str = crate::rules::DeniedReason::OutsideScope.as_str();
    pub const RESOURCE_NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const OVERLOADED: &str = "OVERLOADED";
    /// The relay is further behind than `STEPLAB_BACKPRESSURE_MAX_LAG_MS`:
    /// mutating calls wait until it catches up (see `outbox::Admission`).
    pub const DELIVERY_BACKLOG: &str = "DELIVERY_BACKLOG";
    pub const CONCURRENT_CHANGE: &str = "CONCURRENT_CHANGE";
    pub const STORAGE_UNAVAILABLE: &str = "STORAGE_UNAVAILABLE";
    pub const STORAGE_FULL: &str = "STORAGE_FULL";
    pub const PEER_UNAVAILABLE: &str = "PEER_UNAVAILABLE";
    pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";
    pub const INTERNAL: &str = "INTERNAL";
}

/// How long a caller is told to wait before retrying when nothing better is known.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// `google.rpc.ErrorInfo` with its metadata map in key order: tonic-types
/// encodes it from a `HashMap`, whose order differs from one answer to the
/// next, and AIP-211 answers must be the same byte for byte.
#[derive(Clone, PartialEq, prost::Message)]
struct OrderedErrorInfo {
    #[prost(string, tag = "1")]
    reason: String,
    #[prost(string, tag = "2")]
    domain: String,
    #[prost(btree_map = "string, string", tag = "3")]
    metadata: std::collections::BTreeMap<String, String>,
}

/// `status` with its ErrorInfo metadata encoded in key order (see
/// [`OrderedErrorInfo`]); a status whose details cannot be read is kept.
pub(crate) fn in_stable_order(status: Status) -> Status {
    use prost::Message;
    let Ok(mut proto) = tonic_types::Status::decode(status.details()) else { return status };
    for detail in &mut proto.details {
        if detail.type_url.ends_with("/google.rpc.ErrorInfo")
            && let Ok(info) = OrderedErrorInfo::decode(detail.value.as_slice())
        {
            detail.value = info.encode_to_vec();
        }
    }
    Status::with_details_and_metadata(
        status.code(),
        status.message().to_owned(),
        proto.encode_to_vec().into(),
        status.metadata().clone(),
    )
}

/// A status of `code` with an ErrorInfo (`reason`, `domain`, `metadata`) and
/// any further details.
pub fn status_with_info<'a>(
    code: Code,
    message: impl Into<String>,
    domain: &str,
    reason: &str,
    metadata: impl IntoIterator<Item = (&'a str, String)>,
    more: impl FnOnce(&mut ErrorDetails),
) -> Status {
    let metadata: HashMap<String, String> = metadata.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let mut details = ErrorDetails::with_error_info(reason, domain, metadata);
    more(&mut details);
    in_stable_order(Status::with_error_details(code, message, details))
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` listing each field and an
/// ErrorInfo `INVALID_ARGUMENT`. The call's audit entry names the fields
/// (never the descriptions, which quote the caller's values): see
/// [`crate::call::refusal_of`].
pub fn invalid_argument(violations: &FieldViolations) -> Status {
    status_with_info(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        DOMAIN_OF_THE_SERVICE,
        reason::INVALID_ARGUMENT,
        [],
        |details| {
            for v in &violations.0 {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
        },
    )
}

/// FAILED_PRECONDITION for a rule that refuses, with `google.rpc.ErrorInfo`
/// (`domain` = the proto package, `reason` = an UPPER_SNAKE id, no metadata).
/// The call's audit entry keeps the reason (never the message).
pub fn failed_precondition(domain: &str, reason: &str, message: impl Into<String>) -> Status {
    rule_refused(domain, reason, message, &Metadata::new())
}

/// FAILED_PRECONDITION for a rule that refuses, its ErrorInfo metadata
/// carrying the facts that made it refuse (see [`crate::rules::RuleViolation::with`]).
pub fn rule_refused(domain: &str, reason: &str, message: impl Into<String>, metadata: &Metadata) -> Status {
    let metadata = metadata.iter().map(|(k, v)| (k.as_str(), v.clone()));
    status_with_info(Code::FailedPrecondition, message, domain, reason, metadata, |_| {})
}

/// UNAUTHENTICATED: `reason` is [`reason::TOKEN_MISSING`],
/// [`reason::TOKEN_INVALID`] or [`reason::TOKEN_EXPIRED`].
pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Status {
    status_with_info(Code::Unauthenticated, message, DOMAIN_OF_THE_SERVICE, reason, [], |_| {})
}

/// PERMISSION_DENIED with the refusal's reason and the caller's role;
/// [`crate::observability::Observed`] adds the RPC to a `ROLE_NOT_ALLOWED`.
pub fn permission_denied(denied: &Denied) -> Status {
    let metadata = [("role", denied.role.to_owned())];
    status_with_info(
        Code::PermissionDenied,
        denied.message.clone(),
        DOMAIN_OF_THE_SERVICE,
        denied.reason.as_str(),
        metadata,
        |_| {},
    )
}

/// NOT_FOUND with ErrorInfo `RESOURCE_NOT_FOUND` and a `google.rpc.ResourceInfo`.
pub fn not_found(missing: &Missing) -> Status {
    status_with_info(
        Code::NotFound,
        missing.message.clone(),
        DOMAIN_OF_THE_SERVICE,
        reason::RESOURCE_NOT_FOUND,
        [("resource_type", missing.resource_type.clone())],
        |details| {
            details.set_resource_info(&missing.resource_type, &missing.resource_name, "", missing.message.clone());
        },
    )
}

/// RESOURCE_EXHAUSTED, UNAVAILABLE or ABORTED: worth retrying after `delay`
/// (`google.rpc.RetryInfo`).
pub fn retry_after(code: Code, reason: &str, message: impl Into<String>, delay: Duration) -> Status {
    status_with_info(code, message, DOMAIN_OF_THE_SERVICE, reason, [], |details| {
        details.set_retry_info(Some(delay));
    })
}

/// How long a call refused for a delivery backlog of `lag` is told to wait:
/// about the lag itself (the relay needs roughly that long to work through
/// what is overdue) times `spread`, a random factor the admission check
/// draws (half to one and a half), so callers refused together do not all
/// come back together and find the relay behind again; at least
/// [`BACKLOG_RETRY_MIN`] so clients do not spin, at most
/// [`BACKLOG_RETRY_MAX`] so they come back soon after a long stall.
pub fn backlog_retry_delay(lag: Duration, spread: f64) -> Duration {
    lag.mul_f64(spread.clamp(0.0, 2.0)).clamp(BACKLOG_RETRY_MIN, BACKLOG_RETRY_MAX)
}

/// The shortest retry delay of a DELIVERY_BACKLOG refusal.
pub const BACKLOG_RETRY_MIN: Duration = Duration::from_millis(50);
/// The longest retry delay of a DELIVERY_BACKLOG refusal.
pub const BACKLOG_RETRY_MAX: Duration = Duration::from_secs(5);

/// The one error type every service's use cases return, and its one
/// exhaustive mapping to gRPC status codes (CONTRACT.md, Errors). Each
/// service converts its own rule and permission refusals into it, naming its
/// ErrorInfo domain.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request: {0}")]
    InvalidArgument(FieldViolations),
    #[error("permission denied: {0}")]
    PermissionDenied(Denied),
    /// NOT_FOUND from a bare message; prefer [`ServiceError::Missing`],
    /// which names the resource. A message worded `<type> <id> does not
    /// exist` still gets its ResourceInfo.
    #[error("not found: {0}")]
    NotFound(String),
    /// NOT_FOUND naming the resource (`google.rpc.ResourceInfo`).
    #[error("not found: {0}")]
    Missing(Missing),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// FAILED_PRECONDITION with `google.rpc.ErrorInfo` (`domain`, `reason`).
    #[error("refused by rule {reason}: {message}")]
    Rule { domain: &'static str, reason: &'static str, message: String, metadata: Metadata },
    /// A concurrent change to the same record won: retry.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The database could not be reached in time; worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A system this service depends on (another service, the DfE) could
    /// not answer; worth retrying. The message is the caller's to read.
    #[error("peer unavailable: {0}")]
    PeerUnavailable(String),
    /// The database has no room to write (disk full): the change was not
    /// made; worth retrying once the operator has made room.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// Backpressure: the relay is `lag` behind, close to or past the
    /// `max_lag` the deployment allows, so the change was refused before
    /// anything was read or written; worth retrying after `retry_after`
    /// (see [`backlog_retry_delay`]).
    #[error("delivery backlog: the relay is {lag:?} behind (allowed {max_lag:?})")]
    DeliveryBacklog { lag: Duration, max_lag: Duration, retry_after: Duration },
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
        ServiceError::Rule { domain: D::DOMAIN, reason: rule.reason, message: rule.message, metadata: rule.metadata }
    }
}

impl From<crate::rules::Denied> for ServiceError {
    fn from(denied: crate::rules::Denied) -> Self {
        ServiceError::PermissionDenied(denied)
    }
}

impl<D: crate::rules::ErrorDomain> From<crate::rules::Refusal<D>> for ServiceError {
    fn from(refusal: crate::rules::Refusal<D>) -> Self {
        match refusal {
            crate::rules::Refusal::NotFound(missing) => ServiceError::Missing(missing),
            crate::rules::Refusal::Rule(rule) => rule.into(),
        }
    }
}

impl From<Missing> for ServiceError {
    fn from(missing: Missing) -> Self {
        ServiceError::Missing(missing)
    }
}

impl ServiceError {
    /// NOT_FOUND naming the resource: `resource_type` in lower_snake_case,
    /// `resource_name` the id the caller named.
    pub fn not_found(resource_type: &str, resource_name: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Missing(Missing::new(resource_type, resource_name, message))
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::InvalidArgument(v) => invalid_argument(&v),
            ServiceError::PermissionDenied(denied) => permission_denied(&denied),
            ServiceError::NotFound(msg) => not_found(&Missing::from_message(msg)),
            ServiceError::Missing(missing) => not_found(&missing),
            ServiceError::AlreadyExists(msg) => {
                status_with_info(Code::AlreadyExists, msg, DOMAIN_OF_THE_SERVICE, reason::ALREADY_EXISTS, [], |_| {})
            }
            // Observed adds the call's participant to a refusal that names none.
            ServiceError::Rule { domain, reason, message, metadata } => {
                rule_refused(domain, reason, message, &metadata)
            }
            // A lost race: the same call again sees the winner's change.
            ServiceError::Aborted(msg) => {
                retry_after(Code::Aborted, reason::CONCURRENT_CHANGE, msg, Duration::from_millis(100))
            }
            ServiceError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                retry_after(
                    Code::Unavailable,
                    reason::STORAGE_UNAVAILABLE,
                    "the service's database is unavailable: retry shortly",
                    DEFAULT_RETRY_DELAY,
                )
            }
            // UNAVAILABLE, not RESOURCE_EXHAUSTED: nothing the caller sent was
            // too much (RESOURCE_EXHAUSTED here means "slow down": rate,
            // size, concurrency), nothing changed, and standard gRPC retry
            // policies retry UNAVAILABLE, which readiness (NOT_SERVING) sends
            // to a replica that can write. Logged as an error: an operator
            // must make room.
            ServiceError::PeerUnavailable(msg) => {
                tracing::warn!(error = %msg, "a peer is unavailable");
                retry_after(Code::Unavailable, reason::PEER_UNAVAILABLE, msg, DEFAULT_RETRY_DELAY)
            }
            ServiceError::StorageFull(msg) => {
                tracing::error!(error = %msg, "the database's storage is full");
                retry_after(
                    Code::Unavailable,
                    reason::STORAGE_FULL,
                    "the service's storage is full: nothing was changed; retry later",
                    Duration::from_secs(30),
                )
            }
            ServiceError::DeliveryBacklog { lag, max_lag, retry_after: delay } => retry_after(
                Code::ResourceExhausted,
                reason::DELIVERY_BACKLOG,
                format!(
                    "the service is about {} ms behind in passing accepted changes on to the other services \
                         (at most {} ms allowed), so it is accepting fewer changes for now: this one was refused and \
                         nothing was changed; \
                         retry in {} ms",
                    lag.as_millis(),
                    max_lag.as_millis(),
                    delay.as_millis()
                ),
                delay,
            ),
            ServiceError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                status_with_info(
                    Code::Internal,
                    "internal error: the service logged the details",
                    DOMAIN_OF_THE_SERVICE,
                    reason::INTERNAL,
                    [],
                    |_| {},
                )
            }
        }
    }
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

    fn reason_of(status: &Status) -> String {
        status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
    }

    #[test]
    fn retryable_errors_say_why_and_when_to_retry() {
        for (err, code, reason) in [
            (ServiceError::Aborted("lost".into()), Code::Aborted, reason::CONCURRENT_CHANGE),
            (ServiceError::Unavailable("db".into()), Code::Unavailable, reason::STORAGE_UNAVAILABLE),
            (ServiceError::StorageFull("disk".into()), Code::Unavailable, reason::STORAGE_FULL),
            (ServiceError::PeerUnavailable("dfe".into()), Code::Unavailable, reason::PEER_UNAVAILABLE),
            (
                ServiceError::DeliveryBacklog {
                    lag: Duration::from_secs(2),
                    max_lag: Duration::from_millis(250),
                    retry_after: Duration::from_secs(2),
                },
                Code::ResourceExhausted,
                reason::DELIVERY_BACKLOG,
            ),
        ] {
            let status = Status::from(err);
            assert_eq!((status.code(), reason_of(&status).as_str()), (code, reason));
            let delay = status.get_error_details().retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
            assert!(delay > Duration::ZERO, "{status:?}");
        }
        let status = Status::from(ServiceError::Internal("secret detail".into()));
        assert_eq!((status.code(), reason_of(&status).as_str()), (Code::Internal, reason::INTERNAL));
        assert!(!status.message().contains("secret"), "{status:?}");
    }

    #[test]
    fn a_delivery_backlog_says_nothing_changed_and_to_retry_after_about_the_lag() {
        let lag = Duration::from_millis(1_200);
        let delay = backlog_retry_delay(lag, 0.75);
        assert_eq!(delay, Duration::from_millis(900));
        let status = Status::from(ServiceError::DeliveryBacklog {
            lag,
            max_lag: Duration::from_millis(250),
            retry_after: delay,
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let told = status.get_error_details().retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
        assert_eq!(told, Duration::from_millis(900));
        assert!(status.message().contains("nothing was changed"), "{}", status.message());
        assert!(status.message().contains("about 1200 ms behind"), "{}", status.message());
        assert!(status.message().contains("retry in 900 ms"), "{}", status.message());
        assert_eq!(backlog_retry_delay(Duration::from_millis(3), 1.0), BACKLOG_RETRY_MIN);
        assert_eq!(backlog_retry_delay(Duration::from_secs(600), 0.5), BACKLOG_RETRY_MAX);
    }

    #[test]
    fn not_found_names_the_resource() {
        let status = Status::from(ServiceError::not_found("hold", "h-1", "no hold h-1"));
        let resource = status.get_error_details().resource_info().cloned().expect("ResourceInfo");
        assert_eq!((resource.resource_type.as_str(), resource.resource_name.as_str()), ("hold", "h-1"));
        assert_eq!(reason_of(&status), reason::RESOURCE_NOT_FOUND);
        // A bare message worded `<type> <id> does not exist` still names it.
        let status = Status::from(ServiceError::NotFound(
            "commands[0] (Hold): delivery partner dp-9 does not exist: create it".into(),
        ));
        let resource = status.get_error_details().resource_info().cloned().expect("ResourceInfo");
        assert_eq!((resource.resource_type.as_str(), resource.resource_name.as_str()), ("delivery_partner", "dp-9"));
    }

    #[test]
    fn a_rule_refusal_keeps_its_metadata() {
        let mut metadata = Metadata::new();
        metadata.insert("max_days".into(), "42".into());
        let status = Status::from(ServiceError::Rule {
            domain: "steplab.participant.v1",
            reason: "PAUSE_TOO_LONG",
            message: "defer instead".into(),
            metadata,
        });
        let info = status.get_error_details().error_info().cloned().expect("ErrorInfo");
        assert_eq!(info.metadata.get("max_days").map(String::as_str), Some("42"));
        assert_eq!(info.domain, "steplab.participant.v1");
    }

    #[test]
    fn the_same_refusal_is_the_same_bytes() {
        let keys = ["role", "rpc", "participant_id", "max_days", "a", "z"];
        let status = || {
            status_with_info(Code::PermissionDenied, "no", "d", "R", keys.iter().map(|k| (*k, k.to_string())), |_| {})
        };
        let first = status();
        for _ in 0..20 {
            assert_eq!(status().details(), first.details());
        }
        let info = first.get_error_details().error_info().cloned().expect("ErrorInfo");
        assert_eq!(info.metadata.len(), keys.len());
    }

    #[test]
    fn failed_precondition_carries_reason_and_domain() {
        let status = failed_precondition("steplab.participant.v1", "PAUSE_TOO_LONG", "defer instead");
        let info = status.get_error_details().error_info().cloned().expect("error info");
        assert_eq!(info.reason, "PAUSE_TOO_LONG");
        assert_eq!(info.domain, "steplab.participant.v1");
    }
}
