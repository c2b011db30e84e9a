//! F1 and F5 as data: payment schedules, their dated milestone windows, the
//! milestone shares and the per-programme price.
//!
//! The built-in book is generated for cohorts 2021..=2030 by one pattern; a
//! deployment replaces it with its own JSON file (`STEPLAB_SCHEDULES_FILE`,
//! see [`ScheduleFile`]), validated at start-up with errors that say where.
//!
//! The pattern. A school year has three terms: autumn (1 Aug - 31 Dec),
//! spring (1 Jan - 31 Mar) and summer (1 Apr - 31 Jul), and six half terms
//! (autumn 1 Aug - 31 Oct and 1 Nov - 31 Dec, spring 1 Jan - 14 Feb and
//! 15 Feb - 31 Mar, summer 1 Apr - 31 May and 1 Jun - 31 Jul). A schedule of
//! cohort C starting in September, January or April puts one milestone
//! window in each term from the autumn of C, the spring of C+1 or the summer
//! of C+1. The first window (`started`) opens early, on the first day of
//! that schedule's registration period (C1: 1 June, 1 November, 1 March), so
//! anyone registered on it can earn `started`. Variants:
//!
//! * `standard`: started, retained-1..-4, completed: six terms (two years).
//! * `extended`: adds extended-1..-3 before completed: nine terms. Its
//!   windows after the standard ones are also where the cohort's other
//!   payees continue after a long deferral (F3).
//! * `reduced`: the six standard milestones one per half term, over one
//!   school year (an induction shorter than two years).
//! * `replacement`: the standard windows, for a mentor who replaces another
//!   part way through (mentors only).

mod book;
mod file;
mod generated;

pub use book::{ScheduleBook, fnv1a64, schedule_for_return};
pub use file::{PricesFile, ScheduleEntry, ScheduleFile, WindowEntry};
pub use generated::generate_file;

use chrono::NaiveDate;

/// Every milestone name a window may carry, in no particular order: a
/// milestone is earned to be declared, so the names are the DfE's
/// declaration types.
pub const MILESTONES: [&str; 9] = steplab_platform::dfe::DECLARATION_TYPES;

/// The cohorts of the built-in book: the ones the participant service
/// registers for (C1), so every enrolment it sends has a schedule here.
pub const DEFAULT_COHORTS: std::ops::RangeInclusive<i32> = steplab_platform::date::COHORTS;

/// F5 output share and prices of the built-in book. The prices are
/// placeholders: a deployment sets its contract's per-participant prices in
/// its schedules file.
pub const DEFAULT_OUTPUT_SHARE_PERCENT: i64 = 60;
pub const DEFAULT_ECT_PRICE_PENCE: i64 = 120_000;
pub const DEFAULT_MENTOR_PRICE_PENCE: i64 = 100_000;

/// F3: how many terms after its last window a schedule's windows continue,
/// term by term (four school years: far beyond a 12-month deferral or a
/// late reinstatement of a two- or three-year programme).
pub const LATER_TERMS: usize = 12;

/// F5: started 20%, each retained 15%, completed 20%, each extended 15%.
pub fn default_share_percent(milestone: &str) -> Option<i64> {
    match milestone {
        "started" | "completed" => Some(20),
        m if MILESTONES.contains(&m) => Some(15),
        _ => None,
    }
}

/// `<schedule>/<cohort>/<milestone>`.
pub fn window_id(schedule_id: &str, cohort: i32, milestone: &str) -> String {
    format!("{schedule_id}/{cohort}/{milestone}")
}

/// The parts of a window id, if it has the shape `<schedule>/<cohort>/<milestone>`.
pub fn parse_window_id(id: &str) -> Option<(&str, i32, &str)> {
    let mut parts = id.split('/');
    let (schedule, cohort, milestone) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || schedule.is_empty() || milestone.is_empty() {
        return None;
    }
    let cohort: i32 = cohort.parse().ok().filter(|c| *c > 0)?;
    Some((schedule, cohort, milestone))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    Standard,
    Extended,
    Reduced,
    Replacement,
}

impl Variant {
    pub const ALL: [Variant; 4] = [Variant::Standard, Variant::Extended, Variant::Reduced, Variant::Replacement];

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Standard => "standard",
            Variant::Extended => "extended",
            Variant::Reduced => "reduced",
            Variant::Replacement => "replacement",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One dated window in which one milestone can be earned (closed interval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `<schedule>/<cohort>/<milestone>`.
    pub id: String,
    pub milestone: String,
    pub start: NaiveDate,
    /// Inclusive.
    pub end: NaiveDate,
    pub share_percent: i64,
}

impl Window {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub id: String,
    pub cohort: i32,
    pub variant: Variant,
    pub description: String,
    /// The schedule of the same cohort whose later windows continue this one
    /// when a deferral or reinstatement outlasts it (F3).
    pub continues_on: Option<String>,
    /// In order, never overlapping.
    pub windows: Vec<Window>,
    /// F3: the terms after the last window, one window each
    /// (`<schedule>/<cohort>/term-<n>`, `n` counting the schedule's windows
    /// from 1), where a payee whose training outlasts every window earns
    /// their remaining milestones. Derived from the windows, not in the file.
    pub later_terms: Vec<Window>,
}

impl Schedule {
    /// The milestones a payee on this schedule can earn, in order.
    pub fn milestones(&self) -> impl Iterator<Item = &Window> {
        self.windows.iter()
    }

    pub fn last_end(&self) -> Option<NaiveDate> {
        self.windows.last().map(|w| w.end)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    pub ect_pence: i64,
    pub mentor_pence: i64,
}

/// A schedules file could not be used; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BookError(pub String);

/// The built-in book and window shapes the tests of the schedule's parts share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::domain::test_support::d;

    pub fn book() -> ScheduleBook {
        ScheduleBook::generated().expect("built-in book")
    }

    pub fn dates(s: &Schedule) -> Vec<(String, NaiveDate, NaiveDate)> {
        s.windows.iter().map(|w| (w.milestone.clone(), w.start, w.end)).collect()
    }

    pub fn w(m: &str, a: &str, b: &str) -> (String, NaiveDate, NaiveDate) {
        (m.to_owned(), d(a), d(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PayeeKind;
    use crate::domain::schedule::fixtures::*;
    use crate::domain::test_support::d;

    #[test]
    fn f1_window_ids_name_schedule_cohort_and_milestone() {
        assert_eq!(
            parse_window_id("ecf-standard-september/2025/started"),
            Some(("ecf-standard-september", 2025, "started"))
        );
        for bad in ["", "a/b", "a/2025", "a/x/started", "a/2025/started/x", "/2025/x", "a/-1/x"] {
            assert_eq!(parse_window_id(bad), None, "{bad}");
        }
        let b = book();
        let (s, win) = b.window("ecf-standard-april/2024/completed").expect("window");
        assert_eq!((s.id.as_str(), win.end), ("ecf-standard-april", d("2027-03-31")));
        assert!(b.window("ecf-standard-april/2019/completed").is_none());
    }

    #[test]
    fn f5_shares_are_data_with_the_default_split() {
        let b = book();
        let s = b.schedule("ecf-extended-january", 2027).expect("schedule");
        let shares: Vec<i64> = s.windows.iter().map(|w| w.share_percent).collect();
        assert_eq!(shares, [20, 15, 15, 15, 15, 15, 15, 15, 20]);
        assert_eq!(b.output_share_percent(), 60);
        assert_eq!(b.fee_pence(PayeeKind::Ect, 20), Some(14_400));
        assert_eq!(b.fee_pence(PayeeKind::Mentor, 20), Some(12_000));
    }
}
