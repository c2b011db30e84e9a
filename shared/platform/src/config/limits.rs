//! The limits block: message size, concurrency, connection and rate limits of
//! the business services. What enforces them lives in the platform's
//! `limits` and `connections` modules.

use super::{ConfigError, parse};
use std::time::Duration;

/// The configured limits (see the README's Configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `STEPLAB_MAX_MESSAGE_BYTES`: the largest request or response message.
    pub max_message_bytes: usize,
    /// `STEPLAB_MAX_CONCURRENT_PER_CONNECTION`: the HTTP/2 streams (calls)
    /// one connection may have open, advertised to the client, which queues
    /// further calls itself.
    pub max_concurrent_per_connection: usize,
    /// `STEPLAB_MAX_CONCURRENT_REQUESTS`: calls in progress on one service.
    pub max_concurrent_requests: usize,
    /// `STEPLAB_RATE_LIMIT_PER_MINUTE`: mutating calls per caller per minute; 0 disables.
    pub rate_limit_per_minute: u32,
    /// `STEPLAB_MAX_CONNECTIONS`: open connections per listener; past it a
    /// new connection is closed at once.
    pub max_connections: usize,
    /// `STEPLAB_HANDSHAKE_TIMEOUT_SECONDS`: the time a new connection has to
    /// finish its TLS handshake and send the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// `STEPLAB_IDLE_TIMEOUT_SECONDS`: a connection with no call in progress
    /// for this long is closed.
    pub idle_timeout: Duration,
    /// `STEPLAB_KEEPALIVE_INTERVAL_SECONDS`: how often the server pings a connection.
    pub keepalive_interval: Duration,
    /// `STEPLAB_KEEPALIVE_TIMEOUT_SECONDS`: a ping not acknowledged within this
    /// closes the connection.
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_per_connection: 64,
            max_concurrent_requests: 256,
            rate_limit_per_minute: 600,
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct LimitsArgs {
    #[arg(long, env = "STEPLAB_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<String>,
    #[arg(long, env = "STEPLAB_MAX_CONCURRENT_PER_CONNECTION")]
    max_concurrent_per_connection: Option<String>,
    #[arg(long, env = "STEPLAB_MAX_CONCURRENT_REQUESTS")]
    max_concurrent_requests: Option<String>,
    #[arg(long, env = "STEPLAB_RATE_LIMIT_PER_MINUTE")]
    rate_limit_per_minute: Option<String>,
    #[arg(long, env = "STEPLAB_MAX_CONNECTIONS")]
    max_connections: Option<String>,
    #[arg(long, env = "STEPLAB_HANDSHAKE_TIMEOUT_SECONDS")]
    handshake_timeout_seconds: Option<String>,
    #[arg(long, env = "STEPLAB_IDLE_TIMEOUT_SECONDS")]
    idle_timeout_seconds: Option<String>,
    #[arg(long, env = "STEPLAB_KEEPALIVE_INTERVAL_SECONDS")]
    keepalive_interval_seconds: Option<String>,
    #[arg(long, env = "STEPLAB_KEEPALIVE_TIMEOUT_SECONDS")]
    keepalive_timeout_seconds: Option<String>,
}

impl LimitsArgs {
    pub(super) fn parse(&self) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        let count = |variable: &str, raw: &Option<String>, default: usize, max: u64| -> Result<usize, ConfigError> {
            // Every maximum fits a usize on the 64-bit targets Steplab runs on.
            Ok(parse::positive(variable, raw, default as u64, max)? as usize)
        };
        let seconds = |variable: &str, raw: &Option<String>, default: Duration, max: u64| {
            parse::positive(variable, raw, default.as_secs(), max).map(Duration::from_secs)
        };
        Ok(Limits {
            max_message_bytes: count(
                "STEPLAB_MAX_MESSAGE_BYTES",
                &self.max_message_bytes,
                defaults.max_message_bytes,
                1 << 30,
            )?,
            max_concurrent_per_connection: count(
                "STEPLAB_MAX_CONCURRENT_PER_CONNECTION",
                &self.max_concurrent_per_connection,
                defaults.max_concurrent_per_connection,
                100_000,
            )?,
            max_concurrent_requests: count(
                "STEPLAB_MAX_CONCURRENT_REQUESTS",
                &self.max_concurrent_requests,
                defaults.max_concurrent_requests,
                1_000_000,
            )?,
            rate_limit_per_minute: match parse::given(&self.rate_limit_per_minute) {
                None => defaults.rate_limit_per_minute,
                Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                    ConfigError::new(
                        "STEPLAB_RATE_LIMIT_PER_MINUTE",
                        format!("`{raw}` is not a whole number from 0 (no limit) to 1000000"),
                    )
                })?,
            },
            max_connections: count(
                "STEPLAB_MAX_CONNECTIONS",
                &self.max_connections,
                defaults.max_connections,
                1_000_000,
            )?,
            handshake_timeout: seconds(
                "STEPLAB_HANDSHAKE_TIMEOUT_SECONDS",
                &self.handshake_timeout_seconds,
                defaults.handshake_timeout,
                3_600,
            )?,
            idle_timeout: seconds(
                "STEPLAB_IDLE_TIMEOUT_SECONDS",
                &self.idle_timeout_seconds,
                defaults.idle_timeout,
                604_800,
            )?,
            keepalive_interval: seconds(
                "STEPLAB_KEEPALIVE_INTERVAL_SECONDS",
                &self.keepalive_interval_seconds,
                defaults.keepalive_interval,
                86_400,
            )?,
            keepalive_timeout: seconds(
                "STEPLAB_KEEPALIVE_TIMEOUT_SECONDS",
                &self.keepalive_timeout_seconds,
                defaults.keepalive_timeout,
                3_600,
            )?,
        })
    }
}
