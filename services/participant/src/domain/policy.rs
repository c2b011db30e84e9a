//! Who may do what (DOMAIN.md, Roles). Every RPC asks here before it reads or
//! changes anything; a refusal is PERMISSION_DENIED with the reason.

use steplab_platform::{Caller, Scope};

/// A refused permission, with a message saying what the caller lacks.
pub use steplab_platform::rules::Denied;

/// The school and delivery partner a participant (or school) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    pub school_id: &'a str,
    pub delivery_partner_id: &'a str,
}

/// Whether the caller's scope covers a participant or school at `place`.
pub fn reaches(caller: &Caller, place: Place<'_>) -> bool {
    in_scope(caller, place)
}

/// Whether the caller's scope covers a delivery partner's requests.
pub fn reaches_delivery_partner(caller: &Caller, delivery_partner_id: &str) -> bool {
    match &caller.scope {
        Scope::EcfLead { delivery_partner_id: own } => own == delivery_partner_id,
        Scope::Dpl { delivery_partner_ids } => delivery_partner_ids.iter().any(|d| d == delivery_partner_id),
        Scope::Admin => true,
        Scope::InductionCoordinator { .. } | Scope::Service => false,
    }
}

/// Only an admin's scope covers everything, so only an admin may be told
/// that an id does not exist: anyone else would learn which ids exist
/// outside their scope.
pub fn sees_everything(caller: &Caller) -> bool {
    matches!(caller.scope, Scope::Admin)
}

/// AIP-211: to a scoped caller, a `what` outside their scope and one that
/// does not exist get this same refusal, word for word, so that asking
/// reveals nothing about other delivery partners.
pub fn unreachable(caller: &Caller, what: &str) -> Denied {
    Denied::outside_scope(
        caller,
        format!(
            "no {what} with this id is within the reach of a {} token: check the id, or ask someone whose scope covers it",
            caller.role().as_str()
        ),
    )
}

fn in_scope(caller: &Caller, place: Place<'_>) -> bool {
    match &caller.scope {
        Scope::InductionCoordinator { school_id } => school_id == place.school_id,
        Scope::EcfLead { delivery_partner_id } => delivery_partner_id == place.delivery_partner_id,
        Scope::Dpl { delivery_partner_ids } => delivery_partner_ids.iter().any(|d| d == place.delivery_partner_id),
        Scope::Admin => true,
        Scope::Service => false,
    }
}

fn out_of_scope(caller: &Caller, what: &str) -> Denied {
    Denied::outside_scope(caller, format!("a {} token does not reach {what}", caller.role().as_str()))
}

fn role_may_not(caller: &Caller, action: &str, who: &str) -> Denied {
    Denied::role_not_allowed(caller, format!("the {} role may not {action}: ask {who}", caller.role().as_str()))
}

/// Reading a participant or school: its IC, its DP's ECF Lead, a DPL of its DP, admin.
pub fn may_read(caller: &Caller, place: Place<'_>) -> Result<(), Denied> {
    if matches!(caller.scope, Scope::Service) {
        return Err(role_may_not(caller, "read participants", "with a person's token"));
    }
    if in_scope(caller, place) { Ok(()) } else { Err(out_of_scope(caller, "this participant's school")) }
}

/// Delivery partners and schools are set up by the lead provider's admins.
pub fn may_create_delivery_partner(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Admin => Ok(()),
        _ => Err(role_may_not(caller, "create delivery partners", "an admin")),
    }
}

pub fn may_create_school(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Admin => Ok(()),
        _ => Err(role_may_not(caller, "create schools", "an admin")),
    }
}

/// Before looking anything up: only an ECF Lead or an admin registers, so
/// no other role learns whether a school id exists.
pub fn may_register_somewhere(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::EcfLead { .. } | Scope::Admin => Ok(()),
        _ => Err(role_may_not(caller, "register participants", "the delivery partner's ECF Lead")),
    }
}

/// Registering participants: the ECF Lead of the school's DP, or admin.
pub fn may_register(caller: &Caller, school: Place<'_>) -> Result<(), Denied> {
    match caller.scope {
        Scope::EcfLead { .. } | Scope::Admin if in_scope(caller, school) => Ok(()),
        Scope::EcfLead { .. } => Err(out_of_scope(caller, "this school's delivery partner")),
        _ => Err(role_may_not(caller, "register participants", "the delivery partner's ECF Lead")),
    }
}

/// M1-M3: the ECF Lead (or admin) assigns and replaces mentors; an induction
/// coordinator may only make an IC of their own school the interim mentor.
pub fn may_assign_mentor(caller: &Caller, ect: Place<'_>, interim: bool) -> Result<(), Denied> {
    match caller.scope {
        Scope::EcfLead { .. } | Scope::Admin if in_scope(caller, ect) => Ok(()),
        Scope::InductionCoordinator { .. } if in_scope(caller, ect) && interim => Ok(()),
        Scope::InductionCoordinator { .. } if in_scope(caller, ect) => Err(Denied::role_not_allowed(
            caller,
            "an induction coordinator may only assign themselves as interim mentor (interim = true); the ECF Lead assigns or replaces mentors",
        )),
        Scope::EcfLead { .. } | Scope::InductionCoordinator { .. } => Err(out_of_scope(caller, "this ECT's school")),
        _ => Err(role_may_not(caller, "assign mentors", "the delivery partner's ECF Lead")),
    }
}

/// P1-P4: pausing is for the ECT's induction coordinator, the DP's ECF Lead, or admin.
pub fn may_manage_pause(caller: &Caller, ect: Place<'_>) -> Result<(), Denied> {
    match caller.scope {
        Scope::InductionCoordinator { .. } | Scope::EcfLead { .. } | Scope::Admin if in_scope(caller, ect) => Ok(()),
        Scope::InductionCoordinator { .. } | Scope::EcfLead { .. } => Err(out_of_scope(caller, "this ECT's school")),
        _ => Err(role_may_not(caller, "pause ECTs", "the school's induction coordinator or the ECF Lead")),
    }
}

/// D1, W1, S1, W9/C2/W6 requests: the ECF Lead of the participant's delivery
/// partner, or admin. An induction coordinator is pointed to the ECF Lead.
pub fn may_manage_lifecycle(caller: &Caller, place: Place<'_>, action: &str) -> Result<(), Denied> {
    match caller.scope {
        Scope::EcfLead { .. } | Scope::Admin if in_scope(caller, place) => Ok(()),
        Scope::EcfLead { .. } => Err(out_of_scope(caller, "this participant's delivery partner")),
        Scope::InductionCoordinator { .. } => Err(Denied::role_not_allowed(
            caller,
            format!("an induction coordinator may not {action}: ask the delivery partner's ECF Lead, who can"),
        )),
        _ => Err(role_may_not(caller, action, "the delivery partner's ECF Lead")),
    }
}

/// Before looking a request up: only a DPL or an admin decides, so no other
/// role learns whether a request id exists.
pub fn may_decide_somewhere(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Admin | Scope::Dpl { .. } => Ok(()),
        _ => Err(role_may_not(caller, "decide requests", "a DPL of the delivery partner")),
    }
}

/// W9, C2, W6: a DPL of the request's delivery partner (or admin) decides;
/// never the ECF Lead who asked.
pub fn may_decide(caller: &Caller, delivery_partner_id: &str) -> Result<(), Denied> {
    match &caller.scope {
        Scope::Admin => Ok(()),
        Scope::Dpl { delivery_partner_ids } if delivery_partner_ids.iter().any(|d| d == delivery_partner_id) => Ok(()),
        Scope::Dpl { .. } => Err(out_of_scope(caller, "this request's delivery partner")),
        _ => Err(role_may_not(caller, "decide requests", "a DPL of the delivery partner")),
    }
}

/// Requests and notifications are read by the DP's ECF Lead, its DPLs and admins.
pub fn delivery_partner_scope(caller: &Caller, filter: Option<&str>) -> Result<ListScope, Denied> {
    let scope = match &caller.scope {
        Scope::EcfLead { delivery_partner_id } => ListScope::DeliveryPartners(vec![delivery_partner_id.clone()]),
        Scope::Dpl { delivery_partner_ids } => ListScope::DeliveryPartners(delivery_partner_ids.clone()),
        Scope::Admin => ListScope::Everything,
        _ => {
            return Err(role_may_not(
                caller,
                "read delivery partners' requests and notifications",
                "the ECF Lead or a DPL",
            ));
        }
    };
    match (filter, &scope) {
        (None, _) | (Some(_), ListScope::Everything) => {
            Ok(filter.map_or(scope, |dp| ListScope::DeliveryPartners(vec![dp.to_owned()])))
        }
        (Some(dp), ListScope::DeliveryPartners(ids)) if ids.iter().any(|d| d == dp) => {
            Ok(ListScope::DeliveryPartners(vec![dp.to_owned()]))
        }
        _ => Err(out_of_scope(caller, "that delivery partner")),
    }
}

/// D12, W10: the reporting feed is for admins and other services.
pub fn may_watch_events(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Admin | Scope::Service => Ok(()),
        _ => Err(role_may_not(caller, "read the reporting feed", "an admin")),
    }
}

/// D4: the whole service's delivery state, and retrying what is parked, are
/// for admins.
pub fn may_operate_relay(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Admin => Ok(()),
        _ => Err(role_may_not(caller, "operate the command relay", "an admin, or read one participant's sync status")),
    }
}

/// X1: a participant's DfE id is set by an admin (who reads it from the
/// DfE's service or from a Reconcile match).
pub fn may_set_dfe_participant_id(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Admin => Ok(()),
        _ => Err(role_may_not(caller, "set a participant's DfE id", "an admin")),
    }
}

/// The part of the registry a list may show, after the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    Everything,
    School(String),
    DeliveryPartners(Vec<String>),
}

/// Narrows a list request to the caller's scope. A filter naming something
/// outside it is refused rather than silently emptied.
pub fn list_scope(
    caller: &Caller,
    school_filter: Option<(&str, &str)>,
    delivery_partner_filter: Option<&str>,
) -> Result<ListScope, Denied> {
    if let Some((school_id, school_dp)) = school_filter
        && !in_scope(caller, Place { school_id, delivery_partner_id: school_dp })
    {
        return Err(out_of_scope(caller, "that school"));
    }
    if let Some(dp) = delivery_partner_filter {
        let reachable = match &caller.scope {
            Scope::EcfLead { delivery_partner_id } => delivery_partner_id == dp,
            Scope::Dpl { delivery_partner_ids } => delivery_partner_ids.iter().any(|d| d == dp),
            Scope::Admin => true,
            Scope::InductionCoordinator { .. } | Scope::Service => false,
        };
        if !reachable {
            return Err(out_of_scope(caller, "that delivery partner"));
        }
    }
    Ok(match &caller.scope {
        Scope::InductionCoordinator { school_id } => ListScope::School(school_id.clone()),
        Scope::EcfLead { delivery_partner_id } => ListScope::DeliveryPartners(vec![delivery_partner_id.clone()]),
        Scope::Dpl { delivery_partner_ids } => ListScope::DeliveryPartners(delivery_partner_ids.clone()),
        Scope::Admin => ListScope::Everything,
        Scope::Service => {
            return Err(role_may_not(caller, "list participants", "with a person's token"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_testkit::callers::{caller, dpl, ic, lead};

    const A: Place<'static> = Place { school_id: "school-a", delivery_partner_id: "dp-1" };
    const B: Place<'static> = Place { school_id: "school-b", delivery_partner_id: "dp-2" };

    #[test]
    fn roles_an_induction_coordinator_reads_only_their_own_school() {
        assert!(may_read(&ic("school-a"), A).is_ok());
        assert!(may_read(&ic("school-a"), B).is_err());
    }

    #[test]
    fn roles_an_ecf_lead_reads_their_delivery_partners_schools_and_a_dpl_their_set() {
        assert!(may_read(&lead("dp-1"), A).is_ok());
        assert!(may_read(&lead("dp-1"), B).is_err());
        assert!(may_read(&dpl(&["dp-1", "dp-2"]), B).is_ok());
        assert!(may_read(&dpl(&["dp-3"]), B).is_err());
    }

    #[test]
    fn roles_a_service_token_reads_nothing_and_an_admin_everything() {
        assert!(may_read(&caller(Scope::Service), A).is_err());
        assert!(may_read(&caller(Scope::Admin), B).is_ok());
    }

    #[test]
    fn roles_only_an_ecf_lead_of_the_dp_or_an_admin_registers() {
        assert!(may_register(&lead("dp-1"), A).is_ok());
        assert!(may_register(&lead("dp-1"), B).is_err());
        assert!(may_register(&ic("school-a"), A).is_err());
        assert!(may_register(&dpl(&["dp-1"]), A).is_err());
        assert!(may_register(&caller(Scope::Admin), B).is_ok());
    }

    #[test]
    fn roles_only_admins_create_delivery_partners_and_schools() {
        assert!(may_create_delivery_partner(&caller(Scope::Admin)).is_ok());
        assert!(may_create_delivery_partner(&lead("dp-1")).is_err());
        assert!(may_create_school(&dpl(&["dp-1"])).is_err());
    }

    #[test]
    fn m3_an_induction_coordinator_may_assign_only_an_interim_mentor_in_their_school() {
        assert!(may_assign_mentor(&ic("school-a"), A, true).is_ok());
        assert!(may_assign_mentor(&ic("school-a"), A, false).is_err());
        assert!(may_assign_mentor(&ic("school-a"), B, true).is_err());
        assert!(may_assign_mentor(&lead("dp-1"), A, false).is_ok());
        assert!(may_assign_mentor(&dpl(&["dp-1"]), A, false).is_err());
    }

    #[test]
    fn p1_an_induction_coordinator_pauses_in_their_school_and_a_dpl_does_not() {
        assert!(may_manage_pause(&ic("school-a"), A).is_ok());
        assert!(may_manage_pause(&ic("school-a"), B).is_err());
        assert!(may_manage_pause(&lead("dp-1"), A).is_ok());
        assert!(may_manage_pause(&dpl(&["dp-1"]), A).is_err());
    }

    #[test]
    fn d1_only_the_ecf_lead_defers_and_an_ic_is_pointed_to_them() {
        let err = may_manage_lifecycle(&ic("school-a"), A, "defer participants").expect_err("ic");
        assert!(err.message.contains("ECF Lead"), "{}", err.message);
        assert!(may_manage_lifecycle(&lead("dp-1"), A, "defer").is_ok());
        assert!(may_manage_lifecycle(&lead("dp-2"), A, "defer").is_err());
        assert!(may_manage_lifecycle(&dpl(&["dp-1"]), A, "defer").is_err());
        assert!(may_manage_lifecycle(&caller(Scope::Admin), A, "defer").is_ok());
    }

    #[test]
    fn w1_only_the_ecf_lead_or_an_admin_withdraws() {
        assert!(may_manage_lifecycle(&lead("dp-1"), A, "withdraw participants").is_ok());
        assert!(may_manage_lifecycle(&caller(Scope::Admin), B, "withdraw participants").is_ok());
        for refused in [ic("school-a"), dpl(&["dp-1"]), caller(Scope::Service), lead("dp-2")] {
            assert!(may_manage_lifecycle(&refused, A, "withdraw participants").is_err(), "{refused:?}");
        }
    }

    #[test]
    fn w9_a_dpl_of_the_delivery_partner_decides_never_the_ecf_lead() {
        assert!(may_decide(&dpl(&["dp-1"]), "dp-1").is_ok());
        assert!(may_decide(&dpl(&["dp-2"]), "dp-1").is_err());
        assert!(may_decide(&lead("dp-1"), "dp-1").is_err());
        assert!(may_decide(&caller(Scope::Admin), "dp-1").is_ok());
    }

    #[test]
    fn w7_notifications_are_read_by_the_dp_staff_only() {
        assert!(delivery_partner_scope(&ic("school-a"), None).is_err());
        assert!(delivery_partner_scope(&lead("dp-1"), Some("dp-2")).is_err());
        assert_eq!(
            delivery_partner_scope(&dpl(&["dp-1", "dp-2"]), Some("dp-2")),
            Ok(ListScope::DeliveryPartners(vec!["dp-2".into()]))
        );
    }

    #[test]
    fn scope_only_an_admin_sees_everything_and_the_refusal_names_no_place() {
        assert!(sees_everything(&caller(Scope::Admin)));
        for scoped in [ic("school-a"), lead("dp-1"), dpl(&["dp-1"]), caller(Scope::Service)] {
            assert!(!sees_everything(&scoped), "{scoped:?}");
            let refusal = unreachable(&scoped, "participant").message;
            assert!(!refusal.contains("school-") && !refusal.contains("dp-"), "{refusal}");
        }
        assert!(reaches_delivery_partner(&dpl(&["dp-1", "dp-2"]), "dp-2"));
        assert!(!reaches_delivery_partner(&lead("dp-1"), "dp-2"));
        assert!(!reaches_delivery_partner(&ic("school-a"), "dp-1"));
        assert!(may_decide_somewhere(&dpl(&["dp-9"])).is_ok());
        assert!(may_decide_somewhere(&lead("dp-1")).is_err());
    }

    #[test]
    fn roles_lists_are_narrowed_to_scope_and_foreign_filters_refused() {
        assert_eq!(list_scope(&ic("school-a"), None, None), Ok(ListScope::School("school-a".into())));
        assert!(list_scope(&ic("school-a"), Some(("school-b", "dp-2")), None).is_err());
        assert!(list_scope(&lead("dp-1"), None, Some("dp-2")).is_err());
        assert_eq!(
            list_scope(&dpl(&["dp-1", "dp-2"]), None, Some("dp-2")),
            Ok(ListScope::DeliveryPartners(vec!["dp-1".into(), "dp-2".into()]))
        );
        assert_eq!(list_scope(&caller(Scope::Admin), None, None), Ok(ListScope::Everything));
    }
}
