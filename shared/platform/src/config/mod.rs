//! Typed configuration from the environment (CONTRACT.md's table), validated
//! at start-up, in one block per concern: database and listen
//! ([`service`]), TLS, auth, limits, relay, DfE, and the smaller runtime
//! blocks (clock, process, readiness, metrics, audit, deployment files).
//! Every error names the variable to fix.
//!
//! Each block declares its variables with clap (derive, `env`): clap rather
//! than figment because clap is already the workspace's command-line parser,
//! and its `Command` lists every declared argument with its variable
//! ([`variables`]), which the configuration reference is checked against.
//! The blocks take every value as text and check it themselves, so each error
//! keeps the wording the contract gives it instead of clap's.
//!
//! Values come through a lookup function, never from clap reading the process
//! environment itself: each variable the lookup knows becomes `--flag=value`
//! on a command whose `env` fallbacks are removed, so tests can read a
//! configuration without touching the environment.
//!
//! This module is a leaf of the platform: it imports no other platform module;
//! those that need settings import them from here.

mod auth;
mod database;
mod dfe;
mod limits;
mod parse;
mod relay;
mod runtime;
mod service;
mod services;
mod tls;

pub use auth::{AuthSettings, IdentityProvider, JwtSecretSource, TokenTimeLimits, dev_secret_path};
pub use database::DatabaseUrl;
pub use dfe::DfeSettings;
pub use limits::Limits;
pub use relay::{
    Backpressure, DEFAULT_RELAY_BATCH_SIZE, DEFAULT_RELAY_IN_FLIGHT, DEFAULT_RELAY_LINGER_MS, RelayRetry, Targets,
};
pub use runtime::{
    AuditSettings, ClockSettings, DEFAULT_RETENTION_DAYS, DeploymentFiles, LogFormat, MetricsSettings, ProcessSettings,
    ReadinessSettings,
};
pub use service::{DFE_GATEWAY_DEFAULT_PORT, ServiceName, ServiceSettings, default_pool_size};
pub use services::{ContentReleaseConfig, DfeGatewayConfig, ParticipantConfig, PaymentsConfig, Serving};
pub use tls::TlsFiles;

use clap::{Args, FromArgMatches};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), problem: problem.into() }
    }
}

/// Every block's variables, as one command.
#[derive(Debug, clap::Args)]
struct Environment {
    #[command(flatten)]
    database: service::DatabaseArgs,
    #[command(flatten)]
    listen: service::ListenArgs,
    #[command(flatten)]
    tls: tls::TlsArgs,
    #[command(flatten)]
    relay: relay::RelayArgs,
    #[command(flatten)]
    dfe: dfe::DfeArgs,
    #[command(flatten)]
    auth: auth::AuthArgs,
    #[command(flatten)]
    limits: limits::LimitsArgs,
    #[command(flatten)]
    runtime: runtime::RuntimeArgs,
}

fn command<T: Args>() -> clap::Command {
    T::augment_args(clap::Command::new("steplab").no_binary_name(true))
}

/// Reads the block(s) `T` declares from `lookup` alone.
fn read<T: Args + FromArgMatches>(lookup: &impl Fn(&str) -> Option<String>) -> Result<T, ConfigError> {
    let command = command::<T>();
    let args: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_str()?;
            let value = lookup(variable)?;
            Some(format!("--{}={value}", arg.get_long()?))
        })
        .collect();
    // Without this clap would fall back to the process environment for a
    // variable the lookup does not know.
    let command = command.mut_args(|arg| arg.env(None::<&'static str>));
    // Every argument is optional text, so clap has nothing to refuse; should
    // it ever, say so rather than panic.
    let unreadable = |e: clap::Error| ConfigError::new("STEPLAB_*", format!("cannot be read: {e}"));
    let matches = command.try_get_matches_from(args).map_err(unreadable)?;
    T::from_arg_matches(&matches).map_err(unreadable)
}

/// Every variable the blocks declare, in declaration order.
pub fn variables() -> Vec<String> {
    command::<Environment>()
        .get_arguments()
        .filter_map(|arg| arg.get_env().and_then(|env| env.to_str()).map(str::to_owned))
        .collect()
}

/// The whole configuration of a Steplab deployment, one field per block;
/// each service runs with its own part ([`Config::participant_config`] and
/// its siblings), `steplab up` with all of it.
#[derive(Debug, Clone)]
pub struct Config {
    /// `STEPLAB_DATA_DIR`: the SQLite files and the dev secret by default.
    pub data_dir: PathBuf,
    pub participant: ServiceSettings,
    pub content: ServiceSettings,
    pub payments: ServiceSettings,
    /// The DfE gateway's listener and database (X8).
    pub dfe_gateway: ServiceSettings,
    pub targets: Targets,
    pub relay: RelayRetry,
    /// How far behind its relay a service accepts changes.
    pub backpressure: Backpressure,
    /// The DfE's Lead Provider API (X9): off unless `STEPLAB_DFE_API_URL` is set.
    pub dfe: DfeSettings,
    pub auth: AuthSettings,
    /// Message size, concurrency and rate limits of the business services.
    pub limits: Limits,
    /// Optional TLS for every listener and for the services' clients (`STEPLAB_TLS_*`).
    pub tls: TlsFiles,
    pub clock: ClockSettings,
    pub process: ProcessSettings,
    pub readiness: ReadinessSettings,
    pub metrics: MetricsSettings,
    pub audit: AuditSettings,
    pub files: DeploymentFiles,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = read::<Environment>(&lookup)?;
        let data_dir = env.database.data_dir();
        let service = |name: ServiceName| -> Result<ServiceSettings, ConfigError> {
            let listen = env.listen.listen(name)?;
            let database = env.database.database(name)?;
            let pool_size = env.database.pool_size(&database)?;
            Ok(ServiceSettings { listen, database, pool_size })
        };
        let participant = service(ServiceName::Participant)?;
        let content = service(ServiceName::ContentRelease)?;
        let payments = service(ServiceName::Payments)?;
        let dfe_gateway = service(ServiceName::DfeGateway)?;
        let tls = env.tls.parse()?;
        let targets = env.relay.targets(&relay::OwnListeners {
            content: content.listen,
            payments: payments.listen,
            dfe_gateway: dfe_gateway.listen,
            serve_tls: tls.serves_tls(),
        })?;
        let dfe = env.dfe.parse()?;
        let auth = env.auth.parse(&data_dir)?;
        let clock = env.runtime.clock()?;
        let process = env.runtime.process()?;
        let relay = env.relay.retry()?;
        let backpressure = env.relay.backpressure()?;
        let metrics = env.runtime.metrics()?;
        let audit = env.runtime.audit()?;
        let limits = env.limits.parse()?;
        let readiness = env.runtime.readiness()?;
        let files = env.runtime.files();
        Ok(Config {
            data_dir,
            participant,
            content,
            payments,
            dfe_gateway,
            targets,
            relay,
            backpressure,
            dfe,
            auth,
            limits,
            tls,
            clock,
            process,
            readiness,
            metrics,
            audit,
            files,
        })
    }

    pub fn service(&self, name: ServiceName) -> &ServiceSettings {
        match name {
            ServiceName::Participant => &self.participant,
            ServiceName::ContentRelease => &self.content,
            ServiceName::Payments => &self.payments,
            ServiceName::DfeGateway => &self.dfe_gateway,
        }
    }
}

/// A wildcard listen address is reachable on loopback from the same host.
pub fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

#[cfg(test)]
mod tests;
