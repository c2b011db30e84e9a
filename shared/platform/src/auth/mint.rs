//! Minting: the HS256 dev tokens `steplab token` prints, and the `service`
//! token the outbox relay presents to the other services (the relay's
//! [`TokenSource`]). Verification does not depend on any of it.

use super::secret::load_secret;
use crate::config::{AuthSettings, ConfigError};
use crate::identity::Role;
use crate::outbox::TokenSource;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Issuer and audience of the tokens `steplab token` mints.
pub const DEV_ISSUER: &str = "steplab";
pub const DEV_AUDIENCE: &str = "steplab";

/// The JWT claims, as `steplab token` signs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_partner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_partner_ids: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// What a dev token grants; `steplab token` builds one from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub sub: String,
    pub role: Role,
    pub school_id: Option<String>,
    pub delivery_partner_ids: Vec<String>,
    pub ttl: chrono::Duration,
}

/// Mints an HS256 token the services accept.
pub fn mint_hs256(secret: &[u8], request: &TokenRequest) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let (delivery_partner_id, delivery_partner_ids) = match request.role {
        Role::Dpl => (None, request.delivery_partner_ids.clone()),
        _ => (request.delivery_partner_ids.first().cloned(), Vec::new()),
    };
    let claims = Claims {
        sub: request.sub.clone(),
        role: request.role,
        school_id: request.school_id.clone(),
        delivery_partner_id,
        delivery_partner_ids,
        iss: DEV_ISSUER.to_owned(),
        aud: DEV_AUDIENCE.to_owned(),
        iat: now,
        exp: now + request.ttl.num_seconds(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)?)
}

/// The `service` token the participant service's relay presents to content
/// release and payments: either minted here with the HS256 secret (dev, and
/// deployments that keep a shared secret), renewed well before it expires, or
/// the token an operator configures in `STEPLAB_SERVICE_TOKEN_FILE` (typically
/// issued by the identity provider), read afresh for every delivery so a
/// rotated token is used as soon as the file changes.
pub struct ServiceTokens {
    source: ServiceTokenSource,
    cached: std::sync::Mutex<Option<(String, i64)>>,
    /// How long a minted token lives: an hour, or less when the services
    /// accept no token that long (`STEPLAB_TOKEN_MAX_LIFETIME_SECONDS`).
    ttl: chrono::Duration,
}

pub(super) enum ServiceTokenSource {
    Minted(Vec<u8>),
    File(PathBuf),
}

impl ServiceTokens {
    /// Mints its own HS256 `service` tokens with `secret`.
    pub fn new(secret: Vec<u8>) -> Self {
        Self {
            source: ServiceTokenSource::Minted(secret),
            cached: std::sync::Mutex::new(None),
            ttl: chrono::Duration::hours(1),
        }
    }

    /// Presents the token in `path`, checked now so a missing or empty file
    /// stops the start-up with an error naming `STEPLAB_SERVICE_TOKEN_FILE`.
    pub fn from_file(path: PathBuf) -> Result<Self, ConfigError> {
        read_service_token(&path).map_err(|problem| ConfigError::new("STEPLAB_SERVICE_TOKEN_FILE", problem))?;
        Ok(Self {
            source: ServiceTokenSource::File(path),
            cached: std::sync::Mutex::new(None),
            ttl: chrono::Duration::hours(1),
        })
    }

    /// The operator's token file when `STEPLAB_SERVICE_TOKEN_FILE` is set,
    /// else tokens minted with the HS256 secret. With an identity provider
    /// and no HS256 secret there is nothing to mint with: the file is required.
    pub fn from_config(config: &AuthSettings) -> anyhow::Result<Self> {
        if let Some(path) = &config.service_token_file {
            return Ok(Self::from_file(path.clone())?);
        }
        match config.hs256_secret() {
            Some(source) => {
                let mut tokens = Self::new(load_secret(source).map_err(anyhow::Error::msg)?);
                let max = chrono::Duration::from_std(config.token_time_limits.max_lifetime).unwrap_or(tokens.ttl);
                tokens.ttl = tokens.ttl.min(max);
                Ok(tokens)
            }
            None => Err(ConfigError::new(
                "STEPLAB_SERVICE_TOKEN_FILE",
                "is required when tokens come from an identity provider and STEPLAB_JWT_SECRET is not set: \
                 the relay presents that `service` token to content release and payments",
            )
            .into()),
        }
    }
}

/// The token in an operator's token file: one JWT, surrounding whitespace ignored.
pub(super) fn read_service_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read ({e})", path.display()))?;
    let token = text.trim();
    let parts: Vec<&str> = token.split('.').collect();
    if token.is_empty() {
        return Err(format!("{} is empty: write the relay's `service` token into it", path.display()));
    }
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) || token.chars().any(char::is_whitespace) {
        return Err(format!("{} does not hold one JWT (header.payload.signature)", path.display()));
    }
    Ok(token.to_owned())
}

impl TokenSource for ServiceTokens {
    fn bearer(&self) -> Result<String, String> {
        let secret = match &self.source {
            ServiceTokenSource::File(path) => {
                return read_service_token(path).map_err(|e| format!("STEPLAB_SERVICE_TOKEN_FILE: {e}"));
            }
            ServiceTokenSource::Minted(secret) => secret,
        };
        let now = chrono::Utc::now().timestamp();
        let mut cached = self.cached.lock().map_err(|_| "token cache poisoned".to_string())?;
        if let Some((token, renew_at)) = cached.as_ref()
            && now < *renew_at
        {
            return Ok(token.clone());
        }
        let request = TokenRequest {
            sub: "steplab-participant-relay".into(),
            role: Role::Service,
            school_id: None,
            delivery_partner_ids: Vec::new(),
            ttl: self.ttl,
        };
        let token = mint_hs256(secret, &request).map_err(|e| format!("cannot mint the service token: {e}"))?;
        // Renewed at half its life, so a token in flight never expires.
        *cached = Some((token.clone(), now + self.ttl.num_seconds() / 2));
        Ok(token)
    }
}
