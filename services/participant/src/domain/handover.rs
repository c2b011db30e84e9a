//! Who carries on when someone stops (DOMAIN.md version 2): a mentor paused
//! alongside their paused ECT (P1), the induction coordinator who replaces
//! one who leaves (W8), the mentor who comes back with a reinstated ECT
//! (W9), and a moved ECT's mentoring (S1). Pure decisions, like
//! `lifecycle`: events to record, commands to send, notifications to raise.

use super::events::{EventKind, NewEvent};
use super::lifecycle::{self, Decision, NewNotification, NotificationKind};
use super::registry::{self, Assignment};
use super::view::{ParticipantRecord, ParticipantView};
use super::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

mod mentor_pause;

pub use mentor_pause::{
    MentorPause, end_pauses_beyond_ect, extend_pause_alongside, open_pause_alongside, pause_alongside,
};

/// The last date an ECT's mentoring changed, if ever.
fn last_mentor_change(ect: &ParticipantRecord) -> Option<NaiveDate> {
    ect.events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::MentorAssigned { .. }
                    | EventKind::TemporaryMentorAssigned { .. }
                    | EventKind::MentorCoverEnded { .. }
                    | EventKind::MentoringEnded { .. }
            )
        })
        .map(|e| e.effective_date)
        .max()
}

/// W8: the replacement induction coordinator named for `leaving`.
pub fn check_replacement_induction_coordinator(
    leaving: &ParticipantRecord,
    replacement: &ParticipantRecord,
    withdrawal_date: NaiveDate,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    if leaving.kind != ParticipantKind::InductionCoordinator {
        return Err(RuleViolation::new(
            "REPLACEMENT_ONLY_FOR_INDUCTION_COORDINATORS",
            format!(
                "participant {} is {}: only an induction coordinator's withdrawal names a replacement (W8); leave replacement_induction_coordinator_id empty",
                leaving.id,
                leaving.kind.describe()
            ),
        ).with("participant_id", &leaving.id).with("kind", leaving.kind.as_str().to_uppercase()));
    }
    if replacement.id == leaving.id {
        return Err(RuleViolation::new(
            "REPLACEMENT_IS_THE_SAME_PERSON",
            "the replacement induction coordinator is the one being withdrawn: name another induction coordinator of the school",
        ).with("participant_id", &leaving.id).with("replacement_id", &replacement.id));
    }
    if replacement.kind != ParticipantKind::InductionCoordinator {
        return Err(RuleViolation::new(
            "REPLACEMENT_NOT_AN_INDUCTION_COORDINATOR",
            format!(
                "participant {} is {}: the replacement must be an induction coordinator of the same school, registered beforehand (W8)",
                replacement.id,
                replacement.kind.describe()
            ),
        ).with("participant_id", &leaving.id).with("replacement_id", &replacement.id).with("replacement_kind", replacement.kind.as_str().to_uppercase()));
    }
    let Some(then) = replacement.as_of(withdrawal_date) else {
        return Err(RuleViolation::new(
            "REPLACEMENT_NOT_YET_REGISTERED",
            format!(
                "induction coordinator {} was registered on {}, after the withdrawal date {withdrawal_date}: register the replacement beforehand (W8)",
                replacement.id, replacement.registered_on
            ),
        ).with("participant_id", &leaving.id).with("replacement_id", &replacement.id).with("replacement_registered_on", replacement.registered_on).with("withdrawal_date", withdrawal_date));
    };
    let now = replacement.as_of(today.max(withdrawal_date)).unwrap_or_else(|| then.clone());
    if then.status == TrainingStatus::Withdrawn || now.status == TrainingStatus::Withdrawn {
        return Err(RuleViolation::new(
            "REPLACEMENT_WITHDRAWN",
            format!("induction coordinator {} is withdrawn: name one who is still in post (W8)", replacement.id),
        )
        .with("participant_id", &leaving.id)
        .with("replacement_id", &replacement.id)
        .with("status", TrainingStatus::Withdrawn.name()));
    }
    let school = leaving.as_of(withdrawal_date).map(|v| v.school_id).unwrap_or_default();
    if then.school_id != school || now.school_id != school {
        return Err(RuleViolation::new(
            "REPLACEMENT_AT_ANOTHER_SCHOOL",
            format!(
                "induction coordinator {} is not at school {school}: the replacement must be an induction coordinator of the same school (W8)",
                replacement.id
            ),
        ).with("participant_id", &leaving.id).with("replacement_id", &replacement.id).with("school_id", &school));
    }
    Ok(())
}

/// W8, M2, M3: the covers `leaving` holds pass to `replacement` (an
/// induction coordinator's named replacement, who takes over at once), or
/// end, so the mentor of record coaches again, on the withdrawal date (or
/// the ECT's last mentor change, if later). `ects` are the school's ECTs.
pub fn covers_after_withdrawal(
    leaving: &ParticipantRecord,
    replacement: Option<&ParticipantRecord>,
    ects: &[ParticipantRecord],
    withdrawal_date: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<NewEvent>, RuleViolation> {
    let mut events = Vec::new();
    for ect in ects.iter().filter(|e| e.kind == ParticipantKind::Ect) {
        let Some(now) = ect.as_of(today) else { continue };
        let covered_by_leaving = now.mentor.as_ref().is_some_and(|(acting, _)| acting == &leaving.id)
            && now.mentor_of_record.as_deref() != Some(&leaving.id);
        if !covered_by_leaving || now.status == TrainingStatus::Withdrawn {
            continue;
        }
        let on = last_mentor_change(ect).map_or(withdrawal_date, |last| last.max(withdrawal_date));
        let handed = match replacement {
            Some(next) => registry::assign_mentor(ect, next, Assignment::InterimCover, on, today)?,
            None => registry::end_mentor_cover(ect, on, today)?,
        };
        events.extend(handed);
    }
    Ok(events)
}

/// W9: whether the mentor of record was withdrawn by the W6 cascade
/// because of this ECT and is still withdrawn on `on`.
fn withdrawn_with(ect: &ParticipantRecord, mentor: &ParticipantRecord, on: NaiveDate) -> bool {
    mentor.timeline().withdrawal_on(on).is_some_and(|w| w.cascaded_from.as_deref() == Some(ect.id.as_str()))
}

/// W9: a reinstatement request may bring back the mentor withdrawn with the
/// ECT only when there is one. `mentor` is the ECT's mentor of record.
pub fn check_reinstate_with_mentor(
    ect: &ParticipantRecord,
    mentor: Option<&ParticipantRecord>,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    if ect.kind != ParticipantKind::Ect {
        return Err(RuleViolation::new(
            "WITH_MENTOR_ONLY_FOR_ECTS",
            format!(
                "participant {} is {}: only an ECT's reinstatement brings back a mentor (W9)",
                ect.id,
                ect.kind.describe()
            ),
        )
        .with("participant_id", &ect.id)
        .with("kind", ect.kind.as_str().to_uppercase()));
    }
    if mentor.is_some_and(|m| withdrawn_with(ect, m, today)) {
        return Ok(());
    }
    Err(RuleViolation::new(
        "NO_MENTOR_WITHDRAWN_WITH_ECT",
        format!(
            "no mentor of ECT {} is withdrawn because of their withdrawal (W6): request the reinstatement without with_mentor",
            ect.id
        ),
    ).with("participant_id", &ect.id).with_some("mentor_id", mentor.map(|m| &m.id)))
}

/// W9, on approval of an ECT's reinstatement on `on`: the mentor the W6
/// cascade withdrew with them comes back too when the request said so (the
/// same approval, the same day), and is their mentor again; otherwise an
/// ECT with no current mentor comes back without one and the ECF Lead is
/// told to assign one. `mentor` is the ECT's mentor of record.
pub fn after_reinstatement(
    ect: &ParticipantRecord,
    mentor: Option<&ParticipantRecord>,
    with_mentor: bool,
    request_id: &str,
    on: NaiveDate,
) -> Result<Decision, RuleViolation> {
    let mut d = Decision::default();
    if ect.kind != ParticipantKind::Ect {
        return Ok(d);
    }
    if with_mentor && let Some(mentor) = mentor.filter(|m| withdrawn_with(ect, m, on)) {
        let back = lifecycle::reinstate(mentor, request_id, on, Some(&ect.id))?;
        d.events.extend(back.events);
        d.commands.extend(back.commands);
        return Ok(d);
    }
    let mentored = mentor.is_some_and(|m| m.timeline().status_on(on) != TrainingStatus::Withdrawn);
    if !mentored && let Some(view) = ect.as_of(on) {
        d.notifications.push(NewNotification {
            kind: NotificationKind::EctWithoutMentor,
            delivery_partner_id: view.delivery_partner_id.clone(),
            school_id: view.school_id.clone(),
            message: format!("ECT {} is reinstated from {on} without a mentor (W9): assign them one", ect.id),
        });
    }
    Ok(d)
}

/// W9: a withdrawn mentor is never shown as a current mentor. `withdrawn`
/// answers whether a participant is withdrawn on the view's date; a cover
/// whose holder is withdrawn falls back to the mentor of record.
pub fn hide_withdrawn_mentors(view: &mut ParticipantView, withdrawn: impl Fn(&str) -> bool) {
    if view.mentor_of_record.as_deref().is_some_and(&withdrawn) {
        view.mentor_of_record = None;
    }
    if view.mentor.as_ref().is_some_and(|(acting, _)| withdrawn(acting)) {
        view.mentor = view.mentor_of_record.clone().map(|m| (m, false));
    }
}

/// S1: a moved ECT's mentoring ends on the move date (or their last mentor
/// change, if later) unless the ECF Lead keeps the mentor; an interim cover
/// by the old school's induction coordinator ends either way. Answers the
/// events and the mentor of record who stopped mentoring the ECT, if any.
pub fn mentoring_after_move(
    p: &ParticipantRecord,
    moved_on: NaiveDate,
    keep_mentor: bool,
    today: NaiveDate,
) -> Result<(Vec<NewEvent>, Option<String>), RuleViolation> {
    if p.kind != ParticipantKind::Ect {
        if keep_mentor {
            return Err(RuleViolation::new(
                "KEEP_MENTOR_ONLY_FOR_ECTS",
                format!("participant {} is {}: only an ECT keeps a mentor across a move (S1)", p.id, p.kind.describe()),
            )
            .with("participant_id", &p.id)
            .with("kind", p.kind.as_str().to_uppercase())
            .with("moved_on", moved_on));
        }
        return Ok((Vec::new(), None));
    }
    let Some(now) = p.as_of(today.max(moved_on)) else { return Ok((Vec::new(), None)) };
    let on = last_mentor_change(p).map_or(moved_on, |last| last.max(moved_on));
    let event = |participant_id: &str, kind: EventKind| NewEvent {
        participant_id: participant_id.to_owned(),
        effective_date: on,
        kind,
        caused_by: None,
    };
    let acting = now.mentor.clone();
    let mut events = Vec::new();
    if keep_mentor {
        if let Some((ic, true)) = acting {
            events.push(event(&p.id, EventKind::MentorCoverEnded { mentor_id: ic.clone() }));
            events.push(event(&ic, EventKind::MenteeUnassigned { ect_id: p.id.clone() }));
        }
        return Ok((events, None));
    }
    if acting.is_none() && now.mentor_of_record.is_none() {
        return Ok((events, None));
    }
    events.push(event(&p.id, EventKind::MentoringEnded { mentor_id: now.mentor_of_record.clone() }));
    let mut stopping: Vec<String> = acting.map(|(id, _)| id).into_iter().collect();
    stopping.extend(now.mentor_of_record.clone().filter(|m| !stopping.contains(m)));
    for mentor in stopping {
        events.push(event(&mentor, EventKind::MenteeUnassigned { ect_id: p.id.clone() }));
    }
    Ok((events, now.mentor_of_record))
}

#[cfg(test)]
mod tests;
