//! The school calendar the release engine lays modules out on after a
//! restart (D5, W9), and C1's mapping from a date to the schedule of its
//! term.
//!
//! The built-in curriculum releases "one module a fortnight in term time"
//! (R1) and leaves gaps where the three long school holidays fall for a
//! September start. Those holidays are the calendar here, at the same dates
//! every year (schools' own dates differ by a few days, and a deployment's
//! schedule is per lead provider, not per school):
//!
//! * Christmas: 20 December to 3 January,
//! * Easter: 28 March to 11 April,
//! * summer: 21 July to 31 August.
//!
//! Half-term weeks are not holidays here: the curriculum itself releases in
//! them (ect-05 falls in the October half term of a September start), so
//! counting them out would stretch every returner's programme past the
//! curriculum's own pace.

use chrono::{Datelike, Days, NaiveDate};

/// Terms as `[start, end)` month/day pairs, in calendar order within a year.
const TERMS: [((u32, u32), (u32, u32)); 3] = [((1, 4), (3, 28)), ((4, 12), (7, 21)), ((9, 1), (12, 20))];

/// C1 and D5: the schedule a date belongs to, named after the term it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermSchedule {
    September,
    January,
    April,
}

impl TermSchedule {
    /// C1's mapping: 1 June to 31 October is the September schedule, 1
    /// November to the end of February the January one, 1 March to 31 May
    /// the April one.
    pub fn of(day: NaiveDate) -> Self {
        match day.month() {
            6..=10 => TermSchedule::September,
            3..=5 => TermSchedule::April,
            _ => TermSchedule::January,
        }
    }

    /// The DfE's schedule identifier of the standard variant (X2), the same
    /// vocabulary as the participant service's `schedule`.
    pub fn standard_schedule_id(self) -> &'static str {
        match self {
            TermSchedule::September => "ecf-standard-september",
            TermSchedule::January => "ecf-standard-january",
            TermSchedule::April => "ecf-standard-april",
        }
    }
}

/// The term `[start, end)` containing `day`, or else the first one after it;
/// `None` only at the end of the calendar.
fn term_at_or_after(day: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    for year in [day.year(), day.year().checked_add(1)?] {
        for ((sm, sd), (em, ed)) in TERMS {
            let end = NaiveDate::from_ymd_opt(year, em, ed)?;
            if end > day {
                return Some((NaiveDate::from_ymd_opt(year, sm, sd)?, end));
            }
        }
    }
    None
}

/// Whether `day` is a school day of the calendar (not in a long holiday).
pub fn is_term_day(day: NaiveDate) -> bool {
    term_at_or_after(day).is_some_and(|(start, _)| start <= day)
}

/// The first term day on or after `day`.
pub fn first_term_day(day: NaiveDate) -> Option<NaiveDate> {
    term_at_or_after(day).map(|(start, _)| start.max(day))
}

/// How many term days there are in `[from, until)` (0 when empty).
pub fn term_days_between(from: NaiveDate, until: NaiveDate) -> Option<i64> {
    let mut count = 0;
    let mut day = from;
    while day < until {
        let (start, end) = term_at_or_after(day)?;
        let start = start.max(day);
        if start >= until {
            break;
        }
        count += (end.min(until) - start).num_days();
        day = end;
    }
    Some(count)
}

/// The term day with exactly `n` term days in `[from, it)`: `from` itself
/// for 0 when `from` is a term day.
pub fn nth_term_day(from: NaiveDate, n: i64) -> Option<NaiveDate> {
    let mut left = n;
    let mut day = from;
    loop {
        let (start, end) = term_at_or_after(day)?;
        let start = start.max(day);
        let available = (end - start).num_days();
        if left < available {
            return start.checked_add_days(Days::new(u64::try_from(left).ok()?));
        }
        left -= available;
        day = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    #[test]
    fn r1_the_long_holidays_are_not_term_days() {
        for holiday in
            ["2026-12-20", "2027-01-03", "2027-03-28", "2027-04-11", "2027-07-21", "2027-08-17", "2027-08-31"]
        {
            assert!(!is_term_day(d(holiday)), "{holiday}");
        }
        for school_day in ["2026-12-19", "2027-01-04", "2027-03-27", "2027-04-12", "2027-07-20", "2027-09-01"] {
            assert!(is_term_day(d(school_day)), "{school_day}");
        }
    }

    #[test]
    fn r1_the_built_in_september_layout_is_in_term_time_but_for_two_edge_days() {
        // The curriculum's own gaps are where these holidays are.
        let start = d("2026-09-01");
        let curriculum = crate::domain::Curriculum::built_in().expect("built-in");
        let ect = curriculum.programme(crate::domain::Programme::Ect);
        let off_term: Vec<&str> = ect
            .modules
            .iter()
            .filter(|m| !is_term_day(start + chrono::Duration::days(m.release_offset_days)))
            .map(|m| m.module_id.as_str())
            .collect();
        // Offset 364 is 31 August 2027; offset 588 is 11 April 2028, a leap
        // year's day later in the Easter holiday.
        assert_eq!(off_term, ["ect-22", "ect-36"]);
    }

    #[test]
    fn d5_term_days_are_counted_across_holidays() {
        assert_eq!(first_term_day(d("2027-08-17")), Some(d("2027-09-01")));
        assert_eq!(first_term_day(d("2027-05-10")), Some(d("2027-05-10")));
        assert_eq!(term_days_between(d("2026-12-18"), d("2027-01-05")), Some(3), "18, 19 Dec and 4 Jan");
        assert_eq!(term_days_between(d("2027-01-05"), d("2026-12-18")), Some(0));
        assert_eq!(nth_term_day(d("2026-12-18"), 2), Some(d("2027-01-04")));
        assert_eq!(nth_term_day(d("2027-07-20"), 1), Some(d("2027-09-01")));
        assert_eq!(nth_term_day(d("2027-07-25"), 0), Some(d("2027-09-01")));
        let from = d("2026-09-01");
        for n in [0, 1, 13, 14, 80, 200, 500] {
            let day = nth_term_day(from, n).expect("day");
            assert!(is_term_day(day));
            assert_eq!(term_days_between(from, day), Some(n));
        }
    }

    #[test]
    fn d5_c1_maps_a_return_date_to_the_schedule_of_its_term() {
        assert_eq!(TermSchedule::of(d("2027-06-01")), TermSchedule::September);
        assert_eq!(TermSchedule::of(d("2027-10-31")), TermSchedule::September);
        assert_eq!(TermSchedule::of(d("2027-11-01")), TermSchedule::January);
        assert_eq!(TermSchedule::of(d("2028-02-29")), TermSchedule::January);
        assert_eq!(TermSchedule::of(d("2027-03-01")), TermSchedule::April);
        assert_eq!(TermSchedule::of(d("2027-05-31")), TermSchedule::April);
        assert_eq!(TermSchedule::April.standard_schedule_id(), "ecf-standard-april");
    }

    #[test]
    fn d5_the_calendar_ends_without_panicking() {
        assert_eq!(first_term_day(NaiveDate::MAX), None);
        assert_eq!(nth_term_day(NaiveDate::MAX - chrono::Days::new(10), 400), None);
        assert_eq!(term_days_between(d("0001-01-01"), d("0001-01-10")), Some(6));
    }
}
