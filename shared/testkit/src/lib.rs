//! What the services' property tests (`services/*/tests/properties.rs`)
//! share: the check of a converter's answer against the violations a model
//! expects, and the calendar model the tests judge a request's dates by.
//! One copy, so the services' converters are all held to the same check.

pub mod scratch;

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use steplab_platform::FieldViolations;
use steplab_proto::google::r#type::Date;

/// Holds `answer` to `expected`: accepted when nothing is expected, else
/// refused naming exactly the expected fields in order, each a field of the
/// request (`request_fields`) and described.
pub fn check_answer<T: std::fmt::Debug>(
    answer: &Result<T, FieldViolations>,
    expected: &[&str],
    request_fields: &[&str],
) -> Result<(), TestCaseError> {
    match answer {
        Ok(value) => prop_assert!(expected.is_empty(), "accepted {value:?}, expected violations of {expected:?}"),
        Err(err) => {
            prop_assert!(!err.0.is_empty(), "an Err with no violation");
            for v in &err.0 {
                prop_assert!(request_fields.contains(&v.field.as_str()), "`{}` is not a request field", v.field);
                prop_assert!(!v.description.is_empty(), "`{}` has no description", v.field);
            }
            let named: Vec<&str> = err.0.iter().map(|v| v.field.as_str()).collect();
            prop_assert_eq!(named, expected.to_vec());
        }
    }
    Ok(())
}

/// Pushes `field` when `bad`.
pub fn flag(expected: &mut Vec<&'static str>, bad: bool, field: &'static str) {
    if bad {
        expected.push(field);
    }
}

pub fn leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// A real day of the years 1..=9999, as (year, month, day).
pub fn calendar(d: &Date) -> Option<(i32, i32, i32)> {
    let days_in_month = match d.month {
        2 if leap(d.year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    ((1..=9999).contains(&d.year) && (1..=days_in_month).contains(&d.day)).then_some((d.year, d.month, d.day))
}

/// An optional date is fine when absent, all zero, or a real day.
pub fn optional_date_ok(d: Option<&Date>) -> bool {
    match d {
        None | Some(Date { year: 0, month: 0, day: 0 }) => true,
        Some(d) => calendar(d).is_some(),
    }
}

/// `day` moved by `days`, stopping at the ends of the calendar.
pub fn shift(day: NaiveDate, days: i64) -> NaiveDate {
    let moved = if days >= 0 {
        day.checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        day.checked_sub_days(Days::new(days.unsigned_abs()))
    };
    moved.unwrap_or(if days >= 0 { NaiveDate::MAX } else { NaiveDate::MIN })
}

/// A date message: mostly real days of the years requests name, also days
/// out of range, around February's end, arbitrary numbers and all zero.
pub fn date_msg() -> impl Strategy<Value = Date> {
    let years = vec![i32::MIN, -1, 0, 1, 2, 4, 1900, 2000, 2023, 2024, 2025, 2026, 2100, 9996, 9999, 10000, i32::MAX];
    prop_oneof![
        8 => (2024..=2028i32, 1..=12i32, 1..=28i32),
        2 => (proptest::sample::select(years), -1..=14i32, -1..=33i32),
        1 => (proptest::sample::select(vec![1900, 2000, 2023, 2024, 2100, 9996, 9999]), Just(2), 28..=30i32),
        1 => (any::<i32>(), any::<i32>(), any::<i32>()),
        1 => Just((0, 0, 0)),
    ]
    .prop_map(|(year, month, day)| Date { year, month, day })
}

/// A [`date_msg`], or now and then none.
pub fn opt_date() -> impl Strategy<Value = Option<Date>> {
    proptest::option::weighted(0.9, date_msg())
}

/// Callers of each scope, as the services' policy tests build them; the
/// `sub` is the same for all, since no rule reads it.
pub mod callers {
    use steplab_platform::{Caller, Scope};

    pub fn caller(scope: Scope) -> Caller {
        Caller { sub: "someone".into(), scope }
    }

    /// The induction coordinator of `school`.
    pub fn ic(school: &str) -> Caller {
        caller(Scope::InductionCoordinator { school_id: school.into() })
    }

    /// The ECF Lead of delivery partner `dp`.
    pub fn lead(dp: &str) -> Caller {
        caller(Scope::EcfLead { delivery_partner_id: dp.into() })
    }

    /// A DPL of the delivery partners `dps`.
    pub fn dpl(dps: &[&str]) -> Caller {
        caller(Scope::Dpl { delivery_partner_ids: dps.iter().map(|s| s.to_string()).collect() })
    }
}
