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

use crate::domain::PayeeKind;
use crate::domain::money;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Every milestone name a window may carry, in no particular order.
pub const MILESTONES: [&str; 9] = [
    "started",
    "retained-1",
    "retained-2",
    "retained-3",
    "retained-4",
    "completed",
    "extended-1",
    "extended-2",
    "extended-3",
];

/// The cohorts of the built-in book: the ones the participant service
/// registers for (C1), so every enrolment it sends has a schedule here.
pub const DEFAULT_COHORTS: std::ops::RangeInclusive<i32> = steplab_platform::date::COHORTS;

/// F5 output share and prices of the built-in book. The prices are
/// placeholders: a deployment sets its contract's per-participant prices in
/// its schedules file.
pub const DEFAULT_OUTPUT_SHARE_PERCENT: i64 = 60;
pub const DEFAULT_ECT_PRICE_PENCE: i64 = 120_000;
pub const DEFAULT_MENTOR_PRICE_PENCE: i64 = 100_000;

/// Names how windows are derived beyond the file (F3's later terms): part
/// of the fingerprint, so outcomes stored under other rules are recomputed.
const WINDOW_RULES: &str = "window rules 2: term-by-term windows after the last (F3)";

/// F3: how many terms after its last window a schedule's windows continue,
/// term by term (four school years: far beyond a 12-month deferral or a
/// late reinstatement of a two- or three-year programme).
pub const LATER_TERMS: usize = 12;

/// Upper bound for a per-participant price (£1,000,000): far above any
/// contract, and keeps every fee computation far from overflow.
const MAX_PRICE_PENCE: i64 = 100_000_000;

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
        Self::from_file_form(generate_file(DEFAULT_COHORTS)?)
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

/// The schedules file (`STEPLAB_SCHEDULES_FILE`), JSON:
///
/// ```json
/// {
///   "output_share_percent": 60,
///   "prices_pence": { "ect": 120000, "mentor": 100000 },
///   "schedules": [
///     { "schedule_id": "ecf-standard-september", "cohort": 2024, "variant": "standard",
///       "description": "...", "continues_on": "ecf-extended-september",
///       "windows": [ { "milestone": "started", "start": "2024-06-01", "end": "2024-12-31" } ] }
///   ]
/// }
/// ```
///
/// `share_percent` per window defaults to F5's share of its milestone;
/// `continues_on` defaults to the cohort's `ecf-extended-<start>` when it
/// exists. Unknown fields are refused so a typo cannot pass silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    pub output_share_percent: i64,
    pub prices_pence: PricesFile,
    pub schedules: Vec<ScheduleEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesFile {
    pub ect: i64,
    pub mentor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub schedule_id: String,
    pub cohort: i32,
    pub variant: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues_on: Option<String>,
    pub windows: Vec<WindowEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowEntry {
    pub milestone: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_percent: Option<i64>,
}

/// The three standard starts (C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    September,
    January,
    April,
}

impl Start {
    const ALL: [Start; 3] = [Start::September, Start::January, Start::April];

    fn name(self) -> &'static str {
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
fn term(n: i32) -> Result<(NaiveDate, NaiveDate), BookError> {
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
    use crate::domain::test_support::d;
    use chrono::Datelike;

    fn book() -> ScheduleBook {
        ScheduleBook::generated().expect("built-in book")
    }

    fn dates(s: &Schedule) -> Vec<(String, NaiveDate, NaiveDate)> {
        s.windows.iter().map(|w| (w.milestone.clone(), w.start, w.end)).collect()
    }

    fn w(m: &str, a: &str, b: &str) -> (String, NaiveDate, NaiveDate) {
        (m.to_owned(), d(a), d(b))
    }

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
