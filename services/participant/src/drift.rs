//! What content release and payments must show for a participant, given what
//! the system of record says on the same date: the check behind the
//! end-to-end tests and the operator's drift report. A difference while
//! commands are still pending is delivery lag, not drift.

use steplab_proto::steplab::common::v1::{ParticipantKind, TrainingStatus};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;

/// One participant as the three services see it on one date; `None` where a
/// service does not know the participant (NOT_FOUND).
#[derive(Debug, Clone, Copy)]
pub struct Views<'a> {
    pub participant: &'a pb::Participant,
    pub release: Option<&'a content::GetReleaseStateResponse>,
    pub accrual: Option<&'a payments::GetAccrualResponse>,
}

/// Every way the other two services disagree with the participant service.
pub fn differences(views: Views<'_>) -> Vec<String> {
    let p = views.participant;
    let mut found = Vec::new();
    if p.kind == ParticipantKind::InductionCoordinator as i32 {
        if views.release.is_some() {
            found.push("an induction coordinator is enrolled in content release".to_owned());
        }
        if views.accrual.is_some() {
            found.push("an induction coordinator is enrolled in payments".to_owned());
        }
        return found;
    }
    let status = TrainingStatus::try_from(p.status).unwrap_or(TrainingStatus::Unspecified);
    match views.release {
        None => found.push("not enrolled in content release".to_owned()),
        Some(release) => {
            let revoked = release.access == content::Access::Revoked as i32;
            let holds: Vec<i32> = release.active_holds.iter().map(|h| h.kind).collect();
            let (want_revoked, want_hold) = match status {
                TrainingStatus::Withdrawn => (true, None),
                TrainingStatus::Deferred => (false, Some(content::HoldKind::Deferral as i32)),
                TrainingStatus::Paused => (false, Some(content::HoldKind::Pause as i32)),
                TrainingStatus::Active | TrainingStatus::Unspecified => (false, None),
            };
            if revoked != want_revoked {
                found.push(format!(
                    "content access is {} but the participant is {}",
                    access_word(revoked),
                    status.as_str_name()
                ));
            }
            match want_hold {
                Some(kind) if !holds.contains(&kind) => {
                    found.push(format!(
                        "content release has no {} hold for a {} participant",
                        hold_word(kind),
                        status.as_str_name()
                    ));
                }
                None if !want_revoked && !holds.is_empty() => {
                    found.push(format!("content release holds an ACTIVE participant ({} holds)", holds.len()));
                }
                _ => {}
            }
            if p.release_start.is_some() && release.release_start != p.release_start {
                found.push(format!(
                    "content release starts on {:?}, the participant on {:?}",
                    release.release_start, p.release_start
                ));
            }
        }
    }
    match views.accrual {
        None => found.push("not enrolled in payments".to_owned()),
        Some(accrual) => {
            let want = match status {
                TrainingStatus::Withdrawn => payments::AccrualState::Ended,
                TrainingStatus::Deferred => payments::AccrualState::Suspended,
                // P5: a pause changes nothing for payments.
                TrainingStatus::Paused | TrainingStatus::Active | TrainingStatus::Unspecified => {
                    payments::AccrualState::Accruing
                }
            };
            if accrual.state != want as i32 {
                let got = payments::AccrualState::try_from(accrual.state).map(|s| s.as_str_name()).unwrap_or("unknown");
                found.push(format!("payments accrual is {got} but the participant is {}", status.as_str_name()));
            }
            if accrual.delivery_partner_id != p.delivery_partner_id {
                found.push(format!(
                    "payments has delivery partner {}, the participant {}",
                    accrual.delivery_partner_id, p.delivery_partner_id
                ));
            }
        }
    }
    found
}

fn access_word(revoked: bool) -> &'static str {
    if revoked { "revoked" } else { "granted" }
}

fn hold_word(kind: i32) -> &'static str {
    if kind == content::HoldKind::Pause as i32 { "pause" } else { "deferral" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(status: TrainingStatus) -> pb::Participant {
        pb::Participant {
            kind: ParticipantKind::Ect as i32,
            status: status as i32,
            delivery_partner_id: "dp".into(),
            ..Default::default()
        }
    }

    fn release(revoked: bool, hold: Option<content::HoldKind>) -> content::GetReleaseStateResponse {
        content::GetReleaseStateResponse {
            access: if revoked { content::Access::Revoked } else { content::Access::Granted } as i32,
            active_holds: hold
                .map(|k| vec![content::Hold { kind: k as i32, ..Default::default() }])
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    fn accrual(state: payments::AccrualState) -> payments::GetAccrualResponse {
        payments::GetAccrualResponse { state: state as i32, delivery_partner_id: "dp".into(), ..Default::default() }
    }

    #[test]
    fn d4_a_deferred_participant_agrees_with_a_deferral_hold_and_a_suspension() {
        let p = participant(TrainingStatus::Deferred);
        let r = release(false, Some(content::HoldKind::Deferral));
        let a = accrual(payments::AccrualState::Suspended);
        assert!(differences(Views { participant: &p, release: Some(&r), accrual: Some(&a) }).is_empty());
        let a = accrual(payments::AccrualState::Accruing);
        assert_eq!(differences(Views { participant: &p, release: Some(&r), accrual: Some(&a) }).len(), 1);
    }

    #[test]
    fn p5_a_paused_participant_still_accrues() {
        let p = participant(TrainingStatus::Paused);
        let r = release(false, Some(content::HoldKind::Pause));
        let a = accrual(payments::AccrualState::Accruing);
        assert!(differences(Views { participant: &p, release: Some(&r), accrual: Some(&a) }).is_empty());
    }

    #[test]
    fn w5_a_withdrawn_participant_with_access_is_drift() {
        let p = participant(TrainingStatus::Withdrawn);
        let r = release(false, None);
        let a = accrual(payments::AccrualState::Ended);
        let found = differences(Views { participant: &p, release: Some(&r), accrual: Some(&a) });
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("granted"));
    }

    #[test]
    fn an_unenrolled_participant_and_an_enrolled_induction_coordinator_are_drift() {
        let p = participant(TrainingStatus::Active);
        assert_eq!(differences(Views { participant: &p, release: None, accrual: None }).len(), 2);
        let mut ic = participant(TrainingStatus::Active);
        ic.kind = ParticipantKind::InductionCoordinator as i32;
        assert!(differences(Views { participant: &ic, release: None, accrual: None }).is_empty());
        let r = release(false, None);
        assert_eq!(differences(Views { participant: &ic, release: Some(&r), accrual: None }).len(), 1);
    }
}
