//! The book of every schedule a deployment pays by: loading and validating
//! a schedules file, lookups by schedule and window, prices and fees (F5),
//! and the continuation rules (F3, D5).

use crate::domain::PayeeKind;
use crate::domain::money;
use crate::domain::schedule::generated::{Start, term};
use crate::domain::schedule::{
    BookError, DEFAULT_COHORTS, LATER_TERMS, MILESTONES, Prices, PricesFile, Schedule, ScheduleEntry, ScheduleFile,
    Variant, Window, WindowEntry, default_share_percent, window_id,
};
use chrono::{Datelike, NaiveDate};
use std::collections::HashMap;
use std::path::Path;

/// Names how windows are derived beyond the file (F3's later terms): part
/// of the fingerprint, so outcomes stored under other rules are recomputed.
const WINDOW_RULES: &str = "window rules 2: term-by-term windows after the last (F3)";

/// Upper bound for a per-participant price (£1,000,000): far above any
/// contract, and keeps every fee computation far from overflow.
const MAX_PRICE_PENCE: i64 = 100_000_000;

/// Every schedule a deployment pays by, with prices and the output share.
#[derive(Debug, Clone)]
pub struct ScheduleBook {
    output_share_percent: i64,
    prices: Prices,
    /// Ordered by cohort, then schedule id.
    schedules: Vec<Schedule>,
    by_key: HashMap<(String, i32), usize>,
    by_window: HashMap<String, (usize, usize)>,
}

impl ScheduleBook {
    /// The built-in book (see the module documentation).
    pub fn generated() -> Result<Self, BookError> {
        Self::from_file_form(super::generate_file(DEFAULT_COHORTS)?)
            .map_err(|e| BookError(format!("the built-in schedules are inconsistent: {e}")))
    }

    /// The deployment's file, or the built-in book when none is configured.
    pub fn load(path: Option<&Path>) -> Result<Self, BookError> {
        match path {
            None => Self::generated(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    BookError(format!("STEPLAB_SCHEDULES_FILE {}: cannot be read: {e}", path.display()))
                })?;
                Self::from_json(&text).map_err(|e| BookError(format!("STEPLAB_SCHEDULES_FILE {}: {e}", path.display())))
            }
        }
    }

    /// Parses and validates a schedules file's text.
    pub fn from_json(text: &str) -> Result<Self, BookError> {
        let file: ScheduleFile =
            serde_json::from_str(text).map_err(|e| BookError(format!("not a valid schedules file: {e}")))?;
        Self::from_file_form(file)
    }

    pub fn from_file_form(file: ScheduleFile) -> Result<Self, BookError> {
        let err = |msg: String| Err(BookError(msg));
        if !(1..=100).contains(&file.output_share_percent) {
            return err(format!("output_share_percent: {} is outside 1..=100", file.output_share_percent));
        }
        for (name, price) in
            [("prices_pence.ect", file.prices_pence.ect), ("prices_pence.mentor", file.prices_pence.mentor)]
        {
            if !(1..=MAX_PRICE_PENCE).contains(&price) {
                return err(format!("{name}: {price} is outside 1..={MAX_PRICE_PENCE} pence"));
            }
        }
        if file.schedules.is_empty() {
            return err("schedules: is empty; list at least one schedule".into());
        }
        let mut schedules = Vec::with_capacity(file.schedules.len());
        for (i, entry) in file.schedules.into_iter().enumerate() {
            let at = format!("schedules[{i}] ({}, cohort {})", entry.schedule_id, entry.cohort);
            schedules.push(schedule_from_entry(entry).map_err(|e| BookError(format!("{at}: {e}")))?);
        }
        let mut by_key = HashMap::new();
        for (i, s) in schedules.iter().enumerate() {
            if by_key.insert((s.id.clone(), s.cohort), i).is_some() {
                return err(format!("schedules[{i}] ({}, cohort {}): appears twice; keep one", s.id, s.cohort));
            }
        }
        // Resolve continuations: an explicit one must exist; otherwise the
        // cohort's `ecf-extended-<start>` by the naming pattern, if present.
        for (i, schedule) in schedules.iter_mut().enumerate() {
            let (id, cohort) = (schedule.id.clone(), schedule.cohort);
            schedule.continues_on = match schedule.continues_on.take() {
                Some(target) => {
                    if target == id || !by_key.contains_key(&(target.clone(), cohort)) {
                        return err(format!(
                            "schedules[{i}] ({id}, cohort {cohort}): continues_on `{target}` is not another schedule of cohort {cohort}"
                        ));
                    }
                    Some(target)
                }
                None => derived_continuation(&id).filter(|t| *t != id && by_key.contains_key(&(t.clone(), cohort))),
            };
        }
        schedules.sort_by(|a, b| (a.cohort, &a.id).cmp(&(b.cohort, &b.id)));
        let by_key: HashMap<(String, i32), usize> =
            schedules.iter().enumerate().map(|(i, s)| ((s.id.clone(), s.cohort), i)).collect();
        let mut by_window = HashMap::new();
        for (si, s) in schedules.iter().enumerate() {
            for (wi, w) in s.windows.iter().chain(&s.later_terms).enumerate() {
                by_window.insert(w.id.clone(), (si, wi));
            }
        }
        Ok(ScheduleBook {
            output_share_percent: file.output_share_percent,
            prices: Prices { ect_pence: file.prices_pence.ect, mentor_pence: file.prices_pence.mentor },
            schedules,
            by_key,
            by_window,
        })
    }

    /// The book in the file format (continuations made explicit).
    pub fn to_file_form(&self) -> ScheduleFile {
        ScheduleFile {
            output_share_percent: self.output_share_percent,
            prices_pence: PricesFile { ect: self.prices.ect_pence, mentor: self.prices.mentor_pence },
            schedules: self
                .schedules
                .iter()
                .map(|s| ScheduleEntry {
                    schedule_id: s.id.clone(),
                    cohort: s.cohort,
                    variant: s.variant.as_str().to_owned(),
                    description: s.description.clone(),
                    continues_on: s.continues_on.clone(),
                    windows: s
                        .windows
                        .iter()
                        .map(|w| WindowEntry {
                            milestone: w.milestone.clone(),
                            start: w.start,
                            end: w.end,
                            share_percent: Some(w.share_percent),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// A stable fingerprint of everything that decides an amount or a
    /// window (FNV-1a 64 of the canonical file form), so stored statement
    /// outcomes can tell when they were computed under other schedules.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_string(&self.to_file_form()).unwrap_or_default();
        format!("{:016x}", fnv1a64(&format!("{canonical}\n{WINDOW_RULES}")))
    }

    pub fn schedule(&self, id: &str, cohort: i32) -> Option<&Schedule> {
        self.by_key.get(&(id.to_owned(), cohort)).and_then(|i| self.schedules.get(*i))
    }

    /// The schedule and window a window id names.
    pub fn window(&self, window_id: &str) -> Option<(&Schedule, &Window)> {
        let (si, wi) = self.by_window.get(window_id)?;
        let schedule = self.schedules.get(*si)?;
        Some((schedule, schedule.windows.iter().chain(&schedule.later_terms).nth(*wi)?))
    }

    /// Schedules of one cohort (or all), ordered by cohort then id.
    pub fn schedules(&self, cohort: Option<i32>) -> impl Iterator<Item = &Schedule> {
        self.schedules.iter().filter(move |s| cohort.is_none_or(|c| s.cohort == c))
    }

    /// The schedule whose windows continue `schedule` (F3), if any.
    pub fn continuation(&self, schedule: &Schedule) -> Option<&Schedule> {
        schedule.continues_on.as_deref().and_then(|id| self.schedule(id, schedule.cohort))
    }

    /// The schedules a window can be a payee's window of: its own, and
    /// every schedule of the cohort that continues on it (F3).
    pub fn schedules_reaching(&self, window_id: &str) -> Vec<&Schedule> {
        let Some((owner, _)) = self.window(window_id) else {
            return Vec::new();
        };
        self.schedules(Some(owner.cohort))
            .filter(|s| s.id == owner.id || s.continues_on.as_deref() == Some(owner.id.as_str()))
            .collect()
    }

    pub fn output_share_percent(&self) -> i64 {
        self.output_share_percent
    }

    pub fn prices(&self) -> Prices {
        self.prices
    }

    /// F5: the per-participant price of a payee's programme.
    pub fn price_pence(&self, kind: PayeeKind) -> i64 {
        match kind {
            PayeeKind::Ect => self.prices.ect_pence,
            PayeeKind::Mentor => self.prices.mentor_pence,
        }
    }

    /// The price shown for a schedule: the mentor price for a replacement
    /// (mentors only) schedule, the ECT price otherwise.
    pub fn listed_price_pence(&self, schedule: &Schedule) -> i64 {
        match schedule.variant {
            Variant::Replacement => self.prices.mentor_pence,
            _ => self.prices.ect_pence,
        }
    }

    /// F5: a milestone's fee for a payee of `kind`.
    pub fn fee_pence(&self, kind: PayeeKind, share_percent: i64) -> Option<i64> {
        money::milestone_fee_pence(self.price_pence(kind), share_percent, self.output_share_percent)
    }
}

/// FNV-1a 64: a small hash that is the same on every build and platform
/// (std's hasher promises neither), for fingerprints and page tokens.
pub fn fnv1a64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// D5, W9: the schedule a payee on `schedule_id` moves to on a return on
/// `returned_on`: the same variant for the term of the return (C1's
/// mapping), when the id follows the DfE's `ecf-<variant>-<start>` pattern.
pub fn schedule_for_return(schedule_id: &str, returned_on: NaiveDate) -> String {
    let start = match returned_on.month() {
        6..=10 => Start::September,
        3..=5 => Start::April,
        _ => Start::January,
    };
    match schedule_id.strip_prefix("ecf-").and_then(|rest| rest.split_once('-')) {
        Some((variant, _)) => format!("ecf-{variant}-{}", start.name()),
        None => schedule_id.to_owned(),
    }
}

/// `ecf-<variant>-<start>` continues on `ecf-extended-<start>`.
fn derived_continuation(schedule_id: &str) -> Option<String> {
    let rest = schedule_id.strip_prefix("ecf-")?;
    let (variant, start) = rest.split_once('-')?;
    (variant != "extended" && !start.is_empty()).then(|| format!("ecf-extended-{start}"))
}

fn schedule_from_entry(entry: ScheduleEntry) -> Result<Schedule, String> {
    let id_ok = !entry.schedule_id.is_empty()
        && entry.schedule_id.len() <= 64
        && entry.schedule_id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return Err("schedule_id must be 1..=64 characters of a-z, 0-9 and `-`, e.g. ecf-standard-september".into());
    }
    if !(1..=9999).contains(&entry.cohort) {
        return Err(format!("cohort {} is outside 1..=9999", entry.cohort));
    }
    let variant = Variant::parse(&entry.variant)
        .ok_or_else(|| format!("variant `{}` is not standard, extended, reduced or replacement", entry.variant))?;
    if entry.windows.is_empty() {
        return Err("windows: is empty; list the milestone windows in order".into());
    }
    let mut windows: Vec<Window> = Vec::with_capacity(entry.windows.len());
    for (i, w) in entry.windows.into_iter().enumerate() {
        let at = format!("windows[{i}] ({})", w.milestone);
        if !MILESTONES.contains(&w.milestone.as_str()) {
            return Err(format!("{at}: unknown milestone; use one of {}", MILESTONES.join(", ")));
        }
        if windows.iter().any(|prev| prev.milestone == w.milestone) {
            return Err(format!("{at}: the milestone appears twice"));
        }
        if w.end < w.start {
            return Err(format!("{at}: ends {} before it starts {}", w.end, w.start));
        }
        if let Some(prev) = windows.last()
            && w.start <= prev.end
        {
            return Err(format!(
                "{at}: starts {}, not after the previous window's end {}: windows are in order and never overlap",
                w.start, prev.end
            ));
        }
        let share_percent = match w.share_percent {
            Some(s) if (0..=100).contains(&s) => s,
            Some(s) => return Err(format!("{at}: share_percent {s} is outside 0..=100")),
            None => default_share_percent(&w.milestone).unwrap_or_default(),
        };
        windows.push(Window {
            id: window_id(&entry.schedule_id, entry.cohort, &w.milestone),
            milestone: w.milestone,
            start: w.start,
            end: w.end,
            share_percent,
        });
    }
    if let Some(target) = &entry.continues_on
        && target.is_empty()
    {
        return Err("continues_on: is empty; leave it out for the default".into());
    }
    let later_terms = later_terms(&entry.schedule_id, entry.cohort, &windows);
    Ok(Schedule {
        id: entry.schedule_id,
        cohort: entry.cohort,
        variant,
        description: entry.description,
        continues_on: entry.continues_on,
        windows,
        later_terms,
    })
}

/// F3: [`LATER_TERMS`] windows of a term each (autumn 1 Aug - 31 Dec,
/// spring 1 Jan - 31 Mar, summer 1 Apr - 31 Jul), from the first term that
/// starts after the last window; none past the calendar's end.
fn later_terms(schedule_id: &str, cohort: i32, windows: &[Window]) -> Vec<Window> {
    let Some(last_end) = windows.last().map(|w| w.end) else {
        return Vec::new();
    };
    let Some(mut n) = last_end.year().checked_sub(1).and_then(|y| y.checked_mul(3)) else {
        return Vec::new();
    };
    let mut later = Vec::with_capacity(LATER_TERMS);
    while later.len() < LATER_TERMS {
        let Ok((start, end)) = term(n) else { break };
        if start > last_end {
            let milestone = format!("term-{}", windows.len() + later.len() + 1);
            later.push(Window {
                id: window_id(schedule_id, cohort, &milestone),
                milestone,
                start,
                end,
                share_percent: 0,
            });
        }
        n += 1;
    }
    later
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::fixtures::*;
    use crate::domain::test_support::d;

    #[test]
    fn f3_standard_reduced_and_replacement_continue_on_the_cohorts_extended_schedule() {
        let b = book();
        for id in ["ecf-standard-april", "ecf-reduced-april", "ecf-replacement-april"] {
            let s = b.schedule(id, 2026).expect("schedule");
            assert_eq!(s.continues_on.as_deref(), Some("ecf-extended-april"), "{id}");
        }
        let reaching: Vec<&str> =
            b.schedules_reaching("ecf-extended-april/2026/extended-2").iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            reaching,
            ["ecf-extended-april", "ecf-reduced-april", "ecf-replacement-april", "ecf-standard-april"]
        );
    }

    #[test]
    fn d5_a_return_moves_the_payee_to_the_same_variant_for_the_term_of_the_return() {
        assert_eq!(schedule_for_return("ecf-standard-september", d("2027-04-12")), "ecf-standard-april");
        assert_eq!(schedule_for_return("ecf-extended-september", d("2026-11-28")), "ecf-extended-january");
        assert_eq!(schedule_for_return("ecf-standard-april", d("2027-06-01")), "ecf-standard-september");
        assert_eq!(schedule_for_return("custom", d("2027-06-01")), "custom");
    }

    #[test]
    fn f3_every_schedule_continues_term_by_term_after_its_last_window() {
        let b = book();
        let s = b.schedule("ecf-extended-september", 2024).expect("schedule");
        let later: Vec<(String, NaiveDate, NaiveDate)> =
            s.later_terms.iter().take(3).map(|w| (w.milestone.clone(), w.start, w.end)).collect();
        assert_eq!(
            later,
            [
                w("term-10", "2027-08-01", "2027-12-31"),
                w("term-11", "2028-01-01", "2028-03-31"),
                w("term-12", "2028-04-01", "2028-07-31"),
            ]
        );
        assert_eq!(s.later_terms.len(), LATER_TERMS);
        // A statement can be asked for a term window like any other.
        let (owner, window) = b.window("ecf-extended-september/2024/term-11").expect("term window");
        assert_eq!((owner.id.as_str(), window.share_percent), ("ecf-extended-september", 0));
        let reduced = b.schedule("ecf-reduced-january", 2024).expect("reduced");
        assert!(reduced.later_terms.iter().all(|w| w.start > reduced.last_end().expect("end")));
    }

    #[test]
    fn f1_a_schedules_file_round_trips_with_the_same_fingerprint() {
        let b = book();
        let text = serde_json::to_string_pretty(&b.to_file_form()).expect("json");
        let again = ScheduleBook::from_json(&text).expect("round trip");
        assert_eq!(again.fingerprint(), b.fingerprint());
        assert_eq!(again.schedules(None).count(), b.schedules(None).count());
    }

    fn small_file() -> serde_json::Value {
        serde_json::json!({
            "output_share_percent": 60,
            "prices_pence": { "ect": 150000, "mentor": 90000 },
            "schedules": [{
                "schedule_id": "ecf-standard-september",
                "cohort": 2030,
                "variant": "standard",
                "windows": [
                    { "milestone": "started", "start": "2030-06-01", "end": "2030-12-31" },
                    { "milestone": "completed", "start": "2031-01-01", "end": "2031-07-31", "share_percent": 80 }
                ]
            }]
        })
    }

    #[test]
    fn f1_a_deployment_file_sets_its_own_prices_shares_and_windows() {
        let b = ScheduleBook::from_json(&small_file().to_string()).expect("valid");
        assert_eq!(b.price_pence(PayeeKind::Ect), 150_000);
        let s = b.schedule("ecf-standard-september", 2030).expect("schedule");
        assert_eq!(s.windows[0].share_percent, 20, "default share");
        assert_eq!(s.windows[1].share_percent, 80, "explicit share");
        assert_eq!(s.continues_on, None, "no extended schedule in this file");
        assert_ne!(b.fingerprint(), book().fingerprint());
    }

    fn refused(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = small_file();
        edit(&mut v);
        ScheduleBook::from_json(&v.to_string()).expect_err("malformed").to_string()
    }

    #[test]
    fn f1_a_malformed_file_says_where() {
        let syntax =
            ScheduleBook::from_json("{\n  \"output_share_percent\": 60,\n  oops\n}").expect_err("syntax").to_string();
        assert!(syntax.contains("line 3"), "{syntax}");
        let overlap = refused(|v| v["schedules"][0]["windows"][1]["start"] = "2030-12-01".into());
        assert!(
            overlap.contains("schedules[0] (ecf-standard-september, cohort 2030): windows[1] (completed)"),
            "{overlap}"
        );
        assert!(overlap.contains("overlap"), "{overlap}");
        let unknown = refused(|v| v["schedules"][0]["windows"][0]["milestone"] = "begun".into());
        assert!(unknown.contains("windows[0] (begun): unknown milestone"), "{unknown}");
        let typo = refused(|v| v["schedules"][0]["windws"] = serde_json::json!([]));
        assert!(typo.contains("windws"), "{typo}");
        let price = refused(|v| v["prices_pence"]["mentor"] = 0.into());
        assert!(price.contains("prices_pence.mentor"), "{price}");
        let share = refused(|v| v["output_share_percent"] = 0.into());
        assert!(share.contains("output_share_percent"), "{share}");
        let continuation = refused(|v| v["schedules"][0]["continues_on"] = "ecf-extended-september".into());
        assert!(continuation.contains("continues_on"), "{continuation}");
        let twice = refused(|v| {
            let copy = v["schedules"][0].clone();
            v["schedules"].as_array_mut().expect("array").push(copy);
        });
        assert!(twice.contains("appears twice"), "{twice}");
        let bad_date = refused(|v| v["schedules"][0]["windows"][0]["end"] = "2030-02-30".into());
        assert!(bad_date.contains("line") || bad_date.contains("input"), "{bad_date}");
    }

    #[test]
    fn f1_a_missing_file_names_the_variable_and_the_path() {
        let err = ScheduleBook::load(Some(Path::new("/nonexistent/schedules.json"))).expect_err("missing").to_string();
        assert!(err.starts_with("STEPLAB_SCHEDULES_FILE /nonexistent/schedules.json"), "{err}");
    }
}
