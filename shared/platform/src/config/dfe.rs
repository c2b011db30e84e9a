//! The DfE block: how the DfE gateway reaches the DfE's Lead Provider API.

use super::{ConfigError, parse};
use std::path::PathBuf;

/// How the DfE gateway reaches the DfE's Lead Provider API (X8, X9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfeSettings {
    /// `STEPLAB_DFE_API_URL`: the API's base URL (sandbox or production),
    /// e.g. `https://sandbox.manage-training-for-early-career-teachers.education.gov.uk`.
    /// None: the DfE sync is off (calls are kept and wait), said at start-up.
    pub api_url: Option<String>,
    /// `STEPLAB_DFE_TOKEN_FILE`: the lead provider's API token, read afresh
    /// on each call so it can be rotated in place; never logged.
    pub token_file: Option<PathBuf>,
    /// `STEPLAB_DFE_RATE_LIMIT_PER_5_MIN`: requests to the DfE per 5 minutes.
    pub rate_limit_per_5_min: u32,
}

impl DfeSettings {
    pub const DEFAULT_RATE_LIMIT_PER_5_MIN: u32 = 1_000;
}

#[derive(Debug, clap::Args)]
pub(super) struct DfeArgs {
    #[arg(long, env = "STEPLAB_DFE_API_URL")]
    dfe_api_url: Option<String>,
    #[arg(long, env = "STEPLAB_DFE_TOKEN_FILE")]
    dfe_token_file: Option<String>,
    #[arg(long, env = "STEPLAB_DFE_RATE_LIMIT_PER_5_MIN")]
    dfe_rate_limit_per_5_min: Option<String>,
}

impl DfeArgs {
    pub(super) fn parse(&self) -> Result<DfeSettings, ConfigError> {
        let api_url = match parse::given(&self.dfe_api_url) {
            Some(raw) => Some(parse::url("STEPLAB_DFE_API_URL", raw)?.trim_end_matches('/').to_owned()),
            None => None,
        };
        let token_file = parse::given(&self.dfe_token_file).map(|raw| PathBuf::from(raw.trim()));
        if api_url.is_some() && token_file.is_none() {
            return Err(ConfigError::new(
                "STEPLAB_DFE_TOKEN_FILE",
                "is required with STEPLAB_DFE_API_URL: the file holding the lead provider's DfE API token",
            ));
        }
        let rate_limit_per_5_min = match parse::given(&self.dfe_rate_limit_per_5_min) {
            None => DfeSettings::DEFAULT_RATE_LIMIT_PER_5_MIN,
            Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
                ConfigError::new(
                    "STEPLAB_DFE_RATE_LIMIT_PER_5_MIN",
                    format!("`{raw}` is not a whole number from 1 to 1000000"),
                )
            })?,
        };
        Ok(DfeSettings { api_url, token_file, rate_limit_per_5_min })
    }
}
