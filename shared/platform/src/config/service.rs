//! The database and listen blocks: where each of the four services keeps its
//! data and where it listens.

use super::database::DatabaseUrl;
use super::{ConfigError, parse};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The four services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceName {
    Participant,
    ContentRelease,
    Payments,
    /// The one component that talks to the DfE (X1-X9).
    DfeGateway,
}

/// The DfE gateway's default port (rules X1-X9).
pub const DFE_GATEWAY_DEFAULT_PORT: u16 = 50054;

impl ServiceName {
    pub const ALL: [ServiceName; 4] =
        [ServiceName::Participant, ServiceName::ContentRelease, ServiceName::Payments, ServiceName::DfeGateway];

    /// The name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Participant => "participant",
            ServiceName::ContentRelease => "content-release",
            ServiceName::Payments => "payments",
            ServiceName::DfeGateway => "dfe-gateway",
        }
    }

    fn env_prefix(self) -> &'static str {
        match self {
            ServiceName::Participant => "STEPLAB_PARTICIPANT",
            ServiceName::ContentRelease => "STEPLAB_CONTENT",
            ServiceName::Payments => "STEPLAB_PAYMENTS",
            ServiceName::DfeGateway => "STEPLAB_DFE_GATEWAY",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            ServiceName::Participant => 50051,
            ServiceName::ContentRelease => 50052,
            ServiceName::Payments => 50053,
            ServiceName::DfeGateway => DFE_GATEWAY_DEFAULT_PORT,
        }
    }

    pub fn database_variable(self) -> String {
        format!("{}_DATABASE_URL", self.env_prefix())
    }

    pub fn listen_variable(self) -> String {
        format!("{}_LISTEN", self.env_prefix())
    }

    fn sqlite_file(self) -> &'static str {
        match self {
            ServiceName::Participant => "participant.sqlite3",
            ServiceName::ContentRelease => "content-release.sqlite3",
            ServiceName::Payments => "payments.sqlite3",
            ServiceName::DfeGateway => "dfe-gateway.sqlite3",
        }
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown service `{s}`: use participant, content-release, payments or dfe-gateway"))
    }
}

/// One service's listener and database.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    /// The most connections the service's pool opens.
    pub pool_size: u32,
}

/// Pool connections per service by default. PostgreSQL serves many
/// connections at once, so the relay's claim loops and the handlers need not
/// queue for one; SQLite has one writer at a time, so more would only wait.
const DEFAULT_POSTGRES_POOL_SIZE: u32 = 10;
const DEFAULT_SQLITE_POOL_SIZE: u32 = 4;
/// The pool size of a service on `database` when none is set.
pub fn default_pool_size(database: &DatabaseUrl) -> u32 {
    if database.is_postgres() { DEFAULT_POSTGRES_POOL_SIZE } else { DEFAULT_SQLITE_POOL_SIZE }
}

/// The largest pool a service may ask for: PostgreSQL's default
/// `max_connections` is 100 for the whole server.
const MAX_POOL_SIZE: u64 = 1_000;

/// `STEPLAB_DATA_DIR` and each service's database URL.
#[derive(Debug, clap::Args)]
pub(super) struct DatabaseArgs {
    #[arg(long, env = "STEPLAB_DATA_DIR")]
    data_dir: Option<String>,
    #[arg(long, env = "STEPLAB_PARTICIPANT_DATABASE_URL")]
    participant_database_url: Option<String>,
    #[arg(long, env = "STEPLAB_CONTENT_DATABASE_URL")]
    content_database_url: Option<String>,
    #[arg(long, env = "STEPLAB_PAYMENTS_DATABASE_URL")]
    payments_database_url: Option<String>,
    #[arg(long, env = "STEPLAB_DFE_GATEWAY_DATABASE_URL")]
    dfe_gateway_database_url: Option<String>,
    #[arg(long, env = "STEPLAB_DATABASE_POOL_SIZE")]
    database_pool_size: Option<String>,
}

impl DatabaseArgs {
    pub(super) fn data_dir(&self) -> PathBuf {
        PathBuf::from(parse::given(&self.data_dir).unwrap_or("./data"))
    }

    /// The service's database: its URL when set, else its SQLite file in the data dir.
    pub(super) fn database(&self, name: ServiceName) -> Result<DatabaseUrl, ConfigError> {
        let raw = match name {
            ServiceName::Participant => &self.participant_database_url,
            ServiceName::ContentRelease => &self.content_database_url,
            ServiceName::Payments => &self.payments_database_url,
            ServiceName::DfeGateway => &self.dfe_gateway_database_url,
        };
        match parse::given(raw) {
            Some(raw) => DatabaseUrl::parse(&name.database_variable(), raw),
            None => Ok(DatabaseUrl::Sqlite(self.data_dir().join(name.sqlite_file()))),
        }
    }

    /// The pool size for a service on `database`: `STEPLAB_DATABASE_POOL_SIZE`
    /// when set (every service's pool), else the backend's default.
    pub(super) fn pool_size(&self, database: &DatabaseUrl) -> Result<u32, ConfigError> {
        let default = default_pool_size(database);
        let size =
            parse::positive("STEPLAB_DATABASE_POOL_SIZE", &self.database_pool_size, default.into(), MAX_POOL_SIZE)?;
        Ok(u32::try_from(size).unwrap_or(default))
    }
}

/// Each service's listen address.
#[derive(Debug, clap::Args)]
pub(super) struct ListenArgs {
    #[arg(long, env = "STEPLAB_PARTICIPANT_LISTEN")]
    participant_listen: Option<String>,
    #[arg(long, env = "STEPLAB_CONTENT_LISTEN")]
    content_listen: Option<String>,
    #[arg(long, env = "STEPLAB_PAYMENTS_LISTEN")]
    payments_listen: Option<String>,
    #[arg(long, env = "STEPLAB_DFE_GATEWAY_LISTEN")]
    dfe_gateway_listen: Option<String>,
}

impl ListenArgs {
    /// The service's listen address: as set, else loopback on its standard port.
    pub(super) fn listen(&self, name: ServiceName) -> Result<SocketAddr, ConfigError> {
        let raw = match name {
            ServiceName::Participant => &self.participant_listen,
            ServiceName::ContentRelease => &self.content_listen,
            ServiceName::Payments => &self.payments_listen,
            ServiceName::DfeGateway => &self.dfe_gateway_listen,
        };
        match parse::given(raw) {
            Some(raw) => parse::listen(&name.listen_variable(), raw),
            None => Ok(SocketAddr::from(([127, 0, 0, 1], name.default_port()))),
        }
    }
}
