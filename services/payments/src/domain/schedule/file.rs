//! The schedules file's JSON form (`STEPLAB_SCHEDULES_FILE`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

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
