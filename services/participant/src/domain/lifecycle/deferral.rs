//! D1-D4, D8, D10, D13, P8: defer an ECT, and check an extended deferral
//! (D3) can be asked for.

use super::{Command, Decision, HoldKind, MAX_PAUSE_DAYS, not_yet_registered, overlap, view, withdrawn};
use crate::domain::events::{DeferralReason, EventKind};
use crate::domain::view::{ParticipantRecord, PauseSpan, Timeline};
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::{Months, NaiveDate};

/// D3: the longest deferral, in months.
pub const MAX_DEFERRAL_MONTHS: u32 = 12;
/// D13: a deferral must last longer than this many days (a shorter absence is a pause).
pub const MIN_DEFERRAL_DAYS: i64 = 42;

/// A validated deferral request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub reason: DeferralReason,
    pub deferral_date: NaiveDate,
    pub expected_return: NaiveDate,
    pub note: String,
}

/// D1-D3, D8, D10, D13, P8: defer an ECT. Their mentor's deferral is not
/// decided here: it is derived from the ECTs' deferrals afterwards (D9, see
/// `mentoring`).
pub fn defer(
    ect: &ParticipantRecord,
    request: Deferral,
    new_id: impl FnOnce() -> String,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    defer_within(ect, request, None, new_id, today)
}

/// [`defer`] for an ECT a DPL approved an extended deferral for (D3,
/// `LONG_DEFERRAL`): the return may then be as late as
/// `approved_latest_return` when that is later than 12 months.
pub fn defer_within(
    ect: &ParticipantRecord,
    request: Deferral,
    approved_latest_return: Option<NaiveDate>,
    new_id: impl FnOnce() -> String,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    match ect.kind {
        ParticipantKind::Ect => {}
        ParticipantKind::Mentor => {
            return Err(RuleViolation::new(
                "MENTOR_CANNOT_BE_DEFERRED",
                "a mentor is not deferred directly (D10): cover their absence with a replacement mentor (AssignMentor) or an interim mentor; a mentor follows their ECT's deferral automatically",
            ).with("participant_id", &ect.id).with("kind", ect.kind.as_str().to_uppercase()));
        }
        ParticipantKind::InductionCoordinator => {
            return Err(RuleViolation::new(
                "DEFERRAL_ONLY_FOR_ECTS",
                "an induction coordinator has no programme to defer",
            )
            .with("participant_id", &ect.id)
            .with("kind", ect.kind.as_str().to_uppercase()));
        }
    }
    check_return_within(request.deferral_date, request.expected_return, approved_latest_return)?;
    if request.deferral_date < ect.registered_on {
        return Err(not_yet_registered(ect, request.deferral_date));
    }
    check_long_enough(ect, &request)?;
    let timeline = ect.timeline();
    check_can_defer(&timeline, request.deferral_date, request.expected_return, today.max(ect.registered_on))?;
    let mut d = Decision::default();
    // P8: a pause not over by the deferral date ends on it (one planned
    // inside the deferral is cancelled); a pause planned after the return
    // stays.
    let replaced =
        |p: &&PauseSpan| p.end() > request.deferral_date && p.end() > p.start && p.start < request.expected_return;
    for pause in timeline.pauses.iter().filter(replaced) {
        let end = request.deferral_date.max(pause.start);
        d.event(&ect.id, end, EventKind::PauseEnded { pause_id: pause.id.clone(), end }, None);
        d.commands.push(Command::LiftHold { participant_id: ect.id.clone(), hold_id: pause.id.clone(), on: end });
    }
    defer_one(&mut d, ect, new_id(), &request);
    Ok(d)
}

/// D3: a return at most 12 months after the deferral date, or up to the
/// latest return date a DPL approved (`LONG_DEFERRAL`) when that is later.
pub(super) fn check_return_within(
    deferral_date: NaiveDate,
    expected_return: NaiveDate,
    approved_latest_return: Option<NaiveDate>,
) -> Result<(), RuleViolation> {
    let twelve_months = add_months(deferral_date, MAX_DEFERRAL_MONTHS);
    let latest = approved_latest_return.map_or(twelve_months, |approved| approved.max(twelve_months));
    if expected_return <= latest {
        return Ok(());
    }
    let message = if latest > twelve_months {
        format!(
            "the extended deferral a DPL approved allows a return on or before {latest}; {expected_return} is later: agree an earlier return date, or ask a DPL to approve a later one (RequestLongDeferral)"
        )
    } else {
        format!(
            "a return date is normally at most 12 months after the deferral date {deferral_date}, so on or before {latest}: for a longer absence the ECF Lead asks a DPL to approve an extended deferral (RequestLongDeferral, D3), or agrees an earlier return date and changes it later (ChangeReturnDate)"
        )
    };
    Err(RuleViolation::new("RETURN_DATE_TOO_FAR", message)
        .with("deferral_date", deferral_date)
        .with("return_date", expected_return)
        .with("latest_return_date", latest)
        .with("max_months", MAX_DEFERRAL_MONTHS)
        .with_some("approved_latest_return_date", approved_latest_return))
}

/// D13: a deferral is for an absence of more than 6 weeks; a shorter one is a
/// pause. D8: a participant whose programme has not started yet on the
/// deferral date (before their release start) may be deferred for any
/// length, to their restart date.
fn check_long_enough(ect: &ParticipantRecord, request: &Deferral) -> Result<(), RuleViolation> {
    let days = (request.expected_return - request.deferral_date).num_days();
    if days > MIN_DEFERRAL_DAYS {
        return Ok(());
    }
    let not_started =
        view(ect, request.deferral_date)?.enrolment.is_some_and(|e| request.deferral_date < e.release_start);
    if not_started {
        return Ok(());
    }
    Err(RuleViolation::new(
        "DEFERRAL_TOO_SHORT",
        format!(
            "a return on {} is {days} days after the deferral date {}: a deferral is for an absence of more than 6 weeks (D13), so pause the ECT instead (PauseParticipant, up to {MAX_PAUSE_DAYS} days), or give a return date after {}",
            request.expected_return,
            request.deferral_date,
            request
                .deferral_date
                .checked_add_days(chrono::Days::new(MIN_DEFERRAL_DAYS.unsigned_abs()))
                .unwrap_or(NaiveDate::MAX),
        ),
    ).with("participant_id", &ect.id).with("deferral_date", request.deferral_date).with("return_date", request.expected_return).with("days", days).with("min_days", MIN_DEFERRAL_DAYS + 1))
}

fn check_can_defer(
    timeline: &Timeline,
    from: NaiveDate,
    until: NaiveDate,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    for date in [from, today] {
        match timeline.status_on(date) {
            TrainingStatus::Active | TrainingStatus::Paused => {}
            TrainingStatus::Deferred => {
                return Err(RuleViolation::new(
                    "ALREADY_DEFERRED",
                    format!(
                        "the participant is already deferred on {date}: change that deferral's return date instead (ChangeReturnDate)"
                    ),
                ).with("status", TrainingStatus::Deferred.name()).with("date", date).with("requested_deferral_date", from).with("requested_return_date", until));
            }
            TrainingStatus::Withdrawn => return Err(withdrawn(date)),
        }
    }
    let mut without_pauses = timeline.clone();
    without_pauses.pauses.clear();
    if without_pauses.busy_between(from, until) {
        return Err(overlap(from, until));
    }
    Ok(())
}

fn defer_one(d: &mut Decision, p: &ParticipantRecord, deferral_id: String, request: &Deferral) {
    d.event(
        &p.id,
        request.deferral_date,
        EventKind::Deferred {
            deferral_id: deferral_id.clone(),
            reason: request.reason,
            deferral_date: request.deferral_date,
            expected_return: request.expected_return,
            note: request.note.clone(),
            cascaded_from: None,
        },
        None,
    );
    d.commands.push(Command::PlaceHold {
        participant_id: p.id.clone(),
        hold_id: deferral_id.clone(),
        kind: HoldKind::Deferral,
        from: request.deferral_date,
        until: request.expected_return,
    });
    d.commands.push(Command::SuspendAccrual {
        participant_id: p.id.clone(),
        suspension_id: deferral_id,
        from: request.deferral_date,
        until: request.expected_return,
    });
}

fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX)
}

/// D3: checks an extended deferral can be asked for, before a DPL decides:
/// for an ECT in training, a latest return date after today and, when a
/// deferral is in force or planned, later than its normal 12 months.
pub fn check_long_deferral_request(
    p: &ParticipantRecord,
    latest_return: NaiveDate,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    match p.kind {
        ParticipantKind::Ect => {}
        ParticipantKind::Mentor => {
            return Err(RuleViolation::new(
                "DEFERRAL_ONLY_FOR_ECTS",
                format!(
                    "participant {} is a mentor: a mentor is not deferred directly (D10) and follows their ECTs' deferrals, so ask for the ECT's extended deferral",
                    p.id
                ),
            ).with("participant_id", &p.id).with("kind", p.kind.as_str().to_uppercase()));
        }
        ParticipantKind::InductionCoordinator => {
            return Err(RuleViolation::new(
                "DEFERRAL_ONLY_FOR_ECTS",
                "an induction coordinator has no programme to defer",
            )
            .with("participant_id", &p.id)
            .with("kind", p.kind.as_str().to_uppercase()));
        }
    }
    let on = today.max(p.registered_on);
    let timeline = p.timeline();
    if timeline.status_on(on) == TrainingStatus::Withdrawn {
        return Err(withdrawn(on));
    }
    if latest_return <= today {
        return Err(RuleViolation::new(
            "RETURN_DATE_IN_PAST",
            format!("the latest return date {latest_return} must be after today ({today})"),
        )
        .with("participant_id", &p.id)
        .with("latest_return_date", latest_return)
        .with("today", today));
    }
    if let Some(deferral) = timeline.open_deferral(on) {
        let normal = add_months(deferral.from, MAX_DEFERRAL_MONTHS);
        if latest_return <= normal {
            return Err(RuleViolation::new(
                "LONG_DEFERRAL_NOT_NEEDED",
                format!(
                    "the deferral from {} may run to {normal} without an approval (D3): change its return date instead (ChangeReturnDate)",
                    deferral.from
                ),
            ).with("participant_id", &p.id).with("deferral_date", deferral.from).with("latest_return_date", latest_return).with("normal_latest_return_date", normal).with("max_months", MAX_DEFERRAL_MONTHS));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

    #[test]
    fn p8_deferring_a_paused_ect_ends_the_pause_on_the_deferral_date() {
        let mut e = ect();
        let decided = pause(&e, "p".into(), d("2026-11-20"), d("2026-12-20"), String::new(), d(TODAY)).expect("paused");
        record(&mut e, &decided.events);
        let decision = defer(&e, paternity(), ids(), d(TODAY)).expect("deferred from paused");
        assert!(decision.commands.contains(&Command::LiftHold {
            participant_id: "ect".into(),
            hold_id: "p".into(),
            on: d("2026-12-01")
        }));
        let decided = decision;
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-11-30"), TrainingStatus::Paused);
        assert_eq!(status(&e, "2026-12-01"), TrainingStatus::Deferred);
    }

    #[test]
    fn d2_only_an_active_or_paused_participant_is_deferred() {
        let mut e = ect();
        let decided = defer(&e, paternity(), ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        assert_eq!(defer(&e, paternity(), ids(), d(TODAY)).expect_err("twice").reason, "ALREADY_DEFERRED");
        let mut w = ect();
        let decided =
            withdraw(&w, left(WithdrawalReason::LeftRole, "2026-11-01"), None, &SchoolCircle::default(), d(TODAY))
                .expect("w");
        record(&mut w, &decided.events);
        assert_eq!(defer(&w, paternity(), ids(), d(TODAY)).expect_err("withdrawn").reason, "PARTICIPANT_WITHDRAWN");
    }

    #[test]
    fn d3_return_date_more_than_twelve_months_is_refused() {
        let mut request = paternity();
        request.expected_return = d("2027-12-02");
        assert_eq!(
            defer(&ect(), request.clone(), ids(), d(TODAY)).expect_err("13 months").reason,
            "RETURN_DATE_TOO_FAR"
        );
        request.expected_return = d("2027-12-01");
        assert!(defer(&ect(), request, ids(), d(TODAY)).is_ok(), "exactly 12 months");
    }

    #[test]
    fn d3_a_deferral_may_be_backdated_to_when_the_absence_began_or_planned_ahead() {
        let mut back = paternity();
        back.deferral_date = d("2026-10-01");
        let mut e = ect();
        let decided = defer(&e, back, ids(), d(TODAY)).expect("backdated");
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-10-01"), TrainingStatus::Deferred);
        let mut before = paternity();
        before.deferral_date = d("2026-08-01");
        before.expected_return = d("2027-01-01");
        assert_eq!(
            defer(&ect(), before, ids(), d(TODAY)).expect_err("before registration").reason,
            "BEFORE_REGISTRATION"
        );
    }

    #[test]
    fn d4_a_deferral_holds_content_and_suspends_accrual_for_the_same_period() {
        let decision = defer(&ect(), paternity(), ids(), d(TODAY)).expect("deferred");
        assert!(decision.commands.contains(&Command::PlaceHold {
            participant_id: "ect".into(),
            hold_id: "id1".into(),
            kind: HoldKind::Deferral,
            from: d("2026-12-01"),
            until: d("2027-09-01")
        }));
        assert!(decision.commands.contains(&Command::SuspendAccrual {
            participant_id: "ect".into(),
            suspension_id: "id1".into(),
            from: d("2026-12-01"),
            until: d("2027-09-01")
        }));
    }

    #[test]
    fn d8_a_participant_registered_too_early_is_deferred_to_the_restart_date() {
        let early = person("e", ParticipantKind::Ect, "2026-06-15");
        let request = Deferral {
            reason: DeferralReason::Other,
            deferral_date: d("2026-06-15"),
            expected_return: d("2027-01-05"),
            note: String::new(),
        };
        let decision = defer(&early, request, ids(), d("2026-06-20")).expect("deferred before the start");
        assert!(decision.commands.contains(&Command::PlaceHold {
            participant_id: "e".into(),
            hold_id: "id1".into(),
            kind: HoldKind::Deferral,
            from: d("2026-06-15"),
            until: d("2027-01-05")
        }));
    }

    #[test]
    fn d10_a_mentor_cannot_be_deferred_directly() {
        let m = person("m", ParticipantKind::Mentor, "2026-09-01");
        assert_eq!(defer(&m, paternity(), ids(), d(TODAY)).expect_err("mentor").reason, "MENTOR_CANNOT_BE_DEFERRED");
    }

    #[test]
    fn d12_w10_deferrals_returns_withdrawals_and_reinstatements_are_reported() {
        let reportable = |k: EventKind| k.is_reportable();
        assert!(reportable(EventKind::Returned { deferral_id: "d".into(), return_date: d(TODAY) }));
        assert!(reportable(EventKind::Reinstated { reinstated_on: d(TODAY), request_id: "r".into() }));
        assert!(!reportable(EventKind::PauseEnded { pause_id: "p".into(), end: d(TODAY) }));
        let decision = defer(&ect(), paternity(), ids(), d(TODAY)).expect("deferred");
        assert!(decision.events.iter().any(|e| e.kind.is_reportable()));
    }

    #[test]
    fn d13_a_deferral_of_42_days_or_less_is_refused_pointing_to_a_pause() {
        let refused = defer(&ect(), deferral("2026-12-01", "2027-01-12"), ids(), d(TODAY)).expect_err("42 days");
        assert_eq!(refused.reason, "DEFERRAL_TOO_SHORT");
        assert!(refused.message.contains("PauseParticipant"), "{}", refused.message);
        assert!(defer(&ect(), deferral("2026-12-01", "2027-01-13"), ids(), d(TODAY)).is_ok(), "43 days");
        let backdated = defer(&ect(), deferral("2026-11-01", "2026-11-20"), ids(), d(TODAY)).expect_err("backdated");
        assert_eq!(backdated.reason, "DEFERRAL_TOO_SHORT");
    }

    #[test]
    fn d13_d8_a_participant_whose_programme_has_not_started_may_be_deferred_for_less() {
        // Registered 15 June: the release starts on 1 September.
        let early = person("e", ParticipantKind::Ect, "2026-06-15");
        let short = deferral("2026-06-15", "2026-07-10");
        assert!(defer(&early, short, ids(), d("2026-06-20")).is_ok(), "before the release start");
        let started = deferral("2026-09-01", "2026-09-20");
        assert_eq!(defer(&early, started, ids(), d("2026-09-01")).expect_err("started").reason, "DEFERRAL_TOO_SHORT");
    }

    #[test]
    fn d3_a_return_past_12_months_names_the_extended_deferral_route() {
        let refused = defer(&ect(), deferral("2026-12-01", "2027-12-02"), ids(), d(TODAY)).expect_err("too far");
        assert_eq!(refused.reason, "RETURN_DATE_TOO_FAR");
        assert!(refused.message.contains("RequestLongDeferral"), "{}", refused.message);
    }

    #[test]
    fn d3_an_approved_long_deferral_allows_a_return_up_to_its_latest_date() {
        let approved = Some(d("2028-03-01"));
        let mut e = ect();
        let decided = defer_within(&e, deferral("2026-12-01", "2028-03-01"), approved, ids(), d(TODAY))
            .expect("up to the approved date");
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2028-02-29"), TrainingStatus::Deferred);
        let beyond = defer_within(&ect(), deferral("2026-12-01", "2028-03-02"), approved, ids(), d(TODAY))
            .expect_err("past the approved date");
        assert_eq!(beyond.reason, "RETURN_DATE_TOO_FAR");
        assert!(beyond.message.contains("2028-03-01"), "{}", beyond.message);
        // D6: the change of return date obeys the same approval.
        assert_eq!(
            change_return_date(&e, d("2028-02-01"), d(TODAY)).expect_err("no approval").reason,
            "RETURN_DATE_TOO_FAR"
        );
        assert!(change_return_date_within(&e, d("2028-02-01"), approved, d(TODAY)).is_ok());
        assert_eq!(
            change_return_date_within(&e, d("2028-03-02"), approved, d(TODAY)).expect_err("beyond").reason,
            "RETURN_DATE_TOO_FAR"
        );
        // An approval earlier than 12 months never shortens the normal limit.
        assert!(defer_within(&ect(), paternity(), Some(d("2027-01-01")), ids(), d(TODAY)).is_ok());
    }

    #[test]
    fn d3_an_extended_deferral_is_asked_for_an_ect_in_training_past_12_months() {
        let mut e = ect();
        assert!(check_long_deferral_request(&e, d("2028-01-01"), d(TODAY)).is_ok(), "before deferring");
        let decided = defer(&e, paternity(), ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        assert_eq!(
            check_long_deferral_request(&e, d("2027-12-01"), d(TODAY)).expect_err("12 months").reason,
            "LONG_DEFERRAL_NOT_NEEDED"
        );
        assert!(check_long_deferral_request(&e, d("2027-12-02"), d(TODAY)).is_ok());
        assert_eq!(
            check_long_deferral_request(&e, d(TODAY), d(TODAY)).expect_err("today").reason,
            "RETURN_DATE_IN_PAST"
        );
        let m = person("m", ParticipantKind::Mentor, "2026-09-01");
        assert_eq!(
            check_long_deferral_request(&m, d("2028-01-01"), d(TODAY)).expect_err("mentor").reason,
            "DEFERRAL_ONLY_FOR_ECTS"
        );
    }
}
