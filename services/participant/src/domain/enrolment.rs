//! C1: the default release start, schedule and cohort from the registration date.

use chrono::{Datelike, NaiveDate};

/// Which of the three standard starts a participant follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStart {
    September,
    January,
    April,
}

impl ScheduleStart {
    /// The payments schedule id (F1).
    pub fn schedule_id(self) -> &'static str {
        match self {
            ScheduleStart::September => "ecf-standard-september",
            ScheduleStart::January => "ecf-standard-january",
            ScheduleStart::April => "ecf-standard-april",
        }
    }

    /// C1's mapping of a date to the schedule of its term, which D5 and W9
    /// also use for a return: 1 June to 31 October is the September schedule,
    /// 1 November to the end of February the January one, 1 March to 31 May
    /// the April one.
    pub fn of_term(day: NaiveDate) -> Self {
        match day.month() {
            6..=10 => ScheduleStart::September,
            3..=5 => ScheduleStart::April,
            _ => ScheduleStart::January,
        }
    }

    pub fn from_schedule_id(id: &str) -> Option<Self> {
        [ScheduleStart::September, ScheduleStart::January, ScheduleStart::April]
            .into_iter()
            .find(|s| s.schedule_id() == id)
    }
}

/// Where a participant's programme starts and how it is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrolment {
    pub schedule: ScheduleStart,
    /// The year of the 1 June on or before registration.
    pub cohort: i32,
    pub release_start: NaiveDate,
}

impl Enrolment {
    /// C1: registered 1 June - 31 October: September schedule; 1 November -
    /// end of February: January; 1 March - 31 May: April. The release starts
    /// on that schedule's first day, or on the registration date if later.
    pub fn default_for(registered_on: NaiveDate) -> Enrolment {
        let year = registered_on.year();
        let cohort = if registered_on.month() >= 6 { year } else { year - 1 };
        let (schedule, start) = match registered_on.month() {
            6..=10 => (ScheduleStart::September, ymd(cohort, 9, 1)),
            11 | 12 | 1 | 2 => (ScheduleStart::January, ymd(cohort + 1, 1, 1)),
            _ => (ScheduleStart::April, ymd(cohort + 1, 4, 1)),
        };
        // `ymd` cannot fail for these fixed days; fall back to the
        // registration date rather than panic if it ever did.
        let release_start = start.map_or(registered_on, |s| s.max(registered_on));
        Enrolment { schedule, cohort, release_start }
    }
}

fn ymd(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn enrol(s: &str) -> (ScheduleStart, i32, NaiveDate) {
        let e = Enrolment::default_for(d(s));
        (e.schedule, e.cohort, e.release_start)
    }

    #[test]
    fn c1_june_to_october_is_the_september_schedule_starting_1_september() {
        assert_eq!(enrol("2026-06-01"), (ScheduleStart::September, 2026, d("2026-09-01")));
        assert_eq!(enrol("2026-08-31"), (ScheduleStart::September, 2026, d("2026-09-01")));
    }

    #[test]
    fn c1_an_october_registration_starts_at_once_on_the_september_schedule() {
        assert_eq!(enrol("2026-10-14"), (ScheduleStart::September, 2026, d("2026-10-14")));
        assert_eq!(enrol("2026-10-31"), (ScheduleStart::September, 2026, d("2026-10-31")));
    }

    #[test]
    fn c1_november_to_february_is_the_january_schedule_of_the_same_cohort() {
        assert_eq!(enrol("2026-11-01"), (ScheduleStart::January, 2026, d("2027-01-01")));
        assert_eq!(enrol("2026-12-20"), (ScheduleStart::January, 2026, d("2027-01-01")));
        assert_eq!(enrol("2027-01-20"), (ScheduleStart::January, 2026, d("2027-01-20")));
        assert_eq!(enrol("2028-02-29"), (ScheduleStart::January, 2027, d("2028-02-29")));
    }

    #[test]
    fn c1_march_to_may_is_the_april_schedule() {
        assert_eq!(enrol("2027-03-01"), (ScheduleStart::April, 2026, d("2027-04-01")));
        assert_eq!(enrol("2027-05-31"), (ScheduleStart::April, 2026, d("2027-05-31")));
    }

    #[test]
    fn c1_schedule_ids_round_trip() {
        for s in [ScheduleStart::September, ScheduleStart::January, ScheduleStart::April] {
            assert_eq!(ScheduleStart::from_schedule_id(s.schedule_id()), Some(s));
        }
    }
}
