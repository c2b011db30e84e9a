//! The auth block: how tokens are verified (an HS256 secret, an identity
//! provider's keys or both), how long they may live, and the token the
//! relays present.

use super::{ConfigError, parse};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
/// every such token must carry. File contents are read by the platform's
/// `auth::verifier` at start-up, so an unreadable or malformed file stops the
/// service with an error naming its variable.
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

/// How long a token may live and how far the issuer's clock may be from
/// ours (`STEPLAB_TOKEN_MAX_LIFETIME_SECONDS`, `STEPLAB_TOKEN_CLOCK_SKEW_SECONDS`).
/// A leaked token is only worth its remaining lifetime, so one that lives for
/// a year (or claims to be issued tomorrow) is refused outright. The check
/// itself is the platform's `auth` module's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTimeLimits {
    pub max_lifetime: Duration,
    pub clock_skew: Duration,
}

impl Default for TokenTimeLimits {
    fn default() -> Self {
        Self { max_lifetime: Duration::from_secs(24 * 3600), clock_skew: Duration::from_secs(60) }
    }
}

/// Everything a service needs to verify tokens and to present its own.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The HS256 secret of dev tokens. Used when `STEPLAB_JWT_SECRET` is set,
    /// or when no identity provider is configured (then the data dir's dev
    /// secret); see [`AuthSettings::hs256_secret`].
    pub jwt_secret: JwtSecretSource,
    /// Production auth: tokens signed by an identity provider.
    pub identity_provider: Option<IdentityProvider>,
    pub token_time_limits: TokenTimeLimits,
    /// `STEPLAB_SERVICE_TOKEN_FILE`: the bearer token the relays present to
    /// the services they deliver to, read afresh for every delivery so the
    /// operator can rotate it in place. Without it the relay mints its own
    /// HS256 `service` token.
    pub service_token_file: Option<PathBuf>,
    /// `STEPLAB_PAGE_TOKEN_SECRET_FILE`: the secret page tokens are signed
    /// with (see `paging`), the same file on every replica so a client's next
    /// page may be served by any of them. Without it the key is derived from
    /// the HS256 secret, or (identity provider only) is random per process.
    pub page_token_secret_file: Option<PathBuf>,
}

impl AuthSettings {
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
}

/// The dev signing secret `steplab up` generates in the data dir.
pub fn dev_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-secret")
}

#[derive(Debug, clap::Args)]
pub(super) struct AuthArgs {
    #[arg(long, env = "STEPLAB_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    #[arg(long, env = "STEPLAB_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<String>,
    #[arg(long, env = "STEPLAB_JWKS_FILE")]
    jwks_file: Option<String>,
    #[arg(long, env = "STEPLAB_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    #[arg(long, env = "STEPLAB_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    #[arg(long, env = "STEPLAB_TOKEN_MAX_LIFETIME_SECONDS")]
    token_max_lifetime_seconds: Option<String>,
    #[arg(long, env = "STEPLAB_TOKEN_CLOCK_SKEW_SECONDS")]
    token_clock_skew_seconds: Option<String>,
    #[arg(long, env = "STEPLAB_SERVICE_TOKEN_FILE")]
    service_token_file: Option<String>,
    #[arg(long, env = "STEPLAB_PAGE_TOKEN_SECRET_FILE")]
    page_token_secret_file: Option<String>,
}

impl AuthArgs {
    pub(super) fn parse(self, data_dir: &Path) -> Result<AuthSettings, ConfigError> {
        // Unlike the other variables, a blank secret is a (too short) secret,
        // never a reason to fall back to the dev secret file.
        let jwt_secret = match self.jwt_secret {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::new("STEPLAB_JWT_SECRET", "must be at least 32 characters"));
            }
            Some(secret) => JwtSecretSource::Value(secret),
            None => JwtSecretSource::File(dev_secret_path(data_dir)),
        };
        let path = |raw: &Option<String>| parse::given(raw).map(|v| PathBuf::from(v.trim()));
        let text = |raw: &Option<String>| parse::given(raw).map(|v| v.trim().to_owned());
        let identity_provider = identity_provider(
            path(&self.jwt_public_key_file),
            path(&self.jwks_file),
            text(&self.jwt_issuer),
            text(&self.jwt_audience),
        )?;
        let service_token_file = path(&self.service_token_file);
        let page_token_secret_file = path(&self.page_token_secret_file);
        let defaults = TokenTimeLimits::default();
        let token_time_limits = TokenTimeLimits {
            max_lifetime: Duration::from_secs(parse::positive(
                "STEPLAB_TOKEN_MAX_LIFETIME_SECONDS",
                &self.token_max_lifetime_seconds,
                defaults.max_lifetime.as_secs(),
                31 * 24 * 3600,
            )?),
            clock_skew: match parse::given(&self.token_clock_skew_seconds) {
                None => defaults.clock_skew,
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
        Ok(AuthSettings {
            jwt_secret,
            identity_provider,
            token_time_limits,
            service_token_file,
            page_token_secret_file,
        })
    }
}

fn identity_provider(
    public_key_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
) -> Result<Option<IdentityProvider>, ConfigError> {
    if public_key_file.is_none() && jwks_file.is_none() {
        for (variable, value) in [("STEPLAB_JWT_ISSUER", &issuer), ("STEPLAB_JWT_AUDIENCE", &audience)] {
            if value.is_some() {
                return Err(ConfigError::new(
                    variable,
                    "has no effect without STEPLAB_JWKS_FILE or STEPLAB_JWT_PUBLIC_KEY_FILE: set one of them too",
                ));
            }
        }
        return Ok(None);
    }
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
            format!("is required with {keys}: the `aud` value your identity provider issues Steplab's tokens for"),
        )
    })?;
    Ok(Some(IdentityProvider { public_key_file, jwks_file, issuer, audience }))
}
