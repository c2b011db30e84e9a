//! Which of a payee's milestone windows a set of changes touches: what a
//! preview of the participant service's commands lists, so a caller sees
//! which payments move before committing.

use super::{Closure, Facts, Suspension};
use crate::domain::schedule::Window;
use chrono::NaiveDate;

/// The windows whose dates, share or claimability differ between `before`
/// and `after`: a window new, moved or re-shared (a schedule restart, a
/// continuation window), a window gone, and a window overlapping a
/// suspension or an end of accrual that was added, changed or removed
/// (suspend, resume, end, reopen). Windows in force after come first, in
/// their order, then those gone. `before` is `None` for a payee not yet
/// enrolled: every window is then new.
pub fn affected_windows(before: Option<(&[Window], &Facts)>, after: (&[Window], &Facts)) -> Vec<String> {
    let (before_windows, before_facts) = match before {
        Some((windows, facts)) => (windows, Some(facts)),
        None => (&[][..], None),
    };
    let (after_windows, after_facts) = after;
    let mut spans: Vec<(NaiveDate, Option<NaiveDate>)> = Vec::new();
    let no_suspensions: &[Suspension] = &[];
    let no_closures: &[Closure] = &[];
    let before_suspensions = before_facts.map_or(no_suspensions, |f| &f.suspensions);
    let before_closures = before_facts.map_or(no_closures, |f| &f.closures);
    for (ours, theirs) in
        [(before_suspensions, &after_facts.suspensions[..]), (&after_facts.suspensions[..], before_suspensions)]
    {
        spans.extend(ours.iter().filter(|s| !theirs.contains(s)).map(|s| (s.from, Some(s.until))));
    }
    for (ours, theirs) in [(before_closures, &after_facts.closures[..]), (&after_facts.closures[..], before_closures)] {
        spans.extend(ours.iter().filter(|c| !theirs.contains(c)).map(|c| (c.ended_on, c.reopened_on)));
    }
    // Spans are half-open [from, until); windows are closed [start, end].
    let overlaps = |w: &Window| spans.iter().any(|(from, until)| *from <= w.end && until.is_none_or(|u| w.start < u));
    let moved = |w: &Window| before_windows.iter().find(|b| b.id == w.id) != Some(w);
    let mut ids: Vec<String> = after_windows.iter().filter(|w| moved(w) || overlaps(w)).map(|w| w.id.clone()).collect();
    ids.extend(before_windows.iter().filter(|b| !after_windows.iter().any(|a| a.id == b.id)).map(|b| b.id.clone()));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PayeeKind;
    use crate::domain::accrual::Placement;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn window(id: &str, start: &str, end: &str) -> Window {
        Window { id: id.into(), milestone: id.into(), start: day(start), end: day(end), share_percent: 15 }
    }

    fn facts() -> Facts {
        Facts::enrolled(PayeeKind::Ect, true, Placement { school_id: "s".into(), delivery_partner_id: "dp".into() })
    }

    fn windows() -> Vec<Window> {
        vec![
            window("started", "2026-09-01", "2026-12-31"),
            window("retained-1", "2027-01-01", "2027-03-31"),
            window("retained-2", "2027-04-01", "2027-07-31"),
        ]
    }

    #[test]
    fn a_new_suspension_touches_the_windows_it_overlaps_only() {
        let before = facts();
        let mut after = facts();
        after.suspensions.push(Suspension { id: "s1".into(), from: day("2026-12-15"), until: day("2027-01-01") });
        assert_eq!(affected_windows(Some((&windows(), &before)), (&windows(), &after)), ["started"]);
        assert!(affected_windows(Some((&windows(), &before)), (&windows(), &before)).is_empty());
    }

    #[test]
    fn an_end_of_accrual_touches_every_window_from_its_date_and_a_moved_window_is_listed() {
        let before = facts();
        let mut after = facts();
        after.closures.push(Closure { ended_on: day("2027-02-01"), reopened_on: None });
        let mut moved = windows();
        moved[0].end = day("2027-01-15");
        assert_eq!(
            affected_windows(Some((&windows(), &before)), (&moved, &after)),
            ["started", "retained-1", "retained-2"]
        );
    }

    #[test]
    fn every_window_of_a_new_payee_is_affected() {
        assert_eq!(affected_windows(None, (&windows(), &facts())), ["started", "retained-1", "retained-2"]);
    }
}
