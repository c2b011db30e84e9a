//! The smaller blocks: the clock, the process (logs, drain), readiness,
//! metrics, audit retention and a deployment's own data files.

use super::{ConfigError, parse};
use chrono::NaiveDate;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `STEPLAB_TODAY`, when pinned; the real date otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockSettings {
    pub today: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What the process as a whole runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `STEPLAB_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `STEPLAB_DRAIN_SECONDS`: how long in-flight calls may take to finish after SIGTERM.
    pub drain_timeout: Duration,
}

/// `STEPLAB_READINESS_INTERVAL_MS`: time between two readiness probe writes
/// to the service's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessSettings {
    pub interval: Duration,
}

/// `STEPLAB_METRICS_LISTEN`: where Prometheus scrapes `/metrics`; none when
/// unset. One listener per process (`steplab up` shares it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSettings {
    pub listen: Option<SocketAddr>,
}

/// `STEPLAB_AUDIT_RETENTION_DAYS` when unset: a little over a year, so last
/// year's academic year can still be audited in full.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

/// `STEPLAB_AUDIT_RETENTION_DAYS`: audit entries older than this many days
/// are deleted; 0 keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    pub retention_days: u32,
}

/// A deployment's own rules data instead of the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentFiles {
    /// `STEPLAB_CURRICULUM_FILE`: the curriculum (R1) content release serves.
    pub curriculum_file: Option<PathBuf>,
    /// `STEPLAB_SCHEDULES_FILE`: the payment schedules (F1) payments applies.
    pub schedules_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(super) struct RuntimeArgs {
    #[arg(long, env = "STEPLAB_TODAY")]
    today: Option<String>,
    #[arg(long, env = "STEPLAB_LOG_FORMAT")]
    log_format: Option<String>,
    #[arg(long, env = "STEPLAB_DRAIN_SECONDS")]
    drain_seconds: Option<String>,
    #[arg(long, env = "STEPLAB_READINESS_INTERVAL_MS")]
    readiness_interval_ms: Option<String>,
    #[arg(long, env = "STEPLAB_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[arg(long, env = "STEPLAB_AUDIT_RETENTION_DAYS")]
    audit_retention_days: Option<String>,
    #[arg(long, env = "STEPLAB_CURRICULUM_FILE")]
    curriculum_file: Option<String>,
    #[arg(long, env = "STEPLAB_SCHEDULES_FILE")]
    schedules_file: Option<String>,
}

impl RuntimeArgs {
    pub(super) fn clock(&self) -> Result<ClockSettings, ConfigError> {
        let today = match parse::given(&self.today) {
            Some(raw) => Some(NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
                ConfigError::new("STEPLAB_TODAY", format!("`{raw}` is not a date: use YYYY-MM-DD, e.g. 2026-09-01"))
            })?),
            None => None,
        };
        Ok(ClockSettings { today })
    }

    pub(super) fn process(&self) -> Result<ProcessSettings, ConfigError> {
        let log_format = match parse::given(&self.log_format).map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new("STEPLAB_LOG_FORMAT", format!("`{other}` is not text or json")));
            }
        };
        let drain_timeout = match parse::given(&self.drain_seconds) {
            Some(raw) => Duration::from_secs(raw.trim().parse::<u64>().map_err(|_| {
                ConfigError::new("STEPLAB_DRAIN_SECONDS", format!("`{raw}` is not a whole number of seconds"))
            })?),
            None => Duration::from_secs(20),
        };
        Ok(ProcessSettings { log_format, drain_timeout })
    }

    pub(super) fn readiness(&self) -> Result<ReadinessSettings, ConfigError> {
        let ms = parse::positive("STEPLAB_READINESS_INTERVAL_MS", &self.readiness_interval_ms, 5_000, 600_000)?;
        Ok(ReadinessSettings { interval: Duration::from_millis(ms) })
    }

    pub(super) fn metrics(&self) -> Result<MetricsSettings, ConfigError> {
        let listen = match parse::given(&self.metrics_listen) {
            Some(raw) => Some(parse::listen("STEPLAB_METRICS_LISTEN", raw)?),
            None => None,
        };
        Ok(MetricsSettings { listen })
    }

    pub(super) fn audit(&self) -> Result<AuditSettings, ConfigError> {
        let retention_days = match parse::given(&self.audit_retention_days) {
            None => DEFAULT_RETENTION_DAYS,
            Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| *n <= 36_500).ok_or_else(|| {
                ConfigError::new(
                    "STEPLAB_AUDIT_RETENTION_DAYS",
                    format!("`{raw}` is not a whole number of days from 0 (keep forever) to 36500"),
                )
            })?,
        };
        Ok(AuditSettings { retention_days })
    }

    pub(super) fn files(&self) -> DeploymentFiles {
        DeploymentFiles {
            curriculum_file: parse::given(&self.curriculum_file).map(PathBuf::from),
            schedules_file: parse::given(&self.schedules_file).map(PathBuf::from),
        }
    }
}
