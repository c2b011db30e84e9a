//! P1: a mentor paused alongside their paused ECT, within the ECT's pause
//! and only while they mentor no other ECT in training.

use crate::domain::events::{EventKind, NewEvent};
use crate::domain::lifecycle::{self, Command, Decision, HoldKind};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
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
        ).with("participant_id", &mentor.id).with("ect_id", &ect.id).with("date", day));
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
    ).with("participant_id", &ect.id).with("start_date", from).with("expected_end", until))
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
            ).with("participant_id", &mentor.id).with("ect_id", ect_id).with("other_ect_id", &other.id).with("date", day));
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
            )
            .with("participant_id", &mentor.id)
            .with("kind", mentor.kind.as_str().to_uppercase()));
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
        )
        .with("participant_id", &mentor.id)
        .with("ect_id", &ect.id)
        .with("ect_kind", ect.kind.as_str().to_uppercase()));
    }
    let MentorPause { pause_id, start, expected_end, note } = request;
    let days_long = (expected_end - start).num_days();
    if days_long > lifecycle::MAX_PAUSE_DAYS {
        return Err(RuleViolation::new(
            "PAUSE_TOO_LONG",
            format!("a pause covers absences of up to 6 weeks (42 days) and this one is {days_long} days"),
        )
        .with("participant_id", &mentor.id)
        .with("ect_id", &ect.id)
        .with("requested_days", days_long)
        .with("max_days", lifecycle::MAX_PAUSE_DAYS));
    }
    let earliest = today - chrono::Duration::days(lifecycle::MAX_PAUSE_DAYS);
    if start < earliest {
        return Err(RuleViolation::new(
            "PAUSE_START_TOO_EARLY",
            format!("a pause may start at most 42 days back (on or after {earliest})"),
        )
        .with("participant_id", &mentor.id)
        .with("start_date", start)
        .with("earliest_start", earliest)
        .with("max_days_back", lifecycle::MAX_PAUSE_DAYS));
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
            )
            .with("participant_id", &mentor.id)
            .with("status", status.name())
            .with("date", date));
        }
    }
    if timeline.busy_between(start, expected_end) {
        return Err(RuleViolation::new(
            "OVERLAPS_ANOTHER_ABSENCE",
            format!(
                "another pause, deferral or withdrawal of mentor {} already falls between {start} and {expected_end}",
                mentor.id
            ),
        )
        .with("participant_id", &mentor.id)
        .with("from", start)
        .with("until", expected_end));
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
    ).with("participant_id", id).with("kind", "INDUCTION_COORDINATOR")
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
