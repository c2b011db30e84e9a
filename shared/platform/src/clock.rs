//! "Today" for the rules. Demos and tests pin it with `STEPLAB_TODAY` so that
//! a scenario gives the same answer on any day it runs.

use crate::config::ClockSettings;
use chrono::{NaiveDate, NaiveDateTime, Utc};

/// The source of today's date (and of instants for `recorded_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The real UTC date.
    System,
    /// A pinned date; instants still come from the real clock so ordering holds.
    Pinned(NaiveDate),
}

impl Clock {
    /// The clock `STEPLAB_TODAY` asks for: pinned to it when set, else the real one.
    pub fn from_settings(settings: ClockSettings) -> Self {
        settings.today.map_or(Clock::System, Clock::Pinned)
    }

    pub fn today(&self) -> NaiveDate {
        match self {
            Clock::System => Utc::now().date_naive(),
            Clock::Pinned(date) => *date,
        }
    }

    /// The instant a change is recorded, in UTC.
    pub fn now(&self) -> NaiveDateTime {
        Utc::now().naive_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_clock_answers_its_date() {
        let date = NaiveDate::from_ymd_opt(2026, 2, 28).expect("valid date");
        assert_eq!(Clock::Pinned(date).today(), date);
    }
}
