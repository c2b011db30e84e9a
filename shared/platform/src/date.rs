//! `google.type.Date` on the wire, `chrono::NaiveDate` in the domain.

use crate::error::FieldViolation;
use chrono::{Datelike, NaiveDate};
use std::ops::RangeInclusive;
use steplab_proto::google::r#type::Date;

/// The cohorts the built-in payment schedules cover (F1). Payments generates
/// its book for exactly these and the participant service registers only in
/// their registration periods (C1), so the relay never carries an enrolment
/// payments must refuse. Extend both at once by changing this range.
pub const COHORTS: RangeInclusive<i32> = 2021..=2030;

/// A span of calendar dates a request's date must fall in, so that a date no
/// schedule or curriculum covers (0001-01-01, 9999-12-31) is refused as a
/// malformed field instead of being stored, or parking a command for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// What the window is, for the violation's description.
    what: &'static str,
}

/// C1: from 1 June of the first cohort to 31 May after the last, the
/// registration periods of [`COHORTS`].
pub const REGISTRATION_DATES: DateWindow = DateWindow {
    first: ymd(*COHORTS.start(), 6, 1),
    last: ymd(*COHORTS.end() + 1, 5, 31),
    what: "the registration periods of the cohorts the payment schedules cover (C1)",
};

/// Every other date that feeds a schedule (pauses, deferrals, returns,
/// withdrawals, moves, holds, suspensions, engagement, attendance): from the
/// first registration date to 31 December ten years after the last cohort,
/// which leaves room for an extended induction, long deferrals and F3's
/// windows that continue term by term.
pub const PROGRAMME_DATES: DateWindow = DateWindow {
    first: ymd(*COHORTS.start(), 6, 1),
    last: ymd(*COHORTS.end() + 10, 12, 31),
    what: "the dates the programme's schedules cover",
};

/// A date of a constant: evaluated at compile time, so an impossible one
/// fails the build, never a request.
const fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a calendar date")
}

impl DateWindow {
    pub fn contains(&self, date: NaiveDate) -> bool {
        (self.first..=self.last).contains(&date)
    }

    /// `date` if inside the window, else a violation naming `field` and the range.
    pub fn check(&self, field: &str, date: NaiveDate) -> Result<NaiveDate, FieldViolation> {
        if self.contains(date) {
            return Ok(date);
        }
        Err(FieldViolation::new(
            field,
            format!("{date} is outside {}: use a date from {} to {}", self.what, self.first, self.last),
        ))
    }

    /// [`required`], then inside the window.
    pub fn required(&self, field: &str, date: Option<&Date>) -> Result<NaiveDate, FieldViolation> {
        required(field, date).and_then(|d| self.check(field, d))
    }

    /// [`optional`], then inside the window when set.
    pub fn optional(&self, field: &str, date: Option<&Date>) -> Result<Option<NaiveDate>, FieldViolation> {
        optional(field, date)?.map(|d| self.check(field, d)).transpose()
    }
}

/// Converts a required date field; an absent or impossible date (2026-02-30,
/// month 13, year 0) is a field violation naming `field`.
pub fn required(field: &str, date: Option<&Date>) -> Result<NaiveDate, FieldViolation> {
    match date {
        None => Err(FieldViolation::new(field, "is required (a google.type.Date with year, month and day)")),
        Some(d) => to_naive(field, d),
    }
}

/// Converts an optional date field: absent (or all zero) is `None`.
pub fn optional(field: &str, date: Option<&Date>) -> Result<Option<NaiveDate>, FieldViolation> {
    match date {
        None => Ok(None),
        Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => Ok(None),
        Some(d) => to_naive(field, d).map(Some),
    }
}

fn to_naive(field: &str, d: &Date) -> Result<NaiveDate, FieldViolation> {
    if !(1..=9999).contains(&d.year) {
        return Err(FieldViolation::new(field, format!("year {} is outside 1..9999", d.year)));
    }
    let (Ok(month), Ok(day)) = (u32::try_from(d.month), u32::try_from(d.day)) else {
        return Err(FieldViolation::new(field, format!("{}-{}-{} is not a calendar date", d.year, d.month, d.day)));
    };
    NaiveDate::from_ymd_opt(d.year, month, day).ok_or_else(|| {
        FieldViolation::new(field, format!("{:04}-{:02}-{:02} is not a calendar date", d.year, d.month, d.day))
    })
}

pub fn to_proto(date: NaiveDate) -> Date {
    Date { year: date.year(), month: date.month() as i32, day: date.day() as i32 }
}

pub fn to_proto_opt(date: Option<NaiveDate>) -> Option<Date> {
    date.map(to_proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i32, month: i32, day: i32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn an_impossible_date_is_a_field_violation_naming_the_field() {
        let err = required("registered_on", Some(&d(2026, 2, 30))).expect_err("30 February");
        assert_eq!(err.field, "registered_on");
        assert!(err.description.contains("2026-02-30"), "{}", err.description);
    }

    #[test]
    fn month_thirteen_year_zero_and_negative_days_are_refused() {
        for bad in [d(2026, 13, 1), d(0, 1, 1), d(2026, 1, -1), d(10000, 1, 1)] {
            assert!(required("f", Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_leap_day_round_trips() {
        let date = required("f", Some(&d(2028, 2, 29))).expect("leap day");
        assert_eq!(to_proto(date), d(2028, 2, 29));
    }

    #[test]
    fn dates_no_schedule_covers_are_violations_naming_the_field_and_the_range() {
        for window in [REGISTRATION_DATES, PROGRAMME_DATES] {
            for bad in [d(1, 1, 1), d(2021, 5, 31), d(9999, 12, 31)] {
                let err = window.required("occurred_on", Some(&bad)).expect_err("outside");
                assert_eq!(err.field, "occurred_on");
                assert!(err.description.contains("2021-06-01"), "{}", err.description);
                assert!(err.description.contains(&window.last.to_string()), "{}", err.description);
            }
            assert!(window.optional("f", Some(&d(1, 1, 1))).is_err());
            assert_eq!(window.optional("f", None).expect("unset"), None);
        }
        assert!(REGISTRATION_DATES.optional("f", Some(&d(2031, 6, 1))).is_err(), "cohort 2031 has no schedule");
        assert!(PROGRAMME_DATES.optional("f", Some(&d(2041, 1, 1))).is_err());
    }

    #[test]
    fn c1_the_window_edges_are_the_first_and_last_registration_days_of_the_cohorts() {
        assert_eq!(REGISTRATION_DATES.required("f", Some(&d(2021, 6, 1))).map(to_proto), Ok(d(2021, 6, 1)));
        assert_eq!(REGISTRATION_DATES.required("f", Some(&d(2031, 5, 31))).map(to_proto), Ok(d(2031, 5, 31)));
        assert_eq!(PROGRAMME_DATES.required("f", Some(&d(2040, 12, 31))).map(to_proto), Ok(d(2040, 12, 31)));
        assert!(
            PROGRAMME_DATES.contains(REGISTRATION_DATES.first) && PROGRAMME_DATES.contains(REGISTRATION_DATES.last)
        );
    }

    #[test]
    fn a_missing_required_date_is_a_violation_and_an_unset_optional_is_none() {
        assert!(required("f", None).is_err());
        assert_eq!(optional("f", None).expect("ok"), None);
        assert_eq!(optional("f", Some(&d(0, 0, 0))).expect("ok"), None);
    }
}
