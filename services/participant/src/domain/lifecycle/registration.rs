//! C1, C2: enrol a new participant with both services, and change their
//! release start when a DPL approves it.

use super::{Command, Decision, Programme, has_programme, view, withdrawn};
use crate::domain::events::EventKind;
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// Registration (C1): enrol ECTs and mentors with both services; S2 when the
/// school's area is not covered.
pub fn enrol(p: &ParticipantRecord) -> Result<Decision, RuleViolation> {
    let v = view(p, p.registered_on)?;
    let mut d = Decision::default();
    let (Some(enrolment), true) = (v.enrolment, has_programme(p.kind)) else {
        return Ok(d);
    };
    let programme = if p.kind == ParticipantKind::Ect { Programme::Ect } else { Programme::Mentor };
    d.commands.push(Command::EnrolLearner {
        participant_id: p.id.clone(),
        programme,
        release_start: enrolment.release_start,
        school_id: v.school_id.clone(),
        delivery_partner_id: v.delivery_partner_id.clone(),
    });
    d.commands.push(Command::EnrolPayee {
        participant_id: p.id.clone(),
        kind: p.kind,
        delivery_partner_id: v.delivery_partner_id.clone(),
        school_id: v.school_id.clone(),
        schedule: enrolment.schedule.schedule_id().to_owned(),
        cohort: enrolment.cohort,
        funding_eligible: v.funding_eligible(),
    });
    if !v.area_covered {
        d.commands.push(Command::SetAreaCovered {
            participant_id: p.id.clone(),
            covered: false,
            from: p.registered_on,
        });
    }
    Ok(d)
}

/// C2: a DPL approved a different release start.
pub fn change_release_start(
    p: &ParticipantRecord,
    request_id: &str,
    release_start: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    let v = view(p, today.max(p.registered_on))?;
    let Some(enrolment) = v.enrolment.filter(|_| has_programme(p.kind)) else {
        return Err(RuleViolation::new("NO_PROGRAMME", "an induction coordinator has no release schedule")
            .with("participant_id", &p.id)
            .with("kind", p.kind.as_str().to_uppercase()));
    };
    if v.status == TrainingStatus::Withdrawn {
        return Err(withdrawn(today));
    }
    if enrolment.release_start == release_start {
        return Err(RuleViolation::new(
            "RELEASE_START_UNCHANGED",
            format!("the release already starts on {release_start}"),
        )
        .with("participant_id", &p.id)
        .with("release_start", release_start));
    }
    let mut d = Decision::default();
    d.event(
        &p.id,
        today.max(p.registered_on),
        EventKind::ReleaseStartChanged { release_start, request_id: request_id.to_owned() },
        None,
    );
    d.commands.push(Command::SetReleaseStart { participant_id: p.id.clone(), release_start });
    Ok(d)
}

/// Checks a release-start change can be asked for (C2), before a DPL decides.
pub fn check_release_start_request(
    p: &ParticipantRecord,
    release_start: NaiveDate,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    change_release_start(p, "", release_start, today).map(|_| ())
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn c1_registration_enrols_with_both_services_and_an_ic_with_neither() {
        let decision = enrol(&ect()).expect("enrolled");
        assert!(matches!(&decision.commands[..], [Command::EnrolLearner { .. }, Command::EnrolPayee { .. }]));
        assert!(
            enrol(&person("ic", ParticipantKind::InductionCoordinator, "2026-09-01")).expect("ic").commands.is_empty()
        );
    }

    #[test]
    fn c2_an_approved_release_start_is_sent_to_content_release() {
        let decision = change_release_start(&ect(), "r", d("2026-10-01"), d(TODAY)).expect("changed");
        assert_eq!(
            decision.commands,
            [Command::SetReleaseStart { participant_id: "ect".into(), release_start: d("2026-10-01") }]
        );
        let ic = person("ic", ParticipantKind::InductionCoordinator, "2026-09-01");
        assert_eq!(change_release_start(&ic, "r", d("2026-10-01"), d(TODAY)).expect_err("ic").reason, "NO_PROGRAMME");
    }
}
