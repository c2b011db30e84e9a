//! Typed configuration from the environment (CONTRACT.md's table), validated
//! at start-up. Every error names the variable to fix. Read through a lookup
//! function so tests need not touch the process environment.

use chrono::NaiveDate;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// The four services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceName {
    Participant,
    ContentRelease,
    Payments,
    /// The one component that talks to the DfE (X1-X9).
    DfeGateway,
}

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

/// Where a service keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    // A PostgreSQL URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => write!(f, "{}", redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl DatabaseUrl {
    /// Parses a database URL strictly: only `postgres://`, `postgresql://`,
    /// `sqlite://PATH` (`sqlite:///abs/path`) and `file:PATH` are accepted, so
    /// a typo such as `postgresdb` is an error instead of a new SQLite file.
    pub fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        let path = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("file:"));
        match path {
            Some(p) if !p.is_empty() && p != ":memory:" => Ok(DatabaseUrl::Sqlite(PathBuf::from(p))),
            Some(_) => Err(ConfigError::new(
                variable,
                "a SQLite URL needs a file path (an in-memory database would lose everything at exit), e.g. sqlite:///var/lib/steplab/participant.sqlite3",
            )),
            None => Err(ConfigError::new(
                variable,
                format!(
                    "`{}` is not a database URL: use postgres://USER@HOST:PORT/DB or sqlite:///path/to/file.sqlite3",
                    redact_password(raw)
                ),
            )),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the HS256 signing secret comes from. The secret itself is never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtSecretSource {
    Value(String),
    File(PathBuf),
}

impl std::fmt::Debug for JwtSecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtSecretSource::Value(_) => write!(f, "STEPLAB_JWT_SECRET (hidden)"),
            JwtSecretSource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Tokens from an identity provider (production auth): RS256 or ES256 public
/// keys from a PEM file, a JWKS file or both, and the issuer and audience
/// every such token must carry. File contents are read by
/// [`crate::auth::verifier`] at start-up, so an unreadable or malformed file
/// stops the service with an error naming its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// `STEPLAB_JWT_PUBLIC_KEY_FILE`: one RSA or P-256 public key (PEM).
    pub public_key_file: Option<PathBuf>,
    /// `STEPLAB_JWKS_FILE`: the provider's JSON Web Key Set, keys matched by `kid`.
    pub jwks_file: Option<PathBuf>,
    /// `STEPLAB_JWT_ISSUER`: the `iss` claim required on the provider's tokens.
    pub issuer: String,
    /// `STEPLAB_JWT_AUDIENCE`: the `aud` value required on the provider's tokens.
    pub audience: String,
}

/// Optional TLS (rustls), from PEM files. The files themselves are read and
/// checked by [`crate::tls`] at start-up, so an unreadable or malformed file
/// stops the service with an error naming its variable and path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `STEPLAB_TLS_CERT_FILE`: the server's certificate chain (leaf first).
    /// With it (and the key) every service listener serves TLS only.
    pub cert_file: Option<PathBuf>,
    /// `STEPLAB_TLS_KEY_FILE`: the private key of that certificate.
    pub key_file: Option<PathBuf>,
    /// `STEPLAB_TLS_CA_FILE`: the root certificate(s) clients trust (the
    /// relay, the consistency check's reads, `steplab health`) on an
    /// `https://` target; without it, the webpki (Mozilla) roots.
    pub ca_file: Option<PathBuf>,
    /// `STEPLAB_TLS_CLIENT_CA_FILE`: mutual TLS. The root certificate(s) a
    /// client's certificate must chain to; a client without one is refused.
    pub client_ca_file: Option<PathBuf>,
}

impl TlsFiles {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the TLS variables alone (`steplab health` needs no more).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let path = |variable: &str| lookup(variable).filter(|v| !v.trim().is_empty()).map(|v| PathBuf::from(v.trim()));
        let files = TlsFiles {
            cert_file: path("STEPLAB_TLS_CERT_FILE"),
            key_file: path("STEPLAB_TLS_KEY_FILE"),
            ca_file: path("STEPLAB_TLS_CA_FILE"),
            client_ca_file: path("STEPLAB_TLS_CLIENT_CA_FILE"),
        };
        match (&files.cert_file, &files.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "STEPLAB_TLS_KEY_FILE",
                    "is required with STEPLAB_TLS_CERT_FILE: set both (the certificate chain and its private key) or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "STEPLAB_TLS_CERT_FILE",
                    "is required with STEPLAB_TLS_KEY_FILE: set both (the certificate chain and its private key) or neither",
                ));
            }
            _ => {}
        }
        if files.client_ca_file.is_some() && files.cert_file.is_none() {
            return Err(ConfigError::new(
                "STEPLAB_TLS_CLIENT_CA_FILE",
                "has no effect without STEPLAB_TLS_CERT_FILE and STEPLAB_TLS_KEY_FILE: mutual TLS needs TLS on",
            ));
        }
        Ok(files)
    }

    /// Whether the service listeners serve TLS (certificate and key set).
    pub fn serves_tls(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// The whole configuration of a Steplab deployment; each service reads its part.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub participant: ServiceConfig,
    pub content: ServiceConfig,
    pub payments: ServiceConfig,
    /// The DfE gateway's listener and database (X8).
    pub dfe_gateway: ServiceConfig,
    /// Where the participant service sends content-release commands.
    pub content_url: String,
    /// Where the participant service sends payments commands.
    pub payments_url: String,
    /// `STEPLAB_DFE_GATEWAY_URL`: where the participant service and payments
    /// send what the DfE is to be told (status changes, milestones); by
    /// default this deployment's own DfE gateway listener (port 50054).
    pub dfe_gateway_url: String,
    /// The DfE's Lead Provider API (X9): off unless `STEPLAB_DFE_API_URL` is set.
    pub dfe: DfeSettings,
    /// The HS256 secret of dev tokens. Used when `STEPLAB_JWT_SECRET` is set,
    /// or when no identity provider is configured (then the data dir's dev
    /// secret); see [`Config::hs256_secret`].
    pub jwt_secret: JwtSecretSource,
    /// Production auth: tokens signed by an identity provider.
    pub identity_provider: Option<IdentityProvider>,
    /// `STEPLAB_TOKEN_MAX_LIFETIME_SECONDS` and `STEPLAB_TOKEN_CLOCK_SKEW_SECONDS`:
    /// the longest a token may live and how far its issuer's clock may be ahead.
    pub token_time_limits: crate::auth::TokenTimeLimits,
    /// `STEPLAB_SERVICE_TOKEN_FILE`: the bearer token the participant
    /// service's relay presents to content release and payments, read afresh
    /// for every delivery so the operator can rotate it in place. Without it
    /// the relay mints its own HS256 `service` token.
    pub service_token_file: Option<PathBuf>,
    /// `STEPLAB_TODAY`, when pinned.
    pub today: Option<NaiveDate>,
    pub log_format: LogFormat,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// `STEPLAB_CURRICULUM_FILE`: a deployment's own curriculum (R1) for
    /// content release, instead of the built-in default.
    pub curriculum_file: Option<PathBuf>,
    /// `STEPLAB_SCHEDULES_FILE`: a deployment's own payment schedules (F1)
    /// for payments, instead of the generated default.
    pub schedules_file: Option<PathBuf>,
    /// `STEPLAB_RELAY_MAX_ATTEMPTS`: deliveries tried before a command is parked.
    pub relay_max_attempts: i32,
    /// `STEPLAB_RELAY_MAX_BACKOFF_MS`: the longest wait between two deliveries.
    pub relay_max_backoff: Duration,
    /// `STEPLAB_METRICS_LISTEN`: where Prometheus scrapes `/metrics`; none
    /// when unset. One listener per process (`steplab up` shares it).
    pub metrics_listen: Option<SocketAddr>,
    /// `STEPLAB_AUDIT_RETENTION_DAYS`: audit entries older than this many
    /// days are deleted; 0 keeps them forever.
    pub audit_retention_days: u32,
    /// Message size, concurrency and rate limits of the business services.
    pub limits: crate::limits::Limits,
    /// `STEPLAB_READINESS_INTERVAL_MS`: time between two readiness probe
    /// writes to the service's database (see [`crate::readiness`]).
    pub readiness_interval: Duration,
    /// Optional TLS for every listener and for the participant service's
    /// clients (`STEPLAB_TLS_*`).
    pub tls: TlsFiles,
}

/// The DfE gateway's default port (rules X1-X9).
pub const DFE_GATEWAY_DEFAULT_PORT: u16 = 50054;

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

    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let api_url = match get("STEPLAB_DFE_API_URL") {
            Some(raw) => Some(parse_url("STEPLAB_DFE_API_URL", &raw)?.trim_end_matches('/').to_owned()),
            None => None,
        };
        let token_file = get("STEPLAB_DFE_TOKEN_FILE").map(|raw| PathBuf::from(raw.trim()));
        if api_url.is_some() && token_file.is_none() {
            return Err(ConfigError::new(
                "STEPLAB_DFE_TOKEN_FILE",
                "is required with STEPLAB_DFE_API_URL: the file holding the lead provider's DfE API token",
            ));
        }
        let rate_limit_per_5_min = match get("STEPLAB_DFE_RATE_LIMIT_PER_5_MIN") {
            None => Self::DEFAULT_RATE_LIMIT_PER_5_MIN,
            Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
                ConfigError::new(
                    "STEPLAB_DFE_RATE_LIMIT_PER_5_MIN",
                    format!("`{raw}` is not a whole number from 1 to 1000000"),
                )
            })?,
        };
        Ok(Self { api_url, token_file, rate_limit_per_5_min })
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let data_dir = PathBuf::from(get("STEPLAB_DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let service = |name: ServiceName| -> Result<ServiceConfig, ConfigError> {
            let listen_var = name.listen_variable();
            let listen = match get(&listen_var) {
                Some(raw) => parse_listen(&listen_var, &raw)?,
                None => SocketAddr::from(([127, 0, 0, 1], name.default_port())),
            };
            let db_var = name.database_variable();
            let database = match get(&db_var) {
                Some(raw) => DatabaseUrl::parse(&db_var, &raw)?,
                None => DatabaseUrl::Sqlite(data_dir.join(name.sqlite_file())),
            };
            Ok(ServiceConfig { listen, database })
        };
        let participant = service(ServiceName::Participant)?;
        let content = service(ServiceName::ContentRelease)?;
        let payments = service(ServiceName::Payments)?;
        let dfe_gateway = service(ServiceName::DfeGateway)?;
        let tls = TlsFiles::from_lookup(&lookup)?;
        // The default targets are this deployment's own listeners: https
        // when they serve TLS (the certificate must then be valid for the
        // address, e.g. 127.0.0.1, as `steplab up` connects to it).
        let scheme = if tls.serves_tls() { "https" } else { "http" };
        let content_url = match get("STEPLAB_CONTENT_URL") {
            Some(raw) => parse_url("STEPLAB_CONTENT_URL", &raw)?,
            None => format!("{scheme}://{}", connectable(content.listen)),
        };
        let payments_url = match get("STEPLAB_PAYMENTS_URL") {
            Some(raw) => parse_url("STEPLAB_PAYMENTS_URL", &raw)?,
            None => format!("{scheme}://{}", connectable(payments.listen)),
        };
        let dfe_gateway_url = match get("STEPLAB_DFE_GATEWAY_URL") {
            Some(raw) => parse_url("STEPLAB_DFE_GATEWAY_URL", &raw)?,
            None => format!("{scheme}://{}", connectable(dfe_gateway.listen)),
        };
        let dfe = DfeSettings::from_lookup(&get)?;
        let jwt_secret = match lookup("STEPLAB_JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::new("STEPLAB_JWT_SECRET", "must be at least 32 characters"));
            }
            Some(secret) => JwtSecretSource::Value(secret),
            None => JwtSecretSource::File(dev_secret_path(&data_dir)),
        };
        let path = |variable: &str| get(variable).map(|raw| PathBuf::from(raw.trim()));
        let public_key_file = path("STEPLAB_JWT_PUBLIC_KEY_FILE");
        let jwks_file = path("STEPLAB_JWKS_FILE");
        let issuer = get("STEPLAB_JWT_ISSUER").map(|v| v.trim().to_owned());
        let audience = get("STEPLAB_JWT_AUDIENCE").map(|v| v.trim().to_owned());
        let identity_provider = if public_key_file.is_some() || jwks_file.is_some() {
            let keys = if jwks_file.is_some() { "STEPLAB_JWKS_FILE" } else { "STEPLAB_JWT_PUBLIC_KEY_FILE" };
            let issuer = issuer.ok_or_else(|| {
                ConfigError::new(
                    "STEPLAB_JWT_ISSUER",
                    format!("is required with {keys}: the `iss` claim your identity provider puts in its tokens"),
                )
            })?;
            let audience = audience.ok_or_else(|| {
                ConfigError::new(
                    "STEPLAB_JWT_AUDIENCE",
                    format!(
                        "is required with {keys}: the `aud` value your identity provider issues Steplab's tokens for"
                    ),
                )
            })?;
            Some(IdentityProvider { public_key_file, jwks_file, issuer, audience })
        } else {
            for (variable, value) in [("STEPLAB_JWT_ISSUER", &issuer), ("STEPLAB_JWT_AUDIENCE", &audience)] {
                if value.is_some() {
                    return Err(ConfigError::new(
                        variable,
                        "has no effect without STEPLAB_JWKS_FILE or STEPLAB_JWT_PUBLIC_KEY_FILE: set one of them too",
                    ));
                }
            }
            None
        };
        let service_token_file = path("STEPLAB_SERVICE_TOKEN_FILE");
        let today = match get("STEPLAB_TODAY") {
            Some(raw) => Some(NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
                ConfigError::new("STEPLAB_TODAY", format!("`{raw}` is not a date: use YYYY-MM-DD, e.g. 2026-09-01"))
            })?),
            None => None,
        };
        let log_format = match get("STEPLAB_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new("STEPLAB_LOG_FORMAT", format!("`{other}` is not text or json")));
            }
        };
        let drain_timeout = match get("STEPLAB_DRAIN_SECONDS") {
            Some(raw) => Duration::from_secs(raw.trim().parse::<u64>().map_err(|_| {
                ConfigError::new("STEPLAB_DRAIN_SECONDS", format!("`{raw}` is not a whole number of seconds"))
            })?),
            None => Duration::from_secs(20),
        };
        let number = |variable: &str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match get(variable) {
                None => Ok(default),
                Some(raw) => raw.trim().parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    ConfigError::new(variable, format!("`{raw}` is not a whole number from 1 to {max}"))
                }),
            }
        };
        let token_defaults = crate::auth::TokenTimeLimits::default();
        let token_time_limits = crate::auth::TokenTimeLimits {
            max_lifetime: Duration::from_secs(number(
                "STEPLAB_TOKEN_MAX_LIFETIME_SECONDS",
                token_defaults.max_lifetime.as_secs(),
                31 * 24 * 3600,
            )?),
            clock_skew: match get("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS") {
                None => token_defaults.clock_skew,
                Some(raw) => {
                    Duration::from_secs(raw.trim().parse::<u64>().ok().filter(|n| *n <= 3600).ok_or_else(|| {
                        ConfigError::new(
                            "STEPLAB_TOKEN_CLOCK_SKEW_SECONDS",
                            format!("`{raw}` is not a whole number of seconds from 0 to 3600"),
                        )
                    })?)
                }
            },
        };
        let relay_max_attempts = number("STEPLAB_RELAY_MAX_ATTEMPTS", 50, 10_000)? as i32;
        let relay_max_backoff = Duration::from_millis(number("STEPLAB_RELAY_MAX_BACKOFF_MS", 30_000, 3_600_000)?);
        let metrics_listen = match get("STEPLAB_METRICS_LISTEN") {
            Some(raw) => Some(parse_listen("STEPLAB_METRICS_LISTEN", &raw)?),
            None => None,
        };
        let audit_retention_days = match get("STEPLAB_AUDIT_RETENTION_DAYS") {
            None => crate::audit::DEFAULT_RETENTION_DAYS,
            Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| *n <= 36_500).ok_or_else(|| {
                ConfigError::new(
                    "STEPLAB_AUDIT_RETENTION_DAYS",
                    format!("`{raw}` is not a whole number of days from 0 (keep forever) to 36500"),
                )
            })?,
        };
        let defaults = crate::limits::Limits::default();
        let limits = crate::limits::Limits {
            max_message_bytes: number("STEPLAB_MAX_MESSAGE_BYTES", defaults.max_message_bytes as u64, 1 << 30)?
                as usize,
            max_concurrent_per_connection: number(
                "STEPLAB_MAX_CONCURRENT_PER_CONNECTION",
                defaults.max_concurrent_per_connection as u64,
                100_000,
            )? as usize,
            max_concurrent_requests: number(
                "STEPLAB_MAX_CONCURRENT_REQUESTS",
                defaults.max_concurrent_requests as u64,
                1_000_000,
            )? as usize,
            rate_limit_per_minute: match get("STEPLAB_RATE_LIMIT_PER_MINUTE") {
                None => defaults.rate_limit_per_minute,
                Some(raw) => raw.trim().parse::<u32>().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                    ConfigError::new(
                        "STEPLAB_RATE_LIMIT_PER_MINUTE",
                        format!("`{raw}` is not a whole number from 0 (no limit) to 1000000"),
                    )
                })?,
            },
            max_connections: number("STEPLAB_MAX_CONNECTIONS", defaults.max_connections as u64, 1_000_000)? as usize,
            handshake_timeout: Duration::from_secs(number(
                "STEPLAB_HANDSHAKE_TIMEOUT_SECONDS",
                defaults.handshake_timeout.as_secs(),
                3_600,
            )?),
            idle_timeout: Duration::from_secs(number(
                "STEPLAB_IDLE_TIMEOUT_SECONDS",
                defaults.idle_timeout.as_secs(),
                604_800,
            )?),
            keepalive_interval: Duration::from_secs(number(
                "STEPLAB_KEEPALIVE_INTERVAL_SECONDS",
                defaults.keepalive_interval.as_secs(),
                86_400,
            )?),
            keepalive_timeout: Duration::from_secs(number(
                "STEPLAB_KEEPALIVE_TIMEOUT_SECONDS",
                defaults.keepalive_timeout.as_secs(),
                3_600,
            )?),
        };
        let readiness_interval = Duration::from_millis(number("STEPLAB_READINESS_INTERVAL_MS", 5_000, 600_000)?);
        let curriculum_file = get("STEPLAB_CURRICULUM_FILE").map(PathBuf::from);
        let schedules_file = get("STEPLAB_SCHEDULES_FILE").map(PathBuf::from);
        Ok(Config {
            readiness_interval,
            tls,
            limits,
            metrics_listen,
            audit_retention_days,
            relay_max_attempts,
            relay_max_backoff,
            curriculum_file,
            schedules_file,
            data_dir,
            participant,
            content,
            payments,
            dfe_gateway,
            content_url,
            payments_url,
            dfe_gateway_url,
            dfe,
            jwt_secret,
            identity_provider,
            token_time_limits,
            service_token_file,
            today,
            log_format,
            drain_timeout,
        })
    }

    /// Where the HS256 (dev) secret comes from, if HS256 tokens are accepted
    /// at all: always when `STEPLAB_JWT_SECRET` is set; otherwise only when no
    /// identity provider is configured (the data dir's dev secret, as
    /// `steplab up` makes it). A production deployment with an identity
    /// provider and no `STEPLAB_JWT_SECRET` accepts no HS256 token.
    pub fn hs256_secret(&self) -> Option<&JwtSecretSource> {
        match (&self.jwt_secret, &self.identity_provider) {
            (source @ JwtSecretSource::Value(_), _) | (source @ JwtSecretSource::File(_), None) => Some(source),
            (JwtSecretSource::File(_), Some(_)) => None,
        }
    }

    pub fn service(&self, name: ServiceName) -> &ServiceConfig {
        match name {
            ServiceName::Participant => &self.participant,
            ServiceName::ContentRelease => &self.content,
            ServiceName::Payments => &self.payments,
            ServiceName::DfeGateway => &self.dfe_gateway,
        }
    }

    pub fn clock(&self) -> crate::Clock {
        self.today.map_or(crate::Clock::System, crate::Clock::Pinned)
    }
}

/// The dev signing secret `steplab up` generates in the data dir.
pub fn dev_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-secret")
}

fn parse_listen(variable: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.trim().parse().map_err(|_| {
        ConfigError::new(variable, format!("`{raw}` is not a listen address: use HOST:PORT, e.g. 0.0.0.0:50051"))
    })
}

fn parse_url(variable: &str, raw: &str) -> Result<String, ConfigError> {
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

/// A wildcard listen address is reachable on loopback from the same host.
pub fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn x9_the_dfe_sync_is_off_without_a_url_and_needs_a_token_file_with_one() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.dfe.api_url, None);
        assert_eq!(c.dfe.rate_limit_per_5_min, 1_000);
        assert_eq!(c.dfe_gateway_url, "http://127.0.0.1:50054");
        let err = config(&[("STEPLAB_DFE_API_URL", "https://dfe.example")]).expect_err("no token file");
        assert_eq!(err.variable, "STEPLAB_DFE_TOKEN_FILE");
        let c = config(&[
            ("STEPLAB_DFE_API_URL", "https://dfe.example/"),
            ("STEPLAB_DFE_TOKEN_FILE", "/run/secrets/dfe-token"),
            ("STEPLAB_DFE_RATE_LIMIT_PER_5_MIN", "300"),
        ])
        .expect("dfe on");
        assert_eq!(c.dfe.api_url.as_deref(), Some("https://dfe.example"));
        assert_eq!(c.dfe.token_file, Some(PathBuf::from("/run/secrets/dfe-token")));
        assert_eq!(c.dfe.rate_limit_per_5_min, 300);
        let err = config(&[("STEPLAB_DFE_RATE_LIMIT_PER_5_MIN", "0")]).expect_err("zero rate");
        assert_eq!(err.variable, "STEPLAB_DFE_RATE_LIMIT_PER_5_MIN");
        let err = config(&[("STEPLAB_DFE_API_URL", "dfe.example")]).expect_err("not a URL");
        assert_eq!(err.variable, "STEPLAB_DFE_API_URL");
    }

    #[test]
    fn defaults_are_sqlite_files_in_the_data_dir_on_the_standard_ports() {
        let c = config(&[("STEPLAB_DATA_DIR", "/tmp/x")]).expect("defaults");
        assert_eq!(c.participant.database, DatabaseUrl::Sqlite("/tmp/x/participant.sqlite3".into()));
        assert_eq!(c.payments.listen.port(), 50053);
        assert_eq!(c.content_url, "http://127.0.0.1:50052");
        assert_eq!(c.jwt_secret, JwtSecretSource::File("/tmp/x/jwt-secret".into()));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.readiness_interval, Duration::from_secs(5));
        let c = config(&[("STEPLAB_METRICS_LISTEN", "0.0.0.0:9090")]).expect("metrics");
        assert_eq!(c.metrics_listen, Some(SocketAddr::from(([0, 0, 0, 0], 9090))));
    }

    #[test]
    fn a_database_url_typo_is_an_error_naming_the_variable_not_a_new_sqlite_file() {
        let err = config(&[("STEPLAB_PARTICIPANT_DATABASE_URL", "postgresdb")]).expect_err("typo");
        assert_eq!(err.variable, "STEPLAB_PARTICIPANT_DATABASE_URL");
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn postgres_and_sqlite_urls_are_recognised() {
        let c = config(&[
            ("STEPLAB_PARTICIPANT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/p"),
            ("STEPLAB_CONTENT_DATABASE_URL", "sqlite:///var/lib/c.sqlite3"),
            ("STEPLAB_PAYMENTS_DATABASE_URL", "file:pay.db"),
        ])
        .expect("valid");
        assert!(c.participant.database.is_postgres());
        assert_eq!(c.content.database, DatabaseUrl::Sqlite("/var/lib/c.sqlite3".into()));
        assert_eq!(c.payments.database, DatabaseUrl::Sqlite("pay.db".into()));
    }

    #[test]
    fn an_in_memory_sqlite_url_is_refused() {
        let err = config(&[("STEPLAB_CONTENT_DATABASE_URL", "sqlite://:memory:")]).expect_err("memory");
        assert_eq!(err.variable, "STEPLAB_CONTENT_DATABASE_URL");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("STEPLAB_TODAY", "2026-02-30"),
            ("STEPLAB_LOG_FORMAT", "xml"),
            ("STEPLAB_PAYMENTS_LISTEN", "50053"),
            ("STEPLAB_CONTENT_URL", "content:50052"),
            ("STEPLAB_JWT_SECRET", "short"),
            ("STEPLAB_DRAIN_SECONDS", "soon"),
            ("STEPLAB_RELAY_MAX_ATTEMPTS", "0"),
            ("STEPLAB_RELAY_MAX_BACKOFF_MS", "fast"),
            ("STEPLAB_METRICS_LISTEN", "9090"),
            ("STEPLAB_MAX_MESSAGE_BYTES", "0"),
            ("STEPLAB_MAX_MESSAGE_BYTES", "4MB"),
            ("STEPLAB_MAX_CONCURRENT_PER_CONNECTION", "0"),
            ("STEPLAB_MAX_CONCURRENT_REQUESTS", "-1"),
            ("STEPLAB_RATE_LIMIT_PER_MINUTE", "lots"),
            ("STEPLAB_MAX_CONNECTIONS", "0"),
            ("STEPLAB_HANDSHAKE_TIMEOUT_SECONDS", "10s"),
            ("STEPLAB_IDLE_TIMEOUT_SECONDS", "0"),
            ("STEPLAB_KEEPALIVE_INTERVAL_SECONDS", "never"),
            ("STEPLAB_KEEPALIVE_TIMEOUT_SECONDS", "0"),
            ("STEPLAB_READINESS_INTERVAL_MS", "0"),
            ("STEPLAB_READINESS_INTERVAL_MS", "5s"),
        ] {
            let err = config(&[(var, value)]).expect_err(var);
            assert_eq!(err.variable, var);
        }
    }

    #[test]
    fn audit_retention_defaults_to_400_days_zero_keeps_forever_and_nonsense_is_refused() {
        assert_eq!(config(&[]).expect("defaults").audit_retention_days, 400);
        assert_eq!(config(&[("STEPLAB_AUDIT_RETENTION_DAYS", "0")]).expect("forever").audit_retention_days, 0);
        assert_eq!(config(&[("STEPLAB_AUDIT_RETENTION_DAYS", " 30 ")]).expect("30").audit_retention_days, 30);
        for bad in ["-1", "a year", "36501"] {
            let err = config(&[("STEPLAB_AUDIT_RETENTION_DAYS", bad)]).expect_err(bad);
            assert_eq!(err.variable, "STEPLAB_AUDIT_RETENTION_DAYS");
        }
    }

    #[test]
    fn limits_have_defaults_and_can_be_set() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.limits, crate::limits::Limits::default());
        assert_eq!(c.limits.max_message_bytes, 4 * 1024 * 1024);
        let c = config(&[
            ("STEPLAB_MAX_MESSAGE_BYTES", "1048576"),
            ("STEPLAB_MAX_CONCURRENT_PER_CONNECTION", "8"),
            ("STEPLAB_MAX_CONCURRENT_REQUESTS", "32"),
            ("STEPLAB_RATE_LIMIT_PER_MINUTE", "0"),
            ("STEPLAB_MAX_CONNECTIONS", "100"),
            ("STEPLAB_HANDSHAKE_TIMEOUT_SECONDS", "2"),
            ("STEPLAB_IDLE_TIMEOUT_SECONDS", "60"),
            ("STEPLAB_KEEPALIVE_INTERVAL_SECONDS", "30"),
            ("STEPLAB_KEEPALIVE_TIMEOUT_SECONDS", "5"),
        ])
        .expect("valid");
        assert_eq!(
            c.limits,
            crate::limits::Limits {
                max_message_bytes: 1_048_576,
                max_concurrent_per_connection: 8,
                max_concurrent_requests: 32,
                rate_limit_per_minute: 0,
                max_connections: 100,
                handshake_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(60),
                keepalive_interval: Duration::from_secs(30),
                keepalive_timeout: Duration::from_secs(5),
            }
        );
    }

    #[test]
    fn tls_certificate_and_key_come_together_and_make_the_default_targets_https() {
        let cert = ("STEPLAB_TLS_CERT_FILE", "/etc/steplab/tls/tls.crt");
        let key = ("STEPLAB_TLS_KEY_FILE", "/etc/steplab/tls/tls.key");
        let ca = ("STEPLAB_TLS_CA_FILE", "/etc/steplab/tls/ca.crt");
        let client_ca = ("STEPLAB_TLS_CLIENT_CA_FILE", "/etc/steplab/tls/clients.crt");
        // One alone is an error naming the other, and the message names both.
        let err = config(&[cert]).expect_err("cert alone");
        assert_eq!(err.variable, "STEPLAB_TLS_KEY_FILE");
        assert!(err.to_string().contains("STEPLAB_TLS_CERT_FILE"), "{err}");
        let err = config(&[key]).expect_err("key alone");
        assert_eq!(err.variable, "STEPLAB_TLS_CERT_FILE");
        assert!(err.to_string().contains("STEPLAB_TLS_KEY_FILE"), "{err}");
        assert_eq!(config(&[client_ca]).expect_err("mtls without tls").variable, "STEPLAB_TLS_CLIENT_CA_FILE");

        // Off by default: plaintext listeners and http targets.
        let plain = config(&[]).expect("defaults");
        assert_eq!(plain.tls, TlsFiles::default());
        assert!(!plain.tls.serves_tls());
        assert_eq!(plain.payments_url, "http://127.0.0.1:50053");

        let c = config(&[cert, key, ca, client_ca, ("STEPLAB_CONTENT_LISTEN", "0.0.0.0:6000")]).expect("tls");
        assert!(c.tls.serves_tls());
        assert_eq!(c.tls.key_file, Some(PathBuf::from("/etc/steplab/tls/tls.key")));
        assert_eq!(c.tls.ca_file, Some(PathBuf::from("/etc/steplab/tls/ca.crt")));
        assert_eq!(c.tls.client_ca_file, Some(PathBuf::from("/etc/steplab/tls/clients.crt")));
        assert_eq!(c.content_url, "https://127.0.0.1:6000");
        assert_eq!(c.payments_url, "https://127.0.0.1:50053");
        // An explicit URL is kept as given; a CA alone only affects clients.
        let c = config(&[cert, key, ("STEPLAB_PAYMENTS_URL", "https://payments.steplab.svc:50053")]).expect("url");
        assert_eq!(c.payments_url, "https://payments.steplab.svc:50053");
        let c = config(&[ca]).expect("ca alone");
        assert!(!c.tls.serves_tls());
        assert_eq!(c.content_url, "http://127.0.0.1:50052");
        assert_eq!(
            TlsFiles::from_lookup(|k| (k == cert.0).then(|| cert.1.to_owned())).expect_err("alone").variable,
            key.0
        );
    }

    #[test]
    fn token_lifetime_and_clock_skew_default_to_a_day_and_a_minute_and_refuse_nonsense() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.token_time_limits.max_lifetime, Duration::from_secs(86_400));
        assert_eq!(c.token_time_limits.clock_skew, Duration::from_secs(60));
        let c = config(&[("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "900"), ("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS", "0")])
            .expect("valid");
        assert_eq!(c.token_time_limits.max_lifetime, Duration::from_secs(900));
        assert_eq!(c.token_time_limits.clock_skew, Duration::ZERO);
        for (var, value) in [
            ("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "0"),
            ("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "24h"),
            ("STEPLAB_TOKEN_MAX_LIFETIME_SECONDS", "31536000"),
            ("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS", "-1"),
            ("STEPLAB_TOKEN_CLOCK_SKEW_SECONDS", "86400"),
        ] {
            let err = config(&[(var, value)]).expect_err(value);
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[test]
    fn a_postgres_password_is_never_printed() {
        let url = DatabaseUrl::parse("V", "postgres://app:hunter2@db:5432/p").expect("valid");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn a_pinned_today_and_json_logs_are_read() {
        let c = config(&[("STEPLAB_TODAY", "2026-09-01"), ("STEPLAB_LOG_FORMAT", "json")]).expect("valid");
        assert_eq!(c.today, NaiveDate::from_ymd_opt(2026, 9, 1));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn identity_provider_variables_come_together_or_name_the_missing_one() {
        let jwks = ("STEPLAB_JWKS_FILE", "/etc/steplab/jwt/jwks.json");
        let pem = ("STEPLAB_JWT_PUBLIC_KEY_FILE", "/etc/steplab/jwt/public.pem");
        let iss = ("STEPLAB_JWT_ISSUER", "https://idp.example/realms/steplab");
        let aud = ("STEPLAB_JWT_AUDIENCE", "steplab-api");
        assert_eq!(config(&[jwks]).expect_err("no issuer").variable, "STEPLAB_JWT_ISSUER");
        assert_eq!(config(&[pem, iss]).expect_err("no audience").variable, "STEPLAB_JWT_AUDIENCE");
        assert_eq!(config(&[iss, aud]).expect_err("no keys").variable, "STEPLAB_JWT_ISSUER");
        assert_eq!(config(&[aud]).expect_err("no keys").variable, "STEPLAB_JWT_AUDIENCE");

        let c = config(&[jwks, iss, aud, ("STEPLAB_SERVICE_TOKEN_FILE", "/etc/steplab/service-token/token")])
            .expect("valid");
        let idp = c.identity_provider.clone().expect("idp");
        assert_eq!(idp.jwks_file, Some(PathBuf::from("/etc/steplab/jwt/jwks.json")));
        assert_eq!(idp.audience, "steplab-api");
        assert_eq!(c.service_token_file, Some(PathBuf::from("/etc/steplab/service-token/token")));
        // No STEPLAB_JWT_SECRET with a provider: no HS256 tokens at all.
        assert_eq!(c.hs256_secret(), None);
        let both =
            config(&[jwks, iss, aud, ("STEPLAB_JWT_SECRET", "0123456789abcdef0123456789abcdef")]).expect("valid");
        assert!(matches!(both.hs256_secret(), Some(JwtSecretSource::Value(_))));
        // Without a provider, the dev secret file as before.
        assert!(matches!(config(&[]).expect("dev").hs256_secret(), Some(JwtSecretSource::File(_))));
    }
}
