//! D9 over time: a mentor's deferral is derived, day by day, from the ECTs
//! they mentor of record (M5) and those ECTs' deferrals, never copied at the
//! moment of a call. After any change to an ECT's dates, mentor or status the
//! derivation runs again, and [`reconcile`] records and sends exactly the
//! difference from what the mentor's history already holds.

use super::events::{DeferralReason, EventKind, NewEvent};
use super::lifecycle::{Command, Decision, HoldKind};
use super::view::{DeferralSpan, ParticipantRecord, Timeline};
use super::{ParticipantKind, TrainingStatus};
use chrono::{Datelike, NaiveDate};
use std::collections::BTreeSet;

/// A mentor's deferral as D9 derives it: `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedDeferral {
    pub from: NaiveDate,
    pub until: NaiveDate,
    /// The ECT the deferral follows (the first of them deferred on `from`):
    /// the one to act on (D6).
    pub ect_id: String,
    pub reason: DeferralReason,
}

/// The ECTs whose mentor of record is `mentor_id` on `date` and who are in
/// training then (a withdrawn ECT is no longer mentored, W6).
fn mentored_on<'a>(
    mentor_id: &str,
    ects: &'a [(ParticipantRecord, Timeline)],
    date: NaiveDate,
) -> impl Iterator<Item = &'a (ParticipantRecord, Timeline)> {
    ects.iter().filter(move |(ect, timeline)| {
        ect.registered_on <= date
            && timeline.mentors_on(date).of_record.as_deref() == Some(mentor_id)
            && timeline.status_on(date) != TrainingStatus::Withdrawn
    })
}

/// D9: the mentor is deferred on exactly the days on which they mentor at
/// least one ECT and every ECT they mentor that day is deferred; never while
/// they are withdrawn themselves. `ects` are every ECT ever assigned to them.
pub fn derived_deferrals(mentor: &ParticipantRecord, ects: &[ParticipantRecord]) -> Vec<DerivedDeferral> {
    if mentor.kind != ParticipantKind::Mentor {
        return Vec::new();
    }
    let mentor_timeline = mentor.timeline();
    let ects: Vec<(ParticipantRecord, Timeline)> =
        ects.iter().filter(|e| e.kind == ParticipantKind::Ect).map(|e| (e.clone(), e.timeline())).collect();
    // The answer can only change on a date some interval starts or ends.
    let mut dates: BTreeSet<NaiveDate> = BTreeSet::from([mentor.registered_on]);
    dates.extend(mentor_timeline.withdrawals.iter().flat_map(|w| [Some(w.date), w.reinstated_on]).flatten());
    for (ect, timeline) in &ects {
        dates.insert(ect.registered_on);
        dates.extend(timeline.mentor_change_dates());
        dates.extend(timeline.deferrals.iter().flat_map(|d| [d.from, d.end()]));
        dates.extend(timeline.withdrawals.iter().flat_map(|w| [Some(w.date), w.reinstated_on]).flatten());
    }
    let dates: Vec<NaiveDate> = dates.into_iter().filter(|d| *d >= mentor.registered_on).collect();
    let deferred_on = |date: NaiveDate| -> Option<(String, DeferralReason)> {
        if mentor_timeline.status_on(date) == TrainingStatus::Withdrawn {
            return None;
        }
        let mut first = None;
        for (ect, timeline) in mentored_on(&mentor.id, &ects, date) {
            let deferral = timeline.deferrals.iter().rev().find(|d| d.covers(date))?;
            first.get_or_insert_with(|| (ect.id.clone(), deferral.reason));
        }
        first
    };
    let mut spans: Vec<DerivedDeferral> = Vec::new();
    for (i, from) in dates.iter().enumerate() {
        // Past the last date nothing changes; no deferral is open-ended, so
        // nothing derived can be either.
        let Some(until) = dates.get(i + 1) else { break };
        let Some((ect_id, reason)) = deferred_on(*from) else { continue };
        match spans.last_mut() {
            Some(last) if last.until == *from => last.until = *until,
            _ => spans.push(DerivedDeferral { from: *from, until: *until, ect_id, reason }),
        }
    }
    spans
}

/// The ECTs a mentor was ever assigned, from their own history.
pub fn ever_mentored(mentor: &ParticipantRecord) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for e in &mentor.events {
        if let EventKind::MenteeAssigned { ect_id } = &e.kind
            && !ids.contains(ect_id)
        {
            ids.push(ect_id.clone());
        }
    }
    ids
}

/// The mentors of record an ECT ever had, from their own history.
pub fn mentors_of_record(ect: &ParticipantRecord) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for e in &ect.events {
        if let EventKind::MentorAssigned { mentor_id, interim: false, .. } = &e.kind
            && !ids.contains(mentor_id)
        {
            ids.push(mentor_id.clone());
        }
    }
    ids
}

/// A derived deferral's hold and suspension id: the same mentor and start
/// give the same id, so a recomputation that finds the same interval
/// addresses the same hold. A UUID, as content release and payments expect.
pub fn derived_id(mentor_id: &str, from: NaiveDate) -> String {
    let mut bytes = [0u8; 16];
    match uuid::Uuid::parse_str(mentor_id) {
        Ok(id) => bytes.copy_from_slice(id.as_bytes()),
        Err(_) => {
            for (i, b) in mentor_id.bytes().enumerate() {
                bytes[i % 16] ^= b;
            }
        }
    }
    bytes[12..].copy_from_slice(&from.num_days_from_ce().to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// The derived deferrals the mentor's history holds now (version 1's
/// cascaded deferrals, `cascaded_from` set, are the same thing).
fn recorded(mentor: &ParticipantRecord) -> Vec<DeferralSpan> {
    mentor.timeline().deferrals.into_iter().filter(|d| d.cascaded_from.is_some()).collect()
}

/// The derived deferral in force or next on `date`, with the ECT it follows (D6).
pub fn derived_deferral_open_on(mentor: &ParticipantRecord, date: NaiveDate) -> Option<DeferralSpan> {
    mentor.timeline().open_deferral(date).filter(|d| d.cascaded_from.is_some()).cloned()
}

/// What to record and send so that the mentor's history and the holds and
/// suspensions of content release and payments match `desired`: a new
/// interval is placed, a changed one re-placed under its id, one no longer
/// derived is lifted on its first day. Nothing when nothing differs.
pub fn reconcile(
    mentor: &ParticipantRecord,
    desired: &[DerivedDeferral],
    caused_by: Option<&str>,
    today: NaiveDate,
) -> Decision {
    let current = recorded(mentor);
    let mut d = Decision::default();
    let mut push = |effective_date: NaiveDate, kind: EventKind| {
        d.events.push(NewEvent {
            participant_id: mentor.id.clone(),
            effective_date,
            kind,
            caused_by: caused_by.map(str::to_owned),
        })
    };
    let mut commands = Vec::new();
    let mut place = |id: &str, from: NaiveDate, until: NaiveDate| {
        commands.push(Command::PlaceHold {
            participant_id: mentor.id.clone(),
            hold_id: id.to_owned(),
            kind: HoldKind::Deferral,
            from,
            until,
        });
        commands.push(Command::SuspendAccrual {
            participant_id: mentor.id.clone(),
            suspension_id: id.to_owned(),
            from,
            until,
        });
    };
    for want in desired {
        match current.iter().rev().find(|c| c.from == want.from) {
            Some(have) if have.end() == want.until => {}
            Some(have) => {
                if want.until < have.end() && want.until <= today {
                    push(want.until, EventKind::Returned { deferral_id: have.id.clone(), return_date: want.until });
                } else {
                    push(
                        today.max(want.from),
                        EventKind::ReturnDateChanged { deferral_id: have.id.clone(), expected_return: want.until },
                    );
                }
                place(&have.id, want.from, want.until);
            }
            None => {
                let id = derived_id(&mentor.id, want.from);
                push(
                    want.from,
                    EventKind::Deferred {
                        deferral_id: id.clone(),
                        reason: want.reason,
                        deferral_date: want.from,
                        expected_return: want.until,
                        note: String::new(),
                        cascaded_from: Some(want.ect_id.clone()),
                    },
                );
                place(&id, want.from, want.until);
            }
        }
    }
    for gone in current.iter().filter(|c| c.end() > c.from && !desired.iter().any(|w| w.from == c.from)) {
        push(gone.from, EventKind::Returned { deferral_id: gone.id.clone(), return_date: gone.from });
        commands.push(Command::LiftHold { participant_id: mentor.id.clone(), hold_id: gone.id.clone(), on: gone.from });
        commands.push(Command::ResumeAccrual {
            participant_id: mentor.id.clone(),
            suspension_id: gone.id.clone(),
            on: gone.from,
        });
    }
    d.commands = commands;
    d
}

#[cfg(test)]
mod tests;
