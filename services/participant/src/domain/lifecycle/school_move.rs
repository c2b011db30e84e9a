//! S1, S2: move a participant to another school.

use super::{Command, Decision, has_programme, view, withdrawn};
use crate::domain::events::EventKind;
use crate::domain::view::ParticipantRecord;
use crate::domain::{RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// The school a participant moves to (S1, S2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub school_id: String,
    pub delivery_partner_id: String,
    pub area_covered: bool,
}

/// S1, S2: move to another school from `moved_on`, keeping programme and
/// history; payments hear when the area's coverage changes.
pub fn move_school(
    p: &ParticipantRecord,
    to: &Destination,
    moved_on: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    if moved_on > today {
        return Err(RuleViolation::new(
            "MOVE_DATE_IN_FUTURE",
            format!("{moved_on} is after today ({today}): record the move on or after the day it happens"),
        )
        .with("participant_id", &p.id)
        .with("moved_on", moved_on)
        .with("today", today));
    }
    let before = view(p, moved_on)?;
    if before.status == TrainingStatus::Withdrawn || p.timeline().status_on(today) == TrainingStatus::Withdrawn {
        return Err(withdrawn(moved_on));
    }
    if before.school_id == to.school_id {
        return Err(RuleViolation::new(
            "SAME_SCHOOL",
            format!("the participant is already at school {} on {moved_on}", to.school_id),
        )
        .with("participant_id", &p.id)
        .with("school_id", &to.school_id)
        .with("moved_on", moved_on));
    }
    let last_move = p
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::SchoolMoved { .. } | EventKind::Registered { .. }))
        .map(|e| e.effective_date)
        .max();
    if let Some(last) = last_move.filter(|last| moved_on < *last) {
        return Err(RuleViolation::new(
            "BEFORE_LAST_MOVE",
            format!("the participant's school last changed on {last}: a move must be on or after it"),
        )
        .with("participant_id", &p.id)
        .with("moved_on", moved_on)
        .with("last_move", last));
    }
    let mut d = Decision::default();
    d.event(
        &p.id,
        moved_on,
        EventKind::SchoolMoved {
            school_id: to.school_id.clone(),
            delivery_partner_id: to.delivery_partner_id.clone(),
            area_covered: to.area_covered,
        },
        None,
    );
    if has_programme(p.kind) {
        let scope = |content: bool| {
            let (participant_id, school_id, delivery_partner_id) =
                (p.id.clone(), to.school_id.clone(), to.delivery_partner_id.clone());
            if content {
                Command::ContentScope { participant_id, school_id, delivery_partner_id, from: moved_on }
            } else {
                Command::PaymentsScope { participant_id, school_id, delivery_partner_id, from: moved_on }
            }
        };
        d.commands.push(scope(true));
        d.commands.push(scope(false));
        if before.area_covered != to.area_covered {
            d.commands.push(Command::SetAreaCovered {
                participant_id: p.id.clone(),
                covered: to.area_covered,
                from: moved_on,
            });
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn s1_a_move_keeps_the_programme_and_history_and_rescopes_both_services() {
        let mut e = ect();
        let to = Destination { school_id: "s2".into(), delivery_partner_id: "dp2".into(), area_covered: true };
        let decision = move_school(&e, &to, d("2026-11-01"), d(TODAY)).expect("moved");
        assert!(
            decision.commands.iter().any(|c| matches!(c, Command::ContentScope { school_id, .. } if school_id == "s2"))
        );
        assert!(
            decision.commands.iter().any(
                |c| matches!(c, Command::PaymentsScope { delivery_partner_id, .. } if delivery_partner_id == "dp2")
            )
        );
        let decided = decision;
        record(&mut e, &decided.events);
        assert_eq!(e.as_of(d("2026-10-31")).expect("v").school_id, "s1");
        assert_eq!(e.as_of(d("2026-11-01")).expect("v").school_id, "s2");
        assert_eq!(move_school(&e, &to, d(TODAY), d(TODAY)).expect_err("same").reason, "SAME_SCHOOL");
    }

    #[test]
    fn s2_a_move_into_an_uncovered_area_stops_output_payments_from_the_move_date() {
        let to = Destination { school_id: "s2".into(), delivery_partner_id: "dp1".into(), area_covered: false };
        let decision = move_school(&ect(), &to, d("2026-11-01"), d(TODAY)).expect("moved");
        assert!(decision.commands.contains(&Command::SetAreaCovered {
            participant_id: "ect".into(),
            covered: false,
            from: d("2026-11-01")
        }));
    }
}
