//! The one way a service says no, shared by every service and free of gRPC:
//! a rule refusal (FAILED_PRECONDITION with an ErrorInfo reason, in the
//! service's ErrorInfo domain), a permission refusal, and a decision that
//! refuses because something named does not exist.
//!
//! The ErrorInfo domain is a type parameter, not a field, so a service's
//! domain code writes `RuleViolation::new(reason, message)` through its own
//! alias (`type RuleViolation = rules::RuleViolation<Participant>`) and can
//! never put a refusal in another service's domain.

use crate::identity::Caller;
use std::fmt;
use std::marker::PhantomData;

/// A service's ErrorInfo domain: its proto package (CONTRACT.md).
pub trait ErrorDomain: std::fmt::Debug + Clone + PartialEq + 'static {
    const DOMAIN: &'static str;
}

/// A rule that refuses a change: FAILED_PRECONDITION with an ErrorInfo
/// reason, the facts that made it refuse as ErrorInfo metadata, and a
/// message that tells the caller what to do instead.
///
/// Every refusal names what it refused and its numbers, e.g.
/// `RuleViolation::new("PAUSE_TOO_LONG", msg).with("participant_id", id).with("requested_days", 56).with("max_days", 42)`,
/// so a client can act on them without parsing the message. A unit test in
/// each service checks that every `RuleViolation::new(` has a `.with(`.
pub struct RuleViolation<D: ErrorDomain> {
    /// UPPER_SNAKE id, e.g. `PAUSE_TOO_LONG`.
    pub reason: &'static str,
    pub message: String,
    /// ErrorInfo metadata: lower_snake_case keys, values as text (dates as
    /// ISO yyyy-mm-dd, counts in decimal, statuses as their enum names).
    pub metadata: Metadata,
    domain: PhantomData<fn() -> D>,
}

/// ErrorInfo metadata, ordered so messages and tests are stable.
pub type Metadata = std::collections::BTreeMap<String, String>;

impl<D: ErrorDomain> RuleViolation<D> {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), metadata: Metadata::new(), domain: PhantomData }
    }

    /// Adds one fact to the ErrorInfo metadata (`key` in lower_snake_case).
    #[must_use]
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.metadata.insert(key.to_owned(), value.to_string());
        self
    }

    /// Adds `key` only when there is a value.
    #[must_use]
    pub fn with_some(self, key: &str, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
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
        Self {
            reason: self.reason,
            message: self.message.clone(),
            metadata: self.metadata.clone(),
            domain: PhantomData,
        }
    }
}

impl<D: ErrorDomain> PartialEq for RuleViolation<D> {
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason && self.message == other.message && self.metadata == other.metadata
    }
}

impl<D: ErrorDomain> Eq for RuleViolation<D> {}

impl<D: ErrorDomain> fmt::Debug for RuleViolation<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleViolation")
            .field("domain", &D::DOMAIN)
            .field("reason", &self.reason)
            .field("message", &self.message)
            .field("metadata", &self.metadata)
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
/// with a message that says who may, its ErrorInfo reason and the caller's role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub reason: DeniedReason,
    /// The caller's role as tokens name it, e.g. `ecf_lead`.
    pub role: &'static str,
    pub message: String,
}

/// Why a permission is refused (the ErrorInfo reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedReason {
    /// `ROLE_NOT_ALLOWED`: no caller of this role may make this call (here).
    RoleNotAllowed,
    /// `OUTSIDE_SCOPE`: the role may, but not for this school, delivery
    /// partner or participant. AIP-211: to a scoped caller a missing id gets
    /// this same refusal.
    OutsideScope,
}

impl DeniedReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeniedReason::RoleNotAllowed => "ROLE_NOT_ALLOWED",
            DeniedReason::OutsideScope => "OUTSIDE_SCOPE",
        }
    }
}

impl Denied {
    /// The caller's role may not make this call: `message` says who may.
    pub fn role_not_allowed(caller: &Caller, message: impl Into<String>) -> Self {
        Self { reason: DeniedReason::RoleNotAllowed, role: caller.role().as_str(), message: message.into() }
    }

    /// The caller's role may, but its scope does not reach what it named.
    pub fn outside_scope(caller: &Caller, message: impl Into<String>) -> Self {
        Self { reason: DeniedReason::OutsideScope, role: caller.role().as_str(), message: message.into() }
    }
}

/// Something named does not exist: NOT_FOUND with a `google.rpc.ResourceInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// lower_snake_case, e.g. `participant`, `hold`, `delivery_partner`.
    pub resource_type: String,
    /// The id the caller named.
    pub resource_name: String,
    /// What the caller should do, e.g. which RPC lists the ids.
    pub message: String,
}

impl Missing {
    pub fn new(resource_type: &str, resource_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { resource_type: resource_type.to_owned(), resource_name: resource_name.into(), message: message.into() }
    }

    /// From a message worded `<resource type> <id> does not exist...`, the
    /// wording of the NOT_FOUND refusals still built from a bare message
    /// ([`ServiceError::NotFound`]); any other wording names no resource.
    pub(crate) fn from_message(message: String) -> Self {
        // After any `context: ` prefix (a preview names the command).
        let named = message
            .split_once(" does not exist")
            .map(|(head, _)| head.rsplit_once(": ").map_or(head, |(_, named)| named))
            .and_then(|head| head.rsplit_once(' '));
        let (resource_type, resource_name) = match named {
            Some((what, id)) => (what.trim().replace(' ', "_"), id.to_owned()),
            None => (String::new(), String::new()),
        };
        Self { resource_type, resource_name, message }
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a domain decision refuses: something named does not exist, or a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal<D: ErrorDomain> {
    #[error("{0}")]
    NotFound(Missing),
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
    fn a_refusal_carries_the_facts_that_made_it_refuse() {
        let rule = RuleViolation::<Example>::new("PAUSE_TOO_LONG", "defer instead")
            .with("requested_days", 56)
            .with("max_days", 42)
            .with_some("return_date", chrono::NaiveDate::from_ymd_opt(2027, 1, 31))
            .with_some("mentor_id", None::<&str>);
        let facts: Vec<(&str, &str)> = rule.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(facts, [("max_days", "42"), ("requested_days", "56"), ("return_date", "2027-01-31")]);
        assert_ne!(rule, RuleViolation::<Example>::new("PAUSE_TOO_LONG", "defer instead"), "metadata counts");
    }

    /// Every `RuleViolation::new(...)` in the services' code, with where it is
    /// and whether a `.with(` follows its closing parenthesis.
    fn refusal_sites(source: &str) -> Vec<(usize, bool)> {
        let mut sites = Vec::new();
        let mut from = 0;
        while let Some(found) = source[from..].find("RuleViolation::new(") {
            let start = from + found;
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            from = start + "RuleViolation::new(".len();
            if source[line_start..start].trim_start().starts_with("//") {
                continue;
            }
            // The matching parenthesis, skipping string literals.
            let (mut depth, mut in_string, mut escaped, mut end) = (1, false, false, from);
            for (i, c) in source[from..].char_indices() {
                match (in_string, escaped, c) {
                    (true, true, _) => escaped = false,
                    (true, false, '\\') => escaped = true,
                    (true, false, '"') => in_string = false,
                    (true, false, _) => {}
                    (false, _, '"') => in_string = true,
                    (false, _, '(') => depth += 1,
                    (false, _, ')') => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = from + i + 1;
                    break;
                }
            }
            let line = source[..start].matches('\n').count() + 1;
            sites.push((line, source[end..].trim_start().starts_with(".with(")));
        }
        sites
    }

    fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    /// Issue 16: ErrorInfo.metadata on every rule refusal. A refusal with
    /// no `.with(` chained names neither what it refused nor its numbers.
    #[test]
    fn every_rule_refusal_in_the_services_carries_metadata() {
        let services = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services");
        let mut files = Vec::new();
        for service in std::fs::read_dir(&services).expect("services directory").flatten() {
            let src = service.path().join("src");
            if src.is_dir() {
                rust_files(&src, &mut files);
            }
        }
        let mut sites = 0;
        let mut bare = Vec::new();
        for file in &files {
            let source = std::fs::read_to_string(file).expect("readable source");
            for (line, with_metadata) in refusal_sites(&source) {
                sites += 1;
                if !with_metadata {
                    bare.push(format!("{}:{line}", file.display()));
                }
            }
        }
        assert!(sites > 50, "the scan found only {sites} refusals: is it reading the services?");
        assert!(bare.is_empty(), "rule refusals without ErrorInfo metadata (chain `.with(key, value)`): {bare:#?}");
    }

    #[test]
    fn the_scan_sees_a_refusal_without_metadata() {
        let source = "let a = RuleViolation::new(\"A\", format!(\"x (y) {z}\")).with(\"k\", 1);\n// RuleViolation::new(\n  RuleViolation::new(\"B\", \")\")\n;";
        assert_eq!(refusal_sites(source), [(1, true), (3, false)]);
    }

    #[test]
    fn a_refusal_carries_its_services_domain_and_shows_its_message() {
        let rule = RuleViolation::<Example>::new("PAUSE_TOO_LONG", "defer instead");
        assert_eq!(rule.domain(), "steplab.example.v1");
        assert_eq!(rule.to_string(), "defer instead");
        assert_eq!(rule.clone(), rule);
    }
}
