//! Setup shared by the cross-service tests: delivery partners, schools and
//! participants created through the real RPCs, and the check that the three
//! services agree about a participant.

// Test support: a failed call fails the test that made it.
#![allow(clippy::panic)]

use crate::{Participants, Stack};
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::participant::v1 as pb;

pub fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// Two delivery partners with one school each.
pub struct World {
    pub dp1: String,
    pub dp2: String,
    pub school_a: String,
    pub school_b: String,
}

pub async fn create_dp(client: &mut Participants, name: &str) -> String {
    client
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: name.into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("create delivery partner")
        .into_inner()
        .delivery_partner
        .expect("delivery partner")
        .delivery_partner_id
}

pub async fn create_school(client: &mut Participants, urn: &str, dp: &str, area_covered: bool) -> String {
    client
        .create_school(pb::CreateSchoolRequest {
            validate_only: false,
            urn: urn.into(),
            name: format!("School {urn}"),
            delivery_partner_id: dp.into(),
            area_covered: Some(area_covered),
            idempotency_key: String::new(),
        })
        .await
        .expect("create school")
        .into_inner()
        .school
        .expect("school")
        .school_id
}

pub async fn world(stack: &Stack) -> World {
    let admin = stack.admin_token();
    let mut client = stack.participants(Some(&admin)).await;
    let dp1 = create_dp(&mut client, "North Region").await;
    let dp2 = create_dp(&mut client, "South Region").await;
    let school_a = create_school(&mut client, "100001", &dp1, true).await;
    let school_b = create_school(&mut client, "200002", &dp2, true).await;
    World { dp1, dp2, school_a, school_b }
}

pub fn registration(
    school: &str,
    kind: ParticipantKind,
    trn: &str,
    on: Option<Date>,
) -> pb::RegisterParticipantRequest {
    pb::RegisterParticipantRequest {
        validate_only: false,
        school_id: school.into(),
        kind: kind as i32,
        full_name: format!("Teacher {trn}"),
        trn: trn.into(),
        registered_on: on,
        previous_pilot_mentor: (kind == ParticipantKind::Mentor).then_some(false),
        idempotency_key: String::new(),
        dfe_participant_id: String::new(),
    }
}

/// Registers as the delivery partner's ECF Lead.
pub async fn register(stack: &Stack, dp: &str, request: pb::RegisterParticipantRequest) -> pb::Participant {
    let lead = stack.token(Role::EcfLead, None, &[dp]);
    stack
        .participants(Some(&lead))
        .await
        .register_participant(request)
        .await
        .expect("register")
        .into_inner()
        .participant
        .expect("participant")
}

/// The participant as of a date, read by an admin.
pub async fn status_on(stack: &Stack, participant_id: &str, on: Option<Date>) -> pb::Participant {
    let admin = stack.admin_token();
    stack
        .participants(Some(&admin))
        .await
        .get_participant(pb::GetParticipantRequest { participant_id: participant_id.into(), as_of: on })
        .await
        .expect("get participant")
        .into_inner()
        .participant
        .expect("participant")
}

/// How content release and payments disagree with the participant service
/// about `participant_id` on `on` (empty when all three agree).
pub async fn drift(stack: &Stack, participant_id: &str, on: Option<Date>) -> Vec<String> {
    use steplab_proto::steplab::content::v1::GetReleaseStateRequest;
    use steplab_proto::steplab::payments::v1::GetAccrualRequest;
    let participant = status_on(stack, participant_id, on).await;
    let service = stack.token(Role::Service, None, &[]);
    let known = |code: tonic::Code| code == tonic::Code::NotFound;
    let release = match stack
        .content(Some(&service))
        .await
        .get_release_state(GetReleaseStateRequest { participant_id: participant_id.into(), as_of: on })
        .await
    {
        Ok(r) => Some(r.into_inner()),
        Err(s) if known(s.code()) => None,
        Err(s) => panic!("GetReleaseState failed: {s:?}"),
    };
    let accrual = match stack
        .payments(Some(&service))
        .await
        .get_accrual(GetAccrualRequest { participant_id: participant_id.into(), as_of: on })
        .await
    {
        Ok(r) => Some(r.into_inner()),
        Err(s) if known(s.code()) => None,
        Err(s) => panic!("GetAccrual failed: {s:?}"),
    };
    steplab_participant::drift::differences(steplab_participant::drift::Views {
        participant: &participant,
        release: release.as_ref(),
        accrual: accrual.as_ref(),
    })
}

/// Asserts the three services agree about each participant on each date.
pub async fn assert_agree(stack: &Stack, participant_ids: &[&str], dates: &[Option<Date>]) {
    for id in participant_ids {
        for on in dates {
            let found = drift(stack, id, *on).await;
            assert!(found.is_empty(), "participant {id} on {on:?}: {found:?}");
        }
    }
}
