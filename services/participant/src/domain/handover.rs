//! Who carries on when someone stops (DOMAIN.md version 2): a mentor paused
//! alongside their paused ECT (P1), the induction coordinator who replaces
//! one who leaves (W8), the mentor who comes back with a reinstated ECT
//! (W9), and a moved ECT's mentoring (S1). Pure decisions, like
//! `lifecycle`: events to record, commands to send, notifications to raise.

use super::events::{EventKind, NewEvent};
use super::lifecycle::{self, Command, Decision, HoldKind, NewNotification, NotificationKind};
use super::registry::{self, Assignment};
use super::view::{ParticipantRecord, ParticipantView};
use super::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// A validated request to pause a mentor alongside their ECT (P1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentorPause {
    pub pause_id: String,
    pub start: NaiveDate,
    pub expected_end: NaiveDate,
    pub note: String,
}

/// The days `[from, until)`, one by one (a pause is at most 42 of them).
fn days(from: NaiveDate, until: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d < until)
}

/// P1: `mentor` is the ECT's mentor of record (M5) on every day of `[from, until)`.
fn check_their_ect(
    mentor: &ParticipantRecord,
    ect: &ParticipantRecord,
    from: NaiveDate,
    until: NaiveDate,
) -> Result<(), RuleViolation> {
    let timeline = ect.timeline();
    if let Some(day) = days(from, until).find(|d| timeline.mentors_on(*d).of_record.as_deref() != Some(&mentor.id)) {
        return Err(RuleViolation::new(
            "NOT_THEIR_ECT",
            format!(
                "mentor {} is not ECT {}'s mentor of record on {day}: a mentor is paused only alongside an ECT they mentor (P1)",
                mentor.id, ect.id
            ),
        ));
    }
    Ok(())
}

/// P1: `[from, until)` lies within one of the ECT's pauses.
fn check_within_ect_pause(ect: &ParticipantRecord, from: NaiveDate, until: NaiveDate) -> Result<(), RuleViolation> {
    let timeline = ect.timeline();
    if timeline.pauses.iter().any(|p| p.end() > p.start && p.start <= from && until <= p.end()) {
        return Ok(());
    }
    let theirs = timeline
        .pauses
        .iter()
        .filter(|p| p.end() > p.start && p.start < until && from < p.end())
        .map(|p| format!(" (ECT {}'s pause runs from {} to {})", ect.id, p.start, p.end()))
        .next()
        .unwrap_or_else(|| format!(" (ECT {} has no pause then: pause the ECT first)", ect.id));
    Err(RuleViolation::new(
        "OUTSIDE_ECT_PAUSE",
        format!(
            "a mentor's pause from {from} to {until} must lie within their ECT's pause{theirs}: a mentor's pause never outlasts the ECT's (P1)"
        ),
    ))
}

/// P1: on no day of `[from, until)` does the mentor have another ECT of
/// record in training (not withdrawn; a deferred ECT is in training).
fn check_no_other_ect(
    mentor: &ParticipantRecord,
    ect_id: &str,
    others: &[ParticipantRecord],
    from: NaiveDate,
    until: NaiveDate,
) -> Result<(), RuleViolation> {
    for other in others.iter().filter(|o| o.kind == ParticipantKind::Ect && o.id != ect_id) {
        let timeline = other.timeline();
        let busy = days(from, until).find(|d| {
            other.registered_on <= *d
                && timeline.mentors_on(*d).of_record.as_deref() == Some(&mentor.id)
                && timeline.status_on(*d) != TrainingStatus::Withdrawn
        });
        if let Some(day) = busy {
            return Err(RuleViolation::new(
                "MENTOR_HAS_OTHER_ECT_IN_TRAINING",
                format!(
                    "mentor {} also mentors ECT {} on {day}, who is in training: a mentor is paused only while they mentor no other ECT in training (P1); cover the absence with a replacement mentor (M2) instead",
                    mentor.id, other.id
                ),
            ));
        }
    }
    Ok(())
}

/// P1: pause a mentor alongside their paused ECT. `others` are the other
/// ECTs the mentor was ever assigned. The mentor's release is held like an
/// ECT's (P6); accrual continues (P5), so only a hold is sent.
pub fn pause_alongside(
    mentor: &ParticipantRecord,
    ect: &ParticipantRecord,
    others: &[ParticipantRecord],
    request: MentorPause,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    match mentor.kind {
        ParticipantKind::Mentor => {}
        ParticipantKind::Ect => {
            return Err(RuleViolation::new(
                "ALONGSIDE_ONLY_FOR_MENTORS",
                format!(
                    "participant {} is an ECT: an ECT is paused on their own, leave alongside_ect_id empty",
                    mentor.id
                ),
            ));
        }
        ParticipantKind::InductionCoordinator => return Err(induction_coordinator_never_paused(&mentor.id)),
    }
    if ect.kind != ParticipantKind::Ect {
        return Err(RuleViolation::new(
            "NOT_AN_ECT",
            format!(
                "participant {} is {}: a mentor is paused alongside an ECT they mentor",
                ect.id,
                ect.kind.describe()
            ),
        ));
    }
    let MentorPause { pause_id, start, expected_end, note } = request;
    let days_long = (expected_end - start).num_days();
    if days_long > lifecycle::MAX_PAUSE_DAYS {
        return Err(RuleViolation::new(
            "PAUSE_TOO_LONG",
            format!("a pause covers absences of up to 6 weeks (42 days) and this one is {days_long} days"),
        ));
    }
    let earliest = today - chrono::Duration::days(lifecycle::MAX_PAUSE_DAYS);
    if start < earliest {
        return Err(RuleViolation::new(
            "PAUSE_START_TOO_EARLY",
            format!("a pause may start at most 42 days back (on or after {earliest})"),
        ));
    }
    check_their_ect(mentor, ect, start, expected_end)?;
    check_within_ect_pause(ect, start, expected_end)?;
    check_no_other_ect(mentor, &ect.id, others, start, expected_end)?;
    let timeline = mentor.timeline();
    for date in [start, today.max(mentor.registered_on)] {
        let status = timeline.status_on(date);
        if status != TrainingStatus::Active {
            return Err(RuleViolation::new(
                "NOT_ACTIVE",
                format!("mentor {} is not active on {date}: only an active mentor can be paused", mentor.id),
            ));
        }
    }
    if timeline.busy_between(start, expected_end) {
        return Err(RuleViolation::new(
            "OVERLAPS_ANOTHER_ABSENCE",
            format!(
                "another pause, deferral or withdrawal of mentor {} already falls between {start} and {expected_end}",
                mentor.id
            ),
        ));
    }
    let mut d = Decision::default();
    d.events.push(NewEvent {
        participant_id: mentor.id.clone(),
        effective_date: start,
        kind: EventKind::PausedAlongside {
            pause_id: pause_id.clone(),
            start,
            expected_end,
            note,
            ect_id: ect.id.clone(),
        },
        caused_by: None,
    });
    d.commands.push(Command::PlaceHold {
        participant_id: mentor.id.clone(),
        hold_id: pause_id,
        kind: HoldKind::Pause,
        from: start,
        until: expected_end,
    });
    Ok(d)
}

fn induction_coordinator_never_paused(id: &str) -> RuleViolation {
    RuleViolation::new(
        "PAUSE_ONLY_FOR_ECTS",
        format!(
            "participant {id} is an induction coordinator: induction coordinators are never paused (P1); only ECTs, and mentors alongside their ECT, are"
        ),
    )
}

/// The ECT a mentor's open pause goes alongside (P1), if it does.
pub fn open_pause_alongside(mentor: &ParticipantRecord, today: NaiveDate) -> Option<String> {
    mentor.timeline().open_pause(today).and_then(|p| p.alongside.clone())
}

/// P1, P4: a mentor's pause is extended within their ECT's pause, while
/// they still mentor no other ECT in training; then as any pause (P4).
pub fn extend_pause_alongside(
    mentor: &ParticipantRecord,
    ect: &ParticipantRecord,
    others: &[ParticipantRecord],
    expected_end: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    if let Some(pause) = mentor.timeline().open_pause(today).filter(|p| expected_end > p.end()) {
        check_within_ect_pause(ect, pause.start, expected_end)?;
        check_their_ect(mentor, ect, pause.end(), expected_end)?;
        check_no_other_ect(mentor, &ect.id, others, pause.end(), expected_end)?;
    }
    lifecycle::extend_pause(mentor, expected_end, today)
}

/// P1: a mentor's pause never outlasts their ECT's. After any change to the
/// ECT (an early end, P4; a deferral, P8; a withdrawal, W4), the mentor's
/// pauses alongside it end on the day the ECT's does (one not begun by then
/// is cancelled on its first day).
pub fn end_pauses_beyond_ect(mentor: &ParticipantRecord, ect: &ParticipantRecord) -> Decision {
    let ect_pauses = ect.timeline().pauses;
    let mut d = Decision::default();
    for pause in mentor.timeline().pauses {
        if pause.alongside.as_deref() != Some(ect.id.as_str()) || pause.end() <= pause.start {
            continue;
        }
        let ect_end = ect_pauses.iter().filter(|p| p.start <= pause.start).max_by_key(|p| p.start).map(|p| p.end());
        let end = ect_end.unwrap_or(pause.start).max(pause.start);
        if end >= pause.end() {
            continue;
        }
        d.events.push(NewEvent {
            participant_id: mentor.id.clone(),
            effective_date: end,
            kind: EventKind::PauseEnded { pause_id: pause.id.clone(), end },
            caused_by: Some(ect.id.clone()),
        });
        d.commands.push(Command::LiftHold { participant_id: mentor.id.clone(), hold_id: pause.id, on: end });
    }
    d
}

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
        ));
    }
    if replacement.id == leaving.id {
        return Err(RuleViolation::new(
            "REPLACEMENT_IS_THE_SAME_PERSON",
            "the replacement induction coordinator is the one being withdrawn: name another induction coordinator of the school",
        ));
    }
    if replacement.kind != ParticipantKind::InductionCoordinator {
        return Err(RuleViolation::new(
            "REPLACEMENT_NOT_AN_INDUCTION_COORDINATOR",
            format!(
                "participant {} is {}: the replacement must be an induction coordinator of the same school, registered beforehand (W8)",
                replacement.id,
                replacement.kind.describe()
            ),
        ));
    }
    let Some(then) = replacement.as_of(withdrawal_date) else {
        return Err(RuleViolation::new(
            "REPLACEMENT_NOT_YET_REGISTERED",
            format!(
                "induction coordinator {} was registered on {}, after the withdrawal date {withdrawal_date}: register the replacement beforehand (W8)",
                replacement.id, replacement.registered_on
            ),
        ));
    };
    let now = replacement.as_of(today.max(withdrawal_date)).unwrap_or_else(|| then.clone());
    if then.status == TrainingStatus::Withdrawn || now.status == TrainingStatus::Withdrawn {
        return Err(RuleViolation::new(
            "REPLACEMENT_WITHDRAWN",
            format!("induction coordinator {} is withdrawn: name one who is still in post (W8)", replacement.id),
        ));
    }
    let school = leaving.as_of(withdrawal_date).map(|v| v.school_id).unwrap_or_default();
    if then.school_id != school || now.school_id != school {
        return Err(RuleViolation::new(
            "REPLACEMENT_AT_ANOTHER_SCHOOL",
            format!(
                "induction coordinator {} is not at school {school}: the replacement must be an induction coordinator of the same school (W8)",
                replacement.id
            ),
        ));
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
        ));
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
    ))
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
            ));
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
