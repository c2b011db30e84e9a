//! Who may call the gateway (dfe.proto callers). Every RPC asks here first;
//! a refusal is PERMISSION_DENIED with the reason, and is audited.
//!
//! * TrackParticipant, ReportStatusChange, DeclareMilestone, VoidMilestone:
//!   `service` only (the participant service and payments, through their
//!   outboxes).
//! * ListDfeCalls, RetryDfeCall, ListUnreportable, Reconcile: `admin` only:
//!   they show every participant's DfE traffic and act on it.

use steplab_platform::{Caller, Scope};

/// A refused permission, with a message saying what the caller lacks.
pub use steplab_platform::rules::Denied;

pub fn may_send_commands(caller: &Caller) -> Result<(), Denied> {
    only(
        caller,
        &Scope::Service,
        "send DfE gateway commands: they come from the participant service and payments (role service); change the participant or the engagement there instead",
    )
}

pub fn may_administer(caller: &Caller) -> Result<(), Denied> {
    only(caller, &Scope::Admin, "read or act on the DfE gateway's calls: ask an admin")
}

/// Each RPC is open to one role: any other is told what it may not do.
fn only(caller: &Caller, scope: &Scope, may_not: &str) -> Result<(), Denied> {
    if caller.scope == *scope {
        Ok(())
    } else {
        Err(Denied::role_not_allowed(caller, format!("the {} role may not {may_not}", caller.role().as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scope: Scope) -> Caller {
        Caller { sub: "s".into(), scope }
    }

    #[test]
    fn roles_commands_are_for_the_service_role_and_operations_for_admins() {
        assert!(may_send_commands(&caller(Scope::Service)).is_ok());
        assert!(may_send_commands(&caller(Scope::Admin)).is_err());
        assert!(may_administer(&caller(Scope::Admin)).is_ok());
        assert!(may_administer(&caller(Scope::Service)).is_err());
        let lead = caller(Scope::EcfLead { delivery_partner_id: "dp".into() });
        assert!(may_send_commands(&lead).is_err());
        assert!(may_administer(&lead).is_err());
    }
}
