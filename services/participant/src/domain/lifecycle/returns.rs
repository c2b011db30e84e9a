//! D6, D7: change a deferred ECT's return date, record an earlier return,
//! and find the returns that have happened by themselves.

use super::deferral::check_return_within;
use super::{Command, Decision, HoldKind, overlap};
use crate::domain::events::{EventKind, NewEvent};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, RuleViolation, TrainingStatus};
use chrono::NaiveDate;

fn not_deferred(participant_id: &str, today: NaiveDate) -> RuleViolation {
    RuleViolation::new(
        "NOT_DEFERRED",
        format!("the participant has no deferral in force or planned on {today}: defer them first"),
    )
    .with("participant_id", participant_id)
    .with("date", today)
}

/// D6: a mentor's deferral that follows their ECTs' (D9) is changed or
/// ended only through the ECT.
fn refuse_derived(p: &ParticipantRecord, today: NaiveDate) -> Result<(), RuleViolation> {
    if p.kind != ParticipantKind::Mentor {
        return Ok(());
    }
    let Some(derived) = crate::domain::mentoring::derived_deferral_open_on(p, today) else {
        return Ok(());
    };
    let ect = derived.cascaded_from.unwrap_or_default();
    Err(RuleViolation::new(
        "CASCADED_FROM_ECT",
        format!(
            "mentor {}'s deferral follows their ECT {ect}'s (D9): change the return date of, or record the return of, ECT {ect} and the mentor follows",
            p.id
        ),
    ).with("participant_id", &p.id).with("ect_id", &ect).with("status", TrainingStatus::Deferred.name()))
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
    let deferral = timeline.open_deferral(today).ok_or_else(|| not_deferred(&ect.id, today))?.clone();
    if expected_return <= deferral.from {
        return Err(RuleViolation::new(
            "RETURN_NOT_AFTER_DEFERRAL",
            format!("the deferral starts on {}: the return date must be after it", deferral.from),
        )
        .with("participant_id", &ect.id)
        .with("return_date", expected_return)
        .with("deferral_date", deferral.from));
    }
    check_return_within(deferral.from, expected_return, approved_latest_return)?;
    if expected_return < today {
        return Err(RuleViolation::new(
            "RETURN_DATE_IN_PAST",
            format!(
                "{expected_return} is before today ({today}): to record a return that has happened use RecordReturn"
            ),
        )
        .with("participant_id", &ect.id)
        .with("return_date", expected_return)
        .with("today", today));
    }
    if expected_return == deferral.end() {
        return Err(RuleViolation::new(
            "RETURN_DATE_UNCHANGED",
            format!("the expected return date is already {expected_return}"),
        )
        .with("participant_id", &ect.id)
        .with("return_date", expected_return));
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
    let deferral = timeline.open_deferral(today.min(return_date)).ok_or_else(|| not_deferred(&ect.id, today))?.clone();
    if return_date > today {
        return Err(RuleViolation::new(
            "RETURN_DATE_IN_FUTURE",
            format!(
                "{return_date} is after today ({today}): for a planned return change the expected return date (ChangeReturnDate)"
            ),
        ).with("participant_id", &ect.id).with("return_date", return_date).with("today", today));
    }
    if return_date < deferral.from {
        return Err(RuleViolation::new(
            "RETURN_BEFORE_DEFERRAL",
            format!("the deferral starts on {}: a return cannot be before it", deferral.from),
        )
        .with("participant_id", &ect.id)
        .with("return_date", return_date)
        .with("deferral_date", deferral.from));
    }
    if return_date >= deferral.end() {
        return Err(RuleViolation::new(
            "RETURN_NOT_EARLIER",
            format!("the participant returns by themselves on {} (D7): nothing to record", deferral.end()),
        )
        .with("participant_id", &ect.id)
        .with("return_date", return_date)
        .with("expected_return_date", deferral.end()));
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

#[cfg(test)]
mod tests {
    use crate::domain::lifecycle::tests::*;
    use crate::domain::lifecycle::*;

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
    fn d13_a_later_change_or_recorded_return_may_shorten_the_deferral() {
        let mut e = ect();
        let decided = defer(&e, deferral("2026-11-01", "2027-06-01"), ids(), d(TODAY)).expect("deferred");
        record(&mut e, &decided.events);
        assert!(change_return_date(&e, d("2026-12-01"), d(TODAY)).is_ok(), "30 days after the deferral date");
        assert!(record_return(&e, d("2026-11-20"), d(TODAY)).is_ok(), "19 days after the deferral date");
    }
}
