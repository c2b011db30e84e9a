//! Who reaches a participant in the services that know participants only
//! from the participant service's commands (content release, payments):
//! where a participant belongs, the one read rule, and the refusals, worded
//! alike in each such service so that callers see one vocabulary.

use crate::identity::{Caller, Scope};
use crate::rules::Denied;

/// The school and delivery partner a participant belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    pub school_id: &'a str,
    pub delivery_partner_id: &'a str,
}

/// The caller's role may not do `action`; `who` says who does it instead.
pub fn role_may_not(caller: &Caller, action: &str, who: &str) -> Denied {
    Denied::role_not_allowed(caller, format!("the {} role may not {action}: {who}", caller.role().as_str()))
}

/// AIP-211: to a scoped caller, a participant outside their scope and one
/// that is not enrolled get this same refusal, word for word, so that asking
/// reveals nothing about other delivery partners' participants.
pub fn unreachable(caller: &Caller) -> Denied {
    Denied::outside_scope(
        caller,
        format!(
            "no participant with this id is within the reach of a {} token: check the id, or ask someone whose scope covers it",
            caller.role().as_str()
        ),
    )
}

/// The participant service and admins reach every participant, so only they
/// are told that a participant is not enrolled.
pub fn sees_everything(caller: &Caller) -> bool {
    matches!(caller.scope, Scope::Service | Scope::Admin)
}

/// Reading one participant: the service, an admin, a DPL or ECF Lead of its
/// delivery partner, an induction coordinator of its school.
pub fn may_read(caller: &Caller, place: Place<'_>) -> Result<(), Denied> {
    let reaches = match &caller.scope {
        Scope::Service | Scope::Admin => true,
        Scope::InductionCoordinator { school_id } => school_id == place.school_id,
        Scope::EcfLead { delivery_partner_id } => delivery_partner_id == place.delivery_partner_id,
        Scope::Dpl { delivery_partner_ids } => delivery_partner_ids.iter().any(|d| d == place.delivery_partner_id),
    };
    if reaches { Ok(()) } else { Err(unreachable(caller)) }
}
