//! W9: reinstate a withdrawn participant a DPL approved.

use super::{Command, Decision, has_programme};
use crate::domain::events::EventKind;
use crate::domain::view::ParticipantRecord;
use crate::domain::{RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// W9: a DPL approved reinstatement; access comes back and accrual reopens
/// from `on`, and release resumes where it stopped.
pub fn reinstate(
    p: &ParticipantRecord,
    request_id: &str,
    on: NaiveDate,
    caused_by: Option<&str>,
) -> Result<Decision, RuleViolation> {
    let timeline = p.timeline();
    if timeline.status_on(on) != TrainingStatus::Withdrawn {
        return Err(RuleViolation::new(
            "NOT_WITHDRAWN",
            format!("participant {} is not withdrawn on {on}: nothing to reinstate", p.id),
        )
        .with("participant_id", &p.id)
        .with("date", on)
        .with("status", timeline.status_on(on).name()));
    }
    let mut d = Decision::default();
    d.event(&p.id, on, EventKind::Reinstated { reinstated_on: on, request_id: request_id.to_owned() }, caused_by);
    if has_programme(p.kind) {
        d.commands.push(Command::RestoreAccess { participant_id: p.id.clone(), on });
        d.commands.push(Command::ReopenAccrual { participant_id: p.id.clone(), on });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn w9_reinstatement_restores_access_and_reopens_accrual() {
        let mut e = ect();
        let decided =
            withdraw(&e, left(WithdrawalReason::LeftRole, "2026-11-01"), None, &SchoolCircle::default(), d(TODAY))
                .expect("w");
        record(&mut e, &decided.events);
        let decision = reinstate(&e, "r1", d(TODAY), None).expect("reinstated");
        assert!(decision.commands.contains(&Command::RestoreAccess { participant_id: "ect".into(), on: d(TODAY) }));
        assert!(decision.commands.contains(&Command::ReopenAccrual { participant_id: "ect".into(), on: d(TODAY) }));
        let decided = decision;
        record(&mut e, &decided.events);
        assert_eq!(status(&e, TODAY), TrainingStatus::Active);
        assert_eq!(status(&e, "2026-11-27"), TrainingStatus::Withdrawn, "history is kept");
        assert_eq!(reinstate(&e, "r2", d(TODAY), None).expect_err("again").reason, "NOT_WITHDRAWN");
    }
}
