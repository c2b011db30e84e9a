//! Who may do what here (DOMAIN.md, Roles; content.proto, each RPC's
//! caller). The commands come only from the participant service; reads
//! follow the learner's school and delivery partner as known from enrolment
//! and later moves. A refusal is PERMISSION_DENIED with what the caller lacks.

use steplab_platform::reach::role_may_not;
use steplab_platform::{Caller, Scope};

/// A refused permission, with a message saying what the caller lacks.
pub use steplab_platform::rules::Denied;

/// The school and delivery partner a learner belongs to, and GetReleaseState:
/// anyone whose scope covers the learner (the service, an admin, a DPL or ECF
/// Lead of the learner's delivery partner, an induction coordinator of their
/// school). Only the service and admins are told a learner is not enrolled.
pub use steplab_platform::reach::{Place, may_read, sees_everything, unreachable};

/// EnrolLearner, PlaceHold, LiftHold, RevokeAccess, RestoreAccess,
/// SetReleaseStart, SetParticipantScope: the participant service applies the
/// rules and sends these; nobody else may change release facts directly.
pub fn may_send_commands(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service => Ok(()),
        _ => Err(role_may_not(
            caller,
            "send content-release commands",
            "they come from the participant service; make the change there (pause, defer, withdraw, ...)",
        )),
    }
}

/// RecordModuleAccess: Steplab (service), admins for corrections.
pub fn may_record_module_access(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service | Scope::Admin => Ok(()),
        _ => Err(role_may_not(
            caller,
            "record module access",
            "Steplab records it with a service token, an admin corrects it",
        )),
    }
}

/// Before looking the learner up: only these roles record attendance, so
/// no other learns whether a participant is enrolled.
pub fn may_record_attendance_somewhere(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service | Scope::Admin | Scope::EcfLead { .. } => Ok(()),
        _ => Err(role_may_not(caller, "record attendance", "the delivery partner's ECF Lead or its systems record it")),
    }
}

/// RecordAttendance: DP systems (service), admin, the ECF Lead of the
/// learner's delivery partner.
pub fn may_record_attendance(caller: &Caller, place: Place<'_>) -> Result<(), Denied> {
    may_record_attendance_somewhere(caller)?;
    match &caller.scope {
        Scope::EcfLead { delivery_partner_id } if delivery_partner_id != place.delivery_partner_id => {
            Err(unreachable(caller))
        }
        _ => Ok(()),
    }
}

/// ListReleases: the feed Steplab syncs from; admins may read it too.
pub fn may_list_releases(caller: &Caller) -> Result<(), Denied> {
    match caller.scope {
        Scope::Service | Scope::Admin => Ok(()),
        _ => Err(role_may_not(
            caller,
            "read the release feed",
            "it is for Steplab (service) and admins; use GetReleaseState for one participant",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steplab_testkit::callers::{caller, ic, lead};

    const PLACE: Place<'static> = Place { school_id: "school-a", delivery_partner_id: "dp-1" };

    #[test]
    fn roles_only_the_service_sends_commands() {
        assert!(may_send_commands(&caller(Scope::Service)).is_ok());
        for other in [caller(Scope::Admin), ic("school-a"), lead("dp-1")] {
            assert!(may_send_commands(&other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn roles_release_state_is_read_within_school_or_delivery_partner_scope() {
        assert!(may_read(&ic("school-a"), PLACE).is_ok());
        assert!(may_read(&ic("school-b"), PLACE).is_err());
        assert!(may_read(&lead("dp-1"), PLACE).is_ok());
        assert!(may_read(&lead("dp-2"), PLACE).is_err());
        let dpl =
            |dps: &[&str]| caller(Scope::Dpl { delivery_partner_ids: dps.iter().map(|s| s.to_string()).collect() });
        assert!(may_read(&dpl(&["dp-2", "dp-1"]), PLACE).is_ok());
        assert!(may_read(&dpl(&["dp-2"]), PLACE).is_err());
        assert!(may_read(&caller(Scope::Admin), PLACE).is_ok());
        assert!(may_read(&caller(Scope::Service), PLACE).is_ok());
    }

    #[test]
    fn roles_module_access_and_the_feed_are_for_steplab_and_admins() {
        for ok in [caller(Scope::Service), caller(Scope::Admin)] {
            assert!(may_record_module_access(&ok).is_ok());
            assert!(may_list_releases(&ok).is_ok());
        }
        for no in [ic("school-a"), lead("dp-1")] {
            assert!(may_record_module_access(&no).is_err());
            assert!(may_list_releases(&no).is_err());
        }
    }

    #[test]
    fn roles_attendance_is_recorded_by_dp_systems_admins_and_the_dps_ecf_lead() {
        assert!(may_record_attendance(&lead("dp-1"), PLACE).is_ok());
        assert!(may_record_attendance(&lead("dp-2"), PLACE).is_err());
        assert!(may_record_attendance(&caller(Scope::Service), PLACE).is_ok());
        assert!(may_record_attendance(&caller(Scope::Admin), PLACE).is_ok());
        assert!(may_record_attendance_somewhere(&ic("school-a")).is_err());
    }

    #[test]
    fn scope_an_out_of_scope_learner_is_refused_with_the_words_for_an_unknown_one() {
        let outside = may_read(&lead("dp-2"), PLACE).expect_err("other dp");
        assert_eq!(outside, unreachable(&lead("dp-2")));
        assert!(!outside.message.contains("dp-1") && !outside.message.contains("school-a"), "{}", outside.message);
        assert!(sees_everything(&caller(Scope::Service)) && sees_everything(&caller(Scope::Admin)));
        assert!(!sees_everything(&lead("dp-1")) && !sees_everything(&ic("school-a")));
    }
}
