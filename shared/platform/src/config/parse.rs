//! The value checks the blocks share. Each error names the variable and says
//! what would be accepted, in the words CONTRACT.md's table uses.

use super::ConfigError;
use std::net::SocketAddr;

/// A variable counts as set only with something besides whitespace in it.
pub(super) fn given(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().filter(|v| !v.trim().is_empty())
}

pub(super) fn listen(variable: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.trim().parse().map_err(|_| {
        ConfigError::new(variable, format!("`{raw}` is not a listen address: use HOST:PORT, e.g. 0.0.0.0:50051"))
    })
}

pub(super) fn url(variable: &str, raw: &str) -> Result<String, ConfigError> {
    let raw = raw.trim();
    if (raw.starts_with("http://") || raw.starts_with("https://")) && raw.len() > "https://".len() {
        Ok(raw.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::new(
            variable,
            format!("`{raw}` is not a URL: use http://HOST:PORT (or https://HOST:PORT for TLS)"),
        ))
    }
}

/// A whole number from 0 to `max`, `default` when unset.
pub(super) fn whole(variable: &str, raw: &Option<String>, default: u64, max: u64) -> Result<u64, ConfigError> {
    within(variable, raw, default, 0, max)
}

/// A whole number from 1 to `max`, `default` when unset.
pub(super) fn positive(variable: &str, raw: &Option<String>, default: u64, max: u64) -> Result<u64, ConfigError> {
    within(variable, raw, default, 1, max)
}

fn within(variable: &str, raw: &Option<String>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    match given(raw) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ConfigError::new(variable, format!("`{raw}` is not a whole number from {min} to {max}"))),
    }
}
