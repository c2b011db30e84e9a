//! Who may do what in payments (DOMAIN.md, Roles; payments.proto callers).
//! Every RPC asks here before it reads or changes anything; a refusal is
//! PERMISSION_DENIED with the reason, and is audited by the service.
//!
//! * Receivers (EnrolPayee .. SetParticipantScope): `service` only.
//! * RecordEngagement: `service` (Steplab), `admin`, and the `ecf_lead` of
//!   the payee's delivery partner (a DP system acting for its schools). Not
//!   a DPL or an induction coordinator: engagement earns money, so only the
//!   systems and people accountable for evidencing it record it.
//! * GetAccrual: `service`, `admin`, a `dpl` or `ecf_lead` of the payee's
//!   delivery partner, the `induction_coordinator` of the payee's school.
//! * GetStatement: `admin` (one delivery partner or the whole lead
//!   provider), a `dpl` for one of their delivery partners, named.
//! * ListSchedules: anyone authenticated.

use steplab_platform::reach::role_may_not;
use steplab_platform::{Caller, Scope};

/// A refused permission, with a message saying what the caller lacks.
pub use steplab_platform::rules::Denied;

/// The school and delivery partner a payee belongs to today, and the
/// refusal that tells a scoped caller nothing about payees beyond its reach.
/// Only the participant service and admins are told a payee is not enrolled.
pub use steplab_platform::reach::{Place, sees_everything, unreachable};

/// GetAccrual: anyone whose scope covers the payee.
pub use steplab_platform::reach::may_read as may_read_accrual;

fn out_of_scope(caller: &Caller, what: &str) -> Denied {
    Denied::outside_scope(
        caller,
        format!("a {} token does not reach {what}: use a token whose scope covers it", caller.role().as_str()),
    )
}

/// The participant service's commands (D4, W5, W9, S1, S2).
/// X5: only the DfE gateway (role `service`) reports the DfE's answers.
pub fn may_record_declaration_state(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service => Ok(()),
        _ => Err(role_may_not(
            caller,
            "record the DfE's declaration states",
            "they come from the DfE gateway (role service), which reads them from the DfE",
        )),
    }
}

pub fn may_send_commands(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service => Ok(()),
        _ => Err(role_may_not(
            caller,
            "send payments commands",
            "they come from the participant service (role service); change the participant there instead",
        )),
    }
}

/// Before looking the payee up, so other roles learn nothing about it.
pub fn may_record_engagement_somewhere(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service | Scope::Admin | Scope::EcfLead { .. } => Ok(()),
        _ => Err(role_may_not(
            caller,
            "record engagement",
            "it comes from Steplab, an admin or the delivery partner's ECF Lead",
        )),
    }
}

pub fn may_record_engagement(caller: &Caller, place: Place<'_>) -> Result<(), Denied> {
    match &caller.scope {
        Scope::Service | Scope::Admin => Ok(()),
        Scope::EcfLead { delivery_partner_id } if delivery_partner_id == place.delivery_partner_id => Ok(()),
        Scope::EcfLead { .. } => Err(unreachable(caller)),
        _ => may_record_engagement_somewhere(caller),
    }
}

/// GetStatement (F6): `None` is the whole lead provider.
pub fn may_read_statement(caller: &Caller, delivery_partner_id: Option<&str>) -> Result<(), Denied> {
    match (&caller.scope, delivery_partner_id) {
        (Scope::Admin, _) => Ok(()),
        (Scope::Dpl { delivery_partner_ids }, Some(dp)) if delivery_partner_ids.iter().any(|d| d == dp) => Ok(()),
        (Scope::Dpl { .. }, Some(_)) => Err(out_of_scope(caller, "that delivery partner")),
        (Scope::Dpl { .. }, None) => Err(Denied::role_not_allowed(
            caller,
            "a dpl reads statements one delivery partner at a time: name one of yours in delivery_partner_id (the whole lead provider is for admins)",
        )),
        _ => Err(role_may_not(caller, "read statements", "statements are for admins and the delivery partner's DPL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_testkit::callers::{caller, dpl, ic, lead};

    const PLACE: Place<'static> = Place { school_id: "school-a", delivery_partner_id: "dp-1" };

    #[test]
    fn roles_only_the_service_role_sends_commands() {
        assert!(may_send_commands(&caller(Scope::Service)).is_ok());
        for c in [caller(Scope::Admin), lead("dp-1"), dpl(&["dp-1"]), ic("school-a")] {
            assert!(may_send_commands(&c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn x5_roles_only_the_service_role_records_the_dfes_declaration_states() {
        assert!(may_record_declaration_state(&caller(Scope::Service)).is_ok());
        for c in [caller(Scope::Admin), lead("dp-1"), dpl(&["dp-1"]), ic("school-a")] {
            let refused = may_record_declaration_state(&c).expect_err("refused");
            assert!(refused.message.contains("DfE gateway"), "{c:?}: {}", refused.message);
        }
    }

    #[test]
    fn roles_engagement_is_recorded_by_service_admin_and_the_dps_ecf_lead() {
        assert!(may_record_engagement(&caller(Scope::Service), PLACE).is_ok());
        assert!(may_record_engagement(&caller(Scope::Admin), PLACE).is_ok());
        assert!(may_record_engagement(&lead("dp-1"), PLACE).is_ok());
        assert!(may_record_engagement(&lead("dp-2"), PLACE).is_err());
        assert!(may_record_engagement_somewhere(&dpl(&["dp-1"])).is_err());
        assert!(may_record_engagement(&ic("school-a"), PLACE).is_err());
    }

    #[test]
    fn roles_accrual_is_read_in_scope_only() {
        assert!(may_read_accrual(&ic("school-a"), PLACE).is_ok());
        assert!(may_read_accrual(&ic("school-b"), PLACE).is_err());
        assert!(may_read_accrual(&lead("dp-1"), PLACE).is_ok());
        assert!(may_read_accrual(&lead("dp-2"), PLACE).is_err());
        assert!(may_read_accrual(&dpl(&["dp-2", "dp-1"]), PLACE).is_ok());
        assert!(may_read_accrual(&dpl(&["dp-2"]), PLACE).is_err());
        assert!(may_read_accrual(&caller(Scope::Service), PLACE).is_ok());
        assert!(may_read_accrual(&caller(Scope::Admin), PLACE).is_ok());
    }

    #[test]
    fn f6_statements_are_for_admins_and_dpls_of_the_named_delivery_partner() {
        assert!(may_read_statement(&caller(Scope::Admin), None).is_ok());
        assert!(may_read_statement(&caller(Scope::Admin), Some("dp-9")).is_ok());
        assert!(may_read_statement(&dpl(&["dp-1"]), Some("dp-1")).is_ok());
        assert!(may_read_statement(&dpl(&["dp-1"]), Some("dp-2")).is_err());
        assert!(may_read_statement(&dpl(&["dp-1"]), None).is_err());
        assert!(may_read_statement(&lead("dp-1"), Some("dp-1")).is_err());
        assert!(may_read_statement(&caller(Scope::Service), None).is_err());
        assert!(may_read_statement(&ic("school-a"), Some("dp-1")).is_err());
    }

    #[test]
    fn scope_an_out_of_scope_learner_is_refused_with_the_words_for_an_unknown_one() {
        let outside = may_read_accrual(&lead("dp-2"), PLACE).expect_err("other dp");
        assert_eq!(outside, unreachable(&lead("dp-2")));
        assert!(!outside.message.contains("dp-1") && !outside.message.contains("school-a"), "{}", outside.message);
        assert!(sees_everything(&caller(Scope::Service)) && sees_everything(&caller(Scope::Admin)));
        assert!(!sees_everything(&lead("dp-1")) && !sees_everything(&ic("school-a")));
    }
}
