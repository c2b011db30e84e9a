//! The built-in book, generated for every default cohort by the pattern in
//! the module documentation of [`crate::domain::schedule`].

use crate::domain::schedule::{
    BookError, DEFAULT_ECT_PRICE_PENCE, DEFAULT_MENTOR_PRICE_PENCE, DEFAULT_OUTPUT_SHARE_PERCENT, PricesFile,
    ScheduleEntry, ScheduleFile, Variant, WindowEntry,
};
use chrono::NaiveDate;

/// The three standard starts (C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    September,
    January,
    April,
}

impl Start {
    const ALL: [Start; 3] = [Start::September, Start::January, Start::April];

    pub(super) fn name(self) -> &'static str {
        match self {
            Start::September => "september",
            Start::January => "january",
            Start::April => "april",
        }
    }

    fn month_name(self) -> &'static str {
        match self {
            Start::September => "September",
            Start::January => "January",
            Start::April => "April",
        }
    }

    /// Terms after the cohort's autumn term at which the schedule starts.
    fn term_offset(self) -> i32 {
        match self {
            Start::September => 0,
            Start::January => 1,
            Start::April => 2,
        }
    }

    /// C1: the first day of the schedule's registration period.
    fn registration_opens(self, cohort: i32) -> Option<NaiveDate> {
        match self {
            Start::September => NaiveDate::from_ymd_opt(cohort, 6, 1),
            Start::January => NaiveDate::from_ymd_opt(cohort, 11, 1),
            Start::April => NaiveDate::from_ymd_opt(cohort + 1, 3, 1),
        }
    }
}

fn ymd(year: i32, month: u32, day: u32) -> Result<NaiveDate, BookError> {
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| BookError(format!("{year}-{month}-{day} is not a date")))
}

/// Term `n` counted from the autumn term of year 0: 3Y is autumn Y, 3Y+1
/// spring Y+1, 3Y+2 summer Y+1.
pub(super) fn term(n: i32) -> Result<(NaiveDate, NaiveDate), BookError> {
    let y = n.div_euclid(3);
    Ok(match n.rem_euclid(3) {
        0 => (ymd(y, 8, 1)?, ymd(y, 12, 31)?),
        1 => (ymd(y + 1, 1, 1)?, ymd(y + 1, 3, 31)?),
        _ => (ymd(y + 1, 4, 1)?, ymd(y + 1, 7, 31)?),
    })
}

/// Half term `n`: 6Y is the first half of autumn Y.
fn half_term(n: i32) -> Result<(NaiveDate, NaiveDate), BookError> {
    let y = n.div_euclid(6);
    Ok(match n.rem_euclid(6) {
        0 => (ymd(y, 8, 1)?, ymd(y, 10, 31)?),
        1 => (ymd(y, 11, 1)?, ymd(y, 12, 31)?),
        2 => (ymd(y + 1, 1, 1)?, ymd(y + 1, 2, 14)?),
        3 => (ymd(y + 1, 2, 15)?, ymd(y + 1, 3, 31)?),
        4 => (ymd(y + 1, 4, 1)?, ymd(y + 1, 5, 31)?),
        _ => (ymd(y + 1, 6, 1)?, ymd(y + 1, 7, 31)?),
    })
}

const STANDARD: [&str; 6] = ["started", "retained-1", "retained-2", "retained-3", "retained-4", "completed"];
const EXTENDED: [&str; 9] = [
    "started",
    "retained-1",
    "retained-2",
    "retained-3",
    "retained-4",
    "extended-1",
    "extended-2",
    "extended-3",
    "completed",
];

/// The built-in book in file form, so it passes the same validation as a
/// deployment's file.
pub fn generate_file(cohorts: std::ops::RangeInclusive<i32>) -> Result<ScheduleFile, BookError> {
    let mut schedules = Vec::new();
    for cohort in cohorts {
        for start in Start::ALL {
            for variant in Variant::ALL {
                schedules.push(generate_schedule(cohort, start, variant)?);
            }
        }
    }
    Ok(ScheduleFile {
        output_share_percent: DEFAULT_OUTPUT_SHARE_PERCENT,
        prices_pence: PricesFile { ect: DEFAULT_ECT_PRICE_PENCE, mentor: DEFAULT_MENTOR_PRICE_PENCE },
        schedules,
    })
}

fn generate_schedule(cohort: i32, start: Start, variant: Variant) -> Result<ScheduleEntry, BookError> {
    let opens = start
        .registration_opens(cohort)
        .ok_or_else(|| BookError(format!("cohort {cohort} has no registration date")))?;
    let (milestones, periods): (&[&str], Vec<(NaiveDate, NaiveDate)>) = match variant {
        Variant::Standard | Variant::Replacement => {
            let first = 3 * cohort + start.term_offset();
            (&STANDARD, (first..first + 6).map(term).collect::<Result<_, _>>()?)
        }
        Variant::Extended => {
            let first = 3 * cohort + start.term_offset();
            (&EXTENDED, (first..first + 9).map(term).collect::<Result<_, _>>()?)
        }
        Variant::Reduced => {
            let first = 6 * cohort + 2 * start.term_offset();
            (&STANDARD, (first..first + 6).map(half_term).collect::<Result<_, _>>()?)
        }
    };
    let windows = milestones
        .iter()
        .zip(periods)
        .enumerate()
        .map(|(i, (milestone, (from, to)))| WindowEntry {
            milestone: (*milestone).to_owned(),
            start: if i == 0 { opens.min(from) } else { from },
            end: to,
            share_percent: None,
        })
        .collect();
    let month = start.month_name();
    let description = match variant {
        Variant::Standard => format!(
            "Standard two-year induction of the {cohort} cohort starting in {month}: one milestone window per term for six terms."
        ),
        Variant::Extended => format!(
            "Extended induction (longer than two years, e.g. part time) of the {cohort} cohort starting in {month}: nine terms, with extended-1..-3 before completed. Its later windows also continue the cohort's other {month} schedules after a long deferral (F3)."
        ),
        Variant::Reduced => format!(
            "Reduced induction (shorter than two years) of the {cohort} cohort starting in {month}: the six milestones one per half term over one school year."
        ),
        Variant::Replacement => format!(
            "Replacement mentor (mentors only) of the {cohort} cohort starting in {month}: the standard windows, paid at the mentor price."
        ),
    };
    Ok(ScheduleEntry {
        schedule_id: format!("ecf-{}-{}", variant.as_str(), start.name()),
        cohort,
        variant: variant.as_str().to_owned(),
        description,
        continues_on: None,
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::fixtures::*;
    use crate::domain::schedule::*;
    use crate::domain::test_support::d;
    use chrono::Datelike;

    #[test]
    fn f1_the_2024_standard_september_schedule_has_the_issues_dated_windows() {
        let b = book();
        let s = b.schedule("ecf-standard-september", 2024).expect("schedule");
        assert_eq!(
            dates(s),
            [
                w("started", "2024-06-01", "2024-12-31"),
                w("retained-1", "2025-01-01", "2025-03-31"),
                w("retained-2", "2025-04-01", "2025-07-31"),
                w("retained-3", "2025-08-01", "2025-12-31"),
                w("retained-4", "2026-01-01", "2026-03-31"),
                w("completed", "2026-04-01", "2026-07-31"),
            ]
        );
        assert_eq!(s.windows[0].id, "ecf-standard-september/2024/started");
        assert_eq!(s.variant, Variant::Standard);
    }

    #[test]
    fn f1_january_and_april_start_one_and_two_terms_later() {
        let b = book();
        let jan = b.schedule("ecf-standard-january", 2024).expect("january");
        assert_eq!(
            dates(jan),
            [
                // Opens with January registrations (C1: from 1 November).
                w("started", "2024-11-01", "2025-03-31"),
                w("retained-1", "2025-04-01", "2025-07-31"),
                w("retained-2", "2025-08-01", "2025-12-31"),
                w("retained-3", "2026-01-01", "2026-03-31"),
                w("retained-4", "2026-04-01", "2026-07-31"),
                w("completed", "2026-08-01", "2026-12-31"),
            ]
        );
        let apr = b.schedule("ecf-standard-april", 2024).expect("april");
        assert_eq!(
            dates(apr),
            [
                w("started", "2025-03-01", "2025-07-31"),
                w("retained-1", "2025-08-01", "2025-12-31"),
                w("retained-2", "2026-01-01", "2026-03-31"),
                w("retained-3", "2026-04-01", "2026-07-31"),
                w("retained-4", "2026-08-01", "2026-12-31"),
                w("completed", "2027-01-01", "2027-03-31"),
            ]
        );
    }

    #[test]
    fn f1_later_cohorts_follow_the_same_pattern_a_year_on() {
        let b = book();
        let a = b.schedule("ecf-standard-september", 2024).expect("2024");
        let c = b.schedule("ecf-standard-september", 2025).expect("2025");
        for (x, y) in a.windows.iter().zip(&c.windows) {
            assert_eq!(x.start.with_year(x.start.year() + 1), Some(y.start));
            assert_eq!(x.end.with_year(x.end.year() + 1), Some(y.end));
        }
    }

    #[test]
    fn f1_every_cohort_has_twelve_schedules_with_ordered_non_overlapping_windows() {
        let b = book();
        for cohort in DEFAULT_COHORTS {
            let list: Vec<&Schedule> = b.schedules(Some(cohort)).collect();
            assert_eq!(list.len(), 12, "cohort {cohort}");
            for s in list {
                for pair in s.windows.windows(2) {
                    assert!(pair[0].end < pair[1].start, "{}", pair[1].id);
                    assert_eq!(pair[0].end.succ_opt(), Some(pair[1].start), "contiguous {}", pair[1].id);
                }
            }
        }
    }

    #[test]
    fn f1_extended_adds_extended_1_to_3_before_completed_one_term_each() {
        let b = book();
        let s = b.schedule("ecf-extended-september", 2024).expect("extended");
        let names: Vec<&str> = s.windows.iter().map(|w| w.milestone.as_str()).collect();
        assert_eq!(
            names,
            [
                "started",
                "retained-1",
                "retained-2",
                "retained-3",
                "retained-4",
                "extended-1",
                "extended-2",
                "extended-3",
                "completed"
            ]
        );
        assert_eq!(s.windows[5].start, d("2026-04-01"));
        assert_eq!(s.windows[8].start, d("2027-04-01"));
        assert_eq!(s.windows[8].end, d("2027-07-31"));
        assert_eq!(s.continues_on, None, "the extended schedule is the continuation");
    }

    #[test]
    fn f1_reduced_pays_the_six_milestones_one_per_half_term_over_a_year() {
        let b = book();
        let s = b.schedule("ecf-reduced-september", 2024).expect("reduced");
        assert_eq!(
            dates(s),
            [
                w("started", "2024-06-01", "2024-10-31"),
                w("retained-1", "2024-11-01", "2024-12-31"),
                w("retained-2", "2025-01-01", "2025-02-14"),
                w("retained-3", "2025-02-15", "2025-03-31"),
                w("retained-4", "2025-04-01", "2025-05-31"),
                w("completed", "2025-06-01", "2025-07-31"),
            ]
        );
    }

    #[test]
    fn f1_replacement_has_the_standard_windows_and_the_mentor_price() {
        let b = book();
        let r = b.schedule("ecf-replacement-january", 2025).expect("replacement");
        let s = b.schedule("ecf-standard-january", 2025).expect("standard");
        assert_eq!(dates(r), dates(s));
        assert_eq!(b.listed_price_pence(r), DEFAULT_MENTOR_PRICE_PENCE);
        assert_eq!(b.listed_price_pence(s), DEFAULT_ECT_PRICE_PENCE);
    }
}
