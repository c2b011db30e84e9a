//! Who is calling: the roles of DOMAIN.md, the scope each role's token
//! grants, and the authenticated caller. Plain data, free of tonic and of
//! token handling, so audit, limits and the services can name a caller
//! without depending on how it was verified (see [`crate::auth`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    InductionCoordinator,
    EcfLead,
    Dpl,
    Admin,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::InductionCoordinator => "induction_coordinator",
            Role::EcfLead => "ecf_lead",
            Role::Dpl => "dpl",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::InductionCoordinator, Role::EcfLead, Role::Dpl, Role::Admin, Role::Service]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: use induction_coordinator, ecf_lead, dpl, admin or service"))
    }
}

/// What a caller may reach, derived from a validated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    InductionCoordinator { school_id: String },
    EcfLead { delivery_partner_id: String },
    Dpl { delivery_partner_ids: Vec<String> },
    Admin,
    Service,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub scope: Scope,
}

impl Caller {
    pub fn role(&self) -> Role {
        match self.scope {
            Scope::InductionCoordinator { .. } => Role::InductionCoordinator,
            Scope::EcfLead { .. } => Role::EcfLead,
            Scope::Dpl { .. } => Role::Dpl,
            Scope::Admin => Role::Admin,
            Scope::Service => Role::Service,
        }
    }
}
