//! Half-open runs of days `[from, until)`, possibly without an end, and the
//! union of several: the vocabulary the release engine counts in.

use chrono::NaiveDate;

/// The days `from <= day < until`; `until = None` means for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
}

impl Period {
    pub fn new(from: NaiveDate, until: Option<NaiveDate>) -> Self {
        Self { from, until }
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && self.until.is_none_or(|until| day < until)
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_some_and(|until| until <= self.from)
    }

    /// The part on or after `start`, if any.
    pub fn clipped_to_start_at(self, start: NaiveDate) -> Option<Period> {
        let clipped = Period { from: self.from.max(start), until: self.until };
        (!clipped.is_empty()).then_some(clipped)
    }
}

/// The union of `periods` as disjoint, non-adjacent periods in date order
/// (empty ones dropped), so each day is counted at most once.
pub fn union(periods: impl IntoIterator<Item = Period>) -> Vec<Period> {
    let mut sorted: Vec<Period> = periods.into_iter().filter(|p| !p.is_empty()).collect();
    sorted.sort_by_key(|p| p.from);
    let mut merged: Vec<Period> = Vec::with_capacity(sorted.len());
    for period in sorted {
        match merged.last_mut() {
            // Overlapping or touching ([a, b) then [b, c)): one run of days.
            Some(last) if last.until.is_none_or(|until| period.from <= until) => {
                last.until = match (last.until, period.until) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => merged.push(period),
        }
    }
    merged
}

/// The first day on or after `day` outside every period of `closed` (a
/// [`union`]); `None` when `day` falls in a period without an end.
pub fn first_open_day(day: NaiveDate, closed: &[Period]) -> Option<NaiveDate> {
    match closed.iter().find(|p| p.contains(day)) {
        // The union leaves a gap after each period, so its end is open.
        Some(period) => period.until,
        None => Some(day),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn p(from: &str, until: Option<&str>) -> Period {
        Period::new(d(from), until.map(d))
    }

    #[test]
    fn periods_are_half_open() {
        let period = p("2026-01-10", Some("2026-01-20"));
        assert!(!period.contains(d("2026-01-09")));
        assert!(period.contains(d("2026-01-10")));
        assert!(period.contains(d("2026-01-19")));
        assert!(!period.contains(d("2026-01-20")));
        assert!(p("2026-01-10", None).contains(d("2099-01-01")));
    }

    #[test]
    fn overlapping_and_touching_periods_merge_and_empty_ones_vanish() {
        let merged = union([
            p("2026-03-01", Some("2026-03-10")),
            p("2026-01-01", Some("2026-01-10")),
            p("2026-01-10", Some("2026-01-15")),
            p("2026-01-12", Some("2026-01-14")),
            p("2026-02-01", Some("2026-02-01")),
            p("2026-03-05", None),
        ]);
        assert_eq!(merged, [p("2026-01-01", Some("2026-01-15")), p("2026-03-01", None)]);
    }

    #[test]
    fn the_first_open_day_skips_a_closed_run() {
        let closed = union([p("2026-01-01", Some("2026-01-10")), p("2026-02-01", None)]);
        assert_eq!(first_open_day(d("2025-12-31"), &closed), Some(d("2025-12-31")));
        assert_eq!(first_open_day(d("2026-01-05"), &closed), Some(d("2026-01-10")));
        assert_eq!(first_open_day(d("2026-02-05"), &closed), None);
    }

    #[test]
    fn clipping_keeps_only_the_days_on_or_after_the_start() {
        let start = d("2026-09-01");
        assert_eq!(
            p("2026-08-01", Some("2026-10-01")).clipped_to_start_at(start),
            Some(p("2026-09-01", Some("2026-10-01")))
        );
        assert_eq!(p("2026-08-01", Some("2026-09-01")).clipped_to_start_at(start), None);
    }
}
