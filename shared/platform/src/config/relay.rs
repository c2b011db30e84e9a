//! The relay block: where the relays deliver (the other services' URLs), how
//! many commands they send at once, how hard they try before parking a
//! command, and how far behind they may fall before the service refuses
//! changes (backpressure).

use super::{ConfigError, parse};
use std::net::SocketAddr;
use std::time::Duration;

/// The services' URLs, as the relays and the consistency check reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// `STEPLAB_CONTENT_URL`: where the participant service sends content-release commands.
    pub content_url: String,
    /// `STEPLAB_PAYMENTS_URL`: where the participant service and the DfE
    /// gateway send payments commands.
    pub payments_url: String,
    /// `STEPLAB_DFE_GATEWAY_URL`: where the participant service and payments
    /// send what the DfE is to be told (status changes, milestones); by
    /// default this deployment's own DfE gateway listener (port 50054).
    pub dfe_gateway_url: String,
}

/// How a relay delivers: how many commands at once, and how long it keeps
/// trying one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRetry {
    /// `STEPLAB_RELAY_MAX_ATTEMPTS`: deliveries tried before a command is parked.
    pub max_attempts: i32,
    /// `STEPLAB_RELAY_MAX_BACKOFF_MS`: the longest wait between two deliveries.
    pub max_backoff: Duration,
    /// `STEPLAB_RELAY_BATCH_SIZE`: commands a lane claims at once and sends
    /// in one `ApplyCommands` call (at most 1,000, the receivers' limit).
    pub batch_size: usize,
    /// `STEPLAB_RELAY_IN_FLIGHT`: batches a lane has in flight at once.
    pub in_flight: usize,
    /// `STEPLAB_RELAY_LINGER_MS`: how long the relay lets commits gather
    /// after one wakes it, before its lanes claim.
    pub linger: Duration,
}

/// Backpressure: how far behind its relay a service accepts changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressure {
    /// `STEPLAB_BACKPRESSURE_MAX_LAG_MS`: past this lag (how long the relay's
    /// most overdue command has been due) mutating calls are refused with
    /// RESOURCE_EXHAUSTED until it catches up; `None` (set to 0): never.
    pub max_lag: Option<Duration>,
    /// `STEPLAB_BACKPRESSURE_MIN_BACKLOG`: with no more than this many
    /// first-attempt commands on their way, nothing is refused however old
    /// they are: a slow delivery of a few commands is the receiver's latency,
    /// which refusing callers cannot shorten, not callers outrunning the relay.
    pub min_backlog: usize,
}

impl Default for Backpressure {
    fn default() -> Self {
        Self { max_lag: Some(Duration::from_millis(DEFAULT_MAX_LAG_MS)), min_backlog: DEFAULT_MIN_BACKLOG as usize }
    }
}

/// Ten changes' worth of commands (a deferral sends three): more than a
/// person at a terminal or a handful of sequential callers ever has on its
/// way at once, and a small share of one batch, so that a flood is refused
/// before its backlog takes much longer than the bound to deliver. A CI run
/// on a busy machine refused a lone operator's deferral (docs/runbook.md)
/// because its previous change's three commands had taken 191 ms to arrive.
const DEFAULT_MIN_BACKLOG: u64 = 30;
/// Beyond any batch the relay has on its way (64 batches of 1,000).
const MAX_MIN_BACKLOG: u64 = 64_000;

/// A quarter of a second: well above a healthy relay's lag (it claims a
/// commit's commands at once) and well below what a person waiting for a
/// change to show in content release would notice.
const DEFAULT_MAX_LAG_MS: u64 = 250;
/// Ten minutes: past that a bound no longer bounds anything a user sees.
const MAX_MAX_LAG_MS: u64 = 600_000;

/// The listeners the default targets point at.
pub(super) struct OwnListeners {
    pub content: SocketAddr,
    pub payments: SocketAddr,
    pub dfe_gateway: SocketAddr,
    pub serve_tls: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct RelayArgs {
    #[arg(long, env = "STEPLAB_CONTENT_URL")]
    content_url: Option<String>,
    #[arg(long, env = "STEPLAB_PAYMENTS_URL")]
    payments_url: Option<String>,
    #[arg(long, env = "STEPLAB_DFE_GATEWAY_URL")]
    dfe_gateway_url: Option<String>,
    #[arg(long, env = "STEPLAB_RELAY_MAX_ATTEMPTS")]
    relay_max_attempts: Option<String>,
    #[arg(long, env = "STEPLAB_RELAY_MAX_BACKOFF_MS")]
    relay_max_backoff_ms: Option<String>,
    #[arg(long, env = "STEPLAB_RELAY_BATCH_SIZE")]
    relay_batch_size: Option<String>,
    #[arg(long, env = "STEPLAB_RELAY_IN_FLIGHT")]
    relay_in_flight: Option<String>,
    #[arg(long, env = "STEPLAB_RELAY_LINGER_MS")]
    relay_linger_ms: Option<String>,
    #[arg(long, env = "STEPLAB_BACKPRESSURE_MAX_LAG_MS")]
    backpressure_max_lag_ms: Option<String>,
    #[arg(long, env = "STEPLAB_BACKPRESSURE_MIN_BACKLOG")]
    backpressure_min_backlog: Option<String>,
}

/// Commands per `ApplyCommands` call by default. Large enough that the
/// per-call costs (claim, lease, record, the receiver's transaction and
/// de-duplication look-up) are shared by many commands even under a flood;
/// small enough that one call stays well inside the 5 s delivery deadline on
/// a debug-built receiver (a few ms per command) and a failed call retries
/// little. The receivers take up to 1,000.
pub const DEFAULT_RELAY_BATCH_SIZE: u64 = 256;
/// Batches in flight per lane by default: enough to overlap one batch's
/// claim and record with the others' delivery, few enough that the lanes of
/// one relay do not take all of a small database pool (SQLite: 4).
pub const DEFAULT_RELAY_IN_FLIGHT: u64 = 4;
/// How long the relay lets commits gather by default. A commit wakes the
/// relay at once; without a pause each commit of a steady trickle (one
/// caller after another) got its own claim, call, receiver transaction and
/// record per target, most of the work of a deferral. A few milliseconds
/// gather several commits into one batch at any rate, far below the lag
/// backpressure bounds (250 ms).
pub const DEFAULT_RELAY_LINGER_MS: u64 = 5;

impl RelayArgs {
    /// The targets as set, else this deployment's own listeners: https when
    /// they serve TLS (the certificate must then be valid for the address,
    /// e.g. 127.0.0.1, as `steplab up` connects to it).
    pub(super) fn targets(&self, own: &OwnListeners) -> Result<Targets, ConfigError> {
        let scheme = if own.serve_tls { "https" } else { "http" };
        let target = |variable: &str, raw: &Option<String>, listen: SocketAddr| match parse::given(raw) {
            Some(raw) => parse::url(variable, raw),
            None => Ok(format!("{scheme}://{}", super::connectable(listen))),
        };
        Ok(Targets {
            content_url: target("STEPLAB_CONTENT_URL", &self.content_url, own.content)?,
            payments_url: target("STEPLAB_PAYMENTS_URL", &self.payments_url, own.payments)?,
            dfe_gateway_url: target("STEPLAB_DFE_GATEWAY_URL", &self.dfe_gateway_url, own.dfe_gateway)?,
        })
    }

    pub(super) fn retry(&self) -> Result<RelayRetry, ConfigError> {
        let max_attempts = parse::positive("STEPLAB_RELAY_MAX_ATTEMPTS", &self.relay_max_attempts, 50, 10_000)?;
        let max_backoff_ms =
            parse::positive("STEPLAB_RELAY_MAX_BACKOFF_MS", &self.relay_max_backoff_ms, 30_000, 3_600_000)?;
        let batch_size =
            parse::positive("STEPLAB_RELAY_BATCH_SIZE", &self.relay_batch_size, DEFAULT_RELAY_BATCH_SIZE, 1_000)?;
        let in_flight = parse::positive("STEPLAB_RELAY_IN_FLIGHT", &self.relay_in_flight, DEFAULT_RELAY_IN_FLIGHT, 64)?;
        let linger_ms = parse::whole("STEPLAB_RELAY_LINGER_MS", &self.relay_linger_ms, DEFAULT_RELAY_LINGER_MS, 1_000)?;
        Ok(RelayRetry {
            // At most 10 000, so it fits.
            max_attempts: max_attempts as i32,
            max_backoff: Duration::from_millis(max_backoff_ms),
            // At most 1,000 and 64, so they fit.
            batch_size: batch_size as usize,
            in_flight: in_flight as usize,
            linger: Duration::from_millis(linger_ms),
        })
    }

    pub(super) fn backpressure(&self) -> Result<Backpressure, ConfigError> {
        const VARIABLE: &str = "STEPLAB_BACKPRESSURE_MAX_LAG_MS";
        let min_backlog = parse::whole(
            "STEPLAB_BACKPRESSURE_MIN_BACKLOG",
            &self.backpressure_min_backlog,
            DEFAULT_MIN_BACKLOG,
            MAX_MIN_BACKLOG,
        )? as usize;
        let max_lag = match parse::given(&self.backpressure_max_lag_ms) {
            None => Backpressure::default().max_lag,
            Some(raw) => {
                let ms = raw.trim().parse::<u64>().ok().filter(|ms| *ms <= MAX_MAX_LAG_MS).ok_or_else(|| {
                    ConfigError::new(
                        VARIABLE,
                        format!(
                            "`{raw}` is not a whole number of milliseconds from 0 (backpressure off) to {MAX_MAX_LAG_MS}"
                        ),
                    )
                })?;
                (ms > 0).then(|| Duration::from_millis(ms))
            }
        };
        Ok(Backpressure { max_lag, min_backlog })
    }
}
