//! Pause, defer, return, withdraw, reinstate, move school and change the
//! release start: each a pure decision over the participants it touches,
//! returning the events to record (with their cascades, D9 and W6), the
//! commands content release and payments must receive (D4, W5, W9, S2), and
//! the notifications it raises (W7, W8). Refusals name a rule and say what to
//! do instead.

use super::events::{DeferralReason, EventKind, NewEvent, WithdrawalReason};
use super::view::{ParticipantRecord, ParticipantView, PauseSpan, Timeline};
use super::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::{Months, NaiveDate};

/// P2: the longest pause, in days.
pub const MAX_PAUSE_DAYS: i64 = 42;
/// D3: the longest deferral, in months.
pub const MAX_DEFERRAL_MONTHS: u32 = 12;
/// D13: a deferral must last longer than this many days (a shorter absence is a pause).
pub const MIN_DEFERRAL_DAYS: i64 = 42;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    Pause,
    Deferral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Programme {
    Ect,
    Mentor,
}

/// What content release and payments must be told (CONTRACT.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    EnrolLearner {
        participant_id: String,
        programme: Programme,
        release_start: NaiveDate,
        school_id: String,
        delivery_partner_id: String,
    },
    EnrolPayee {
        participant_id: String,
        kind: ParticipantKind,
        delivery_partner_id: String,
        school_id: String,
        schedule: String,
        cohort: i32,
        funding_eligible: bool,
    },
    PlaceHold {
        participant_id: String,
        hold_id: String,
        kind: HoldKind,
        from: NaiveDate,
        until: NaiveDate,
    },
    LiftHold {
        participant_id: String,
        hold_id: String,
        on: NaiveDate,
    },
    SuspendAccrual {
        participant_id: String,
        suspension_id: String,
        from: NaiveDate,
        until: NaiveDate,
    },
    ResumeAccrual {
        participant_id: String,
        suspension_id: String,
        on: NaiveDate,
    },
    RevokeAccess {
        participant_id: String,
        on: NaiveDate,
    },
    RestoreAccess {
        participant_id: String,
        on: NaiveDate,
    },
    EndAccrual {
        participant_id: String,
        on: NaiveDate,
    },
    ReopenAccrual {
        participant_id: String,
        on: NaiveDate,
    },
    SetReleaseStart {
        participant_id: String,
        release_start: NaiveDate,
    },
    SetAreaCovered {
        participant_id: String,
        covered: bool,
        from: NaiveDate,
    },
    ContentScope {
        participant_id: String,
        school_id: String,
        delivery_partner_id: String,
        from: NaiveDate,
    },
    PaymentsScope {
        participant_id: String,
        school_id: String,
        delivery_partner_id: String,
        from: NaiveDate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// W7.
    SchoolWithoutParticipants,
    /// W8.
    InductionCoordinatorNeeded,
    /// M2: a mentor replaced for good has no ECT left.
    MentorWithoutEct,
    /// W9: an ECT reinstated without a current mentor.
    EctWithoutMentor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub kind: NotificationKind,
    pub delivery_partner_id: String,
    pub school_id: String,
    pub message: String,
}

/// Everything one action decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<NewEvent>,
    pub commands: Vec<Command>,
    pub notifications: Vec<NewNotification>,
}

impl Decision {
    fn event(&mut self, participant_id: &str, effective_date: NaiveDate, kind: EventKind, caused_by: Option<&str>) {
        self.events.push(NewEvent {
            participant_id: participant_id.to_owned(),
            effective_date,
            kind,
            caused_by: caused_by.map(str::to_owned),
        });
    }

    /// Participants changed as a consequence of the main one (cascades).
    pub fn cascaded(&self, main: &str) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for e in &self.events {
            if e.participant_id != main && e.caused_by.as_deref() == Some(main) && !ids.contains(&e.participant_id) {
                ids.push(e.participant_id.clone());
            }
        }
        ids
    }

    fn merge(&mut self, other: Decision) {
        self.events.extend(other.events);
        self.commands.extend(other.commands);
        self.notifications.extend(other.notifications);
    }
}

fn has_programme(kind: ParticipantKind) -> bool {
    matches!(kind, ParticipantKind::Ect | ParticipantKind::Mentor)
}

fn status_word(status: TrainingStatus) -> &'static str {
    match status {
        TrainingStatus::Active => "active",
        TrainingStatus::Paused => "paused",
        TrainingStatus::Deferred => "deferred",
        TrainingStatus::Withdrawn => "withdrawn",
    }
}

fn not_yet_registered(p: &ParticipantRecord, date: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "BEFORE_REGISTRATION",
        format!("participant {} was registered on {}: {date} is before that", p.id, p.registered_on),
    )
}

fn view(p: &ParticipantRecord, date: NaiveDate) -> Result<ParticipantView, RuleViolation> {
    p.as_of(date).ok_or_else(|| not_yet_registered(p, date))
}

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
        ));
    }
    let days = (expected_end - start).num_days();
    if days > MAX_PAUSE_DAYS {
        return Err(pause_too_long(days));
    }
    if start < today - chrono::Duration::days(MAX_PAUSE_DAYS) {
        return Err(RuleViolation::new(
            "PAUSE_START_TOO_EARLY",
            format!(
                "a pause may start at most {MAX_PAUSE_DAYS} days back (on or after {}): for a longer absence already under way ask the ECF Lead to defer the ECT",
                today - chrono::Duration::days(MAX_PAUSE_DAYS)
            ),
        ));
    }
    let timeline = ect.timeline();
    for date in [start, today.max(ect.registered_on)] {
        let status = view(ect, date)?.status;
        if status != TrainingStatus::Active {
            return Err(RuleViolation::new(
                "NOT_ACTIVE",
                format!("the ECT is {} on {date}: only an active ECT can be paused", status_word(status)),
            ));
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

fn pause_too_long(days: i64) -> RuleViolation {
    RuleViolation::new(
        "PAUSE_TOO_LONG",
        format!(
            "a pause covers absences of up to 6 weeks ({MAX_PAUSE_DAYS} days) and this one is {days} days: for a longer absence the ECF Lead defers the ECT instead (DeferParticipant)"
        ),
    )
}

fn overlap(from: NaiveDate, until: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "OVERLAPS_ANOTHER_ABSENCE",
        format!(
            "another pause, deferral or withdrawal already falls between {from} and {until}: change that one instead"
        ),
    )
}

fn no_open_pause(today: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "NO_OPEN_PAUSE",
        format!("the ECT has no pause in force or planned on {today}: pause them first"),
    )
}

/// P4: a later expected end, within 42 days in total.
pub fn extend_pause(
    ect: &ParticipantRecord,
    expected_end: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    let timeline = ect.timeline();
    let pause = timeline.open_pause(today).ok_or_else(|| no_open_pause(today))?.clone();
    if expected_end <= pause.end() {
        return Err(RuleViolation::new(
            "PAUSE_NOT_EXTENDED",
            format!("the pause already ends on {}: give a later date, or end it early with EndPause", pause.end()),
        ));
    }
    let days = (expected_end - pause.start).num_days();
    if days > MAX_PAUSE_DAYS {
        return Err(pause_too_long(days));
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
    let pause = timeline.open_pause(today.min(end_date)).ok_or_else(|| no_open_pause(today))?.clone();
    if end_date < pause.start {
        return Err(RuleViolation::new(
            "PAUSE_END_BEFORE_START",
            format!("the pause starts on {}: end it on or after that date", pause.start),
        ));
    }
    if end_date >= pause.end() {
        return Err(RuleViolation::new(
            "PAUSE_ALREADY_ENDS",
            format!("the pause already ends by itself on {}: nothing to end early", pause.end()),
        ));
    }
    let mut d = Decision::default();
    d.event(&ect.id, end_date, EventKind::PauseEnded { pause_id: pause.id.clone(), end: end_date }, None);
    d.commands.push(Command::LiftHold { participant_id: ect.id.clone(), hold_id: pause.id, on: end_date });
    Ok(d)
}

/// A mentor and the other ECTs they mentor, for the D9 and W6 cascades.
#[derive(Debug, Clone)]
pub struct MentorCircle {
    pub mentor: ParticipantRecord,
    /// ECTs other than the one acted on whose mentor is this mentor.
    pub other_ects: Vec<ParticipantRecord>,
    /// W6: a DPL approved keeping this mentor.
    pub keep_approved: bool,
}

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
            ));
        }
        ParticipantKind::InductionCoordinator => {
            return Err(RuleViolation::new(
                "DEFERRAL_ONLY_FOR_ECTS",
                "an induction coordinator has no programme to defer",
            ));
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
fn check_return_within(
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
    Err(RuleViolation::new("RETURN_DATE_TOO_FAR", message))
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
    ))
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
                ));
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

fn withdrawn(date: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "PARTICIPANT_WITHDRAWN",
        format!(
            "the participant is withdrawn on {date}: the ECF Lead can request a reinstatement (RequestReinstatement) for a DPL to approve"
        ),
    )
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

fn not_deferred(today: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "NOT_DEFERRED",
        format!("the participant has no deferral in force or planned on {today}: defer them first"),
    )
}

/// D6: a mentor's deferral that follows their ECTs' (D9) is changed or
/// ended only through the ECT.
fn refuse_derived(p: &ParticipantRecord, today: NaiveDate) -> Result<(), RuleViolation> {
    if p.kind != ParticipantKind::Mentor {
        return Ok(());
    }
    let Some(derived) = super::mentoring::derived_deferral_open_on(p, today) else {
        return Ok(());
    };
    let ect = derived.cascaded_from.unwrap_or_default();
    Err(RuleViolation::new(
        "CASCADED_FROM_ECT",
        format!(
            "mentor {}'s deferral follows their ECT {ect}'s (D9): change the return date of, or record the return of, ECT {ect} and the mentor follows",
            p.id
        ),
    ))
}

/// D6: a new expected return date, within 12 months of the original deferral
/// date; cascaded mentors follow (D9).
pub fn change_return_date(
    ect: &ParticipantRecord,
    expected_return: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    change_return_date_within(ect, expected_return, None, today)
}

/// [`change_return_date`] for an ECT a DPL approved an extended deferral for
/// (D3, `LONG_DEFERRAL`): up to `approved_latest_return` when that is later
/// than 12 months after the original deferral date.
pub fn change_return_date_within(
    ect: &ParticipantRecord,
    expected_return: NaiveDate,
    approved_latest_return: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    refuse_derived(ect, today)?;
    let timeline = ect.timeline();
    let deferral = timeline.open_deferral(today).ok_or_else(|| not_deferred(today))?.clone();
    if expected_return <= deferral.from {
        return Err(RuleViolation::new(
            "RETURN_NOT_AFTER_DEFERRAL",
            format!("the deferral starts on {}: the return date must be after it", deferral.from),
        ));
    }
    check_return_within(deferral.from, expected_return, approved_latest_return)?;
    if expected_return < today {
        return Err(RuleViolation::new(
            "RETURN_DATE_IN_PAST",
            format!(
                "{expected_return} is before today ({today}): to record a return that has happened use RecordReturn"
            ),
        ));
    }
    if expected_return == deferral.end() {
        return Err(RuleViolation::new(
            "RETURN_DATE_UNCHANGED",
            format!("the expected return date is already {expected_return}"),
        ));
    }
    // Pauses count too: a later return date must not swallow a planned pause.
    let mut others = timeline.clone();
    others.deferrals.retain(|d| d.id != deferral.id);
    if others.busy_between(deferral.from, expected_return) {
        return Err(overlap(deferral.from, expected_return));
    }
    let mut d = Decision::default();
    let mut change = |p: &ParticipantRecord, id: String, caused_by: Option<&str>| {
        d.event(&p.id, today, EventKind::ReturnDateChanged { deferral_id: id.clone(), expected_return }, caused_by);
        d.commands.push(Command::PlaceHold {
            participant_id: p.id.clone(),
            hold_id: id.clone(),
            kind: HoldKind::Deferral,
            from: deferral.from,
            until: expected_return,
        });
        d.commands.push(Command::SuspendAccrual {
            participant_id: p.id.clone(),
            suspension_id: id,
            from: deferral.from,
            until: expected_return,
        });
    };
    change(ect, deferral.id.clone(), None);
    Ok(d)
}

/// D7: record a return earlier than expected; the participant is active from
/// `return_date`. Cascaded mentors return with them (D9).
pub fn record_return(
    ect: &ParticipantRecord,
    return_date: NaiveDate,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    refuse_derived(ect, today.min(return_date))?;
    let timeline = ect.timeline();
    let deferral = timeline.open_deferral(today.min(return_date)).ok_or_else(|| not_deferred(today))?.clone();
    if return_date > today {
        return Err(RuleViolation::new(
            "RETURN_DATE_IN_FUTURE",
            format!(
                "{return_date} is after today ({today}): for a planned return change the expected return date (ChangeReturnDate)"
            ),
        ));
    }
    if return_date < deferral.from {
        return Err(RuleViolation::new(
            "RETURN_BEFORE_DEFERRAL",
            format!("the deferral starts on {}: a return cannot be before it", deferral.from),
        ));
    }
    if return_date >= deferral.end() {
        return Err(RuleViolation::new(
            "RETURN_NOT_EARLIER",
            format!("the participant returns by themselves on {} (D7): nothing to record", deferral.end()),
        ));
    }
    let mut d = Decision::default();
    let mut record = |p: &ParticipantRecord, id: String, caused_by: Option<&str>| {
        d.event(&p.id, return_date, EventKind::Returned { deferral_id: id.clone(), return_date }, caused_by);
        d.commands.push(Command::LiftHold { participant_id: p.id.clone(), hold_id: id.clone(), on: return_date });
        d.commands.push(Command::ResumeAccrual { participant_id: p.id.clone(), suspension_id: id, on: return_date });
    };
    record(ect, deferral.id.clone(), None);
    Ok(d)
}

/// D7, D12: returns that have happened by themselves by `today` and are not
/// yet in the history, each an event dated its return date. Holds and
/// suspensions already end on that date, so nothing is sent; recording them
/// again finds nothing (idempotent).
pub fn due_returns(p: &ParticipantRecord, today: NaiveDate) -> Vec<NewEvent> {
    p.timeline()
        .deferrals
        .into_iter()
        .filter(|d| d.returned_on.is_none() && d.expected_return > d.from && d.expected_return <= today)
        .map(|d| NewEvent {
            participant_id: p.id.clone(),
            effective_date: d.expected_return,
            kind: EventKind::Returned { deferral_id: d.id, return_date: d.expected_return },
            caused_by: None,
        })
        .collect()
}

/// A validated withdrawal request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub reason: WithdrawalReason,
    pub withdrawal_date: NaiveDate,
    pub note: String,
}

/// Who else is at the participant's school, for W7 and W8.
#[derive(Debug, Clone, Default)]
pub struct SchoolCircle {
    pub school_id: String,
    pub delivery_partner_id: String,
    /// Everyone else registered at the school.
    pub others: Vec<ParticipantRecord>,
}

/// W1-W8: withdraw a participant. Any pause or deferral ends on the date
/// (W4); access is revoked and accrual ends (W5); an ECT's only-ECT mentor
/// follows (W6); the DPL hears of a school left with nobody in training (W7)
/// and of a school losing its last induction coordinator (W8).
pub fn withdraw(
    p: &ParticipantRecord,
    request: Withdrawal,
    mentor: Option<&MentorCircle>,
    school: &SchoolCircle,
    today: NaiveDate,
) -> Result<Decision, RuleViolation> {
    if request.withdrawal_date > today {
        return Err(RuleViolation::new(
            "WITHDRAWAL_DATE_IN_FUTURE",
            format!(
                "a withdrawal removes all Steplab access from its date, so it cannot be scheduled ahead: withdraw on or after the day the participant leaves (today is {today})"
            ),
        ));
    }
    if request.reason == WithdrawalReason::MentorNoLongerBeingMentor && p.kind != ParticipantKind::Mentor {
        return Err(RuleViolation::new(
            "REASON_FOR_MENTORS_ONLY",
            format!(
                "`mentor-no-longer-being-mentor` applies to mentors only and this participant is {}: choose another reason",
                p.kind.describe()
            ),
        ));
    }
    if request.withdrawal_date < p.registered_on {
        return Err(not_yet_registered(p, request.withdrawal_date));
    }
    let timeline = p.timeline();
    for date in [request.withdrawal_date, today] {
        if timeline.status_on(date) == TrainingStatus::Withdrawn {
            return Err(RuleViolation::new(
                "ALREADY_WITHDRAWN",
                format!("the participant is already withdrawn on {date}"),
            ));
        }
    }
    if timeline.withdrawals.iter().any(|w| w.date > request.withdrawal_date) {
        return Err(RuleViolation::new(
            "WITHDRAWN_LATER",
            "the participant has a later withdrawal on record: a reinstated participant cannot be withdrawn again before their reinstatement",
        ));
    }
    let mut d = Decision::default();
    withdraw_one(&mut d, p, &timeline, request.clone(), None);
    let mut withdrawn_now = vec![p.id.clone()];
    if p.kind == ParticipantKind::Ect
        && let Some(circle) = mentor
        && let Some(cascade) = mentor_left_without_ect(circle, &p.id, request.withdrawal_date, today)
    {
        withdrawn_now.push(circle.mentor.id.clone());
        d.merge(cascade);
    }
    let in_training = |other: &ParticipantRecord| {
        !withdrawn_now.contains(&other.id)
            && has_programme(other.kind)
            && other
                .as_of(today)
                .is_some_and(|v| v.status != TrainingStatus::Withdrawn && v.school_id == school.school_id)
    };
    if has_programme(p.kind) && !school.others.iter().any(in_training) {
        d.notifications.push(NewNotification {
            kind: NotificationKind::SchoolWithoutParticipants,
            delivery_partner_id: school.delivery_partner_id.clone(),
            school_id: school.school_id.clone(),
            message: format!(
                "school {} has no participants in training since {} (W7)",
                school.school_id, request.withdrawal_date
            ),
        });
    }
    let other_ic = |other: &ParticipantRecord| {
        other.kind == ParticipantKind::InductionCoordinator
            && other
                .as_of(today)
                .is_some_and(|v| v.status != TrainingStatus::Withdrawn && v.school_id == school.school_id)
    };
    if p.kind == ParticipantKind::InductionCoordinator && !school.others.iter().any(other_ic) {
        d.notifications.push(NewNotification {
            kind: NotificationKind::InductionCoordinatorNeeded,
            delivery_partner_id: school.delivery_partner_id.clone(),
            school_id: school.school_id.clone(),
            message: format!(
                "school {} has no induction coordinator since {}: register a replacement (W8)",
                school.school_id, request.withdrawal_date
            ),
        });
    }
    Ok(d)
}

fn withdraw_one(
    d: &mut Decision,
    p: &ParticipantRecord,
    timeline: &Timeline,
    request: Withdrawal,
    cascaded_from: Option<&str>,
) {
    let date = request.withdrawal_date;
    d.event(
        &p.id,
        date,
        EventKind::Withdrawn {
            reason: request.reason,
            withdrawal_date: date,
            note: request.note,
            cascaded_from: cascaded_from.map(str::to_owned),
        },
        cascaded_from,
    );
    if !has_programme(p.kind) {
        return;
    }
    // W4: holds and suspensions not over by the date end on it.
    for pause in timeline.pauses.iter().filter(|x| x.end() > date && x.end() > x.start) {
        d.commands.push(Command::LiftHold {
            participant_id: p.id.clone(),
            hold_id: pause.id.clone(),
            on: date.max(pause.start),
        });
    }
    for deferral in timeline.deferrals.iter().filter(|x| x.end() > date && x.end() > x.from) {
        let on = date.max(deferral.from);
        d.commands.push(Command::LiftHold { participant_id: p.id.clone(), hold_id: deferral.id.clone(), on });
        d.commands.push(Command::ResumeAccrual {
            participant_id: p.id.clone(),
            suspension_id: deferral.id.clone(),
            on,
        });
    }
    d.commands.push(Command::RevokeAccess { participant_id: p.id.clone(), on: date });
    d.commands.push(Command::EndAccrual { participant_id: p.id.clone(), on: date });
}

/// W6 (and M2): a mentor left with no ECT in training is withdrawn, unless
/// a DPL approved keeping them.
pub fn mentor_left_without_ect(
    circle: &MentorCircle,
    ect_id: &str,
    date: NaiveDate,
    today: NaiveDate,
) -> Option<Decision> {
    let mentor = &circle.mentor;
    if mentor.kind != ParticipantKind::Mentor || circle.keep_approved {
        return None;
    }
    let timeline = mentor.timeline();
    if timeline.status_on(date) == TrainingStatus::Withdrawn || timeline.status_on(today) == TrainingStatus::Withdrawn {
        return None;
    }
    // M5: an ECT under cover still counts as the mentor of record's.
    let has_other = circle.other_ects.iter().filter(|e| e.id != ect_id).any(|e| {
        e.as_of(today).is_some_and(|v| {
            v.status != TrainingStatus::Withdrawn && v.mentor_of_record.as_deref() == Some(mentor.id.as_str())
        })
    });
    if has_other {
        return None;
    }
    let mut d = Decision::default();
    let request = Withdrawal {
        reason: WithdrawalReason::MentorNoLongerBeingMentor,
        withdrawal_date: date.max(mentor.registered_on),
        note: String::new(),
    };
    withdraw_one(&mut d, mentor, &timeline, request, Some(ect_id));
    Some(d)
}

/// M2: a mentor left with no ECT of record in training after a
/// replacement is not withdrawn: the ECF Lead is told, to give them another
/// ECT or withdraw them (W1) if they stepped down.
pub fn mentor_without_ect(circle: &MentorCircle, ect_id: &str, today: NaiveDate) -> Option<NewNotification> {
    let mentor = circle.mentor.as_of(today)?;
    if mentor.kind != ParticipantKind::Mentor || mentor.status == TrainingStatus::Withdrawn {
        return None;
    }
    let has_other = circle.other_ects.iter().filter(|e| e.id != ect_id).any(|e| {
        e.as_of(today).is_some_and(|v| {
            v.status != TrainingStatus::Withdrawn && v.mentor_of_record.as_deref() == Some(mentor.id.as_str())
        })
    });
    (!has_other).then(|| NewNotification {
        kind: NotificationKind::MentorWithoutEct,
        delivery_partner_id: mentor.delivery_partner_id.clone(),
        school_id: mentor.school_id.clone(),
        message: format!(
            "mentor {} has no ECT since {today} (M2): assign them another ECT, or withdraw them if they stepped down",
            mentor.id
        ),
    })
}

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
        ));
    }
    let mut d = Decision::default();
    d.event(&p.id, on, EventKind::Reinstated { reinstated_on: on, request_id: request_id.to_owned() }, caused_by);
    if has_programme(p.kind) {
        d.commands.push(Command::RestoreAccess { participant_id: p.id.clone(), on });
        d.commands.push(Command::ReopenAccrual { participant_id: p.id.clone(), on });
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
        return Err(RuleViolation::new("NO_PROGRAMME", "an induction coordinator has no release schedule"));
    };
    if v.status == TrainingStatus::Withdrawn {
        return Err(withdrawn(today));
    }
    if enrolment.release_start == release_start {
        return Err(RuleViolation::new(
            "RELEASE_START_UNCHANGED",
            format!("the release already starts on {release_start}"),
        ));
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
            ));
        }
        ParticipantKind::InductionCoordinator => {
            return Err(RuleViolation::new(
                "DEFERRAL_ONLY_FOR_ECTS",
                "an induction coordinator has no programme to defer",
            ));
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
        ));
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
            ));
        }
    }
    Ok(())
}

/// Checks a release-start change can be asked for (C2), before a DPL decides.
pub fn check_release_start_request(
    p: &ParticipantRecord,
    release_start: NaiveDate,
    today: NaiveDate,
) -> Result<(), RuleViolation> {
    change_release_start(p, "", release_start, today).map(|_| ())
}

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
        ));
    }
    let before = view(p, moved_on)?;
    if before.status == TrainingStatus::Withdrawn || p.timeline().status_on(today) == TrainingStatus::Withdrawn {
        return Err(withdrawn(moved_on));
    }
    if before.school_id == to.school_id {
        return Err(RuleViolation::new(
            "SAME_SCHOOL",
            format!("the participant is already at school {} on {moved_on}", to.school_id),
        ));
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
        ));
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
pub(crate) mod tests {
    use super::*;
    use crate::domain::Enrolment;
    use crate::domain::events::{Actor, Event};
    use crate::domain::view::tests::d;

    const TODAY: &str = "2026-11-28";

    fn person(id: &str, kind: ParticipantKind, registered: &str) -> ParticipantRecord {
        let mut p = ParticipantRecord {
            id: id.into(),
            kind,
            full_name: id.into(),
            trn: None,
            registered_on: d(registered),
            previous_pilot_mentor: false,
            version: 0,
            created_at: d(registered).and_hms_opt(9, 0, 0).expect("time"),
            events: vec![],
        };
        let registered_event = NewEvent {
            participant_id: id.into(),
            effective_date: d(registered),
            kind: EventKind::Registered {
                kind,
                school_id: "s1".into(),
                delivery_partner_id: "dp1".into(),
                enrolment: has_programme(kind).then(|| Enrolment::default_for(d(registered))),
                previous_pilot_mentor: false,
                area_covered: true,
            },
            caused_by: None,
        };
        record(&mut p, &[registered_event]);
        p
    }

    /// Appends the events meant for `p`, as the store would.
    pub(crate) fn record(p: &mut ParticipantRecord, events: &[NewEvent]) {
        for e in events.iter().filter(|e| e.participant_id == p.id) {
            p.version += 1;
            p.events.push(Event {
                cursor: p.version,
                participant_id: p.id.clone(),
                sequence: p.version,
                effective_date: e.effective_date,
                recorded_at: d(TODAY).and_hms_opt(12, 0, 0).expect("time"),
                actor: Actor { sub: "t".into(), role: "ecf_lead".into() },
                caused_by: e.caused_by.clone(),
                kind: e.kind.clone(),
            });
        }
    }

    fn ect() -> ParticipantRecord {
        person("ect", ParticipantKind::Ect, "2026-09-01")
    }

    fn status(p: &ParticipantRecord, on: &str) -> TrainingStatus {
        p.as_of(d(on)).expect("registered").status
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id{n}")
        }
    }

    fn paternity() -> Deferral {
        Deferral {
            reason: DeferralReason::ParentalLeave,
            deferral_date: d("2026-12-01"),
            expected_return: d("2027-09-01"),
            note: String::new(),
        }
    }

    /// An ECT and their mentor, assigned.
    fn pair() -> (ParticipantRecord, ParticipantRecord) {
        let mut e = ect();
        let mut m = person("m", ParticipantKind::Mentor, "2026-09-01");
        let events = vec![
            NewEvent {
                participant_id: "ect".into(),
                effective_date: d("2026-09-02"),
                kind: EventKind::MentorAssigned { mentor_id: "m".into(), interim: false, replaced_mentor_id: None },
                caused_by: None,
            },
            NewEvent {
                participant_id: "m".into(),
                effective_date: d("2026-09-02"),
                kind: EventKind::MenteeAssigned { ect_id: "ect".into() },
                caused_by: None,
            },
        ];
        record(&mut e, &events);
        record(&mut m, &events);
        (e, m)
    }

    /// An ECT whose mentor of record is `mentor` from 2026-09-02.
    fn mentored_by(id: &str, mentor: &str) -> ParticipantRecord {
        let mut e = person(id, ParticipantKind::Ect, "2026-09-01");
        let assigned = NewEvent {
            participant_id: id.into(),
            effective_date: d("2026-09-02"),
            kind: EventKind::MentorAssigned { mentor_id: mentor.into(), interim: false, replaced_mentor_id: None },
            caused_by: None,
        };
        record(&mut e, &[assigned]);
        e
    }

    fn circle(mentor: &ParticipantRecord, others: Vec<ParticipantRecord>) -> MentorCircle {
        MentorCircle { mentor: mentor.clone(), other_ects: others, keep_approved: false }
    }

    fn left(reason: WithdrawalReason, on: &str) -> Withdrawal {
        Withdrawal { reason, withdrawal_date: d(on), note: String::new() }
    }

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
    fn d6_a_new_return_date_is_measured_from_the_original_deferral_date_and_resent() {
        let mut e = ect();
        let decided = defer(&e, paternity(), ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        assert_eq!(
            change_return_date(&e, d("2027-12-02"), d(TODAY)).expect_err("too far").reason,
            "RETURN_DATE_TOO_FAR"
        );
        let later = change_return_date(&e, d("2027-11-01"), d(TODAY)).expect("later");
        assert!(later.commands.contains(&Command::SuspendAccrual {
            participant_id: "ect".into(),
            suspension_id: "id1".into(),
            from: d("2026-12-01"),
            until: d("2027-11-01")
        }));
        let decided = later;
        record(&mut e, &decided.events);
        assert_eq!(
            status(&e, "2027-10-01"),
            TrainingStatus::Deferred,
            "the changed date replaces the old one for every as_of"
        );
        assert_eq!(status(&e, "2027-11-01"), TrainingStatus::Active);
    }

    #[test]
    fn d7_the_return_happens_by_itself_and_an_earlier_return_can_be_recorded() {
        let mut request = paternity();
        request.deferral_date = d("2026-10-01");
        request.expected_return = d("2027-01-15");
        let mut e = ect();
        let decided = defer(&e, request, ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2027-01-15"), TrainingStatus::Active, "no action needed on the return date");
        assert_eq!(record_return(&e, d("2026-11-29"), d(TODAY)).expect_err("future").reason, "RETURN_DATE_IN_FUTURE");
        let back = record_return(&e, d("2026-11-20"), d(TODAY)).expect("early return");
        assert!(back.commands.contains(&Command::ResumeAccrual {
            participant_id: "ect".into(),
            suspension_id: "id1".into(),
            on: d("2026-11-20")
        }));
        let decided = back;
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-11-20"), TrainingStatus::Active);
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
    fn w2_a_withdrawal_dated_tomorrow_is_refused() {
        let err =
            withdraw(&ect(), left(WithdrawalReason::LeftRole, "2026-11-29"), None, &SchoolCircle::default(), d(TODAY))
                .expect_err("future");
        assert_eq!(err.reason, "WITHDRAWAL_DATE_IN_FUTURE");
    }

    #[test]
    fn w3_mentor_no_longer_being_mentor_is_a_reason_for_mentors_only() {
        let err = withdraw(
            &ect(),
            left(WithdrawalReason::MentorNoLongerBeingMentor, TODAY),
            None,
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect_err("ect");
        assert_eq!(err.reason, "REASON_FOR_MENTORS_ONLY");
    }

    #[test]
    fn w4_withdrawing_a_deferred_participant_ends_the_deferral_on_that_date() {
        let mut request = paternity();
        request.deferral_date = d("2026-10-01");
        let mut e = ect();
        let decided = defer(&e, request, ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        let decision = withdraw(
            &e,
            left(WithdrawalReason::LeftTeachingProfession, "2026-11-01"),
            None,
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect("w");
        assert!(decision.commands.contains(&Command::LiftHold {
            participant_id: "ect".into(),
            hold_id: "id1".into(),
            on: d("2026-11-01")
        }));
        let decided = decision;
        record(&mut e, &decided.events);
        assert_eq!(status(&e, "2026-10-31"), TrainingStatus::Deferred);
        assert_eq!(status(&e, "2026-11-01"), TrainingStatus::Withdrawn);
        assert!(e.as_of(d(TODAY)).expect("v").deferral.is_none());
    }

    #[test]
    fn w5_withdrawal_revokes_access_and_ends_accrual_from_its_date() {
        let decision =
            withdraw(&ect(), left(WithdrawalReason::LeftRole, "2026-11-10"), None, &SchoolCircle::default(), d(TODAY))
                .expect("w");
        assert!(
            decision.commands.contains(&Command::RevokeAccess { participant_id: "ect".into(), on: d("2026-11-10") })
        );
        assert!(decision.commands.contains(&Command::EndAccrual { participant_id: "ect".into(), on: d("2026-11-10") }));
    }

    #[test]
    fn w6_withdrawing_an_ect_withdraws_their_only_ect_mentor() {
        let (e, m) = pair();
        let decision = withdraw(
            &e,
            left(WithdrawalReason::LeftRole, TODAY),
            Some(&circle(&m, vec![])),
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect("w");
        assert_eq!(decision.cascaded("ect"), ["m"]);
        assert!(decision.events.iter().any(|ev| ev.participant_id == "m"
            && matches!(ev.kind, EventKind::Withdrawn { reason: WithdrawalReason::MentorNoLongerBeingMentor, .. })));
    }

    #[test]
    fn w6_a_mentor_with_another_ect_or_kept_by_a_dpl_stays() {
        let (e, m) = pair();
        let other = mentored_by("other", "m");
        let with_other = withdraw(
            &e,
            left(WithdrawalReason::LeftRole, TODAY),
            Some(&circle(&m, vec![other])),
            &SchoolCircle::default(),
            d(TODAY),
        )
        .expect("w");
        assert!(with_other.cascaded("ect").is_empty());
        let kept = MentorCircle { keep_approved: true, ..circle(&m, vec![]) };
        let with_keep =
            withdraw(&e, left(WithdrawalReason::LeftRole, TODAY), Some(&kept), &SchoolCircle::default(), d(TODAY))
                .expect("w");
        assert!(with_keep.cascaded("ect").is_empty());
    }

    #[test]
    fn w7_a_school_left_with_nobody_in_training_notifies_its_dpl() {
        let school = SchoolCircle {
            school_id: "s1".into(),
            delivery_partner_id: "dp1".into(),
            others: vec![person("ic", ParticipantKind::InductionCoordinator, "2026-09-01")],
        };
        let decision = withdraw(&ect(), left(WithdrawalReason::LeftRole, TODAY), None, &school, d(TODAY)).expect("w");
        assert_eq!(decision.notifications.len(), 1);
        assert_eq!(decision.notifications[0].kind, NotificationKind::SchoolWithoutParticipants);
        let busy = SchoolCircle { others: vec![person("other", ParticipantKind::Ect, "2026-09-01")], ..school };
        assert!(
            withdraw(&ect(), left(WithdrawalReason::LeftRole, TODAY), None, &busy, d(TODAY))
                .expect("w")
                .notifications
                .is_empty()
        );
    }

    #[test]
    fn w8_withdrawing_the_last_induction_coordinator_asks_for_a_replacement() {
        let ic = person("ic", ParticipantKind::InductionCoordinator, "2026-09-01");
        let school = SchoolCircle { school_id: "s1".into(), delivery_partner_id: "dp1".into(), others: vec![ect()] };
        let decision = withdraw(&ic, left(WithdrawalReason::LeftRole, TODAY), None, &school, d(TODAY)).expect("w");
        assert_eq!(
            decision.notifications.iter().map(|n| n.kind).collect::<Vec<_>>(),
            [NotificationKind::InductionCoordinatorNeeded]
        );
        assert!(decision.commands.is_empty(), "an induction coordinator has no enrolment to revoke");
    }

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

    #[test]
    fn m2_a_replaced_mentor_left_with_no_ect_is_not_withdrawn_but_the_ecf_lead_is_told() {
        let (e, m) = pair();
        let told = mentor_without_ect(&circle(&m, vec![]), "ect", d(TODAY)).expect("notified");
        assert_eq!(told.kind, NotificationKind::MentorWithoutEct);
        assert!(told.message.contains("withdraw them if they stepped down"), "{}", told.message);
        // Still mentoring another ECT of record: nothing to say.
        let _ = e;
        let other = mentored_by("other", "m");
        assert_eq!(mentor_without_ect(&circle(&m, vec![other]), "ect", d(TODAY)), None);
    }

    #[test]
    fn w6_withdrawing_an_ect_under_interim_cover_withdraws_the_mentor_of_record() {
        let (mut e, m) = pair();
        let cover = NewEvent {
            participant_id: "ect".into(),
            effective_date: d("2026-10-01"),
            kind: EventKind::MentorAssigned {
                mentor_id: "ic".into(),
                interim: true,
                replaced_mentor_id: Some("m".into()),
            },
            caused_by: None,
        };
        record(&mut e, &[cover]);
        assert_eq!(e.as_of(d(TODAY)).expect("v").mentor_of_record.as_deref(), Some("m"));
        let decision = mentor_left_without_ect(&circle(&m, vec![e.clone()]), "ect", d(TODAY), d(TODAY));
        assert!(decision.is_some_and(|d| d.events.iter().any(|e| e.participant_id == "m")));
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

    #[test]
    fn c1_registration_enrols_with_both_services_and_an_ic_with_neither() {
        let decision = enrol(&ect()).expect("enrolled");
        assert!(matches!(&decision.commands[..], [Command::EnrolLearner { .. }, Command::EnrolPayee { .. }]));
        assert!(
            enrol(&person("ic", ParticipantKind::InductionCoordinator, "2026-09-01")).expect("ic").commands.is_empty()
        );
    }

    fn deferral(from: &str, until: &str) -> Deferral {
        Deferral { deferral_date: d(from), expected_return: d(until), ..paternity() }
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
    fn d13_a_later_change_or_recorded_return_may_shorten_the_deferral() {
        let mut e = ect();
        let decided = defer(&e, deferral("2026-11-01", "2027-06-01"), ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        assert!(change_return_date(&e, d("2026-12-01"), d(TODAY)).is_ok(), "30 days after the deferral date");
        assert!(record_return(&e, d("2026-11-20"), d(TODAY)).is_ok(), "19 days after the deferral date");
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
