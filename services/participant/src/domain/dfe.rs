//! What the DfE is to hear of a participant's new events (X1, X4, D5, D12),
//! as commands for the DfE gateway. Derived from the same events as the
//! reporting feed (WatchEvents), so the two never disagree: a deferral
//! (including a mentor's derived D9 deferral), a return (recorded, by
//! itself on its date (D7), or the end of a derived deferral), a
//! reinstatement, a withdrawal (including W6 cascades), and the schedule
//! change of a return or reinstatement (D5, W9) or of an approved release
//! start (C2) when it moves the participant to another term's schedule.
//! A pause is not sent (X4); induction coordinators are never reported.

use crate::domain::events::{EventKind, NewEvent};
use crate::domain::view::ParticipantRecord;
use crate::domain::{ParticipantKind, ScheduleStart};
use chrono::NaiveDate;

/// A status change of X4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Defer,
    Resume,
    Withdraw,
    ChangeSchedule,
}

/// A command for the DfE gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayCommand {
    /// X1: an ECT or mentor to report, with their DfE id when known.
    Track {
        participant_id: String,
        mentor: bool,
        trn: String,
        cohort: i32,
        schedule: String,
        dfe_participant_id: Option<String>,
    },
    /// X4: one status change.
    Report {
        participant_id: String,
        change: StatusChange,
        /// D3 or W3 word, for DEFER and WITHDRAW.
        reason: String,
        effective_date: NaiveDate,
        /// For CHANGE_SCHEDULE.
        schedule: String,
        cohort: i32,
    },
}

/// The schedule and cohort the DfE has been told of, after a participant's
/// events in the order they were recorded. Not `restart::schedule_on`, the
/// fold behind GetParticipant, content release and payments: X4 also counts
/// an approved release start in another term as a schedule change (C2),
/// which moves no restart there, and every return or reinstatement event is
/// reported as it is recorded, whether or not it is a restart by that fold.
fn schedule_after<'a>(
    start: Option<(ScheduleStart, i32)>,
    kinds: impl Iterator<Item = &'a EventKind>,
) -> Option<(ScheduleStart, i32)> {
    let mut current = start;
    for kind in kinds {
        current = match (kind, current) {
            (EventKind::Registered { enrolment: Some(e), .. }, _) => Some((e.schedule, e.cohort)),
            (EventKind::Returned { return_date: d, .. }, Some((_, cohort)))
            | (EventKind::Reinstated { reinstated_on: d, .. }, Some((_, cohort)))
            | (EventKind::ReleaseStartChanged { release_start: d, .. }, Some((_, cohort))) => {
                Some((ScheduleStart::of_term(*d), cohort))
            }
            (_, current) => current,
        };
    }
    current
}

/// The registration facts of an ECT or mentor (None for an induction
/// coordinator, who is never reported).
pub fn track(record: &ParticipantRecord, dfe_participant_id: Option<String>) -> Option<GatewayCommand> {
    if record.kind == ParticipantKind::InductionCoordinator {
        return None;
    }
    let (schedule, cohort) = schedule_after(None, record.events.iter().map(|e| &e.kind))?;
    Some(GatewayCommand::Track {
        participant_id: record.id.clone(),
        mentor: record.kind == ParticipantKind::Mentor,
        trn: record.trn.clone().unwrap_or_default(),
        cohort,
        schedule: schedule.schedule_id().to_owned(),
        dfe_participant_id,
    })
}

/// The gateway commands for `new` events appended to `record` (which does
/// not hold them yet), in the order the events happened.
pub fn commands_for(record: &ParticipantRecord, new: &[&NewEvent]) -> Vec<GatewayCommand> {
    if record.kind == ParticipantKind::InductionCoordinator {
        return Vec::new();
    }
    let mut commands = Vec::new();
    let mut schedule = schedule_after(None, record.events.iter().map(|e| &e.kind));
    for event in new {
        let report = |change: StatusChange, reason: &str| GatewayCommand::Report {
            participant_id: record.id.clone(),
            change,
            reason: reason.to_owned(),
            effective_date: event.effective_date,
            schedule: String::new(),
            cohort: 0,
        };
        match &event.kind {
            EventKind::Registered { enrolment: Some(e), .. } => {
                commands.push(GatewayCommand::Track {
                    participant_id: record.id.clone(),
                    mentor: record.kind == ParticipantKind::Mentor,
                    trn: record.trn.clone().unwrap_or_default(),
                    cohort: e.cohort,
                    schedule: e.schedule.schedule_id().to_owned(),
                    dfe_participant_id: None,
                });
            }
            EventKind::Deferred { reason, .. } => commands.push(report(StatusChange::Defer, reason.as_str())),
            EventKind::Returned { .. } | EventKind::Reinstated { .. } => {
                commands.push(report(StatusChange::Resume, ""))
            }
            EventKind::Withdrawn { reason, .. } => commands.push(report(StatusChange::Withdraw, reason.as_str())),
            _ => {}
        }
        let after = schedule_after(schedule, std::iter::once(&event.kind));
        if let (Some((before, _)), Some((now, cohort))) = (schedule, after)
            && before != now
        {
            commands.push(GatewayCommand::Report {
                participant_id: record.id.clone(),
                change: StatusChange::ChangeSchedule,
                reason: String::new(),
                effective_date: event.effective_date,
                schedule: now.schedule_id().to_owned(),
                cohort,
            });
        }
        schedule = after;
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{DeferralReason, WithdrawalReason};
    use crate::domain::view::tests::ect;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn event(kind: EventKind, on: &str) -> NewEvent {
        NewEvent { participant_id: "ect".into(), effective_date: d(on), kind, caused_by: None }
    }

    fn changes(commands: &[GatewayCommand]) -> Vec<(StatusChange, String, String)> {
        commands
            .iter()
            .filter_map(|c| match c {
                GatewayCommand::Report { change, reason, schedule, .. } => {
                    Some((*change, reason.clone(), schedule.clone()))
                }
                GatewayCommand::Track { .. } => None,
            })
            .collect()
    }

    #[test]
    fn x4_d12_d5_a_deferral_and_its_return_are_reported_with_the_schedule_of_the_return_term() {
        let record = ect("2026-09-01");
        let deferred = event(
            EventKind::Deferred {
                deferral_id: "d".into(),
                reason: DeferralReason::ParentalLeave,
                deferral_date: d("2026-10-01"),
                expected_return: d("2027-06-01"),
                note: String::new(),
                cascaded_from: None,
            },
            "2026-10-01",
        );
        let returned =
            event(EventKind::Returned { deferral_id: "d".into(), return_date: d("2027-01-10") }, "2027-01-10");
        let commands = commands_for(&record, &[&deferred, &returned]);
        assert_eq!(
            changes(&commands),
            [
                (StatusChange::Defer, "parental-leave".into(), String::new()),
                (StatusChange::Resume, String::new(), String::new()),
                (StatusChange::ChangeSchedule, String::new(), "ecf-standard-january".into()),
            ]
        );
    }

    #[test]
    fn x4_a_return_in_the_same_terms_schedule_changes_no_schedule_and_a_pause_is_not_sent() {
        let record = ect("2026-09-01");
        let returned =
            event(EventKind::Returned { deferral_id: "d".into(), return_date: d("2026-10-10") }, "2026-10-10");
        let paused = event(
            EventKind::Paused {
                pause_id: "p".into(),
                start: d("2026-10-12"),
                expected_end: d("2026-10-20"),
                note: String::new(),
            },
            "2026-10-12",
        );
        assert_eq!(
            changes(&commands_for(&record, &[&returned, &paused])),
            [(StatusChange::Resume, String::new(), String::new())]
        );
    }

    #[test]
    fn x4_withdrawal_and_reinstatement_are_withdraw_and_resume() {
        let record = ect("2026-09-01");
        let withdrawn = event(
            EventKind::Withdrawn {
                reason: WithdrawalReason::LeftRole,
                withdrawal_date: d("2026-10-01"),
                note: String::new(),
                cascaded_from: None,
            },
            "2026-10-01",
        );
        let reinstated =
            event(EventKind::Reinstated { reinstated_on: d("2026-10-20"), request_id: "r".into() }, "2026-10-20");
        assert_eq!(
            changes(&commands_for(&record, &[&withdrawn, &reinstated])),
            [
                (StatusChange::Withdraw, "left-role".into(), String::new()),
                (StatusChange::Resume, String::new(), String::new())
            ]
        );
    }

    #[test]
    fn x1_registration_tracks_an_ect_on_its_schedule_and_cohort() {
        let record = ect("2026-09-01");
        match track(&record, Some("dfe".into())) {
            Some(GatewayCommand::Track { mentor, cohort, schedule, dfe_participant_id, .. }) => {
                assert!(!mentor);
                assert_eq!(cohort, 2026);
                assert_eq!(schedule, "ecf-standard-september");
                assert_eq!(dfe_participant_id.as_deref(), Some("dfe"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn c2_x4_a_release_start_in_another_term_changes_the_dfe_schedule_but_restarts_nothing() {
        let mut record = ect("2026-09-01");
        let moved = EventKind::ReleaseStartChanged { release_start: d("2027-01-04"), request_id: "r".into() };
        assert_eq!(
            changes(&commands_for(&record, &[&event(moved.clone(), "2026-11-28")])),
            [(StatusChange::ChangeSchedule, String::new(), "ecf-standard-january".into())]
        );
        record.events.push(crate::domain::view::tests::event(2, "2026-11-28", moved));
        let (schedule, restarted) =
            crate::domain::restart::schedule_on(&record.timeline(), d("2027-02-01")).expect("a programme");
        assert_eq!((schedule, restarted), (ScheduleStart::September, None), "GetParticipant keeps the first schedule");
    }
}
