//! The gateway's rules in plain Rust, testable without a server or a
//! database: who may call what (`policy`), our words to the DfE's
//! (`mapping`, X2 X3 X4 X5 X6), what an HTTP answer means for a call
//! (`outcome`, X8), the DfE's rate limit (`rate`, X8), and the comparison of
//! the DfE's view with ours (`reconcile`, X7), and the rules the commands
//! refuse by (`commands`, X1 X5 X6).

pub mod commands;
pub mod mapping;
pub mod outcome;
pub mod policy;
pub mod rate;
pub mod reconcile;

/// Where a call to the DfE stands (the `state` column of `dfe_calls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// The participant has no DfE id yet (X1).
    WaitingForDfeId,
    /// To be sent, or being retried.
    Pending,
    /// The DfE accepted it.
    Delivered,
    /// The DfE refused it (4xx other than 429): for an operator.
    Parked,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::WaitingForDfeId => "waiting-for-dfe-id",
            CallState::Pending => "pending",
            CallState::Delivered => "delivered",
            CallState::Parked => "parked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [CallState::WaitingForDfeId, CallState::Pending, CallState::Delivered, CallState::Parked]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// This service's ErrorInfo domain (its proto package): every rule refusal
/// of its domain is reported in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfeGatewayRules {}

impl steplab_platform::rules::ErrorDomain for DfeGatewayRules {
    const DOMAIN: &'static str = "steplab.dfe.v1";
}

/// A rule refusing a request: FAILED_PRECONDITION with an ErrorInfo reason in
/// this service's domain.
pub type RuleViolation = steplab_platform::rules::RuleViolation<DfeGatewayRules>;
