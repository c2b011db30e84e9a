//! D5, W9: after a deferral, and after a reinstatement, the participant
//! restarts "at the beginning of the term they return to work" on the
//! schedule of that term. The schedule in force on a date is a fold over the
//! history like the status, so `as_of` reads give the one of that date.
//!
//! The restarts are the ones content release and payments see: the end of
//! a deferral (its return date, expected or recorded) and a reinstatement,
//! when the participant is back in training that day (not deferred again nor
//! withdrawn), and only after the release start (a deferral that ends
//! before the programme starts restarts nothing; one over the release start
//! is D8's restart date). Pauses never move the schedule (P5).

use super::ScheduleStart;
use super::TrainingStatus;
use super::view::Timeline;
use chrono::NaiveDate;

/// The schedule in force on `as_of` and the restart date it applies from
/// (`None`: the enrolment's schedule, in force since the start); `None` for
/// a participant without a programme (an induction coordinator).
pub fn schedule_on(timeline: &Timeline, as_of: NaiveDate) -> Option<(ScheduleStart, Option<NaiveDate>)> {
    let enrolment = timeline.enrolment()?;
    let returns = timeline.deferrals.iter().filter(|d| d.end() > d.from).map(|d| d.end());
    // A withdrawal reinstated on its own date never stopped anything.
    let reinstatements = timeline.withdrawals.iter().filter_map(|w| w.reinstated_on.filter(|r| *r > w.date));
    let back_in_training =
        |day: NaiveDate| matches!(timeline.status_on(day), TrainingStatus::Active | TrainingStatus::Paused);
    let latest = returns
        .chain(reinstatements)
        .filter(|day| *day <= as_of && *day > enrolment.release_start && back_in_training(*day))
        .max();
    Some(match latest {
        Some(restart) => (ScheduleStart::of_term(restart), Some(restart)),
        None => (enrolment.schedule, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{DeferralReason, EventKind, WithdrawalReason};
    use crate::domain::view::tests::{d, ect, event};

    fn deferred(from: &str, until: &str) -> EventKind {
        EventKind::Deferred {
            deferral_id: format!("d-{from}"),
            reason: DeferralReason::ParentalLeave,
            deferral_date: d(from),
            expected_return: d(until),
            note: String::new(),
            cascaded_from: None,
        }
    }

    fn on(p: &crate::domain::view::ParticipantRecord, day: &str) -> (&'static str, Option<NaiveDate>) {
        let (schedule, since) = schedule_on(&p.timeline(), d(day)).expect("a programme");
        (schedule.schedule_id(), since)
    }

    #[test]
    fn d5_after_a_deferral_the_schedule_is_the_one_of_the_term_of_the_return_from_that_date() {
        let mut p = ect("2026-09-01");
        p.events.push(event(2, "2026-12-07", deferred("2026-12-07", "2027-04-12")));
        assert_eq!(on(&p, "2027-04-11"), ("ecf-standard-september", None), "as_of before the return");
        assert_eq!(on(&p, "2027-04-12"), ("ecf-standard-april", Some(d("2027-04-12"))));
        assert_eq!(on(&p, "2028-01-10"), ("ecf-standard-april", Some(d("2027-04-12"))));
    }

    #[test]
    fn d5_d7_an_earlier_recorded_return_moves_the_restart_and_its_term() {
        let mut p = ect("2026-09-01");
        p.events.push(event(2, "2026-10-01", deferred("2026-10-01", "2027-04-12")));
        p.events.push(event(
            3,
            "2026-11-20",
            EventKind::Returned { deferral_id: "d-2026-10-01".into(), return_date: d("2026-11-20") },
        ));
        assert_eq!(on(&p, "2027-05-01"), ("ecf-standard-january", Some(d("2026-11-20"))));
    }

    #[test]
    fn d5_w4_a_deferral_ended_by_a_withdrawal_restarts_nothing_until_the_reinstatement() {
        let mut p = ect("2026-09-01");
        p.events.push(event(2, "2026-10-01", deferred("2026-10-01", "2027-04-12")));
        p.events.push(event(
            3,
            "2026-11-02",
            EventKind::Withdrawn {
                reason: WithdrawalReason::LeftRole,
                withdrawal_date: d("2026-11-02"),
                note: String::new(),
                cascaded_from: None,
            },
        ));
        assert_eq!(on(&p, "2027-05-01"), ("ecf-standard-september", None));
        p.events.push(event(
            4,
            "2027-03-01",
            EventKind::Reinstated { reinstated_on: d("2027-03-01"), request_id: "r".into() },
        ));
        assert_eq!(on(&p, "2027-05-01"), ("ecf-standard-april", Some(d("2027-03-01"))), "W9 like D5");
        let mut same_day = ect("2026-09-01");
        same_day.events.push(event(
            2,
            "2026-11-02",
            EventKind::Withdrawn {
                reason: WithdrawalReason::LeftRole,
                withdrawal_date: d("2026-11-02"),
                note: String::new(),
                cascaded_from: None,
            },
        ));
        same_day.events.push(event(
            3,
            "2026-11-02",
            EventKind::Reinstated { reinstated_on: d("2026-11-02"), request_id: "r".into() },
        ));
        assert_eq!(on(&same_day, "2027-05-01"), ("ecf-standard-september", None), "reinstated the same day");
    }

    #[test]
    fn d5_d8_a_deferral_over_before_the_release_start_keeps_the_first_schedule() {
        // Registered 15 June: the September schedule, released from 1 September.
        let mut p = ect("2026-06-15");
        p.events.push(event(2, "2026-06-15", deferred("2026-06-15", "2026-08-01")));
        assert_eq!(on(&p, "2026-10-01"), ("ecf-standard-september", None));
        let mut later = ect("2026-06-15");
        later.events.push(event(2, "2026-06-15", deferred("2026-06-15", "2027-01-05")));
        assert_eq!(on(&later, "2027-01-05"), ("ecf-standard-january", Some(d("2027-01-05"))), "D8's restart date");
    }

    #[test]
    fn d5_a_pause_never_moves_the_schedule() {
        let mut p = ect("2026-09-01");
        p.events.push(event(
            2,
            "2026-11-30",
            EventKind::Paused {
                pause_id: "p".into(),
                start: d("2026-11-30"),
                expected_end: d("2026-12-14"),
                note: String::new(),
            },
        ));
        assert_eq!(on(&p, "2027-01-10"), ("ecf-standard-september", None));
    }
}
