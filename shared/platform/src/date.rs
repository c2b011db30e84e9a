//! `google.type.Date` on the wire, `chrono::NaiveDate` in the domain.

use crate::error::FieldViolation;
use chrono::{Datelike, NaiveDate};
use steplab_proto::google::r#type::Date;

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
    fn a_missing_required_date_is_a_violation_and_an_unset_optional_is_none() {
        assert!(required("f", None).is_err());
        assert_eq!(optional("f", None).expect("ok"), None);
        assert_eq!(optional("f", Some(&d(0, 0, 0))).expect("ok"), None);
    }
}
