//! P1-P6: pause an ECT, extend the pause, or end it early.

use super::{Command, Decision, HoldKind, overlap, view};
use crate::domain::events::EventKind;
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

/// P2: the longest pause, in days.
pub const MAX_PAUSE_DAYS: i64 = 42;

fn status_word(status: TrainingStatus) -> &'static str {
    match status {
        TrainingStatus::Active => "active",
        TrainingStatus::Paused => "paused",
        TrainingStatus::Deferred => "deferred",
        TrainingStatus::Withdrawn => "withdrawn",
    }
}

/// P1-P3: pause an ECT for `[start, expected_end)`.
pub fn pause(
    ect: &ParticipantRecord,
    pause_id: String,
    start: NaiveDate,
    expected_end: NaiveDate,
    note: String,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    if ect.kind != ParticipantKind::Ect {
        let alongside = if ect.kind == ParticipantKind::Mentor {
            " (a mentor only alongside their paused ECT: name the ECT in alongside_ect_id, P1)"
        } else {
            " (never an induction coordinator, P1)"
        };
        return Err(RuleViolation::new(
            "PAUSE_ONLY_FOR_ECTS",
            format!(
                "participant {} is {}: only ECTs are paused{alongside}; for a mentor's absence assign a replacement mentor (M2) or make the induction coordinator the interim mentor (M3)",
                ect.id,
                ect.kind.describe()
            ),
        ).with("participant_id", &ect.id).with("kind", ect.kind.as_str().to_uppercase()));
    }
    let days = (expected_end - start).num_days();
    if days > MAX_PAUSE_DAYS {
        return Err(pause_too_long(&ect.id, days));
    }
    if start < today - chrono::Duration::days(MAX_PAUSE_DAYS) {
        return Err(RuleViolation::new(
            "PAUSE_START_TOO_EARLY",
            format!(
                "a pause may start at most {MAX_PAUSE_DAYS} days back (on or after {}): for a longer absence already under way ask the ECF Lead to defer the ECT",
                today - chrono::Duration::days(MAX_PAUSE_DAYS)
            ),
        ).with("participant_id", &ect.id).with("start_date", start).with("earliest_start", today - chrono::Duration::days(MAX_PAUSE_DAYS)).with("max_days_back", MAX_PAUSE_DAYS));
    }
    let timeline = ect.timeline();
    for date in [start, today.max(ect.registered_on)] {
        let status = view(ect, date)?.status;
        if status != TrainingStatus::Active {
            return Err(RuleViolation::new(
                "NOT_ACTIVE",
                format!("the ECT is {} on {date}: only an active ECT can be paused", status_word(status)),
            )
            .with("participant_id", &ect.id)
            .with("status", status.name())
            .with("date", date));
        }
    }
    if timeline.busy_between(start, expected_end) {
        return Err(overlap(start, expected_end));
    }
    let mut d = Decision::default();
    d.event(&ect.id, start, EventKind::Paused { pause_id: pause_id.clone(), start, expected_end, note }, None);
    d.commands.push(Command::PlaceHold {
        participant_id: ect.id.clone(),
        hold_id: pause_id,
        kind: HoldKind::Pause,
        from: start,
        until: expected_end,
    });
    Ok(d)
}

fn pause_too_long(participant_id: &str, days: i64) -> RuleViolation {
    RuleViolation::new(
        "PAUSE_TOO_LONG",
        format!(
            "a pause covers absences of up to 6 weeks ({MAX_PAUSE_DAYS} days) and this one is {days} days: for a longer absence the ECF Lead defers the ECT instead (DeferParticipant)"
        ),
    ).with("participant_id", participant_id).with("requested_days", days).with("max_days", MAX_PAUSE_DAYS)
}

fn no_open_pause(participant_id: &str, today: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "NO_OPEN_PAUSE",
        format!("the ECT has no pause in force or planned on {today}: pause them first"),
    )
    .with("participant_id", participant_id)
    .with("date", today)
}

/// P4: a later expected end, within 42 days in total.
pub fn extend_pause(
    ect: &ParticipantRecord,
    expected_end: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    let timeline = ect.timeline();
    let pause = timeline.open_pause(today).ok_or_else(|| no_open_pause(&ect.id, today))?.clone();
    if expected_end <= pause.end() {
        return Err(RuleViolation::new(
            "PAUSE_NOT_EXTENDED",
            format!("the pause already ends on {}: give a later date, or end it early with EndPause", pause.end()),
        )
        .with("participant_id", &ect.id)
        .with("pause_id", &pause.id)
        .with("expected_end", expected_end)
        .with("current_end", pause.end()));
    }
    let days = (expected_end - pause.start).num_days();
    if days > MAX_PAUSE_DAYS {
        return Err(pause_too_long(&ect.id, days));
    }
    let mut others = timeline.clone();
    others.pauses.retain(|p| p.id != pause.id);
    if others.busy_between(pause.end(), expected_end) {
        return Err(overlap(pause.end(), expected_end));
    }
    let mut d = Decision::default();
    d.event(&ect.id, today, EventKind::PauseExtended { pause_id: pause.id.clone(), expected_end }, None);
    d.commands.push(Command::PlaceHold {
        participant_id: ect.id.clone(),
        hold_id: pause.id,
        kind: HoldKind::Pause,
        from: pause.start,
        until: expected_end,
    });
    Ok(d)
}

/// P4, P6: end a pause early; `end_date` is the first day back.
pub fn end_pause(ect: &ParticipantRecord, end_date: NaiveDate, today: NaiveDate) -> Result<Decision, RuleViolation> {
    let timeline = ect.timeline();
    let pause = timeline.open_pause(today.min(end_date)).ok_or_else(|| no_open_pause(&ect.id, today))?.clone();
    if end_date < pause.start {
        return Err(RuleViolation::new(
            "PAUSE_END_BEFORE_START",
            format!("the pause starts on {}: end it on or after that date", pause.start),
        )
        .with("participant_id", &ect.id)
        .with("pause_id", &pause.id)
        .with("end_date", end_date)
        .with("pause_start", pause.start));
    }
    if end_date >= pause.end() {
        return Err(RuleViolation::new(
            "PAUSE_ALREADY_ENDS",
            format!("the pause already ends by itself on {}: nothing to end early", pause.end()),
        )
        .with("participant_id", &ect.id)
        .with("pause_id", &pause.id)
        .with("end_date", end_date)
        .with("pause_end", pause.end()));
    }
    let mut d = Decision::default();
    d.event(&ect.id, end_date, EventKind::PauseEnded { pause_id: pause.id.clone(), end: end_date }, None);
    d.commands.push(Command::LiftHold { participant_id: ect.id.clone(), hold_id: pause.id, on: end_date });
    Ok(d)
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn p1_only_an_ect_can_be_paused() {
        let m = person("m", ParticipantKind::Mentor, "2026-09-01");
        let err = pause(&m, "p".into(), d("2026-12-01"), d("2026-12-15"), String::new(), d(TODAY)).expect_err("mentor");
        assert_eq!(err.reason, "PAUSE_ONLY_FOR_ECTS");
        assert!(err.message.contains("replacement mentor"), "{}", err.message);
    }

    #[test]
    fn p2_a_pause_longer_than_six_weeks_is_refused_pointing_to_deferral() {
        let err =
            pause(&ect(), "p".into(), d("2026-12-01"), d("2027-01-26"), String::new(), d(TODAY)).expect_err("8 weeks");
        assert_eq!(err.reason, "PAUSE_TOO_LONG");
        assert!(err.message.contains("defer"), "{}", err.message);
        assert!(
            pause(&ect(), "p".into(), d("2026-12-01"), d("2027-01-12"), String::new(), d(TODAY)).is_ok(),
            "42 days is allowed"
        );
    }

    #[test]
    fn p3_a_pause_starts_from_active_today_or_later_or_at_most_42_days_back() {
        assert!(pause(&ect(), "p".into(), d("2026-10-17"), d("2026-11-28"), String::new(), d(TODAY)).is_ok());
        let err = pause(&ect(), "p".into(), d("2026-10-16"), d("2026-11-20"), String::new(), d(TODAY))
            .expect_err("43 days back");
        assert_eq!(err.reason, "PAUSE_START_TOO_EARLY");
        let mut e = ect();
        let decided = defer(&e, paternity(), ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        let err =
            pause(&e, "p".into(), d("2026-12-05"), d("2026-12-10"), String::new(), d(TODAY)).expect_err("deferred");
        assert_eq!(err.reason, "NOT_ACTIVE");
    }

    #[test]
    fn p4_a_pause_extends_within_42_days_ends_early_and_ends_by_itself() {
        let mut e = ect();
        let decided = pause(&e, "p".into(), d("2026-11-20"), d("2026-12-11"), String::new(), d(TODAY)).expect("paused");
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-12-10"), TrainingStatus::Paused);
        assert_eq!(status(&e, "2026-12-11"), TrainingStatus::Active, "ends by itself on its expected end date");
        assert_eq!(extend_pause(&e, d("2027-01-02"), d(TODAY)).expect_err("too long").reason, "PAUSE_TOO_LONG");
        let extended = extend_pause(&e, d("2027-01-01"), d(TODAY)).expect("extended");
        assert!(
            matches!(&extended.commands[..], [Command::PlaceHold { hold_id, until, .. }] if hold_id == "p" && *until == d("2027-01-01"))
        );
        let decided = extended;
        record(&mut e, &decided.events);
        let ended = end_pause(&e, d("2026-12-01"), d(TODAY)).expect("ended early");
        let decided = ended;
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-11-30"), TrainingStatus::Paused);
        assert_eq!(status(&e, "2026-12-01"), TrainingStatus::Active);
    }

    #[test]
    fn p5_a_pause_holds_release_and_tells_payments_nothing() {
        let decision =
            pause(&ect(), "p".into(), d("2026-12-01"), d("2026-12-15"), String::new(), d(TODAY)).expect("paused");
        assert_eq!(
            decision.commands,
            [Command::PlaceHold {
                participant_id: "ect".into(),
                hold_id: "p".into(),
                kind: HoldKind::Pause,
                from: d("2026-12-01"),
                until: d("2026-12-15")
            }]
        );
    }

    #[test]
    fn p6_ending_a_pause_lifts_the_hold_from_the_first_day_back() {
        let mut e = ect();
        let decided = pause(&e, "p".into(), d("2026-11-20"), d("2026-12-11"), String::new(), d(TODAY)).expect("paused");
        record(&mut e, &decided.events);
        let decision = end_pause(&e, d("2026-11-27"), d(TODAY)).expect("ended");
        assert_eq!(
            decision.commands,
            [Command::LiftHold { participant_id: "ect".into(), hold_id: "p".into(), on: d("2026-11-27") }]
        );
    }

    #[test]
    fn p7_pausing_an_ect_leaves_their_mentor_active() {
        let (e, _m) = pair();
        let decision =
            pause(&e, "p".into(), d("2026-12-01"), d("2026-12-15"), String::new(), d(TODAY)).expect("paused");
        assert!(decision.events.iter().all(|ev| ev.participant_id == "ect"));
    }
}
